//! Tests of the PostgreSQL backend against the server on 127.0.0.1:5432 (or
//! `KAUDIT_TEST_POSTGRES_URL`): the shared contract suite and migrations, each test in its own
//! schema, dropped afterwards. Without a reachable server the tests print a notice and pass,
//! except under `CI=true`, where that is a failure.

use std::sync::atomic::{AtomicU64, Ordering};

use kaudit_store::testsuite::{self, Harness, T0};
use kaudit_store::{
    EventFilter, EventQuery, EventWriter, Migrator, PageRequest, Retention, Store, StoreError, TimeRange,
    UserMatch,
};
use postgres::{Client, NoTls};

use crate::migrations::{self, Migration};
use crate::{PgConfig, PgStore};

const DEFAULT_URLS: [&str; 2] = [
    "host=127.0.0.1 port=5432 user=postgres dbname=test",
    "host=127.0.0.1 port=5432 user=root dbname=test",
];

/// The first URL that accepts a connection, or `None` (after the CI check).
fn database_url() -> Option<String> {
    let candidates: Vec<String> = match std::env::var("KAUDIT_TEST_POSTGRES_URL") {
        Ok(url) => vec![url],
        Err(_) => DEFAULT_URLS.iter().map(|s| (*s).to_owned()).collect(),
    };
    let mut last_error = String::new();
    for url in candidates {
        match Client::connect(&url, NoTls) {
            Ok(_) => return Some(url),
            Err(e) => last_error = e.to_string(),
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("PostgreSQL is unreachable under CI=true: {last_error}");
    }
    eprintln!("notice: PostgreSQL unreachable ({last_error}); skipping PostgreSQL store tests");
    None
}

/// A schema name unique to this test.
fn fresh_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "kaudit_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        nanos
    )
}

/// A schema dropped (with everything in it) when the test ends.
struct Schema {
    url: String,
    name: String,
}

impl Drop for Schema {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
        }
    }
}

/// A store in its own schema.
struct PgHarness {
    store: PgStore,
    schema: Schema,
}

impl Harness for PgHarness {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    /// Moves the appended event counts into the stored ones (after the background compactor,
    /// if it held the lock).
    fn settle(&self) {
        while !self
            .store
            .compact_event_counts()
            .unwrap_or_else(|e| panic!("compact_event_counts: {e} ({e:?})"))
        {}
    }

