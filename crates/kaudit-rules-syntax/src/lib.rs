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
//!   limited to [`MAX_DEPTH`] grammar levels. Transformers (`tolower(...)`, `join(sep,
//!   list)`, `concat(a, b, ...)`, `getopt(args, optstring)[o]`, ...) take comma-separated
//!   arguments: fields, quoted strings, numbers, `(...)` lists and nested transformers; which
//!   arguments each accepts is the loader's business, as it is libsinsp's compiler's.
//! * [`to_condition_string`] prints an [`Expr`] as Falco prints `condition_compiled`.
//! * [`parse_template`] / [`parse_template_checked`] split an output template into literal
//!   text, field tokens and transformer tokens (read with [`parse_transformer_prefix`]).

mod ast;
mod parser;
mod print;
mod template;

pub use ast::{Check, Expr, ExprKind, FieldName, Modifier, Op, Operand, Rhs, Span, Transformer, Value};
pub use parser::{MAX_DEPTH, MAX_OUTPUT_DEPTH, ParseError, parse_condition, parse_transformer_prefix};
pub use print::{escape_value, to_condition_string, write_check, write_operand};
pub use template::{
    FieldToken, Segment, TemplateError, TransformToken, parse_template, parse_template_checked,
};

#[cfg(test)]
mod tests;
