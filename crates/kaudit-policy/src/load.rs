//! Loading a policy file (YAML or JSON) the way the apiserver does: decode strictly, and
//! when the only problems are unknown or duplicate fields, decode again leniently (unknown
//! fields dropped, the last duplicate winning) and go on with a warning; then check
//! `apiVersion` and `kind`, validate, and require at least one rule.
//!
//! Scalars are typed as the apiserver's YAML reader (YAML 1.1) types them: a plain `5`,
//! `true` or `on` in a string field is a decoding error, as is `"true"` in a boolean one.

use kaudit_model::{Level, Stage};
use kaudit_yaml::{Node, Span, Style, Value};

use crate::error::{Diagnostic, PolicyError, Severity};
use crate::policy::{GroupResources, Policy, PolicyRule};

/// A policy that loads, with the warnings the apiserver would only log (or not even that).
#[derive(Clone, Debug, PartialEq)]
pub struct Loaded {
    /// The policy as the apiserver would use it.
    pub policy: Policy,
    /// Unknown or duplicate fields, ignored documents, a deprecated `apiVersion`: each of
    /// them loads, but probably not as the author meant.
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    /// The policy, or every warning as an error (`--strict`).
    pub fn into_strict(self) -> Result<Policy, PolicyError> {
        if self.warnings.is_empty() {
            return Ok(self.policy);
        }
        let errors = self
            .warnings
            .into_iter()
            .map(|w| Diagnostic {
                severity: Severity::Error,
                ..w
            })
            .collect();
        Err(PolicyError::Invalid(errors))
    }
}

/// The `apiVersion` the apiserver accepts.
pub const API_VERSION: &str = "audit.k8s.io/v1";

/// Loads and validates a policy from YAML or JSON text.
pub fn load(text: &str) -> Result<Loaded, PolicyError> {
    let documents = kaudit_yaml::parse(text).map_err(|e| PolicyError::Syntax {
        span: e.span,
        message: format!("not YAML or JSON: {}", e.message),
    })?;
    let mut decoder = Decoder::default();
    let Some(root) = documents.first() else {
        return Err(PolicyError::Invalid(vec![Diagnostic::new(
            Span { line: 1, column: 1 },
            "empty policy file: no apiVersion, kind or rules",
        )]));
    };
    if let Some(extra) = documents.get(1) {
        decoder.warn(
            start(extra),
            format!(
                "only the first YAML document is read; {} more ignored (the apiserver ignores them too)",
                documents.len() - 1
            ),
        );
    }
    let raw = decoder.policy(root);
    if !decoder.errors.is_empty() {
        return Err(invalid(decoder.errors, decoder.warnings));
    }
    let mut errors = Vec::new();
    check_type(&raw, start(root), &mut errors, &mut decoder.warnings);
    validate(&raw, &mut errors);
    if errors.is_empty() && raw.rules.is_empty() {
        let span = raw.rules_span.unwrap_or(start(root));
        errors.push(Diagnostic::new(
            span,
            "rules: loaded illegal policy with 0 rules (at least one rule is required)",
        ));
    }
    if !errors.is_empty() {
        return Err(invalid(errors, decoder.warnings));
    }
    let policy = Policy {
        omit_stages: raw
            .omit_stages
            .iter()
            .filter_map(|(s, _)| s.parse::<Stage>().ok())
            .collect(),
        omit_managed_fields: raw.omit_managed_fields.unwrap_or(false),
        rules: raw.rules.into_iter().map(RawRule::into_rule).collect(),
    };
    let mut warnings = decoder.warnings;
    warnings.sort_by_key(|d| d.span);
    Ok(Loaded { policy, warnings })
}

/// Where a node starts for messages about it as a whole: a block mapping's first key (the
/// parser marks block mappings after their first key).
fn start(node: &Node) -> Span {
    node.as_map()
        .and_then(|entries| entries.first())
        .map_or(node.span, |(key, _)| key.span.min(node.span))
}

/// The errors, with the warnings that may explain them, in file order.
fn invalid(mut errors: Vec<Diagnostic>, warnings: Vec<Diagnostic>) -> PolicyError {
    errors.extend(warnings);
    errors.sort_by_key(|d| (d.span, d.severity));
    PolicyError::Invalid(errors)
}

