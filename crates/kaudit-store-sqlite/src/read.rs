//! Searches, counts, groupings and histograms over events and alerts.
//!
//! Filters become a `WHERE` clause with anonymous `?` parameters, in text order. Newest-first
//! listings order by `(time_ns, id)` descending and continue after a cursor with a row-value
//! comparison. A filter without values that blocks can be skipped for walks the time-led
//! dedupe index; any other reads the blocks its filters admit ([`crate::blocks`]), newest
//! first, each by its id range, and stops once no older block can hold a newer match.

use kaudit_model::{Level, Priority, Stage};
use kaudit_store::{
    AlertFields, AlertFilter, AlertGroupField, AlertId, Cursor, EventFields, EventFilter, EventGroupField,
    EventId, FullEvent, GroupCount, HistogramBucket, IntakeId, Page, PageRequest, Result, StoreError,
    StoredAlert, StoredEvent, TimeRange, UserMatch,
};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params_from_iter};
use std::collections::HashMap;

use crate::blocks::{FORMAT, GroupProbes, Required, all_slots, decode_members, known_format};
use crate::compression::Compression;
use crate::rollups::{self, Dimension, Key, MINUTE_NS};

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

/// `%text%` for LIKE, with `\` escaping LIKE's wildcards.
///
/// LIKE folds ASCII letters only, which is the filter's definition of case-insensitive. It is
/// also the cheapest check per row found: `instr(lower(column), text)` took half as long
/// again (`lower` copies every value), and the row checks of admitted blocks are most of a
/// free-text search's time.
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

