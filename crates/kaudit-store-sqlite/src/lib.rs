//! The SQLite backend of the kaudit store: the default, embedded database.
//!
//! Owns: the SQLite schema and its migrations (`migrations/*.sql`), the SQL of every storage
//! operation, and the threading model below. Must never: depend on the rules engine, an HTTP
//! crate or an async runtime, or be used by the agent or the CLI.
//!
//! # Threading model (how async code uses it)
//!
//! The [`kaudit_store`] traits are blocking; the server calls them from
//! `tokio::task::spawn_blocking`. Inside, [`SqliteStore`] has:
//!
//! * **One writer thread** owning the only write connection, fed by a bounded channel. It takes
//!   every write request waiting in the channel (up to [`SqliteConfig::max_jobs_per_commit`]),
//!   runs each in its own `SAVEPOINT` inside one `BEGIN IMMEDIATE` transaction, and commits once
//!   (group commit). A request that fails is rolled back to its savepoint alone; the others
//!   still commit. Callers are answered only after the `COMMIT` returned, so a 2xx from the
//!   intake always means "committed". SQLite allows one writer at a time anyway; funnelling
//!   writes through one thread removes lock contention and lets one `fsync` cover many batches.
//! * **A pool of reader connections** used directly by the calling thread. WAL mode lets them
//!   read a consistent snapshot while the writer commits.
//! * CPU work that needs no database (zstd compression of raw events, dedupe-key hashing) runs
//!   on the calling thread before the request is queued, so it spreads over cores.
//!
//! # Durability
//!
//! The database runs in WAL mode. [`Durability::Full`] (the default) is
//! `synchronous=FULL`: every commit is `fsync`ed before callers are answered, so a batch that
//! got a 2xx survives a process crash (`kill -9`) and a power loss or kernel crash. With
//! [`Durability::Normal`] (`synchronous=NORMAL`) a commit reaches the OS but the WAL is synced
//! only at checkpoints: a process crash loses nothing committed, a power loss can lose the last
//! commits (the database stays consistent). The default is `Full` because the kube-apiserver
//! forgets a batch once we answered 2xx: that answer must mean "stored". Group commit keeps the
//! cost to one `fsync` per group of batches, not per batch; `Normal` is for operators who accept
//! the power-loss window for less disk I/O.
//!
//! # Indexes and search
//!
//! Write cost decides the indexes (`migrations/*.sql` say why in detail). The `events` table
//! has only time-led indexes, which grow at their end. Value and free-text search go through
//! block summaries ([`blocks`]): Bloom filters over each run of 1024 events, written by the
//! writer thread in memory as events arrive and stored once per block. A search reads the
//! blocks whose filters admit all its values, newest first, and checks their rows exactly;
//! the newest events, above the last written block, are scanned by rowid. Results are always
//! complete. [`SqliteStore::flush_blocks`] writes the open block at once.
//!
//! Raw events are compressed on the calling thread, in runs of 32 consecutive events per zstd
//! frame (one `raw_chunks` row per run), with a dictionary trained on the store's first few
//! thousand events (stored in the database; earlier events stay readable without it).

mod admin;
mod blocks;
mod compression;
mod migrations;
mod read;
mod rollups;
mod writer;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use kaudit_store::{
    AlertFilter, AlertGroupField, AlertQuery, ApiToken, BatchOutcome, ConfigStore, EventFilter,
    EventGroupField, EventId, EventQuery, EventWriter, FullEvent, GroupCount, HistogramBucket, Intake,
    IntakeId, IntakeStore, KeyHash, Migrator, NewAlert, NewEvent, NewIntake, NewToken, Page, PageRequest,
    Policy, Purged, Result, Retention, RuleFile, StoreError, StoredAlert, StoredEvent, TokenId, TokenStore,
};
use rusqlite::Connection;

pub use migrations::{MIGRATIONS, Migration};

/// How hard a commit is pushed to disk before callers are answered (see the crate doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: survives process crashes and power loss.
    Full,
    /// `synchronous=NORMAL`: survives process crashes; a power loss may drop the last commits.
    Normal,
}

/// Tuning of a [`SqliteStore`].
#[derive(Clone, Debug)]
pub struct SqliteConfig {
    /// Commit durability.
    pub durability: Durability,
    /// Reader connections kept open (more are opened under load and closed after use).
    pub readers: usize,
    /// Page cache per reader connection, in KiB (the writer keeps a small one of its own).
    pub cache_kib: u32,
    /// zstd level for raw events (1 is fast; higher is smaller and slower).
    pub zstd_level: i32,
    /// Most write requests grouped into one commit.
    pub max_jobs_per_commit: usize,
    /// Write requests that may wait for the writer before callers block (back-pressure).
    pub queue_depth: usize,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        SqliteConfig {
            durability: Durability::Full,
            readers: 4,
            cache_kib: 256 * 1024,
            zstd_level: 1,
            max_jobs_per_commit: 64,
            queue_depth: 64,
        }
    }
}

