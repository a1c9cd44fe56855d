//! The tailer: discovering files, following rotation and truncation, framing lines,
//! acknowledgements and checkpoints.
//!
//! Every configured path stands for a rotation family: the live file plus its timestamped
//! backups (see `naming`). A family's files are read strictly one after the other, oldest
//! backup first and the live file last, through a queue of open sources. A file is opened
//! when it is first seen and stays open until read to its end, so a backup deleted by
//! pruning after it was seen is still read completely through the open descriptor.
//!
//! A source is live while the family's path names its inode. When the path names another
//! inode the source was rotated: rotation happens between two writes, so everything it will
//! ever hold is already written, and it is read to its end before the next file starts.
//!
//! Known loss windows, reported as [`TailEvent::Loss`] where the file was known:
//! a file rotated and deleted between two scans is never seen and its loss cannot be
//! noticed; a file deleted while no tailer runs is lost from its acknowledged offset; an
//! in-place truncation (copytruncate) loses what was written after the last read.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, TryLockError};
use std::io;
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::acks::{Book, Entry};
use crate::batch::{Batch, Position};
use crate::checkpoint::{self, StoredFile};
use crate::config::{StartAt, TailConfig};
use crate::error::TailError;
use crate::event::{Loss, LossCause, LostBytes, TailEvent};
use crate::fingerprint::{Fingerprint, Head, Identity, identify};
use crate::naming::FamilyName;
use crate::reader::{FileKey, Reader};

/// Follows the configured files and hands out their lines. See the crate documentation for
/// the calling protocol.
#[derive(Debug)]
pub struct Tailer {
    config: TailConfig,
    includes: Vec<Include>,
    _lock: File,
    families: Vec<Family>,
    sources: Vec<Option<Source>>,
    free_slots: Vec<usize>,
    by_key: HashMap<FileKey, usize>,
    head_cache: HashMap<FileKey, CachedHead>,
    book: Book,
    events: Vec<TailEvent>,
    last_scan: Option<Instant>,
    next_family: usize,
}

/// The state of one known file, for metrics (lag) and diagnostics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileStatus {
    /// The last path the file was seen under.
    pub path: PathBuf,
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// Acknowledged offset (uncompressed bytes).
    pub acknowledged: u64,
    /// Offset up to which lines were delivered by this tailer.
    pub delivered: u64,
    /// Largest size seen (uncompressed bytes); `size - acknowledged` is the lag.
    pub size: u64,
    /// The file is open and being followed.
    pub open: bool,
    /// Nothing more will be read from this file.
    pub finished: bool,
    /// The file is no longer on disk.
    pub gone: bool,
}

#[derive(Debug)]
enum Include {
    Path(PathBuf),
    Glob(String),
}

#[derive(Debug)]
struct Family {
    name: FamilyName,
    /// `name.live_path` as stored in checkpoints.
    key: String,
    /// Open sources in reading order; the front one is being read.
    queue: std::collections::VecDeque<usize>,
    /// A rotation was seen: list the directory before waiting for new data.
    rescan: bool,
}

#[derive(Debug)]
struct Source {
    family: usize,
    path: PathBuf,
    key: FileKey,
    reader: Reader,
    identity: Option<Identity>,
    live: bool,
    /// The identity was checked against the file's first bytes since reading last paused.
    verified: bool,
    buf: Vec<u8>,
    /// Start of unframed bytes in `buf`.
    pos: usize,
    /// End of valid bytes in `buf`.
    len: usize,
    /// File offset of `buf[0]`.
    buf_offset: u64,
    skipping: Option<Skip>,
    size_seen: u64,
}

/// An overlong line being skipped.
#[derive(Clone, Copy, Debug)]
struct Skip {
    offset: u64,
    length: u64,
    /// The last byte skipped so far is a `\r`.
    ends_with_cr: bool,
}

#[derive(Clone, Copy, Debug)]
struct CachedHead {
    size: u64,
    modified: Option<SystemTime>,
    identity: Identity,
}

#[derive(Clone, Copy, Debug)]
struct Limits {
    max_lines: usize,
    max_bytes: usize,
    max_line_bytes: usize,
    read_chunk_bytes: usize,
}

enum Fill {
    Full,
    Eof,
    Error(io::Error),
}

enum Progress {
    Full,
    Idle,
}

enum Identified {
    Ready,
    Pending,
    Closed,
}

/// A file found by a scan.
struct Candidate {
    path: PathBuf,
    gz: bool,
    live: bool,
}

impl Source {
    /// Offset just past the last framed line.
    fn framed(&self) -> u64 {
        self.buf_offset + self.pos as u64
    }

    /// Offset of the next byte to read.
    fn read_offset(&self) -> u64 {
        self.buf_offset + self.len as u64
    }
}