    fn fail_inserts_of(&self, audit_id: &str) {
        let mut client = Client::connect(&self.schema.url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
        let s = &self.schema.name;
        let quoted = audit_id.replace('\'', "''");
        let sql = format!(
            "CREATE OR REPLACE FUNCTION {s}.fail_insert() RETURNS trigger LANGUAGE plpgsql AS $f$
             BEGIN
                 IF NEW.audit_id = '{quoted}' THEN RAISE EXCEPTION 'injected failure'; END IF;
                 RETURN NEW;
             END $f$;
             CREATE TRIGGER fail_insert BEFORE INSERT ON {s}.events FOR EACH ROW EXECUTE FUNCTION {s}.fail_insert();"
        );
        client
            .batch_execute(&sql)
            .unwrap_or_else(|e| panic!("trigger: {e}"));
    }
}

fn open_harness() -> Option<PgHarness> {
    open_in_fresh_schema(true)
}

/// A store in a schema of its own, compacting its event counts in the background or only
/// when told.
fn open_in_fresh_schema(compact_in_background: bool) -> Option<PgHarness> {
    let url = database_url()?;
    let schema = Schema {
        url: url.clone(),
        name: fresh_schema(),
    };
    let config = PgConfig {
        schema: Some(schema.name.clone()),
        pool_size: 4,
        ..PgConfig::new(url)
    };
    let store =
        PgStore::open(config, compact_in_background).unwrap_or_else(|e| panic!("connect: {e} ({e:?})"));
    Some(PgHarness { store, schema })
}

kaudit_store::store_contract_tests!(open_harness);

/// Runs migration lists in order on a fresh schema; returns outcomes and the tables present.
fn check_migrate(url: &str, steps: &[&[Migration]]) -> (Vec<Result<i64, String>>, Vec<String>) {
    let schema = Schema {
        url: url.to_owned(),
        name: fresh_schema(),
    };
    let mut client = Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    client
        .batch_execute(&format!("CREATE SCHEMA {0}; SET search_path TO {0}", schema.name))
        .unwrap_or_else(|e| panic!("schema: {e}"));
    let results = steps
        .iter()
        .map(|m| migrations::migrate(&mut client, m).map_err(|e| e.to_string()))
        .collect();
    let tables = client
        .query(
            "SELECT tablename::text FROM pg_tables WHERE schemaname = $1 ORDER BY tablename",
            &[&schema.name],
        )
        .unwrap_or_else(|e| panic!("tables: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    (results, tables)
}

const STEP_A: Migration = Migration {
    version: 1,
    name: "a",
    sql: "CREATE TABLE a (x INTEGER);",
};
const STEP_B: Migration = Migration {
    version: 2,
    name: "b",
    sql: "CREATE TABLE b (x INTEGER);",
};
const STEP_BAD: Migration = Migration {
    version: 3,
    name: "bad",
    sql: "CREATE TABLE c (x INTEGER); NOT SQL;",
};

#[test]
fn migrations_apply_in_order_once_and_atomically() {
    let Some(url) = database_url() else { return };
    type Case<'a> = (
        &'a str,
        Vec<&'a [Migration]>,
        Vec<Result<i64, String>>,
        Vec<&'a str>,
    );
    let cases: Vec<Case> = vec![
        (
            "fresh",
            vec![&[STEP_A, STEP_B]],
            vec![Ok(2)],
            vec!["a", "b", "schema_migrations"],
        ),
        (
            "upgrade from 1",
            vec![&[STEP_A], &[STEP_A, STEP_B]],
            vec![Ok(1), Ok(2)],
            vec!["a", "b", "schema_migrations"],
        ),
        (
            "rerun is a no-op",
            vec![&[STEP_A], &[STEP_A]],
            vec![Ok(1), Ok(1)],
            vec!["a", "schema_migrations"],
        ),
        (
            "a failing step rolls back every pending step",
            vec![&[STEP_A], &[STEP_A, STEP_B, STEP_BAD]],
            vec![Ok(1), Err("migration 3 (bad) failed".to_owned())],
            vec!["a", "schema_migrations"],
        ),
        (
            "a newer schema is refused",
            vec![&[STEP_A, STEP_B], &[STEP_A]],
            vec![
                Ok(2),
                Err("database schema version 2 is newer than the newest this build knows (1)".to_owned()),
            ],
            vec!["a", "b", "schema_migrations"],
        ),
    ];
    for (name, steps, want_results, want_tables) in cases {
        let (results, tables) = check_migrate(&url, &steps);
        assert_eq!(results, want_results, "{name}");
        assert_eq!(tables, want_tables, "{name}");
    }
    let shipped = migrations::MIGRATIONS.last().map_or(0, |m| m.version);
    let (results, _) = check_migrate(&url, &[migrations::MIGRATIONS]);
    assert_eq!(
        results,
        vec![Ok(shipped)],
        "the shipped migrations apply to an empty schema"
    );
}

#[test]
fn trigram_index_is_used_when_pg_trgm_is_available() {
    let Some(harness) = open_harness() else { return };
    let mut client = Client::connect(&harness.schema.url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    let has_extension = client
        .query_opt("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'", &[])
        .map(|r| r.is_some())
        .unwrap_or(false);
    assert_eq!(harness.store.has_trigram_index(), has_extension);
}

/// Every connection of the store, the one `open` pooled and one opened while that one is
/// taken, plans without parallel workers and without JIT: the store's statements take a few
/// milliseconds, and parallel plans made them slower (see `SESSION_SETTINGS`).
#[test]
fn store_sessions_plan_without_parallel_workers_or_jit() {
    let Some(harness) = open_harness() else { return };
    let store = &harness.store;
    let settings = |client: &mut Client| {
        let row = client
            .query_one(
                "SELECT current_setting('max_parallel_workers_per_gather'), current_setting('jit')",
                &[],
            )
            .unwrap_or_else(|e| panic!("reading the session's settings: {e}"));
        (row.get::<_, String>(0), row.get::<_, String>(1))
    };
    let (pooled, fresh) = store
        .with_client(|pooled| {
            let fresh = store.with_client(|fresh| Ok(settings(fresh)))?;
            Ok((settings(pooled), fresh))
        })
        .unwrap_or_else(|e| panic!("with_client: {e}"));
    let want = ("0".to_owned(), "off".to_owned());
    assert_eq!(pooled, want, "the connection opened with the store");
    assert_eq!(fresh, want, "a connection opened for a call");
}

/// A database created for a test, dropped (with any connection left to it) when it ends.
struct Database {
    url: String,
    name: String,
}

impl Database {
    /// A new database with `encoding` (and the "C" locale, which suits any encoding).
    fn create(url: &str, encoding: &str) -> Database {
        let database = Database {
            url: url.to_owned(),
            name: fresh_schema(),
        };
        let mut client = Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
        client
            .batch_execute(&format!(
                "CREATE DATABASE {} ENCODING '{encoding}' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
                database.name
            ))
            .unwrap_or_else(|e| panic!("creating a {encoding} database: {e}"));
        database
    }

    /// `url` with this database instead of its own: a `postgres://` URL's path, or a
    /// `dbname` that overrides the one before it in a key-value string.
    fn url(&self) -> String {
        let name = &self.name;
        for scheme in ["postgres://", "postgresql://"] {
            if let Some(rest) = self.url.strip_prefix(scheme) {
                let (address, query) = rest.split_once('?').unwrap_or((rest, ""));
                let authority = address
                    .split_once('/')
                    .map_or(address, |(authority, _)| authority);
                return format!("{scheme}{authority}/{name}?{query}");
            }
        }
        format!("{} dbname={name}", self.url)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Ok(mut client) = Client::connect(&self.url, NoTls) {
            let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
        }
    }
}

/// Issue 4: on a database that is not UTF-8, some events would be refused at insert and their
/// batches retried forever (LATIN1), or long values' index keys cut inside a character
/// (`SQL_ASCII`). The store refuses to open, naming the database, its encoding and what to
/// do, before it creates anything there.
#[test]
fn issue_4_a_database_not_in_utf8_is_refused() {
    let Some(url) = database_url() else { return };
    for encoding in ["LATIN1", "SQL_ASCII"] {
        let database = Database::create(&url, encoding);
        let schema = fresh_schema();
        let config = PgConfig {
            schema: Some(schema.clone()),
            ..PgConfig::new(database.url())
        };
        let error = match PgStore::connect(config) {
            Ok(_) => panic!("a {encoding} database was opened"),
            Err(error) => error,
        };
        assert!(
            matches!(
                error,
                StoreError::Backend {
                    context: "checking the database encoding",
                    ..
                }
            ),
            "{encoding}: {error:?}"
        );
        let reason = std::error::Error::source(&error).map_or(String::new(), ToString::to_string);
        let expected = format!(
            "database {:?} has encoding {encoding}, and kaudit needs a UTF8 database",
            database.name
        );
        assert!(reason.starts_with(&expected), "{encoding}: {reason}");
        assert!(
            reason.contains("CREATE DATABASE kaudit ENCODING 'UTF8'"),
            "{encoding}: {reason}"
        );
        let mut client = Client::connect(&database.url(), NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
        let created = client
            .query_one("SELECT COUNT(*) FROM pg_namespace WHERE nspname = $1", &[&schema])
            .map(|row| row.get::<_, i64>(0))
            .unwrap_or_else(|e| panic!("looking for the schema: {e}"));
        assert_eq!(created, 0, "{encoding}: the store created its schema");
    }
}

/// Every page of `filter` at `limit` rows, followed by cursor.
fn every_page(store: &PgStore, filter: &EventFilter, limit: u32) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search_events(filter, PageRequest { limit, cursor })
            .unwrap_or_else(|e| panic!("search: {e}"));
        assert!(page.items.len() <= limit as usize, "page longer than {limit}");
        ids.extend(page.items.iter().map(|e| e.id.0));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

/// Searches run window by window from the newest end (a few rows per window under test):
/// every match comes once and in order, whatever the page size, when window edges fall on
/// events one nanosecond apart or sharing a time, across a gap of days, and when filters on
/// rare values, free text and user agents switch from checking rows to asking their indexes.
#[test]
fn searches_over_many_time_windows_miss_nothing() {
    let Some(harness) = open_harness() else { return };
    let store = &harness.store;
    let day = 86_400_000_000_000i64;
    let mut events = Vec::new();
    for i in 0..400i64 {
        // Three events per nanosecond, the first 40 ten days before the rest.
        let time = T0 + i / 3 - if i < 40 { 10 * day } else { 0 };
        let mut event = testsuite::event("prod", &format!("win-{i:04}"), time);
        event.fields.username = match i % 37 {
            0 => "system:serviceaccount:monitoring:prometheus".to_owned(),
            1 => "system:serviceaccount:monitoring:grafana".to_owned(),
            _ => format!("user-{}", i % 5),
        };
        if i % 43 == 0 {
            let f = &mut event.fields;
            f.cluster = "staging".to_owned();
            f.verb = "delete".to_owned();
            f.subresource = Some("exec".to_owned());
            f.groups.push("system:masters".to_owned());
            f.response_code = Some(403);
            f.decision = Some("forbid".to_owned());
        }
        if i % 41 == 0 {
            event.fields.user_agent = Some("curl/8.5.0".to_owned());
            event.fields.name = Some(format!("tmp-admin-{i}"));
        }
        events.push(testsuite::with_raw(event.fields));
    }
    let outcome = store
        .insert_batch(&events, &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let ids: Vec<i64> = outcome
        .events
        .iter()
        .map(|i| match i {
            kaudit_store::Insertion::New(id) => id.0,
            kaudit_store::Insertion::Duplicate => panic!("no duplicates were sent"),
        })
        .collect();
    type Case<'a> = (&'a str, EventFilter, Box<dyn Fn(i64) -> bool + 'a>);
    let cases: Vec<Case> = vec![
        ("everything", EventFilter::default(), Box::new(|_| true)),
        (
            "a rare user",
            EventFilter {
                user: Some(UserMatch::Exact(
                    "system:serviceaccount:monitoring:prometheus".to_owned(),
                )),
                ..EventFilter::default()
            },
            Box::new(|i| i % 37 == 0),
        ),
        (
            "a user prefix",
            EventFilter {
                user: Some(UserMatch::Prefix("system:serviceaccount:monitoring:".to_owned())),
                ..EventFilter::default()
            },
            Box::new(|i| i % 37 < 2),
        ),
        (
            "rare values of every column without a time-ordered index",
            EventFilter {
                cluster: Some("staging".to_owned()),
                verb: Some("delete".to_owned()),
                subresource: Some("exec".to_owned()),
                group: Some("system:masters".to_owned()),
                response_code: Some(403),
                decision: Some("forbid".to_owned()),
                ..EventFilter::default()
            },
            Box::new(|i| i % 43 == 0),
        ),
        (
            "a rare group",
            EventFilter {
                group: Some("system:masters".to_owned()),
                ..EventFilter::default()
            },
            Box::new(|i| i % 43 == 0),
        ),
        (
            "a rare user agent, in other case",
            EventFilter {
                user_agent_contains: Some("CURL/8".to_owned()),
                ..EventFilter::default()
            },
            Box::new(|i| i % 41 == 0),
        ),
        (
            "rare free text across a word boundary, in other case",
            EventFilter {
                text: Some("TMP-admin-".to_owned()),
                ..EventFilter::default()
            },
            Box::new(|i| i % 41 == 0),
        ),
        (
            "a time range ending and starting inside runs of equal times",
            EventFilter {
                time: TimeRange::between(T0 - 10 * day + 5, T0 + 100),
                ..EventFilter::default()
            },
            Box::new(|i| {
                let time = T0 + i / 3 - if i < 40 { 10 * day } else { 0 };
                (T0 - 10 * day + 5..T0 + 100).contains(&time)
            }),
        ),
    ];
    for (name, filter, matches) in cases {
        let mut expected: Vec<(i64, i64)> = (0..400i64)
            .filter(|&i| matches(i))
            .map(|i| (events[i as usize].fields.time_ns, ids[i as usize]))
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();
        for limit in [1, 7, 100, 1000] {
            assert_eq!(
                every_page(store, &filter, limit),
                expected,
                "{name}, pages of {limit}"
            );
        }
    }
}

/// A small deterministic generator for the event-count tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // SplitMix64.
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize].clone()
    }
}

const MINUTE: i64 = 60_000_000_000;

/// Events over three days around `T0` (bursts sharing minutes and times, buckets of every level,
/// a few before 1970), three clusters, absent fields, and one user agent far longer than a
/// btree entry can hold uncompressed.
fn count_fixture(n: usize, seed: u64) -> Vec<kaudit_store::NewEvent> {
    let mut rng = Rng(seed);
    let long_agent = format!("agent/{}", "0123456789abcdef".repeat(600));
    let mut events = Vec::with_capacity(n);
    let mut time = T0 - 36 * 60 * MINUTE;
    for i in 0..n {
        time += match rng.below(10) {
            0 => 0,
            1..=6 => rng.below(3 * MINUTE as u64) as i64,
            7 | 8 => rng.below(40 * MINUTE as u64) as i64,
            _ => rng.below(5 * 60 * MINUTE as u64) as i64,
        };
        let at = if i % 97 == 0 {
            -(rng.below(3 * 60 * MINUTE as u64) as i64)
        } else {
            time
        };
        let cluster = rng.pick(&["a", "a", "b", "c"]);
        let mut e = testsuite::event(cluster, &format!("cnt-{seed}-{i}"), at);
        let f = &mut e.fields;
        f.username = format!("user-{}", rng.below(12));
        f.verb = rng.pick(&["get", "list", "watch", "create", "delete"]).to_owned();
        f.resource = rng
            .pick(&[Some("pods"), Some("secrets"), None])
            .map(str::to_owned);
        f.namespace = rng
            .pick(&[Some("default"), Some("prod"), Some(""), None])
            .map(str::to_owned);
        f.source_ip = rng
            .pick(&[Some("10.0.0.1"), Some("10.0.0.2"), None])
            .map(str::to_owned);
        f.response_code = rng.pick(&[Some(200), Some(201), Some(403), Some(404), None]);
        f.decision = rng
            .pick(&[Some("allow"), Some("forbid"), None])
            .map(str::to_owned);
        f.user_agent = match rng.below(6) {
            0 => None,
            1 => Some(long_agent.clone()),
            k => Some(format!("kubectl/1.{k}")),
        };
        events.push(testsuite::with_raw(e.fields));
    }
    events
}

type KeyOf = fn(&kaudit_store::EventFields) -> Option<String>;

const GROUP_FIELDS: [(kaudit_store::EventGroupField, KeyOf); 9] = [
    (kaudit_store::EventGroupField::User, |f| Some(f.username.clone())),
    (kaudit_store::EventGroupField::Verb, |f| Some(f.verb.clone())),
    (kaudit_store::EventGroupField::Resource, |f| f.resource.clone()),
    (kaudit_store::EventGroupField::Namespace, |f| f.namespace.clone()),
    (kaudit_store::EventGroupField::SourceIp, |f| f.source_ip.clone()),
    (kaudit_store::EventGroupField::ResponseCode, |f| {
        f.response_code.map(|c| c.to_string())
    }),
    (kaudit_store::EventGroupField::Cluster, |f| {
        Some(f.cluster.clone())
    }),
    (kaudit_store::EventGroupField::Decision, |f| f.decision.clone()),
    (kaudit_store::EventGroupField::UserAgent, |f| f.user_agent.clone()),
];

/// Checks every grouped count, histogram and count of `filter` against the stored events
/// `stored`, evaluated here.
fn check_counts(store: &PgStore, stored: &[kaudit_store::EventFields], filter: &EventFilter, state: &str) {
    use kaudit_store::{GroupCount, HistogramBucket};
    let matching: Vec<&kaudit_store::EventFields> = stored
        .iter()
        .filter(|f| testsuite::event_matches(filter, f))
        .collect();
    let what = |kind: &str| format!("{kind} over {:?} {:?} ({state})", filter.time, filter.cluster);
    assert_eq!(
        store
            .count_events(filter)
            .unwrap_or_else(|e| panic!("count: {e}")),
        matching.len() as u64,
        "{}",
        what("count")
    );
    for (field, key) in GROUP_FIELDS {
        let mut want: Vec<GroupCount> = Vec::new();
        for f in &matching {
            let k = key(f);
            match want.iter_mut().find(|g| g.key == k) {
                Some(g) => g.count += 1,
                None => want.push(GroupCount { key: k, count: 1 }),
            }
        }
        want.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        want.truncate(5);
        let got = store
            .group_events(filter, field, 5)
            .unwrap_or_else(|e| panic!("group: {e}"));
        assert_eq!(got, want, "{}", what(&format!("{field:?}")));
    }
    for width in [
        MINUTE,
        2 * MINUTE,
        10 * MINUTE,
        30 * MINUTE,
        60 * MINUTE,
        1440 * MINUTE,
        7_000_000_000,
    ] {
        let mut want: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        for f in &matching {
            *want
                .entry(HistogramBucket::start_of(f.time_ns, width))
                .or_default() += 1;
        }
        let want: Vec<HistogramBucket> = want
            .into_iter()
            .map(|(start_ns, count)| HistogramBucket { start_ns, count })
            .collect();
        let got = store
            .histogram_events(filter, width)
            .unwrap_or_else(|e| panic!("histogram: {e}"));
        assert_eq!(got, want, "{}", what(&format!("histogram of {width} ns")));
    }
}

/// Time ranges of every shape: open ends, ends on stored times, on minute, hour and day
/// boundaries and a nanosecond either side, within one minute, across days.
fn count_ranges(stored: &[kaudit_store::EventFields], n: usize, seed: u64) -> Vec<TimeRange> {
    let mut rng = Rng(seed);
    let point = |rng: &mut Rng| -> Option<i64> {
        let t = stored[rng.below(stored.len() as u64) as usize].time_ns;
        let unit = rng.pick(&[MINUTE, 10 * MINUTE, 60 * MINUTE, 1440 * MINUTE]);
        Some(match rng.below(8) {
            0 => return None,
            1 | 2 => t,
            3 => t + 1,
            4 => t.div_euclid(unit) * unit,
            5 => t.div_euclid(unit) * unit - 1,
            6 => t - rng.below(MINUTE as u64) as i64,
            _ => t + rng.below(3 * 60 * MINUTE as u64) as i64,
        })
    };
    let mut ranges = vec![TimeRange::default()];
    while ranges.len() < n {
        let (a, b) = (point(&mut rng), point(&mut rng));
        let (from_ns, to_ns) = match (a, b) {
            (Some(a), Some(b)) if a > b => (Some(b), Some(a)),
            (Some(a), Some(b)) if rng.below(4) == 0 => (Some(a), Some(a + (b - a) % MINUTE)),
            other => other,
        };
        ranges.push(TimeRange { from_ns, to_ns });
    }
    ranges
}

/// Every stored event, read back through searches.
fn stored_fields(store: &PgStore) -> Vec<kaudit_store::EventFields> {
    let mut fields = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search_events(&EventFilter::default(), PageRequest { limit: 1000, cursor })
            .unwrap_or_else(|e| panic!("search: {e}"));
        fields.extend(page.items.into_iter().map(|e| e.fields));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return fields,
        }
    }
}

