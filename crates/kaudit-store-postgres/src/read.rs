//! Searches, counts, groupings and histograms over events and alerts.
//!
//! Filters become a `WHERE` clause with typed, numbered parameters. Newest-first listings order
//! by `(time_ns, id)` descending, continue after a cursor with a row comparison, and are
//! searched in time windows from the newest end ([`newest_first`]); filters on indexes that keep
//! no time order are walked while common and indexed once rare ([`Unordered`]). Counts, grouped
//! counts and histograms whose filter is a time range and at most a cluster add up the stored
//! event counts instead (`counts.rs`).

use kaudit_model::{Level, Priority, Stage};
use kaudit_store::{
    AlertFields, AlertFilter, AlertGroupField, AlertId, Cursor, EventFields, EventFilter, EventGroupField,
    EventId, FullEvent, GroupCount, HistogramBucket, IntakeId, Page, PageRequest, Result, StoreError,
    StoredAlert, StoredEvent, TimeRange, UserMatch,
};
use postgres::types::{ToSql, Type};
use postgres::{Client, Row};

use crate::counts;

/// A query parameter with its PostgreSQL type, so that queries go out in one round trip
/// (`query_typed`: no separate prepare and close) and are planned for their values.
type Param = (Box<dyn ToSql + Sync>, Type);

/// Values with a fixed PostgreSQL parameter type.
pub(crate) trait Typed: ToSql + Sync + 'static {
    const TYPE: Type;
}

impl Typed for String {
    const TYPE: Type = Type::TEXT;
}

impl Typed for i64 {
    const TYPE: Type = Type::INT8;
}

impl Typed for i32 {
    const TYPE: Type = Type::INT4;
}

impl Typed for i16 {
    const TYPE: Type = Type::INT2;
}

impl Typed for Vec<String> {
    const TYPE: Type = Type::TEXT_ARRAY;
}

/// A `WHERE` clause under construction.
#[derive(Default)]
pub(crate) struct Where {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    /// Adds a parameter and returns its `$n` marker for the SQL text.
    pub(crate) fn param<T: Typed>(&mut self, value: T) -> String {
        self.params.push((Box::new(value), T::TYPE));
        format!("${}", self.params.len())
    }

    fn equals(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            let p = self.param(value.clone());
            self.conditions.push(format!("{column} = {p}"));
        }
    }

    /// `column = value` for a column with an index for short values and one for long ones
    /// ([`LONG_BYTES`]).
    fn split_equals(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            let p = self.param(value.clone());
            self.conditions.push(split_equality(column, &p, value));
        }
    }

    fn time(&mut self, column: &str, range: &TimeRange) {
        if let Some(from) = range.from_ns {
            let p = self.param(from);
            self.conditions.push(format!("{column} >= {p}"));
        }
        if let Some(to) = range.to_ns {
            let p = self.param(to);
            self.conditions.push(format!("{column} < {p}"));
        }
    }

    fn cursor(&mut self, time_column: &str, id_column: &str, cursor: Option<Cursor>) {
        if let Some(c) = cursor {
            let (t, id) = (self.param(c.time_ns), self.param(c.id));
            self.conditions
                .push(format!("({time_column}, {id_column}) < ({t}, {id})"));
        }
    }

    pub(crate) fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    pub(crate) fn refs(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.params
            .iter()
            .map(|(value, ty)| (value.as_ref(), ty.clone()))
            .collect()
    }
}

/// Values of more bytes than this are long (migration `0004_bounded_index_keys.sql`): a btree
/// entry holds at most 2704 bytes, and an event with a longer value that does not compress
/// must not fail its batch. Each indexed text column has an index of its values up to this
/// length (all real ones), the index of version 3 made partial, and a `_long` index of the
/// first [`LONG_KEY_CHARS`] characters of longer values ([`long_key`]). A condition names the
/// one index that can hold its value, with the length condition of that index, so that
/// PostgreSQL may use it.
///
/// Lengths are compared in Rust as UTF-8 and in SQL as the database's encoding, which is UTF-8:
/// the store opens no other (`check_encoding` in `lib.rs`).
const LONG_BYTES: usize = 2000;

/// Characters of a long value that its `_long` index holds: at most 2000 bytes of UTF-8.
const LONG_KEY_CHARS: usize = 500;

/// The key of `column`'s `_long` index, spelled as the index spells it.
fn long_key(column: &str) -> String {
    format!("left({column}, {LONG_KEY_CHARS})")
}

/// `column` is short: the predicate of its index of short values.
fn short(column: &str) -> String {
    format!("octet_length({column}) <= {LONG_BYTES}")
}

/// `column` is long: the predicate of its `_long` index.
fn long(column: &str) -> String {
    format!("octet_length({column}) > {LONG_BYTES}")
}

/// `column = p` (`p` the marker of the parameter `value`) in the form the index that can hold
/// `value` serves: for a short value the index of version 3 (plans and estimates as they
/// were); for a long one, its first characters in the `_long` index, and the column decides.
fn split_equality(column: &str, p: &str, value: &str) -> String {
    if value.len() <= LONG_BYTES {
        format!("{column} = {p} AND {}", short(column))
    } else {
        format!(
            "{} = left({p}, {LONG_KEY_CHARS}) AND {column} = {p} AND {}",
            long_key(column),
            long(column)
        )
    }
}

