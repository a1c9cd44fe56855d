//! Cutting volume at the source: a resource scope (admission-style rules) and an optional
//! audit policy, applied to each event before it is batched.
//!
//! With neither configured the agent never parses an event: lines go to the batch as they
//! are. With either, each event is parsed once ([`AuditEvent::parse`]); events outside the
//! scope, or that the policy maps to level `None` or an omitted stage, are dropped and
//! counted as filtered (a deliberate cut, not a loss).

use std::borrow::Cow;

use kaudit_model::AuditEvent;
use serde::Deserialize;

use crate::policy::LoadedPolicy;

/// One scope rule, shaped like an admission webhook rule. An event is in scope when it is a
/// resource request (has `objectRef`) and every non-empty list admits it; `*` admits anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// API groups: `""` is the core group, `*` any. Empty admits any.
    #[serde(default, alias = "apiGroups")]
    pub api_groups: Vec<String>,
    /// Resources: `pods` (the resource only), `pods/exec`, `pods/*` (its subresources),
    /// `*/scale`, `*` (every resource, no subresource), `*/*` (everything). Empty admits any.
    #[serde(default)]
    pub resources: Vec<String>,
    /// Namespaces: `""` matches cluster-scoped requests, `*` any. Empty admits any.
    #[serde(default)]
    pub namespaces: Vec<String>,
    /// Audit verbs (`create`, `delete`, `get`, ...), `*` any. Empty admits any.
    #[serde(default)]
    pub verbs: Vec<String>,
}

impl ScopeRule {
    /// Parses the flag form `apiGroups=,apps;resources=pods,pods/exec;namespaces=prod;verbs=create`.
    /// Keys may come in any order; a missing key admits any value.
    pub fn parse_flag(text: &str) -> Result<ScopeRule, String> {
        let mut rule = ScopeRule::default();
        for part in text.split(';').map(str::trim).filter(|part| !part.is_empty()) {
            let (key, values) = part
                .split_once('=')
                .ok_or_else(|| format!("expected key=values in {part:?}"))?;
            let values: Vec<String> = values.split(',').map(|value| value.trim().to_string()).collect();
            let slot = match key.trim() {
                "apiGroups" | "api_groups" => &mut rule.api_groups,
                "resources" => &mut rule.resources,
                "namespaces" => &mut rule.namespaces,
                "verbs" => &mut rule.verbs,
                other => {
                    return Err(format!(
                        "unknown key {other:?} (expected apiGroups, resources, namespaces or verbs)"
                    ));
                }
            };
            *slot = values;
        }
        rule.validate()?;
        Ok(rule)
    }

    /// Rejects resource patterns that can never match.
    pub fn validate(&self) -> Result<(), String> {
        for pattern in &self.resources {
            let valid = match pattern.split_once('/') {
                None => !pattern.is_empty(),
                Some((resource, subresource)) => {
                    !resource.is_empty() && !subresource.is_empty() && !subresource.contains('/')
                }
            };
            if !valid {
                return Err(format!("invalid resource pattern {pattern:?}"));
            }
        }
        Ok(())
    }

    /// Whether the rule admits the event.
    pub fn admits(&self, event: &AuditEvent<'_>) -> bool {
        let Some(object_ref) = event.object_ref.as_ref() else {
            return false;
        };
        let group = object_ref.api_group.as_deref().unwrap_or("");
        let resource = object_ref.resource.as_deref().unwrap_or("");
        let subresource = object_ref.subresource.as_deref().unwrap_or("");
        let namespace = object_ref.namespace.as_deref().unwrap_or("");
        let verb = event.verb.as_deref().unwrap_or("");
        admits_value(&self.api_groups, group)
            && admits_value(&self.namespaces, namespace)
            && admits_value(&self.verbs, verb)
            && (self.resources.is_empty()
                || self
                    .resources
                    .iter()
                    .any(|pattern| resource_matches(pattern, resource, subresource)))
    }
}

fn admits_value(list: &[String], value: &str) -> bool {
    list.is_empty() || list.iter().any(|entry| entry == "*" || entry == value)
}

/// Admission webhook resource matching.
fn resource_matches(pattern: &str, resource: &str, subresource: &str) -> bool {
    match pattern.split_once('/') {
        None => subresource.is_empty() && (pattern == "*" || pattern == resource),
        Some((pattern_resource, pattern_subresource)) => {
            if subresource.is_empty() {
                return false;
            }
            (pattern_resource == "*" || pattern_resource == resource)
                && (pattern_subresource == "*" || pattern_subresource == subresource)
        }
    }
}

/// What the filter decided for one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict<'a> {
    /// Ship this text (the event as read, or as the policy reduced it).
    Ship(Cow<'a, str>),
    /// Out of scope or cut by the policy.
    Filtered,
    /// The line is not an audit event; shipped unchanged so the intake reports it.
    Unparsed,
}

/// The scope and the policy together.
pub struct Filter {
    scope: Vec<ScopeRule>,
    policy: Option<LoadedPolicy>,
}

impl Filter {
    /// A filter from the configured scope and (already loaded) policy; `None` when neither is
    /// configured, so callers can skip parsing altogether.
    pub fn new(scope: Vec<ScopeRule>, policy: Option<LoadedPolicy>) -> Option<Filter> {
        if scope.is_empty() && policy.is_none() {
            None
        } else {
            Some(Filter { scope, policy })
        }
    }

    /// Decides for one event given as its JSON text.
    pub fn apply<'a>(&self, raw: &'a str) -> Verdict<'a> {
        let Ok(event) = AuditEvent::parse(raw) else {
            return Verdict::Unparsed;
        };
        if !self.scope.is_empty() && !self.scope.iter().any(|rule| rule.admits(&event)) {
            return Verdict::Filtered;
        }
        match &self.policy {
            None => Verdict::Ship(Cow::Borrowed(raw)),
            Some(policy) => match policy.apply(&event, raw) {
                Some(text) => Verdict::Ship(text),
                None => Verdict::Filtered,
            },
        }
    }
}

#[cfg(test)]
mod tests;