fn count_deltas(url: &str, schema: &str) -> i64 {
    let mut client = Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    client
        .query_one(&format!("SELECT COUNT(*) FROM {schema}.event_count_deltas"), &[])
        .map(|row| row.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("deltas: {e}"))
}

/// A store in its own schema that compacts only when told.
fn open_uncompacted() -> Option<PgHarness> {
    open_in_fresh_schema(false)
}

/// Grouped counts, histograms and counts over a time range and a cluster come from the stored
/// counts and give the row scan's answers, for random ranges over random events, whether the
/// counts are still deltas, compacted, or both after retention and more inserts (duplicates
/// among them).
#[test]
fn stored_counts_answer_as_the_events_do() {
    let Some(harness) = open_uncompacted() else { return };
    let store = &harness.store;
    let events = count_fixture(1200, 7);
    let (first, second) = events.split_at(800);
    for batch in first.chunks(150) {
        store
            .insert_batch(batch, &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
    }
    let stored = stored_fields(store);
    assert_eq!(stored.len(), 800);
    let ranges = count_ranges(&stored, 30, 11);
    let clusters = [None, Some("b".to_owned()), Some("none".to_owned())];
    let check_all = |stored: &[kaudit_store::EventFields], state: &str| {
        for time in &ranges {
            for cluster in &clusters {
                let filter = EventFilter {
                    time: *time,
                    cluster: cluster.clone(),
                    ..EventFilter::default()
                };
                check_counts(store, stored, &filter, state);
            }
        }
    };
    assert!(count_deltas(&harness.schema.url, &harness.schema.name) > 0);
    check_all(&stored, "deltas only");
    assert_eq!(store.compact_event_counts().ok(), Some(true));
    assert_eq!(count_deltas(&harness.schema.url, &harness.schema.name), 0);
    check_all(&stored, "compacted");

    // Retention, then more events (half of them already stored), partly compacted.
    let cutoff = T0 - 20 * 60 * MINUTE + 17;
    store
        .purge_before(cutoff, 100)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    store
        .insert_batch(&events[600..1000], &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(store.compact_event_counts().ok(), Some(true));
    store
        .insert_batch(second, &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    store
        .purge_before(cutoff + 60 * MINUTE, 50)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    let stored = stored_fields(store);
    assert!(stored.iter().all(|f| f.time_ns >= cutoff + 60 * MINUTE));
    check_all(&stored, "after retention, deltas and counts");
    assert_eq!(store.compact_event_counts().ok(), Some(true));
    check_all(&stored, "after retention, compacted");

    // Counts that retention brought to zero are deleted, not kept.
    store
        .purge_before(i64::MAX, 1000)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    assert_eq!(store.compact_event_counts().ok(), Some(true));
    let mut client = Client::connect(&harness.schema.url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    let left: i64 = client
        .query_one(
            &format!("SELECT COUNT(*) FROM {}.event_counts", harness.schema.name),
            &[],
        )
        .map(|row| row.get(0))
        .unwrap_or_else(|e| panic!("counts: {e}"));
    assert_eq!(left, 0, "no count left once every event is deleted");
    check_all(&[], "everything deleted");
}

/// Two stores on one schema (two intake nodes), each with writers on several connections and
/// its compactor running, insert overlapping batches while retention deletes: every batch
/// commits (no deadlock between counters), and the counts equal the events stored.
#[test]
fn concurrent_writers_on_two_stores_keep_counts_exact() {
    let Some(harness) = open_harness() else { return };
    let second = PgStore::connect(PgConfig {
        schema: Some(harness.schema.name.clone()),
        pool_size: 4,
        ..PgConfig::new(harness.schema.url.clone())
    })
    .unwrap_or_else(|e| panic!("second store: {e}"));
    let events = count_fixture(2400, 21);
    // Every event is sent by two writers, in opposite orders: duplicates race each other.
    let stores = [&harness.store, &second];
    std::thread::scope(|scope| {
        for writer in 0..4usize {
            let store = stores[writer % 2];
            let events = &events;
            scope.spawn(move || {
                let half = &events[(writer / 2) * 1200..(writer / 2 + 1) * 1200];
                let mut batches: Vec<&[kaudit_store::NewEvent]> = half.chunks(60).collect();
                if writer % 2 == 1 {
                    batches.reverse();
                }
                for batch in batches {
                    store
                        .insert_batch(batch, &[])
                        .unwrap_or_else(|e| panic!("insert: {e}"));
                }
            });
        }
        scope.spawn(|| {
            for step in 0..20 {
                let cutoff = T0 - 30 * 60 * MINUTE + step * 30 * MINUTE;
                second
                    .purge_before(cutoff, 40)
                    .unwrap_or_else(|e| panic!("purge: {e}"));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        });
        scope.spawn(|| {
            for _ in 0..20 {
                let _ = harness.store.compact_event_counts();
                std::thread::sleep(std::time::Duration::from_millis(15));
            }
        });
    });
    let stored = stored_fields(&harness.store);
    let mut unique: Vec<&str> = stored.iter().map(|f| f.audit_id.as_str()).collect();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), stored.len(), "no event stored twice");
    let ranges = count_ranges(&stored, 12, 5);
    for store in stores {
        for time in &ranges {
            let filter = EventFilter {
                time: *time,
                ..EventFilter::default()
            };
            check_counts(store, &stored, &filter, "after concurrent writers");
        }
    }
}

/// A store that already holds events gets its counts filled by the migration to schema
/// version 3, exact from the first query; later inserts add to them.
#[test]
fn migration_fills_counts_of_stored_events() {
    let Some(url) = database_url() else { return };
    let schema = Schema {
        url: url.clone(),
        name: fresh_schema(),
    };
    let events = count_fixture(900, 33);
    {
        let mut client = Client::connect(&url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path TO {0}, public",
                schema.name
            ))
            .unwrap_or_else(|e| panic!("schema: {e}"));
        let before_counts: Vec<Migration> = migrations::MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version < 3)
            .collect();
        assert_eq!(migrations::migrate(&mut client, &before_counts).ok(), Some(2));
        for batch in events[..700].chunks(100) {
            let encoded = crate::write::encode_batch(batch, &[], 1).unwrap_or_else(|e| panic!("encode: {e}"));
            crate::write::insert_batch(&mut client, &encoded).unwrap_or_else(|e| panic!("insert: {e}"));
        }
    }
    let store = PgStore::open(
        PgConfig {
            schema: Some(schema.name.clone()),
            pool_size: 2,
            ..PgConfig::new(url.clone())
        },
        false,
    )
    .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(
        store.schema_version().ok(),
        migrations::MIGRATIONS.last().map(|m| m.version)
    );
    assert_eq!(
        count_deltas(&url, &schema.name),
        0,
        "the migration compacts what it counted"
    );
    let stored = stored_fields(&store);
    assert_eq!(stored.len(), 700);
    for time in count_ranges(&stored, 12, 3) {
        let filter = EventFilter {
            time,
            ..EventFilter::default()
        };
        check_counts(&store, &stored, &filter, "migrated");
    }
    store
        .insert_batch(&events[600..], &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let stored = stored_fields(&store);
    assert_eq!(stored.len(), 900);
    for time in count_ranges(&stored, 12, 4) {
        let filter = EventFilter {
            time,
            cluster: Some("a".to_owned()),
            ..EventFilter::default()
        };
        check_counts(&store, &stored, &filter, "migrated, then written");
    }
}

/// Every page of alerts of `filter`, ids newest first.
fn every_alert_page(store: &PgStore, filter: &kaudit_store::AlertFilter) -> Vec<i64> {
    use kaudit_store::AlertQuery;
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .search_alerts(filter, PageRequest { limit: 50, cursor })
            .unwrap_or_else(|e| panic!("search alerts: {e}"));
        ids.extend(page.items.iter().map(|a| a.id.0));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return ids,
        }
    }
}

