//! Searches, counts, groupings and histograms over events and alerts.
//!
//! Filters become a `WHERE` clause with anonymous `?` parameters, in text order. Newest-first
//! listings order by `(time_ns, id)` descending and continue after a cursor with a row-value
//! comparison, which SQLite answers from the `(field, time_ns)` and `(time_ns)` indexes (their
//! entries end with the rowid, so the order needs no sort).

use kaudit_model::{Level, Priority, Stage};
use kaudit_store::{
    AlertFields, AlertFilter, AlertGroupField, AlertId, Cursor, EventFields, EventFilter, EventGroupField,
    EventId, FullEvent, GroupCount, HistogramBucket, IntakeId, Page, PageRequest, Result, StoreError,
    StoredAlert, StoredEvent, UserMatch,
};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};

use crate::compression::Compression;

/// A `WHERE` clause under construction.
#[derive(Default)]
struct Where {
    conditions: Vec<String>,
    params: Vec<Value>,
}

impl Where {
    fn add(&mut self, condition: impl Into<String>, params: impl IntoIterator<Item = Value>) {
        self.conditions.push(condition.into());
        self.params.extend(params);
    }

    fn equals(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            self.add(format!("{column} = ?"), [Value::Text(value.clone())]);
        }
    }

    fn time(&mut self, column: &str, range: &kaudit_store::TimeRange) {
        if let Some(from) = range.from_ns {
            self.add(format!("{column} >= ?"), [Value::Integer(from)]);
        }
        if let Some(to) = range.to_ns {
            self.add(format!("{column} < ?"), [Value::Integer(to)]);
        }
    }

    fn cursor(&mut self, time_column: &str, id_column: &str, cursor: Option<Cursor>) {
        if let Some(c) = cursor {
            self.add(
                format!("({time_column}, {id_column}) < (?, ?)"),
                [Value::Integer(c.time_ns), Value::Integer(c.id)],
            );
        }
    }

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }
}

/// A trigram query whose rarest trigram is in at most this many rows drives a search: its
/// candidates are few enough to fetch and sort by time. Above it, the walk of another index
/// (or of time) checks the substring on each row instead, and finds common text fast.
const SELECTIVE_TRIGRAM_ROWS: i64 = 20_000;

