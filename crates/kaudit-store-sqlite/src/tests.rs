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
            stored.extend(insert_new_raws(&store, &events));
        }
        assert_eq!(stored.len(), 14 * 400);
        let conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
        let per_dict: Vec<(i64, i64)> = conn
            .prepare("SELECT dict_id, COUNT(*) FROM raw_chunks GROUP BY dict_id ORDER BY dict_id")
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

/// Stores `batch`; returns the new events' ids with their raw JSON.
fn insert_new_raws(
    store: &SqliteStore,
    batch: &[kaudit_store::NewEvent],
) -> Vec<(kaudit_store::EventId, String)> {
    let outcome = store
        .insert_batch(batch, &[])
        .unwrap_or_else(|e| panic!("insert: {e}"));
    batch
        .iter()
        .zip(outcome.events)
        .filter_map(|(event, insertion)| match insertion {
            kaudit_store::Insertion::New(id) => Some((id, event.raw_json.clone())),
            kaudit_store::Insertion::Duplicate => None,
        })
        .collect()
}

/// Checks the raw JSON of every event in `expected` as the store gives it back.
fn check_raws(store: &SqliteStore, expected: &[(kaudit_store::EventId, String)]) {
    for (id, raw) in expected {
        let full = store
            .get_event(*id)
            .unwrap_or_else(|e| panic!("get_event {id:?}: {e}"));
        assert_eq!(full.map(|f| f.raw_json).as_ref(), Some(raw), "event {id:?}");
    }
}

