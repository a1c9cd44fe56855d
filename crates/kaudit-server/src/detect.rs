//! The active detection set: the loaded rules and the detection policies, swapped as one
//! `Arc` when rules or policies change.
//!
//! Per event, the candidate rules are the enabled rules that belong to at least one enabled
//! policy whose scope admits the event. With `rule_matching = "first"` (the default, as in
//! Falco) only the first matching candidate in rule-file order alerts; with `"all"` every
//! matching candidate does. An alert records the first policy (by name) that admits it.
//!
//! Rule files load in this order: kaudit's default rules (`default`), the custom rule files
//! by name, then the built-in catch-all rule of the `all-activity` policy (`activity`), so the
//! catch-all never hides a more specific rule under `first` matching.

use kaudit_model::{Located, Priority};
use kaudit_proto::{Policy, RuleInfo};

use crate::config::RuleMatching;
use crate::engine::{Engine, EngineRule, LoadFailure, RuleText};
use crate::policy::{ACTIVITY_RULES_FILE, DEFAULT_RULES_FILE, scope_admits, selects};

/// The built-in rule file of the `all-activity` policy: one informational alert per event.
pub const ACTIVITY_RULES: &str = r#"# kaudit built-in: the rule of the all-activity policy.
- rule: Kubernetes API Activity
  desc: Any request recorded by the Kubernetes audit log.
  condition: jevt.rawtime exists
  output: "%ka.user.name %ka.verb %ka.target.resource %ka.target.namespace/%ka.target.name (uri=%ka.uri code=%ka.response.code)"
  priority: INFO
  source: k8s_audit
  tags: [k8s, activity]
"#;

/// One alert the active set raises for an event.
#[derive(Clone, Debug, PartialEq)]
pub struct Detection {
    /// Rule name.
    pub rule: String,
    /// Rule priority.
    pub priority: Priority,
    /// The policy it is raised under.
    pub policy: String,
    /// Rendered output message.
    pub message: String,
    /// Output fields.
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    /// Tags, sorted and de-duplicated.
    pub tags: Vec<String>,
}

/// A custom rule file as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CustomRuleFile {
    /// Its name.
    pub name: String,
    /// Its YAML text.
    pub content: String,
}

/// Rules and policies, compiled for evaluation.
pub struct Detector {
    engine: Engine,
    /// Enabled policies, by name.
    policies: Vec<Policy>,
    /// For each engine rule, the indexes in `policies` of the enabled policies holding it.
    rule_policies: Vec<Vec<usize>>,
    /// Whether any rule is active at all (skips evaluation otherwise).
    any_active: bool,
    matching: RuleMatching,
    info: Vec<RuleInfo>,
}

impl Detector {
    /// Loads kaudit's default rules, the custom files and the activity rule, and ties the
    /// rules to the policies. Refused (with the file, line and column) when a file does not
    /// load; nothing changes then.
    pub fn build(
        custom: &[CustomRuleFile],
        policies: &[Policy],
        matching: RuleMatching,
    ) -> Result<Detector, LoadFailure> {
        let mut texts = vec![RuleText {
            name: DEFAULT_RULES_FILE.to_owned(),
            content: crate::engine::default_rules(),
        }];
        let mut custom: Vec<&CustomRuleFile> = custom.iter().collect();
        custom.sort_by(|a, b| a.name.cmp(&b.name));
        texts.extend(custom.iter().map(|f| RuleText {
            name: f.name.clone(),
            content: f.content.clone(),
        }));
        texts.push(RuleText {
            name: ACTIVITY_RULES_FILE.to_owned(),
            content: ACTIVITY_RULES.to_owned(),
        });
        let engine = Engine::load(&texts)?;
        Ok(Detector::with_engine(engine, policies, matching))
    }

    fn with_engine(engine: Engine, policies: &[Policy], matching: RuleMatching) -> Detector {
        let mut all: Vec<Policy> = policies.to_vec();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        let enabled: Vec<Policy> = all.iter().filter(|p| p.enabled).cloned().collect();
        let rules = engine.rules();
        let mut rule_policies = Vec::with_capacity(rules.len());
        let mut info = Vec::with_capacity(rules.len());
        let mut any_active = false;
        for rule in rules {
            let holders: Vec<usize> = enabled
                .iter()
                .enumerate()
                .filter(|(_, p)| selects(&p.rules, &rule.name, &rule.tags, &rule.file))
                .map(|(i, _)| i)
                .collect();
            let names: Vec<String> = all
                .iter()
                .filter(|p| selects(&p.rules, &rule.name, &rule.tags, &rule.file))
                .map(|p| p.name.clone())
                .collect();
            let active = rule.enabled && !holders.is_empty();
            any_active |= active;
            info.push(rule_info(rule, names, active));
            rule_policies.push(if rule.enabled { holders } else { Vec::new() });
        }
        Detector {
            engine,
            policies: enabled,
            rule_policies,
            any_active,
            matching,
            info,
        }
    }

    /// The alerts the event raises.
    pub fn detect(&self, located: &Located<'_>) -> Vec<Detection> {
        let event = &located.event;
        if !self.any_active {
            return Vec::new();
        }
        let mut out = Vec::new();
        // Scope results are computed at most once per policy per event.
        let mut admitted: Vec<Option<bool>> = vec![None; self.policies.len()];
        self.engine.for_each_match(located, &mut |rule_index, render| {
            let Some(holders) = self.rule_policies.get(rule_index) else {
                return true;
            };
            let policy = holders
                .iter()
                .copied()
                .find(|&p| *admitted[p].get_or_insert_with(|| scope_admits(&self.policies[p].scope, event)));
            let Some(policy) = policy else {
                return true;
            };
            let Some(rendered) = render() else {
                return true;
            };
            out.push(Detection {
                rule: rendered.rule,
                priority: rendered.priority,
                policy: self.policies[policy].name.clone(),
                message: rendered.message,
                output_fields: rendered.output_fields,
                tags: rendered.tags,
            });
            self.matching == RuleMatching::All
        });
        out
    }

    /// Every loaded rule with its policies.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.info
    }
}

fn rule_info(rule: &EngineRule, policies: Vec<String>, active: bool) -> RuleInfo {
    RuleInfo {
        name: rule.name.clone(),
        file: rule.file.clone(),
        priority: rule.priority.into(),
        tags: rule.tags.clone(),
        condition: rule.condition.clone(),
        output: rule.output.clone(),
        enabled: rule.enabled,
        policies,
        active,
    }
}
