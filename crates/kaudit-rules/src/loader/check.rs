//! Checking an expanded condition against the field catalogue and turning it into the public
//! [`Expr`]: unknown fields, missing or forbidden arguments, operators a field's type does not
//! take (list fields take only `exists`, `in` and `intersects`), numbers that are not
//! numbers, regular expressions that do not compile, transformers given the wrong arguments.
//!
//! Types follow libsinsp's two views of an operand. What it yields (its *effective* shape:
//! `len` gives a number, `getopt` a list, ...) decides the operators it takes. What `join`,
//! `concat` and `getopt` check their arguments against is the *declared* shape: the type of
//! the field at the bottom of a chain of single-argument transformers (`len(ka.verb)` counts as
//! the string `ka.verb`, `toupper(list)` as a list), a plain string for a literal and for the
//! result of `join`, `concat` and `getopt` (even a `getopt` list), a list for `(a, b)`.

use kaudit_rules_syntax::{self as syntax, ExprKind, Rhs, Span};

use crate::eval::{full_match_regex, parse_number};
use crate::expr::{ComplexCheck, ComplexRhs, Expr, Op, Operand, Transformer};
use crate::fields::{self, FieldError, ValueKind};

/// A problem found in a condition.
#[derive(Debug)]
pub(crate) struct CheckError {
    /// Where.
    pub span: Span,
    /// What, in Falco's words where Falco has words for it.
    pub message: String,
    /// The problem is a field that does not exist (what `skip-if-unknown-filter` forgives).
    pub unknown_field: bool,
}

fn error(span: Span, message: impl Into<String>) -> CheckError {
    CheckError {
        span,
        message: message.into(),
        unknown_field: false,
    }
}

/// Converts an expanded condition (no macro identifiers left).
pub(crate) fn convert(e: &syntax::Expr) -> Result<Expr, CheckError> {
    match &e.kind {
        ExprKind::And(children) => Ok(Expr::And(children.iter().map(convert).collect::<Result<_, _>>()?)),
        ExprKind::Or(children) => Ok(Expr::Or(children.iter().map(convert).collect::<Result<_, _>>()?)),
        ExprKind::Not(child) => Ok(Expr::Not(Box::new(convert(child)?))),
        ExprKind::Identifier(name) => Err(error(e.span, format!("Undefined macro '{name}' used in filter."))),
        ExprKind::Check(check) => convert_check(check),
    }
}

/// What an operand yields, or is declared to yield.
#[derive(Clone, Copy, Debug)]
struct Shape {
    list: bool,
    numeric: bool,
    /// A string (libsinsp's CHARBUF): neither a number nor `evt.is_async`'s boolean.
    text: bool,
}

const TEXT: Shape = Shape {
    list: false,
    numeric: false,
    text: true,
};

const TEXT_LIST: Shape = Shape {
    list: true,
    numeric: false,
    text: true,
};

const NUMBER: Shape = Shape {
    list: false,
    numeric: true,
    text: false,
};

/// A converted operand with its effective and declared shapes.
struct Typed {
    operand: Operand,
    shape: Shape,
    declared: Shape,
}

fn field(name: &syntax::FieldName) -> Result<fields::FieldRef, CheckError> {
    fields::resolve(&name.name, name.arg.as_deref()).map_err(|e| CheckError {
        span: name.span,
        unknown_field: matches!(e, FieldError::Unknown { .. }),
        message: e.to_string(),
    })
}

fn operand(o: &syntax::Operand) -> Result<(Operand, Shape), CheckError> {
    let typed = typed_operand(o)?;
    Ok((typed.operand, typed.shape))
}

