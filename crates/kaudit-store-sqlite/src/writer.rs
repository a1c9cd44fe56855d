//! The writer thread: one connection, a bounded request queue, group commit with one savepoint
//! per request; and the write operations that run on it (batches, retention).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use kaudit_store::{
    AlertFields, BatchOutcome, EventFields, EventId, Insertion, NewAlert, NewEvent, Purged, Result,
    StoreError,
};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, params};

use crate::SqliteConfig;
use crate::blocks::{
    AgentBits, BLOCK_ROWS, BlockBuilder, EventBits, FORMAT, GROUP_BLOCKS, GroupSlices, SealedBlock,
    encode_members,
};
use crate::compression::{Compression, RawChunk};
use crate::read::{EVENT_COLUMNS, event_from_row};
use crate::rollups;

/// A write request: runs inside the group transaction, answered after the commit.
trait Job: Send {
    /// Runs the request; false when it failed (its savepoint is rolled back).
    fn run(&mut self, writer: &mut Writer) -> bool;
    /// Answers the caller once the group's commit is known (`Err` holds the commit error text).
    fn finish(self: Box<Self>, committed: std::result::Result<(), String>);
}

/// A closure request with its reply channel.
struct Call<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: SyncSender<Result<T>>,
}

impl<T, F> Job for Call<T, F>
where
    T: Send,
    F: FnOnce(&mut Writer) -> Result<T> + Send,
{
    fn run(&mut self, writer: &mut Writer) -> bool {
        let result = match self.work.take() {
            Some(work) => work(writer),
            None => Err(StoreError::Closed),
        };
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn finish(self: Box<Self>, committed: std::result::Result<(), String>) {
        let answer = match (self.result, committed) {
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(reason)) => Err(StoreError::backend("committing", CommitFailed(reason))),
            (None, _) => Err(StoreError::Closed),
        };
        // The caller may have gone away (it never does today: it blocks on this channel).
        let _ = self.reply.send(answer);
    }
}

/// The commit of a group failed; every request of the group gets this.
#[derive(Debug)]
struct CommitFailed(String);

impl std::fmt::Display for CommitFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "commit failed: {}", self.0)
    }
}

impl std::error::Error for CommitFailed {}

