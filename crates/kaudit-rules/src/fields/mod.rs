//! The field catalogue of the `k8s_audit` source and field extraction: every `evt.*`, `ka.*`,
//! `json.*` and `jevt.*` field that Falco 0.44.1 offers for Kubernetes audit events (with the
//! k8saudit 0.18.0 and json 0.7.4 plugins), with its argument rules, and the code that reads its
//! value from an event.
//!
//! Owns: field names, argument checking ([`resolve`]), the value semantics of each field
//! (including the upstream quirks listed in `shared/reference/falco-rules.md` section 9), and how
//! a value is printed in alert text and in JSON `output_fields`.
//! Must never: go through `serde_json::Value` for event data (it reorders keys and rewrites
//! numbers, and compact JSON text must match Falco's), allocate where a borrowed value works,
//! or panic on any event.
//!
//! Brief overview:
//! * [`catalogue`] lists every field as a [`FieldInfo`]; [`lookup`] finds one by exact name.
//! * [`resolve`] checks a field name and its bracket argument once, at load time, and returns
//!   a [`FieldRef`] (or a [`FieldError`] worded like Falco's).
//! * Per event, the caller builds one [`EventCtx`] and calls [`FieldRef::extract`] for each
//!   field a rule reads; the context caches what several fields share (the pod spec, its
//!   container and volume arrays, the RBAC rules and subjects arrays, the compact event text).
//! * [`FieldRef::output_text`] and [`FieldRef::output_json`] render a value the way Falco
//!   prints it in an alert message and in `output_fields`.
//!
//! Missing values: [`Values::None`] means "no value" (Falco's N/A). Every comparison on it is
//! false, `<NA>` is printed for it. Every `ka.*` field has no value when the event has no
//! top-level `auditID`; `json.*`, `jevt.*` and `evt.*` fields do not depend on it.
//!
//! Times: Falco prints `evt.time`, `evt.time.s`, `evt.datetime` and `evt.datetime.s` in the
//! local time zone of the machine. kaudit always uses UTC for them, so that results do not
//! depend on where a scan runs (on a machine set to UTC the texts are identical).

mod catalogue;
mod ctx;
mod extract;
mod indent;
mod time;
mod uri;
mod walk;

#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;

pub use ctx::EventCtx;

use catalogue::{CATALOGUE, Recipe};

/// One field of the `k8s_audit` source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FieldInfo {
    /// The exact name, e.g. `ka.req.pod.containers.image`.
    pub name: &'static str,
    /// Whether the field can yield several values (a list field: only `exists`, `in` and
    /// `intersects` apply to it).
    pub list: bool,
    /// What may follow the name between brackets.
    pub arg: ArgSpec,
    /// How values compare.
    pub kind: ValueKind,
    /// What the field returns, in kaudit's words.
    pub desc: &'static str,
    /// Which part of the event the field reads, as an audit level.
    pub body: Body,
    /// How a value is written in alert text and in JSON `output_fields` (an extension of the
    /// interface: `kind` alone cannot say that `evt.time` prints as text but is a number in
    /// `output_fields`, or that `evt.rawtime.ns` is zero-padded).
    pub output: Output,
}

/// What may follow a field name between brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgSpec {
    /// No argument allowed.
    None,
    /// An optional decimal index without leading zeros (`[0]`, `[12]`); it selects one element
    /// of the first array the field walks (a container, a volume, an RBAC rule).
    OptionalIndex,
    /// A mandatory free-text argument (`[command]`, `[/requestObject/spec]`).
    RequiredKey,
}

/// How the values of a field compare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueKind {
    /// Byte-wise string comparison (`<` and `>` are lexicographic). Every `ka.*`, `json.*` and
    /// `jevt.*` field, and the textual `evt.*` fields.
    String,
    /// Numeric comparison: `evt.num`, `evt.rawtime*`, `evt.reltime*`. Values are
    /// [`Values::Number`] and print as JSON numbers in `output_fields`.
    Number,
}