#[test]
fn raw_events_of_retried_batches_and_after_retention_come_back_whole() {
    // A retried batch mixes duplicates with new events: the new ones' raw events are found by
    // their ids (duplicates leave gaps in the runs). Retention deletes a run once none of its
    // events is left, and keeps those it only cut.
    let harness = open_with(SqliteConfig::default());
    let store = &harness.store;
    let (events, _) = kaudit_store::testsuite::fixture(300, 11);
    let mut stored = insert_new_raws(store, &events[..100]);
    // Duplicates around new events, in runs of every mix (a run of only duplicates too).
    let mut retried: Vec<_> = events[..70].to_vec();
    retried.extend_from_slice(&events[100..150]);
    retried.extend_from_slice(&events[20..60]);
    retried.extend_from_slice(&events[150..300]);
    stored.extend(insert_new_raws(store, &retried));
    assert_eq!(stored.len(), 300);
    check_raws(store, &stored);
    let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let runs = |conn: &Connection| -> i64 {
        conn.query_row("SELECT COUNT(*) FROM raw_chunks", [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("count: {e}"))
    };
    // 4 runs of the first batch; the retried batch's 310 events make 10 runs, of which three
    // (positions 0..64 and 128..160, all duplicates) are not stored.
    assert_eq!(runs(&conn), 4 + 10 - 3);
    let mut by_time: Vec<_> = events.iter().map(|e| e.fields.time_ns).collect();
    by_time.sort_unstable();
    let cutoff = by_time[120];
    store
        .purge_before(cutoff, 17)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    let left: Vec<_> = stored
        .iter()
        .zip(&events)
        .filter(|(_, e)| e.fields.time_ns >= cutoff)
        .map(|(s, _)| s.clone())
        .collect();
    assert_eq!(left.len(), 180);
    check_raws(store, &left);
    let orphans: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM raw_chunks c WHERE NOT EXISTS
                 (SELECT 1 FROM events e WHERE e.id BETWEEN c.first_id AND c.last_id)",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("orphans: {e}"));
    assert_eq!(orphans, 0);
    assert!(runs(&conn) < 11);
}

#[test]
fn raw_events_stored_one_per_row_before_version_4_are_still_read() {
    // A store upgraded from version 3 keeps its events' raw rows; new events go to runs.
    let harness = open_with(SqliteConfig::default());
    let store = &harness.store;
    let (events, _) = kaudit_store::testsuite::fixture(80, 12);
    let mut stored = Vec::new();
    for batch in events.chunks(40) {
        stored.extend(insert_new_raws(store, batch));
        if stored.len() == 40 {
            // The first batch as version 3 stored it: a raw row per event, no runs.
            let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("open: {e}"));
            conn.execute("DELETE FROM raw_chunks", [])
                .unwrap_or_else(|e| panic!("delete: {e}"));
            for (id, raw) in &stored {
                let frame = zstd::bulk::compress(raw.as_bytes(), 1).unwrap_or_else(|e| panic!("zstd: {e}"));
                conn.execute(
                    "INSERT INTO event_raw (id, dict_id, raw) VALUES (?1, 0, ?2)",
                    rusqlite::params![id.0, frame],
                )
                .unwrap_or_else(|e| panic!("insert raw: {e}"));
            }
        }
    }
    check_raws(store, &stored);
    let purged = store
        .purge_before(i64::MAX, 1000)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    assert_eq!(purged.events, 80);
    let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let left: i64 = conn
        .query_row(
            "SELECT (SELECT COUNT(*) FROM event_raw) + (SELECT COUNT(*) FROM raw_chunks)",
            [],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("count: {e}"));
    assert_eq!(left, 0);
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

#[test]
fn block_rollups_count_exactly_the_stored_rows_when_batches_roll_back() {
    // Failing batches leave events in the open block that were rolled back; the rollups the
    // writer tallied must not count them. Every block's rollups are compared with its rows.
    let harness = open_with(SqliteConfig::default());
    harness.fail_inserts_of("boom");
    let store = &harness.store;
    let (events, _) = kaudit_store::testsuite::fixture(400, 9);
    for (n, chunk) in events.chunks(30).enumerate() {
        if n % 3 == 1 {
            let mut failing = chunk.to_vec();
            failing.push(event("c", "boom", T0));
            assert!(store.insert_batch(&failing, &[]).is_err());
        }
        store
            .insert_batch(chunk, &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
    }
    store.flush_blocks().unwrap_or_else(|e| panic!("flush: {e}"));
    let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("open: {e}"));
    let blocks: Vec<(i64, i64, i64)> = conn
        .prepare("SELECT first_id, last_id, rows FROM blocks ORDER BY first_id")
        .and_then(|mut st| {
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<rusqlite::Result<_>>()
        })
        .unwrap_or_else(|e| panic!("blocks: {e}"));
    assert!(blocks.len() > 5);
    let columns = [
        (1, "username"),
        (2, "verb"),
        (3, "resource"),
        (4, "namespace"),
        (5, "source_ip"),
        (6, "response_code"),
        (7, "cluster"),
        (8, "decision"),
        (9, "user_agent"),
        (10, "time_ns / 60000000000 * 60000000000"),
    ];
    let mut counted = 0;
    for (first, last, rows) in blocks {
        counted += rows;
        for (dimension, column) in columns {
            let stored: Vec<u8> = conn
                .query_row(
                    "SELECT counts FROM block_rollups WHERE first_id = ?1 AND dimension = ?2",
                    [first, dimension],
                    |r| r.get(0),
                )
                .unwrap_or_else(|e| panic!("rollup {first}/{dimension}: {e}"));
            let mut got = std::collections::HashMap::new();
            crate::rollups::add_decoded(&stored, &mut got).unwrap_or_else(|e| panic!("decode: {e}"));
            let want: std::collections::HashMap<crate::rollups::Key, u64> = conn
                .prepare(&format!(
                    "SELECT {column}, COUNT(*) FROM events WHERE id BETWEEN ?1 AND ?2 GROUP BY 1"
                ))
                .and_then(|mut st| {
                    st.query_map([first, last], |r| {
                        Ok((
                            crate::rollups::Key::of(r.get(0)?),
                            r.get::<_, i64>(1)?.unsigned_abs(),
                        ))
                    })?
                    .collect::<rusqlite::Result<_>>()
                })
                .unwrap_or_else(|e| panic!("rows: {e}"));
            assert_eq!(got, want, "block {first}..={last}, dimension {dimension}");
        }
    }
    assert_eq!(counted, 400);
}

/// A loaded store and what it holds, to compare searches against.
struct Loaded {
    store: SqliteStore,
    reference: Vec<kaudit_store::StoredEvent>,
}

/// `n` fixture events (times increasing) plus two with non-ASCII names, stored in batches.
fn load(store: SqliteStore, n: usize, seed: u64) -> Loaded {
    let (mut events, _) = kaudit_store::testsuite::fixture(n, seed);
    let last = events.last().map_or(T0, |e| e.fields.time_ns);
    for (i, name) in ["Straße-ÉTÉ", "straße-été"].into_iter().enumerate() {
        let mut e = event("prod-eu", &format!("aud-{seed}-accents-{i}"), last + 1 + i as i64);
        e.fields.name = Some(name.to_owned());
        e.fields.request_uri = format!("/api/v1/namespaces/default/configmaps/{name}");
        events.push(kaudit_store::testsuite::with_raw(e.fields));
    }
    let mut reference = Vec::new();
    for chunk in events.chunks(45) {
        let outcome = store
            .insert_batch(chunk, &[])
            .unwrap_or_else(|e| panic!("insert: {e}"));
        for (event, insertion) in chunk.iter().zip(outcome.events) {
            if let kaudit_store::Insertion::New(id) = insertion {
                reference.push(kaudit_store::StoredEvent {
                    id,
                    fields: event.fields.clone(),
                });
            }
        }
    }
    assert_eq!(reference.len(), events.len());
    Loaded { store, reference }
}

/// Searches with values, free text (some of it sparse, some absent, some non-ASCII) and user
/// agents against the reference: every match, in order, and the counts.
fn check_searches(loaded: &Loaded, label: &str) {
    let s = |v: &str| Some(v.to_owned());
    let filters = [
        EventFilter {
            user: Some(kaudit_store::UserMatch::Exact("bob".to_owned())),
            ..EventFilter::default()
        },
        EventFilter {
            namespace: s("monitoring"),
            verb: s("delete"),
            ..EventFilter::default()
        },
        EventFilter {
            name: s("secrets-3"),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("SECRETS-3"),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("kube-system/pods/pods-1"),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("timeoutSeconds=300"),
            response_code: Some(403),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("no-such-object"),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("STRAßE-ÉTÉ"),
            ..EventFilter::default()
        },
        EventFilter {
            text: s("straße-été"),
            ..EventFilter::default()
        },
        EventFilter {
            user_agent_contains: s("CONTROLLER-manager"),
            cluster: s("staging"),
            ..EventFilter::default()
        },
    ];
    for filter in filters {
        let mut expected: Vec<(i64, i64)> = loaded
            .reference
            .iter()
            .filter(|e| kaudit_store::testsuite::event_matches(&filter, &e.fields))
            .map(|e| (e.fields.time_ns, e.id.0))
            .collect();
        expected.sort_unstable_by(|a, b| b.cmp(a));
        let expected: Vec<i64> = expected.into_iter().map(|(_, id)| id).collect();
        assert_eq!(
            ids_matching(&loaded.store, &filter),
            expected,
            "{label}: {filter:?}"
        );
        let count = loaded
            .store
            .count_events(&filter)
            .unwrap_or_else(|e| panic!("count: {e}"));
        assert_eq!(count, expected.len() as u64, "{label}: count of {filter:?}");
    }
}

/// What the store holds of its summaries: (blocks, blocks with their own filters, groups,
/// slice rows, group formats oldest first).
fn summaries(path: &std::path::Path) -> (i64, i64, i64, i64, Vec<i64>) {
    let conn = Connection::open(path).unwrap_or_else(|e| panic!("open: {e}"));
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap_or_else(|e| panic!("count {table}: {e}"))
    };
    let formats: Vec<i64> = conn
        .prepare("SELECT format FROM bloom_groups ORDER BY first_id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .unwrap_or_else(|e| panic!("formats: {e}"));
    (
        count("blocks"),
        count("block_blooms"),
        count("bloom_groups"),
        count("bloom_slices"),
        formats,
    )
}

/// Makes every write of group slices fail, as if the process died after writing blocks and
/// before writing their group.
fn fail_group_writes(path: &std::path::Path) {
    Connection::open(path)
        .and_then(|c| {
            c.execute_batch(
                "CREATE TRIGGER fail_groups BEFORE INSERT ON bloom_slices
                 BEGIN SELECT RAISE(ABORT, 'injected failure'); END",
            )
        })
        .unwrap_or_else(|e| panic!("trigger: {e}"));
}

fn open_at(path: &std::path::Path) -> SqliteStore {
    SqliteStore::open(path, SqliteConfig::default()).unwrap_or_else(|e| panic!("open: {e}"))
}

const GROUP_SLICES: i64 = crate::blocks::SLICES;

#[test]
fn blocks_written_without_their_group_are_searched_by_their_own_filters_and_grouped_at_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    let store = open_at(&path);
    fail_group_writes(&path);
    // 502 events: 13 full blocks of 37 (3 complete groups of 4, and one more block), and 21
    // events above the mark.
    let loaded = load(store, 500, 31);
    assert_eq!(summaries(&path), (13, 13, 0, 0, vec![]));
    check_searches(&loaded, "no group written");
    let Loaded { store, reference } = loaded;
    drop(store);
    Connection::open(&path)
        .and_then(|c| c.execute_batch("DROP TRIGGER fail_groups"))
        .unwrap_or_else(|e| panic!("drop trigger: {e}"));
    let loaded = Loaded {
        store: open_at(&path),
        reference,
    };
    assert_eq!(summaries(&path), (13, 1, 3, 3 * GROUP_SLICES, vec![2, 2, 2]));
    check_searches(&loaded, "groups built at restart");
    // Writing goes on: the next group is written when its fourth block is. Of the 704
    // events, 19 blocks are full; the newest full block is written with the next commit.
    let Loaded { store, mut reference } = loaded;
    let more = load(store, 200, 32);
    reference.extend(more.reference);
    let loaded = Loaded {
        store: more.store,
        reference,
    };
    assert_eq!(summaries(&path), (18, 2, 4, 4 * GROUP_SLICES, vec![2, 2, 2, 2]));
    check_searches(&loaded, "after more writes");
}