/// A row of `event_counts`: dim, level, bucket, cluster, key, value, n.
type CountRow = (i16, i16, i64, String, Vec<u8>, Option<String>, i64);

/// The stored counts, in that order.
fn stored_counts(url: &str, schema: &str) -> Vec<CountRow> {
    let mut client = Client::connect(url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
    client
        .query(
            &format!(
                "SELECT dim, level, bucket, cluster, key, value, n FROM {schema}.event_counts
                 ORDER BY dim, level, bucket, cluster, key"
            ),
            &[],
        )
        .unwrap_or_else(|e| panic!("counts: {e}"))
        .iter()
        .map(|r| {
            (
                r.get(0),
                r.get(1),
                r.get(2),
                r.get(3),
                r.get(4),
                r.get(5),
                r.get(6),
            )
        })
        .collect()
}

/// Issue 4: the migration to bounded index keys (schema version 4) on a store at version 3
/// that holds events, alerts, stored counts and counts not yet compacted, among them values
/// of kilobytes that version 3 could index because they compress well. Afterwards every
/// search, count, grouped count and histogram answers as the stored rows say, the stored counts
/// are the same rows, and an event with incompressible values of kilobytes is stored.
#[test]
fn issue_4_migration_to_bounded_index_keys_keeps_every_answer() {
    use kaudit_store::{AlertFilter, AlertQuery, Insertion, NewEvent};
    let Some(url) = database_url() else { return };
    let schema = Schema {
        url: url.clone(),
        name: fresh_schema(),
    };
    let long_user = format!("oidc:{}", "ab".repeat(3000));
    let long_cluster = format!("cluster-{}", "z".repeat(3000));
    let long_rule = format!("Rule {}", "r".repeat(3000));
    let long_agent = format!("agent/{}kubectl", "0123456789abcdef".repeat(600));
    let (mut events, mut alerts) = testsuite::fixture(400, 19);
    for (i, event) in events.iter_mut().enumerate().filter(|(i, _)| i % 7 == 0) {
        let f = &mut event.fields;
        f.username = long_user.clone();
        f.name = Some(format!("name-{}-{}", "xy".repeat(2000), i % 3));
        f.namespace = Some(format!("ns-{}", "q".repeat(3000)));
        f.user_agent = Some(long_agent.clone());
        f.verb = format!("verb-{}", "v".repeat(3000));
        if i % 2 == 0 {
            f.cluster = long_cluster.clone();
        }
        *event = testsuite::with_raw(f.clone());
    }
    for alert in alerts.iter_mut().filter(|a| a.event_index % 7 == 0) {
        alert.fields.rule = long_rule.clone();
    }
    let mut ids: Vec<i64> = Vec::new();
    let mut insert_v3 = |client: &mut Client, events: &[NewEvent], offset: usize| {
        let batch_alerts: Vec<kaudit_store::NewAlert> = alerts
            .iter()
            .filter(|a| (offset..offset + events.len()).contains(&a.event_index))
            .map(|a| kaudit_store::NewAlert {
                event_index: a.event_index - offset,
                fields: a.fields.clone(),
            })
            .collect();
        let encoded =
            crate::write::encode_batch(events, &batch_alerts, 1).unwrap_or_else(|e| panic!("encode: {e}"));
        let outcome = crate::write::insert_batch(client, &encoded).unwrap_or_else(|e| panic!("insert: {e}"));
        ids.extend(outcome.events.iter().map(|i| match i {
            Insertion::New(id) => id.0,
            Insertion::Duplicate => panic!("no duplicates were sent"),
        }));
    };
    let before_counts;
    {
        let mut client = Client::connect(&url, NoTls).unwrap_or_else(|e| panic!("connect: {e}"));
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {0}; SET search_path TO {0}, public",
                schema.name
            ))
            .unwrap_or_else(|e| panic!("schema: {e}"));
        let version_3: Vec<Migration> = migrations::MIGRATIONS
            .iter()
            .copied()
            .filter(|m| m.version <= 3)
            .collect();
        assert_eq!(migrations::migrate(&mut client, &version_3).ok(), Some(3));
        // Stored counts, then counts appended after the last compaction.
        insert_v3(&mut client, &events[..300], 0);
        assert!(matches!(crate::counts::compact(&mut client), Ok(Some(_))));
        insert_v3(&mut client, &events[300..], 300);
        before_counts = stored_counts(&url, &schema.name);
        assert!(before_counts.iter().any(|c| c.3 == long_cluster));
    }
    let store = PgStore::open(
        PgConfig {
            schema: Some(schema.name.clone()),
            pool_size: 2,
            ..PgConfig::new(url.clone())
        },
        false,
    )
    .unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(store.schema_version().ok(), Some(4));
    assert_eq!(
        stored_counts(&url, &schema.name),
        before_counts,
        "the stored counts are the same rows"
    );

    let check = |events: &[NewEvent], ids: &[i64], state: &str| {
        let s = |v: &str| Some(v.to_owned());
        let base = EventFilter::default;
        let cases: Vec<(&str, EventFilter)> = vec![
            (
                "long user",
                EventFilter {
                    user: Some(UserMatch::Exact(long_user.clone())),
                    ..base()
                },
            ),
            (
                "short user",
                EventFilter {
                    user: Some(UserMatch::Exact("bob".to_owned())),
                    ..base()
                },
            ),
            (
                "prefix of the long user",
                EventFilter {
                    user: Some(UserMatch::Prefix(long_user[..1000].to_owned())),
                    ..base()
                },
            ),
            (
                "prefix of short users",
                EventFilter {
                    user: Some(UserMatch::Prefix("system:serviceaccount:".to_owned())),
                    ..base()
                },
            ),
            (
                "long namespace",
                EventFilter {
                    namespace: s(&format!("ns-{}", "q".repeat(3000))),
                    ..base()
                },
            ),
            (
                "short namespace",
                EventFilter {
                    namespace: s("kube-system"),
                    ..base()
                },
            ),
            (
                "resource",
                EventFilter {
                    resource: s("secrets"),
                    ..base()
                },
            ),
            (
                "long name",
                EventFilter {
                    name: s(&format!("name-{}-1", "xy".repeat(2000))),
                    ..base()
                },
            ),
            (
                "short name",
                EventFilter {
                    name: s("pods-3"),
                    ..base()
                },
            ),
            (
                "source ip",
                EventFilter {
                    source_ip: s("10.0.1.2"),
                    ..base()
                },
            ),
            (
                "long cluster",
                EventFilter {
                    cluster: s(&long_cluster),
                    ..base()
                },
            ),
            (
                "short cluster",
                EventFilter {
                    cluster: s("staging"),
                    ..base()
                },
            ),
            (
                "long verb",
                EventFilter {
                    verb: s(&format!("verb-{}", "v".repeat(3000))),
                    ..base()
                },
            ),
            (
                "uncommon verb",
                EventFilter {
                    verb: s("delete"),
                    ..base()
                },
            ),
            (
                "subresource",
                EventFilter {
                    subresource: s("exec"),
                    ..base()
                },
            ),
            (
                "decision",
                EventFilter {
                    decision: s("forbid"),
                    ..base()
                },
            ),
            (
                "user agent past the indexed characters",
                EventFilter {
                    user_agent_contains: s("defKUBECTL"),
                    ..base()
                },
            ),
            (
                "user agent",
                EventFilter {
                    user_agent_contains: s("curl"),
                    ..base()
                },
            ),
            (
                "group",
                EventFilter {
                    group: s("system:masters"),
                    ..base()
                },
            ),
            (
                "text",
                EventFilter {
                    text: s("watch=true"),
                    ..base()
                },
            ),
        ];
        let reference: Vec<(i64, &kaudit_store::EventFields)> = ids
            .iter()
            .copied()
            .zip(events.iter().map(|e| &e.fields))
            .collect();
        for (name, filter) in &cases {
            let mut want: Vec<(i64, i64)> = reference
                .iter()
                .filter(|(_, f)| testsuite::event_matches(filter, f))
                .map(|(id, f)| (f.time_ns, *id))
                .collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
            assert!(!want.is_empty(), "{name}: the fixture matches some");
            assert_eq!(every_page(&store, filter, 9), want, "{name} ({state})");
            assert_eq!(
                store.count_events(filter).ok(),
                Some(want.len() as u64),
                "{name}: count ({state})"
            );
        }
        let fields: Vec<kaudit_store::EventFields> = events.iter().map(|e| e.fields.clone()).collect();
        for time in count_ranges(&fields, 10, 8) {
            for cluster in [None, Some(long_cluster.clone())] {
                let filter = EventFilter {
                    time,
                    cluster,
                    ..EventFilter::default()
                };
                check_counts(&store, &fields, &filter, state);
            }
        }
        for (name, filter) in [
            (
                "long rule",
                AlertFilter {
                    rule: s(&long_rule),
                    ..AlertFilter::default()
                },
            ),
            (
                "short rule",
                AlertFilter {
                    rule: s("K8s Secret Get"),
                    ..AlertFilter::default()
                },
            ),
        ] {
            let mut want: Vec<(i64, i64)> = store
                .search_alerts(&AlertFilter::default(), PageRequest::first(10_000))
                .unwrap_or_else(|e| panic!("alerts: {e}"))
                .items
                .iter()
                .filter(|a| testsuite::alert_matches(&filter, &a.fields))
                .map(|a| (a.fields.time_ns, a.id.0))
                .collect();
            want.sort_unstable_by(|a, b| b.cmp(a));
            let want: Vec<i64> = want.into_iter().map(|(_, id)| id).collect();
            assert!(!want.is_empty(), "{name}: the fixture matches some");
            assert_eq!(every_alert_page(&store, &filter), want, "{name} ({state})");
        }
    };
    check(&events, &ids, "migrated");
    assert_eq!(store.compact_event_counts().ok(), Some(true));
    check(&events, &ids, "migrated, compacted");

    // The point of the migration: incompressible values of kilobytes are stored, and found.
    let mut rng = Rng(4);
    let random = |rng: &mut Rng| -> String {
        (0..20_000)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.below(36) as usize]))
            .collect()
    };
    let mut hostile = testsuite::event(&random(&mut rng), "hostile", T0 + 1);
    hostile.fields.username = random(&mut rng);
    hostile.fields.user_agent = Some(random(&mut rng));
    hostile.fields.name = Some(random(&mut rng));
    let hostile = testsuite::with_raw(hostile.fields);
    let outcome = store
        .insert_batch(std::slice::from_ref(&hostile), &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let Some(Insertion::New(id)) = outcome.events.first().copied() else {
        panic!("not stored: {outcome:?}")
    };
    events.push(hostile.clone());
    ids.push(id.0);
    check(&events, &ids, "after a hostile event");
    assert_eq!(
        every_page(
            &store,
            &EventFilter {
                user: Some(UserMatch::Exact(hostile.fields.username.clone())),
                ..EventFilter::default()
            },
            5
        ),
        vec![id.0]
    );
}

