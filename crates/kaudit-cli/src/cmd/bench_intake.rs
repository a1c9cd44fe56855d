//! `kaudit bench intake` and `kaudit bench search`: load and latency measurements of a
//! running intake server through its HTTP endpoints, as clients see it.
//!
//! `bench intake` sends the realistic events of `kaudit bench generate` in `EventList`
//! batches (400 events by default, like the kube-apiserver's webhook backend) from several
//! client threads, each waiting for the acknowledgement (the server answers only after the
//! batch is durably committed, detection included) before sending its next batch. It prints
//! events per second and the batch latency distribution. With `--spawn` it first starts a
//! `kaudit serve` of its own on a fresh data directory and reports that process's CPU time.
//!
//! The bodies are built before the clock starts when they fit in memory (`--preload-max`),
//! so the clients spend their CPU on HTTP only; beyond that a producer thread builds them
//! during the run and its work competes with the server's.
//!
//! `bench search` times typical activity searches (first page of 100, newest first) over
//! the events `bench intake` stored, and prints p50 and p95 per filter.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use kaudit_proto as proto;
use kaudit_server::client::{ApiClient, BodyEncoding, ClientError, IntakeClient};

/// Flags of `kaudit bench intake`.
#[derive(clap::Args)]
pub struct IntakeArgs {
    /// URL of a running kaudit server (`http://127.0.0.1:8080`).
    #[arg(long, required_unless_present = "spawn", conflicts_with = "spawn")]
    server: Option<String>,
    /// Intake key of that server.
    #[arg(
        long,
        env = "KAUDIT_INTAKE_KEY",
        hide_env_values = true,
        required_unless_present = "spawn"
    )]
    intake_key: Option<String>,
    /// Start a `kaudit serve` of this binary on a fresh data directory (SQLite, durable
    /// commit, default rules, retention off) and measure against it.
    #[arg(long)]
    spawn: bool,
    /// With `--spawn`: the data directory to use (kept afterwards) instead of a temporary one.
    #[arg(long, requires = "spawn")]
    data_dir: Option<PathBuf>,
    /// With `--spawn`: store in PostgreSQL (`postgres://...`) instead of SQLite.
    #[arg(long, requires = "spawn")]
    database: Option<String>,
    /// With `--database`: the PostgreSQL schema for kaudit's tables (created if missing).
    #[arg(long, requires = "database")]
    database_schema: Option<String>,
    /// Events to send.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Events per batch.
    #[arg(long, default_value_t = 400)]
    batch: usize,
    /// Concurrent clients, each with one batch in flight.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Compress bodies with gzip (`Content-Encoding: gzip`).
    #[arg(long)]
    gzip: bool,
    /// Seed of the event generator; use a new seed to send new events to a server that
    /// already stored a run (the same seed sends duplicates).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Endpoint path: `/k8s-audit` (the apiserver's) or `/intake/v1/events`.
    #[arg(long, default_value = "/k8s-audit")]
    path: String,
    /// Build every body before the clock starts when the run has at most this many events;
    /// larger runs build bodies during the run.
    #[arg(long, default_value_t = 2_000_000)]
    preload_max: u64,
}

/// Flags of `kaudit bench search`.
#[derive(clap::Args)]
pub struct SearchArgs {
    /// URL of the kaudit server.
    #[arg(long, env = "KAUDIT_SERVER")]
    server: String,
    /// API token (viewer or admin).
    #[arg(long, env = "KAUDIT_TOKEN", hide_env_values = true)]
    token: String,
    /// Times each search is run (after one unmeasured warm-up run).
    #[arg(long, default_value_t = 20)]
    runs: usize,
    /// Also time the count of each search (`/api/v1/events/count`).
    #[arg(long)]
    count: bool,
}