/// The caller's side of the writer thread.
pub(crate) struct WriterHandle {
    sender: Mutex<Option<SyncSender<Box<dyn Job>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl WriterHandle {
    /// Starts the writer thread on `conn`, and the checkpointer thread on `checkpoint_conn`.
    pub(crate) fn start(
        conn: Connection,
        checkpoint_conn: Connection,
        config: &SqliteConfig,
    ) -> Result<WriterHandle> {
        let (sender, receiver) = sync_channel::<Box<dyn Job>>(config.queue_depth.max(1));
        let (wake_checkpointer, wakes) = sync_channel::<()>(1);
        let max_jobs = config.max_jobs_per_commit.max(1);
        let checkpointer = std::thread::Builder::new()
            .name("kaudit-sqlite-checkpoint".to_owned())
            .spawn(move || checkpoint_loop(checkpoint_conn, wakes))
            .map_err(|e| StoreError::backend("starting the checkpoint thread", e))?;
        let writer = Writer::open(conn, wake_checkpointer)?;
        let thread = std::thread::Builder::new()
            .name("kaudit-sqlite-writer".to_owned())
            .spawn(move || {
                run(writer, receiver, max_jobs);
                // The writer (and with it the wake-up sender) is gone: the checkpointer stops.
                let _ = checkpointer.join();
            })
            .map_err(|e| StoreError::backend("starting the writer thread", e))?;
        Ok(WriterHandle {
            sender: Mutex::new(Some(sender)),
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Runs `work` on the writer thread inside the next group transaction and returns its
    /// result once that transaction committed.
    pub(crate) fn call<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Writer) -> Result<T> + Send + 'static,
    {
        let (reply, answer) = sync_channel(1);
        let job: Box<dyn Job> = Box::new(Call {
            work: Some(work),
            result: None,
            reply,
        });
        let sender = match self.sender.lock() {
            Ok(guard) => guard.clone().ok_or(StoreError::Closed)?,
            Err(_) => return Err(StoreError::Closed),
        };
        match sender.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(job)) => sender.send(job).map_err(|_| StoreError::Closed)?,
            Err(TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        answer.recv().map_err(|_| StoreError::Closed)?
    }
}

impl Drop for WriterHandle {
    fn drop(&mut self) {
        if let Ok(mut sender) = self.sender.lock() {
            sender.take();
        }
        if let Ok(mut thread) = self.thread.lock()
            && let Some(thread) = thread.take()
        {
            // A panic on the writer thread has already answered every caller with `Closed`.
            let _ = thread.join();
        }
    }
}

/// The writer thread's loop: take what is queued, run it in one transaction, commit, answer.
fn run(mut writer: Writer, receiver: Receiver<Box<dyn Job>>, max_jobs: usize) {
    while let Ok(first) = receiver.recv() {
        let mut jobs = vec![first];
        while jobs.len() < max_jobs {
            match receiver.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let committed = writer.run_group(&mut jobs);
        for job in jobs {
            job.finish(committed.clone());
        }
    }
}

/// Blocks summarised per transaction when a store opens with events above its block mark.
const REBUILD_BLOCKS_PER_COMMIT: i64 = 64;
/// Groups of blocks built per transaction when a store opens with complete groups not built
/// (after the migration to bit-sliced groups, or after a group write failed).
const REBUILD_GROUPS_PER_COMMIT: usize = 4;
/// Most groups built along with one write of blocks: one is complete at a time, the second
/// catches up after a failed group write.
const GROUPS_PER_WRITE: usize = 2;

/// Copies committed WAL pages into the database file, off the writer thread, after commits
/// (at most every 100 ms). A passive checkpoint never blocks the writer or readers; the writer
/// reuses the WAL from its start once a checkpoint caught up. The writer's own automatic
/// checkpoint stays on at a high threshold as a backstop should this thread fall behind.
fn checkpoint_loop(conn: Connection, wakes: Receiver<()>) {
    while wakes.recv().is_ok() {
        // A failed passive checkpoint is retried on the next wake-up; nothing is lost by it.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// The writer connection and the operations that run on it.
pub(crate) struct Writer {
    conn: Connection,
    wake_checkpointer: SyncSender<()>,
    /// The id the next stored event gets. Ids are assigned here and never reused (a
    /// rolled-back event leaves a gap), so that a written block never gains events.
    next_id: i64,
    /// The block the next events go into.
    block: BlockBuilder,
    /// Full blocks not yet written.
    pending: Vec<SealedBlock>,
    /// Blocks written in the current transaction; pending again if it fails.
    in_flight: Vec<SealedBlock>,
}

impl Writer {
    /// The writer over `conn`: finds the next id, groups the written blocks that form complete
    /// groups without one (after the migration to groups, or a failed group write), and
    /// summarises the events above the block mark into blocks (after a crash, the open block's
    /// events; after the migration to blocks, every event), committing as it goes.
    fn open(conn: Connection, wake_checkpointer: SyncSender<()>) -> Result<Writer> {
        let fail = |e| StoreError::backend("summarising events into blocks", e);
        let (blocked_upto, next_id, max_id): (i64, i64, i64) = conn
            .query_row(
                "SELECT blocked_upto, next_id, (SELECT COALESCE(MAX(id), 0) FROM events)
                 FROM block_state WHERE id = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .map_err(fail)?;
        let mut writer = Writer {
            conn,
            wake_checkpointer,
            next_id: next_id.max(blocked_upto.max(max_id) + 1),
            block: BlockBuilder::new(blocked_upto + 1),
            pending: Vec::new(),
            in_flight: Vec::new(),
        };
        loop {
            writer.conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
            let built = writer.group_blocks(REBUILD_GROUPS_PER_COMMIT);
            if let Err(e) = writer.conn.execute_batch("COMMIT").map_err(fail) {
                let _ = writer.conn.execute_batch("ROLLBACK");
                return Err(e);
            }
            if built < REBUILD_GROUPS_PER_COMMIT {
                break;
            }
        }
        let per_round = i64::from(BLOCK_ROWS) * REBUILD_BLOCKS_PER_COMMIT;
        let mut after = blocked_upto;
        loop {
            let mut read = 0;
            {
                let mut statement = writer
                    .conn
                    .prepare_cached(&format!(
                        "SELECT {EVENT_COLUMNS} FROM events e WHERE e.id > ?1 ORDER BY e.id LIMIT ?2"
                    ))
                    .map_err(fail)?;
                let mut rows = statement.query(params![after, per_round]).map_err(fail)?;
                while let Some(row) = rows.next().map_err(fail)? {
                    let event = event_from_row(row)?;
                    after = event.id.0;
                    read += 1;
                    writer.block.add(event.id.0, &event.fields);
                    if writer.block.is_full() {
                        writer.pending.push(writer.block.seal());
                    }
                }
            }
            if !writer.pending.is_empty() {
                writer.conn.execute_batch("BEGIN IMMEDIATE").map_err(fail)?;
                let written = writer
                    .write_pending()
                    .and_then(|()| writer.conn.execute_batch("COMMIT").map_err(fail));
                if let Err(e) = written {
                    let _ = writer.conn.execute_batch("ROLLBACK");
                    return Err(e);
                }
                writer.in_flight.clear();
            }
            if read < per_round {
                return Ok(writer);
            }
        }
    }

    /// Writes the pending blocks and moves the block mark (inside the caller's transaction),
    /// then the groups they complete. The blocks stay in `in_flight` until the transaction's
    /// outcome is known; on an error nothing moves (the caller rolls the statements back).
    fn write_pending(&mut self) -> Result<()> {
        for block in &self.pending {
            write_block(&self.conn, block)?;
        }
        self.in_flight.append(&mut self.pending);
        self.group_blocks(GROUPS_PER_WRITE);
        Ok(())
    }

    /// Builds up to `most` complete groups of written blocks, oldest first, each in a savepoint
    /// of its own (inside the caller's transaction); returns how many it built. A failure
    /// leaves that group's blocks with their own filters, which searches read instead (they
    /// stay complete), and stops: the next write of blocks, or the next start, tries again.
    fn group_blocks(&mut self, most: usize) -> usize {
        let mut built = 0;
        while built < most {
            if self.conn.execute_batch("SAVEPOINT grouping").is_err() {
                break;
            }
            match write_next_group(&self.conn) {
                Ok(true) => {
                    let _ = self.conn.execute_batch("RELEASE grouping");
                    built += 1;
                }
                Ok(false) => {
                    let _ = self.conn.execute_batch("RELEASE grouping");
                    break;
                }
                Err(_) => {
                    let _ = self.conn.execute_batch("ROLLBACK TO grouping; RELEASE grouping");
                    break;
                }
            }
        }
        built
    }

    /// Writes the pending blocks in a savepoint of their own: a failure leaves them pending
    /// (their events are found by scanning until a later write succeeds) and the rest of the
    /// transaction untouched.
    fn write_pending_apart(&mut self) {
        if self.pending.is_empty() || self.conn.execute_batch("SAVEPOINT blocks").is_err() {
            return;
        }
        if self.write_pending().is_ok() {
            let _ = self.conn.execute_batch("RELEASE blocks");
        } else {
            let _ = self.conn.execute_batch("ROLLBACK TO blocks; RELEASE blocks");
        }
    }

    /// After a transaction: the blocks it wrote are durable, or pending again.
    fn settle_blocks(&mut self, committed: bool) {
        if committed {
            self.in_flight.clear();
        } else {
            let mut again = std::mem::take(&mut self.in_flight);
            again.append(&mut self.pending);
            self.pending = again;
        }
    }

    /// The connection, for admin writes.
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Runs `jobs` in one transaction, each in its own savepoint; returns the commit result.
    fn run_group(&mut self, jobs: &mut [Box<dyn Job>]) -> std::result::Result<(), String> {
        self.conn
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| e.to_string())?;
        self.write_pending_apart();
        let outcome = (|| {
            for job in jobs.iter_mut() {
                self.conn
                    .execute_batch("SAVEPOINT job")
                    .map_err(|e| e.to_string())?;
                let ok = job.run(self);
                if !ok {
                    self.conn
                        .execute_batch("ROLLBACK TO job")
                        .map_err(|e| e.to_string())?;
                }
                self.conn
                    .execute_batch("RELEASE job")
                    .map_err(|e| e.to_string())?;
            }
            self.conn.execute_batch("COMMIT").map_err(|e| e.to_string())
        })();
        if outcome.is_ok() {
            // Full means a wake-up is already pending.
            let _ = self.wake_checkpointer.try_send(());
        }
        if outcome.is_err() && !self.conn.is_autocommit() {
            // The transaction is abandoned; nothing of the group is stored.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.settle_blocks(outcome.is_ok());
        outcome
    }

    /// Closes the open block, however few events it holds, and writes every pending block
    /// (inside the caller's savepoint), so that no event is left to scanning.
    pub(crate) fn flush_blocks(&mut self) -> Result<()> {
        if self.block.rows > 0 {
            self.pending.push(self.block.seal());
        }
        self.write_pending()
    }

    /// Stores an encoded batch (inside the caller's savepoint).
    pub(crate) fn insert_batch(&mut self, batch: &EncodedBatch) -> Result<BatchOutcome> {
        let fail = |e| StoreError::backend("inserting a batch", e);
        let mut insert_event = self.conn.prepare_cached(INSERT_EVENT).map_err(fail)?;
        let mut outcome = Vec::with_capacity(batch.events.len());
        let mut per_intake: HashMap<i64, (i64, i64)> = HashMap::new();
        // Every event gets an id, a duplicate too (leaving a gap), so that the raw chunks,
        // compressed before the batch reached this thread, map positions to ids. The ids are
        // spent even if the batch fails: a rolled-back event may already be in the open block.
        let first_id = self.next_id;
        self.next_id = first_id + batch.events.len() as i64;
        for (position, event) in batch.events.iter().enumerate() {
            let f = &event.fields;
            let id = first_id + position as i64;
            let inserted = insert_event
                .execute(params![
                    id,
                    f.time_ns,
                    f.received_ns,
                    f.cluster,
                    f.intake_id.map(|i| i.0),
                    f.audit_id,
                    f.stage.as_str(),
                    &f.digest[..],
                    event.dedupe,
                    f.verb,
                    f.username,
                    event.groups_json,
                    f.impersonated_user,
                    f.resource,
                    f.subresource,
                    f.namespace,
                    f.name,
                    f.api_group,
                    f.source_ip,
                    f.user_agent,
                    f.response_code,
                    f.decision,
                    f.request_uri,
                    f.level.as_str(),
                ])
                .map_err(fail)?;
            if inserted == 0 {
                outcome.push(Insertion::Duplicate);
                continue;
            }
            let agent = event.agent.map(|a| &batch.agents[a]);
            self.block.add_summarised(id, f, &event.bits, agent);
            if self.block.is_full() {
                self.pending.push(self.block.seal());
            }
            if let Some(intake) = f.intake_id {
                let entry = per_intake.entry(intake.0).or_insert((0, f.time_ns));
                entry.0 += 1;
                entry.1 = entry.1.max(f.time_ns);
            }
            outcome.push(Insertion::New(EventId(id)));
        }
        let mut insert_chunk = self
            .conn
            .prepare_cached(
                "INSERT INTO raw_chunks (first_id, last_id, dict_id, ends, frame) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .map_err(fail)?;
        let mut start = 0usize;
        for chunk in &batch.chunks {
            let end = start + chunk.events;
            // A run none of whose events is new would never be read nor deleted.
            if outcome[start..end].iter().any(|o| matches!(o, Insertion::New(_))) {
                insert_chunk
                    .execute(params![
                        first_id + start as i64,
                        first_id + end as i64 - 1,
                        batch.dict_id,
                        chunk.ends,
                        chunk.frame
                    ])
                    .map_err(fail)?;
            }
            start = end;
        }
        self.conn
            .prepare_cached("UPDATE block_state SET next_id = ?1 WHERE id = 1")
            .and_then(|mut st| st.execute(params![self.next_id]))
            .map_err(fail)?;
        let mut alerts_stored = 0;
        if !batch.alerts.is_empty() {
            let mut insert_alert = self.conn.prepare_cached(INSERT_ALERT).map_err(fail)?;
            for alert in &batch.alerts {
                let Some(Insertion::New(event_id)) = outcome.get(alert.event_index) else {
                    continue;
                };
                let a = &alert.fields;
                insert_alert
                    .execute(params![
                        event_id.0,
                        a.time_ns,
                        a.rule,
                        a.priority.number(),
                        a.output,
                        a.output_fields_json,
                        alert.tags_json,
                        a.policy,
                        a.cluster,
                        a.namespace,
                        a.username,
                        a.source,
                    ])
                    .map_err(fail)?;
                alerts_stored += 1;
            }
        }
        if !per_intake.is_empty() {
            let mut update = self
                .conn
                .prepare_cached(
                    "UPDATE intakes SET event_count = event_count + ?2,
                         last_event_ns = MAX(COALESCE(last_event_ns, ?3), ?3)
                     WHERE id = ?1",
                )
                .map_err(fail)?;
            for (intake, (count, last)) in per_intake {
                update.execute(params![intake, count, last]).map_err(fail)?;
            }
        }
        Ok(BatchOutcome {
            events: outcome,
            alerts_stored,
        })
    }

    /// Stores a trained compression dictionary; returns its id.
    pub(crate) fn store_dictionary(&mut self, bytes: &[u8], now_ns: i64) -> Result<i64> {
        self.conn
            .execute(
                "INSERT INTO zstd_dicts (dict, created_ns) VALUES (?1, ?2)",
                params![bytes, now_ns],
            )
            .map_err(|e| StoreError::backend("storing a compression dictionary", e))?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Deletes one retention chunk (inside the caller's savepoint).
    pub(crate) fn purge_chunk(&mut self, cutoff_ns: i64, max_events: u32) -> Result<Purged> {
        let fail = |e| StoreError::backend("deleting old events", e);
        let limit = i64::from(max_events.max(1));
        self.conn
            .execute(
                "CREATE TEMP TABLE IF NOT EXISTS purge_ids (id INTEGER PRIMARY KEY);
                 ",
                [],
            )
            .map_err(fail)?;
        self.conn
            .execute("DELETE FROM temp.purge_ids", [])
            .map_err(fail)?;
        self.conn
            .execute(
                "INSERT INTO temp.purge_ids (id)
                 SELECT id FROM events WHERE time_ns < ?1 ORDER BY time_ns LIMIT ?2",
                params![cutoff_ns, limit],
            )
            .map_err(fail)?;
        let mut purged = Purged::default();
        purged.alerts += self
            .conn
            .execute(
                "DELETE FROM alerts WHERE event_id IN (SELECT id FROM temp.purge_ids)",
                [],
            )
            .map_err(fail)? as u64;
        self.conn
            .execute(
                "DELETE FROM event_raw WHERE id IN (SELECT id FROM temp.purge_ids)",
                [],
            )
            .map_err(fail)?;
        purged.events += self
            .conn
            .execute(
                "DELETE FROM events WHERE id IN (SELECT id FROM temp.purge_ids)",
                [],
            )
            .map_err(fail)? as u64;
        // The runs of raw events that held the deleted ones, once none of their events is left.
        self.conn
            .execute(
                "DELETE FROM raw_chunks WHERE first_id IN (SELECT DISTINCT
                     (SELECT c.first_id FROM raw_chunks c WHERE c.first_id <= p.id ORDER BY c.first_id DESC LIMIT 1)
                     FROM temp.purge_ids p)
                 AND NOT EXISTS (SELECT 1 FROM events e
                     WHERE e.id BETWEEN raw_chunks.first_id AND raw_chunks.last_id)",
                [],
            )
            .map_err(fail)?;
        // Blocks all of whose events are older than every event left are empty now; blocks
        // that lost some of their events no longer have exact rollups.
        for sql in [
            "UPDATE blocks SET exact = 0 WHERE exact = 1 AND first_id IN (SELECT
                 (SELECT b.first_id FROM blocks b WHERE b.first_id <= p.id ORDER BY b.first_id DESC LIMIT 1)
                 FROM temp.purge_ids p)",
            "DELETE FROM block_blooms WHERE first_id IN (SELECT first_id FROM blocks WHERE max_time <
                 COALESCE((SELECT MIN(time_ns) FROM events), 9223372036854775807))",
            "DELETE FROM block_rollups WHERE dimension IN (1, 2, 3, 4, 5, 6, 7, 8, 9, 10) AND first_id IN
                 (SELECT first_id FROM blocks WHERE max_time <
                 COALESCE((SELECT MIN(time_ns) FROM events), 9223372036854775807))",
            "DELETE FROM blocks WHERE max_time <
                 COALESCE((SELECT MIN(time_ns) FROM events), 9223372036854775807)",
        ] {
            self.conn.execute(sql, []).map_err(fail)?;
        }
        delete_empty_groups(&self.conn)?;
        purged.alerts += self
            .conn
            .execute(
                "DELETE FROM alerts WHERE id IN
                     (SELECT id FROM alerts WHERE time_ns < ?1 ORDER BY time_ns LIMIT ?2)",
                params![cutoff_ns, limit],
            )
            .map_err(fail)? as u64;
        self.conn
            .execute("DELETE FROM temp.purge_ids", [])
            .map_err(fail)?;
        Ok(purged)
    }
}

/// Writes one full block: its row (with rollups of exactly its stored rows, so events rolled
/// back since they were added are not counted), its filters, and the block mark.
pub(crate) fn write_block(conn: &Connection, block: &SealedBlock) -> Result<()> {
    let fail = |e| StoreError::backend("writing block summaries", e);
    let rows = rollups::write_tallied(conn, block.first_id, block.last_id, &block.tallies, block.added)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO blocks (first_id, last_id, rows, min_time, max_time, format, exact)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
    )
    .and_then(|mut st| {
        st.execute(params![
            block.first_id,
            block.last_id,
            rows,
            block.min_time,
            block.max_time,
            FORMAT
        ])
    })
    .map_err(fail)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO block_blooms (first_id, value_bloom, gram_bloom) VALUES (?1, ?2, ?3)",
    )
    .and_then(|mut st| st.execute(params![block.first_id, block.value_bloom, block.gram_bloom]))
    .map_err(fail)?;
    conn.prepare_cached("UPDATE block_state SET blocked_upto = MAX(blocked_upto, ?1) WHERE id = 1")
        .and_then(|mut st| st.execute(params![block.last_id]))
        .map_err(fail)?;
    Ok(())
}

/// Writes the oldest complete group not yet written, if there is one (the [`GROUP_BLOCKS`]
/// written blocks after the newest group): its slices, transposed from the blocks' own
/// filters, and its row; then deletes those filters, which the slices now hold bit for bit.
/// Runs inside the caller's savepoint: a group is written whole or not at all.
fn write_next_group(conn: &Connection) -> Result<bool> {
    let fail = |e| StoreError::backend("writing a group of block filters", e);
    let grouped_upto: i64 = conn
        .prepare_cached(
            "SELECT COALESCE((SELECT last_id FROM bloom_groups ORDER BY first_id DESC LIMIT 1), 0)",
        )
        .and_then(|mut st| st.query_row([], |r| r.get(0)))
        .map_err(fail)?;
    let mut members: Vec<(i64, i64, i64)> = Vec::with_capacity(GROUP_BLOCKS);
    {
        let mut statement = conn
            .prepare_cached(
                "SELECT first_id, last_id, format FROM blocks WHERE first_id > ?1 ORDER BY first_id LIMIT ?2",
            )
            .map_err(fail)?;
        let rows = statement
            .query_map(params![grouped_upto, GROUP_BLOCKS as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .map_err(fail)?;
        for row in rows {
            members.push(row.map_err(fail)?);
        }
    }
    let (Some(&(first_id, _, _)), Some(&(_, last_id, _))) = (members.first(), members.last()) else {
        return Ok(false);
    };
    if members.len() < GROUP_BLOCKS {
        return Ok(false);
    }
    // Every block holds the tokens of the oldest format among them.
    let format = members.iter().map(|m| m.2).min().unwrap_or(FORMAT);
    let mut slices = GroupSlices::new();
    {
        let mut statement = conn
            .prepare_cached("SELECT value_bloom, gram_bloom FROM block_blooms WHERE first_id = ?1")
            .map_err(fail)?;
        for &(member, _, _) in &members {
            let mut rows = statement.query([member]).map_err(fail)?;
            match rows.next().map_err(fail)? {
                Some(row) => {
                    let blob = |i: usize| match row.get_ref(i) {
                        Ok(ValueRef::Blob(bytes)) => Some(bytes),
                        _ => None,
                    };
                    slices.push(blob(0), blob(1));
                }
                // A block without filters (never expected) admits everything.
                None => slices.push(None, None),
            }
        }
    }
    {
        let mut insert = conn
            .prepare_cached(
                "INSERT OR REPLACE INTO bloom_slices (group_id, slice, words) VALUES (?1, ?2, ?3)",
            )
            .map_err(fail)?;
        for (slice, words) in slices.rows() {
            insert.execute(params![first_id, slice, words]).map_err(fail)?;
        }
    }
    let first_ids: Vec<i64> = members.iter().map(|m| m.0).collect();
    conn.prepare_cached(
        "INSERT OR REPLACE INTO bloom_groups (first_id, last_id, format, members) VALUES (?1, ?2, ?3, ?4)",
    )
    .and_then(|mut st| st.execute(params![first_id, last_id, format, encode_members(&first_ids)]))
    .map_err(fail)?;
    conn.prepare_cached("DELETE FROM block_blooms WHERE first_id BETWEEN ?1 AND ?2")
        .and_then(|mut st| st.execute(params![first_id, last_id]))
        .map_err(fail)?;
    Ok(true)
}

/// Deletes the groups none of whose blocks are left, with their slices. A group some of whose
/// blocks are left keeps every slot: the bits of the deleted blocks are never read, as no block
/// row leads to them.
fn delete_empty_groups(conn: &Connection) -> Result<()> {
    let fail = |e| StoreError::backend("deleting emptied block groups", e);
    for sql in [
        "DELETE FROM bloom_slices WHERE group_id IN (SELECT g.first_id FROM bloom_groups g
             WHERE NOT EXISTS (SELECT 1 FROM blocks b WHERE b.first_id BETWEEN g.first_id AND g.last_id))",
        "DELETE FROM bloom_groups WHERE NOT EXISTS (SELECT 1 FROM blocks b
             WHERE b.first_id BETWEEN bloom_groups.first_id AND bloom_groups.last_id)",
    ] {
        conn.execute(sql, []).map_err(fail)?;
    }
    Ok(())
}

const INSERT_EVENT: &str = "INSERT INTO events (
        id, time_ns, received_ns, cluster, intake_id, audit_id, stage, digest, dedupe, verb, username,
        groups_json, impersonated_user, resource, subresource, namespace, name, api_group, source_ip,
        user_agent, response_code, decision, request_uri, level)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20,
        ?21, ?22, ?23, ?24)
    ON CONFLICT (time_ns, dedupe) DO NOTHING";

const INSERT_ALERT: &str = "INSERT INTO alerts (
        event_id, time_ns, rule, priority, output, output_fields_json, tags_json, policy, cluster,
        namespace, username, source)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

/// A batch prepared on the caller's thread: owned, compressed, keyed.
pub(crate) struct EncodedBatch {
    events: Vec<EncodedEvent>,
    alerts: Vec<EncodedAlert>,
    /// The raw events in runs, in order; compressed with dictionary `dict_id`.
    chunks: Vec<RawChunk>,
    dict_id: i64,
    /// The batch's distinct user agents with their filter bits.
    agents: Vec<AgentBits>,
}

struct EncodedEvent {
    fields: EventFields,
    dedupe: i64,
    groups_json: String,
    /// Filter bits, computed here so that the writer thread only sets them.
    bits: EventBits,
    /// The event's user agent in `EncodedBatch::agents`.
    agent: Option<usize>,
}

struct EncodedAlert {
    event_index: usize,
    fields: AlertFields,
    tags_json: String,
}

/// Checks a batch and prepares it for the writer thread: alert positions in range, raw events
/// compressed, dedupe keys computed.
pub(crate) fn encode_batch(
    events: Vec<NewEvent>,
    alerts: &[NewAlert],
    compression: &Compression,
) -> Result<EncodedBatch> {
    for (position, alert) in alerts.iter().enumerate() {
        if alert.event_index >= events.len() {
            return Err(StoreError::InvalidBatch {
                position,
                reason: format!(
                    "alert refers to event {} but the batch has {} events",
                    alert.event_index,
                    events.len()
                ),
            });
        }
    }
    let (dict_id, chunks) = compression.compress(&events)?;
    let mut agents: Vec<AgentBits> = Vec::new();
    let mut agent_index: HashMap<&str, usize> = HashMap::new();
    let event_agents: Vec<Option<usize>> = events
        .iter()
        .map(|event| {
            let agent = event.fields.user_agent.as_deref()?;
            Some(*agent_index.entry(agent).or_insert_with(|| {
                agents.push(AgentBits::of(agent));
                agents.len() - 1
            }))
        })
        .collect();
    drop(agent_index);
    let encoded_events = events
        .into_iter()
        .zip(event_agents)
        .map(|(event, agent)| EncodedEvent {
            dedupe: dedupe_integer(&event.fields),
            groups_json: json_string_array(&event.fields.groups),
            bits: EventBits::of(&event.fields),
            agent,
            fields: event.fields,
        })
        .collect();
    let encoded_alerts = alerts
        .iter()
        .map(|alert| EncodedAlert {
            event_index: alert.event_index,
            fields: alert.fields.clone(),
            tags_json: json_string_array(&alert.fields.tags),
        })
        .collect();
    Ok(EncodedBatch {
        events: encoded_events,
        alerts: encoded_alerts,
        chunks,
        dict_id,
        agents,
    })
}

fn dedupe_integer(fields: &EventFields) -> i64 {
    let key = fields.dedupe_key();
    let mut first = [0u8; 8];
    first.copy_from_slice(&key[..8]);
    i64::from_le_bytes(first)
}

/// A JSON array of strings.
pub(crate) fn json_string_array(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}