fn event_where(filter: &EventFilter) -> Where {
    let mut w = Where::default();
    w.time("e.time_ns", &filter.time);
    w.equals("e.cluster", &filter.cluster);
    match &filter.user {
        Some(UserMatch::Exact(user)) => w.add("e.username = ?", [Value::Text(user.clone())]),
        Some(UserMatch::Prefix(prefix)) if !prefix.is_empty() => {
            // The range (ending at the prefix's successor, when it has one) rejects most rows
            // on a comparison; the substr check makes it exact.
            let starts = [
                Value::Integer(prefix.chars().count() as i64),
                Value::Text(prefix.clone()),
            ];
            match UserMatch::prefix_successor(prefix) {
                Some(end) => w.add(
                    "e.username >= ? AND e.username < ? AND substr(e.username, 1, ?) = ?",
                    [Value::Text(prefix.clone()), Value::Text(end)]
                        .into_iter()
                        .chain(starts),
                ),
                None => w.add(
                    "e.username >= ? AND substr(e.username, 1, ?) = ?",
                    [Value::Text(prefix.clone())].into_iter().chain(starts),
                ),
            }
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

/// How an event query finds its rows.
enum Plan {
    /// Walk the `events` time index: the filter has no value that lets blocks be skipped.
    Time,
    /// The rows above the block mark by rowid, then the blocks whose summaries admit the
    /// filter's values, newest first.
    Blocks { required: Required, mark: i64 },
}

/// The last event id covered by a written block.
fn block_mark(conn: &Connection) -> Result<i64> {
    conn.prepare_cached("SELECT blocked_upto FROM block_state WHERE id = 1")
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(sql_error("reading the block mark"))
}

/// The conditions on `blocks` for the written blocks that may hold events within `time`.
fn blocks_within(mark: i64, time: &TimeRange) -> Where {
    let mut w = Where::default();
    w.add("first_id <= ?", [Value::Integer(mark)]);
    if let Some(from) = time.from_ns {
        w.add("max_time >= ?", [Value::Integer(from)]);
    }
    if let Some(to) = time.to_ns {
        w.add("min_time < ?", [Value::Integer(to)]);
    }
    w
}

/// The plan of a count or histogram: as [`plan`], except that a filter the rollups serve
/// (`rolled`) walks every block instead of the time index, so that whole blocks are summed
/// from their rollups.
fn counting_plan(conn: &Connection, filter: &EventFilter, rolled: Option<&RolledCondition>) -> Result<Plan> {
    match (plan(conn, filter)?, rolled) {
        (Plan::Time, Some(_)) => Ok(Plan::Blocks {
            required: Required::default(),
            mark: block_mark(conn)?,
        }),
        (chosen, _) => Ok(chosen),
    }
}

fn plan(conn: &Connection, filter: &EventFilter) -> Result<Plan> {
    let required = Required::of(filter);
    if required.is_empty() {
        return Ok(Plan::Time);
    }
    let mark = block_mark(conn)?;
    Ok(Plan::Blocks { required, mark })
}

/// An id range that may hold matching events.
#[derive(Clone, Copy, Debug)]
struct Range {
    first: i64,
    last: i64,
    /// The newest event time in this range and every range after it (`i64::MAX` when
    /// unknown): a newest-first search stops once it has enough rows newer than this.
    newest_from_here: i64,
    /// The block's header, when the range is a written block (not the events above the mark).
    block: Option<BlockSpan>,
}

/// What a block's header says about its events.
#[derive(Clone, Copy, Debug)]
struct BlockSpan {
    min_time: i64,
    max_time: i64,
    /// Whether its rollups count exactly its stored events (see [`crate::rollups`]).
    exact: bool,
}

impl Range {
    /// The block's span when the range is a block whose rollups count exactly its events, all
    /// of which lie within `time`.
    fn rolled_up_within(&self, time: &TimeRange) -> Option<BlockSpan> {
        self.block
            .filter(|b| b.exact && time.contains(b.min_time) && time.contains(b.max_time))
    }
}

/// A filter that is a time range and one condition on a field the block rollups count by.
/// The events of a block wholly inside the range are then counted from the block's rollup
/// of that field, with the same test as the condition's SQL, instead of from its rows.
struct RolledCondition {
    dimension: Dimension,
    test: ValueTest,
}

/// A rolled-up value's test, as `event_where` writes it in SQL.
#[derive(Debug, PartialEq, Eq)]
enum ValueTest {
    /// Every value (an empty prefix or substring).
    Any,
    /// `column = text`.
    Text(String),
    /// `substr(username, 1, n) = prefix`.
    Prefix(String),
    /// `column = integer`.
    Integer(i64),
    /// `column LIKE '%text%'`: ASCII letters match either case, other characters exactly.
    Contains(String),
}

impl ValueTest {
    fn matches(&self, key: rollups::KeyRef<'_>) -> bool {
        use rollups::KeyRef;
        match (self, key) {
            (ValueTest::Any, _) => true,
            (ValueTest::Text(want), KeyRef::Text(have)) => have == want,
            (ValueTest::Prefix(prefix), KeyRef::Text(have)) => have.starts_with(prefix.as_str()),
            (ValueTest::Integer(want), KeyRef::Integer(have)) => have == *want,
            (ValueTest::Contains(part), KeyRef::Text(have)) => contains_ascii_caseless(have, part),
            _ => false,
        }
    }
}

/// Whether `part` occurs in `text` with ASCII letters compared in either case (SQLite's
/// `LIKE`). Both are UTF-8, so a match of the bytes is a match of whole characters.
fn contains_ascii_caseless(text: &str, part: &str) -> bool {
    let (text, part) = (text.as_bytes(), part.as_bytes());
    part.is_empty()
        || text
            .windows(part.len())
            .any(|window| window.eq_ignore_ascii_case(part))
}

impl RolledCondition {
    /// The condition when `filter` is its time range and exactly one condition on a field
    /// the rollups count by; `None` otherwise.
    fn of(filter: &EventFilter) -> Option<RolledCondition> {
        let mut rest = filter.clone();
        let mut found = Vec::new();
        let mut text = |field, value: Option<String>| {
            if let Some(value) = value {
                found.push((field, ValueTest::Text(value)));
            }
        };
        text(EventGroupField::Cluster, rest.cluster.take());
        text(EventGroupField::Verb, rest.verb.take());
        text(EventGroupField::Resource, rest.resource.take());
        text(EventGroupField::Namespace, rest.namespace.take());
        text(EventGroupField::SourceIp, rest.source_ip.take());
        text(EventGroupField::Decision, rest.decision.take());
        match rest.user.take() {
            Some(UserMatch::Exact(user)) => found.push((EventGroupField::User, ValueTest::Text(user))),
            Some(UserMatch::Prefix(prefix)) if prefix.is_empty() => {
                found.push((EventGroupField::User, ValueTest::Any))
            }
            Some(UserMatch::Prefix(prefix)) => found.push((EventGroupField::User, ValueTest::Prefix(prefix))),
            None => {}
        }
        if let Some(code) = rest.response_code.take() {
            found.push((EventGroupField::ResponseCode, ValueTest::Integer(i64::from(code))));
        }
        match rest.user_agent_contains.take() {
            Some(part) if part.is_empty() => found.push((EventGroupField::UserAgent, ValueTest::Any)),
            Some(part) => found.push((EventGroupField::UserAgent, ValueTest::Contains(part))),
            None => {}
        }
        let only_time = EventFilter {
            time: filter.time,
            ..EventFilter::default()
        };
        if rest != only_time || found.len() != 1 {
            return None;
        }
        let (field, test) = found.pop()?;
        Some(RolledCondition {
            dimension: Dimension::Field(field),
            test,
        })
    }

    /// The events of block `first_id` that meet the condition, from the block's rollup;
    /// `None` when the block has no rollup of the field.
    fn block_count(&self, conn: &Connection, first_id: i64) -> Result<Option<u64>> {
        let mut statement = conn
            .prepare_cached("SELECT counts FROM block_rollups WHERE dimension = ?1 AND first_id = ?2")
            .map_err(sql_error("preparing a rollup read"))?;
        let mut rows = statement
            .query(rusqlite::params![rollups::number(self.dimension), first_id])
            .map_err(sql_error("reading rollups"))?;
        let Some(row) = rows.next().map_err(sql_error("reading rollups"))? else {
            return Ok(None);
        };
        let ValueRef::Blob(bytes) = row.get_ref(0).map_err(sql_error("reading rollups"))? else {
            return Ok(None);
        };
        let mut total = 0u64;
        rollups::for_each_decoded(bytes, |key, count| {
            if self.test.matches(key) {
                total += count;
            }
        })?;
        Ok(Some(total))
    }
}

/// A group of blocks whose filters are stored bit-sliced, as a search meets it.
struct Group {
    first: i64,
    last: i64,
    format: i64,
    /// The first ids of its blocks in slot order; `None` when the group cannot be read (a
    /// damaged row, or a filter layout this build does not know): its blocks are admitted.
    members: Option<Vec<i64>>,
    /// The slots whose blocks its slices admit, once read.
    mask: Option<u64>,
}

impl Group {
    /// Whether the group admits its block `first_id` (its mask read).
    fn admits(&self, first_id: i64) -> bool {
        let Some(members) = &self.members else {
            return true;
        };
        // A block the group does not list (never expected) is admitted.
        let Some(slot) = members.iter().position(|&m| m == first_id) else {
            return true;
        };
        self.mask.is_none_or(|mask| mask >> slot & 1 == 1)
    }
}

/// The groups holding blocks with first ids in `low..=high`, newest first.
fn groups_between(conn: &Connection, low: i64, high: i64) -> Result<Vec<Group>> {
    let mut statement = conn
        .prepare_cached(
            "SELECT first_id, last_id, format, members FROM bloom_groups
             WHERE first_id <= ?1 AND last_id >= ?2 ORDER BY first_id DESC",
        )
        .map_err(sql_error("preparing a group scan"))?;
    let mut rows = statement
        .query(rusqlite::params![high, low])
        .map_err(sql_error("reading block groups"))?;
    let mut groups = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error("reading block groups"))? {
        let get = |i| row.get::<_, i64>(i).map_err(sql_error("reading block groups"));
        let format = get(2)?;
        let members = match row.get_ref(3).map_err(sql_error("reading block groups"))? {
            ValueRef::Blob(bytes) if known_format(format) => decode_members(bytes),
            _ => None,
        };
        groups.push(Group {
            first: get(0)?,
            last: get(1)?,
            format,
            members,
            mask: None,
        });
    }
    Ok(groups)
}

/// Reads the masks of groups for one search: the slices at its probe positions, for runs of
/// groups newest first, one statement per run. Runs double in length, so that a search that
/// stops early reads little and one that reads every group runs few statements.
struct GroupReader<'c> {
    /// The probe positions for groups of each known filter format.
    probes: Vec<(i64, GroupProbes)>,
    statement: rusqlite::Statement<'c>,
    run: usize,
}

impl<'c> GroupReader<'c> {
    fn new(conn: &'c Connection, required: &Required) -> Result<GroupReader<'c>> {
        let probes: Vec<(i64, GroupProbes)> = (1..=FORMAT)
            .map(|format| (format, required.group_probes(format)))
            .collect();
        let mut numbers: Vec<i64> = probes.iter().flat_map(|(_, p)| p.slice_numbers()).collect();
        numbers.sort_unstable();
        numbers.dedup();
        let list: Vec<String> = numbers.iter().map(i64::to_string).collect();
        // Each group of the run, then each of its slices by key (CROSS JOIN keeps that order).
        let sql = format!(
            "SELECT s.slice, s.group_id, s.words FROM bloom_groups g CROSS JOIN bloom_slices s
             ON s.group_id = g.first_id AND s.slice IN ({})
             WHERE g.first_id BETWEEN ?1 AND ?2",
            list.join(", ")
        );
        // Not cached: the slice numbers differ per search.
        let statement = conn.prepare(&sql).map_err(sql_error("preparing a group read"))?;
        Ok(GroupReader {
            probes,
            statement,
            run: 2,
        })
    }

    /// Reads the masks of a run of groups starting at `groups[at]` (newest first).
    fn read_masks(&mut self, groups: &mut [Group], at: usize) -> Result<()> {
        let end = at.saturating_add(self.run).min(groups.len());
        self.run = self.run.saturating_mul(2);
        let run = &mut groups[at..end];
        for group in run.iter_mut() {
            group.mask = Some(group.members.as_ref().map_or(u64::MAX, |m| all_slots(m.len())));
        }
        let (Some(oldest), Some(newest)) = (run.last(), run.first()) else {
            return Ok(());
        };
        let mut rows = self
            .statement
            .query(rusqlite::params![oldest.first, newest.first])
            .map_err(sql_error("reading group filters"))?;
        while let Some(row) = rows.next().map_err(sql_error("reading group filters"))? {
            let get = |i| row.get::<_, i64>(i).map_err(sql_error("reading group filters"));
            let (slice, group_id) = (get(0)?, get(1)?);
            let Ok(i) = run.binary_search_by(|g| group_id.cmp(&g.first)) else {
                continue;
            };
            let group = &mut run[i];
            let Some(probes) = self.probes.iter().find(|(f, _)| *f == group.format) else {
                continue;
            };
            if let (ValueRef::Blob(words), Some(mask)) = (
                row.get_ref(2).map_err(sql_error("reading group filters"))?,
                group.mask.as_mut(),
            ) {
                probes.1.narrow(slice, words, mask);
            }
        }
        Ok(())
    }
}

/// Whether the block's own filters admit `required`; a block without them is admitted.
fn block_admits(conn: &Connection, required: &Required, format: i64, first_id: i64) -> Result<bool> {
    let columns = match (required.needs_values(), required.needs_grams()) {
        (true, true) => "value_bloom, gram_bloom",
        (true, false) => "value_bloom, NULL",
        (false, _) => "NULL, gram_bloom",
    };
    let mut statement = conn
        .prepare_cached(&format!("SELECT {columns} FROM block_blooms WHERE first_id = ?1"))
        .map_err(sql_error("preparing a block filter read"))?;
    let mut rows = statement
        .query([first_id])
        .map_err(sql_error("reading block filters"))?;
    let Some(row) = rows.next().map_err(sql_error("reading block filters"))? else {
        return Ok(true);
    };
    let blob = |i: usize| -> Result<Option<&[u8]>> {
        match row.get_ref(i).map_err(sql_error("reading block filters"))? {
            ValueRef::Blob(bytes) => Ok(Some(bytes)),
            _ => Ok(None),
        }
    };
    Ok(required.admits(format, blob(0)?, blob(1)?))
}

/// Calls `each` with the ranges that may hold events matching `required` within `time` (and
/// not newer than `before_ns`, a cursor's time): first the events above the block mark, then
/// each block whose filters admit `required`, by descending ids. A block in a complete group
/// is judged by the group's bit-sliced filters, read only at the probe positions; a block not
/// yet in one, by its own filters. `each` returns false to stop.
fn for_each_range(
    conn: &Connection,
    required: &Required,
    mark: i64,
    time: &TimeRange,
    before_ns: Option<i64>,
    mut each: impl FnMut(Range) -> Result<bool>,
) -> Result<()> {
    let above_mark = Range {
        first: mark.saturating_add(1),
        last: i64::MAX,
        newest_from_here: i64::MAX,
        block: None,
    };
    if !each(above_mark)? {
        return Ok(());
    }
    let mut w = blocks_within(mark, time);
    if let Some(before) = before_ns {
        w.add("min_time <= ?", [Value::Integer(before)]);
    }
    // Block headers are small: read them all, then the filters as the walk reaches them.
    let mut headers: Vec<(i64, i64, i64, BlockSpan)> = Vec::new();
    {
        let mut statement = conn
            .prepare_cached(&format!(
                "SELECT first_id, last_id, format, min_time, max_time, exact FROM blocks{}
                 ORDER BY first_id DESC",
                w.sql()
            ))
            .map_err(sql_error("preparing a block scan"))?;
        let rows = statement
            .query_map(params_from_iter(w.params), |r| {
                let span = BlockSpan {
                    min_time: r.get(3)?,
                    max_time: r.get(4)?,
                    exact: r.get::<_, i64>(5)? == 1,
                };
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, span))
            })
            .map_err(sql_error("reading blocks"))?;
        for row in rows {
            headers.push(row.map_err(sql_error("reading blocks"))?);
        }
    }
    let (Some(&(newest, ..)), Some(&(oldest, ..))) = (headers.first(), headers.last()) else {
        return Ok(());
    };
    let mut newest_from_here = vec![i64::MIN; headers.len()];
    let mut running = i64::MIN;
    for (i, header) in headers.iter().enumerate().rev() {
        running = running.max(header.3.max_time);
        newest_from_here[i] = running;
    }
    let mut groups = groups_between(conn, oldest, newest)?;
    let mut reader: Option<GroupReader<'_>> = None;
    let mut next_group = 0;
    for (i, &(first, last, format, span)) in headers.iter().enumerate() {
        while groups.get(next_group).is_some_and(|g| g.first > first) {
            next_group += 1;
        }
        // Nothing required (a count from rollups): every block, no filter read.
        let admitted = required.is_empty()
            || match groups.get(next_group) {
                Some(group) if group.last >= first => {
                    if group.mask.is_none() && group.members.is_some() {
                        let reader = match &mut reader {
                            Some(reader) => reader,
                            None => reader.insert(GroupReader::new(conn, required)?),
                        };
                        reader.read_masks(&mut groups, next_group)?;
                    }
                    groups[next_group].admits(first)
                }
                _ => block_admits(conn, required, format, first)?,
            };
        let range = Range {
            first,
            last,
            newest_from_here: newest_from_here[i],
            block: Some(span),
        };
        if admitted && !each(range)? {
            return Ok(());
        }
    }
    Ok(())
}

