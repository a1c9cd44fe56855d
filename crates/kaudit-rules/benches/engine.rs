//! Rule evaluation speed: the 48 upstream k8s audit rules (k8saudit rules v0.18.0) over a
//! mixed set of real events read at bench time (the kube-apiserver 1.26 capture and Falco's
//! k8s audit traces), reported per event.
//!
//! Run: `cargo bench -p kaudit-rules --bench engine`. Three figures: evaluation alone
//! (events parsed beforehand, first-match as Falco's default), evaluation with all-matching,
//! and evaluation plus rendering the alerts.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaudit_model::{Located, read_input};
use kaudit_rules::fields::EventCtx;
use kaudit_rules::{Detector, Matching, RuleSet, RuleSource, load};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

fn rules() -> Option<RuleSet> {
    let path = Path::new(SHARED).join("conformance/falco-k8saudit/rules/k8s_audit_rules.yaml");
    let text = std::fs::read_to_string(&path).ok()?;
    match load(&[RuleSource::new(path.display().to_string(), text)]) {
        Ok(l) => Some(l.ruleset),
        Err(e) => panic!("upstream rules do not load: {e}"),
    }
}

/// The raw input files: every log file of the capture and every Falco trace.
fn inputs() -> Vec<Vec<u8>> {
    let mut files = Vec::new();
    for dir in ["samples/kube-apiserver-1.26/log", "samples/falco-k8s-audit"] {
        let Ok(entries) = std::fs::read_dir(Path::new(SHARED).join(dir)) else {
            continue;
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if p.extension().is_some_and(|e| e == "log" || e == "json")
                && let Ok(bytes) = std::fs::read(&p)
            {
                files.push(bytes);
            }
        }
    }
    files
}

fn events(inputs: &[Vec<u8>]) -> Vec<Located<'_>> {
    let mut out = Vec::new();
    for input in inputs {
        read_input(input, |e| out.push(e), |_| {});
    }
    out
}

fn bench(c: &mut Criterion) {
    let Some(rules) = rules() else {
        eprintln!("notice: shared corpus not found under {SHARED}; nothing to benchmark");
        return;
    };
    let inputs = inputs();
    let events = events(&inputs);
    assert!(!events.is_empty(), "no events read");
    let mut group = c.benchmark_group("upstream_rules");
    group.throughput(Throughput::Elements(events.len() as u64));
    for (name, matching) in [
        ("evaluate_first", Matching::First),
        ("evaluate_all", Matching::All),
    ] {
        group.bench_function(name, |b| {
            let mut out = Vec::new();
            b.iter(|| {
                let mut n = 0;
                for (i, e) in events.iter().enumerate() {
                    let ctx = EventCtx::new(e, i as u64 + 1);
                    rules.evaluate(&ctx, matching, &mut out);
                    n += out.len();
                }
                n
            })
        });
    }
    let detector = Detector::new(rules, Matching::First);
    group.bench_function("detect_and_render", |b| {
        b.iter(|| {
            let mut n = 0;
            for (i, e) in events.iter().enumerate() {
                n += detector.detect(e, i as u64 + 1).len();
            }
            n
        })
    });
    group.bench_function("parse_and_detect", |b| {
        b.iter(|| {
            let mut n = 0;
            let mut evt = 0;
            for input in &inputs {
                read_input(
                    input,
                    |e| {
                        evt += 1;
                        n += detector.detect(&e, evt).len();
                    },
                    |_| {},
                );
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
