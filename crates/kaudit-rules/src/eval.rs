//! Compiled conditions and their evaluation.
//!
//! A condition is compiled once, at load, into a tree of [`Node`]s whose checks refer to
//! fields by slot number and hold ready-made tests (hash sets for large `in` lists, compiled
//! regular expressions, numbers already parsed). Per event, a [`Cache`] extracts each slot at
//! most once, however many rules read it.
//!
//! Semantics (`shared/reference/falco-rules.md` section 5): every check on a field without a
//! value is false (`!=` and `exists` included); on list fields `in` means every value is in
//! the set and `intersects` that one is; strings compare byte-wise (`<` is lexicographic);
//! numeric `evt.*` fields compare as numbers.
//!
//! Transformers are evaluated from their arguments' values. `join`, `concat` and `getopt`
//! give a value only when each of their arguments has one; `getopt` may give an empty list,
//! which exists, is `in` any set and `intersects` none, as in libsinsp.

use std::borrow::Cow;
use std::collections::HashMap;

use memchr::memmem::Finder;
use rustc_hash::FxHashSet;

use crate::expr::{ComplexRhs, Expr, Modifier, Op, Operand, Transformer};
use crate::fields::{EventCtx, FieldRef, Output, ValueKind, Values};
use crate::getopt::{Getopt, OptString, getopt};

/// Lists with more items than this are matched through a hash set.
const HASH_SET_MIN: usize = 8;

/// The fields read by a rule set, each with a slot number.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slots {
    pub refs: Vec<FieldRef>,
    index: HashMap<FieldRef, usize>,
}

impl Slots {
    /// The slot of `field`, allocating one the first time.
    pub fn slot(&mut self, field: &FieldRef) -> usize {
        if let Some(&i) = self.index.get(field) {
            return i;
        }
        let i = self.refs.len();
        self.refs.push(field.clone());
        self.index.insert(field.clone(), i);
        i
    }
}

/// The values of the fields of one event, extracted on first use.
pub(crate) struct Cache<'e> {
    ctx: &'e EventCtx<'e>,
    values: Vec<Option<Values<'e>>>,
}

impl<'e> Cache<'e> {
    pub fn new(ctx: &'e EventCtx<'e>, slots: usize) -> Cache<'e> {
        let mut values = Vec::with_capacity(slots);
        values.resize_with(slots, || None);
        Cache { ctx, values }
    }

    /// The values of the field in `slot`, extracting them if needed.
    pub fn get(&mut self, slot: usize, slots: &Slots) -> &Values<'e> {
        let ctx = self.ctx;
        let entry = &mut self.values[slot];
        entry.get_or_insert_with(|| slots.refs[slot].extract(ctx))
    }

    fn ensure(&mut self, operand: &COperand, slots: &Slots) {
        match operand {
            COperand::Slot(s) => {
                self.get(*s, slots);
            }
            COperand::Transform(_, inner) => self.ensure(inner, slots),
            COperand::Literal(_) => {}
            COperand::List(items) => items.iter().for_each(|i| self.ensure(&i.operand, slots)),
            COperand::Join(sep, list) => {
                self.ensure(sep, slots);
                self.ensure(list, slots);
            }
            COperand::Concat(args) => args.iter().for_each(|a| self.ensure(a, slots)),
            COperand::Getopt { args, optstring, .. } => {
                self.ensure(args, slots);
                self.ensure(optstring, slots);
            }
        }
    }

    fn peek(&self, slot: usize) -> &Values<'e> {
        self.values[slot].as_ref().unwrap_or(&Values::None)
    }
}

/// A compiled condition.
#[derive(Debug)]
pub(crate) enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    Check(Box<CheckNode>),
}

#[derive(Debug)]
pub(crate) struct CheckNode {
    left: COperand,
    test: Test,
}