/// Issue 4: a user-name prefix finds every user name that starts with it, whatever comes
/// next. The range's end used to be the prefix followed by U+10FFFF, the greatest character,
/// which missed names continuing the prefix with that very character; the SQLite store still
/// builds its range that way. Checked with U+10FFFF after the prefix, a prefix of U+10FFFF
/// alone (its range has no end), a prefix ending in U+D7FF (whose successor U+E000 is past
/// the surrogates), long user names (the `_long` index) and a long prefix, by search, count,
/// bounded count and grouped count, against `str::starts_with`.
#[test]
fn issue_4_user_prefix_finds_names_continuing_with_the_greatest_character() {
    let Some(harness) = open_harness() else { return };
    let store = &harness.store;
    let tail = "x".repeat(3000);
    // 499 ASCII characters, U+10FFFF, then 1,600 more: more than 2000 bytes.
    let long_prefix = format!("{}\u{10FFFF}{}", "b".repeat(499), "c".repeat(1600));
    let mut users: Vec<String> = [
        "alice",
        "alice\u{10FFFF}",
        "alice\u{10FFFF}x",
        "alice\u{10FFFF}\u{10FFFF}",
        "alicex",
        "alicf",
        "alicd\u{10FFFF}",
        "alic",
        "\u{10FFFF}",
        "\u{10FFFF}a",
        "\u{10FFFF}\u{10FFFF}",
        "\u{10FFFE}\u{10FFFF}",
        "k\u{D7FF}",
        "k\u{D7FF}\u{10FFFF}",
        "k\u{E000}",
        "k\u{D7FE}\u{10FFFF}",
        "\u{e9}\u{10FFFF}",
        "\u{ea}",
    ]
    .iter()
    .map(|user| (*user).to_owned())
    .collect();
    users.extend([
        format!("alice\u{10FFFF}{tail}"),
        format!("alicf{tail}"),
        format!("\u{10FFFF}{tail}"),
        long_prefix.clone(),
        format!("{long_prefix}d"),
        format!("{}e", &long_prefix[..long_prefix.len() - 1]),
    ]);
    let events: Vec<_> = users
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let mut event = testsuite::event("prod", &format!("prefix-{i:03}"), T0 + i as i64);
            event.fields.username = user.clone();
            testsuite::with_raw(event.fields)
        })
        .collect();
    let outcome = store
        .insert_batch(&events, &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let ids: Vec<i64> = outcome
        .events
        .iter()
        .map(|insertion| match insertion {
            kaudit_store::Insertion::New(id) => id.0,
            other => panic!("not stored: {other:?}"),
        })
        .collect();

    let mut prefixes: Vec<String> = [
        "alice",
        "alice\u{10FFFF}",
        "alic",
        "\u{10FFFF}",
        "\u{10FFFF}\u{10FFFF}",
        "k\u{D7FF}",
        "k\u{D7FE}",
        "k",
        "\u{e9}",
    ]
    .iter()
    .map(|prefix| (*prefix).to_owned())
    .collect();
    prefixes.push(long_prefix.clone());
    prefixes.push(format!("{}\u{10FFFF}", "b".repeat(499)));
    prefixes.extend(users.iter().cloned());
    for prefix in &prefixes {
        let shown: String = prefix.chars().take(12).collect();
        let filter = EventFilter {
            user: Some(UserMatch::Prefix(prefix.clone())),
            ..EventFilter::default()
        };
        // Newest first: the events' times follow their positions.
        let want: Vec<i64> = (0..users.len())
            .rev()
            .filter(|&i| users[i].starts_with(prefix.as_str()))
            .map(|i| ids[i])
            .collect();
        assert_eq!(every_page(store, &filter, 3), want, "search, prefix {shown:?}");
        let counted = store
            .count_events(&filter)
            .unwrap_or_else(|e| panic!("count: {e}"));
        assert_eq!(counted, want.len() as u64, "count, prefix {shown:?}");
        let bounded = store
            .count_events_upto(&filter, 2)
            .unwrap_or_else(|e| panic!("bounded count: {e}"));
        assert_eq!(
            bounded,
            want.len().min(2) as u64,
            "bounded count, prefix {shown:?}"
        );
        let mut grouped: Vec<(Option<String>, u64)> = store
            .group_events(&filter, kaudit_store::EventGroupField::User, 100)
            .unwrap_or_else(|e| panic!("grouped count: {e}"))
            .into_iter()
            .map(|group| (group.key, group.count))
            .collect();
        grouped.sort();
        let mut want_groups: Vec<(Option<String>, u64)> = users
            .iter()
            .filter(|user| user.starts_with(prefix.as_str()))
            .map(|user| (Some(user.clone()), 1))
            .collect();
        want_groups.sort();
        assert_eq!(grouped, want_groups, "grouped count, prefix {shown:?}");
    }
}

