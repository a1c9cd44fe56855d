//! Reading audit input: a JSON lines file (the log backend), a webhook `EventList` body, a
//! JSON array, or a whole file holding one or more pretty-printed JSON values.
//!
//! Each value is handled as the k8saudit collector does: an array contributes its elements
//! (recursively), an `EventList` its `items`, an object with `"kind":"Event"` is an event.
//! Beyond that collector, an object with no `kind` but an `auditID` is taken as an event
//! (v1beta1 exports and re-exporters drop `kind`). Anything else is reported as a [`Skip`]
//! with its place and reason, and reading goes on with the next line.

use std::fmt;

use serde_json::value::RawValue;

use crate::event::{AuditEvent, EventError, RawEvent};
use crate::json;
use crate::outline::{Lines, outline};
use crate::scan;

/// Where an event or a skipped piece of input starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line number in the input.
    pub line: usize,
    /// 0-based index of the event among the items of the enclosing array or `EventList`,
    /// when it came from one.
    pub item: Option<usize>,
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.item {
            Some(i) => write!(f, "line {}, item {}", self.line, i),
            None => write!(f, "line {}", self.line),
        }
    }
}

/// An event and where it was read.
#[derive(Clone, Debug)]
pub struct Located<'a> {
    /// Where the event starts.
    pub position: Position,
    /// The event.
    pub event: AuditEvent<'a>,
    /// Its time, `stageTimestamp` in nanoseconds since the epoch.
    pub time_nanos: i64,
}

/// A piece of input that is not an audit event, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skip {
    /// Where it starts.
    pub position: Position,
    /// Why it was skipped.
    pub reason: SkipReason,
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.reason)
    }
}

/// Why a piece of input was skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SkipReason {
    /// The bytes are not UTF-8.
    #[error("invalid UTF-8 at byte {offset} of the line")]
    InvalidUtf8 {
        /// Offset of the first bad byte within the line.
        offset: usize,
    },
    /// The text is not JSON.
    #[error("cannot parse JSON: {0}")]
    InvalidJson(String),
    /// Valid JSON, but neither an event, an `EventList` nor an array of them.
    #[error("data not recognized as a k8s audit event ({0})")]
    NotAnEvent(String),
    /// An object taken as an event whose members have the wrong shape.
    #[error("malformed audit event: {0}")]
    MalformedEvent(String),
    /// The event has no usable `stageTimestamp`.
    #[error("{0}")]
    BadTimestamp(String),
    /// Arrays and objects nest deeper than [`MAX_NESTING`] levels.
    #[error("JSON nested deeper than {MAX_NESTING} levels")]
    TooDeep,
}

/// Deepest nesting of arrays and objects read, counting an `EventList` and its items:
/// serde_json's own recursion limit, far above what Kubernetes objects use. Deeper input is
/// skipped before any parser sees it, so that no recursive code downstream (parsing, field
/// extraction, rendering) can exhaust the stack: serde_json skips the nested values it does
/// not deserialize (raw `requestObject`s) without a depth limit.
pub const MAX_NESTING: usize = 128;

/// Reads every audit event in `input`, calling `on_event` for each in input order and
/// `on_skip` for each piece of input that is not one. Events borrow `input`.
pub fn read_input<'a>(input: &'a [u8], mut on_event: impl FnMut(Located<'a>), mut on_skip: impl FnMut(Skip)) {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut sink = Sink {
        on_event: &mut on_event,
        on_skip: &mut on_skip,
    };
    // One pass over the structure, lines read as separate texts: it bounds the nesting of
    // every line and, on the usual input, says that the first line holds a whole value.
    let lines = outline(input, Lines::Separate, MAX_NESTING);
    if needs_whole_document(input, lines.first_close) {
        read_document(input, &mut sink);
    } else {
        read_lines(input, lines.too_deep_at.is_some(), &mut sink);
    }
}

/// Reads `input` as JSON lines whatever its first line looks like: unlike [`read_input`], a
/// first line that starts a JSON value without finishing it is skipped like any other bad
/// line instead of making the whole input one pretty-printed document. For callers that cut
/// a JSON-lines input into pieces at line ends, where a piece may start with such a line.
pub fn read_json_lines<'a>(
    input: &'a [u8],
    mut on_event: impl FnMut(Located<'a>),
    mut on_skip: impl FnMut(Skip),
) {
    let input = input.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(input);
    let mut sink = Sink {
        on_event: &mut on_event,
        on_skip: &mut on_skip,
    };
    let some_too_deep = outline(input, Lines::Separate, MAX_NESTING).too_deep_at.is_some();
    read_lines(input, some_too_deep, &mut sink);
}

