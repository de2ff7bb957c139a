#!/usr/bin/env python3
"""The demo model's quality table (docs/QUALITY.md) from `paradit quality --sweep --json` reports.

    .build/release/paradit quality --sweep --steps 20 --json /tmp/q20.json
    .build/release/paradit quality --sweep --steps 50 --json /tmp/q50.json
    python3 benchmarks/demo_quality_table.py /tmp/q20.json /tmp/q50.json
"""
import json
import sys


def db(v):
    return "∞" if v >= 999 else f"{v:.1f} dB"


def main(paths):
    runs = [json.load(open(p)) for p in paths]
    steps = [r[0]["steps"] for r in runs]
    head = "| parallel | warm-up | " + " | ".join(f"{s} steps: latent PSNR | image PSNR | recognised" for s in steps) + " |"
    print(head)
    print("|---|---:|" + "---:|---:|---:|" * len(runs))
    print("| serial | — | " + " | ".join(f"— | — | {100 * r[0]['serial_accuracy']:.0f} %" for r in runs) + " |")
    for i, first in enumerate(runs[0]):
        cells = []
        for r in runs:
            x = r[i]
            cells.append(f"{db(x['latent_psnr'])} | {db(x['image_psnr'])} | {100 * x['parallel_accuracy']:.0f} %")
        warm = first["warmup_steps"] if "fusion" in first["parallel"] else "—"
        print(f"| {first['parallel']} | {warm} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
