#!/usr/bin/env python3
"""plansummary.py LOG INDEX: the plans auto_explain logged for searches.sh, one block per API
request (each starts with the marker statement searches.sh runs when MARK is set), naming
the request from INDEX (searches.sh's index.txt) and listing each statement's duration and
its scan, join and sort nodes."""
import re, sys

log, index = sys.argv[1], sys.argv[2]
labels = [line.split(' ', 1)[1].rsplit(' /api', 1)[0] for line in open(index).read().splitlines()]
entries = re.split(r'\n(?=\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ UTC )', open(log).read())
requests = []
for entry in entries:
    m = re.search(r'duration: ([\d.]+) ms', entry)
    if not m:
        continue
    text = entry.split('Query Text: ', 1)[1] if 'Query Text: ' in entry else ''
    marker = re.match(r"SELECT 'request (\d+)'", text)
    if marker:
        requests.append([])
        continue
    if 'FROM api_tokens WHERE key_hash' in text:
        continue
    if not requests:
        continue
    nodes = []
    for line in entry.splitlines():
        s = line.strip().lstrip('->').strip()
        if re.match(r'(Parallel )?(Index|Index Only|Bitmap Index|Bitmap Heap|Seq) Scan', s) or s.startswith(('Index Cond', 'Filter', 'Recheck Cond', 'Hash Join', 'Nested Loop', 'Sort Key', 'BitmapAnd', 'BitmapOr')):
            s = re.sub(r'\s*\(cost=[^)]*\)', '', s)
            nodes.append(s[:230])
    requests[-1].append((float(m.group(1)), text.split('\n')[0][:90], nodes))
for label, stmts in zip(labels, requests):
    total = sum(d for d, _, _ in stmts)
    print(f'=== {label}: {len(stmts)} statements, {total:.1f} ms in PostgreSQL')
    for d, first, nodes in stmts:
        print(f'  {d:8.2f} ms  {first}')
        for n in nodes:
            print(f'               {n}')
