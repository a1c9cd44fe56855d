//! The one error type of every storage call.

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database driver or engine failed; `context` names the operation.
    #[error("database error while {context}")]
    Backend {
        /// The operation that failed, e.g. "inserting a batch".
        context: &'static str,
        /// The driver's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A batch is malformed before any write: an alert names an event position that is not in
    /// the batch, or a value does not fit the schema. Nothing of the batch was stored.
    #[error("invalid batch at position {position}: {reason}")]
    InvalidBatch {
        /// Position (0-based) of the offending item in its list (events or alerts).
        position: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A query parameter is out of range (a zero page size, a zero histogram bucket width).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A pagination cursor that this store did not produce.
    #[error("invalid cursor")]
    InvalidCursor,
    /// A name that must be unique is taken (intake, token).
    #[error("{what} named {name:?} already exists")]
    Conflict {
        /// The kind of object ("intake", "token").
        what: &'static str,
        /// The name asked for.
        name: String,
    },
    /// A stored value could not be read back (corrupt raw event, unknown enum value).
    #[error("corrupt stored data in {what}: {reason}")]
    Corrupt {
        /// Where: table and column.
        what: &'static str,
        /// What could not be decoded.
        reason: String,
    },
    /// The database's schema is newer than this build knows; refusing to touch it.
    #[error("database schema version {found} is newer than the newest this build knows ({supported})")]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i64,
        /// The newest version this build ships.
        supported: i64,
    },
    /// A migration failed; the database stays at the previous version.
    #[error("migration {version} ({name}) failed")]
    Migration {
        /// The version of the failing migration.
        version: i64,
        /// Its name.
        name: &'static str,
        /// The engine's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store was shut down (its writer thread stopped).
    #[error("store is closed")]
    Closed,
}

impl StoreError {
    /// Wraps a driver error with the operation it happened in.
    pub fn backend(context: &'static str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        StoreError::Backend {
            context,
            source: Box::new(source),
        }
    }
}
