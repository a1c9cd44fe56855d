//! The adapter between the server and the rules engine (`kaudit-rules`): loading rule
//! texts into one rule set and evaluating an event, reporting matches by rule index with a
//! lazily rendered alert.

use kaudit_model::{AuditEvent, Priority};

/// A rule file to load.
#[derive(Clone, Debug)]
pub struct RuleText {
    /// Its name (shown in error positions).
    pub name: String,
    /// Its YAML text.
    pub content: String,
}

/// Why a set of rule files did not load; the text names the file, line and column.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadFailure(pub String);

/// A loaded rule, as listed by the API.
#[derive(Clone, Debug)]
pub struct EngineRule {
    /// Name.
    pub name: String,
    /// The rule file defining it.
    pub file: String,
    /// Priority.
    pub priority: Priority,
    /// Tags, sorted.
    pub tags: Vec<String>,
    /// Condition as written.
    pub condition: String,
    /// Output template.
    pub output: String,
    /// Enabled after the files are loaded.
    pub enabled: bool,
}

/// A rendered match.
pub struct Rendered {
    /// Rule name.
    pub rule: String,
    /// Priority.
    pub priority: Priority,
    /// Output message.
    pub message: String,
    /// Output fields.
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    /// Tags.
    pub tags: Vec<String>,
}

/// Loaded rules.
pub struct Engine {
    rules: Vec<EngineRule>,
}

/// kaudit's default rules.
pub fn default_rules() -> String {
    String::new()
}

impl Engine {
    /// Loads the texts in order into one rule set.
    pub fn load(_texts: &[RuleText]) -> Result<Engine, LoadFailure> {
        Ok(Engine { rules: Vec::new() })
    }

    /// The rules, in definition order.
    pub fn rules(&self) -> &[EngineRule] {
        &self.rules
    }

    /// Calls `on_match(rule_index, render)` for each enabled rule matching the event, in
    /// definition order, until it returns false.
    pub fn for_each_match(&self, _event: &AuditEvent<'_>, _on_match: &mut dyn FnMut(usize, &dyn Fn() -> Rendered) -> bool) {}
}
