//! One pass over the structure of a JSON text, sixteen bytes at a time: whether its arrays and
//! objects nest deeper than a limit, and where its first value closes. Also, on the same
//! pieces, the first blank outside strings (whether an event's text is already minified).
//!
//! Every body the intake reads goes through this pass before any parser, so it has to cost
//! little per byte. An audit event is mostly short strings (keys, names, timestamps), so
//! looking for the end of each string with a search call pays the call's start-up dozens of
//! times per event. Here each 16 bytes of input are classified at once with vector compares
//! (`wide`: SSE2 on x86-64, NEON on aarch64, plain code elsewhere): bit masks of the quotes,
//! backslashes, line ends, openers and closers; a prefix XOR of the quote mask tells which
//! bytes are inside a string. A piece with a backslash, a line end where lines restart, a
//! pending escape, or brackets that could cross the limit or bring the depth to zero is walked
//! byte by byte, so the answers are those of the plain byte loop (the tests hold both to the
//! same reference).

use wide::u8x16;

/// How line ends are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lines {
    /// Each line is a text of its own (JSON lines): depth and string state start afresh
    /// after every `\n`.
    Separate,
    /// The input is one document: a line end is a byte like any other (inside a string it
    /// stays inside, as the plain byte loop has it).
    Joined,
}

/// What the pass found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Outline {
    /// The offset of the first bracket that opens a level deeper than the limit. The pass
    /// stops there.
    pub(crate) too_deep_at: Option<usize>,
    /// The offset just past the first closing bracket that brings the depth from one back to
    /// zero: where the first array or object of the text ends.
    pub(crate) first_close: Option<usize>,
}

/// The state of the walk between bytes.
#[derive(Clone, Copy)]
struct State {
    depth: usize,
    in_string: bool,
    escaped: bool,
}

/// One 16-byte piece of input as bit masks, bit k for byte k.
struct Masks {
    quotes: u32,
    backslashes: u32,
    line_ends: u32,
    openers: u32,
    closers: u32,
}

#[inline(always)]
fn classify(piece: &[u8; 16]) -> Masks {
    let bytes = u8x16::new(*piece);
    let equal = |v: u8x16, byte: u8| v.simd_eq(u8x16::splat(byte)).to_bitmask();
    // `[` and `{` differ from each other only in bit 5, as do `]` and `}`; no other byte
    // becomes 0x7B or 0x7D when that bit is set.
    let folded = bytes | u8x16::splat(0x20);
    Masks {
        quotes: equal(bytes, b'"'),
        backslashes: equal(bytes, b'\\'),
        line_ends: equal(bytes, b'\n'),
        openers: equal(folded, b'{'),
        closers: equal(folded, b'}'),
    }
}

/// The bytes of a 16-byte piece that lie inside a string, given its quote mask and whether
/// a string is open at its start (no backslash in the piece). Bit k of the prefix XOR tells
/// whether an odd number of quotes lies in bytes 0..=k; a byte other than a quote is inside a
/// string when that parity differs from the state at the piece's start.
#[inline(always)]
fn inside_strings(quotes: u32, open_at_start: bool) -> u32 {
    let mut parity = quotes;
    parity ^= parity << 1;
    parity ^= parity << 2;
    parity ^= parity << 4;
    parity ^= parity << 8;
    if open_at_start { !parity } else { parity }
}

/// Walks `bytes` and reports what [`Outline`] describes, with `max_depth` levels allowed.
pub(crate) fn outline(bytes: &[u8], lines: Lines, max_depth: usize) -> Outline {
    let mut out = Outline::default();
    let mut state = State {
        depth: 0,
        in_string: false,
        escaped: false,
    };
    let mut pieces = bytes.chunks_exact(16);
    let mut at = 0usize;
    for chunk in pieces.by_ref() {
        let piece: &[u8; 16] = chunk.try_into().unwrap_or(&[0; 16]);
        let masks = classify(piece);
        if !state.escaped
            && masks.backslashes == 0
            && (lines == Lines::Joined || masks.line_ends == 0)
            && fast_piece(&masks, &mut state, max_depth)
        {
            at += 16;
            continue;
        }
        if walk(chunk, at, lines, max_depth, &mut state, &mut out) {
            return out;
        }
        at += 16;
    }
    walk(pieces.remainder(), at, lines, max_depth, &mut state, &mut out);
    out
}

