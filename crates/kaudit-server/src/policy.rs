//! Detection policies: named groups of rules, enabled or disabled, with an optional scope of
//! requests written like admission-webhook rules.
//!
//! How an audit event is seen through an admission-webhook rule (the mapping is documented
//! in `docs/intake-protocol.md`):
//! * operation: `create` → `CREATE`; `update`, `patch` → `UPDATE`; `delete`,
//!   `deletecollection` → `DELETE`; any verb on the `exec`, `attach`, `portforward` or
//!   `proxy` subresource → `CONNECT`. Reads (`get`, `list`, `watch`) and every other verb
//!   have no operation: only `*` admits them.
//! * resources: `res/sub` entries compare the resource and the subresource separately, `*`
//!   on either side matching anything; an entry without `/` matches only requests without a
//!   subresource (`*` = every resource, no subresource; `*/*` = everything; `pods/*` = pods
//!   and all its subresources; `*/scale` = every scale subresource).
//! * apiGroups: `objectRef.apiGroup`, the core group being `""`; apiVersions:
//!   `objectRef.apiVersion`.
//! * scope: `Namespaced` admits requests with a namespace, except on `namespaces` objects;
//!   `Cluster` admits requests without a namespace and every request on `namespaces`.
//! * Non-resource requests (`/healthz`, no `objectRef`) are never admitted by a scope entry;
//!   a policy without a scope admits every event.

use kaudit_model::AuditEvent;
use kaudit_proto::{Policy, PolicyRules, ScopeKind, ScopeRule};

/// The policies kaudit creates on first start.
pub fn default_policies() -> Vec<Policy> {
    vec![
        Policy {
            name: NOTABLE_EVENTS.to_owned(),
            description: "kaudit's default detections: risky workloads, secrets access, exec, RBAC \
                          escalation, anonymous access and other notable changes"
                .to_owned(),
            enabled: true,
            rules: PolicyRules {
                files: vec![DEFAULT_RULES_FILE.to_owned()],
                ..PolicyRules::default()
            },
            scope: Vec::new(),
            builtin: true,
        },
        Policy {
            name: ALL_ACTIVITY.to_owned(),
            description: "one informational alert for every audit event (noisy: enable for \
                          investigations or narrow it with a scope)"
                .to_owned(),
            enabled: false,
            rules: PolicyRules {
                files: vec![ACTIVITY_RULES_FILE.to_owned()],
                ..PolicyRules::default()
            },
            scope: Vec::new(),
            builtin: true,
        },
    ]
}

/// Name of the default policy of kaudit's own rules.
pub const NOTABLE_EVENTS: &str = "notable-events";
/// Name of the default policy that alerts on every event.
pub const ALL_ACTIVITY: &str = "all-activity";
/// The rule-file name under which kaudit's default rules are loaded.
pub const DEFAULT_RULES_FILE: &str = "default";
/// The rule-file name of the built-in catch-all rule of [`ALL_ACTIVITY`].
pub const ACTIVITY_RULES_FILE: &str = "activity";

/// A policy problem found when it is saved, with the place (`scope[1].resources`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{place}: {reason}")]
pub struct PolicyError {
    /// Which part of the policy.
    pub place: String,
    /// What is wrong.
    pub reason: String,
}

/// Checks a policy before it is stored.
pub fn validate(policy: &Policy) -> Result<(), PolicyError> {
    if !valid_name(&policy.name) {
        return Err(PolicyError {
            place: "name".into(),
            reason: format!(
                "{:?} is not a valid name (1-100 of letters, digits, '-', '_', '.')",
                policy.name
            ),
        });
    }
    for (i, rule) in policy.scope.iter().enumerate() {
        let lists: [(&str, &Vec<String>); 4] = [
            ("apiGroups", &rule.api_groups),
            ("apiVersions", &rule.api_versions),
            ("operations", &rule.operations),
            ("resources", &rule.resources),
        ];
        for (field, values) in lists {
            if values.is_empty() {
                return Err(PolicyError {
                    place: format!("scope[{i}].{field}"),
                    reason: "must not be empty (an empty list admits nothing; use [\"*\"] for any)".into(),
                });
            }
        }
        for op in &rule.operations {
            if !matches!(op.as_str(), "*" | "CREATE" | "UPDATE" | "DELETE" | "CONNECT") {
                return Err(PolicyError {
                    place: format!("scope[{i}].operations"),
                    reason: format!(
                        "unknown operation {op:?} (expected CREATE, UPDATE, DELETE, CONNECT or *)"
                    ),
                });
            }
        }
        for res in &rule.resources {
            if res.is_empty() || res.matches('/').count() > 1 {
                return Err(PolicyError {
                    place: format!("scope[{i}].resources"),
                    reason: format!("{res:?} is not a resource (expected res, res/sub, *, */* or */sub)"),
                });
            }
        }
    }
    Ok(())
}

