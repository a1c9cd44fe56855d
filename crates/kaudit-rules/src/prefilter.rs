//! What a condition says about one field, statically: the verbs, resources or stages a rule
//! can match at all. The evaluator uses it to skip rules that cannot match an event (rules
//! are indexed by verb, then checked against the event's resource) without changing any
//! result; tools use it to tell which events a rule needs.
//!
//! The analysis is sound by construction: when it returns a set, the condition is false for
//! every event whose value of the field is outside the set, or missing.

use std::collections::BTreeSet;

use crate::expr::{ComplexRhs, Expr, Modifier, Op, Operand};
use crate::fields::FieldRef;

/// The values of the target field for which `expr` can hold, or `None` when the condition
/// does not restrict them (or the analysis cannot tell).
pub(crate) fn allowed_values(expr: &Expr, is_target: &dyn Fn(&FieldRef) -> bool) -> Option<BTreeSet<String>> {
    match expr {
        Expr::And(children) => {
            let mut acc: Option<BTreeSet<String>> = None;
            for c in children {
                if let Some(s) = allowed_values(c, is_target) {
                    acc = Some(match acc {
                        None => s,
                        Some(a) => a.intersection(&s).cloned().collect(),
                    });
                }
            }
            acc
        }
        Expr::Or(children) => {
            let mut acc = BTreeSet::new();
            for c in children {
                acc.extend(allowed_values(c, is_target)?);
            }
            Some(acc)
        }
        Expr::Not(inner) => match &**inner {
            Expr::Not(x) => allowed_values(x, is_target),
            _ => None,
        },
        Expr::Check { field, op, values } if is_target(field) && !field.info().list => match op {
            Op::Eq | Op::In | Op::Intersects => Some(values.iter().cloned().collect()),
            _ => None,
        },
        Expr::Complex(c) => match (&c.left, c.op, c.modifier, &c.right) {
            (
                Operand::Field(f),
                Op::Eq,
                Some(Modifier::OneOf | Modifier::AnyOf),
                ComplexRhs::Values(values),
            ) if is_target(f) && !f.info().list => Some(values.iter().cloned().collect()),
            _ => None,
        },
        Expr::Check { .. } => None,
    }
}

/// `ka.verb`.
pub(crate) fn is_verb(f: &FieldRef) -> bool {
    f.display() == "ka.verb"
}

/// `ka.target.resource`.
pub(crate) fn is_resource(f: &FieldRef) -> bool {
    f.display() == "ka.target.resource"
}

/// `ka.stage`, or the `stage` member through `jevt.value` / `json.value`.
pub(crate) fn is_stage(f: &FieldRef) -> bool {
    matches!(
        f.display().as_str(),
        "ka.stage" | "jevt.value[/stage]" | "json.value[/stage]" | "jevt.value[stage]" | "json.value[stage]"
    )
}
