//! Policy fixtures: every file under `tests/fixtures/invalid` must be refused and every
//! file under `tests/fixtures/valid` must load, each with exactly the diagnostics (severity,
//! line:column, message text) listed in the `.expected` file beside it.

use std::fs;
use std::path::Path;

use kaudit_policy::{Diagnostic, load};

/// One expected line: `error|warning LINE:COL MESSAGE-PREFIX` or `rules N`.
fn check(dir: &str, valid: bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut seen = 0;
    let mut entries: Vec<_> = fs::read_dir(&root)
        .expect("fixture dir")
        .filter_map(Result::ok)
        .collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "expected") {
            continue;
        }
        seen += 1;
        let text = fs::read_to_string(&path).expect("fixture text");
        let expected = fs::read_to_string(path.with_extension("expected"))
            .unwrap_or_else(|_| panic!("{} has no .expected file", path.display()));
        let (diagnostics, rules): (Vec<Diagnostic>, Option<usize>) = match load(&text) {
            Ok(loaded) => (loaded.warnings, Some(loaded.policy.rules.len())),
            Err(err) => (err.diagnostics(), None),
        };
        assert_eq!(rules.is_some(), valid, "{}: {diagnostics:#?}", path.display());
        let mut wanted: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
        if let Some(n) = rules {
            let line = wanted
                .iter()
                .position(|l| l.starts_with("rules "))
                .expect("valid fixtures state `rules N`");
            assert_eq!(wanted.remove(line), format!("rules {n}"), "{}", path.display());
        }
        let got: Vec<String> = diagnostics
            .iter()
            .map(|d| format!("{} {} {}", d.severity, d.span, d.message))
            .collect();
        assert_eq!(
            got.len(),
            wanted.len(),
            "{}:\n got {got:#?}\n want {wanted:#?}",
            path.display()
        );
        for (g, w) in got.iter().zip(&wanted) {
            assert!(g.starts_with(w), "{}:\n got  {g}\n want {w}...", path.display());
        }
    }
    assert!(seen > 5, "fixtures found in {}", root.display());
}

#[test]
fn invalid_policies_are_refused_with_their_place() {
    check("invalid", false);
}

#[test]
fn valid_policies_load_with_their_warnings() {
    check("valid", true);
}