/// Runs `kaudit bench intake`.
pub fn run_intake(args: IntakeArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let mut spawned = None;
    let (base, key) = if args.spawn {
        let database = args
            .database
            .as_deref()
            .map(|url| (url, args.database_schema.as_deref()));
        let server = SpawnedServer::start(args.data_dir.as_deref(), database)?;
        let target = (server.base.clone(), server.intake_key.clone());
        spawned = Some(server);
        target
    } else {
        (
            args.server.clone().context("give --server URL or --spawn")?,
            args.intake_key.clone().context("give --intake-key KEY")?,
        )
    };
    let encoding = if args.gzip {
        BodyEncoding::Gzip
    } else {
        BodyEncoding::Identity
    };
    let batches = args.events.div_ceil(args.batch as u64);
    let preloaded = args.events <= args.preload_max;
    let source = if preloaded {
        eprintln!(
            "kaudit bench: building {batches} bodies of up to {} events",
            args.batch
        );
        let bodies = build_bodies(args.seed, args.events, args.batch, args.gzip)?;
        BodySource::Preloaded {
            bodies,
            next: AtomicUsize::new(0),
        }
    } else {
        eprintln!("kaudit bench: {batches} bodies built during the run (over --preload-max)");
        BodySource::Streamed(Mutex::new(stream_bodies(
            args.seed,
            args.events,
            args.batch,
            args.gzip,
            args.clients * 4,
        )))
    };
    let source = Arc::new(source);
    let totals = Arc::new(Totals::default());
    let stop = Arc::new(AtomicBool::new(false));
    let server_cpu_before = spawned.as_ref().and_then(|s| cpu_seconds(Some(s.pid())));
    let threads_before = spawned.as_ref().map(|s| thread_cpu(s.pid())).unwrap_or_default();
    let client_cpu_before = cpu_seconds(None);
    eprintln!(
        "kaudit bench: sending {} events to {base}{} with {} clients",
        args.events, args.path, args.clients
    );
    let started = Instant::now();
    let workers: Vec<_> = (0..args.clients)
        .map(|_| {
            let client = IntakeClient::new(&base, &args.path, &key, Duration::from_secs(120))?;
            let (source, totals, stop) = (source.clone(), totals.clone(), stop.clone());
            Ok(std::thread::spawn(move || {
                send_all(&client, &source, encoding, &totals, &stop)
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    report_progress(&totals, &workers, args.events, started);
    let mut latencies = Vec::new();
    for worker in workers {
        match worker.join() {
            Ok(mut own) => latencies.append(&mut own),
            Err(_) => anyhow::bail!("a client thread panicked"),
        }
    }
    let elapsed = started.elapsed();
    let server_cpu = spawned
        .as_ref()
        .and_then(|s| cpu_seconds(Some(s.pid())))
        .zip(server_cpu_before)
        .map(|(after, before)| after - before);
    let server_threads = spawned
        .as_ref()
        .map(|s| {
            let mut after = thread_cpu(s.pid());
            for (name, seconds) in &threads_before {
                if let Some(total) = after.get_mut(name) {
                    *total -= seconds;
                }
            }
            after
        })
        .unwrap_or_default();
    let client_cpu = cpu_seconds(None)
        .zip(client_cpu_before)
        .map(|(after, before)| after - before);
    let report = IntakeReport {
        events: totals.events.load(Ordering::Relaxed),
        accepted: totals.accepted.load(Ordering::Relaxed),
        duplicates: totals.duplicates.load(Ordering::Relaxed),
        alerts: totals.alerts.load(Ordering::Relaxed),
        body_bytes: totals.bytes.load(Ordering::Relaxed),
        retries: totals.retries.load(Ordering::Relaxed),
        failed_batches: totals.failed.load(Ordering::Relaxed),
        elapsed,
        latencies,
        server_cpu,
        server_threads,
        client_cpu,
    };
    let failed_batches = report.failed_batches;
    report.print(&args, preloaded);
    if let Some(server) = spawned {
        server.stop();
    }
    Ok(if failed_batches == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Counters shared by the client threads.
#[derive(Default)]
struct Totals {
    events: AtomicU64,
    accepted: AtomicU64,
    duplicates: AtomicU64,
    alerts: AtomicU64,
    bytes: AtomicU64,
    retries: AtomicU64,
    failed: AtomicU64,
}

/// A batch body and the number of events in it.
struct Body {
    bytes: Vec<u8>,
    events: u64,
}

/// Where the client threads take their next body.
enum BodySource {
    Preloaded { bodies: Vec<Body>, next: AtomicUsize },
    Streamed(Mutex<Receiver<Body>>),
}

impl BodySource {
    fn next(&self) -> Option<BodyRef<'_>> {
        match self {
            BodySource::Preloaded { bodies, next } => {
                let index = next.fetch_add(1, Ordering::Relaxed);
                bodies.get(index).map(BodyRef::Borrowed)
            }
            BodySource::Streamed(receiver) => {
                let receiver = receiver.lock().unwrap_or_else(|p| p.into_inner());
                receiver.recv().ok().map(BodyRef::Owned)
            }
        }
    }
}

enum BodyRef<'a> {
    Borrowed(&'a Body),
    Owned(Body),
}

impl BodyRef<'_> {
    fn body(&self) -> &Body {
        match self {
            BodyRef::Borrowed(body) => body,
            BodyRef::Owned(body) => body,
        }
    }
}

/// Most attempts of one batch (the first and the retries of a transport error or a 5xx).
const ATTEMPTS: u32 = 5;

/// One client: sends bodies until none is left; returns its batch latencies.
fn send_all(
    client: &IntakeClient,
    source: &BodySource,
    encoding: BodyEncoding,
    totals: &Totals,
    stop: &AtomicBool,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let Some(item) = source.next() else { break };
        let body = item.body();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let sent = Instant::now();
            match client.send(body.bytes.clone(), encoding) {
                Ok(ack) => {
                    latencies.push(sent.elapsed());
                    totals.events.fetch_add(body.events, Ordering::Relaxed);
                    totals.accepted.fetch_add(ack.accepted, Ordering::Relaxed);
                    totals.duplicates.fetch_add(ack.duplicates, Ordering::Relaxed);
                    totals.alerts.fetch_add(ack.alerts, Ordering::Relaxed);
                    totals.bytes.fetch_add(body.bytes.len() as u64, Ordering::Relaxed);
                    break;
                }
                Err(err) => {
                    let retryable = match &err {
                        ClientError::Status { status, .. } => *status >= 500,
                        _ => true,
                    };
                    if !retryable || attempt >= ATTEMPTS {
                        eprintln!("kaudit bench: batch failed: {err}");
                        totals.failed.fetch_add(1, Ordering::Relaxed);
                        if !retryable {
                            // A refused batch means the setup is wrong (key, limits): stop.
                            stop.store(true, Ordering::Relaxed);
                        }
                        break;
                    }
                    totals.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(100 * u64::from(attempt)));
                }
            }
        }
    }
    latencies
}

/// Prints a line every 10 seconds until the clients are done.
fn report_progress(
    totals: &Totals,
    workers: &[std::thread::JoinHandle<Vec<Duration>>],
    events: u64,
    started: Instant,
) {
    let mut last_print = Instant::now();
    while !workers.iter().all(|w| w.is_finished()) {
        std::thread::sleep(Duration::from_millis(200));
        if last_print.elapsed() >= Duration::from_secs(10) {
            last_print = Instant::now();
            let done = totals.events.load(Ordering::Relaxed);
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "kaudit bench: {done}/{events} events, {:.0} events/s so far",
                done as f64 / seconds.max(1e-9)
            );
        }
    }
}

/// The `EventList` body of a batch, compressed when asked.
fn encode_body(items: &str, n: u64, gzip: bool) -> anyhow::Result<Body> {
    let mut text = String::with_capacity(items.len() + 80);
    text.push_str(r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#);
    text.push_str(items);
    text.push_str("]}");
    let bytes = if gzip {
        let mut encoder =
            flate2::write::GzEncoder::new(Vec::with_capacity(text.len() / 8), flate2::Compression::fast());
        encoder.write_all(text.as_bytes())?;
        encoder.finish()?
    } else {
        text.into_bytes()
    };
    Ok(Body { bytes, events: n })
}

/// Calls `on_body` with each batch of the generated events.
fn for_each_body(
    seed: u64,
    events: u64,
    batch: usize,
    gzip: bool,
    mut on_body: impl FnMut(Body) -> bool,
) -> anyhow::Result<()> {
    let mut items = String::new();
    let mut n = 0u64;
    let mut failure = None;
    let mut open = true;
    super::bench::generate_events(seed, events, |event| {
        if !open || failure.is_some() {
            return;
        }
        if n > 0 {
            items.push(',');
        }
        items.push_str(event);
        n += 1;
        if n == batch as u64 {
            match encode_body(&items, n, gzip) {
                Ok(body) => open = on_body(body),
                Err(err) => failure = Some(err),
            }
            items.clear();
            n = 0;
        }
    });
    if let Some(err) = failure {
        return Err(err);
    }
    if n > 0 && open {
        on_body(encode_body(&items, n, gzip)?);
    }
    Ok(())
}

fn build_bodies(seed: u64, events: u64, batch: usize, gzip: bool) -> anyhow::Result<Vec<Body>> {
    let mut bodies = Vec::with_capacity(events.div_ceil(batch as u64) as usize);
    for_each_body(seed, events, batch, gzip, |body| {
        bodies.push(body);
        true
    })?;
    Ok(bodies)
}

fn stream_bodies(seed: u64, events: u64, batch: usize, gzip: bool, depth: usize) -> Receiver<Body> {
    let (sender, receiver) = sync_channel(depth);
    std::thread::spawn(move || {
        let result = for_each_body(seed, events, batch, gzip, |body| sender.send(body).is_ok());
        if let Err(err) = result {
            eprintln!("kaudit bench: cannot build a body: {err:#}");
        }
    });
    receiver
}

/// What one run measured.
struct IntakeReport {
    events: u64,
    accepted: u64,
    duplicates: u64,
    alerts: u64,
    body_bytes: u64,
    retries: u64,
    failed_batches: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
    server_cpu: Option<f64>,
    /// CPU seconds of the server's threads during the run, by thread name.
    server_threads: std::collections::BTreeMap<String, f64>,
    client_cpu: Option<f64>,
}

impl IntakeReport {
    fn print(mut self, args: &IntakeArgs, preloaded: bool) {
        self.latencies.sort_unstable();
        let seconds = self.elapsed.as_secs_f64().max(1e-9);
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!("events sent:        {}", self.events);
        println!(
            "batches:            {} of up to {} events, {} clients, {}{}",
            self.latencies.len(),
            args.batch,
            args.clients,
            if args.gzip { "gzip" } else { "uncompressed" },
            if preloaded {
                ", bodies built before the run"
            } else {
                ", bodies built during the run"
            }
        );
        println!(
            "stored:             {} new, {} duplicates, {} alerts",
            self.accepted, self.duplicates, self.alerts
        );
        println!("elapsed:            {seconds:.2} s");
        println!(
            "throughput:         {:.0} events/s ({:.1} MB/s on the wire)",
            self.events as f64 / seconds,
            self.body_bytes as f64 / seconds / 1e6
        );
        println!(
            "batch latency (ms): p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
            ms(percentile(&self.latencies, 50.0)),
            ms(percentile(&self.latencies, 90.0)),
            ms(percentile(&self.latencies, 99.0)),
            ms(self.latencies.last().copied().unwrap_or_default())
        );
        if let Some(cpu) = self.server_cpu {
            println!(
                "server CPU:         {cpu:.1} s ({:.1} µs per event, {:.0}% of one core)",
                cpu * 1e6 / (self.events.max(1) as f64),
                cpu * 100.0 / seconds
            );
        }
        for (name, cpu) in &self.server_threads {
            if *cpu >= 0.05 {
                println!(
                    "  thread {name:<16} {cpu:.1} s ({:.1} µs per event)",
                    cpu * 1e6 / (self.events.max(1) as f64)
                );
            }
        }
        if let Some(cpu) = self.client_cpu {
            println!("client CPU:         {cpu:.1} s");
        }
        if self.retries > 0 || self.failed_batches > 0 {
            println!(
                "errors:             {} retries, {} failed batches",
                self.retries, self.failed_batches
            );
        }
    }
}

/// The `p`th percentile (nearest rank) of sorted durations.
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// CPU seconds (user + system) used so far by a process (`None`: this one), from
/// `/proc/PID/stat`; `None` where that is not readable.
fn cpu_seconds(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_owned(),
    };
    cpu_seconds_at(&path)
}

/// User + system CPU seconds from a `/proc/.../stat` file.
fn cpu_seconds_at(path: &str) -> Option<f64> {
    let text = std::fs::read_to_string(path).ok()?;
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s (USER_HZ) on every common architecture.
    Some((utime + stime) / 100.0)
}

/// CPU seconds used so far by each thread name of a process (threads of one name summed),
/// from `/proc/PID/task/*/stat`; empty where that is not readable.
fn thread_cpu(pid: u32) -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(tid) = task.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let name = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        let stat = format!("{pid}/task/{tid}");
        if let Some(seconds) = cpu_seconds_at(&format!("/proc/{stat}/stat")) {
            *by_name.entry(name.trim().to_owned()).or_insert(0.0) += seconds;
        }
    }
    by_name
}

