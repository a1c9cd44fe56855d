//! Shapes shared by every part of the API: errors, pages, counts, histograms, priorities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The body of every error response: `{"error": "..."}`. A 4xx carries the reason; a 5xx
/// carries a generic text (the details are in the server's log).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, lowercase, no trailing punctuation.
    pub error: String,
}

/// One page of a list, newest first. Pass `next_cursor` back as `cursor` to get the next
/// page; it is absent on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    /// The items of this page.
    pub items: Vec<T>,
    /// Opaque cursor of the next page, absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// The number of matches of a filter (`.../count`). Asked with `limit`, the server stops
/// counting past it: more than `limit` matches answer `{"count": limit, "exact": false}`
/// ("10,000+"), so that a count beside a search stays as quick as the search.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    /// How many items match; when `exact` is false, how many were counted before stopping.
    pub count: u64,
    /// False when more than `count` items match. Absent (from servers that always counted
    /// everything) reads as true.
    #[serde(default = "counts_are_exact_by_default")]
    pub exact: bool,
}

fn counts_are_exact_by_default() -> bool {
    true
}

/// Query parameters of `.../groups`: count matches grouped by one field.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupQuery {
    /// The field to group by (see the OpenAPI document for the accepted names).
    pub field: String,
    /// Most groups to return, largest first (default 10, at most 1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// Counts grouped by one field, largest first.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Groups {
    /// The field grouped by.
    pub field: String,
    /// One entry per distinct value, largest count first.
    pub groups: Vec<GroupCount>,
}

/// One group: a value of the field and how many matches have it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupCount {
    /// The value (`null` when the field is absent on those items).
    pub value: Option<String>,
    /// How many matches have that value.
    pub count: u64,
}

/// Query parameters of `.../histogram`: matches counted per time bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistogramQuery {
    /// Width of a bucket in seconds (default: chosen to give about 60 buckets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_seconds: Option<u64>,
}

/// Matches counted per time bucket, oldest first. Buckets without matches are omitted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Histogram {
    /// Width of each bucket in seconds.
    pub interval_seconds: u64,
    /// The non-empty buckets, oldest first.
    pub buckets: Vec<Bucket>,
}

/// One histogram bucket.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Start of the bucket, RFC 3339.
    pub start: String,
    /// How many matches fall in `[start, start + interval)`.
    pub count: u64,
}

/// An alert priority, spelled as Falco spells it on the wire (`Warning`,
/// `Informational`, ...). Parsing is case-insensitive and accepts `info`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(pub kaudit_model::Priority);

impl From<kaudit_model::Priority> for Priority {
    fn from(p: kaudit_model::Priority) -> Priority {
        Priority(p)
    }
}

impl From<Priority> for kaudit_model::Priority {
    fn from(p: Priority) -> kaudit_model::Priority {
        p.0
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.falco_name())
    }
}

impl FromStr for Priority {
    type Err = kaudit_model::ParseVocabError;

    fn from_str(s: &str) -> Result<Priority, Self::Err> {
        s.parse().map(Priority)
    }
}

impl Serialize for Priority {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.0.falco_name())
    }
}

impl<'de> Deserialize<'de> for Priority {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Priority, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}
