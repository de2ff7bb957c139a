#!/usr/bin/env python3
"""Formats benchmarks/cache_table.sh's reports: per method and threshold, the steps skipped, the
speedup of the denoising loop over the same method at threshold 0, PSNR against the uncached serial
run and the share of images the demo's classifier recognises."""
import glob
import json
import os
import sys


def db(v):
    return "∞" if v >= 999 else f"{v:.1f} dB"


def main(folder):
    rows = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        r = json.load(open(path))
        rows[(r["parallel"], float(r["cache"].split(":")[1]))] = r
    print("| method | threshold | steps skipped | speedup | latent PSNR | image PSNR | recognised |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for method in ["serial", "cfg=2", "ulysses=2", "ring=2"]:
        base = rows[(method, 0.0)]
        for t in sorted(t for m, t in rows if m == method):
            r = rows[(method, t)]
            print(f"| {method} | {t:g} | {r['steps_skipped']} of {r['steps']} | {base['seconds'] / r['seconds']:.2f}× | "
                  f"{db(r['latent_psnr'])} | {db(r['image_psnr'])} | {100 * r['parallel_accuracy']:.0f} % |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/paradit-cache")
