//! Tests of the SQLite backend: the shared contract suite, migrations, group commit and
//! reopening a database.

use std::sync::Arc;

use kaudit_store::prelude::*;
use kaudit_store::testsuite::{Harness, T0, event};
use kaudit_store::{EventFilter, StoreError};
use rusqlite::Connection;

use crate::migrations::{self, Migration};
use crate::{Durability, SqliteConfig, SqliteStore};

/// A store in its own temporary directory.
struct SqliteHarness {
    store: SqliteStore,
    _dir: tempfile::TempDir,
}

impl Harness for SqliteHarness {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn settle(&self) {
        self.store
            .flush_blocks()
            .unwrap_or_else(|e| panic!("flush_blocks: {e}"));
    }

    fn fail_inserts_of(&self, audit_id: &str) {
        let conn = Connection::open(self.store.path()).unwrap_or_else(|e| panic!("open: {e}"));
        let sql = format!(
            "CREATE TRIGGER IF NOT EXISTS fail_{n} BEFORE INSERT ON events WHEN NEW.audit_id = '{audit_id}'
             BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            n = audit_id.len()
        );
        conn.execute_batch(&sql)
            .unwrap_or_else(|e| panic!("trigger: {e}"));
    }
}

fn open_harness() -> Option<SqliteHarness> {
    Some(open_with(SqliteConfig::default()))
}

fn open_with(config: SqliteConfig) -> SqliteHarness {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store =
        SqliteStore::open(dir.path().join("kaudit.db"), config).unwrap_or_else(|e| panic!("open: {e}"));
    SqliteHarness { store, _dir: dir }
}

kaudit_store::store_contract_tests!(open_harness);

/// Runs `migrations` on a fresh database and returns the outcome and the tables present.
fn check_migrate(steps: &[&[Migration]]) -> (Vec<Result<i64, String>>, Vec<String>) {
    let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("open: {e}"));
    let results = steps
        .iter()
        .map(|m| migrations::migrate(&mut conn, m).map_err(|e| e.to_string()))
        .collect::<Vec<_>>();
    let mut statement = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap_or_else(|e| panic!("prepare: {e}"));
    let tables = statement
        .query_map([], |r| r.get::<_, String>(0))
        .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
        .unwrap_or_else(|e| panic!("tables: {e}"));
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
    let shipped = migrations::MIGRATIONS.last().map_or(0, |m| m.version);
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
            "a newer database is refused",
            vec![&[STEP_A, STEP_B], &[STEP_A]],
            vec![
                Ok(2),
                Err("database schema version 2 is newer than the newest this build knows (1)".to_owned()),
            ],
            vec!["a", "b", "schema_migrations"],
        ),
    ];
    for (name, steps, want_results, want_tables) in cases {
        let (results, tables) = check_migrate(&steps);
        assert_eq!(results, want_results, "{name}");
        assert_eq!(tables, want_tables, "{name}");
    }
    let (results, _) = check_migrate(&[migrations::MIGRATIONS]);
    assert_eq!(
        results,
        vec![Ok(shipped)],
        "the shipped migrations apply to an empty database"
    );
}

#[test]
fn data_survives_reopen_and_schema_is_not_reapplied() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    for config in [
        SqliteConfig::default(),
        SqliteConfig {
            durability: Durability::Normal,
            ..SqliteConfig::default()
        },
    ] {
        let store = SqliteStore::open(&path, config).unwrap_or_else(|e| panic!("open: {e}"));
        let n = store
            .count_events(&EventFilter::default())
            .unwrap_or_else(|e| panic!("count: {e}"));
        let audit_id = format!("e{n}");
        let outcome = store
            .insert_batch(&[event("c", &audit_id, T0)], &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
        assert_eq!(outcome.new_count(), 1);
        assert_eq!(
            store.schema_version().ok(),
            migrations::MIGRATIONS.last().map(|m| m.version)
        );
    }
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    assert_eq!(store.count_events(&EventFilter::default()).ok(), Some(2));
}

