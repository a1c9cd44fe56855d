//! Tests of the resource scope.

use super::*;

fn event(
    group: Option<&str>,
    resource: &str,
    subresource: Option<&str>,
    namespace: Option<&str>,
    verb: &str,
) -> String {
    let mut object_ref = format!(r#""resource":"{resource}""#);
    if let Some(group) = group {
        object_ref.push_str(&format!(r#","apiGroup":"{group}""#));
    }
    if let Some(subresource) = subresource {
        object_ref.push_str(&format!(r#","subresource":"{subresource}""#));
    }
    if let Some(namespace) = namespace {
        object_ref.push_str(&format!(r#","namespace":"{namespace}""#));
    }
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"x","stage":"ResponseComplete","verb":"{verb}","objectRef":{{{object_ref}}},"stageTimestamp":"2024-05-01T10:11:12.123456Z"}}"#
    )
}

/// Checks which of the standard events a flag-form scope admits.
fn check_scope(flag: &str, expected: &[(&str, bool)]) {
    let rule = ScopeRule::parse_flag(flag).expect("scope parses");
    let filter = Filter::new(vec![rule], None).expect("a filter");
    let events = [
        ("pod", event(None, "pods", None, Some("prod"), "create")),
        (
            "pod-exec",
            event(None, "pods", Some("exec"), Some("prod"), "create"),
        ),
        (
            "deploy-scale",
            event(Some("apps"), "deployments", Some("scale"), Some("dev"), "update"),
        ),
        ("node", event(None, "nodes", None, None, "get")),
        (
            "crb",
            event(
                Some("rbac.authorization.k8s.io"),
                "clusterrolebindings",
                None,
                None,
                "create",
            ),
        ),
    ];
    for (name, admitted) in expected {
        let (_, raw) = events
            .iter()
            .find(|(event_name, _)| event_name == name)
            .expect("known event");
        let verdict = filter.apply(raw);
        let shipped = matches!(verdict, Verdict::Ship(_));
        assert_eq!(shipped, *admitted, "scope {flag:?} on {name}: {verdict:?}");
    }
}

#[test]
fn scope_follows_admission_rule_matching() {
    check_scope(
        "resources=pods",
        &[
            ("pod", true),
            ("pod-exec", false),
            ("deploy-scale", false),
            ("node", false),
        ],
    );
    check_scope("resources=pods/*", &[("pod", false), ("pod-exec", true)]);
    check_scope(
        "resources=*/scale",
        &[("deploy-scale", true), ("pod-exec", false), ("pod", false)],
    );
    check_scope(
        "resources=*",
        &[("pod", true), ("node", true), ("pod-exec", false)],
    );
    check_scope(
        "resources=*/*",
        &[("pod", false), ("pod-exec", true), ("deploy-scale", true)],
    );
    check_scope(
        "apiGroups=",
        &[
            ("pod", true),
            ("node", true),
            ("deploy-scale", false),
            ("crb", false),
        ],
    );
    check_scope(
        "apiGroups=apps,rbac.authorization.k8s.io",
        &[("deploy-scale", true), ("crb", true), ("pod", false)],
    );
    check_scope(
        "namespaces=prod",
        &[
            ("pod", true),
            ("pod-exec", true),
            ("deploy-scale", false),
            ("node", false),
        ],
    );
    check_scope("namespaces=", &[("node", true), ("crb", true), ("pod", false)]);
    check_scope(
        "verbs=create,update",
        &[("pod", true), ("deploy-scale", true), ("node", false)],
    );
    check_scope(
        "apiGroups=*;resources=*/*;namespaces=dev",
        &[("deploy-scale", true), ("pod-exec", false)],
    );
}

#[test]
fn non_resource_requests_and_unparsable_lines_are_handled() {
    let filter =
        Filter::new(vec![ScopeRule::parse_flag("resources=*").expect("scope")], None).expect("filter");
    let healthz = r#"{"kind":"Event","auditID":"y","stage":"ResponseComplete","verb":"get","requestURI":"/healthz","stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#;
    assert_eq!(filter.apply(healthz), Verdict::Filtered);
    assert_eq!(filter.apply("not json"), Verdict::Unparsed);
}

#[test]
fn scope_flags_report_mistakes() {
    for (flag, message) in [
        ("resource=pods", "unknown key"),
        ("pods", "expected key=values"),
        ("resources=pods/", "invalid resource pattern"),
        ("resources=a/b/c", "invalid resource pattern"),
    ] {
        let err = ScopeRule::parse_flag(flag).expect_err(flag);
        assert!(err.contains(message), "{flag}: {err}");
    }
    assert!(
        Filter::new(Vec::new(), None).is_none(),
        "no scope means no parsing at all"
    );
}

/// Applies `policy` (YAML) to `event` and returns what would be shipped.
fn check_policy(policy: &str, event: &str, expected: Option<&str>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(&path, policy).expect("write");
    let loaded = LoadedPolicy::load(&path).expect("policy loads");
    let filter = Filter::new(Vec::new(), Some(loaded)).expect("filter");
    match (filter.apply(event), expected) {
        (Verdict::Ship(text), Some(expected)) => assert_eq!(text, expected),
        (Verdict::Filtered, None) => {}
        (verdict, expected) => panic!("got {verdict:?}, expected {expected:?}"),
    }
}

#[test]
fn the_policy_drops_and_reduces_events_before_shipping() {
    let policy = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: None\n  nonResourceURLs: ['/healthz*']\n- level: Metadata\n";
    let healthz = r#"{"level":"Metadata","auditID":"h","stage":"ResponseComplete","requestURI":"/healthz","verb":"get","user":{"username":"u"},"stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#;
    check_policy(policy, healthz, None);
    let received = r#"{"level":"Request","auditID":"r","stage":"RequestReceived","requestURI":"/api/v1/namespaces/a/pods","verb":"create","user":{"username":"u"},"objectRef":{"resource":"pods","namespace":"a"},"stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#;
    check_policy(policy, received, None);
    let create = r#"{"level":"Request","auditID":"c","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/pods","verb":"create","user":{"username":"u"},"objectRef":{"resource":"pods","namespace":"a"},"requestObject":{"kind":"Pod"},"stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#;
    let reduced = r#"{"level":"Metadata","auditID":"c","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/a/pods","verb":"create","user":{"username":"u"},"objectRef":{"resource":"pods","namespace":"a"},"stageTimestamp":"2024-05-01T10:11:12.123456Z"}"#;
    check_policy(policy, create, Some(reduced));
}

#[test]
fn a_policy_that_does_not_load_names_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("policy.yaml");
    std::fs::write(
        &path,
        "apiVersion: audit.k8s.io/v1\nkind: Policy\nrules:\n- level: Loud\n",
    )
    .expect("write");
    let err = LoadedPolicy::load(&path).err().expect("refused").to_string();
    assert!(err.contains("policy.yaml:4:"), "{err}");
}
