//! Helpers over raw JSON text: rendering a value the way Falco's k8saudit plugin prints it,
//! and navigating raw text by key, index or JSON pointer without building a tree.
//!
//! Everything here borrows from the input and never panics on malformed text: a lookup in
//! text that is not valid JSON simply finds nothing.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The text of a raw JSON value as Falco renders it: a string gives its unescaped contents,
/// any other value (number, boolean, null, object, array) its compact JSON text with the
/// original number spelling and key order.
pub fn render(raw: &str) -> Cow<'_, str> {
    let raw = raw.trim_matches(is_json_space);
    if raw.starts_with('"') {
        unescape_string(raw).unwrap_or(Cow::Borrowed(""))
    } else {
        minify(raw)
    }
}

/// The contents of a raw JSON string literal (with its quotes), borrowed when it has no
/// escapes. `None` when `raw` is not a valid JSON string.
pub fn unescape_string(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if !inner.contains('\\') {
        if inner.contains('"') {
            return None;
        }
        return Some(Cow::Borrowed(inner));
    }
    serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
}

/// Compact JSON text: `raw` without the blanks outside string literals. Borrowed when
/// there is nothing to remove.
pub fn minify(raw: &str) -> Cow<'_, str> {
    let Some(start) = crate::outline::first_blank_outside_strings(raw.as_bytes()) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(&raw[..start]);
    // `in_string` is false at `start`: the blank that stopped the scan is outside a string.
    let mut in_string = false;
    let mut escaped = false;
    for c in raw[start..].chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !is_json_space(c) {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// The JSON kind of a raw value, from its first character.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
    /// `"..."`
    String,
    /// a number
    Number,
    /// `true` or `false`
    Bool,
    /// `null`
    Null,
}

/// The kind of a raw JSON value. `None` for empty or invalid text.
pub fn kind(raw: &str) -> Option<Kind> {
    let raw = raw.trim_start_matches(is_json_space);
    match raw.as_bytes().first()? {
        b'{' => Some(Kind::Object),
        b'[' => Some(Kind::Array),
        b'"' => Some(Kind::String),
        b't' | b'f' => Some(Kind::Bool),
        b'n' => Some(Kind::Null),
        b'-' | b'0'..=b'9' => Some(Kind::Number),
        _ => None,
    }
}

/// The raw text of member `key` of the raw JSON object `raw`. With duplicate keys the first
/// one wins (as in the k8saudit plugin's JSON library). `None` when `raw` is not an object
/// or has no such member.
pub fn member<'a>(raw: &'a str, key: &str) -> Option<&'a str> {
    if kind(raw) != Some(Kind::Object) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    FindMember { key }
        .deserialize(&mut de)
        .ok()
        .flatten()
        .map(RawValue::get)
}

/// The raw text of element `index` of the raw JSON array `raw`.
pub fn element(raw: &str, index: usize) -> Option<&str> {
    if kind(raw) != Some(Kind::Array) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    FindElement { index }
        .deserialize(&mut de)
        .ok()
        .flatten()
        .map(RawValue::get)
}

/// The raw texts of the elements of a raw JSON array; `None` if `raw` is not an array.
pub fn elements(raw: &str) -> Option<Vec<&str>> {
    if kind(raw) != Some(Kind::Array) {
        return None;
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw).ok()?;
    Some(items.into_iter().map(RawValue::get).collect())
}

/// The members of a raw JSON object as (unescaped key, raw value) pairs, in document order;
/// `None` if `raw` is not an object.
pub fn members(raw: &str) -> Option<Vec<(Cow<'_, str>, &str)>> {
    if kind(raw) != Some(Kind::Object) {
        return None;
    }
    let mut de = serde_json::Deserializer::from_str(raw);
    CollectMembers.deserialize(&mut de).ok()
}

/// The raw text at an RFC 6901 JSON pointer. The leading `/` is optional; `~1` stands for
/// `/` and `~0` for `~`; a decimal segment indexes an array. The empty pointer is the whole
/// value.
pub fn pointer<'a>(raw: &'a str, pointer: &str) -> Option<&'a str> {
    let path = pointer.strip_prefix('/').unwrap_or(pointer);
    let mut current = raw.trim_matches(is_json_space);
    if path.is_empty() {
        return Some(current);
    }
    for segment in path.split('/') {
        let segment = unescape_pointer_segment(segment);
        current = match kind(current)? {
            Kind::Object => member(current, &segment)?,
            Kind::Array => element(current, parse_index(&segment)?)?,
            _ => return None,
        };
    }
    Some(current)
}

