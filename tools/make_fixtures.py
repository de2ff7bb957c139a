#!/usr/bin/env python3
"""Writes the golden fixtures of Tests/ParaDiTModelsTests/Fixtures from diffusers itself.

Each fixture is a tiny random-weight model of a real diffusers class, saved as diffusers saves it
(config.json + diffusion_pytorch_model.safetensors), the inputs of one forward() call named as its
arguments (inputs.safetensors), and diffusers' output (output.safetensors, tensor "sample").
Every weight is drawn non-zero (layers diffusers zero-initialises are overwritten too), so a
missing term cannot hide.

    python3 -m venv ~/venv && ~/venv/bin/pip install torch "diffusers==0.42.*" safetensors
    ~/venv/bin/python tools/make_fixtures.py [dit pixart sd3 flux wan]

CI never runs this: the fixtures are committed.
"""
import json
import os
import shutil

import diffusers
import torch
import sys

from diffusers import DiTTransformer2DModel, FluxTransformer2DModel, PixArtTransformer2DModel, SD3Transformer2DModel
from diffusers import WanTransformer3DModel
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTModelsTests", "Fixtures")


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p.shape[-1] if p.dim() > 1 else 16
            p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5 + 0.01)
    return model.eval()


def save_case(name, model, inputs, dtype=torch.float32):
    """Saves the model (weights stored as `dtype`), the inputs and diffusers' float32 output."""
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    model.to(dtype).save_pretrained(os.path.join(folder, "model"), safe_serialization=True)
    model.to(torch.float32)
    # The reference is what a user gets: the saved folder loaded in float32 (stored weights widened,
    # buffers such as the sincos table computed afresh in float32).
    model = type(model).from_pretrained(os.path.join(folder, "model"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        sample = model(**inputs, return_dict=False)[0]
    flat = dict(inputs)
    flat.update(flat.pop("added_cond_kwargs", {}))  # its keys become top-level inputs
    save_file({k: v.contiguous() for k, v in flat.items()}, os.path.join(folder, "inputs.safetensors"))
    save_file({"sample": sample.contiguous()}, os.path.join(folder, "output.safetensors"))
    with open(os.path.join(folder, "model", "config.json")) as f:
        config = json.load(f)
    print(f"{name}: {config['_class_name']} {dtype}, sample {tuple(sample.shape)}")


def dit_cases():
    config = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=2,
                  sample_size=8, patch_size=2, num_embeds_ada_norm=10)
    g = torch.Generator().manual_seed(100)
    model = randomize(DiTTransformer2DModel(**config), seed=1)
    base = dict(hidden_states=torch.randn(2, 4, 8, 8, generator=g),
                timestep=torch.tensor([999, 17], dtype=torch.int64),
                class_labels=torch.tensor([3, 10], dtype=torch.int64))  # 10 = the null class
    save_case("dit-b2", model, base)
    # A latent larger than sample_size: the position embedding is recomputed on the larger grid.
    save_case("dit-b1-12x12", model, dict(hidden_states=torch.randn(1, 4, 12, 12, generator=g),
                                          timestep=torch.tensor([500], dtype=torch.int64),
                                          class_labels=torch.tensor([7], dtype=torch.int64)))
    save_case("dit-b2-bf16", randomize(DiTTransformer2DModel(**config), seed=2), base, dtype=torch.bfloat16)
    save_case("dit-b2-f16", randomize(DiTTransformer2DModel(**config), seed=3), base, dtype=torch.float16)


def pixart_cases():
    g = torch.Generator().manual_seed(200)
    # PixArt-α style: resolution and aspect-ratio conditioning (width divisible by 3 for them).
    alpha = dict(num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=8, num_layers=2,
                 cross_attention_dim=24, caption_channels=20, sample_size=8, patch_size=2,
                 use_additional_conditions=True)
    model = randomize(PixArtTransformer2DModel(**alpha), seed=4)
    mask = torch.ones(2, 7, dtype=torch.int64)
    mask[0, 5:] = 0  # padded caption tokens of sample 0
    save_case("pixart-alpha-b2-8x12", model, dict(
        hidden_states=torch.randn(2, 4, 8, 12, generator=g),
        encoder_hidden_states=torch.randn(2, 7, 20, generator=g),
        timestep=torch.tensor([999, 3], dtype=torch.int64),
        encoder_attention_mask=mask,
        added_cond_kwargs=dict(resolution=torch.tensor([[64.0, 96.0], [64.0, 96.0]]),
                               aspect_ratio=torch.tensor([[1.5], [1.5]]))))
    save_case("pixart-alpha-b2-bf16", randomize(PixArtTransformer2DModel(**alpha), seed=5), dict(
        hidden_states=torch.randn(2, 4, 8, 8, generator=g),
        encoder_hidden_states=torch.randn(2, 5, 20, generator=g),
        timestep=torch.tensor([500, 1], dtype=torch.int64),
        added_cond_kwargs=dict(resolution=torch.tensor([[64.0, 64.0], [64.0, 64.0]]),
                               aspect_ratio=torch.tensor([[1.0], [1.0]]))), dtype=torch.bfloat16)
    # PixArt-Σ style: no size conditioning, interpolation scale 2, a latent larger than sample_size.
    sigma = dict(alpha, use_additional_conditions=False, interpolation_scale=2, sample_size=8)
    save_case("pixart-sigma-b1-12x16", randomize(PixArtTransformer2DModel(**sigma), seed=6), dict(
        hidden_states=torch.randn(1, 4, 12, 16, generator=g),
        encoder_hidden_states=torch.randn(1, 9, 20, generator=g),
        timestep=torch.tensor([250.0])))


def sd3_cases():
    g = torch.Generator().manual_seed(300)
    sd3 = dict(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8, num_attention_heads=2,
               joint_attention_dim=12, caption_projection_dim=16, pooled_projection_dim=10, out_channels=4,
               pos_embed_max_size=12)
    save_case("sd3-b2-8x12", randomize(SD3Transformer2DModel(**sd3), seed=7), dict(
        hidden_states=torch.randn(2, 4, 8, 12, generator=g),
        encoder_hidden_states=torch.randn(2, 7, 12, generator=g),
        pooled_projections=torch.randn(2, 10, generator=g),
        timestep=torch.tensor([999.0, 1.5])))
    # SD3.5: qk-norm and dual attention in the first block; bf16 weights.
    sd35 = dict(sd3, num_layers=3, qk_norm="rms_norm", dual_attention_layers=(0,))
    save_case("sd35-b1-bf16", randomize(SD3Transformer2DModel(**sd35), seed=8), dict(
        hidden_states=torch.randn(1, 4, 10, 6, generator=g),
        encoder_hidden_states=torch.randn(1, 5, 12, generator=g),
        pooled_projections=torch.randn(1, 10, generator=g),
        timestep=torch.tensor([500.0])), dtype=torch.bfloat16)


def flux_ids(h, w, text):
    img = torch.zeros(h, w, 3)
    img[..., 1] = torch.arange(h)[:, None]
    img[..., 2] = torch.arange(w)[None, :]
    return img.reshape(h * w, 3), torch.zeros(text, 3)


def flux_cases():
    g = torch.Generator().manual_seed(400)
    schnell = dict(patch_size=1, in_channels=8, num_layers=1, num_single_layers=2, attention_head_dim=16,
                   num_attention_heads=2, joint_attention_dim=12, pooled_projection_dim=10,
                   axes_dims_rope=(4, 6, 6))
    img_ids, txt_ids = flux_ids(3, 5, 7)
    save_case("flux-schnell-b2-3x5", randomize(FluxTransformer2DModel(**schnell), seed=9), dict(
        hidden_states=torch.randn(2, 15, 8, generator=g),
        encoder_hidden_states=torch.randn(2, 7, 12, generator=g),
        pooled_projections=torch.randn(2, 10, generator=g),
        timestep=torch.tensor([1.0, 0.25]), img_ids=img_ids, txt_ids=txt_ids))
    img_ids, txt_ids = flux_ids(4, 4, 5)
    save_case("flux-dev-b1-bf16", randomize(FluxTransformer2DModel(**dict(schnell, guidance_embeds=True, num_layers=2)), seed=10), dict(
        hidden_states=torch.randn(1, 16, 8, generator=g),
        encoder_hidden_states=torch.randn(1, 5, 12, generator=g),
        pooled_projections=torch.randn(1, 10, generator=g),
        timestep=torch.tensor([0.5]), img_ids=img_ids, txt_ids=txt_ids,
        guidance=torch.tensor([3.5])), dtype=torch.bfloat16)


def wan_cases():
    g = torch.Generator().manual_seed(500)
    # 3 heads of 12 (RoPE: 4 frame, 4 row, 4 column channels), odd frames, a non-square frame.
    wan = dict(patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=12, in_channels=4, out_channels=4,
               text_dim=16, freq_dim=32, ffn_dim=40, num_layers=2, rope_max_seq_len=32)
    save_case("wan-t2v-b2-3x6x10", randomize(WanTransformer3DModel(**wan), seed=11), dict(
        hidden_states=torch.randn(2, 4, 3, 6, 10, generator=g),
        timestep=torch.tensor([999.0, 321.0]),
        encoder_hidden_states=torch.randn(2, 7, 16, generator=g)))
    save_case("wan-t2v-b1-bf16", randomize(WanTransformer3DModel(**dict(wan, patch_size=(1, 2, 2))), seed=12), dict(
        hidden_states=torch.randn(1, 4, 5, 4, 4, generator=g),
        timestep=torch.tensor([500.0]),
        encoder_hidden_states=torch.randn(1, 9, 16, generator=g)), dtype=torch.bfloat16)


CASES = {"dit": dit_cases, "pixart": pixart_cases, "sd3": sd3_cases, "flux": flux_cases, "wan": wan_cases}

if __name__ == "__main__":
    if not diffusers.__version__.startswith("0.42."):
        raise SystemExit(f"fixtures are pinned to diffusers 0.42.x, found {diffusers.__version__}")
    torch.manual_seed(0)
    # Arguments name case groups to write (default: all of them).
    for name in sys.argv[1:] or list(CASES):
        CASES[name]()
