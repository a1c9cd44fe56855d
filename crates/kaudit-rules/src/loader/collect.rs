//! Reading rules files into one collection: each YAML item (`required_engine_version`,
//! `required_plugin_versions`, `list`, `macro`, `rule`) is checked and applied in file order,
//! with Falco's define / append / override / enable semantics (see
//! `shared/reference/falco-rules.md` sections 2 and 3).
//!
//! Every define and append of a list, macro or rule takes the next number of one shared
//! counter: an item's `index` is the number of its first definition (its place in the
//! evaluation order, which never changes), its `visibility` the number of its latest
//! (re)definition or append (what it may refer to).

use std::collections::{BTreeSet, HashMap};

use kaudit_model::Priority;
use kaudit_yaml::{Node, Style, Value};

use super::place::{Files, Place, PlacedText};
use crate::error::{LoadError, LoadErrorKind, Warning};

/// The engine version kaudit implements (Falco 0.44.1).
pub(crate) const ENGINE_VERSION: Version = Version {
    major: 0,
    minor: 62,
    patch: 0,
};

/// The plugins kaudit stands in for, with their versions.
pub(crate) const PLUGINS: [(&str, Version); 2] = [
    (
        "k8saudit",
        Version {
            major: 0,
            minor: 18,
            patch: 0,
        },
    ),
    (
        "json",
        Version {
            major: 0,
            minor: 7,
            patch: 4,
        },
    ),
];

/// The only source kaudit evaluates.
pub(crate) const K8S_AUDIT: &str = "k8s_audit";

/// A semantic version `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    /// Reads `x.y.z`; anything after the patch number's digits is ignored, as Falco does.
    fn parse(text: &str) -> Option<Version> {
        let mut parts = text.splitn(3, '.');
        let whole = |s: &str| -> Option<u32> {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        };
        let major = whole(parts.next()?)?;
        let minor = whole(parts.next()?)?;
        let patch_text = parts.next()?;
        let digits = patch_text.bytes().take_while(u8::is_ascii_digit).count();
        let patch = whole(&patch_text[..digits])?;
        Some(Version { major, minor, patch })
    }

    /// True when a component of this version satisfies a requirement of `required`: same
    /// major version, and not older.
    pub fn satisfies(self, required: Version) -> bool {
        self.major == required.major && self >= required
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// A list as collected.
#[derive(Clone, Debug)]
pub(crate) struct ListDef {
    pub name: String,
    pub items: Vec<String>,
    pub index: u32,
    pub visibility: u32,
    pub place: Place,
}

/// A macro as collected.
#[derive(Clone, Debug)]
pub(crate) struct MacroDef {
    pub name: String,
    pub cond: PlacedText,
    pub index: u32,
    pub visibility: u32,
    pub place: Place,
}

/// A scalar-or-list value of an exception (`fields`, `comps`, one of `values`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Entry {
    pub is_list: bool,
    pub item: String,
    pub items: Vec<Entry>,
}

impl Entry {
    fn scalar(item: &str) -> Entry {
        Entry {
            is_list: false,
            item: item.to_owned(),
            items: Vec::new(),
        }
    }

    /// Falco's validity: a non-empty scalar or a non-empty list.
    pub fn is_valid(&self) -> bool {
        if self.is_list {
            !self.items.is_empty()
        } else {
            !self.item.is_empty()
        }
    }
}

/// One exception of a rule.
#[derive(Clone, Debug)]
pub(crate) struct ExceptionDef {
    pub name: String,
    pub fields: Entry,
    pub comps: Entry,
    pub values: Vec<Entry>,
    pub place: Place,
}

/// A rule as collected.
#[derive(Clone, Debug)]
pub(crate) struct RuleDef {
    pub name: String,
    pub cond: PlacedText,
    pub output: PlacedText,
    pub desc: String,
    pub priority: Priority,
    pub source: String,
    pub source_known: bool,
    pub enabled: bool,
    pub tags: BTreeSet<String>,
    pub exceptions: Vec<ExceptionDef>,
    pub skip_if_unknown_filter: bool,
    pub index: u32,
    pub visibility: u32,
    pub place: Place,
}

/// Everything read so far from the rules files, in definition order.
#[derive(Default)]
pub(crate) struct Collection {
    pub lists: Vec<ListDef>,
    list_names: HashMap<String, usize>,
    pub macros: Vec<MacroDef>,
    macro_names: HashMap<String, usize>,
    pub rules: Vec<RuleDef>,
    rule_names: HashMap<String, usize>,
    counter: u32,
    /// `required_plugin_versions` groups: alternatives (name, version) and where written.
    pub plugin_requirements: Vec<(Vec<(String, Version)>, Place)>,
    pub warnings: Vec<Warning>,
    /// Sources already warned about as not evaluated.
    warned_sources: BTreeSet<String>,
}

impl Collection {
    /// The index in [`Collection::macros`] of the macro named `name`.
    pub fn macro_index(&self, name: &str) -> Option<usize> {
        self.macro_names.get(name).copied()
    }

    fn next_id(&mut self) -> u32 {
        let id = self.counter;
        self.counter = self.counter.saturating_add(1);
        id
    }