#[test]
fn a_version_2_store_is_grouped_when_opened() {
    // A store as schema version 2 left it: blocks with their own filters (trigrams only:
    // format 1), no groups.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    let store = open_at(&path);
    fail_group_writes(&path);
    let Loaded { store, reference } = load(store, 500, 41);
    drop(store);
    Connection::open(&path)
        .and_then(|c| {
            c.execute_batch(
                "DROP TRIGGER fail_groups;
                 DROP TABLE bloom_slices;
                 DROP TABLE bloom_groups;
                 DROP TABLE raw_chunks;
                 DELETE FROM schema_migrations WHERE version >= 3;
                 UPDATE blocks SET format = 1;",
            )
        })
        .unwrap_or_else(|e| panic!("back to version 2: {e}"));
    let loaded = Loaded {
        store: open_at(&path),
        reference,
    };
    assert_eq!(
        loaded.store.schema_version().ok(),
        migrations::MIGRATIONS.last().map(|m| m.version)
    );
    assert_eq!(summaries(&path), (13, 1, 3, 3 * GROUP_SLICES, vec![1, 1, 1]));
    check_searches(&loaded, "upgraded");
    // New blocks are of format 2; the group joining the last old block to them is searched
    // as format 1.
    let Loaded { store, mut reference } = loaded;
    let more = load(store, 300, 42);
    reference.extend(more.reference);
    let loaded = Loaded {
        store: more.store,
        reference,
    };
    assert_eq!(summaries(&path).4, vec![1, 1, 1, 1, 2]);
    check_searches(&loaded, "upgraded, then written");
}

