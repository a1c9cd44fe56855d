//! Alert outputs configured from the TOML file, end to end: events go in through the intake,
//! alerts come out of a file, an HTTP webhook (which fails once: the alert is retried), a
//! Slack-compatible webhook, and syslog over UDP and TCP, each with its minimum priority;
//! identical alerts within the window are sent once and summarised with their count when the
//! window closes (here: at shutdown).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::routing::post;
use http_body_util::BodyExt;
use kaudit_server::config::Config;
use kaudit_server::{admin, app};
use kaudit_store::Role;

use serde_json::Value;
use tokio::io::AsyncReadExt;
use tower::ServiceExt;

const RULES: &str = r#"- rule: Test Pod Deleted
  desc: a pod was deleted
  condition: ka.verb=delete and ka.target.resource=pods
  output: "pod %ka.target.name deleted by %ka.user.name"
  priority: WARNING
  source: k8s_audit
  tags: [test]
- rule: Test Pod Read
  desc: a pod was read
  condition: ka.verb=get and ka.target.resource=pods
  output: "pod %ka.target.name read by %ka.user.name"
  priority: NOTICE
  source: k8s_audit
  tags: [test]
"#;

/// What the fake HTTP receiver got: (path, body) per request, and how many it refused.
#[derive(Default)]
struct Received {
    requests: Mutex<Vec<(String, String)>>,
    refused: Mutex<u32>,
}

async fn receive(State(received): State<Arc<Received>>, request: Request<Body>) -> StatusCode {
    let path = request.uri().path().to_owned();
    let body = request.into_body().collect().await.unwrap().to_bytes();
    if path == "/hook" {
        let mut refused = received.refused.lock().unwrap();
        if *refused == 0 {
            // The first delivery fails: the output must retry it.
            *refused += 1;
            return StatusCode::INTERNAL_SERVER_ERROR;
        }
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    received.requests.lock().unwrap().push((path, text));
    StatusCode::OK
}

fn event(id: &str, verb: &str, name: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods/{name}","verb":"{verb}","user":{{"username":"alice"}},"objectRef":{{"resource":"pods","namespace":"default","name":"{name}","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"2024-05-01T10:00:00.000000Z","stageTimestamp":"2024-05-01T10:00:00.100000Z"}}"#
    )
}

