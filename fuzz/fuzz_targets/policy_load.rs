//! The policy loader never panics on any bytes; a policy that loads evaluates and applies
//! without panicking, and every diagnostic points inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let lines = text.lines().count().max(1) + 1;
    match kaudit_policy::load(&text) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                assert!(warning.span.line <= lines, "warning outside the text: {warning}");
            }
            let policy = loaded.policy;
            let requests = [
                kaudit_policy::RequestAttributes::default(),
                kaudit_policy::RequestAttributes {
                    user: Some(kaudit_policy::User {
                        name: "alice".into(),
                        groups: vec!["dev".into()],
                    }),
                    verb: "get".into(),
                    path: "/api/v1/namespaces/a/pods/p".into(),
                    resource_request: true,
                    resource: "pods".into(),
                    namespace: "a".into(),
                    name: "p".into(),
                    ..Default::default()
                },
            ];
            for request in &requests {
                let decision = policy.evaluate(request);
                let event = r#"{"level":"RequestResponse","stage":"ResponseComplete","verb":"get","responseObject":{"metadata":{"managedFields":[]}}}"#;
                let _ = kaudit_policy::apply_decision(event, &decision);
            }
            let _ = kaudit_policy::Loaded {
                policy,
                warnings: loaded.warnings,
            }
            .into_strict();
        }
        Err(err) => {
            for diagnostic in err.diagnostics() {
                assert!(
                    diagnostic.span.line <= lines,
                    "diagnostic outside the text: {diagnostic}"
                );
            }
        }
    }
});
