//! Compression of raw events with a zstd dictionary trained on this store's own events.
//!
//! A single audit event (1 to 2 KB of JSON) compresses poorly on its own: most of what repeats
//! is repeated across events, not inside one. A dictionary trained on the first few thousand
//! events of a store carries that shared part (field names, user agents, annotation texts), so
//! each event compresses to a fraction of the size and faster. Dictionaries are stored in the
//! database (`zstd_dicts`) and never change; each raw row names the one it was compressed with
//! (0: none, as for the events stored before the first dictionary existed).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use kaudit_store::{NewEvent, Result, StoreError};
use rusqlite::{Connection, OptionalExtension};

/// Events sampled before a dictionary is trained.
const SAMPLES_FOR_TRAINING: usize = 4000;
/// Dictionary size in bytes.
const DICTIONARY_BYTES: usize = 64 * 1024;
/// Raw events compressed together in one frame (one `raw_chunks` row): reading one event
/// decompresses its run, some 40 KB.
pub(crate) const CHUNK_EVENTS: usize = 32;
/// Largest raw event accepted back from storage (a corrupt frame header cannot make a reader
/// allocate more than this).
const MAX_RAW_BYTES: usize = 256 * 1024 * 1024;

/// A run of consecutive events' raw JSON, compressed in one frame.
pub(crate) struct RawChunk {
    /// Events in the run.
    pub(crate) events: usize,
    /// End offset of each event in the decompressed frame, u32 little-endian.
    pub(crate) ends: Vec<u8>,
    pub(crate) frame: Vec<u8>,
}

/// A dictionary as stored.
pub(crate) struct Dictionary {
    id: i64,
    bytes: Vec<u8>,
}

/// The store's compression state, shared by every thread.
pub(crate) struct Compression {
    level: i32,
    current: RwLock<Option<Arc<Dictionary>>>,
    samples: Mutex<Vec<String>>,
    training: AtomicBool,
    known: RwLock<HashMap<i64, Arc<Dictionary>>>,
}

