//! Searches, counts, groupings and histograms over events and alerts.
//!
//! Filters become a `WHERE` clause with numbered parameters. Newest-first listings order by
//! `(time_ns, id)` descending and continue after a cursor with a row comparison, answered from
//! the `(field, time_ns, id)` and `(time_ns, id)` indexes without a sort.

use kaudit_model::{Level, Priority, Stage};
use kaudit_store::{
    AlertFields, AlertFilter, AlertGroupField, AlertId, Cursor, EventFields, EventFilter, EventGroupField,
    EventId, FullEvent, GroupCount, HistogramBucket, IntakeId, Page, PageRequest, Result, StoreError,
    StoredAlert, StoredEvent, TimeRange, UserMatch,
};
use postgres::types::ToSql;
use postgres::{Client, Row};

type Param = Box<dyn ToSql + Sync>;

/// A `WHERE` clause under construction.
#[derive(Default)]
struct Where {
    conditions: Vec<String>,
    params: Vec<Param>,
}

impl Where {
    /// Adds a parameter and returns its `$n` marker for the SQL text.
    fn param(&mut self, value: impl ToSql + Sync + 'static) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    fn equals(&mut self, column: &str, value: &Option<String>) {
        if let Some(value) = value {
            let p = self.param(value.clone());
            self.conditions.push(format!("{column} = {p}"));
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

    fn sql(&self) -> String {
        if self.conditions.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.conditions.join(" AND "))
        }
    }

    fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params.iter().map(|p| p.as_ref()).collect()
    }
}

/// `%text%` for LIKE/ILIKE, with `\` escaping the wildcards.
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

/// `text` lowercased in ASCII only, so that matching is ASCII case-insensitive as in the
/// SQLite backend (`lower()` in SQL is applied to the column the same way below).
fn ascii_lower(text: &str) -> String {
    text.to_ascii_lowercase()
}

fn event_where(filter: &EventFilter) -> Where {
    let mut w = Where::default();
    w.time("e.time_ns", &filter.time);
    w.equals("e.cluster", &filter.cluster);
    match &filter.user {
        Some(UserMatch::Exact(user)) => w.equals("e.username", &Some(user.clone())),
        Some(UserMatch::Prefix(prefix)) if !prefix.is_empty() => {
            let low = w.param(prefix.clone());
            let high = w.param(format!("{prefix}\u{10FFFF}"));
            let exact = w.param(prefix.clone());
            w.conditions.push(format!(
                "e.username >= {low} AND e.username < {high} AND starts_with(e.username, {exact})"
            ));
        }
        Some(UserMatch::Prefix(_)) | None => {}
    }
    if let Some(group) = &filter.group {
        let p = w.param(group.clone());
        w.conditions
            .push(format!("e.groups @> jsonb_build_array({p}::text)"));
    }
    w.equals("e.verb", &filter.verb);
    w.equals("e.resource", &filter.resource);
    w.equals("e.subresource", &filter.subresource);
    w.equals("e.namespace", &filter.namespace);
    w.equals("e.name", &filter.name);
    w.equals("e.source_ip", &filter.source_ip);
    if let Some(agent) = filter.user_agent_contains.as_deref().filter(|a| !a.is_empty()) {
        let p = w.param(like_contains(&ascii_lower(agent)));
        w.conditions
            .push(format!("lower(e.user_agent) LIKE {p} ESCAPE '\\'"));
    }
    if let Some(code) = filter.response_code {
        let p = w.param(code);
        w.conditions.push(format!("e.response_code = {p}"));
    }
    w.equals("e.decision", &filter.decision);
    if let Some(text) = filter.text.as_deref().filter(|t| !t.is_empty()) {
        // The first condition is the trigram index's expression (when the index exists); the
        // second makes the match exact (a match across the joining space is not one).
        let p = w.param(like_contains(text));
        w.conditions.push(format!(
            "(e.request_uri || ' ' || coalesce(e.name, '')) ILIKE {p} ESCAPE '\\' \
             AND (lower(e.request_uri) LIKE lower({p}) ESCAPE '\\' OR lower(e.name) LIKE lower({p}) ESCAPE '\\')"
        ));
    }
    w
}

fn alert_where(filter: &AlertFilter) -> Where {
    let mut w = Where::default();
    w.time("a.time_ns", &filter.time);
    if let Some(min) = filter.min_priority {
        let p = w.param(i16::from(min.number()));
        w.conditions.push(format!("a.priority <= {p}"));
    }
    w.equals("a.rule", &filter.rule);
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

fn sql_error(context: &'static str) -> impl Fn(postgres::Error) -> StoreError {
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

fn page_query<T>(
    client: &mut Client,
    sql: &str,
    w: &Where,
    limit: u32,
    read: impl Fn(&Row) -> Result<T>,
    position: impl Fn(&T) -> Cursor,
) -> Result<Page<T>> {
    let rows = client
        .query(sql, &w.refs())
        .map_err(sql_error("running a search"))?;
    let mut items = rows.iter().map(read).collect::<Result<Vec<T>>>()?;
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
    let mut w = event_where(filter);
    w.cursor("e.time_ns", "e.id", page.cursor);
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events e{} ORDER BY e.time_ns DESC, e.id DESC LIMIT {}",
        w.sql(),
        u64::from(limit) + 1
    );
    page_query(client, &sql, &w, limit, event_from_row, |e| Cursor {
        time_ns: e.fields.time_ns,
        id: e.id.0,
    })
}

fn count(client: &mut Client, sql: &str, w: &Where) -> Result<u64> {
    let row = client.query_one(sql, &w.refs()).map_err(sql_error("counting"))?;
    let n: i64 = row.try_get(0).map_err(sql_error("counting"))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_events(client: &mut Client, filter: &EventFilter) -> Result<u64> {
    let w = event_where(filter);
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
    let w = event_where(filter);
    count_upto(client, &format!("FROM events e{}", w.sql()), &w, limit)
}

pub(crate) fn get_event(client: &mut Client, id: EventId) -> Result<Option<FullEvent>> {
    let sql = format!(
        "SELECT {EVENT_COLUMNS}, r.raw FROM events e JOIN event_raw r ON r.id = e.id WHERE e.id = $1"
    );
    let Some(row) = client
        .query_opt(&sql, &[&id.0])
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
        .query(sql, &w.refs())
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
    let w = event_where(filter);
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
        .query(sql, &w.refs())
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
    let w = event_where(filter);
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
    let mut w = alert_where(filter);
    w.cursor("a.time_ns", "a.id", page.cursor);
    let sql = format!(
        "SELECT {ALERT_COLUMNS} FROM alerts a{} ORDER BY a.time_ns DESC, a.id DESC LIMIT {}",
        w.sql(),
        u64::from(limit) + 1
    );
    page_query(client, &sql, &w, limit, alert_from_row, |a| Cursor {
        time_ns: a.fields.time_ns,
        id: a.id.0,
    })
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
