//! Event counts (schema version 3, `migrations/0003_event_counts.sql`): grouped counts,
//! histograms and counts whose filter is a time range and at most a cluster are added up from
//! stored counts instead of read from the events.
//!
//! Triggers on `events` append each statement's counts per minute to `event_count_deltas`, in
//! the statement's transaction; [`Compactor`] moves them, every few seconds, into
//! `event_counts`, which keeps per-minute, 10-minute, hour and day buckets. A query splits its
//! time range ([`Plan`]) into whole buckets, largest first, read from `event_counts` and the
//! deltas of their minutes, and at most two pieces shorter than a minute at the ends, counted
//! from the events: the piece itself, or its whole minute minus the rest of that minute,
//! whichever is shorter. All of it is one statement, so one snapshot: whatever the compaction
//! and the writers do meanwhile, the answer is the row scan's.
//!
//! A stored count is keyed by 16-byte digests of its cluster (since schema version 4) and its
//! value, never by the text itself: a btree entry cannot hold a value of a few kilobytes, and a
//! compaction that failed on one would never succeed again.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use kaudit_store::{
    EventFilter, EventGroupField, GroupCount, HistogramBucket, PageRequest, Result, StoreError,
};
use postgres::Client;

use crate::read::{Where, sql_error};
use crate::{PgConfig, open_client};

/// A minute in nanoseconds: the finest stored bucket.
const MINUTE_NS: i64 = 60_000_000_000;

/// The stored levels: the number in `event_counts.level` and the bucket width in minutes. Each
/// width divides the next.
const LEVELS: [(i16, i64); 4] = [(0, 1), (1, 10), (2, 60), (3, 1440)];

/// The `dim` of the counts of every event (histograms, totals, grouping by cluster).
const ALL: i16 = 0;

/// An open end of a time range, as a time that every level's width divides.
const UNBOUNDED: i128 = (1440 * MINUTE_NS as i128) << 40;

/// True when `filter` holds nothing but a time range and a cluster: the stored counts answer it.
pub(crate) fn answers(filter: &EventFilter) -> bool {
    *filter
        == EventFilter {
            time: filter.time,
            cluster: filter.cluster.clone(),
            ..EventFilter::default()
        }
}

/// What a grouped count counts: the `dim` of its stored counts, and the expression of its key
/// over `events e` (text in the "C" collation, as the stored values).
fn dimension(field: EventGroupField) -> (i16, &'static str) {
    match field {
        EventGroupField::Cluster => (ALL, "e.cluster"),
        EventGroupField::User => (1, "e.username"),
        EventGroupField::Verb => (2, "e.verb"),
        EventGroupField::Resource => (3, "e.resource"),
        EventGroupField::Namespace => (4, "e.namespace"),
        EventGroupField::SourceIp => (5, "e.source_ip"),
        EventGroupField::ResponseCode => (6, "e.response_code::text COLLATE \"C\""),
        EventGroupField::Decision => (7, "e.decision"),
        EventGroupField::UserAgent => (8, "e.user_agent"),
    }
}

/// How a time range is counted.
#[derive(Debug, Default, PartialEq, Eq)]
struct Plan {
    /// Stored buckets: level number, first and end bucket number at that level.
    buckets: Vec<(i16, i64, i64)>,
    /// The minutes those buckets cover, first and end: the deltas to add.
    minutes: Option<(i64, i64)>,
    /// Event times `[from, to)`, each within one minute, counted from the events, with the
    /// minute's number and a sign: 1 to add, -1 to take away.
    rows: Vec<RowPiece>,
}

/// Part of a minute counted from the events.
#[derive(Debug, PartialEq, Eq)]
struct RowPiece {
    from: i64,
    to: i64,
    minute: i64,
    sign: i64,
}

fn floor_to(x: i128, width: i128) -> i128 {
    x.div_euclid(width) * width
}

fn ceil_to(x: i128, width: i128) -> i128 {
    -floor_to(-x, width)
}

fn to_i64(x: i128) -> i64 {
    i64::try_from(x).unwrap_or(if x < 0 { i64::MIN } else { i64::MAX })
}

