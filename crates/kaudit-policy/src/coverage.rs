//! Which detection rules a policy starves.
//!
//! A detection rule is given as a [`DetectionRule`]: its expanded condition in a small
//! model of its own ([`Condition`], built by the caller from the rules engine) and the level
//! its fields need. The analysis derives from the condition the requests the rule can
//! match: it enumerates probe requests built from every literal the condition and the
//! policy mention (verbs, users, groups, resources with their API group and scope,
//! subresources, namespaces, names, paths) plus one value that neither mentions, which
//! stands for "any other". Two requests that agree on which literals they equal get the
//! same policy decision and the same condition result, so the probes cover every case.
//! A probe the condition can match (three-valued: fields the probe does not determine are
//! unknown) is starved when the policy gives it level `None`, a level below what the rule's
//! fields need, or omits every stage at which the rule could see it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use kaudit_model::{Level, Stage};
use serde::Serialize;

use crate::eval::{RequestAttributes, User};
use crate::policy::{Decision, Policy, StageSet};

/// A detection rule as the coverage analysis sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DetectionRule {
    /// The rule's name.
    pub name: String,
    /// Its condition, macros and lists expanded.
    pub condition: Condition,
    /// The level its fields need: `Metadata`, `Request` (request body fields) or
    /// `RequestResponse` (response body fields).
    pub needs: Level,
}

/// A rule condition, as far as the coverage analysis needs it.
#[derive(Clone, Debug, PartialEq)]
pub enum Condition {
    /// All hold.
    And(Vec<Condition>),
    /// One holds.
    Or(Vec<Condition>),
    /// Does not hold.
    Not(Box<Condition>),
    /// A field compared with literals.
    Check {
        /// The field as written: `ka.verb`, `jevt.value[/stage]`.
        field: String,
        /// The operator.
        op: CheckOp,
        /// The literals.
        values: Vec<String>,
        /// The level the field needs to have a value.
        needs: Level,
    },
    /// A comparison the analysis cannot follow (transformers, field-to-field): it may be
    /// true or false; `needs` is the level its fields need.
    Opaque {
        /// The level the comparison's fields need.
        needs: Level,
    },
}

/// The operators of [`Condition::Check`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
    /// `in`
    In,
    /// `intersects`
    Intersects,
    /// `exists`
    Exists,
    /// `startswith`
    StartsWith,
    /// `endswith`
    EndsWith,
    /// `contains`
    Contains,
    /// `icontains`
    IContains,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// Anything else (`glob`, `regex`, `pmatch`, ...): unknown result.
    Other,
}

/// The coverage of every detection rule by one policy.
#[derive(Clone, Debug, Serialize)]
pub struct CoverageReport {
    /// One entry per detection rule, in the order given.
    pub rules: Vec<RuleCoverage>,
}

/// How well the policy feeds one detection rule.
#[derive(Clone, Debug, Serialize)]
pub struct RuleCoverage {
    /// The detection rule's name.
    pub name: String,
    /// The verdict.
    pub status: Status,
    /// The level the rule's fields need.
    #[serde(serialize_with = "level_name")]
    pub needs: Level,
    /// How many distinct requests (probes) the rule can match.
    pub requests: usize,
    /// How many of them the policy starves.
    pub starved: usize,
    /// What starves it, per policy rule and reason.
    pub starved_by: Vec<Starvation>,
}

/// The verdict for one detection rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Every request it can match reaches it with what it needs.
    Covered,
    /// Some of its requests are starved.
    PartiallyStarved,
    /// Every request it can match is starved.
    Starved,
    /// Its condition cannot match any request (a rule disabled by a never-true macro).
    NeverMatches,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Covered => "covered",
            Status::PartiallyStarved => "partially starved",
            Status::Starved => "starved",
            Status::NeverMatches => "never matches",
        })
    }
}

/// One way the policy starves a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Starvation {
    /// The policy rule whose decision starves it (`None`: no policy rule matched, so the
    /// level is `None`).
    pub policy_rule: Option<usize>,
    /// The line of that policy rule.
    pub policy_line: Option<usize>,
    /// Why.
    pub reason: Reason,
    /// How many of the rule's requests this starves.
    pub requests: usize,
    /// One such request, for the reader.
    pub example: String,
}

/// Why a request is starved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// The policy's level is `None`: no event at all.
    LevelNone,
    /// The policy's level is below what the rule's fields need.
    LevelTooLow {
        /// The policy's level.
        #[serde(serialize_with = "level_name")]
        level: Level,
        /// What the rule needs.
        #[serde(serialize_with = "level_name")]
        needs: Level,
    },
    /// Every stage at which the rule could see the request is omitted.
    StagesOmitted {
        /// The stages the rule could use.
        needs: Vec<String>,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::LevelNone => f.write_str("level None drops the events"),
            Reason::LevelTooLow { level, needs } => {
                write!(f, "level {level} is below the {needs} its fields need")
            }
            Reason::StagesOmitted { needs } => write!(f, "omits the stage(s) it reads: {}", needs.join(", ")),
        }
    }
}

fn level_name<S: serde::Serializer>(level: &Level, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(level.as_str())
}

/// Checks every detection rule against the policy.
pub fn coverage(policy: &Policy, rules: &[DetectionRule]) -> CoverageReport {
    CoverageReport {
        rules: rules.iter().map(|rule| rule_coverage(policy, rule)).collect(),
    }
}

