//! The condition parser: a recursive-descent parser over the condition's bytes that accepts
//! exactly what Falco's filter parser accepts, reports the same messages, and stops at the
//! same byte offset.
//!
//! Tokens are recognised at the cursor in a fixed order (see each `lex_*` method); blanks
//! between tokens are space, tab, `\b`, `\r` and `\n`. Operator words (`contains`, `glob`,
//! ...) must be followed by a space; symbols (`=`, `<=`) and list operators (`in`,
//! `intersects`, `pmatch`) need nothing after them.

use std::fmt;

use crate::ast::{Check, Expr, ExprKind, FieldName, Modifier, Op, Operand, Rhs, Span, Transformer, Value};

/// The deepest recursion the parser allows before giving up, as Falco sets it for rule
/// conditions. Every grammar level counts, so this is about 200 nested parentheses.
pub const MAX_DEPTH: u32 = 1000;

/// The deepest recursion allowed in an output template's transformer token: Falco parses
/// those with its parser's default limit, not the one it sets for conditions.
pub const MAX_OUTPUT_DEPTH: u32 = 100;

/// A condition that cannot be parsed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at byte {offset})")]
pub struct ParseError {
    /// Byte offset in the condition text where parsing stopped.
    pub offset: usize,
    /// What went wrong, in Falco's words.
    pub message: String,
}

/// Parses a condition.
pub fn parse_condition(text: &str) -> Result<Expr, ParseError> {
    if text.is_empty() {
        return Err(ParseError {
            offset: 0,
            message: "filter input string is empty".into(),
        });
    }
    let mut p = Parser::new(text, MAX_DEPTH);
    let expr = p.parse_or()?;
    if p.pos != p.bytes.len() {
        return Err(p.error(format!(
            "unexpected token after '{}', expecting 'or', 'and'",
            p.last_token
        )));
    }
    Ok(expr)
}

/// Parses the transformer at the start of `text` (`toupper(ka.verb)`, `join(",", (a.b, c.d))`)
/// and returns it with the number of bytes it takes; what follows is left alone. With
/// `outer_arg`, a `[arg]` right after the closing parenthesis belongs to the transformer
/// (`getopt(...)[t]`). This is how an output template's `%` token is read.
pub fn parse_transformer_prefix(text: &str, outer_arg: bool) -> Result<(Operand, usize), ParseError> {
    let mut p = Parser::new(text, MAX_OUTPUT_DEPTH);
    p.enter()?;
    let Some(t) = p.lex_transformer() else {
        return Err(p.error("expected a transformer"));
    };
    p.lex_blank();
    let operand = p.parse_field_or_transformer_remainder(t, 0, outer_arg)?;
    Ok((operand, p.pos))
}

/// True when `text` starts with a transformer's name and its `(` (not `val(`).
pub(crate) fn starts_with_transformer(text: &str) -> bool {
    TRANSFORMERS.iter().any(|(name, _)| text.starts_with(name))
}

/// Binary operators whose right side is a number (or a transformed field), longest first.
const NUM_OPS: [(&str, Op); 4] = [("<=", Op::Le), ("<", Op::Lt), (">=", Op::Ge), (">", Op::Gt)];

/// Binary operators whose right side is a string; the words include their mandatory space.
const STR_OPS: [(&str, Op); 12] = [
    ("==", Op::Eq),
    ("=", Op::Eq),
    ("!=", Op::Ne),
    ("glob ", Op::Glob),
    ("iglob ", Op::IGlob),
    ("contains ", Op::Contains),
    ("icontains ", Op::IContains),
    ("bcontains ", Op::BContains),
    ("startswith ", Op::StartsWith),
    ("bstartswith ", Op::BStartsWith),
    ("endswith ", Op::EndsWith),
    ("regex ", Op::Regex),
];

/// Operators whose right side is a list or an identifier.
const LIST_OPS: [(&str, Op); 3] = [
    ("intersects", Op::Intersects),
    ("in", Op::In),
    ("pmatch", Op::PMatch),
];

/// Transformers that may start a check, a value or an argument, with their opening
/// parenthesis (`val(` is apart: it only starts a value, and takes only a field).
const TRANSFORMERS: [(&str, Transformer); 8] = [
    ("tolower(", Transformer::ToLower),
    ("toupper(", Transformer::ToUpper),
    ("b64(", Transformer::B64),
    ("basename(", Transformer::Basename),
    ("len(", Transformer::Len),
    ("join(", Transformer::Join),
    ("concat(", Transformer::Concat),
    ("getopt(", Transformer::Getopt),
];

