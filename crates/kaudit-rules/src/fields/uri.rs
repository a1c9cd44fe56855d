//! `ka.uri.param[name]`: the first value of a query parameter of `requestURI`, read as the
//! k8saudit plugin reads it with Go's `net/url` (`url.Parse`, then `url.ParseQuery` of the raw
//! query, then the first value of the exact decoded name).
//!
//! Either step failing leaves the field without a value, even when the wanted parameter itself
//! is fine: a bad `%` escape anywhere in the path, the fragment or any query pair, a `;` in a
//! query pair, a control character anywhere, a colon in the first segment of a relative path,
//! or an invalid host or port after `//`. Decoded bytes that are not UTF-8 are replaced with
//! U+FFFD. Host validation covers Go's character, port and bracket rules, not its full IPv6
//! address check (irrelevant for apiserver request URIs, which are paths).

use std::borrow::Cow;

/// What `%`-unescaping is for, as in Go's `net/url`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Path,
    Fragment,
    Host,
    Zone,
    UserPassword,
    QueryComponent,
}

/// The first value of parameter `name` in the query of `uri`, or `None` when it is absent or
/// the URI or its query does not parse.
pub(super) fn query_param<'u>(uri: &'u str, name: &str) -> Option<Cow<'u, str>> {
    let raw_query = parse_raw_query(uri)?;
    let mut first = None;
    for pair in raw_query.split('&') {
        // Every pair is checked, even after a match: ParseQuery reports the first error and
        // the plugin then gives no value.
        if pair.contains(';') {
            return None;
        }
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = unescape(key, Mode::QueryComponent)?;
        let value = unescape(value, Mode::QueryComponent)?;
        if first.is_none() && key == name {
            first = Some(value);
        }
    }
    first
}

/// `url.Parse(uri)` and its `RawQuery`; `None` when Go would return an error.
fn parse_raw_query(uri: &str) -> Option<&str> {
    let (rest, fragment) = match uri.split_once('#') {
        Some((r, f)) => (r, Some(f)),
        None => (uri, None),
    };
    if rest.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    let raw_query = parse_without_fragment(rest)?;
    if let Some(fragment) = fragment {
        unescape(fragment, Mode::Fragment)?;
    }
    Some(raw_query)
}

fn parse_without_fragment(raw: &str) -> Option<&str> {
    if raw == "*" {
        return Some("");
    }
    let (scheme, rest) = scheme(raw)?;
    let (rest, raw_query) = if rest.ends_with('?') && rest.bytes().filter(|&b| b == b'?').count() == 1 {
        (&rest[..rest.len() - 1], "")
    } else {
        rest.split_once('?').unwrap_or((rest, ""))
    };
    if !rest.starts_with('/') {
        if !scheme.is_empty() {
            // An opaque URL (`mailto:x?y`): nothing else to check.
            return Some(raw_query);
        }
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return None;
        }
    }
    let mut path = rest;
    if (!scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, tail) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        parse_authority(authority)?;
        path = tail;
    }
    unescape(path, Mode::Path)?;
    Some(raw_query)
}

/// Go's `getScheme`: letters, then letters, digits, `+`, `-` or `.`, then `:`. Returns the
/// scheme (possibly empty) and the rest; `None` for a leading `:`.
fn scheme(raw: &str) -> Option<(&str, &str)> {
    for (i, b) in raw.bytes().enumerate() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b':' if i == 0 => return None,
            b':' => return Some((&raw[..i], &raw[i + 1..])),
            _ => return Some(("", raw)),
        }
    }
    Some(("", raw))
}

fn parse_authority(authority: &str) -> Option<()> {
    match authority.rfind('@') {
        None => parse_host(authority),
        Some(i) => {
            parse_host(&authority[i + 1..])?;
            let userinfo = &authority[..i];
            if !userinfo.chars().all(valid_userinfo_char) {
                return None;
            }
            match userinfo.split_once(':') {
                None => unescape(userinfo, Mode::UserPassword).map(drop),
                Some((user, password)) => {
                    unescape(user, Mode::UserPassword)?;
                    unescape(password, Mode::UserPassword).map(drop)
                }
            }
        }
    }
}

fn valid_userinfo_char(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || matches!(
            c,
            '-' | '.'
                | '_'
                | ':'
                | '~'
                | '!'
                | '$'
                | '&'
                | '\''
                | '('
                | ')'
                | '*'
                | '+'
                | ','
                | ';'
                | '='
                | '%'
                | '@'
        )
}

