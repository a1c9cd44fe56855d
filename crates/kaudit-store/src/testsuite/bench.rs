//! Benchmark drivers shared by the backends' bench binaries: batch insert throughput and
//! search latency over a generated dataset.
//!
//! Modes (arguments after `--`, `key=value`):
//! * `insert events=N clients=C batch=400`: generate N events first, then insert them in
//!   batches from C threads; reports events/s and batch latency percentiles.
//! * `load events=N clients=C seed=S`: fill a large dataset, generating while inserting (the
//!   rate includes generation); another seed adds different events to an existing dataset.
//! * `search iterations=K`: typical searches with varied parameters on the loaded dataset;
//!   reports p50/p95 per query kind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kaudit_model::Priority;

use super::workload::{self, Workload};
use super::{Rng, T0};
use crate::{
    AlertFilter, AlertGroupField, EventFilter, EventGroupField, EventId, NewAlert, NewEvent, PageRequest,
    Store, TimeRange, UserMatch,
};

/// Parsed `key=value` arguments (the first bare word is the mode).
pub struct Args {
    /// `insert`, `load` or `search`.
    pub mode: String,
    values: HashMap<String, String>,
}

impl Args {
    /// Reads the process arguments, ignoring the `--bench` flag cargo adds.
    pub fn from_env() -> Args {
        let mut mode = String::new();
        let mut values = HashMap::new();
        for arg in std::env::args().skip(1) {
            if arg.starts_with("--") {
                continue;
            }
            match arg.split_once('=') {
                Some((k, v)) => {
                    values.insert(k.to_owned(), v.to_owned());
                }
                None if mode.is_empty() => mode = arg,
                None => {}
            }
        }
        Args { mode, values }
    }

    /// A text argument.
    pub fn text(&self, key: &str, default: &str) -> String {
        self.values
            .get(key)
            .cloned()
            .unwrap_or_else(|| default.to_owned())
    }

    /// A number argument (falls back to the default when unparsable).
    pub fn number(&self, key: &str, default: u64) -> u64 {
        self.values
            .get(key)
            .and_then(|v| v.replace('_', "").parse().ok())
            .unwrap_or(default)
    }
}

const DAY: i64 = 86_400 * 1_000_000_000;
/// Datasets span 30 days from [`T0`].
pub const SPAN_NS: i64 = 30 * DAY;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs the mode named in `args` against `store`.
pub fn run(store: Arc<dyn Store>, args: &Args) {
    match args.mode.as_str() {
        "insert" => insert(store, args),
        "load" => load(store, args),
        "search" => search(&*store, args),
        other => eprintln!("unknown mode {other:?}: use insert, load or search"),
    }
}

type Batch = (Vec<NewEvent>, Vec<NewAlert>);

fn insert(store: Arc<dyn Store>, args: &Args) {
    let total = args.number("events", 1_000_000) as usize;
    let batch = args.number("batch", 400).max(1) as usize;
    let clients = args.number("clients", 4).max(1) as usize;
    let seed = args.number("seed", 1);
    let generated = Instant::now();
    let mut work = Workload::new(seed, T0, SPAN_NS / total.max(1) as i64);
    let batches: Vec<Batch> = (0..total.div_ceil(batch)).map(|_| work.batch(batch)).collect();
    let raw_bytes: usize = batches.iter().flat_map(|b| &b.0).map(|e| e.raw_json.len()).sum();
    let n_alerts: usize = batches.iter().map(|b| b.1.len()).sum();
    println!(
        "generated {} events ({:.0} bytes raw on average), {} alerts in {:.1} s",
        total,
        raw_bytes as f64 / total.max(1) as f64,
        n_alerts,
        generated.elapsed().as_secs_f64()
    );
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let cpu_before = thread_cpu_seconds();
    let process_before = process_cpu_seconds();
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (store, batches, next, latencies) = (
                Arc::clone(&store),
                Arc::clone(&batches),
                Arc::clone(&next),
                Arc::clone(&latencies),
            );
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((events, alerts)) = batches.get(i) else {
                        break;
                    };
                    let t = Instant::now();
                    if let Err(e) = store.insert_batch(events, alerts) {
                        eprintln!("batch {i} failed: {e}");
                    }
                    mine.push(t.elapsed());
                }
                if let Ok(mut all) = latencies.lock() {
                    all.extend(mine);
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let elapsed = start.elapsed();
    let mut latencies = latencies.lock().map(|l| l.clone()).unwrap_or_default();
    latencies.sort_unstable();
    println!(
        "inserted {} events + {} alerts in {:.2} s: {:.0} events/s; batch of {} latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} clients)",
        total,
        n_alerts,
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        batch,
        ms(percentile(&latencies, 50)),
        ms(percentile(&latencies, 99)),
        ms(latencies.last().copied().unwrap_or_default()),
        clients
    );
    let process = process_cpu_seconds() - process_before;
    println!(
        "  process: {process:.2} CPU s, {:.1} µs per event, {:.0} events per CPU second",
        process * 1e6 / total.max(1) as f64,
        total as f64 / process.max(1e-9)
    );
    print_thread_cpu(&cpu_before, total);
}

