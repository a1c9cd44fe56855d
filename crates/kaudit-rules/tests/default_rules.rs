//! The default rule pack (`rules/kaudit_rules.yaml`): it loads cleanly, every rule is
//! described and tagged by the pack's scheme, the pack is ordered by severity, and every rule
//! fires on the events of `rules/tests/fires/<rule>.jsonl` (as the first match, so the order
//! is pinned too) and stays quiet on the near misses of `rules/tests/quiet/<rule>.jsonl`.

use std::path::{Path, PathBuf};

use kaudit_model::Priority;
use kaudit_rules::default_rules::{DEFAULT_RULES, DEFAULT_RULES_FILE};
use kaudit_rules::{Detector, Matching, RuleSource, load};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rules/tests");

/// MITRE ATT&CK tactics, as the pack's `mitre_*` tags spell them.
const TACTICS: &[&str] = &[
    "mitre_initial_access",
    "mitre_execution",
    "mitre_persistence",
    "mitre_privilege_escalation",
    "mitre_defense_evasion",
    "mitre_credential_access",
    "mitre_discovery",
    "mitre_lateral_movement",
    "mitre_command_and_control",
    "mitre_impact",
];

/// The area tags of the pack: exactly one per rule.
const AREAS: &[&str] = &[
    "k8s_workload",
    "k8s_rbac",
    "k8s_identity",
    "k8s_access",
    "k8s_secrets",
    "k8s_admission",
    "k8s_discovery",
    "k8s_activity",
];

/// Rules about requests without an authenticated user: their output has no `user=`.
const ANONYMOUS_RULES: &[&str] = &[
    "Anonymous Request Allowed",
    "Anonymous Request Denied",
    "Authentication Failed",
];

fn detector(matching: Matching) -> Detector {
    let loaded = load(&[RuleSource::new(DEFAULT_RULES_FILE, DEFAULT_RULES)])
        .unwrap_or_else(|e| panic!("the default rules do not load:\n{e}"));
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert!(
        warnings.is_empty(),
        "the default rules load with warnings:\n{}",
        warnings.join("\n")
    );
    Detector::new(loaded.ruleset, matching)
}

/// File name of a rule's fixtures: lower case, runs of other characters as `_`.
fn slug(rule: &str) -> String {
    let mut out = String::new();
    for c in rule.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_owned()
}

/// The names of the rules matching each event of a JSON lines fixture, in file order.
fn matches_per_event(detector: &Detector, path: &Path) -> Vec<(usize, Vec<String>)> {
    let input = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    let mut skips = Vec::new();
    let mut n = 0;
    kaudit_model::read_input(
        &input,
        |event| {
            n += 1;
            let names = detector
                .matches(&event, n)
                .into_iter()
                .map(|i| detector.rules().rules()[i].name.clone())
                .collect();
            out.push((event.position.line, names));
        },
        |skip| skips.push(skip.to_string()),
    );
    assert!(
        skips.is_empty(),
        "{}: lines that are not audit events: {skips:?}",
        path.display()
    );
    assert!(!out.is_empty(), "{}: no events", path.display());
    out
}

/// Every event of `fires/<rule>.jsonl` raises `rule` first, and every event of
/// `quiet/<rule>.jsonl` leaves it silent even when all matching rules are reported.
fn check_rule_fixtures(first: &Detector, all: &Detector, rule: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let fires = PathBuf::from(FIXTURES)
        .join("fires")
        .join(format!("{}.jsonl", slug(rule)));
    for (line, names) in matches_per_event(first, &fires) {
        if names.first().map(String::as_str) != Some(rule) {
            failures.push(format!(
                "{}:{line}: expected '{rule}' first, got {names:?}",
                fires.display()
            ));
        }
    }
    let quiet = PathBuf::from(FIXTURES)
        .join("quiet")
        .join(format!("{}.jsonl", slug(rule)));
    for (line, names) in matches_per_event(all, &quiet) {
        if names.iter().any(|n| n == rule) {
            failures.push(format!(
                "{}:{line}: '{rule}' must not fire, got {names:?}",
                quiet.display()
            ));
        }
    }
    failures
}

