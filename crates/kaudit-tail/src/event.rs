//! What the tailer reports besides lines: files opened and finished, loss, skipped lines
//! and per-file errors.

use std::path::PathBuf;

use crate::error::TailError;
use crate::fingerprint::Fingerprint;

/// Something the caller should count or log. Returned in [`Batch::events`](crate::Batch::events).
#[derive(Debug)]
#[non_exhaustive]
pub enum TailEvent {
    /// Reading of a file starts (or resumes) at `offset`.
    Opened {
        /// Where the file was found.
        path: PathBuf,
        /// Its identity.
        fingerprint: Fingerprint,
        /// First byte to be read.
        offset: u64,
    },
    /// A rotated file was read to its end and closed.
    Finished {
        /// The last path the file had.
        path: PathBuf,
        /// Its identity.
        fingerprint: Fingerprint,
        /// Its total size in uncompressed bytes.
        size: u64,
    },
    /// Data that was written will never be read.
    Loss(Loss),
    /// A line longer than `max_line_bytes` was skipped whole.
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// Its identity.
        fingerprint: Fingerprint,
        /// Offset of the line's first byte.
        offset: u64,
        /// Length of the line without its newline.
        length: u64,
    },
    /// A rotated file ended without a newline; its unterminated last line was skipped.
    UnterminatedLine {
        /// The file.
        path: PathBuf,
        /// Its identity.
        fingerprint: Fingerprint,
        /// Offset of the line's first byte.
        offset: u64,
        /// Length of the fragment.
        length: u64,
    },
    /// A file or directory could not be read; the tailer retries at the next scan or poll.
    Error(TailError),
}

/// Bytes that were written but will never be delivered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loss {
    /// The last path the file had.
    pub path: PathBuf,
    /// Its identity.
    pub fingerprint: Fingerprint,
    /// Offset (uncompressed) from which the data is lost: nothing from there on was
    /// acknowledged (after a restart) or delivered (while running).
    pub offset: u64,
    /// How much is lost.
    pub lost: LostBytes,
    /// Why.
    pub cause: LossCause,
}

/// An amount of lost data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostBytes {
    /// Exactly this many bytes (the file's final size was known).
    Exactly(u64),
    /// At least this many bytes, possibly more (the file may have grown after it was last
    /// seen); `AtLeast(0)` means the amount is unknown.
    AtLeast(u64),
}

/// Why data was lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LossCause {
    /// The file was deleted (pruned by maxbackup or maxage, or removed by hand) before it was
    /// read to its end.
    Deleted,
    /// The file was truncated in place (copytruncate) before it was read to its end.
    Truncated,
    /// The file cannot be decoded past `offset` (a corrupt or cut `.gz`).
    Unreadable,
}