/// A decoded but not yet validated policy: strings as written, with their places.
#[derive(Default)]
struct RawPolicy {
    api_version: Option<(String, Span)>,
    kind: Option<(String, Span)>,
    rules: Vec<RawRule>,
    rules_span: Option<Span>,
    omit_stages: Vec<(String, Span)>,
    omit_managed_fields: Option<bool>,
}

#[derive(Default)]
struct RawRule {
    span: Span,
    level: Option<(String, Span)>,
    users: Vec<(String, Span)>,
    user_groups: Vec<(String, Span)>,
    verbs: Vec<(String, Span)>,
    resources: Vec<RawGroupResources>,
    resources_span: Option<Span>,
    namespaces: Vec<(String, Span)>,
    namespaces_span: Option<Span>,
    non_resource_urls: Vec<(String, Span)>,
    non_resource_urls_span: Option<Span>,
    omit_stages: Vec<(String, Span)>,
    omit_managed_fields: Option<bool>,
}

#[derive(Default)]
struct RawGroupResources {
    span: Span,
    group: Option<(String, Span)>,
    resources: Vec<(String, Span)>,
    resource_names: Vec<(String, Span)>,
    resource_names_span: Option<Span>,
}

impl RawRule {
    fn into_rule(self) -> PolicyRule {
        let strings = |list: Vec<(String, Span)>| list.into_iter().map(|(s, _)| s).collect();
        PolicyRule {
            level: self
                .level
                .and_then(|(l, _)| l.parse().ok())
                .unwrap_or(Level::None),
            users: strings(self.users),
            user_groups: strings(self.user_groups),
            verbs: strings(self.verbs),
            resources: self
                .resources
                .into_iter()
                .map(|g| GroupResources {
                    group: g.group.map(|(s, _)| s).unwrap_or_default(),
                    resources: strings(g.resources),
                    resource_names: strings(g.resource_names),
                })
                .collect(),
            namespaces: strings(self.namespaces),
            non_resource_urls: strings(self.non_resource_urls),
            omit_stages: self
                .omit_stages
                .iter()
                .filter_map(|(s, _)| s.parse::<Stage>().ok())
                .collect(),
            omit_managed_fields: self.omit_managed_fields,
            span: self.span,
        }
    }
}

