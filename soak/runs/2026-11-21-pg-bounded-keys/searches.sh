#!/bin/bash
# searches.sh BASE TOKEN OUTDIR : runs each search once (first page of 100 and its count) and saves
# the answers in OUTDIR, so that two builds' answers can be diffed and their plans logged.
base=$1; tok=$2; outdir=$3
mkdir -p "$outdir"; : > "$outdir/index.txt"
newest=$(curl -s -H "Authorization: Bearer $tok" "$base/api/v1/events?limit=1" | python3 -c 'import sys,json; print(json.load(sys.stdin)["items"][0]["time"])')
ago() { python3 -c "
import datetime
t='$newest'; base=t[:19]; frac=t[19:-1]
d=datetime.datetime.fromisoformat(base)-datetime.timedelta(minutes=$1)
print(d.strftime('%Y-%m-%dT%H:%M:%S')+frac+'Z')"; }
n=0
run() { # label path
  n=$((n+1))
  # With MARK set (a psql connection string), a marker statement names the request in the
  # server log that auto_explain writes.
  [ -n "$MARK" ] && psql -q "$MARK" -c "SELECT 'request $n'" > /dev/null
  curl -s -o "$outdir/$n.json" -H "Authorization: Bearer $tok" "$base$2"
  echo "$n $1 $2" >> "$outdir/index.txt"
  printf '%-3s %-50s %s\n' $n "$1" "$(head -c 80 "$outdir/$n.json")"
}
both() { # label query
  run "$1" "/api/v1/events?$2&limit=100"
  run "$1 (count)" "/api/v1/events/count?$2"
}
echo "newest event $newest"
# typical_searches of crates/kaudit-cli/src/cmd/bench_intake.rs
both "user (a person)" "user=mallory@example.com"
both "user (a busy service account)" "user=system:serviceaccount:kube-system:replicaset-controller"
both "user prefix (service accounts of a namespace)" "user_prefix=system:serviceaccount:monitoring:"
both "verb + resource (get secrets)" "verb=get&resource=secrets"
both "verb + resource (create clusterrolebindings)" "verb=create&resource=clusterrolebindings"
both "namespace" "namespace=payments"
both "subresource (exec)" "subresource=exec"
both "free text (tmp-admin)" "q=tmp-admin"
both "free text (credentials)" "q=credentials"
both "time range (10 min, 10 min ago)" "from=$(ago 20)&to=$(ago 10)"
both "namespace + verb + time range (30 min)" "namespace=payments&verb=get&from=$(ago 30)"
both "user + time range (30 min)" "user=alice@example.com&from=$(ago 30)"
both "decision (forbid)" "decision=forbid"
both "no match (unknown user)" "user=nobody@example.com"
# the other indexed filters
both "user agent contains curl" "user_agent=curl"
both "user agent contains KUBECTL" "user_agent=KUBECTL"
both "user agent contains python-requests (none)" "user_agent=python-requests"
both "cluster bench" "cluster=bench"
both "cluster other (none)" "cluster=other"
both "verb impersonate (none)" "verb=impersonate"
both "verb delete" "verb=delete"
both "name" "name=proxy-config"
both "source ip" "source_ip=10.0.4.26"
both "resource secrets" "resource=secrets"
run "alerts: rule" "/api/v1/alerts?rule=ConfigMap%20Modified&limit=100"
run "alerts: top rules, all time" "/api/v1/alerts/groups?field=rule&limit=10"
run "top users, last 30 min" "/api/v1/events/groups?from=$(ago 30)&field=user&limit=10"
run "top user agents, all time, cluster bench" "/api/v1/events/groups?cluster=bench&field=user_agent&limit=10"
run "histogram, last 10 min, cluster bench" "/api/v1/events/histogram?from=$(ago 10)&to=$newest&cluster=bench&interval_seconds=60"
run "count, last 10 min, cluster bench" "/api/v1/events/count?from=$(ago 10)&cluster=bench"
run "verbs of a user, all time" "/api/v1/events/groups?user=mallory@example.com&field=verb&limit=10"
