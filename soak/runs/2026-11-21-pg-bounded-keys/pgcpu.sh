#!/bin/sh
# Total CPU seconds used by the PostgreSQL cluster's processes so far, including exited
# backends (accounted to the postmaster as children's time).
pm=$(head -1 /var/run/postgresql/15-main.pid 2>/dev/null || head -1 /var/lib/postgresql/15/main/postmaster.pid)
tck=$(getconf CLK_TCK)
total=0
for p in $(pgrep -P $pm) $pm; do
  [ -r /proc/$p/stat ] || continue
  # fields after the ")": state=3 ... utime=14 stime=15 cutime=16 cstime=17
  t=$(sed 's/^.*) //' /proc/$p/stat | awk -v pm=$pm -v p=$p '{ s=$12+$13; if (p==pm) s+=$14+$15; print s }')
  total=$((total + t))
done
echo "scale=2; $total / $tck" | bc
