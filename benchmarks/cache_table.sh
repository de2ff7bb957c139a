#!/bin/bash
# The step-cache table of docs/QUALITY.md and docs/PERFORMANCE.md: `paradit quality` on the demo model
# (100 images, 25 DDIM steps) for each parallel method, cache and threshold; threshold 0 is the
# uncached run (bit for bit), the base of each speedup.
#   benchmarks/cache_table.sh [OUT_DIR] && python3 benchmarks/cache_table.py [OUT_DIR]
set -euo pipefail
out=${1:-/tmp/paradit-cache}
paradit=${PARADIT:-.build/release/paradit}
mkdir -p "$out"
for spec in serial cfg=2 ulysses=2 ring=2; do
  for cache in fbcache:0 fbcache:0.05 fbcache:0.1 fbcache:0.2 teacache:0.1 teacache:0.2 teacache:0.4; do
    $paradit quality --steps 25 --parallel "$spec" --cache "$cache" --json "$out/${spec//=/}-${cache/:/-}.json" 2>/dev/null | sed -n 1p
  done
done
