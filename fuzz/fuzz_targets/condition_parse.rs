//! The condition and output-template parsers, and the printing of a parsed condition, never
//! panic. The printed form is Falco's display form, which need not parse again: it prints a
//! string holding a comma, or a quoted transformer argument, without its quotes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(expr) = kaudit_rules_syntax::parse_condition(&text) {
        let printed = kaudit_rules_syntax::to_condition_string(&expr);
        let _ = kaudit_rules_syntax::parse_condition(&printed);
    }
    let _ = kaudit_rules_syntax::parse_template(&text, |name| {
        name.starts_with("ka.") || name.starts_with("jevt.")
    });
});