/// Which audit level a field needs to have a value: an event recorded at a lower level can
/// never give the field a value (except through [`Body::Any`] fields whose argument points
/// elsewhere).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Body {
    /// Metadata is enough (`ka.verb`, `ka.user.name`, `evt.time`, ...).
    None,
    /// Needs `requestObject` (level Request or RequestResponse).
    Request,
    /// Needs `responseObject` or the whole event (level RequestResponse).
    Response,
    /// Depends on the argument (`json.value` / `jevt.value`): see [`FieldRef::body`].
    Any,
}

/// How a field's value is written in alert text and in JSON `output_fields` (Falco 0.44.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Output {
    /// The text as is; a JSON string (or array of strings for list fields).
    Text,
    /// A decimal number in text; a JSON number.
    Number,
    /// Nanoseconds zero-padded to 9 digits in text (`evt.rawtime.ns`); a JSON number.
    PaddedNanos,
    /// A formatted time in text (`evt.time`); in `output_fields` the event time as a JSON
    /// number of nanoseconds since the epoch.
    Time,
    /// `true`/`false` in text; a JSON boolean (`evt.is_async`).
    Bool,
}

/// The values a field yields for one event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Values<'e> {
    /// No value (Falco's N/A): every comparison is false and `<NA>` is printed.
    None,
    /// The value of a single-valued string field.
    One(Cow<'e, str>),
    /// The values of a list field: never empty (a list field without values is `None`).
    Many(Vec<Cow<'e, str>>),
    /// The value of a numeric field ([`ValueKind::Number`]).
    Number(i64),
}

impl<'e> Values<'e> {
    /// True for [`Values::None`].
    pub fn is_none(&self) -> bool {
        matches!(self, Values::None)
    }

    /// The string values, in order: one for [`Values::One`], all for [`Values::Many`], none
    /// for [`Values::None`] and [`Values::Number`].
    pub fn strs(&self) -> impl Iterator<Item = &str> + '_ {
        let slice: &[Cow<'e, str>] = match self {
            Values::One(v) => std::slice::from_ref(v),
            Values::Many(v) => v,
            Values::None | Values::Number(_) => &[],
        };
        slice.iter().map(|v| &**v)
    }

    /// A list value, or no value when the list is empty.
    fn list(values: Vec<Cow<'e, str>>) -> Values<'e> {
        if values.is_empty() {
            Values::None
        } else {
            Values::Many(values)
        }
    }

    /// A single value, or no value.
    fn single(value: Option<Cow<'e, str>>) -> Values<'e> {
        value.map_or(Values::None, Values::One)
    }
}

/// The catalogue: every field of the `k8s_audit` source, `evt.*` first, then `ka.*`, then
/// `json.*` and `jevt.*`.
pub fn catalogue() -> &'static [FieldInfo] {
    &CATALOGUE.infos
}

/// The field with exactly this name (no argument), if there is one.
pub fn lookup(name: &str) -> Option<&'static FieldInfo> {
    position(name).map(|i| &CATALOGUE.infos[i])
}

fn position(name: &str) -> Option<usize> {
    CATALOGUE.infos.iter().position(|f| f.name == name)
}

/// Why a field reference is not valid. The messages follow Falco's wording.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    /// No field has this name.
    #[error("filter_check called with nonexistent field {name}")]
    Unknown {
        /// The name as written.
        name: String,
    },
    /// The field needs a bracket argument (`json.value`, `ka.uri.param`, ...).
    #[error("field {name} requires an argument but none provided")]
    MissingArgument {
        /// The field.
        name: String,
    },
    /// The field takes no argument.
    #[error("field {name} does not allow nor require an argument but one is provided: {arg}")]
    ArgumentNotAllowed {
        /// The field.
        name: String,
        /// The argument as written.
        arg: String,
    },
    /// The argument of an index field is not a decimal index.
    #[error("field {name} has an invalid index argument {problem}: {arg}")]
    BadIndex {
        /// The field.
        name: String,
        /// The argument as written.
        arg: String,
        /// What is wrong with it.
        problem: IndexProblem,
    },
}