#[test]
fn retention_deletes_the_groups_it_empties_and_keeps_a_group_it_cuts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let path = dir.path().join("kaudit.db");
    let Loaded { store, reference } = load(open_at(&path), 500, 51);
    store.flush_blocks().unwrap_or_else(|e| panic!("flush: {e}"));
    // 14 blocks: groups of blocks 1-4, 5-8, 9-12 (first ids 1, 149, 297), two blocks apart.
    assert_eq!(summaries(&path), (14, 2, 3, 3 * GROUP_SLICES, vec![2, 2, 2]));
    // Blocks 1 to 5 hold the events before the 186th; the cutoff falls inside block 6.
    let cutoff = reference[200].fields.time_ns;
    store
        .purge_before(cutoff, 17)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    let kept: Vec<_> = reference
        .into_iter()
        .filter(|e| e.fields.time_ns >= cutoff)
        .collect();
    let (blocks, own_filters, groups, slices, _) = summaries(&path);
    assert_eq!((own_filters, groups, slices), (2, 2, 2 * GROUP_SLICES));
    assert!(blocks == 9 || blocks == 10, "{blocks} blocks left");
    let conn = Connection::open(&path).unwrap_or_else(|e| panic!("open: {e}"));
    let first_group: i64 = conn
        .query_row("SELECT MIN(first_id) FROM bloom_groups", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("groups: {e}"));
    assert_eq!(first_group, 149, "the group of blocks 5-8 stays, cut");
    check_searches(
        &Loaded {
            store,
            reference: kept,
        },
        "after retention",
    );
}

