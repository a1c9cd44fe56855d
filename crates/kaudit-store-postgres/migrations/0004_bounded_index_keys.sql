-- Schema version 4: index keys of bounded size, so that no value an event or an alert carries
-- can fail its batch.
--
-- A btree entry holds at most 2704 bytes (after compression), so a batch holding one event
-- with an incompressible user name, user agent, object name, namespace, resource, source IP,
-- cluster, verb, subresource or decision of a few kilobytes (or an alert with such a rule) was
-- refused whole ("index row size ... exceeds btree version 4 maximum 2704"). The intake answered
-- 5xx, and the sender (the apiserver's webhook, the agent) retried that batch forever: one
-- hostile or odd event stopped its cluster's audit stream.
--
-- Each value index now comes in two parts:
--
-- * the index as before, on the column itself, for values of at most 2000 bytes (all real
--   ones: Kubernetes names, namespaces, service-account user names and user agents are far
--   shorter), which leaves room in an entry for the time and id. Queries for such a value add
--   `octet_length(column) <= 2000`, which a value that long implies, so that PostgreSQL may use
--   the partial index; plans are those of version 3, index-only scans included (an index on
--   an expression of the column would have lost them: PostgreSQL reads the row to count it);
-- * a `_long` index on the first 500 characters (at most 2000 bytes) of longer values, which
--   stays empty unless someone sends such values. Queries for a long value name that
--   expression and `octet_length(column) > 2000`: the index narrows, the column decides.
--
-- A user-name prefix and a user-agent substring look up the long values too, and add them to
-- their condition when there are any (see `read.rs`). The groups (GIN over hashes) and the
-- free-text trigram index (GIN over trigrams) never held whole values. The statistics of each
-- length expression (PostgreSQL 14 or newer) keep the planner's estimates as they were:
-- without them it takes a third of the rows for a length condition it cannot estimate.
--
-- The event counts of version 3 keyed their values by a digest already, but not their cluster:
-- their primary key now holds a 16-byte digest of the cluster (`cluster_key`) as well, computed
-- as `key` is. A compaction that failed on one long cluster would have failed forever.
--
-- On an existing store this rebuilds the value indexes and the counts table, and gathers the
-- statistics of the new expressions, when the upgraded server first starts: 12 to 14 seconds
-- per million events on the shared 2-core machine (1,000,000 generated events, load average
-- 2; most of it is sorting the five `(value, time_ns, id)` indexes), during which intake
-- waits. An older kaudit still running against this schema (its writes and its compactions
-- work) answers searches correctly but without these indexes, and a user-agent search of
-- its reads the events once per distinct user agent: upgrade the nodes that serve searches
-- together.

SET LOCAL maintenance_work_mem = '256MB';

DROP INDEX events_user_time;
DROP INDEX events_namespace_time;
DROP INDEX events_resource_time;
DROP INDEX events_name_time;
DROP INDEX events_source_ip_time;
DROP INDEX events_cluster;
DROP INDEX events_user_agent;
DROP INDEX events_verb_uncommon;
DROP INDEX events_subresource_uncommon;
DROP INDEX events_decision_uncommon;
DROP INDEX alerts_rule_time;

CREATE INDEX events_user_time ON events (username, time_ns, id)
    WHERE octet_length(username) <= 2000;
CREATE INDEX events_namespace_time ON events (namespace, time_ns, id)
    WHERE octet_length(namespace) <= 2000;
CREATE INDEX events_resource_time ON events (resource, time_ns, id)
    WHERE octet_length(resource) <= 2000;
CREATE INDEX events_name_time ON events (name, time_ns, id)
    WHERE octet_length(name) <= 2000;
CREATE INDEX events_source_ip_time ON events (source_ip, time_ns, id)
    WHERE octet_length(source_ip) <= 2000;
CREATE INDEX events_cluster ON events (cluster)
    WHERE octet_length(cluster) <= 2000;
CREATE INDEX events_user_agent ON events (user_agent)
    WHERE octet_length(user_agent) <= 2000;
CREATE INDEX events_verb_uncommon ON events (verb)
    WHERE verb NOT IN ('get', 'list', 'watch', 'create', 'update', 'patch') AND octet_length(verb) <= 2000;
CREATE INDEX events_subresource_uncommon ON events (subresource)
    WHERE subresource NOT IN ('status', 'binding', 'token') AND octet_length(subresource) <= 2000;
CREATE INDEX events_decision_uncommon ON events (decision)
    WHERE decision <> 'allow' AND octet_length(decision) <= 2000;
CREATE INDEX alerts_rule_time ON alerts (rule, time_ns, id)
    WHERE octet_length(rule) <= 2000;

CREATE INDEX events_user_time_long ON events (left(username, 500), time_ns, id)
    WHERE octet_length(username) > 2000;
CREATE INDEX events_namespace_time_long ON events (left(namespace, 500), time_ns, id)
    WHERE octet_length(namespace) > 2000;
CREATE INDEX events_resource_time_long ON events (left(resource, 500), time_ns, id)
    WHERE octet_length(resource) > 2000;
CREATE INDEX events_name_time_long ON events (left(name, 500), time_ns, id)
    WHERE octet_length(name) > 2000;
CREATE INDEX events_source_ip_time_long ON events (left(source_ip, 500), time_ns, id)
    WHERE octet_length(source_ip) > 2000;
CREATE INDEX events_cluster_long ON events (left(cluster, 500))
    WHERE octet_length(cluster) > 2000;
CREATE INDEX events_user_agent_long ON events (left(user_agent, 500))
    WHERE octet_length(user_agent) > 2000;
CREATE INDEX events_verb_long ON events (left(verb, 500))
    WHERE octet_length(verb) > 2000;
CREATE INDEX events_subresource_long ON events (left(subresource, 500))
    WHERE octet_length(subresource) > 2000;
CREATE INDEX events_decision_long ON events (left(decision, 500))
    WHERE octet_length(decision) > 2000;
CREATE INDEX alerts_rule_time_long ON alerts (left(rule, 500), time_ns, id)
    WHERE octet_length(rule) > 2000;

DO $$
BEGIN
    IF current_setting('server_version_num')::int >= 140000 THEN
        EXECUTE 'CREATE STATISTICS events_username_bytes ON (octet_length(username)) FROM events';
        EXECUTE 'CREATE STATISTICS events_namespace_bytes ON (octet_length(namespace)) FROM events';
        EXECUTE 'CREATE STATISTICS events_resource_bytes ON (octet_length(resource)) FROM events';
        EXECUTE 'CREATE STATISTICS events_name_bytes ON (octet_length(name)) FROM events';
        EXECUTE 'CREATE STATISTICS events_source_ip_bytes ON (octet_length(source_ip)) FROM events';
        EXECUTE 'CREATE STATISTICS events_cluster_bytes ON (octet_length(cluster)) FROM events';
        EXECUTE 'CREATE STATISTICS events_user_agent_bytes ON (octet_length(user_agent)) FROM events';
        EXECUTE 'CREATE STATISTICS events_verb_bytes ON (octet_length(verb)) FROM events';
        EXECUTE 'CREATE STATISTICS events_subresource_bytes ON (octet_length(subresource)) FROM events';
        EXECUTE 'CREATE STATISTICS events_decision_bytes ON (octet_length(decision)) FROM events';
        EXECUTE 'CREATE STATISTICS alerts_rule_bytes ON (octet_length(rule)) FROM alerts';
    END IF;
END $$;

-- The counts, keyed by the cluster's digest, in key order (see version 3).
CREATE TABLE event_counts_keyed (
    dim         SMALLINT NOT NULL,
    level       SMALLINT NOT NULL,
    bucket      BIGINT   NOT NULL,
    cluster     TEXT COLLATE "C" NOT NULL,
    cluster_key BYTEA    NOT NULL,
    key         BYTEA    NOT NULL,
    value       TEXT COLLATE "C",
    n           BIGINT   NOT NULL
) WITH (fillfactor = 70);
INSERT INTO event_counts_keyed (dim, level, bucket, cluster, cluster_key, key, value, n)
SELECT dim, level, bucket, cluster, substring(sha256(convert_to(cluster, 'UTF8')) FROM 1 FOR 16),
       key, value, n
FROM event_counts
ORDER BY 1, 2, 3, 5, 6;
DROP TABLE event_counts;
ALTER TABLE event_counts_keyed RENAME TO event_counts;
ALTER TABLE event_counts ADD CONSTRAINT event_counts_pkey
    PRIMARY KEY (dim, level, bucket, cluster_key, key);

-- As in version 3, with the cluster's digest in the key.
CREATE OR REPLACE FUNCTION compact_event_counts() RETURNS bigint LANGUAGE plpgsql
SET search_path FROM CURRENT SET work_mem = '64MB' AS $$
DECLARE
    moved bigint;
    zero_dim smallint[];
    zero_level smallint[];
    zero_bucket bigint[];
    zero_cluster_key bytea[];
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
               substring(sha256(convert_to(cluster, 'UTF8')) FROM 1 FOR 16) AS cluster_key,
               CASE WHEN value IS NULL THEN '\x'::bytea
                    ELSE substring(sha256(convert_to(value, 'UTF8')) FROM 1 FOR 16) END AS key,
               value, n
        FROM leveled WHERE n <> 0
    ),
    upserted AS (
        INSERT INTO event_counts AS c (dim, level, bucket, cluster, cluster_key, key, value, n)
        SELECT dim, level, bucket, cluster, cluster_key, key, value, n FROM keyed
        ORDER BY dim, level, bucket, cluster_key, key
        ON CONFLICT (dim, level, bucket, cluster_key, key) DO UPDATE SET n = c.n + EXCLUDED.n
        RETURNING c.dim, c.level, c.bucket, c.cluster_key, c.key, c.n
    ),
    zeros AS (
        SELECT array_agg(dim) AS d, array_agg(level) AS l, array_agg(bucket) AS b,
               array_agg(cluster_key) AS c, array_agg(key) AS k
        FROM upserted WHERE n = 0
    )
    SELECT (SELECT COALESCE(SUM(deltas), 0) FROM minutes), zeros.d, zeros.l, zeros.b, zeros.c, zeros.k
    INTO moved, zero_dim, zero_level, zero_bucket, zero_cluster_key, zero_key
    FROM zeros;
    IF zero_dim IS NOT NULL THEN
        DELETE FROM event_counts c
        USING unnest(zero_dim, zero_level, zero_bucket, zero_cluster_key, zero_key)
            AS z(dim, level, bucket, cluster_key, key)
        WHERE c.dim = z.dim AND c.level = z.level AND c.bucket = z.bucket
          AND c.cluster_key = z.cluster_key AND c.key = z.key AND c.n = 0;
    END IF;
    RETURN moved;
END $$;

ANALYZE events;
ANALYZE alerts;
ANALYZE event_counts;