/// The coverage of one rule.
pub fn rule_coverage(policy: &Policy, rule: &DetectionRule) -> RuleCoverage {
    let mut requests = 0;
    let mut starved = 0;
    // Grouped by policy rule and kind of reason; the stages of `StagesOmitted` are united.
    let mut groups: BTreeMap<(Option<usize>, u8), (Reason, usize, String)> = BTreeMap::new();
    for_each_probe(policy, rule, &mut |probe, wanted, decision| {
        requests += 1;
        if let Some(reason) = starvation(rule, wanted, decision) {
            starved += 1;
            let kind = match reason {
                Reason::LevelNone => 0,
                Reason::LevelTooLow { .. } => 1,
                Reason::StagesOmitted { .. } => 2,
            };
            let entry = groups
                .entry((decision.rule, kind))
                .or_insert_with(|| (reason.clone(), 0, probe.to_string()));
            entry.1 += 1;
            if let (Reason::StagesOmitted { needs: all }, Reason::StagesOmitted { needs }) =
                (&mut entry.0, reason)
            {
                let united: StageSet = all
                    .iter()
                    .chain(&needs)
                    .filter_map(|s| s.parse::<Stage>().ok())
                    .collect();
                *all = united.iter().map(|s| s.as_str().to_owned()).collect();
            }
        }
    });
    let status = if requests == 0 {
        Status::NeverMatches
    } else if starved == 0 {
        Status::Covered
    } else if starved == requests {
        Status::Starved
    } else {
        Status::PartiallyStarved
    };
    let mut starved_by: Vec<Starvation> = groups
        .into_iter()
        .map(|((policy_rule, _), (reason, count, example))| Starvation {
            policy_rule,
            policy_line: policy_rule.and_then(|i| policy.rules.get(i)).map(|r| r.span.line),
            reason,
            requests: count,
            example,
        })
        .collect();
    starved_by.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then(a.policy_rule.cmp(&b.policy_rule))
    });
    RuleCoverage {
        name: rule.name.clone(),
        status,
        needs: rule.needs,
        requests,
        starved,
        starved_by,
    }
}

/// The requests of `rule` the policy starves, with the stages at which the rule could see
/// each of them.
pub(crate) fn starved_probes(policy: &Policy, rule: &DetectionRule) -> Vec<(Probe, StageSet)> {
    let mut out = Vec::new();
    for_each_probe(policy, rule, &mut |probe, wanted, decision| {
        if starvation(rule, wanted, decision).is_some() {
            out.push((probe.clone(), wanted));
        }
    });
    out
}

/// Why `decision` starves a request the rule wants at the stages `wanted`, if it does.
fn starvation(rule: &DetectionRule, wanted: StageSet, decision: &Decision) -> Option<Reason> {
    if decision.level == Level::None {
        return Some(Reason::LevelNone);
    }
    if decision.level < rule.needs {
        return Some(Reason::LevelTooLow {
            level: decision.level,
            needs: rule.needs,
        });
    }
    if wanted.difference(decision.omit_stages).is_empty() {
        return Some(Reason::StagesOmitted {
            needs: wanted.iter().map(|s| s.as_str().to_owned()).collect(),
        });
    }
    None
}

/// Calls `f` for every probe request the rule can match, with the stages at which it can
/// match it (given every body it needs) and the policy's decision for it.
pub(crate) fn for_each_probe(
    policy: &Policy,
    rule: &DetectionRule,
    f: &mut dyn FnMut(&Probe, StageSet, &Decision),
) {
    let candidates = Candidates::new(policy, &rule.condition);
    let mut probe = Probe::default();
    enumerate(&candidates, rule, policy, &mut probe, 0, f);
}

/// Marks a value that stands for "any value the condition and the policy do not name".
pub(crate) const OTHER: &str = "\u{1}other";

/// A request the analysis tries: the policy's attributes plus what the rule's fields see.
#[derive(Clone, Debug, Default)]
pub(crate) struct Probe {
    /// `None` until chosen; `Some(None)` is the request without user (failed
    /// authentication).
    pub(crate) user: Option<Option<String>>,
    pub(crate) group: Option<Option<String>>,
    pub(crate) verb: Option<String>,
    pub(crate) target: Option<Target>,
    pub(crate) namespace: Option<String>,
    /// (name the policy sees, name in the event's objectRef)
    pub(crate) name: Option<(String, String)>,
    stage: Option<Stage>,
    /// The level the fields are read at (`RequestResponse` while enumerating).
    level: Option<Level>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    NonResource {
        uri: String,
    },
    Resource {
        group: String,
        resource: String,
        subresource: String,
    },
}

impl Probe {
    fn attributes(&self) -> RequestAttributes {
        let user = match &self.user {
            Some(Some(name)) => Some(User {
                name: name.clone(),
                groups: self.group.clone().flatten().into_iter().collect(),
            }),
            _ => None,
        };
        let verb = self.verb.clone().unwrap_or_default();
        match &self.target {
            Some(Target::NonResource { uri }) => RequestAttributes {
                user,
                verb,
                path: uri.split('?').next().unwrap_or("").to_owned(),
                ..RequestAttributes::default()
            },
            Some(Target::Resource {
                group,
                resource,
                subresource,
            }) => {
                let namespace = self.namespace.clone().unwrap_or_default();
                let name = self.name.clone().map(|(policy, _)| policy).unwrap_or_default();
                RequestAttributes {
                    user,
                    verb,
                    path: self.uri(),
                    resource_request: true,
                    api_group: group.clone(),
                    resource: resource.clone(),
                    subresource: subresource.clone(),
                    namespace,
                    name,
                }
            }
            None => RequestAttributes {
                user,
                verb,
                ..RequestAttributes::default()
            },
        }
    }

