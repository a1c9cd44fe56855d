//! Walking raw JSON text the way the k8saudit plugin walks its parsed events, so that odd
//! shapes (a container list that is an object, nested arrays, missing members) give the same
//! values as in Falco.
//!
//! The plugin's recursive lookup takes a list of keys. Before each key, if the current value
//! is an array, it either visits every element with the remaining keys (no index argument;
//! an element where the path breaks contributes a "missing" entry) or, with an index
//! argument, steps into that element (out of range: no value at all). Then it looks the key up
//! (an object member; the empty key stands for the value itself). At the end of the keys the
//! current value is the result, even if it is an array.

use kaudit_model::json::{self, Kind};

/// The path led nowhere: the field has no value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Missing;

/// Walks `keys` from `current`, appending results to `out`: `Some(raw)` for each value
/// reached, `None` for each array element where the path broke.
pub(super) fn walk<'e>(
    current: &'e str,
    index: Option<u64>,
    keys: &[&str],
    out: &mut Vec<Option<&'e str>>,
) -> Result<(), Missing> {
    let mut current = current;
    for (i, key) in keys.iter().enumerate() {
        if json::kind(current) == Some(Kind::Array) {
            match index {
                None => {
                    fan_out(
                        json::elements(current).unwrap_or_default().iter().copied(),
                        &keys[i..],
                        out,
                    );
                    return Ok(());
                }
                Some(index) => current = element(current, index).ok_or(Missing)?,
            }
        }
        current = step(current, key).ok_or(Missing)?;
    }
    out.push(Some(current));
    Ok(())
}

/// Visits each element with the remaining keys; an element where the path breaks contributes
/// a missing entry.
pub(super) fn fan_out<'e>(
    items: impl Iterator<Item = &'e str>,
    keys: &[&str],
    out: &mut Vec<Option<&'e str>>,
) {
    for item in items {
        // A failed walk has pushed nothing: failures only happen before any fan-out.
        if walk(item, None, keys, out).is_err() {
            out.push(None);
        }
    }
}

/// After stepping into element `item` of an array for the first key: looks that key up in the
/// element without checking whether the element is itself an array, then walks on.
pub(super) fn walk_in_element<'e>(
    item: &'e str,
    index: Option<u64>,
    keys: &[&str],
    out: &mut Vec<Option<&'e str>>,
) -> Result<(), Missing> {
    match keys.split_first() {
        None => {
            out.push(Some(item));
            Ok(())
        }
        Some((first, rest)) => walk(step(item, first).ok_or(Missing)?, index, rest, out),
    }
}

/// One key of the plugin's recursive lookup: the empty key is the value itself, any other key
/// an object member.
fn step<'e>(current: &'e str, key: &str) -> Option<&'e str> {
    if key.is_empty() {
        Some(current)
    } else {
        get(current, key)
    }
}

/// fastjson's `Get(key)`: an object member (the first of duplicates), or on an array the
/// element whose position `key` spells in Go's `strconv.Atoi` syntax; nothing on other
/// values.
pub(super) fn get<'e>(current: &'e str, key: &str) -> Option<&'e str> {
    match json::kind(current)? {
        Kind::Object => json::member(current, key),
        Kind::Array => json::element(current, go_atoi_index(key)?),
        _ => None,
    }
}

/// Follows a chain of keys with [`get`] (fastjson's `Get(keys...)`).
pub(super) fn get_path<'e>(current: &'e str, keys: &[&str]) -> Option<&'e str> {
    keys.iter().try_fold(current, |v, k| get(v, k))
}

/// Element `index` of an array, if it is in range.
fn element(array: &str, index: u64) -> Option<&str> {
    json::element(array, usize::try_from(index).ok()?)
}

/// A non-negative array position as Go's `strconv.Atoi` reads it: an optional sign, then
/// decimal digits (leading zeros allowed); `-0` is 0, other negatives select nothing.
fn go_atoi_index(text: &str) -> Option<usize> {
    let (negative, digits) = match text.as_bytes().first()? {
        b'+' => (false, &text[1..]),
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    if negative && value != 0 {
        return None;
    }
    usize::try_from(value).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(doc: &str, index: Option<u64>, keys: &[&str], expect: Result<Vec<Option<&str>>, Missing>) {
        let mut out = Vec::new();
        let got = walk(doc, index, keys, &mut out).map(|()| out);
        assert_eq!(got, expect, "{doc} {index:?} {keys:?}");
    }

    #[test]
    fn walks_like_the_plugin() {
        let pod = r#"{"c":[{"n":"a","s":{"p":true}},{"n":"b"},[{"n":"x"}],7]}"#;
        check(
            pod,
            None,
            &["c", "n"],
            Ok(vec![Some(r#""a""#), Some(r#""b""#), Some(r#""x""#), None]),
        );
        check(
            pod,
            None,
            &["c", "s", "p"],
            Ok(vec![Some("true"), None, None, None]),
        );
        check(pod, Some(1), &["c", "n"], Ok(vec![Some(r#""b""#)]));
        check(pod, Some(4), &["c", "n"], Err(Missing));
        // With an index, an element that is itself an array is not walked into.
        check(pod, Some(2), &["c", "n"], Err(Missing));
        check(
            pod,
            None,
            &["c"],
            Ok(vec![Some(
                r#"[{"n":"a","s":{"p":true}},{"n":"b"},[{"n":"x"}],7]"#,
            )]),
        );
        check(pod, None, &["nope", "n"], Err(Missing));
        check(
            r#"{"c":{"n":"solo"}}"#,
            Some(3),
            &["c", "n"],
            Ok(vec![Some(r#""solo""#)]),
        );
        check(
            r#"{"v":[{"a":1},{"b":2}]}"#,
            None,
            &["v", ""],
            Ok(vec![Some(r#"{"a":1}"#), Some(r#"{"b":2}"#)]),
        );
    }

    #[test]
    fn go_atoi_positions() {
        for (text, want) in [
            ("0", Some(0)),
            ("01", Some(1)),
            ("+2", Some(2)),
            ("-0", Some(0)),
            ("-1", None),
        ] {
            assert_eq!(go_atoi_index(text), want, "{text}");
        }
        for text in ["", "+", "1a", " 1", "99999999999999999999"] {
            assert_eq!(go_atoi_index(text), None, "{text}");
        }
    }
}
