//! The syntax tree of a condition, with byte spans into the text it was parsed from.

use std::fmt;

/// Where a node was written: a byte range of a condition text.
///
/// `source` says which text the offsets refer to. The parser always sets 0; a consumer that
/// splices trees parsed from several texts (macro expansion) renumbers it so that an error
/// found later can still be traced to the text it came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Span {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
    /// Which text the offsets refer to (0 for the text given to the parser).
    pub source: u32,
}

impl Span {
    /// A span in text 0.
    pub fn new(start: usize, end: usize) -> Span {
        Span {
            start,
            end,
            source: 0,
        }
    }
}

/// A condition expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it was written.
    pub span: Span,
}

/// The kinds of [`Expr`].
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// `a and b and ...` (two or more children).
    And(Vec<Expr>),
    /// `a or b or ...` (two or more children).
    Or(Vec<Expr>),
    /// `not a`.
    Not(Box<Expr>),
    /// A bare identifier: a macro reference.
    Identifier(String),
    /// A comparison.
    Check(Box<Check>),
}

/// A comparison: a field (possibly transformed), an operator and what it is compared with.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The left side.
    pub left: Operand,
    /// The operator.
    pub op: Op,
    /// The operator as written, trimmed (`=` and `==` are the same operator).
    pub op_text: &'static str,
    /// The right side.
    pub right: Rhs,
}

/// A comparison operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// `=` or `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `contains`
    Contains,
    /// `icontains`
    IContains,
    /// `bcontains`
    BContains,
    /// `startswith`
    StartsWith,
    /// `bstartswith`
    BStartsWith,
    /// `endswith`
    EndsWith,
    /// `glob`
    Glob,
    /// `iglob`
    IGlob,
    /// `regex`
    Regex,
    /// `exists`
    Exists,
    /// `in`
    In,
    /// `intersects`
    Intersects,
    /// `pmatch`
    PMatch,
}

impl Op {
    /// The operator's canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::Exists => "exists",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::PMatch => "pmatch",
        }
    }

    /// The operator named `text` (`==` is [`Op::Eq`]), as written in exception `comps`.
    pub fn from_text(text: &str) -> Option<Op> {
        Some(match text {
            "=" | "==" => Op::Eq,
            "!=" => Op::Ne,
            "<" => Op::Lt,
            "<=" => Op::Le,
            ">" => Op::Gt,
            ">=" => Op::Ge,
            "contains" => Op::Contains,
            "icontains" => Op::IContains,
            "bcontains" => Op::BContains,
            "startswith" => Op::StartsWith,
            "bstartswith" => Op::BStartsWith,
            "endswith" => Op::EndsWith,
            "glob" => Op::Glob,
            "iglob" => Op::IGlob,
            "regex" => Op::Regex,
            "exists" => Op::Exists,
            "in" => Op::In,
            "intersects" => Op::Intersects,
            "pmatch" => Op::PMatch,
            _ => return None,
        })
    }

    /// True for the operators whose right side is a list: `in`, `intersects`, `pmatch`.
    pub fn takes_list(self) -> bool {
        matches!(self, Op::In | Op::Intersects | Op::PMatch)
    }

    /// True for `<`, `<=`, `>`, `>=`, whose right side must be written as a number.
    pub fn is_numeric(self) -> bool {
        matches!(self, Op::Lt | Op::Le | Op::Gt | Op::Ge)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A function applied to values before comparing or printing them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Transformer {
    /// `tolower(...)`
    ToLower,
    /// `toupper(...)`
    ToUpper,
    /// `b64(...)`: base64 decoding.
    B64,
    /// `basename(...)`: the last path component.
    Basename,
    /// `len(...)`: the length of a string, or the number of values of a list.
    Len,
    /// `val(...)`: the value of another field, on the right side of a comparison.
    Val,
    /// `join(separator, list)`: the values of the list joined by the separator.
    Join,
    /// `concat(a, b, ...)`: its arguments (two or more) one after the other.
    Concat,
    /// `getopt(args, optstring)`: the short options of an argument list, as getopt(3) reads
    /// them; `getopt(...)[o]` keeps only the value of option `o`.
    Getopt,
}

impl Transformer {
    /// The transformer's name as written before `(`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transformer::ToLower => "tolower",
            Transformer::ToUpper => "toupper",
            Transformer::B64 => "b64",
            Transformer::Basename => "basename",
            Transformer::Len => "len",
            Transformer::Val => "val",
            Transformer::Join => "join",
            Transformer::Concat => "concat",
            Transformer::Getopt => "getopt",
        }
    }

    /// True for the transformers that combine several arguments into one result (`join`,
    /// `concat`, `getopt`); the others take exactly one argument.
    pub fn is_multivalue(self) -> bool {
        matches!(
            self,
            Transformer::Join | Transformer::Concat | Transformer::Getopt
        )
    }
}