    /// Reads one rules file into the collection.
    pub fn read_file(&mut self, files: Files<'_>, file: usize) -> Result<(), LoadError> {
        let text = files.sources.get(file).map_or("", |s| s.text.as_str());
        let docs = parse_yaml(text).map_err(|e| {
            files.error(
                LoadErrorKind::Yaml,
                Place { file, span: e.span },
                None,
                format!("invalid YAML: {}", e.message),
            )
        })?;
        let mut reader = Reader {
            files,
            file,
            col: self,
            pending: Default::default(),
        };
        for doc in &docs {
            if doc.is_null() {
                continue;
            }
            let place = Place { file, span: doc.span };
            let Some(items) = doc.as_seq() else {
                let message = if doc.as_map().is_some() {
                    "Rules content is not yaml array of objects"
                } else {
                    "Rules content is not yaml"
                };
                return Err(files.error(LoadErrorKind::Validate, place, None, message));
            };
            for item in items {
                if !item.is_null() {
                    let result = reader.read_item(item);
                    let pending = reader.pending.take();
                    reader.col.warnings.extend(pending);
                    result?;
                }
            }
        }
        Ok(())
    }
}

/// Parses YAML like yaml-cpp (Falco's YAML library) reads rules files. One difference with
/// the stricter YAML parser underneath is handled here: a flow sequence or mapping whose
/// closing bracket stands alone on a line indented no deeper than its key (falco_rules.yaml
/// 1.0.1 has `items: [` ... `  ]`). When the parser reports bad indentation at such a line,
/// the line is indented like the previous one (indentation means nothing inside brackets)
/// and parsing is retried.
fn parse_yaml(text: &str) -> Result<Vec<Node>, kaudit_yaml::YamlError> {
    /// Each fix costs a parse of the whole text: give up after this many.
    const MAX_FIXES: usize = 64;
    let mut current = std::borrow::Cow::Borrowed(text);
    let mut fixes = 0;
    loop {
        let err = match kaudit_yaml::parse(&current) {
            Ok(docs) => return Ok(docs),
            Err(e) => e,
        };
        fixes += 1;
        if err.message != "invalid indentation" || fixes > MAX_FIXES {
            return Err(err);
        }
        let lines: Vec<&str> = current.split('\n').collect();
        let Some(i) = err.span.line.checked_sub(1).filter(|&i| i < lines.len()) else {
            return Err(err);
        };
        let trimmed = lines[i].trim();
        if !matches!(trimmed, "]" | "}" | "]," | "},") {
            return Err(err);
        }
        let indent_of = |l: &str| l.len() - l.trim_start_matches(' ').len();
        let Some(prev) = lines[..i].iter().rev().find(|l| !l.trim().is_empty()) else {
            return Err(err);
        };
        if indent_of(prev) <= indent_of(lines[i]) {
            return Err(err);
        }
        let fixed = format!(
            "{}{}",
            " ".repeat(indent_of(prev)),
            lines[i].trim_start_matches(' ')
        );
        let mut patched = lines.iter().map(|l| l.to_string()).collect::<Vec<_>>();
        patched[i] = fixed;
        current = std::borrow::Cow::Owned(patched.join("\n"));
    }
}

struct Reader<'c, 'f> {
    files: Files<'f>,
    file: usize,
    col: &'c mut Collection,
    /// Warnings found by methods that only read (moved to the collection after each item).
    pending: std::cell::RefCell<Vec<Warning>>,
}

/// The keys each kind of item may have.
const LIST_KEYS: &[&str] = &["list", "items", "append", "override"];
const MACRO_KEYS: &[&str] = &["macro", "condition", "append", "override"];
const RULE_KEYS: &[&str] = &[
    "rule",
    "desc",
    "condition",
    "output",
    "priority",
    "source",
    "enabled",
    "tags",
    "exceptions",
    "capture",
    "capture_duration",
    "warn_evttypes",
    "skip-if-unknown-filter",
    "append",
    "override",
];
const RULE_APPENDABLE: &[&str] = &["condition", "output", "desc", "tags", "exceptions"];
const RULE_REPLACEABLE: &[&str] = &[
    "condition",
    "output",
    "desc",
    "priority",
    "capture",
    "capture_duration",
    "tags",
    "exceptions",
    "enabled",
    "warn_evttypes",
    "skip-if-unknown-filter",
];

/// What an `override` mapping asks for.
#[derive(Default)]
struct Overrides {
    append: BTreeSet<String>,
    replace: BTreeSet<String>,
}

impl Overrides {
    fn is_empty(&self) -> bool {
        self.append.is_empty() && self.replace.is_empty()
    }
}

/// The values of a rule's keys, as read from one item (absent keys are `None`).
#[derive(Default)]
struct RuleFields {
    cond: Option<PlacedText>,
    output: Option<PlacedText>,
    desc: Option<String>,
    priority: Option<Priority>,
    tags: Option<BTreeSet<String>>,
    exceptions: Option<Vec<ExceptionDef>>,
    enabled: Option<bool>,
    skip_if_unknown_filter: Option<bool>,
    other: bool,
}

impl RuleFields {
    fn has_any_value(&self) -> bool {
        self.cond.is_some()
            || self.output.is_some()
            || self.desc.is_some()
            || self.priority.is_some()
            || self.tags.is_some()
            || self.exceptions.is_some()
            || self.enabled.is_some()
            || self.skip_if_unknown_filter.is_some()
            || self.other
    }
}

impl Reader<'_, '_> {
    /// Where a node starts; for a mapping, where its first key is written.
    fn place(&self, node: &Node) -> Place {
        let span = match node.as_map() {
            Some([(first, _), ..]) => first.span,
            _ => node.span,
        };
        Place {
            file: self.file,
            span,
        }
    }

