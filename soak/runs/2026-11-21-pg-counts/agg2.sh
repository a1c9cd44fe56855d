#!/bin/bash
# agg2.sh BASE TOKEN RUNS OUTDIR : timings (p50/p95/max ms) of the overview's aggregates and a few
# others through the API; each answer is saved whole in OUTDIR so that two builds can be diffed.
base=$1; tok=$2; runs=${3:-5}; outdir=${4:-/tmp/agg2-out}
mkdir -p "$outdir"
newest=$(curl -s -H "Authorization: Bearer $tok" "$base/api/v1/events?limit=1" | python3 -c 'import sys,json; print(json.load(sys.stdin)["items"][0]["time"])')
ago() { python3 -c "
import datetime
t='$newest'; base=t[:19]; frac=t[19:-1]
d=datetime.datetime.fromisoformat(base)-datetime.timedelta(minutes=$1)
print(d.strftime('%Y-%m-%dT%H:%M:%S')+frac+'Z')"; }
from6=$(ago 360); from1=$(ago 60); from24=$(ago 1440); from15=$(ago 15); from3=$(ago 180)
to=$(python3 -c "
t='$newest'; print(t[:-4] + '%03d' % (int(t[-4:-1]) + 1) + 'Z')")
n=0
run() { # label path
  local label=$1 path=$2 ts=()
  n=$((n+1))
  curl -s -o /dev/null -H "Authorization: Bearer $tok" "$base$path"
  for i in $(seq $runs); do ts+=($(curl -s -o "$outdir/$n.json" -w '%{time_total}' -H "Authorization: Bearer $tok" "$base$path")); done
  printf '%-58s %s   %s\n' "$label" "$(printf '%s\n' "${ts[@]}" | sort -n | awk '{a[NR]=$1*1000} END {p50=a[int((NR+1)/2)]; p95=a[int(NR*0.95+0.999)]; printf "%9.1f %9.1f %9.1f", p50, p95, a[NR]}')" "$(head -c 100 "$outdir/$n.json")"
  echo "$n $label $path" >> "$outdir/index.txt"
}
: > "$outdir/index.txt"
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
# The overview page as the web UI asks it: from only (histograms also name the end, the newest
# event: the generated events are dated January 2026, and the server sizes buckets from the
# span to now, which would give widths of hours that are no whole number of minutes).
run "overview 24 h: histogram, 24-minute buckets" "/api/v1/events/histogram?from=$from24&to=$to&interval_seconds=1440"
run "overview 24 h: top users" "/api/v1/events/groups?from=$from24&field=user&limit=10"
run "overview 24 h: top resources" "/api/v1/events/groups?from=$from24&field=resource&limit=10"
run "overview 24 h: top source IPs" "/api/v1/events/groups?from=$from24&field=source_ip&limit=10"
run "overview 24 h, cluster bench: top users" "/api/v1/events/groups?from=$from24&cluster=bench&field=user&limit=10"
run "overview 24 h, cluster bench: histogram" "/api/v1/events/histogram?from=$from24&to=$to&cluster=bench&interval_seconds=1440"
run "overview 15 min: histogram, 1-minute buckets" "/api/v1/events/histogram?from=$from15&to=$to&interval_seconds=60"
run "overview 15 min: top users" "/api/v1/events/groups?from=$from15&field=user&limit=10"
run "overview all time: histogram (server's width)" "/api/v1/events/histogram"
run "top user agents, all time" "/api/v1/events/groups?field=user_agent&limit=10"
run "top clusters, all time" "/api/v1/events/groups?field=cluster&limit=10"
run "response codes, 3 h to 1 h ago" "/api/v1/events/groups?from=$from3&to=$from1&field=code&limit=10"
run "count, time range (one hour, an hour ago)" "/api/v1/events/count?from=$(ago 120)&to=$from1"
run "count, last 6 h" "/api/v1/events/count?from=$from6"
run "alerts: histogram, last 24 h" "/api/v1/alerts/histogram?from=$from24&to=$to&interval_seconds=1440"
run "alerts: by priority, last 24 h" "/api/v1/alerts/groups?from=$from24&field=priority&limit=8"
run "alerts: top rules, last 24 h" "/api/v1/alerts/groups?from=$from24&field=rule&limit=10"