/// `text` lowercased in ASCII only, so that matching is ASCII case-insensitive as in the
/// SQLite backend (`lower()` in SQL is applied to the column the same way below).
fn ascii_lower(text: &str) -> String {
    text.to_ascii_lowercase()
}

/// How a query asks for the filters whose indexes do not keep time order: cluster, verb,
/// subresource, response code and decision (single-column btrees), user-agent substring (the
/// distinct values of its btree), group (GIN) and free text (trigram GIN).
///
/// Such an index gives every row of a value at once. For a rare value that is what a search
/// wants; for a common one PostgreSQL may still read all of its rows into a bitmap to combine
/// it with the time window, for each window (tens of milliseconds per window for a value on 1%
/// of ten million events). So a search first walks in time order, checking these filters row
/// by row, and asks their indexes only once the walk shows the matches are rare (see
/// [`newest_first`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Unordered {
    /// Checked row by row, in forms no index serves (`verb || ''`, `response_code + 0`,
    /// `groups ? g` where the GIN index serves `@>`): PostgreSQL walks an index in time order
    /// and stops at the end of the page.
    Walk,
    /// In the forms their indexes serve.
    Indexed,
}

/// LIKE patterns that every match of the free text `text` satisfies and that the trigram index
/// answers cheaply: `%run%` for each run of at least three ASCII letters and digits (lowercase).
///
/// The whole text as one pattern would also ask for the trigrams of the word boundaries inside
/// it (`tmp-admin` asks for "mp ", "  a" and " ad"), whose posting lists cover most of the table
/// and cost the index scan 5 to 10 times more than the runs' own trigrams. Empty when the text
/// has no such run: the index would have nothing selective to look up.
fn trigram_patterns(text: &str) -> Vec<String> {
    let mut patterns: Vec<String> = text
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|run| run.len() >= 3)
        .map(|run| format!("%{}%", run.to_ascii_lowercase()))
        .collect();
    patterns.sort_unstable();
    patterns.dedup();
    patterns
}

/// Whether `filter` has a condition that [`Unordered`] applies to.
fn has_unordered(filter: &EventFilter) -> bool {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|v| !v.is_empty());
    filter.cluster.is_some()
        || filter.group.is_some()
        || filter.verb.is_some()
        || filter.subresource.is_some()
        || filter.response_code.is_some()
        || filter.decision.is_some()
        || set(&filter.user_agent_contains)
        || set(&filter.text)
}

impl Where {
    /// `column = value` for a column with single-column indexes (see [`Unordered`] and
    /// [`LONG_BYTES`]).
    fn unordered_equals(&mut self, column: &str, value: &Option<String>, how: Unordered) {
        if let Some(value) = value {
            let p = self.param(value.clone());
            self.conditions.push(match how {
                Unordered::Walk => format!("({column} || '') = {p}"),
                Unordered::Indexed => split_equality(column, &p, value),
            });
        }
    }
}

/// What a filter's conditions take from the store besides the filter itself.
#[derive(Default)]
struct Lookups {
    /// The stored user agents a user-agent substring may match ([`agents_containing`]), when
    /// looked up and not too many.
    agents: Option<Agents>,
    /// Whether some long user name may start with the user-name prefix
    /// ([`long_users_with_prefix`]).
    long_users: bool,
}

impl Lookups {
    /// The lookups every kind of condition needs but the user agents.
    fn of(client: &mut Client, filter: &EventFilter) -> Result<Lookups> {
        Ok(Lookups {
            agents: None,
            long_users: long_users_with_prefix(client, filter)?,
        })
    }
}

/// The user-name prefix condition over the user names of the index of short values
/// ([`LONG_BYTES`]): a range of that index ([`prefix_range`]).
fn short_users_with_prefix(w: &mut Where, prefix: &str) -> String {
    format!(
        "{} AND {}",
        prefix_range(w, "e.username", prefix),
        short("e.username")
    )
}

/// The user-name prefix condition over long user names: a range of their `_long` index
/// holding every key that starts with the prefix's first [`LONG_KEY_CHARS`] characters. A
/// long user name has more than that many characters, so its key starts with them when the
/// name starts with the prefix.
fn long_users_with_prefix_condition(w: &mut Where, prefix: &str) -> String {
    let first: String = prefix.chars().take(LONG_KEY_CHARS).collect();
    format!(
        "{} AND {}",
        prefix_range(w, &long_key("e.username"), &first),
        long("e.username")
    )
}

/// A range of `key` (a column or an index's expression) that holds every value starting with
/// `prefix`, in the form a btree index on `key` serves: from `prefix` to its successor
/// ([`UserMatch::prefix_successor`]), or from `prefix` on when it has none. The range may hold other
/// values too; the prefix condition's `starts_with` decides.
fn prefix_range(w: &mut Where, key: &str, prefix: &str) -> String {
    let low = w.param(prefix.to_owned());
    match UserMatch::prefix_successor(prefix) {
        Some(successor) => {
            let high = w.param(successor);
            format!("{key} >= {low} AND {key} < {high}")
        }
        None => format!("{key} >= {low}"),
    }
}

