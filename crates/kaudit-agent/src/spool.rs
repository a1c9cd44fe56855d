//! The bounded on-disk spool: compressed batches waiting for the intake, in segment files.
//!
//! Layout: `<dir>/<seq as 16 hex digits>.seg` files, each a run of records, and `<dir>/cursor`
//! naming the first record not yet acknowledged. A record is
//! `magic "KSR1" | length u32 | crc32 u32 | meta (33 bytes) | gzip body`, little endian, where
//! the CRC covers meta and body. Records are read and acknowledged in append order.
//!
//! Crash safety: a record is written with one append; [`Durability::Sync`] adds an fsync (and
//! an fsync of the folder when a segment file is created) before [`Spool::append`] returns.
//! On open, every segment is scanned and cut at the first torn or corrupt record, so a crash
//! in the middle of an append loses only that record, which was never acknowledged to anyone.
//! The cursor is replaced atomically (write, rename); after a crash it may lag, and the
//! records after it are delivered again: the intake collapses such duplicates.
//!
//! Bounds: when an append would take the spool over `max_bytes`, whole segments are dropped,
//! oldest first, and the number of unacknowledged events they held is returned so that the
//! caller reports the loss.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::config::SpoolConfig;

const MAGIC: &[u8; 4] = b"KSR1";
const HEADER_LEN: usize = 12;
const META_LEN: usize = 33;
/// Records larger than this are refused: no batch comes near it.
const MAX_RECORD_LEN: usize = 256 * 1024 * 1024;
const CURSOR_FILE: &str = "cursor";

/// Errors of the spool.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpoolError {
    /// A file operation failed.
    #[error("{operation} {path}")]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The record alone is larger than the whole spool may be.
    #[error("record of {len} bytes does not fit in a spool of {max_bytes} bytes")]
    TooLarge {
        /// The record's size.
        len: u64,
        /// The spool bound.
        max_bytes: u64,
    },
}

/// Where a batch came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// The tail source; `run_id` identifies the agent process and `seq` the batch within it,
    /// so that the checkpoint is advanced only for batches of the current process.
    Tail {
        /// Random id of the agent process that read the batch.
        run_id: u64,
        /// The batch's sequence number in that process.
        seq: u64,
    },
    /// The webhook receiver.
    Webhook,
}

/// One batch as stored: its metadata and its gzip body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Where it came from.
    pub origin: Origin,
    /// Number of events in the body.
    pub events: u32,
    /// Size of the uncompressed body.
    pub raw_bytes: u32,
    /// `stageTimestamp` of the newest event, nanoseconds since the epoch (0 when unknown).
    pub newest_nanos: i64,
    /// The gzip-compressed JSON lines body.
    pub body: bytes::Bytes,
}

/// Identifies a record for [`Spool::commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordId {
    seq: u64,
    offset: u64,
}

/// Whether an append waits for stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// fsync before returning.
    Sync,
    /// Leave the data to the page cache.
    Buffered,
}

/// What an append cost: events and bytes of older segments dropped to make room.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Unacknowledged events dropped.
    pub events: u64,
    /// Bytes of segment files removed.
    pub bytes: u64,
    /// Segment files removed.
    pub segments: u64,
}

/// The spool. Not thread-safe by itself: share it behind a mutex, and call it from blocking
/// threads (it does file I/O and fsync).
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    /// Index into `segments.front().records` of the first unacknowledged record.
    cursor_idx: usize,
    total_bytes: u64,
    pending_events: u64,
}

struct Segment {
    seq: u64,
    bytes: u64,
    records: Vec<RecordIndex>,
}

#[derive(Clone, Copy)]
struct RecordIndex {
    offset: u64,
    len: u64,
    events: u32,
}

