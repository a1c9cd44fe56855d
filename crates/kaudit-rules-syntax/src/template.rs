//! Output templates: a rule's `output` text with `%field`, `%field[arg]`, `%20field` and
//! `%transformer(...)` tokens, parsed as Falco's event formatter does.
//!
//! After a `%` come optional width digits, then either a transformer written as in a
//! condition (`%toupper(ka.verb)`, `%join(",", ka.req.pod.containers.image)`; no blank
//! between its name and `(`), or the longest prefix of the following text that is a known
//! field name (the parser asks the caller, which knows the field catalogue), then an optional
//! `[argument]`. Everything else is literal text. `%%`, `%-20field`, a `%` at the end and a `%`
//! not followed by a field or transformer are errors: the template has no escapes.

use crate::ast::Operand;
use crate::parser::{parse_transformer_prefix, starts_with_transformer};

/// A piece of a template.
#[derive(Clone, Debug, PartialEq)]
pub enum Segment {
    /// Literal text.
    Text(String),
    /// A field to substitute.
    Field(FieldToken),
    /// A transformer to evaluate and substitute.
    Transform(TransformToken),
}

/// A `%field` token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldToken {
    /// The field's name.
    pub name: String,
    /// The text between brackets, if any.
    pub arg: Option<String>,
    /// The width digits, if any: the value is padded with spaces or cut to exactly this many
    /// characters.
    pub width: Option<usize>,
    /// Byte offset of the `%` in the template.
    pub start: usize,
    /// Byte offset just after the token.
    pub end: usize,
}

impl FieldToken {
    /// The field as written, without `%` and width: `name` or `name[arg]`.
    pub fn written(&self) -> String {
        match &self.arg {
            Some(arg) => format!("{}[{}]", self.name, arg),
            None => self.name.clone(),
        }
    }
}

/// A `%transformer(...)` token.
#[derive(Clone, Debug, PartialEq)]
pub struct TransformToken {
    /// The transformer and its arguments, as the condition parser reads them.
    pub operand: Operand,
    /// The token as written, without `%` and width (`toupper(ka.verb)`).
    pub written: String,
    /// The width digits, if any, as for a field.
    pub width: Option<usize>,
    /// Byte offset of the `%` in the template.
    pub start: usize,
    /// Byte offset just after the token.
    pub end: usize,
}

/// A template that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct TemplateError {
    /// Byte offset of the offending `%`.
    pub offset: usize,
    /// What is wrong, in Falco's words.
    pub message: String,
}

/// Parses an output template. `is_field` tells whether a name is a known field; every
/// transformer token that parses is taken (see [`parse_template_checked`]).
pub fn parse_template(text: &str, is_field: impl Fn(&str) -> bool) -> Result<Vec<Segment>, TemplateError> {
    parse_template_checked(text, is_field, |_| Ok(()))
}

/// Parses an output template. `is_field` tells whether a name is a known field;
/// `check_transform` whether a transformer token can be evaluated (its fields exist, its
/// arguments have the right types), and why not.
///
/// As Falco tries shorter and shorter texts until one compiles, a transformer followed by a
/// `[arg]` that does not parse or does not compile is taken without it, and the brackets stay
/// literal text.
pub fn parse_template_checked(
    text: &str,
    is_field: impl Fn(&str) -> bool,
    check_transform: impl Fn(&Operand) -> Result<(), String>,
) -> Result<Vec<Segment>, TemplateError> {
    let bytes = text.as_bytes();
    let mut segments = Vec::new();
    let mut literal_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            i += 1;
            continue;
        }
        let start = i;
        if literal_start < start {
            segments.push(Segment::Text(text[literal_start..start].to_owned()));
        }
        let err = |message: String| TemplateError {
            offset: start,
            message,
        };
        if start + 1 == bytes.len() {
            return Err(err(
                "invalid formatting syntax: formatting cannot end with a %".into()
            ));
        }
        let mut j = start + 1;
        let digits = bytes[j..].iter().take_while(|b| b.is_ascii_digit()).count();
        let width = if digits > 0 {
            if j + digits == bytes.len() {
                return Err(err(
                    "invalid formatting syntax: formatting cannot end with a number".into(),
                ));
            }
            let w = text[j..j + digits].bytes().fold(0usize, |acc, d| {
                acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
            });
            j += digits;
            Some(w)
        } else {
            None
        };
        if starts_with_transformer(&text[j..]) {
            let attempt = |outer_arg: bool| -> Result<(Operand, usize), String> {
                let (operand, len) =
                    parse_transformer_prefix(&text[j..], outer_arg).map_err(|e| e.message)?;
                check_transform(&operand)?;
                Ok((operand, len))
            };
            let (operand, len) = match attempt(true) {
                Ok(found) => found,
                Err(reason) => attempt(false)
                    .map_err(|_| err(format!("invalid formatting token {}: {reason}", &text[j..])))?,
            };
            segments.push(Segment::Transform(TransformToken {
                operand,
                written: text[j..j + len].to_owned(),
                width: width.filter(|&w| w > 0),
                start,
                end: j + len,
            }));
            i = j + len;
            literal_start = i;
            continue;
        }
        let candidate = field_name_len(&bytes[j..]);
        let name_len = (1..=candidate).rev().find(|&n| is_field(&text[j..j + n]));
        let Some(name_len) = name_len else {
            return Err(err(format!("invalid formatting token {}", &text[j..])));
        };
        let name = text[j..j + name_len].to_owned();
        j += name_len;
        let mut arg = None;
        if bytes.get(j) == Some(&b'[') {
            let Some(close) = bytes[j + 1..].iter().position(|&b| b == b']') else {
                return Err(err(format!(
                    "invalid formatting token {}: argument of {name} is not terminated by ']'",
                    &text[start + 1..]
                )));
            };
            arg = Some(text[j + 1..j + 1 + close].to_owned());
            j += close + 2;
        }
        segments.push(Segment::Field(FieldToken {
            name,
            arg,
            width: width.filter(|&w| w > 0),
            start,
            end: j,
        }));
        i = j;
        literal_start = j;
    }
    if literal_start < bytes.len() {
        segments.push(Segment::Text(text[literal_start..].to_owned()));
    }
    Ok(segments)
}

/// Length of the longest match of `[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)*` at
/// the start of `b`: the longest text that could be a field name.
fn field_name_len(b: &[u8]) -> usize {
    let ident = |from: usize| -> usize {
        let s = &b[from.min(b.len())..];
        if !s.first().is_some_and(u8::is_ascii_alphabetic) {
            return 0;
        }
        1 + s[1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count()
    };
    let mut len = ident(0);
    if len == 0 {
        return 0;
    }
    while b.get(len) == Some(&b'.') {
        let seg = ident(len + 1);
        if seg == 0 {
            break;
        }
        len += 1 + seg;
    }
    len
}