#[test]
fn every_rule_fires_on_its_fixtures_and_not_on_its_near_misses() {
    let first = detector(Matching::First);
    let all = detector(Matching::All);
    let failures: Vec<String> = first
        .rules()
        .rules()
        .iter()
        .flat_map(|r| check_rule_fixtures(&first, &all, &r.name))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_fixture_file_belongs_to_a_rule() {
    let first = detector(Matching::First);
    let slugs: Vec<String> = first.rules().rules().iter().map(|r| slug(&r.name)).collect();
    for dir in ["fires", "quiet"] {
        let path = PathBuf::from(FIXTURES).join(dir);
        for entry in std::fs::read_dir(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            let name = entry
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = name.strip_suffix(".jsonl").unwrap_or(&name);
            assert!(
                slugs.iter().any(|s| s == stem),
                "{dir}/{name} matches no rule of the default pack"
            );
        }
    }
}

/// A rule's metadata follows the pack's conventions; returns what is wrong with it.
fn check_rule_metadata(rule: &kaudit_rules::RuleInfo) -> Vec<String> {
    let mut problems = Vec::new();
    let has = |tag: &str| rule.tags.iter().any(|t| t == tag);
    if rule.source != "k8s_audit" {
        problems.push(format!("source {}", rule.source));
    }
    if !rule.enabled {
        problems.push("disabled".into());
    }
    if rule.desc.split_whitespace().count() < 15 {
        problems.push("description too short to state what it detects and its trade-offs".into());
    }
    if !has("k8s") {
        problems.push("no k8s tag".into());
    }
    let areas = AREAS.iter().filter(|a| has(a)).count();
    if areas != 1 {
        problems.push(format!("{areas} area tags, expected one of {AREAS:?}"));
    }
    if !TACTICS.iter().any(|t| has(t)) {
        problems.push("no mitre_<tactic> tag".into());
    }
    for tag in &rule.tags {
        if tag.starts_with("mitre_") && !TACTICS.contains(&tag.as_str()) {
            problems.push(format!("unknown tactic tag {tag}"));
        }
    }
    let is_technique = |t: &str| {
        t.strip_prefix('T').is_some_and(|id| {
            let (main, sub) = id.split_once('.').unwrap_or((id, "000"));
            main.len() == 4 && sub.len() == 3 && main.bytes().chain(sub.bytes()).all(|b| b.is_ascii_digit())
        })
    };
    if !rule.tags.iter().any(|t| is_technique(t)) {
        problems.push("no ATT&CK technique tag (T1234 or T1234.001)".into());
    }
    for field in [
        "%ka.user.name",
        "%ka.response.code",
        "%jevt.value[/sourceIPs]",
        "%ka.useragent",
    ] {
        let anonymous = ANONYMOUS_RULES.contains(&rule.name.as_str());
        let exempt = anonymous && field == "%ka.user.name";
        if !exempt && !rule.output.contains(field) {
            problems.push(format!("output lacks {field}"));
        }
    }
    problems
        .into_iter()
        .map(|p| format!("{}: {p}", rule.name))
        .collect()
}

#[test]
fn every_rule_is_described_and_tagged() {
    let first = detector(Matching::First);
    let problems: Vec<String> = first
        .rules()
        .rules()
        .iter()
        .flat_map(check_rule_metadata)
        .collect();
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn rules_are_ordered_from_most_to_least_severe() {
    let first = detector(Matching::First);
    let rules = first.rules().rules();
    for pair in rules.windows(2) {
        assert!(
            pair[0].priority.at_least(pair[1].priority),
            "'{}' ({:?}) comes before the more severe '{}' ({:?})",
            pair[0].name,
            pair[0].priority,
            pair[1].name,
            pair[1].priority
        );
    }
    assert_eq!(rules.first().map(|r| r.priority), Some(Priority::Critical));
}
