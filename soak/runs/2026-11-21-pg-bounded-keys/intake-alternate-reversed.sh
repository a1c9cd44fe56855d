#!/bin/bash
# As intake-alternate.sh, this build first in each pair.
for i in 5 6; do
  /tmp/kb/intake-run.sh /tmp/kaudit-after/target/release/kaudit "this build" /tmp/kb/intake200k-after-$i.txt
  /tmp/kb/intake-run.sh /tmp/kaudit-before/bin/kaudit "previous build, 10654fe" /tmp/kb/intake200k-before-$i.txt
done