struct Sink<'s, 'a> {
    on_event: &'s mut dyn FnMut(Located<'a>),
    on_skip: &'s mut dyn FnMut(Skip),
}

impl<'a> Sink<'_, 'a> {
    fn skip(&mut self, position: Position, reason: SkipReason) {
        (self.on_skip)(Skip { position, reason });
    }
}

/// True when the first value in the input does not end on its first line: the input is a
/// pretty-printed document rather than JSON lines. `first_close` is where the outline of the
/// input, lines read separately, saw the first array or object close.
fn needs_whole_document(input: &[u8], first_close: Option<usize>) -> bool {
    // memchr for the line ends: a webhook body is one line of hundreds of KiB.
    let mut rest = input;
    while !rest.is_empty() {
        let end = memchr::memchr(b'\n', rest).unwrap_or(rest.len());
        let line_end = input.len() - rest.len() + end;
        let line = trim_blanks(&rest[..end]);
        rest = rest.get(end + 1..).unwrap_or(&[]);
        if line.is_empty() {
            continue;
        }
        if !matches!(line[0], b'{' | b'[') {
            return false;
        }
        // Most inputs close their first value on its line (JSON lines, and webhook bodies,
        // which are one line); the outline says so without parsing what may be the whole
        // body. Only blanks come before this line, so the first bracket that closes to depth
        // zero closes its value. Only a value left open needs the parser's word on whether it
        // is cut short.
        if first_close.is_some_and(|close| close <= line_end) {
            return false;
        }
        return match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
            Ok(_) => false,
            Err(e) => e.is_eof(),
        };
    }
    false
}

fn trim_blanks(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if matches!(first, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if matches!(last, b' ' | b'\t' | b'\r' | b'\n') {
            s = rest;
        } else {
            break;
        }
    }
    s
}

/// `some_too_deep`: whether the outline of `input` found a line nested too deep; each line is
/// then checked on its own.
fn read_lines<'a>(input: &'a [u8], some_too_deep: bool, sink: &mut Sink<'_, 'a>) {
    let mut start = 0;
    let mut line_no = 0;
    while start < input.len() {
        line_no += 1;
        let end = memchr::memchr(b'\n', &input[start..]).map_or(input.len(), |i| start + i);
        let line = &input[start..end];
        start = end + 1;
        let position = Position {
            line: line_no,
            item: None,
        };
        let line = trim_blanks(line);
        if line.is_empty() {
            continue;
        }
        if some_too_deep && outline(line, Lines::Separate, MAX_NESTING).too_deep_at.is_some() {
            sink.skip(position, SkipReason::TooDeep);
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(text) => handle_value(text, position, &mut LineIndex::single(line_no), sink),
            Err(e) => sink.skip(
                position,
                SkipReason::InvalidUtf8 {
                    offset: e.valid_up_to(),
                },
            ),
        }
    }
}

fn read_document<'a>(input: &'a [u8], sink: &mut Sink<'_, 'a>) {
    let text = match std::str::from_utf8(input) {
        Ok(t) => t,
        Err(e) => {
            let line = 1 + memchr::memchr_iter(b'\n', &input[..e.valid_up_to()]).count();
            let line_start = input[..e.valid_up_to()]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            sink.skip(
                Position { line, item: None },
                SkipReason::InvalidUtf8 {
                    offset: e.valid_up_to() - line_start,
                },
            );
            return;
        }
    };
    let some_too_deep = outline(input, Lines::Joined, MAX_NESTING).too_deep_at.is_some();
    let mut index = LineIndex::new(text);
    // The stream finds each value's end without recursing, however deep it nests.
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    loop {
        let before = stream.byte_offset();
        match stream.next() {
            None => break,
            Some(Ok(value)) => {
                let start = offset_in(text, value.get());
                let position = Position {
                    line: index.line_of(start),
                    item: None,
                };
                let too_deep = some_too_deep
                    .then(|| outline(value.get().as_bytes(), Lines::Joined, MAX_NESTING).too_deep_at)
                    .flatten();
                match too_deep {
                    Some(at) => sink.skip(
                        Position {
                            line: index.line_of(start + at),
                            item: None,
                        },
                        SkipReason::TooDeep,
                    ),
                    None => handle_value(value.get(), position, &mut index, sink),
                }
            }
            Some(Err(e)) => {
                // A document that is not valid JSON cannot be resynchronised reliably: report
                // where it broke and stop reading this input.
                let line = if e.line() > 0 {
                    e.line()
                } else {
                    index.line_of(before)
                };
                sink.skip(
                    Position { line, item: None },
                    SkipReason::InvalidJson(e.to_string()),
                );
                break;
            }
        }
    }
}