impl Plan {
    /// The plan for `[from, to)` (open ends as `None`) over `levels`, a chain of [`LEVELS`]
    /// starting with the minute.
    fn new(from: Option<i64>, to: Option<i64>, levels: &[(i16, i64)]) -> Plan {
        let mut plan = Plan::default();
        let lo = from.map_or(-UNBOUNDED, i128::from);
        let hi = to.map_or(UNBOUNDED, i128::from);
        if lo >= hi {
            return plan;
        }
        let m = i128::from(MINUTE_NS);
        let piece = |plan: &mut Plan, from: i128, to: i128, sign: i64| {
            plan.rows.push(RowPiece {
                from: to_i64(from),
                to: to_i64(to),
                minute: to_i64(floor_to(from, m) / m),
                sign,
            });
        };
        let (lo_floor, lo_ceil) = (floor_to(lo, m), ceil_to(lo, m));
        let (hi_floor, hi_ceil) = (floor_to(hi, m), ceil_to(hi, m));
        // The whole minutes to read from the stored counts.
        let (first, end);
        if lo_ceil > hi_floor {
            // Within one minute.
            if 2 * (hi - lo) <= m {
                piece(&mut plan, lo, hi, 1);
                return plan;
            }
            if lo_floor < lo {
                piece(&mut plan, lo_floor, lo, -1);
            }
            if hi < hi_ceil {
                piece(&mut plan, hi, hi_ceil, -1);
            }
            (first, end) = (lo_floor, lo_floor + m);
        } else {
            let mut whole = (lo_ceil, hi_floor);
            if lo < lo_ceil {
                if 2 * (lo_ceil - lo) <= m {
                    piece(&mut plan, lo, lo_ceil, 1);
                } else {
                    piece(&mut plan, lo_floor, lo, -1);
                    whole.0 = lo_floor;
                }
            }
            if hi_floor < hi {
                if 2 * (hi - hi_floor) <= m {
                    piece(&mut plan, hi_floor, hi, 1);
                } else {
                    piece(&mut plan, hi, hi_ceil, -1);
                    whole.1 = hi_ceil;
                }
            }
            (first, end) = whole;
        }
        if first >= end {
            return plan;
        }
        plan.minutes = Some((to_i64(first / m), to_i64(end / m)));
        // From the minute up: each level takes what the next one cannot.
        let width = |i: usize| i128::from(levels[i].1) * m;
        let bucket = |plan: &mut Plan, i: usize, a: i128, b: i128| {
            if a < b {
                plan.buckets
                    .push((levels[i].0, to_i64(a / width(i)), to_i64(b / width(i))));
            }
        };
        let (mut a, mut b) = (first, end);
        for i in 1..levels.len() {
            let (next_a, next_b) = (ceil_to(a, width(i)), floor_to(b, width(i)));
            if next_a >= next_b {
                bucket(&mut plan, i - 1, a, b);
                return plan;
            }
            bucket(&mut plan, i - 1, a, next_a);
            bucket(&mut plan, i - 1, next_b, b);
            (a, b) = (next_a, next_b);
        }
        bucket(&mut plan, levels.len() - 1, a, b);
        plan
    }
}

/// The key columns of each kind of part of a counting query.
struct Keys<'a> {
    /// Over `event_counts`.
    counts: &'a str,
    /// Over `event_count_deltas`.
    deltas: &'a str,
    /// Over `events e`, for a row piece of the given minute (a parameter marker); `None` when
    /// the rows are grouped by nothing.
    rows: &'a dyn Fn(&str) -> String,
    /// Whether rows are grouped by their key (`GROUP BY 1`).
    grouped: bool,
}

/// The plan's parts as `SELECT keys, n` statements joined by `UNION ALL`; `None` when the
/// range is empty.
fn parts(plan: &Plan, w: &mut Where, dim: i16, cluster: Option<&String>, keys: &Keys<'_>) -> Option<String> {
    let cluster = cluster.map(|c| w.param(c.clone()));
    let on_cluster = |column: &str| {
        cluster
            .as_ref()
            .map_or(String::new(), |p| format!(" AND {column} = {p}"))
    };
    // The stored counts are keyed by the cluster's digest (schema version 4): the key narrows,
    // the cluster decides.
    let on_cluster_key = cluster.as_ref().map_or(String::new(), |p| {
        format!(
            " AND cluster_key = substring(sha256(convert_to({p}, 'UTF8')) FROM 1 FOR 16) AND cluster = {p}"
        )
    });
    let mut parts = Vec::new();
    for &(level, first, end) in &plan.buckets {
        let (a, b) = (w.param(first), w.param(end));
        parts.push(format!(
            "SELECT {}, n FROM event_counts WHERE dim = {dim} AND level = {level} AND bucket >= {a} AND bucket < {b}{on_cluster_key}",
            keys.counts,
        ));
    }
    if let Some((first, end)) = plan.minutes {
        let (a, b) = (w.param(first), w.param(end));
        parts.push(format!(
            "SELECT {}, n FROM event_count_deltas WHERE dim = {dim} AND bucket >= {a} AND bucket < {b}{}",
            keys.deltas,
            on_cluster("cluster")
        ));
    }
    for piece in &plan.rows {
        let (from, to, minute) = (w.param(piece.from), w.param(piece.to), w.param(piece.minute));
        parts.push(format!(
            "SELECT {}, {} * COUNT(*) FROM events e WHERE e.time_ns >= {from} AND e.time_ns < {to}{}{}",
            (keys.rows)(&minute),
            piece.sign,
            on_cluster("e.cluster"),
            if keys.grouped { " GROUP BY 1" } else { "" }
        ));
    }
    if parts.is_empty() {
        None
    } else {
        Some(parts.join(" UNION ALL "))
    }
}