    fn err(&self, node: &Node, item: Option<&str>, message: impl Into<String>) -> LoadError {
        self.files
            .error(LoadErrorKind::Validate, self.place(node), item, message)
    }

    fn warn(&mut self, node: &Node, item: Option<&str>, message: impl Into<String>) {
        let w = self.files.warning(self.place(node), item, message);
        self.col.warnings.push(w);
    }

    /// The scalar value of a required key.
    fn scalar<'n>(&self, item: &'n Node, key: &str, what: Option<&str>) -> Result<&'n Node, LoadError> {
        match self.optional_scalar(item, key, what)? {
            Some(v) => Ok(v),
            None => Err(self.err(item, what, format!("Item has no mapping for key '{key}'"))),
        }
    }

    /// The scalar value of an optional key: absent is `None`; null, non-scalar and empty are
    /// errors.
    fn optional_scalar<'n>(
        &self,
        item: &'n Node,
        key: &str,
        what: Option<&str>,
    ) -> Result<Option<&'n Node>, LoadError> {
        let Some(v) = item.get(key) else { return Ok(None) };
        if v.is_null() {
            return Err(self.err(v, what, format!("Mapping for key '{key}' is empty")));
        }
        match v.as_scalar() {
            None => Err(self.err(v, what, format!("Value for key '{key}' is not a scalar value"))),
            Some("") => Err(self.err(v, what, format!("Value for key '{key}' must be non-empty"))),
            Some(_) => Ok(Some(v)),
        }
    }

    fn string(&self, item: &Node, key: &str, what: Option<&str>) -> Result<String, LoadError> {
        Ok(self
            .scalar(item, key, what)?
            .as_scalar()
            .unwrap_or_default()
            .to_owned())
    }

    fn optional_bool(&self, item: &Node, key: &str, what: Option<&str>) -> Result<Option<bool>, LoadError> {
        let Some(v) = self.optional_scalar(item, key, what)? else {
            return Ok(None);
        };
        match parse_bool(v.as_scalar().unwrap_or_default()) {
            Some(b) => Ok(Some(b)),
            None => Err(self.err(
                v,
                what,
                format!("Can't decode YAML scalar value for key '{key}' as a boolean"),
            )),
        }
    }

    fn placed(&self, node: &Node) -> PlacedText {
        PlacedText::from_scalar(node, self.file, self.files)
    }

    /// Warns about keys an item of this kind does not have.
    fn check_keys(&mut self, item: &Node, allowed: &[&str], what: &str) {
        let Some(entries) = item.as_map() else { return };
        for (k, _) in entries {
            let name = k.as_scalar().unwrap_or("");
            if !allowed.contains(&name) {
                let w =
                    self.files
                        .warning(self.place(k), Some(what), format!("unknown key '{name}' ignored"));
                self.col.warnings.push(w);
            }
        }
    }

    fn read_item(&mut self, item: &Node) -> Result<(), LoadError> {
        if item.as_map().is_none() {
            return Err(self.err(
                item,
                None,
                "Unexpected element type. Each element should be a yaml associative array.",
            ));
        }
        if item.get("required_engine_version").is_some() {
            self.read_engine_version(item)
        } else if item.get("required_plugin_versions").is_some() {
            self.read_plugin_versions(item)
        } else if item.get("list").is_some() {
            self.read_list(item)
        } else if item.get("macro").is_some() {
            self.read_macro(item)
        } else if item.get("rule").is_some() {
            self.read_rule(item)
        } else {
            self.warn(item, None, "Unknown top level item");
            Ok(())
        }
    }

    fn read_engine_version(&mut self, item: &Node) -> Result<(), LoadError> {
        let what = Some("required_engine_version");
        let v = self.scalar(item, "required_engine_version", what)?;
        let text = v.as_scalar().unwrap_or_default();
        let version = match parse_u32(text) {
            Some(n) => Version { major: 0, minor: n, patch: 0 },
            None => Version::parse(text).ok_or_else(|| {
                self.err(v, what, format!("Unable to parse engine version '{text}' as a semver string. Expected \"x.y.z\" semver format."))
            })?,
        };
        if !ENGINE_VERSION.satisfies(version) {
            return Err(self.files.error(
                LoadErrorKind::Requirement,
                self.place(v),
                what,
                format!("Rules require engine version {version}, but engine version is {ENGINE_VERSION}"),
            ));
        }
        Ok(())
    }

    fn read_plugin_versions(&mut self, item: &Node) -> Result<(), LoadError> {
        let what = Some("required_plugin_versions");
        let Some(seq) = item.get("required_plugin_versions").and_then(Node::as_seq) else {
            let node = item.get("required_plugin_versions").unwrap_or(item);
            return Err(self.err(node, what, "Value of required_plugin_versions must be a sequence"));
        };
        for plugin in seq {
            if plugin.as_map().is_none() {
                return Err(self.err(plugin, what, "Plugin version must be a mapping"));
            }
            let mut alternatives = vec![self.plugin_requirement(plugin)?];
            if let Some(alts) = plugin.get("alternatives") {
                let Some(alts) = alts.as_seq() else {
                    return Err(self.err(
                        alts,
                        what,
                        "Value of plugin version alternatives must be a sequence",
                    ));
                };
                for alt in alts {
                    if alt.as_map().is_none() {
                        return Err(self.err(alt, what, "Plugin version alternative must be a mapping"));
                    }
                    let req = self.plugin_requirement(alt)?;
                    if alternatives.iter().any(|(n, _)| *n == req.0) {
                        return Err(self.err(
                            alt,
                            what,
                            format!(
                                "Defined multiple alternative version requirements for plugin '{}'",
                                req.0
                            ),
                        ));
                    }
                    alternatives.push(req);
                }
            }
            let place = self.place(plugin);
            self.col.plugin_requirements.push((alternatives, place));
        }
        Ok(())
    }

    fn plugin_requirement(&self, node: &Node) -> Result<(String, Version), LoadError> {
        let what = Some("required_plugin_versions");
        let name = self.string(node, "name", what)?;
        let v = self.scalar(node, "version", what)?;
        let text = v.as_scalar().unwrap_or_default();
        let version = Version::parse(text).ok_or_else(|| {
            self.err(
                v,
                what,
                format!("Invalid required version '{text}' for plugin '{name}'"),
            )
        })?;
        Ok((name, version))
    }

    fn read_overrides(
        &self,
        item: &Node,
        appendable: &[&str],
        replaceable: &[&str],
        what: &str,
    ) -> Result<Overrides, LoadError> {
        let mut out = Overrides::default();
        let Some(node) = item.get("override") else {
            return Ok(out);
        };
        let Some(entries) = node.as_map() else {
            return Err(self.err(node, Some(what), "Value of 'override' must be a mapping"));
        };
        for (k, v) in entries {
            let key = k.as_scalar().unwrap_or("").to_owned();
            let op = v.as_scalar().unwrap_or("");
            let can_append = appendable.contains(&key.as_str());
            let can_replace = replaceable.contains(&key.as_str());
            match op {
                "append" if can_append => {
                    out.append.insert(key);
                }
                "append" => {
                    return Err(self.err(
                        k,
                        Some(what),
                        format!("Key '{key}' cannot be appended to, use 'replace' instead"),
                    ));
                }
                "replace" if can_replace => {
                    out.replace.insert(key);
                }
                "replace" => return Err(self.err(k, Some(what), format!("Key '{key}' cannot be replaced"))),
                _ => {
                    let mut allowed = String::new();
                    if can_append {
                        allowed.push_str("append ");
                    }
                    if can_replace {
                        allowed.push_str("replace ");
                    }
                    return Err(self.err(
                        v,
                        Some(what),
                        format!("Invalid override operation for key '{key}': '{op}'. Allowed values are: {allowed}"),
                    ));
                }
            }
        }
        Ok(out)
    }

    fn read_append_flag(&mut self, item: &Node, what: &str) -> Result<bool, LoadError> {
        let append = self.optional_bool(item, "append", Some(what))?.unwrap_or(false);
        if append {
            self.warn(
                item,
                Some(what),
                "'append' key is deprecated. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.",
            );
        }
        Ok(append)
    }

    fn read_list(&mut self, item: &Node) -> Result<(), LoadError> {
        let name = self.string(item, "list", Some("list"))?;
        let what = format!("list '{name}'");
        self.check_keys(item, LIST_KEYS, &what);
        if name
            .chars()
            .any(|c| matches!(c, '(' | ')' | '"' | '\'' | '=' | ',') || c.is_whitespace())
        {
            self.warn(item, Some(&what), "List has an invalid name. List names must match a regular expression: ([^()\"'[:space:]=,]+)");
        }
        let Some(items_node) = item.get("items") else {
            return Err(self.err(item, Some(&what), "Item has no mapping for key 'items'"));
        };
        let Some(seq) = items_node.as_seq() else {
            return Err(self.err(items_node, Some(&what), "Value is not a sequence"));
        };
        let mut items = Vec::with_capacity(seq.len());
        for v in seq {
            match &v.value {
                Value::Scalar { text, .. } if !v.is_null() => items.push(text.clone()),
                _ => return Err(self.err(v, Some(&what), "sequence value is not scalar")),
            }
        }
        let mut append = self.read_append_flag(item, &what)?;
        let overrides = self.read_overrides(item, &["items"], &["items"], &what)?;
        if append && !overrides.is_empty() {
            return Err(self.err(item, Some(&what), ERROR_OVERRIDE_APPEND));
        }
        append |= overrides.append.contains("items");
        let place = self.place(item);
        if append {
            let id = self.col.next_id();
            let Some(&i) = self.col.list_names.get(&name) else {
                return Err(self.err(
                    item,
                    Some(&what),
                    "List uses 'append' or 'override.items: append' but no list by that name already exists",
                ));
            };
            let prev = &mut self.col.lists[i];
            prev.items.extend(items);
            prev.visibility = id;
        } else {
            let id = self.col.next_id();
            match self.col.list_names.get(&name) {
                Some(&i) => {
                    let prev = &mut self.col.lists[i];
                    prev.items = items;
                    prev.visibility = id;
                    prev.place = place;
                }
                None => {
                    self.col.list_names.insert(name.clone(), self.col.lists.len());
                    self.col.lists.push(ListDef {
                        name,
                        items,
                        index: id,
                        visibility: id,
                        place,
                    });
                }
            }
        }
        Ok(())
    }

    fn read_macro(&mut self, item: &Node) -> Result<(), LoadError> {
        let name = self.string(item, "macro", Some("macro"))?;
        let what = format!("macro '{name}'");
        self.check_keys(item, MACRO_KEYS, &what);
        if !is_identifier(&name) {
            self.warn(item, Some(&what), "Macro has an invalid name. Macro names must match a regular expression: ([a-zA-Z]+[a-zA-Z0-9_]*)");
        }
        let cond_node = self.scalar(item, "condition", Some(&what))?;
        let cond = self.placed(cond_node);
        let mut append = self.read_append_flag(item, &what)?;
        let overrides = self.read_overrides(item, &["condition"], &["condition"], &what)?;
        if append && !overrides.is_empty() {
            return Err(self.err(item, Some(&what), ERROR_OVERRIDE_APPEND));
        }
        append |= overrides.append.contains("condition");
        let place = self.place(item);
        let id = self.col.next_id();
        if append {
            let Some(&i) = self.col.macro_names.get(&name) else {
                return Err(self.err(
                    item,
                    Some(&what),
                    "Macro uses 'append' or 'override.condition: append' but no macro by that name already exists",
                ));
            };
            let prev = &mut self.col.macros[i];
            prev.cond.append(&cond);
            prev.visibility = id;
        } else {
            match self.col.macro_names.get(&name) {
                Some(&i) => {
                    let prev = &mut self.col.macros[i];
                    prev.cond = cond;
                    prev.visibility = id;
                    prev.place = place;
                }
                None => {
                    self.col.macro_names.insert(name.clone(), self.col.macros.len());
                    self.col.macros.push(MacroDef {
                        name,
                        cond,
                        index: id,
                        visibility: id,
                        place,
                    });
                }
            }
        }
        Ok(())
    }

    fn read_priority(&self, item: &Node, what: &str) -> Result<Option<Priority>, LoadError> {
        let Some(v) = self.optional_scalar(item, "priority", Some(what))? else {
            return Ok(None);
        };
        let text = v.as_scalar().unwrap_or_default();
        text.parse::<Priority>()
            .map(Some)
            .map_err(|_| self.err(v, Some(what), format!("Invalid priority '{text}'")))
    }

    fn read_tags(&self, item: &Node, what: &str) -> Result<Option<BTreeSet<String>>, LoadError> {
        let Some(v) = item.get("tags") else {
            return Ok(None);
        };
        let Some(seq) = v.as_seq() else {
            return Err(self.err(v, Some(what), "Value for key 'tags' is not a sequence"));
        };
        let mut tags = BTreeSet::new();
        for t in seq {
            match t.as_scalar() {
                Some(s) if !t.is_null() => {
                    tags.insert(s.to_owned());
                }
                _ => return Err(self.err(t, Some(what), "sequence value is not scalar")),
            }
        }
        Ok(Some(tags))
    }

    /// Reads the keys of a rule item named in `keys` (all keys when `None`).
    fn read_rule_fields(
        &self,
        item: &Node,
        what: &str,
        keys: Option<&BTreeSet<String>>,
        append: bool,
    ) -> Result<RuleFields, LoadError> {
        let wanted = |k: &str| keys.is_none_or(|s| s.contains(k));
        let mut f = RuleFields::default();
        if wanted("condition")
            && let Some(n) = self.optional_scalar(item, "condition", Some(what))?
        {
            f.cond = Some(self.placed(n));
        }
        if wanted("output")
            && let Some(n) = self.optional_scalar(item, "output", Some(what))?
        {
            f.output = Some(self.placed(n));
        }
        if wanted("desc")
            && let Some(n) = self.optional_scalar(item, "desc", Some(what))?
        {
            f.desc = Some(n.as_scalar().unwrap_or_default().to_owned());
        }
        if wanted("priority") {
            f.priority = self.read_priority(item, what)?;
        }
        if wanted("tags") {
            f.tags = self.read_tags(item, what)?;
        }
        if wanted("exceptions") && item.get("exceptions").is_some() {
            f.exceptions = Some(self.read_exceptions(item, what, append)?);
        }
        if wanted("enabled") {
            f.enabled = self.optional_bool(item, "enabled", Some(what))?;
        }
        if wanted("skip-if-unknown-filter") {
            f.skip_if_unknown_filter = self.optional_bool(item, "skip-if-unknown-filter", Some(what))?;
        }
        if wanted("warn_evttypes") {
            f.other |= self.optional_bool(item, "warn_evttypes", Some(what))?.is_some();
        }
        for key in ["capture", "capture_duration"] {
            if wanted(key) && item.get(key).is_some() {
                f.other = true;
            }
        }
        Ok(f)
    }

    fn read_rule(&mut self, item: &Node) -> Result<(), LoadError> {
        let name = self.string(item, "rule", Some("rule"))?;
        let what = format!("rule '{name}'");
        self.check_keys(item, RULE_KEYS, &what);
        let has_append_flag = self.read_append_flag(item, &what)?;
        let overrides = self.read_overrides(item, RULE_APPENDABLE, RULE_REPLACEABLE, &what)?;
        if has_append_flag && !overrides.is_empty() {
            return Err(self.err(item, Some(&what), ERROR_OVERRIDE_APPEND));
        }
        if !overrides.is_empty() {
            return self.read_rule_overrides(item, &name, &what, &overrides);
        }
        if has_append_flag {
            let keys: BTreeSet<String> = ["condition", "exceptions"]
                .iter()
                .map(|s| s.to_string())
                .collect();
            let fields = self.read_rule_fields(item, &what, Some(&keys), true)?;
            return self.append_rule(item, &name, &what, fields);
        }
        let defines = ["condition", "output", "desc", "priority"]
            .iter()
            .any(|k| item.get(k).is_some());
        if !defines {
            let Some(enabled) = self.optional_bool(item, "enabled", Some(&what))? else {
                return Err(self.err(item, Some(&what), "Item has no mapping for key 'enabled'"));
            };
            self.warn(
                item,
                Some(&what),
                "The standalone 'enabled' key usage is deprecated. The correct approach requires also a 'replace' entry under the 'override' key (i.e. 'enabled: replace').",
            );
            let Some(&i) = self.col.rule_names.get(&name) else {
                return Err(self.err(
                    item,
                    Some(&what),
                    "Rule has 'enabled' key but no rule by that name already exists",
                ));
            };
            self.col.rules[i].enabled = enabled;
            return Ok(());
        }
        self.define_rule(item, name, &what)
    }

    fn define_rule(&mut self, item: &Node, name: String, what: &str) -> Result<(), LoadError> {
        let cond_node = self.scalar(item, "condition", Some(what))?;
        let cond = self.placed(cond_node);
        let output_node = self.scalar(item, "output", Some(what))?;
        let mut output = self.placed(output_node);
        output.trim();
        let desc = self.string(item, "desc", Some(what))?;
        let priority = self
            .read_priority(item, what)?
            .ok_or_else(|| self.err(item, Some(what), "Item has no mapping for key 'priority'"))?;
        let source = match self.optional_scalar(item, "source", Some(what))? {
            Some(n) => n.as_scalar().unwrap_or_default().to_owned(),
            None => "syscall".to_owned(),
        };
        let enabled = self.optional_bool(item, "enabled", Some(what))?.unwrap_or(true);
        self.optional_bool(item, "warn_evttypes", Some(what))?;
        let skip_if_unknown_filter = self
            .optional_bool(item, "skip-if-unknown-filter", Some(what))?
            .unwrap_or(false);
        let tags = self.read_tags(item, what)?.unwrap_or_default();
        let mut exceptions = if item.get("exceptions").is_some() {
            self.read_exceptions(item, what, false)?
        } else {
            Vec::new()
        };

        let place = self.place(item);
        if let Some(&i) = self.col.rule_names.get(&name)
            && self.col.rules[i].source != source
        {
            return Err(self.err(
                item,
                Some(what),
                "Rule has been re-defined with a different source",
            ));
        }
        let source_known = source == K8S_AUDIT;
        if !source_known && self.col.warned_sources.insert(source.clone()) {
            self.warn(
                item,
                Some(what),
                format!("rules of source {source} are not evaluated: kaudit only knows k8s_audit fields"),
            );
        }
        for ex in &mut exceptions {
            if !ex.fields.is_valid() {
                return Err(self.files.error(
                    LoadErrorKind::Validate,
                    ex.place,
                    Some(what),
                    "Rule exception item must have fields property with a list of fields",
                ));
            }
            self.validate_exception(ex, source_known, what)?;
        }
        let id = self.col.next_id();
        let def = RuleDef {
            name: name.clone(),
            cond,
            output,
            desc,
            priority,
            source,
            source_known,
            enabled,
            tags,
            exceptions,
            skip_if_unknown_filter,
            index: id,
            visibility: id,
            place,
        };
        match self.col.rule_names.get(&name) {
            Some(&i) => {
                let index = self.col.rules[i].index;
                self.col.rules[i] = RuleDef { index, ..def };
            }
            None => {
                self.col.rule_names.insert(name, self.col.rules.len());
                self.col.rules.push(def);
            }
        }
        Ok(())
    }

    /// Falco's checks and defaults for an exception of a rule definition or of an append.
    fn validate_exception(
        &self,
        ex: &mut ExceptionDef,
        source_known: bool,
        what: &str,
    ) -> Result<(), LoadError> {
        let err = |message: String| {
            self.files
                .error(LoadErrorKind::Validate, ex.place, Some(what), message)
        };
        if ex.fields.is_list {
            if !ex.comps.is_valid() {
                ex.comps = Entry {
                    is_list: true,
                    item: String::new(),
                    items: vec![Entry::scalar("="); ex.fields.items.len()],
                };
            }
            if ex.fields.items.len() != ex.comps.items.len() {
                return Err(err("Fields and comps lists must have equal length".into()));
            }
            for c in &ex.comps.items {
                if !is_comparison_operator(&c.item) {
                    return Err(err(format!(
                        "'{}' is not a supported comparison operator",
                        c.item
                    )));
                }
            }
            if source_known {
                for f in &ex.fields.items {
                    if !super::check::is_valid_lhs_field(&f.item) {
                        return Err(err(format!("'{}' is not a supported filter field", f.item)));
                    }
                }
            }
        } else {
            if !ex.comps.is_valid() {
                ex.comps = Entry::scalar("in");
            }
            if ex.comps.is_list {
                return Err(err("Fields and comps must both be strings".into()));
            }
            if !is_single_field_comp(&ex.comps.item) {
                return Err(err(
                    "When fields is a single value, comps must be one of (in, pmatch, intersects)".into(),
                ));
            }
            if source_known && !super::check::is_valid_lhs_field(&ex.fields.item) {
                return Err(err(format!(
                    "'{}' is not a supported filter field",
                    ex.fields.item
                )));
            }
        }
        Ok(())
    }

    fn rule_index(&self, item: &Node, name: &str, what: &str, message: &str) -> Result<usize, LoadError> {
        self.col
            .rule_names
            .get(name)
            .copied()
            .ok_or_else(|| self.err(item, Some(what), message))
    }

    /// Legacy `append: true`, and `override: {key: append}`.
    fn append_rule(
        &mut self,
        item: &Node,
        name: &str,
        what: &str,
        mut fields: RuleFields,
    ) -> Result<(), LoadError> {
        let i = self.rule_index(
            item,
            name,
            what,
            "Rule uses 'append' or 'override.<key>: append' but no rule by that name already exists",
        )?;
        if !fields.has_any_value() {
            return Err(self.err(
                item,
                Some(what),
                "Appended rule must have exceptions or condition property",
            ));
        }
        let source_known = self.col.rules[i].source_known;
        if let Some(exceptions) = &mut fields.exceptions {
            for ex in exceptions.iter_mut() {
                let existing = self.col.rules[i].exceptions.iter().any(|e| e.name == ex.name);
                if existing {
                    if ex.fields.is_valid() {
                        return Err(self.files.error(
                            LoadErrorKind::Validate,
                            ex.place,
                            Some(what),
                            "Can not append exception fields to existing exception, only values",
                        ));
                    }
                    if ex.comps.is_valid() {
                        return Err(self.files.error(
                            LoadErrorKind::Validate,
                            ex.place,
                            Some(what),
                            "Can not append exception comps to existing exception, only values",
                        ));
                    }
                } else {
                    if !ex.fields.is_valid() {
                        return Err(self.files.error(
                            LoadErrorKind::Validate,
                            ex.place,
                            Some(what),
                            "Rule exception must have fields property with a list of fields",
                        ));
                    }
                    if ex.values.is_empty() {
                        return Err(self.files.error(
                            LoadErrorKind::Validate,
                            ex.place,
                            Some(what),
                            "Rule exception must have values property with a list of values",
                        ));
                    }
                    self.validate_exception(ex, source_known, what)?;
                }
            }
        }
        let id = self.col.next_id();
        let prev = &mut self.col.rules[i];
        if let Some(c) = fields.cond.filter(|c| !c.text.is_empty()) {
            prev.cond.append(&c);
        }
        if let Some(o) = fields.output.filter(|o| !o.text.is_empty()) {
            prev.output.append(&o);
        }
        if let Some(d) = fields.desc.filter(|d| !d.is_empty()) {
            prev.desc.push(' ');
            prev.desc.push_str(&d);
        }
        if let Some(tags) = fields.tags {
            prev.tags.extend(tags);
        }
        if let Some(exceptions) = fields.exceptions {
            for ex in exceptions {
                match prev.exceptions.iter_mut().find(|e| e.name == ex.name) {
                    Some(existing) => existing.values.extend(ex.values),
                    None => prev.exceptions.push(ex),
                }
            }
        }
        prev.visibility = id;
        Ok(())
    }

    fn read_rule_overrides(
        &mut self,
        item: &Node,
        name: &str,
        what: &str,
        overrides: &Overrides,
    ) -> Result<(), LoadError> {
        // Every overridable key present in the item must be listed under `override`, and
        // every key listed must be present; appends are applied before replaces.
        let mut expected: BTreeSet<&'static str> = RULE_APPENDABLE
            .iter()
            .chain(RULE_REPLACEABLE)
            .copied()
            .filter(|k| item.get(k).is_some())
            .collect();
        if !overrides.append.is_empty() {
            self.claim_keys(
                item,
                what,
                &mut expected,
                "append",
                &overrides.append,
                RULE_APPENDABLE,
            )?;
            let fields = self.read_rule_fields(item, what, Some(&overrides.append), true)?;
            self.append_rule(item, name, what, fields)?;
        }
        if !overrides.replace.is_empty() {
            self.claim_keys(
                item,
                what,
                &mut expected,
                "replace",
                &overrides.replace,
                RULE_REPLACEABLE,
            )?;
            let fields = self.read_rule_fields(item, what, Some(&overrides.replace), true)?;
            let i = self.rule_index(
                item,
                name,
                what,
                "An 'override.<key>: replace' to a rule was requested but no rule by that name already exists",
            )?;
            if !fields.has_any_value() {
                return Err(self.err(
                    item,
                    Some(what),
                    "The rule must have at least one field that can be replaced",
                ));
            }
            let id = self.col.next_id();
            let prev = &mut self.col.rules[i];
            if let Some(c) = fields.cond {
                prev.cond = c;
            }
            if let Some(o) = fields.output {
                // Only a full definition trims its output, as in Falco.
                prev.output = o;
            }
            if let Some(d) = fields.desc {
                prev.desc = d;
            }
            if let Some(t) = fields.tags {
                prev.tags = t;
            }
            if let Some(e) = fields.exceptions {
                // As in Falco, replaced exceptions are taken as written: no default `comps`.
                prev.exceptions = e;
            }
            if let Some(p) = fields.priority {
                prev.priority = p;
            }
            if let Some(e) = fields.enabled {
                prev.enabled = e;
            }
            if let Some(s) = fields.skip_if_unknown_filter {
                prev.skip_if_unknown_filter = s;
            }
            prev.visibility = id;
        }
        if let Some(key) = expected.into_iter().next() {
            let node = item.get(key).unwrap_or(item);
            return Err(self.err(
                node,
                Some(what),
                format!("Unexpected key '{key}': no corresponding entry under 'override' is defined."),
            ));
        }
        Ok(())
    }

    /// Removes the overridden keys from `expected`, each of which must be there.
    fn claim_keys(
        &self,
        item: &Node,
        what: &str,
        expected: &mut BTreeSet<&'static str>,
        kind: &str,
        keys: &BTreeSet<String>,
        order: &[&'static str],
    ) -> Result<(), LoadError> {
        for key in order {
            if keys.contains(*key) && !expected.remove(key) {
                return Err(self.err(
                    item,
                    Some(what),
                    format!("An {kind} override for '{key}' was specified but '{key}' is not defined"),
                ));
            }
        }
        Ok(())
    }

    fn read_exceptions(&self, item: &Node, what: &str, append: bool) -> Result<Vec<ExceptionDef>, LoadError> {
        let mut out: Vec<ExceptionDef> = Vec::new();
        let Some(node) = item.get("exceptions") else {
            return Ok(out);
        };
        if node.is_null() {
            return Ok(out);
        }
        let Some(seq) = node.as_seq() else {
            return Err(self.err(node, Some(what), "Rule exceptions must be a sequence"));
        };
        for ex in seq {
            if ex.as_map().is_none() {
                return Err(self.err(ex, Some(what), "Rule exception must be a mapping"));
            }
            let name = self.string(ex, "name", Some(what))?;
            let ex_what = format!("{what}: exception '{name}'");
            if out.iter().any(|e| e.name == name) {
                let w = self.files.warning(
                    self.place(ex),
                    Some(&ex_what),
                    "Multiple definitions of this exception name in the same rule",
                );
                self.pending.borrow_mut().push(w);
            }
            let fields = match ex.get("fields") {
                None if append => Entry::default(),
                None => return Err(self.err(ex, Some(&ex_what), "Item has no mapping for key 'fields'")),
                Some(f) => self.entry(f, &ex_what)?,
            };
            let comps = match ex.get("comps") {
                None => Entry::default(),
                Some(c) => self.entry(c, &ex_what)?,
            };
            let mut values = Vec::new();
            match ex.get("values") {
                Some(vals) => {
                    let Some(seq) = vals.as_seq() else {
                        return Err(self.err(
                            vals,
                            Some(&ex_what),
                            "Rule exception values must be a sequence",
                        ));
                    };
                    for v in seq {
                        values.push(self.entry(v, &ex_what)?);
                    }
                }
                None if append => {
                    let w = self.files.warning(
                        self.place(ex),
                        Some(&ex_what),
                        "Overriding/appending exception with no values",
                    );
                    self.pending.borrow_mut().push(w);
                }
                None => {}
            }
            out.push(ExceptionDef {
                name,
                fields,
                comps,
                values,
                place: self.place(ex),
            });
        }
        Ok(out)
    }

    /// A scalar or a (nested) list of scalars.
    fn entry(&self, node: &Node, what: &str) -> Result<Entry, LoadError> {
        match &node.value {
            Value::Scalar { text, style } => {
                if node.is_null() && *style == Style::Plain {
                    return Ok(Entry::default());
                }
                if text.is_empty() {
                    return Err(self.err(node, Some(what), "Value must be non-empty"));
                }
                Ok(Entry::scalar(text))
            }
            Value::Seq(items) => {
                let mut entry = Entry {
                    is_list: true,
                    ..Entry::default()
                };
                for i in items {
                    entry.items.push(self.entry(i, what)?);
                }
                Ok(entry)
            }
            Value::Map(_) => Ok(Entry::default()),
        }
    }
}

