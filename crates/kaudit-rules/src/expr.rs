//! The public form of a rule's condition after macro expansion and list substitution, with
//! every field resolved: what tools that analyse rules statically walk (the policy coverage
//! tool reads the verbs, resources and body levels a rule needs from it).

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

/// A field, possibly transformed.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// The field's values.
    Field(FieldRef),
    /// A transformer applied to an operand (`tolower(ka.useragent)`, `val(ka.resp.name)`).
    Transform(Transformer, Box<Operand>),
}

impl Operand {
    /// The field at the bottom of the transformer chain.
    pub fn field(&self) -> &FieldRef {
        match self {
            Operand::Field(f) => f,
            Operand::Transform(_, inner) => inner.field(),
        }
    }
}

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
                f(c.left.field());
                if let ComplexRhs::Operand(o) = &c.right {
                    f(o.field());
                }
            }
        }
    }
}