/// Whether some long user name starts with the filter's user-name prefix (a probe of the
/// `_long` index, which is empty in any store that never received one). Only then does the
/// prefix condition look at long user names too: an `OR` of the two ranges would keep
/// PostgreSQL from walking the index of short values in time order.
fn long_users_with_prefix(client: &mut Client, filter: &EventFilter) -> Result<bool> {
    let Some(UserMatch::Prefix(prefix)) = &filter.user else {
        return Ok(false);
    };
    if prefix.is_empty() || prefix.len() > LONG_BYTES {
        return Ok(false);
    }
    let mut w = Where::default();
    let range = long_users_with_prefix_condition(&mut w, prefix);
    let p = w.param(prefix.clone());
    let sql =
        format!("SELECT EXISTS (SELECT 1 FROM events e WHERE {range} AND starts_with(e.username, {p}))");
    client
        .query_typed_one(&sql, &w.refs())
        .and_then(|row| row.try_get(0))
        .map_err(sql_error("looking for long user names"))
}

/// The filter's conditions. With [`Unordered::Indexed`], the user agents (when known) are
/// those that may contain the user-agent substring ([`agents_containing`]).
fn event_where(filter: &EventFilter, how: Unordered, lookups: &Lookups) -> Where {
    let mut w = Where::default();
    w.time("e.time_ns", &filter.time);
    w.unordered_equals("e.cluster", &filter.cluster, how);
    match &filter.user {
        Some(UserMatch::Exact(user)) => w.split_equals("e.username", &Some(user.clone())),
        Some(UserMatch::Prefix(prefix)) if !prefix.is_empty() => {
            let range = if prefix.len() > LONG_BYTES {
                // Only a long user name can start with a long prefix.
                long_users_with_prefix_condition(&mut w, prefix)
            } else if lookups.long_users {
                let shorts = short_users_with_prefix(&mut w, prefix);
                let longs = long_users_with_prefix_condition(&mut w, prefix);
                format!("(({shorts}) OR ({longs}))")
            } else {
                short_users_with_prefix(&mut w, prefix)
            };
            // The range is an index's bound; this decides.
            let p = w.param(prefix.clone());
            w.conditions
                .push(format!("{range} AND starts_with(e.username, {p})"));
        }
        Some(UserMatch::Prefix(_)) | None => {}
    }
    if let Some(group) = &filter.group {
        let p = w.param(group.clone());
        // The groups are a JSON array of strings: `?` (no index) and `@>` (the GIN index) agree.
        w.conditions.push(match how {
            Unordered::Walk => format!("e.groups ? {p}"),
            Unordered::Indexed => format!("e.groups @> jsonb_build_array({p}::text)"),
        });
    }
    w.unordered_equals("e.verb", &filter.verb, how);
    w.split_equals("e.resource", &filter.resource);
    w.unordered_equals("e.subresource", &filter.subresource, how);
    w.split_equals("e.namespace", &filter.namespace);
    w.split_equals("e.name", &filter.name);
    w.split_equals("e.source_ip", &filter.source_ip);
    if let Some(agent) = filter.user_agent_contains.as_deref().filter(|a| !a.is_empty()) {
        if let (Unordered::Indexed, Some(agents)) = (how, &lookups.agents) {
            let shorts = w.param(agents.short.clone());
            let shorts = format!("e.user_agent = ANY({shorts}) AND {}", short("e.user_agent"));
            let condition = if agents.long.is_empty() {
                shorts
            } else {
                let longs = w.param(agents.long.clone());
                format!(
                    "(({shorts}) OR ({} = ANY({longs}) AND {}))",
                    long_key("e.user_agent"),
                    long("e.user_agent")
                )
            };
            w.conditions.push(condition);
        }
        // The columns use the "C" collation, under which lower() changes ASCII letters only.
        let p = w.param(ascii_lower(agent));
        w.conditions.push(format!("strpos(lower(e.user_agent), {p}) > 0"));
    }
    if let Some(code) = filter.response_code {
        let p = w.param(code);
        w.conditions.push(match how {
            Unordered::Walk => format!("(e.response_code + 0) = {p}"),
            Unordered::Indexed => format!("e.response_code = {p}"),
        });
    }
    w.unordered_equals("e.decision", &filter.decision, how);
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        if how == Unordered::Indexed {
            // The trigram index's expression (when the index exists); a superset of the matches.
            for pattern in trigram_patterns(text) {
                let p = w.param(pattern);
                w.conditions.push(format!(
                    "(e.request_uri || ' ' || coalesce(e.name, '')) ILIKE {p}"
                ));
            }
        }
        // The exact match, in a form no index serves.
        let p = w.param(ascii_lower(text));
        w.conditions.push(format!(
            "(strpos(lower(e.request_uri), {p}) > 0 OR strpos(lower(e.name), {p}) > 0)"
        ));
    }
    w
}

/// Distinct user agents looked at, at most, to turn a user-agent substring into a list of
/// values for the `events_user_agent` index; beyond that the substring is checked row by row.
const MAX_AGENTS: i64 = 2000;