/// The filter's conditions restricted to the ids of `range`.
fn range_where(filter: &EventFilter, range: Range) -> Where {
    let mut w = event_where(filter);
    w.add(
        "e.id BETWEEN ? AND ?",
        [Value::Integer(range.first), Value::Integer(range.last)],
    );
    w
}

/// True when `filter` restricts nothing but the time: its counts can come from rollups.
fn only_time(filter: &EventFilter) -> bool {
    *filter
        == EventFilter {
            time: filter.time,
            ..EventFilter::default()
        }
}

/// Every event within `time` counted by `key_sql` (an expression over `events e`): blocks
/// wholly inside the range with exact rollups are summed from their `dimension` rollup, the
/// rest (blocks partly inside, blocks that lost events to retention, events above the block
/// mark) counted from their rows.
fn rolled_up_counts(
    conn: &Connection,
    time: &TimeRange,
    dimension: Dimension,
    key_sql: &str,
) -> Result<HashMap<Key, u64>> {
    let mark = block_mark(conn)?;
    let mut counts: HashMap<Key, u64> = HashMap::new();
    let scan = |first: i64, last: i64, counts: &mut HashMap<Key, u64>| -> Result<()> {
        let mut w = Where::default();
        w.time("e.time_ns", time);
        w.add(
            "e.id BETWEEN ? AND ?",
            [Value::Integer(first), Value::Integer(last)],
        );
        add_range_counts(conn, key_sql, w, counts)
    };
    scan(mark.saturating_add(1), i64::MAX, &mut counts)?;
    let w = blocks_within(mark, time);
    let mut whole = std::collections::HashSet::new();
    let (mut low, mut high) = (i64::MAX, i64::MIN);
    let mut partial = Vec::new();
    {
        let sql = format!(
            "SELECT first_id, last_id, min_time, max_time, exact FROM blocks{}",
            w.sql()
        );
        let mut statement = conn
            .prepare_cached(&sql)
            .map_err(sql_error("preparing a block scan"))?;
        let mut rows = statement
            .query(params_from_iter(w.params))
            .map_err(sql_error("reading blocks"))?;
        while let Some(row) = rows.next().map_err(sql_error("reading blocks"))? {
            let get = |i| row.get::<_, i64>(i).map_err(sql_error("reading blocks"));
            let (first, last, min_time, max_time, exact) = (get(0)?, get(1)?, get(2)?, get(3)?, get(4)?);
            if exact == 1 && time.contains(min_time) && time.contains(max_time) {
                whole.insert(first);
                low = low.min(first);
                high = high.max(first);
            } else {
                partial.push((first, last));
            }
        }
    }
    for (first, last) in partial {
        scan(first, last, &mut counts)?;
    }
    if whole.is_empty() {
        return Ok(counts);
    }
    let mut statement = conn
        .prepare_cached(
            "SELECT first_id, counts FROM block_rollups
             WHERE dimension = ?1 AND first_id BETWEEN ?2 AND ?3",
        )
        .map_err(sql_error("preparing a rollup scan"))?;
    let mut rows = statement
        .query(rusqlite::params![rollups::number(dimension), low, high])
        .map_err(sql_error("reading rollups"))?;
    while let Some(row) = rows.next().map_err(sql_error("reading rollups"))? {
        let first: i64 = row.get(0).map_err(sql_error("reading rollups"))?;
        if whole.contains(&first)
            && let ValueRef::Blob(bytes) = row.get_ref(1).map_err(sql_error("reading rollups"))?
        {
            rollups::add_decoded(bytes, &mut counts)?;
        }
    }
    Ok(counts)
}

