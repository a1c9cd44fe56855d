//! Tests of the PostgreSQL backend against the server on 127.0.0.1:5432 (or
//! `KAUDIT_TEST_POSTGRES_URL`): the shared contract suite and migrations, each test in its own
//! schema, dropped afterwards. Without a reachable server the tests print a notice and pass,
//! except under `CI=true`, where that is a failure.

use std::sync::atomic::{AtomicU64, Ordering};

use kaudit_store::testsuite::{self, Harness, T0};
use kaudit_store::{EventFilter, EventQuery, EventWriter, PageRequest, Store, TimeRange, UserMatch};
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
    let store = PgStore::connect(config).unwrap_or_else(|e| panic!("connect: {e} ({e:?})"));
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