impl Tailer {
    /// Opens the state directory (creating and locking it), loads the checkpoint and looks
    /// for the configured files. Losses noticed now (files deleted while no tailer ran) are
    /// returned by the first [`Tailer::poll`].
    pub fn open(config: TailConfig) -> Result<Tailer, TailError> {
        validate(&config)?;
        let includes = config
            .include
            .iter()
            .map(|pattern| parse_include(pattern))
            .collect::<Result<Vec<_>, _>>()?;
        let state_dir = config.state_dir.clone();
        let dir_err = |source| TailError::StateDir {
            path: state_dir.clone(),
            source,
        };
        fs::create_dir_all(&state_dir).map_err(dir_err)?;
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(state_dir.join("lock"))
            .map_err(dir_err)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => return Err(TailError::StateDirLocked { path: state_dir }),
            Err(TryLockError::Error(source)) => return Err(dir_err(source)),
        }
        let stored = checkpoint::load(&state_dir)?;
        let first_start = stored.is_none();
        let mut book = Book::default();
        for file in stored.unwrap_or_default() {
            let recheck = file.gone_since_unix_secs.is_some() && !file.finished;
            book.entries.insert(
                file.fingerprint,
                Entry {
                    stored: file,
                    held: false,
                    read_end: None,
                    recheck,
                },
            );
        }
        let mut tailer = Tailer {
            config,
            includes,
            _lock: lock,
            families: Vec::new(),
            sources: Vec::new(),
            free_slots: Vec::new(),
            by_key: HashMap::new(),
            head_cache: HashMap::new(),
            book,
            events: Vec::new(),
            last_scan: None,
            next_family: 0,
        };
        let skip_existing = first_start && tailer.config.start_at == StartAt::End;
        // Files gone while no tailer ran are noticed by the first poll's scan, so that their
        // loss is reported in a batch before a checkpoint can record them as gone.
        tailer.scan_all(skip_existing, false);
        if first_start {
            // Fix the starting point, so that a crash before the first checkpoint does not
            // start over from a later end.
            tailer.book.dirty = true;
            tailer.checkpoint()?;
        }
        Ok(tailer)
    }

    /// Reads up to `max_lines` lines and about `max_bytes` bytes of line content (a batch
    /// with room for a line always takes at least one, however long). Returns immediately
    /// with what is available, possibly nothing: callers sleep between empty polls. Each
    /// poll first lists the directories if `scan_interval` has passed since the last time.
    pub fn poll(&mut self, max_lines: usize, max_bytes: usize) -> Batch {
        let mut batch = Batch::new();
        self.poll_into(&mut batch, max_lines, max_bytes);
        batch
    }

    /// [`Tailer::poll`] into a reused batch (cleared first).
    pub fn poll_into(&mut self, batch: &mut Batch, max_lines: usize, max_bytes: usize) {
        batch.clear();
        let scan_due = self
            .last_scan
            .is_none_or(|last| last.elapsed() >= self.config.scan_interval);
        if scan_due {
            self.scan_all(false, true);
            self.last_scan = Some(Instant::now());
        }
        let limits = Limits {
            max_lines,
            max_bytes,
            max_line_bytes: self.config.max_line_bytes,
            read_chunk_bytes: self.config.read_chunk_bytes,
        };
        let count = self.families.len();
        for step in 0..count {
            let family = (self.next_family + step) % count;
            if let Progress::Full = self.read_family(family, batch, limits) {
                // Start with the next family next time, so that one busy file cannot
                // starve the others.
                self.next_family = (family + 1) % count;
                break;
            }
        }
        for event in self.events.drain(..) {
            batch.push_event(event);
        }
    }

    /// Acknowledges the line at `position` and every line delivered before it (acks arrive
    /// in delivery order). The durable checkpoint advances with the next
    /// [`Tailer::checkpoint`]. Positions already acknowledged, or from another tailer, are
    /// ignored.
    pub fn ack(&mut self, position: Position) {
        self.book.ack(position);
    }

    /// Acknowledges every line of `batch`.
    pub fn ack_batch(&mut self, batch: &Batch) {
        if let Some(position) = batch.last_position() {
            self.ack(position);
        }
    }

    /// Writes the acknowledged offsets to the checkpoint file (crash-safely) if they changed.
    /// Call it after acknowledgements, periodically, and before dropping the tailer; a
    /// restart resumes exactly after the last line acknowledged before the last checkpoint.
    pub fn checkpoint(&mut self) -> Result<(), TailError> {
        if !self.book.dirty {
            return Ok(());
        }
        let mut files: Vec<StoredFile> = self.book.entries.values().map(|e| e.stored.clone()).collect();
        files.sort_by(|a, b| (&a.family, &a.path, a.fingerprint).cmp(&(&b.family, &b.path, b.fingerprint)));
        checkpoint::store(&self.config.state_dir, &files)?;
        self.book.dirty = false;
        Ok(())
    }

    /// Number of delivered lines not acknowledged yet.
    pub fn outstanding(&self) -> u64 {
        self.book.outstanding()
    }

    /// The state of every known file, ordered by path.
    pub fn files(&self) -> Vec<FileStatus> {
        let mut delivered: HashMap<Fingerprint, (u64, PathBuf)> = HashMap::new();
        for source in self.sources.iter().flatten() {
            if let Some(identity) = source.identity {
                delivered.insert(identity.fingerprint, (source.framed(), source.path.clone()));
            }
        }
        let mut files: Vec<FileStatus> = self
            .book
            .entries
            .iter()
            .map(|(&fingerprint, entry)| {
                let open = delivered.get(&fingerprint);
                FileStatus {
                    path: open.map_or_else(|| PathBuf::from(&entry.stored.path), |(_, path)| path.clone()),
                    fingerprint,
                    acknowledged: entry.stored.offset,
                    delivered: open
                        .map(|(offset, _)| *offset)
                        .or(entry.read_end)
                        .unwrap_or(entry.stored.offset)
                        .max(entry.stored.offset),
                    size: entry.stored.size,
                    open: open.is_some(),
                    finished: entry.stored.finished,
                    gone: entry.stored.gone_since_unix_secs.is_some(),
                }
            })
            .collect();
        files.sort_by(|a, b| (&a.path, a.fingerprint).cmp(&(&b.path, b.fingerprint)));
        files
    }

    // ----- discovery -------------------------------------------------------------------

    /// Expands the includes, scans every family, forgets old checkpoints. With
    /// `notice_gone`, known files missing from disk are reported.
    fn scan_all(&mut self, skip_existing: bool, notice_gone: bool) {
        let mut found = Vec::new();
        for include in &self.includes {
            match include {
                Include::Path(path) => found.extend(FamilyName::of_live(path)),
                Include::Glob(pattern) => {
                    // Validated in `open`, so an error here cannot happen.
                    let Ok(paths) = glob::glob(pattern) else {
                        continue;
                    };
                    for path in paths {
                        match path {
                            Ok(path) => found.extend(FamilyName::of_match(&path)),
                            Err(err) => self.events.push(TailEvent::Error(TailError::Read {
                                path: err.path().to_path_buf(),
                                source: io::Error::new(err.error().kind(), err.error().to_string()),
                            })),
                        }
                    }
                }
            }
        }
        for name in found {
            if !self
                .families
                .iter()
                .any(|family| family.name.live_path == name.live_path)
            {
                let key = name.live_path.to_string_lossy().into_owned();
                self.families.push(Family {
                    name,
                    key,
                    queue: Default::default(),
                    rescan: false,
                });
            }
        }
        let mut seen_keys = HashSet::new();
        for family in 0..self.families.len() {
            self.scan_family(family, skip_existing, notice_gone, &mut seen_keys);
        }
        self.head_cache.retain(|key, _| seen_keys.contains(key));
        self.forget();
    }

    /// Lists one family's directory: adopts new files in rotation order, follows renames,
    /// notices deleted files.
    fn scan_family(
        &mut self,
        family: usize,
        skip_existing: bool,
        notice_gone: bool,
        seen_keys: &mut HashSet<FileKey>,
    ) {
        self.families[family].rescan = false;
        let now = unix_now();
        let (candidates, listing_complete) = self.candidates(family);
        let live_key = match fs::metadata(&self.families[family].name.live_path) {
            Ok(metadata) => Some(FileKey::of(&metadata)),
            Err(_) => None,
        };
        let mut seen = HashSet::new();
        for candidate in candidates {
            let metadata = match fs::metadata(&candidate.path) {
                Ok(metadata) if metadata.is_file() => metadata,
                Ok(_) => continue,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    self.events.push(TailEvent::Error(TailError::Read {
                        path: candidate.path,
                        source,
                    }));
                    continue;
                }
            };
            let key = FileKey::of(&metadata);
            seen_keys.insert(key);
            let plain_size = (!candidate.gz).then_some(metadata.len());
            if let Some(&slot) = self.by_key.get(&key) {
                self.rescan_source(slot, &candidate, live_key, now);
                if let Some(identity) = self.source(slot).and_then(|source| source.identity) {
                    seen.insert(identity.fingerprint);
                    self.saw(identity.fingerprint, &candidate, plain_size, now);
                }
                continue;
            }
            self.adopt_candidate(family, candidate, key, &metadata, skip_existing, now, &mut seen);
        }
        if let Some(live_key) = live_key {
            for &slot in &self.families[family].queue {
                if let Some(source) = self.sources[slot].as_mut() {
                    source.live = source.key == live_key;
                }
            }
        }
        if notice_gone && listing_complete {
            self.notice_gone(family, &seen, now);
        }
    }

    /// The family's backups in rotation order (plain twin preferred), then the live file;
    /// and whether the directory listing succeeded.
    fn candidates(&mut self, family: usize) -> (Vec<Candidate>, bool) {
        let name = &self.families[family].name;
        let mut backups: Vec<(Vec<u8>, bool, PathBuf)> = Vec::new();
        let mut complete = true;
        match fs::read_dir(&name.dir) {
            Ok(entries) => {
                for entry in entries {
                    match entry {
                        Ok(entry) => {
                            if let Some(backup) = name.backup(&entry.file_name()) {
                                backups.push((backup.stamp, backup.gz, entry.path()));
                            }
                        }
                        Err(source) => {
                            complete = false;
                            self.events.push(TailEvent::Error(TailError::Read {
                                path: name.dir.clone(),
                                source,
                            }));
                        }
                    }
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                complete = false;
                self.events.push(TailEvent::Error(TailError::Read {
                    path: name.dir.clone(),
                    source,
                }));
            }
        }
        // Plain before `.gz` for equal stamps, so the twin check below sees the plain first.
        backups.sort();
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut last_stamp: Option<&[u8]> = None;
        for (stamp, gz, path) in &backups {
            if last_stamp == Some(stamp.as_slice()) {
                // A `.gz` whose uncompressed twin still exists may be partly written.
                continue;
            }
            last_stamp = Some(stamp);
            candidates.push(Candidate {
                path: path.clone(),
                gz: *gz,
                live: false,
            });
        }
        candidates.push(Candidate {
            path: name.live_path.clone(),
            gz: false,
            live: true,
        });
        (candidates, complete)
    }

    /// Updates an open source found again by its inode.
    fn rescan_source(&mut self, slot: usize, candidate: &Candidate, live_key: Option<FileKey>, now: u64) {
        let Some(source) = self.sources[slot].as_mut() else {
            return;
        };
        source.path.clone_from(&candidate.path);
        source.live = candidate.live && live_key == Some(source.key);
        if !self.identity_holds(slot) {
            // Truncated and rewritten since it was identified: notice it now, so that the
            // new content is known (and checkpointed) even before its turn to be read.
            self.truncated(slot);
        }
        if self.source(slot).is_some_and(|source| source.identity.is_none()) {
            let _ = self.identify_source(slot, now);
        }
    }

    /// Records that the identity was seen on disk as `candidate`.
    fn saw(&mut self, fingerprint: Fingerprint, candidate: &Candidate, plain_size: Option<u64>, now: u64) {
        let Some(entry) = self.book.entries.get_mut(&fingerprint) else {
            return;
        };
        let stored = &mut entry.stored;
        stored.last_seen_unix_secs = now;
        if stored.gone_since_unix_secs.take().is_some() {
            self.book.dirty = true;
        }
        let path = candidate.path.to_string_lossy();
        if stored.path != path {
            stored.path = path.into_owned();
            self.book.dirty = true;
        }
        if let Some(size) = plain_size {
            if size > stored.size {
                stored.size = size;
            }
            if !candidate.live && !stored.size_is_final {
                // A rotated plain file no longer grows: its size is final.
                stored.size = size.max(stored.size);
                stored.size_is_final = true;
                self.book.dirty = true;
                entry.settle();
            }
        }
    }

    /// Considers a file that no open source holds.
    #[allow(clippy::too_many_arguments)]
    fn adopt_candidate(
        &mut self,
        family: usize,
        candidate: Candidate,
        key: FileKey,
        metadata: &fs::Metadata,
        skip_existing: bool,
        now: u64,
        seen: &mut HashSet<Fingerprint>,
    ) {
        let modified = metadata.modified().ok();
        let cached = self
            .head_cache
            .get(&key)
            .filter(|cached| cached.size == metadata.len() && cached.modified == modified)
            .map(|cached| cached.identity);
        let mut reader = None;
        let identity = match cached {
            Some(identity) => identity,
            None => {
                let Some(file) = self.open_expected(&candidate.path, key) else {
                    return;
                };
                let opened = Reader::new(file, candidate.gz);
                let head = match opened.head(self.config.fingerprint_max_bytes) {
                    Ok(head) => head,
                    Err(source) => {
                        self.events.push(TailEvent::Error(TailError::Read {
                            path: candidate.path,
                            source,
                        }));
                        return;
                    }
                };
                let immutable = !candidate.live || candidate.gz;
                match identify(&head, self.config.fingerprint_max_bytes, immutable) {
                    Head::Ready(identity) => {
                        reader = Some(opened);
                        identity
                    }
                    Head::Pending | Head::Empty if candidate.live => {
                        // Hold the file from now on, so that nothing written to it is missed
                        // even if it is rotated and deleted before its first line completes.
                        self.open_source(family, candidate, key, opened, None, 0);
                        return;
                    }
                    Head::Pending | Head::Empty => return,
                }
            }
        };
        let fingerprint = identity.fingerprint;
        seen.insert(fingerprint);
        let plain_size = (!candidate.gz).then_some(metadata.len());
        let resume = match self.book.entries.get(&fingerprint) {
            Some(entry) => {
                let done = entry.held || entry.read_end.is_some() || entry.stored.finished;
                (!done).then_some(entry.stored.offset)
            }
            None => {
                let (offset, finished) = if !skip_existing {
                    (0, false)
                } else if candidate.live {
                    match &reader {
                        Some(reader) => (last_line_end(reader, metadata.len()), false),
                        None => (0, false),
                    }
                } else {
                    (plain_size.unwrap_or(0), true)
                };
                self.book.entries.insert(
                    fingerprint,
                    Entry {
                        stored: StoredFile {
                            fingerprint,
                            offset,
                            size: plain_size.unwrap_or(0),
                            size_is_final: false,
                            finished,
                            family: self.families[family].key.clone(),
                            path: candidate.path.to_string_lossy().into_owned(),
                            last_seen_unix_secs: now,
                            gone_since_unix_secs: None,
                            lost_from: None,
                        },
                        held: false,
                        read_end: None,
                        recheck: false,
                    },
                );
                self.book.dirty = true;
                (!finished).then_some(offset)
            }
        };
        self.saw(fingerprint, &candidate, plain_size, now);
        let Some(offset) = resume else {
            self.head_cache.insert(
                key,
                CachedHead {
                    size: metadata.len(),
                    modified,
                    identity,
                },
            );
            return;
        };
        let reader = match reader {
            Some(reader) => reader,
            None => match self.open_expected(&candidate.path, key) {
                Some(file) => Reader::new(file, candidate.gz),
                None => return,
            },
        };
        self.open_source(family, candidate, key, reader, Some(identity), offset);
    }

    /// Opens `path` if it still names the file `key`; a rename in between (rotation) makes
    /// the next scan look again.
    fn open_expected(&mut self, path: &std::path::Path, key: FileKey) -> Option<File> {
        let opened = File::open(path).and_then(|file| Ok((FileKey::of(&file.metadata()?), file)));
        match opened {
            Ok((opened_key, file)) if opened_key == key => Some(file),
            Ok(_) => None,
            Err(err) if err.kind() == io::ErrorKind::NotFound => None,
            Err(source) => {
                self.events.push(TailEvent::Error(TailError::Read {
                    path: path.to_path_buf(),
                    source,
                }));
                None
            }
        }
    }

    fn open_source(
        &mut self,
        family: usize,
        candidate: Candidate,
        key: FileKey,
        reader: Reader,
        identity: Option<Identity>,
        offset: u64,
    ) {
        if let Some(identity) = identity {
            if let Some(entry) = self.book.entries.get_mut(&identity.fingerprint) {
                entry.held = true;
            }
            self.events.push(TailEvent::Opened {
                path: candidate.path.clone(),
                fingerprint: identity.fingerprint,
                offset,
            });
        }
        let source = Source {
            family,
            path: candidate.path,
            key,
            reader,
            identity,
            live: candidate.live,
            verified: false,
            buf: Vec::new(),
            pos: 0,
            len: 0,
            buf_offset: offset,
            skipping: None,
            size_seen: offset,
        };
        let slot = match self.free_slots.pop() {
            Some(slot) => {
                self.sources[slot] = Some(source);
                slot
            }
            None => {
                self.sources.push(Some(source));
                self.sources.len() - 1
            }
        };
        self.by_key.insert(key, slot);
        self.families[family].queue.push_back(slot);
    }

    /// Reports files of `family` that are gone from disk before being read to their end.
    fn notice_gone(&mut self, family: usize, seen: &HashSet<Fingerprint>, now: u64) {
        let family_key = &self.families[family].key;
        for (fingerprint, entry) in &mut self.book.entries {
            let stored = &mut entry.stored;
            if stored.family != *family_key
                || seen.contains(fingerprint)
                || entry.held
                || (stored.gone_since_unix_secs.is_some() && !entry.recheck)
            {
                continue;
            }
            entry.recheck = false;
            stored.gone_since_unix_secs.get_or_insert(now);
            self.book.dirty = true;
            if let Some(loss) = loss_of(entry, LossCause::Deleted) {
                self.events.push(TailEvent::Loss(loss));
            }
        }
    }

    /// Drops checkpoints of files gone for longer than `forget_after`, and of files of
    /// families no longer configured that were not seen for as long.
    fn forget(&mut self) {
        let now = unix_now();
        let keep_secs = self.config.forget_after.as_secs();
        let families: HashSet<&str> = self.families.iter().map(|family| family.key.as_str()).collect();
        let before = self.book.entries.len();
        self.book.entries.retain(|_, entry| {
            let stored = &entry.stored;
            if entry.held {
                return true;
            }
            let since = match stored.gone_since_unix_secs {
                Some(gone) => gone,
                None if !families.contains(stored.family.as_str()) => stored.last_seen_unix_secs,
                None => return true,
            };
            now.saturating_sub(since) < keep_secs
        });
        if self.book.entries.len() != before {
            self.book.dirty = true;
        }
    }

    // ----- reading ---------------------------------------------------------------------

    /// Reads the family's current file into `batch`, moving on through its queue.
    fn read_family(&mut self, family: usize, batch: &mut Batch, limits: Limits) -> Progress {
        loop {
            let Some(&slot) = self.families[family].queue.front() else {
                if self.families[family].rescan {
                    self.scan_family(family, false, true, &mut HashSet::new());
                    if !self.families[family].queue.is_empty() {
                        continue;
                    }
                }
                return Progress::Idle;
            };
            let Some(source) = self.sources[slot].as_ref() else {
                self.families[family].queue.pop_front();
                continue;
            };
            if source.identity.is_none() {
                self.refresh_liveness(slot);
                match self.identify_source(slot, unix_now()) {
                    Identified::Ready => {}
                    Identified::Closed => continue,
                    Identified::Pending => return Progress::Idle,
                }
            }
            if !self.verify(slot) {
                self.truncated(slot);
                continue;
            }
            let Some(source) = self.sources[slot].as_mut() else {
                continue;
            };
            match fill(source, &mut self.book, batch, limits) {
                Fill::Full => {
                    // Check the identity again before reading on: the file may be truncated
                    // and rewritten in between.
                    source.verified = false;
                    return Progress::Full;
                }
                Fill::Eof if source.live => {
                    self.refresh_liveness(slot);
                    let Some(source) = self.sources[slot].as_mut() else {
                        continue;
                    };
                    if !source.live {
                        // Rotated: read what is left, then find the new file.
                        self.families[family].rescan = true;
                        continue;
                    }
                    match source.reader.metadata() {
                        Ok(metadata) if metadata.len() < source.read_offset() => {
                            self.truncated(slot);
                            continue;
                        }
                        Ok(metadata) => {
                            source.verified = false;
                            let size = metadata.len();
                            if let Some(identity) = source.identity
                                && let Some(entry) = self.book.entries.get_mut(&identity.fingerprint)
                                && size > entry.stored.size
                            {
                                entry.stored.size = size;
                            }
                            return Progress::Idle;
                        }
                        Err(source_err) => {
                            let path = source.path.clone();
                            self.events.push(TailEvent::Error(TailError::Read {
                                path,
                                source: source_err,
                            }));
                            return Progress::Idle;
                        }
                    }
                }
                Fill::Eof if source.reader.is_gz() => self.finish(slot, None),
                Fill::Eof => match source.reader.metadata() {
                    // Truncated before it was rotated.
                    Ok(metadata) if metadata.len() < source.read_offset() => self.truncated(slot),
                    _ => self.finish(slot, None),
                },
                Fill::Error(err) if source.reader.is_gz() => self.finish(slot, Some(err)),
                Fill::Error(err) => {
                    let path = source.path.clone();
                    self.events
                        .push(TailEvent::Error(TailError::Read { path, source: err }));
                    return Progress::Idle;
                }
            }
        }
    }

    fn source(&self, slot: usize) -> Option<&Source> {
        self.sources.get(slot).and_then(Option::as_ref)
    }

    /// Whether the family's path still names the source's file. A missing path keeps the
    /// source live: rotation renames and creates in quick succession.
    fn refresh_liveness(&mut self, slot: usize) {
        let Some(source) = self.sources[slot].as_mut() else {
            return;
        };
        if !source.live {
            return;
        }
        if let Ok(metadata) = fs::metadata(&self.families[source.family].name.live_path) {
            source.live = FileKey::of(&metadata) == source.key;
        }
    }

    /// Tries to settle the identity of a source opened before its first line was complete.
    fn identify_source(&mut self, slot: usize, now: u64) -> Identified {
        let max = self.config.fingerprint_max_bytes;
        let Some(source) = self.sources[slot].as_mut() else {
            return Identified::Closed;
        };
        let immutable = !source.live || source.reader.is_gz();
        let head = match source.reader.head(max) {
            Ok(head) => head,
            Err(err) => {
                let path = source.path.clone();
                self.events
                    .push(TailEvent::Error(TailError::Read { path, source: err }));
                return Identified::Pending;
            }
        };
        let identity = match identify(&head, max, immutable) {
            Head::Ready(identity) => identity,
            Head::Pending => return Identified::Pending,
            Head::Empty if immutable => {
                self.close(slot);
                return Identified::Closed;
            }
            Head::Empty => return Identified::Pending,
        };
        let fingerprint = identity.fingerprint;
        let family = source.family;
        let path = source.path.clone();
        let offset = match self.book.entries.get_mut(&fingerprint) {
            Some(entry) if entry.held || entry.read_end.is_some() || entry.stored.finished => {
                // The same content is already being read, or was read, under another name.
                self.close(slot);
                return Identified::Closed;
            }
            Some(entry) => {
                entry.held = true;
                entry.stored.gone_since_unix_secs = None;
                entry.stored.last_seen_unix_secs = now;
                entry.stored.offset
            }
            None => {
                self.book.entries.insert(
                    fingerprint,
                    Entry {
                        stored: StoredFile {
                            fingerprint,
                            offset: 0,
                            size: 0,
                            size_is_final: false,
                            finished: false,
                            family: self.families[family].key.clone(),
                            path: path.to_string_lossy().into_owned(),
                            last_seen_unix_secs: now,
                            gone_since_unix_secs: None,
                            lost_from: None,
                        },
                        held: true,
                        read_end: None,
                        recheck: false,
                    },
                );
                0
            }
        };
        self.book.dirty = true;
        if let Some(source) = self.sources[slot].as_mut() {
            source.identity = Some(identity);
            source.buf_offset = offset;
            source.pos = 0;
            source.len = 0;
            source.size_seen = source.size_seen.max(offset);
            // Checked again when reading starts: the file may change before that.
            source.verified = false;
        }
        self.events.push(TailEvent::Opened {
            path,
            fingerprint,
            offset,
        });
        Identified::Ready
    }

    /// Checks, before reading on after a pause, that a plain file still starts with the bytes
    /// it was identified by. A mismatch means it was truncated and rewritten (possibly
    /// rotated since).
    fn verify(&mut self, slot: usize) -> bool {
        let Some(source) = self.sources[slot].as_mut() else {
            return true;
        };
        if source.verified {
            return true;
        }
        source.verified = true;
        self.identity_holds(slot)
    }

    /// Whether the source's file still starts with the bytes it was identified by.
    fn identity_holds(&self, slot: usize) -> bool {
        let Some(source) = self.source(slot) else {
            return true;
        };
        let Some(identity) = source.identity else {
            return true;
        };
        if source.reader.is_gz() {
            return true;
        }
        let Ok(head) = source.reader.head(identity.covered) else {
            // Unreadable now; the read that follows reports the error.
            return true;
        };
        matches!(identify(&head, self.config.fingerprint_max_bytes, true), Head::Ready(now) if now == identity)
    }

    /// The source's file was truncated in place: report what may be lost and start over at
    /// offset 0 with a new identity.
    fn truncated(&mut self, slot: usize) {
        let Some(source) = self.sources[slot].as_mut() else {
            return;
        };
        let framed = source.framed();
        let mut size_seen = source.size_seen.max(source.read_offset());
        if let Some(identity) = source.identity.take() {
            if let Some(entry) = self.book.entries.get_mut(&identity.fingerprint) {
                size_seen = size_seen.max(entry.stored.size);
                entry.held = false;
                entry.read_end = Some(framed);
                entry.stored.lost_from = Some(framed);
                entry.stored.size = entry.stored.size.max(size_seen);
                entry.stored.gone_since_unix_secs = Some(unix_now());
                self.book.dirty = true;
            }
            // What was written after the last read is unknown: report what was seen.
            self.events.push(TailEvent::Loss(Loss {
                path: source.path.clone(),
                fingerprint: identity.fingerprint,
                offset: framed,
                lost: LostBytes::AtLeast(size_seen - framed),
                cause: LossCause::Truncated,
            }));
        }
        source.pos = 0;
        source.len = 0;
        source.buf_offset = 0;
        source.skipping = None;
        source.size_seen = 0;
        source.verified = false;
    }

    /// A rotated source was read to its end (or became unreadable, with `error`): record its
    /// final size and close it.
    fn finish(&mut self, slot: usize, error: Option<io::Error>) {
        let Some(source) = self.sources[slot].as_mut() else {
            return;
        };
        let Some(identity) = source.identity else {
            self.close(slot);
            return;
        };
        let fingerprint = identity.fingerprint;
        let path = source.path.clone();
        let end = source.read_offset();
        if let Some(err) = error {
            self.events.push(TailEvent::Error(TailError::Read {
                path: path.clone(),
                source: err,
            }));
            let framed = source.framed();
            self.events.push(TailEvent::Loss(Loss {
                path,
                fingerprint,
                offset: framed,
                lost: LostBytes::AtLeast(end - framed),
                cause: LossCause::Unreadable,
            }));
            if let Some(entry) = self.book.entries.get_mut(&fingerprint) {
                entry.read_end = Some(framed);
                entry.stored.lost_from = Some(framed);
                self.book.dirty = true;
            }
            self.close(slot);
            return;
        }
        if source.len > source.pos || source.skipping.is_some() {
            let (offset, length) = match source.skipping.take() {
                Some(skip) => (skip.offset, skip.length + (source.len - source.pos) as u64),
                None => (source.framed(), (source.len - source.pos) as u64),
            };
            self.events.push(TailEvent::UnterminatedLine {
                path: path.clone(),
                fingerprint,
                offset,
                length,
            });
            self.book.skip(fingerprint, end);
        }
        if let Some(entry) = self.book.entries.get_mut(&fingerprint) {
            entry.read_end = Some(end);
            entry.stored.size = end;
            entry.stored.size_is_final = true;
            entry.settle();
            self.book.dirty = true;
        }
        self.events.push(TailEvent::Finished {
            path,
            fingerprint,
            size: end,
        });
        self.close(slot);
    }

    /// Closes a source and frees its slot.
    fn close(&mut self, slot: usize) {
        let Some(source) = self.sources[slot].take() else {
            return;
        };
        if self.by_key.get(&source.key) == Some(&slot) {
            self.by_key.remove(&source.key);
        }
        self.families[source.family]
            .queue
            .retain(|&queued| queued != slot);
        if let Some(identity) = source.identity
            && let Some(entry) = self.book.entries.get_mut(&identity.fingerprint)
        {
            entry.held = false;
        }
        self.free_slots.push(slot);
    }
}

