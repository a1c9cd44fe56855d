//! Query types: filters, pagination cursors, grouping fields and histogram buckets.

use kaudit_model::Priority;

use crate::StoreError;

/// A time range over the event (or alert) time, `from_ns <= t < to_ns`; either end open.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeRange {
    /// Inclusive lower bound, ns since the epoch.
    pub from_ns: Option<i64>,
    /// Exclusive upper bound, ns since the epoch.
    pub to_ns: Option<i64>,
}

impl TimeRange {
    /// Everything from `from_ns` (inclusive) to `to_ns` (exclusive).
    pub fn between(from_ns: i64, to_ns: i64) -> TimeRange {
        TimeRange {
            from_ns: Some(from_ns),
            to_ns: Some(to_ns),
        }
    }

    /// True when `t` lies in the range.
    pub fn contains(&self, t: i64) -> bool {
        self.from_ns.is_none_or(|from| t >= from) && self.to_ns.is_none_or(|to| t < to)
    }
}

/// How to match the user name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMatch {
    /// The whole user name, case-sensitive.
    Exact(String),
    /// The user name starts with this text, case-sensitive (`system:serviceaccount:kube-system:`).
    Prefix(String),
}

impl UserMatch {
    /// The least string above every string that starts with `prefix`, in code-point order
    /// (the byte order of UTF-8, so SQLite's `BINARY` and PostgreSQL's "C" collation): `prefix`
    /// without its trailing U+10FFFF (the greatest character), its last other character
    /// replaced by the next one (U+D7FF by U+E000: surrogates are not characters). `None` when
    /// `prefix` is empty or only U+10FFFF: no string is above all that start with it.
    ///
    /// `prefix` followed by U+10FFFF is not such a bound: a user name that continues the
    /// prefix with U+10FFFF sorts after it.
    pub fn prefix_successor(prefix: &str) -> Option<String> {
        let mut successor = prefix.to_owned();
        while let Some(last) = successor.pop() {
            let next = match last {
                '\u{D7FF}' => Some('\u{E000}'),
                other => char::from_u32(u32::from(other) + 1),
            };
            if let Some(next) = next {
                successor.push(next);
                return Some(successor);
            }
        }
        None
    }

    /// True when `username` matches.
    pub fn matches(&self, username: &str) -> bool {
        match self {
            UserMatch::Exact(want) => username == want,
            UserMatch::Prefix(prefix) => username.starts_with(prefix.as_str()),
        }
    }
}

/// Activity-audit search over events. Every set field must match (AND); exact matches are
/// case-sensitive unless said otherwise.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Event time range.
    pub time: TimeRange,
    /// Cluster name.
    pub cluster: Option<String>,
    /// User name, exact or prefix.
    pub user: Option<UserMatch>,
    /// One of the user's groups, exact.
    pub group: Option<String>,
    /// Verb.
    pub verb: Option<String>,
    /// `objectRef.resource`.
    pub resource: Option<String>,
    /// `objectRef.subresource`.
    pub subresource: Option<String>,
    /// `objectRef.namespace`.
    pub namespace: Option<String>,
    /// `objectRef.name`.
    pub name: Option<String>,
    /// First source IP, exact.
    pub source_ip: Option<String>,
    /// Substring of the user agent, ASCII case-insensitive.
    pub user_agent_contains: Option<String>,
    /// `responseStatus.code`.
    pub response_code: Option<i32>,
    /// Authorization decision (`allow`, `forbid`).
    pub decision: Option<String>,
    /// Free text: a substring of requestURI or of the object name, ASCII case-insensitive.
    pub text: Option<String>,
}

/// Alert search. Every set field must match (AND).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AlertFilter {
    /// Alert time range.
    pub time: TimeRange,
    /// Keep alerts at least this severe (Falco numbering: priority number <= this one's).
    pub min_priority: Option<Priority>,
    /// Rule name, exact.
    pub rule: Option<String>,
    /// Policy name, exact.
    pub policy: Option<String>,
    /// Cluster name.
    pub cluster: Option<String>,
    /// Namespace.
    pub namespace: Option<String>,
    /// User name, exact.
    pub user: Option<String>,
}

