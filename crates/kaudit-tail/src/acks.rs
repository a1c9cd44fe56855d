//! Acknowledgement bookkeeping: which delivered lines are acknowledged, and the acknowledged
//! offset of every known file identity.
//!
//! Delivered lines are recorded as runs (consecutive lines of one file collapse into one
//! segment), so delivery costs no allocation per line. Bytes that are skipped rather than
//! delivered (empty lines, overlong lines, an unterminated tail) ride on the last delivered
//! line: they become acknowledged with it, or at once when nothing is outstanding.

use std::collections::{HashMap, VecDeque};

use crate::batch::Position;
use crate::checkpoint::StoredFile;
use crate::fingerprint::Fingerprint;

/// What the tailer knows about one file identity.
#[derive(Debug)]
pub(crate) struct Entry {
    /// The persisted part.
    pub(crate) stored: StoredFile,
    /// A source is open on this identity right now.
    pub(crate) held: bool,
    /// This tailer read the file to its end (or to where it became unreadable) and closed it.
    pub(crate) read_end: Option<u64>,
    /// Loaded as gone but not finished: what this tailer cannot deliver any more must be
    /// reported again (lines delivered before a restart but never acknowledged).
    pub(crate) recheck: bool,
}

impl Entry {
    /// Records that `offset` is acknowledged.
    fn acknowledge(&mut self, offset: u64) {
        if offset > self.stored.offset {
            self.stored.offset = offset;
        }
        self.settle();
    }

    /// Marks the entry finished when everything up to its final size is acknowledged.
    pub(crate) fn settle(&mut self) {
        if self.stored.size_is_final && self.stored.offset >= self.stored.size {
            self.stored.finished = true;
        }
    }
}

/// The known identities and the outstanding deliveries.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub(crate) entries: HashMap<Fingerprint, Entry>,
    segments: VecDeque<Segment>,
    next_sequence: u64,
    acked_through: Option<u64>,
    /// The entries changed since the last checkpoint.
    pub(crate) dirty: bool,
}

/// A run of delivered lines of one file: everything up to `end` is acknowledged once the
/// line numbered `last_sequence` is.
#[derive(Clone, Copy, Debug)]
struct Segment {
    last_sequence: u64,
    fingerprint: Fingerprint,
    end: u64,
}

impl Book {
    /// Numbers a delivered line ending at `end` of `fingerprint`.
    pub(crate) fn deliver(&mut self, fingerprint: Fingerprint, end: u64) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        match self.segments.back_mut() {
            Some(back) if back.fingerprint == fingerprint => {
                back.last_sequence = sequence;
                back.end = end;
            }
            _ => self.segments.push_back(Segment {
                last_sequence: sequence,
                fingerprint,
                end,
            }),
        }
        sequence
    }

    /// Records that the bytes of `fingerprint` up to `end` were skipped, not delivered.
    pub(crate) fn skip(&mut self, fingerprint: Fingerprint, end: u64) {
        match self.segments.back_mut() {
            None => {
                if let Some(entry) = self.entries.get_mut(&fingerprint) {
                    entry.acknowledge(end);
                    self.dirty = true;
                }
            }
            Some(back) if back.fingerprint == fingerprint => back.end = back.end.max(end),
            Some(_) => {
                // Outstanding segments exist, so at least one line was delivered.
                let last_sequence = self.next_sequence.saturating_sub(1);
                self.segments.push_back(Segment {
                    last_sequence,
                    fingerprint,
                    end,
                });
            }
        }
    }

    /// Acknowledges the line at `position` and every line delivered before it. Positions
    /// at or before an earlier acknowledgement, or never delivered, change nothing.
    pub(crate) fn ack(&mut self, position: Position) {
        let sequence = position.sequence;
        if self.acked_through.is_some_and(|acked| sequence <= acked) || sequence >= self.next_sequence {
            return;
        }
        while let Some(front) = self.segments.front().copied() {
            if front.last_sequence > sequence {
                // The acknowledged line sits inside this run.
                self.acknowledge(position.fingerprint, position.end);
                break;
            }
            self.acknowledge(front.fingerprint, front.end);
            self.segments.pop_front();
        }
        self.acked_through = Some(sequence);
    }

    /// Number of delivered lines not acknowledged yet.
    pub(crate) fn outstanding(&self) -> u64 {
        self.next_sequence - self.acked_through.map_or(0, |acked| acked + 1)
    }

    fn acknowledge(&mut self, fingerprint: Fingerprint, end: u64) {
        if let Some(entry) = self.entries.get_mut(&fingerprint) {
            entry.acknowledge(end);
            self.dirty = true;
        }
    }
}