/// `%text%` for LIKE, with `\` escaping LIKE's wildcards.
fn like_contains(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// How many of a text's trigrams a query uses: the rarest ones. Reading a common trigram's
/// row list ("pod", "api") costs more than the few extra rows the substring check on the row
/// then rejects.
const TRIGRAMS_PER_QUERY: usize = 3;

/// An FTS5 query that every row containing `text` (ASCII case-insensitively) matches: the AND
/// of its rarest distinct trigrams (by the index's own row counts), each quoted. `None` when
/// the index cannot help: text shorter than a trigram, or not ASCII (the tokenizer's Unicode
/// case folding is not ours to reproduce; such text is matched by scanning).
fn trigram_query(conn: &Connection, text: &str) -> Result<Option<(String, i64)>> {
    if text.len() < 3 || !text.is_ascii() {
        return Ok(None);
    }
    let lower = text.to_ascii_lowercase();
    let mut grams: Vec<&str> = Vec::new();
    for start in 0..=lower.len() - 3 {
        let gram = &lower[start..start + 3];
        if !grams.contains(&gram) {
            grams.push(gram);
        }
    }
    let mut counted: Vec<(i64, &str)> = Vec::with_capacity(grams.len());
    {
        let mut statement = conn
            .prepare_cached("SELECT doc FROM events_text_vocab WHERE term = ?1")
            .map_err(sql_error("preparing a trigram count"))?;
        for gram in grams {
            let rows: Option<i64> = statement
                .query_row([gram], |r| r.get(0))
                .optional()
                .map_err(sql_error("counting a trigram"))?;
            counted.push((rows.unwrap_or(0), gram));
        }
    }
    counted.sort_unstable();
    let quoted: Vec<String> = counted
        .iter()
        .take(TRIGRAMS_PER_QUERY)
        .map(|(_, g)| format!("\"{}\"", g.replace('"', "\"\"")))
        .collect();
    let rarest = counted.first().map_or(0, |(rows, _)| *rows);
    Ok(Some((quoted.join(" AND "), rarest)))
}

/// The most selective trigram query of a filter's object name and free text, if selective
/// enough to drive the search ([`SELECTIVE_TRIGRAM_ROWS`]).
fn selective_text_query(conn: &Connection, filter: &EventFilter) -> Result<Option<String>> {
    let mut best: Option<(String, i64)> = None;
    let texts = [filter.name.as_deref(), filter.text.as_deref()];
    for text in texts.into_iter().flatten().filter(|t| !t.is_empty()) {
        if let Some((query, rows)) = trigram_query(conn, text)?
            && rows <= SELECTIVE_TRIGRAM_ROWS
            && best.as_ref().is_none_or(|(_, best_rows)| rows < *best_rows)
        {
            best = Some((query, rows));
        }
    }
    Ok(best.map(|(query, _)| query))
}

fn event_where(filter: &EventFilter) -> Where {
    let mut w = Where::default();
    w.time("e.time_ns", &filter.time);
    w.equals("e.cluster", &filter.cluster);
    match &filter.user {
        Some(UserMatch::Exact(user)) => w.add("e.username = ?", [Value::Text(user.clone())]),
        Some(UserMatch::Prefix(prefix)) if !prefix.is_empty() => {
            // The range lets the (username, time) index find the prefix; the substr check makes
            // it exact.
            w.add(
                "e.username >= ? AND e.username < ? AND substr(e.username, 1, ?) = ?",
                [
                    Value::Text(prefix.clone()),
                    Value::Text(format!("{prefix}\u{10FFFF}")),
                    Value::Integer(prefix.chars().count() as i64),
                    Value::Text(prefix.clone()),
                ],
            );
        }
        Some(UserMatch::Prefix(_)) | None => {}
    }
    if let Some(group) = &filter.group {
        let quoted = serde_json::to_string(group).unwrap_or_default();
        w.add(
            "instr(e.groups_json, ?) > 0 AND EXISTS (SELECT 1 FROM json_each(e.groups_json) WHERE value = ?)",
            [Value::Text(quoted), Value::Text(group.clone())],
        );
    }
    w.equals("e.verb", &filter.verb);
    w.equals("e.resource", &filter.resource);
    w.equals("e.subresource", &filter.subresource);
    w.equals("e.namespace", &filter.namespace);
    // No (name, time) index: too costly to maintain; the trigram index can drive instead.
    w.equals("e.name", &filter.name);
    w.equals("e.source_ip", &filter.source_ip);
    if let Some(agent) = filter.user_agent_contains.as_deref().filter(|a| !a.is_empty()) {
        w.add(
            "e.user_agent LIKE ? ESCAPE '\\'",
            [Value::Text(like_contains(agent))],
        );
    }
    if let Some(code) = filter.response_code {
        w.add("e.response_code = ?", [Value::Integer(i64::from(code))]);
    }
    w.equals("e.decision", &filter.decision);
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        let pattern = like_contains(text);
        w.add(
            "(e.request_uri LIKE ? ESCAPE '\\' OR e.name LIKE ? ESCAPE '\\')",
            [Value::Text(pattern.clone()), Value::Text(pattern)],
        );
    }
    w
}

fn alert_where(filter: &AlertFilter) -> Where {
    let mut w = Where::default();
    w.time("a.time_ns", &filter.time);
    if let Some(min) = filter.min_priority {
        w.add("a.priority <= ?", [Value::Integer(i64::from(min.number()))]);
    }
    w.equals("a.rule", &filter.rule);
    w.equals("a.policy", &filter.policy);
    w.equals("a.cluster", &filter.cluster);
    w.equals("a.namespace", &filter.namespace);
    w.equals("a.username", &filter.user);
    w
}

/// Where the rows of an event query come from: one table expression with its conditions.
/// A query reads the union of its sources, which never share a row.
struct Source {
    from: String,
    w: Where,
    /// Columns giving (time, id) order for this source.
    order: (&'static str, &'static str),
}

/// A user-name prefix covering more distinct users than this is searched by walking time
/// instead of the user lookup: such a prefix is common ("system:serviceaccount:") and a walk
/// in time order finds a page of matches quickly, while fewer users are each walked in their
/// own lookup range and merged.
const PREFIX_MAX_USERS: usize = 64;