/// Maps byte offsets to line numbers, for offsets visited in increasing order.
struct LineIndex<'t> {
    text: &'t str,
    offset: usize,
    line: usize,
}

impl<'t> LineIndex<'t> {
    fn new(text: &'t str) -> LineIndex<'t> {
        LineIndex {
            text,
            offset: 0,
            line: 1,
        }
    }

    /// For a single line: every offset is on that line.
    fn single(line: usize) -> LineIndex<'static> {
        LineIndex {
            text: "",
            offset: 0,
            line,
        }
    }

    fn line_of(&mut self, offset: usize) -> usize {
        if self.text.is_empty() {
            return self.line;
        }
        let offset = offset.min(self.text.len());
        if offset < self.offset {
            self.offset = 0;
            self.line = 1;
        }
        self.line += memchr::memchr_iter(b'\n', &self.text.as_bytes()[self.offset..offset]).count();
        self.offset = offset;
        self.line
    }
}

fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize).saturating_sub(outer.as_ptr() as usize)
}

/// Arrays of events may nest (an `EventList` inside an array inside an array); deeper than
/// this is not audit input, and refusing it bounds the recursion below.
pub const MAX_ARRAY_NESTING: usize = 32;

fn handle_value<'a>(raw: &'a str, position: Position, index: &mut LineIndex<'_>, sink: &mut Sink<'_, 'a>) {
    handle_nested(raw, position, index, sink, 0);
}

fn handle_nested<'a>(
    raw: &'a str,
    position: Position,
    index: &mut LineIndex<'_>,
    sink: &mut Sink<'_, 'a>,
    depth: usize,
) {
    match json::kind(raw) {
        Some(json::Kind::Array) if depth >= MAX_ARRAY_NESTING => sink.skip(
            position,
            SkipReason::NotAnEvent(format!("arrays nested deeper than {MAX_ARRAY_NESTING} levels")),
        ),
        Some(json::Kind::Array) => {
            let items: Vec<&'a RawValue> = match serde_json::from_str(raw) {
                Ok(items) => items,
                Err(e) => return sink.skip(position, SkipReason::InvalidJson(e.to_string())),
            };
            for (i, item) in items.into_iter().enumerate() {
                let line = index
                    .line_of(offset_in(index.text, item.get()))
                    .max(position.line);
                let pos = Position {
                    line,
                    item: Some(position.item.unwrap_or(i)),
                };
                let pos = if position.item.is_some() {
                    pos
                } else {
                    Position { item: Some(i), ..pos }
                };
                handle_nested(item.get(), pos, index, sink, depth + 1);
            }
        }
        Some(json::Kind::Object) => {
            // A webhook body: its items found and parsed as events in one pass.
            if let Some(items) = scan::event_list_items(raw) {
                for (i, (item, members)) in items.into_iter().enumerate() {
                    let line = index.line_of(offset_in(index.text, item)).max(position.line);
                    let event = AuditEvent::from_members(item, members);
                    emit(event, Position { line, item: Some(i) }, sink);
                }
                return;
            }
            let members: RawEvent<'a> = match serde_json::from_str(raw) {
                Ok(m) => m,
                Err(e) => return sink.skip(position, object_error(raw, e)),
            };
            let kind = members.kind.map(|k| json::render(k.get()));
            match kind.as_deref() {
                Some("EventList") => match members.items.map(|i| json::kind(i.get())) {
                    Some(Some(json::Kind::Array)) => {
                        let items =
                            json::elements(members.items.map_or("[]", RawValue::get)).unwrap_or_default();
                        for (i, item) in items.into_iter().enumerate() {
                            let line = index.line_of(offset_in(index.text, item)).max(position.line);
                            handle_event(item, Position { line, item: Some(i) }, sink);
                        }
                    }
                    _ => sink.skip(
                        position,
                        SkipReason::NotAnEvent("EventList without an items array".into()),
                    ),
                },
                Some("Event") => emit(AuditEvent::from_members(raw, members), position, sink),
                None if members.audit_id.is_some() => {
                    emit(AuditEvent::from_members(raw, members), position, sink)
                }
                None => sink.skip(
                    position,
                    SkipReason::NotAnEvent("object without kind or auditID".into()),
                ),
                Some(_) => {
                    let shown = members.kind.map_or("", RawValue::get);
                    sink.skip(position, SkipReason::NotAnEvent(format!("kind {shown}")))
                }
            }
        }
        _ => match serde_json::from_str::<serde::de::IgnoredAny>(raw) {
            Ok(_) => sink.skip(
                position,
                SkipReason::NotAnEvent("not a JSON object or array".into()),
            ),
            Err(e) => sink.skip(position, SkipReason::InvalidJson(e.to_string())),
        },
    }
}

