#!/bin/bash
# usage: ab.sh BIN OUTFILE [events] [clients]
BIN=$1; OUT=$2; EV=${3:-400000}; CL=${4:-6}
rm -rf /tmp/ab-data
$BIN bench intake --spawn --data-dir /tmp/ab-data --events $EV --clients $CL > $OUT 2>&1 &
BP=$!
for i in $(seq 1 100); do PID=$(grep -o 'serve (pid [0-9]*' $OUT 2>/dev/null | awk '{print $3}'); [ -n "$PID" ] && break; sleep 0.1; done
perf stat -e instructions,cycles,task-clock -p $PID -o $OUT.perf 2>/dev/null &
PP=$!
wait $BP
sleep 0.5; kill -INT $PP 2>/dev/null; wait $PP 2>/dev/null
echo "load $(cut -d' ' -f1-3 /proc/loadavg) size $(du -sb /tmp/ab-data | cut -f1)" >> $OUT
ins=$(grep instructions $OUT.perf | awk '{gsub(",","",$1); print $1}')
cyc=$(grep cycles $OUT.perf | head -1 | awk '{gsub(",","",$1); print $1}')
tp=$(grep throughput $OUT | awk '{print $2}')
cpu=$(grep "server CPU" $OUT | sed 's/.*(\([0-9.]*\) µs.*/\1/')
echo "$(basename $OUT): $tp ev/s, cpu $cpu us/ev, instr/ev $((ins/EV)), cycles/ev $((cyc/EV)), $(grep kaudit-sqlite-w $OUT | sed 's/.*(\([0-9.]*\) µs.*/w \1/') $(tail -1 $OUT)"
