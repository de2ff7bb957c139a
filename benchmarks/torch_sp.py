#!/usr/bin/env python3
"""Times diffusers' own context parallelism (Ulysses) on the presets of `paradit bench parallel`, on CPU.

The peer of `paradit bench parallel --parallel ulysses=N`: the same configs and inputs as
benchmarks/torch_forward.py, one process per rank over gloo, each with --threads-per-rank threads.
The script spawns its ranks itself:

    python3 benchmarks/torch_sp.py --preset pixart-512 --ulysses 2 --threads-per-rank 1 --runs 3 --json sp.json
    python3 benchmarks/torch_sp.py --preset pixart-512 --ulysses 1 --threads-per-rank 1   # serial, same threads
    python3 benchmarks/torch_sp.py --preset flux-small --ulysses 2 --layers 1 --runs 1 --warmup 0 --check

Each figure is rank 0's median of --runs forward passes after --warmup, with a barrier before each.
--check also runs the stock serial model once on rank 0 and prints the relative L2 distance of the
Ulysses output from it.

What diffusers (0.42) provides and what this script adds:
- Flux ships a context-parallel plan and attention processors that call diffusers' attention
  dispatcher; it runs as is.
- PixArt, DiT and SD3 ship neither: their processors call SDPA directly, so `enable_parallelism`
  cannot reach them. For these the script supplies the plan (split the tokens after the patch
  embedding, and SD3's text after its context embedder; gather before the unpatchify) and a
  processor that sends the same projections through the dispatcher. The split, the all-to-alls and
  the gathers remain diffusers' own. Cross-attention (PixArt) needs no exchange: local queries
  attend to the full caption.
- Only the "native" (SDPA) backend supports context parallelism on CPU, and only in Ulysses mode:
  Ring needs an attention op that returns the log-sum-exp, which SDPA on CPU does not.
- The device mesh is built on `torch.accelerator.device_count()` ranks per host, which is 0 without
  an accelerator; the script reports 1 so that the mesh is built on CPU over gloo.
- Token counts that do not divide by the degree (SD3's 333 text tokens) use diffusers'
  "Ulysses anything" mode, which shards unevenly.

Needs torch and diffusers (pip install torch "diffusers==0.42.*"); the engine never does.
"""
import argparse
import json
import os
import platform
import socket
import statistics
import time
from datetime import datetime, timezone

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed._functional_collectives import AsyncCollectiveTensor
import diffusers
from diffusers.models._modeling_parallel import ContextParallelConfig, ContextParallelInput, ContextParallelOutput
from diffusers.models.attention_dispatch import dispatch_attention_fn

from torch_forward import PRESETS, inputs


class DispatchedSelfAttention:
    """Self-attention of a diffusers `Attention` (PixArt's and DiT's attn1) through the dispatcher,
    where context parallelism takes effect. Covers only what those models use: no mask, no norms."""

    _attention_backend = None
    _parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError("DispatchedSelfAttention handles unmasked self-attention only")
        q, k, v = (proj(hidden_states).unflatten(-1, (attn.heads, -1)) for proj in (attn.to_q, attn.to_k, attn.to_v))
        out = dispatch_attention_fn(q, k, v, backend=self._attention_backend, parallel_config=self._parallel_config)
        return attn.to_out[1](attn.to_out[0](out.flatten(2)))


