//! Crash safety of the intake: several clients send batches to a real `kaudit serve` while it
//! is killed with SIGKILL several times and restarted on the same data directory. After the
//! last restart, read back through the API:
//!
//! * every batch that got a 2xx is stored in full;
//! * no batch is half-stored: each batch has all of its events or none of them;
//! * no event is stored twice;
//! * each stored event has its alert (the `all-activity` policy is on, so every event raises
//!   exactly one alert, committed in the same transaction as the event).
//!
//! Each event's `auditID` names its batch, its index and the batch size
//! (`kill9-B-I-of-N`), so the check needs nothing but the stored events. Batches have
//! different sizes so that a torn write could not hide behind a fixed count.

mod intake_support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use intake_support::{ServerProcess, kaudit_ok, wait_until};
use kaudit_proto as proto;
use kaudit_server::client::{ApiClient, BodyEncoding, ClientError, IntakeClient};

const CLIENTS: u64 = 4;
const KILLS: u32 = 3;
/// Batches acknowledged between two kills (and after the last restart) before moving on.
const ACKS_PER_ROUND: u64 = 25;

/// What the clients know about the batches they sent.
#[derive(Default)]
struct Ledger {
    /// Batch id → size, for every batch sent (answered or not).
    sent: BTreeMap<u64, usize>,
    /// Batches answered with a 2xx.
    acked: HashSet<u64>,
    /// Batches whose request got no answer (connection reset, refused, timed out).
    unanswered: HashSet<u64>,
}

fn batch_size(batch: u64) -> usize {
    // 7 to 163 events: the sizes of a webhook batch under light and moderate load.
    7 + (batch.wrapping_mul(2_654_435_761) % 157) as usize
}

/// An `EventList` body of `size` distinct events; every event's time is distinct.
fn batch_body(client: u64, batch: u64, size: usize, base_ns: i64) -> Vec<u8> {
    let mut body =
        String::from(r#"{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":["#);
    for index in 0..size {
        if index > 0 {
            body.push(',');
        }
        let time =
            kaudit_model::format_rfc3339_nanos(base_ns + (batch as i64) * 1_000_000 + index as i64 * 1000);
        body.push_str(&format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"kill9-{batch}-{index}-of-{size}","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/team-{client}/configmaps/cm-{batch}-{index}","verb":"get","user":{{"username":"system:serviceaccount:team-{client}:reader","groups":["system:serviceaccounts","system:authenticated"]}},"sourceIPs":["10.1.0.{client}"],"userAgent":"kill9-client/{client}","objectRef":{{"resource":"configmaps","namespace":"team-{client}","name":"cm-{batch}-{index}","apiVersion":"v1"}},"responseStatus":{{"metadata":{{}},"code":200}},"requestReceivedTimestamp":"{time}","stageTimestamp":"{time}","annotations":{{"authorization.k8s.io/decision":"allow","authorization.k8s.io/reason":""}}}}"#
        ));
    }
    body.push_str("]}");
    body.into_bytes()
}

