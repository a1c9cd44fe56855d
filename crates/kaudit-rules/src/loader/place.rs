//! Places in rules files: turning a YAML span (and an offset inside a condition or output
//! text) into a [`LoadError`] or [`Warning`] with `file:line:column` and a caret snippet.

use kaudit_yaml::{Node, Span, Style, Value};

use crate::RuleSource;
use crate::error::{LoadError, LoadErrorKind, Warning};

/// A position in one of the rules files being loaded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Place {
    /// Index of the file in the sources.
    pub file: usize,
    /// Line and column.
    pub span: Span,
}

/// The rules files being loaded, for building errors with snippets.
#[derive(Clone, Copy)]
pub(crate) struct Files<'a> {
    pub sources: &'a [RuleSource],
}

impl<'a> Files<'a> {
    fn name(&self, place: Place) -> String {
        self.sources
            .get(place.file)
            .map(|s| s.name.clone())
            .unwrap_or_default()
    }

    fn text(&self, file: usize) -> &'a str {
        self.sources.get(file).map_or("", |s| s.text.as_str())
    }

    /// An error at `place`, with the source line and a caret as snippet.
    pub fn error(
        &self,
        kind: LoadErrorKind,
        place: Place,
        item: Option<&str>,
        message: impl Into<String>,
    ) -> LoadError {
        LoadError {
            kind,
            file: self.name(place),
            line: place.span.line,
            column: place.span.column,
            item: item.map(str::to_owned),
            message: message.into(),
            snippet: kaudit_yaml::caret(self.text(place.file), place.span),
        }
    }

    /// A warning at `place`.
    pub fn warning(&self, place: Place, item: Option<&str>, message: impl Into<String>) -> Warning {
        Warning {
            file: self.name(place),
            line: place.span.line,
            column: place.span.column,
            item: item.map(str::to_owned),
            message: message.into(),
        }
    }

    /// An error at byte `offset` of a placed text (a condition or an output). When the text
    /// there was written on one line of the file and can be pointed at exactly, the caret
    /// is under that character; otherwise it is under the start of the scalar, and the text
    /// itself is quoted with a caret under the offset.
    pub fn error_in_text(
        &self,
        kind: LoadErrorKind,
        text: &PlacedText,
        offset: usize,
        item: Option<&str>,
        message: impl Into<String>,
    ) -> LoadError {
        match text.locate(offset) {
            Located::Exact(place) => self.error(kind, place, item, message),
            Located::Scalar(place) => {
                let mut err = self.error(kind, place, item, message);
                err.snippet.push('\n');
                err.snippet.push_str(&quote_with_caret(&text.text, offset));
                err
            }
        }
    }
}

/// The line of `text` holding byte `offset`, indented, with a caret under the offset.
pub(crate) fn quote_with_caret(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[offset..].find('\n').map_or(text.len(), |i| offset + i);
    let line = &text[line_start..line_end];
    let pad: String = text[line_start..offset]
        .chars()
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("   in: {line}\n       {pad}^")
}

/// A piece of a [`PlacedText`]: bytes `offset..offset+len` of the text came from the scalar
/// at `place`.
#[derive(Clone, Debug)]
struct Piece {
    offset: usize,
    len: usize,
    place: Place,
    /// When the piece is the scalar's text exactly as it stands on one line of the file: the
    /// place of its first character. Offsets inside then map to columns.
    exact: Option<Place>,
}

/// Where an offset of a placed text points.
enum Located {
    /// At this character of the file.
    Exact(Place),
    /// Somewhere in the scalar starting here.
    Scalar(Place),
}

/// A text read from YAML scalars (a condition, an output), remembering which scalar each
/// part came from, so that an offset in it can be turned back into a place in the file.
#[derive(Clone, Debug, Default)]
pub(crate) struct PlacedText {
    /// The text.
    pub text: String,
    pieces: Vec<Piece>,
}

impl PlacedText {
    /// The text of a scalar node.
    pub fn from_scalar(node: &Node, file: usize, files: Files<'_>) -> PlacedText {
        let (text, style) = match &node.value {
            Value::Scalar { text, style } => (text.clone(), *style),
            _ => (String::new(), Style::Plain),
        };
        let place = Place {
            file,
            span: node.span,
        };
        let exact = exact_start(files.text(file), node.span, style, &text).map(|span| Place { file, span });
        let len = text.len();
        PlacedText {
            text,
            pieces: vec![Piece {
                offset: 0,
                len,
                place,
                exact,
            }],
        }
    }

    /// Appends `other` after a space, as Falco joins appended conditions and outputs.
    pub fn append(&mut self, other: &PlacedText) {
        self.text.push(' ');
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.pieces.extend(other.pieces.iter().map(|p| Piece {
            offset: p.offset + base,
            ..p.clone()
        }));
    }

    /// Removes leading and trailing blanks (space, tab, newlines, form feed, vertical tab).
    pub fn trim(&mut self) {
        let is_blank = |c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0c' | '\x0b');
        let trimmed_end = self.text.trim_end_matches(is_blank).len();
        self.text.truncate(trimmed_end);
        let lead = self.text.len() - self.text.trim_start_matches(is_blank).len();
        if lead == 0 {
            return;
        }
        let removed: String = self.text.drain(..lead).collect();
        let removed_chars = removed.chars().count();
        let mut pieces = Vec::with_capacity(self.pieces.len());
        for mut p in self.pieces.drain(..) {
            if p.offset + p.len <= lead {
                continue;
            }
            if p.offset < lead {
                let cut = lead - p.offset;
                p.len -= cut;
                p.offset = 0;
                // Only the first piece can be cut, and only by blanks on its first line
                // (an exact piece is a single line).
                if let Some(e) = &mut p.exact {
                    e.span.column += removed_chars;
                }
            } else {
                p.offset -= lead;
            }
            pieces.push(p);
        }
        self.pieces = pieces;
    }

    fn locate(&self, offset: usize) -> Located {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.offset <= offset)
            .or(self.pieces.first());
        let Some(piece) = piece else {
            return Located::Scalar(Place::default());
        };
        match piece.exact {
            Some(mut start) if offset <= piece.offset + piece.len => {
                let within = &self.text[piece.offset..];
                let mut n = offset - piece.offset;
                while !within.is_char_boundary(n) {
                    n -= 1;
                }
                start.span.column += within[..n].chars().count();
                Located::Exact(start)
            }
            _ => Located::Scalar(piece.place),
        }
    }
}

/// Where the first character of a scalar's text stands in the file, when the text is written
/// there verbatim on one line (a plain scalar, or a quoted one without escapes).
fn exact_start(source: &str, span: Span, style: Style, text: &str) -> Option<Span> {
    if text.contains('\n') {
        return None;
    }
    let line = source.lines().nth(span.line.checked_sub(1)?)?;
    let skip = match style {
        Style::Plain => span.column.checked_sub(1)?,
        Style::SingleQuoted | Style::DoubleQuoted => span.column,
        Style::Literal | Style::Folded => return None,
    };
    let rest: String = line.chars().skip(skip).collect();
    if !rest.starts_with(text) {
        return None;
    }
    Some(Span {
        line: span.line,
        column: skip + 1,
    })
}