/// The distinct user names in `[low, high)` in the user lookup, or `None` when there are more
/// than `max`. Each step is one index seek, so this costs `max` seeks at most.
fn users_in_range(conn: &Connection, low: &str, high: &str, max: usize) -> Result<Option<Vec<String>>> {
    let mut statement = conn
        .prepare_cached("SELECT MIN(username) FROM events_by_user WHERE username > ?1 AND username < ?2")
        .map_err(sql_error("listing users by prefix"))?;
    let mut users: Vec<String> = Vec::new();
    let first: Option<String> = conn
        .prepare_cached("SELECT MIN(username) FROM events_by_user WHERE username >= ?1 AND username < ?2")
        .and_then(|mut st| st.query_row([low, high], |r| r.get(0)))
        .map_err(sql_error("listing users by prefix"))?;
    let mut next = first;
    while let Some(user) = next {
        if users.len() == max {
            return Ok(None);
        }
        next = statement
            .query_row([user.as_str(), high], |r| r.get(0))
            .map_err(sql_error("listing users by prefix"))?;
        users.push(user);
    }
    Ok(Some(users))
}

/// The rows of `filter`'s query, as sources whose union is exact and disjoint: the time index
/// of `events` alone, or walks of a derived lookup (one per looked-up value) for the rows it
/// covers plus a rowid-range scan of the rows above its mark.
fn event_sources(conn: &Connection, filter: &EventFilter) -> Result<Vec<Source>> {
    let mark: i64 = conn
        .prepare_cached("SELECT indexed_upto FROM derived_state WHERE id = 1")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql_error("reading the derived index mark"))?;
    let mut tail = event_where(filter);
    tail.add("e.id > ?", [Value::Integer(mark)]);
    // NOT INDEXED: the rows above the mark are the newest few thousand, found by rowid range;
    // an index walk over all of time looking for them would be a full scan.
    let tail = Source {
        from: "events e NOT INDEXED".to_owned(),
        w: tail,
        order: ("e.time_ns", "e.id"),
    };

    // A selective text drives: its few candidate rows are fetched and sorted by time.
    if let Some(query) = selective_text_query(conn, filter)? {
        let mut covered = Where::default();
        covered.add(
            "e.id IN (SELECT rowid FROM events_text WHERE events_text MATCH ?)",
            [Value::Text(query)],
        );
        let rest = event_where(filter);
        covered.conditions.extend(rest.conditions);
        covered.params.extend(rest.params);
        return Ok(vec![
            Source {
                from: "events e".to_owned(),
                w: covered,
                order: ("e.time_ns", "e.id"),
            },
            tail,
        ]);
    }

    // (lookup table, column, values to walk)
    let mut lookup: Option<(&'static str, &'static str, Vec<String>)> = None;
    match &filter.user {
        Some(UserMatch::Exact(user)) => lookup = Some(("events_by_user", "username", vec![user.clone()])),
        Some(UserMatch::Prefix(prefix)) if !prefix.is_empty() => {
            let high = format!("{prefix}\u{10FFFF}");
            if let Some(users) = users_in_range(conn, prefix, &high, PREFIX_MAX_USERS)? {
                // The range may hold names that only sort like the prefix; keep true matches.
                let users = users
                    .into_iter()
                    .filter(|u| u.starts_with(prefix.as_str()))
                    .collect();
                lookup = Some(("events_by_user", "username", users));
            }
        }
        Some(UserMatch::Prefix(_)) | None => {}
    }
    if lookup.is_none()
        && let Some(namespace) = &filter.namespace
    {
        lookup = Some(("events_by_namespace", "namespace", vec![namespace.clone()]));
    }
    if lookup.is_none()
        && let Some(resource) = &filter.resource
    {
        lookup = Some(("events_by_resource", "resource", vec![resource.clone()]));
    }
    let Some((table, column, values)) = lookup else {
        return Ok(vec![Source {
            from: "events e".to_owned(),
            w: event_where(filter),
            order: ("e.time_ns", "e.id"),
        }]);
    };
    let mut sources = Vec::with_capacity(values.len() + 1);
    for value in values {
        let mut covered = Where::default();
        covered.add(format!("d.{column} = ?"), [Value::Text(value)]);
        covered.time("d.time_ns", &filter.time);
        let rest = event_where(filter);
        covered.conditions.extend(rest.conditions);
        covered.params.extend(rest.params);
        sources.push(Source {
            from: format!("{table} d CROSS JOIN events e ON e.id = d.id"),
            w: covered,
            order: ("d.time_ns", "d.id"),
        });
    }
    sources.push(tail);
    Ok(sources)
}

/// `SELECT <select> FROM <each source> WHERE ...` joined with UNION ALL, and the parameters.
fn union_of(sources: Vec<Source>, select: &str) -> (String, Vec<Value>) {
    let mut parts = Vec::new();
    let mut params = Vec::new();
    for source in sources {
        parts.push(format!("SELECT {select} FROM {}{}", source.from, source.w.sql()));
        params.extend(source.w.params);
    }
    (parts.join(" UNION ALL "), params)
}