/// A kaudit store in one SQLite database file (plus its `-wal` and `-shm` files).
pub struct SqliteStore {
    path: PathBuf,
    config: SqliteConfig,
    writer: writer::WriterHandle,
    readers: Mutex<Vec<Connection>>,
    compression: compression::Compression,
}

/// Page cache of the writer connection, KiB (readers use [`SqliteConfig::cache_kib`]).
const WRITER_CACHE_KIB: u32 = 16 * 1024;

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies pending migrations in one
    /// transaction, and starts the writer thread.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<SqliteStore> {
        let path = path.as_ref().to_path_buf();
        let mut conn = open_connection(&path, &config)?;
        migrations::migrate(&mut conn, MIGRATIONS)?;
        // The writer appends: it touches the right edge of each B-tree and the pages it just
        // wrote, so a small page cache serves it. A large one costs it on every commit, when
        // SQLite walks the cache to drop pages past the end of the database.
        conn.execute_batch(&format!(
            "PRAGMA wal_autocheckpoint = 50000; PRAGMA cache_size = -{WRITER_CACHE_KIB}"
        ))
        .map_err(|e| StoreError::backend("configuring the writer connection", e))?;
        let compression = compression::Compression::load(&conn, config.zstd_level)?;
        let checkpoint_conn = open_connection(&path, &config)?;
        let writer = writer::WriterHandle::start(conn, checkpoint_conn, &config)?;
        Ok(SqliteStore {
            path,
            config,
            writer,
            readers: Mutex::new(Vec::new()),
            compression,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the open block summary, however few events it holds, and writes it with every
    /// pending one (the writer otherwise writes a block once it holds 1024 events). Searches
    /// are complete either way; this only moves work, e.g. before measuring search latency.
    pub fn flush_blocks(&self) -> Result<()> {
        self.writer.call(|w| w.flush_blocks())
    }

    /// Runs `f` on a pooled reader connection.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self.readers.lock().ok().and_then(|mut pool| pool.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = open_connection(&self.path, &self.config)?;
                conn.execute_batch("PRAGMA query_only = ON")
                    .map_err(|e| StoreError::backend("configuring a reader connection", e))?;
                conn
            }
        };
        let result = f(&conn);
        if let Ok(mut pool) = self.readers.lock()
            && pool.len() < self.config.readers
        {
            pool.push(conn);
        }
        result
    }
}