/// [`crate::read::group_events`] for a filter the counts [`answers`].
pub(crate) fn group_events(
    client: &mut Client,
    filter: &EventFilter,
    field: EventGroupField,
    limit: u32,
) -> Result<Vec<GroupCount>> {
    let plan = Plan::new(filter.time.from_ns, filter.time.to_ns, &LEVELS);
    let (dim, column) = dimension(field);
    let stored = if dim == ALL { "cluster" } else { "value" };
    let rows = |_: &str| column.to_owned();
    let keys = Keys {
        counts: stored,
        deltas: stored,
        rows: &rows,
        grouped: true,
    };
    let mut w = Where::default();
    let Some(parts) = parts(&plan, &mut w, dim, filter.cluster.as_ref(), &keys) else {
        return Ok(Vec::new());
    };
    // Response codes are ordered as numbers, as the row scan orders them.
    let order = if field == EventGroupField::ResponseCode {
        "k::int"
    } else {
        "k"
    };
    let sql = format!(
        "SELECT k, SUM(n)::bigint AS total FROM ({}) AS parts (k, n) GROUP BY k HAVING SUM(n) > 0
         ORDER BY total DESC, {order} ASC NULLS FIRST LIMIT {}",
        parts,
        limit.min(PageRequest::MAX_LIMIT)
    );
    let fail = sql_error("adding up grouped counts");
    let rows = client.query_typed(&sql, &w.refs()).map_err(&fail)?;
    rows.iter()
        .map(|row| {
            let key: Option<String> = row.try_get(0).map_err(&fail)?;
            let n: i64 = row.try_get(1).map_err(&fail)?;
            Ok(GroupCount {
                key,
                count: n.max(0) as u64,
            })
        })
        .collect()
}

/// [`crate::read::histogram_events`] for a filter the counts [`answers`]; `None` when the
/// bucket width is not a whole number of minutes (the caller counts rows).
pub(crate) fn histogram_events(
    client: &mut Client,
    filter: &EventFilter,
    bucket_ns: i64,
) -> Result<Option<Vec<HistogramBucket>>> {
    if bucket_ns % MINUTE_NS != 0 {
        return Ok(None);
    }
    // Only levels whose buckets lie each within one histogram bucket.
    let levels: Vec<(i16, i64)> = LEVELS
        .iter()
        .copied()
        .filter(|&(_, minutes)| bucket_ns % (minutes * MINUTE_NS) == 0)
        .collect();
    let plan = Plan::new(filter.time.from_ns, filter.time.to_ns, &levels);
    let rows = |minute: &str| format!("0, {minute}");
    let keys = Keys {
        counts: "level, bucket",
        deltas: "0, bucket",
        rows: &rows,
        grouped: false,
    };
    let mut w = Where::default();
    let Some(parts) = parts(&plan, &mut w, ALL, filter.cluster.as_ref(), &keys) else {
        return Ok(Some(Vec::new()));
    };
    let sql =
        format!("SELECT l::smallint, b, SUM(n)::bigint FROM ({parts}) AS parts (l, b, n) GROUP BY l, b");
    let fail = sql_error("adding up a histogram");
    let mut buckets: BTreeMap<i64, i64> = BTreeMap::new();
    for row in client.query_typed(&sql, &w.refs()).map_err(&fail)? {
        let level: i16 = row.try_get(0).map_err(&fail)?;
        let bucket: i64 = row.try_get(1).map_err(&fail)?;
        let n: i64 = row.try_get(2).map_err(&fail)?;
        let minutes = LEVELS
            .iter()
            .find(|(l, _)| *l == level)
            .map(|(_, minutes)| *minutes)
            .ok_or_else(|| StoreError::Corrupt {
                what: "event_counts.level",
                reason: format!("unknown level {level}"),
            })?;
        let start = i128::from(bucket) * i128::from(minutes) * i128::from(MINUTE_NS);
        *buckets
            .entry(to_i64(floor_to(start, i128::from(bucket_ns))))
            .or_default() += n;
    }
    Ok(Some(
        buckets
            .into_iter()
            .filter(|&(_, n)| n > 0)
            .map(|(start_ns, n)| HistogramBucket {
                start_ns,
                count: n as u64,
            })
            .collect(),
    ))
}

