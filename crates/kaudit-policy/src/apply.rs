//! Applying a [`Decision`] to a recorded event: keep or drop it, strip the bodies its level
//! does not keep, strip `managedFields`, set `level`. Works on the raw JSON text so that
//! everything else (key order, number spelling, escapes, blanks) is kept byte for byte.

use std::borrow::Cow;

use kaudit_model::json::{self, Kind};
use kaudit_model::{Level, Stage};

use crate::policy::Decision;

/// The event `raw` (the JSON text of one audit event) as it would have been written under
/// `decision`, or `None` when no event would exist: level `None`, or the event's stage
/// omitted.
///
/// * below `Request`, `requestObject` is removed; below `RequestResponse`, `responseObject`;
/// * with `omit_managed_fields`, `metadata.managedFields` is removed from the kept request
///   and response objects: from a single object, from every item of a list, from the
///   object of every row of a `Table`; a patch request body is logged as sent and keeps
///   them;
/// * `level` becomes the decision's level.
///
/// A level above the recorded one cannot bring back bodies that were not recorded: only
/// `level` changes then. Text that is not a JSON object is returned unchanged (when kept).
pub fn apply_decision(raw: &str, decision: &Decision) -> Option<String> {
    if decision.level == Level::None {
        return None;
    }
    let stage = json::member(raw, "stage").and_then(json::unescape_string);
    if let Some(stage) = stage.as_deref().and_then(|s| s.parse::<Stage>().ok())
        && decision.omit_stages.contains(stage)
    {
        return None;
    }
    let Some(members) = json::members(raw) else {
        return Some(raw.to_owned());
    };
    let verb = json::member(raw, "verb").and_then(json::unescape_string);
    let mut edits: Vec<Edit> = Vec::new();
    let mut has_level = false;
    for (key, value) in &members {
        match key.as_ref() {
            "level" => {
                has_level = true;
                edits.push(Edit::replace(
                    raw,
                    value,
                    format!("\"{}\"", decision.level.as_str()),
                ));
            }
            "requestObject" if decision.level < Level::Request => edits.push(Edit::remove(raw, value)),
            "responseObject" if decision.level < Level::RequestResponse => {
                edits.push(Edit::remove(raw, value))
            }
            "requestObject" if decision.omit_managed_fields && verb.as_deref() != Some("patch") => {
                if let Cow::Owned(stripped) = strip_managed_fields(value) {
                    edits.push(Edit::replace(raw, value, stripped));
                }
            }
            "responseObject" if decision.omit_managed_fields => {
                if let Cow::Owned(stripped) = strip_managed_fields(value) {
                    edits.push(Edit::replace(raw, value, stripped));
                }
            }
            _ => {}
        }
    }
    let mut out = splice(raw, &edits);
    if !has_level && let Some(brace) = out.find('{') {
        let separator = if members.is_empty() { "" } else { "," };
        out.insert_str(
            brace + 1,
            &format!("\"level\":\"{}\"{separator}", decision.level.as_str()),
        );
    }
    Some(out)
}

/// `value` (the raw text of a request or response object) without `metadata.managedFields`:
/// removed from the object itself, from each item of a list (`items`), or from the object
/// of each row of a `Table`. Borrowed when there is nothing to remove.
pub fn strip_managed_fields(value: &str) -> Cow<'_, str> {
    let Some(members) = json::members(value) else {
        return Cow::Borrowed(value);
    };
    let kind = members
        .iter()
        .find(|(k, _)| k == "kind")
        .and_then(|(_, v)| json::unescape_string(v));
    let mut edits = Vec::new();
    for (key, member) in &members {
        match key.as_ref() {
            "items" if json::kind(member) == Some(Kind::Array) => {
                let stripped = map_elements(member, strip_object_metadata);
                if let Cow::Owned(text) = stripped {
                    edits.push(Edit::replace(value, member, text));
                }
            }
            "rows" if kind.as_deref() == Some("Table") && json::kind(member) == Some(Kind::Array) => {
                let stripped = map_elements(member, |row| map_member(row, "object", strip_object_metadata));
                if let Cow::Owned(text) = stripped {
                    edits.push(Edit::replace(value, member, text));
                }
            }
            "metadata" => {
                if let Cow::Owned(text) = remove_member(member, "managedFields") {
                    edits.push(Edit::replace(value, member, text));
                }
            }
            _ => {}
        }
    }
    if edits.is_empty() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(splice(value, &edits))
    }
}

fn strip_object_metadata(object: &str) -> Cow<'_, str> {
    map_member(object, "metadata", |metadata| {
        remove_member(metadata, "managedFields")
    })
}

