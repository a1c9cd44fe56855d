//! Building batches: JSON lines bodies cut by event count, size and age, and their gzip
//! compression.
//!
//! The body is the events' JSON text, one per line, exactly as read: no parsing, no
//! per-event allocation. The only thing read out of an event is the `stageTimestamp` of the
//! last one of each batch (a substring search), for the lag metric.

use std::io::Write as _;
use std::time::{Duration, Instant};

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::config::BatchConfig;

/// A batch under construction.
pub struct BatchBuilder {
    body: Vec<u8>,
    events: u32,
    last_line_start: usize,
    started: Option<Instant>,
    max_events: u32,
    max_bytes: usize,
    flush_interval: Duration,
}

/// A finished, uncompressed batch.
#[derive(Debug)]
pub struct RawBatch {
    /// JSON lines, each ending in `\n`.
    pub body: Vec<u8>,
    /// Number of lines.
    pub events: u32,
    /// `stageTimestamp` of the last event, nanoseconds since the epoch (0 when unknown).
    pub newest_nanos: i64,
}

impl BatchBuilder {
    /// An empty batch with the configured limits.
    pub fn new(config: &BatchConfig) -> BatchBuilder {
        BatchBuilder {
            body: Vec::new(),
            events: 0,
            last_line_start: 0,
            started: None,
            max_events: u32::try_from(config.max_events).unwrap_or(u32::MAX),
            max_bytes: config.max_bytes,
            flush_interval: Duration::from_millis(config.flush_interval_ms),
        }
    }

    /// Adds one event's JSON text (without its line end).
    pub fn push(&mut self, line: &[u8]) {
        if self.events == 0 {
            self.started = Some(Instant::now());
            if self.body.capacity() == 0 {
                self.body.reserve(self.max_bytes.min(4 * 1024 * 1024) + 4096);
            }
        }
        self.last_line_start = self.body.len();
        self.body.extend_from_slice(line);
        self.body.push(b'\n');
        self.events += 1;
    }

    /// Number of events so far.
    pub fn len(&self) -> u32 {
        self.events
    }

    /// True when no event was added since the last cut.
    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// True when the batch reached its event count or size limit.
    pub fn is_full(&self) -> bool {
        self.events >= self.max_events || self.body.len() >= self.max_bytes
    }

    /// True when the batch is not empty and its first event waited the flush interval.
    pub fn is_due(&self, now: Instant) -> bool {
        self.started
            .is_some_and(|started| now.duration_since(started) >= self.flush_interval)
    }

    /// How long until the batch is due, `None` when it is empty.
    pub fn due_in(&self, now: Instant) -> Option<Duration> {
        self.started
            .map(|started| self.flush_interval.saturating_sub(now.duration_since(started)))
    }

    /// Cuts the batch, leaving the builder empty.
    pub fn take(&mut self) -> Option<RawBatch> {
        if self.events == 0 {
            return None;
        }
        let newest_nanos = stage_timestamp_nanos(&self.body[self.last_line_start..]).unwrap_or(0);
        let capacity = self.body.capacity();
        let body = std::mem::replace(&mut self.body, Vec::with_capacity(capacity));
        let events = self.events;
        self.events = 0;
        self.last_line_start = 0;
        self.started = None;
        Some(RawBatch {
            body,
            events,
            newest_nanos,
        })
    }
}

/// gzip-compresses `body` at `level` (0 to 9).
pub fn gzip(body: &[u8], level: u32) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 6 + 64), Compression::new(level));
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// The `stageTimestamp` of one JSON event line, found by substring search (the apiserver
/// writes it without blanks), in nanoseconds since the epoch.
pub fn stage_timestamp_nanos(line: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"stageTimestamp\":\"";
    let at = memchr::memmem::rfind(line, KEY)? + KEY.len();
    let rest = &line[at..];
    let end = memchr::memchr(b'"', rest)?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    kaudit_model::parse_rfc3339_nanos(text).ok()
}

#[cfg(test)]
mod tests;
