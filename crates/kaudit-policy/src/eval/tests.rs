//! Every evaluation rule of the apiserver's policy checker, one table, one check helper.

use kaudit_model::{Level, Stage};

use crate::load;
use crate::policy::StageSet;

use super::*;

/// A request written compactly: `"<user>|<groups,>|<verb>|<target>"` where target is either
/// a path starting with `/` (non-resource request) or `group:resource/sub@namespace/name`
/// (`core` for the core group, `-` for no namespace). User `!` means no user at all.
fn request(spec: &str) -> RequestAttributes {
    let parts: Vec<&str> = spec.split('|').collect();
    let [user, groups, verb, target] = parts[..] else {
        panic!("bad spec {spec}")
    };
    let user = (user != "!").then(|| User {
        name: user.to_owned(),
        groups: groups
            .split(',')
            .filter(|g| !g.is_empty())
            .map(str::to_owned)
            .collect(),
    });
    let mut attrs = RequestAttributes {
        user,
        verb: verb.to_owned(),
        ..RequestAttributes::default()
    };
    if target.starts_with('/') {
        attrs.path = target.to_owned();
        return attrs;
    }
    attrs.resource_request = true;
    let (group, rest) = target.split_once(':').expect("group:resource");
    attrs.api_group = if group == "core" {
        String::new()
    } else {
        group.to_owned()
    };
    let (resource, place) = rest.split_once('@').unwrap_or((rest, "-/"));
    let (resource, sub) = resource.split_once('/').unwrap_or((resource, ""));
    attrs.resource = resource.to_owned();
    attrs.subresource = sub.to_owned();
    let (namespace, name) = place.split_once('/').unwrap_or((place, ""));
    attrs.namespace = if namespace == "-" {
        String::new()
    } else {
        namespace.to_owned()
    };
    attrs.name = name.to_owned();
    attrs
}

/// Loads `rules` (the YAML list under `rules:`, plus optional policy-level fields before it)
/// and checks the matched rule index for each request.
fn check(policy_yaml: &str, cases: &[(&str, Option<usize>)]) {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{policy_yaml}");
    let policy = load(&text)
        .unwrap_or_else(|e| panic!("policy does not load: {e}\n{text}"))
        .policy;
    for (spec, expected) in cases {
        let decision = policy.evaluate(&request(spec));
        assert_eq!(decision.rule, *expected, "request {spec} under\n{policy_yaml}");
        if expected.is_none() {
            assert_eq!(decision.level, Level::None, "no match means level None: {spec}");
        }
    }
}

#[test]
fn first_match_wins_even_with_level_none() {
    check(
        "rules:\n- level: None\n  verbs: [get]\n- level: RequestResponse\n- level: Metadata\n",
        &[
            ("alice||get|core:pods@a/p", Some(0)),
            ("alice||list|core:pods@a/", Some(1)),
            ("alice||get|/healthz", Some(0)),
        ],
    );
}

#[test]
fn no_matching_rule_is_level_none() {
    check(
        "rules:\n- level: Metadata\n  verbs: [create]\n",
        &[("alice||get|core:pods@a/p", None)],
    );
}

#[test]
fn users_and_groups_need_a_user() {
    let policy = "rules:\n- level: Request\n  users: [alice]\n- level: Metadata\n  userGroups: [system:unauthenticated, team]\n- level: None\n";
    check(
        policy,
        &[
            ("alice||get|/version", Some(0)),
            ("bob|team|get|/version", Some(1)),
            ("system:anonymous|system:unauthenticated|get|/version", Some(1)),
            ("bob|other|get|/version", Some(2)),
            // Failed authentication: no user, only rules without users/userGroups match.
            ("!||get|/version", Some(2)),
            // A user with an empty name is still a user.
            ("|team|get|/version", Some(1)),
        ],
    );
}

#[test]
fn verbs_are_exact_and_star_is_literal() {
    check(
        "rules:\n- level: None\n  verbs: [\"*\"]\n- level: Metadata\n  verbs: [watch, list]\n",
        &[
            ("a||get|core:pods@-/", None),
            ("a||watch|core:pods@-/", Some(1)),
            ("a||*|core:pods@-/", Some(0)),
        ],
    );
}

#[test]
fn group_empty_and_unset_are_core() {
    let policy = "rules:\n- level: Metadata\n  resources: [{group: \"\", resources: [pods]}]\n- level: Request\n  resources: [{resources: [deployments]}]\n- level: RequestResponse\n  resources: [{}]\n";
    check(
        policy,
        &[
            ("a||get|core:pods@n/p", Some(0)),
            ("a||get|apps:pods@n/p", None),
            ("a||get|core:deployments@n/d", Some(1)),
            ("a||get|apps:deployments@n/d", None),
            // `{}`: every core-group resource and subresource.
            ("a||get|core:secrets@n/s", Some(2)),
            ("a||get|core:pods/log@n/p", Some(2)),
            ("a||get|rbac.authorization.k8s.io:roles@n/r", None),
        ],
    );
}