/// The stored user agents that may contain a user-agent substring.
#[derive(Clone, Debug, Default)]
struct Agents {
    /// Short user agents ([`LONG_BYTES`]) containing it.
    short: Vec<String>,
    /// The [`long_key`] of every long user agent: their rows decide.
    long: Vec<String>,
}

/// The stored user agents that may contain `needle` (ASCII case-insensitive), found by walking
/// the distinct values of the `events_user_agent` index and of its `_long` index (one index
/// descent each); `None` when there are more than [`MAX_AGENTS`] distinct ones.
fn agents_containing(client: &mut Client, needle: &str) -> Result<Option<Agents>> {
    let fail = sql_error("listing the stored user agents");
    let (is_short, is_long) = (short("user_agent"), long("user_agent"));
    let (e_is_short, e_is_long) = (short("e.user_agent"), long("e.user_agent"));
    let (key, e_key) = (long_key("user_agent"), long_key("e.user_agent"));
    let row = client
        .query_typed_one(
            &format!(
                "WITH RECURSIVE short_agents(agent) AS (
                     (SELECT user_agent FROM events WHERE user_agent IS NOT NULL AND {is_short}
                      ORDER BY user_agent LIMIT 1)
                     UNION ALL
                     SELECT (SELECT e.user_agent FROM events e WHERE e.user_agent > a.agent AND {e_is_short}
                             ORDER BY e.user_agent LIMIT 1)
                     FROM short_agents a WHERE a.agent IS NOT NULL
                 ),
                 long_agents(agent) AS (
                     (SELECT {key} FROM events WHERE {is_long} ORDER BY {key} LIMIT 1)
                     UNION ALL
                     SELECT (SELECT {e_key} FROM events e WHERE {e_key} > a.agent AND {e_is_long}
                             ORDER BY {e_key} LIMIT 1)
                     FROM long_agents a WHERE a.agent IS NOT NULL
                 ),
                 walked AS (
                     (SELECT false AS long, agent FROM short_agents WHERE agent IS NOT NULL LIMIT $1)
                     UNION ALL
                     (SELECT true, agent FROM long_agents WHERE agent IS NOT NULL LIMIT $1)
                 )
                 SELECT COUNT(*),
                        COALESCE(array_agg(agent) FILTER (WHERE NOT long AND strpos(lower(agent), $2) > 0), '{{}}'),
                        COALESCE(array_agg(agent) FILTER (WHERE long), '{{}}')
                 FROM walked"
            ),
            &[
                (&(MAX_AGENTS + 1), Type::INT8),
                (&ascii_lower(needle), Type::TEXT),
            ],
        )
        .map_err(&fail)?;
    let walked: i64 = row.try_get(0).map_err(&fail)?;
    if walked > MAX_AGENTS {
        return Ok(None);
    }
    Ok(Some(Agents {
        short: row.try_get(1).map_err(&fail)?,
        long: row.try_get(2).map_err(&fail)?,
    }))
}

/// [`event_where`] with [`Unordered::Indexed`], what it needs looked up.
pub(crate) fn indexed_event_where(client: &mut Client, filter: &EventFilter) -> Result<Where> {
    let mut lookups = Lookups::of(client, filter)?;
    if let Some(needle) = filter.user_agent_contains.as_deref().filter(|a| !a.is_empty()) {
        lookups.agents = agents_containing(client, needle)?;
    }
    Ok(event_where(filter, Unordered::Indexed, &lookups))
}

fn alert_where(filter: &AlertFilter) -> Where {
    let mut w = Where::default();
    w.time("a.time_ns", &filter.time);
    if let Some(min) = filter.min_priority {
        let p = w.param(i16::from(min.number()));
        w.conditions.push(format!("a.priority <= {p}"));
    }
    w.split_equals("a.rule", &filter.rule);
    w.equals("a.policy", &filter.policy);
    w.equals("a.cluster", &filter.cluster);
    w.equals("a.namespace", &filter.namespace);
    w.equals("a.username", &filter.user);
    w
}

const EVENT_COLUMNS: &str =
    "e.id, e.time_ns, e.received_ns, e.cluster, e.intake_id, e.audit_id, e.stage, e.digest,
    e.verb, e.username, e.groups::text, e.impersonated_user, e.resource, e.subresource, e.namespace, e.name,
    e.api_group, e.source_ip, e.user_agent, e.response_code, e.decision, e.request_uri, e.level";

const ALERT_COLUMNS: &str = "a.id, a.event_id, a.time_ns, a.rule, a.priority, a.output, a.output_fields_json,
    a.tags::text, a.policy, a.cluster, a.namespace, a.username, a.source";

