//! `json.obj`: the event re-indented the way Go's `json.Indent(dst, src, "", "  ")` does it,
//! which is what the json plugin returns.
//!
//! Go's rules: blanks outside strings are dropped; after `{` or `[` the next token goes on a
//! new line one level deeper, except that an empty object or array stays `{}` / `[]`; `,`
//! ends the line; `:` is followed by one space; a closing bracket goes on its own line one
//! level up. String contents are copied unchanged.

/// Re-indents valid JSON text with two spaces per level.
pub(super) fn indent(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len() + raw.len() / 2);
    let mut depth = 0usize;
    let mut need_indent = false;
    let mut in_string = false;
    let mut escaped = false;
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
            continue;
        }
        if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        if need_indent && c != '}' && c != ']' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            '{' | '[' => {
                need_indent = true;
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '}' | ']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            '"' => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

fn newline(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::indent;

    #[test]
    fn matches_go_json_indent() {
        assert_eq!(indent(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(
            indent(r#" { "a" : [ 1 , {"b":"x, {y}: \"z\""} ], "e":{}, "f":[ ] } "#),
            "{\n  \"a\": [\n    1,\n    {\n      \"b\": \"x, {y}: \\\"z\\\"\"\n    }\n  ],\n  \"e\": {},\n  \"f\": []\n}"
        );
    }
}
