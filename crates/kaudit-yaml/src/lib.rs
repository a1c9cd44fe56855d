//! A YAML tree that remembers where every node starts, for loaders whose errors must name
//! `file:line:column` (rules files, audit policies).
//!
//! Owns: turning YAML text into [`Node`]s with [`Span`]s, and rendering a source line with
//! a caret under a position ([`caret`]). Must never: interpret what the YAML means; scalars
//! stay text with their quoting style, as the Falco loader and the apiserver read them.

use std::fmt;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// Where a node starts: 1-based line and column (in characters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// How a scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// Unquoted.
    Plain,
    /// `'...'`
    SingleQuoted,
    /// `"..."`
    DoubleQuoted,
    /// `|` block.
    Literal,
    /// `>` block.
    Folded,
}

/// A YAML node.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts.
    pub span: Span,
    /// What it holds.
    pub value: Value,
}

/// The content of a [`Node`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A scalar, as text.
    Scalar {
        /// The text after YAML unquoting and folding.
        text: String,
        /// How it was written.
        style: Style,
    },
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, entries in document order (duplicate keys are kept).
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The scalar's text, if this is a scalar.
    pub fn as_scalar(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar { text, .. } => Some(text),
            _ => None,
        }
    }

    /// True for a plain `~`, `null`, `Null`, `NULL` or empty scalar.
    pub fn is_null(&self) -> bool {
        matches!(&self.value, Value::Scalar { text, style: Style::Plain }
            if matches!(text.as_str(), "" | "~" | "null" | "Null" | "NULL"))
    }

    /// The sequence's items, if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(items) => Some(items),
            _ => None,
        }
    }

    /// The mapping's entries, if this is a mapping.
    pub fn as_map(&self) -> Option<&[(Node, Node)]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// The first entry of a mapping whose key is the scalar `key`.
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|(k, _)| k.as_scalar() == Some(key))
            .map(|(_, v)| v)
    }

    /// A word for the node's kind, for error messages: "a scalar", "a sequence", "a mapping".
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Scalar { .. } if self.is_null() => "null",
            Value::Scalar { .. } => "a scalar",
            Value::Seq(_) => "a sequence",
            Value::Map(_) => "a mapping",
        }
    }
}

/// YAML that cannot be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{span}: {message}")]
pub struct YamlError {
    /// Where the problem was found.
    pub span: Span,
    /// What it is.
    pub message: String,
}

/// At most this many nodes, aliases expanded, are built from one text, so that a small
/// file of nested aliases cannot exhaust memory.
pub const MAX_NODES: usize = 2_000_000;

/// Parses every YAML document in `text`. An empty text has no documents.
pub fn parse(text: &str) -> Result<Vec<Node>, YamlError> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(YamlError {
            span: span_of(e.marker()),
            message: e.info().to_owned(),
        });
    }
    if let Some(err) = builder.error {
        return Err(err);
    }
    Ok(builder.documents)
}

/// The source line at `span` followed by a caret under its column, for error messages:
///
/// ```text
///    12 | condition: ka.verb = create and
///       |                                ^
/// ```
pub fn caret(source: &str, span: Span) -> String {
    let Some(line) = source.lines().nth(span.line.saturating_sub(1)) else {
        return String::new();
    };
    let number = span.line.to_string();
    let pad = " ".repeat(number.len());
    let indent: String = line
        .chars()
        .take(span.column.saturating_sub(1))
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!(" {number} | {line}\n {pad} | {indent}^")
}

fn span_of(m: &Marker) -> Span {
    // The scanner counts columns from 0.
    Span {
        line: m.line(),
        column: m.col() + 1,
    }
}