const EVENT_COLUMNS: &str =
    "e.id, e.time_ns, e.received_ns, e.cluster, e.intake_id, e.audit_id, e.stage, e.digest,
    e.verb, e.username, e.groups_json, e.impersonated_user, e.resource, e.subresource, e.namespace, e.name,
    e.api_group, e.source_ip, e.user_agent, e.response_code, e.decision, e.request_uri, e.level";

const ALERT_COLUMNS: &str = "a.id, a.event_id, a.time_ns, a.rule, a.priority, a.output, a.output_fields_json,
    a.tags_json, a.policy, a.cluster, a.namespace, a.username, a.source";

fn sql_error(context: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::backend(context, e)
}

fn corrupt(what: &'static str, reason: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt {
        what,
        reason: reason.to_string(),
    }
}

/// Reads the columns of [`EVENT_COLUMNS`] from a row.
fn event_from_row(row: &Row<'_>) -> Result<StoredEvent> {
    let get = |e: rusqlite::Error| corrupt("events", e);
    let stage: String = row.get(6).map_err(get)?;
    let digest: Vec<u8> = row.get(7).map_err(get)?;
    let groups_json: String = row.get(10).map_err(get)?;
    let level: String = row.get(22).map_err(get)?;
    Ok(StoredEvent {
        id: EventId(row.get(0).map_err(get)?),
        fields: EventFields {
            time_ns: row.get(1).map_err(get)?,
            received_ns: row.get(2).map_err(get)?,
            cluster: row.get(3).map_err(get)?,
            intake_id: row.get::<_, Option<i64>>(4).map_err(get)?.map(IntakeId),
            audit_id: row.get(5).map_err(get)?,
            stage: stage.parse::<Stage>().map_err(|e| corrupt("events.stage", e))?,
            digest: digest
                .try_into()
                .map_err(|_| corrupt("events.digest", "not 32 bytes"))?,
            verb: row.get(8).map_err(get)?,
            username: row.get(9).map_err(get)?,
            groups: serde_json::from_str(&groups_json).map_err(|e| corrupt("events.groups_json", e))?,
            impersonated_user: row.get(11).map_err(get)?,
            resource: row.get(12).map_err(get)?,
            subresource: row.get(13).map_err(get)?,
            namespace: row.get(14).map_err(get)?,
            name: row.get(15).map_err(get)?,
            api_group: row.get(16).map_err(get)?,
            source_ip: row.get(17).map_err(get)?,
            user_agent: row.get(18).map_err(get)?,
            response_code: row.get(19).map_err(get)?,
            decision: row.get(20).map_err(get)?,
            request_uri: row.get(21).map_err(get)?,
            level: level.parse::<Level>().map_err(|e| corrupt("events.level", e))?,
        },
    })
}

/// Reads the columns of [`ALERT_COLUMNS`] from a row.
fn alert_from_row(row: &Row<'_>) -> Result<StoredAlert> {
    let get = |e: rusqlite::Error| corrupt("alerts", e);
    let priority: i64 = row.get(4).map_err(get)?;
    let tags_json: String = row.get(7).map_err(get)?;
    Ok(StoredAlert {
        id: AlertId(row.get(0).map_err(get)?),
        event_id: EventId(row.get(1).map_err(get)?),
        fields: AlertFields {
            time_ns: row.get(2).map_err(get)?,
            rule: row.get(3).map_err(get)?,
            priority: u8::try_from(priority)
                .ok()
                .and_then(Priority::from_number)
                .ok_or_else(|| corrupt("alerts.priority", priority))?,
            output: row.get(5).map_err(get)?,
            output_fields_json: row.get(6).map_err(get)?,
            tags: serde_json::from_str(&tags_json).map_err(|e| corrupt("alerts.tags_json", e))?,
            policy: row.get(8).map_err(get)?,
            cluster: row.get(9).map_err(get)?,
            namespace: row.get(10).map_err(get)?,
            username: row.get(11).map_err(get)?,
            source: row.get(12).map_err(get)?,
        },
    })
}

