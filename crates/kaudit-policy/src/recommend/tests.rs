//! Recommended policies starve none of their rules, and stay small.

use kaudit_model::Level;

use crate::coverage::{CheckOp, Condition, DetectionRule, Status, coverage};
use crate::load;

use super::*;

fn c(field: &str, op: CheckOp, values: &[&str], needs: Level) -> Condition {
    Condition::Check {
        field: field.into(),
        op,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        needs,
    }
}

fn m(field: &str, op: CheckOp, values: &[&str]) -> Condition {
    c(field, op, values, Level::Metadata)
}

fn not(condition: Condition) -> Condition {
    Condition::Not(Box::new(condition))
}

fn rule(name: &str, needs: Level, parts: Vec<Condition>) -> DetectionRule {
    DetectionRule {
        name: name.into(),
        condition: Condition::And(parts),
        needs,
    }
}

fn sample_rules() -> Vec<DetectionRule> {
    let complete = m("jevt.value[/stage]", CheckOp::In, &["ResponseComplete"]);
    vec![
        rule(
            "Privileged pod",
            Level::Request,
            vec![
                complete.clone(),
                m("ka.target.resource", CheckOp::Eq, &["pods"]),
                not(m("ka.target.subresource", CheckOp::Exists, &[])),
                m("ka.verb", CheckOp::Eq, &["create"]),
                c(
                    "ka.req.pod.containers.privileged",
                    CheckOp::Intersects,
                    &["true"],
                    Level::Request,
                ),
            ],
        ),
        rule(
            "Configmap with credentials",
            Level::Request,
            vec![
                complete.clone(),
                m("ka.target.resource", CheckOp::Eq, &["configmaps"]),
                m("ka.verb", CheckOp::In, &["create", "update", "patch"]),
                c(
                    "ka.req.configmap.obj",
                    CheckOp::Contains,
                    &["aws_access_key_id"],
                    Level::Request,
                ),
            ],
        ),
        rule(
            "Secret read",
            Level::Metadata,
            vec![
                complete.clone(),
                m("ka.target.resource", CheckOp::Eq, &["secrets"]),
                m("ka.verb", CheckOp::Eq, &["get"]),
                not(m("ka.user.name", CheckOp::StartsWith, &["system:"])),
            ],
        ),
        rule(
            "Anonymous allowed",
            Level::Metadata,
            vec![
                complete,
                m("ka.user.name", CheckOp::Eq, &["system:anonymous"]),
                not(Condition::Or(vec![
                    m("ka.uri", CheckOp::Eq, &["/livez"]),
                    m("ka.uri", CheckOp::StartsWith, &["/livez?"]),
                ])),
            ],
        ),
        rule(
            "Unauthorized",
            Level::Metadata,
            vec![m("ka.response.code", CheckOp::Eq, &["401"])],
        ),
        rule(
            "Never",
            Level::Metadata,
            vec![m("jevt.rawtime", CheckOp::Eq, &["0"])],
        ),
        rule(
            "Any secret read",
            Level::Metadata,
            vec![
                m("ka.target.resource", CheckOp::Eq, &["secrets"]),
                m("ka.verb", CheckOp::Eq, &["get"]),
            ],
        ),
    ]
}

/// Recommends for `rules` and checks that the YAML loads back to the same policy, that
/// nothing is starved, and the number of rules added to the base.
fn check(rules: &[DetectionRule], added: usize) -> String {
    let recommendation = recommend(rules);
    assert!(
        recommendation.unsatisfiable.is_empty(),
        "{:?}",
        recommendation.unsatisfiable
    );
    let yaml = recommendation.to_yaml("test");
    let loaded = load(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert!(loaded.warnings.is_empty());
    assert_eq!(loaded.policy.rules.len(), recommendation.policy.rules.len());
    let report = coverage(&loaded.policy, rules);
    for rule in &report.rules {
        assert!(
            matches!(rule.status, Status::Covered | Status::NeverMatches),
            "{} {:?}\n{yaml}",
            rule.name,
            rule.starved_by
        );
    }
    assert_eq!(
        loaded.policy.rules.len(),
        base_policy().0.rules.len() + added,
        "{yaml}"
    );
    yaml
}

#[test]
fn base_alone_covers_metadata_rules() {
    let rules = sample_rules();
    // Secret reads by people need only Metadata: the base already gives it, and failed
    // authentications (401) reach the catch-all rule.
    check(&rules[2..3], 0);
    check(&rules[4..6], 0);
    // Secret reads by the control plane and kubelets are dropped by the base: one rule
    // per kind of caller brings them back.
    let yaml = check(&rules[6..], 2);
    assert!(yaml.contains("users: [\"system:apiserver\""), "{yaml}");
    assert!(yaml.contains("userGroups: [\"system:nodes\"]"), "{yaml}");
}

#[test]
fn body_rules_get_narrow_rules_in_front() {
    let rules = sample_rules();
    let yaml = check(&rules[..2], 2);
    // Request rules for pod creates and configmap writes, before the Metadata pin of
    // configmaps.
    assert!(yaml.contains("  - level: Request\n"), "{yaml}");
    assert!(yaml.contains("\"pods\""), "{yaml}");
    assert!(yaml.contains("\"configmaps\""), "{yaml}");
}

#[test]
fn everything_together_is_covered() {
    let yaml = check(&sample_rules(), 5);
    assert!(yaml.contains("\"system:anonymous\""), "{yaml}");
}
