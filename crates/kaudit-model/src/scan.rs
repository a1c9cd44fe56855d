//! A one-pass reader of an `EventList` body that finds and parses its items together.
//!
//! A webhook body is one `EventList` of up to hundreds of KiB. Parsing it to find the items and
//! then parsing each item again reads every byte twice through the JSON parser. Here the list's
//! own members are walked by skipping strings with `memchr` and counting brackets, and each
//! item of `items` is parsed where it stands, the parse telling where it ends; so every byte of
//! the items goes through the parser once, and through nothing else. The object's punctuation
//! is checked here, its other members through the parser. Anything unusual (escaped or repeated
//! keys, an item that is not an object or that the event parser refuses, a kind other than the
//! plain `"EventList"`) makes it answer `None`, and the general reader, which reports every
//! problem precisely, takes over.

use serde::de::IgnoredAny;

use crate::event::RawEvent;

/// The items of `raw` when it is plainly an `EventList` object, in order, each with its
/// members as the event parser read them; `None` when it is anything else or anything is
/// unusual.
pub(crate) fn event_list_items(raw: &str) -> Option<Vec<(&str, RawEvent<'_>)>> {
    let bytes = raw.as_bytes();
    let mut at = skip_blanks(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    let mut seen: Vec<&str> = Vec::new();
    let mut items = None;
    let mut is_event_list = false;
    loop {
        at = skip_blanks(bytes, at);
        let key = plain_key(bytes, at)?;
        let key_text = raw.get(key.start + 1..key.end - 1)?;
        if seen.contains(&key_text) {
            return None;
        }
        seen.push(key_text);
        at = skip_blanks(bytes, key.end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_blanks(bytes, at + 1);
        let end = if key_text == "items" {
            let (parsed, end) = array_events(raw, at)?;
            items = Some(parsed);
            end
        } else {
            let end = value_end(bytes, at)?;
            let value = raw.get(at..end)?;
            match key_text {
                // Decided as soon as it is seen, so that an event (whose `kind` usually comes
                // first) costs nothing here.
                "kind" if value != "\"EventList\"" => return None,
                "kind" => is_event_list = true,
                _ => {
                    serde_json::from_str::<IgnoredAny>(value).ok()?;
                }
            }
            end
        };
        at = skip_blanks(bytes, end);
        match bytes.get(at)? {
            b',' => at += 1,
            b'}' => break,
            _ => return None,
        }
    }
    if !is_event_list || skip_blanks(bytes, at + 1) != bytes.len() {
        return None;
    }
    items
}

/// The elements of the array starting at `at` in `raw`, each an object the event parser
/// reads, with their members; and where the array ends (after its `]`).
fn array_events(raw: &str, at: usize) -> Option<(Vec<(&str, RawEvent<'_>)>, usize)> {
    let bytes = raw.as_bytes();
    if bytes.get(at) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::with_capacity((raw.len() - at) / 1024 + 1);
    let mut at = skip_blanks(bytes, at + 1);
    if bytes.get(at) == Some(&b']') {
        return Some((out, at + 1));
    }
    loop {
        if bytes.get(at) != Some(&b'{') {
            return None;
        }
        let rest = raw.get(at..)?;
        let mut parse = serde_json::Deserializer::from_str(rest).into_iter::<RawEvent<'_>>();
        let members = parse.next()?.ok()?;
        let end = at + parse.byte_offset();
        out.push((raw.get(at..end)?, members));
        at = skip_blanks(bytes, end);
        match bytes.get(at)? {
            b',' => at = skip_blanks(bytes, at + 1),
            b']' => return Some((out, at + 1)),
            _ => return None,
        }
    }
}

/// The span of the key string starting at `at`, quotes included, when it has no escapes and
/// no control characters (which JSON forbids in strings).
fn plain_key(bytes: &[u8], at: usize) -> Option<std::ops::Range<usize>> {
    if bytes.get(at) != Some(&b'"') {
        return None;
    }
    let close = at + 1 + memchr::memchr2(b'"', b'\\', bytes.get(at + 1..)?)?;
    if bytes[close] != b'"' || bytes[at + 1..close].iter().any(|&b| b < 0x20) {
        return None;
    }
    Some(at..close + 1)
}

/// Where the value starting at `at` ends (exclusive): strings are skipped with their escapes,
/// brackets counted whatever their kind, and a scalar runs to the next delimiter. Exact for
/// valid JSON; for anything else it finds some end or `None`, and the parser that reads the
/// value afterwards refuses it.
pub(crate) fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match *bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => {
            // Between strings, which `string_end` skips with `memchr`, an audit event has
            // only short runs of punctuation and scalars: a byte loop is the fast way there.
            let mut depth = 0usize;
            let mut i = at;
            loop {
                match *bytes.get(i)? {
                    b'"' => {
                        i = string_end(bytes, i)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i + 1);
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            let len = bytes[at..]
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
                .unwrap_or(bytes.len() - at);
            (len > 0).then_some(at + len)
        }
    }
}

/// Where the string starting with the quote at `at` ends (after its closing quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut i = at + 1;
    loop {
        i += memchr::memchr2(b'"', b'\\', bytes.get(i..)?)?;
        if bytes[i] == b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
        }
    }
}

fn skip_blanks(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use serde::de::IgnoredAny;

    use crate::json;

    /// The items' texts, as the scan found them.
    fn event_list_items(raw: &str) -> Option<Vec<&str>> {
        super::event_list_items(raw).map(|items| items.into_iter().map(|(text, _)| text).collect())
    }

    /// What the parser says the items are, when `raw` is a valid `EventList` object.
    fn parsed_items(raw: &str) -> Option<Vec<&str>> {
        serde_json::from_str::<IgnoredAny>(raw).ok()?;
        (json::render(json::member(raw, "kind")?) == "EventList").then_some(())?;
        json::elements(json::member(raw, "items")?)
    }

    #[test]
    fn real_webhook_bodies_split_as_the_parser_splits_them() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/samples/kube-apiserver-1.26/webhook"
        );
        let mut bodies = 0;
        for entry in std::fs::read_dir(dir).expect("the real webhook bodies") {
            let body = std::fs::read_to_string(entry.expect("entry").path()).expect("body");
            let fast = event_list_items(&body).expect("a plain EventList");
            assert_eq!(Some(fast), parsed_items(&body));
            bodies += 1;
        }
        assert!(bodies > 0);
    }

    #[test]
    fn plain_lists_are_split_and_others_are_left_to_the_parser() {
        let ev = r#"{"kind":"Event","auditID":"a","stage":"ResponseComplete","x":["}",{"y":"\"]"}]}"#;
        let list =
            format!(" {{ \"kind\" : \"EventList\", \"metadata\":{{}},\n\"items\": [ {ev} ,\n{ev} ] }} ");
        assert_eq!(event_list_items(&list), Some(vec![ev, ev]));
        assert_eq!(
            event_list_items(r#"{"items":[],"kind":"EventList"}"#),
            Some(vec![])
        );
        for other in [
            ev,
            r#"{"kind":"EventList"}"#,
            r#"{"kind":"Event\u004cist","items":[]}"#,
            r#"{"kind":"EventList","kind":"EventList","items":[]}"#,
            r#"{"kind":"EventList","items":[1]}"#,
            r#"{"kind":"EventList","items":[{}],}"#,
            r#"{"kind":"EventList","items":[{},]}"#,
            r#"{"kind":"EventList","items":[{}{}]}"#,
            r#"{"kind":"EventList","items":[{"kind":"Event","kind":"Event"}]}"#,
            r#"{"kind":"EventList","items":[{"a":[}]}"#,
            r#"{"kind":"EventList","items":{}}"#,
            r#"{"kind":"EventList","items":[{}]} x"#,
            r#"{"kind":"EventList","metadata":{]},"items":[]}"#,
            "{\"kind\":\"EventList\",\"it\tems\":[]}",
        ] {
            assert_eq!(event_list_items(other), None, "{other}");
        }
    }

    /// Random edits of a small list: whenever the scan answers, the whole body must be a valid
    /// list with those items.
    #[test]
    fn edited_bodies_never_yield_items_the_parser_would_refuse() {
        let ev = r#"{"kind":"Event","auditID":"a\"b","stage":"ResponseComplete","o":{"l":[1,2,{"k":"}]"}]},"n":-1.5e3,"t":true}"#;
        let base = format!(
            r#"{{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{{}},"items":[{ev},{ev},{ev}]}}"#
        );
        let alphabet: &[u8] = b"{}[]\",:\\ \n\tak01-e.ntfu";
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut answered, mut refused) = (0, 0);
        for _ in 0..40_000 {
            let mut body = base.clone().into_bytes();
            for _ in 0..=next() % 3 {
                let at = (next() % (body.len() as u64 + 1)) as usize;
                let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                match next() % 3 {
                    0 if at < body.len() => {
                        body.remove(at);
                    }
                    1 if at < body.len() => body[at] = byte,
                    _ => body.insert(at, byte),
                }
            }
            let Ok(text) = String::from_utf8(body) else {
                continue;
            };
            let Some(items) = event_list_items(&text) else {
                refused += 1;
                continue;
            };
            answered += 1;
            assert_eq!(parsed_items(&text), Some(items), "{text}");
        }
        assert!(
            answered > 1000 && refused > 1000,
            "{answered} answered, {refused} refused"
        );
    }
}