/// [`crate::read::count_events`] for a filter the counts [`answers`].
pub(crate) fn count_events(client: &mut Client, filter: &EventFilter) -> Result<u64> {
    let plan = Plan::new(filter.time.from_ns, filter.time.to_ns, &LEVELS);
    let rows = |_: &str| "0".to_owned();
    let keys = Keys {
        counts: "0",
        deltas: "0",
        rows: &rows,
        grouped: false,
    };
    let mut w = Where::default();
    let Some(parts) = parts(&plan, &mut w, ALL, filter.cluster.as_ref(), &keys) else {
        return Ok(0);
    };
    let sql = format!("SELECT COALESCE(SUM(n), 0)::bigint FROM ({parts}) AS parts (k, n)");
    let fail = sql_error("adding up a count");
    let row = client.query_typed_one(&sql, &w.refs()).map_err(&fail)?;
    let n: i64 = row.try_get(0).map_err(&fail)?;
    Ok(n.max(0) as u64)
}

/// Moves the committed deltas into the counts, unless another process is doing it; returns
/// the deltas moved (`None` when another process held the compaction).
pub(crate) fn compact(client: &mut Client) -> Result<Option<i64>> {
    let fail = sql_error("compacting event counts");
    let mut tx = client.transaction().map_err(&fail)?;
    // One compaction at a time per schema: the lock is keyed by the deltas table.
    let locked: bool = tx
        .query_one(
            "SELECT pg_try_advisory_xact_lock(1801545075, 'event_count_deltas'::regclass::oid::int)",
            &[],
        )
        .and_then(|row| row.try_get(0))
        .map_err(&fail)?;
    if !locked {
        return Ok(None);
    }
    let moved: i64 = tx
        .query_one("SELECT compact_event_counts()", &[])
        .and_then(|row| row.try_get(0))
        .map_err(&fail)?;
    tx.commit().map_err(&fail)?;
    Ok(Some(moved))
}

/// How often the compactor runs while the store writes. Each run upserts every key its deltas
/// name at each level, so a longer interval upserts a busy key fewer times: at about 10,000
/// events a second, compacting every second cost PostgreSQL 17 µs of CPU per event, every 5
/// seconds 9 (the triggers alone, 1 to 2). Queries read the deltas of the interval, some
/// 50,000 rows at that rate.
const COMPACT_EVERY: Duration = Duration::from_secs(5);

/// Intervals between two looks for deltas left by other processes when this one is idle.
const IDLE_TICKS: u32 = 12;

/// Deltas moved between two vacuums of their table. Queries read the whole table, and the space
/// of the rows a compaction deleted is reused only once a vacuum has seen it.
const VACUUM_AFTER: i64 = 50_000;

#[derive(Default)]
struct Signal {
    /// This store wrote since the last compaction.
    pending: bool,
    stop: bool,
}

