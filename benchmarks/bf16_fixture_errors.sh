#!/usr/bin/env bash
# The `--dtype bf16` column of docs/QUALITY.md: each golden fixture's forward output with BF16
# compute against its Float32 output (relative L2). Needs a Python with numpy and safetensors
# (PYTHON, default python3); the diffusers bf16 column comes from tools/quantization_reference.py.
set -euo pipefail
cd "$(dirname "$0")/.."
paradit=${PARADIT:-.build/release/paradit}
python=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixtures=Tests/ParaDiTModelsTests/Fixtures
echo "| fixture | \`--dtype bf16\` |"
echo "|---|---:|"
for dir in "$fixtures"/*/; do
    name=$(basename "$dir")
    [[ -f "$dir/model/config.json" && -f "$dir/inputs.safetensors" ]] || continue
    grep -q Transformer "$dir/model/config.json" || continue
    for dtype in f32 bf16; do
        "$paradit" forward --model "$dir/model" --inputs "$dir/inputs.safetensors" --output "$work/$dtype.safetensors" \
            --dtype "$dtype" > /dev/null
    done
    "$python" - "$name" "$work/f32.safetensors" "$work/bf16.safetensors" <<'PY'
import sys
import numpy as np
from safetensors.numpy import load_file
name, wide, narrow = sys.argv[1:]
a, b = load_file(wide), load_file(narrow)
key = sorted(a)[0]
x, y = a[key].astype(np.float64), b[key].astype(np.float64)
err = f"{np.linalg.norm(y - x) / np.linalg.norm(x):.1e}".replace("e-0", "e-")
print(f"| {name} | {err} |")
PY
done