/// What is wrong with an index argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IndexProblem {
    /// Empty, or a number with a leading zero (`01`).
    LeadingZero,
    /// A character other than `0`-`9`.
    NotDigits,
    /// Larger than a 64-bit number.
    TooLarge,
}

impl fmt::Display for IndexProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IndexProblem::LeadingZero => "starting with 0",
            IndexProblem::NotDigits => "not composed only by digits",
            IndexProblem::TooLarge => "not representable on 64 bit",
        })
    }
}

/// A field with its argument checked and parsed: what a compiled condition or output template
/// holds. Cheap to clone; `Send + Sync`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FieldRef {
    info: &'static FieldInfo,
    recipe: Recipe,
    arg: Arg,
}

/// The parsed argument of a [`FieldRef`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Arg {
    /// No argument written.
    None,
    /// `[i]` on an index field.
    Index(u64),
    /// `[text]` on a key field other than `json.value`.
    Key(Box<str>),
    /// `[pointer]` on `json.value` / `jevt.value`: the text as written and its unescaped
    /// segments (`None` for the empty pointer, which is the whole event).
    Pointer {
        text: Box<str>,
        segments: Option<Box<[Box<str>]>>,
    },
}

/// Checks a field name and its bracket argument (`None` when no brackets were written) and
/// returns the reference used to extract it.
pub fn resolve(name: &str, arg: Option<&str>) -> Result<FieldRef, FieldError> {
    let index = position(name).ok_or_else(|| FieldError::Unknown {
        name: name.to_owned(),
    })?;
    let info = &CATALOGUE.infos[index];
    let recipe = CATALOGUE.recipes[index];
    let arg = match (info.arg, arg) {
        (ArgSpec::None, None) | (ArgSpec::OptionalIndex, None) => Arg::None,
        (ArgSpec::None, Some(a)) => {
            return Err(FieldError::ArgumentNotAllowed {
                name: name.to_owned(),
                arg: a.to_owned(),
            });
        }
        (ArgSpec::RequiredKey, None) => {
            return Err(FieldError::MissingArgument {
                name: name.to_owned(),
            });
        }
        (ArgSpec::OptionalIndex, Some(a)) => {
            Arg::Index(parse_index(a).map_err(|problem| FieldError::BadIndex {
                name: name.to_owned(),
                arg: a.to_owned(),
                problem,
            })?)
        }
        (ArgSpec::RequiredKey, Some(a)) if recipe == Recipe::JsonValue => Arg::Pointer {
            text: a.into(),
            segments: pointer_segments(a),
        },
        (ArgSpec::RequiredKey, Some(a)) => Arg::Key(a.into()),
    };
    Ok(FieldRef { info, recipe, arg })
}

/// Falco's index syntax: digits only, no leading zero, fits in 64 bits.
fn parse_index(text: &str) -> Result<u64, IndexProblem> {
    if text.is_empty() || (text.len() > 1 && text.starts_with('0')) {
        return Err(IndexProblem::LeadingZero);
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(IndexProblem::NotDigits);
    }
    text.parse().map_err(|_| IndexProblem::TooLarge)
}

/// The json plugin's reading of a JSON pointer: one leading `/` removed, the rest split on
/// `/`, and in each segment `~1` replaced by `/` and then `~0` by `~`. The empty text is the
/// whole event (`None`); `/` alone is one empty segment (a member named "").
fn pointer_segments(text: &str) -> Option<Box<[Box<str>]>> {
    if text.is_empty() {
        return None;
    }
    let path = text.strip_prefix('/').unwrap_or(text);
    Some(
        path.split('/')
            .map(|s| s.replace("~1", "/").replace("~0", "~").into_boxed_str())
            .collect(),
    )
}