#[derive(Clone, Debug)]
enum COperand {
    Slot(usize),
    Transform(Transformer, Box<COperand>),
    Literal(Box<str>),
    List(Box<[ListItem]>),
    Join(Box<COperand>, Box<COperand>),
    Concat(Box<[COperand]>),
    Getopt {
        args: Box<COperand>,
        optstring: Box<COperand>,
        /// The optstring parsed once, when it is a literal.
        parsed: Option<Box<OptString>>,
        selector: Option<u8>,
    },
}

/// An item of a `(a, b, ...)` argument.
#[derive(Clone, Debug)]
struct ListItem {
    operand: COperand,
    /// A field whose number prints zero-padded to 9 digits (`evt.rawtime.ns`): libsinsp
    /// turns numeric items into their printed text.
    padded: bool,
}

/// An operand compiled on its own, with its own slots: a transformer of an output template.
#[derive(Clone, Debug)]
pub(crate) struct CompiledOperand {
    slots: Slots,
    operand: COperand,
}

impl CompiledOperand {
    pub fn new(operand: &Operand) -> CompiledOperand {
        let mut slots = Slots::default();
        let operand = compile_operand(operand, &mut slots);
        CompiledOperand { slots, operand }
    }

    /// The operand's values for one event.
    pub fn values<'e>(&self, ctx: &'e EventCtx<'e>) -> Values<'e> {
        let mut cache = Cache::new(ctx, self.slots.refs.len());
        cache.ensure(&self.operand, &self.slots);
        operand_values(&self.operand, &cache).into_owned()
    }
}

/// A test on string values.
#[derive(Debug)]
enum StrTest {
    Eq(Box<str>),
    Ne(Box<str>),
    Lt(Box<str>),
    Le(Box<str>),
    Gt(Box<str>),
    Ge(Box<str>),
    Contains(Box<Finder<'static>>),
    IContains(Box<[u8]>),
    StartsWith(Box<str>),
    EndsWith(Box<str>),
    Glob(Box<[u8]>, bool),
    Regex(regex::Regex),
    PMatch(Vec<Vec<Box<str>>>),
    /// A string operator that never holds on strings (kept for completeness; load rejects
    /// such checks).
    Never,
}

/// A set of strings for `in` and `intersects`.
#[derive(Debug)]
enum StrSet {
    Small(Box<[Box<str>]>),
    Hashed(FxHashSet<Box<str>>),
}

impl StrSet {
    fn new(items: &[String]) -> StrSet {
        if items.len() > HASH_SET_MIN {
            StrSet::Hashed(items.iter().map(|s| s.as_str().into()).collect())
        } else {
            StrSet::Small(items.iter().map(|s| s.as_str().into()).collect())
        }
    }

    fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(items) => items.iter().any(|i| **i == *s),
            StrSet::Hashed(set) => set.contains(s),
        }
    }
}

#[derive(Debug)]
enum Test {
    Exists,
    /// `in`: every value in the set.
    In(StrSet),
    /// `intersects`: some value in the set.
    Intersects(StrSet),
    Str(StrTest),
    Num(Op, i64),
    NumIn(Box<[i64]>),
    /// `op modifier (values)`: one test per value.
    Modified(Modifier, Box<[Test]>),
    /// Against another field's values.
    Field(Op, COperand),
}

