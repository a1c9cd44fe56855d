//! The `getopt(args, optstring)` transformer: reading short options out of an argument list the
//! way getopt(3) does, as libsinsp implements it (Falco 0.44, libs 0.25).
//!
//! Rules, token by token: `--` ends the options; a longer token starting with `--` (a long
//! option) is skipped; an empty token, `-` alone or a token not starting with `-` ends the
//! options (no GNU reordering). In a token like `-nt`, each character is an option: one the
//! optstring does not list gives `?`; one followed by `:` in the optstring takes the rest of
//! the token, or else the next token whatever it looks like, or else nothing (an empty
//! value). A leading `:` in the optstring and doubled `::` change nothing; any byte but `:`
//! can be an option.
//!
//! Without a selector the result is a list: each option's character, followed by its value
//! when it takes one, `?` for unknown options, and only an empty string for an option whose
//! value is missing. With a selector (`getopt(...)[t]`) the result is the value of the last
//! occurrence of that option (its character when it takes no value, an empty string when its
//! value is missing), or no value when the option does not occur.

use std::borrow::Cow;

/// A parsed optstring: which bytes are options, and which of them take a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct OptString {
    valid: [bool; 256],
    takes_value: [bool; 256],
}

impl OptString {
    pub(crate) fn parse(optstring: &str) -> OptString {
        let bytes = optstring.as_bytes();
        let mut opts = OptString {
            valid: [false; 256],
            takes_value: [false; 256],
        };
        let mut i = usize::from(bytes.first() == Some(&b':'));
        while i < bytes.len() {
            let b = bytes[i];
            if b != b':' {
                opts.valid[usize::from(b)] = true;
                if bytes.get(i + 1) == Some(&b':') {
                    opts.takes_value[usize::from(b)] = true;
                    i += 1;
                }
            }
            i += 1;
        }
        opts
    }
}

/// What `getopt` yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Getopt {
    /// Without a selector: the options and values, in order (possibly none).
    List(Vec<String>),
    /// With a selector: the selected value, or `None` when the option does not occur.
    Selected(Option<String>),
}

/// Reads the options of `args` according to `opts`, keeping only option `selector` when
/// given.
pub(crate) fn getopt(args: &[Cow<'_, str>], opts: &OptString, selector: Option<u8>) -> Getopt {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut list = Vec::new();
    let mut selected = None;
    let mut emit = |name: &[u8], value: Option<&[u8]>| match selector {
        Some(_) => selected = Some(text(value.unwrap_or(name))),
        None => {
            list.push(text(name));
            if let Some(v) = value {
                list.push(text(v));
            }
        }
    };
    let mut index = 0;
    while index < args.len() {
        let token = args[index].as_bytes();
        if token == b"--" {
            break;
        }
        if token.len() > 2 && token.starts_with(b"--") {
            index += 1;
            continue;
        }
        if token.len() < 2 || token[0] != b'-' {
            break;
        }
        for k in 1..token.len() {
            let option = token[k];
            if option == b':' || !opts.valid[usize::from(option)] {
                if selector.is_none() {
                    emit(b"?", None);
                }
                continue;
            }
            let wanted = selector.is_none_or(|s| s == option);
            let name = &token[k..=k];
            if !opts.takes_value[usize::from(option)] {
                if wanted {
                    emit(name, None);
                }
                continue;
            }
            let value = if k + 1 < token.len() {
                Some(&token[k + 1..])
            } else if index + 1 < args.len() {
                index += 1;
                Some(args[index].as_bytes())
            } else {
                None
            };
            if wanted {
                match value {
                    Some(v) => emit(name, Some(v)),
                    None => emit(b"", None),
                }
            }
            break;
        }
        index += 1;
    }
    match selector {
        Some(_) => Getopt::Selected(selected),
        None => Getopt::List(list),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs getopt over `args` and compares the list, or the selected value (`None` for no
    /// value).
    #[track_caller]
    fn check(args: &[&str], optstring: &str, selector: Option<u8>, expected: Result<&[&str], Option<&str>>) {
        let args: Vec<Cow<'_, str>> = args.iter().map(|a| Cow::Borrowed(*a)).collect();
        let got = getopt(&args, &OptString::parse(optstring), selector);
        let want = match expected {
            Ok(list) => Getopt::List(list.iter().map(|s| (*s).to_owned()).collect()),
            Err(one) => Getopt::Selected(one.map(str::to_owned)),
        };
        assert_eq!(got, want, "getopt({args:?}, {optstring:?}) selector {selector:?}");
    }

    #[test]
    fn options_values_and_clusters() {
        check(&["-n", ""], "n", None, Ok(&["n"]));
        check(&["-t", "hello"], "t:", None, Ok(&["t", "hello"]));
        check(&["-nt", "hello"], "nt:", None, Ok(&["n", "t", "hello"]));
        check(&["-thello"], "t:", None, Ok(&["t", "hello"]));
        check(&["-abcvalue"], "abc:", None, Ok(&["a", "b", "c", "value"]));
        // `p` takes the rest of the cluster, so `e` is its value, not an option.
        check(&["-lpe", "/bin/sh"], "lp:e:", None, Ok(&["l", "p", "e"]));
        check(&["-t", "-123"], "t:", None, Ok(&["t", "-123"]));
        check(&["-@", "-+"], "@+", None, Ok(&["@", "+"]));
    }

    #[test]
    fn unknown_options_and_missing_values() {
        check(&["-x", "-n"], "n", None, Ok(&["?", "n"]));
        check(&["-nx"], "n", None, Ok(&["n", "?"]));
        check(&["-n", "-t"], "", None, Ok(&["?", "?"]));
        check(&["-t"], "t:", None, Ok(&[""]));
        check(&["-t"], ":t:", None, Ok(&[""]));
        check(&["-n:"], "n", None, Ok(&["n", "?"]));
    }

    #[test]
    fn where_options_stop() {
        check(&["-n", "--", "-t"], "nt:", None, Ok(&["n"]));
        check(&["--", "-n"], "n", None, Ok(&[]));
        check(&["--exec", "-n"], "n", None, Ok(&["n"]));
        check(&["arg1", "-n"], "n", None, Ok(&[]));
        check(&["-n", "file", "-t"], "nt", None, Ok(&["n"]));
        check(&["-", "-n"], "n", None, Ok(&[]));
        check(&["", "-n"], "n", None, Ok(&[]));
        check(
            &["-f", "another_file", "regular_file"],
            "f:",
            None,
            Ok(&["f", "another_file"]),
        );
    }

    #[test]
    fn selector_keeps_the_last_value() {
        check(&["-n", "-t", "hello"], "nt:", Some(b't'), Err(Some("hello")));
        check(&["-n", "-t", "hello"], "nt:", Some(b'n'), Err(Some("n")));
        check(&["-t", "v1", "-t", "v2"], "t:", Some(b't'), Err(Some("v2")));
        check(&["-t", "v1", "-t"], "t:", Some(b't'), Err(Some("")));
        check(&["-t?"], "t:", Some(b't'), Err(Some("?")));
        check(&["-n"], "nt:", Some(b't'), Err(None));
        // An option taking a value consumes the next token even when another one is selected.
        check(&["-t", "-n"], "nt:", Some(b'n'), Err(None));
    }
}