/// Decodes nodes into the raw policy, collecting fatal decoding errors (wrong types) and
/// strict-decoding warnings (unknown and duplicate fields).
#[derive(Default)]
struct Decoder {
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

const POLICY_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "rules",
    "omitStages",
    "omitManagedFields",
];
const RULE_FIELDS: &[&str] = &[
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "nonResourceURLs",
    "omitStages",
    "omitManagedFields",
];
const GROUP_FIELDS: &[&str] = &["group", "resources", "resourceNames"];
const METADATA_FIELDS: &[&str] = &[
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

impl Decoder {
    fn error(&mut self, span: Span, message: String) {
        self.errors.push(Diagnostic::new(span, message));
    }

    fn warn(&mut self, span: Span, message: String) {
        self.warnings.push(Diagnostic::warning(span, message));
    }

    /// The entries of a mapping as (key, value), with merge keys (`<<`) expanded, duplicate
    /// keys warned about (the last one wins), and unknown keys warned about and dropped.
    fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&str],
        what: &str,
    ) -> Vec<(&'n str, &'n Node)> {
        let Some(entries) = node.as_map() else {
            return Vec::new();
        };
        let mut flat: Vec<(&'n Node, &'n Node)> = Vec::new();
        for (key, value) in entries {
            if key.as_scalar() == Some("<<")
                && matches!(
                    &key.value,
                    Value::Scalar {
                        style: Style::Plain,
                        ..
                    }
                )
            {
                let sources: Vec<&Node> = match &value.value {
                    Value::Map(_) => vec![value],
                    Value::Seq(items) => items.iter().collect(),
                    _ => Vec::new(),
                };
                for source in sources {
                    for (k, v) in source.as_map().unwrap_or(&[]) {
                        let explicit = entries.iter().any(|(own, _)| own.as_scalar() == k.as_scalar());
                        if !explicit && !flat.iter().any(|(f, _)| f.as_scalar() == k.as_scalar()) {
                            flat.push((k, v));
                        }
                    }
                }
                continue;
            }
            flat.push((key, value));
        }
        let mut out: Vec<(&'n str, &'n Node)> = Vec::new();
        for (key, value) in flat {
            let Some(name) = key.as_scalar() else {
                self.error(
                    key.span,
                    format!(
                        "{}: a field name must be a scalar, found {}",
                        join_path(path, "?"),
                        key.kind_name()
                    ),
                );
                continue;
            };
            let full = join_path(path, name);
            if !known.contains(&name) {
                let hint = hint_for(name, known, what);
                self.warn(key.span, format!("unknown field \"{full}\" is ignored{hint}"));
                continue;
            }
            if let Some(slot) = out.iter_mut().find(|(n, _)| *n == name) {
                self.warn(
                    key.span,
                    format!("duplicate field \"{full}\": this later value replaces the earlier one"),
                );
                slot.1 = value;
            } else {
                out.push((name, value));
            }
        }
        out
    }

    fn policy(&mut self, root: &Node) -> RawPolicy {
        let mut raw = RawPolicy::default();
        match &root.value {
            Value::Map(_) => {}
            _ if root.is_null() => return raw,
            _ => {
                self.error(
                    root.span,
                    format!(
                        "a policy must be a mapping (an object), found {}",
                        root.kind_name()
                    ),
                );
                return raw;
            }
        }
        for (name, value) in self.fields(root, "", POLICY_FIELDS, "policy") {
            match name {
                "apiVersion" => raw.api_version = self.string(value, name).map(|s| (s, value.span)),
                "kind" => raw.kind = self.string(value, name).map(|s| (s, value.span)),
                "metadata" => self.metadata(value),
                "rules" => {
                    raw.rules_span = Some(value.span);
                    for (i, item) in self.seq(value, name).iter().enumerate() {
                        let rule = self.rule(item, &format!("rules[{i}]"));
                        raw.rules.push(rule);
                    }
                }
                "omitStages" => raw.omit_stages = self.strings(value, name),
                "omitManagedFields" => raw.omit_managed_fields = self.boolean(value, name),
                _ => {}
            }
        }
        raw
    }

    fn metadata(&mut self, node: &Node) {
        if node.is_null() {
            return;
        }
        if node.as_map().is_none() {
            self.error(
                node.span,
                format!("metadata: expected a mapping, found {}", node.kind_name()),
            );
            return;
        }
        for (name, value) in self.fields(node, "metadata", METADATA_FIELDS, "metadata") {
            match name {
                "name" | "generateName" | "namespace" | "selfLink" | "uid" | "resourceVersion" => {
                    self.string(value, &format!("metadata.{name}"));
                }
                "labels" | "annotations" => {
                    if let Some(entries) = value.as_map() {
                        for (k, v) in entries {
                            let key = k.as_scalar().unwrap_or("?");
                            self.string(v, &format!("metadata.{name}.{key}"));
                        }
                    } else if !value.is_null() {
                        self.error(
                            value.span,
                            format!("metadata.{name}: expected a mapping, found {}", value.kind_name()),
                        );
                    }
                }
                _ => {}
            }
        }
    }

    fn rule(&mut self, node: &Node, path: &str) -> RawRule {
        let mut rule = RawRule {
            span: start(node),
            ..RawRule::default()
        };
        if node.is_null() {
            return rule;
        }
        if node.as_map().is_none() {
            self.error(
                node.span,
                format!("{path}: expected a mapping (a rule), found {}", node.kind_name()),
            );
            return rule;
        }
        for (name, value) in self.fields(node, path, RULE_FIELDS, "rule") {
            let field = format!("{path}.{name}");
            match name {
                "level" => rule.level = self.string(value, &field).map(|s| (s, value.span)),
                "users" => rule.users = self.strings(value, &field),
                "userGroups" => rule.user_groups = self.strings(value, &field),
                "verbs" => rule.verbs = self.strings(value, &field),
                "resources" => {
                    rule.resources_span = Some(value.span);
                    for (i, item) in self.seq(value, &field).iter().enumerate() {
                        let entry = self.group_resources(item, &format!("{field}[{i}]"));
                        rule.resources.push(entry);
                    }
                }
                "namespaces" => {
                    rule.namespaces_span = Some(value.span);
                    rule.namespaces = self.strings(value, &field);
                }
                "nonResourceURLs" => {
                    rule.non_resource_urls_span = Some(value.span);
                    rule.non_resource_urls = self.strings(value, &field);
                }
                "omitStages" => rule.omit_stages = self.strings(value, &field),
                "omitManagedFields" => rule.omit_managed_fields = self.boolean(value, &field),
                _ => {}
            }
        }
        rule
    }

    fn group_resources(&mut self, node: &Node, path: &str) -> RawGroupResources {
        let mut entry = RawGroupResources {
            span: start(node),
            ..RawGroupResources::default()
        };
        if node.is_null() {
            return entry;
        }
        if node.as_map().is_none() {
            self.error(
                node.span,
                format!(
                    "{path}: expected a mapping (group, resources, resourceNames), found {}",
                    node.kind_name()
                ),
            );
            return entry;
        }
        for (name, value) in self.fields(node, path, GROUP_FIELDS, "resources entry") {
            let field = format!("{path}.{name}");
            match name {
                "group" => entry.group = self.string(value, &field).map(|s| (s, value.span)),
                "resources" => entry.resources = self.strings(value, &field),
                "resourceNames" => {
                    entry.resource_names_span = Some(value.span);
                    entry.resource_names = self.strings(value, &field);
                }
                _ => {}
            }
        }
        entry
    }

    /// A sequence's items; null is an empty list.
    fn seq<'n>(&mut self, node: &'n Node, path: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(items) => items,
            _ if node.is_null() => &[],
            _ => {
                self.error(
                    node.span,
                    format!("{path}: expected a list, found {}", describe(node)),
                );
                &[]
            }
        }
    }

    fn strings(&mut self, node: &Node, path: &str) -> Vec<(String, Span)> {
        let items = self.seq(node, path);
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            if let Some(s) = self.string(item, &format!("{path}[{i}]")) {
                out.push((s, item.span));
            }
        }
        out
    }

    /// A string field: null decodes to `""`; a plain scalar that YAML 1.1 reads as a number
    /// or boolean is a type error.
    fn string(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::Scalar { text, style } => {
                if *style != Style::Plain {
                    return Some(text.clone());
                }
                match resolve_plain(text) {
                    Plain::Null => Some(String::new()),
                    Plain::Str => Some(text.clone()),
                    Plain::Bool(_) => {
                        self.error(
                            node.span,
                            format!(
                                "{path}: expected a string, found the boolean {text} (quote it: \"{text}\")"
                            ),
                        );
                        None
                    }
                    Plain::Number => {
                        self.error(
                            node.span,
                            format!(
                                "{path}: expected a string, found the number {text} (quote it: \"{text}\")"
                            ),
                        );
                        None
                    }
                }
            }
            _ => {
                self.error(
                    node.span,
                    format!("{path}: expected a string, found {}", node.kind_name()),
                );
                None
            }
        }
    }

    /// A boolean field: YAML 1.1 booleans (`true`, `yes`, `on`, ...); null means unset.
    fn boolean(&mut self, node: &Node, path: &str) -> Option<bool> {
        if let Value::Scalar {
            text,
            style: Style::Plain,
        } = &node.value
        {
            match resolve_plain(text) {
                Plain::Bool(b) => return Some(b),
                Plain::Null => return None,
                _ => {}
            }
        }
        self.error(
            node.span,
            format!("{path}: expected true or false, found {}", describe(node)),
        );
        None
    }
}

