//! Replays a real kube-apiserver 1.26 capture through `kaudit agent`: the rotated log files
//! (tail source) and the webhook bodies (webhook receiver). Every event must reach the
//! intake exactly once.

mod agent_support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agent_support::{Agent, KEY, Sink, wait_for};

fn samples() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/kube-apiserver-1.26"
    ));
    if dir.is_dir() {
        return Some(dir.to_path_buf());
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "missing {}",
        dir.display()
    );
    eprintln!("skipped: {} not found", dir.display());
    None
}

/// Counts of each distinct line.
fn multiset<'a>(lines: impl Iterator<Item = &'a str>) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line).or_insert(0) += 1;
    }
    counts
}

/// Checks that the sink received exactly `expected` (as a multiset of lines).
fn check_exactly_once(sink: &Sink, expected: &[String]) {
    wait_for("every event at the intake", Duration::from_secs(120), || {
        sink.line_count() >= expected.len()
    });
    let received = sink.received.lock().expect("lock");
    let got = multiset(received.lines.iter().map(String::as_str));
    let want = multiset(expected.iter().map(String::as_str));
    assert_eq!(
        received.lines.len(),
        expected.len(),
        "events delivered more than once or lost"
    );
    assert!(
        got == want,
        "the intake did not receive exactly the events of the capture"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

#[test]
fn the_rotated_log_of_a_real_apiserver_arrives_exactly_once() {
    let Some(samples) = samples() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let log_dir = work.path().join("log");
    fs::create_dir_all(&log_dir).expect("log dir");
    let mut names: Vec<String> = fs::read_dir(samples.join("log"))
        .expect("list")
        .map(|entry| entry.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    // Backups in name (time) order, then the live file: the complete stream.
    names.sort_by_key(|name| (name == "audit.log", name.clone()));
    let mut expected = Vec::new();
    for name in &names {
        let text = fs::read_to_string(samples.join("log").join(name)).expect("read sample");
        expected.extend(text.lines().filter(|line| !line.is_empty()).map(str::to_string));
        fs::write(log_dir.join(name), text).expect("copy sample");
    }
    assert_eq!(expected.len(), 5098, "the capture's documented size");
    let sink = Sink::start();
    let state = work.path().join("state");
    let file = log_dir.join("audit.log");
    let url = sink.url();
    let mut agent = Agent::start(
        &[
            "--file",
            file.to_str().expect("utf-8"),
            "--intake",
            &url,
            "--intake-key",
            KEY,
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--flush-interval-ms",
            "50",
        ],
        work.path().join("agent.log"),
    );
    check_exactly_once(&sink, &expected);
    agent.assert_running();
}

fn post(port: u16, path: &str, token: &str, body: &[u8]) -> u16 {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the webhook receiver");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\nauthorization: Bearer {token}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).expect("send");
    stream.write_all(body).expect("send body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_webhook_bodies_of_a_real_apiserver_arrive_exactly_once() {
    let Some(samples) = samples() else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let token_file = work.path().join("token");
    fs::write(&token_file, "webhook-token\n").expect("token");
    let sink = Sink::start();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let state = work.path().join("state");
    let url = sink.url();
    let mut agent = Agent::start(
        &[
            "--listen",
            &listen,
            "--webhook-token-file",
            token_file.to_str().expect("utf-8"),
            "--intake",
            &url,
            "--intake-key",
            KEY,
            "--state-dir",
            state.to_str().expect("utf-8"),
        ],
        work.path().join("agent.log"),
    );
    wait_for("the webhook receiver", Duration::from_secs(30), || {
        agent.assert_running();
        TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    assert_eq!(
        post(port, "/k8s-audit", "wrong-token", b"{}"),
        401,
        "a wrong token is refused"
    );
    let mut bodies: Vec<PathBuf> = fs::read_dir(samples.join("webhook"))
        .expect("list")
        .map(|entry| entry.expect("entry").path())
        .collect();
    bodies.sort();
    let mut expected = Vec::new();
    for path in &bodies {
        let body = fs::read(path).expect("read body");
        let list: serde_json::Value = serde_json::from_slice(&body).expect("an EventList");
        for item in list["items"].as_array().expect("items") {
            expected.push(serde_json::to_string(item).expect("json"));
        }
        assert_eq!(
            post(port, "/k8s-audit", "webhook-token", &body),
            200,
            "{}",
            path.display()
        );
    }
    assert_eq!(expected.len(), 5073, "the capture's documented size");
    wait_for(
        "every webhook event at the intake",
        Duration::from_secs(120),
        || sink.line_count() >= expected.len(),
    );
    // The receiver forwards each item's JSON text unchanged; compare them as values.
    let received = sink.received.lock().expect("lock");
    let normalize = |line: &str| {
        serde_json::to_string(&serde_json::from_str::<serde_json::Value>(line).expect("json")).expect("json")
    };
    let got: Vec<String> = received.lines.iter().map(|line| normalize(line)).collect();
    assert_eq!(
        got.len(),
        expected.len(),
        "events delivered more than once or lost"
    );
    assert!(multiset(got.iter().map(String::as_str)) == multiset(expected.iter().map(String::as_str)));
    agent.assert_running();
}