pub(crate) fn sql_error(context: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

fn event_from_row(row: &Row) -> Result<StoredEvent> {
    let get = |e: postgres::Error| corrupt("events", e);
    let stage: String = row.try_get(6).map_err(get)?;
    let digest: Vec<u8> = row.try_get(7).map_err(get)?;
    let groups: String = row.try_get(10).map_err(get)?;
    let level: String = row.try_get(22).map_err(get)?;
    Ok(StoredEvent {
        id: EventId(row.try_get(0).map_err(get)?),
        fields: EventFields {
            time_ns: row.try_get(1).map_err(get)?,
            received_ns: row.try_get(2).map_err(get)?,
            cluster: row.try_get(3).map_err(get)?,
            intake_id: row.try_get::<_, Option<i64>>(4).map_err(get)?.map(IntakeId),
            audit_id: row.try_get(5).map_err(get)?,
            stage: stage.parse::<Stage>().map_err(|e| corrupt("events.stage", e))?,
            digest: digest
                .try_into()
                .map_err(|_| corrupt("events.digest", "not 32 bytes"))?,
            verb: row.try_get(8).map_err(get)?,
            username: row.try_get(9).map_err(get)?,
            groups: serde_json::from_str(&groups).map_err(|e| corrupt("events.groups", e))?,
            impersonated_user: row.try_get(11).map_err(get)?,
            resource: row.try_get(12).map_err(get)?,
            subresource: row.try_get(13).map_err(get)?,
            namespace: row.try_get(14).map_err(get)?,
            name: row.try_get(15).map_err(get)?,
            api_group: row.try_get(16).map_err(get)?,
            source_ip: row.try_get(17).map_err(get)?,
            user_agent: row.try_get(18).map_err(get)?,
            response_code: row.try_get(19).map_err(get)?,
            decision: row.try_get(20).map_err(get)?,
            request_uri: row.try_get(21).map_err(get)?,
            level: level.parse::<Level>().map_err(|e| corrupt("events.level", e))?,
        },
    })
}

fn alert_from_row(row: &Row) -> Result<StoredAlert> {
    let get = |e: postgres::Error| corrupt("alerts", e);
    let priority: i16 = row.try_get(4).map_err(get)?;
    let tags: String = row.try_get(7).map_err(get)?;
    Ok(StoredAlert {
        id: AlertId(row.try_get(0).map_err(get)?),
        event_id: EventId(row.try_get(1).map_err(get)?),
        fields: AlertFields {
            time_ns: row.try_get(2).map_err(get)?,
            rule: row.try_get(3).map_err(get)?,
            priority: u8::try_from(priority)
                .ok()
                .and_then(Priority::from_number)
                .ok_or_else(|| corrupt("alerts.priority", priority))?,
            output: row.try_get(5).map_err(get)?,
            output_fields_json: row.try_get(6).map_err(get)?,
            tags: serde_json::from_str(&tags).map_err(|e| corrupt("alerts.tags", e))?,
            policy: row.try_get(8).map_err(get)?,
            cluster: row.try_get(9).map_err(get)?,
            namespace: row.try_get(10).map_err(get)?,
            username: row.try_get(11).map_err(get)?,
            source: row.try_get(12).map_err(get)?,
        },
    })
}

/// Rows in the first time window of a listing: the newest this many rows of the range. Small
/// under test, so that the contract suite's searches run over many windows and their edges.
const FIRST_WINDOW_ROWS: usize = if cfg!(test) { 8 } else { 4096 };

/// Rows a search with [`Unordered`] filters walks in time order, checking each, before it asks
/// their indexes instead: at most about 1.5 µs a row (free text), so some 75 ms. Small under
/// test, so that the contract suite switches between the two.
const WALK_ROWS: f64 = if cfg!(test) { 40.0 } else { 50_000.0 };

/// The table and columns of a newest-first listing, and the kind of filter it has.
struct Listing<'a> {
    /// `events e` or `alerts a`.
    from: &'a str,
    /// The alias, whose `time_ns` and `id` order the listing.
    alias: &'a str,
    columns: &'a str,
    conditions: Conditions,
}

/// Whether a filter has [`Unordered`] conditions, which a search walks before it indexes them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Conditions {
    /// Only conditions that time-ordered indexes serve (or none).
    TimeOrdered,
    /// At least one [`Unordered`] condition.
    SomeUnordered,
}