/// Frames lines from the source into the batch until the batch is full or the file ends.
fn fill(source: &mut Source, book: &mut Book, batch: &mut Batch, limits: Limits) -> Fill {
    let Some(identity) = source.identity else {
        return Fill::Eof;
    };
    let fingerprint = identity.fingerprint;
    loop {
        while source.pos < source.len {
            let hay = &source.buf[source.pos..source.len];
            let Some(newline) = memchr::memchr(b'\n', hay) else {
                break;
            };
            let start = source.buf_offset + source.pos as u64;
            let end = start + newline as u64 + 1;
            let mut line = &hay[..newline];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if let Some(skip) = source.skipping.take() {
                // The line's length without its newline and a `\r` before it, which may
                // have arrived in an earlier read.
                let mut length = skip.length + newline as u64;
                if hay[..newline].last().map_or(skip.ends_with_cr, |&b| b == b'\r') {
                    length -= 1;
                }
                batch.push_event(TailEvent::LineTooLong {
                    path: source.path.clone(),
                    fingerprint,
                    offset: skip.offset,
                    length,
                });
                source.pos += newline + 1;
                book.skip(fingerprint, end);
                continue;
            }
            if line.is_empty() {
                source.pos += newline + 1;
                book.skip(fingerprint, end);
                continue;
            }
            if line.len() > limits.max_line_bytes {
                batch.push_event(TailEvent::LineTooLong {
                    path: source.path.clone(),
                    fingerprint,
                    offset: start,
                    length: line.len() as u64,
                });
                source.pos += newline + 1;
                book.skip(fingerprint, end);
                continue;
            }
            if batch.is_full(limits.max_lines, limits.max_bytes, line.len()) {
                return Fill::Full;
            }
            let sequence = book.deliver(fingerprint, end);
            batch.push(
                line,
                Position {
                    sequence,
                    fingerprint,
                    offset: start,
                    end,
                },
            );
            source.pos += newline + 1;
        }
        let partial = source.len - source.pos;
        if partial > 0
            && let Some(skip) = source.skipping.as_mut()
        {
            skip.length += partial as u64;
            skip.ends_with_cr = source.buf[source.len - 1] == b'\r';
            source.pos = source.len;
        } else if partial > limits.max_line_bytes + 1 {
            // Longer than any line we deliver, even with a `\r` before its newline.
            let ends_with_cr = source.buf[source.len - 1] == b'\r';
            source.skipping = Some(Skip {
                offset: source.framed(),
                length: partial as u64,
                ends_with_cr,
            });
            source.pos = source.len;
        }
        if source.pos > 0 {
            source.buf.copy_within(source.pos..source.len, 0);
            source.buf_offset += source.pos as u64;
            source.len -= source.pos;
            source.pos = 0;
        }
        let want = source.len + limits.read_chunk_bytes;
        if source.buf.len() < want {
            source.buf.resize(want, 0);
        } else if source.len == 0 && source.buf.len() > 2 * limits.read_chunk_bytes {
            // Give back what a long line needed.
            source.buf.truncate(limits.read_chunk_bytes);
            source.buf.shrink_to_fit();
        }
        let offset = source.read_offset();
        match source.reader.read_at(&mut source.buf[source.len..], offset) {
            Ok(0) => return Fill::Eof,
            Ok(n) => {
                source.len += n;
                source.size_seen = source.size_seen.max(offset + n as u64);
            }
            Err(err) => return Fill::Error(err),
        }
    }
}

