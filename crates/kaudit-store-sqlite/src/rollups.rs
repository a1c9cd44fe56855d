//! Per-block counts (rollups): for each block, its events counted by each group-by field and
//! by minute, so that "top users over the last day" and the activity histogram sum a few
//! thousand small rows instead of reading millions of events. A count or histogram filtered
//! by one value of a group-by field (user, verb, namespace, ...) sums that value's entries
//! the same way, for the blocks wholly inside its range (and its bucket).
//!
//! A block's rollups are tallied as the writer adds its events, and written with the block
//! only if the block's stored rows are exactly the events added (their count, read in the
//! transaction that writes the block, equals the number added: ids are never reused, so the
//! stored ones are a subset of the added ones). Otherwise (an event rolled back since it was
//! added, or already deleted by retention) they are counted from the stored rows instead. So
//! they are exact either way.
//! Retention deleting some of a block's events clears the block's `exact` flag; such blocks
//! (and blocks only partly inside a query's time range, and the events above the block mark)
//! are counted from their rows instead.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use kaudit_store::{EventFields, EventGroupField, Result, StoreError};
use rusqlite::types::{Value, ValueRef};
use rusqlite::{Connection, params};

/// A grouped value, ordered as SQLite orders values (NULL, then numbers, then text).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    Null,
    Integer(i64),
    Text(String),
}

impl Key {
    pub(crate) fn of(value: Value) -> Key {
        match value {
            Value::Null => Key::Null,
            Value::Integer(i) => Key::Integer(i),
            Value::Real(f) => Key::Text(f.to_string()),
            Value::Text(t) => Key::Text(t),
            Value::Blob(b) => Key::Text(String::from_utf8_lossy(&b).into_owned()),
        }
    }

    pub(crate) fn into_text(self) -> Option<String> {
        match self {
            Key::Null => None,
            Key::Integer(i) => Some(i.to_string()),
            Key::Text(t) => Some(t),
        }
    }
}

/// The width of the time rollup: histograms whose bucket width is a multiple of it are summed
/// from rollups.
pub(crate) const MINUTE_NS: i64 = 60_000_000_000;

/// What a rollup counts by: a group-by field's column, or the minute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dimension {
    Field(EventGroupField),
    Minute,
}

/// Every dimension, with its number in `block_rollups.dimension` (part of the file format).
const DIMENSIONS: [(Dimension, i64); 10] = [
    (Dimension::Field(EventGroupField::User), 1),
    (Dimension::Field(EventGroupField::Verb), 2),
    (Dimension::Field(EventGroupField::Resource), 3),
    (Dimension::Field(EventGroupField::Namespace), 4),
    (Dimension::Field(EventGroupField::SourceIp), 5),
    (Dimension::Field(EventGroupField::ResponseCode), 6),
    (Dimension::Field(EventGroupField::Cluster), 7),
    (Dimension::Field(EventGroupField::Decision), 8),
    (Dimension::Field(EventGroupField::UserAgent), 9),
    (Dimension::Minute, 10),
];

/// The column (of `events e`) holding a group-by field.
pub(crate) fn column(field: EventGroupField) -> &'static str {
    match field {
        EventGroupField::User => "e.username",
        EventGroupField::Verb => "e.verb",
        EventGroupField::Resource => "e.resource",
        EventGroupField::Namespace => "e.namespace",
        EventGroupField::SourceIp => "e.source_ip",
        EventGroupField::ResponseCode => "e.response_code",
        EventGroupField::Cluster => "e.cluster",
        EventGroupField::Decision => "e.decision",
        EventGroupField::UserAgent => "e.user_agent",
    }
}

/// The stored number of a dimension.
pub(crate) fn number(dimension: Dimension) -> i64 {
    DIMENSIONS
        .iter()
        .find(|(d, _)| *d == dimension)
        .map_or(0, |(_, n)| *n)
}

/// A block's counts along every dimension, tallied as its events are added.
#[derive(Default)]
pub(crate) struct Tallies {
    counts: [Tally; DIMENSIONS.len()],
}

impl Tallies {
    /// Counts one event.
    pub(crate) fn add(&mut self, f: &EventFields) {
        fn text(t: Option<&str>) -> ValueRef<'_> {
            t.map_or(ValueRef::Null, |t| ValueRef::Text(t.as_bytes()))
        }
        for (tally, (dimension, _)) in self.counts.iter_mut().zip(DIMENSIONS) {
            let value = match dimension {
                Dimension::Minute => ValueRef::Integer(f.time_ns.div_euclid(MINUTE_NS) * MINUTE_NS),
                Dimension::Field(field) => match field {
                    EventGroupField::User => ValueRef::Text(f.username.as_bytes()),
                    EventGroupField::Verb => ValueRef::Text(f.verb.as_bytes()),
                    EventGroupField::Resource => text(f.resource.as_deref()),
                    EventGroupField::Namespace => text(f.namespace.as_deref()),
                    EventGroupField::SourceIp => text(f.source_ip.as_deref()),
                    EventGroupField::ResponseCode => f
                        .response_code
                        .map_or(ValueRef::Null, |c| ValueRef::Integer(i64::from(c))),
                    EventGroupField::Cluster => ValueRef::Text(f.cluster.as_bytes()),
                    EventGroupField::Decision => text(f.decision.as_deref()),
                    EventGroupField::UserAgent => text(f.user_agent.as_deref()),
                },
            };
            tally.add(value);
        }
    }
}