/// One client: sends new batches until told to stop, never retrying one (so a batch's fate
/// is decided by one delivery and a torn write would stay visible).
fn run_client(
    client: u64,
    base: String,
    key: String,
    base_ns: i64,
    ledger: Arc<Mutex<Ledger>>,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let intake = IntakeClient::new(&base, "/intake/v1/events", &key, Duration::from_secs(60))
        .expect("an intake client");
    let mut sequence = 0;
    while !stop.load(Ordering::SeqCst) {
        let batch = client * 1_000_000 + sequence;
        sequence += 1;
        let size = batch_size(batch);
        let body = batch_body(client, batch, size, base_ns);
        ledger.lock().unwrap().sent.insert(batch, size);
        match intake.send(body, BodyEncoding::Identity) {
            Ok(ack) => {
                assert_eq!(ack.accepted, size as u64, "batch {batch}: {ack:?}");
                ledger.lock().unwrap().acked.insert(batch);
                acked.fetch_add(1, Ordering::SeqCst);
            }
            Err(ClientError::Status { status, message }) => {
                panic!("batch {batch} refused with {status}: {message}")
            }
            Err(_) => {
                ledger.lock().unwrap().unanswered.insert(batch);
                // The server is down or restarting: back off a little before the next batch.
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Every stored event of the test's cluster, by `auditID`, read page by page.
fn stored_audit_ids(api: &ApiClient) -> Vec<String> {
    let mut ids = Vec::new();
    let mut filter = proto::EventFilter {
        cluster: Some("kill9".to_owned()),
        limit: Some(1000),
        ..proto::EventFilter::default()
    };
    loop {
        let page: proto::Page<proto::Event> = api.get("/api/v1/events", &filter).expect("list events");
        ids.extend(page.items.into_iter().filter_map(|e| e.audit_id));
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => return ids,
        }
    }
}

/// Parses `kill9-B-I-of-N`.
fn parse_audit_id(id: &str) -> (u64, usize, usize) {
    let parts: Vec<&str> = id.split('-').collect();
    assert!(
        parts.len() == 5 && parts[0] == "kill9" && parts[3] == "of",
        "unexpected auditID {id:?}"
    );
    (
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts[4].parse().unwrap(),
    )
}

/// Checks the stored events against what the clients were told; returns the number of
/// stored events.
fn check_batches(ledger: &Ledger, stored: &[String]) -> u64 {
    let mut per_batch: HashMap<u64, HashSet<usize>> = HashMap::new();
    for id in stored {
        let (batch, index, size) = parse_audit_id(id);
        assert_eq!(
            ledger.sent.get(&batch),
            Some(&size),
            "stored event {id} of an unknown batch"
        );
        assert!(
            per_batch.entry(batch).or_default().insert(index),
            "event {id} is stored twice"
        );
    }
    for batch in &ledger.acked {
        let size = ledger.sent[batch];
        let present = per_batch.get(batch).map_or(0, HashSet::len);
        assert_eq!(
            present, size,
            "batch {batch} got a 2xx but {present} of its {size} events are stored"
        );
    }
    for (batch, indexes) in &per_batch {
        let size = ledger.sent[batch];
        assert_eq!(
            indexes.len(),
            size,
            "batch {batch} is half-stored: {} of {size} events",
            indexes.len()
        );
    }
    stored.len() as u64
}

#[test]
fn sigkill_during_intake_never_loses_an_acknowledged_batch_nor_stores_half_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    // Set up offline, as a provisioning script would, before the first start.
    let key = kaudit_ok(&[
        "intake",
        "create",
        "--data-dir",
        &data_arg,
        "--name",
        "kill9",
        "--cluster",
        "kill9",
    ]);
    let token = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "admin"]);
    let mut server = ServerProcess::start(&data, &[]);
    let api = ApiClient::new(&server.base, Some(token)).unwrap();
    let _: proto::Policy = api
        .patch(
            "/api/v1/policies/all-activity",
            &proto::PolicyPatch {
                enabled: Some(true),
                ..proto::PolicyPatch::default()
            },
        )
        .expect("enable the all-activity policy");

    let base_ns = kaudit_server::admin::now_ns() - 3_600_000_000_000;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (base, key) = (server.base.clone(), key.clone());
            let (ledger, acked, stop) = (ledger.clone(), acked.clone(), stop.clone());
            std::thread::spawn(move || run_client(client, base, key, base_ns, ledger, acked, stop))
        })
        .collect();

    // A client that stops early has panicked (a refused batch): say so rather than time out.
    let progressed = |target: u64| {
        assert!(
            !clients.iter().any(|c| c.is_finished()),
            "a client stopped early (see its panic above)"
        );
        acked.load(Ordering::SeqCst) >= target
    };
    let mut target = 0;
    for _ in 0..KILLS {
        target += ACKS_PER_ROUND;
        wait_until("batches to be acknowledged", || progressed(target));
        server.kill9();
        target = acked.load(Ordering::SeqCst);
        server.restart();
    }
    target += ACKS_PER_ROUND;
    wait_until("batches to be acknowledged after the last restart", || {
        progressed(target)
    });
    stop.store(true, Ordering::SeqCst);
    for client in clients {
        client.join().expect("a client thread panicked");
    }
    // One more restart with nothing in flight: what was committed stays committed.
    server.restart();

    let ledger = ledger.lock().unwrap();
    let stored = stored_audit_ids(&api);
    let events = check_batches(&ledger, &stored);
    let counted: proto::Count = api.get("/api/v1/events/count", &[("cluster", "kill9")]).unwrap();
    assert_eq!(counted.count, events);
    let alerts: proto::Count = api
        .get(
            "/api/v1/alerts/count",
            &[("cluster", "kill9"), ("policy", "all-activity")],
        )
        .unwrap();
    assert_eq!(
        alerts.count, events,
        "every stored event has its alert, and only those"
    );
    assert!(
        !ledger.unanswered.is_empty(),
        "some batch was in flight at a kill (otherwise the test exercised nothing)"
    );
    eprintln!(
        "kill9: {} starts, {} batches sent, {} acknowledged, {} unanswered, {} events stored",
        server.starts,
        ledger.sent.len(),
        ledger.acked.len(),
        ledger.unanswered.len(),
        events
    );
}
