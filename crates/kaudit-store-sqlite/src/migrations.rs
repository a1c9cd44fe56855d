//! Versioned schema migrations: numbered SQL files embedded in the binary, a version table,
//! and all pending migrations applied in one transaction.

use kaudit_store::{Result, StoreError};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

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
        name: "blocks",
        sql: include_str!("../migrations/0002_blocks.sql"),
    },
    Migration {
        version: 3,
        name: "bloom_slices",
        sql: include_str!("../migrations/0003_bloom_slices.sql"),
    },
    Migration {
        version: 4,
        name: "raw_chunks",
        sql: include_str!("../migrations/0004_raw_chunks.sql"),
    },
];

const VERSION_TABLE: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_ns INTEGER NOT NULL
)";

/// The version the database is at (0 for an empty database).
pub(crate) fn current_version(conn: &Connection) -> Result<i64> {
    let has_table: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(|e| StoreError::backend("reading the schema version", e))?;
    if has_table.is_none() {
        return Ok(0);
    }
    conn.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
        [],
        |r| r.get(0),
    )
    .map_err(|e| StoreError::backend("reading the schema version", e))
}

/// Brings the database to the newest version in `migrations`, all pending steps in one
/// transaction: on any failure the database stays exactly at its previous version. A database
/// newer than `migrations` knows is refused untouched.
pub(crate) fn migrate(conn: &mut Connection, migrations: &[Migration]) -> Result<i64> {
    let newest = migrations.last().map_or(0, |m| m.version);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| StoreError::backend("starting the migration transaction", e))?;
    tx.execute_batch(VERSION_TABLE)
        .map_err(|e| StoreError::backend("creating the schema version table", e))?;
    let current = current_version(&tx)?;
    if current > newest {
        return Err(StoreError::SchemaTooNew {
            found: current,
            supported: newest,
        });
    }
    let now_ns = now_ns();
    for migration in migrations.iter().filter(|m| m.version > current) {
        let failed = |e: rusqlite::Error| StoreError::Migration {
            version: migration.version,
            name: migration.name,
            source: Box::new(e),
        };
        tx.execute_batch(migration.sql).map_err(failed)?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_ns) VALUES (?1, ?2, ?3)",
            rusqlite::params![migration.version, migration.name, now_ns],
        )
        .map_err(failed)?;
    }
    tx.commit()
        .map_err(|e| StoreError::backend("committing migrations", e))?;
    Ok(newest.max(current))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
