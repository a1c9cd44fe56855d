//! The PostgreSQL backend of the kaudit store (`--database postgres://...`).
//!
//! Owns: the PostgreSQL schema and its migrations (`migrations/*.sql`), and the SQL of every
//! storage operation. Must never: depend on the rules engine, an HTTP crate, or be used by the
//! agent or the CLI.
//!
//! The database must be UTF-8 (`ENCODING 'UTF8'`): events carry text in any script, and the
//! store refuses to open any other (see `check_encoding`).
//!
//! # Threading model
//!
//! The [`kaudit_store`] traits are blocking; the server calls them from
//! `tokio::task::spawn_blocking`. [`PgStore`] keeps a small pool of blocking connections (the
//! `postgres` crate): each call takes one, so concurrent intake batches run as concurrent
//! transactions and the server's own group commit (`commit_delay` aside) does the rest. The
//! unique dedupe index makes two transactions inserting the same event wait for each other and
//! store it once.
//!
//! # Durability
//!
//! A batch is one transaction; `insert_batch` returns after `COMMIT`, which with the server's
//! default `synchronous_commit = on` means the WAL is flushed to disk. Running the server with
//! `synchronous_commit = off` trades that for speed, and breaks the "2xx means stored" promise
//! for the last fraction of a second before a server crash.
//!
//! # Searches
//!
//! A newest-first page is searched in time windows from the newest end of the range
//! backwards, each window sized from the matches found so far, so that no plan PostgreSQL picks
//! (walking an index in time order, or collecting and sorting every match) costs more than a
//! window. Users, namespaces, resources, names and source IPs have `(value, time_ns, id)`
//! indexes; cluster, verb, subresource, user agent, response code and decision have small
//! single-column indexes, the groups a GIN index, and free text a trigram index: filters on
//! these are checked row by row while matches are common and asked of their indexes once they
//! prove rare (see `read.rs`).
//!
//! No index key holds a value of unbounded length (schema version 4): a btree entry holds at
//! most 2.7 KB, and an event or alert with a longer value it cannot compress would otherwise
//! fail its whole batch, which the sender then retries forever. The indexes above hold values
//! of up to 2000 bytes (all real ones), and a `_long` index beside each holds the first 500
//! characters of longer values; each condition names the one that can hold its value, and the
//! column decides (see `read.rs`).
//!
//! # Event counts
//!
//! Grouped counts, histograms and counts whose filter is a time range and at most a cluster
//! (the overview's queries) add up stored counts per minute, 10 minutes, hour and day instead
//! of reading every event of the range. Triggers on `events` append the counts of each
//! inserting or deleting statement in its own transaction, without a lock any other writer
//! waits for; a background thread of each store merges them every few seconds (one process
//! at a time, under an advisory lock). Answers are exact at every moment (see `counts.rs`).
//!
//! # Free text
//!
//! When the `pg_trgm` extension is installed (or can be created, in `public`) a GIN trigram
//! index over requestURI and object name serves rare free text; otherwise free text is checked
//! row by row on the walk in time order (give it a time range or other filters).

mod admin;
mod counts;
mod migrations;
mod read;
mod write;

#[cfg(test)]
mod tests;

use std::sync::Mutex;

use kaudit_store::{
    AlertFilter, AlertGroupField, AlertQuery, ApiToken, BatchOutcome, ConfigStore, EventFilter,
    EventGroupField, EventId, EventQuery, EventWriter, FullEvent, GroupCount, HistogramBucket, Intake,
    IntakeId, IntakeStore, KeyHash, Migrator, NewAlert, NewEvent, NewIntake, NewToken, Page, PageRequest,
    Policy, Purged, Result, Retention, RuleFile, StoreError, StoredAlert, StoredEvent, TokenId, TokenStore,
};
use postgres::{Client, NoTls};

pub use migrations::{MIGRATIONS, Migration};

/// How to reach the database and how many connections to keep.
#[derive(Clone, Debug)]
pub struct PgConfig {
    /// A libpq-style connection string or `postgres://` URL.
    pub url: String,
    /// Schema holding kaudit's tables (created if missing); `None` uses the connection's
    /// default search path. Tests give each store its own schema.
    pub schema: Option<String>,
    /// Connections kept open.
    pub pool_size: usize,
    /// zstd level for raw events.
    pub zstd_level: i32,
}

impl PgConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> PgConfig {
        PgConfig {
            url: url.into(),
            schema: None,
            pool_size: 8,
            zstd_level: 1,
        }
    }
}

/// A kaudit store in a PostgreSQL database.
pub struct PgStore {
    config: PgConfig,
    pool: Mutex<Vec<Client>>,
    trigram_index: bool,
    /// Moves the event counts that writes append into the stored counts; `None` in tests that
    /// compact by hand.
    compactor: Option<counts::Compactor>,
}

