//! Helpers of the agent's end-to-end tests: an acknowledging intake that records what it
//! receives (surviving its own restarts, as a database would), an apiserver-like log writer
//! that rotates with lumberjack's names, gzip and maxbackup pruning, and the agent process.

#![allow(dead_code)]

use std::collections::{HashSet, VecDeque};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The intake key the tests use.
pub const KEY: &str = "test-intake-key";

/// Every event line the intake acknowledged, with duplicates (redeliveries) kept.
#[derive(Default)]
pub struct Received {
    /// Lines in arrival order.
    pub lines: Vec<String>,
    /// Requests answered 2xx.
    pub batches: u64,
}

/// An acknowledge-only intake on 127.0.0.1 that can be stopped and started on its port.
pub struct Sink {
    pub port: u16,
    pub received: Arc<Mutex<Received>>,
    pub unauthorized: Arc<AtomicU64>,
    running: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
}

impl Sink {
    pub fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the sink");
        let port = listener.local_addr().expect("addr").port();
        let mut sink = Sink {
            port,
            received: Arc::default(),
            unauthorized: Arc::default(),
            running: None,
        };
        sink.serve(listener);
        sink
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops answering: the listener closes and requests in flight get no answer.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.running.take() {
            stop.store(true, Ordering::SeqCst);
            let _ = TcpStream::connect(("127.0.0.1", self.port));
            let _ = thread.join();
        }
    }

    /// Starts again on the same port, keeping what was received.
    pub fn restart(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(listener) => break listener,
                Err(err) if Instant::now() < deadline => {
                    let _ = err;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(err) => panic!("cannot rebind the sink: {err}"),
            }
        };
        self.serve(listener);
    }

    pub fn line_count(&self) -> usize {
        self.received.lock().expect("lock").lines.len()
    }

    fn serve(&mut self, listener: TcpListener) {
        let stop = Arc::new(AtomicBool::new(false));
        let received = self.received.clone();
        let unauthorized = self.unauthorized.clone();
        let thread_stop = stop.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let received = received.clone();
                let unauthorized = unauthorized.clone();
                let stop = thread_stop.clone();
                std::thread::spawn(move || {
                    let _ = handle_connection(stream, &received, &unauthorized, &stop);
                });
            }
        });
        self.running = Some((stop, thread));
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn handle_connection(
    stream: TcpStream,
    received: &Mutex<Received>,
    unauthorized: &AtomicU64,
    stop: &AtomicBool,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        let mut gzip = false;
        let mut key_ok = false;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':').unwrap_or((header, ""));
            let value = value.trim();
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.parse().unwrap_or(0),
                "content-encoding" => gzip = value == "gzip",
                "x-intake-key" => key_ok = value == KEY,
                _ => {}
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if stop.load(Ordering::SeqCst) {
            // The intake died with the request in flight: no answer.
            return Ok(());
        }
        if !key_ok {
            unauthorized.fetch_add(1, Ordering::SeqCst);
            writer.write_all(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")?;
            continue;
        }
        if gzip {
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut plain)?;
            body = plain;
        }
        let text = String::from_utf8(body).expect("the agent sends UTF-8");
        {
            let mut received = received.lock().expect("lock");
            let trimmed = text.trim();
            if !(trimmed.is_empty() || trimmed == "[]") {
                for line in text.lines().filter(|line| !line.trim().is_empty()) {
                    received.lines.push(line.to_string());
                }
            }
            received.batches += 1;
        }
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}")?;
    }
}

/// `(auditID, stage)` of an event line.
pub fn key_of(line: &str) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(line).expect("an event line is JSON");
    let field = |name: &str| {
        value
            .get(name)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    (field("auditID"), field("stage"))
}

