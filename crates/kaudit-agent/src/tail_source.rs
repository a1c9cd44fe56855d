//! The tail source: a reader thread over `kaudit-tail` that frames lines into batches, and a
//! compressor thread that gzips them, so that reading, compressing and sending overlap.
//!
//! Checkpoints: each batch gets a sequence number and remembers the position of its last
//! line. The shipper sends back the sequence number of each tail batch the intake
//! acknowledged (in order); only then is the position acknowledged to the tailer and the
//! checkpoint written (at most every [`CHECKPOINT_EVERY`], and at shutdown). Lines cut by the
//! filter need no delivery: their positions ride on the batch before or after them.
//!
//! Nothing here parses JSON unless a scope or policy is configured.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kaudit_tail::{Batch, LostBytes, Position, TailConfig, TailEvent, Tailer};

use crate::batch::{BatchBuilder, RawBatch};
use crate::config::{AgentConfig, BatchConfig, StartAt};
use crate::error::AgentError;
use crate::filter::{Filter, Verdict};
use crate::spool::{Origin, Record};
use crate::telemetry::Metrics;

/// Longest time between two checkpoint writes while acknowledgements arrive.
pub const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);
/// How often the lag in bytes is recomputed.
const LAG_EVERY: Duration = Duration::from_secs(1);
/// Raw batches waiting for the compressor.
const COMPRESS_QUEUE: usize = 2;

/// Handles of the running tail source.
pub struct TailHandles {
    reader: std::thread::JoinHandle<()>,
    compressor: std::thread::JoinHandle<()>,
    stop: Arc<AtomicBool>,
}

impl TailHandles {
    /// Asks the reader to stop and waits until it wrote the final checkpoint. The compressor
    /// ends by itself once its queue is drained (it may be waiting for the shipper).
    pub fn stop(self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.reader.join();
        drop(self.compressor);
    }
}

/// Opens the tailer (failing early on a locked or unreadable state directory) and starts the
/// reader and compressor threads. Compressed batches go to `output`; sequence numbers of
/// delivered batches come back on `acks`.
pub fn start(
    config: &AgentConfig,
    filter: Option<Arc<Filter>>,
    metrics: Arc<Metrics>,
    run_id: u64,
    output: tokio::sync::mpsc::Sender<Record>,
    acks: Receiver<u64>,
) -> Result<TailHandles, AgentError> {
    let mut tail_config = TailConfig::new(config.files.clone(), config.checkpoint_dir());
    tail_config.start_at = match config.start_at {
        StartAt::Beginning => kaudit_tail::StartAt::Beginning,
        StartAt::End => kaudit_tail::StartAt::End,
    };
    tail_config.max_line_bytes = config.max_line_bytes;
    let tailer = Tailer::open(tail_config).map_err(|err| AgentError::Tail(error_chain(&err)))?;
    let stop = Arc::new(AtomicBool::new(false));
    let (raw_sender, raw_receiver) = std::sync::mpsc::sync_channel::<(RawBatch, u64)>(COMPRESS_QUEUE);
    let gzip_level = config.batch.gzip_level;
    let compressor_metrics = metrics.clone();
    let compressor = std::thread::Builder::new()
        .name("kaudit-gzip".into())
        .spawn(move || compress_loop(raw_receiver, output, gzip_level, run_id, &compressor_metrics))
        .map_err(|source| AgentError::Io {
            context: "cannot start the compressor thread".into(),
            source,
        })?;
    let reader = Reader {
        tailer,
        builder: BatchBuilder::new(&config.batch),
        batch_config: config.batch,
        pending: VecDeque::new(),
        builder_position: None,
        next_seq: 0,
        acks,
        raw_sender,
        filter,
        metrics: metrics.clone(),
        poll_interval: Duration::from_millis(config.poll_interval_ms),
        last_checkpoint: Instant::now(),
        last_lag: None,
        stop: stop.clone(),
    };
    let reader = std::thread::Builder::new()
        .name("kaudit-tail".into())
        .spawn(move || {
            let metrics = reader.metrics.clone();
            if let Err(err) = reader.run() {
                metrics.healthy.store(false, Ordering::Relaxed);
                tracing::error!(error = %err, "the tail source stopped");
            }
        })
        .map_err(|source| AgentError::Io {
            context: "cannot start the tail thread".into(),
            source,
        })?;
    Ok(TailHandles {
        reader,
        compressor,
        stop,
    })
}

