//! Agent throughput benchmark (not a test): generates an audit log, runs the agent (tail,
//! frame, batch, gzip, ship) against a local intake that only acknowledges (a child
//! process), and reports events per second and the agent's peak resident memory.
//!
//! `cargo bench -p kaudit-agent --bench agent_throughput -- --events 2000000`
//! Options: `--events N`, `--log FILE` (use an existing JSON lines log instead of generating).

use std::io::{BufRead, BufReader, BufWriter, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kaudit_agent::config::{AgentConfig, Overrides, Secret};
use kaudit_agent::telemetry::Metrics;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(position) = args.iter().position(|arg| arg == "--sink") {
        let port_file = PathBuf::from(&args[position + 1]);
        run_sink(&port_file);
        return;
    }
    let value = |name: &str| {
        args.iter()
            .position(|arg| arg == name)
            .and_then(|index| args.get(index + 1))
            .cloned()
    };
    let events: u64 = value("--events")
        .and_then(|text| text.parse().ok())
        .unwrap_or(2_000_000);
    let work = tempfile::tempdir().expect("tempdir");
    let log = match value("--log") {
        Some(path) => PathBuf::from(path),
        None => {
            let path = work.path().join("audit.log");
            let started = Instant::now();
            let bytes = generate(&path, events);
            eprintln!(
                "generated {events} events, {:.1} MB, in {:.1} s",
                bytes as f64 / 1e6,
                started.elapsed().as_secs_f64()
            );
            path
        }
    };
    let expected = count_lines(&log);
    let log_bytes = std::fs::metadata(&log).expect("log size").len();

    let port_file = work.path().join("sink-port");
    let mut sink = Command::new(std::env::current_exe().expect("own path"))
        .arg("--sink")
        .arg(&port_file)
        .stdout(Stdio::null())
        .spawn()
        .expect("start the sink");
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file)
            && let Ok(port) = text.trim().parse::<u16>()
        {
            break port;
        }
        assert!(Instant::now() < deadline, "the sink did not start");
        std::thread::sleep(Duration::from_millis(10));
    };

    let overrides = Overrides {
        files: vec![log.display().to_string()],
        intake_url: Some(format!("http://127.0.0.1:{port}")),
        intake_key: Some(Secret::new("bench".into())),
        state_dir: Some(work.path().join("state")),
        ..Overrides::default()
    };
    let config = AgentConfig::load(None, overrides, None).expect("config");
    let metrics = Arc::new(Metrics::new());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let watched = metrics.clone();
    let outcome = runtime.block_on(kaudit_agent::run_until(config, metrics.clone(), async move {
        while Metrics::get(&watched.events_shipped) < expected {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }));
    let elapsed = started.elapsed().as_secs_f64();
    let _ = sink.kill();
    let _ = sink.wait();
    outcome.expect("agent");
    let shipped = Metrics::get(&metrics.events_shipped);
    let sent = Metrics::get(&metrics.bytes_sent);
    println!("events shipped:   {shipped}");
    println!("elapsed:          {elapsed:.2} s");
    println!("throughput:       {:.0} events/s", shipped as f64 / elapsed);
    println!("input:            {:.1} MB/s", log_bytes as f64 / 1e6 / elapsed);
    println!(
        "wire (gzip):      {:.1} MB ({:.1}x smaller)",
        sent as f64 / 1e6,
        log_bytes as f64 / sent.max(1) as f64
    );
    println!("batches:          {}", Metrics::get(&metrics.batches_shipped));
    println!("peak RSS (VmHWM): {}", status_field("VmHWM"));
    println!("RSS now (VmRSS):  {}", status_field("VmRSS"));
    let _ = metrics.healthy.load(Ordering::Relaxed);
}

fn status_field(name: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with(name))
                .map(|line| line[name.len() + 1..].trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

fn count_lines(path: &std::path::Path) -> u64 {
    let file = std::fs::File::open(path).expect("open log");
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut count = 0;
    loop {
        let buffer = reader.fill_buf().expect("read log");
        if buffer.is_empty() {
            return count;
        }
        count += memchr::memchr_iter(b'\n', buffer).count() as u64;
        let len = buffer.len();
        reader.consume(len);
    }
}

/// Writes `events` realistic events (about 1 KB each on average) and returns the bytes.
fn generate(path: &std::path::Path, events: u64) -> u64 {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create log"));
    let mut bytes = 0;
    let mut line = String::with_capacity(4096);
    for id in 0..events {
        line.clear();
        let stage = if id % 2 == 0 {
            "RequestReceived"
        } else {
            "ResponseComplete"
        };
        let request = id / 2;
        let namespace = ["default", "kube-system", "team-a", "team-b", "prod"][(request % 5) as usize];
        let (verb, resource) = [
            ("get", "configmaps"),
            ("list", "pods"),
            ("watch", "endpoints"),
            ("update", "leases"),
            ("create", "pods"),
        ][(request % 5) as usize];
        use std::fmt::Write as _;
        let _ = write!(
            line,
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{:08x}-{:04x}-4abc-8def-{:012x}","stage":"{stage}","requestURI":"/api/v1/namespaces/{namespace}/{resource}/object-{request}?timeout=10s","verb":"{verb}","user":{{"username":"system:serviceaccount:{namespace}:controller-{}","uid":"5c1b{request:08x}","groups":["system:serviceaccounts","system:serviceaccounts:{namespace}","system:authenticated"],"extra":{{"authentication.kubernetes.io/credential-id":["JTI={request:x}-5e2f"]}}}},"sourceIPs":["10.{}.{}.{}"],"userAgent":"kube-controller-manager/v1.29.2 (linux/amd64) kubernetes/4b8e819/system:serviceaccount:{namespace}:controller","objectRef":{{"resource":"{resource}","namespace":"{namespace}","name":"object-{request}","apiVersion":"v1"}}"#,
            request as u32,
            request % 65_536,
            request,
            request % 17,
            request % 200,
            (request / 200) % 250,
            request % 250
        );
        if stage == "ResponseComplete" {
            line.push_str(r#","responseStatus":{"metadata":{},"code":200}"#);
        }
        let ts = format!(
            "2024-05-01T{:02}:{:02}:{:02}.{:06}Z",
            (request / 3_600_000) % 24,
            (request / 60_000) % 60,
            (request / 1000) % 60,
            request % 1_000_000
        );
        let _ = write!(
            line,
            r#","requestReceivedTimestamp":"{ts}","stageTimestamp":"{ts}""#
        );
        if stage == "ResponseComplete" {
            let _ = write!(
                line,
                r#","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":"RBAC: allowed by ClusterRoleBinding \"system:controller:{namespace}\" of ClusterRole \"system:controller\" to ServiceAccount \"controller/{namespace}\""}}"#
            );
        }
        line.push_str("}\n");
        out.write_all(line.as_bytes()).expect("write log");
        bytes += line.len() as u64;
    }
    out.flush().expect("flush log");
    bytes
}

/// An intake that only acknowledges: reads each request with its body and answers 200.
fn run_sink(port_file: &std::path::Path) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::fs::write(port_file, port.to_string()).expect("port file");
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = serve(stream);
        });
    }
}

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::with_capacity(1 << 16, stream.try_clone()?);
    let mut writer = stream;
    let mut body = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut length = 0usize;
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap_or(0);
            }
        }
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
        writer
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ncontent-type: application/json\r\n\r\n{}")?;
    }
}