/// CPU seconds (user and system) this process used so far, from `/proc/self/stat`.
fn process_cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    let Some(close) = stat.rfind(')') else { return 0.0 };
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by each thread of this process, by thread name (Linux `/proc`;
/// empty elsewhere). Threads that ended are not listed.
pub fn thread_cpu_seconds() -> Vec<(String, f64)> {
    let ticks_per_second = 100.0;
    let mut out: Vec<(String, f64)> = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        // The name is in parentheses and may contain spaces; fields follow the last ')'.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = stat[open + 1..close].to_owned();
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        let seconds = (ticks(11) + ticks(12)) / ticks_per_second;
        match out.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 += seconds,
            None => out.push((name, seconds)),
        }
    }
    out
}

fn print_thread_cpu(before: &[(String, f64)], events: usize) {
    for (name, seconds) in thread_cpu_seconds() {
        let earlier = before.iter().find(|(n, _)| *n == name).map_or(0.0, |e| e.1);
        let used = seconds - earlier;
        if used > 0.0 && name.starts_with("kaudit") {
            println!(
                "  thread {name}: {used:.2} CPU s, {:.1} µs per event",
                used * 1e6 / events.max(1) as f64
            );
        }
    }
}

fn load(store: Arc<dyn Store>, args: &Args) {
    let total = args.number("events", 10_000_000);
    let clients = args.number("clients", 2).max(1);
    let batch = args.number("batch", 400).max(1) as usize;
    // Another seed adds different events to an existing dataset (the same seed only repeats it).
    let seed = args.number("seed", 1);
    let start = Instant::now();
    let done = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (store, done) = (Arc::clone(&store), Arc::clone(&done));
            let mine = total / clients;
            std::thread::spawn(move || {
                // Each client covers the whole span with its own stream; streams interleave.
                let mut work = Workload::new(seed * 1000 + c, T0 + c as i64, SPAN_NS / mine.max(1) as i64);
                let mut inserted = 0u64;
                while inserted < mine {
                    let (events, alerts) = work.batch(batch);
                    if let Err(e) = store.insert_batch(&events, &alerts) {
                        eprintln!("load batch failed: {e}");
                    }
                    inserted += events.len() as u64;
                    let so_far = done.fetch_add(events.len(), Ordering::Relaxed) + events.len();
                    if so_far % 1_000_000 < events.len() {
                        println!("  {so_far} events, {:.0} s", start.elapsed().as_secs_f64());
                    }
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
    let n = done.load(Ordering::Relaxed);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "loaded {n} events in {secs:.0} s ({:.0} events/s including generation)",
        n as f64 / secs
    );
}

fn search(store: &dyn Store, args: &Args) {
    let iterations = args.number("iterations", 40).max(1) as usize;
    let mut rng = Rng(args.number("seed", 77) | 1);
    let end = T0 + SPAN_NS;
    let newest = store.search_events(&EventFilter::default(), PageRequest::first(1));
    let max_id = newest
        .ok()
        .and_then(|p| p.items.first().map(|e| e.id.0))
        .unwrap_or(1);
    let limit: u32 = 50;
    type Query<'q> = Box<dyn Fn(&mut Rng) -> usize + 'q>;
    let page = move |filter: EventFilter| -> usize {
        store
            .search_events(&filter, PageRequest::first(limit))
            .map(|p| p.items.len())
            .unwrap_or(0)
    };
    let last_day = TimeRange::between(end - DAY, end);
    let queries: Vec<(&str, Query)> = vec![
        (
            "newest page, no filter",
            Box::new(move |_| page(EventFilter::default())),
        ),
        (
            "user exact",
            Box::new(move |r| {
                page(EventFilter {
                    user: Some(UserMatch::Exact(workload::user(r.next() % 300))),
                    ..Default::default()
                })
            }),
        ),
        (
            "user prefix (namespace's service accounts)",
            Box::new(move |r| {
                let prefix = format!("system:serviceaccount:{}:", workload::namespace(r.next() % 40));
                page(EventFilter {
                    user: Some(UserMatch::Prefix(prefix)),
                    ..Default::default()
                })
            }),
        ),
        (
            "namespace + verb=delete",
            Box::new(move |r| {
                page(EventFilter {
                    namespace: Some(workload::namespace(r.next() % 40)),
                    verb: Some("delete".to_owned()),
                    ..Default::default()
                })
            }),
        ),
        (
            "resource=secrets + verb=get, last 24 h",
            Box::new(move |_| {
                page(EventFilter {
                    time: last_day,
                    resource: Some("secrets".to_owned()),
                    verb: Some("get".to_owned()),
                    ..Default::default()
                })
            }),
        ),
        (
            "object name exact",
            Box::new(move |r| {
                page(EventFilter {
                    name: Some(workload::object_name("pods", r.next() % 20_000)),
                    ..Default::default()
                })
            }),
        ),
        (
            "free text (object name fragment)",
            Box::new(move |r| {
                let name = workload::object_name("secrets", r.next() % 20_000);
                let fragment = name.get(7..14).unwrap_or(&name).to_owned();
                page(EventFilter {
                    text: Some(fragment),
                    ..Default::default()
                })
            }),
        ),
        (
            "response code 403 + namespace",
            Box::new(move |r| {
                page(EventFilter {
                    response_code: Some(403),
                    namespace: Some(workload::namespace(r.next() % 40)),
                    ..Default::default()
                })
            }),
        ),
        (
            "source IP",
            Box::new(move |r| {
                let u = r.next() % 300;
                page(EventFilter {
                    source_ip: Some(format!("10.{}.{}.{}", u % 4, (u / 4) % 16, 2 + u % 50)),
                    ..Default::default()
                })
            }),
        ),
        (
            "user agent substring + cluster, last 24 h",
            Box::new(move |_| {
                page(EventFilter {
                    time: last_day,
                    cluster: Some("prod-us".to_owned()),
                    user_agent_contains: Some("kubectl".to_owned()),
                    ..Default::default()
                })
            }),
        ),
        (
            "one hour window, page 3",
            Box::new(move |r| {
                let from = T0 + (r.next() % (SPAN_NS as u64 - 3_600_000_000_000)) as i64;
                let filter = EventFilter {
                    time: TimeRange::between(from, from + 3_600_000_000_000),
                    ..Default::default()
                };
                let mut cursor = None;
                let mut n = 0;
                for _ in 0..3 {
                    match store.search_events(&filter, PageRequest { limit, cursor }) {
                        Ok(p) => {
                            n = p.items.len();
                            cursor = p.next_cursor;
                        }
                        Err(_) => return 0,
                    }
                }
                n
            }),
        ),
        (
            "count, user exact, last 24 h",
            Box::new(move |r| {
                let filter = EventFilter {
                    time: last_day,
                    user: Some(UserMatch::Exact(workload::user(r.next() % 300))),
                    ..Default::default()
                };
                store.count_events(&filter).map(|n| n as usize).unwrap_or(0)
            }),
        ),
        (
            "group by user, last 24 h",
            Box::new(move |_| {
                let filter = EventFilter {
                    time: last_day,
                    ..Default::default()
                };
                store
                    .group_events(&filter, EventGroupField::User, 20)
                    .map(|g| g.len())
                    .unwrap_or(0)
            }),
        ),
        (
            "histogram 1 h buckets, last 24 h, verb=delete",
            Box::new(move |_| {
                let filter = EventFilter {
                    time: last_day,
                    verb: Some("delete".to_owned()),
                    ..Default::default()
                };
                store
                    .histogram_events(&filter, 3_600_000_000_000)
                    .map(|h| h.len())
                    .unwrap_or(0)
            }),
        ),
        (
            "one event in full by id",
            Box::new(move |r| {
                let id = 1 + (r.next() % max_id.max(1) as u64) as i64;
                store
                    .get_event(EventId(id))
                    .ok()
                    .flatten()
                    .map(|e| e.raw_json.len().min(1))
                    .unwrap_or(0)
            }),
        ),
        (
            "alerts: min priority Critical, newest page",
            Box::new(move |_| {
                let filter = AlertFilter {
                    min_priority: Some(Priority::Critical),
                    ..Default::default()
                };
                store
                    .search_alerts(&filter, PageRequest::first(limit))
                    .map(|p| p.items.len())
                    .unwrap_or(0)
            }),
        ),
        (
            "alerts: rule + cluster",
            Box::new(move |r| {
                let filter = AlertFilter {
                    rule: Some(workload::RULES[(r.next() % 6) as usize].to_owned()),
                    cluster: Some("staging".to_owned()),
                    ..Default::default()
                };
                store
                    .search_alerts(&filter, PageRequest::first(limit))
                    .map(|p| p.items.len())
                    .unwrap_or(0)
            }),
        ),
        (
            "alerts: group by rule, last 24 h",
            Box::new(move |_| {
                let filter = AlertFilter {
                    time: last_day,
                    ..Default::default()
                };
                store
                    .group_alerts(&filter, AlertGroupField::Rule, 20)
                    .map(|g| g.len())
                    .unwrap_or(0)
            }),
        ),
    ];
    println!(
        "{:<48} {:>9} {:>9} {:>9} {:>7}",
        "query", "p50 ms", "p95 ms", "max ms", "rows"
    );
    for (name, query) in &queries {
        // One warm-up run, then the measured ones.
        query(&mut rng);
        let mut times = Vec::with_capacity(iterations);
        let mut rows = 0;
        for _ in 0..iterations {
            let t = Instant::now();
            rows += query(&mut rng);
            times.push(t.elapsed());
        }
        times.sort_unstable();
        println!(
            "{:<48} {:>9.2} {:>9.2} {:>9.2} {:>7.1}",
            name,
            ms(percentile(&times, 50)),
            ms(percentile(&times, 95)),
            ms(times.last().copied().unwrap_or_default()),
            rows as f64 / iterations as f64
        );
    }
}
