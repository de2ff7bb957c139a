#!/usr/bin/env python3
"""Writes the pipelines of the stale-parallelism quality table (docs/QUALITY.md) to a folder.

The test fixtures (tools/make_pipeline_fixtures.py) have two blocks and two token rows: too few to
split into 4 pipeline stages or 8 patches. These are the same tiny architectures (DiT, PixArt-α,
SD3, Flux-dev; random weights drawn the fixtures' way) with 8 blocks (Flux: 4 double-stream and 4
single-stream), 16 text tokens, and images of 8 token rows. Each case folder holds pipeline/
(save_pretrained) and, except for DiT, conditioning.safetensors; nothing here is committed.

    ~/venv/bin/python tools/make_quality_pipelines.py /tmp/paradit-quality
"""
import os
import sys

import torch
from diffusers import (DiTPipeline, DiTTransformer2DModel, DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler,
                       FluxPipeline, FluxTransformer2DModel, PixArtAlphaPipeline, PixArtTransformer2DModel,
                       SD3Transformer2DModel, StableDiffusion3Pipeline)
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(__file__))
from make_pipeline_fixtures import randomize, sd3_style_vae, sd_vae  # noqa: E402

TEXT = 16


def save(out, name, pipe, conditioning=None):
    folder = os.path.join(out, name)
    pipe.save_pretrained(os.path.join(folder, "pipeline"), safe_serialization=True)
    if conditioning:
        save_file({k: v.contiguous() for k, v in conditioning.items()}, os.path.join(folder, "conditioning.safetensors"))
    print(f"{folder}")


def main(out):
    dit = randomize(DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=4, out_channels=8,
                                          num_layers=8, sample_size=16, patch_size=2, num_embeds_ada_norm=1000), seed=111)
    save(out, "dit", DiTPipeline(transformer=dit, vae=sd_vae(112), scheduler=DPMSolverMultistepScheduler()))

    g = torch.Generator().manual_seed(123)
    pixart = randomize(PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=6, in_channels=4, out_channels=8,
                                                num_layers=8, cross_attention_dim=12, caption_channels=20,
                                                sample_size=128, patch_size=2), seed=121)
    save(out, "pixart", PixArtAlphaPipeline(tokenizer=None, text_encoder=None, transformer=pixart, vae=sd_vae(122),
                                            scheduler=DPMSolverMultistepScheduler()),
         dict(prompt_embeds=torch.randn(1, TEXT, 20, generator=g),
              prompt_attention_mask=torch.ones(1, TEXT, dtype=torch.int64),
              negative_prompt_embeds=torch.randn(1, TEXT, 20, generator=g),
              negative_prompt_attention_mask=torch.ones(1, TEXT, dtype=torch.int64)))

    g = torch.Generator().manual_seed(133)
    sd3 = randomize(SD3Transformer2DModel(sample_size=16, patch_size=2, in_channels=16, num_layers=8, attention_head_dim=4,
                                          num_attention_heads=2, joint_attention_dim=12, caption_projection_dim=8,
                                          pooled_projection_dim=10, out_channels=16, pos_embed_max_size=16), seed=131)
    save(out, "sd3", StableDiffusion3Pipeline(transformer=sd3, vae=sd3_style_vae(132, 0.0609, 1.5305),
                                              scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
                                              text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                              text_encoder_3=None, tokenizer_3=None),
         dict(prompt_embeds=torch.randn(1, TEXT, 12, generator=g), negative_prompt_embeds=torch.randn(1, TEXT, 12, generator=g),
              pooled_prompt_embeds=torch.randn(1, 10, generator=g),
              negative_pooled_prompt_embeds=torch.randn(1, 10, generator=g)))

    g = torch.Generator().manual_seed(143)
    flux = randomize(FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=4, num_single_layers=4,
                                            attention_head_dim=8, num_attention_heads=2, joint_attention_dim=12,
                                            pooled_projection_dim=10, axes_dims_rope=(2, 2, 4), guidance_embeds=True),
                     seed=141)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256, max_image_seq_len=4096)
    save(out, "flux", FluxPipeline(transformer=flux, vae=sd3_style_vae(142, 0.1159, 0.3611), scheduler=scheduler,
                                   text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None),
         dict(prompt_embeds=torch.randn(1, TEXT, 12, generator=g), pooled_prompt_embeds=torch.randn(1, 10, generator=g)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/paradit-quality")