#[test]
fn group_star_matches_every_group() {
    check(
        "rules:\n- level: Metadata\n  resources: [{group: \"*\", resources: [widgets]}]\n",
        &[
            ("a||get|example.com:widgets@n/w", Some(0)),
            ("a||get|core:widgets@n/w", Some(0)),
            ("a||get|/x", None),
        ],
    );
}

#[test]
fn subresource_patterns() {
    let policy = "rules:\n- level: None\n  resources: [{resources: [pods]}]\n- level: Metadata\n  resources: [{resources: [\"pods/log\"]}]\n- level: Request\n  resources: [{resources: [\"*/scale\"]}, {group: apps, resources: [\"*/scale\"]}]\n- level: RequestResponse\n  resources: [{resources: [\"nodes/*\"]}]\n- level: Metadata\n  resources: [{group: apps, resources: [\"*\"]}]\n";
    check(
        policy,
        &[
            // `pods` is only the resource itself.
            ("a||get|core:pods@n/p", Some(0)),
            ("a||get|core:pods/log@n/p", Some(1)),
            ("a||get|core:pods/exec@n/p", None),
            // `*/scale`: every resource's scale subresource in that group, never a bare resource.
            ("a||get|core:replicationcontrollers/scale@n/r", Some(2)),
            ("a||get|apps:deployments/scale@n/d", Some(2)),
            ("a||get|core:scale@n/x", None),
            // `nodes/*` also matches the bare resource.
            ("a||get|core:nodes@-/n1", Some(3)),
            ("a||get|core:nodes/status@-/n1", Some(3)),
            ("a||get|core:nodesx@-/n1", None),
            // `*`: any resource and subresource of the group.
            ("a||get|apps:deployments@n/d", Some(4)),
            ("a||get|apps:deployments/status@n/d", Some(4)),
        ],
    );
}

#[test]
fn odd_resource_patterns_are_literal() {
    let policy = "rules:\n- level: Metadata\n  resources: [{resources: [\"*/*\", \"po*\", \"Pods\"]}]\n";
    check(
        policy,
        &[
            ("a||get|core:pods@n/p", None),
            ("a||get|core:pods/log@n/p", None),
            ("a||get|core:po*@n/p", Some(0)),
        ],
    );
}

#[test]
fn resource_names_restrict_every_pattern_of_the_entry() {
    let policy = "rules:\n- level: Metadata\n  resources: [{resources: [configmaps, \"*/status\", \"*\"], resourceNames: [cfg]}]\n- level: Request\n  resources: [{resources: [secrets]}, {resources: [pods], resourceNames: [p1]}]\n";
    check(
        policy,
        &[
            ("a||get|core:configmaps@n/cfg", Some(0)),
            ("a||get|core:configmaps@n/other", None),
            ("a||get|core:pods/status@n/cfg", Some(0)),
            // List and create have no name: an entry with resourceNames cannot match them.
            ("a||list|core:configmaps@n/", None),
            ("a||create|core:configmaps@n/", None),
            ("a||get|core:secrets@n/s", Some(1)),
            ("a||get|core:pods@n/p1", Some(1)),
            ("a||get|core:pods@n/p2", None),
        ],
    );
}

#[test]
fn namespaces_and_the_empty_namespace() {
    let policy = "rules:\n- level: None\n  namespaces: [kube-system]\n- level: Metadata\n  namespaces: [\"\"]\n- level: Request\n  namespaces: [team-a]\n  resources: [{resources: [pods]}]\n";
    check(
        policy,
        &[
            ("a||get|core:pods@kube-system/p", Some(0)),
            ("a||get|core:nodes@-/n1", Some(1)),
            ("a||list|core:pods@-/", Some(1)),
            ("a||list|core:namespaces@-/", Some(1)),
            // The Namespace object itself has its own name as namespace attribute.
            ("a||get|core:namespaces@foo/foo", None),
            ("a||get|core:pods@team-a/p", Some(2)),
            ("a||get|core:secrets@team-a/s", None),
            // A namespace-only rule never matches a non-resource request.
            ("a||get|/healthz", None),
        ],
    );
}

#[test]
fn resource_rules_skip_non_resource_urls_and_the_reverse() {
    let policy = "rules:\n- level: None\n  resources: [{group: \"*\"}]\n- level: Metadata\n  nonResourceURLs: [\"*\"]\n";
    check(
        policy,
        &[("a||get|/healthz", Some(1)), ("a||get|core:pods@n/p", Some(0))],
    );
    let policy = "rules:\n- level: None\n  nonResourceURLs: [\"/api*\"]\n- level: Metadata\n";
    check(
        policy,
        &[
            ("a||get|core:pods@n/p", Some(1)),
            ("a||get|/apis/apps/v1", Some(0)),
        ],
    );
}