const MODIFIERS: [(&str, Modifier); 3] = [
    ("oneof", Modifier::OneOf),
    ("anyof", Modifier::AnyOf),
    ("allof", Modifier::AllOf),
];

const TRANSFORMER_NAMES: &str =
    "'val', 'tolower', 'toupper', 'b64', 'basename', 'len', 'join', 'concat', 'getopt'";

const OPERATOR_NAMES: &str = "'exists', '<=', '<', '>=', '>', '==', '=', '!=', 'glob', 'iglob', 'contains', \
     'icontains', 'bcontains', 'startswith', 'bstartswith', 'endswith', 'regex', 'intersects', 'in', 'pmatch'";

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    /// The text of the last token recognised, for "unexpected token after" messages.
    last_token: String,
    depth: u32,
    max_depth: u32,
}

/// POSIX `[:space:]`.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// The blanks skipped between tokens.
fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\x08' | b'\r' | b'\n')
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, max_depth: u32) -> Parser<'a> {
        Parser {
            text,
            bytes: text.as_bytes(),
            pos: 0,
            last_token: String::new(),
            depth: 0,
            max_depth,
        }
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth >= self.max_depth {
            return Err(self.error(format!("exceeded max depth limit of {}", self.max_depth)));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn rest(&self) -> &'a [u8] {
        &self.bytes[self.pos..]
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn span_from(&self, start: usize) -> Span {
        Span::new(start, self.pos)
    }

    // ---- lexing ---------------------------------------------------------------------------

    /// Skips blanks; true if there was at least one. Does not change `last_token`.
    fn lex_blank(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn lex_str(&mut self, s: &str) -> bool {
        if self.rest().starts_with(s.as_bytes()) {
            self.pos += s.len();
            self.last_token = s.to_owned();
            true
        } else {
            false
        }
    }

    /// Accepts a token of `len` bytes at the cursor.
    fn take(&mut self, len: usize) -> bool {
        if len == 0 {
            return false;
        }
        self.last_token = self.text[self.pos..self.pos + len].to_owned();
        self.pos += len;
        true
    }

    /// `not` followed by at least one space character.
    fn lex_not_blank(&mut self) -> bool {
        let rest = self.rest();
        if !rest.starts_with(b"not") {
            return false;
        }
        let spaces = rest[3..].iter().take_while(|&&b| is_space(b)).count();
        if spaces == 0 {
            return false;
        }
        self.take(3 + spaces)
    }

    /// Length of `[a-zA-Z]+[a-zA-Z0-9_]*` at `from`.
    fn ident_len(&self, from: usize) -> usize {
        let b = &self.bytes[from.min(self.bytes.len())..];
        if !b.first().is_some_and(u8::is_ascii_alphabetic) {
            return 0;
        }
        1 + b[1..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
            .count()
    }

    fn lex_identifier(&mut self) -> bool {
        let len = self.ident_len(self.pos);
        self.take(len)
    }

    /// An identifier followed by one or more `.identifier` segments.
    fn lex_field_name(&mut self) -> bool {
        let mut len = self.ident_len(self.pos);
        if len == 0 {
            return false;
        }
        let mut segments = 0;
        while self.bytes.get(self.pos + len) == Some(&b'.') {
            let seg = self.ident_len(self.pos + len + 1);
            if seg == 0 {
                break;
            }
            len += 1 + seg;
            segments += 1;
        }
        if segments == 0 {
            return false;
        }
        self.take(len)
    }

    fn lex_field_arg_bare(&mut self) -> bool {
        let len = self
            .rest()
            .iter()
            .take_while(|&&b| !matches!(b, b'[' | b']' | b'"' | b'\'') && !is_space(b))
            .count();
        self.take(len)
    }

    fn lex_bare_str(&mut self) -> bool {
        let len = self
            .rest()
            .iter()
            .take_while(|&&b| !matches!(b, b'(' | b')' | b'"' | b'\'' | b'=' | b',') && !is_space(b))
            .count();
        self.take(len)
    }

    /// `0[xX][0-9a-zA-Z]+`
    fn lex_hex_num(&mut self) -> bool {
        let rest = self.rest();
        if rest.len() < 3 || rest[0] != b'0' || !matches!(rest[1], b'x' | b'X') {
            return false;
        }
        let digits = rest[2..].iter().take_while(|b| b.is_ascii_alphanumeric()).count();
        if digits == 0 {
            return false;
        }
        self.take(2 + digits)
    }

    /// `[+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?`
    fn lex_num(&mut self) -> bool {
        let rest = self.rest();
        let mut i = 0;
        if matches!(rest.first(), Some(b'+' | b'-')) {
            i += 1;
        }
        let int_digits = rest[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if int_digits == 0 {
            return false;
        }
        i += int_digits;
        if rest.get(i) == Some(&b'.') {
            i += 1;
        }
        i += rest[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if matches!(rest.get(i), Some(b'e' | b'E')) && matches!(rest.get(i + 1), Some(b'+' | b'-')) {
            let exp = rest[i + 2..].iter().take_while(|b| b.is_ascii_digit()).count();
            if exp > 0 {
                i += 2 + exp;
            }
        }
        self.take(i)
    }

    /// A `"..."` or `'...'` string. It ends at the first matching quote whose preceding byte
    /// is not a backslash (so `"a\\"` does not end at its last quote). Returns Ok(false) and
    /// leaves the cursor alone when there is no quote or no end; escapes that are not
    /// allowed are an error.
    fn lex_quoted_str(&mut self) -> Result<bool, ParseError> {
        let rest = self.rest();
        let Some(&delim) = rest.first() else {
            return Ok(false);
        };
        if delim != b'"' && delim != b'\'' {
            return Ok(false);
        }
        let mut prev = b'\\';
        let mut end = None;
        for (i, &b) in rest.iter().enumerate() {
            if b == delim && prev != b'\\' {
                end = Some(i);
                break;
            }
            prev = b;
        }
        let Some(end) = end else { return Ok(false) };
        let inner = &self.text[self.pos + 1..self.pos + end];
        self.pos += end + 1;
        self.last_token = unescape(inner, delim).map_err(|m| self.error(m))?;
        Ok(true)
    }

    fn lex_transformer(&mut self) -> Option<Transformer> {
        for (text, t) in TRANSFORMERS {
            if self.lex_str(text) {
                return Some(t);
            }
        }
        None
    }

    fn lex_op(&mut self, ops: &[(&'static str, Op)]) -> Option<(Op, &'static str)> {
        for &(text, op) in ops {
            if self.lex_str(text) {
                return Some((op, text.trim_end()));
            }
        }
        None
    }

    // ---- grammar --------------------------------------------------------------------------

    fn parse_or(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let mut children = vec![self.parse_and()?];
        self.lex_blank();
        while self.lex_str("or") {
            let child = if self.lex_blank() {
                self.parse_and()?
            } else if self.lex_str("(") {
                self.parse_embedded_remainder()?
            } else {
                return Err(self.error("expected blank or '(' after 'or'"));
            };
            children.push(child);
            self.lex_blank();
        }
        self.leave();
        Ok(group(children, ExprKind::Or))
    }

    fn parse_and(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let mut children = vec![self.parse_not()?];
        self.lex_blank();
        while self.lex_str("and") {
            let child = if self.lex_blank() {
                self.parse_not()?
            } else if self.lex_str("(") {
                self.parse_embedded_remainder()?
            } else {
                return Err(self.error("expected blank or '(' after 'and'"));
            };
            children.push(child);
            self.lex_blank();
        }
        self.leave();
        Ok(group(children, ExprKind::And))
    }

    fn parse_not(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let mut negate = false;
        while self.lex_not_blank() {
            negate = !negate;
        }
        let child = if self.lex_str("not(") {
            negate = !negate;
            self.parse_embedded_remainder()?
        } else {
            self.parse_check()?
        };
        self.leave();
        if negate {
            let span = Span::new(start, child.span.end);
            Ok(Expr {
                kind: ExprKind::Not(Box::new(child)),
                span,
            })
        } else {
            Ok(child)
        }
    }

    /// The rest of a parenthesized expression, after its `(`.
    fn parse_embedded_remainder(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let child = self.parse_or()?;
        self.lex_blank();
        if !self.lex_str(")") {
            return Err(self.error("expected a ')' token"));
        }
        self.leave();
        Ok(child)
    }

    fn parse_check(&mut self) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let result = if self.lex_str("(") {
            self.parse_embedded_remainder()?
        } else if self.lex_field_name() {
            let name = std::mem::take(&mut self.last_token);
            let left = self.parse_field_remainder(name, start)?;
            self.parse_condition(left, start)?
        } else if let Some(t) = self.lex_transformer() {
            self.lex_blank();
            let left = self.parse_field_or_transformer_remainder(t, start, true)?;
            self.parse_condition(left, start)?
        } else if self.lex_identifier() {
            Expr {
                kind: ExprKind::Identifier(self.last_token.clone()),
                span: self.span_from(start),
            }
        } else {
            return Err(self.error("expected a '(' token, a field check, or an identifier"));
        };
        self.leave();
        Ok(result)
    }

    /// The optional `[arg]` after a field name.
    fn parse_field_remainder(&mut self, name: String, start: usize) -> Result<Operand, ParseError> {
        self.enter()?;
        let arg = self.parse_optional_field_arg()?;
        self.leave();
        Ok(Operand::Field(FieldName {
            name,
            arg,
            span: self.span_from(start),
        }))
    }

    /// `[arg]` after a field or a transformer's closing parenthesis, if there is one.
    fn parse_optional_field_arg(&mut self) -> Result<Option<String>, ParseError> {
        if !self.lex_str("[") {
            return Ok(None);
        }
        if !(self.lex_quoted_str()? || self.lex_field_arg_bare()) {
            return Err(self.error("expected a valid field argument: a quoted string or a bare string"));
        }
        let arg = self.last_token.clone();
        if !self.lex_str("]") {
            return Err(self.error("expected a ']' token"));
        }
        Ok(Some(arg))
    }

    /// The arguments and closing parenthesis of a transformer, after `name(`, then the
    /// optional `[arg]` (only when `outer_arg`). Arguments are separated by commas.
    fn parse_field_or_transformer_remainder(
        &mut self,
        transformer: Transformer,
        start: usize,
        outer_arg: bool,
    ) -> Result<Operand, ParseError> {
        self.enter()?;
        self.lex_blank();
        let mut args = Vec::new();
        loop {
            args.push(self.parse_transformer_arg()?);
            self.lex_blank();
            if !self.lex_str(",") {
                break;
            }
        }
        self.lex_blank();
        if !self.lex_str(")") {
            return Err(self.error("expected a ')' token closing the transformer"));
        }
        let arg = if outer_arg {
            self.parse_optional_field_arg()?
        } else {
            None
        };
        self.leave();
        Ok(Operand::Transform {
            transformer,
            args,
            arg,
            span: self.span_from(start),
        })
    }

    /// One argument of a transformer: a number, a quoted string, a parenthesized list, a
    /// transformer or a field, tried in that order.
    fn parse_transformer_arg(&mut self) -> Result<Operand, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let arg = if self.lex_hex_num() || self.lex_num() || self.lex_quoted_str()? {
            Operand::Value(Value {
                text: self.last_token.clone(),
                span: self.span_from(start),
            })
        } else if self.lex_str("(") {
            self.parse_transformer_list(start)?
        } else if let Some(t) = self.lex_transformer() {
            self.parse_field_or_transformer_remainder(t, start, true)?
        } else if self.lex_field_name() {
            let name = std::mem::take(&mut self.last_token);
            self.parse_field_remainder(name, start)?
        } else {
            return Err(self.error(
                "expected field transformer argument: field, transformer, quoted string, number, or transformer list",
            ));
        };
        self.leave();
        Ok(arg)
    }

    /// The items and closing parenthesis of a transformer's list argument, after its `(`.
    /// Items are fields, transformers, quoted strings and numbers (no bare strings, no
    /// nested lists); the list may be empty.
    fn parse_transformer_list(&mut self, start: usize) -> Result<Operand, ParseError> {
        let mut items = Vec::new();
        self.lex_blank();
        if !self.lex_str(")") {
            items.push(self.parse_transformer_list_item()?);
            self.lex_blank();
            while self.lex_str(",") {
                self.lex_blank();
                items.push(self.parse_transformer_list_item()?);
                self.lex_blank();
            }
            if !self.lex_str(")") {
                return Err(self.error("expected ')'"));
            }
        }
        Ok(Operand::List {
            items,
            span: self.span_from(start),
        })
    }

    fn parse_transformer_list_item(&mut self) -> Result<Operand, ParseError> {
        let start = self.pos;
        if self.lex_field_name() {
            let name = std::mem::take(&mut self.last_token);
            return self.parse_field_remainder(name, start);
        }
        if let Some(t) = self.lex_transformer() {
            self.lex_blank();
            return self.parse_field_or_transformer_remainder(t, start, true);
        }
        if self.lex_quoted_str()? || self.lex_hex_num() || self.lex_num() {
            return Ok(Operand::Value(Value {
                text: self.last_token.clone(),
                span: self.span_from(start),
            }));
        }
        Err(self.error("expected transformer list argument: field, transformer, quoted string, or number"))
    }

    fn parse_condition(&mut self, left: Operand, start: usize) -> Result<Expr, ParseError> {
        self.enter()?;
        self.lex_blank();
        let check = if self.lex_str("exists") {
            Check {
                left,
                op: Op::Exists,
                op_text: "exists",
                right: Rhs::None,
            }
        } else {
            self.lex_blank();
            if let Some((op, op_text)) = self.lex_op(&NUM_OPS) {
                let right = self.parse_num_value_or_transformer()?;
                Check {
                    left,
                    op,
                    op_text,
                    right,
                }
            } else if let Some((op, op_text)) = self.lex_op(&STR_OPS) {
                let right = match self.parse_modifier()? {
                    Some(right) => right,
                    None => self.parse_str_value_or_transformer(false)?,
                };
                Check {
                    left,
                    op,
                    op_text,
                    right,
                }
            } else if let Some((op, op_text)) = self.lex_op(&LIST_OPS) {
                let right = self.parse_list_value_or_transformer()?;
                Check {
                    left,
                    op,
                    op_text,
                    right,
                }
            } else {
                return Err(self.error(format!(
                    "expected a valid check operator: one of {OPERATOR_NAMES}"
                )));
            }
        };
        self.leave();
        Ok(Expr {
            kind: ExprKind::Check(Box::new(check)),
            span: self.span_from(start),
        })
    }

    /// `oneof (...)`, `anyof (...)`, `allof (...)` after a string operator. A modifier word
    /// not followed by a parenthesis is an ordinary value.
    fn parse_modifier(&mut self) -> Result<Option<Rhs>, ParseError> {
        self.lex_blank();
        let start = self.pos;
        for (word, modifier) in MODIFIERS {
            let rest = self.rest();
            if !rest.starts_with(word.as_bytes()) {
                continue;
            }
            let blanks = rest[word.len()..].iter().take_while(|&&b| is_blank(b)).count();
            if rest.get(word.len() + blanks) != Some(&b'(') {
                continue;
            }
            self.take(word.len());
            self.lex_blank();
            self.lex_str("(");
            let items = self.parse_list_items()?;
            return Ok(Some(Rhs::Modified {
                modifier,
                items,
                span: self.span_from(start),
            }));
        }
        Ok(None)
    }

    fn parse_num_value_or_transformer(&mut self) -> Result<Rhs, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let rhs = if let Some(operand) = self.try_parse_transformer_or_val()? {
            Rhs::Operand(operand)
        } else if self.lex_hex_num() || self.lex_num() {
            Rhs::Value(Value {
                text: self.last_token.clone(),
                span: self.span_from(start),
            })
        } else {
            return Err(self.error(format!(
                "expected a number value or a field with a valid transformer: {TRANSFORMER_NAMES}"
            )));
        };
        self.leave();
        Ok(rhs)
    }

    fn parse_str_value_or_transformer(&mut self, no_transformer: bool) -> Result<Rhs, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        if !no_transformer && let Some(operand) = self.try_parse_transformer_or_val()? {
            self.leave();
            return Ok(Rhs::Operand(operand));
        }
        if self.lex_quoted_str()? || self.lex_bare_str() {
            self.leave();
            return Ok(Rhs::Value(Value {
                text: self.last_token.clone(),
                span: self.span_from(start),
            }));
        }
        if no_transformer {
            return Err(self.error("expected a string value"));
        }
        Err(self.error(format!(
            "expected a string value or a field with a valid transformer: {TRANSFORMER_NAMES}"
        )))
    }

    fn parse_str_value(&mut self) -> Result<Value, ParseError> {
        match self.parse_str_value_or_transformer(true)? {
            Rhs::Value(v) => Ok(v),
            _ => Err(self.error("expected a string value")),
        }
    }

    /// The items of a list and its closing parenthesis, after its `(`. A list whose first
    /// item cannot be read is taken as empty, so that error shows as a missing `)`.
    fn parse_list_items(&mut self) -> Result<Vec<Value>, ParseError> {
        let mut items = Vec::new();
        self.lex_blank();
        let depth = self.depth;
        match self.parse_str_value() {
            Ok(first) => {
                items.push(first);
                self.lex_blank();
                while self.lex_str(",") {
                    items.push(self.parse_str_value()?);
                    self.lex_blank();
                }
            }
            Err(_) => self.depth = depth,
        }
        if !self.lex_str(")") {
            return Err(self.error("expected a ')' token"));
        }
        Ok(items)
    }

    fn parse_list_value_or_transformer(&mut self) -> Result<Rhs, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let rhs = if self.lex_str("(") {
            let items = self.parse_list_items()?;
            Rhs::List {
                items,
                span: self.span_from(start),
            }
        } else if let Some(operand) = self.try_parse_transformer_or_val()? {
            Rhs::Operand(operand)
        } else if self.lex_identifier() {
            Rhs::ListName(Value {
                text: self.last_token.clone(),
                span: self.span_from(start),
            })
        } else {
            return Err(self.error(format!(
                "expected a list, an identifier, or a field with a valid transformer: {TRANSFORMER_NAMES}"
            )));
        };
        self.leave();
        Ok(rhs)
    }

    fn try_parse_transformer_or_val(&mut self) -> Result<Option<Operand>, ParseError> {
        self.enter()?;
        self.lex_blank();
        let start = self.pos;
        let result = if self.lex_str("val(") {
            self.lex_blank();
            let field_start = self.pos;
            if !self.lex_field_name() {
                return Err(self.error("expected a field within 'val' transformer"));
            }
            let name = std::mem::take(&mut self.last_token);
            let child = self.parse_field_remainder(name, field_start)?;
            self.lex_blank();
            if !self.lex_str(")") {
                return Err(self.error("expected a ')' token closing the transformer"));
            }
            let arg = self.parse_optional_field_arg()?;
            Some(Operand::Transform {
                transformer: Transformer::Val,
                args: vec![child],
                arg,
                span: self.span_from(start),
            })
        } else if let Some(t) = self.lex_transformer() {
            self.lex_blank();
            Some(self.parse_field_or_transformer_remainder(t, start, true)?)
        } else {
            None
        };
        self.leave();
        Ok(result)
    }
}

/// One child stays as it is; several become an `and`/`or` group spanning them.
fn group(mut children: Vec<Expr>, make: fn(Vec<Expr>) -> ExprKind) -> Expr {
    if children.len() == 1 {
        return children.remove(0);
    }
    let span = Span::new(children[0].span.start, children[children.len() - 1].span.end);
    Expr {
        kind: make(children),
        span,
    }
}

/// Decodes the escapes of a quoted string's content (between the quotes): `\b \f \n \r \t
/// \\ \/`, the string's own quote, and the compatibility `\ ` (a backslash). Anything else
/// after a backslash is an error.
fn unescape(inner: &str, delim: u8) -> Result<String, String> {
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            // Cannot happen: a closing quote right after a backslash does not close the
            // string. Kept as a literal backslash for safety.
            out.push('\\');
            break;
        };
        match e {
            'b' => out.push('\x08'),
            'f' => out.push('\x0c'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            ' ' | '\\' => out.push('\\'),
            '/' => out.push('/'),
            '"' if delim == b'"' => out.push('"'),
            '"' => return Err("invalid \\\" escape in '-quoted string".into()),
            '\'' if delim == b'\'' => out.push('\''),
            '\'' => return Err("invalid \\' escape in \"-quoted string".into()),
            other => return Err(format!("unsupported string escape sequence: \\{other}")),
        }
    }
    Ok(out)
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&crate::print::to_condition_string(self))
    }
}