/// A `kaudit serve` started by the benchmark.
struct SpawnedServer {
    child: Child,
    base: String,
    intake_key: String,
    /// The temporary data directory to remove at the end (not one given by the user).
    temporary: Option<PathBuf>,
}

impl SpawnedServer {
    fn start(
        data_dir: Option<&Path>,
        database: Option<(&str, Option<&str>)>,
    ) -> anyhow::Result<SpawnedServer> {
        let exe = std::env::current_exe().context("while locating the kaudit binary")?;
        let (dir, temporary) = match data_dir {
            Some(dir) => (dir.to_owned(), None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "kaudit-bench-{}-{}",
                    std::process::id(),
                    kaudit_server::admin::now_ns()
                ));
                (dir.clone(), Some(dir))
            }
        };
        std::fs::create_dir_all(&dir).with_context(|| format!("while creating {}", dir.display()))?;
        let dir_text = dir.display().to_string();
        let name = format!("bench-{}", kaudit_server::admin::now_ns());
        let mut create = std::process::Command::new(&exe);
        create.args(["intake", "create", "--name", &name, "--cluster", "bench"]);
        let mut database_args = Vec::new();
        if let Some((url, schema)) = database {
            database_args.extend(["--database", url]);
            if let Some(schema) = schema {
                database_args.extend(["--database-schema", schema]);
            }
        }
        if database_args.is_empty() {
            create.args(["--data-dir", &dir_text]);
        } else {
            create.args(&database_args);
        }
        let output = create
            .env_remove("KAUDIT_SERVER")
            .stderr(Stdio::inherit())
            .output()
            .context("while creating an intake")?;
        anyhow::ensure!(output.status.success(), "kaudit intake create failed");
        let intake_key = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let log_path = dir.join("bench-serve.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("while creating {}", log_path.display()))?;
        let mut serve = std::process::Command::new(&exe);
        serve.args([
            "serve",
            "--data-dir",
            &dir_text,
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--retention-days",
            "0",
        ]);
        serve.args(&database_args);
        let child = serve
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("while starting kaudit serve")?;
        let mut server = SpawnedServer {
            child,
            base: format!("http://127.0.0.1:{port}"),
            intake_key,
            temporary,
        };
        server.wait_healthy(&log_path)?;
        eprintln!(
            "kaudit bench: started kaudit serve (pid {}) on {} with data directory {}",
            server.pid(),
            server.base,
            dir.display()
        );
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_healthy(&mut self, log: &Path) -> anyhow::Result<()> {
        let health = ApiClient::new(&self.base, None)?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait()? {
                anyhow::bail!(
                    "kaudit serve exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
            if health.get::<serde_json::Value>("/healthz", &()).is_ok() {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "kaudit serve did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (graceful stop), SIGKILL after 30 s; removes a temporary data directory.
    fn stop(mut self) {
        let pid = self.pid().to_string();
        let asked = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        while asked && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.temporary {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One search of `bench search`: a label and its query parameters.
struct Search {
    label: &'static str,
    params: Vec<(&'static str, String)>,
}

/// Runs `kaudit bench search`.
pub fn run_search(args: SearchArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let api = ApiClient::new(&args.server, Some(args.token.clone()))?;
    let total: proto::Count = api.get("/api/v1/events/count", &())?;
    let newest: proto::Page<proto::Event> = api.get("/api/v1/events", &[("limit", "1")])?;
    let Some(newest) = newest.items.first() else {
        anyhow::bail!("the server stores no events: run `kaudit bench intake` first");
    };
    let newest_ns = kaudit_model::parse_rfc3339_nanos(&newest.time)
        .map_err(|e| anyhow::anyhow!("unreadable event time {:?}: {e}", newest.time))?;
    let searches = typical_searches(newest_ns);
    println!(
        "{} stored events; {} runs per search after one warm-up; first page of 100, newest first",
        total.count, args.runs
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}{}",
        "search",
        "p50 ms",
        "p95 ms",
        "max ms",
        if args.count {
            "   count p50 ms  count p95 ms   matches"
        } else {
            ""
        }
    );
    for search in &searches {
        let mut params = search.params.clone();
        params.push(("limit", "100".to_owned()));
        let page = time_runs(args.runs, || {
            api.get::<proto::Page<proto::Event>>("/api/v1/events", &params)
                .map(|_| ())
        })?;
        print!(
            "{:<44} {:>9.1} {:>9.1} {:>9.1}",
            search.label,
            ms(percentile(&page, 50.0)),
            ms(percentile(&page, 95.0)),
            ms(page.last().copied().unwrap_or_default())
        );
        if args.count {
            let mut matches = 0;
            let counts = time_runs(args.runs, || {
                let count: proto::Count = api.get("/api/v1/events/count", &search.params)?;
                matches = count.count;
                Ok(())
            })?;
            print!(
                "   {:>12.1}  {:>12.1}  {:>8}",
                ms(percentile(&counts, 50.0)),
                ms(percentile(&counts, 95.0)),
                matches
            );
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `call` once unmeasured and `runs` times measured; returns the sorted durations.
fn time_runs(
    runs: usize,
    mut call: impl FnMut() -> Result<(), ClientError>,
) -> anyhow::Result<Vec<Duration>> {
    call()?;
    let mut durations = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        call()?;
        durations.push(started.elapsed());
    }
    durations.sort_unstable();
    Ok(durations)
}

/// Searches an investigator runs, over the vocabulary of `kaudit bench generate`; time
/// ranges end at the newest stored event.
fn typical_searches(newest_ns: i64) -> Vec<Search> {
    let time = kaudit_model::format_rfc3339_nanos;
    let hour = 3_600_000_000_000i64;
    let one = |label, key, value: &str| Search {
        label,
        params: vec![(key, value.to_owned())],
    };
    vec![
        one("user (a person)", "user", "mallory@example.com"),
        one(
            "user (a busy service account)",
            "user",
            "system:serviceaccount:kube-system:replicaset-controller",
        ),
        one(
            "user prefix (service accounts of a namespace)",
            "user_prefix",
            "system:serviceaccount:monitoring:",
        ),
        Search {
            label: "verb + resource (get secrets)",
            params: vec![("verb", "get".to_owned()), ("resource", "secrets".to_owned())],
        },
        Search {
            label: "verb + resource (create clusterrolebindings)",
            params: vec![
                ("verb", "create".to_owned()),
                ("resource", "clusterrolebindings".to_owned()),
            ],
        },
        one("namespace", "namespace", "payments"),
        one("subresource (exec)", "subresource", "exec"),
        one("free text (tmp-admin)", "q", "tmp-admin"),
        one("free text (credentials)", "q", "credentials"),
        Search {
            label: "time range (one hour, an hour ago)",
            params: vec![
                ("from", time(newest_ns - 2 * hour)),
                ("to", time(newest_ns - hour)),
            ],
        },
        Search {
            label: "namespace + verb + time range (6 h)",
            params: vec![
                ("namespace", "payments".to_owned()),
                ("verb", "get".to_owned()),
                ("from", time(newest_ns - 6 * hour)),
            ],
        },
        Search {
            label: "user + time range (6 h)",
            params: vec![
                ("user", "alice@example.com".to_owned()),
                ("from", time(newest_ns - 6 * hour)),
            ],
        },
        one("decision (forbid)", "decision", "forbid"),
        one("no match (unknown user)", "user", "nobody@example.com"),
    ]
}
