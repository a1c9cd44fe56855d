//! The adapter between the server and the rules engine (`kaudit-rules`): loading rule
//! texts into one rule set and evaluating an event, reporting matches by rule index with a
//! lazily rendered alert.

use kaudit_model::{Located, Priority};
use kaudit_rules::fields::EventCtx;
use kaudit_rules::{Matching, RuleSet, RuleSource};

use crate::policy::DEFAULT_RULES_FILE;

/// The file name of kaudit's default rule pack, as its errors and alerts name it.
const DEFAULT_PACK_NAME: &str = kaudit_rules::default_rules::DEFAULT_RULES_FILE;

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

/// Called per matching rule with its index and a function rendering its alert; returns
/// whether to go on with the next match.
pub type MatchCallback<'f> = dyn FnMut(usize, &dyn Fn() -> Option<Rendered>) -> bool + 'f;

/// Loaded rules.
pub struct Engine {
    rules: RuleSet,
    info: Vec<EngineRule>,
}

/// kaudit's default rules.
pub fn default_rules() -> String {
    kaudit_rules::default_rules::DEFAULT_RULES.to_owned()
}

impl Engine {
    /// Loads the texts in order into one rule set. The text named
    /// [`crate::policy::DEFAULT_RULES_FILE`] is loaded under the default pack's own file name,
    /// so errors in it point at `kaudit_rules.yaml`.
    pub fn load(texts: &[RuleText]) -> Result<Engine, LoadFailure> {
        let sources: Vec<RuleSource> = texts
            .iter()
            .map(|t| {
                let name = if t.name == DEFAULT_RULES_FILE {
                    DEFAULT_PACK_NAME
                } else {
                    t.name.as_str()
                };
                RuleSource::new(name, t.content.clone())
            })
            .collect();
        let loaded = kaudit_rules::load(&sources).map_err(|e| LoadFailure(e.to_string()))?;
        for warning in &loaded.warnings {
            tracing::debug!(warning = %warning, "rules warning");
        }
        let rules = loaded.ruleset;
        let info = rules
            .rules()
            .iter()
            .map(|r| EngineRule {
                name: r.name.clone(),
                file: if r.file == DEFAULT_PACK_NAME {
                    DEFAULT_RULES_FILE.to_owned()
                } else {
                    r.file.clone()
                },
                priority: r.priority,
                tags: r.tags.clone(),
                condition: r.condition.clone(),
                output: r.output.clone(),
                enabled: r.enabled && r.source == "k8s_audit",
            })
            .collect();
        Ok(Engine { rules, info })
    }

    /// The rules, in definition order (indexes match [`Engine::for_each_match`]).
    pub fn rules(&self) -> &[EngineRule] {
        &self.info
    }

    /// Calls `on_match(rule_index, render)` for each enabled rule matching the event, in
    /// definition order, until it returns false.
    pub fn for_each_match(&self, located: &Located<'_>, on_match: &mut MatchCallback<'_>) {
        let ctx = EventCtx::new(located, 0);
        let mut matched = Vec::new();
        self.rules.evaluate(&ctx, Matching::All, &mut matched);
        for index in matched {
            let render = || {
                self.rules.alert(index, &ctx).map(|alert| Rendered {
                    rule: alert.rule,
                    priority: alert.priority,
                    message: alert.message,
                    output_fields: alert.output_fields.into_iter().collect(),
                    tags: alert.tags,
                })
            };
            if !on_match(index, &render) {
                return;
            }
        }
    }
}
