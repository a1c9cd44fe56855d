-- Schema version 2: block summaries replace the value-led lookups, the FTS5 trigram index and
-- the covering time index.
--
-- Events get increasing ids in insertion order; every 1024 consecutive ids form a block. A
-- block is one row of `blocks` (its id and time ranges) and one of `block_blooms` (a Bloom
-- filter over its exact values and value pairs, and one over the trigrams of its requestURIs,
-- object names and user agents; see src/blocks.rs). A search reads the blocks whose filters
-- admit its values, and scans the rows above `block_state.blocked_upto` by rowid.
--
-- The per-value lookups cost a B-tree insert per event each in key order, and the trigram
-- index dozens of postings per event: together most of the writer's time. A block costs two
-- rows per thousand events.
--
-- Each block also carries rollups: its events counted by each group-by field and by minute
-- (src/rollups.rs), so that grouped counts and histograms over long ranges sum rollups.
-- With those, the covering time index of version 1 (a second copy of most of each row, and a
-- third of the writer's time) is no longer needed: walks in time order use the dedupe index,
-- which leads with the event time.
--
-- Existing events are summarised when the store next opens (src/writer.rs).

DROP INDEX events_time;

DROP TABLE events_text_vocab;
DROP TABLE events_text;
DROP TABLE events_by_user;
DROP TABLE events_by_namespace;
DROP TABLE events_by_resource;
DROP TABLE derived_state;

-- first_id..last_id: the ids the block covers (ids in between may be missing: rolled back,
-- deduplicated or deleted). min_time/max_time: the range of its events' times. `exact`: 1 while
-- its rollups count its stored events exactly, 0 once retention deleted some of them.
CREATE TABLE blocks (
    first_id INTEGER PRIMARY KEY,
    last_id  INTEGER NOT NULL,
    rows     INTEGER NOT NULL,
    min_time INTEGER NOT NULL,
    max_time INTEGER NOT NULL,
    format   INTEGER NOT NULL,
    exact    INTEGER NOT NULL
);
CREATE INDEX blocks_time ON blocks (max_time);
-- Kept apart from `blocks` so that reading the ranges does not read the filters.
CREATE TABLE block_blooms (
    first_id    INTEGER PRIMARY KEY,
    value_bloom BLOB    NOT NULL,
    gram_bloom  BLOB    NOT NULL
);
-- A block's events counted along one dimension (1 user ... 9 user agent, 10 minute).
CREATE TABLE block_rollups (
    dimension INTEGER NOT NULL,
    first_id  INTEGER NOT NULL,
    counts    BLOB    NOT NULL,
    PRIMARY KEY (dimension, first_id)
) WITHOUT ROWID;
-- Every id up to `blocked_upto` is in a block (or deleted); it never decreases. `next_id` is
-- the id the next event gets: the writer assigns ids itself and never reuses one, even when
-- the newest events were deleted.
CREATE TABLE block_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    blocked_upto INTEGER NOT NULL,
    next_id      INTEGER NOT NULL
);
INSERT INTO block_state (id, blocked_upto, next_id) VALUES (1, 0, 1);