/// Replaces the value of every member `key` of the object `raw` by `f(value)`.
fn map_member<'a>(raw: &'a str, key: &str, f: impl Fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let Some(members) = json::members(raw) else {
        return Cow::Borrowed(raw);
    };
    let edits: Vec<Edit> = members
        .iter()
        .filter(|(k, _)| k == key)
        .filter_map(|(_, v)| match f(v) {
            Cow::Owned(text) => Some(Edit::replace(raw, v, text)),
            Cow::Borrowed(_) => None,
        })
        .collect();
    if edits.is_empty() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(splice(raw, &edits))
    }
}

/// Replaces every element of the array `raw` by `f(element)`.
fn map_elements<'a>(raw: &'a str, f: impl Fn(&str) -> Cow<'_, str>) -> Cow<'a, str> {
    let Some(items) = json::elements(raw) else {
        return Cow::Borrowed(raw);
    };
    let edits: Vec<Edit> = items
        .iter()
        .filter_map(|item| match f(item) {
            Cow::Owned(text) => Some(Edit::replace(raw, item, text)),
            Cow::Borrowed(_) => None,
        })
        .collect();
    if edits.is_empty() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(splice(raw, &edits))
    }
}

/// The object `raw` without its members named `key` (every occurrence).
fn remove_member<'a>(raw: &'a str, key: &str) -> Cow<'a, str> {
    let Some(members) = json::members(raw) else {
        return Cow::Borrowed(raw);
    };
    let edits: Vec<Edit> = members
        .iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| Edit::remove(raw, v))
        .collect();
    if edits.is_empty() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(splice(raw, &edits))
    }
}

/// A change to a member's value, located by byte offsets into the enclosing text.
struct Edit {
    /// Byte range of the value in the enclosing text.
    start: usize,
    end: usize,
    /// `None` removes the whole member (key, colon, value and one separating comma).
    replacement: Option<String>,
}

impl Edit {
    fn replace(outer: &str, value: &str, replacement: String) -> Edit {
        let start = offset_in(outer, value);
        Edit {
            start,
            end: start + value.len(),
            replacement: Some(replacement),
        }
    }

    fn remove(outer: &str, value: &str) -> Edit {
        let start = offset_in(outer, value);
        Edit {
            start,
            end: start + value.len(),
            replacement: None,
        }
    }
}

fn offset_in(outer: &str, inner: &str) -> usize {
    (inner.as_ptr() as usize)
        .saturating_sub(outer.as_ptr() as usize)
        .min(outer.len())
}

/// Applies edits (sorted or not) to the object or array text `raw`. A removed member takes
/// its key and the comma that separated it from its neighbour with it.
fn splice(raw: &str, edits: &[Edit]) -> String {
    let mut edits: Vec<&Edit> = edits.iter().collect();
    edits.sort_by_key(|e| e.start);
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    for edit in edits {
        if edit.start < copied {
            continue;
        }
        match &edit.replacement {
            Some(text) => {
                out.push_str(&raw[copied..edit.start]);
                out.push_str(text);
                copied = edit.end;
            }
            None => {
                let key_start = member_key_start(bytes, edit.start);
                // Text before the key back to the previous value (or the opening brace).
                let mut before = key_start;
                while before > 0 && is_blank(bytes[before - 1]) {
                    before -= 1;
                }
                if before > 0 && bytes[before - 1] == b',' && before > copied {
                    // `,"key":value`: drop from the comma.
                    out.push_str(&raw[copied..before - 1]);
                    copied = edit.end;
                } else {
                    // First member: drop through the following comma, if any.
                    out.push_str(&raw[copied..key_start]);
                    let mut after = edit.end;
                    while after < bytes.len() && is_blank(bytes[after]) {
                        after += 1;
                    }
                    if after < bytes.len() && bytes[after] == b',' {
                        after += 1;
                        while after < bytes.len() && is_blank(bytes[after]) {
                            after += 1;
                        }
                    }
                    copied = after;
                }
            }
        }
    }
    out.push_str(&raw[copied..]);
    out
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// The offset where the key of the member whose value starts at `value_start` begins:
/// back over blanks, the colon, blanks, and the key's string literal.
fn member_key_start(bytes: &[u8], value_start: usize) -> usize {
    let mut i = value_start;
    while i > 0 && is_blank(bytes[i - 1]) {
        i -= 1;
    }
    if i > 0 && bytes[i - 1] == b':' {
        i -= 1;
    }
    while i > 0 && is_blank(bytes[i - 1]) {
        i -= 1;
    }
    // The key is a string literal ending at `i`: find its opening quote, skipping escaped
    // quotes (a quote preceded by an odd number of backslashes).
    if i == 0 || bytes[i - 1] != b'"' {
        return i;
    }
    let mut j = i - 1;
    while j > 0 {
        j -= 1;
        if bytes[j] == b'"' {
            let mut backslashes = 0;
            while j > backslashes && bytes[j - 1 - backslashes] == b'\\' {
                backslashes += 1;
            }
            if backslashes % 2 == 0 {
                return j;
            }
        }
    }
    j
}

#[cfg(test)]
mod tests;
