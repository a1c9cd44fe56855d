//! Storage interface for events, alerts, intakes and tokens, and the backend contract test suite.
//!
//! Owns: the storage traits ([`EventWriter`], [`EventQuery`], [`AlertQuery`], [`IntakeStore`],
//! [`TokenStore`], [`ConfigStore`], [`Retention`], [`Migrator`], and the umbrella [`Store`]),
//! the plain owned row types the server fills from `kaudit-model` events, the query and
//! pagination types, key hashing, and (behind the `testsuite` feature) the contract suite every
//! backend runs.
//!
//! Must never: contain SQL, depend on a database driver, the rules engine or an HTTP crate.
//!
//! # Calling convention
//!
//! Every trait method is blocking. Async callers (the server) call them through
//! `tokio::task::spawn_blocking`; a backend may block on disk I/O, on a commit's `fsync`, or on
//! a queue behind other writers, so calling it directly on an async worker thread would stall
//! the runtime. All traits are object safe and `Send + Sync`: the server holds an
//! `Arc<dyn Store>` and chooses the backend at startup.
//!
//! # Data model in brief
//!
//! * Times are nanoseconds since the Unix epoch (`i64`).
//! * An event is stored once per dedupe key (cluster, auditID, stage, digest of the raw event):
//!   a retried batch stores nothing twice ([`EventWriter::insert_batch`]).
//! * Searches are newest first, ordered by (event time, id) descending, with keyset cursors
//!   ([`Cursor`]): a page never repeats or skips a row that existed when the first page was read,
//!   whatever is inserted meanwhile.

mod error;
mod query;
mod rows;
mod secret;
mod traits;

#[cfg(feature = "testsuite")]
pub mod testsuite;

#[cfg(test)]
mod tests;

pub use error::StoreError;
pub use query::{
    AlertFilter, AlertGroupField, Cursor, EventFilter, EventGroupField, GroupCount, HistogramBucket, Page,
    PageRequest, TimeRange, UserMatch,
};
pub use rows::{
    AlertFields, AlertId, ApiToken, BatchOutcome, EventFields, EventId, FullEvent, Insertion, Intake,
    IntakeId, NewAlert, NewEvent, NewIntake, NewToken, Policy, Purged, Role, RuleFile, StoredAlert,
    StoredEvent, TokenId, event_digest,
};
pub use secret::KeyHash;
pub use traits::{
    AlertQuery, ConfigStore, EventQuery, EventWriter, IntakeStore, Migrator, Retention, Store, TokenStore,
};

/// The result type of every storage call.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Imports every storage trait, so that methods can be called on an `Arc<dyn Store>`.
pub mod prelude {
    pub use crate::{
        AlertQuery, ConfigStore, EventQuery, EventWriter, IntakeStore, Migrator, Retention, Store, TokenStore,
    };
}
