SET LOCAL work_mem = '256MB';

CREATE TABLE event_count_deltas (
    dim     SMALLINT NOT NULL,
    bucket  BIGINT   NOT NULL,
    cluster TEXT COLLATE "C" NOT NULL,
    value   TEXT COLLATE "C",
    n       BIGINT   NOT NULL
);
-- Every row is deleted within about a second of its insertion, and queries read the whole
-- table: the store vacuums it after compactions, and autovacuum does not wait for it to grow.
ALTER TABLE event_count_deltas SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 10000
);

CREATE TABLE event_counts (
    dim     SMALLINT NOT NULL,
    level   SMALLINT NOT NULL,
    bucket  BIGINT   NOT NULL,
    cluster TEXT COLLATE "C" NOT NULL,
    key     BYTEA    NOT NULL,
    value   TEXT COLLATE "C",
    n       BIGINT   NOT NULL,
    PRIMARY KEY (dim, level, bucket, cluster, key)
) WITH (fillfactor = 90);

-- The deltas of a statement's inserted (sign 1) or deleted (sign -1) events.
CREATE FUNCTION event_count_deltas_of_inserted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO event_count_deltas (dim, bucket, cluster, value, n)
    SELECT d.dim, e.minute, e.cluster, d.value, COUNT(*)
    FROM (
        SELECT t.*, t.time_ns / 60000000000
                    - CASE WHEN t.time_ns % 60000000000 < 0 THEN 1 ELSE 0 END AS minute
        FROM inserted_events t
    ) AS e
    CROSS JOIN LATERAL (VALUES
        (0::smallint, NULL::text COLLATE "C"), (1, e.username), (2, e.verb), (3, e.resource), (4, e.namespace),
        (5, e.source_ip), (6, e.response_code::text), (7, e.decision), (8, e.user_agent)
    ) AS d(dim, value)
    GROUP BY d.dim, e.minute, e.cluster, d.value;
    RETURN NULL;
END $$;

CREATE FUNCTION event_count_deltas_of_deleted() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO event_count_deltas (dim, bucket, cluster, value, n)
    SELECT d.dim, e.minute, e.cluster, d.value, -COUNT(*)
    FROM (
        SELECT t.*, t.time_ns / 60000000000
                    - CASE WHEN t.time_ns % 60000000000 < 0 THEN 1 ELSE 0 END AS minute
        FROM deleted_events t
    ) AS e
    CROSS JOIN LATERAL (VALUES
        (0::smallint, NULL::text COLLATE "C"), (1, e.username), (2, e.verb), (3, e.resource), (4, e.namespace),
        (5, e.source_ip), (6, e.response_code::text), (7, e.decision), (8, e.user_agent)
    ) AS d(dim, value)
    GROUP BY d.dim, e.minute, e.cluster, d.value;
    RETURN NULL;
END $$;

CREATE FUNCTION event_counts_of_truncated() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    TRUNCATE event_counts, event_count_deltas;
    RETURN NULL;
END $$;

-- Moves every committed delta into the counts of each level, in one transaction with the
-- caller's; returns the deltas moved. Keys are upserted in key order, so two compactions that
-- ran at once (the store prevents it with an advisory lock) would wait, not deadlock.
CREATE FUNCTION compact_event_counts() RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
    moved bigint;
    zero_dim smallint[];
    zero_level smallint[];
    zero_bucket bigint[];
    zero_cluster text[];
    zero_key bytea[];
BEGIN
    WITH taken AS (
        DELETE FROM event_count_deltas RETURNING dim, bucket, cluster, value, n
    ),
    minutes AS (
        SELECT dim, bucket, cluster, value, SUM(n) AS n, COUNT(*) AS deltas
        FROM taken GROUP BY dim, bucket, cluster, value
    ),
    leveled AS (
        SELECT m.dim, l.level,
               m.bucket / l.minutes - CASE WHEN m.bucket % l.minutes < 0 THEN 1 ELSE 0 END AS bucket,
               m.cluster, m.value, SUM(m.n) AS n
        FROM minutes m
        CROSS JOIN (VALUES (0::smallint, 1::bigint), (1, 10), (2, 60), (3, 1440)) AS l(level, minutes)
        GROUP BY 1, 2, 3, 4, 5
    ),
    keyed AS (
        SELECT dim, level, bucket, cluster,
               CASE WHEN value IS NULL THEN '\x'::bytea
                    ELSE substring(sha256(convert_to(value, 'UTF8')) FROM 1 FOR 16) END AS key,
               value, n
        FROM leveled WHERE n <> 0
    ),
    upserted AS (
        INSERT INTO event_counts AS c (dim, level, bucket, cluster, key, value, n)
        SELECT dim, level, bucket, cluster, key, value, n FROM keyed
        ORDER BY dim, level, bucket, cluster, key
        ON CONFLICT (dim, level, bucket, cluster, key) DO UPDATE SET n = c.n + EXCLUDED.n
        RETURNING c.dim, c.level, c.bucket, c.cluster, c.key, c.n
    ),
    zeros AS (
        SELECT array_agg(dim) AS d, array_agg(level) AS l, array_agg(bucket) AS b,
               array_agg(cluster) AS c, array_agg(key) AS k
        FROM upserted WHERE n = 0
    )
    SELECT (SELECT COALESCE(SUM(deltas), 0) FROM minutes), zeros.d, zeros.l, zeros.b, zeros.c, zeros.k
    INTO moved, zero_dim, zero_level, zero_bucket, zero_cluster, zero_key
    FROM zeros;
    IF zero_dim IS NOT NULL THEN
        DELETE FROM event_counts c
        USING unnest(zero_dim, zero_level, zero_bucket, zero_cluster, zero_key) AS z(dim, level, bucket, cluster, key)
        WHERE c.dim = z.dim AND c.level = z.level AND c.bucket = z.bucket AND c.cluster = z.cluster
          AND c.key = z.key AND c.n = 0;
    END IF;
    RETURN moved;
END $$;

-- The triggers take a lock on `events` that keeps every other writer out until this
-- migration commits: the counts filled below are then exact when the first batch arrives.
CREATE TRIGGER event_counts_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION event_count_deltas_of_inserted();
CREATE TRIGGER event_counts_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS deleted_events
    FOR EACH STATEMENT EXECUTE FUNCTION event_count_deltas_of_deleted();
CREATE TRIGGER event_counts_truncate AFTER TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION event_counts_of_truncated();