/// Opens a connection with the pragmas every connection needs.
fn open_connection(path: &Path, config: &SqliteConfig) -> Result<Connection> {
    let conn = Connection::open(path).map_err(|e| StoreError::backend("opening the database", e))?;
    let synchronous = match config.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    let pragmas = format!(
        "PRAGMA journal_mode = WAL;
         PRAGMA synchronous = {synchronous};
         PRAGMA busy_timeout = 10000;
         PRAGMA cache_size = -{cache};
         PRAGMA temp_store = MEMORY;
         PRAGMA mmap_size = 1073741824;
         PRAGMA foreign_keys = OFF;",
        cache = config.cache_kib
    );
    conn.execute_batch(&pragmas)
        .map_err(|e| StoreError::backend("configuring the database connection", e))?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl EventWriter for SqliteStore {
    fn insert_batch(&self, events: &[NewEvent], alerts: &[NewAlert]) -> Result<BatchOutcome> {
        self.insert_batch_owned(events.to_vec(), alerts)
    }

    fn insert_batch_owned(&self, events: Vec<NewEvent>, alerts: &[NewAlert]) -> Result<BatchOutcome> {
        if let Some(dictionary) = self.compression.sample(&events) {
            let stored = dictionary.clone();
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
            // Without a stored dictionary events are compressed without one: correct, larger.
            if let Ok(id) = self.writer.call(move |w| w.store_dictionary(&stored, now_ns)) {
                self.compression.adopt(id, dictionary);
            }
        }
        let encoded = std::sync::Arc::new(writer::encode_batch(events, alerts, &self.compression)?);
        // The writer thread only borrows the batch: its thousands of strings are freed here,
        // on the caller's thread, once the writer let go of its reference.
        let shared = std::sync::Arc::clone(&encoded);
        let outcome = self.writer.call(move |w| w.insert_batch(&shared));
        drop(encoded);
        outcome
    }
}

impl EventQuery for SqliteStore {
    fn search_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>> {
        self.with_reader(|c| read::search_events(c, filter, page))
    }

    fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.with_reader(|c| read::count_events(c, filter))
    }

    fn count_events_upto(&self, filter: &EventFilter, limit: u64) -> Result<u64> {
        self.with_reader(|c| read::count_events_upto(c, filter, limit))
    }

    fn get_event(&self, id: EventId) -> Result<Option<FullEvent>> {
        self.with_reader(|c| read::get_event(c, id, &self.compression))
    }

    fn group_events(
        &self,
        filter: &EventFilter,
        field: EventGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>> {
        self.with_reader(|c| read::group_events(c, filter, field, limit))
    }

    fn histogram_events(&self, filter: &EventFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>> {
        self.with_reader(|c| read::histogram_events(c, filter, bucket_ns))
    }
}

impl AlertQuery for SqliteStore {
    fn search_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<StoredAlert>> {
        self.with_reader(|c| read::search_alerts(c, filter, page))
    }

    fn count_alerts(&self, filter: &AlertFilter) -> Result<u64> {
        self.with_reader(|c| read::count_alerts(c, filter))
    }

    fn count_alerts_upto(&self, filter: &AlertFilter, limit: u64) -> Result<u64> {
        self.with_reader(|c| read::count_alerts_upto(c, filter, limit))
    }

    fn group_alerts(
        &self,
        filter: &AlertFilter,
        field: AlertGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>> {
        self.with_reader(|c| read::group_alerts(c, filter, field, limit))
    }

    fn histogram_alerts(&self, filter: &AlertFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>> {
        self.with_reader(|c| read::histogram_alerts(c, filter, bucket_ns))
    }
}

impl IntakeStore for SqliteStore {
    fn create_intake(&self, intake: &NewIntake) -> Result<Intake> {
        let intake = intake.clone();
        self.writer.call(move |w| admin::create_intake(w.conn(), &intake))
    }

    fn list_intakes(&self) -> Result<Vec<Intake>> {
        self.with_reader(admin::list_intakes)
    }

    fn get_intake(&self, id: IntakeId) -> Result<Option<Intake>> {
        self.with_reader(|c| admin::get_intake(c, id))
    }

    fn find_active_intake(&self, key_hash: &KeyHash) -> Result<Option<Intake>> {
        self.with_reader(|c| admin::find_active_intake(c, key_hash))
    }

    fn revoke_intake(&self, id: IntakeId, now_ns: i64) -> Result<bool> {
        self.writer
            .call(move |w| admin::revoke(w.conn(), "intakes", id.0, now_ns))
    }
}

impl TokenStore for SqliteStore {
    fn create_token(&self, token: &NewToken) -> Result<ApiToken> {
        let token = token.clone();
        self.writer.call(move |w| admin::create_token(w.conn(), &token))
    }

    fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.with_reader(admin::list_tokens)
    }

    fn find_active_token(&self, key_hash: &KeyHash) -> Result<Option<ApiToken>> {
        self.with_reader(|c| admin::find_active_token(c, key_hash))
    }

    fn revoke_token(&self, id: TokenId, now_ns: i64) -> Result<bool> {
        self.writer
            .call(move |w| admin::revoke(w.conn(), "api_tokens", id.0, now_ns))
    }
}

impl ConfigStore for SqliteStore {
    fn put_rule_file(&self, file: &RuleFile) -> Result<()> {
        let file = file.clone();
        self.writer.call(move |w| admin::put_rule_file(w.conn(), &file))
    }

    fn list_rule_files(&self) -> Result<Vec<RuleFile>> {
        self.with_reader(admin::list_rule_files)
    }

    fn get_rule_file(&self, name: &str) -> Result<Option<RuleFile>> {
        self.with_reader(|c| admin::get_rule_file(c, name))
    }

    fn delete_rule_file(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.writer
            .call(move |w| admin::delete_by_name(w.conn(), "rule_files", &name))
    }

    fn put_policy(&self, policy: &Policy) -> Result<()> {
        let policy = policy.clone();
        self.writer.call(move |w| admin::put_policy(w.conn(), &policy))
    }

    fn list_policies(&self) -> Result<Vec<Policy>> {
        self.with_reader(admin::list_policies)
    }

    fn get_policy(&self, name: &str) -> Result<Option<Policy>> {
        self.with_reader(|c| admin::get_policy(c, name))
    }

    fn delete_policy(&self, name: &str) -> Result<bool> {
        let name = name.to_owned();
        self.writer
            .call(move |w| admin::delete_by_name(w.conn(), "policies", &name))
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        let (key, value) = (key.to_owned(), value.to_owned());
        self.writer
            .call(move |w| admin::put_setting(w.conn(), &key, &value))
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>> {
        self.with_reader(|c| admin::get_setting(c, key))
    }

    fn list_settings(&self) -> Result<Vec<(String, String)>> {
        self.with_reader(admin::list_settings)
    }
}

impl Retention for SqliteStore {
    fn purge_chunk(&self, cutoff_ns: i64, max_events: u32) -> Result<Purged> {
        self.writer.call(move |w| w.purge_chunk(cutoff_ns, max_events))
    }
}

impl Migrator for SqliteStore {
    fn schema_version(&self) -> Result<i64> {
        self.with_reader(migrations::current_version)
    }
}