thread_local! {
    /// A compressor per thread for the current (dictionary, level).
    static COMPRESSOR: RefCell<Option<(i64, i32, zstd::bulk::Compressor<'static>)>> = const { RefCell::new(None) };
}

impl Compression {
    /// Starts with the newest stored dictionary, if any.
    pub(crate) fn load(conn: &Connection, level: i32) -> Result<Compression> {
        let newest: Option<(i64, Vec<u8>)> = conn
            .query_row(
                "SELECT id, dict FROM zstd_dicts ORDER BY id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| StoreError::backend("reading the compression dictionary", e))?;
        let current = newest.map(|(id, bytes)| Arc::new(Dictionary { id, bytes }));
        let known = current.iter().map(|d| (d.id, Arc::clone(d))).collect();
        Ok(Compression {
            level,
            training: AtomicBool::new(current.is_some()),
            current: RwLock::new(current),
            samples: Mutex::new(Vec::new()),
            known: RwLock::new(known),
        })
    }

    /// Compresses the raw JSON of `events` in runs of [`CHUNK_EVENTS`]; returns the
    /// dictionary id used and the runs, in order.
    pub(crate) fn compress(&self, events: &[NewEvent]) -> Result<(i64, Vec<RawChunk>)> {
        let dictionary = self.current.read().ok().and_then(|d| d.clone());
        let (id, bytes): (i64, &[u8]) = match &dictionary {
            Some(d) => (d.id, &d.bytes),
            None => (0, &[]),
        };
        let chunks = COMPRESSOR.with(|cell| -> Result<Vec<RawChunk>> {
            let mut slot = cell.borrow_mut();
            if slot
                .as_ref()
                .is_none_or(|(have_id, have_level, _)| *have_id != id || *have_level != self.level)
            {
                let compressor = if id == 0 {
                    zstd::bulk::Compressor::new(self.level)
                } else {
                    zstd::bulk::Compressor::with_dictionary(self.level, bytes)
                }
                .map_err(|e| StoreError::backend("creating the zstd compressor", e))?;
                *slot = Some((id, self.level, compressor));
            }
            let Some((_, _, compressor)) = slot.as_mut() else {
                return Err(StoreError::Closed);
            };
            let mut joined = Vec::new();
            // Compressed into one buffer sized for the worst case, then copied out at its
            // length: a frame is a tenth of its run, and each run's worst-case buffer would
            // stay allocated with the batch until the commit.
            let mut out = Vec::new();
            events
                .chunks(CHUNK_EVENTS)
                .map(|run| {
                    joined.clear();
                    let mut ends = Vec::with_capacity(run.len() * 4);
                    for event in run {
                        joined.extend_from_slice(event.raw_json.as_bytes());
                        let end = u32::try_from(joined.len()).map_err(|_| StoreError::InvalidBatch {
                            position: 0,
                            reason: "raw events over 4 GiB in one run".to_owned(),
                        })?;
                        ends.extend_from_slice(&end.to_le_bytes());
                    }
                    out.clear();
                    out.reserve(zstd::zstd_safe::compress_bound(joined.len()));
                    compressor
                        .compress_to_buffer(&joined, &mut out)
                        .map_err(|err| StoreError::backend("compressing raw events", err))?;
                    Ok(RawChunk {
                        events: run.len(),
                        ends,
                        frame: out.as_slice().to_vec(),
                    })
                })
                .collect()
        })?;
        Ok((id, chunks))
    }

    /// Collects samples while no dictionary exists; returns a trained dictionary once enough
    /// were seen (to be stored by the caller and then [`Compression::adopt`]ed). Only one
    /// caller ever gets one.
    pub(crate) fn sample(&self, events: &[NewEvent]) -> Option<Vec<u8>> {
        if self.training.load(Ordering::Relaxed) {
            return None;
        }
        let samples = {
            let mut samples = self.samples.lock().ok()?;
            let room = SAMPLES_FOR_TRAINING.saturating_sub(samples.len());
            samples.extend(events.iter().take(room).map(|e| e.raw_json.clone()));
            if samples.len() < SAMPLES_FOR_TRAINING || self.training.swap(true, Ordering::Relaxed) {
                return None;
            }
            std::mem::take(&mut *samples)
        };
        // Training can fail on degenerate input (all samples alike); events then stay
        // compressed without a dictionary, which is correct, only larger.
        zstd::dict::from_samples(&samples, DICTIONARY_BYTES).ok()
    }

    /// Makes a stored dictionary the one new events are compressed with.
    pub(crate) fn adopt(&self, id: i64, bytes: Vec<u8>) {
        let dictionary = Arc::new(Dictionary { id, bytes });
        if let Ok(mut known) = self.known.write() {
            known.insert(id, Arc::clone(&dictionary));
        }
        if let Ok(mut current) = self.current.write() {
            *current = Some(dictionary);
        }
    }

    /// Decompresses a stored frame made with dictionary `dict_id`; `what` names the column
    /// in errors.
    pub(crate) fn decompress(
        &self,
        conn: &Connection,
        dict_id: i64,
        frame: &[u8],
        what: &'static str,
    ) -> Result<Vec<u8>> {
        let corrupt = |reason: String| StoreError::Corrupt { what, reason };
        let size = zstd::zstd_safe::get_frame_content_size(frame)
            .ok()
            .flatten()
            .ok_or_else(|| corrupt("zstd frame without a content size".to_owned()))?;
        let size = usize::try_from(size).ok().filter(|s| *s <= MAX_RAW_BYTES);
        let size = size.ok_or_else(|| corrupt("zstd frame content size out of range".to_owned()))?;
        if dict_id == 0 {
            return zstd::bulk::decompress(frame, size).map_err(|e| corrupt(e.to_string()));
        }
        let dictionary = self.dictionary(conn, dict_id)?;
        let mut decompressor = zstd::bulk::Decompressor::with_dictionary(&dictionary.bytes)
            .map_err(|e| StoreError::backend("creating the zstd decompressor", e))?;
        decompressor
            .decompress(frame, size)
            .map_err(|e| corrupt(e.to_string()))
    }

    fn dictionary(&self, conn: &Connection, id: i64) -> Result<Arc<Dictionary>> {
        if let Some(found) = self.known.read().ok().and_then(|k| k.get(&id).cloned()) {
            return Ok(found);
        }
        let bytes: Vec<u8> = conn
            .query_row("SELECT dict FROM zstd_dicts WHERE id = ?1", [id], |r| r.get(0))
            .optional()
            .map_err(|e| StoreError::backend("reading a compression dictionary", e))?
            .ok_or_else(|| StoreError::Corrupt {
                what: "event_raw.dict_id",
                reason: format!("dictionary {id} is missing"),
            })?;
        let dictionary = Arc::new(Dictionary { id, bytes });
        if let Ok(mut known) = self.known.write() {
            known.insert(id, Arc::clone(&dictionary));
        }
        Ok(dictionary)
    }
}