impl Spool {
    /// Opens (creating if needed) the spool in `dir`, recovering from any earlier crash.
    pub fn open(dir: &Path, config: SpoolConfig) -> Result<Spool, SpoolError> {
        fs::create_dir_all(dir).map_err(|source| io_error("create", dir, source))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(|source| io_error("list", dir, source))? {
            let entry = entry.map_err(|source| io_error("list", dir, source))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(hex) = name.strip_suffix(".seg")
                && let Ok(seq) = u64::from_str_radix(hex, 16)
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let (cursor_seq, cursor_offset) = read_cursor(dir);
        let mut spool = Spool {
            dir: dir.to_path_buf(),
            config,
            segments: VecDeque::new(),
            writer: None,
            cursor_idx: 0,
            total_bytes: 0,
            pending_events: 0,
        };
        for seq in seqs {
            let path = spool.segment_path(seq);
            if seq < cursor_seq {
                fs::remove_file(&path).map_err(|source| io_error("remove", &path, source))?;
                continue;
            }
            let segment = recover_segment(&path, seq)?;
            spool.total_bytes += segment.bytes;
            spool.segments.push_back(segment);
        }
        if let Some(front) = spool.segments.front()
            && front.seq == cursor_seq
        {
            spool.cursor_idx = front
                .records
                .iter()
                .take_while(|record| record.offset < cursor_offset)
                .count();
        }
        spool.pending_events = spool.count_pending();
        spool.remove_consumed_front()?;
        Ok(spool)
    }

    /// Bytes of segment files on disk.
    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Events appended and not yet acknowledged.
    pub fn pending_events(&self) -> u64 {
        self.pending_events
    }

    /// True when every record is acknowledged.
    pub fn is_empty(&self) -> bool {
        self.segments.iter().enumerate().all(|(idx, segment)| {
            if idx == 0 {
                self.cursor_idx >= segment.records.len()
            } else {
                segment.records.is_empty()
            }
        })
    }

    /// Appends a record, dropping the oldest segments first if it would not fit.
    pub fn append(&mut self, record: &Record, durability: Durability) -> Result<Dropped, SpoolError> {
        let len = (HEADER_LEN + META_LEN + record.body.len()) as u64;
        if len > self.config.max_bytes || len > MAX_RECORD_LEN as u64 {
            return Err(SpoolError::TooLarge {
                len,
                max_bytes: self.config.max_bytes,
            });
        }
        let needs_new_segment = match self.segments.back() {
            None => true,
            Some(active) => {
                self.writer.is_none()
                    || (!active.records.is_empty() && active.bytes + len > self.config.segment_bytes)
            }
        };
        if needs_new_segment {
            self.start_segment(durability)?;
        }
        let mut dropped = Dropped::default();
        while self.total_bytes + len > self.config.max_bytes && self.segments.len() > 1 {
            let segment_dropped = self.drop_oldest_segment()?;
            dropped.events += segment_dropped.events;
            dropped.bytes += segment_dropped.bytes;
            dropped.segments += 1;
        }
        let encoded = encode(record);
        let Some(active) = self.segments.back_mut() else {
            return Err(io_error(
                "append",
                &self.dir,
                io::Error::other("no active segment"),
            ));
        };
        let path = self.dir.join(segment_name(active.seq));
        let Some(writer) = self.writer.as_mut() else {
            return Err(io_error("append", &path, io::Error::other("no open segment")));
        };
        writer
            .write_all(&encoded)
            .map_err(|source| io_error("append", &path, source))?;
        if durability == Durability::Sync {
            writer
                .sync_data()
                .map_err(|source| io_error("fsync", &path, source))?;
        }
        active.records.push(RecordIndex {
            offset: active.bytes,
            len,
            events: record.events,
        });
        active.bytes += len;
        self.total_bytes += len;
        self.pending_events += u64::from(record.events);
        Ok(dropped)
    }

    /// The oldest unacknowledged record, if any.
    pub fn peek(&mut self) -> Result<Option<(RecordId, Record)>, SpoolError> {
        let Some(front) = self.segments.front() else {
            return Ok(None);
        };
        let Some(index) = front.records.get(self.cursor_idx).copied() else {
            return Ok(None);
        };
        let path = self.segment_path(front.seq);
        let id = RecordId {
            seq: front.seq,
            offset: index.offset,
        };
        let mut file = File::open(&path).map_err(|source| io_error("open", &path, source))?;
        file.seek(SeekFrom::Start(index.offset))
            .map_err(|source| io_error("seek", &path, source))?;
        let mut buffer = vec![0; usize::try_from(index.len).unwrap_or(usize::MAX)];
        file.read_exact(&mut buffer)
            .map_err(|source| io_error("read", &path, source))?;
        match decode(&buffer) {
            Some(record) => Ok(Some((id, record))),
            None => Err(io_error(
                "read",
                &path,
                io::Error::new(io::ErrorKind::InvalidData, "record changed on disk"),
            )),
        }
    }

    /// Acknowledges the record `id` (the one [`Spool::peek`] returned). A record whose segment
    /// was dropped in the meantime is ignored.
    pub fn commit(&mut self, id: RecordId) -> Result<(), SpoolError> {
        let Some(front) = self.segments.front() else {
            return Ok(());
        };
        let Some(index) = front.records.get(self.cursor_idx) else {
            return Ok(());
        };
        if front.seq != id.seq || index.offset != id.offset {
            return Ok(());
        }
        self.pending_events = self.pending_events.saturating_sub(u64::from(index.events));
        let next_offset = index.offset + index.len;
        let seq = front.seq;
        self.cursor_idx += 1;
        self.remove_consumed_front()?;
        match self.segments.front() {
            Some(front) if front.seq == seq => self.write_cursor(seq, next_offset),
            Some(front) => self.write_cursor(front.seq, 0),
            None => self.write_cursor(seq + 1, 0),
        }
    }

    fn segment_path(&self, seq: u64) -> PathBuf {
        self.dir.join(segment_name(seq))
    }

    fn count_pending(&self) -> u64 {
        self.segments
            .iter()
            .enumerate()
            .map(|(idx, segment)| {
                let skip = if idx == 0 { self.cursor_idx } else { 0 };
                segment
                    .records
                    .iter()
                    .skip(skip)
                    .map(|record| u64::from(record.events))
                    .sum::<u64>()
            })
            .sum()
    }

    fn start_segment(&mut self, durability: Durability) -> Result<(), SpoolError> {
        let seq = self
            .segments
            .back()
            .map_or_else(|| read_cursor(&self.dir).0, |last| last.seq + 1);
        let path = self.segment_path(seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| io_error("create", &path, source))?;
        if durability == Durability::Sync {
            sync_dir(&self.dir)?;
        }
        self.writer = Some(file);
        let was_empty = self.segments.is_empty();
        self.segments.push_back(Segment {
            seq,
            bytes: 0,
            records: Vec::new(),
        });
        if was_empty {
            self.cursor_idx = 0;
        }
        Ok(())
    }

    fn drop_oldest_segment(&mut self) -> Result<Dropped, SpoolError> {
        let Some(segment) = self.segments.pop_front() else {
            return Ok(Dropped::default());
        };
        let events: u64 = segment
            .records
            .iter()
            .skip(self.cursor_idx)
            .map(|record| u64::from(record.events))
            .sum();
        self.cursor_idx = 0;
        self.pending_events = self.pending_events.saturating_sub(events);
        self.total_bytes = self.total_bytes.saturating_sub(segment.bytes);
        let path = self.segment_path(segment.seq);
        fs::remove_file(&path).map_err(|source| io_error("remove", &path, source))?;
        if let Some(front) = self.segments.front() {
            self.write_cursor(front.seq, 0)?;
        }
        Ok(Dropped {
            events,
            bytes: segment.bytes,
            segments: 1,
        })
    }

    /// Removes fully acknowledged segments from the front, the active one included (the
    /// next append then starts a fresh segment).
    fn remove_consumed_front(&mut self) -> Result<(), SpoolError> {
        while let Some(front) = self.segments.front() {
            if self.cursor_idx < front.records.len() {
                break;
            }
            let is_active = self.segments.len() == 1;
            if is_active && front.records.is_empty() && self.writer.is_some() {
                break;
            }
            let seq = front.seq;
            let bytes = front.bytes;
            self.segments.pop_front();
            if is_active {
                self.writer = None;
            }
            self.cursor_idx = 0;
            self.total_bytes = self.total_bytes.saturating_sub(bytes);
            let path = self.segment_path(seq);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(io_error("remove", &path, source)),
            }
        }
        Ok(())
    }