/// The background thread that compacts the deltas: once every [`COMPACT_EVERY`] while the
/// store writes, and now and then when idle, on a connection of its own. Errors are left
/// for the next round: deltas not yet moved are still counted by queries.
pub(crate) struct Compactor {
    signal: Arc<(Mutex<Signal>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Compactor {
    /// Starts the thread; its first round comes after one interval.
    pub(crate) fn start(config: PgConfig) -> Compactor {
        let signal = Arc::new((
            Mutex::new(Signal {
                pending: true,
                stop: false,
            }),
            Condvar::new(),
        ));
        let shared = Arc::clone(&signal);
        let thread = std::thread::Builder::new()
            .name("kaudit-pg-counts".to_owned())
            .spawn(move || run(&config, &shared))
            .ok();
        Compactor { signal, thread }
    }

    /// Tells the thread that the store wrote.
    pub(crate) fn notify(&self) {
        if let Ok(mut signal) = self.signal.0.lock() {
            signal.pending = true;
        }
    }
}

impl Drop for Compactor {
    fn drop(&mut self) {
        if let Ok(mut signal) = self.signal.0.lock() {
            signal.stop = true;
        }
        self.signal.1.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(config: &PgConfig, signal: &(Mutex<Signal>, Condvar)) {
    let (lock, wake) = signal;
    let mut client: Option<Client> = None;
    let mut idle = 0u32;
    let mut since_vacuum = 0i64;
    loop {
        let pending = {
            let Ok(guard) = lock.lock() else { return };
            let Ok((mut guard, _)) = wake.wait_timeout_while(guard, COMPACT_EVERY, |s| !s.stop) else {
                return;
            };
            if guard.stop {
                return;
            }
            std::mem::take(&mut guard.pending)
        };
        idle += 1;
        if !pending && idle < IDLE_TICKS {
            continue;
        }
        idle = 0;
        if client.as_ref().is_none_or(Client::is_closed) {
            client = open_client(config).ok();
        }
        let Some(c) = client.as_mut() else { continue };
        match compact(c) {
            Ok(moved) => since_vacuum += moved.unwrap_or(0),
            Err(_) => {
                client = None;
                continue;
            }
        }
        if since_vacuum >= VACUUM_AFTER {
            since_vacuum = 0;
            // Another process vacuuming it already is as good.
            let _ = c.batch_execute("VACUUM (SKIP_LOCKED) event_count_deltas");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{LEVELS, MINUTE_NS, Plan, RowPiece};

    const M: i64 = MINUTE_NS;
    const T: i64 = 1_714_521_600_000_000_000; // a day boundary

    fn piece(from: i64, to: i64, sign: i64) -> RowPiece {
        RowPiece {
            from,
            to,
            minute: from.div_euclid(M),
            sign,
        }
    }

    #[test]
    fn plans_split_ranges_into_the_largest_whole_buckets_and_short_row_pieces() {
        let day = 1440;
        type Case = (&'static str, Option<i64>, Option<i64>, Plan);
        let cases: Vec<Case> = vec![
            ("empty", Some(T), Some(T), Plan::default()),
            (
                "a few seconds: rows",
                Some(T + 5_000_000_000),
                Some(T + 9_000_000_000),
                Plan {
                    rows: vec![piece(T + 5_000_000_000, T + 9_000_000_000, 1)],
                    ..Plan::default()
                },
            ),
            (
                "most of a minute: the minute minus its ends",
                Some(T + 1),
                Some(T + M - 1),
                Plan {
                    buckets: vec![(0, T / M, T / M + 1)],
                    minutes: Some((T / M, T / M + 1)),
                    rows: vec![piece(T, T + 1, -1), piece(T + M - 1, T + M, -1)],
                },
            ),
            (
                "one hour and a bit, from a minute's end",
                Some(T - 10_000_000_000),
                Some(T + 61 * M + 1),
                Plan {
                    buckets: vec![(0, T / M + 60, T / M + 61), (2, T / (60 * M), T / (60 * M) + 1)],
                    minutes: Some((T / M, T / M + 61)),
                    rows: vec![
                        piece(T - 10_000_000_000, T, 1),
                        piece(T + 61 * M, T + 61 * M + 1, 1),
                    ],
                },
            ),
            (
                "minutes, tens of minutes, hours, days, and back down",
                Some(T - 2 * 60 * M - 13 * M),
                Some(T + 2 * day * M + 60 * M + 21 * M),
                Plan {
                    buckets: vec![
                        (0, T / M - 133, T / M - 130),
                        (0, T / M + 2960, T / M + 2961),
                        (1, T / (10 * M) - 13, T / (10 * M) - 12),
                        (1, T / (10 * M) + 294, T / (10 * M) + 296),
                        (2, T / (60 * M) - 2, T / (60 * M)),
                        (2, T / (60 * M) + 48, T / (60 * M) + 49),
                        (3, T / (day * M), T / (day * M) + 2),
                    ],
                    minutes: Some((T / M - 133, T / M + 2961)),
                    rows: vec![],
                },
            ),
            (
                "open ends: the largest buckets",
                None,
                None,
                Plan {
                    buckets: vec![(3, -(1 << 40), 1 << 40)],
                    minutes: Some((-(day << 40), day << 40)),
                    rows: vec![],
                },
            ),
            (
                "before 1970",
                Some(-90 * M - 1),
                Some(-M + 7),
                Plan {
                    buckets: vec![(0, -10, -1), (1, -9, -1)],
                    minutes: Some((-90, -1)),
                    rows: vec![piece(-90 * M - 1, -90 * M, 1), piece(-M, -M + 7, 1)],
                },
            ),
        ];
        for (name, from, to, want) in cases {
            assert_eq!(Plan::new(from, to, &LEVELS), want, "{name}");
        }
    }
}
