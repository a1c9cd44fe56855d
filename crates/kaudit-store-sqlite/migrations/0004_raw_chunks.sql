-- Schema version 4: raw events stored in chunks of consecutive ids instead of a row each.
--
-- A batch's raw events are compressed on the request thread in runs of up to 32 (one zstd
-- frame each, with the store's dictionary), and each run is one row here. Compressing a run
-- together is faster per event than one frame per event (the frame and entropy-table set-up
-- are paid once per run) and smaller (an event's neighbours share most of its text), and the
-- writer inserts one row per run instead of one per event.
--
-- Every event of a batch gets an id, duplicates included (a duplicate leaves a gap in
-- `events`), so that the event at position k of a run has id `first_id + k`. `ends` holds the
-- end offset of each of the run's events in the decompressed frame (u32 little-endian). A run
-- none of whose events was new is not stored; retention deletes a run once none of its ids is
-- left in `events`.
--
-- Events stored before this version keep their `event_raw` rows, which reads fall back to and
-- retention deletes as before.

CREATE TABLE raw_chunks (
    first_id INTEGER PRIMARY KEY,
    last_id  INTEGER NOT NULL,
    dict_id  INTEGER NOT NULL,
    ends     BLOB    NOT NULL,
    frame    BLOB    NOT NULL
);
