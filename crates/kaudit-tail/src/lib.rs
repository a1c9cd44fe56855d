//! Tailing the kube-apiserver audit log across rotations and restarts, with nothing lost.
//!
//! Owns: following files (paths or globs) through lumberjack rotation (rename and create,
//! timestamped backups, `.gz` compression, pruning) and copytruncate; file identity by
//! fingerprint; framing lines; acknowledgement-driven, crash-safe checkpoints; reporting
//! loss. Must never: know HTTP, shipping or batching policy, or the audit event schema
//! (lines are opaque bytes).
//!
//! Brief overview:
//! * [`Tailer::open`] takes a [`TailConfig`] (what to follow, the state directory, limits),
//!   loads the checkpoint and finds the files, catching up through backups (`.gz` included)
//!   that appeared while no tailer ran, in rotation order, then the live file.
//! * [`Tailer::poll`] returns a [`Batch`]: up to a number of lines (bytes without the
//!   newline, each with a [`Position`]) plus [`TailEvent`]s (files opened and finished,
//!   [`Loss`], overlong lines, errors). It never blocks; the caller sleeps when a batch is
//!   empty (the poll interval is the caller's).
//! * [`Tailer::ack`] acknowledges a delivered line and all lines before it, in delivery
//!   order, for example after the intake answered 2xx. [`Tailer::checkpoint`] persists the
//!   acknowledged offsets; call it after acks and before dropping the tailer.
//!
//! Guarantees: every line written to a followed file is delivered, in file order, complete
//! (a partial last line waits for its newline; a line longer than `max_line_bytes` is
//! reported and skipped, never cut). After a restart delivery resumes exactly after the last
//! line acknowledged before the last checkpoint, so lines delivered but not acknowledged are
//! delivered again (at-least-once); `(fingerprint, offset)` names a line across restarts.
//! Data that can no longer be read (a file pruned before it was read, a truncated file) is
//! reported as a [`Loss`] when the file was known.
//!
//! Identity: a file is known by a hash of its first line (see [`Fingerprint`]), which
//! survives rename and gzip. Every audit line carries a unique `auditID` and timestamps, so
//! first lines are unique; two files starting with the same line would be taken for one.
//!
//! Known loss windows: a file created and deleted between two scans (or while no tailer
//! runs) is never seen, so its loss cannot be reported; copytruncate loses what was written
//! between the last read and the truncation (reported as at least what was seen).
//!
//! Unix only (device and inode numbers identify open files).
//!
//! ```no_run
//! use kaudit_tail::{TailConfig, Tailer};
//!
//! let config = TailConfig::new(
//!     vec!["/var/log/kubernetes/audit/audit.log".to_owned()],
//!     "/var/lib/kaudit/tail".into(),
//! );
//! let mut tailer = Tailer::open(config)?;
//! loop {
//!     let batch = tailer.poll(10_000, 8 << 20);
//!     for event in batch.events() {
//!         eprintln!("{event:?}");
//!     }
//!     if batch.is_empty() {
//!         std::thread::sleep(std::time::Duration::from_millis(250));
//!         continue;
//!     }
//!     for line in batch.lines() {
//!         let _ = (line.bytes, line.position.fingerprint(), line.position.offset());
//!     }
//!     // ... ship the lines; once the intake answered 2xx:
//!     tailer.ack_batch(&batch);
//!     tailer.checkpoint()?;
//! }
//! # Ok::<(), kaudit_tail::TailError>(())
//! ```

mod acks;
mod batch;
mod checkpoint;
mod config;
mod error;
mod event;
mod fingerprint;
mod naming;
mod reader;
mod tailer;

pub use batch::{Batch, Line, Position};
pub use config::{StartAt, TailConfig};
pub use error::TailError;
pub use event::{Loss, LossCause, LostBytes, TailEvent};
pub use fingerprint::{Fingerprint, ParseFingerprintError};
pub use tailer::{FileStatus, Tailer};