    /// The request URI: the path for a non-resource request, a URL built from the
    /// attributes for a resource request.
    fn uri(&self) -> String {
        match &self.target {
            Some(Target::NonResource { uri }) => uri.clone(),
            Some(Target::Resource {
                group,
                resource,
                subresource,
            }) => {
                let mut uri = if group.is_empty() {
                    "/api/v1".to_owned()
                } else {
                    format!("/apis/{group}/v1")
                };
                let namespace = self.namespace.as_deref().unwrap_or("");
                let name = self.name.as_ref().map_or("", |(policy, _)| policy.as_str());
                if resource == "namespaces" {
                    uri.push_str("/namespaces");
                    if !name.is_empty() {
                        uri.push('/');
                        uri.push_str(name);
                    }
                } else {
                    if !namespace.is_empty() {
                        uri.push_str("/namespaces/");
                        uri.push_str(namespace);
                    }
                    uri.push('/');
                    uri.push_str(resource);
                    if !name.is_empty() {
                        uri.push('/');
                        uri.push_str(name);
                    }
                }
                if !subresource.is_empty() {
                    uri.push('/');
                    uri.push_str(subresource);
                }
                uri
            }
            None => String::new(),
        }
    }

    /// The stages a request like this one produces (a `Panic` is not expected).
    fn emitted(&self) -> StageSet {
        if matches!(self.user, Some(None)) {
            return StageSet::EMPTY.with(Stage::ResponseStarted);
        }
        let mut set = StageSet::EMPTY
            .with(Stage::RequestReceived)
            .with(Stage::ResponseComplete);
        let long_running = matches!(self.verb.as_deref(), Some("watch" | "proxy"))
            || matches!(&self.target, Some(Target::Resource { subresource, .. })
                if matches!(subresource.as_str(), "attach" | "exec" | "proxy" | "log" | "portforward"));
        if long_running {
            set.insert(Stage::ResponseStarted);
        }
        set
    }
}

/// A probe value for the reader: every "any other" part becomes `*`.
fn show(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find(OTHER) {
        out.push_str(&rest[..at]);
        out.push('*');
        rest = &rest[at + OTHER.len()..];
        // Drop the marker's kind suffix (`-user`, `-namespace`, ...).
        if let Some(tail) = rest.strip_prefix('-') {
            let len = tail.find(|c: char| !c.is_ascii_lowercase()).unwrap_or(tail.len());
            rest = &tail[len..];
        }
    }
    out.push_str(rest);
    out
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", show(self.verb.as_deref().unwrap_or("")))?;
        match &self.target {
            Some(Target::NonResource { uri }) => write!(f, " {}", show(uri))?,
            Some(Target::Resource {
                group,
                resource,
                subresource,
            }) => {
                let mut what = show(resource);
                if !subresource.is_empty() {
                    what = format!("{what}/{}", show(subresource));
                }
                if !group.is_empty() {
                    what = format!("{}/{what}", show(group));
                }
                write!(f, " {what}")?;
                if let Some((_, name)) = &self.name
                    && !name.is_empty()
                {
                    write!(f, " {}", show(name))?;
                }
                match self.namespace.as_deref() {
                    Some("") | None => {}
                    Some(ns) => write!(f, " in namespace {}", show(ns))?,
                }
            }
            None => {}
        }
        match &self.user {
            Some(Some(name)) => {
                write!(f, " by {}", show(name))?;
                if let Some(Some(group)) = &self.group {
                    write!(f, " (group {})", show(group))?;
                }
            }
            _ => write!(f, " without authenticated user")?,
        }
        Ok(())
    }
}

/// The values tried for each dimension.
struct Candidates {
    users: Vec<Option<String>>,
    groups: Vec<Option<String>>,
    verbs: Vec<String>,
    targets: Vec<Target>,
    namespaces: Vec<String>,
    names: Vec<String>,
}

pub(crate) const STANDARD_VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// Verbs only resource requests have.
const RESOURCE_ONLY_VERBS: &[&str] = &["list", "watch", "create", "update", "deletecollection"];

/// HTTP methods only non-resource requests have as verb.
const NON_RESOURCE_ONLY_VERBS: &[&str] = &["post", "put", "head"];

/// Which field of a probe a condition field reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Dim {
    User,
    Groups,
    Verb,
    Resource,
    Subresource,
    Namespace,
    Name,
    Group,
    Uri,
    Stage,
    /// `jevt.rawtime`: always a large number.
    RawTime,
    /// `ka.response.code`: 401 exactly for the requests without user (failed
    /// authentication), anything but 401 for the others.
    ResponseCode,
    /// Present unless the stage or level hides it; its value is not determined.
    Other,
}