impl PgStore {
    /// Connects, refuses a database whose encoding is not UTF-8 (an [`StoreError::Backend`]
    /// naming the database, its encoding and how to create a UTF-8 one), applies pending
    /// migrations in one transaction (serialized across processes by an advisory lock), and
    /// creates the trigram index when `pg_trgm` is available. A background thread keeps the
    /// event counts compacted while the store lives.
    pub fn connect(config: PgConfig) -> Result<PgStore> {
        PgStore::open(config, true)
    }

    /// [`PgStore::connect`], with or without the background compaction of event counts.
    fn open(config: PgConfig, compact_in_background: bool) -> Result<PgStore> {
        if let Some(schema) = &config.schema
            && !is_identifier(schema)
        {
            return Err(StoreError::InvalidQuery(format!(
                "schema name {schema:?} is not a plain identifier"
            )));
        }
        let mut store = PgStore {
            config,
            pool: Mutex::new(Vec::new()),
            trigram_index: false,
            compactor: None,
        };
        let mut client = connect_to_database(&store.config)?;
        check_encoding(&mut client)?;
        configure_session(&mut client, &store.config)?;
        migrations::migrate(&mut client, MIGRATIONS)?;
        store.trigram_index = migrations::ensure_trigram_index(&mut client);
        store.give_back(client);
        if compact_in_background {
            store.compactor = Some(counts::Compactor::start(store.config.clone()));
        }
        Ok(store)
    }

    /// Whether free text is served by a trigram index.
    pub fn has_trigram_index(&self) -> bool {
        self.trigram_index
    }

    /// Moves the event counts appended by writes into the stored counts now, unless another
    /// connection is doing it (then `Ok(false)`). The store does this in the background every
    /// few seconds while it writes; answers are the same before and after.
    pub fn compact_event_counts(&self) -> Result<bool> {
        self.with_client(|c| Ok(counts::compact(c)?.is_some()))
    }

    /// Tells the compactor that the store wrote.
    fn wrote(&self) {
        if let Some(compactor) = &self.compactor {
            compactor.notify();
        }
    }

    fn give_back(&self, client: Client) {
        if client.is_closed() {
            return;
        }
        if let Ok(mut pool) = self.pool.lock()
            && pool.len() < self.config.pool_size
        {
            pool.push(client);
        }
    }

    /// Runs `f` on a pooled connection.
    fn with_client<T>(&self, f: impl FnOnce(&mut Client) -> Result<T>) -> Result<T> {
        let pooled = self.pool.lock().ok().and_then(|mut pool| pool.pop());
        let mut client = match pooled {
            Some(client) => client,
            None => open_client(&self.config)?,
        };
        let result = f(&mut client);
        self.give_back(client);
        result
    }
}

/// A new connection to the store's database, in its schema.
fn open_client(config: &PgConfig) -> Result<Client> {
    let mut client = connect_to_database(config)?;
    configure_session(&mut client, config)?;
    Ok(client)
}

/// A new connection to the store's database, as the server opens it.
fn connect_to_database(config: &PgConfig) -> Result<Client> {
    postgres::Config::from_str_checked(&config.url)?
        .connect(NoTls)
        .map_err(|e| StoreError::backend("connecting to PostgreSQL", e))
}

/// Refuses a database whose encoding is not UTF-8, before the store touches it.
///
/// Events carry text in any script. A database in LATIN1 or another single-byte encoding
/// refuses a value holding a character it lacks, and with it the whole batch, which the
/// sender then retries forever. `SQL_ASCII` stores the bytes unchecked but counts them as
/// characters, so the first characters of a long value (its `_long` index key, see `read.rs`)
/// can end inside a UTF-8 character and read back as invalid text.
///
/// The client encoding is UTF-8: the driver asks for it at connect, and that wins over a
/// `-c client_encoding=...` in the connection's options and over role and database defaults
/// (the server applies them first). It is read in the same query all the same, since text
/// the server converted to another encoding would not come back as it was sent.
fn check_encoding(client: &mut Client) -> Result<()> {
    let fail = |e| StoreError::backend("checking the database encoding", e);
    let row = client
        .query_one(
            "SELECT current_database()::text, current_setting('server_encoding'), current_setting('client_encoding')",
            &[],
        )
        .map_err(fail)?;
    let setting = |i| row.try_get::<_, String>(i).map_err(fail);
    let (database, server, client) = (setting(0)?, setting(1)?, setting(2)?);
    if server == UTF8 && client == UTF8 {
        return Ok(());
    }
    Err(StoreError::backend(
        "checking the database encoding",
        EncodingError {
            database,
            server,
            client,
        },
    ))
}

