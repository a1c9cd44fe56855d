//! Alert output: rendering a rule's `output` template for an event exactly as Falco does
//! (`<NA>` for missing values, `(a,b)` for list fields and list results, width padding and
//! cutting, transformers evaluated), the JSON `output_fields` (the fields as written, and the
//! fields read by transformers, untransformed), and the [`Alert`] with Falco's JSON alert
//! shape.

use kaudit_model::Priority;
use serde_json::{Map, Value as Json};

use crate::eval::CompiledOperand;
use crate::fields::{self, EventCtx, FieldRef, Values};

/// A piece of a compiled output template.
#[derive(Clone, Debug)]
pub(crate) enum OutputSegment {
    /// Literal text.
    Text(String),
    /// A field.
    Field {
        /// The field.
        field: FieldRef,
        /// Pad or cut the value to this many characters.
        width: Option<usize>,
        /// The field as written in the template (`name` or `name[arg]`): its key in
        /// `output_fields`.
        key: String,
    },
    /// A transformer (`%toupper(ka.verb)`, `%join(",", ka.req.pod.containers.image)`).
    Transform {
        /// The transformer, ready to evaluate.
        compiled: Box<CompiledOperand>,
        /// Pad or cut the value to this many characters.
        width: Option<usize>,
        /// The fields it reads. As in Falco, these (untransformed) are what `output_fields`
        /// shows; the transformed value only appears in the message.
        fields: Vec<FieldRef>,
    },
}

/// The text Falco prints for a field without a value.
const NA: &str = "<NA>";

/// Renders the message of a template for one event.
pub(crate) fn render<'e>(segments: &[OutputSegment], ctx: &'e EventCtx<'e>) -> String {
    let mut out = String::new();
    for s in segments {
        match s {
            OutputSegment::Text(t) => out.push_str(t),
            OutputSegment::Field { field, width, .. } => {
                push_padded(&mut out, field.output_text(ctx).as_deref().unwrap_or(NA), *width);
            }
            OutputSegment::Transform { compiled, width, .. } => {
                let text = match compiled.values(ctx) {
                    Values::None => None,
                    Values::One(v) => Some(v),
                    Values::Number(n) => Some(n.to_string().into()),
                    Values::Many(v) => Some(fields::list_text(&v).into()),
                };
                push_padded(&mut out, text.as_deref().unwrap_or(NA), *width);
            }
        }
    }
    out
}

/// Appends `text`, padded with spaces or cut to `width` characters when there is a width.
fn push_padded(out: &mut String, text: &str, width: Option<usize>) {
    match width {
        None => out.push_str(text),
        Some(w) => {
            let mut n = 0;
            for c in text.chars().take(w) {
                out.push(c);
                n += 1;
            }
            out.extend(std::iter::repeat_n(' ', w - n));
        }
    }
}

/// The `output_fields` of a template for one event: each field once, under its key as
/// written, in template order.
pub(crate) fn output_fields<'e>(segments: &[OutputSegment], ctx: &'e EventCtx<'e>) -> Vec<(String, Json)> {
    let mut out: Vec<(String, Json)> = Vec::new();
    let mut add = |key: String, field: &FieldRef| {
        if !out.iter().any(|(k, _)| *k == key) {
            out.push((key, field.output_json(ctx)));
        }
    };
    for s in segments {
        match s {
            OutputSegment::Field { field, key, .. } => add(key.clone(), field),
            OutputSegment::Transform { fields, .. } => fields.iter().for_each(|f| add(f.display(), f)),
            OutputSegment::Text(_) => {}
        }
    }
    out
}

/// One alert: a rule that matched an event, with its rendered output.
#[derive(Clone, Debug, PartialEq)]
pub struct Alert {
    /// The rule's name.
    pub rule: String,
    /// The rule's index in [`RuleSet::rules`](crate::RuleSet::rules).
    pub rule_index: usize,
    /// The rule's priority.
    pub priority: Priority,
    /// The event source: always `k8s_audit`.
    pub source: String,
    /// The rule's tags, sorted and without duplicates.
    pub tags: Vec<String>,
    /// The event time (`stageTimestamp`) in nanoseconds since the Unix epoch.
    pub time_nanos: i64,
    /// The event time as `evt.time` prints it (`HH:MM:SS.nnnnnnnnn`, UTC).
    pub evt_time: String,
    /// The rendered `output` template, without the time and priority prefix.
    pub message: String,
    /// The fields of the template with their values (`null` for no value, an array for list
    /// fields, a number for numeric fields), plus `evt.time`; in template order.
    pub output_fields: Vec<(String, Json)>,
}

impl Alert {
    /// The full text line, as Falco prints it and puts it in the JSON `output`:
    /// `<evt.time>: <Priority> <message>`.
    pub fn output(&self) -> String {
        format!(
            "{}: {} {}",
            self.evt_time,
            self.priority.falco_name(),
            self.message
        )
    }

    /// The alert in Falco's JSON alert shape: `hostname`, `output`, `output_fields`,
    /// `priority`, `rule`, `source`, `tags`, `time`.
    pub fn to_falco_json(&self, hostname: &str) -> Json {
        let mut fields = Map::new();
        for (k, v) in &self.output_fields {
            fields.insert(k.clone(), v.clone());
        }
        let mut obj = Map::new();
        obj.insert("hostname".into(), Json::String(hostname.to_owned()));
        obj.insert("output".into(), Json::String(self.output()));
        obj.insert("output_fields".into(), Json::Object(fields));
        obj.insert(
            "priority".into(),
            Json::String(self.priority.falco_name().to_owned()),
        );
        obj.insert("rule".into(), Json::String(self.rule.clone()));
        obj.insert("source".into(), Json::String(self.source.clone()));
        obj.insert(
            "tags".into(),
            Json::Array(self.tags.iter().map(|t| Json::String(t.clone())).collect()),
        );
        obj.insert(
            "time".into(),
            Json::String(kaudit_model::format_rfc3339_nanos(self.time_nanos)),
        );
        Json::Object(obj)
    }
}

impl std::fmt::Display for Alert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.output())
    }
}
