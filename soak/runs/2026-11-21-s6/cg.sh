#!/bin/bash
# usage: cg.sh BIN OUT EVENTS — server under callgrind, client outside; prints instructions of the server.
BIN=$1; OUT=$2; EV=${3:-20000}
D=/tmp/cg-data-$$; rm -rf $D
KEY=$($BIN intake create --data-dir $D --name bench --cluster bench 2>/dev/null)
PORT=$((20000 + RANDOM % 10000))
valgrind --tool=callgrind --callgrind-out-file=$OUT.cg.%p $BIN serve --data-dir $D --listen 127.0.0.1:$PORT > $OUT.serve.log 2>&1 &
VP=$!
for i in $(seq 1 600); do curl -sf http://127.0.0.1:$PORT/healthz >/dev/null && break; sleep 0.2; done
$BIN bench intake --server http://127.0.0.1:$PORT --intake-key "$KEY" --events $EV --clients 6 > $OUT 2>&1
kill -INT $VP; wait $VP
tot=0; for f in $OUT.cg.*; do n=$(grep -m1 '^summary:' $f | awk '{print $2}'); [ -z "$n" ] && n=$(grep -m1 '^totals:' $f | awk '{print $2}'); tot=$((tot + n)); done
echo "$(basename $OUT): events $EV server instructions $tot per event $((tot / EV))" | tee -a $OUT
rm -rf $D