/// Runs a newest-first page query and computes the next cursor.
fn page_query<T>(
    conn: &Connection,
    sql: &str,
    params: Vec<Value>,
    limit: u32,
    read: impl Fn(&Row<'_>) -> Result<T>,
    position: impl Fn(&T) -> Cursor,
) -> Result<Page<T>> {
    let mut statement = conn
        .prepare_cached(sql)
        .map_err(sql_error("preparing a search"))?;
    let mut rows = statement
        .query(params_from_iter(params))
        .map_err(sql_error("running a search"))?;
    let mut items = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error("reading search results"))? {
        items.push(read(row)?);
    }
    // One row more than asked tells whether there is a next page.
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(position) } else { None };
    Ok(Page { items, next_cursor })
}

pub(crate) fn search_events(
    conn: &Connection,
    filter: &EventFilter,
    page: PageRequest,
) -> Result<Page<StoredEvent>> {
    let limit = page.checked_limit()?;
    // One snapshot for the mark and every source.
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a search"))?;
    let mut items: Vec<StoredEvent> = Vec::new();
    for mut source in event_sources(&snapshot, filter)? {
        source.w.cursor(source.order.0, source.order.1, page.cursor);
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM {}{} ORDER BY {} DESC, {} DESC LIMIT {}",
            source.from,
            source.w.sql(),
            source.order.0,
            source.order.1,
            u64::from(limit) + 1
        );
        // Each source's newest limit + 1 rows: the merged newest limit + 1 are among them.
        let rows = page_query(&snapshot, &sql, source.w.params, limit + 1, event_from_row, |e| {
            Cursor {
                time_ns: e.fields.time_ns,
                id: e.id.0,
            }
        })?;
        items.extend(rows.items);
    }
    items.sort_by_key(|e| std::cmp::Reverse((e.fields.time_ns, e.id.0)));
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more {
        items.last().map(|e| Cursor {
            time_ns: e.fields.time_ns,
            id: e.id.0,
        })
    } else {
        None
    };
    drop(snapshot);
    Ok(Page { items, next_cursor })
}

fn count(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<u64> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error("preparing a count"))?;
    let n: i64 = statement
        .query_row(params_from_iter(params), |r| r.get(0))
        .map_err(sql_error("counting"))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_events(conn: &Connection, filter: &EventFilter) -> Result<u64> {
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a count"))?;
    let mut total = 0;
    for source in event_sources(&snapshot, filter)? {
        total += count(
            &snapshot,
            &format!("SELECT COUNT(*) FROM {}{}", source.from, source.w.sql()),
            source.w.params,
        )?;
    }
    Ok(total)
}

pub(crate) fn get_event(
    conn: &Connection,
    id: EventId,
    compression: &Compression,
) -> Result<Option<FullEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, r.dict_id, r.raw FROM events e JOIN event_raw r ON r.id = e.id WHERE e.id = ?1"
    );
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(sql_error("preparing an event lookup"))?;
    let found = statement
        .query_row([id.0], |row| {
            let dict_id: i64 = row.get(23)?;
            let raw: Vec<u8> = row.get(24)?;
            Ok((event_from_row(row), dict_id, raw))
        })
        .optional()
        .map_err(sql_error("reading an event"))?;
    let Some((event, dict_id, raw)) = found else {
        return Ok(None);
    };
    let event = event?;
    let bytes = compression.decompress(conn, dict_id, &raw)?;
    let raw_json = String::from_utf8(bytes).map_err(|e| corrupt("event_raw.raw", e))?;
    Ok(Some(FullEvent { event, raw_json }))
}

