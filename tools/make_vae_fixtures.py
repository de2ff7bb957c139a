#!/usr/bin/env python3
"""Writes the AutoencoderKL decoder fixtures of Tests/ParaDiTDiffusionTests/Fixtures/vae from diffusers.

Each case is a tiny random-weight AutoencoderKL saved with save_pretrained (encoder included, as in
real checkpoints) under <case>/vae/, and <case>/data.safetensors with:
  latents       [B, C, h, w]   what the transformer hands the pipeline (scaled latent space)
  z             the pipelines' `latents / scaling_factor (+ shift_factor)` (PixArt, SD3, Flux)
  z_reciprocal  DiT's `1 / scaling_factor * latents` (+ shift_factor where the VAE has one)
  image         float32 `vae.decode(z)` [B, 3, H, W], unclamped
  pixels        I32 [B, H, W, 3]: the 8-bit RGB the pipeline's VaeImageProcessor returns as PIL images
The reference model is the saved folder loaded back in float32, so weights stored in BF16 are the
exactly widened values the Swift loader reads.

    /root/venv-torch/bin/python tools/make_vae_fixtures.py

CI never runs this: the fixtures are committed.
"""
import json
import os
import shutil

import numpy as np
import torch
from diffusers import AutoencoderKL
from diffusers.image_processor import VaeImageProcessor
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTDiffusionTests", "Fixtures", "vae")


def randomize(model, seed):
    """Every parameter non-zero: norm scales near 1, biases small, weights ~ 1/sqrt(fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() > 1:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5 + 0.01)
            elif "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g) + 0.01)
    return model.eval()


def unscale(vae, latents, reciprocal=False):
    z = 1 / vae.config.scaling_factor * latents if reciprocal else latents / vae.config.scaling_factor
    return z + vae.config.shift_factor if vae.config.shift_factor is not None else z


def calibrate_output(vae, latents):
    """Scales conv_out so the image mostly falls inside [-1, 1]: the 8-bit check then sees few clamped pixels."""
    with torch.no_grad():
        image = vae.decode(unscale(vae, latents)).sample
        factor = 0.6 / image.std().item()
        vae.decoder.conv_out.weight.mul_(factor)
        vae.decoder.conv_out.bias.mul_(factor)


def save_case(name, config, latents, seed, dtype):
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    vae = randomize(AutoencoderKL(**config), seed)
    calibrate_output(vae, latents)
    vae.to(dtype).save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
    vae = AutoencoderKL.from_pretrained(os.path.join(folder, "vae"), torch_dtype=torch.float32).eval()
    with torch.no_grad():
        z = unscale(vae, latents)
        image = vae.decode(z, return_dict=False)[0]
    scale = 2 ** (len(vae.config.block_out_channels) - 1)
    pil = VaeImageProcessor(vae_scale_factor=scale).postprocess(image, output_type="pil")
    pixels = torch.from_numpy(np.stack([np.array(p) for p in pil]).astype(np.int32))
    save_file({"latents": latents.contiguous(), "z": z.contiguous(),
               "z_reciprocal": unscale(vae, latents, reciprocal=True).contiguous(),
               "image": image.contiguous(), "pixels": pixels.contiguous()},
              os.path.join(folder, "data.safetensors"))
    inside = ((image >= -1) & (image <= 1)).float().mean().item()
    print(f"{name}: {dtype}, latents {tuple(latents.shape)} -> image {tuple(image.shape)}, "
          f"{inside:.0%} inside [-1, 1]")


def main():
    def tiny(channels):
        return dict(block_out_channels=channels, down_block_types=("DownEncoderBlock2D",) * len(channels),
                    up_block_types=("UpDecoderBlock2D",) * len(channels), norm_num_groups=4, layers_per_block=1,
                    sample_size=16)

    g = torch.Generator().manual_seed(300)
    # SD / PixArt: 4 latent channels, scaling only, quant_conv and post_quant_conv; batch 2, non-square;
    # two up blocks, the second changing width (a conv_shortcut).
    sd = dict(tiny((8, 16)), latent_channels=4, scaling_factor=0.18215)
    save_case("sd-b2-6x8", sd, torch.randn(2, 4, 6, 8, generator=g), seed=1, dtype=torch.float32)
    # SD3 / Flux: 16 latent channels, scaling and shift, no (post_)quant_conv; stored as BF16 like Flux;
    # three up blocks (two upsamplers, ×4).
    flux = dict(tiny((8, 8, 8)), latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159,
                use_quant_conv=False, use_post_quant_conv=False)
    save_case("flux-b1-5x7", flux, torch.randn(1, 16, 5, 7, generator=g), seed=2, dtype=torch.bfloat16)


if __name__ == "__main__":
    main()
