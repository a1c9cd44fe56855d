//! The shipper: the queue of compressed batches between the sources and the intake, and the
//! sender that delivers them in order with retries.
//!
//! Queue: tail batches stay in a small in-memory queue while the intake keeps up; when it
//! does not (or the spool already holds something), they go to the disk spool, up to half of
//! its bound; beyond that the tail source waits, leaving the rest in the log files (the
//! apiserver's own backups are the buffer; they can be pruned, which the tail reports as
//! lost). Webhook batches always go to the spool, durably, before the apiserver gets its
//! 2xx. Memory entries are only added while the spool is empty, so they are always older
//! than anything spooled, and the sender takes memory first: every source is delivered in
//! the order it was read.
//!
//! Delivery: one batch at a time, retried with exponential backoff and full jitter until the
//! intake answers 2xx (or rejects the content for good: counted as dropped). Only then is the
//! batch removed and, for tail batches of this process, its sequence number handed back to
//! the tail source, which advances the checkpoint.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::{FsyncPolicy, RetryConfig};
use crate::error::AgentError;
use crate::intake::{IntakeClient, Outcome};
use crate::spool::{Durability, Record, RecordId, Spool};
use crate::telemetry::Metrics;

/// Batches kept in memory before tail batches spill to the spool.
const MEMORY_BATCHES: usize = 4;
/// Safety net for missed wake-ups: queues are re-examined at least this often.
const IDLE_RECHECK: Duration = Duration::from_millis(500);

/// The queue and the sender.
pub struct Shipper {
    spool: Arc<Mutex<Spool>>,
    memory: Mutex<VecDeque<Record>>,
    spool_empty: AtomicBool,
    work: Notify,
    space: Notify,
    metrics: Arc<Metrics>,
    retry: RetryConfig,
    fsync: FsyncPolicy,
    tail_spool_bytes: u64,
    run_id: u64,
    tail_acks: Mutex<Option<std::sync::mpsc::Sender<u64>>>,
}

/// How sending one body ended.
enum Sent {
    Delivered,
    Rejected(String),
    /// The record was dropped from the spool while its delivery was being retried.
    Abandoned,
}

enum Next {
    Memory(Record),
    Spooled(RecordId, Record),
}

impl Shipper {
    /// A shipper over an opened spool. `run_id` identifies this process in tail records.
    pub fn new(
        spool: Spool,
        spool_max_bytes: u64,
        fsync: FsyncPolicy,
        retry: RetryConfig,
        metrics: Arc<Metrics>,
        run_id: u64,
    ) -> Arc<Shipper> {
        let shipper = Shipper {
            spool_empty: AtomicBool::new(spool.is_empty()),
            spool: Arc::new(Mutex::new(spool)),
            memory: Mutex::new(VecDeque::new()),
            work: Notify::new(),
            space: Notify::new(),
            metrics,
            retry,
            fsync,
            tail_spool_bytes: spool_max_bytes / 2,
            run_id,
            tail_acks: Mutex::new(None),
        };
        shipper.refresh_spool_gauges(&lock(&shipper.spool));
        Arc::new(shipper)
    }

    /// This process's id, carried by its tail records.
    pub fn run_id(&self) -> u64 {
        self.run_id
    }

    /// Where sequence numbers of delivered tail batches are sent.
    pub fn set_tail_acks(&self, sender: std::sync::mpsc::Sender<u64>) {
        *lock(&self.tail_acks) = Some(sender);
    }

    /// Queues a tail batch, waiting while the queue is at its bound.
    pub async fn admit_tail(&self, record: Record) -> Result<(), AgentError> {
        loop {
            let space = self.space.notified();
            {
                let mut memory = lock(&self.memory);
                if self.spool_empty.load(Ordering::Acquire) && memory.len() < MEMORY_BATCHES {
                    memory.push_back(record);
                    drop(memory);
                    self.work.notify_one();
                    return Ok(());
                }
            }
            if crate::telemetry::Metrics::get(&self.metrics.spool_bytes) < self.tail_spool_bytes {
                self.spool_append(record, Durability::Buffered).await?;
                return Ok(());
            }
            let _ = tokio::time::timeout(IDLE_RECHECK, space).await;
        }
    }

    /// Stores a webhook batch in the spool (fsync per the policy) and returns once it is there.
    pub async fn admit_webhook(&self, record: Record) -> Result<(), AgentError> {
        let durability = match self.fsync {
            FsyncPolicy::Always => Durability::Sync,
            FsyncPolicy::Never => Durability::Buffered,
        };
        self.spool_append(record, durability).await
    }

