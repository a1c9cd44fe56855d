//! Simulation counts on a handful of synthetic events.

use kaudit_model::AuditEvent;

use crate::load;

use super::*;

fn event(stage: &str, level: &str, verb: &str, user: &str, target: &str, body: &str) -> String {
    let (uri, object) = if target.starts_with('/') {
        (target.to_owned(), String::new())
    } else {
        (
            format!("/api/v1/namespaces/n/{target}"),
            format!(r#","objectRef":{{"resource":"{target}","namespace":"n"}}"#),
        )
    };
    format!(
        r#"{{"kind":"Event","level":"{level}","auditID":"a","stage":"{stage}","requestURI":"{uri}","verb":"{verb}","user":{{"username":"{user}"}}{object}{body},"stageTimestamp":"2024-01-01T00:00:00Z"}}"#
    )
}

/// Runs the policy over the events and checks (events, kept, dropped, dropped_by_stage,
/// under_recorded, bytes_before, bytes_after) per rule, unmatched last, then the total.
fn check(policy: &str, events: &[String], expected: &[(u64, u64, u64, u64, u64, u64, u64)]) {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{policy}");
    let policy = load(&text).expect("policy loads").policy;
    let mut simulator = Simulator::new(&policy);
    for raw in events {
        simulator.add(&AuditEvent::parse(raw).expect("event parses"));
    }
    let report = simulator.finish(3);
    let row = |s: &Stats| {
        (
            s.events,
            s.kept,
            s.dropped,
            s.dropped_by_stage,
            s.under_recorded,
            s.bytes_before,
            s.bytes_after,
        )
    };
    let mut got: Vec<_> = report.rules.iter().map(|r| row(&r.stats)).collect();
    got.push(row(&report.unmatched));
    got.push(row(&report.total));
    assert_eq!(got, expected);
}

#[test]
fn counts_and_bytes_per_rule() {
    let body = r#","requestObject":{"x":1},"responseObject":{"y":2}"#;
    let events = vec![
        event(
            "ResponseComplete",
            "RequestResponse",
            "create",
            "alice",
            "pods",
            body,
        ),
        event(
            "RequestReceived",
            "RequestResponse",
            "create",
            "alice",
            "pods",
            "",
        ),
        event("ResponseComplete", "Metadata", "get", "bob", "pods", ""),
        event("ResponseComplete", "Metadata", "get", "bob", "/healthz", ""),
    ];
    let len = |i: usize| events[i].len() as u64 + 1;
    // The response body goes, and `level` becomes "Request" (8 bytes shorter).
    let stripped = len(0) - body.len() as u64 + r#","requestObject":{"x":1}"#.len() as u64 - 8;
    check(
        "rules:\n- level: Request\n  verbs: [create]\n  omitStages: [RequestReceived]\n- level: RequestResponse\n  resources: [{resources: [pods]}]\n",
        &events,
        &[
            (2, 1, 1, 1, 0, len(0) + len(1), stripped),
            // get pods recorded at Metadata but simulated at RequestResponse: under-recorded.
            (
                1,
                1,
                0,
                0,
                1,
                len(2),
                len(2) - "Metadata".len() as u64 + "RequestResponse".len() as u64,
            ),
            (1, 0, 1, 0, 0, len(3), 0),
            (
                4,
                2,
                2,
                1,
                1,
                len(0) + len(1) + len(2) + len(3),
                stripped + len(2) + 7,
            ),
        ],
    );
}

#[test]
fn top_volumes_are_largest_first() {
    let text = "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Metadata\n";
    let policy = load(text).expect("loads").policy;
    let mut simulator = Simulator::new(&policy);
    let events = [
        event("ResponseComplete", "Metadata", "get", "alice", "pods", ""),
        event(
            "ResponseComplete",
            "Metadata",
            "list",
            "bob",
            "secrets",
            r#","annotations":{"a":"long long long"}"#,
        ),
        event("ResponseComplete", "Metadata", "list", "bob", "/metrics", ""),
    ];
    for raw in &events {
        simulator.add(&AuditEvent::parse(raw).expect("parses"));
    }
    let report = simulator.finish(2);
    let names = |v: &[Volume]| v.iter().map(|v| v.name.clone()).collect::<Vec<_>>();
    assert_eq!(names(&report.total.top_users), ["bob", "alice"]);
    assert_eq!(names(&report.total.top_verbs), ["list", "get"]);
    assert_eq!(names(&report.total.top_resources), ["secrets", "pods"]);
    assert_eq!(report.total.kept_by_level.metadata, 3);
}