/// Names of policies and rule files: what fits in a URL path segment and a file name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The admission operation of an audit event, or `None` for reads and other verbs.
pub fn operation(event: &AuditEvent<'_>) -> Option<&'static str> {
    if matches!(
        event.subresource(),
        Some("exec" | "attach" | "portforward" | "proxy")
    ) {
        return Some("CONNECT");
    }
    match event.verb.as_deref()? {
        "create" => Some("CREATE"),
        "update" | "patch" => Some("UPDATE"),
        "delete" | "deletecollection" => Some("DELETE"),
        _ => None,
    }
}

/// True when the policy's scope admits the event (always, without a scope).
pub fn scope_admits(scope: &[ScopeRule], event: &AuditEvent<'_>) -> bool {
    if scope.is_empty() {
        return true;
    }
    let Some(object) = event.object_ref.as_ref() else {
        return false;
    };
    let resource = object.resource.as_deref().unwrap_or("");
    let subresource = object.subresource.as_deref().unwrap_or("");
    let group = object.api_group.as_deref().unwrap_or("");
    let version = object.api_version.as_deref().unwrap_or("");
    let namespace = object.namespace.as_deref().unwrap_or("");
    let operation = operation(event);
    scope.iter().any(|rule| {
        let op_ok = rule
            .operations
            .iter()
            .any(|op| op == "*" || Some(op.as_str()) == operation);
        let group_ok = rule.api_groups.iter().any(|g| g == "*" || g == group);
        let version_ok = rule.api_versions.iter().any(|v| v == "*" || v == version);
        let resource_ok = rule.resources.iter().any(|entry| {
            let (res, sub) = entry.split_once('/').unwrap_or((entry.as_str(), ""));
            (res == "*" || res == resource) && (sub == "*" || sub == subresource)
        });
        let is_namespace_object = resource == "namespaces" && group.is_empty();
        let scope_ok = match rule.scope.unwrap_or_default() {
            ScopeKind::Any => true,
            ScopeKind::Namespaced => !is_namespace_object && !namespace.is_empty(),
            ScopeKind::Cluster => is_namespace_object || namespace.is_empty(),
        };
        op_ok && group_ok && version_ok && resource_ok && scope_ok
    })
}

/// True when a rule (by name, tags and the rule file defining it) belongs to the policy.
pub fn selects(rules: &PolicyRules, name: &str, tags: &[String], file: &str) -> bool {
    rules.files.iter().any(|f| f == file)
        || rules.tags.iter().any(|t| tags.iter().any(|rt| rt == t))
        || rules.names.iter().any(|pattern| wildcard_match(pattern, name))
}

/// `*` matches any run of characters (also none); everything else matches itself.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(verb: &str, resource: Option<(&str, &str, &str, &str)>) -> String {
        let object = match resource {
            Some((group, res, sub, ns)) => {
                let mut o = format!(r#""objectRef":{{"resource":"{res}","apiVersion":"v1""#);
                if !group.is_empty() {
                    o += &format!(r#","apiGroup":"{group}""#);
                }
                if !sub.is_empty() {
                    o += &format!(r#","subresource":"{sub}""#);
                }
                if !ns.is_empty() {
                    o += &format!(r#","namespace":"{ns}""#);
                }
                o + "},"
            }
            None => String::new(),
        };
        format!(
            r#"{{"auditID":"a","stage":"ResponseComplete","verb":"{verb}",{object}"stageTimestamp":"2024-01-01T00:00:00Z"}}"#
        )
    }

    /// Checks whether a one-entry scope admits an event.
    fn check(scope: &str, raw_event: &str, expected: bool) {
        let rule: ScopeRule = serde_json::from_str(scope).unwrap();
        let event = AuditEvent::parse(raw_event).unwrap();
        assert_eq!(scope_admits(&[rule], &event), expected, "{scope} on {raw_event}");
    }

    const ANY: &str = r#"{"apiGroups":["*"],"apiVersions":["*"],"operations":["*"],"resources":["*/*"]}"#;

    #[test]
    fn operations_follow_the_admission_mapping() {
        let ops = |ops: &str| ANY.replace(r#""operations":["*"]"#, &format!(r#""operations":{ops}"#));
        let pods = Some(("", "pods", "", "default"));
        check(&ops(r#"["CREATE"]"#), &event("create", pods), true);
        check(&ops(r#"["UPDATE"]"#), &event("patch", pods), true);
        check(&ops(r#"["UPDATE"]"#), &event("update", pods), true);
        check(&ops(r#"["DELETE"]"#), &event("deletecollection", pods), true);
        check(&ops(r#"["CREATE"]"#), &event("get", pods), false);
        check(&ops(r#"["*"]"#), &event("watch", pods), true);
        check(
            &ops(r#"["CONNECT"]"#),
            &event("create", Some(("", "pods", "exec", "default"))),
            true,
        );
        check(
            &ops(r#"["CONNECT"]"#),
            &event("get", Some(("", "pods", "portforward", "default"))),
            true,
        );
        check(
            &ops(r#"["CREATE"]"#),
            &event("create", Some(("", "pods", "exec", "default"))),
            false,
        );
    }

    #[test]
    fn resources_and_subresources() {
        let res = |r: &str| ANY.replace(r#""resources":["*/*"]"#, &format!(r#""resources":{r}"#));
        let exec = event("create", Some(("", "pods", "exec", "ns")));
        let pod = event("create", Some(("", "pods", "", "ns")));
        let scale = event("update", Some(("apps", "deployments", "scale", "ns")));
        check(&res(r#"["pods/exec"]"#), &exec, true);
        check(&res(r#"["pods"]"#), &exec, false);
        check(&res(r#"["pods"]"#), &pod, true);
        check(&res(r#"["*"]"#), &pod, true);
        check(&res(r#"["*"]"#), &exec, false);
        check(&res(r#"["pods/*"]"#), &pod, true);
        check(&res(r#"["pods/*"]"#), &exec, true);
        check(&res(r#"["*/scale"]"#), &scale, true);
        check(&res(r#"["*/scale"]"#), &pod, false);
        check(ANY, &event("get", None), false);
    }

    #[test]
    fn groups_versions_and_scope() {
        let with = |field: &str, value: &str| format!(r#"{},"{field}":{value}}}"#, &ANY[..ANY.len() - 1]);
        let deploy = event("create", Some(("apps", "deployments", "", "ns")));
        let node = event("create", Some(("", "nodes", "", "")));
        let namespace = event("delete", Some(("", "namespaces", "", "team-a")));
        check(
            &ANY.replace(r#""apiGroups":["*"]"#, r#""apiGroups":[""]"#),
            &deploy,
            false,
        );
        check(
            &ANY.replace(r#""apiGroups":["*"]"#, r#""apiGroups":["apps"]"#),
            &deploy,
            true,
        );
        check(
            &ANY.replace(r#""apiVersions":["*"]"#, r#""apiVersions":["v2"]"#),
            &deploy,
            false,
        );
        check(&with("scope", r#""Namespaced""#), &deploy, true);
        check(&with("scope", r#""Namespaced""#), &node, false);
        check(&with("scope", r#""Cluster""#), &node, true);
        check(&with("scope", r#""Cluster""#), &namespace, true);
        check(&with("scope", r#""Namespaced""#), &namespace, false);
        check(&with("scope", r#""*""#), &node, true);
    }

    #[test]
    fn rule_selection_by_name_tag_and_file() {
        let rules = PolicyRules {
            names: vec!["K8s * Created".into()],
            tags: vec!["mitre_execution".into()],
            files: vec![],
        };
        assert!(selects(&rules, "K8s Pod Created", &[], "x"));
        assert!(!selects(&rules, "K8s Pod Deleted", &[], "x"));
        assert!(selects(&rules, "Exec", &["mitre_execution".into()], "x"));
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "acb"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn validation_names_the_place() {
        let mut policy = default_policies().remove(0);
        policy.scope =
            vec![serde_json::from_str(&ANY.replace(r#""operations":["*"]"#, r#""operations":[]"#)).unwrap()];
        assert_eq!(validate(&policy).unwrap_err().place, "scope[0].operations");
        policy.scope[0].operations = vec!["READ".into()];
        assert!(
            validate(&policy)
                .unwrap_err()
                .reason
                .contains("unknown operation")
        );
        policy.name = "../x".into();
        assert_eq!(validate(&policy).unwrap_err().place, "name");
    }
}
