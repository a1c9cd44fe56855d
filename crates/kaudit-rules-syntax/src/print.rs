//! Printing a tree back to condition text, the way Falco shows a compiled condition
//! (`condition_compiled` of `falco -L`): logical groups in parentheses, values quoted only
//! when they hold a blank, a quote or a backslash.
//!
//! Like Falco's, the text does not always parse again: a value holding a comma or a
//! parenthesis, and any string argument of a transformer (`concat(ka.verb,-)` for
//! `concat(ka.verb, "-")`), print bare where the grammar wants them quoted.

use std::fmt::Write;

use crate::ast::{Check, Expr, ExprKind, Operand, Rhs};

/// Quotes and escapes `s` when it needs it to be read back as one value: when it contains a
/// space, a control character among `\b \f \n \r \t`, a backslash or a quote. Other values
/// (the empty string included) are printed as they are.
pub fn escape_value(s: &str) -> String {
    let needs = s.bytes().any(|b| {
        matches!(
            b,
            b'\x08' | b'\x0c' | b'\n' | b'\r' | b'\t' | b' ' | b'\\' | b'"' | b'\''
        )
    });
    if !needs {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            other => out.push(other),
        }
    }
    out.push('"');
    out
}

/// The expression as condition text, in Falco's compiled-condition style.
pub fn to_condition_string(expr: &Expr) -> String {
    let mut out = String::new();
    write_expr(&mut out, expr);
    out
}

fn write_expr(out: &mut String, expr: &Expr) {
    match &expr.kind {
        ExprKind::And(children) | ExprKind::Or(children) => {
            let word = if matches!(expr.kind, ExprKind::And(_)) {
                " and "
            } else {
                " or "
            };
            out.push('(');
            for (i, c) in children.iter().enumerate() {
                if i > 0 {
                    out.push_str(word);
                }
                write_expr(out, c);
            }
            out.push(')');
        }
        ExprKind::Not(child) => {
            out.push_str("not ");
            write_expr(out, child);
        }
        ExprKind::Identifier(name) => out.push_str(name),
        ExprKind::Check(check) => write_check(out, check),
    }
}

/// Writes one check as condition text.
pub fn write_check(out: &mut String, check: &Check) {
    write_operand(out, &check.left);
    out.push(' ');
    out.push_str(check.op_text);
    match &check.right {
        Rhs::None => {}
        Rhs::Value(v) | Rhs::ListName(v) => {
            out.push(' ');
            out.push_str(&escape_value(&v.text));
        }
        Rhs::List { items, .. } => {
            out.push(' ');
            write_list(out, items.iter().map(|v| v.text.as_str()));
        }
        Rhs::Operand(o) => {
            out.push(' ');
            write_operand(out, o);
        }
        Rhs::Modified { modifier, items, .. } => {
            let _ = write!(out, " {} ", modifier.as_str());
            write_list(out, items.iter().map(|v| v.text.as_str()));
        }
    }
}

fn write_list<'a>(out: &mut String, items: impl Iterator<Item = &'a str>) {
    out.push('(');
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&escape_value(v));
    }
    out.push(')');
}

/// Writes an operand (`field[arg]`, `tolower(field)`, `join(",",(a.b,c.d))`) as condition
/// text, the way Falco prints it: transformer arguments and list items separated by a bare
/// comma, literals quoted only when they need it.
pub fn write_operand(out: &mut String, operand: &Operand) {
    match operand {
        Operand::Field(f) => {
            out.push_str(&f.name);
            if let Some(arg) = &f.arg
                && !arg.is_empty()
            {
                out.push('[');
                out.push_str(&escape_value(arg));
                out.push(']');
            }
        }
        Operand::Transform {
            transformer,
            args,
            arg,
            ..
        } => {
            out.push_str(transformer.as_str());
            write_operands(out, args);
            if let Some(arg) = arg {
                out.push('[');
                if arg.is_empty() {
                    out.push_str("\"\"");
                } else {
                    out.push_str(&escape_value(arg));
                }
                out.push(']');
            }
        }
        Operand::Value(v) => out.push_str(&escape_value(&v.text)),
        Operand::List { items, .. } => write_operands(out, items),
    }
}

/// `(a,b,...)`
fn write_operands(out: &mut String, items: &[Operand]) {
    out.push('(');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_operand(out, item);
    }
    out.push(')');
}
