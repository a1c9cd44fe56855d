//! End-to-end checks on a real kube-apiserver v1.26.1 capture (shared/samples): the policy
//! that was in force, evaluated on the attributes recovered from each recorded event, must
//! give the level the apiserver recorded, and must not omit the stage it wrote.

use std::fs;
use std::path::{Path, PathBuf};

use kaudit_model::{Stage, read_input};
use kaudit_policy::{apply_decision, load, request_attributes};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

/// The capture directory, or `None` (with a notice) when shared/ is absent outside CI.
fn capture() -> Option<PathBuf> {
    let dir = Path::new(SHARED).join("samples/kube-apiserver-1.26");
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "CI=true but {} is missing",
        dir.display()
    );
    eprintln!(
        "notice: {} not found; skipping the real-capture test",
        dir.display()
    );
    None
}

/// The log files in name order (backups, then audit.log), as the README says to read them.
fn log_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut paths: Vec<PathBuf> = fs::read_dir(dir.join("log"))
        .expect("log dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap_or_default().to_string_lossy().into_owned(),
                fs::read(&p).expect("log file"),
            )
        })
        .collect()
}

#[test]
fn policy_in_force_reproduces_every_recorded_level() {
    let Some(dir) = capture() else { return };
    let text = fs::read_to_string(dir.join("config/audit-policy.yaml")).expect("policy");
    let loaded = load(&text).expect("the policy in force loads");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let policy = loaded.policy;
    let mut events = 0;
    let mut per_rule = vec![0usize; policy.rules.len()];
    let mut mismatches = Vec::new();
    let mut skips = Vec::new();
    for (name, bytes) in log_files(&dir) {
        read_input(
            &bytes,
            |located| {
                events += 1;
                let event = &located.event;
                let decision = policy.evaluate(&request_attributes(event));
                let recorded = event.level.as_deref().unwrap_or("");
                let stage: Option<Stage> = event.stage.as_deref().and_then(|s| s.parse().ok());
                let emitted = stage.is_some_and(|s| decision.emits(s));
                if decision.level.as_str() != recorded || !emitted {
                    mismatches.push(format!(
                        "{name} {}: recorded {recorded} at {:?}, evaluated {:?} (rule {:?}) for {}",
                        located.position,
                        stage,
                        decision.level,
                        decision.rule,
                        event.request_uri.as_deref().unwrap_or("")
                    ));
                }
                if let Some(rule) = decision.rule {
                    per_rule[rule] += 1;
                }
                // Applying the decision the event was recorded under changes nothing.
                if decision.level.as_str() == recorded && emitted {
                    let again = apply_decision(event.raw(), &decision);
                    if again.as_deref() != Some(event.raw()) {
                        mismatches.push(format!(
                            "{name} {}: applying its own decision changed it",
                            located.position
                        ));
                    }
                }
            },
            |skip| skips.push(format!("{name}: skipped {skip}")),
        );
    }
    assert!(skips.is_empty(), "{skips:?}");
    assert_eq!(events, 5098, "the README's event count");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    // Rules 1 and 2 are level None: the capture cannot contain their events.
    assert_eq!(per_rule[0], 0);
    assert_eq!(per_rule[1], 0);
    assert!(
        per_rule.iter().skip(2).all(|&n| n > 0),
        "every logging rule is used: {per_rule:?}"
    );
}

/// Removes `metadata.managedFields` from an object, every `items[]` and every
/// `rows[].object` of a parsed body, for comparison.
fn without_managed_fields(value: &mut serde_json::Value) {
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("managedFields");
    }
    if let Some(items) = value.get_mut("items").and_then(|i| i.as_array_mut()) {
        items.iter_mut().for_each(without_managed_fields);
    }
    if value.get("kind").and_then(|k| k.as_str()) == Some("Table")
        && let Some(rows) = value.get_mut("rows").and_then(|r| r.as_array_mut())
    {
        for row in rows {
            if let Some(object) = row.get_mut("object") {
                without_managed_fields(object);
            }
        }
    }
}

#[test]
fn applying_lower_levels_and_managed_fields_to_the_capture() {
    let Some(dir) = capture() else { return };
    let mut stripped_bodies = 0;
    let mut managed_fields_removed = 0;
    for (name, bytes) in log_files(&dir) {
        read_input(
            &bytes,
            |located| {
                let event = &located.event;
                let raw = event.raw();
                let original: serde_json::Value = serde_json::from_str(raw).expect("event is JSON");
                // Metadata: both bodies go, `level` becomes Metadata, nothing else changes.
                let metadata = kaudit_policy::Decision {
                    level: kaudit_model::Level::Metadata,
                    omit_stages: kaudit_policy::StageSet::EMPTY,
                    omit_managed_fields: false,
                    rule: None,
                };
                let applied = apply_decision(raw, &metadata).expect("kept");
                let mut expected = original.clone();
                let object = expected.as_object_mut().expect("object");
                if object.remove("requestObject").is_some() | object.remove("responseObject").is_some() {
                    stripped_bodies += 1;
                }
                object.insert("level".into(), "Metadata".into());
                let got: serde_json::Value = serde_json::from_str(&applied).expect("applied event is JSON");
                assert_eq!(got, expected, "{name} {}", located.position);
                // Same level with omitManagedFields: only managedFields go (patch bodies kept).
                let level = event
                    .level
                    .as_deref()
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(kaudit_model::Level::Metadata);
                let strip = kaudit_policy::Decision {
                    level,
                    omit_managed_fields: true,
                    ..metadata
                };
                let applied = apply_decision(raw, &strip).expect("kept");
                let mut expected = original.clone();
                let patch = event.verb.as_deref() == Some("patch");
                for key in ["requestObject", "responseObject"] {
                    if key == "requestObject" && patch {
                        continue;
                    }
                    if let Some(body) = expected.get_mut(key) {
                        without_managed_fields(body);
                    }
                }
                if applied.len() < raw.len() {
                    managed_fields_removed += 1;
                }
                let got: serde_json::Value = serde_json::from_str(&applied).expect("applied event is JSON");
                assert_eq!(got, expected, "{name} {}", located.position);
            },
            |_| {},
        );
    }
    assert!(stripped_bodies > 500, "{stripped_bodies}");
    assert!(managed_fields_removed > 100, "{managed_fields_removed}");
}
