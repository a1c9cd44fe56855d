-- Schema version 2: indexes for the filters that had none, so that a rare value (a forbidden
-- request, an exec, a 5xx, a scripted user agent, one small cluster among several, a
-- privileged group) is found by index instead of by reading every event.
--
-- Single-column btrees: btree deduplication keeps each value's rows as one posting list, so
-- these stay small and cheap to fill (each insert lands on the last page of its value). They
-- give all rows of a value at once, not in time order, so searches ask them only once a walk in
-- time order shows the value is rare (see `read.rs`); but PostgreSQL may still combine such an
-- index with another one for a common value, reading a million row pointers to count "get
-- secrets". So verb, subresource, response code and decision index only their uncommon values
-- (partial indexes; a query names a value, and PostgreSQL uses the index when that value is
-- one of them): the verbs other than the six that controllers and kubelets send all day, the
-- subresources other than status, binding and token, the responses outside 2xx, the decisions
-- other than allow. These are the values an investigation looks for, and these indexes cost
-- next to nothing to fill. Clusters and user agents have no such common set and are indexed
-- whole; the user-agent index also lists the distinct user agents for a user-agent substring.
-- The groups, a JSON array, get a GIN index for containment.
--
-- On an existing store the indexes are built when the upgraded server first starts, before it
-- listens: 80 seconds for 10 million events on the shared 2-core machine (the memory setting
-- below is for this transaction only).

SET LOCAL maintenance_work_mem = '256MB';

CREATE INDEX events_cluster ON events (cluster);
CREATE INDEX events_user_agent ON events (user_agent);
CREATE INDEX events_verb_uncommon ON events (verb)
    WHERE verb NOT IN ('get', 'list', 'watch', 'create', 'update', 'patch');
CREATE INDEX events_subresource_uncommon ON events (subresource)
    WHERE subresource NOT IN ('status', 'binding', 'token');
CREATE INDEX events_response_code_uncommon ON events (response_code)
    WHERE response_code NOT BETWEEN 200 AND 299;
CREATE INDEX events_decision_uncommon ON events (decision)
    WHERE decision <> 'allow';
CREATE INDEX events_groups ON events USING gin (groups jsonb_path_ops);