const ERROR_OVERRIDE_APPEND: &str = "Keys 'override' and 'append: true' cannot be used together. Add an 'append' entry (e.g. 'condition: append') under 'override' instead.";

/// yaml-cpp's booleans: y/yes/true/on and n/no/false/off, in lower case, upper case or
/// capitalized.
fn parse_bool(text: &str) -> Option<bool> {
    const WORDS: [(&str, bool); 8] = [
        ("y", true),
        ("yes", true),
        ("true", true),
        ("on", true),
        ("n", false),
        ("no", false),
        ("false", false),
        ("off", false),
    ];
    for (word, value) in WORDS {
        let mut cap = word.to_owned();
        cap[..1].make_ascii_uppercase();
        if text == word || text == word.to_ascii_uppercase() || text == cap {
            return Some(value);
        }
    }
    None
}

fn parse_u32(text: &str) -> Option<u32> {
    let digits = text.strip_prefix('+').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// `[a-zA-Z]+[a-zA-Z0-9_]*`
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The operators Falco accepts in exception `comps`, plus string operators with a modifier
/// (`startswith oneof`).
fn is_comparison_operator(text: &str) -> bool {
    if kaudit_rules_syntax::Op::from_text(text).is_some() {
        return true;
    }
    is_modifier_comp(text)
}

fn is_modifier_comp(text: &str) -> bool {
    let mut words = text.split_whitespace();
    let (Some(op), Some(modifier), None) = (words.next(), words.next(), words.next()) else {
        return false;
    };
    let op_ok = kaudit_rules_syntax::Op::from_text(op)
        .is_some_and(|o| !o.takes_list() && !o.is_numeric() && o != kaudit_rules_syntax::Op::Exists);
    op_ok && matches!(modifier, "oneof" | "anyof" | "allof")
}

fn is_single_field_comp(text: &str) -> bool {
    matches!(text, "in" | "pmatch" | "intersects") || is_modifier_comp(text)
}