/// Compiles an expanded condition. The loader has already checked fields, operators, numbers
/// and regular expressions; anything that still fails to compile makes its check false.
pub(crate) fn compile(expr: &Expr, slots: &mut Slots) -> Node {
    match expr {
        Expr::And(children) => Node::And(children.iter().map(|c| compile(c, slots)).collect()),
        Expr::Or(children) => Node::Or(children.iter().map(|c| compile(c, slots)).collect()),
        Expr::Not(child) => Node::Not(Box::new(compile(child, slots))),
        Expr::Check { field, op, values } => {
            let numeric = field.info().kind == ValueKind::Number;
            let left = COperand::Slot(slots.slot(field));
            Node::Check(Box::new(CheckNode {
                left,
                test: value_test(*op, values, numeric),
            }))
        }
        Expr::Complex(c) => {
            let numeric = operand_is_numeric(&c.left);
            let left = compile_operand(&c.left, slots);
            let test = match (&c.right, c.modifier) {
                (ComplexRhs::Values(values), Some(m)) => Test::Modified(
                    m,
                    values
                        .iter()
                        .map(|v| value_test(c.op, std::slice::from_ref(v), numeric))
                        .collect(),
                ),
                (ComplexRhs::Values(values), None) => value_test(c.op, values, numeric),
                (ComplexRhs::Operand(o), _) => Test::Field(c.op, compile_operand(o, slots)),
            };
            Node::Check(Box::new(CheckNode { left, test }))
        }
    }
}

/// True when the operand yields a number: a numeric field, or `len(...)`.
pub(crate) fn operand_is_numeric(o: &Operand) -> bool {
    match o {
        Operand::Field(f) => f.info().kind == ValueKind::Number,
        Operand::Transform(Transformer::Len, _) => true,
        Operand::Transform(Transformer::Val, inner) => operand_is_numeric(inner),
        Operand::Transform(_, _) | Operand::Multi { .. } | Operand::Literal(_) | Operand::List(_) => false,
    }
}

fn compile_operand(o: &Operand, slots: &mut Slots) -> COperand {
    match o {
        Operand::Field(f) => COperand::Slot(slots.slot(f)),
        Operand::Transform(Transformer::Val, inner) => compile_operand(inner, slots),
        Operand::Transform(t, inner) => COperand::Transform(*t, Box::new(compile_operand(inner, slots))),
        Operand::Literal(text) => COperand::Literal(text.as_str().into()),
        Operand::List(items) => COperand::List(
            items
                .iter()
                .map(|i| ListItem {
                    operand: compile_operand(i, slots),
                    padded: matches!(i, Operand::Field(f) if f.info().output == Output::PaddedNanos),
                })
                .collect(),
        ),
        Operand::Multi {
            transformer,
            args,
            selector,
        } => {
            let mut args = args.iter().map(|a| compile_operand(a, slots));
            // The loader checked the argument counts; a missing one reads as no value.
            let mut next = || Box::new(args.next().unwrap_or(COperand::List(Box::new([]))));
            match transformer {
                Transformer::Join => {
                    let sep = next();
                    COperand::Join(sep, next())
                }
                Transformer::Getopt => {
                    let list = next();
                    let optstring = next();
                    let parsed = match &*optstring {
                        COperand::Literal(text) => Some(Box::new(OptString::parse(text))),
                        _ => None,
                    };
                    COperand::Getopt {
                        args: list,
                        optstring,
                        parsed,
                        selector: *selector,
                    }
                }
                _ => COperand::Concat(args.collect()),
            }
        }
    }
}

/// Parses a number as written on the right side of a numeric check: decimal with an
/// optional sign, or hexadecimal `0x...`.
pub(crate) fn parse_number(text: &str) -> Option<i64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        return u64::from_str_radix(hex, 16)
            .ok()
            .and_then(|v| i64::try_from(v).ok());
    }
    let digits = text.strip_prefix('+').unwrap_or(text);
    if let Ok(v) = digits.parse::<i64>() {
        return Some(v);
    }
    digits
        .parse::<u64>()
        .ok()
        .map(|v| i64::try_from(v).unwrap_or(i64::MAX))
}

fn value_test(op: Op, values: &[String], numeric: bool) -> Test {
    let first = values.first().map_or("", String::as_str);
    if op == Op::Exists {
        return Test::Exists;
    }
    if numeric {
        let nums: Vec<i64> = values.iter().filter_map(|v| parse_number(v)).collect();
        return match op {
            Op::In | Op::Intersects => Test::NumIn(nums.into()),
            _ => match nums.first() {
                Some(&n) => Test::Num(op, n),
                None => Test::Str(StrTest::Never),
            },
        };
    }
    match op {
        Op::In => Test::In(StrSet::new(values)),
        Op::Intersects => Test::Intersects(StrSet::new(values)),
        _ => Test::Str(str_test(op, first, values)),
    }
}

