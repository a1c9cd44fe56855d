#!/bin/bash
# usage: intake-variant.sh BINARY LABEL OUTFILE "EXTRA SQL"
bin=$1; label=$2; out=$3; extra=$4
psql -q -h 127.0.0.1 -U postgres test -c "DROP SCHEMA IF EXISTS kaudit_intake_bench CASCADE" 2>/dev/null
if [ -n "$extra" ]; then
  $bin intake list --database postgres://postgres@127.0.0.1:5432/test --database-schema kaudit_intake_bench >/dev/null 2>&1
  psql -q -h 127.0.0.1 -U postgres test -c "SET search_path TO kaudit_intake_bench, public; $extra"
fi
{
echo "# kaudit bench intake --spawn --database postgres://postgres@127.0.0.1:5432/test --database-schema kaudit_intake_bench --events 200000 --clients 4   ($label)"
[ -n "$extra" ] && echo "# added before the run: $extra"
date -u +%FT%TZ; uptime
c0=$(/tmp/pgcpu.sh)
$bin bench intake --spawn --database postgres://postgres@127.0.0.1:5432/test --database-schema kaudit_intake_bench --events 200000 --clients 4 2>&1 | grep -v "so far"
c1=$(/tmp/pgcpu.sh)
echo "postgres CPU (all backends, includes any other client's work): $(echo "$c1 - $c0" | bc) s, $(echo "scale=1; ($c1 - $c0) * 1000000 / 200000" | bc) µs per event"
uptime
} > $out
grep -E "load average|throughput|latency|server CPU|postgres CPU" $out | head -6