    /// Delivers batches forever.
    pub async fn run_sender(self: Arc<Self>, client: IntakeClient) {
        let mut jitter = Jitter::seeded();
        loop {
            let next = match self.next().await {
                Ok(Some(next)) => next,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!(error = %err, "cannot read the spool; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let (record, spooled) = match next {
                Next::Memory(record) => (record, None),
                Next::Spooled(id, record) => (record, Some(id)),
            };
            let delivered = self.deliver(&client, &record, spooled, &mut jitter).await;
            match spooled {
                None => {
                    lock(&self.memory).pop_front();
                }
                Some(id) => {
                    if let Err(err) = self.spool_commit(id).await {
                        tracing::error!(error = %err, "cannot record a delivery in the spool; it will be sent again");
                    }
                }
            }
            if delivered
                && let crate::spool::Origin::Tail { run_id, seq } = record.origin
                && run_id == self.run_id
                && let Some(sender) = lock(&self.tail_acks).as_ref()
            {
                let _ = sender.send(seq);
            }
            self.space.notify_waiters();
        }
    }

    /// Sends one batch until it is delivered (true), or dropped from the spool meanwhile
    /// (false). A batch the intake rejects as invalid is split until the offending events are
    /// isolated: only those are dropped (and counted), the rest is delivered.
    async fn deliver(
        &self,
        client: &IntakeClient,
        record: &Record,
        spooled: Option<RecordId>,
        jitter: &mut Jitter,
    ) -> bool {
        match self
            .send_with_retries(client, record.body.clone(), spooled, jitter)
            .await
        {
            Sent::Delivered => {
                self.count_delivered(
                    u64::from(record.events),
                    u64::from(record.raw_bytes),
                    record.body.len(),
                );
                self.metrics
                    .newest_shipped_nanos
                    .fetch_max(record.newest_nanos, Ordering::Relaxed);
                true
            }
            Sent::Abandoned => false,
            Sent::Rejected(reason) => {
                self.bisect(client, record, &reason, jitter).await;
                self.metrics
                    .newest_shipped_nanos
                    .fetch_max(record.newest_nanos, Ordering::Relaxed);
                true
            }
        }
    }

    /// Delivers a rejected batch in halves, recursively, dropping single rejected events.
    async fn bisect(&self, client: &IntakeClient, record: &Record, reason: &str, jitter: &mut Jitter) {
        let mut plain = Vec::new();
        let limit = u64::from(record.raw_bytes) + 1;
        let decoded = std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(&record.body[..]), limit),
            &mut plain,
        );
        let lines: Vec<&[u8]> = plain
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .collect();
        if decoded.is_err() || lines.len() <= 1 {
            self.drop_rejected(u64::from(record.events), reason);
            return;
        }
        tracing::warn!(events = lines.len(), reason = %reason, "the intake rejected a batch; delivering it in parts");
        let mut pending = vec![(0, lines.len())];
        while let Some((start, end)) = pending.pop() {
            let mut body = Vec::new();
            for line in &lines[start..end] {
                body.extend_from_slice(line);
                body.push(b'\n');
            }
            let compressed = bytes::Bytes::from(crate::batch::gzip(&body, 1));
            let compressed_len = compressed.len();
            match self.send_with_retries(client, compressed, None, jitter).await {
                Sent::Delivered => {
                    self.count_delivered((end - start) as u64, body.len() as u64, compressed_len)
                }
                Sent::Abandoned => return,
                Sent::Rejected(reason) if end - start == 1 => self.drop_rejected(1, &reason),
                Sent::Rejected(_) => {
                    let middle = start + (end - start) / 2;
                    pending.push((middle, end));
                    pending.push((start, middle));
                }
            }
        }
    }

    fn count_delivered(&self, events: u64, raw_bytes: u64, sent_bytes: usize) {
        let metrics = &self.metrics;
        Metrics::add(&metrics.events_shipped, events);
        Metrics::add(&metrics.batches_shipped, 1);
        Metrics::add(&metrics.bytes_shipped, raw_bytes);
        Metrics::add(&metrics.bytes_sent, sent_bytes as u64);
    }

    fn drop_rejected(&self, events: u64, reason: &str) {
        Metrics::add(&self.metrics.dropped_rejected, events);
        tracing::error!(events, reason = %reason, "the intake rejected events as invalid; they are dropped");
    }

    /// Sends one body, retrying failures with backoff, until the intake answers.
    async fn send_with_retries(
        &self,
        client: &IntakeClient,
        body: bytes::Bytes,
        spooled: Option<RecordId>,
        jitter: &mut Jitter,
    ) -> Sent {
        let mut attempt: u32 = 0;
        loop {
            match client.send(body.clone()).await {
                Outcome::Delivered => {
                    self.metrics.intake_up.store(true, Ordering::Relaxed);
                    if attempt > 0 {
                        tracing::info!(attempts = attempt + 1, "intake reachable again");
                    }
                    return Sent::Delivered;
                }
                Outcome::Rejected(reason) => {
                    self.metrics.intake_up.store(true, Ordering::Relaxed);
                    return Sent::Rejected(reason);
                }
                Outcome::Retry(reason) => {
                    self.metrics.intake_up.store(false, Ordering::Relaxed);
                    Metrics::add(&self.metrics.retries, 1);
                    let wait = jitter.backoff(&self.retry, attempt);
                    tracing::warn!(
                        attempt = attempt + 1,
                        retry_in_ms = wait.as_millis() as u64,
                        reason = %reason,
                        "delivery to the intake failed; will retry"
                    );
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                    if let Some(id) = spooled
                        && !self.spool_holds(id).await
                    {
                        return Sent::Abandoned;
                    }
                }
            }
        }
    }

    async fn next(&self) -> Result<Option<Next>, AgentError> {
        let work = self.work.notified();
        if let Some(record) = lock(&self.memory).front().cloned() {
            return Ok(Some(Next::Memory(record)));
        }
        if !self.spool_empty.load(Ordering::Acquire) {
            let spool = self.spool.clone();
            let peeked = tokio::task::spawn_blocking(move || lock(&spool).peek())
                .await
                .map_err(|err| AgentError::Io {
                    context: "spool reader".into(),
                    source: std::io::Error::other(err),
                })??;
            if let Some((id, record)) = peeked {
                return Ok(Some(Next::Spooled(id, record)));
            }
        }
        let _ = tokio::time::timeout(IDLE_RECHECK, work).await;
        Ok(None)
    }

    async fn spool_append(&self, record: Record, durability: Durability) -> Result<(), AgentError> {
        let events = record.events;
        let dropped = self
            .with_spool(move |spool| spool.append(&record, durability))
            .await??;
        if dropped.segments > 0 {
            Metrics::add(&self.metrics.dropped_spool_full, dropped.events);
            tracing::error!(
                dropped_events = dropped.events,
                dropped_bytes = dropped.bytes,
                dropped_segments = dropped.segments,
                total_dropped_events = Metrics::get(&self.metrics.dropped_spool_full),
                "spool full: dropped the oldest batches to make room; these events are lost"
            );
        }
        tracing::trace!(events, "batch spooled");
        self.work.notify_one();
        Ok(())
    }

    async fn spool_commit(&self, id: RecordId) -> Result<(), AgentError> {
        self.with_spool(move |spool| spool.commit(id))
            .await?
            .map_err(AgentError::from)
    }

    async fn spool_holds(&self, id: RecordId) -> bool {
        self.with_spool(move |spool| matches!(spool.peek(), Ok(Some((front, _))) if front == id))
            .await
            .unwrap_or(false)
    }

    async fn with_spool<T: Send + 'static>(
        &self,
        operation: impl FnOnce(&mut Spool) -> T + Send + 'static,
    ) -> Result<T, AgentError> {
        let spool = self.spool.clone();
        let (result, empty, bytes, events) = tokio::task::spawn_blocking(move || {
            let mut guard = lock(&spool);
            let result = operation(&mut guard);
            (result, guard.is_empty(), guard.bytes(), guard.pending_events())
        })
        .await
        .map_err(|err| AgentError::Io {
            context: "spool task".into(),
            source: std::io::Error::other(err),
        })?;
        self.spool_empty.store(empty, Ordering::Release);
        self.metrics.spool_bytes.store(bytes, Ordering::Relaxed);
        self.metrics.spool_events.store(events, Ordering::Relaxed);
        Ok(result)
    }

    fn refresh_spool_gauges(&self, spool: &Spool) {
        self.metrics.spool_bytes.store(spool.bytes(), Ordering::Relaxed);
        self.metrics
            .spool_events
            .store(spool.pending_events(), Ordering::Relaxed);
    }
}

/// Locks a mutex, going on with the data if a panicking thread poisoned it (every update
/// under these locks leaves the data consistent).
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Full-jitter exponential backoff: the wait before retry `n` is uniform in
/// `[0, min(max, initial * 2^n)]`.
pub struct Jitter(u64);

impl Jitter {
    /// A generator seeded from the clock and the process id.
    pub fn seeded() -> Jitter {
        let seed = (crate::telemetry::now_nanos() as u64) ^ (u64::from(std::process::id()) << 32);
        Jitter(seed | 1)
    }

    fn next(&mut self) -> u64 {
        // xorshift64: plenty for spreading retries.
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// The wait before retry `attempt` (0-based).
    pub fn backoff(&mut self, retry: &RetryConfig, attempt: u32) -> Duration {
        let ceiling = retry
            .initial_backoff_ms
            .saturating_mul(1u64 << attempt.min(32))
            .min(retry.max_backoff_ms);
        Duration::from_millis(self.next() % (ceiling + 1))
    }
}