/// Writes the rollup rows of block `first..=last` (inside the caller's transaction) from
/// `tallied`, the counts of the `added` events the writer put in the block, when the stored
/// rows are exactly those events; otherwise from the stored rows. Returns the events counted.
pub(crate) fn write_tallied(
    conn: &Connection,
    first: i64,
    last: i64,
    tallied: &Tallies,
    added: u32,
) -> Result<i64> {
    let fail = |e| StoreError::backend("writing block rollups", e);
    let stored: i64 = conn
        .prepare_cached("SELECT COUNT(*) FROM events WHERE id BETWEEN ?1 AND ?2")
        .and_then(|mut st| st.query_row(params![first, last], |r| r.get(0)))
        .map_err(fail)?;
    if stored != i64::from(added) {
        return write(conn, first, last);
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO block_rollups (first_id, dimension, counts) VALUES (?1, ?2, ?3)",
        )
        .map_err(fail)?;
    for (tally, (_, n)) in tallied.counts.iter().zip(DIMENSIONS) {
        insert
            .execute(params![first, n, encode_tally(tally)])
            .map_err(fail)?;
    }
    Ok(stored)
}

/// Counts the stored events with ids in `first..=last` along every dimension and writes the
/// rollup rows of block `first` (inside the caller's transaction). Returns the events counted.
pub(crate) fn write(conn: &Connection, first: i64, last: i64) -> Result<i64> {
    let fail = |e| StoreError::backend("writing block rollups", e);
    let fields: Vec<&str> = DIMENSIONS
        .iter()
        .filter_map(|(d, _)| match d {
            Dimension::Field(f) => Some(column(*f)),
            Dimension::Minute => None,
        })
        .collect();
    let sql = format!(
        "SELECT e.time_ns, {} FROM events e WHERE e.id BETWEEN ?1 AND ?2",
        fields.join(", ")
    );
    let mut counts: Vec<Tally> = (0..DIMENSIONS.len()).map(|_| Tally::default()).collect();
    let mut rows_counted = 0;
    {
        let mut statement = conn.prepare_cached(&sql).map_err(fail)?;
        let mut rows = statement.query(params![first, last]).map_err(fail)?;
        while let Some(row) = rows.next().map_err(fail)? {
            rows_counted += 1;
            let mut i = 0;
            for (tally, (dimension, _)) in counts.iter_mut().zip(DIMENSIONS) {
                match dimension {
                    Dimension::Minute => {
                        let t: i64 = row.get(0).map_err(fail)?;
                        tally.add(ValueRef::Integer(t.div_euclid(MINUTE_NS) * MINUTE_NS));
                    }
                    Dimension::Field(_) => {
                        i += 1;
                        tally.add(row.get_ref(i).map_err(fail)?);
                    }
                }
            }
        }
    }
    let mut insert = conn
        .prepare_cached(
            "INSERT OR REPLACE INTO block_rollups (first_id, dimension, counts) VALUES (?1, ?2, ?3)",
        )
        .map_err(fail)?;
    for (tally, (_, n)) in counts.into_iter().zip(DIMENSIONS) {
        insert
            .execute(params![first, n, encode(tally.into_keys())])
            .map_err(fail)?;
    }
    Ok(rows_counted)
}

/// Counts of the values of one dimension, keyed by the stored bytes, so that a value already
/// seen costs one lookup and no allocation. A block holds at most [`crate::blocks::BLOCK_ROWS`]
/// events, which bounds what colliding values could cost the fast hash.
#[derive(Default)]
struct Tally {
    nulls: u64,
    integers: HashMap<i64, u64, BuildHasherDefault<FastHasher>>,
    texts: HashMap<Vec<u8>, u64, BuildHasherDefault<FastHasher>>,
}

impl Tally {
    fn add(&mut self, value: ValueRef<'_>) {
        match value {
            ValueRef::Null => self.nulls += 1,
            ValueRef::Integer(i) => *self.integers.entry(i).or_default() += 1,
            ValueRef::Real(f) => *self.texts.entry(f.to_string().into_bytes()).or_default() += 1,
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => match self.texts.get_mut(bytes) {
                Some(n) => *n += 1,
                None => {
                    self.texts.insert(bytes.to_vec(), 1);
                }
            },
        }
    }

