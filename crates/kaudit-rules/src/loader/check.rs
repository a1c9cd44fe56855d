//! Checking an expanded condition against the field catalogue and turning it into the public
//! [`Expr`]: unknown fields, missing or forbidden arguments, operators a field's type does not
//! take (list fields take only `exists`, `in` and `intersects`), numbers that are not
//! numbers, regular expressions that do not compile.

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

/// What a (possibly transformed) left side yields.
struct Shape {
    list: bool,
    numeric: bool,
}

fn field(name: &syntax::FieldName) -> Result<fields::FieldRef, CheckError> {
    fields::resolve(&name.name, name.arg.as_deref()).map_err(|e| CheckError {
        span: name.span,
        unknown_field: matches!(e, FieldError::Unknown { .. }),
        message: e.to_string(),
    })
}

fn operand(o: &syntax::Operand) -> Result<(Operand, Shape), CheckError> {
    match o {
        syntax::Operand::Field(name) => {
            let f = field(name)?;
            let shape = Shape {
                list: f.info().list,
                numeric: f.info().kind == ValueKind::Number,
            };
            Ok((Operand::Field(f), shape))
        }
        syntax::Operand::Transform {
            transformer,
            inner,
            span,
        } => {
            let (inner, shape) = operand(inner)?;
            let shape = match transformer {
                Transformer::Len => Shape {
                    list: false,
                    numeric: true,
                },
                Transformer::Val => shape,
                t if shape.numeric => {
                    return Err(error(
                        *span,
                        format!("transformer '{}' is not supported on numeric values", t.as_str()),
                    ));
                }
                _ => shape,
            };
            Ok((Operand::Transform(*transformer, Box::new(inner)), shape))
        }
    }
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
