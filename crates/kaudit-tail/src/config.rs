//! What to follow and how: paths or globs, the state directory and the framing limits.

use std::path::PathBuf;
use std::time::Duration;

/// Where reading starts for files found at the very first start (no checkpoint file yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum StartAt {
    /// Read existing backups and the live file from their first byte.
    #[default]
    Beginning,
    /// Skip what already exists: backups entirely, the live file up to its last complete
    /// line. Files that appear later are still read from their first byte.
    End,
}

/// Configuration of a [`Tailer`](crate::Tailer). Build it with [`TailConfig::new`], then
/// adjust the public fields.
#[derive(Clone, Debug)]
pub struct TailConfig {
    /// Paths or glob patterns (`*`, `?`, `[...]`) of live log files. A match that is itself a
    /// backup name (`audit-<timestamp>.log`) stands for the live file it was rotated from.
    pub include: Vec<String>,
    /// Directory for the checkpoint file and its lock; created if missing.
    pub state_dir: PathBuf,
    /// Where to start on the first start.
    pub start_at: StartAt,
    /// Longest line delivered, in bytes, without its `\n` (and `\r`). Longer lines are
    /// reported as [`TailEvent::LineTooLong`](crate::TailEvent::LineTooLong) and skipped.
    pub max_line_bytes: usize,
    /// Size of each read from a file.
    pub read_chunk_bytes: usize,
    /// Longest first line hashed for a file's fingerprint.
    pub fingerprint_max_bytes: usize,
    /// Minimum time between two listings of the directories (new files and backups). A file
    /// seen rotated triggers an immediate listing of its directory; zero lists on every poll.
    pub scan_interval: Duration,
    /// How long the checkpoint of a file that is gone from disk is kept.
    pub forget_after: Duration,
}

impl TailConfig {
    /// Default longest line: audit events with large request and response bodies reach
    /// megabytes; the apiserver's own truncation (when enabled) caps events at 100 KiB.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
    /// Default read size.
    pub const DEFAULT_READ_CHUNK_BYTES: usize = 1024 * 1024;
    /// Default fingerprint length cap.
    pub const DEFAULT_FINGERPRINT_MAX_BYTES: usize = 1024;
    /// Default time between directory listings.
    pub const DEFAULT_SCAN_INTERVAL: Duration = Duration::from_secs(1);
    /// Default retention of checkpoints of deleted files.
    pub const DEFAULT_FORGET_AFTER: Duration = Duration::from_secs(3600);

    /// A configuration following `include` with checkpoints in `state_dir` and the defaults
    /// above, starting at the beginning.
    pub fn new(include: Vec<String>, state_dir: PathBuf) -> TailConfig {
        TailConfig {
            include,
            state_dir,
            start_at: StartAt::Beginning,
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            read_chunk_bytes: Self::DEFAULT_READ_CHUNK_BYTES,
            fingerprint_max_bytes: Self::DEFAULT_FINGERPRINT_MAX_BYTES,
            scan_interval: Self::DEFAULT_SCAN_INTERVAL,
            forget_after: Self::DEFAULT_FORGET_AFTER,
        }
    }
}
