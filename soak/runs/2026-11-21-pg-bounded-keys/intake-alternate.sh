#!/bin/bash
# Alternates the previous build and this one, 200,000 events each, fresh schema.
for i in 1 2 3 4; do
  /tmp/kb/intake-run.sh /tmp/kaudit-before/bin/kaudit "previous build, 10654fe" /tmp/kb/intake200k-before-$i.txt
  /tmp/kb/intake-run.sh /tmp/kaudit-after/target/release/kaudit "this build" /tmp/kb/intake200k-after-$i.txt
done
