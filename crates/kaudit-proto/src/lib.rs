//! The types that cross kaudit's process boundaries: the intake acknowledgement, and the
//! requests and responses of the JSON API under `/api/v1` that the CLI, the web UI and the
//! agent use.
//!
//! Owns: serde shapes and their field names, which are the public protocol documented in
//! `docs/intake-protocol.md` and `docs/openapi.yaml`.
//!
//! Must never: contain logic beyond conversions, know about HTTP frameworks, storage or the
//! rule engine. A field rename here is a protocol change.
//!
//! Conventions: field names are `snake_case`, except policy scopes, which keep the
//! admission-webhook spelling (`apiGroups`, ...); times are RFC 3339 strings in UTC with
//! nanoseconds; optional fields are omitted when empty; every error is `{"error": "..."}`.

pub mod admin;
pub mod alerts;
pub mod common;
pub mod events;
pub mod intake;
pub mod rules;

pub use admin::{CreateIntake, CreateToken, CreatedIntake, CreatedToken, Intake, Role, Token, WhoAmI};
pub use alerts::{Alert, AlertFilter};
pub use common::{
    Bucket, Count, ErrorBody, GroupCount, GroupQuery, Groups, Histogram, HistogramQuery, Page, Priority,
};
pub use events::{Event, EventDetail, EventFilter};
pub use intake::IntakeAck;
pub use rules::{
    Policy, PolicyPatch, PolicyRules, PutRuleFile, RuleFile, RuleFileSummary, RuleInfo, ScopeKind, ScopeRule,
    TestRules, TestRulesResult,
};
