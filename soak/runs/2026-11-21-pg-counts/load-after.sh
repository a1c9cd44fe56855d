#!/bin/bash
out=/tmp/pgroll/load-10m-after.txt
{
echo "# kaudit bench intake --spawn --data-dir /tmp/pgroll/data-after --database postgres://postgres@127.0.0.1:5432/kaudit_pg10m --database-schema kaudit_big_after --events 10000000 --clients 4 --seed 11   (with event counts, schema version 3)"
date -u +%FT%TZ; uptime
c0=$(/tmp/pgroll/pgcpu.sh)
/tmp/pgroll/kaudit-final bench intake --spawn --data-dir /tmp/pgroll/data-after --database postgres://postgres@127.0.0.1:5432/kaudit_pg10m --database-schema kaudit_big_after --events 10000000 --clients 4 --seed 11 2>&1
c1=$(/tmp/pgroll/pgcpu.sh)
echo "postgres CPU (all backends, includes any other client's work): $(echo "$c1 - $c0" | bc) s, $(echo "scale=1; ($c1 - $c0) * 1000000 / 10000000" | bc) µs per event"
date -u +%FT%TZ; uptime
} > $out 2>&1