/// Why an object could not be read: not JSON at all, or JSON whose members are not those of
/// an event (a duplicate member, for instance).
fn object_error(raw: &str, err: serde_json::Error) -> SkipReason {
    match serde_json::from_str::<serde::de::IgnoredAny>(raw) {
        Ok(_) => SkipReason::MalformedEvent(err.to_string()),
        Err(_) => SkipReason::InvalidJson(err.to_string()),
    }
}

fn handle_event<'a>(raw: &'a str, position: Position, sink: &mut Sink<'_, 'a>) {
    if json::kind(raw) != Some(json::Kind::Object) {
        return sink.skip(
            position,
            SkipReason::NotAnEvent("EventList item is not an object".into()),
        );
    }
    match AuditEvent::parse(raw) {
        Ok(event) => emit(event, position, sink),
        Err(e) => sink.skip(position, SkipReason::MalformedEvent(e.to_string())),
    }
}

/// Hands an event on with its time, or skips it when `stageTimestamp` is missing or invalid
/// (Falco drops such events too).
fn emit<'a>(event: AuditEvent<'a>, position: Position, sink: &mut Sink<'_, 'a>) {
    match event.stage_time_nanos() {
        Ok(time_nanos) => (sink.on_event)(Located {
            position,
            event,
            time_nanos,
        }),
        Err(EventError::BadStageTimestamp(e)) => sink.skip(position, SkipReason::BadTimestamp(e.to_string())),
        Err(e) => sink.skip(position, SkipReason::BadTimestamp(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_first_value_is_never_cut_short_for_the_parser() {
        // The bracket count may only answer "closed" where the parser would not report an
        // input that ends too early.
        let alphabet = [
            &b"{"[..],
            b"}",
            b"[",
            b"]",
            b"\"",
            b"\\",
            b"1",
            b",",
            b":",
            b"\"a\"",
            b" ",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            let mut line = vec![if state.is_multiple_of(2) { b'{' } else { b'[' }];
            for _ in 0..(state % 24) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.extend_from_slice(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let closes = outline(&line, Lines::Separate, MAX_NESTING).first_close.is_some();
            if closes {
                let parsed = serde_json::from_slice::<serde::de::IgnoredAny>(&line);
                assert!(
                    !parsed.is_err_and(|e| e.is_eof()),
                    "{}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
    }

    fn read(input: &str) -> (Vec<(Position, String)>, Vec<Skip>) {
        let mut events = Vec::new();
        let mut skips = Vec::new();
        read_input(
            input.as_bytes(),
            |e| events.push((e.position, e.event.audit_id.as_deref().unwrap_or("").to_owned())),
            |s| skips.push(s),
        );
        (events, skips)
    }

    fn ev(id: &str) -> String {
        format!(
            r#"{{"kind":"Event","auditID":"{id}","stage":"ResponseComplete","stageTimestamp":"2024-05-01T10:11:12.123456Z"}}"#
        )
    }

    #[test]
    fn json_lines_with_bad_lines_in_between() {
        let input = format!("\u{feff}{}\r\nnot json\n\n{{\"kind\":0}}\n{}\n", ev("a"), ev("b"));
        let (events, skips) = read(&input);
        assert_eq!(
            events,
            vec![
                (Position { line: 1, item: None }, "a".into()),
                (Position { line: 5, item: None }, "b".into())
            ]
        );
        assert_eq!(skips.len(), 2);
        assert_eq!(skips[0].position.line, 2);
        assert!(matches!(skips[0].reason, SkipReason::InvalidJson(_)));
        assert!(
            skips[1]
                .to_string()
                .contains("data not recognized as a k8s audit event")
        );
    }

    #[test]
    fn event_list_items_have_indexes() {
        let item = ev("x").replace(r#""kind":"Event","#, "");
        let body = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{item},{item},{{"auditID":"bad"}}]}}"#
        );
        let (events, skips) = read(&body);
        assert_eq!(events.len(), 2);
        assert_eq!(events[1].0.item, Some(1));
        assert_eq!(skips[0].position.item, Some(2));
        assert!(matches!(skips[0].reason, SkipReason::BadTimestamp(_)));
    }

    #[test]
    fn pretty_printed_documents_and_arrays() {
        let doc = format!(
            "[\n  {},\n  {}\n]\n{{\n \"kind\": \"EventList\", \"items\": [\n{}\n]}}\n",
            ev("a"),
            ev("b"),
            ev("c")
        );
        let (events, skips) = read(&doc);
        assert!(skips.is_empty(), "{skips:?}");
        let ids: Vec<_> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(
            events[1].0,
            Position {
                line: 3,
                item: Some(1)
            }
        );
        assert_eq!(
            events[2].0,
            Position {
                line: 7,
                item: Some(0)
            }
        );
    }

    #[test]
    fn deep_nesting_is_refused_without_recursing_further() {
        let depth = 100;
        let input = format!("{}{}{}", "[".repeat(depth), ev("a"), "]".repeat(depth));
        let (events, skips) = read(&input);
        assert!(events.is_empty());
        assert_eq!(skips.len(), 1, "{skips:?}");
        let shallow = format!("[[{}]]", ev("b"));
        assert_eq!(read(&shallow).0.len(), 1);
    }

    #[test]
    fn input_nested_too_deep_is_skipped_alone() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let lines = format!("{}\n{}\n{}\n", ev("a"), deep(MAX_NESTING + 1), ev("b"));
        let (events, skips) = read(&lines);
        assert_eq!(events.len(), 2);
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].to_string(), "line 2: JSON nested deeper than 128 levels");
        // At the limit it is only arrays, refused by what follows.
        let (_, skips) = read(&deep(MAX_NESTING));
        assert!(matches!(skips[0].reason, SkipReason::NotAnEvent(_)));
        // A pretty-printed document: the deep value is named by the line of its deepest
        // bracket; the values around it are read.
        let document = format!(
            "{}\n[\n{}\n]\n{}\n",
            ev("a").replace(",", ",\n"),
            deep(MAX_NESTING),
            ev("b")
        );
        let (events, skips) = read(&document);
        assert_eq!(events.len(), 2, "{skips:?}");
        assert_eq!(skips.len(), 1);
        assert_eq!(skips[0].position.line, 6);
        assert_eq!(skips[0].reason, SkipReason::TooDeep);
        // A string full of brackets is not nesting.
        let in_string = ev("c").replace("\"a\"", &format!("\"{}\"", "[{".repeat(500)));
        assert_eq!(read(&in_string).0.len(), 1);
        // A line left deep does not hide the next line's events.
        let open = format!("{}\n{}\n{}\n", ev("d"), "{\"a\":".repeat(200), ev("e"));
        let (events, skips) = read(&open);
        assert_eq!(events.len(), 2);
        assert_eq!(skips[0].position.line, 2);
        assert_eq!(skips[0].reason, SkipReason::TooDeep);
    }

    #[test]
    fn invalid_utf8_is_reported_not_fatal() {
        let mut input = ev("a").into_bytes();
        input.extend_from_slice(b"\n{\"auditID\":\"\xff\"}\n");
        input.extend_from_slice(ev("b").as_bytes());
        let mut n = 0;
        let mut skips = Vec::new();
        read_input(&input, |_| n += 1, |s| skips.push(s));
        assert_eq!(n, 2);
        assert_eq!(skips[0].reason, SkipReason::InvalidUtf8 { offset: 12 });
    }
}
