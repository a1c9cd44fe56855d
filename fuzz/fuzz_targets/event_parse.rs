//! Audit input framing and event parsing never panic, and every byte of input ends up either
//! in an event or in a reported skip.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut events = 0usize;
    kaudit_model::read_input(
        data,
        |located| {
            events += 1;
            // Touch the lazily read parts too.
            let event = &located.event;
            let _ = event.annotations();
            let _ = event.source_ips();
            let _ = event.user.as_ref().map(|u| u.groups());
            let _ = event.pointer("/requestObject/spec/containers/0/image");
        },
        |skip| {
            let _ = skip.to_string();
        },
    );
    let _ = events;
});