fn dim_of(field: &str) -> Dim {
    let pointer = field
        .strip_prefix("jevt.value[")
        .or_else(|| field.strip_prefix("json.value["))
        .and_then(|rest| rest.strip_suffix(']'))
        .map(|p| p.trim_matches(|c| c == '"' || c == '\''))
        .map(|p| p.strip_prefix('/').unwrap_or(p));
    match pointer {
        Some("verb") => Dim::Verb,
        Some("user/username") => Dim::User,
        Some("user/groups") => Dim::Groups,
        Some("objectRef/resource") => Dim::Resource,
        Some("objectRef/subresource") => Dim::Subresource,
        Some("objectRef/namespace") => Dim::Namespace,
        Some("objectRef/name") => Dim::Name,
        Some("objectRef/apiGroup") => Dim::Group,
        Some("requestURI") => Dim::Uri,
        Some("stage") => Dim::Stage,
        Some("responseStatus/code") => Dim::ResponseCode,
        Some(_) => Dim::Other,
        None => match field {
            "ka.verb" => Dim::Verb,
            "ka.user.name" => Dim::User,
            "ka.user.groups" => Dim::Groups,
            "ka.target.resource" => Dim::Resource,
            "ka.target.subresource" => Dim::Subresource,
            "ka.target.namespace" => Dim::Namespace,
            "ka.target.name" | "ka.req.configmap.name" => Dim::Name,
            "ka.uri" => Dim::Uri,
            "ka.stage" => Dim::Stage,
            "jevt.rawtime" | "json.rawtime" => Dim::RawTime,
            "ka.response.code" => Dim::ResponseCode,
            _ => Dim::Other,
        },
    }
}

/// Fields that have no value at `RequestReceived`: the response status, annotations written
/// by authorization and admission, the impersonated user.
fn absent_at_request_received(field: &str) -> bool {
    field.starts_with("ka.response.")
        || field.starts_with("ka.auth.")
        || field.starts_with("ka.impuser.")
        || field.starts_with("ka.validations.")
        || field.starts_with("ka.security.")
        || field.contains("[/responseStatus")
        || field.contains("[responseStatus")
        || field.contains("[/annotations")
        || field.contains("[annotations")
        || field.contains("[/impersonatedUser")
}

impl Candidates {
    fn new(policy: &Policy, condition: &Condition) -> Candidates {
        let mut literals: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        let mut prefixes: BTreeMap<&'static str, BTreeSet<String>> = BTreeMap::new();
        collect_literals(condition, &mut literals, &mut prefixes);
        let get =
            |m: &BTreeMap<&'static str, BTreeSet<String>>, k: &str| m.get(k).cloned().unwrap_or_default();

        let mut users: BTreeSet<String> = get(&literals, "user");
        users.extend(get(&prefixes, "user").into_iter().map(|p| format!("{p}{OTHER}")));
        let mut groups: BTreeSet<String> = get(&literals, "groups");
        let mut verbs: BTreeSet<String> = STANDARD_VERBS
            .iter()
            .chain(NON_RESOURCE_ONLY_VERBS)
            .map(|v| (*v).to_owned())
            .collect();
        verbs.extend(get(&literals, "verb"));
        let mut resources: BTreeSet<String> = get(&literals, "resource");
        let mut subresources: BTreeSet<String> = get(&literals, "subresource");
        let mut api_groups: BTreeSet<String> = get(&literals, "group");
        let mut namespaces: BTreeSet<String> = get(&literals, "namespace");
        namespaces.extend(
            get(&prefixes, "namespace")
                .into_iter()
                .map(|p| format!("{p}{OTHER}")),
        );
        let mut names: BTreeSet<String> = get(&literals, "name");
        names.extend(get(&prefixes, "name").into_iter().map(|p| format!("{p}{OTHER}")));
        let mut uris: BTreeSet<String> = get(&literals, "uri");
        uris.extend(get(&prefixes, "uri").into_iter().map(|p| format!("{p}{OTHER}")));

        for rule in &policy.rules {
            users.extend(rule.users.iter().cloned());
            groups.extend(rule.user_groups.iter().cloned());
            verbs.extend(rule.verbs.iter().cloned());
            namespaces.extend(rule.namespaces.iter().cloned());
            for entry in &rule.resources {
                if entry.group != "*" {
                    api_groups.insert(entry.group.clone());
                }
                names.extend(entry.resource_names.iter().cloned());
                for pattern in &entry.resources {
                    let (resource, sub) = pattern.split_once('/').unwrap_or((pattern, ""));
                    if resource != "*" {
                        resources.insert(resource.to_owned());
                    }
                    if !sub.is_empty() && sub != "*" {
                        subresources.insert(sub.to_owned());
                    }
                }
            }
            for url in &rule.non_resource_urls {
                if url == "*" {
                    continue;
                }
                if let Some(prefix) = url.strip_suffix('*') {
                    let prefix = prefix.trim_end_matches('*');
                    uris.insert(prefix.to_owned());
                    uris.insert(format!("{prefix}{OTHER}"));
                } else {
                    uris.insert(url.clone());
                }
            }
        }
        users.insert(format!("{OTHER}-user"));
        // Members of these groups have names of a known form (see `consistent`).
        for (group, prefix) in GROUP_NAME_FORMS {
            if groups.contains(*group) {
                users.insert(format!("{prefix}{OTHER}"));
            }
        }
        let mut users: Vec<Option<String>> = users.into_iter().map(Some).collect();
        users.push(None);
        let mut groups: Vec<Option<String>> = groups.into_iter().map(Some).collect();
        groups.push(None);
        resources.insert(format!("{OTHER}-resource"));
        api_groups.insert(String::new());
        api_groups.insert(format!("{OTHER}-group"));
        namespaces.insert(format!("{OTHER}-namespace"));
        names.insert(format!("{OTHER}-name"));
        uris.retain(|u| u.starts_with('/') || u.starts_with(OTHER));
        uris.insert(format!("/{OTHER}-path"));

        let mut targets: Vec<Target> = uris.into_iter().map(|uri| Target::NonResource { uri }).collect();
        for resource in &resources {
            let groups_for: Vec<String> = match known_groups(resource) {
                Some(known) => known.iter().map(|g| (*g).to_owned()).collect(),
                None => api_groups.iter().cloned().collect(),
            };
            let mut subs: BTreeSet<String> = subresources.clone();
            subs.insert(String::new());
            subs.insert(format!("{OTHER}-subresource"));
            for group in &groups_for {
                for sub in &subs {
                    targets.push(Target::Resource {
                        group: group.clone(),
                        resource: resource.clone(),
                        subresource: sub.clone(),
                    });
                }
            }
        }
        Candidates {
            users,
            groups,
            verbs: verbs.into_iter().collect(),
            targets,
            namespaces: namespaces.into_iter().collect(),
            names: names.into_iter().collect(),
        }
    }
}

