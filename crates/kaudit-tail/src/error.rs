//! The crate's error type: every failure names the file or directory it concerns.

use std::io;
use std::path::PathBuf;

/// Errors of the tailer. Failures on one followed file do not stop the others: they are
/// reported as [`TailEvent::Error`](crate::TailEvent::Error) in a [`Batch`](crate::Batch).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TailError {
    /// The configuration cannot work (for example an empty list of paths).
    #[error("invalid tail configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
    /// A `--file` pattern is not a valid glob.
    #[error("invalid path pattern {pattern:?}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// The glob parser's complaint.
        #[source]
        source: glob::PatternError,
    },
    /// The state directory cannot be created, opened or locked.
    #[error("cannot use state directory {path}")]
    StateDir {
        /// The state directory.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// Another tailer holds the lock on the state directory.
    #[error("state directory {path} is locked by another process")]
    StateDirLocked {
        /// The state directory.
        path: PathBuf,
    },
    /// The checkpoint file exists but cannot be read.
    #[error("cannot read checkpoint file {path}")]
    ReadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// The checkpoint file is not a valid checkpoint (and no valid temporary file exists).
    #[error("checkpoint file {path} is not valid")]
    ParseCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What the decoder found.
        #[source]
        source: serde_json::Error,
    },
    /// A checkpoint entry holds a malformed fingerprint.
    #[error("checkpoint file {path} holds an invalid fingerprint {fingerprint:?}")]
    BadFingerprint {
        /// The checkpoint file.
        path: PathBuf,
        /// The text found.
        fingerprint: String,
    },
    /// Writing the checkpoint file failed; the previous checkpoint is still in place.
    #[error("cannot write checkpoint file {path}")]
    WriteCheckpoint {
        /// The file being written.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
    /// Reading a followed file or listing its directory failed.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// The underlying failure.
        #[source]
        source: io::Error,
    },
}
