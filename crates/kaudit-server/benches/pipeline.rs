//! The intake pipeline on a real apiserver's events: one webhook body (an `EventList` of 400
//! events, as the apiserver batches them) parsed, digested and run through the default rules
//! into rows, as a request thread does before the store sees it.
//!
//! `cargo bench -p kaudit-server --bench pipeline`
//!
//! The events are the real capture in `../shared/samples/kube-apiserver-1.26/log/`; the
//! bodies are built from its lines in order, so the mix of verbs, users and sizes is real.

// `criterion_group!` defines an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kaudit_server::config::RuleMatching;
use kaudit_server::detect::Detector;
use kaudit_server::pipeline::prepare;
use kaudit_server::policy::default_policies;
use kaudit_store::{Intake, IntakeId, KeyHash};

const BATCH: usize = 400;

fn webhook_bodies() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/samples/kube-apiserver-1.26/log"
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the real capture in ../shared/samples")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let lines: Vec<String> = files
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .expect("log file")
                .lines()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| !l.trim().is_empty())
        .collect();
    lines
        .chunks(BATCH)
        .filter(|c| c.len() == BATCH)
        .map(|chunk| {
            format!(
                r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{}]}}"#,
                chunk.join(",")
            )
            .into_bytes()
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let bodies = webhook_bodies();
    let detector = Detector::build(&[], &default_policies(), RuleMatching::First).expect("default rules");
    let intake = Intake {
        id: IntakeId(1),
        name: "bench".to_owned(),
        cluster: "bench-cluster".to_owned(),
        key_hash: KeyHash([0; 32]),
        created_ns: 0,
        revoked_ns: None,
        last_event_ns: None,
        event_count: 0,
    };
    let events = (bodies.len() * BATCH) as u64;
    let mut group = c.benchmark_group("pipeline");
    group.throughput(Throughput::Elements(events));
    // Every body in each iteration, so that an iteration is the same work whatever the count.
    group.bench_function(format!("prepare {} EventLists of {BATCH}", bodies.len()), |b| {
        b.iter(|| {
            for body in &bodies {
                black_box(prepare(black_box(body), &intake, &detector, 0).expect("a valid body"));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