struct Reader {
    tailer: Tailer,
    builder: BatchBuilder,
    batch_config: BatchConfig,
    /// Batches handed to the shipper and not yet acknowledged: (sequence, last position).
    pending: VecDeque<(u64, Position)>,
    /// Position of the last line consumed into the batch under construction.
    builder_position: Option<Position>,
    next_seq: u64,
    acks: Receiver<u64>,
    raw_sender: SyncSender<(RawBatch, u64)>,
    filter: Option<Arc<Filter>>,
    metrics: Arc<Metrics>,
    poll_interval: Duration,
    last_checkpoint: Instant,
    last_lag: Option<Instant>,
    stop: Arc<AtomicBool>,
}

impl Reader {
    fn run(mut self) -> Result<(), AgentError> {
        let mut batch = Batch::new();
        let max_lines = self.batch_config.max_events;
        let max_bytes = self.batch_config.max_bytes;
        loop {
            if self.stop.load(Ordering::Acquire) {
                self.apply_acks()?;
                self.checkpoint(true)?;
                return Ok(());
            }
            self.apply_acks()?;
            self.checkpoint(false)?;
            self.update_lag();
            let room_lines = max_lines.saturating_sub(self.builder.len() as usize).max(1);
            self.tailer.poll_into(&mut batch, room_lines, max_bytes);
            for event in batch.take_events() {
                self.report(event);
            }
            if batch.is_empty() {
                let now = Instant::now();
                if self.builder.is_due(now) {
                    self.cut()?;
                    continue;
                }
                let wait = self
                    .builder
                    .due_in(now)
                    .map_or(self.poll_interval, |due| due.min(self.poll_interval));
                self.wait_for_acks(wait)?;
                continue;
            }
            Metrics::add(&self.metrics.lines_read, batch.len() as u64);
            Metrics::add(
                &self.metrics.bytes_read,
                (batch.line_bytes() + batch.len()) as u64,
            );
            for line in batch.lines() {
                self.consume(line.bytes, line.position);
                if self.builder.is_full() {
                    self.cut()?;
                }
            }
            if self.builder.is_due(Instant::now()) {
                self.cut()?;
            }
        }
    }

    fn consume(&mut self, bytes: &[u8], position: Position) {
        let Some(filter) = &self.filter else {
            self.builder.push(bytes);
            self.builder_position = Some(position);
            return;
        };
        let verdict = match std::str::from_utf8(bytes) {
            Ok(text) => filter.apply(text),
            Err(_) => Verdict::Unparsed,
        };
        match verdict {
            Verdict::Ship(text) => {
                self.builder.push(text.as_bytes());
                self.builder_position = Some(position);
            }
            Verdict::Unparsed => {
                self.builder.push(bytes);
                self.builder_position = Some(position);
            }
            Verdict::Filtered => {
                Metrics::add(&self.metrics.events_filtered, 1);
                if !self.builder.is_empty() {
                    self.builder_position = Some(position);
                } else if let Some(last) = self.pending.back_mut() {
                    // Acknowledging the previous batch covers this line too.
                    last.1 = position;
                } else {
                    self.tailer.ack(position);
                }
            }
        }
    }

