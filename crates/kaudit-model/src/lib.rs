//! The typed, borrowed view of a Kubernetes `audit.k8s.io` Event, and reading audit input.
//!
//! Owns: parsing JSON lines files, webhook `EventList` bodies and JSON arrays into
//! [`AuditEvent`]s that borrow from the input buffer; the shared vocabulary types
//! ([`Priority`], [`Level`], [`Stage`]); RFC 3339 timestamps.
//!
//! Must never: do I/O, allocate per field when the input has no escapes, or panic on any
//! input. It depends on no async runtime, database or HTTP crate.
//!
//! Brief overview:
//! * [`read_input`] splits a buffer into events and reports what it skipped, with the
//!   place (line, item index) and the reason.
//! * [`AuditEvent`] keeps every top-level field as raw JSON text until asked; string
//!   leaves come back as [`Text`] (borrowed unless the JSON string had escapes). Request and
//!   response bodies stay raw ([`serde_json::value::RawValue`]) so that only consumers that
//!   need them pay for parsing them.

mod event;
mod input;
pub mod json;
mod outline;
mod scan;
mod time;
mod vocab;

pub use event::{AuditEvent, ObjectRef, ResponseStatus, Text, UserInfo};
pub use input::{
    Located, MAX_ARRAY_NESTING, MAX_NESTING, Position, Skip, SkipReason, read_input, read_json_lines,
};
pub use time::{TimeError, format_rfc3339_nanos, parse_rfc3339_nanos};
pub use vocab::{Level, ParseVocabError, Priority, Stage};
