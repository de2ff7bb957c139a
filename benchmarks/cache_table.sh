#!/bin/bash
# The step-cache table of docs/QUALITY.md and docs/PERFORMANCE.md: `paradit quality` on the demo model
# (100 images, 25 DDIM steps) for each method and First-Block Cache threshold; 0 is the uncached run.
#   benchmarks/cache_table.sh [OUT_DIR] && python3 benchmarks/cache_table.py [OUT_DIR]
set -euo pipefail
out=${1:-/tmp/paradit-cache}
paradit=${PARADIT:-.build/release/paradit}
mkdir -p "$out"
for spec in serial cfg=2 ulysses=2 ring=2; do
  for t in 0 0.05 0.1 0.2; do
    $paradit quality --steps 25 --parallel "$spec" --cache "fbcache:$t" --json "$out/${spec//=/}-$t.json" 2>/dev/null | sed -n 1p
  done
done