fn parse_host(host: &str) -> Option<()> {
    if host.starts_with('[') {
        let close = host.rfind(']')?;
        if !valid_optional_port(&host[close + 1..]) {
            return None;
        }
        return match host[..close].find("%25") {
            Some(zone) => {
                unescape(&host[..zone], Mode::Host)?;
                unescape(&host[zone..close], Mode::Zone)?;
                unescape(&host[close..], Mode::Host).map(drop)
            }
            None => unescape(host, Mode::Host).map(drop),
        };
    }
    if let Some(colon) = host.rfind(':')
        && !valid_optional_port(&host[colon..])
    {
        return None;
    }
    unescape(host, Mode::Host).map(drop)
}

fn valid_optional_port(port: &str) -> bool {
    match port.strip_prefix(':') {
        None => port.is_empty(),
        Some(digits) => digits.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Go's `shouldEscape` for the host and zone modes: true for the ASCII bytes that may not
/// appear unescaped in a host.
fn host_byte_needs_escape(b: u8) -> bool {
    !(b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_'
                | b'.'
                | b'~'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        ))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Go's `unescape`: decodes `%XX` (and `+` as a space in query components), failing where Go
/// fails. Borrowed when there is nothing to decode.
fn unescape(s: &str, mode: Mode) -> Option<Cow<'_, str>> {
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut decode = false;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let (hi, lo) = (hex(*bytes.get(i + 1)?)?, hex(*bytes.get(i + 2)?)?);
                let is_25 = hi == 2 && lo == 5;
                if mode == Mode::Host && hi < 8 && !is_25 {
                    return None;
                }
                if mode == Mode::Zone {
                    let v = hi << 4 | lo;
                    if !is_25 && v != b' ' && host_byte_needs_escape(v) {
                        return None;
                    }
                }
                decode = true;
                i += 3;
            }
            b'+' => {
                decode |= mode == Mode::QueryComponent;
                i += 1;
            }
            b => {
                if matches!(mode, Mode::Host | Mode::Zone) && b < 0x80 && host_byte_needs_escape(b) {
                    return None;
                }
                i += 1;
            }
        }
    }
    if !decode {
        return Some(Cow::Borrowed(s));
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                // Validated above: two hex digits follow.
                let (hi, lo) = (hex(bytes[i + 1]).unwrap_or(0), hex(bytes[i + 2]).unwrap_or(0));
                out.push(hi << 4 | lo);
                i += 3;
            }
            b'+' if mode == Mode::QueryComponent => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    Some(match String::from_utf8(out) {
        Ok(text) => Cow::Owned(text),
        Err(e) => Cow::Owned(String::from_utf8_lossy(e.as_bytes()).into_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::query_param;

    fn check(uri: &str, name: &str, expect: Option<&str>) {
        assert_eq!(query_param(uri, name).as_deref(), expect, "{uri} [{name}]");
    }

    #[test]
    fn reads_query_parameters_like_go() {
        let exec = "/api/v1/namespaces/default/pods/p/exec?command=bash&command=-c&command=ls%20-l&container=c&stdin=true";
        check(exec, "command", Some("bash"));
        check(exec, "container", Some("c"));
        check(exec, "tty", None);
        check("/x?a=1+2&b=%7E&c", "a", Some("1 2"));
        check("/x?a=1+2&b=%7E&c", "b", Some("~"));
        check("/x?a=1+2&b=%7E&c", "c", Some(""));
        check("/x?a%3D=v", "a=", Some("v"));
        check("/x?a=1#frag", "a", Some("1"));
        check("/x?a=1&a=2", "a", Some("1"));
        check("http://h:80/p?a=1", "a", Some("1"));
        check("/x??a=1", "?a", Some("1"));
        check("/x?a=%ff", "a", Some("\u{fffd}"));
        // Only the first path segment may not hold a colon.
        check("x/a:b?a=1", "a", Some("1"));
    }

    #[test]
    fn any_parse_error_means_no_value() {
        check("/x?a=1&b=%zz", "a", None);
        check("/x?a=1;b=2", "a", None);
        check("/x?a=1&b;=2", "a", None);
        check("/p%zz?a=1", "a", None);
        check("/x?a=1#%zz", "a", None);
        check("/x?a=1\u{7f}", "a", None);
        check("a:b/c?a=1", "a", Some("1"));
        check("ab:c", "a", None);
        check("1a:b?a=1", "a", None);
        check(":x?a=1", "a", None);
        check("//host:port/x?a=1", "a", None);
        check("//ho st/x?a=1", "a", None);
        check("//[::1]:80/x?a=1", "a", Some("1"));
        check("//[::1/x?a=1", "a", None);
        check("//us er@h/x?a=1", "a", None);
        check("/x?a=%4", "a", None);
    }
}