fn str_test(op: Op, value: &str, values: &[String]) -> StrTest {
    match op {
        Op::Eq => StrTest::Eq(value.into()),
        Op::Ne => StrTest::Ne(value.into()),
        Op::Lt => StrTest::Lt(value.into()),
        Op::Le => StrTest::Le(value.into()),
        Op::Gt => StrTest::Gt(value.into()),
        Op::Ge => StrTest::Ge(value.into()),
        Op::Contains => StrTest::Contains(Box::new(Finder::new(value.as_bytes()).into_owned())),
        Op::IContains => StrTest::IContains(value.to_ascii_lowercase().into_bytes().into()),
        Op::StartsWith => StrTest::StartsWith(value.into()),
        Op::EndsWith => StrTest::EndsWith(value.into()),
        Op::Glob => StrTest::Glob(value.as_bytes().into(), false),
        Op::IGlob => StrTest::Glob(value.as_bytes().into(), true),
        Op::Regex => match full_match_regex(value) {
            Ok(re) => StrTest::Regex(re),
            Err(_) => StrTest::Never,
        },
        Op::PMatch => StrTest::PMatch(values.iter().map(|v| path_components(v)).collect()),
        Op::BContains | Op::BStartsWith | Op::Exists | Op::In | Op::Intersects => StrTest::Never,
    }
}

/// A regular expression that must match the whole value, as RE2's full match.
pub(crate) fn full_match_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 22)
        .build()
}

fn path_components(path: &str) -> Vec<Box<str>> {
    path.split('/')
        .filter(|c| !c.is_empty())
        .map(Into::into)
        .collect()
}

/// `pmatch`: the value equals one of the paths or lies below it, component by component.
fn pmatch(value: &str, paths: &[Vec<Box<str>>]) -> bool {
    paths.iter().any(|p| {
        let mut comps = value.split('/').filter(|c| !c.is_empty());
        p.iter().all(|want| comps.next() == Some(want))
    })
}

fn icontains(haystack: &str, needle_lower: &[u8]) -> bool {
    let h = haystack.as_bytes();
    if needle_lower.is_empty() {
        return true;
    }
    if needle_lower.len() > h.len() {
        return false;
    }
    h.windows(needle_lower.len()).any(|w| {
        w.iter()
            .zip(needle_lower)
            .all(|(a, b)| a.to_ascii_lowercase() == *b)
    })
}

impl StrTest {
    fn holds(&self, s: &str) -> bool {
        match self {
            StrTest::Eq(v) => s == &**v,
            StrTest::Ne(v) => s != &**v,
            StrTest::Lt(v) => s < &**v,
            StrTest::Le(v) => s <= &**v,
            StrTest::Gt(v) => s > &**v,
            StrTest::Ge(v) => s >= &**v,
            StrTest::Contains(f) => f.find(s.as_bytes()).is_some(),
            StrTest::IContains(n) => icontains(s, n),
            StrTest::StartsWith(v) => s.starts_with(&**v),
            StrTest::EndsWith(v) => s.ends_with(&**v),
            StrTest::Glob(p, fold) => crate::glob::glob_match(p, s.as_bytes(), *fold),
            StrTest::Regex(re) => re.is_match(s),
            StrTest::PMatch(paths) => pmatch(s, paths),
            StrTest::Never => false,
        }
    }
}

fn num_holds(op: Op, a: i64, b: i64) -> bool {
    match op {
        Op::Eq | Op::In | Op::Intersects => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
        _ => false,
    }
}

