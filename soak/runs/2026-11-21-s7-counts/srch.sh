#!/bin/bash
# usage: srch.sh BIN OUT
BIN=$1; OUT=$2; TOKEN=$(cat /tmp/k10m-token)
$BIN serve --data-dir /tmp/k10m --listen 127.0.0.1:18600 --retention-days 0 > /tmp/srch-serve.log 2>&1 &
SP=$!
for i in $(seq 1 100); do curl -s http://127.0.0.1:18600/healthz >/dev/null && break; sleep 0.2; done
$BIN bench search --server http://127.0.0.1:18600 --token $TOKEN --runs 20 --count > $OUT 2>&1
kill -INT $SP; wait $SP