    fn write_cursor(&self, seq: u64, offset: u64) -> Result<(), SpoolError> {
        let path = self.dir.join(CURSOR_FILE);
        let tmp = self.dir.join("cursor.tmp");
        fs::write(&tmp, format!("{seq} {offset}\n")).map_err(|source| io_error("write", &tmp, source))?;
        fs::rename(&tmp, &path).map_err(|source| io_error("rename", &path, source))
    }
}

fn segment_name(seq: u64) -> String {
    format!("{seq:016x}.seg")
}

fn io_error(operation: &'static str, path: &Path, source: io::Error) -> SpoolError {
    SpoolError::Io {
        operation,
        path: path.to_path_buf(),
        source,
    }
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|handle| handle.sync_all())
        .map_err(|source| io_error("fsync", dir, source))
}

/// The saved cursor, `(0, 0)` when there is none or it is unreadable (everything on disk is
/// then delivered again, which the intake collapses).
fn read_cursor(dir: &Path) -> (u64, u64) {
    let Ok(text) = fs::read_to_string(dir.join(CURSOR_FILE)) else {
        return (0, 0);
    };
    let mut parts = text.split_whitespace().map(str::parse::<u64>);
    match (parts.next(), parts.next()) {
        (Some(Ok(seq)), Some(Ok(offset))) => (seq, offset),
        _ => (0, 0),
    }
}