fn describe(node: &Node) -> String {
    match &node.value {
        Value::Scalar { text, style } => match (style, resolve_plain(text)) {
            (Style::Plain, Plain::Bool(_)) => format!("the boolean {text}"),
            (Style::Plain, Plain::Number) => format!("the number {text}"),
            _ => format!("the string {text:?}"),
        },
        _ => node.kind_name().to_owned(),
    }
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

/// A hint for an unknown field: the known field it probably meant, or where it belongs.
fn hint_for(name: &str, known: &[&str], what: &str) -> String {
    if let Some(close) = known
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name) || edit_distance(k, name) <= 2)
    {
        return format!(" (did you mean \"{close}\"?)");
    }

    match what {
        "resources entry" if RULE_FIELDS.contains(&name) => {
            format!(
                "; \"{name}\" belongs to the rule, not to a resources entry, so the rule does not restrict it"
            )
        }
        "rule" if GROUP_FIELDS.contains(&name) => {
            format!("; \"{name}\" belongs inside a resources entry")
        }
        "rule" if POLICY_FIELDS.contains(&name) => {
            format!("; \"{name}\" is a field of the policy, not of a rule")
        }
        "policy" if RULE_FIELDS.contains(&name) => {
            format!("; \"{name}\" is a field of a rule (under rules:), not of the policy")
        }
        _ => String::new(),
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

enum Plain {
    Null,
    Bool(bool),
    Number,
    Str,
}

/// How the apiserver's YAML 1.1 reader types a plain scalar.
fn resolve_plain(text: &str) -> Plain {
    match text {
        "" | "~" | "null" | "Null" | "NULL" => return Plain::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Plain::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF" | ".nan"
        | ".NaN" | ".NAN" => return Plain::Number,
        _ => {}
    }
    let Some(first) = text.chars().next() else {
        return Plain::Null;
    };
    if !matches!(first, '+' | '-' | '.' | '0'..='9') {
        return Plain::Str;
    }
    let plain = text.replace('_', "");
    let unsigned = plain.trim_start_matches(['+', '-']);
    let is_int = if let Some(hex) = unsigned.strip_prefix("0x") {
        !hex.is_empty() && hex.chars().all(|c| c.is_ascii_hexdigit())
    } else if let Some(bin) = unsigned.strip_prefix("0b") {
        !bin.is_empty() && bin.chars().all(|c| c == '0' || c == '1')
    } else {
        !unsigned.is_empty() && unsigned.chars().all(|c| c.is_ascii_digit())
    };
    let is_float = !is_int
        && unsigned
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit() || c == '.')
        && unsigned
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && plain.parse::<f64>().is_ok();
    if is_int || is_float {
        Plain::Number
    } else {
        Plain::Str
    }
}

