#!/bin/bash
# The stale-parallelism quality table of docs/QUALITY.md: `paradit quality` (20 steps, seed 0) for
# PipeFusion, DistriFusion and hybrids on the pipelines of tools/make_quality_pipelines.py.
#   benchmarks/quality_table.sh [PIPELINES_DIR] [OUT_DIR]
set -euo pipefail
dir=${1:-/tmp/paradit-quality}
out=${2:-/tmp/paradit-quality-results}
paradit=${PARADIT:-.build/release/paradit}
mkdir -p "$out"
declare -A size=([dit]=32x32 [pixart]=32x48 [sd3]=32x32 [flux]=32x32)
configs=(
  "pipefusion=2 1" "pipefusion=2 1 --patches 4" "pipefusion=4 1" "pipefusion=4 1 --patches 8"
  "distrifusion=2 1" "distrifusion=4 1"
  "pipefusion=2,ulysses=2 1" "cfg=2,pipefusion=2 1" "cfg=2,distrifusion=2 1"
  "pipefusion=2 4" "distrifusion=2 4"
)
for name in dit pixart sd3 flux; do
  embeds=()
  [ -f "$dir/$name/conditioning.safetensors" ] && embeds=(--prompt-embeds "$dir/$name/conditioning.safetensors")
  for c in "${configs[@]}"; do
    read -r spec warm extra <<<"$c"
    [ "$name" = flux ] && [[ $spec == cfg=* ]] && continue   # Flux-dev has no CFG batch
    tag="$name-${spec//[=,]/_}-w$warm${extra:+-$(echo "$extra" | tr -d ' -')}"
    $paradit quality --model "$dir/$name/pipeline" "${embeds[@]}" --size "${size[$name]}" --steps 20 --seed 0 \
      --parallel "$spec" --warmup-steps "$warm" $extra --json "$out/$tag.json" 2>/dev/null | sed -n 1p
  done
done
