//! Retention in a running `kaudit serve`: events and alerts older than `--retention-days`
//! are deleted by the background task (which runs at start and then hourly), newer ones
//! stay, and intake keeps working.

mod intake_support;

use intake_support::{ServerProcess, kaudit_ok, wait_until};
use kaudit_proto as proto;
use kaudit_server::client::{ApiClient, BodyEncoding, IntakeClient};

const DAY_NS: i64 = 86_400_000_000_000;

/// A JSON-lines body of one event per age (in days before now), each raising an alert
/// under the `all-activity` policy.
fn body(tag: &str, ages_days: &[i64]) -> Vec<u8> {
    let now = kaudit_server::admin::now_ns();
    let mut out = String::new();
    for (i, age) in ages_days.iter().enumerate() {
        let time = kaudit_model::format_rfc3339_nanos(now - age * DAY_NS + i as i64);
        out.push_str(&format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{tag}-{i}-{age}d","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/pods","verb":"list","user":{{"username":"retention-test"}},"objectRef":{{"resource":"pods","namespace":"default","apiVersion":"v1"}},"responseStatus":{{"code":200}},"requestReceivedTimestamp":"{time}","stageTimestamp":"{time}"}}"#
        ));
        out.push('\n');
    }
    out.into_bytes()
}

fn count(api: &ApiClient, what: &str) -> u64 {
    let counted: proto::Count = api
        .get(&format!("/api/v1/{what}/count"), &[("cluster", "keep")])
        .unwrap();
    counted.count
}

#[test]
fn old_events_and_their_alerts_are_deleted_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.display().to_string();
    let key = kaudit_ok(&[
        "intake",
        "create",
        "--data-dir",
        &data_arg,
        "--name",
        "r",
        "--cluster",
        "keep",
    ]);
    let token = kaudit_ok(&["token", "create", "--data-dir", &data_arg, "--role", "admin"]);
    let mut server = ServerProcess::start(&data, &["--retention-days", "30"]);
    let api = ApiClient::new(&server.base, Some(token)).unwrap();
    let _: proto::Policy = api
        .patch(
            "/api/v1/policies/all-activity",
            &proto::PolicyPatch {
                enabled: Some(true),
                ..proto::PolicyPatch::default()
            },
        )
        .unwrap();
    let intake = IntakeClient::new(
        &server.base,
        "/intake/v1/events",
        &key,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    // Two events a year old, one 31 days old, three within the retention period.
    let ack = intake
        .send(body("first", &[365, 365, 31, 29, 1, 0]), BodyEncoding::Identity)
        .unwrap();
    assert_eq!((ack.accepted, ack.alerts), (6, 6));
    assert_eq!((count(&api, "events"), count(&api, "alerts")), (6, 6));

    // Retention runs when the server starts.
    server.restart();
    wait_until("retention to delete the old events", || {
        count(&api, "events") == 3
    });
    assert_eq!(count(&api, "alerts"), 3, "alerts go with their events");
    let page: proto::Page<proto::Event> = api.get("/api/v1/events", &[("cluster", "keep")]).unwrap();
    let mut kept: Vec<String> = page.items.into_iter().filter_map(|e| e.audit_id).collect();
    kept.sort();
    assert_eq!(kept, ["first-3-29d", "first-4-1d", "first-5-0d"]);
    // Intake goes on; an old event can still arrive (it is deleted at the next run).
    let ack = intake
        .send(body("second", &[0, 400]), BodyEncoding::Identity)
        .unwrap();
    assert_eq!(ack.accepted, 2);
    assert_eq!(count(&api, "events"), 5);
}