/// Issue 4: the user-name prefix condition stays a range of the user-name indexes: of the
/// index of short names, of the `_long` index for a long prefix, of both when some long name
/// may start with the prefix, including a prefix with no successor (U+10FFFF alone), whose
/// range has no end.
#[test]
fn issue_4_user_prefix_is_a_range_of_the_user_name_indexes() {
    let Some(harness) = open_harness() else { return };
    let store = &harness.store;
    let tail = "x".repeat(3000);
    let events: Vec<_> = (0..2000i64)
        .map(|i| {
            let mut event = testsuite::event("prod", &format!("plan-{i:04}"), T0 + i);
            event.fields.username = match i {
                0 => format!("alice{tail}"),
                1 => format!("{}{tail}", "b".repeat(2100)),
                _ => format!("user-{i}"),
            };
            testsuite::with_raw(event.fields)
        })
        .collect();
    store
        .insert_batch(&events, &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    let short = "events_user_time ";
    let long = "events_user_time_long ";
    let cases: [(&str, String, &[&str]); 4] = [
        ("a short prefix", "user-1".to_owned(), &[short]),
        ("U+10FFFF alone", "\u{10FFFF}".to_owned(), &[short]),
        ("a prefix of a long name", "alice".to_owned(), &[short, long]),
        ("a long prefix", "b".repeat(2050), &[long]),
    ];
    let plans = store
        .with_client(|client| {
            client
                .batch_execute("ANALYZE events; SET enable_seqscan = off")
                .unwrap_or_else(|e| panic!("analyze: {e}"));
            let mut plans = Vec::new();
            for (name, prefix, _) in &cases {
                let filter = EventFilter {
                    user: Some(UserMatch::Prefix(prefix.clone())),
                    ..EventFilter::default()
                };
                let w = crate::read::indexed_event_where(client, &filter)?;
                let sql = format!("EXPLAIN SELECT COUNT(*) FROM events e{}", w.sql());
                let rows = client
                    .query_typed(&sql, &w.refs())
                    .unwrap_or_else(|e| panic!("explain, {name}: {e}"));
                let lines: Vec<String> = rows.iter().map(|row| row.get::<_, String>(0) + "\n").collect();
                plans.push(lines.concat().replace('\n', " \n"));
            }
            client
                .batch_execute("RESET enable_seqscan")
                .unwrap_or_else(|e| panic!("reset: {e}"));
            Ok(plans)
        })
        .unwrap_or_else(|e| panic!("explain: {e}"));
    for ((name, _, indexes), plan) in cases.iter().zip(&plans) {
        assert!(!plan.contains("Seq Scan"), "{name}: {plan}");
        for index in *indexes {
            assert!(plan.contains(index), "{name}: {index}in {plan}");
        }
        for index in [short, long] {
            if !indexes.contains(&index) {
                assert!(!plan.contains(index), "{name}: {index}in {plan}");
            }
        }
    }
}
