//! The wire spelling of the protocol types: what clients written against the documentation
//! send and receive must keep parsing.

use kaudit_proto::{AlertFilter, IntakeAck, Policy, Priority, Role, ScopeKind};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Parses `json` as `T` and checks it serializes back to the same JSON value.
fn check<T: Serialize + DeserializeOwned>(json: &str) -> T {
    let value: T = serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"));
    let back = serde_json::to_value(&value).unwrap();
    let expected: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(back, expected, "round trip of {json}");
    value
}

#[test]
fn intake_ack() {
    let ack: IntakeAck = check(r#"{"accepted":398,"duplicates":2,"alerts":5}"#);
    assert_eq!(ack.duplicates, 2);
}

#[test]
fn policy_scope_uses_admission_webhook_spelling() {
    let policy: Policy = check(
        r#"{"name":"exec","description":"","enabled":true,"rules":{"tags":["k8s"]},
            "scope":[{"apiGroups":[""],"apiVersions":["v1"],"operations":["CONNECT"],
                      "resources":["pods/exec"],"scope":"Namespaced"},
                     {"apiGroups":["*"],"apiVersions":["*"],"operations":["*"],"resources":["*/*"],"scope":"*"}],
            "builtin":false}"#,
    );
    assert_eq!(policy.scope[0].scope, Some(ScopeKind::Namespaced));
    assert_eq!(policy.scope[1].scope, Some(ScopeKind::Any));
}

#[test]
fn priorities_use_falco_names_and_parse_loosely() {
    let p: Priority = serde_json::from_str(r#""info""#).unwrap();
    assert_eq!(serde_json::to_string(&p).unwrap(), r#""Informational""#);
    assert!(serde_json::from_str::<Priority>(r#""loud""#).is_err());
}

#[test]
fn roles_and_filters() {
    assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), r#""admin""#);
    let filter: AlertFilter = check(r#"{"min_priority":"warning","cluster":"prod","limit":10}"#);
    assert_eq!(filter.limit, Some(10));
}
