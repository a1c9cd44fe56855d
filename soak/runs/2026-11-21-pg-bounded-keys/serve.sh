#!/bin/bash
# serve.sh BINARY PORT : starts kaudit serve on the 1M store in the background, writes its pid
# to /tmp/kb/serve-PORT.pid, waits for /healthz and prints the seconds that took.
bin=$1; port=$2
start=$(date +%s.%N)
$bin serve --data-dir /tmp/kb/data --database postgres://postgres@127.0.0.1:5432/kaudit_bounded \
    --database-schema kaudit_big --listen 127.0.0.1:$port --retention-days 0 > /tmp/kb/serve-$port.log 2>&1 &
echo $! > /tmp/kb/serve-$port.pid
until curl -sf http://127.0.0.1:$port/healthz > /dev/null; do sleep 0.1; done
echo "ready after $(echo "$(date +%s.%N) - $start" | bc) s"