/// Waits until `condition` holds, failing with `what` after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A `kaudit agent` process writing its log to a file.
pub struct Agent {
    child: Child,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(args: &[&str], log: PathBuf) -> Agent {
        let stderr = File::create(&log).expect("agent log");
        let child = Command::new(env!("CARGO_BIN_EXE_kaudit"))
            .arg("agent")
            .args(args)
            .env("KAUDIT_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(stderr))
            .spawn()
            .expect("start kaudit agent");
        Agent { child, log }
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails if the process exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = fs::read_to_string(&self.log).unwrap_or_default();
            panic!("the agent exited with {status}:\n{log}");
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One event the writer wrote.
#[derive(Clone, Debug)]
pub struct Written {
    pub key: (String, String),
    pub line: String,
    pub generation: u64,
}

/// What the writer did, observable while it runs.
#[derive(Default)]
pub struct WriterLog {
    pub events: Vec<Written>,
    pub rotations: u64,
    pub pruned_generations: HashSet<u64>,
    pub finished: bool,
}

/// Writes events to `<dir>/audit.log` like the apiserver's log backend: one write per line,
/// rotation by rename to `audit-<UTC time>.log` when the next line would exceed `max_size`,
/// a new file under the same name, optional gzip of backups, and pruning beyond `max_backup`.
pub struct LogWriter {
    pub dir: PathBuf,
    max_size: u64,
    max_backup: usize,
    compress: bool,
    file: File,
    size: u64,
    generation: u64,
    last_stamp_ms: i64,
    backups: VecDeque<(PathBuf, u64)>,
    next_id: u64,
    pub log: Arc<Mutex<WriterLog>>,
}

impl LogWriter {
    pub fn new(dir: &Path, max_size: u64, max_backup: usize, compress: bool) -> LogWriter {
        fs::create_dir_all(dir).expect("log dir");
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("audit.log"))
            .expect("audit.log");
        LogWriter {
            dir: dir.to_path_buf(),
            max_size,
            max_backup,
            compress,
            file,
            size: 0,
            generation: 0,
            last_stamp_ms: 0,
            backups: VecDeque::new(),
            next_id: 0,
            log: Arc::default(),
        }
    }

    /// Writes one request (two events: RequestReceived and ResponseComplete).
    pub fn write_request(&mut self) {
        let id = self.next_id;
        self.next_id += 1;
        for stage in ["RequestReceived", "ResponseComplete"] {
            let line = event_line(id, stage);
            let bytes = line.len() as u64 + 1;
            if self.size + bytes > self.max_size {
                self.rotate();
            }
            let mut data = line.clone().into_bytes();
            data.push(b'\n');
            self.file.write_all(&data).expect("append");
            self.size += bytes;
            let key = key_of(&line);
            self.log.lock().expect("lock").events.push(Written {
                key,
                line,
                generation: self.generation,
            });
        }
    }

    fn rotate(&mut self) {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis() as i64;
        let stamp_ms = now_ms.max(self.last_stamp_ms + 1);
        self.last_stamp_ms = stamp_ms;
        let backup = self.dir.join(format!("audit-{}.log", lumberjack_time(stamp_ms)));
        fs::rename(self.dir.join("audit.log"), &backup).expect("rename");
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.dir.join("audit.log"))
            .expect("new audit.log");
        self.size = 0;
        let backup = if self.compress {
            let gz = PathBuf::from(format!("{}.gz", backup.display()));
            let plain = fs::read(&backup).expect("read backup");
            let mut encoder =
                flate2::write::GzEncoder::new(File::create(&gz).expect("gz"), flate2::Compression::fast());
            encoder.write_all(&plain).expect("gzip");
            encoder.finish().expect("gzip end");
            fs::remove_file(&backup).expect("remove plain backup");
            gz
        } else {
            backup
        };
        self.backups.push_back((backup, self.generation));
        let mut log = self.log.lock().expect("lock");
        while self.backups.len() > self.max_backup {
            let Some((path, generation)) = self.backups.pop_front() else {
                break;
            };
            fs::remove_file(&path).expect("prune");
            log.pruned_generations.insert(generation);
        }
        self.generation += 1;
        log.rotations += 1;
    }
}

/// `2024-05-01T10-11-12.345` in UTC.
fn lumberjack_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}-{:02}-{:02}.{millis:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A realistic audit event line of request `id` at `stage` (sizes vary between about 600
/// bytes and 3 KB; creates carry a request body).
pub fn event_line(id: u64, stage: &str) -> String {
    let audit_id = format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        id * 2_654_435_761 % 0xffff_ffff,
        id % 0xffff,
        id % 0xfff,
        (id / 7) % 0xfff,
        id
    );
    let namespaces = ["default", "kube-system", "team-a", "team-b", "prod"];
    let namespace = namespaces[(id % namespaces.len() as u64) as usize];
    let (verb, resource, body) = match id % 5 {
        0 => ("create", "pods", true),
        1 => ("get", "configmaps", false),
        2 => ("list", "secrets", false),
        3 => ("patch", "deployments", true),
        _ => ("watch", "endpoints", false),
    };
    let group = if resource == "deployments" {
        r#","apiGroup":"apps""#
    } else {
        ""
    };
    let ts = format!(
        "2024-05-01T10:{:02}:{:02}.{:06}Z",
        (id / 60_000) % 60,
        (id / 1000) % 60,
        id % 1_000_000
    );
    let mut line = format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Request","auditID":"{audit_id}","stage":"{stage}","requestURI":"/api/v1/namespaces/{namespace}/{resource}/obj-{id}","verb":"{verb}","user":{{"username":"system:serviceaccount:{namespace}:builder","uid":"u-{id}","groups":["system:serviceaccounts","system:serviceaccounts:{namespace}","system:authenticated"]}},"sourceIPs":["10.0.{}.{}"],"userAgent":"kubectl/v1.29.0 (linux/amd64) kubernetes/abcdef","objectRef":{{"resource":"{resource}","namespace":"{namespace}","name":"obj-{id}"{group},"apiVersion":"v1"}}"#,
        id % 250,
        (id / 250) % 250
    );
    if stage == "ResponseComplete" {
        line.push_str(r#","responseStatus":{"metadata":{},"code":200}"#);
        if body {
            let padding = "x".repeat((id % 7) as usize * 300);
            line.push_str(&format!(
                r#","requestObject":{{"kind":"Pod","apiVersion":"v1","metadata":{{"name":"obj-{id}","namespace":"{namespace}","labels":{{"app":"demo","pad":"{padding}"}}}},"spec":{{"containers":[{{"name":"c","image":"nginx:1.25"}}]}}}}"#
            ));
        }
    }
    line.push_str(&format!(
        r#","requestReceivedTimestamp":"{ts}","stageTimestamp":"{ts}""#
    ));
    if stage == "ResponseComplete" {
        line.push_str(r#","annotations":{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by RoleBinding \"edit/team\" of ClusterRole \"edit\" to ServiceAccount \"builder\""}"#);
    }
    line.push('}');
    line
}

/// Loss reports in an agent log: `(fingerprint, lost_bytes)`.
pub fn loss_reports(log: &Path) -> Vec<(String, u64)> {
    let text = fs::read_to_string(log).unwrap_or_default();
    text.lines()
        .filter(|line| line.contains("audit log data lost"))
        .map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|part| part.strip_prefix(&format!("{name}=")))
                    .unwrap_or_default()
                    .to_string()
            };
            (field("fingerprint"), field("lost_bytes").parse().unwrap_or(0))
        })
        .collect()
}
