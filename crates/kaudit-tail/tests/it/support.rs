//! A temporary log directory and state directory, file operations shaped like lumberjack's,
//! and helpers to drain a tailer.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use flate2::Compression;
use flate2::write::GzEncoder;
use kaudit_tail::{Batch, Position, TailConfig, TailEvent, Tailer};

/// A log directory with `audit.log` and a state directory, both temporary.
pub struct Fixture {
    _dir: tempfile::TempDir,
    pub logs: PathBuf,
    pub state: PathBuf,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let logs = dir.path().join("logs");
        let state = dir.path().join("state");
        fs::create_dir(&logs).expect("create log dir");
        Fixture {
            _dir: dir,
            logs,
            state,
        }
    }

    /// The live file.
    pub fn live(&self) -> PathBuf {
        self.logs.join("audit.log")
    }

    /// A configuration following `audit.log` that lists the directory on every poll.
    pub fn config(&self) -> TailConfig {
        let mut config = TailConfig::new(vec![self.live().display().to_string()], self.state.clone());
        config.scan_interval = Duration::ZERO;
        config.forget_after = Duration::from_secs(1 << 30);
        config
    }

    pub fn open(&self) -> Tailer {
        Tailer::open(self.config()).expect("open tailer")
    }

    /// Appends `text` to the live file (creating it).
    pub fn append(&self, text: &str) {
        append(&self.live(), text);
    }

    /// Rotates like lumberjack: rename the live file to its backup name, create a new one.
    /// Returns the backup path.
    pub fn rotate(&self, stamp: &str) -> PathBuf {
        let backup = self.backup(stamp);
        fs::rename(self.live(), &backup).expect("rename live file");
        File::create(self.live()).expect("create live file");
        backup
    }

    /// The backup path for `stamp` (`YYYY-MM-DDTHH-MM-SS.mmm`).
    pub fn backup(&self, stamp: &str) -> PathBuf {
        self.logs.join(format!("audit-{stamp}.log"))
    }

    /// Compresses `backup` to `backup.gz` and deletes it, as lumberjack does.
    pub fn gzip(&self, backup: &Path) -> PathBuf {
        let gz = gzip_to(backup, &gz_path(backup));
        fs::remove_file(backup).expect("remove compressed backup");
        gz
    }
}

pub fn gz_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// Writes the gzip of `source` to `target`.
pub fn gzip_to(source: &Path, target: &Path) -> PathBuf {
    let content = fs::read(source).expect("read file to compress");
    let mut encoder = GzEncoder::new(File::create(target).expect("create gz"), Compression::fast());
    encoder.write_all(&content).expect("compress");
    encoder.finish().expect("finish gz");
    target.to_path_buf()
}

pub fn append(path: &Path, text: &str) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open for append");
    file.write_all(text.as_bytes()).expect("append");
}

/// Everything a tailer returned until it had nothing more.
#[derive(Debug, Default)]
pub struct Drained {
    pub lines: Vec<String>,
    pub positions: Vec<Position>,
    pub events: Vec<TailEvent>,
}

impl Drained {
    pub fn losses(&self) -> Vec<kaudit_tail::Loss> {
        self.events
            .iter()
            .filter_map(|event| match event {
                TailEvent::Loss(loss) => Some(loss.clone()),
                _ => None,
            })
            .collect()
    }

    /// Events other than `Opened` and `Finished`, rendered without paths.
    pub fn notable_events(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| match event {
                TailEvent::Opened { .. } | TailEvent::Finished { .. } => None,
                TailEvent::Loss(loss) => Some(format!(
                    "loss {:?} at {} {:?}",
                    loss.cause, loss.offset, loss.lost
                )),
                TailEvent::LineTooLong { offset, length, .. } => {
                    Some(format!("too long at {offset} ({length})"))
                }
                TailEvent::UnterminatedLine { offset, length, .. } => {
                    Some(format!("unterminated at {offset} ({length})"))
                }
                other => Some(format!("{other:?}")),
            })
            .collect()
    }
}

/// How a drain acknowledges what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckMode {
    /// Never acknowledge.
    None,
    /// Acknowledge each batch and write a checkpoint.
    EachBatch,
}

/// Polls until two polls in a row return nothing, in batches of `max_lines`.
pub fn drain(tailer: &mut Tailer, max_lines: usize, ack: AckMode) -> Drained {
    let mut drained = Drained::default();
    let mut batch = Batch::new();
    let mut empty_polls = 0;
    while empty_polls < 2 {
        tailer.poll_into(&mut batch, max_lines, usize::MAX);
        drained.events.extend(batch.take_events());
        if batch.is_empty() {
            empty_polls += 1;
            continue;
        }
        empty_polls = 0;
        for line in batch.lines() {
            drained
                .lines
                .push(String::from_utf8_lossy(line.bytes).into_owned());
            drained.positions.push(line.position);
        }
        if ack == AckMode::EachBatch {
            tailer.ack_batch(&batch);
            tailer.checkpoint().expect("checkpoint");
        }
    }
    drained
}

/// `count` numbered lines `"<tag>-<n>"`, newline-terminated.
pub fn lines(tag: &str, range: std::ops::Range<usize>) -> String {
    range.map(|n| format!("{tag}-{n}\n")).collect()
}

/// The expected delivered lines for `lines(tag, range)`.
pub fn expected(tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|n| format!("{tag}-{n}")).collect()
}