    fn into_keys(self) -> HashMap<Key, u64> {
        let mut keys: HashMap<Key, u64> = HashMap::with_capacity(self.integers.len() + self.texts.len() + 1);
        if self.nulls > 0 {
            keys.insert(Key::Null, self.nulls);
        }
        keys.extend(self.integers.into_iter().map(|(i, n)| (Key::Integer(i), n)));
        keys.extend(self.texts.into_iter().map(|(t, n)| {
            let text =
                String::from_utf8(t).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            (Key::Text(text), n)
        }));
        keys
    }
}

/// A multiply-rotate hash (as in rustc's `FxHasher`) for the tallies: the default SipHash was
/// a tenth of the rollup's cost, and tallies need no protection beyond their size bound.
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.mix(value);
    }

    fn write_i64(&mut self, value: i64) {
        self.mix(value as u64);
    }

    fn write_usize(&mut self, value: usize) {
        self.mix(value as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// [`encode`] of a tally as it stands (texts are stored as the UTF-8 they were added as).
fn encode_tally(tally: &Tally) -> Vec<u8> {
    let size = usize::from(tally.nulls > 0) * 9
        + tally.integers.len() * 17
        + tally.texts.keys().map(|t| 13 + t.len()).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    if tally.nulls > 0 {
        out.push(0);
        out.extend_from_slice(&tally.nulls.to_le_bytes());
    }
    for (i, count) in &tally.integers {
        out.push(1);
        out.extend_from_slice(&i.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
    }
    for (text, count) in &tally.texts {
        out.push(2);
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
        out.extend_from_slice(text);
        out.extend_from_slice(&count.to_le_bytes());
    }
    out
}

/// Encoding of one rollup: entries of a tag byte (0 NULL, 1 integer, 2 text), the value
/// (i64 little-endian, or u32 length and UTF-8 bytes) and a u64 count.
fn encode(counts: HashMap<Key, u64>) -> Vec<u8> {
    let size = counts
        .keys()
        .map(|key| match key {
            Key::Null => 9,
            Key::Integer(_) => 17,
            Key::Text(t) => 13 + t.len(),
        })
        .sum();
    let mut out = Vec::with_capacity(size);
    for (key, count) in counts {
        match key {
            Key::Null => out.push(0),
            Key::Integer(i) => {
                out.push(1);
                out.extend_from_slice(&i.to_le_bytes());
            }
            Key::Text(t) => {
                out.push(2);
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
            }
        }
        out.extend_from_slice(&count.to_le_bytes());
    }
    out
}

/// Adds the counts of one encoded rollup to `into`.
pub(crate) fn add_decoded(bytes: &[u8], into: &mut HashMap<Key, u64>) -> Result<()> {
    for_each_decoded(bytes, |key, count| {
        let key = match key {
            KeyRef::Null => Key::Null,
            KeyRef::Integer(i) => Key::Integer(i),
            KeyRef::Text(text) => Key::Text(text.to_owned()),
        };
        *into.entry(key).or_default() += count;
    })
}

/// A grouped value as an encoded rollup holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyRef<'b> {
    Null,
    Integer(i64),
    Text(&'b str),
}

/// Calls `each` with every value of one encoded rollup and its count.
pub(crate) fn for_each_decoded(bytes: &[u8], mut each: impl FnMut(KeyRef<'_>, u64)) -> Result<()> {
    let corrupt = || StoreError::Corrupt {
        what: "block_rollups.counts",
        reason: "truncated or unknown entry".to_owned(),
    };
    fn take<'b>(bytes: &'b [u8], at: &mut usize, n: usize) -> Option<&'b [u8]> {
        let piece = bytes.get(*at..at.checked_add(n)?)?;
        *at += n;
        Some(piece)
    }
    let word = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        w
    };
    let mut at = 0usize;
    while at < bytes.len() {
        let mut next = |n: usize| take(bytes, &mut at, n).ok_or_else(corrupt);
        let key = match next(1)?[0] {
            0 => KeyRef::Null,
            1 => KeyRef::Integer(i64::from_le_bytes(word(next(8)?))),
            2 => {
                let mut len = [0u8; 4];
                len.copy_from_slice(next(4)?);
                let text = next(u32::from_le_bytes(len) as usize)?;
                KeyRef::Text(std::str::from_utf8(text).map_err(|_| corrupt())?)
            }
            _ => return Err(corrupt()),
        };
        each(key, u64::from_le_bytes(word(next(8)?)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::{Key, add_decoded, encode};

    #[test]
    fn rollups_round_trip_and_add_up() {
        let counts: HashMap<Key, u64> = [
            (Key::Null, 3),
            (Key::Integer(-7), 1),
            (Key::Text("system:node:é".into()), 9),
        ]
        .into_iter()
        .collect();
        let mut sum = HashMap::new();
        for _ in 0..2 {
            add_decoded(&encode(counts.clone()), &mut sum).unwrap_or_else(|e| panic!("{e}"));
        }
        let doubled: HashMap<Key, u64> = counts.into_iter().map(|(k, n)| (k, 2 * n)).collect();
        assert_eq!(sum, doubled);
        assert!(add_decoded(&[2, 9, 0, 0, 0, b'a'], &mut sum).is_err());
    }
}
