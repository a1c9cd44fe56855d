//! Fault test of `kaudit agent`: an apiserver-like writer appends events at a high rate,
//! rotating with lumberjack's names, gzip and maxbackup pruning, while the agent is killed
//! with SIGKILL several times and the intake is stopped and restarted. At the end the intake
//! holds exactly the `(auditID, stage)` pairs written, except events of files the writer
//! pruned before the agent read them, and those the agent reported as lost.

mod agent_support;

use std::collections::HashSet;
use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use agent_support::{Agent, KEY, LogWriter, Sink, key_of, loss_reports, wait_for};

const MAX_SIZE: u64 = 1024 * 1024;
const MAX_BACKUP: usize = 3;
const LIMIT: Duration = Duration::from_secs(120);

fn start_agent(work: &Path, run: usize, url: &str) -> Agent {
    let config = work.join("agent.toml");
    let file = work.join("log").join("audit.log");
    let state = work.join("state");
    Agent::start(
        &[
            "--config",
            config.to_str().expect("utf-8"),
            "--file",
            file.to_str().expect("utf-8"),
            "--intake",
            url,
            "--state-dir",
            state.to_str().expect("utf-8"),
            "--flush-interval-ms",
            "50",
            "--poll-interval-ms",
            "10",
        ],
        work.join(format!("agent-{run}.log")),
    )
}

#[test]
fn no_event_is_lost_or_invented_across_kills_rotations_and_intake_outages() {
    let work = tempfile::tempdir().expect("tempdir");
    let work = if std::env::var_os("KAUDIT_KEEP_TEST_DIR").is_some() {
        work.keep()
    } else {
        work.path().to_path_buf()
    };
    let work = work.as_path();
    eprintln!("work directory: {}", work.display());
    // Retries capped low so that a restarted intake is found quickly; the key from the file.
    fs::write(work.join("key"), format!("{KEY}\n")).expect("key");
    fs::write(
        work.join("agent.toml"),
        "[intake]\nkey_file = \"key\"\nrequest_timeout_ms = 5000\n[retry]\ninitial_backoff_ms = 20\nmax_backoff_ms = 300\n",
    )
    .expect("config");

    let mut writer = LogWriter::new(&work.join("log"), MAX_SIZE, MAX_BACKUP, true);
    let log = writer.log.clone();
    let stop_writing = Arc::new(AtomicBool::new(false));
    let writer_stop = stop_writing.clone();
    let writer_thread = std::thread::spawn(move || {
        // About 20,000 events per second in bursts, until told to stop.
        while !writer_stop.load(Ordering::SeqCst) {
            for _ in 0..50 {
                writer.write_request();
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        writer.log.lock().expect("lock").finished = true;
    });
    let written = || log.lock().expect("lock").events.len();
    let rotations = || log.lock().expect("lock").rotations;

    let mut sink = Sink::start();
    let url = sink.url();
    let mut runs = 0;
    let mut agent = start_agent(work, runs, &url);

    // Three SIGKILLs while shipping, each once the intake made progress.
    for _ in 0..3 {
        let target = sink.line_count() + 3000;
        wait_for("intake progress", LIMIT, || {
            agent.assert_running();
            sink.line_count() >= target
        });
        agent.kill();
        runs += 1;
        agent = start_agent(work, runs, &url);
    }

    // The intake goes away while the writer keeps rotating, then comes back.
    sink.stop();
    let target = written() + 20_000;
    wait_for("writes during the intake outage", LIMIT, || written() >= target);
    let target = sink.line_count() + 1;
    sink.restart();
    wait_for("delivery after the intake restart", LIMIT, || {
        agent.assert_running();
        sink.line_count() >= target
    });

    // The agent is down long enough for files it knew to be pruned.
    agent.kill();
    let target = rotations() + MAX_BACKUP as u64 + 2;
    wait_for("rotations while the agent is down", LIMIT, || {
        rotations() >= target
    });
    runs += 1;
    agent = start_agent(work, runs, &url);
    // Another kill while catching up, and an intake outage in the middle of it.
    let target = sink.line_count() + 2000;
    wait_for("catch-up progress", LIMIT, || sink.line_count() >= target);
    agent.kill();
    sink.stop();
    runs += 1;
    agent = start_agent(work, runs, &url);
    let target = written() + 5_000;
    wait_for("writes during the second outage", LIMIT, || written() >= target);
    sink.restart();

    stop_writing.store(true, Ordering::SeqCst);
    writer_thread.join().expect("writer");

    let (written_events, pruned) = {
        let log = log.lock().expect("lock");
        (log.events.clone(), log.pruned_generations.clone())
    };
    // Everything in files the writer kept must arrive.
    let must_arrive: HashSet<(String, String)> = written_events
        .iter()
        .filter(|event| !pruned.contains(&event.generation))
        .map(|event| event.key.clone())
        .collect();
    let received_keys = || -> HashSet<(String, String)> {
        sink.received
            .lock()
            .expect("lock")
            .lines
            .iter()
            .map(|line| key_of(line))
            .collect()
    };
    wait_for("every kept event at the intake", LIMIT, || {
        agent.assert_running();
        received_keys().is_superset(&must_arrive)
    });

    let received = received_keys();
    let written_keys: HashSet<(String, String)> =
        written_events.iter().map(|event| event.key.clone()).collect();
    let invented: Vec<_> = received.difference(&written_keys).collect();
    assert!(
        invented.is_empty(),
        "the intake holds events never written: {:?}",
        &invented[..invented.len().min(5)]
    );
    let missing: Vec<_> = written_events
        .iter()
        .filter(|event| !received.contains(&event.key))
        .collect();
    for event in &missing {
        assert!(
            pruned.contains(&event.generation),
            "event {:?} of kept generation {} is missing",
            event.key,
            event.generation
        );
    }
    let missing_bytes: u64 = missing.iter().map(|event| event.line.len() as u64 + 1).sum();
    let mut reports = Vec::new();
    for run in 0..=runs {
        reports.extend(loss_reports(&work.join(format!("agent-{run}.log"))));
    }
    eprintln!(
        "written {} events in {} rotations ({} generations pruned), {} runs of the agent; \
         missing {} events ({missing_bytes} bytes); loss reports: {reports:?}",
        written_events.len(),
        rotations(),
        pruned.len(),
        runs + 1,
        missing.len()
    );
    // A file can be reported by several runs (a kill before the checkpoint recorded the
    // report); count each file once.
    let mut per_file = std::collections::HashMap::new();
    for (fingerprint, bytes) in &reports {
        let entry = per_file.entry(fingerprint.clone()).or_insert(0u64);
        *entry = (*entry).max(*bytes);
    }
    let reported_bytes: u64 = per_file.values().sum();
    eprintln!("reported lost: {} files, {reported_bytes} bytes", per_file.len());
    if !missing.is_empty() {
        assert!(
            !reports.is_empty(),
            "{} events missing but the agent reported no loss",
            missing.len()
        );
        assert!(reported_bytes > 0, "loss reported without a byte count");
    }
    agent.assert_running();
}
