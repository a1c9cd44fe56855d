//! File identity by content: a hash of the file's first non-empty line.
//!
//! The apiserver only appends to its log and rotation renames the file (and may gzip it), so
//! the first line of a file never changes while the file lives, under any name or compression.
//! Every audit line carries a unique `auditID` and timestamps, so two different files do not
//! share a first line. The fingerprint therefore covers the bytes from the start of the file
//! through the newline ending the first line that has content (leading empty lines included),
//! or the first `fingerprint_max_bytes` bytes when that line is longer.

use std::fmt;
use std::str::FromStr;

/// The identity of a followed file, stable across rename and gzip compression.
///
/// Displayed (and stored in the checkpoint file) as 16 lowercase hexadecimal digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(u64);

impl Fingerprint {
    /// The fingerprint as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// The fingerprint the tailer gives a file whose content starts with `start`, once
    /// `start` settles it: its first line with content is complete, or it holds `max_bytes`
    /// bytes (the tailer's `fingerprint_max_bytes`). `None` while more bytes are needed.
    pub fn of_file_start(start: &[u8], max_bytes: usize) -> Option<Fingerprint> {
        match identify(&start[..start.len().min(max_bytes)], max_bytes, false) {
            Head::Ready(identity) => Some(identity.fingerprint),
            Head::Pending | Head::Empty => None,
        }
    }

    /// Wraps a number taken from [`Fingerprint::as_u64`].
    pub fn from_u64(value: u64) -> Fingerprint {
        Fingerprint(value)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// The text was not 16 hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a fingerprint is 16 hexadecimal digits")]
pub struct ParseFingerprintError;

impl FromStr for Fingerprint {
    type Err = ParseFingerprintError;

    fn from_str(text: &str) -> Result<Fingerprint, ParseFingerprintError> {
        if text.len() != 16 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ParseFingerprintError);
        }
        u64::from_str_radix(text, 16)
            .map(Fingerprint)
            .map_err(|_| ParseFingerprintError)
    }
}

/// A fingerprint and how many leading bytes of the file it covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) fingerprint: Fingerprint,
    pub(crate) covered: usize,
}

/// What the first bytes of a file say about its identity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Head {
    /// The identity is settled.
    Ready(Identity),
    /// The first line with content is not complete yet and the file may still grow.
    Pending,
    /// The file is empty.
    Empty,
}

/// Computes the identity from the first bytes of a file (`head` holds at most `max_bytes`,
/// fewer only when the file is shorter). `immutable` says the file can no longer grow (it
/// was rotated), so whatever exists is the whole head.
pub(crate) fn identify(head: &[u8], max_bytes: usize, immutable: bool) -> Head {
    if head.is_empty() {
        return Head::Empty;
    }
    let end = first_content_line_end(head);
    let covered = match end {
        Some(end) => end,
        None if head.len() >= max_bytes => max_bytes,
        None if immutable => head.len(),
        None => return Head::Pending,
    };
    Head::Ready(Identity {
        fingerprint: hash(&head[..covered]),
        covered,
    })
}

/// The offset just past the newline that ends the first line with content.
fn first_content_line_end(head: &[u8]) -> Option<usize> {
    let content = head.iter().position(|&b| b != b'\n' && b != b'\r')?;
    memchr::memchr(b'\n', &head[content..]).map(|i| content + i + 1)
}

/// FNV-1a over the bytes, then a final avalanche mix with the length. Stable across
/// platforms and compiler versions (the value is persisted), unlike `std`'s hasher.
fn hash(bytes: &[u8]) -> Fingerprint {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for &byte in bytes {
        state ^= u64::from(byte);
        state = state.wrapping_mul(0x0000_0100_0000_01b3);
    }
    state ^= bytes.len() as u64;
    state = (state ^ (state >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    state = (state ^ (state >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    Fingerprint(state ^ (state >> 31))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `identify` settles on, rendered as the covered bytes or the state.
    fn check(head: &str, max_bytes: usize, immutable: bool, expected: &str) {
        let got = match identify(head.as_bytes(), max_bytes, immutable) {
            Head::Ready(identity) => {
                assert_eq!(identity.fingerprint, hash(&head.as_bytes()[..identity.covered]));
                format!("covers {:?}", &head[..identity.covered])
            }
            Head::Pending => "pending".to_owned(),
            Head::Empty => "empty".to_owned(),
        };
        assert_eq!(
            got, expected,
            "head {head:?} max {max_bytes} immutable {immutable}"
        );
    }

    #[test]
    fn identity_covers_the_first_line_with_content() {
        check("", 64, false, "empty");
        check("", 64, true, "empty");
        check("{\"a\":1}", 64, false, "pending");
        check("{\"a\":1}", 64, true, "covers \"{\\\"a\\\":1}\"");
        check("one\ntwo\n", 64, false, "covers \"one\\n\"");
        check("\n\r\nfirst\nsecond", 64, false, "covers \"\\n\\r\\nfirst\\n\"");
        check("one\r\ntwo\n", 64, false, "covers \"one\\r\\n\"");
        check("\n\n", 64, false, "pending");
        check("abcdefgh", 4, false, "covers \"abcd\"");
    }

    #[test]
    fn fingerprint_text_round_trips() {
        for value in [0, 1, u64::MAX, 0x0123_4567_89ab_cdef] {
            let fingerprint = Fingerprint(value);
            assert_eq!(fingerprint.to_string().parse::<Fingerprint>(), Ok(fingerprint));
        }
        for bad in [
            "",
            "123",
            "0123456789abcdeg",
            "+123456789abcdef",
            "0123456789abcdef0",
        ] {
            assert_eq!(bad.parse::<Fingerprint>(), Err(ParseFingerprintError), "{bad:?}");
        }
    }

    #[test]
    fn fingerprint_values_are_stable() {
        // Persisted in checkpoint files: a change here strands every deployed checkpoint.
        assert_eq!(hash(b"line\n").to_string(), "0a117e92d414df32");
    }
}