/// `apiVersion` and `kind`: required, `audit.k8s.io/v1` and `Policy`. `v1beta1` loads with
/// a warning, since apiservers since 1.24 refuse it.
fn check_type(raw: &RawPolicy, root: Span, errors: &mut Vec<Diagnostic>, warnings: &mut Vec<Diagnostic>) {
    match &raw.api_version {
        None => errors.push(Diagnostic::new(root, "apiVersion: Required value: the policy needs apiVersion: audit.k8s.io/v1 (unknown group version)")),
        Some((v, _)) if v == API_VERSION => {}
        Some((v, span)) if v == "audit.k8s.io/v1beta1" => warnings.push(Diagnostic::warning(
            *span,
            "apiVersion: audit.k8s.io/v1beta1 is read as audit.k8s.io/v1, but apiservers since 1.24 reject it: write audit.k8s.io/v1",
        )),
        Some((v, span)) if v == "audit.k8s.io/v1alpha1" => errors.push(Diagnostic::new(
            *span,
            "apiVersion: Unsupported value: \"audit.k8s.io/v1alpha1\": removed in Kubernetes 1.24; write audit.k8s.io/v1",
        )),
        Some((v, span)) => errors.push(Diagnostic::new(
            *span,
            format!("apiVersion: Unsupported value: {v:?}: unknown group version for a Policy (expected audit.k8s.io/v1)"),
        )),
    }
    match &raw.kind {
        None => errors.push(Diagnostic::new(
            root,
            "kind: Required value: the policy needs kind: Policy",
        )),
        Some((k, _)) if k == "Policy" => {}
        Some((k, span)) => errors.push(Diagnostic::new(
            *span,
            format!("kind: Unsupported value: {k:?}: expected Policy"),
        )),
    }
}