impl FieldRef {
    /// The field's catalogue entry.
    pub fn info(&self) -> &'static FieldInfo {
        self.info
    }

    /// The field as written: `ka.verb`, `jevt.value[/requestObject/spec]`,
    /// `ka.uri.param[command]`. This is the key of the field in JSON `output_fields`.
    pub fn display(&self) -> String {
        match &self.arg {
            Arg::None => self.info.name.to_owned(),
            Arg::Index(i) => format!("{}[{i}]", self.info.name),
            Arg::Key(k) | Arg::Pointer { text: k, .. } => format!("{}[{k}]", self.info.name),
        }
    }

    /// The audit level the field needs. For `json.value`/`jevt.value` it depends on the
    /// pointer: under `/requestObject` it is [`Body::Request`], under `/responseObject` or
    /// the whole event (`[""]`) [`Body::Response`], anywhere else [`Body::None`].
    pub fn body(&self) -> Body {
        match &self.arg {
            Arg::Pointer { segments: None, .. } => Body::Response,
            Arg::Pointer {
                segments: Some(segments),
                ..
            } => match segments.first().map(|s| &**s) {
                Some("requestObject") => Body::Request,
                Some("responseObject") => Body::Response,
                _ => Body::None,
            },
            _ => self.info.body,
        }
    }

    /// The field's values for one event.
    pub fn extract<'e>(&self, ctx: &'e EventCtx<'e>) -> Values<'e> {
        extract::extract(self.recipe, &self.arg, ctx)
    }

    /// The value as Falco writes it in an alert message: `None` when the field has no value
    /// (Falco prints `<NA>`). A list field prints `(v1,v2)`, where a comma is only written
    /// after a non-empty text, cut to 1023 bytes; numbers print in decimal (zero-padded to 9
    /// digits for the `.ns` fields).
    pub fn output_text<'e>(&self, ctx: &'e EventCtx<'e>) -> Option<Cow<'e, str>> {
        match self.extract(ctx) {
            Values::None => None,
            Values::One(v) => Some(v),
            Values::Number(n) if self.info.output == Output::PaddedNanos => {
                Some(Cow::Owned(format!("{n:09}")))
            }
            Values::Number(n) => Some(Cow::Owned(n.to_string())),
            Values::Many(values) => Some(Cow::Owned(list_text(&values))),
        }
    }

    /// The value as Falco writes it in JSON `output_fields`: `null` without a value, an array
    /// of strings for list fields, a number for numeric fields and for the formatted times
    /// (the event time in nanoseconds), a boolean for `evt.is_async`, a string otherwise.
    pub fn output_json<'e>(&self, ctx: &'e EventCtx<'e>) -> serde_json::Value {
        use serde_json::Value as J;
        let values = self.extract(ctx);
        if values.is_none() {
            return J::Null;
        }
        match (self.info.output, values) {
            (Output::Time, _) => J::from(ctx.time_nanos()),
            (Output::Bool, v) => J::Bool(v.strs().next() == Some("true")),
            (_, Values::Number(n)) => J::from(n),
            (_, Values::Many(v)) => J::Array(v.into_iter().map(|s| J::String(s.into_owned())).collect()),
            (_, Values::One(s)) => J::String(s.into_owned()),
            (_, Values::None) => J::Null,
        }
    }
}

/// Longest text libsinsp keeps for a list value.
const MAX_LIST_TEXT: usize = 1023;

/// Falco's text of a list value: `(a,b)`; the comma is written only when the text built so far
/// inside the parentheses is non-empty, so `["", "*"]` gives `(*)`.
pub(crate) fn list_text(values: &[Cow<'_, str>]) -> String {
    let mut out = String::from("(");
    for v in values {
        if out.len() > 1 {
            out.push(',');
        }
        out.push_str(v);
    }
    out.push(')');
    if out.len() > MAX_LIST_TEXT {
        let mut cut = MAX_LIST_TEXT;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}