/// Applies a transformer to values.
fn transform<'e>(t: Transformer, values: Values<'e>) -> Values<'e> {
    let map = |values: Values<'e>, f: &dyn Fn(&str) -> Option<String>| -> Values<'e> {
        match values {
            Values::One(s) => f(&s).map_or(Values::None, |v| Values::One(Cow::Owned(v))),
            // An empty list (from `getopt`) stays an empty list.
            Values::Many(v) if v.is_empty() => Values::Many(v),
            Values::Many(v) => {
                let out: Vec<Cow<'e, str>> = v.iter().filter_map(|s| f(s).map(Cow::Owned)).collect();
                if out.is_empty() {
                    Values::None
                } else {
                    Values::Many(out)
                }
            }
            Values::Number(n) => f(&n.to_string()).map_or(Values::None, |v| Values::One(Cow::Owned(v))),
            Values::None => Values::None,
        }
    };
    match t {
        // `val` is compiled away, and the multivalue transformers are operands of their own.
        Transformer::Val | Transformer::Join | Transformer::Concat | Transformer::Getopt => values,
        Transformer::ToLower => map(values, &|s| Some(s.to_ascii_lowercase())),
        Transformer::ToUpper => map(values, &|s| Some(s.to_ascii_uppercase())),
        Transformer::Basename => map(values, &|s| Some(s.rsplit('/').next().unwrap_or("").to_owned())),
        Transformer::B64 => map(values, &|s| {
            base64_decode(s).map(|b| String::from_utf8_lossy(&b).into_owned())
        }),
        Transformer::Len => match values {
            Values::One(s) => Values::Number(i64::try_from(s.len()).unwrap_or(i64::MAX)),
            Values::Many(v) => Values::Number(i64::try_from(v.len()).unwrap_or(i64::MAX)),
            Values::Number(n) => Values::Number(i64::try_from(n.to_string().len()).unwrap_or(0)),
            Values::None => Values::None,
        },
    }
}

/// Standard base64 with optional padding; `None` when the text is not base64.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in s.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

fn operand_values<'c, 'e>(o: &COperand, cache: &'c Cache<'e>) -> Cow<'c, Values<'e>> {
    match o {
        COperand::Slot(s) => Cow::Borrowed(cache.peek(*s)),
        COperand::Transform(t, inner) => Cow::Owned(transform(*t, operand_values(inner, cache).into_owned())),
        other => Cow::Owned(combine(other, cache).unwrap_or(Values::None)),
    }
}

/// The values of a literal, a list or a multivalue transformer; `None` when an argument has
/// no value.
fn combine<'e>(o: &COperand, cache: &Cache<'e>) -> Option<Values<'e>> {
    Some(match o {
        COperand::Literal(text) => Values::One(Cow::Owned(text.to_string())),
        COperand::List(items) => {
            let mut out = Vec::new();
            for item in items.iter() {
                let values = operand_values(&item.operand, cache);
                match &*values {
                    Values::Number(n) if item.padded => out.push(Cow::Owned(format!("{n:09}"))),
                    other => out.extend(texts(other)?),
                }
            }
            Values::Many(out)
        }
        COperand::Join(sep, list) => {
            let sep = first_text(&operand_values(sep, cache))?;
            let items = texts(&operand_values(list, cache))?;
            Values::One(Cow::Owned(items.join(&*sep)))
        }
        COperand::Concat(args) => {
            let mut out = String::new();
            for a in args.iter() {
                out.push_str(&first_text(&operand_values(a, cache))?);
            }
            Values::One(Cow::Owned(out))
        }
        COperand::Getopt {
            args,
            optstring,
            parsed,
            selector,
        } => {
            let own;
            let opts = match parsed {
                Some(p) => p,
                None => {
                    own = OptString::parse(&first_text(&operand_values(optstring, cache))?);
                    &own
                }
            };
            let args = texts(&operand_values(args, cache))?;
            match getopt(&args, opts, *selector) {
                Getopt::List(list) => Values::Many(list.into_iter().map(Cow::Owned).collect()),
                Getopt::Selected(one) => Values::One(Cow::Owned(one?)),
            }
        }
        COperand::Slot(_) | COperand::Transform(..) => operand_values(o, cache).into_owned(),
    })
}