    fn cut(&mut self) -> Result<(), AgentError> {
        let (Some(raw), Some(position)) = (self.builder.take(), self.builder_position.take()) else {
            return Ok(());
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        self.pending.push_back((seq, position));
        // Blocks while the compressor is busy: the back pressure that bounds memory.
        let mut item = (raw, seq);
        loop {
            match self.raw_sender.try_send(item) {
                Ok(()) => return Ok(()),
                Err(std::sync::mpsc::TrySendError::Full(back)) => {
                    item = back;
                    // Keep acknowledging while waiting, or a full pipeline could stall
                    // checkpoints.
                    self.wait_for_acks(Duration::from_millis(5))?;
                    if self.stop.load(Ordering::Acquire) {
                        return Ok(());
                    }
                }
                Err(std::sync::mpsc::TrySendError::Disconnected(_)) => {
                    return Err(AgentError::Tail("the compressor thread stopped".into()));
                }
            }
        }
    }

    fn wait_for_acks(&mut self, wait: Duration) -> Result<(), AgentError> {
        match self.acks.recv_timeout(wait) {
            Ok(seq) => self.acknowledge(seq),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
        self.apply_acks()?;
        self.checkpoint(false)
    }

    fn apply_acks(&mut self) -> Result<(), AgentError> {
        loop {
            match self.acks.try_recv() {
                Ok(seq) => self.acknowledge(seq),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return Ok(()),
            }
        }
    }

    fn acknowledge(&mut self, seq: u64) {
        let mut last = None;
        while let Some(&(pending_seq, position)) = self.pending.front() {
            if pending_seq > seq {
                break;
            }
            last = Some(position);
            self.pending.pop_front();
        }
        if let Some(position) = last {
            self.tailer.ack(position);
        }
    }

    fn checkpoint(&mut self, now: bool) -> Result<(), AgentError> {
        if now || self.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            self.last_checkpoint = Instant::now();
            if let Err(err) = self.tailer.checkpoint() {
                // The next attempt may succeed (a full disk freed); until then a restart
                // re-reads more, which the intake collapses.
                tracing::error!(error = %error_chain(&err), "cannot write the tail checkpoint");
            }
        }
        Ok(())
    }

    fn update_lag(&mut self) {
        if self.last_lag.is_some_and(|last| last.elapsed() < LAG_EVERY) {
            return;
        }
        self.last_lag = Some(Instant::now());
        let lag: u64 = self
            .tailer
            .files()
            .iter()
            .filter(|file| !file.gone)
            .map(|file| file.size.saturating_sub(file.acknowledged))
            .sum();
        self.metrics.lag_bytes.store(lag, Ordering::Relaxed);
    }

    fn report(&mut self, event: TailEvent) {
        match event {
            TailEvent::Opened {
                path,
                fingerprint,
                offset,
            } => {
                tracing::info!(path = %path.display(), fingerprint = %fingerprint, offset, "reading audit log file");
            }
            TailEvent::Finished {
                path,
                fingerprint,
                size,
            } => {
                tracing::debug!(path = %path.display(), fingerprint = %fingerprint, size, "rotated file read to its end");
            }
            TailEvent::Loss(loss) => {
                let (bytes, exact) = match loss.lost {
                    LostBytes::Exactly(bytes) => (bytes, true),
                    LostBytes::AtLeast(bytes) => (bytes, false),
                };
                Metrics::add(&self.metrics.lost_bytes, bytes);
                Metrics::add(&self.metrics.lost_files, 1);
                tracing::error!(
                    path = %loss.path.display(),
                    fingerprint = %loss.fingerprint,
                    from_offset = loss.offset,
                    lost_bytes = bytes,
                    exact,
                    cause = ?loss.cause,
                    "audit log data lost before it could be read"
                );
            }
            TailEvent::LineTooLong {
                path, offset, length, ..
            } => {
                Metrics::add(&self.metrics.lines_too_long, 1);
                tracing::error!(
                    path = %path.display(),
                    offset,
                    length,
                    "audit log line longer than max_line_bytes, skipped"
                );
            }
            TailEvent::UnterminatedLine {
                path, offset, length, ..
            } => {
                Metrics::add(&self.metrics.lines_too_long, 1);
                tracing::error!(path = %path.display(), offset, length, "rotated file ended in a partial line, skipped");
            }
            TailEvent::Error(err) => {
                tracing::warn!(error = %error_chain(&err), "audit log not readable; retrying");
            }
            other => tracing::debug!(event = ?other, "tail event"),
        }
    }
}

fn compress_loop(
    input: Receiver<(RawBatch, u64)>,
    output: tokio::sync::mpsc::Sender<Record>,
    gzip_level: u32,
    run_id: u64,
    metrics: &Metrics,
) {
    while let Ok((raw, seq)) = input.recv() {
        let body = crate::batch::gzip(&raw.body, gzip_level);
        let record = Record {
            origin: Origin::Tail { run_id, seq },
            events: raw.events,
            raw_bytes: u32::try_from(raw.body.len()).unwrap_or(u32::MAX),
            newest_nanos: raw.newest_nanos,
            body: Bytes::from(body),
        };
        if output.blocking_send(record).is_err() {
            metrics.healthy.store(false, Ordering::Relaxed);
            return;
        }
    }
}

/// An error and its causes on one line.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
