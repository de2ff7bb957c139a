#!/usr/bin/env python3
"""Formats benchmarks/cache_table.sh's reports: per parallel method, cache and threshold, the steps
skipped, the speedup of the denoising loop over the same method uncached (fbcache:0), PSNR against
the uncached serial run and the share of images the demo's classifier recognises."""
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
        method, threshold = r["cache"].split(":")
        rows[(r["parallel"], method, float(threshold))] = r
    print("| parallel | cache | threshold | steps skipped | speedup | latent PSNR | image PSNR | recognised |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for parallel in ["serial", "cfg=2", "ulysses=2", "ring=2"]:
        base = rows[(parallel, "fbcache", 0.0)]
        for key in sorted(k for k in rows if k[0] == parallel):
            r = rows[key]
            name = "none" if key[2] == 0 else key[1]
            print(f"| {parallel} | {name} | {key[2]:g} | {r['steps_skipped']} of {r['steps']} | "
                  f"{base['seconds'] / r['seconds']:.2f}× | {db(r['latent_psnr'])} | {db(r['image_psnr'])} | "
                  f"{100 * r['parallel_accuracy']:.0f} % |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/paradit-cache")
