//! Tests of the PostgreSQL backend against the server on 127.0.0.1:5432 (or
//! `KAUDIT_TEST_POSTGRES_URL`): the shared contract suite and migrations, each test in its own
//! schema, dropped afterwards. Without a reachable server the tests print a notice and pass,
//! except under `CI=true`, where that is a failure.

use std::sync::atomic::{AtomicU64, Ordering};

use kaudit_store::testsuite::{self, Harness, T0};
use kaudit_store::{
    EventFilter, EventQuery, EventWriter, Migrator, PageRequest, Retention, Store, TimeRange, UserMatch,
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
    let store = PgStore::open(config, false).unwrap_or_else(|e| panic!("connect: {e} ({e:?})"));
    Some(PgHarness { store, schema })
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
    assert_eq!(store.schema_version().ok(), Some(3));
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
