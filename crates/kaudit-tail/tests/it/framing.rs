//! Line framing: partial lines wait for their newline, CRLF is tolerated, empty lines are
//! skipped, overlong lines are reported and skipped whole, positions point at the bytes.

use std::fs;

use crate::support::{AckMode, Fixture, drain};

/// Appends each chunk and polls after each; every read size in `[1, 3, 1 MiB]` must give
/// the same lines and reported events. Positions must name the exact bytes of each line.
fn check(max_line_bytes: usize, chunks: &[&str], expected_lines: &[&str], expected_events: &[&str]) {
    for read_chunk_bytes in [1, 3, 1 << 20] {
        let fixture = Fixture::new();
        let mut config = fixture.config();
        config.max_line_bytes = max_line_bytes;
        config.read_chunk_bytes = read_chunk_bytes;
        let mut tailer = kaudit_tail::Tailer::open(config).expect("open tailer");
        let mut lines = Vec::new();
        let mut events = Vec::new();
        for chunk in chunks {
            fixture.append(chunk);
            let drained = drain(&mut tailer, 2, AckMode::None);
            let content = fs::read(fixture.live()).expect("read live file");
            for (line, position) in drained.lines.iter().zip(&drained.positions) {
                let raw = &content[position.offset() as usize..position.end() as usize];
                let raw = raw
                    .strip_suffix(b"\n")
                    .map(|r| r.strip_suffix(b"\r").unwrap_or(r));
                assert_eq!(raw, Some(line.as_bytes()), "position of {line:?}");
            }
            lines.extend(drained.lines.clone());
            events.extend(drained.notable_events());
        }
        assert_eq!(
            lines, expected_lines,
            "lines of {chunks:?} read by {read_chunk_bytes}"
        );
        assert_eq!(
            events, expected_events,
            "events of {chunks:?} read by {read_chunk_bytes}"
        );
    }
}

#[test]
fn partial_lines_wait_for_their_newline() {
    check(
        64,
        &["first\nsec", "ond", "\nthird\n"],
        &["first", "second", "third"],
        &[],
    );
    check(64, &["no newline yet"], &[], &[]);
    check(64, &["a", "b", "c", "\n"], &["abc"], &[]);
}

#[test]
fn crlf_is_stripped_and_lone_cr_kept() {
    check(64, &["one\r\ntwo\r", "\nthree\n"], &["one", "two", "three"], &[]);
    check(64, &["a\rb\n\r\n"], &["a\rb"], &[]);
}

#[test]
fn empty_lines_are_skipped() {
    check(64, &["\n\nfirst\n\n\r\nsecond\n\n"], &["first", "second"], &[]);
}

#[test]
fn overlong_lines_are_reported_and_skipped_whole() {
    check(4, &["abcd\nabcde\nxy\n"], &["abcd", "xy"], &["too long at 5 (5)"]);
    check(
        4,
        &["ok\nabc", "defgh", "ij\nend\n"],
        &["ok", "end"],
        &["too long at 3 (10)"],
    );
    // The limit applies to the content: a CRLF line of exactly the limit is delivered.
    check(4, &["abcd\r\nabcde\r\n"], &["abcd"], &["too long at 6 (5)"]);
    check(4, &["abcdefgh\n", "wxyz\n"], &["wxyz"], &["too long at 0 (8)"]);
}