/// Groups whose members' names have a fixed form: kubelets are `system:node:<node>`,
/// service accounts `system:serviceaccount:<namespace>:<name>`, the anonymous user
/// `system:anonymous`.
const GROUP_NAME_FORMS: &[(&str, &str)] = &[
    ("system:nodes", "system:node:"),
    ("system:serviceaccounts", "system:serviceaccount:"),
    ("system:unauthenticated", "system:anonymous"),
];

/// False for a user name and group that no real identity combines.
fn consistent(name: &str, group: Option<&str>) -> bool {
    let Some(group) = group else { return true };
    for (known, prefix) in GROUP_NAME_FORMS {
        let member = if *known == "system:serviceaccounts" {
            group.starts_with(known)
        } else {
            group == *known
        };
        if member && !name.starts_with(prefix) {
            return false;
        }
    }
    // The anonymous user is only in system:unauthenticated.
    !(name == "system:anonymous" && group != "system:unauthenticated")
}

/// Literals compared with each dimension, and prefixes tested with `startswith`.
fn collect_literals(
    condition: &Condition,
    literals: &mut BTreeMap<&'static str, BTreeSet<String>>,
    prefixes: &mut BTreeMap<&'static str, BTreeSet<String>>,
) {
    match condition {
        Condition::And(children) | Condition::Or(children) => {
            for child in children {
                collect_literals(child, literals, prefixes);
            }
        }
        Condition::Not(child) => collect_literals(child, literals, prefixes),
        Condition::Opaque { .. } => {}
        Condition::Check {
            field, op, values, ..
        } => {
            let key = match dim_of(field) {
                Dim::User => "user",
                Dim::Groups => "groups",
                Dim::Verb => "verb",
                Dim::Resource => "resource",
                Dim::Subresource => "subresource",
                Dim::Namespace => "namespace",
                Dim::Name => "name",
                Dim::Group => "group",
                Dim::Uri => "uri",
                _ => return,
            };
            match op {
                CheckOp::StartsWith => {
                    prefixes.entry(key).or_default().extend(values.iter().cloned());
                }
                CheckOp::Eq | CheckOp::Ne | CheckOp::In | CheckOp::Intersects => {
                    literals.entry(key).or_default().extend(values.iter().cloned());
                }
                _ => {}
            }
        }
    }
}

/// The API groups of well-known built-in resources (so that a rule on `deployments` is
/// checked against the policy's `apps` entries); `None` for resources not in the table.
fn known_groups(resource: &str) -> Option<&'static [&'static str]> {
    Some(match resource {
        "pods"
        | "services"
        | "secrets"
        | "configmaps"
        | "serviceaccounts"
        | "namespaces"
        | "nodes"
        | "endpoints"
        | "persistentvolumes"
        | "persistentvolumeclaims"
        | "replicationcontrollers"
        | "resourcequotas"
        | "limitranges"
        | "podtemplates"
        | "componentstatuses"
        | "bindings" => &[""],
        "events" => &["", "events.k8s.io"],
        "deployments" | "daemonsets" | "statefulsets" | "replicasets" | "controllerrevisions" => &["apps"],
        "jobs" | "cronjobs" => &["batch"],
        "roles" | "rolebindings" | "clusterroles" | "clusterrolebindings" => &["rbac.authorization.k8s.io"],
        "ingresses" | "networkpolicies" | "ingressclasses" => &["networking.k8s.io"],
        "tokenreviews" => &["authentication.k8s.io"],
        "subjectaccessreviews"
        | "selfsubjectaccessreviews"
        | "localsubjectaccessreviews"
        | "selfsubjectrulesreviews" => &["authorization.k8s.io"],
        "certificatesigningrequests" => &["certificates.k8s.io"],
        "leases" => &["coordination.k8s.io"],
        "customresourcedefinitions" => &["apiextensions.k8s.io"],
        "mutatingwebhookconfigurations"
        | "validatingwebhookconfigurations"
        | "validatingadmissionpolicies"
        | "validatingadmissionpolicybindings" => &["admissionregistration.k8s.io"],
        "storageclasses" | "volumeattachments" | "csidrivers" | "csinodes" | "csistoragecapacities" => {
            &["storage.k8s.io"]
        }
        "priorityclasses" => &["scheduling.k8s.io"],
        "poddisruptionbudgets" => &["policy"],
        "horizontalpodautoscalers" => &["autoscaling"],
        "apiservices" => &["apiregistration.k8s.io"],
        "endpointslices" => &["discovery.k8s.io"],
        "runtimeclasses" => &["node.k8s.io"],
        "flowschemas" | "prioritylevelconfigurations" => &["flowcontrol.apiserver.k8s.io"],
        _ => return None,
    })
}