#[derive(Default)]
struct Builder {
    documents: Vec<Node>,
    stack: Vec<(Node, Option<usize>)>,
    /// A mapping key waiting for its value, per open mapping (parallel to `stack`).
    pending_keys: Vec<Option<Node>>,
    anchors: std::collections::HashMap<usize, Node>,
    nodes: usize,
    error: Option<YamlError>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        let Some((parent, _)) = self.stack.last_mut() else {
            self.documents.push(node);
            return;
        };
        match &mut parent.value {
            Value::Seq(items) => items.push(node),
            Value::Map(entries) => {
                let pending = self
                    .pending_keys
                    .last_mut()
                    .expect("a pending-key slot exists for every open container");
                match pending.take() {
                    Some(key) => entries.push((key, node)),
                    None => *pending = Some(node),
                }
            }
            Value::Scalar { .. } => unreachable!("scalars are never pushed on the container stack"),
        }
    }

    fn count(&mut self, n: usize, mark: Marker) -> bool {
        self.nodes += n;
        if self.nodes > MAX_NODES && self.error.is_none() {
            self.error = Some(YamlError {
                span: span_of(&mark),
                message: format!("document too large: more than {MAX_NODES} nodes once aliases are expanded"),
            });
        }
        self.error.is_none()
    }
}

fn count_nodes(node: &Node) -> usize {
    1 + match &node.value {
        Value::Scalar { .. } => 0,
        Value::Seq(items) => items.iter().map(count_nodes).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| count_nodes(k) + count_nodes(v)).sum(),
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        let span = span_of(&mark);
        match event {
            Event::Scalar(text, style, anchor, _tag) => {
                if !self.count(1, mark) {
                    return;
                }
                let style = match style {
                    TScalarStyle::Plain => Style::Plain,
                    TScalarStyle::SingleQuoted => Style::SingleQuoted,
                    TScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    TScalarStyle::Literal => Style::Literal,
                    TScalarStyle::Folded => Style::Folded,
                };
                self.push_value(
                    Node {
                        span,
                        value: Value::Scalar { text, style },
                    },
                    anchor,
                );
            }
            Event::SequenceStart(anchor, _) => {
                self.stack.push((
                    Node {
                        span,
                        value: Value::Seq(Vec::new()),
                    },
                    Some(anchor),
                ));
                self.pending_keys.push(None);
            }
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node {
                        span,
                        value: Value::Map(Vec::new()),
                    },
                    Some(anchor),
                ));
                self.pending_keys.push(None);
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    self.pending_keys.pop();
                    if !self.count(1, mark) {
                        return;
                    }
                    self.push_value(node, anchor.unwrap_or(0));
                }
            }
            Event::Alias(id) => match self.anchors.get(&id).cloned() {
                Some(mut node) => {
                    if !self.count(count_nodes(&node), mark) {
                        return;
                    }
                    node.span = span;
                    self.push_value(node, 0);
                }
                None => {
                    self.error = Some(YamlError {
                        span,
                        message: "alias to an unknown anchor".into(),
                    });
                }
            },
            Event::Nothing
            | Event::StreamStart
            | Event::StreamEnd
            | Event::DocumentStart
            | Event::DocumentEnd => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_point_at_nodes() {
        let docs =
            parse("- rule: A\n  condition: ka.verb=create\n- list: l\n  items: [a, \"b c\"]\n").unwrap();
        assert_eq!(docs.len(), 1);
        let items = docs[0].as_seq().unwrap();
        let cond = items[0].get("condition").unwrap();
        assert_eq!(cond.as_scalar(), Some("ka.verb=create"));
        assert_eq!(cond.span, Span { line: 2, column: 14 });
        let list = items[1].get("items").unwrap().as_seq().unwrap();
        assert_eq!(
            list[1].value,
            Value::Scalar {
                text: "b c".into(),
                style: Style::DoubleQuoted
            }
        );
        assert_eq!(list[1].span, Span { line: 4, column: 14 });
    }

    #[test]
    fn several_documents_nulls_and_aliases() {
        let docs = parse("a: &x [1, 2]\nb: *x\nc:\n---\n- ~\n").unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].get("b").unwrap().as_seq().unwrap().len(), 2);
        assert!(docs[0].get("c").unwrap().is_null());
        assert!(docs[1].as_seq().unwrap()[0].is_null());
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_have_positions_and_caret() {
        let text = "- rule: a\n  condition: [unclosed\n";
        let err = parse(text).unwrap_err();
        assert!(err.span.line >= 2, "{err}");
        let shown = caret("abc\ndef", Span { line: 2, column: 2 });
        assert_eq!(shown, " 2 | def\n   |  ^");
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..8 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert!(parse(&text).unwrap_err().message.contains("too large"));
    }
}
