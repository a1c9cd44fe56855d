//! A batch of delivered lines (one shared byte buffer, no allocation per line), their
//! position tokens and the events noticed while reading them.

use crate::event::TailEvent;
use crate::fingerprint::Fingerprint;

/// Where a delivered line came from, and the token to acknowledge it with
/// [`Tailer::ack`](crate::Tailer::ack).
///
/// A position is only meaningful to the [`Tailer`](crate::Tailer) that returned it.
/// `(fingerprint, offset)` names a line durably across restarts and rotations: a line
/// delivered again after a restart carries the same pair, so a receiver can collapse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Position {
    pub(crate) sequence: u64,
    pub(crate) fingerprint: Fingerprint,
    pub(crate) offset: u64,
    pub(crate) end: u64,
}

impl Position {
    /// Delivery order number within this tailer: increases by one per delivered line.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Identity of the file the line was read from.
    pub fn fingerprint(&self) -> Fingerprint {
        self.fingerprint
    }

    /// Offset of the line's first byte in the (uncompressed) file.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Offset just past the line's newline: where reading resumes once it is acknowledged.
    pub fn end(&self) -> u64 {
        self.end
    }
}

/// One delivered line: its bytes without the newline (and without a `\r` before it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Line<'a> {
    /// The line's content, opaque bytes.
    pub bytes: &'a [u8],
    /// Where it came from.
    pub position: Position,
}

/// Lines and events returned by one [`Tailer::poll`](crate::Tailer::poll). Reusable: pass it
/// back to [`Tailer::poll_into`](crate::Tailer::poll_into) to keep its buffers.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    slots: Vec<Slot>,
    events: Vec<TailEvent>,
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    data_end: usize,
    position: Position,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the batch holds no line (it may still hold events).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Total bytes of the lines.
    pub fn line_bytes(&self) -> usize {
        self.data.len()
    }

    /// The `index`th line.
    pub fn get(&self, index: usize) -> Option<Line<'_>> {
        let slot = self.slots.get(index)?;
        let start = if index == 0 {
            0
        } else {
            self.slots[index - 1].data_end
        };
        Some(Line {
            bytes: &self.data[start..slot.data_end],
            position: slot.position,
        })
    }

    /// The lines in delivery order.
    pub fn lines(&self) -> impl ExactSizeIterator<Item = Line<'_>> + '_ {
        let mut start = 0;
        self.slots.iter().map(move |slot| {
            let line = Line {
                bytes: &self.data[start..slot.data_end],
                position: slot.position,
            };
            start = slot.data_end;
            line
        })
    }

    /// Position of the last line: acknowledging it acknowledges the whole batch.
    pub fn last_position(&self) -> Option<Position> {
        self.slots.last().map(|slot| slot.position)
    }

    /// Events noticed while filling this batch.
    pub fn events(&self) -> &[TailEvent] {
        &self.events
    }

    /// Takes the events out of the batch.
    pub fn take_events(&mut self) -> Vec<TailEvent> {
        std::mem::take(&mut self.events)
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.slots.clear();
        self.events.clear();
    }

    /// Whether `line_len` more bytes would overflow the limits. An empty batch always takes
    /// one line, so a line longer than `max_bytes` still moves.
    pub(crate) fn is_full(&self, max_lines: usize, max_bytes: usize, line_len: usize) -> bool {
        self.slots.len() >= max_lines || (!self.slots.is_empty() && self.data.len() + line_len > max_bytes)
    }

    pub(crate) fn push(&mut self, bytes: &[u8], position: Position) {
        self.data.extend_from_slice(bytes);
        self.slots.push(Slot {
            data_end: self.data.len(),
            position,
        });
    }

    pub(crate) fn push_event(&mut self, event: TailEvent) {
        self.events.push(event);
    }
}