fn grouped(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<GroupCount>> {
    let mut statement = conn
        .prepare_cached(sql)
        .map_err(sql_error("preparing a grouped count"))?;
    let rows = statement
        .query_map(params_from_iter(params), |r| {
            Ok((r.get::<_, Value>(0)?, r.get::<_, i64>(1)?))
        })
        .map_err(sql_error("running a grouped count"))?;
    let mut groups = Vec::new();
    for row in rows {
        let (key, n) = row.map_err(sql_error("reading a grouped count"))?;
        let key = match key {
            Value::Null => None,
            Value::Integer(i) => Some(i.to_string()),
            Value::Real(f) => Some(f.to_string()),
            Value::Text(t) => Some(t),
            Value::Blob(b) => Some(String::from_utf8_lossy(&b).into_owned()),
        };
        groups.push(GroupCount {
            key,
            count: n.max(0) as u64,
        });
    }
    Ok(groups)
}

pub(crate) fn group_events(
    conn: &Connection,
    filter: &EventFilter,
    field: EventGroupField,
    limit: u32,
) -> Result<Vec<GroupCount>> {
    let column = match field {
        EventGroupField::User => "e.username",
        EventGroupField::Verb => "e.verb",
        EventGroupField::Resource => "e.resource",
        EventGroupField::Namespace => "e.namespace",
        EventGroupField::SourceIp => "e.source_ip",
        EventGroupField::ResponseCode => "e.response_code",
        EventGroupField::Cluster => "e.cluster",
        EventGroupField::Decision => "e.decision",
        EventGroupField::UserAgent => "e.user_agent",
    };
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a grouped count"))?;
    let (rows, params) = union_of(event_sources(&snapshot, filter)?, &format!("{column} AS k"));
    let sql = format!(
        "SELECT k, COUNT(*) AS n FROM ({rows}) GROUP BY k ORDER BY n DESC, k ASC NULLS FIRST LIMIT {}",
        limit.min(PageRequest::MAX_LIMIT)
    );
    grouped(&snapshot, &sql, params)
}

fn histogram(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<Vec<HistogramBucket>> {
    let mut statement = conn
        .prepare_cached(sql)
        .map_err(sql_error("preparing a histogram"))?;
    let rows = statement
        .query_map(params_from_iter(params), |r| {
            Ok(HistogramBucket {
                start_ns: r.get(0)?,
                count: r.get::<_, i64>(1)?.max(0) as u64,
            })
        })
        .map_err(sql_error("running a histogram"))?;
    rows.map(|r| r.map_err(sql_error("reading a histogram")))
        .collect()
}

/// The SQL expression of the bucket start for `column` (floor division, also before 1970).
fn bucket_expression(column: &str, bucket_ns: i64) -> String {
    format!(
        "({column} - ({column} % {bucket_ns}) - (CASE WHEN {column} % {bucket_ns} < 0 THEN {bucket_ns} ELSE 0 END))"
    )
}

pub(crate) fn histogram_events(
    conn: &Connection,
    filter: &EventFilter,
    bucket_ns: i64,
) -> Result<Vec<HistogramBucket>> {
    let bucket_ns = HistogramBucket::check_width(bucket_ns)?;
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a histogram"))?;
    let (rows, params) = union_of(event_sources(&snapshot, filter)?, "e.time_ns AS t");
    let sql = format!(
        "SELECT {} AS b, COUNT(*) FROM ({rows}) GROUP BY b ORDER BY b",
        bucket_expression("t", bucket_ns)
    );
    histogram(&snapshot, &sql, params)
}

pub(crate) fn search_alerts(
    conn: &Connection,
    filter: &AlertFilter,
    page: PageRequest,
) -> Result<Page<StoredAlert>> {
    let limit = page.checked_limit()?;
    let mut w = alert_where(filter);
    w.cursor("a.time_ns", "a.id", page.cursor);
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts a{} ORDER BY a.time_ns DESC, a.id DESC LIMIT {}",
        w.sql(),
        u64::from(limit) + 1
    );
    page_query(conn, &sql, w.params, limit, alert_from_row, |a| Cursor {
        time_ns: a.fields.time_ns,
        id: a.id.0,
    })
}

pub(crate) fn count_alerts(conn: &Connection, filter: &AlertFilter) -> Result<u64> {
    let w = alert_where(filter);
    count(
        conn,
        &format!("SELECT COUNT(*) FROM alerts a{}", w.sql()),
        w.params,
    )
}

pub(crate) fn group_alerts(
    conn: &Connection,
    filter: &AlertFilter,
    field: AlertGroupField,
    limit: u32,
) -> Result<Vec<GroupCount>> {
    let w = alert_where(filter);
    let limit = limit.min(PageRequest::MAX_LIMIT);
    if field == AlertGroupField::Priority {
        // Grouped by number, keyed by Falco's name.
        let sql = format!(
            "SELECT a.priority AS k, COUNT(*) AS n FROM alerts a{} GROUP BY k ORDER BY n DESC, k ASC LIMIT {limit}",
            w.sql()
        );
        let mut groups = grouped(conn, &sql, w.params)?;
        for group in &mut groups {
            let name = group
                .key
                .as_deref()
                .and_then(|k| k.parse::<u8>().ok())
                .and_then(Priority::from_number)
                .map(|p| p.falco_name().to_owned());
            group.key = name;
        }
        return Ok(groups);
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
    grouped(conn, &sql, w.params)
}

pub(crate) fn histogram_alerts(
    conn: &Connection,
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
    histogram(conn, &sql, w.params)
}