fn encode(record: &Record) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + META_LEN + record.body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&((META_LEN + record.body.len()) as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    let (origin, run_id, seq) = match record.origin {
        Origin::Tail { run_id, seq } => (0u8, run_id, seq),
        Origin::Webhook => (1u8, 0, 0),
    };
    out.push(origin);
    out.extend_from_slice(&record.events.to_le_bytes());
    out.extend_from_slice(&record.raw_bytes.to_le_bytes());
    out.extend_from_slice(&record.newest_nanos.to_le_bytes());
    out.extend_from_slice(&run_id.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&record.body);
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes one whole record (header included); `None` when it is torn or corrupt.
fn decode(bytes: &[u8]) -> Option<Record> {
    let header = bytes.get(..HEADER_LEN)?;
    if &header[..4] != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[8..12].try_into().ok()?);
    let rest = bytes.get(HEADER_LEN..HEADER_LEN.checked_add(len)?)?;
    if len < META_LEN || crc32fast::hash(rest) != crc {
        return None;
    }
    let u32_at = |at: usize| {
        rest.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    };
    let u64_at = |at: usize| {
        rest.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let origin = match rest[0] {
        0 => Origin::Tail {
            run_id: u64_at(17)?,
            seq: u64_at(25)?,
        },
        1 => Origin::Webhook,
        _ => return None,
    };
    Some(Record {
        origin,
        events: u32_at(1)?,
        raw_bytes: u32_at(5)?,
        newest_nanos: u64_at(9)? as i64,
        body: bytes::Bytes::copy_from_slice(&rest[META_LEN..]),
    })
}

/// Scans a segment, truncating it at the first torn or corrupt record.
fn recover_segment(path: &Path, seq: u64) -> Result<Segment, SpoolError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|source| io_error("open", path, source))?;
    let mut content = Vec::new();
    file.read_to_end(&mut content)
        .map_err(|source| io_error("read", path, source))?;
    let mut records = Vec::new();
    let mut offset = 0usize;
    while offset < content.len() {
        let rest = &content[offset..];
        let len = match rest
            .get(4..8)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
        {
            Some(len) => HEADER_LEN + len as usize,
            None => break,
        };
        let Some(record) = rest.get(..len).and_then(decode) else {
            break;
        };
        records.push(RecordIndex {
            offset: offset as u64,
            len: len as u64,
            events: record.events,
        });
        offset += len;
    }
    if offset < content.len() {
        tracing::warn!(
            path = %path.display(),
            valid_bytes = offset,
            cut_bytes = content.len() - offset,
            "spool segment ends with a torn record, cut (it was never acknowledged)"
        );
        file.set_len(offset as u64)
            .map_err(|source| io_error("truncate", path, source))?;
    }
    Ok(Segment {
        seq,
        bytes: offset as u64,
        records,
    })
}

#[cfg(test)]
mod tests;