#[test]
fn non_resource_url_prefixes_are_raw_string_prefixes() {
    let policy = "rules:\n- level: None\n  nonResourceURLs: [\"/healthz*\", /version, \"/logs/*\"]\n";
    check(
        policy,
        &[
            ("a||get|/healthz", Some(0)),
            ("a||get|/healthz/etcd", Some(0)),
            ("a||get|/healthzz", Some(0)),
            ("a||get|/version", Some(0)),
            ("a||get|/version/", None),
            ("a||get|/logs/", Some(0)),
            ("a||get|/logs", None),
            ("a||get|/livez", None),
        ],
    );
    check(
        "rules:\n- level: None\n  nonResourceURLs: [\"/*\"]\n",
        &[("a||get|/", Some(0)), ("a||get|/x/y", Some(0))],
    );
}

#[test]
fn catch_all_rule_matches_everything_and_no_user() {
    check(
        "rules:\n- level: Metadata\n",
        &[("!||get|/healthz", Some(0)), ("a||delete|core:pods@n/p", Some(0))],
    );
}

/// One decision check: the level, the effective omitStages and omitManagedFields.
fn check_decision(policy_yaml: &str, spec: &str, level: Level, stages: &[Stage], managed: bool) {
    let text = format!("apiVersion: audit.k8s.io/v1\nkind: Policy\n{policy_yaml}");
    let policy = load(&text).unwrap_or_else(|e| panic!("{e}")).policy;
    let decision = policy.evaluate(&request(spec));
    assert_eq!(decision.level, level, "{spec}");
    assert_eq!(
        decision.omit_stages,
        stages.iter().copied().collect::<StageSet>(),
        "{spec}"
    );
    assert_eq!(decision.omit_managed_fields, managed, "{spec}");
}

#[test]
fn omit_stages_are_the_union() {
    let policy = "omitStages: [RequestReceived]\nrules:\n- level: Request\n  verbs: [create]\n  omitStages: [ResponseStarted, RequestReceived]\n- level: Metadata\n  verbs: [get]\n- level: None\n  verbs: [list]\n  omitStages: [Panic]\n";
    check_decision(
        policy,
        "a||create|core:pods@n/",
        Level::Request,
        &[Stage::RequestReceived, Stage::ResponseStarted],
        false,
    );
    check_decision(
        policy,
        "a||get|core:pods@n/p",
        Level::Metadata,
        &[Stage::RequestReceived],
        false,
    );
    check_decision(
        policy,
        "a||list|core:pods@n/",
        Level::None,
        &[Stage::RequestReceived, Stage::Panic],
        false,
    );
    // No rule: the policy's stages and level None.
    check_decision(
        policy,
        "a||delete|core:pods@n/p",
        Level::None,
        &[Stage::RequestReceived],
        false,
    );
}

#[test]
fn omit_managed_fields_precedence() {
    let policy = "omitManagedFields: true\nrules:\n- level: Request\n  verbs: [create]\n  omitManagedFields: false\n- level: Request\n  verbs: [update]\n- level: Request\n  verbs: [patch]\n  omitManagedFields: true\n";
    check_decision(policy, "a||create|core:pods@n/", Level::Request, &[], false);
    check_decision(policy, "a||update|core:pods@n/p", Level::Request, &[], true);
    check_decision(policy, "a||patch|core:pods@n/p", Level::Request, &[], true);
    check_decision(policy, "a||get|core:pods@n/p", Level::None, &[], true);
    let policy = "rules:\n- level: Request\n  verbs: [create]\n  omitManagedFields: true\n- level: Request\n";
    check_decision(policy, "a||create|core:pods@n/", Level::Request, &[], true);
    check_decision(policy, "a||update|core:pods@n/p", Level::Request, &[], false);
}

#[test]
fn pattern_helpers() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("pods", "pods", "", true),
        ("pods", "pods", "log", false),
        ("pods/log", "pods", "log", true),
        ("pods/log", "pods", "", false),
        ("pods/*", "pods", "", true),
        ("pods/*", "pods", "exec", true),
        ("*/exec", "pods", "exec", true),
        ("*/exec", "pods", "", false),
        ("*", "anything", "sub", true),
        ("pods/lo", "pods", "log", false),
    ];
    for (pattern, resource, sub, expected) in cases {
        assert_eq!(
            resource_matches(pattern, resource, sub),
            *expected,
            "{pattern} vs {resource}/{sub}"
        );
    }
    assert!(url_matches("/a**", "/a"));
    assert!(!url_matches("/a", "/a/"));
}
