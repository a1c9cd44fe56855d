#!/bin/bash
# usage: intake-run.sh BINARY LABEL OUTFILE [CLIENTS]: bench intake into a fresh schema of
# kaudit_bounded, with the CPU time of all PostgreSQL processes during the run.
bin=$1; label=$2; out=$3; clients=${4:-4}; events=${EVENTS:-200000}
db=postgres://postgres@127.0.0.1:5432/kaudit_bounded
psql -q -h 127.0.0.1 -U postgres kaudit_bounded -c "DROP SCHEMA IF EXISTS kaudit_intake_bench CASCADE" 2>/dev/null
{
echo "# kaudit bench intake --spawn --database $db --database-schema kaudit_intake_bench --events $events --clients $clients   ($label)"
date -u +%FT%TZ; uptime
c0=$(/tmp/kb/pgcpu.sh)
$bin bench intake --spawn --database $db --database-schema kaudit_intake_bench --events $events --clients $clients 2>&1 | grep -v "so far"
c1=$(/tmp/kb/pgcpu.sh)
echo "postgres CPU (all backends, includes any other client's work): $(echo "$c1 - $c0" | bc) s, $(echo "scale=1; ($c1 - $c0) * 1000000 / $events" | bc) µs per event"
psql -h 127.0.0.1 -U postgres kaudit_bounded -Atc "SELECT 'schema version ' || (SELECT max(version) FROM kaudit_intake_bench.schema_migrations) || ', ' || (SELECT count(*) FROM kaudit_intake_bench.events) || ' events'" 2>/dev/null
uptime
} > $out
grep -E "load average|throughput|latency|server CPU|postgres CPU|schema version" $out | head -7