class DispatchedJointAttention:
    """SD3's joint attention (image and text tokens in one sequence) through the dispatcher."""

    _attention_backend = None
    _parallel_config = None

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        if attention_mask is not None:
            raise ValueError("DispatchedJointAttention handles unmasked attention only")

        def heads(x, projections, norms):
            q, k, v = (proj(x).unflatten(-1, (attn.heads, -1)) for proj in projections)
            return (norms[0](q) if norms[0] else q), (norms[1](k) if norms[1] else k), v

        q, k, v = heads(hidden_states, (attn.to_q, attn.to_k, attn.to_v), (attn.norm_q, attn.norm_k))
        image_tokens = hidden_states.shape[1]
        if encoder_hidden_states is not None:
            cq, ck, cv = heads(encoder_hidden_states, (attn.add_q_proj, attn.add_k_proj, attn.add_v_proj),
                               (attn.norm_added_q, attn.norm_added_k))
            q, k, v = torch.cat([q, cq], 1), torch.cat([k, ck], 1), torch.cat([v, cv], 1)
        out = dispatch_attention_fn(q, k, v, backend=self._attention_backend, parallel_config=self._parallel_config)
        out = out.flatten(2)
        image = attn.to_out[1](attn.to_out[0](out[:, :image_tokens]))
        if encoder_hidden_states is None:
            return image
        text = out[:, image_tokens:]
        return image, (text if attn.context_pre_only else attn.to_add_out(text))


