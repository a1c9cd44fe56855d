//! Conformance with Falco 0.44.1 on the falco-k8saudit corpus
//! (`shared/conformance/falco-k8saudit/cases.json`, read at run time, never copied): for each
//! case, load its rules files in order, read its trace, evaluate every event with the case's
//! options, and compare with the upstream assertions and the `derived` detections (rule and
//! priority per event under first-match, counts under first and all matching, rendered
//! outputs of the head suite).
//!
//! Every case runs; the failures are collected and printed, one per case with its
//! difference, and the test passes only when there are none.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use kaudit_model::{Priority, read_input};
use kaudit_rules::fields::EventCtx;
use kaudit_rules::{Matching, RuleSet, RuleSource, Selection, load};
use serde_json::Value;

fn corpus_dir() -> Option<PathBuf> {
    let dir = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/conformance/falco-k8saudit"
    ));
    if dir.join("cases.json").is_file() {
        return Some(dir.to_path_buf());
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the conformance corpus is missing at {}", dir.display());
    }
    eprintln!(
        "notice: conformance corpus not found at {}; skipping",
        dir.display()
    );
    None
}

/// The corpus' spelling of a priority.
fn corpus_priority(p: Priority) -> &'static str {
    match p {
        Priority::Emergency => "EMERGENCY",
        Priority::Alert => "ALERT",
        Priority::Critical => "CRITICAL",
        Priority::Error => "ERROR",
        Priority::Warning => "WARNING",
        Priority::Notice => "NOTICE",
        Priority::Informational => "INFO",
        Priority::Debug => "DEBUG",
    }
}

/// One detection under first-match.
#[derive(Debug, PartialEq)]
struct Detection {
    event: u64,
    rule: String,
    priority: &'static str,
    output: String,
}

/// What running a case produced.
struct Run {
    events: u64,
    first: Vec<Detection>,
    all_counts: BTreeMap<String, u64>,
    collector_log: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn counts(v: &Value) -> BTreeMap<String, u64> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                .collect()
        })
        .unwrap_or_default()
}

fn sources(dir: &Path, files: &[String]) -> Result<Vec<RuleSource>, String> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(dir.join(f)).map_err(|e| format!("cannot read {f}: {e}"))?;
        out.push(RuleSource::new(f.clone(), text));
    }
    Ok(out)
}

fn selections(options: &Value) -> Vec<Selection> {
    let mut out = Vec::new();
    for r in strings(&options["disabled_rules"]) {
        out.push(Selection::DisableRule(r));
    }
    let enabled_tags = strings(&options["enabled_tags"]);
    if !enabled_tags.is_empty() {
        out.push(Selection::DisableRule("*".into()));
        out.extend(enabled_tags.into_iter().map(Selection::EnableTag));
    }
    out.extend(
        strings(&options["disabled_tags"])
            .into_iter()
            .map(Selection::DisableTag),
    );
    out
}

fn run(rules: &RuleSet, trace: &[u8]) -> Run {
    let mut run = Run {
        events: 0,
        first: Vec::new(),
        all_counts: BTreeMap::new(),
        collector_log: Vec::new(),
    };
    let mut matched = Vec::new();
    read_input(
        trace,
        |located| {
            run.events += 1;
            let ctx = EventCtx::new(&located, run.events);
            rules.evaluate(&ctx, Matching::First, &mut matched);
            if let Some(&i) = matched.first()
                && let Some(alert) = rules.alert(i, &ctx)
            {
                run.first.push(Detection {
                    event: run.events,
                    rule: alert.rule,
                    priority: corpus_priority(alert.priority),
                    output: alert.message,
                });
            }
            rules.evaluate(&ctx, Matching::All, &mut matched);
            for &i in &matched {
                *run.all_counts.entry(rules.rules()[i].name.clone()).or_default() += 1;
            }
        },
        |skip| run.collector_log.push(skip.reason.to_string()),
    );
    run
}

/// Rule sets already loaded, by rules file list: most cases share their files, and loading
/// `falco_rules-1.0.1.yaml` dominates the run time of an unoptimized test build.
type LoadCache = HashMap<Vec<String>, Result<RuleSet, String>>;

