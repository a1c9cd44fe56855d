//! Lexer, parser and syntax tree (with byte spans) for Falco condition expressions, and the
//! parser of output templates.
//!
//! Owns: the condition grammar exactly as Falco 0.44.1 (libs 0.25) reads it, its error
//! messages and offsets, and printing a tree back in Falco's compiled-condition style.
//! Must never: know Kubernetes field names, macros, lists or the event model (callers pass a
//! predicate when they need to know whether a name is a field), or panic on any input (it is
//! fuzzed).
//!
//! Brief overview:
//! * [`parse_condition`] turns condition text into an [`Expr`] or a [`ParseError`] with the
//!   byte offset where parsing stopped. Precedence is `not` > `and` > `or`; nesting is
//!   limited to [`MAX_DEPTH`] grammar levels.
//! * [`to_condition_string`] prints an [`Expr`] as Falco prints `condition_compiled`.
//! * [`parse_template`] splits an output template into literal text and field tokens.

mod ast;
mod parser;
mod print;
mod template;

pub use ast::{Check, Expr, ExprKind, FieldName, Modifier, Op, Operand, Rhs, Span, Transformer, Value};
pub use parser::{MAX_DEPTH, ParseError, parse_condition};
pub use print::{escape_value, to_condition_string, write_check, write_operand};
pub use template::{FieldToken, Segment, TemplateError, parse_template};

#[cfg(test)]
mod tests;