const LEVELS: &str = "\"None\", \"Metadata\", \"Request\", \"RequestResponse\"";
const STAGES: &str = "\"RequestReceived\", \"ResponseStarted\", \"ResponseComplete\", \"Panic\"";

/// The apiserver's policy validation.
fn validate(raw: &RawPolicy, errors: &mut Vec<Diagnostic>) {
    validate_stages(&raw.omit_stages, "omitStages", errors);
    for (i, rule) in raw.rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        match &rule.level {
            None => errors.push(Diagnostic::new(
                rule.span,
                format!("{path}.level: Required value: every rule needs a level ({LEVELS})"),
            )),
            Some((level, span)) if level.is_empty() => errors.push(Diagnostic::new(
                *span,
                format!("{path}.level: Required value: every rule needs a level ({LEVELS})"),
            )),
            Some((level, span)) if level.parse::<Level>().is_err() => errors.push(Diagnostic::new(
                *span,
                format!("{path}.level: Unsupported value: {level:?}: supported values: {LEVELS}"),
            )),
            Some(_) => {}
        }
        if !rule.non_resource_urls.is_empty() && (!rule.resources.is_empty() || !rule.namespaces.is_empty()) {
            let span = rule.non_resource_urls_span.unwrap_or(rule.span);
            errors.push(Diagnostic::new(
                span,
                format!("{path}.nonResourceURLs: Invalid value: rules cannot apply to both regular resources and non-resource URLs (remove resources and namespaces, or split the rule)"),
            ));
        }
        for (j, (url, span)) in rule.non_resource_urls.iter().enumerate() {
            if url == "*" {
                continue;
            }
            let field = format!("{path}.nonResourceURLs[{j}]");
            if !url.starts_with('/') {
                errors.push(Diagnostic::new(*span, format!("{field}: Invalid value: {url:?}: non-resource URL rules must begin with a '/' character")));
            } else if url[..url.len() - url.chars().last().map_or(0, char::len_utf8)].contains('*') {
                errors.push(Diagnostic::new(*span, format!("{field}: Invalid value: {url:?}: non-resource URL wildcards '*' must be the final character of the rule")));
            }
        }
        for (j, entry) in rule.resources.iter().enumerate() {
            let field = format!("{path}.resources[{j}]");
            if let Some((group, span)) = &entry.group
                && !group.is_empty()
                && group != "*"
                && let Some(reason) = dns1123_subdomain_error(group)
            {
                errors.push(Diagnostic::new(
                    *span,
                    format!("{field}.group: Invalid value: {group:?}: {reason}"),
                ));
            }
            if entry.resources.is_empty() && !entry.resource_names.is_empty() {
                let span = entry.resource_names_span.unwrap_or(entry.span);
                errors.push(Diagnostic::new(span, format!("{field}.resourceNames: Invalid value: using resourceNames requires at least one resource")));
            }
        }
        validate_stages(&rule.omit_stages, &format!("{path}.omitStages"), errors);
    }
}

fn validate_stages(stages: &[(String, Span)], path: &str, errors: &mut Vec<Diagnostic>) {
    for (i, (stage, span)) in stages.iter().enumerate() {
        if stage.parse::<Stage>().is_err() {
            errors.push(Diagnostic::new(
                *span,
                format!("{path}[{i}]: Unsupported value: {stage:?}: supported values: {STAGES}"),
            ));
        }
    }
}

/// Why `value` is not a lowercase RFC 1123 subdomain (what an API group name must be).
fn dns1123_subdomain_error(value: &str) -> Option<String> {
    if value.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        !bytes.is_empty()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[0] != b'-'
            && bytes[bytes.len() - 1] != b'-'
    };
    if value.split('.').all(label_ok) {
        None
    } else {
        Some(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com'); an API group has no version (rbac.authorization.k8s.io, not rbac.authorization.k8s.io/v1)"
                .into(),
        )
    }
}

#[cfg(test)]
mod tests;