/// A position in a newest-first listing: the (time, id) of the last row of the previous page.
/// The next page holds rows strictly older in (time, id) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Time of the last row returned, ns.
    pub time_ns: i64,
    /// Id of the last row returned.
    pub id: i64,
}

impl Cursor {
    /// The opaque text form given to API clients (32 lowercase hex digits).
    pub fn encode(&self) -> String {
        format!("{:016x}{:016x}", self.time_ns as u64, self.id as u64)
    }

    /// Reads back what [`Cursor::encode`] produced.
    pub fn decode(text: &str) -> Result<Cursor, StoreError> {
        if text.len() != 32
            || !text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(StoreError::InvalidCursor);
        }
        let (time, id) = text.split_at(16);
        let time_ns = u64::from_str_radix(time, 16).map_err(|_| StoreError::InvalidCursor)? as i64;
        let id = u64::from_str_radix(id, 16).map_err(|_| StoreError::InvalidCursor)? as i64;
        Ok(Cursor { time_ns, id })
    }
}

/// Which page to read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageRequest {
    /// Maximum rows to return (1 or more; backends cap it at [`PageRequest::MAX_LIMIT`]).
    pub limit: u32,
    /// Continue after this position; `None` for the newest rows.
    pub cursor: Option<Cursor>,
}

impl PageRequest {
    /// The largest page a backend returns.
    pub const MAX_LIMIT: u32 = 10_000;

    /// The first page of `limit` rows.
    pub fn first(limit: u32) -> PageRequest {
        PageRequest { limit, cursor: None }
    }

    /// The limit to use, checked: zero is refused, large values are capped.
    pub fn checked_limit(&self) -> Result<u32, StoreError> {
        if self.limit == 0 {
            return Err(StoreError::InvalidQuery(
                "page limit must be at least 1".to_owned(),
            ));
        }
        Ok(self.limit.min(Self::MAX_LIMIT))
    }
}

/// One page of newest-first results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows, newest first.
    pub items: Vec<T>,
    /// Where the next page starts; `None` when this page is the last.
    pub next_cursor: Option<Cursor>,
}

/// Event field to count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventGroupField {
    /// `user.username`.
    User,
    /// `verb`.
    Verb,
    /// `objectRef.resource`.
    Resource,
    /// `objectRef.namespace`.
    Namespace,
    /// First source IP.
    SourceIp,
    /// `responseStatus.code` (key is the decimal code).
    ResponseCode,
    /// Cluster name.
    Cluster,
    /// Authorization decision.
    Decision,
    /// User agent.
    UserAgent,
}

/// Alert field to count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AlertGroupField {
    /// Rule name.
    Rule,
    /// Priority (key is Falco's name: `Warning`, ...).
    Priority,
    /// Cluster name.
    Cluster,
    /// Namespace.
    Namespace,
    /// User name.
    User,
    /// Policy name.
    Policy,
}

/// One group of a grouped count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCount {
    /// The field's value (`None` when the field is absent).
    pub key: Option<String>,
    /// Rows with that value.
    pub count: u64,
}

/// One bucket of a time histogram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HistogramBucket {
    /// Bucket start, ns: a multiple of the bucket width.
    pub start_ns: i64,
    /// Rows with `start_ns <= time < start_ns + width`.
    pub count: u64,
}

impl HistogramBucket {
    /// Checks a histogram bucket width: it must be positive.
    pub fn check_width(bucket_ns: i64) -> Result<i64, StoreError> {
        if bucket_ns <= 0 {
            return Err(StoreError::InvalidQuery(
                "histogram bucket width must be positive".to_owned(),
            ));
        }
        Ok(bucket_ns)
    }

    /// The start of the bucket of width `bucket_ns` holding time `t` (floor, also before 1970).
    pub fn start_of(t: i64, bucket_ns: i64) -> i64 {
        t.div_euclid(bucket_ns) * bucket_ns
    }
}