/// Resources that are not namespaced.
fn cluster_scoped(resource: &str) -> bool {
    matches!(
        resource,
        "nodes"
            | "namespaces"
            | "persistentvolumes"
            | "componentstatuses"
            | "clusterroles"
            | "clusterrolebindings"
            | "certificatesigningrequests"
            | "customresourcedefinitions"
            | "mutatingwebhookconfigurations"
            | "validatingwebhookconfigurations"
            | "validatingadmissionpolicies"
            | "validatingadmissionpolicybindings"
            | "storageclasses"
            | "volumeattachments"
            | "csidrivers"
            | "csinodes"
            | "priorityclasses"
            | "apiservices"
            | "runtimeclasses"
            | "flowschemas"
            | "prioritylevelconfigurations"
            | "ingressclasses"
            | "tokenreviews"
            | "subjectaccessreviews"
            | "selfsubjectaccessreviews"
            | "selfsubjectrulesreviews"
    )
}

/// Three-valued logic: `Some(b)` known, `None` unknown.
type Tri = Option<bool>;

fn and(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Some(false), _) | (_, Some(false)) => Some(false),
        (Some(true), Some(true)) => Some(true),
        _ => None,
    }
}

fn or(a: Tri, b: Tri) -> Tri {
    match (a, b) {
        (Some(true), _) | (_, Some(true)) => Some(true),
        (Some(false), Some(false)) => Some(false),
        _ => None,
    }
}

/// The condition on a (possibly partial) probe.
fn evaluate(condition: &Condition, probe: &Probe) -> Tri {
    match condition {
        Condition::And(children) => {
            let mut acc = Some(true);
            for child in children {
                acc = and(acc, evaluate(child, probe));
                if acc == Some(false) {
                    break;
                }
            }
            acc
        }
        Condition::Or(children) => {
            let mut acc = Some(false);
            for child in children {
                acc = or(acc, evaluate(child, probe));
                if acc == Some(true) {
                    break;
                }
            }
            acc
        }
        Condition::Not(child) => evaluate(child, probe).map(|b| !b),
        Condition::Opaque { needs } => {
            if hidden_by_level(*needs, probe) {
                // Fields without a value make every comparison false.
                Some(false)
            } else {
                None
            }
        }
        Condition::Check {
            field,
            op,
            values,
            needs,
        } => check(field, *op, values, *needs, probe),
    }
}

/// True when the fields of level `needs` have no value in the probe's event.
fn hidden_by_level(needs: Level, probe: &Probe) -> bool {
    let Some(level) = probe.level else { return false };
    if level < needs {
        return true;
    }
    match (needs, probe.stage) {
        (Level::Request, Some(Stage::RequestReceived)) => true,
        (Level::RequestResponse, Some(stage)) => stage != Stage::ResponseComplete,
        _ => false,
    }
}

/// What a field holds in a probe: `Err(())` when the probe does not determine it yet,
/// `Ok(None)` when it has no value, `Ok(Some(values))` otherwise.
type FieldValue = Result<Option<Vec<String>>, ()>;

fn field_value(field: &str, needs: Level, probe: &Probe) -> FieldValue {
    if hidden_by_level(needs, probe) {
        return Ok(None);
    }
    if probe.stage == Some(Stage::RequestReceived) && absent_at_request_received(field) {
        return Ok(None);
    }
    let one = |v: &str| {
        if v.is_empty() {
            Ok(None)
        } else {
            Ok(Some(vec![v.to_owned()]))
        }
    };
    if field.starts_with("ka.impuser.") || field.contains("[/impersonatedUser") {
        return if impersonation_possible(probe)? {
            Err(())
        } else {
            Ok(None)
        };
    }
    match dim_of(field) {
        Dim::Verb => probe.verb.as_deref().map_or(Err(()), one),
        Dim::User => match &probe.user {
            None => Err(()),
            Some(None) => Ok(None),
            Some(Some(name)) => one(name),
        },
        Dim::Groups => match (&probe.user, &probe.group) {
            (Some(None), _) => Ok(None),
            (_, None) => Err(()),
            (_, Some(None)) => Ok(None),
            (_, Some(Some(group))) => one(group),
        },
        Dim::Uri => {
            if probe.target.is_none()
                || (matches!(probe.target, Some(Target::Resource { .. })) && probe.name.is_none())
            {
                return Err(());
            }
            one(&probe.uri())
        }
        Dim::Resource => match target(probe)? {
            Some(Target::Resource { resource, .. }) => one(resource),
            _ => Ok(None),
        },
        Dim::Subresource => match target(probe)? {
            Some(Target::Resource { subresource, .. }) => one(subresource),
            _ => Ok(None),
        },
        Dim::Group => match target(probe)? {
            Some(Target::Resource { group, .. }) => one(group),
            _ => Ok(None),
        },
        Dim::Namespace => match target(probe)? {
            Some(Target::Resource { .. }) => probe.namespace.as_deref().map_or(Err(()), one),
            _ => Ok(None),
        },
        Dim::Name => match target(probe)? {
            Some(Target::Resource { .. }) => match &probe.name {
                None => Err(()),
                // A create's name comes from its body: not at RequestReceived.
                Some((policy, event)) if policy.is_empty() && !event.is_empty() => {
                    if probe.stage == Some(Stage::RequestReceived) {
                        Ok(None)
                    } else if probe.stage.is_none() {
                        Err(())
                    } else {
                        one(event)
                    }
                }
                Some((_, event)) => one(event),
            },
            _ => Ok(None),
        },
        Dim::Stage => probe.stage.map_or(Err(()), |s| one(s.as_str())),
        Dim::RawTime => Ok(Some(vec!["1700000000000000000".to_owned()])),
        Dim::ResponseCode => match &probe.user {
            None => Err(()),
            Some(None) => Ok(Some(vec!["401".to_owned()])),
            Some(Some(_)) => Ok(Some(vec![format!("{OTHER}-code")])),
        },
        Dim::Other => Err(()),
    }
}