#[test]
fn group_commit_isolates_a_failing_batch_from_concurrent_ones() {
    // Many threads insert at once so that batches share commits; every other batch of one
    // thread fails inside the database. The good batches are all stored, the bad ones not at all.
    let harness = open_with(SqliteConfig {
        max_jobs_per_commit: 16,
        ..SqliteConfig::default()
    });
    harness.fail_inserts_of("boom");
    let store = Arc::new(harness);
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let mut stored = 0;
                for b in 0..20 {
                    let mut events: Vec<_> = (0..25)
                        .map(|i| event("c", &format!("t{t}-b{b}-{i}"), T0 + i))
                        .collect();
                    let fails = t == 0 && b % 2 == 0;
                    if fails {
                        events.push(event("c", "boom", T0));
                    }
                    match store.store().insert_batch(&events, &[]) {
                        Ok(outcome) if !fails => stored += outcome.new_count(),
                        Err(StoreError::Backend { .. }) if fails => {}
                        other => panic!("thread {t} batch {b}: unexpected {other:?}"),
                    }
                }
                stored
            })
        })
        .collect();
    let stored: usize = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| panic!("thread panicked")))
        .sum();
    assert_eq!(stored, 25 * (6 * 20 - 10));
    let count = store
        .store()
        .count_events(&EventFilter::default())
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(count, stored as u64);
}

#[test]
fn raw_events_round_trip_before_and_after_the_dictionary_and_across_reopen() {
    // Enough events for a dictionary to be trained midway; every raw event must come back
    // byte for byte, whichever way it was compressed, also after reopening.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    let mut work = kaudit_store::testsuite::workload::Workload::new(3, T0, 1_000_000);
    let mut stored = Vec::new();
    {
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
        for _ in 0..14 {
            let (events, _) = work.batch(400);
            let outcome = store
                .insert_batch(&events, &[])
                .unwrap_or_else(|e| panic!("insert: {e}"));
            for (event, insertion) in events.into_iter().zip(outcome.events) {
                if let kaudit_store::Insertion::New(id) = insertion {
                    stored.push((id, event.raw_json));
                }
            }
        }
        assert_eq!(stored.len(), 14 * 400);
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        let per_dict: Vec<(i64, i64)> = conn
            .prepare("SELECT dict_id, COUNT(*) FROM event_raw GROUP BY dict_id ORDER BY dict_id")
            .and_then(|mut s| s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect())
            .unwrap_or_else(|e| panic!("query: {e}"));
        assert_eq!(
            per_dict.len(),
            2,
            "events before and after the dictionary: {per_dict:?}"
        );
    }
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("reopen: {e}"));
    for (id, raw) in stored.iter().step_by(97).chain(stored.last()) {
        let full = store.get_event(*id).unwrap_or_else(|e| panic!("get_event: {e}"));
        assert_eq!(full.map(|f| f.raw_json).as_ref(), Some(raw), "event {id:?}");
    }
}

/// Every event matching `filter`, newest first, by paging through the store.
fn ids_matching(store: &SqliteStore, filter: &EventFilter) -> Vec<i64> {
    let mut ids = Vec::new();
    let mut page = kaudit_store::PageRequest::first(10);
    loop {
        let found = store
            .search_events(filter, page)
            .unwrap_or_else(|e| panic!("search: {e}"));
        ids.extend(found.items.iter().map(|e| e.id.0));
        match found.next_cursor {
            Some(cursor) => page.cursor = Some(cursor),
            None => return ids,
        }
    }
}

#[test]
fn a_store_written_before_blocks_is_summarised_when_opened() {
    // A version-1 database with events and its value-led lookups, as an earlier release left it.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    {
        let mut conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        migrations::migrate(&mut conn, &migrations::MIGRATIONS[..1]).unwrap_or_else(|e| panic!("v1: {e}"));
        for i in 0..200i64 {
            let user = if i % 3 == 0 { "alice" } else { "system:node:node-1" };
            conn.execute(
                "INSERT INTO events (time_ns, received_ns, cluster, audit_id, stage, digest, dedupe, verb,
                     username, groups_json, request_uri, level, namespace, name)
                 VALUES (?1, ?1, 'c', ?2, 'ResponseComplete', zeroblob(32), ?3, 'get', ?4, '[]', ?5,
                     'Metadata', 'default', ?6)",
                rusqlite::params![
                    T0 + i,
                    format!("a{i}"),
                    i,
                    user,
                    format!("/api/v1/namespaces/default/secrets/s-{i}"),
                    format!("s-{i}")
                ],
            )
            .unwrap_or_else(|e| panic!("insert: {e}"));
        }
    }
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
    let conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
    let (blocks, mark): (i64, i64) = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM blocks), (SELECT blocked_upto FROM block_state)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap_or_else(|e| panic!("blocks: {e}"));
    let block_rows = i64::from(crate::blocks::BLOCK_ROWS);
    assert_eq!((blocks, mark), (200 / block_rows, 200 / block_rows * block_rows));
    let alice = EventFilter {
        user: Some(kaudit_store::UserMatch::Exact("alice".to_owned())),
        ..EventFilter::default()
    };
    let expected: Vec<i64> = (1..=200).rev().filter(|id| (id - 1) % 3 == 0).collect();
    assert_eq!(ids_matching(&store, &alice), expected);
    let text = EventFilter {
        text: Some("S-17".to_owned()),
        ..EventFilter::default()
    };
    let expected: Vec<i64> = (171..=180).rev().chain([18]).collect();
    assert_eq!(ids_matching(&store, &text), expected);
    // New events continue the ids.
    let outcome = store
        .insert_batch(&[event("c", "after", T0 + 500)], &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    assert_eq!(
        outcome.events,
        vec![kaudit_store::Insertion::New(kaudit_store::EventId(201))]
    );
}