/// Adds the rows of `events e` matching `w` (without an index: `w` bounds the ids), counted
/// by `key_sql`, to `counts`.
fn add_range_counts(
    conn: &Connection,
    key_sql: &str,
    w: Where,
    counts: &mut HashMap<Key, u64>,
) -> Result<()> {
    let sql = format!(
        "SELECT {key_sql} AS k, COUNT(*) FROM events e NOT INDEXED{} GROUP BY k",
        w.sql()
    );
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(sql_error("preparing a grouped count"))?;
    let mut rows = statement
        .query(params_from_iter(w.params))
        .map_err(sql_error("running a grouped count"))?;
    while let Some(row) = rows.next().map_err(sql_error("reading a grouped count"))? {
        let key = Key::of(row.get(0).map_err(sql_error("reading a grouped count"))?);
        let n: i64 = row.get(1).map_err(sql_error("reading a grouped count"))?;
        *counts.entry(key).or_default() += n.max(0) as u64;
    }
    Ok(())
}

/// Groups from counts: largest first, ties by key, at most `limit`.
fn top_groups(counts: HashMap<Key, u64>, limit: u32) -> Vec<GroupCount> {
    let mut groups: Vec<(Key, u64)> = counts.into_iter().collect();
    groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    groups.truncate(limit as usize);
    groups
        .into_iter()
        .map(|(key, count)| GroupCount {
            key: key.into_text(),
            count,
        })
        .collect()
}