/// Whether the probe's request can carry impersonation headers: not when it has no user,
/// not for the control plane's own identities and kubelets (they are not granted
/// `impersonate`), not for health checks, metrics, version and OpenAPI downloads.
/// `Err(())` while the probe does not determine it.
fn impersonation_possible(probe: &Probe) -> Result<bool, ()> {
    let Some(user) = &probe.user else { return Err(()) };
    let Some(name) = user else { return Ok(false) };
    if name.starts_with("system:")
        && !name.starts_with("system:serviceaccount:")
        && name != "system:anonymous"
    {
        return Ok(false);
    }
    match &probe.group {
        None => return Err(()),
        Some(Some(group)) if group == "system:nodes" => return Ok(false),
        _ => {}
    }
    match &probe.target {
        None => Err(()),
        Some(Target::NonResource { uri }) => {
            let noise = [
                "/healthz", "/livez", "/readyz", "/metrics", "/openapi", "/version",
            ];
            Ok(!noise.iter().any(|p| uri.starts_with(p)))
        }
        Some(Target::Resource { .. }) => Ok(true),
    }
}

/// The probe's target, or `Err(())` while it is not chosen.
fn target(probe: &Probe) -> Result<Option<&Target>, ()> {
    probe.target.as_ref().map(Some).ok_or(())
}

fn check(field: &str, op: CheckOp, literals: &[String], needs: Level, probe: &Probe) -> Tri {
    // A positive test for an impersonation message ("cannot impersonate") needs a request
    // that can carry impersonation headers.
    if literals.iter().any(|l| l.contains("impersonat"))
        && matches!(
            op,
            CheckOp::Eq | CheckOp::In | CheckOp::Contains | CheckOp::IContains | CheckOp::StartsWith
        )
        && impersonation_possible(probe) == Ok(false)
    {
        return Some(false);
    }
    let values = match field_value(field, needs, probe) {
        Err(()) => return None,
        Ok(None) => return Some(false),
        Ok(Some(values)) => values,
    };
    // An "other" value equals no literal and starts with none but its own prefix.
    // An "other" response code is unknown, except that it is not 401.
    if values.iter().any(|v| v == &format!("{OTHER}-code")) {
        let only_401 = !literals.is_empty() && literals.iter().all(|l| l == "401");
        return match op {
            CheckOp::Exists => Some(true),
            CheckOp::Eq | CheckOp::In | CheckOp::Intersects if only_401 => Some(false),
            CheckOp::Ne if only_401 => Some(true),
            _ => None,
        };
    }
    let is = |v: &str, l: &str| v == l;
    let any = |pred: &dyn Fn(&str) -> Tri| -> Tri {
        let mut acc = Some(false);
        for v in &values {
            acc = or(acc, pred(v));
        }
        acc
    };
    match op {
        CheckOp::Exists => Some(true),
        CheckOp::Eq => any(&|v| Some(literals.iter().any(|l| is(v, l)))),
        CheckOp::Ne => any(&|v| Some(!literals.iter().any(|l| is(v, l)))),
        CheckOp::In => Some(values.iter().all(|v| literals.iter().any(|l| is(v, l)))),
        CheckOp::Intersects => Some(values.iter().any(|v| literals.iter().any(|l| is(v, l)))),
        CheckOp::StartsWith => any(&|v| Some(literals.iter().any(|l| v.starts_with(l.as_str())))),
        CheckOp::EndsWith
        | CheckOp::Contains
        | CheckOp::IContains
        | CheckOp::Lt
        | CheckOp::Le
        | CheckOp::Gt
        | CheckOp::Ge => any(&|v| {
            if v.contains(OTHER) {
                return None;
            }
            let l = literals.first().map(String::as_str).unwrap_or("");
            Some(match op {
                CheckOp::EndsWith => literals.iter().any(|l| v.ends_with(l.as_str())),
                CheckOp::Contains => literals.iter().any(|l| v.contains(l.as_str())),
                CheckOp::IContains => literals
                    .iter()
                    .any(|l| v.to_lowercase().contains(&l.to_lowercase())),
                CheckOp::Lt => v < l,
                CheckOp::Le => v <= l,
                CheckOp::Gt => v > l,
                _ => v >= l,
            })
        }),
        CheckOp::Other => None,
    }
}

