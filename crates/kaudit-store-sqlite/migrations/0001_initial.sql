-- Schema version 1: intakes, tokens, events (raw JSON kept apart), alerts, configuration.
--
-- Write cost decides the indexes. Every index is maintained on each insert, and each commit
-- writes every B-tree page it dirtied to the WAL: an index whose key starts with a value that
-- varies within a batch (a user name among hundreds) dirties a page per distinct value per
-- commit, an index whose key starts with the event time dirties a handful of pages per batch.
-- So `events` itself carries only time-led indexes (the dedupe key leads with the event time,
-- which a retried event repeats; the time index covers the common filters), and the value-led
-- lookups live in derived tables that the
-- writer fills behind the inserts, thousands of rows per transaction, sorted by key:
--
-- * events_by_user, events_by_namespace, events_by_resource: (value, time, id), WITHOUT ROWID;
-- * events_text: a trigram index over requestURI and object name (one FTS5 segment per fill
--   instead of one per batch plus the merging that follows).
--
-- `derived_state.indexed_upto` says how far (by event id) they are filled; they are filled in
-- the same transaction that moves it. A search walks a derived table for the rows up to the
-- mark and scans the rows above it (at most a few fills' worth, by rowid range), so results
-- are complete at any moment. Other filters (verb, cluster, source IP, code, decision, user
-- agent, groups) are checked on the rows of whichever index is walked.

CREATE TABLE intakes (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    cluster       TEXT    NOT NULL,
    key_hash      BLOB    NOT NULL UNIQUE,
    created_ns    INTEGER NOT NULL,
    revoked_ns    INTEGER,
    last_event_ns INTEGER,
    event_count   INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL UNIQUE,
    role       TEXT    NOT NULL CHECK (role IN ('viewer', 'admin')),
    key_hash   BLOB    NOT NULL UNIQUE,
    created_ns INTEGER NOT NULL,
    revoked_ns INTEGER
);

-- One row per stored event. `dedupe` is 64 bits of the hash over (cluster, auditID, stage,
-- digest); unique together with the event time.
CREATE TABLE events (
    id                INTEGER PRIMARY KEY,
    time_ns           INTEGER NOT NULL,
    received_ns       INTEGER NOT NULL,
    cluster           TEXT    NOT NULL,
    intake_id         INTEGER,
    audit_id          TEXT    NOT NULL,
    stage             TEXT    NOT NULL,
    digest            BLOB    NOT NULL,
    dedupe            INTEGER NOT NULL,
    verb              TEXT    NOT NULL,
    username          TEXT    NOT NULL,
    groups_json       TEXT    NOT NULL,
    impersonated_user TEXT,
    resource          TEXT,
    subresource       TEXT,
    namespace         TEXT,
    name              TEXT,
    api_group         TEXT,
    source_ip         TEXT,
    user_agent        TEXT,
    response_code     INTEGER,
    decision          TEXT,
    request_uri       TEXT    NOT NULL,
    level             TEXT    NOT NULL
);
CREATE UNIQUE INDEX events_dedupe ON events (time_ns, dedupe);
-- Newest-first walks, time ranges and retention. Led by (time, id), the order of every
-- listing, and covering the filters a walk checks, so that rows a filter rejects are rejected
-- on the index entry without reading the row. Appended at its end, like the dedupe index.
CREATE INDEX events_time ON events (
    time_ns, id, cluster, verb, username, namespace, resource, source_ip, response_code, decision
);

-- The raw event, zstd-compressed with dictionary `dict_id` (0: none), apart from `events` so
-- that scans over the indexed columns read a narrow table.
CREATE TABLE event_raw (
    id      INTEGER PRIMARY KEY,
    dict_id INTEGER NOT NULL,
    raw     BLOB    NOT NULL
);

-- zstd dictionaries trained on this store's events; never changed once written.
CREATE TABLE zstd_dicts (
    id         INTEGER PRIMARY KEY,
    dict       BLOB    NOT NULL,
    created_ns INTEGER NOT NULL
);

-- Derived lookups (see the top of this file).
CREATE TABLE events_by_user (
    username TEXT    NOT NULL,
    time_ns  INTEGER NOT NULL,
    id       INTEGER NOT NULL,
    PRIMARY KEY (username, time_ns, id)
) WITHOUT ROWID;
CREATE TABLE events_by_namespace (
    namespace TEXT    NOT NULL,
    time_ns   INTEGER NOT NULL,
    id        INTEGER NOT NULL,
    PRIMARY KEY (namespace, time_ns, id)
) WITHOUT ROWID;
CREATE TABLE events_by_resource (
    resource TEXT    NOT NULL,
    time_ns  INTEGER NOT NULL,
    id       INTEGER NOT NULL,
    PRIMARY KEY (resource, time_ns, id)
) WITHOUT ROWID;
-- Free text: contentless (rowids only) and without positions. A query ANDs the trigrams of
-- the searched text and then checks the real substring on the `events` row.
CREATE VIRTUAL TABLE events_text USING fts5 (
    request_uri, name,
    content = '', contentless_delete = 1, detail = none, tokenize = 'trigram'
);
-- Row counts per trigram, so that a query can use the rarest trigrams of its text.
CREATE VIRTUAL TABLE events_text_vocab USING fts5vocab (events_text, 'row');
CREATE TABLE derived_state (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
INSERT INTO derived_state (id, indexed_upto) VALUES (1, 0);

CREATE TABLE alerts (
    id                 INTEGER PRIMARY KEY,
    event_id           INTEGER NOT NULL,
    time_ns            INTEGER NOT NULL,
    rule               TEXT    NOT NULL,
    priority           INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 7),
    output             TEXT    NOT NULL,
    output_fields_json TEXT    NOT NULL,
    tags_json          TEXT    NOT NULL,
    policy             TEXT    NOT NULL,
    cluster            TEXT    NOT NULL,
    namespace          TEXT,
    username           TEXT    NOT NULL,
    source             TEXT    NOT NULL
);
CREATE INDEX alerts_time ON alerts (time_ns);
CREATE INDEX alerts_rule_time ON alerts (rule, time_ns);
CREATE INDEX alerts_event ON alerts (event_id);

CREATE TABLE rule_files (
    name       TEXT PRIMARY KEY,
    content    TEXT    NOT NULL,
    updated_ns INTEGER NOT NULL
);

CREATE TABLE policies (
    name       TEXT PRIMARY KEY,
    enabled    INTEGER NOT NULL,
    scope_json TEXT    NOT NULL,
    rules_json TEXT    NOT NULL,
    builtin    INTEGER NOT NULL,
    updated_ns INTEGER NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