/// Takes a piece with no backslash and (when lines are separate) no line end in one step, when
/// nothing in it needs the byte walk: its brackets can neither cross `max_depth` nor bring
/// the depth to zero. Answers false, with `state` untouched, otherwise.
#[inline(always)]
fn fast_piece(masks: &Masks, state: &mut State, max_depth: usize) -> bool {
    if (masks.openers | masks.closers) != 0 {
        let inside = inside_strings(masks.quotes, state.in_string);
        let opened = (masks.openers & !inside).count_ones() as usize;
        let closed = (masks.closers & !inside).count_ones() as usize;
        if state.depth + opened > max_depth || (closed > 0 && closed >= state.depth) {
            return false;
        }
        state.depth = state.depth + opened - closed;
    }
    if masks.quotes.count_ones() % 2 == 1 {
        state.in_string = !state.in_string;
    }
    true
}

/// Walks `chunk`, which starts at offset `at`, byte by byte. Answers true when the walk is
/// over (the limit was crossed).
fn walk(
    chunk: &[u8],
    at: usize,
    lines: Lines,
    max_depth: usize,
    state: &mut State,
    out: &mut Outline,
) -> bool {
    for (i, &byte) in chunk.iter().enumerate() {
        if byte == b'\n' && lines == Lines::Separate {
            *state = State {
                depth: 0,
                in_string: false,
                escaped: false,
            };
            continue;
        }
        if state.in_string {
            if state.escaped {
                state.escaped = false;
            } else if byte == b'\\' {
                state.escaped = true;
            } else if byte == b'"' {
                state.in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => state.in_string = true,
            b'[' | b'{' => {
                state.depth += 1;
                if state.depth > max_depth {
                    out.too_deep_at = Some(at + i);
                    return true;
                }
            }
            b']' | b'}' if state.depth > 0 => {
                state.depth -= 1;
                if state.depth == 0 && out.first_close.is_none() {
                    out.first_close = Some(at + i + 1);
                }
            }
            _ => {}
        }
    }
    false
}

/// The offset of the first JSON blank (space, tab, line end, carriage return) outside string
/// literals, or `None`: what tells whether an event's text is already minified. Runs on every
/// event the intake stores, on the same 16-byte pieces as [`outline`]. An unterminated string
/// holds no blank outside strings.
pub(crate) fn first_blank_outside_strings(bytes: &[u8]) -> Option<usize> {
    let mut in_string = false;
    let mut escaped = false;
    let mut pieces = bytes.chunks_exact(16);
    let mut at = 0usize;
    for chunk in pieces.by_ref() {
        let piece: &[u8; 16] = chunk.try_into().unwrap_or(&[0; 16]);
        let v = u8x16::new(*piece);
        let equal = |byte: u8| v.simd_eq(u8x16::splat(byte));
        let backslashes = equal(b'\\').to_bitmask();
        if !escaped && backslashes == 0 {
            let quotes = equal(b'"').to_bitmask();
            let blanks = (equal(b' ') | equal(b'\t') | equal(b'\n') | equal(b'\r')).to_bitmask();
            if blanks != 0 {
                let outside = blanks & !inside_strings(quotes, in_string);
                if outside != 0 {
                    return Some(at + outside.trailing_zeros() as usize);
                }
            }
            if quotes.count_ones() % 2 == 1 {
                in_string = !in_string;
            }
        } else if let Some(found) = blank_walk(chunk, &mut in_string, &mut escaped) {
            return Some(at + found);
        }
        at += 16;
    }
    blank_walk(pieces.remainder(), &mut in_string, &mut escaped).map(|found| at + found)
}

/// [`first_blank_outside_strings`] byte by byte over `chunk`, carrying the string state.
fn blank_walk(chunk: &[u8], in_string: &mut bool, escaped: &mut bool) -> Option<usize> {
    for (i, &byte) in chunk.iter().enumerate() {
        if *in_string {
            if *escaped {
                *escaped = false;
            } else if byte == b'\\' {
                *escaped = true;
            } else if byte == b'"' {
                *in_string = false;
            }
        } else if byte == b'"' {
            *in_string = true;
        } else if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') {
            return Some(i);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::{Lines, Outline, first_blank_outside_strings, outline};

    /// The pass written plainly, byte by byte: the reference the word-at-a-time one must
    /// agree with.
    fn reference(bytes: &[u8], lines: Lines, max_depth: usize) -> Outline {
        let mut out = Outline::default();
        let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
        for (at, &b) in bytes.iter().enumerate() {
            if b == b'\n' && lines == Lines::Separate {
                (depth, in_string, escaped) = (0, false, false);
            } else if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if b == b'"' {
                in_string = true;
            } else if b == b'[' || b == b'{' {
                depth += 1;
                if depth > max_depth {
                    out.too_deep_at = Some(at);
                    return out;
                }
            } else if (b == b']' || b == b'}') && depth > 0 {
                depth -= 1;
                if depth == 0 && out.first_close.is_none() {
                    out.first_close = Some(at + 1);
                }
            }
        }
        out
    }

    fn check(bytes: &[u8], max_depth: usize) -> [Outline; 2] {
        [Lines::Separate, Lines::Joined].map(|lines| {
            let fast = outline(bytes, lines, max_depth);
            assert_eq!(
                fast,
                reference(bytes, lines, max_depth),
                "{lines:?}, limit {max_depth}: {:?}",
                String::from_utf8_lossy(bytes)
            );
            fast
        })
    }

    #[test]
    fn nesting_is_bounded_outside_strings_only() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let [lines, _] = check(deep(128).as_bytes(), 128);
        assert_eq!(lines.too_deep_at, None);
        assert_eq!(lines.first_close, Some(256));
        assert_eq!(check(deep(129).as_bytes(), 128)[0].too_deep_at, Some(128));
        let in_string = format!(r#"{{"a":"{}"}}"#, "[{".repeat(1000));
        assert_eq!(check(in_string.as_bytes(), 128)[0].too_deep_at, None);
        let escaped_quote = format!(r#"{{"a":"x\"{}"}}"#, "[".repeat(500));
        assert_eq!(check(escaped_quote.as_bytes(), 128)[0].too_deep_at, None);
        let escaped_backslash = format!(r#"{{"a":"x\\"}}{}"#, deep(129));
        assert_eq!(check(escaped_backslash.as_bytes(), 128)[0].too_deep_at, Some(139));
    }

    #[test]
    fn separate_lines_restart_and_a_document_does_not() {
        // An unterminated string on the first line hides the brackets of the next one only
        // when the input is one document.
        let input = format!("{{\"a\":\"x\n{}", "[".repeat(10));
        let [lines, joined] = check(input.as_bytes(), 5);
        assert_eq!(lines.too_deep_at, Some(13));
        assert_eq!(joined.too_deep_at, None);
        // Depth carries over line ends in a document, not between JSON lines.
        let input = "[[[\n[[[\n";
        let [lines, joined] = check(input.as_bytes(), 4);
        assert_eq!(lines.too_deep_at, None);
        assert_eq!(joined.too_deep_at, Some(5));
        let [lines, joined] = check(b"  {\"a\":[1]}  \n{}", 8);
        assert_eq!(lines.first_close, Some(11));
        assert_eq!(joined.first_close, Some(11));
        let [lines, joined] = check(b"{\n}", 8);
        assert_eq!(lines.first_close, None);
        assert_eq!(joined.first_close, Some(3));
    }

    #[test]
    fn edge_cases_agree_with_the_reference() {
        for tricky in [
            &b""[..],
            b"\"",
            b"\"\\",
            b"\"abc\\\"",
            b"[\"\\\\\"]",
            b"{\"a\":\"\\\n\"}\n[",
            b"]]]]}}}}[",
            b"1234567\\\"[[[[[[[[",
            b"\"234567\\\"[[[[[[[[\"[[",
            b"[[[[[[[[]]]]]]]]]]]]]]]]",
            b"{{{{{{{{\"}}}}}}}}\"}}}}}}}}",
        ] {
            for limit in [0, 1, 2, 3, 7, 8, 9, 128] {
                check(tricky, limit);
            }
        }
    }

    #[test]
    fn word_at_a_time_and_plain_walks_agree_on_random_inputs() {
        // Half the inputs have no backslash and no line end, so that whole pieces take the
        // vector path.
        let alphabets: [&[u8]; 2] = [b"[]{}\"\\\nab :,", b"[]{}\"ab :,xyz"];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for length in 0..4000 {
            let opener_bias = next() % 3;
            let alphabet = alphabets[(length % 2) as usize];
            let body: Vec<u8> = (0..length % 300)
                .map(|_| {
                    let pick = (next() % (alphabet.len() as u64 + 8 * opener_bias)) as usize;
                    // Some inputs are mostly openers, so that the limit is crossed.
                    alphabet.get(pick).copied().unwrap_or(b'[')
                })
                .collect();
            let limit = (next() % 40) as usize;
            check(&body, limit);
        }
    }

    /// The first blank outside strings, byte by byte.
    fn first_blank_plainly(bytes: &[u8]) -> Option<usize> {
        let (mut in_string, mut escaped) = (false, false);
        for (at, &b) in bytes.iter().enumerate() {
            if in_string {
                if escaped {
                    escaped = false;
                } else if b == b'\\' {
                    escaped = true;
                } else if b == b'"' {
                    in_string = false;
                }
            } else if b == b'"' {
                in_string = true;
            } else if matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
                return Some(at);
            }
        }
        None
    }

    #[test]
    fn first_blank_outside_strings_agrees_with_the_byte_loop() {
        let alphabets: [&[u8]; 2] = [b"\"\\ \t\n\rab{}:,", b"\"abcdefgh{}:, "];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for length in 0..4000u64 {
            let alphabet = alphabets[(length % 2) as usize];
            // Blanks made rarer in most inputs, so that some are found late or not at all.
            let rarity = next() % 200;
            let body: Vec<u8> = (0..length % 200)
                .map(|_| {
                    let byte = alphabet[(next() % alphabet.len() as u64) as usize];
                    if matches!(byte, b' ' | b'\t' | b'\n' | b'\r') && next() % 200 < rarity {
                        b'x'
                    } else {
                        byte
                    }
                })
                .collect();
            assert_eq!(
                first_blank_outside_strings(&body),
                first_blank_plainly(&body),
                "{:?}",
                String::from_utf8_lossy(&body)
            );
        }
        for body in [
            &br#"{"a":"x y","b":[1,2]}"#[..],
            br#"{"a":"0123456789abcdef\" still inside ","b":1}"#,
            br#"{"a":"0123456789abcde\"," b":1}"#,
            b"\"unterminated and blank ",
        ] {
            assert_eq!(first_blank_outside_strings(body), first_blank_plainly(body));
        }
    }

    #[test]
    fn real_webhook_bodies_agree_with_the_reference() {
        let dir = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/samples/kube-apiserver-1.26/webhook"
        );
        let mut bodies = 0;
        for entry in std::fs::read_dir(dir).expect("the real webhook bodies") {
            let body = std::fs::read(entry.expect("entry").path()).expect("body");
            let [lines, _] = check(&body, 128);
            assert_eq!(lines.too_deep_at, None);
            assert!(lines.first_close.is_some());
            bodies += 1;
        }
        assert!(bodies > 0);
    }
}
