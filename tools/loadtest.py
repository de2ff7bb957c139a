#!/usr/bin/env python3
"""Load test for `paradit serve`, on loopback only, bounded in requests and time.

    python3 tools/loadtest.py --serve "--max-batch 1" --serve "--max-batch 8" --rounds 3 \
        --requests 32 --clients 8 --json load.json

starts `paradit serve` (the executable beside this repository's release build, or --binary) with
each --serve argument string in turn, alternating them for --rounds rounds, and each round sends
--requests generations from --clients concurrent clients (--mpirun N: each server under mpirun) (with --body as the request, the seed
varied per request), while another thread polls /healthz. A 429 is retried after its Retry-After.
It fails (exit 1) when a request is lost or answered 5xx, a 429 arrives while the queue had room
(the server says in the message how many requests were waiting), a 429 lacks Retry-After, or
/healthz stops answering within a second. Prints a table (throughput, p50/p99 latency, 429s) and
writes it with the machine and config to --json. Against a server already running: --url.
"""
import argparse
import concurrent.futures
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def post(url, body, timeout):
    req = urllib.request.Request(url + "/v1/images/generations", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def one_round(url, args, problems):
    """Sends the requests; returns per-request latencies, the 429 count and the wall time."""
    latencies, rejected, lock = [], [0], threading.Lock()
    deadline = time.time() + args.time_limit

    def request(i):
        body = dict(json.loads(args.body), seed=1000 + i)
        start = time.time()
        while time.time() < deadline:
            status, headers, data = post(url, body, timeout=args.time_limit)
            if status == 200:
                with lock:
                    latencies.append(time.time() - start)
                return
            if status == 429:
                message = json.loads(data)["error"]["message"]
                full = re.search(r"(\d+) of (\d+) requests waiting", message)
                if not full or full.group(1) != full.group(2):
                    problems.append(f"request {i}: 429 while the queue had room: {message}")
                if not headers.get("Retry-After"):
                    problems.append(f"request {i}: 429 without Retry-After")
                with lock:
                    rejected[0] += 1
                time.sleep(float(headers.get("Retry-After") or 1) * args.retry_scale)
                continue
            problems.append(f"request {i}: HTTP {status}: {data[:200]!r}")
            return
        problems.append(f"request {i}: not answered within {args.time_limit} s")

    stop = threading.Event()

    def health():
        while not stop.is_set():
            t = time.time()
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status != 200:
                        problems.append(f"/healthz answered {r.status}")
            except Exception as e:  # a timeout or a refused connection: both are failures here
                problems.append(f"/healthz did not answer within 1 s: {e}")
            stop.wait(max(0, 0.1 - (time.time() - t)))

    poller = threading.Thread(target=health)
    poller.start()
    start = time.time()
    with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(request, range(args.requests)))
    wall = time.time() - start
    stop.set()
    poller.join()
    return latencies, rejected[0], wall


def start_server(binary, serve_args, ranks):
    cmd = [binary, "serve", "--port", "0"] + serve_args.split()
    env = dict(os.environ)
    if ranks > 1:
        cmd = ["mpirun", "--oversubscribe", "-np", str(ranks)] + cmd
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                   OMPI_MCA_btl_vader_single_copy_mechanism="none")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    line = proc.stdout.readline()
    m = re.search(r"listening on (http://\S+) \(pid (\d+)", line)
    if not m:
        proc.kill()
        sys.exit(f"{' '.join(cmd)} did not start: {line!r}")
    return proc, m.group(1), int(m.group(2))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--serve", action="append", help="arguments of one `paradit serve` configuration")
    p.add_argument("--url", help="a server already running, instead of --serve")
    p.add_argument("--binary", default=os.path.join(ROOT, ".build", "release", "paradit"))
    p.add_argument("--mpirun", type=int, default=1, metavar="N", help="start each server under mpirun -np N")
    p.add_argument("--requests", type=int, default=32)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--body", default='{"prompt": "3", "num_inference_steps": 25}')
    p.add_argument("--time-limit", type=float, default=300, help="seconds a round may take")
    p.add_argument("--retry-scale", type=float, default=1.0, help="multiplies Retry-After (tests: shorter)")
    p.add_argument("--json")
    args = p.parse_args()
    if not 1 <= args.requests <= 10000 or not 1 <= args.clients <= 256:
        sys.exit("--requests must be 1...10000 and --clients 1...256")
    configs = [None] if args.url else (args.serve or [""])
    rows, problems = {c or args.url: [] for c in configs}, []
    for _ in range(args.rounds):
        for config in configs:
            proc, url, pid = (None, args.url, None) if args.url else start_server(args.binary, config, args.mpirun)
            try:
                rows[config or args.url].append(one_round(url, args, problems))
            finally:
                if proc:
                    os.kill(pid, signal.SIGTERM)  # the serving process: rank 0 under mpirun
                    if proc.wait(timeout=60) != 0:
                        problems.append(f"serve {config} exited {proc.returncode} after SIGTERM")
    table = []
    for config, runs in rows.items():
        lat = sorted(x for r in runs for x in r[0])
        table.append({
            "config": config, "rounds": len(runs),
            "requests_per_second": statistics.median(len(r[0]) / r[2] for r in runs),
            "p50_seconds": lat[len(lat) // 2] if lat else None,
            "p99_seconds": lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else None,
            "rejected_429": sum(r[1] for r in runs), "answered": len(lat),
        })
    print(f"{'config':32} {'req/s':>8} {'p50 s':>8} {'p99 s':>8} {'429s':>6} {'answered':>9}")
    for r in table:
        print(f"{r['config'][:32]:32} {r['requests_per_second']:8.2f} {r['p50_seconds'] or 0:8.3f} "
              f"{r['p99_seconds'] or 0:8.3f} {r['rejected_429']:6d} {r['answered']:9d}")
    if args.json:
        report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
                  "requests": args.requests, "clients": args.clients, "body": json.loads(args.body), "results": table}
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.json)
    for problem in problems:
        print("FAIL:", problem, file=sys.stderr)
    if problems or any(r["answered"] != args.requests * r["rounds"] for r in table):
        sys.exit(1)


if __name__ == "__main__":
    main()
