//! The public form of a rule's condition after macro expansion and list substitution, with
//! every field resolved: what tools that analyse rules statically walk (the policy coverage
//! tool reads the verbs, resources and body levels a rule needs from it).

use std::sync::LazyLock;

pub use kaudit_rules_syntax::{Modifier, Op, Transformer};

use crate::fields::FieldRef;

/// A condition, fully expanded.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// All children hold.
    And(Vec<Expr>),
    /// At least one child holds.
    Or(Vec<Expr>),
    /// The child does not hold.
    Not(Box<Expr>),
    /// A plain field compared with literal values: `ka.verb = create` (`values` =
    /// `["create"]`), `ka.verb in (a, b)` (`["a", "b"]`), `ka.target.subresource exists`
    /// (`[]`). Every check is false when the field has no value.
    Check {
        /// The field.
        field: FieldRef,
        /// The operator.
        op: Op,
        /// The right side's values, unquoted.
        values: Vec<String>,
    },
    /// A comparison using transformers, a field on the right side (`val(...)`) or an
    /// operator modifier (`oneof`, `anyof`, `allof`).
    Complex(Box<ComplexCheck>),
}

/// A comparison that is not a plain [`Expr::Check`].
#[derive(Clone, Debug, PartialEq)]
pub struct ComplexCheck {
    /// The left side.
    pub left: Operand,
    /// The operator.
    pub op: Op,
    /// The modifier, when the right side is `oneof (...)`, `anyof (...)` or `allof (...)`.
    pub modifier: Option<Modifier>,
    /// The right side.
    pub right: ComplexRhs,
}

/// A field, possibly transformed, or what a transformer combines.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// The field's values.
    Field(FieldRef),
    /// A single-argument transformer applied to an operand (`tolower(ka.useragent)`,
    /// `val(ka.resp.name)`).
    Transform(Transformer, Box<Operand>),
    /// A transformer that combines several arguments: `join(sep, list)`, `concat(a, b, ...)`,
    /// `getopt(args, optstring)` and `getopt(...)[o]`.
    Multi {
        /// [`Transformer::Join`], [`Transformer::Concat`] or [`Transformer::Getopt`].
        transformer: Transformer,
        /// The arguments, in order.
        args: Vec<Operand>,
        /// The option character of `getopt(...)[o]`.
        selector: Option<u8>,
    },
    /// A quoted string or a number written as a transformer argument: that text.
    Literal(String),
    /// `(a, b, ...)` written as a transformer argument: the values of the items, in order.
    List(Vec<Operand>),
}

impl Operand {
    /// The first field the operand reads. An operand made of literals only reads none and
    /// answers `evt.num`, which every event has, so that an analysis taking the most
    /// demanding field of an operand still sees the metadata level. Operands that read several
    /// fields (`concat`, `join`, `getopt`) are better walked with [`Operand::fields`].
    pub fn field(&self) -> &FieldRef {
        self.fields().into_iter().next().unwrap_or_else(|| &EVT_NUM)
    }

    /// Every field the operand reads, in the order written (with repetitions).
    pub fn fields(&self) -> Vec<&FieldRef> {
        let mut out = Vec::new();
        self.collect_fields(&mut out);
        out
    }

    fn collect_fields<'a>(&'a self, out: &mut Vec<&'a FieldRef>) {
        match self {
            Operand::Field(f) => out.push(f),
            Operand::Transform(_, inner) => inner.collect_fields(out),
            Operand::Multi { args: items, .. } | Operand::List(items) => {
                items.iter().for_each(|o| o.collect_fields(out));
            }
            Operand::Literal(_) => {}
        }
    }
}

/// What [`Operand::field`] answers for an operand that reads no field.
static EVT_NUM: LazyLock<FieldRef> =
    LazyLock::new(|| crate::fields::resolve("evt.num", None).expect("evt.num is in the field catalogue"));

/// The right side of a [`ComplexCheck`].
#[derive(Clone, Debug, PartialEq)]
pub enum ComplexRhs {
    /// Literal values.
    Values(Vec<String>),
    /// Another field's values.
    Operand(Operand),
}

impl Expr {
    /// Every field the expression reads, each once, in order of first use.
    pub fn fields(&self) -> Vec<FieldRef> {
        let mut out: Vec<FieldRef> = Vec::new();
        self.for_each_field(&mut |f| {
            if !out.contains(f) {
                out.push(f.clone());
            }
        });
        out
    }

    /// Calls `f` for every field read, in order (with repetitions).
    pub fn for_each_field(&self, f: &mut dyn FnMut(&FieldRef)) {
        match self {
            Expr::And(children) | Expr::Or(children) => children.iter().for_each(|c| c.for_each_field(f)),
            Expr::Not(child) => child.for_each_field(f),
            Expr::Check { field, .. } => f(field),
            Expr::Complex(c) => {
                c.left.fields().into_iter().for_each(&mut *f);
                if let ComplexRhs::Operand(o) = &c.right {
                    o.fields().into_iter().for_each(f);
                }
            }
        }
    }
}