#[test]
fn the_open_block_survives_a_restart_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    let bob = EventFilter {
        user: Some(kaudit_store::UserMatch::Exact("bob".to_owned())),
        ..EventFilter::default()
    };
    let with_user = |audit_id: &str, time: i64, user: &str| {
        let mut e = event("c", audit_id, time);
        e.fields.username = user.to_owned();
        e
    };
    let mut bobs = Vec::new();
    {
        let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("open: {e}"));
        // Enough for some full blocks and an open one; nothing flushed.
        for b in 0..5 {
            let events: Vec<_> = (0..23)
                .map(|i| {
                    let user = if i % 7 == 0 { "bob" } else { "carol" };
                    with_user(&format!("b{b}-{i}"), T0 + b * 100 + i, user)
                })
                .collect();
            let outcome = store
                .insert_batch(&events, &[])
                .unwrap_or_else(|e| panic!("insert: {e}"));
            for (event, insertion) in events.iter().zip(outcome.events) {
                if let kaudit_store::Insertion::New(id) = insertion
                    && event.fields.username == "bob"
                {
                    bobs.push(id.0);
                }
            }
        }
        // The newest event goes (it is older than the retention cutoff).
        let newest = with_user("old", T0 - 1_000, "bob");
        store
            .insert_batch(&[newest], &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
        let purged = store
            .purge_before(T0, 10)
            .unwrap_or_else(|e| panic!("purge: {e}"));
        assert_eq!(purged.events, 1);
    }
    bobs.reverse();
    let store = SqliteStore::open(&path, SqliteConfig::default()).unwrap_or_else(|e| panic!("reopen: {e}"));
    assert_eq!(ids_matching(&store, &bob), bobs);
    let outcome = store
        .insert_batch(&[with_user("later", T0 + 10_000, "bob")], &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    // 115 events, then the purged one (id 116): the next id is 117.
    assert_eq!(
        outcome.events,
        vec![kaudit_store::Insertion::New(kaudit_store::EventId(117))]
    );
    bobs.insert(0, 117);
    assert_eq!(ids_matching(&store, &bob), bobs);
    store.flush_blocks().unwrap_or_else(|e| panic!("flush: {e}"));
    assert_eq!(ids_matching(&store, &bob), bobs);
}

#[test]
fn grouped_counts_stay_exact_when_retention_cuts_a_block() {
    // Rollups of whole blocks are summed; a block that lost events to retention must be
    // counted from its rows.
    let harness = open_with(SqliteConfig::default());
    let store = &harness.store;
    let (events, _) = kaudit_store::testsuite::fixture(300, 5);
    for chunk in events.chunks(50) {
        store
            .insert_batch(chunk, &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
    }
    store.flush_blocks().unwrap_or_else(|e| panic!("flush: {e}"));
    // A cutoff inside a block (blocks hold 37 events in tests).
    let cutoff = events[100].fields.time_ns;
    store
        .purge_before(cutoff, 13)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    let kept: Vec<_> = events.iter().filter(|e| e.fields.time_ns >= cutoff).collect();
    let mut want: std::collections::HashMap<Option<String>, u64> = std::collections::HashMap::new();
    for e in &kept {
        *want.entry(Some(e.fields.username.clone())).or_default() += 1;
    }
    let got = store
        .group_events(&EventFilter::default(), kaudit_store::EventGroupField::User, 100)
        .unwrap_or_else(|e| panic!("group: {e}"));
    let got: std::collections::HashMap<Option<String>, u64> =
        got.into_iter().map(|g| (g.key, g.count)).collect();
    assert_eq!(got, want);
    let minutes = store
        .histogram_events(&EventFilter::default(), 60 * 1_000_000_000)
        .unwrap_or_else(|e| panic!("histogram: {e}"));
    assert_eq!(minutes.iter().map(|b| b.count).sum::<u64>(), kept.len() as u64);
}