/// Waits until `check` holds, polling; panics naming `what` after a minute.
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !check() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Splits an octet-counted syslog stream (RFC 6587) into messages.
fn octet_frames(mut stream: &[u8]) -> Vec<String> {
    let mut frames = Vec::new();
    while let Some(space) = stream.iter().position(|&b| b == b' ') {
        let Ok(len) = std::str::from_utf8(&stream[..space])
            .unwrap_or("")
            .parse::<usize>()
        else {
            break;
        };
        let end = space + 1 + len;
        if stream.len() < end {
            break;
        }
        frames.push(String::from_utf8_lossy(&stream[space + 1..end]).into_owned());
        stream = &stream[end..];
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_reach_every_configured_output_with_retries_priorities_and_deduplication() {
    let dir = tempfile::tempdir().unwrap();
    // The receivers.
    let received = Arc::new(Received::default());
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let http_address = http.local_addr().unwrap();
    let router = Router::new()
        .route("/hook", post(receive))
        .route("/slack", post(receive))
        .with_state(Arc::clone(&received));
    tokio::spawn(async move { axum::serve(http, router).await });
    let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_address = udp.local_addr().unwrap();
    let datagrams = Arc::new(Mutex::new(Vec::<String>::new()));
    let udp_sink = Arc::clone(&datagrams);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 65536];
        while let Ok(n) = udp.recv(&mut buffer).await {
            udp_sink
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_address = tcp.local_addr().unwrap();
    let stream_bytes = Arc::new(Mutex::new(Vec::<u8>::new()));
    let tcp_sink = Arc::clone(&stream_bytes);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = tcp.accept().await {
            let sink = Arc::clone(&tcp_sink);
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 65536];
                while let Ok(n) = socket.read(&mut buffer).await {
                    if n == 0 {
                        break;
                    }
                    sink.lock().unwrap().extend_from_slice(&buffer[..n]);
                }
            });
        }
    });
    let alerts_file = dir.path().join("alerts.jsonl");

    // The server, configured as an operator would in the TOML file.
    let toml = format!(
        r#"
data_dir = "{data}"
dedupe_window_seconds = 60

[[outputs]]
type = "file"
path = "{file}"
min_priority = "warning"

[[outputs]]
type = "webhook"
url = "http://{http_address}/hook"
headers = [["X-Test", "yes"]]
max_attempts = 3

[[outputs]]
type = "slack"
url = "http://{http_address}/slack"
min_priority = "warning"

[[outputs]]
type = "syslog"
address = "{udp_address}"
protocol = "udp"
facility = "local3"
min_priority = "notice"

[[outputs]]
type = "syslog"
address = "{tcp_address}"
protocol = "tcp"
"#,
        data = dir.path().join("data").display(),
        file = alerts_file.display(),
    );
    let config = Config::parse(&toml).unwrap();
    config.validate().unwrap();
    let data_dir = config.data_dir.clone();
    let (store, intake_key) = tokio::task::spawn_blocking(move || {
        let store = kaudit_server::serve::open_sqlite(&data_dir).unwrap();
        store
            .put_rule_file(&kaudit_store::RuleFile {
                name: "test".into(),
                content: RULES.into(),
                updated_ns: 0,
            })
            .unwrap();
        let policy = kaudit_proto::Policy {
            name: "test".into(),
            description: String::new(),
            enabled: true,
            rules: kaudit_proto::PolicyRules {
                files: vec!["test".into()],
                ..Default::default()
            },
            scope: Vec::new(),
            builtin: false,
        };
        store
            .put_policy(&kaudit_server::api::rules::policy_row(&policy))
            .unwrap();
        // Only the test's rules alert: the default policy is off (a first start keeps it so).
        for mut default in kaudit_server::policy::default_policies() {
            default.enabled = false;
            store
                .put_policy(&kaudit_server::api::rules::policy_row(&default))
                .unwrap();
        }
        let (_, key) = admin::create_intake(&*store, "t", "outputs-cluster").unwrap();
        admin::create_token(&*store, Role::Viewer, "").unwrap();
        (store, key)
    })
    .await
    .unwrap();
    let (state, tasks, _) = kaudit_server::serve::build_state(&config, store).await.unwrap();

    // Three identical deletions (one alert each, same message) and one read.
    let body = [
        event("d1", "delete", "web-1"),
        event("d2", "delete", "web-1"),
        event("d3", "delete", "web-1"),
        event("r1", "get", "web-2"),
    ]
    .join("\n");
    let request = Request::post("/intake/v1/events")
        .header("x-intake-key", &intake_key)
        .body(Body::from(Bytes::from(body)))
        .unwrap();
    let response = app(state.clone()).oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let requests = |path: &str| -> Vec<Value> {
        received
            .requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| serde_json::from_str(b).unwrap())
            .collect()
    };
    // The first of the identical alerts goes out at once, the repeats are held back.
    eventually("the webhook deliveries", || requests("/hook").len() == 2).await;
    eventually("the Slack delivery", || requests("/slack").len() == 1).await;
    eventually("the UDP syslog messages", || datagrams.lock().unwrap().len() == 2).await;
    eventually("the TCP syslog messages", || {
        octet_frames(&stream_bytes.lock().unwrap()).len() == 2
    })
    .await;
    eventually("the alert file", || {
        std::fs::read_to_string(&alerts_file).is_ok_and(|t| t.lines().count() == 1)
    })
    .await;
    assert_eq!(
        *received.refused.lock().unwrap(),
        1,
        "one delivery failed and was retried"
    );

    // Shutting down closes the windows: each output that held repeats sends one summary.
    drop(state);
    tasks.join(Duration::from_secs(10)).await;

    let hook = requests("/hook");
    let rules: Vec<(&str, &str, Option<u64>)> = hook
        .iter()
        .map(|a| {
            (
                a["rule"].as_str().unwrap(),
                a["priority"].as_str().unwrap(),
                a["repeated"].as_u64(),
            )
        })
        .collect();
    assert_eq!(
        rules,
        [
            ("Test Pod Deleted", "Warning", None),
            ("Test Pod Read", "Notice", None),
            ("Test Pod Deleted", "Warning", Some(2)),
        ]
    );
    assert_eq!(hook[0]["cluster"], "outputs-cluster");
    assert_eq!(hook[0]["policy"], "test");
    assert_eq!(hook[0]["source"], "k8s_audit");
    assert_eq!(hook[0]["output_fields"]["ka.user.name"], "alice");
    assert!(
        hook[0]["output"]
            .as_str()
            .unwrap()
            .ends_with(": Warning pod web-1 deleted by alice")
    );

    let slack = requests("/slack");
    assert_eq!(slack.len(), 2, "{slack:?}");
    assert!(
        slack[0]["text"]
            .as_str()
            .unwrap()
            .contains("Warning pod web-1 deleted by alice")
    );
    assert!(
        slack[1]["text"]
            .as_str()
            .unwrap()
            .contains("[repeated 2 more times]")
    );

    let file = std::fs::read_to_string(&alerts_file).unwrap();
    let lines: Vec<Value> = file.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "the file takes Warning and above only: {file}");
    assert_eq!(
        (lines[0]["repeated"].as_u64(), lines[1]["repeated"].as_u64()),
        (None, Some(2))
    );

    let udp_messages = datagrams.lock().unwrap().clone();
    assert_eq!(udp_messages.len(), 3, "{udp_messages:?}");
    // local3 (19) * 8 + Warning (4) = 156; Notice (5) = 157.
    assert!(
        udp_messages[0].starts_with("<156>1 2024-05-01T10:00:00.1"),
        "{}",
        udp_messages[0]
    );
    assert!(udp_messages[1].starts_with("<157>1 "), "{}", udp_messages[1]);
    assert!(udp_messages[0].contains("[kaudit@32473 rule=\"Test Pod Deleted\" policy=\"test\""));

    let frames = octet_frames(&stream_bytes.lock().unwrap());
    assert_eq!(frames.len(), 3, "{frames:?}");
    // Default facility local0 (16) * 8 + Warning (4) = 132.
    assert!(frames[0].starts_with("<132>1 "), "{}", frames[0]);
    assert!(frames[2].contains("[repeated 2 more times]"), "{}", frames[2]);
}
