//! The field catalogue against Falco's own listings: every field of
//! `shared/conformance/falco-k8saudit/fields.json` and every field Falco 0.44.1 lists for the
//! `k8s_audit` source (`falco-fields-k8s_audit.json`) exists in kaudit with the same list flag
//! and argument rules, and kaudit has no field Falco does not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kaudit_rules::fields::{ArgSpec, ValueKind, catalogue, lookup, resolve};
use serde_json::Value;

/// What a listing says about one field.
#[derive(Debug, PartialEq)]
struct Listed {
    list: bool,
    arg: ArgSpec,
    numeric: bool,
}

/// `shared/conformance/falco-k8saudit`, or `None` (with a notice) when it is absent outside CI.
fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/falco-k8saudit"
    ));
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "conformance corpus missing at {}",
        dir.display()
    );
    eprintln!("skipping: conformance corpus not found at {}", dir.display());
    None
}

fn read_json(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `fields.json`: `arg` is `none`, `index (optional)` or `key (required)`.
fn research_listing(dir: &Path) -> BTreeMap<String, Listed> {
    let doc = read_json(dir, "fields.json");
    let fields = doc["fields"].as_array().expect("fields.json has a fields array");
    fields
        .iter()
        .map(|f| {
            let name = f["name"].as_str().expect("field name").to_owned();
            let arg = match f["arg"].as_str() {
                Some("none") => ArgSpec::None,
                Some("index (optional)") => ArgSpec::OptionalIndex,
                Some("key (required)") => ArgSpec::RequiredKey,
                other => panic!("{name}: unexpected arg {other:?}"),
            };
            let list = f["is_list"].as_bool().expect("is_list");
            (
                name,
                Listed {
                    list,
                    arg,
                    numeric: false,
                },
            )
        })
        .collect()
}

/// `falco --list=k8s_audit --format json`: `argument` is null or `{required, type: [KEY|INDEX]}`.
fn falco_listing(dir: &Path) -> BTreeMap<String, Listed> {
    let doc = read_json(dir, "falco-fields-k8s_audit.json");
    let mut out = BTreeMap::new();
    for class in doc["fieldclasses"].as_array().expect("fieldclasses array") {
        let sources = class["event_sources"].as_array().expect("event_sources");
        if !sources.iter().any(|s| s == "k8s_audit") {
            continue;
        }
        for f in class["fields"].as_array().expect("fields array") {
            let name = f["name"].as_str().expect("field name").to_owned();
            let arg = match &f["argument"] {
                Value::Null => ArgSpec::None,
                a => {
                    let kinds = a["type"].as_array().expect("argument type");
                    match (a["required"].as_bool(), kinds.first().and_then(Value::as_str)) {
                        (Some(false), Some("INDEX")) => ArgSpec::OptionalIndex,
                        (Some(true), Some("KEY")) => ArgSpec::RequiredKey,
                        other => panic!("{name}: unexpected argument {other:?}"),
                    }
                }
            };
            let numeric = matches!(f["type"].as_str(), Some("UINT64" | "ABSTIME" | "RELTIME"));
            let list = f["is_list"].as_bool().expect("is_list");
            out.insert(name, Listed { list, arg, numeric });
        }
    }
    out
}

fn kaudit_listing() -> BTreeMap<String, Listed> {
    catalogue()
        .iter()
        .map(|f| {
            let listed = Listed {
                list: f.list,
                arg: f.arg,
                numeric: f.kind == ValueKind::Number,
            };
            (f.name.to_owned(), listed)
        })
        .collect()
}

/// Every field of `expected` is in kaudit's catalogue with the same properties.
fn check_covers(source: &str, expected: &BTreeMap<String, Listed>, compare_numeric: bool) {
    let ours = kaudit_listing();
    for (name, want) in expected {
        let got = ours
            .get(name)
            .unwrap_or_else(|| panic!("{source}: field {name} missing from the catalogue"));
        assert_eq!((got.list, got.arg), (want.list, want.arg), "{source}: {name}");
        if compare_numeric {
            assert_eq!(got.numeric, want.numeric, "{source}: {name} numeric type");
        }
        let info = lookup(name).unwrap_or_else(|| panic!("lookup({name})"));
        assert_eq!(info.name, name);
    }
}

#[test]
fn covers_the_research_field_table() {
    let Some(dir) = corpus_dir() else { return };
    let listed = research_listing(&dir);
    assert_eq!(listed.len(), 106);
    check_covers("fields.json", &listed, false);
}

#[test]
fn matches_falcos_own_listing_exactly() {
    let Some(dir) = corpus_dir() else { return };
    let listed = falco_listing(&dir);
    check_covers("falco-fields-k8s_audit.json", &listed, true);
    let extra: Vec<&str> = catalogue()
        .iter()
        .map(|f| f.name)
        .filter(|n| !listed.contains_key(*n))
        .collect();
    assert!(
        extra.is_empty(),
        "fields Falco does not list for k8s_audit: {extra:?}"
    );
    assert_eq!(catalogue().len(), listed.len());
}

#[test]
fn catalogue_is_well_formed() {
    let mut seen = std::collections::BTreeSet::new();
    for f in catalogue() {
        assert!(seen.insert(f.name), "duplicate field {}", f.name);
        assert!(!f.desc.is_empty(), "{} has no description", f.name);
        // Each field resolves with the argument its spec calls for, and refuses the others.
        match f.arg {
            ArgSpec::None => {
                assert!(resolve(f.name, None).is_ok(), "{}", f.name);
                assert!(resolve(f.name, Some("x")).is_err(), "{}", f.name);
            }
            ArgSpec::OptionalIndex => {
                assert!(resolve(f.name, None).is_ok(), "{}", f.name);
                assert!(resolve(f.name, Some("2")).is_ok(), "{}", f.name);
                assert!(resolve(f.name, Some("02")).is_err(), "{}", f.name);
            }
            ArgSpec::RequiredKey => {
                assert!(resolve(f.name, None).is_err(), "{}", f.name);
                assert!(resolve(f.name, Some("any text")).is_ok(), "{}", f.name);
            }
        }
    }
}