#[test]
fn counts_and_histograms_of_one_value_agree_with_the_rows() {
    // Counts and histograms whose filter is a time range and one value of a rolled-up field
    // sum the rollups of the blocks wholly inside the range (and, for a histogram, inside one
    // bucket). They must agree with the rows: around the block mark, at range edges inside
    // blocks, in buckets narrower than a block, and after retention cut a block.
    let harness = open_with(SqliteConfig::default());
    let loaded = load(harness.store, 700, 31);
    let store = &loaded.store;
    // Most blocks written, the newest events above the mark.
    let cutoff = loaded.reference[130].fields.time_ns;
    store
        .purge_before(cutoff, 11)
        .unwrap_or_else(|e| panic!("purge: {e}"));
    let kept: Vec<_> = loaded
        .reference
        .iter()
        .filter(|e| e.fields.time_ns >= cutoff)
        .collect();
    let s = |v: &str| Some(v.to_owned());
    let user = |m: kaudit_store::UserMatch| Some(m);
    let conditions = [
        EventFilter {
            cluster: s("staging"),
            ..EventFilter::default()
        },
        EventFilter {
            user: user(kaudit_store::UserMatch::Exact("bob".to_owned())),
            ..EventFilter::default()
        },
        EventFilter {
            user: user(kaudit_store::UserMatch::Prefix(
                "system:serviceaccount:kube-system:".to_owned(),
            )),
            ..EventFilter::default()
        },
        EventFilter {
            user: user(kaudit_store::UserMatch::Prefix(String::new())),
            ..EventFilter::default()
        },
        EventFilter {
            verb: s("delete"),
            ..EventFilter::default()
        },
        EventFilter {
            resource: s("secrets"),
            ..EventFilter::default()
        },
        EventFilter {
            namespace: s("monitoring"),
            ..EventFilter::default()
        },
        EventFilter {
            source_ip: s("10.0.1.2"),
            ..EventFilter::default()
        },
        EventFilter {
            response_code: Some(403),
            ..EventFilter::default()
        },
        EventFilter {
            decision: s("forbid"),
            ..EventFilter::default()
        },
        EventFilter {
            user_agent_contains: s("CONTROLLER-manager"),
            ..EventFilter::default()
        },
        EventFilter {
            user_agent_contains: s("no-such-agent"),
            ..EventFilter::default()
        },
        EventFilter {
            name: s("Straße-ÉTÉ"),
            ..EventFilter::default()
        },
    ];
    let (first, last) = (kept[0].fields.time_ns, kept[kept.len() - 1].fields.time_ns);
    let ranges = [
        kaudit_store::TimeRange::default(),
        kaudit_store::TimeRange {
            from_ns: Some(first + (last - first) / 5 + 7),
            to_ns: Some(last - (last - first) / 4 - 3),
        },
        kaudit_store::TimeRange {
            from_ns: Some(first + (last - first) / 2),
            to_ns: None,
        },
    ];
    const MINUTE: i64 = 60_000_000_000;
    let mut rolled_up_blocks = 0;
    for time in ranges {
        for condition in &conditions {
            let filter = EventFilter {
                time,
                ..condition.clone()
            };
            let matching: Vec<i64> = kept
                .iter()
                .filter(|e| kaudit_store::testsuite::event_matches(&filter, &e.fields))
                .map(|e| e.fields.time_ns)
                .collect();
            let count = store
                .count_events(&filter)
                .unwrap_or_else(|e| panic!("count: {e}"));
            assert_eq!(count, matching.len() as u64, "count of {filter:?}");
            let upto = store
                .count_events_upto(&filter, 5)
                .unwrap_or_else(|e| panic!("count: {e}"));
            assert_eq!(upto, count.min(5), "count up to 5 of {filter:?}");
            for width in [MINUTE, 60 * MINUTE, 7 * 1_000_000_000] {
                let mut want: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
                for t in &matching {
                    *want
                        .entry(kaudit_store::HistogramBucket::start_of(*t, width))
                        .or_default() += 1;
                }
                let got: std::collections::BTreeMap<i64, u64> = store
                    .histogram_events(&filter, width)
                    .unwrap_or_else(|e| panic!("histogram: {e}"))
                    .into_iter()
                    .map(|b| (b.start_ns, b.count))
                    .collect();
                assert_eq!(got, want, "histogram of {filter:?} by {width} ns");
            }
        }
        // The rollups were used: blocks wholly inside this range exist.
        let conn = Connection::open(store.path()).unwrap_or_else(|e| panic!("open: {e}"));
        let whole: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM blocks WHERE exact = 1 AND min_time >= ?1 AND max_time < ?2",
                [time.from_ns.unwrap_or(i64::MIN), time.to_ns.unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("blocks: {e}"));
        rolled_up_blocks += whole;
    }
    assert!(rolled_up_blocks > 10, "only {rolled_up_blocks} whole blocks");
}