/// One page of `listing`, newest first, searched in time windows from the newest end of the
/// range backwards until the page is full; `where_for` gives the filter (with the cursor).
///
/// PostgreSQL answers a filter either by walking an index in time order (fast when matches are
/// common, or when a `(value, time_ns, id)` index serves the whole filter) or by collecting
/// every match and sorting (fast when matches are few), and picks by its estimates. Between the
/// two, or when the estimate is wrong (two common values that are rare together, a user
/// prefix, free text), it sorts hundreds of thousands of matches: hundreds of milliseconds to
/// seconds on ten million events. Inside a time window either plan is bounded by the window.
/// The first window holds the newest [`FIRST_WINDOW_ROWS`] rows of the range; each next one
/// is sized from the matches found so far (twice the rows they say the page still needs, at
/// least twice the last window; sixteen times it when nothing matched yet), so a common filter
/// stops in the first window and a rare one costs a few index probes.
///
/// When the filter has [`Unordered`] conditions ([`Conditions::SomeUnordered`]), they are checked row by row while
/// the walk promises to fill the page within [`WALK_ROWS`] rows, and asked of their indexes
/// after that.
#[allow(clippy::too_many_arguments)]
fn newest_first<T>(
    client: &mut Client,
    listing: &Listing<'_>,
    where_for: &mut dyn FnMut(&mut Client, Unordered) -> Result<Where>,
    time: &TimeRange,
    cursor: Option<Cursor>,
    limit: u32,
    read: impl Fn(&Row) -> Result<T>,
    position: impl Fn(&T) -> Cursor,
) -> Result<Page<T>> {
    let Listing {
        from,
        alias,
        columns,
        conditions,
    } = listing;
    let unordered = *conditions == Conditions::SomeUnordered;
    let want = limit as usize + 1;
    // The range still to search: [low, high). The cursor's own time stays in (its row
    // comparison in the filter skips the rows already shown).
    let low = time.from_ns.unwrap_or(i64::MIN);
    let mut high = time.to_ns.unwrap_or(i64::MAX);
    if let Some(c) = cursor {
        high = high.min(c.time_ns.saturating_add(1));
    }
    if low >= high {
        return Ok(Page {
            items: Vec::new(),
            next_cursor: None,
        });
    }
    let measuring = sql_error("measuring the newest rows of a search range");
    let probe = client
        .query_typed_one(
            &format!(
                "SELECT COUNT(*), MIN(t), MAX(t) FROM (SELECT {alias}.time_ns AS t FROM {from}
                 WHERE {alias}.time_ns >= $1 AND {alias}.time_ns < $2
                 ORDER BY {alias}.time_ns DESC LIMIT {FIRST_WINDOW_ROWS}) AS newest"
            ),
            &[(&low, Type::INT8), (&high, Type::INT8)],
        )
        .map_err(&measuring)?;
    let newest: i64 = probe.try_get(0).map_err(&measuring)?;
    // The first window, and the rows per nanosecond it shows.
    let (mut window_low, rows_per_ns) = if newest < FIRST_WINDOW_ROWS as i64 {
        (low, 0.0)
    } else {
        let oldest: i64 = probe.try_get(1).map_err(&measuring)?;
        let latest: i64 = probe.try_get(2).map_err(&measuring)?;
        let span = latest.saturating_sub(oldest).max(1);
        (oldest, FIRST_WINDOW_ROWS as f64 / span as f64)
    };
    let mut items = Vec::with_capacity(want.min(1024));
    let mut mode = Unordered::Walk;
    let mut window_rows = FIRST_WINDOW_ROWS as f64;
    let mut scanned_rows = 0.0;
    loop {
        let w = where_for(client, mode)?;
        let first_bound = w.params.len() + 1;
        let mut refs = w.refs();
        refs.push((&window_low, Type::INT8));
        refs.push((&high, Type::INT8));
        let rows = client
            .query_typed(
                &format!(
                    "SELECT {columns} FROM {from} WHERE {} {alias}.time_ns >= ${first_bound} AND {alias}.time_ns < ${}
                     ORDER BY {alias}.time_ns DESC, {alias}.id DESC LIMIT {}",
                    w.conditions
                        .iter()
                        .fold(String::new(), |all, c| all + c + " AND "),
                    first_bound + 1,
                    want - items.len()
                ),
                &refs,
            )
            .map_err(sql_error("running a search"))?;
        for row in &rows {
            items.push(read(row)?);
        }
        if items.len() >= want || window_low <= low {
            break;
        }
        scanned_rows += window_rows;
        let found = items.len() as f64;
        let needed = (want - items.len()) as f64;
        window_rows = if found == 0.0 {
            if unordered {
                mode = Unordered::Indexed;
                f64::INFINITY
            } else {
                window_rows * 16.0
            }
        } else {
            let to_fill = needed * scanned_rows / found;
            if unordered && to_fill > WALK_ROWS {
                mode = Unordered::Indexed;
            }
            (2.0 * to_fill).max(2.0 * window_rows)
        };
        high = window_low;
        // Saturating float-to-integer conversion: an endless window reaches `low`.
        let width = (window_rows / rows_per_ns).ceil() as i64;
        window_low = high.saturating_sub(width.max(1)).max(low);
    }
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(position) } else { None };
    Ok(Page { items, next_cursor })
}

pub(crate) fn search_events(
    client: &mut Client,
    filter: &EventFilter,
    page: PageRequest,
) -> Result<Page<StoredEvent>> {
    let limit = page.checked_limit()?;
    let listing = Listing {
        from: "events e",
        alias: "e",
        columns: EVENT_COLUMNS,
        conditions: if has_unordered(filter) {
            Conditions::SomeUnordered
        } else {
            Conditions::TimeOrdered
        },
    };
    let mut lookups = Lookups::of(client, filter)?;
    let mut agents_looked_up = false;
    let mut where_for = |client: &mut Client, how| {
        let needle = filter.user_agent_contains.as_deref().filter(|a| !a.is_empty());
        if let (Unordered::Indexed, Some(needle), false) = (how, needle, agents_looked_up) {
            lookups.agents = agents_containing(client, needle)?;
            agents_looked_up = true;
        }
        let mut w = event_where(filter, how, &lookups);
        w.cursor("e.time_ns", "e.id", page.cursor);
        Ok(w)
    };
    newest_first(
        client,
        &listing,
        &mut where_for,
        &filter.time,
        page.cursor,
        limit,
        event_from_row,
        |e| Cursor {
            time_ns: e.fields.time_ns,
            id: e.id.0,
        },
    )
}