pub(crate) const EVENT_COLUMNS: &str =
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
pub(crate) fn event_from_row(row: &Row<'_>) -> Result<StoredEvent> {
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
    // One snapshot for the mark, the blocks and the rows.
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a search"))?;
    let position = |e: &StoredEvent| Cursor {
        time_ns: e.fields.time_ns,
        id: e.id.0,
    };
    let newest_first = |from: &str, w: &Where| {
        format!(
            "SELECT {EVENT_COLUMNS} FROM {from}{} ORDER BY e.time_ns DESC, e.id DESC LIMIT {}",
            w.sql(),
            u64::from(limit) + 1
        )
    };
    let (required, mark) = match plan(&snapshot, filter)? {
        Plan::Time => {
            let mut w = event_where(filter);
            w.cursor("e.time_ns", "e.id", page.cursor);
            let sql = newest_first("events e", &w);
            return page_query(&snapshot, &sql, w.params, limit, event_from_row, position);
        }
        Plan::Blocks { required, mark } => (required, mark),
    };
    // Each range's newest limit + 1 rows, until no range left can beat the limit + 1 newest.
    let keep = limit as usize + 1;
    let mut items: Vec<StoredEvent> = Vec::new();
    let newest_kept = |items: &mut Vec<StoredEvent>| {
        items.sort_by_key(|e| std::cmp::Reverse((e.fields.time_ns, e.id.0)));
        items.truncate(keep);
    };
    let before_ns = page.cursor.map(|c| c.time_ns);
    for_each_range(&snapshot, &required, mark, &filter.time, before_ns, |range| {
        if items.len() >= keep {
            newest_kept(&mut items);
            // Later ranges hold smaller ids: a row there at the same time sorts after.
            if items
                .last()
                .is_some_and(|e| range.newest_from_here <= e.fields.time_ns)
            {
                return Ok(false);
            }
        }
        let mut w = range_where(filter, range);
        w.cursor("e.time_ns", "e.id", page.cursor);
        let sql = newest_first("events e NOT INDEXED", &w);
        let rows = page_query(&snapshot, &sql, w.params, limit + 1, event_from_row, position)?;
        items.extend(rows.items);
        Ok(true)
    })?;
    newest_kept(&mut items);
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next_cursor = if more { items.last().map(position) } else { None };
    drop(snapshot);
    Ok(Page { items, next_cursor })
}

