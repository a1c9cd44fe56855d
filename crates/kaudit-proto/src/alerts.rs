//! Alerts: what a rule raised on a stored event (`GET /api/v1/alerts`).

use serde::{Deserialize, Serialize};

use crate::common::Priority;

/// A stored alert. `time`, `rule`, `priority`, `source`, `tags`, `output` and
/// `output_fields` have the meaning and spelling of Falco's JSON alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Opaque identifier.
    pub id: String,
    /// The event's time (its `stageTimestamp`), RFC 3339.
    pub time: String,
    /// Name of the rule that fired.
    pub rule: String,
    /// The rule's priority.
    pub priority: Priority,
    /// The policy the alert was raised under.
    pub policy: String,
    /// Always `k8s_audit`.
    pub source: String,
    /// The rule's tags, sorted.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The rendered output message.
    pub output: String,
    /// Field values used by the output: a string, an array of strings, or null.
    #[serde(default)]
    pub output_fields: serde_json::Map<String, serde_json::Value>,
    /// The cluster the event came from.
    pub cluster: String,
    /// Identifier of the event, for `GET /api/v1/events/{id}`.
    pub event_id: String,
    /// The event's `auditID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_id: Option<String>,
    /// The event's user, for display and filtering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The event's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Query parameters of `GET /api/v1/alerts` (and its `count`, `groups`, `histogram`).
/// Every filter is optional; given filters combine with AND.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFilter {
    /// Only alerts whose event time is at or after this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Only alerts whose event time is before this RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Only alerts at least this severe (`warning` keeps Warning and above).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_priority: Option<String>,
    /// Exact rule name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Exact policy name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// Exact cluster name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// Exact namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Exact user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Cursor from a previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
    /// Page size (default 100, at most 1000). On `.../count`: stop counting past this many
    /// (1 to 1,000,000; see [`crate::Count`]); absent, the count is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}