fn count(client: &mut Client, sql: &str, w: &Where) -> Result<u64> {
    let row = client
        .query_typed_one(sql, &w.refs())
        .map_err(sql_error("counting"))?;
    let n: i64 = row.try_get(0).map_err(sql_error("counting"))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_events(client: &mut Client, filter: &EventFilter) -> Result<u64> {
    if counts::answers(filter) {
        return counts::count_events(client, filter);
    }
    let w = indexed_event_where(client, filter)?;
    count(client, &format!("SELECT COUNT(*) FROM events e{}", w.sql()), &w)
}

/// `SELECT count(*)` over at most `limit` rows of `from_where` (a `FROM ... WHERE ...` text):
/// the scan stops at `limit` matches.
fn count_upto(client: &mut Client, from_where: &str, w: &Where, limit: u64) -> Result<u64> {
    if limit == 0 {
        return Ok(0);
    }
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!("SELECT COUNT(*) FROM (SELECT 1 {from_where} LIMIT {limit}) AS bounded");
    count(client, &sql, w)
}

pub(crate) fn count_events_upto(client: &mut Client, filter: &EventFilter, limit: u64) -> Result<u64> {
    if counts::answers(filter) {
        return Ok(counts::count_events(client, filter)?.min(limit));
    }
    let w = indexed_event_where(client, filter)?;
    count_upto(client, &format!("FROM events e{}", w.sql()), &w, limit)
}

pub(crate) fn get_event(client: &mut Client, id: EventId) -> Result<Option<FullEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, r.raw FROM events e JOIN event_raw r ON r.id = e.id WHERE e.id = $1"
    );
    let Some(row) = client
        .query_typed_opt(&sql, &[(&id.0, Type::INT8)])
        .map_err(sql_error("reading an event"))?
    else {
        return Ok(None);
    };
    let event = event_from_row(&row)?;
    let raw: Vec<u8> = row.try_get(23).map_err(|e| corrupt("event_raw.raw", e))?;
    let bytes = zstd::decode_all(&raw[..]).map_err(|e| corrupt("event_raw.raw", e))?;
    let raw_json = String::from_utf8(bytes).map_err(|e| corrupt("event_raw.raw", e))?;
    Ok(Some(FullEvent { event, raw_json }))
}

fn grouped(client: &mut Client, sql: &str, w: &Where) -> Result<Vec<GroupCount>> {
    let rows = client
        .query_typed(sql, &w.refs())
        .map_err(sql_error("running a grouped count"))?;
    rows.iter()
        .map(|row| {
            let key: Option<String> = row.try_get(0).map_err(sql_error("reading a grouped count"))?;
            let n: i64 = row.try_get(1).map_err(sql_error("reading a grouped count"))?;
            Ok(GroupCount {
                key,
                count: n.max(0) as u64,
            })
        })
        .collect()
}

pub(crate) fn group_events(
    client: &mut Client,
    filter: &EventFilter,
    field: EventGroupField,
    limit: u32,
) -> Result<Vec<GroupCount>> {
    if counts::answers(filter) {
        return counts::group_events(client, filter, field, limit);
    }
    let (column, order) = match field {
        EventGroupField::User => ("e.username", "k"),
        EventGroupField::Verb => ("e.verb", "k"),
        EventGroupField::Resource => ("e.resource", "k"),
        EventGroupField::Namespace => ("e.namespace", "k"),
        EventGroupField::SourceIp => ("e.source_ip", "k"),
        // Grouped and ordered as a number, returned as text.
        EventGroupField::ResponseCode => ("e.response_code", "MIN(e.response_code)"),
        EventGroupField::Cluster => ("e.cluster", "k"),
        EventGroupField::Decision => ("e.decision", "k"),
        EventGroupField::UserAgent => ("e.user_agent", "k"),
    };
    let w = indexed_event_where(client, filter)?;
    let sql = format!(
        "SELECT {column}::text AS k, COUNT(*) AS n FROM events e{} GROUP BY {column}
         ORDER BY n DESC, {order} ASC NULLS FIRST LIMIT {}",
        w.sql(),
        limit.min(PageRequest::MAX_LIMIT)
    );
    grouped(client, &sql, &w)
}

fn histogram(client: &mut Client, sql: &str, w: &Where) -> Result<Vec<HistogramBucket>> {
    let rows = client
        .query_typed(sql, &w.refs())
        .map_err(sql_error("running a histogram"))?;
    rows.iter()
        .map(|row| {
            let start_ns: i64 = row.try_get(0).map_err(sql_error("reading a histogram"))?;
            let n: i64 = row.try_get(1).map_err(sql_error("reading a histogram"))?;
            Ok(HistogramBucket {
                start_ns,
                count: n.max(0) as u64,
            })
        })
        .collect()
}