# Plans for the models diffusers ships none for: module name -> how its inputs or outputs are split
# along the sequence, or gathered back (see diffusers.models._modeling_parallel).
SCRIPT_PLANS = {
    "pixart-512": {"pos_embed": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
                   "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3)},
    "dit-xl-2-256": {"pos_embed": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
                     "proj_out_2": ContextParallelOutput(gather_dim=1, expected_dims=3)},
    "sd3-medium-512": {"pos_embed": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
                       "context_embedder": {0: ContextParallelInput(split_dim=1, expected_dims=3, split_output=True)},
                       "proj_out": ContextParallelOutput(gather_dim=1, expected_dims=3)},
}

# Tokens each preset splits over the ranks: (image, text), text None where it stays whole.
SPLIT_TOKENS = {"dit-xl-2-256": (256, None), "pixart-512": (1024, None), "sd3-medium-512": (1024, 333),
                "flux-small": (1024, 512)}


def build(preset, layers):
    """The preset's model with seed-0 weights and its inputs, drawn in torch_forward.py's order."""
    cls, config = PRESETS[preset]
    config = dict(config)
    if layers is not None:
        config["num_layers"] = layers
        if "num_single_layers" in config:
            config["num_single_layers"] = layers
    torch.manual_seed(0)
    model = cls(**config).eval()
    return model, inputs(preset)


def use_dispatched_attention(model, preset):
    for block in model.transformer_blocks:
        if preset == "sd3-medium-512":
            block.attn.set_processor(DispatchedJointAttention())
        else:
            block.attn1.set_processor(DispatchedSelfAttention())


def enable_ulysses(model, preset, degree):
    # diffusers places rank r on accelerator r % device_count(); without one that count is 0.
    if torch.accelerator.device_count() == 0:
        torch.accelerator.device_count = lambda: 1
    if preset in SCRIPT_PLANS:
        use_dispatched_attention(model, preset)
    uneven = any(n is not None and n % degree for n in SPLIT_TOKENS[preset])
    model.enable_parallelism(config=ContextParallelConfig(ulysses_degree=degree, ulysses_anything=uneven),
                             cp_plan=SCRIPT_PLANS.get(preset))


def output(model, x):
    # The gather of the last layer's output is asynchronous; the step ends when it has arrived.
    y = model(**x, return_dict=False)[0]
    return y.wait() if isinstance(y, AsyncCollectiveTensor) else y


def time_steps(model, x, warmup, runs, barrier):
    samples = []
    for i in range(warmup + runs):
        barrier()
        start = time.perf_counter()
        output(model, x)
        if i >= warmup:
            samples.append(time.perf_counter() - start)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": runs}


def rank_main(rank, args, port, results):
    torch.set_num_threads(args.threads_per_rank)
    degree, check = args.ulysses, args.check and args.ulysses > 1
    if degree > 1:
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        # "cpu:" in the backend name makes diffusers' size exchange (uneven shards) stay on CPU.
        dist.init_process_group("cpu:gloo", rank=rank, world_size=degree)
    model, x = build(args.preset, args.layers)
    reference, relative_l2 = None, None
    with torch.no_grad():
        if check:
            reference = output(model, x) if rank == 0 else None
            dist.barrier()
        if degree > 1:
            enable_ulysses(model, args.preset, degree)
        timing = time_steps(model, x, args.warmup, args.runs, dist.barrier if degree > 1 else lambda: None)
        if check:
            y = output(model, x)
            if rank == 0:
                relative_l2 = ((y - reference).norm() / reference.norm()).item()
    if rank == 0:
        results.put({"timing": timing, "relativeL2": relative_l2,
                     "parameters": sum(p.numel() for p in model.parameters())})
    if degree > 1:
        dist.destroy_process_group()


def machine(threads):
    models = [line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")] \
        if os.path.exists("/proc/cpuinfo") else []
    return {"cpu": models[0] if models else platform.processor() or "unknown", "logicalCores": os.cpu_count(),
            "os": f"{platform.system()} {platform.release()}", "arch": platform.machine(), "threads": threads,
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--ulysses", type=int, default=2, help="ranks (Ulysses degree); 1 times the serial model")
    parser.add_argument("--threads-per-rank", type=int, help="default: the logical cores shared by the ranks")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--layers", type=int, help="build only this many blocks (Flux: of each kind), for quick runs")
    parser.add_argument("--check", action="store_true", help="print the relative L2 distance from the serial output")
    parser.add_argument("--json")
    args = parser.parse_args()
    if args.threads_per_rank is None:
        args.threads_per_rank = max(1, os.cpu_count() // max(1, args.ulysses))
    if args.ulysses < 1 or args.threads_per_rank < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--ulysses, --threads-per-rank and --runs must be at least 1, --warmup at least 0")
    if args.layers is not None and args.layers < 1:
        parser.error("--layers must be at least 1")
    heads = PRESETS[args.preset][1]["num_attention_heads"]
    if heads % args.ulysses:
        parser.error(f"--ulysses {args.ulysses} does not divide the {heads} attention heads of {args.preset}")

    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    if args.ulysses == 1:
        rank_main(0, args, None, results)
    else:
        mp.spawn(rank_main, args=(args, free_port(), results), nprocs=args.ulysses, join=True)
    r = results.get()
    timing, parallel = r["timing"], ("serial" if args.ulysses == 1 else f"ulysses={args.ulysses}")
    plan = "diffusers" if args.preset not in SCRIPT_PLANS else "this script's plan and processor"
    layers = "" if args.layers is None else f", {args.layers} layer(s)"
    print(f"diffusers {diffusers.__version__} / torch {torch.__version__}, {args.preset}{layers}: "
          f"{r['parameters'] / 1e6:.1f} M parameters; context-parallel plan: {plan if args.ulysses > 1 else '—'}\n")
    print(f"{'parallel':14}{'ranks':>6}{'threads/rank':>14}{'step s':>10}{'min s':>10}{'max s':>10}")
    print(f"{parallel:14}{args.ulysses:6}{args.threads_per_rank:14}"
          f"{timing['median']:10.3f}{timing['min']:10.3f}{timing['max']:10.3f}")
    if r["relativeL2"] is not None:
        print(f"\nrelative L2 of the Ulysses output from the serial output: {r['relativeL2']:.3e}")
    elif args.check:
        print("\n--check compares with the serial output; it needs --ulysses 2 or more")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": "parallel-torch", "preset": args.preset, "layers": args.layers, "parallel": parallel,
                       "ranks": args.ulysses, "threadsPerRank": args.threads_per_rank, "torch": torch.__version__,
                       "diffusers": diffusers.__version__, "machine": machine(args.threads_per_rank * args.ulysses),
                       "parameters": r["parameters"], "plan": plan if args.ulysses > 1 else None,
                       "parallelStep": timing, "relativeL2": r["relativeL2"]}, f, indent=2)


if __name__ == "__main__":
    main()