/// `SELECT COUNT(*)` over at most `limit` rows of `FROM <from> <w>`.
fn count_upto(conn: &Connection, from: &str, w: Where, limit: u64) -> Result<u64> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let sql = format!(
        "SELECT COUNT(*) FROM (SELECT 1 FROM {from}{} LIMIT {limit})",
        w.sql()
    );
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(sql_error("preparing a count"))?;
    let n: i64 = statement
        .query_row(params_from_iter(w.params), |r| r.get(0))
        .map_err(sql_error("counting"))?;
    Ok(n.max(0) as u64)
}

fn count(conn: &Connection, sql: &str, params: Vec<Value>) -> Result<u64> {
    let mut statement = conn.prepare_cached(sql).map_err(sql_error("preparing a count"))?;
    let n: i64 = statement
        .query_row(params_from_iter(params), |r| r.get(0))
        .map_err(sql_error("counting"))?;
    Ok(n.max(0) as u64)
}

pub(crate) fn count_events(conn: &Connection, filter: &EventFilter) -> Result<u64> {
    count_events_upto(conn, filter, u64::MAX)
}

pub(crate) fn count_events_upto(conn: &Connection, filter: &EventFilter, limit: u64) -> Result<u64> {
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a count"))?;
    let rolled = RolledCondition::of(filter);
    let (required, mark) = match counting_plan(&snapshot, filter, rolled.as_ref())? {
        Plan::Time => return count_upto(&snapshot, "events e", event_where(filter), limit),
        Plan::Blocks { required, mark } => (required, mark),
    };
    let mut total = 0u64;
    for_each_range(&snapshot, &required, mark, &filter.time, None, |range| {
        let rolled_up = match &rolled {
            Some(condition) if range.rolled_up_within(&filter.time).is_some() => {
                condition.block_count(&snapshot, range.first)?
            }
            _ => None,
        };
        total += match rolled_up {
            Some(n) => n,
            None => count_upto(
                &snapshot,
                "events e NOT INDEXED",
                range_where(filter, range),
                limit - total,
            )?,
        };
        Ok(total < limit)
    })?;
    Ok(total.min(limit))
}

