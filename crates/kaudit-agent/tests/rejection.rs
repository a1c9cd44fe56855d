//! One event the intake refuses (400) must not take its whole batch down: the agent splits
//! the batch, delivers every other event and drops (and counts) only the refused one.

mod fake_intake;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use kaudit_agent::config::{AgentConfig, Overrides, Secret};
use kaudit_agent::telemetry::Metrics;

/// Answers 400 to any body holding a line with `"bad"`, 200 otherwise (counting lines).
fn picky_intake() -> (u16, Arc<AtomicU64>) {
    let accepted = Arc::new(AtomicU64::new(0));
    let counter = accepted.clone();
    let port = fake_intake::start(move |body| {
        let plain = String::from_utf8_lossy(body.unwrap_or_default());
        if plain.contains("\"bad\"") {
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 9\r\n\r\nline 3: x"
        } else {
            counter.fetch_add(plain.lines().count() as u64, Ordering::SeqCst);
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
        }
    });
    (port, accepted)
}

#[test]
fn a_refused_event_is_isolated_and_the_rest_delivered() {
    let work = tempfile::tempdir().expect("tempdir");
    let log = work.path().join("audit.log");
    let mut text = String::new();
    for id in 0..20 {
        if id == 13 {
            text.push_str("{\"bad\":true}\n");
        } else {
            text.push_str(&format!(
                "{{\"kind\":\"Event\",\"auditID\":\"id-{id}\",\"stage\":\"ResponseComplete\",\"stageTimestamp\":\"2024-05-01T10:11:12.123456Z\"}}\n"
            ));
        }
    }
    std::fs::write(&log, text).expect("log");
    let (port, accepted) = picky_intake();
    let overrides = Overrides {
        files: vec![log.display().to_string()],
        intake_url: Some(format!("http://127.0.0.1:{port}")),
        intake_key: Some(Secret::new("key".into())),
        state_dir: Some(work.path().join("state")),
        flush_interval_ms: Some(20),
        ..Overrides::default()
    };
    let config = AgentConfig::load(None, overrides, None).expect("config");
    let metrics = Arc::new(Metrics::new());
    let watched = metrics.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime
        .block_on(kaudit_agent::run_until(config, metrics.clone(), async move {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Metrics::get(&watched.events_shipped) + Metrics::get(&watched.dropped_rejected) < 20 {
                assert!(Instant::now() < deadline, "the batch was not settled");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }))
        .expect("agent");
    assert_eq!(accepted.load(Ordering::SeqCst), 19);
    assert_eq!(Metrics::get(&metrics.events_shipped), 19);
    assert_eq!(Metrics::get(&metrics.dropped_rejected), 1);
}
