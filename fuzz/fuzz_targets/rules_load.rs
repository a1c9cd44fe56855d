//! The rules loader never panics on any bytes, alone or after the upstream-shaped prelude
//! below (so that inputs can redefine, append to and override existing items), and a loaded
//! rule set evaluates an event without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

const PRELUDE: &str = "
- list: users
  items: [alice, \"bob smith\"]
- macro: creating
  condition: ka.verb = create
- rule: Base
  desc: base
  condition: creating and ka.user.name in (users)
  output: base %ka.user.name %ka.req.pod.containers.image
  priority: WARNING
  source: k8s_audit
";

const EVENT: &str = r#"{"kind":"Event","auditID":"x","stage":"ResponseComplete","verb":"create","user":{"username":"alice"},"objectRef":{"resource":"pods","namespace":"a"},"requestObject":{"spec":{"containers":[{"image":"nginx"}]}},"stageTimestamp":"2026-01-01T00:00:00Z"}"#;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data).into_owned();
    for sources in [
        vec![kaudit_rules::RuleSource::new("fuzz.yaml", text.clone())],
        vec![
            kaudit_rules::RuleSource::new("prelude.yaml", PRELUDE),
            kaudit_rules::RuleSource::new("fuzz.yaml", text.clone()),
        ],
    ] {
        if let Ok(loaded) = kaudit_rules::load(&sources) {
            let detector = kaudit_rules::Detector::new(loaded.ruleset, kaudit_rules::Matching::All);
            kaudit_model::read_input(
                EVENT.as_bytes(),
                |located| {
                    let _ = detector.detect(&located, 1);
                },
                |_| {},
            );
        }
    }
});