/// Every value as text (numbers in decimal); `None` without a value.
fn texts<'e>(values: &Values<'e>) -> Option<Vec<Cow<'e, str>>> {
    match values {
        Values::None => None,
        Values::One(s) => Some(vec![s.clone()]),
        Values::Many(v) => Some(v.clone()),
        Values::Number(n) => Some(vec![Cow::Owned(n.to_string())]),
    }
}

/// The first value as text, where libsinsp reads a single value: `None` without a value or
/// for an empty list.
fn first_text<'e>(values: &Values<'e>) -> Option<Cow<'e, str>> {
    texts(values)?.into_iter().next()
}

impl Test {
    fn holds(&self, values: &Values<'_>, cache: &Cache<'_>) -> bool {
        match self {
            Test::Exists => !values.is_none(),
            // An empty list (from `getopt`) is in any set, as in libsinsp.
            Test::In(_) if matches!(values, Values::Many(v) if v.is_empty()) => true,
            Test::In(set) => {
                let mut any = false;
                for v in values.strs() {
                    if !set.contains(v) {
                        return false;
                    }
                    any = true;
                }
                any
            }
            Test::Intersects(set) => values.strs().any(|v| set.contains(v)),
            Test::Str(t) => values.strs().any(|v| t.holds(v)),
            Test::Num(op, n) => matches!(values, Values::Number(v) if num_holds(*op, *v, *n)),
            Test::NumIn(ns) => matches!(values, Values::Number(v) if ns.contains(v)),
            Test::Modified(m, tests) => {
                if values.is_none() {
                    return false;
                }
                match m {
                    Modifier::OneOf | Modifier::AnyOf => tests.iter().any(|t| t.holds(values, cache)),
                    Modifier::AllOf => tests.iter().all(|t| t.holds(values, cache)),
                }
            }
            Test::Field(op, rhs) => {
                let right = operand_values(rhs, cache);
                field_compare(*op, values, &right)
            }
        }
    }
}

/// A comparison with another field's values: numbers compare as numbers when both sides
/// are numeric; otherwise as strings, the right side taken as a list of candidates.
fn field_compare(op: Op, left: &Values<'_>, right: &Values<'_>) -> bool {
    if left.is_none() || right.is_none() {
        return false;
    }
    if let (Values::Number(a), Values::Number(b)) = (left, right) {
        return num_holds(op, *a, *b);
    }
    let text = |v: &Values<'_>| -> Vec<String> {
        match v {
            Values::Number(n) => vec![n.to_string()],
            other => other.strs().map(str::to_owned).collect(),
        }
    };
    let (l, r) = (text(left), text(right));
    match op {
        Op::In => !l.is_empty() && l.iter().all(|v| r.contains(v)),
        Op::Intersects => l.iter().any(|v| r.contains(v)),
        Op::Exists => true,
        _ => r.iter().any(|pattern| {
            let t = str_test(op, pattern, std::slice::from_ref(pattern));
            l.iter().any(|v| t.holds(v))
        }),
    }
}

impl Node {
    /// Evaluates the condition for the event behind `cache`.
    pub fn eval(&self, cache: &mut Cache<'_>, slots: &Slots) -> bool {
        match self {
            Node::And(children) => children.iter().all(|c| c.eval(cache, slots)),
            Node::Or(children) => children.iter().any(|c| c.eval(cache, slots)),
            Node::Not(child) => !child.eval(cache, slots),
            Node::Check(check) => {
                cache.ensure(&check.left, slots);
                if let Test::Field(_, rhs) = &check.test {
                    cache.ensure(rhs, slots);
                }
                let left = operand_values(&check.left, cache);
                if left.is_none() {
                    return false;
                }
                check.test.holds(&left, cache)
            }
        }
    }
}