/// Runs one case; `Err` describes every difference found.
fn check_case(dir: &Path, case: &Value, cache: &mut LoadCache) -> Result<(), String> {
    let name = case["name"].as_str().unwrap_or("?");
    let files = strings(&case["rules_files"]);
    if name.starts_with("falco-py/compat_engine_v4_") {
        // These use `contains` on a list field: current Falco refuses them, and so must we,
        // saying which operators list fields take.
        return match load(&sources(dir, &files)?) {
            Ok(_) => Err("loaded, but rules using contains on a list field must be refused".into()),
            Err(e) if e.message.contains("exists, in, intersects") => Ok(()),
            Err(e) => Err(format!("refused with an unexpected error: {e}")),
        };
    }
    let options = &case["options"];
    let selections = selections(options);
    let min_priority: Priority = match options["min_priority"].as_str() {
        Some(p) => p.parse().map_err(|e| format!("bad min_priority: {e}"))?,
        None => Priority::Debug,
    };
    let mut fresh = None;
    let rules = if selections.is_empty() && min_priority == Priority::Debug {
        if !cache.contains_key(&files) {
            let loaded = load(&sources(dir, &files)?)
                .map(|l| l.ruleset)
                .map_err(|e| format!("load failed: {e}"));
            cache.insert(files.clone(), loaded);
        }
        cache
            .get(&files)
            .ok_or("cache lost an entry")?
            .as_ref()
            .map_err(Clone::clone)?
    } else {
        let mut rules = load(&sources(dir, &files)?)
            .map_err(|e| format!("load failed: {e}"))?
            .ruleset;
        rules.select(&selections);
        rules.set_min_priority(min_priority);
        fresh.insert(rules)
    };
    let trace_path = case["trace"].as_str().unwrap_or("");
    let trace = std::fs::read(dir.join(trace_path)).map_err(|e| format!("cannot read {trace_path}: {e}"))?;
    let run = run(rules, &trace);

    let mut diffs = Vec::new();
    let mut first_counts: BTreeMap<String, u64> = BTreeMap::new();
    for d in &run.first {
        *first_counts.entry(d.rule.clone()).or_default() += 1;
    }
    let derived = &case["derived"];
    if let Some(n) = derived["events_in_trace"].as_u64()
        && n != run.events
    {
        diffs.push(format!("events read: expected {n}, got {}", run.events));
    }
    let expected_first = counts(&derived["first_match"]);
    if expected_first != first_counts {
        diffs.push(format!(
            "first_match: expected {expected_first:?}, got {first_counts:?}"
        ));
    }
    let expected_all = counts(&derived["all_match"]);
    if expected_all != run.all_counts {
        diffs.push(format!(
            "all_match: expected {expected_all:?}, got {:?}",
            run.all_counts
        ));
    }
    let per_event = derived["first_match_per_event"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for (i, want) in per_event.iter().enumerate() {
        let got = run.first.get(i);
        let event = want["event"].as_u64().unwrap_or(0);
        let rule = want["rule"].as_str().unwrap_or("");
        let priority = want["priority"].as_str().unwrap_or("");
        match got {
            Some(d) if d.event == event && d.rule == rule && d.priority == priority => {
                if let Some(out) = want["output"].as_str()
                    && out != d.output
                {
                    diffs.push(format!(
                        "event {event} output:\n      expected {out:?}\n      got      {:?}",
                        d.output
                    ));
                }
            }
            _ => diffs.push(format!(
                "detection {i}: expected event {event} {rule} {priority}, got {got:?}"
            )),
        }
    }
    if run.first.len() > per_event.len() {
        diffs.push(format!(
            "unexpected detections: {:?}",
            &run.first[per_event.len()..]
        ));
    }
    for (rule, n) in counts(&case["expect"]) {
        let got = first_counts.get(&rule).copied().unwrap_or(0);
        if got != n {
            diffs.push(format!("expect {rule}: {n}, got {got}"));
        }
    }
    if case["expect_none"].as_bool() == Some(true) && !run.first.is_empty() {
        diffs.push(format!("expect_none, got {} detections", run.first.len()));
    }
    if case["expect_any_detection"].as_bool() == Some(true) && run.first.is_empty() {
        diffs.push("expected a detection, got none".into());
    }
    for p in strings(&case["no_detections_at_priority"]) {
        if run.first.iter().any(|d| d.priority.eq_ignore_ascii_case(&p)) {
            diffs.push(format!("no_detections_at_priority {p} violated"));
        }
    }
    for p in strings(&case["at_least_priority"]) {
        let matches = |d: &Detection| {
            let full = d
                .priority
                .parse::<Priority>()
                .map(|x| x.falco_name().to_ascii_lowercase())
                .unwrap_or_default();
            full.contains(&p.to_ascii_lowercase()) || d.priority.eq_ignore_ascii_case(&p)
        };
        if !run.first.iter().any(matches) {
            diffs.push(format!("at_least_priority {p}: no detection at that priority"));
        }
    }
    if let Some(text) = case["stderr_contains"].as_str()
        && !run.collector_log.iter().any(|l| l.contains(text))
    {
        diffs.push(format!("collector log lacks {text:?}: {:?}", run.collector_log));
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("\n    "))
    }
}

#[test]
fn falco_k8saudit_corpus() {
    let Some(dir) = corpus_dir() else { return };
    let text = std::fs::read(dir.join("cases.json")).expect("cases.json is readable");
    let manifest: Value = serde_json::from_slice(&text).expect("cases.json is JSON");
    let cases = manifest["cases"].as_array().cloned().unwrap_or_default();
    assert_eq!(cases.len(), 198, "the corpus has 198 cases");
    let mut failures = Vec::new();
    let mut cache = LoadCache::new();
    for case in &cases {
        if let Err(diff) = check_case(&dir, case, &mut cache) {
            failures.push(format!("{}:\n    {diff}", case["name"].as_str().unwrap_or("?")));
        }
    }
    if !failures.is_empty() {
        panic!(
            "{} of {} cases failed:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}
