//! Coverage verdicts for small rules against small policies, one check helper.

use kaudit_model::Level;

use crate::load;

use super::*;

fn c(field: &str, op: CheckOp, values: &[&str]) -> Condition {
    let needs = if field.starts_with("ka.req.") || field.contains("[/requestObject") {
        Level::Request
    } else if field.contains("[/responseObject") || field.starts_with("ka.resp.") {
        Level::RequestResponse
    } else {
        Level::Metadata
    };
    Condition::Check {
        field: field.into(),
        op,
        values: values.iter().map(|v| (*v).to_owned()).collect(),
        needs,
    }
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

/// Expected verdict: the status and, for each starvation, (policy rule, reason kind).
fn check(
    policy_rules: &str,
    detection: &DetectionRule,
    status: Status,
    starved_by: &[(Option<usize>, &str)],
) {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{policy_rules}");
    let policy = load(&text).unwrap_or_else(|e| panic!("{e}")).policy;
    let report = rule_coverage(&policy, detection);
    let got: Vec<(Option<usize>, &str)> = report
        .starved_by
        .iter()
        .map(|s| {
            (
                s.policy_rule,
                match s.reason {
                    Reason::LevelNone => "none",
                    Reason::LevelTooLow { .. } => "level",
                    Reason::StagesOmitted { .. } => "stage",
                },
            )
        })
        .collect();
    assert_eq!(
        (report.status, got),
        (status, starved_by.to_vec()),
        "{}: {:#?}",
        detection.name,
        report.starved_by
    );
}

fn create_privileged_pod() -> DetectionRule {
    rule(
        "Create Privileged Pod",
        Level::Request,
        vec![
            c("jevt.value[/stage]", CheckOp::In, &["ResponseComplete"]),
            c("ka.target.resource", CheckOp::Eq, &["pods"]),
            not(c("ka.target.subresource", CheckOp::Exists, &[])),
            c("ka.verb", CheckOp::Eq, &["create"]),
            c("ka.req.pod.containers.privileged", CheckOp::Intersects, &["true"]),
        ],
    )
}

#[test]
fn body_rules_need_their_level() {
    let detection = create_privileged_pod();
    check("rules:\n- level: Request\n", &detection, Status::Covered, &[]);
    check(
        "rules:\n- level: Metadata\n",
        &detection,
        Status::Starved,
        &[(Some(0), "level")],
    );
    check(
        "rules:\n- level: RequestResponse\n  resources: [{resources: [pods]}]\n  namespaces: [kube-system]\n- level: Metadata\n",
        &detection,
        Status::PartiallyStarved,
        &[(Some(1), "level")],
    );
    // The apps group's pods are not the core pods the rule reads.
    check(
        "rules:\n- level: None\n  resources: [{group: apps}]\n- level: Request\n",
        &detection,
        Status::Covered,
        &[],
    );
    check(
        "rules:\n- level: None\n  verbs: [create]\n- level: Request\n",
        &detection,
        Status::Starved,
        &[(Some(0), "none")],
    );
    check(
        "rules:\n- level: Request\n  verbs: [get]\n",
        &detection,
        Status::Starved,
        &[(None, "none")],
    );
}

#[test]
fn stages_the_rule_reads() {
    let detection = create_privileged_pod();
    check(
        "omitStages: [ResponseComplete]\nrules:\n- level: Request\n",
        &detection,
        Status::Starved,
        &[(Some(0), "stage")],
    );
    check(
        "omitStages: [RequestReceived]\nrules:\n- level: Request\n",
        &detection,
        Status::Covered,
        &[],
    );
    // Exec is long-running: it also has ResponseStarted, which a rule without a stage
    // condition can use.
    let exec = rule(
        "Exec",
        Level::Metadata,
        vec![
            c("ka.target.subresource", CheckOp::In, &["exec", "attach"]),
            c("ka.target.resource", CheckOp::Eq, &["pods"]),
        ],
    );
    check(
        "rules:\n- level: Metadata\n  omitStages: [RequestReceived, ResponseComplete]\n",
        &exec,
        Status::Covered,
        &[],
    );
    let started = rule(
        "Exec started",
        Level::Metadata,
        vec![
            c("ka.stage", CheckOp::Eq, &["ResponseStarted"]),
            c("ka.target.subresource", CheckOp::In, &["exec"]),
        ],
    );
    check(
        "rules:\n- level: Metadata\n  omitStages: [ResponseStarted]\n",
        &started,
        Status::Starved,
        &[(Some(0), "stage")],
    );
    // A response code is only known after RequestReceived.
    let denied = rule(
        "Denied",
        Level::Metadata,
        vec![c("ka.response.code", CheckOp::Eq, &["403"])],
    );
    check(
        "rules:\n- level: Metadata\n  omitStages: [ResponseComplete, ResponseStarted]\n",
        &denied,
        Status::Starved,
        &[(Some(0), "stage")],
    );
}

#[test]
fn users_groups_and_failed_authentication() {
    let non_system = rule(
        "Disallowed user",
        Level::Metadata,
        vec![
            not(c("ka.user.name", CheckOp::StartsWith, &["system:"])),
            not(c("ka.user.name", CheckOp::In, &["admin"])),
        ],
    );
    check(
        "rules:\n- level: None\n  users: [system:apiserver, admin]\n- level: Metadata\n",
        &non_system,
        Status::Covered,
        &[],
    );
    check(
        "rules:\n- level: None\n  userGroups: [system:masters]\n- level: Metadata\n",
        &non_system,
        Status::PartiallyStarved,
        &[(Some(0), "none")],
    );
    // Failed authentication (the only 401): one ResponseStarted event, no user.
    let unauthorized = rule(
        "Unauthorized",
        Level::Metadata,
        vec![c("ka.response.code", CheckOp::Eq, &["401"])],
    );
    check(
        "rules:\n- level: Metadata\n  userGroups: [system:authenticated]\n",
        &unauthorized,
        Status::Starved,
        &[(None, "none")],
    );
    check(
        "rules:\n- level: Metadata\n  omitStages: [ResponseStarted]\n",
        &unauthorized,
        Status::Starved,
        &[(Some(0), "stage")],
    );
    check(
        "rules:\n- level: None\n  users: [alice]\n- level: Metadata\n",
        &unauthorized,
        Status::Covered,
        &[],
    );
}

#[test]
fn non_resource_paths_and_never_matching_rules() {
    let anonymous = rule(
        "Anonymous allowed",
        Level::Metadata,
        vec![
            c("ka.user.name", CheckOp::Eq, &["system:anonymous"]),
            not(Condition::Or(vec![
                c("ka.uri", CheckOp::Eq, &["/healthz"]),
                c("ka.uri", CheckOp::StartsWith, &["/healthz?"]),
            ])),
        ],
    );
    check(
        "rules:\n- level: None\n  nonResourceURLs: [/healthz]\n- level: Metadata\n",
        &anonymous,
        Status::Covered,
        &[],
    );
    check(
        "rules:\n- level: None\n  nonResourceURLs: [\"/healthz*\"]\n- level: Metadata\n",
        &anonymous,
        Status::PartiallyStarved,
        &[(Some(0), "none")],
    );
    let never = rule(
        "Never",
        Level::Metadata,
        vec![c("jevt.rawtime", CheckOp::Eq, &["0"])],
    );
    check("rules:\n- level: Metadata\n", &never, Status::NeverMatches, &[]);
}

#[test]
fn namespaces_and_names_the_policy_sees() {
    let kube_system_pods = rule(
        "Pod in kube-system",
        Level::Metadata,
        vec![
            c("ka.verb", CheckOp::Eq, &["create"]),
            c("ka.target.resource", CheckOp::Eq, &["pods"]),
            c(
                "ka.target.namespace",
                CheckOp::In,
                &["kube-system", "kube-public"],
            ),
        ],
    );
    check(
        "rules:\n- level: None\n  namespaces: [kube-system]\n- level: Metadata\n",
        &kube_system_pods,
        Status::PartiallyStarved,
        &[(Some(0), "none")],
    );
    // A create names no object for the policy: resourceNames rules never match it.
    let named = rule(
        "Namespace created",
        Level::Metadata,
        vec![
            c("ka.verb", CheckOp::Eq, &["create"]),
            c("ka.target.resource", CheckOp::Eq, &["namespaces"]),
            not(c("ka.target.subresource", CheckOp::Exists, &[])),
            c("ka.target.name", CheckOp::Eq, &["prod"]),
        ],
    );
    check(
        "rules:\n- level: None\n  resources: [{resources: [namespaces], resourceNames: [prod]}]\n- level: Metadata\n",
        &named,
        Status::Covered,
        &[],
    );
    check(
        "rules:\n- level: None\n  namespaces: [\"\"]\n- level: Metadata\n",
        &named,
        Status::Starved,
        &[(Some(0), "none")],
    );
}
