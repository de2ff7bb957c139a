#!/usr/bin/env python3
"""Renders benchmarks/quality_table.sh's JSON reports as the markdown table of docs/QUALITY.md."""
import glob
import json
import os
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/paradit-quality-results"
rows = []
for path in sorted(glob.glob(os.path.join(out, "*.json"))):
    r = json.load(open(path))
    name = os.path.basename(path).split("-")[0]
    patches = next((p[len("patches"):] for p in os.path.basename(path)[:-5].split("-") if p.startswith("patches")), None)
    rows.append((name, r["parallel"] + (f", {patches} patches" if patches else ""), r["warmup_steps"],
                 r["latent_psnr"], r["image_psnr"], r["max_pixel_error"]))
order = {"dit": 0, "pixart": 1, "sd3": 2, "flux": 3}
print("| pipeline | parallel | warm-up | latent PSNR | image PSNR | max pixel error |")
print("|---|---|---:|---:|---:|---:|")
for name, parallel, warm, lp, ip, mp in sorted(rows, key=lambda x: (order[x[0]], x[2], x[1])):
    print(f"| {name} | {parallel} | {warm} | {lp:.1f} dB | {ip:.1f} dB | {mp}/255 |")
