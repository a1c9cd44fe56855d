-- Schema version 3: the filters of every 64 consecutive blocks are stored transposed, and new
-- blocks' gram filters also hold 4-grams.
--
-- A search used to read each block's two 8 KiB filters (80 MB per 10 million events for a
-- free-text search) to learn which blocks to check. Once a group of 64 blocks is complete, the
-- writer stores its filters bit-sliced: for each filter bit position, one 64-bit word whose bit
-- j is that bit in the group's j-th block. A search reads only the words of its probe positions
-- and ANDs them into the mask of the blocks to check (src/blocks.rs). The blocks' own filter
-- rows are deleted in the same savepoint: the slices hold exactly the same bits. Blocks not yet
-- in a complete group keep their own filters.
--
-- Slices are keyed by group first, so that writing a group appends its rows at the end of the
-- table. Keyed by slice number first, a search would read fewer pages (the words of one
-- position for all groups are neighbours), but each group written would insert into 2048
-- places of a table that grows with the store: 60-150 ms of the writer per group (one per
-- 65,536 events) at a million events and more beyond, against under 10 ms appended.
--
-- Blocks written from this version on have filter format 2 (`blocks.format`): the gram filter
-- also holds the 4-grams of the texts, which tell apart the blocks that hold all the trigrams of
-- a searched text but not the text. Blocks of format 1 are searched by their trigrams alone.
--
-- Existing blocks are grouped when the store next opens (src/writer.rs).

-- first_id..last_id: from the first id of the group's first block to the last id of its last.
-- `members`: the first id of each block, in slot order (8 bytes little-endian each), so that a
-- block keeps its slot when retention deletes others. `format`: the oldest filter format among
-- its blocks.
CREATE TABLE bloom_groups (
    first_id INTEGER PRIMARY KEY,
    last_id  INTEGER NOT NULL,
    format   INTEGER NOT NULL,
    members  BLOB    NOT NULL
);
-- `group_id`: the group's first_id. `slice`: which filter and which positions (0-1023: the
-- value filter's positions 64 at a time; 1024-2047: the gram filter's). `words`: one
-- little-endian u64 per position.
CREATE TABLE bloom_slices (
    group_id INTEGER NOT NULL,
    slice    INTEGER NOT NULL,
    words    BLOB    NOT NULL,
    PRIMARY KEY (group_id, slice)
) WITHOUT ROWID;
