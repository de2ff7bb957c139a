#!/usr/bin/env python3
"""PyTorch's CPU figures on the shapes of `paradit bench kernels`, for docs/PERFORMANCE.md.

Same cases, same statistics (median of --runs timed runs after --warmup), same thread count:

    python3 benchmarks/torch_kernels.py --threads 2 --json torch_kernels.json

Needs torch (pip install torch); the engine itself never does.
"""
import argparse
import json
import platform
import statistics
import time

import torch
import torch.nn.functional as F

GEMM_SHAPES = [(4096, 1152, 1152), (1024, 4608, 1152), (4096, 4608, 1152)]  # (m, n, k)


def measure(fn, warmup, runs):
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": runs}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--only", nargs="+", choices=["gemm", "attention", "memory"],
                        default=["gemm", "attention", "memory"], help="suites to run")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    report = {"suite": "kernels-torch", "torch": torch.__version__, "threads": args.threads,
              "machine": platform.processor() or platform.machine(), "gemm": [], "attention": [], "memory_bound": []}

    print(f"torch {torch.__version__}, {args.threads} threads\n")
    print(f"{'GEMM m×k·k×n':24}{'GFLOP/s':>10}{'ms':>10}")
    for m, n, k in GEMM_SHAPES if "gemm" in args.only else []:
        a, b = torch.randn(m, k), torch.randn(k, n)
        t = measure(lambda: torch.mm(a, b), args.warmup, args.runs)
        gflops = 2 * m * n * k / t["median"] / 1e9
        report["gemm"].append({"m": m, "n": n, "k": k, "timing": t, "gflops": gflops})
        print(f"{f'{m}×{k}·{k}×{n}':24}{gflops:10.1f}{t['median'] * 1e3:10.2f}")

    print(f"\n{'SDPA L':8}{'heads':>6}{'d':>6}{'ms':>10}{'GFLOP/s':>10}")
    for seq in args.seq_lens if "attention" in args.only else []:
        for d in (64, 128):
            q, k, v = (torch.randn(1, 16, seq, d) for _ in range(3))
            with torch.no_grad():
                t = measure(lambda: F.scaled_dot_product_attention(q, k, v), args.warmup, args.runs)
            gflops = 4 * 16 * seq * seq * d / t["median"] / 1e9
            report["attention"].append({"seq_len": seq, "heads": 16, "head_dim": d, "timing": t, "gflops": gflops})
            print(f"{seq:<8}{16:6}{d:6}{t['median'] * 1e3:10.2f}{gflops:10.1f}")

    x = torch.randn(4096, 1152)
    w, b = torch.randn(1152), torch.randn(1152)
    cases = {
        "layernorm": lambda: F.layer_norm(x, (1152,), w, b, 1e-6),
        "gelu-tanh": lambda: F.gelu(x, approximate="tanh"),
        "gelu-erf": lambda: F.gelu(x),
        "silu": lambda: F.silu(x),
    }
    print(f"\n{'kernel':12}{'µs':>10}{'GB/s':>8}")
    for name, fn in cases.items() if "memory" in args.only else []:
        t = measure(fn, args.warmup, args.runs)
        gbs = 2 * x.numel() * 4 / t["median"] / 1e9
        report["memory_bound"].append({"kernel": name, "shape": [4096, 1152], "timing": t, "gb_per_second": gbs})
        print(f"{name:12}{t['median'] * 1e6:10.1f}{gbs:8.1f}")

    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