/// A field reference as written: `name` or `name[arg]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldName {
    /// The field's name (`ka.verb`).
    pub name: String,
    /// The argument between brackets, unquoted (`/requestObject/spec`).
    pub arg: Option<String>,
    /// Where it was written.
    pub span: Span,
}

/// What a check compares, or an argument of a transformer: a field, a transformer applied to
/// arguments, or (as a transformer argument only) a literal or a parenthesized list.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    /// A plain field.
    Field(FieldName),
    /// `transformer(arg, ...)`, optionally followed by `[arg]` (`getopt(...)[t]`).
    Transform {
        /// The function.
        transformer: Transformer,
        /// Its arguments, in order (one for the single-argument transformers).
        args: Vec<Operand>,
        /// The argument between brackets after the closing parenthesis, unquoted.
        arg: Option<String>,
        /// Where it was written.
        span: Span,
    },
    /// A quoted string or a number written as a transformer argument (the text as written,
    /// unquoted).
    Value(Value),
    /// `(item, ...)` written as a transformer argument: fields, transformers, quoted strings
    /// and numbers.
    List {
        /// The items.
        items: Vec<Operand>,
        /// Where the list was written, parentheses included.
        span: Span,
    },
}

impl Operand {
    /// Visits every field the operand reads, in the order written.
    pub fn for_each_field<'a>(&'a self, f: &mut dyn FnMut(&'a FieldName)) {
        match self {
            Operand::Field(name) => f(name),
            Operand::Transform { args: items, .. } | Operand::List { items, .. } => {
                items.iter().for_each(|o| o.for_each_field(f));
            }
            Operand::Value(_) => {}
        }
    }

    /// The first field the operand reads, if any.
    pub fn first_field(&self) -> Option<&FieldName> {
        let mut first = None;
        self.for_each_field(&mut |name| {
            first.get_or_insert(name);
        });
        first
    }

    /// Where the operand was written.
    pub fn span(&self) -> Span {
        match self {
            Operand::Field(f) => f.span,
            Operand::Value(v) => v.span,
            Operand::Transform { span, .. } | Operand::List { span, .. } => *span,
        }
    }
}

/// A literal value with its place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Value {
    /// The text after unquoting.
    pub text: String,
    /// Where it was written.
    pub span: Span,
}

/// A string operator modifier: `= oneof (a, b)`, `startswith anyof (...)`, `contains allof (...)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Modifier {
    /// `oneof`: the comparison holds for at least one of the values.
    OneOf,
    /// `anyof`: the comparison holds for at least one of the values.
    AnyOf,
    /// `allof`: the comparison holds for every value.
    AllOf,
}

impl Modifier {
    /// The modifier as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Modifier::OneOf => "oneof",
            Modifier::AnyOf => "anyof",
            Modifier::AllOf => "allof",
        }
    }
}

/// The right side of a comparison.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// Nothing (`exists`).
    None,
    /// One value (a string, or a number as written).
    Value(Value),
    /// A parenthesized list `(a, b, ...)`, possibly empty.
    List {
        /// The items.
        items: Vec<Value>,
        /// Where the list was written, parentheses included.
        span: Span,
    },
    /// A bare identifier after a list operator (`x in name`): a one-element list.
    ListName(Value),
    /// A field, through `val(...)` or another transformer.
    Operand(Operand),
    /// A modifier and its list: `oneof (a, b)`.
    Modified {
        /// The modifier.
        modifier: Modifier,
        /// The values.
        items: Vec<Value>,
        /// Where the modifier and its list were written.
        span: Span,
    },
}

impl Rhs {
    /// The literal values on the right side (empty for `exists` and field comparisons).
    pub fn values(&self) -> Vec<&str> {
        match self {
            Rhs::None | Rhs::Operand(_) => Vec::new(),
            Rhs::Value(v) | Rhs::ListName(v) => vec![v.text.as_str()],
            Rhs::List { items, .. } | Rhs::Modified { items, .. } => {
                items.iter().map(|v| v.text.as_str()).collect()
            }
        }
    }
}

impl Expr {
    /// Visits every check of the expression, in order.
    pub fn for_each_check<'a>(&'a self, f: &mut dyn FnMut(&'a Check)) {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::And(children) | ExprKind::Or(children) => stack.extend(children.iter().rev()),
                ExprKind::Not(child) => stack.push(child),
                ExprKind::Identifier(_) => {}
                ExprKind::Check(c) => f(c),
            }
        }
    }
}