/// What is lost of a file that can no longer be read, not reported before; records that it
/// was reported.
fn loss_of(entry: &mut Entry, cause: LossCause) -> Option<Loss> {
    let stored = &mut entry.stored;
    if stored.finished {
        return None;
    }
    let from = stored.offset.max(entry.read_end.unwrap_or(0));
    let lost = match stored.lost_from {
        // Reported from `reported` on already; what is new is the part before it (delivered
        // before a restart, never acknowledged).
        Some(reported) if from >= reported => return None,
        Some(reported) => LostBytes::Exactly(reported - from),
        None if stored.size_is_final && from >= stored.size => return None,
        None if stored.size_is_final => LostBytes::Exactly(stored.size - from),
        None => LostBytes::AtLeast(stored.size.saturating_sub(from)),
    };
    stored.lost_from = Some(from);
    Some(Loss {
        path: PathBuf::from(&stored.path),
        fingerprint: stored.fingerprint,
        offset: from,
        lost,
        cause,
    })
}

/// Offset just past the last newline among the first `size` bytes: where a reader that
/// skips existing content starts without cutting a line.
fn last_line_end(reader: &Reader, size: u64) -> u64 {
    const STEP: u64 = 64 * 1024;
    let mut end = size;
    let mut buf = vec![0; STEP as usize];
    while end > 0 {
        let start = end.saturating_sub(STEP);
        let chunk = &mut buf[..(end - start) as usize];
        let Ok(filled) = reader.read_plain_at(chunk, start) else {
            return 0;
        };
        if let Some(newline) = memchr::memrchr(b'\n', &chunk[..filled]) {
            return start + newline as u64 + 1;
        }
        end = start;
    }
    0
}

fn validate(config: &TailConfig) -> Result<(), TailError> {
    let reason = if config.include.is_empty() {
        "no file to follow"
    } else if config.max_line_bytes == 0 {
        "max_line_bytes must be positive"
    } else if config.read_chunk_bytes == 0 {
        "read_chunk_bytes must be positive"
    } else if config.fingerprint_max_bytes == 0 {
        "fingerprint_max_bytes must be positive"
    } else {
        return Ok(());
    };
    Err(TailError::Config {
        reason: reason.to_owned(),
    })
}

fn parse_include(pattern: &str) -> Result<Include, TailError> {
    if !pattern.contains(['*', '?', '[']) {
        return Ok(Include::Path(PathBuf::from(pattern)));
    }
    glob::Pattern::new(pattern).map_err(|source| TailError::Pattern {
        pattern: pattern.to_owned(),
        source,
    })?;
    Ok(Include::Glob(pattern.to_owned()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
