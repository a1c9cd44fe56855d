#!/bin/bash
# usage: intake-run.sh BINARY LABEL OUTFILE [CLIENTS]
bin=$1; label=$2; out=$3; clients=${4:-4}; events=${EVENTS:-200000}
db=postgres://postgres@127.0.0.1:5432/kaudit_pg10m
psql -q -h 127.0.0.1 -U postgres kaudit_pg10m -c "DROP SCHEMA IF EXISTS kaudit_intake_bench CASCADE" 2>/dev/null
{
echo "# kaudit bench intake --spawn --database $db --database-schema kaudit_intake_bench --events $events --clients $clients   ($label)"
date -u +%FT%TZ; uptime
c0=$(/tmp/pgroll/pgcpu.sh)
$bin bench intake --spawn --database $db --database-schema kaudit_intake_bench --events $events --clients $clients 2>&1 | grep -v "so far"
c1=$(/tmp/pgroll/pgcpu.sh)
echo "postgres CPU (all backends, includes any other client's work): $(echo "$c1 - $c0" | bc) s, $(echo "scale=1; ($c1 - $c0) * 1000000 / $events" | bc) µs per event"
psql -h 127.0.0.1 -U postgres kaudit_pg10m -Atc "SELECT 'counts: ' || (SELECT count(*) FROM kaudit_intake_bench.events) || ' events, ' || (SELECT COALESCE(sum(n), 0) FROM kaudit_intake_bench.event_counts WHERE dim = 0 AND level = 0) || ' in event_counts, ' || (SELECT COALESCE(sum(n), 0) FROM kaudit_intake_bench.event_count_deltas WHERE dim = 0) || ' in deltas'" 2>/dev/null
uptime
} > $out
grep -E "load average|throughput|latency|server CPU|postgres CPU|counts:" $out | head -7
