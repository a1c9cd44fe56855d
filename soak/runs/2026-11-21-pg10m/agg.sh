#!/bin/bash
# agg.sh BASE TOKEN RUNS : timings of the overview's aggregates and a few filtered ones (p50/p95/max ms)
base=$1; tok=$2; runs=${3:-5}
newest=$(curl -s -H "Authorization: Bearer $tok" "$base/api/v1/events?limit=1" | python3 -c 'import sys,json; print(json.load(sys.stdin)["items"][0]["time"])')
from6=$(python3 -c "
import datetime,sys
t='$newest'; base=t[:19]; frac=t[19:-1]
d=datetime.datetime.fromisoformat(base)-datetime.timedelta(hours=6)
print(d.strftime('%Y-%m-%dT%H:%M:%S')+frac+'Z')")
from1=$(python3 -c "
import datetime,sys
t='$newest'; base=t[:19]; frac=t[19:-1]
d=datetime.datetime.fromisoformat(base)-datetime.timedelta(hours=1)
print(d.strftime('%Y-%m-%dT%H:%M:%S')+frac+'Z')")
run() { # label path
  local label=$1 path=$2 ts=()
  curl -s -o /dev/null -H "Authorization: Bearer $tok" "$base$path"
  for i in $(seq $runs); do ts+=($(curl -s -o /tmp/agg.out -w '%{time_total}' -H "Authorization: Bearer $tok" "$base$path")); done
  printf '%-58s %s   %s\n' "$label" "$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1*1000} END {p50=a[int((NR+1)/2)]; p95=a[int(NR*0.95+0.999)]; printf "%9.1f %9.1f %9.1f", p50, p95, a[NR]}')" "$(head -c 120 /tmp/agg.out)"
}
to=$(python3 -c "
t='$newest'; print(t[:-4] + '%03d' % (int(t[-4:-1]) + 1) + 'Z')")
echo "newest event $newest; $runs runs each after one warm-up; p50 p95 max ms"
run "histogram, last 6 h, 6-minute buckets" "/api/v1/events/histogram?from=$from6&to=$to&interval_seconds=360"
run "histogram, last 1 h, 1-minute buckets" "/api/v1/events/histogram?from=$from1&to=$to&interval_seconds=60"
run "top users, last 6 h" "/api/v1/events/groups?from=$from6&field=user&limit=10"
run "top resources, last 6 h" "/api/v1/events/groups?from=$from6&field=resource&limit=10"
run "top source IPs, last 6 h" "/api/v1/events/groups?from=$from6&field=source_ip&limit=10"
run "top users, last 1 h" "/api/v1/events/groups?from=$from1&field=user&limit=10"
run "histogram of a user (mallory), all time" "/api/v1/events/histogram?user=mallory@example.com"
run "verbs of a user (mallory), all time" "/api/v1/events/groups?user=mallory@example.com&field=verb&limit=10"
run "user agents, namespace payments, last 1 h" "/api/v1/events/groups?namespace=payments&from=$from1&field=user_agent&limit=10"
run "search: user agent contains curl" "/api/v1/events?user_agent=curl&limit=100"
run "search: user agent contains KUBECTL" "/api/v1/events?user_agent=KUBECTL&limit=100"
run "search: free text tools-1 (rare)" "/api/v1/events?q=tools-1a2b&limit=100"
run "search: free text command=sh" "/api/v1/events?q=command%3Dsh&limit=100"
run "search: verb impersonate (no match)" "/api/v1/events?verb=impersonate&limit=100"
run "search: subresource portforward (no match)" "/api/v1/events?subresource=portforward&limit=100"
run "search: user agent contains python-requests (no match)" "/api/v1/events?user_agent=python-requests&limit=100"
run "search: cluster other (no match)" "/api/v1/events?cluster=other&limit=100"
run "search: group system:masters (no match)" "/api/v1/events?group=system:masters&limit=100"
run "search: group interns" "/api/v1/events?group=interns&limit=100"
run "count up to 10001: namespace payments" "/api/v1/events/count?namespace=payments&limit=10001"
run "count up to 10001: free text tmp-admin" "/api/v1/events/count?q=tmp-admin&limit=10001"