/// Enumerates the dimensions in order, pruning as soon as the condition is false.
fn enumerate(
    candidates: &Candidates,
    rule: &DetectionRule,
    policy: &Policy,
    probe: &mut Probe,
    depth: usize,
    f: &mut dyn FnMut(&Probe, StageSet, &Decision),
) {
    if evaluate(&rule.condition, probe) == Some(false) {
        return;
    }
    match depth {
        0 => {
            for user in &candidates.users {
                probe.user = Some(user.clone());
                enumerate(candidates, rule, policy, probe, 1, f);
            }
            probe.user = None;
        }
        1 => {
            if matches!(probe.user, Some(None)) {
                probe.group = Some(None);
                enumerate(candidates, rule, policy, probe, 2, f);
            } else {
                let name = probe.user.clone().flatten().unwrap_or_default();
                for group in &candidates.groups {
                    if !consistent(&name, group.as_deref()) {
                        continue;
                    }
                    probe.group = Some(group.clone());
                    enumerate(candidates, rule, policy, probe, 2, f);
                }
            }
            probe.group = None;
        }
        2 => {
            for verb in &candidates.verbs {
                probe.verb = Some(verb.clone());
                enumerate(candidates, rule, policy, probe, 3, f);
            }
            probe.verb = None;
        }
        3 => {
            let verb = probe.verb.clone().unwrap_or_default();
            for target in &candidates.targets {
                // Non-resource requests carry the HTTP method, resource requests a
                // Kubernetes verb.
                let resource = matches!(target, Target::Resource { .. });
                if (resource && NON_RESOURCE_ONLY_VERBS.contains(&verb.as_str()))
                    || (!resource && RESOURCE_ONLY_VERBS.contains(&verb.as_str()))
                {
                    continue;
                }
                probe.target = Some(target.clone());
                enumerate(candidates, rule, policy, probe, 4, f);
            }
            probe.target = None;
        }
        4 => {
            let verb = probe.verb.clone().unwrap_or_default();
            match probe.target.clone() {
                Some(Target::Resource {
                    resource,
                    subresource,
                    ..
                }) => {
                    for (namespace, policy_name, event_name) in
                        places(candidates, &verb, &resource, &subresource)
                    {
                        probe.namespace = Some(namespace);
                        probe.name = Some((policy_name, event_name));
                        enumerate(candidates, rule, policy, probe, 5, f);
                    }
                    probe.namespace = None;
                    probe.name = None;
                }
                _ => enumerate(candidates, rule, policy, probe, 5, f),
            }
        }
        _ => {
            let decision = policy.evaluate(&probe.attributes());
            let mut wanted = StageSet::EMPTY;
            probe.level = Some(Level::RequestResponse);
            for stage in probe.emitted().iter() {
                probe.stage = Some(stage);
                if evaluate(&rule.condition, probe) != Some(false) {
                    wanted.insert(stage);
                }
            }
            probe.stage = None;
            probe.level = None;
            if !wanted.is_empty() {
                f(probe, wanted, &decision);
            }
        }
    }
}

/// The (namespace, name the policy sees, name in the event) combinations a request on
/// `resource` with `verb` can have.
fn places(
    candidates: &Candidates,
    verb: &str,
    resource: &str,
    subresource: &str,
) -> Vec<(String, String, String)> {
    let named: Vec<&String> = candidates.names.iter().collect();
    let mut out = Vec::new();
    let collection =
        matches!(verb, "list" | "watch" | "deletecollection") || (verb == "create" && subresource.is_empty());
    if resource == "namespaces" {
        if collection {
            let names: Vec<&String> = if verb == "create" {
                named.clone()
            } else {
                Vec::new()
            };
            out.push((String::new(), String::new(), String::new()));
            for n in names {
                out.push((String::new(), String::new(), n.clone()));
            }
        } else {
            for n in named {
                out.push((n.clone(), n.clone(), n.clone()));
            }
        }
        return out;
    }
    let namespaces: Vec<String> = if cluster_scoped(resource) {
        vec![String::new()]
    } else {
        let mut list: Vec<String> = candidates
            .namespaces
            .iter()
            .filter(|n| !n.is_empty())
            .cloned()
            .collect();
        if matches!(verb, "list" | "watch" | "deletecollection") || known_groups(resource).is_none() {
            list.push(String::new());
        }
        list
    };
    for namespace in namespaces {
        match verb {
            "list" | "watch" => {
                out.push((namespace.clone(), String::new(), String::new()));
                for n in &named {
                    out.push((namespace.clone(), (*n).clone(), (*n).clone()));
                }
            }
            "deletecollection" => out.push((namespace, String::new(), String::new())),
            "create" if subresource.is_empty() => {
                for n in &named {
                    out.push((namespace.clone(), String::new(), (*n).clone()));
                }
            }
            _ => {
                for n in &named {
                    out.push((namespace.clone(), (*n).clone(), (*n).clone()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