/// The bucket start of `column` (floor division, also before 1970), `bucket_ns` checked > 0.
fn bucket_expression(column: &str, bucket_ns: i64) -> String {
    format!(
        "({column} - ({column} % {bucket_ns}) - (CASE WHEN {column} % {bucket_ns} < 0 THEN {bucket_ns} ELSE 0 END))"
    )
}

pub(crate) fn histogram_events(
    client: &mut Client,
    filter: &EventFilter,
    bucket_ns: i64,
) -> Result<Vec<HistogramBucket>> {
    let bucket_ns = HistogramBucket::check_width(bucket_ns)?;
    if counts::answers(filter)
        && let Some(buckets) = counts::histogram_events(client, filter, bucket_ns)?
    {
        return Ok(buckets);
    }
    let w = indexed_event_where(client, filter)?;
    let sql = format!(
        "SELECT {} AS b, COUNT(*) FROM events e{} GROUP BY b ORDER BY b",
        bucket_expression("e.time_ns", bucket_ns),
        w.sql()
    );
    histogram(client, &sql, &w)
}

pub(crate) fn search_alerts(
    client: &mut Client,
    filter: &AlertFilter,
    page: PageRequest,
) -> Result<Page<StoredAlert>> {
    let limit = page.checked_limit()?;
    let listing = Listing {
        from: "alerts a",
        alias: "a",
        columns: ALERT_COLUMNS,
        conditions: Conditions::TimeOrdered,
    };
    let mut where_for = |_: &mut Client, _| {
        let mut w = alert_where(filter);
        w.cursor("a.time_ns", "a.id", page.cursor);
        Ok(w)
    };
    newest_first(
        client,
        &listing,
        &mut where_for,
        &filter.time,
        page.cursor,
        limit,
        alert_from_row,
        |a| Cursor {
            time_ns: a.fields.time_ns,
            id: a.id.0,
        },
    )
}

pub(crate) fn count_alerts(client: &mut Client, filter: &AlertFilter) -> Result<u64> {
    let w = alert_where(filter);
    count(client, &format!("SELECT COUNT(*) FROM alerts a{}", w.sql()), &w)
}

pub(crate) fn count_alerts_upto(client: &mut Client, filter: &AlertFilter, limit: u64) -> Result<u64> {
    let w = alert_where(filter);
    count_upto(client, &format!("FROM alerts a{}", w.sql()), &w, limit)
}

pub(crate) fn group_alerts(
    client: &mut Client,
    filter: &AlertFilter,
    field: AlertGroupField,
    limit: u32,
) -> Result<Vec<GroupCount>> {
    let w = alert_where(filter);
    let limit = limit.min(PageRequest::MAX_LIMIT);
    if field == AlertGroupField::Priority {
        let sql = format!(
            "SELECT a.priority::text AS k, COUNT(*) AS n FROM alerts a{} GROUP BY a.priority
             ORDER BY n DESC, a.priority ASC LIMIT {limit}",
            w.sql()
        );
        let mut groups = grouped(client, &sql, &w)?;
        for group in &mut groups {
            group.key = group
                .key
                .as_deref()
                .and_then(|k| k.parse::<u8>().ok())
                .and_then(Priority::from_number)
                .map(|p| p.falco_name().to_owned());
        }
        return Ok(groups);
    }
    if field == AlertGroupField::Rule {
        // Short rules and long ones counted apart: the index of short rules gives them in
        // order without reading the alerts (an index-only scan, as before version 4).
        let with = |length: String| {
            let mut conditions = w.conditions.clone();
            conditions.push(length);
            conditions.join(" AND ")
        };
        let sql = format!(
            "SELECT k, SUM(n)::bigint AS n FROM (
                 SELECT a.rule AS k, COUNT(*) AS n FROM alerts a WHERE {} GROUP BY a.rule
                 UNION ALL
                 SELECT a.rule, COUNT(*) FROM alerts a WHERE {} GROUP BY a.rule
             ) AS parts GROUP BY k ORDER BY n DESC, k ASC NULLS FIRST LIMIT {limit}",
            with(short("a.rule")),
            with(long("a.rule"))
        );
        return grouped(client, &sql, &w);
    }
    let column = match field {
        AlertGroupField::Rule => "a.rule",
        AlertGroupField::Cluster => "a.cluster",
        AlertGroupField::Namespace => "a.namespace",
        AlertGroupField::User => "a.username",
        AlertGroupField::Policy | AlertGroupField::Priority => "a.policy",
    };
    let sql = format!(
        "SELECT {column} AS k, COUNT(*) AS n FROM alerts a{} GROUP BY k ORDER BY n DESC, k ASC NULLS FIRST LIMIT {limit}",
        w.sql()
    );
    grouped(client, &sql, &w)
}

pub(crate) fn histogram_alerts(
    client: &mut Client,
    filter: &AlertFilter,
    bucket_ns: i64,
) -> Result<Vec<HistogramBucket>> {
    let bucket_ns = HistogramBucket::check_width(bucket_ns)?;
    let w = alert_where(filter);
    let sql = format!(
        "SELECT {} AS b, COUNT(*) FROM alerts a{} GROUP BY b ORDER BY b",
        bucket_expression("a.time_ns", bucket_ns),
        w.sql()
    );
    histogram(client, &sql, &w)
}
