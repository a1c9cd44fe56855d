//! Rules, policies and custom rule files (`/api/v1/rules`, `/api/v1/policies`,
//! `/api/v1/rule-files`).

use serde::{Deserialize, Serialize};

use crate::common::Priority;

/// A rule of the running rule set.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleInfo {
    /// The rule's name.
    pub name: String,
    /// The rule file that defines it (`default` for kaudit's own rules).
    pub file: String,
    /// The rule's priority.
    pub priority: Priority,
    /// The rule's tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The condition as written (macros not expanded).
    pub condition: String,
    /// The output template.
    pub output: String,
    /// `enabled` after the rule files and their selection are applied.
    pub enabled: bool,
    /// Policies that include the rule.
    #[serde(default)]
    pub policies: Vec<String>,
    /// True when the rule is enabled and belongs to at least one enabled policy: it raises
    /// alerts.
    pub active: bool,
}

/// A named group of rules, enabled or disabled, optionally limited to a scope of requests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Unique name (`notable-events`).
    pub name: String,
    /// What the policy is for.
    #[serde(default)]
    pub description: String,
    /// Whether its rules raise alerts.
    pub enabled: bool,
    /// Which rules belong to it.
    pub rules: PolicyRules,
    /// Which requests it applies to; absent or empty means every request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scope: Vec<ScopeRule>,
    /// True for the policies kaudit ships; they can be changed but not deleted.
    #[serde(default)]
    pub builtin: bool,
}

/// The rules of a policy: every rule named in `names` and every rule carrying one of `tags`.
/// `names` entries accept `*` wildcards; `files` selects every rule of the named rule files.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRules {
    /// Rule names, `*` matching any run of characters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub names: Vec<String>,
    /// Rule tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Rule files (`default`, or the name of a custom rule file).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
}

/// One entry of a policy scope, shaped like a `ValidatingWebhookConfiguration` rule
/// (`admissionregistration.k8s.io/v1` `RuleWithOperations`). A request is in scope when
/// every list admits it; `*` admits anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRule {
    /// API groups (`""` is the core group, `*` any).
    #[serde(default)]
    pub api_groups: Vec<String>,
    /// API versions (`v1`, `*`).
    #[serde(default)]
    pub api_versions: Vec<String>,
    /// `CREATE`, `UPDATE`, `DELETE`, `CONNECT` or `*` (see `docs/intake-protocol.md` for
    /// how audit verbs map to operations).
    #[serde(default)]
    pub operations: Vec<String>,
    /// Resources: `pods`, `pods/exec`, `*/scale`, `pods/*`, `*` (every resource, no
    /// subresource), `*/*` (everything).
    #[serde(default)]
    pub resources: Vec<String>,
    /// `Cluster`, `Namespaced` or `*` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<ScopeKind>,
}

/// Whether a scope entry admits cluster-scoped requests, namespaced ones, or both.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ScopeKind {
    /// Requests without a namespace.
    Cluster,
    /// Requests with a namespace.
    Namespaced,
    /// Both.
    #[default]
    #[serde(rename = "*")]
    Any,
}

/// Body of `PATCH /api/v1/policies/{name}`: the fields to change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPatch {
    /// New `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// New description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// New rule selection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<PolicyRules>,
    /// New scope (an empty list clears it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Vec<ScopeRule>>,
}

/// A custom rule file, without its content (`GET /api/v1/rule-files`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFileSummary {
    /// The file's name (letters, digits, `-`, `_`, `.`).
    pub name: String,
    /// Size of the content in bytes.
    pub size: u64,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

/// A custom rule file with its content (`GET /api/v1/rule-files/{name}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleFile {
    /// The file's name.
    pub name: String,
    /// The YAML text in the Falco rules language.
    pub content: String,
    /// Last change, RFC 3339.
    pub updated_at: String,
}

/// Body of `PUT /api/v1/rule-files/{name}` when sent as JSON (the raw YAML text is
/// accepted too, with a `Content-Type` other than JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutRuleFile {
    /// The YAML text in the Falco rules language.
    pub content: String,
}

/// Body of `POST /api/v1/rules/test`: run rules over stored events without raising alerts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestRules {
    /// A rule file to test (loaded after the default rules, so it may use their macros and
    /// lists). Absent: test the running rules as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Only events at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Only events before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Only events of this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Most alerts to return (default 100, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Answer to `POST /api/v1/rules/test`: what would have fired, newest event first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRulesResult {
    /// Events evaluated.
    pub scanned: u64,
    /// True when the scan stopped early (at `limit` alerts or at the scan budget).
    pub truncated: bool,
    /// The alerts that would have been raised (with `id` empty: they are not stored).
    pub alerts: Vec<crate::alerts::Alert>,
}
