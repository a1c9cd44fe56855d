//! The condition and output-template parsers never panic, and whatever parses prints back to
//! text that parses again to the same printed form.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(expr) = kaudit_rules_syntax::parse_condition(&text) {
        let printed = kaudit_rules_syntax::to_condition_string(&expr);
        let reparsed = kaudit_rules_syntax::parse_condition(&printed)
            .unwrap_or_else(|e| panic!("printed condition does not parse: {printed:?}: {e:?}"));
        assert_eq!(printed, kaudit_rules_syntax::to_condition_string(&reparsed));
    }
    let _ = kaudit_rules_syntax::parse_template(&text, |name| {
        name.starts_with("ka.") || name.starts_with("jevt.")
    });
});
