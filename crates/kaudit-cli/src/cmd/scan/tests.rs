//! Reading in chunks gives exactly what reading the whole input at once gives: the same
//! events and skipped lines, at the same line numbers, whatever the chunk size.

use std::io::Cursor;

use super::{Chunker, read_chunk};

/// Renders a position as `line` or `line:item`, offset to the first line of a chunk.
fn place(p: kaudit_model::Position, first_line: usize) -> String {
    let line = first_line + p.line - 1;
    match p.item {
        Some(item) => format!("{line}:{item}"),
        None => format!("{line}"),
    }
}

/// What reading reports, as comparable text: `line[:item] id` for events, then
/// `line[:item] ! reason` for the skipped pieces.
fn whole(input: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skips = Vec::new();
    kaudit_model::read_input(
        input,
        |e| {
            out.push(format!(
                "{} {}",
                place(e.position, 1),
                e.event.audit_id.as_deref().unwrap_or("")
            ))
        },
        |s| skips.push(format!("{} ! {}", place(s.position, 1), s.reason)),
    );
    out.extend(skips);
    out
}

fn chunked(input: &[u8], chunk_bytes: usize) -> Vec<String> {
    let mut chunker = Chunker::new(Box::new(Cursor::new(input.to_vec())), 0, chunk_bytes);
    let mut out = Vec::new();
    let mut skips = Vec::new();
    while let Some(chunk) = chunker
        .next_chunk()
        .unwrap_or_else(|e| panic!("reading from memory: {e}"))
    {
        let first = chunk.first_line;
        read_chunk(
            &chunk,
            |e| {
                out.push(format!(
                    "{} {}",
                    place(e.position, first),
                    e.event.audit_id.as_deref().unwrap_or("")
                ))
            },
            |s| skips.push(format!("{} ! {}", place(s.position, first), s.reason)),
        );
    }
    out.extend(skips);
    out
}

/// The chunked reading of `input` reports what a whole reading does, for several chunk sizes.
fn check(input: &str) {
    let expected = whole(input.as_bytes());
    for chunk_bytes in [1, 7, 64, 300, 1 << 20] {
        let got = chunked(input.as_bytes(), chunk_bytes);
        assert_eq!(got, expected, "chunks of {chunk_bytes} bytes, input:\n{input}");
    }
}

fn event(id: &str) -> String {
    format!(
        r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"{id}","stage":"ResponseComplete","requestURI":"/api/v1/pods","verb":"list","user":{{"username":"alice"}},"stageTimestamp":"2026-11-21T08:22:13.154448Z"}}"#
    )
}

#[test]
fn json_lines() {
    check(&format!("{}\n{}\n{}\n", event("a"), event("b"), event("c")));
}

#[test]
fn blank_lines_crlf_bom_and_no_final_newline() {
    check(&format!(
        "\u{feff}{}\r\n\r\n\n  {}  \r\n\n{}",
        event("a"),
        event("b"),
        event("c")
    ));
}

#[test]
fn lines_that_are_not_events_are_skipped_in_place() {
    check(&format!(
        "{}\nnot json\n{{\"kind\":\"Event\",\"auditID\":\n{}\n[1,2\n{{\"kind\":\"Pod\"}}\n{}\n",
        event("a"),
        event("b"),
        event("c")
    ));
}

#[test]
fn unfinished_values_at_chunk_starts() {
    check(&format!(
        "{}\n{{\n[\n{}\n{{\"auditID\":\"x\"\n",
        event("a"),
        event("b")
    ));
    check(&format!(
        "{}\n{{\"kind\":\"Event\",\n{{\"items\":[\n{}\n",
        event("a"),
        event("b")
    ));
}

#[test]
fn a_first_line_that_does_not_finish_is_a_broken_document() {
    check(&format!("{{\"kind\":\n{}\n{}\n", event("a"), event("b")));
}

#[test]
fn event_lists_and_arrays_on_one_line() {
    let list = format!(
        r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","items":[{},{}]}}"#,
        event("a"),
        event("b")
    );
    check(&format!(
        "{list}\n[{},{}]\n{}\n",
        event("c"),
        event("d"),
        event("e")
    ));
}

#[test]
fn pretty_printed_documents_are_read_whole() {
    let list = format!(
        "{{\n  \"kind\": \"EventList\",\n  \"items\": [\n    {},\n    {}\n  ]\n}}\n",
        event("a"),
        event("b")
    );
    check(&list);
    check(&format!("[\n{},\n{}\n]\n", event("a"), event("b")));
}
