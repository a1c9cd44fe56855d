//! Versioned schema migrations: numbered SQL files embedded in the binary, a version table,
//! all pending steps in one transaction under an advisory lock; and the optional trigram index.

use kaudit_store::{Result, StoreError};
use postgres::GenericClient;

/// One schema step.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// Schema version after this step (1, 2, ...; no gaps).
    pub version: i64,
    /// Short name, as in the file name.
    pub name: &'static str,
    /// The SQL script.
    pub sql: &'static str,
}

/// Every migration this build knows, in order.
pub static MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "initial",
        sql: include_str!("../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "value_indexes",
        sql: include_str!("../migrations/0002_value_indexes.sql"),
    },
    Migration {
        version: 3,
        name: "event_counts",
        sql: include_str!("../migrations/0003_event_counts.sql"),
    },
    Migration {
        version: 4,
        name: "bounded_index_keys",
        sql: include_str!("../migrations/0004_bounded_index_keys.sql"),
    },
];

/// Advisory lock key serializing migrations of concurrent kaudit processes ("kaudit" in ASCII).
const MIGRATION_LOCK: i64 = 0x6b61_7564_6974;

/// The version the schema is at (0 when empty).
pub(crate) fn current_version(client: &mut impl GenericClient) -> Result<i64> {
    let exists = client
        .query_one("SELECT to_regclass('schema_migrations') IS NOT NULL", &[])
        .map_err(|e| StoreError::backend("reading the schema version", e))?;
    if !exists.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", &[])
        .map_err(|e| StoreError::backend("reading the schema version", e))?;
    row.try_get(0)
        .map_err(|e| StoreError::backend("reading the schema version", e))
}

/// Brings the schema to the newest version in `migrations` in one transaction: on failure it
/// stays at its previous version. A schema newer than this build knows is refused untouched.
pub(crate) fn migrate(client: &mut postgres::Client, migrations: &[Migration]) -> Result<i64> {
    let newest = migrations.last().map_or(0, |m| m.version);
    let mut tx = client
        .transaction()
        .map_err(|e| StoreError::backend("starting the migration transaction", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .map_err(|e| StoreError::backend("locking for migrations", e))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT   NOT NULL,
            applied_ns BIGINT NOT NULL
        )",
    )
    .map_err(|e| StoreError::backend("creating the schema version table", e))?;
    let current = current_version(&mut tx)?;
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: newest,
        });
    }
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    for migration in migrations.iter().filter(|m| m.version > current) {
        let failed = |e: postgres::Error| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source: Box::new(e),
        };
        tx.batch_execute(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ns) VALUES ($1, $2, $3)",
            &[&migration.version, &migration.name, &now_ns],
        )
        .map_err(failed)?;
    }
    tx.commit()
        .map_err(|e| StoreError::backend("committing migrations", e))?;
    Ok(newest.max(current))
}

/// The schema holding the `pg_trgm` extension (as SQL text, quoted when needed), if installed.
fn trigram_schema(client: &mut postgres::Client) -> Option<String> {
    client
        .query_opt(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pg_trgm'",
            &[],
        )
        .ok()
        .flatten()
        .and_then(|row| row.try_get::<_, String>(0).ok())
}

/// Creates the GIN trigram index for free text if `pg_trgm` is installed or can be installed
/// here; returns whether the index exists. Without it free text still works, by scanning.
///
/// The extension is created in `public`, not in kaudit's schema: extensions belong to the
/// database, and one created in a kaudit schema would be dropped with that schema, taking the
/// trigram indexes of every other schema with it. The operator class is named with the
/// extension's schema, wherever an earlier installation put it.
pub(crate) fn ensure_trigram_index(client: &mut postgres::Client) -> bool {
    let mut schema = trigram_schema(client);
    if schema.is_none() {
        // Needs the privilege to create extensions; a failure (or a concurrent creation) is
        // fine. Without a usable `public`, the first schema of the search path takes it.
        if client
            .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
            .is_err()
        {
            let _ = client.batch_execute("CREATE EXTENSION IF NOT EXISTS pg_trgm");
        }
        schema = trigram_schema(client);
    }
    let Some(schema) = schema else {
        return false;
    };
    client
        .batch_execute(&format!(
            "CREATE INDEX IF NOT EXISTS events_text_trgm ON events
                 USING gin ((request_uri || ' ' || coalesce(name, '')) {schema}.gin_trgm_ops)"
        ))
        .is_ok()
}
