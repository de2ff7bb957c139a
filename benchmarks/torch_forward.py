#!/usr/bin/env python3
"""Times diffusers on the presets of `paradit bench forward`: the same configs, inputs and threads.

    python3 benchmarks/torch_forward.py --preset dit-xl-2-256 --threads 2 --runs 3 --json torch_dit.json
    python3 benchmarks/torch_forward.py --preset dit-xl-2-256 --dtype bf16    # torch_dtype=torch.bfloat16

Needs torch and diffusers (pip install torch "diffusers==0.42.*"); the engine never does.
"""
import argparse
import json
import statistics
import time

import torch
from diffusers import DiTTransformer2DModel, FluxTransformer2DModel, PixArtTransformer2DModel, SD3Transformer2DModel

PRESETS = {
    "dit-xl-2-256": (DiTTransformer2DModel, dict(
        num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28, sample_size=32,
        patch_size=2, num_embeds_ada_norm=1000)),
    "pixart-512": (PixArtTransformer2DModel, dict(
        num_attention_heads=16, attention_head_dim=72, in_channels=4, out_channels=8, num_layers=28,
        cross_attention_dim=1152, caption_channels=4096, sample_size=64, patch_size=2)),
    "sd3-medium-512": (SD3Transformer2DModel, dict(
        sample_size=128, patch_size=2, in_channels=16, num_layers=24, attention_head_dim=64, num_attention_heads=24,
        joint_attention_dim=4096, caption_projection_dim=1536, pooled_projection_dim=2048, out_channels=16,
        pos_embed_max_size=192)),
    "flux-small": (FluxTransformer2DModel, dict(
        patch_size=1, in_channels=64, num_layers=2, num_single_layers=4, attention_head_dim=128, num_attention_heads=24,
        joint_attention_dim=4096, pooled_projection_dim=768, guidance_embeds=True, axes_dims_rope=(16, 56, 56))),
}


def inputs(name):
    if name == "dit-xl-2-256":
        return dict(hidden_states=torch.randn(2, 4, 32, 32), timestep=torch.tensor([500, 500]),
                    class_labels=torch.tensor([207, 1000]))
    if name == "pixart-512":
        return dict(hidden_states=torch.randn(2, 4, 64, 64), encoder_hidden_states=torch.randn(2, 120, 4096),
                    timestep=torch.tensor([500, 500]), added_cond_kwargs={"resolution": None, "aspect_ratio": None})
    if name == "sd3-medium-512":
        return dict(hidden_states=torch.randn(2, 16, 64, 64), encoder_hidden_states=torch.randn(2, 333, 4096),
                    pooled_projections=torch.randn(2, 2048), timestep=torch.tensor([500, 500]))
    rows, cols = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    img_ids = torch.stack([torch.zeros(32, 32), rows, cols], dim=-1).reshape(1024, 3)
    return dict(hidden_states=torch.randn(1, 1024, 64), encoder_hidden_states=torch.randn(1, 512, 4096),
                pooled_projections=torch.randn(1, 768), timestep=torch.tensor([0.5]), img_ids=img_ids,
                txt_ids=torch.zeros(512, 3), guidance=torch.tensor([3.5]))


def cast(value, dtype):
    """Float tensors (also inside dicts) in `dtype`; integer ids and timesteps as they are."""
    if isinstance(value, dict):
        return {k: cast(v, dtype) for k, v in value.items()}
    return value.to(dtype) if torch.is_tensor(value) and value.is_floating_point() else value


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                        help="bf16: the model and its float inputs in torch.bfloat16, "
                             "as torch_dtype=torch.bfloat16 loads it")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cls, config = PRESETS[args.preset]
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    model = cls(**config).eval().to(dtype)
    params = sum(p.numel() for p in model.parameters())
    x = cast(inputs(args.preset), dtype)
    samples = []
    with torch.no_grad():
        for i in range(args.warmup + args.runs):
            start = time.perf_counter()
            model(**x, return_dict=False)
            if i >= args.warmup:
                samples.append(time.perf_counter() - start)
    timing = {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "runs": args.runs}
    print(f"diffusers {args.preset} ({args.dtype}): {params / 1e6:.1f} M parameters, {args.threads} threads, "
          f"forward {timing['median']:.3f} s (min {timing['min']:.3f}, max {timing['max']:.3f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"suite": "forward-torch", "preset": args.preset, "dtype": args.dtype, "torch": torch.__version__,
                       "threads": args.threads, "parameters": params, "timing": timing}, f, indent=2)


if __name__ == "__main__":
    main()