/// The name PostgreSQL gives the UTF-8 encoding in `server_encoding` and `client_encoding`.
const UTF8: &str = "UTF8";

/// A database or connection whose encoding is not UTF-8 ([`check_encoding`]).
#[derive(Debug)]
struct EncodingError {
    database: String,
    server: String,
    client: String,
}

impl std::fmt::Display for EncodingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let EncodingError {
            database,
            server,
            client,
        } = self;
        if server != UTF8 {
            write!(
                f,
                "database {database:?} has encoding {server}, and kaudit needs a UTF8 database to store \
                 text in any script: create one with ENCODING 'UTF8' (for example CREATE DATABASE kaudit \
                 ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0) and connect kaudit to it"
            )
        } else {
            write!(
                f,
                "the connection to database {database:?} has client encoding {client}, and kaudit sends \
                 UTF-8 (the driver asks for UTF8 at connect: something between, such as a connection \
                 pooler, changed it)"
            )
        }
    }
}

impl std::error::Error for EncodingError {}

/// Selects the store's schema and sets [`SESSION_SETTINGS`].
fn configure_session(client: &mut Client, config: &PgConfig) -> Result<()> {
    if let Some(schema) = &config.schema {
        // The schema name was checked to be a plain identifier.
        client
            .batch_execute(&format!(
                "CREATE SCHEMA IF NOT EXISTS {schema}; SET search_path TO {schema}, public"
            ))
            .map_err(|e| StoreError::backend("selecting the schema", e))?;
    }
    client
        .batch_execute(SESSION_SETTINGS)
        .map_err(|e| StoreError::backend("configuring the session", e))
}

/// Settings of every session of the store, set as each connection opens: its pooled
/// connections and the compactor's alike.
///
/// JIT compilation pays off for long analytical queries; for counts and groupings over a few
/// million events it cost 0.3 to 0.8 s of compiling, more than it saved.
///
/// Parallel plans pay off for scans of millions of rows on idle cores. The store's statements
/// are a page of a search inside a time window, sums of stored event counts and index probes,
/// each a few milliseconds, and up to a pool's worth of them run at once beside intake; a
/// Gather starts worker processes and merges their rows, which costs more than such a
/// statement saves. Once the counts table was analyzed, PostgreSQL planned "top users over
/// the last 30 minutes" in parallel and it took 16.3 ms at p50 instead of 6.9 ms
/// (docs/benchmarks.md). The setting is per session, not per statement, because no statement
/// of the store is one that parallel workers are for: the server runs concurrent requests,
/// not one big query, and counts over long ranges add up stored counts.
const SESSION_SETTINGS: &str = "SET jit = off; SET max_parallel_workers_per_gather = 0";

/// Parsing of the connection string, with the error mapped.
trait CheckedConfig: Sized {
    fn from_str_checked(url: &str) -> Result<Self>;
}

impl CheckedConfig for postgres::Config {
    fn from_str_checked(url: &str) -> Result<Self> {
        url.parse::<postgres::Config>()
            .map_err(|e| StoreError::backend("parsing the database URL", e))
    }
}

/// True for names safe to splice into SQL unquoted: `[a-z_][a-z0-9_]*`, at most 63 bytes.
fn is_identifier(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z' | b'_'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_'))
        && name.len() <= 63
}

impl EventWriter for PgStore {
    fn insert_batch(&self, events: &[NewEvent], alerts: &[NewAlert]) -> Result<BatchOutcome> {
        let encoded = write::encode_batch(events, alerts, self.config.zstd_level)?;
        let outcome = self.with_client(|c| write::insert_batch(c, &encoded))?;
        self.wrote();
        Ok(outcome)
    }
}

impl EventQuery for PgStore {
    fn search_events(&self, filter: &EventFilter, page: PageRequest) -> Result<Page<StoredEvent>> {
        self.with_client(|c| read::search_events(c, filter, page))
    }

    fn count_events(&self, filter: &EventFilter) -> Result<u64> {
        self.with_client(|c| read::count_events(c, filter))
    }

    fn count_events_upto(&self, filter: &EventFilter, limit: u64) -> Result<u64> {
        self.with_client(|c| read::count_events_upto(c, filter, limit))
    }

    fn get_event(&self, id: EventId) -> Result<Option<FullEvent>> {
        self.with_client(|c| read::get_event(c, id))
    }