fn typed_operand(o: &syntax::Operand) -> Result<Typed, CheckError> {
    match o {
        syntax::Operand::Field(name) => {
            let f = field(name)?;
            let info = f.info();
            let numeric = info.kind == ValueKind::Number;
            let shape = Shape {
                list: info.list,
                numeric,
                text: !numeric && info.output != fields::Output::Bool,
            };
            Ok(Typed {
                operand: Operand::Field(f),
                shape,
                declared: shape,
            })
        }
        syntax::Operand::Value(v) => Ok(Typed {
            operand: Operand::Literal(v.text.clone()),
            shape: TEXT,
            declared: TEXT,
        }),
        syntax::Operand::List { items, .. } => {
            let items = items
                .iter()
                .map(|i| typed_operand(i).map(|t| t.operand))
                .collect::<Result<_, _>>()?;
            Ok(Typed {
                operand: Operand::List(items),
                shape: TEXT_LIST,
                declared: TEXT_LIST,
            })
        }
        syntax::Operand::Transform {
            transformer,
            args,
            arg,
            span,
        } if transformer.is_multivalue() => multivalue(*transformer, args, arg.as_deref(), *span),
        syntax::Operand::Transform {
            transformer,
            args,
            arg,
            span,
        } => {
            let [inner] = args.as_slice() else {
                return Err(error(
                    *span,
                    format!(
                        "transformer '{}' takes exactly one argument",
                        transformer.as_str()
                    ),
                ));
            };
            if arg.is_some() {
                return Err(no_field_argument(*transformer, *span));
            }
            let inner = typed_operand(inner)?;
            let shape = match transformer {
                Transformer::Len => NUMBER,
                Transformer::Val => inner.shape,
                t if inner.shape.numeric => {
                    return Err(error(
                        *span,
                        format!("transformer '{}' is not supported on numeric values", t.as_str()),
                    ));
                }
                _ => inner.shape,
            };
            Ok(Typed {
                operand: Operand::Transform(*transformer, Box::new(inner.operand)),
                shape,
                declared: inner.declared,
            })
        }
    }
}

fn no_field_argument(t: Transformer, span: Span) -> CheckError {
    error(
        span,
        format!("transformer '{}' does not support field arguments", t.as_str()),
    )
}

/// `join`, `concat` and `getopt`: their arguments checked as libsinsp checks them, in its
/// order and words (argument count, then list-ness and types, then the `[arg]`).
fn multivalue(
    t: Transformer,
    args: &[syntax::Operand],
    arg: Option<&str>,
    span: Span,
) -> Result<Typed, CheckError> {
    let typed: Vec<Typed> = args.iter().map(typed_operand).collect::<Result<_, _>>()?;
    let declared: Vec<Shape> = typed.iter().map(|a| a.declared).collect();
    let fail = |message: &str| Err(error(span, message));
    let mut selector = None;
    let shape = match t {
        Transformer::Join => {
            if declared.len() != 2 {
                return fail("join() requires exactly 2 arguments: separator and list");
            }
            if declared[0].list {
                return fail("join() first argument (separator) must be a single value, not a list");
            }
            if !declared[1].list {
                return fail("join() second argument must be a list");
            }
            if arg.is_some() {
                return Err(no_field_argument(t, span));
            }
            TEXT
        }
        Transformer::Concat => {
            if declared.len() < 2 {
                return fail("concat() requires at least 2 arguments");
            }
            if declared.iter().any(|d| !d.text || d.list) {
                return fail("concat() arguments must be strings");
            }
            if arg.is_some() {
                return Err(no_field_argument(t, span));
            }
            TEXT
        }
        _ => {
            if declared.len() != 2 {
                return fail("getopt() requires exactly 2 arguments: args list and optstring");
            }
            if !declared[0].list {
                return fail("getopt() first argument must be a list");
            }
            if declared[1].list {
                return fail("getopt() second argument (optstring) must be a single value");
            }
            if !declared[0].text || !declared[1].text {
                return fail("getopt() arguments must be strings");
            }
            match arg.map(str::as_bytes) {
                None => TEXT_LIST,
                Some(&[option]) => {
                    selector = Some(option);
                    TEXT
                }
                Some(_) => return fail("getopt() field argument must be a single option character"),
            }
        }
    };
    Ok(Typed {
        operand: Operand::Multi {
            transformer: t,
            args: typed.into_iter().map(|a| a.operand).collect(),
            selector,
        },
        shape,
        declared: TEXT,
    })
}

