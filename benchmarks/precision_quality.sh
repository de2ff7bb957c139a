#!/bin/bash
# The 20-step precision table of docs/QUALITY.md: `paradit quality` (seed 0) of each narrower weight or
# compute type against the same generation as stored, on the tiny test pipelines and the demo model
# (`quality` compares images; Wan, which makes video, is not in it).
#   benchmarks/precision_quality.sh [OUT_DIR]
set -euo pipefail
out=${1:-/tmp/paradit-precision}
paradit=${PARADIT:-.build/release/paradit}
fixtures=Tests/ParaDiTDiffusionTests/Fixtures
prompt="a photo of an astronaut riding a horse"
mkdir -p "$out"
types=("--weights-dtype bf16" "--weights-dtype int8" "--weights-dtype int8-dynamic" "--dtype bf16")
for t in "${types[@]}"; do
  tag=$(echo "$t" | tr -d ' -')
  read -r -a flags <<<"$t"
  $paradit quality --steps 20 "${flags[@]}" --json "$out/demo-$tag.json" >/dev/null 2>&1
  $paradit quality --model $fixtures/pipelines/dit/pipeline --class 207 --class 3 --steps 20 "${flags[@]}" \
    --json "$out/dit-$tag.json" >/dev/null 2>&1
  for p in pixart-sigma sd3 flux; do
    $paradit quality --model $fixtures/prompt-pipelines/$p/pipeline --prompt "$prompt" --steps 20 "${flags[@]}" \
      --json "$out/$p-$tag.json" >/dev/null 2>&1
  done
done
python3 - "$out" <<'PY'
import json, sys, glob, os
for f in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    r = json.load(open(f))
    print(f"{os.path.basename(f)[:-5]:40} latent {r['latent_psnr']:6.1f} dB  image {r['image_psnr']:6.1f} dB  "
          f"max pixel {r['max_pixel_error']}")
PY
