//! `fnmatch(3)` as the `glob` and `iglob` operators use it: no `FNM_PATHNAME` (a `*` also
//! matches `/`), no `FNM_PERIOD`, backslash escapes the next character, `[...]` sets with
//! `!`/`^` negation, ranges and `[:class:]` names. Bytes are compared one by one; `iglob`
//! folds ASCII case.

/// True when `text` matches the glob `pattern`.
pub(crate) fn glob_match(pattern: &[u8], text: &[u8], fold_case: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if fold_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let mut p = 0;
    let mut t = 0;
    // After a `*`: where the pattern resumes and the next text position to try.
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    star = Some((p, t));
                    continue;
                }
                b'?' if t < text.len() => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'?' => {}
                b'[' => {
                    if let Some((matches, next)) = bracket(pattern, p, text.get(t).copied(), fold_case) {
                        if t < text.len() && matches {
                            p = next;
                            t += 1;
                            continue;
                        }
                    } else if t < text.len() && text[t] == b'[' {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if t < text.len() && eq(pattern[p + 1], text[t]) {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if t < text.len() && eq(c, text[t]) {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        } else if t == text.len() {
            return true;
        }
        match star {
            Some((sp, st)) if st < text.len() => {
                star = Some((sp, st + 1));
                p = sp;
                t = st + 1;
            }
            _ => return false,
        }
    }
}

/// Reads the set starting at `pattern[start] == '['`. Returns whether `c` is in it and the
/// pattern position after it, or `None` when the set is not closed (the `[` is then an
/// ordinary character).
fn bracket(pattern: &[u8], start: usize, c: Option<u8>, fold_case: bool) -> Option<(bool, usize)> {
    let mut i = start + 1;
    let negate = matches!(pattern.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let c = c.unwrap_or(0);
    let mut found = false;
    let mut first = true;
    loop {
        let b = *pattern.get(i)?;
        if b == b']' && !first {
            i += 1;
            break;
        }
        first = false;
        if b == b'[' && pattern.get(i + 1) == Some(&b':') {
            let name_start = i + 2;
            let close = pattern[name_start..].windows(2).position(|w| w == b":]")?;
            let name = &pattern[name_start..name_start + close];
            if class_matches(name, c)
                || (fold_case
                    && (class_matches(name, c.to_ascii_lowercase())
                        || class_matches(name, c.to_ascii_uppercase())))
            {
                found = true;
            }
            i = name_start + close + 2;
            continue;
        }
        let (lo, next) = if b == b'\\' {
            (*pattern.get(i + 1)?, i + 2)
        } else {
            (b, i + 1)
        };
        i = next;
        let mut hi = lo;
        if pattern.get(i) == Some(&b'-') && pattern.get(i + 1).is_some_and(|&n| n != b']') {
            let n = pattern[i + 1];
            let (h, next) = if n == b'\\' {
                (*pattern.get(i + 2)?, i + 3)
            } else {
                (n, i + 2)
            };
            hi = h;
            i = next;
        }
        let in_range = |x: u8| lo <= x && x <= hi;
        if in_range(c)
            || (fold_case && (in_range(c.to_ascii_lowercase()) || in_range(c.to_ascii_uppercase())))
        {
            found = true;
        }
    }
    Some((found != negate, i))
}

fn class_matches(name: &[u8], c: u8) -> bool {
    match name {
        b"alpha" => c.is_ascii_alphabetic(),
        b"digit" => c.is_ascii_digit(),
        b"alnum" => c.is_ascii_alphanumeric(),
        b"upper" => c.is_ascii_uppercase(),
        b"lower" => c.is_ascii_lowercase(),
        b"space" => matches!(c, b' ' | b'\t' | b'\n' | b'\r' | b'\x0b' | b'\x0c'),
        b"blank" => matches!(c, b' ' | b'\t'),
        b"xdigit" => c.is_ascii_hexdigit(),
        b"punct" => c.is_ascii_punctuation(),
        b"print" => (0x20..0x7f).contains(&c),
        b"graph" => c.is_ascii_graphic(),
        b"cntrl" => c.is_ascii_control(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[track_caller]
    fn check(pattern: &str, text: &str, fold_case: bool, expected: bool) {
        assert_eq!(
            glob_match(pattern.as_bytes(), text.as_bytes(), fold_case),
            expected,
            "{pattern:?} vs {text:?}"
        );
    }

    #[test]
    fn fnmatch_without_pathname() {
        check("/api/*", "/api/v1/pods", false, true);
        check("*", "", false, true);
        check("a*b*c", "axxbyyc", false, true);
        check("a*b*c", "axxbyy", false, false);
        check("?at", "cat", false, true);
        check("?at", "at", false, false);
        check("[abc]x", "bx", false, true);
        check("[!abc]x", "bx", false, false);
        check("[^abc]x", "dx", false, true);
        check("[a-c]", "b", false, true);
        check("[]]", "]", false, true);
        check("[[:digit:]]*", "7up", false, true);
        check("\\*", "*", false, true);
        check("\\*", "x", false, false);
        check("[unclosed", "[unclosed", false, true);
        check("*.log", ".log", false, true);
        check("KUBE*", "kubectl", true, true);
        check("KUBE*", "kubectl", false, false);
        check("[A-C]x", "bx", true, true);
        check("**a", "ba", false, true);
    }
}