/// Whether an exception's field is valid on the left side of a check. As in Falco, a field
/// written with a parenthesis (`tolower(ka.user.name)`, `concat(ka.verb, "/", ka.uri)`) is
/// valid when `<field> exists` compiles; any other must be a field name of the catalogue.
pub(crate) fn is_valid_lhs_field(field: &str) -> bool {
    if !field.contains('(') {
        return fields::lookup(field).is_some();
    }
    syntax::parse_condition(&format!("{field} exists"))
        .ok()
        .is_some_and(|e| convert(&e).is_ok())
}

/// Checks a transformer token of an output template (`%toupper(ka.verb)`) as libsinsp checks
/// the left side of a condition.
pub(crate) fn output_operand(o: &syntax::Operand) -> Result<Operand, CheckError> {
    typed_operand(o).map(|t| t.operand)
}

fn check_operator(op: Op, shape: &Shape, span: Span) -> Result<(), CheckError> {
    let ok = match op {
        Op::Exists => true,
        _ if shape.list => matches!(op, Op::In | Op::Intersects),
        _ if shape.numeric => matches!(
            op,
            Op::Eq | Op::Ne | Op::Lt | Op::Le | Op::Gt | Op::Ge | Op::In | Op::Intersects
        ),
        _ => !matches!(op, Op::BContains | Op::BStartsWith),
    };
    if ok {
        return Ok(());
    }
    let message = if shape.list {
        format!(
            "'{op}' operator not supported list filters (list fields only take the operators exists, in, intersects)"
        )
    } else if shape.numeric {
        format!("'{op}' operator not supported for numeric filters")
    } else {
        format!("'{op}' operator not supported for string filters")
    };
    Err(error(span, message))
}

fn convert_check(check: &syntax::Check) -> Result<Expr, CheckError> {
    let (left, shape) = operand(&check.left)?;
    let op = check.op;
    check_operator(op, &shape, check.left.span())?;
    let literal = |values: &[syntax::Value]| -> Result<Vec<String>, CheckError> {
        for v in values {
            if shape.numeric && parse_number(&v.text).is_none() {
                return Err(error(v.span, format!("could not parse '{}' as a number", v.text)));
            }
            if op == Op::Regex
                && let Err(e) = full_match_regex(&v.text)
            {
                return Err(error(
                    v.span,
                    format!("invalid regular expression '{}': {e}", v.text),
                ));
            }
        }
        Ok(values.iter().map(|v| v.text.clone()).collect())
    };
    let (values, modifier) = match &check.right {
        Rhs::None => (Vec::new(), None),
        Rhs::Value(v) | Rhs::ListName(v) => (literal(std::slice::from_ref(v))?, None),
        Rhs::List { items, .. } => (literal(items)?, None),
        Rhs::Modified { modifier, items, .. } => (literal(items)?, Some(*modifier)),
        Rhs::Operand(o) => {
            let (right, right_shape) = operand(o)?;
            if shape.numeric && !right_shape.numeric {
                return Err(error(
                    o.span(),
                    "a numeric field can only be compared with a numeric field",
                ));
            }
            return Ok(Expr::Complex(Box::new(ComplexCheck {
                left,
                op,
                modifier: None,
                right: ComplexRhs::Operand(right),
            })));
        }
    };
    match (left, modifier) {
        (Operand::Field(field), None) => Ok(Expr::Check { field, op, values }),
        (left, modifier) => Ok(Expr::Complex(Box::new(ComplexCheck {
            left,
            op,
            modifier,
            right: ComplexRhs::Values(values),
        }))),
    }
}
