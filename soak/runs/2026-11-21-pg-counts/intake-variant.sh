#!/bin/bash
# usage: intake-variant.sh BINARY LABEL OUTFILE SQLFILE : the intake bench on a fresh schema that
# BINARY created, with SQLFILE run in it first
bin=$1; label=$2; out=$3; sqlfile=$4
db=postgres://postgres@127.0.0.1:5432/kaudit_pg10m
psql -q -h 127.0.0.1 -U postgres kaudit_pg10m -c "DROP SCHEMA IF EXISTS kaudit_intake_bench CASCADE" 2>/dev/null
$bin intake list --database $db --database-schema kaudit_intake_bench >/dev/null 2>&1
{ echo "SET search_path TO kaudit_intake_bench, public;"; echo "BEGIN;"; cat $sqlfile; echo "COMMIT;"; } | psql -q -h 127.0.0.1 -U postgres kaudit_pg10m
{
echo "# kaudit bench intake --spawn --database $db --database-schema kaudit_intake_bench --events 200000 --clients 4   ($label)"
echo "# run in the schema before the run: $sqlfile"
date -u +%FT%TZ; uptime
c0=$(/tmp/pgroll/pgcpu.sh)
$bin bench intake --spawn --database $db --database-schema kaudit_intake_bench --events 200000 --clients 4 2>&1 | grep -v "so far"
c1=$(/tmp/pgroll/pgcpu.sh)
echo "postgres CPU (all backends, includes any other client's work): $(echo "$c1 - $c0" | bc) s, $(echo "scale=1; ($c1 - $c0) * 1000000 / 200000" | bc) µs per event"
psql -h 127.0.0.1 -U postgres kaudit_pg10m -Atc "SELECT 'deltas inserted: ' || n_tup_ins FROM pg_stat_user_tables WHERE schemaname = 'kaudit_intake_bench' AND relname = 'event_count_deltas'" 2>/dev/null
uptime
} > $out
grep -E "throughput|latency|server CPU|postgres CPU|deltas inserted" $out | head -6