    fn group_events(
        &self,
        filter: &EventFilter,
        field: EventGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>> {
        self.with_client(|c| read::group_events(c, filter, field, limit))
    }

    fn histogram_events(&self, filter: &EventFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>> {
        self.with_client(|c| read::histogram_events(c, filter, bucket_ns))
    }
}

impl AlertQuery for PgStore {
    fn search_alerts(&self, filter: &AlertFilter, page: PageRequest) -> Result<Page<StoredAlert>> {
        self.with_client(|c| read::search_alerts(c, filter, page))
    }

    fn count_alerts(&self, filter: &AlertFilter) -> Result<u64> {
        self.with_client(|c| read::count_alerts(c, filter))
    }

    fn count_alerts_upto(&self, filter: &AlertFilter, limit: u64) -> Result<u64> {
        self.with_client(|c| read::count_alerts_upto(c, filter, limit))
    }

    fn group_alerts(
        &self,
        filter: &AlertFilter,
        field: AlertGroupField,
        limit: u32,
    ) -> Result<Vec<GroupCount>> {
        self.with_client(|c| read::group_alerts(c, filter, field, limit))
    }

    fn histogram_alerts(&self, filter: &AlertFilter, bucket_ns: i64) -> Result<Vec<HistogramBucket>> {
        self.with_client(|c| read::histogram_alerts(c, filter, bucket_ns))
    }
}

impl IntakeStore for PgStore {
    fn create_intake(&self, intake: &NewIntake) -> Result<Intake> {
        self.with_client(|c| admin::create_intake(c, intake))
    }

    fn list_intakes(&self) -> Result<Vec<Intake>> {
        self.with_client(admin::list_intakes)
    }

    fn get_intake(&self, id: IntakeId) -> Result<Option<Intake>> {
        self.with_client(|c| admin::get_intake(c, id))
    }

    fn find_active_intake(&self, key_hash: &KeyHash) -> Result<Option<Intake>> {
        self.with_client(|c| admin::find_active_intake(c, key_hash))
    }

    fn revoke_intake(&self, id: IntakeId, now_ns: i64) -> Result<bool> {
        self.with_client(|c| admin::revoke(c, "intakes", id.0, now_ns))
    }
}

impl TokenStore for PgStore {
    fn create_token(&self, token: &NewToken) -> Result<ApiToken> {
        self.with_client(|c| admin::create_token(c, token))
    }

    fn list_tokens(&self) -> Result<Vec<ApiToken>> {
        self.with_client(admin::list_tokens)
    }

    fn find_active_token(&self, key_hash: &KeyHash) -> Result<Option<ApiToken>> {
        self.with_client(|c| admin::find_active_token(c, key_hash))
    }

    fn revoke_token(&self, id: TokenId, now_ns: i64) -> Result<bool> {
        self.with_client(|c| admin::revoke(c, "api_tokens", id.0, now_ns))
    }
}

impl ConfigStore for PgStore {
    fn put_rule_file(&self, file: &RuleFile) -> Result<()> {
        self.with_client(|c| admin::put_rule_file(c, file))
    }

    fn list_rule_files(&self) -> Result<Vec<RuleFile>> {
        self.with_client(admin::list_rule_files)
    }

    fn get_rule_file(&self, name: &str) -> Result<Option<RuleFile>> {
        self.with_client(|c| admin::get_rule_file(c, name))
    }

    fn delete_rule_file(&self, name: &str) -> Result<bool> {
        self.with_client(|c| admin::delete_by_name(c, "rule_files", name))
    }

    fn put_policy(&self, policy: &Policy) -> Result<()> {
        self.with_client(|c| admin::put_policy(c, policy))
    }

    fn list_policies(&self) -> Result<Vec<Policy>> {
        self.with_client(admin::list_policies)
    }

    fn get_policy(&self, name: &str) -> Result<Option<Policy>> {
        self.with_client(|c| admin::get_policy(c, name))
    }

    fn delete_policy(&self, name: &str) -> Result<bool> {
        self.with_client(|c| admin::delete_by_name(c, "policies", name))
    }

    fn put_setting(&self, key: &str, value: &str) -> Result<()> {
        self.with_client(|c| admin::put_setting(c, key, value))
    }

    fn get_setting(&self, key: &str) -> Result<Option<String>> {
        self.with_client(|c| admin::get_setting(c, key))
    }

    fn list_settings(&self) -> Result<Vec<(String, String)>> {
        self.with_client(admin::list_settings)
    }
}

impl Retention for PgStore {
    fn purge_chunk(&self, cutoff_ns: i64, max_events: u32) -> Result<Purged> {
        let purged = self.with_client(|c| write::purge_chunk(c, cutoff_ns, max_events))?;
        self.wrote();
        Ok(purged)
    }
}

impl Migrator for PgStore {
    fn schema_version(&self) -> Result<i64> {
        self.with_client(migrations::current_version)
    }
}