pub(crate) fn get_event(
    conn: &Connection,
    id: EventId,
    compression: &Compression,
) -> Result<Option<FullEvent>> {
    let sql = format!("SELECT {EVENT_COLUMNS} FROM events e WHERE e.id = ?1");
    let mut statement = conn
        .prepare_cached(&sql)
        .map_err(sql_error("preparing an event lookup"))?;
    let found = statement
        .query_row([id.0], |row| Ok(event_from_row(row)))
        .optional()
        .map_err(sql_error("reading an event"))?;
    let Some(event) = found else {
        return Ok(None);
    };
    let event = event?;
    let raw_json = match raw_from_chunk(conn, id.0, compression)? {
        Some(raw) => raw,
        None => raw_from_row(conn, id.0, compression)?,
    };
    Ok(Some(FullEvent { event, raw_json }))
}

/// The raw JSON of event `id` from the run of raw events holding it, if one does.
fn raw_from_chunk(conn: &Connection, id: i64, compression: &Compression) -> Result<Option<String>> {
    type Run = (i64, i64, i64, Vec<u8>, Vec<u8>);
    let found: Option<Run> = conn
        .prepare_cached(
            "SELECT first_id, last_id, dict_id, ends, frame FROM raw_chunks
             WHERE first_id <= ?1 ORDER BY first_id DESC LIMIT 1",
        )
        .and_then(|mut st| {
            st.query_row([id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()
        })
        .map_err(sql_error("reading raw events"))?;
    let Some((first, last, dict_id, ends, frame)) = found.filter(|(_, last, ..)| id <= *last) else {
        return Ok(None);
    };
    let bad = |reason: String| StoreError::Corrupt {
        what: "raw_chunks.ends",
        reason,
    };
    let end_at = |k: i64| -> Result<Option<usize>> {
        if k < 0 {
            return Ok(Some(0));
        }
        let at = usize::try_from(k).map_err(|_| bad(format!("run {first}..={last}")))? * 4;
        Ok(ends.get(at..at + 4).map(|b| {
            let mut word = [0u8; 4];
            word.copy_from_slice(b);
            u32::from_le_bytes(word) as usize
        }))
    };
    let position = id - first;
    let (Some(start), Some(end)) = (end_at(position - 1)?, end_at(position)?) else {
        return Err(bad(format!(
            "run {first}..={last} has {} offsets, event {id} needs {}",
            ends.len() / 4,
            position + 1
        )));
    };
    let bytes = compression.decompress(conn, dict_id, &frame, "raw_chunks.frame")?;
    let piece = bytes
        .get(start..end)
        .ok_or_else(|| bad(format!("event {id} at {start}..{end} of {} bytes", bytes.len())))?;
    let raw = std::str::from_utf8(piece).map_err(|e| corrupt("raw_chunks.frame", e))?;
    Ok(Some(raw.to_owned()))
}

/// The raw JSON of event `id` from its own row (events stored before schema version 4).
fn raw_from_row(conn: &Connection, id: i64, compression: &Compression) -> Result<String> {
    let (dict_id, raw): (i64, Vec<u8>) = conn
        .prepare_cached("SELECT dict_id, raw FROM event_raw WHERE id = ?1")
        .and_then(|mut st| st.query_row([id], |r| Ok((r.get(0)?, r.get(1)?))).optional())
        .map_err(sql_error("reading a raw event"))?
        .ok_or_else(|| corrupt("event_raw", format!("event {id} has no raw event")))?;
    let bytes = compression.decompress(conn, dict_id, &raw, "event_raw.raw")?;
    String::from_utf8(bytes).map_err(|e| corrupt("event_raw.raw", e))
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
    let column = rollups::column(field);
    let limit = limit.min(PageRequest::MAX_LIMIT);
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a grouped count"))?;
    if only_time(filter) {
        let counts = rolled_up_counts(&snapshot, &filter.time, Dimension::Field(field), column)?;
        return Ok(top_groups(counts, limit));
    }
    let (required, mark) = match plan(&snapshot, filter)? {
        Plan::Time => {
            let w = event_where(filter);
            let sql = format!(
                "SELECT {column} AS k, COUNT(*) AS n FROM events e{} GROUP BY k
                 ORDER BY n DESC, k ASC NULLS FIRST LIMIT {limit}",
                w.sql()
            );
            return grouped(&snapshot, &sql, w.params);
        }
        Plan::Blocks { required, mark } => (required, mark),
    };
    let mut counts: HashMap<Key, u64> = HashMap::new();
    for_each_range(&snapshot, &required, mark, &filter.time, None, |range| {
        add_range_counts(&snapshot, column, range_where(filter, range), &mut counts)?;
        Ok(true)
    })?;
    Ok(top_groups(counts, limit))
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
    let bucket = bucket_expression("e.time_ns", bucket_ns);
    let snapshot = conn
        .unchecked_transaction()
        .map_err(sql_error("starting a histogram"))?;
    if only_time(filter) && bucket_ns % MINUTE_NS == 0 {
        // Every minute lies wholly in one bucket.
        let minute = format!(
            "(e.time_ns - (e.time_ns % {MINUTE_NS}) - (CASE WHEN e.time_ns % {MINUTE_NS} < 0 THEN {MINUTE_NS} ELSE 0 END))"
        );
        let counts = rolled_up_counts(&snapshot, &filter.time, Dimension::Minute, &minute)?;
        let mut buckets: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
        for (key, count) in counts {
            if let Key::Integer(start) = key {
                *buckets
                    .entry(HistogramBucket::start_of(start, bucket_ns))
                    .or_default() += count;
            }
        }
        return Ok(buckets
            .into_iter()
            .map(|(start_ns, count)| HistogramBucket { start_ns, count })
            .collect());
    }
    let rolled = RolledCondition::of(filter);
    let (required, mark) = match counting_plan(&snapshot, filter, rolled.as_ref())? {
        Plan::Time => {
            let w = event_where(filter);
            let sql = format!(
                "SELECT {bucket} AS b, COUNT(*) FROM events e{} GROUP BY b ORDER BY b",
                w.sql()
            );
            return histogram(&snapshot, &sql, w.params);
        }
        Plan::Blocks { required, mark } => (required, mark),
    };
    let mut counts: std::collections::BTreeMap<i64, u64> = std::collections::BTreeMap::new();
    for_each_range(&snapshot, &required, mark, &filter.time, None, |range| {
        // A block wholly inside the range and inside one bucket is counted from its rollup.
        if let Some(condition) = &rolled
            && let Some(span) = range.rolled_up_within(&filter.time)
            && HistogramBucket::start_of(span.min_time, bucket_ns)
                == HistogramBucket::start_of(span.max_time, bucket_ns)
            && let Some(n) = condition.block_count(&snapshot, range.first)?
        {
            if n > 0 {
                *counts
                    .entry(HistogramBucket::start_of(span.min_time, bucket_ns))
                    .or_default() += n;
            }
            return Ok(true);
        }
        let w = range_where(filter, range);
        let sql = format!(
            "SELECT {bucket} AS b, COUNT(*) FROM events e NOT INDEXED{} GROUP BY b",
            w.sql()
        );
        for bucket in histogram(&snapshot, &sql, w.params)? {
            *counts.entry(bucket.start_ns).or_default() += bucket.count;
        }
        Ok(true)
    })?;
    Ok(counts
        .into_iter()
        .map(|(start_ns, count)| HistogramBucket { start_ns, count })
        .collect())
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

pub(crate) fn count_alerts_upto(conn: &Connection, filter: &AlertFilter, limit: u64) -> Result<u64> {
    count_upto(conn, "alerts a", alert_where(filter), limit)
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