fn unescape_pointer_segment(segment: &str) -> Cow<'_, str> {
    if segment.contains('~') {
        Cow::Owned(segment.replace("~1", "/").replace("~0", "~"))
    } else {
        Cow::Borrowed(segment)
    }
}

fn parse_index(segment: &str) -> Option<usize> {
    if segment.is_empty() || !segment.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    segment.parse().ok()
}

/// JSON's four blank characters.
pub fn is_json_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r')
}

/// An object key, borrowed from the input unless it has escapes. (`Cow<str>` itself always
/// deserializes to an owned string: one allocation per key of every object looked into.)
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        de.deserialize_str(KeyVisitor)
    }
}

struct FindMember<'k> {
    key: &'k str,
}

impl<'de> DeserializeSeed<'de> for FindMember<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FindMember<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<Key<'de>>()?.map(|k| k.0) {
            if found.is_none() && key == self.key {
                found = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

struct FindElement {
    index: usize,
}

impl<'de> DeserializeSeed<'de> for FindElement {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for FindElement {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut i = 0;
        let mut found = None;
        loop {
            if i == self.index {
                match seq.next_element::<&'de RawValue>()? {
                    Some(v) => found = Some(v),
                    None => break,
                }
            } else if seq.next_element::<IgnoredAny>()?.is_none() {
                break;
            }
            i += 1;
        }
        Ok(found)
    }
}

struct CollectMembers;

impl<'de> DeserializeSeed<'de> for CollectMembers {
    type Value = Vec<(Cow<'de, str>, &'de str)>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for CollectMembers {
    type Value = Vec<(Cow<'de, str>, &'de str)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(key) = map.next_key::<Key<'de>>()?.map(|k| k.0) {
            let value = map.next_value::<&'de RawValue>()?;
            out.push((key, value.get()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blanks outside strings removed, byte by byte: the reference for [`minify`].
    fn minify_plainly(raw: &str) -> String {
        let (mut out, mut in_string, mut escaped) = (String::new(), false, false);
        for c in raw.chars() {
            if in_string {
                out.push(c);
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_string = false;
                }
            } else if c == '"' {
                in_string = true;
                out.push(c);
            } else if !is_json_space(c) {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn minify_removes_blanks_outside_strings_only() {
        let alphabet = ['"', '\\', ' ', '\n', 'a', '{', ':', 'é', '\t'];
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for length in 0..3000 {
            let text: String = (0..length % 60)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect();
            assert_eq!(minify(&text), minify_plainly(&text), "{text:?}");
        }
        assert!(matches!(minify(r#"{"a":"x y","b":[1,2]}"#), Cow::Borrowed(_)));
        assert_eq!(minify("{ \"a\" :\n\"x \\\" y\" }"), "{\"a\":\"x \\\" y\"}");
    }

    #[test]
    fn render_follows_falco() {
        assert_eq!(render(r#""pods""#), "pods");
        assert_eq!(render(r#""a\u0026b""#), "a&b");
        assert_eq!(render("201"), "201");
        assert_eq!(render("1.50"), "1.50");
        assert_eq!(render("true"), "true");
        assert_eq!(render("null"), "null");
        assert_eq!(
            render(r#"{ "a" : [1, 2], "b":"x y" }"#),
            r#"{"a":[1,2],"b":"x y"}"#
        );
    }

    #[test]
    fn pointer_walks_objects_and_arrays() {
        let doc = r#"{"annotations":{"authorization.k8s.io/decision":"allow"},
            "spec":{"containers":[{"name":"a"},{"name":"b"}]},"a~b":1}"#;
        assert_eq!(
            pointer(doc, "/annotations/authorization.k8s.io~1decision"),
            Some(r#""allow""#)
        );
        assert_eq!(pointer(doc, "spec/containers/1/name"), Some(r#""b""#));
        assert_eq!(pointer(doc, "/a~0b"), Some("1"));
        assert_eq!(pointer(doc, "/spec/containers/2"), None);
        assert_eq!(pointer(doc, "/spec/containers/x"), None);
        assert_eq!(pointer("not json", "/a"), None);
    }

    #[test]
    fn first_duplicate_member_wins() {
        assert_eq!(member(r#"{"a":1,"a":2}"#, "a"), Some("1"));
    }
}
