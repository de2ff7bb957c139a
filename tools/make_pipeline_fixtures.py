#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/pipelines from diffusers' own text-to-image pipelines.

Each case is a whole diffusers pipeline (DiT, PixArt-α, SD3, Flux-dev, Flux-schnell) built from tiny
random-weight models and run end to end: seeded noise, scheduler, classifier-free guidance,
transformer, VAE decode. A case folder holds:

    pipeline/                  pipe.save_pretrained(): model_index.json, transformer/, vae/, scheduler/
                               (text encoders and tokenizers are null), weights float32 safetensors
    conditioning.safetensors   the embeddings given to __call__, named as its arguments (float32;
                               attention masks int64); absent for DiT
    args.json                  the other __call__ arguments (seed of a CPU torch.Generator, steps, ...)
                               and notes on what the pipeline derived (noise shape, mu, ...)
    expected.safetensors       noise, latents, image, timesteps, sigmas, and per step i the guided
                               model output fed to scheduler.step ("model_output_<i>") and the
                               latents it returned ("step_<i>")

Every weight is drawn non-zero (layers diffusers zero-initialises too), scaled by its fan-in so the
activations, and hence the image, stay in range. The reference is the saved folder loaded back in
float32, as a user would load it. The noise is torch.randn on CPU, which depends on the CPU
capability torch dispatches to (see tools/make_noise_fixtures.py): run this on an AVX2 machine
(torch.backends.cpu.get_cpu_capability() says "AVX2" or "AVX512"; the script refuses "DEFAULT").

    python3 -m venv ~/venv && ~/venv/bin/pip install torch "diffusers==0.42.*" transformers safetensors
    ~/venv/bin/python tools/make_pipeline_fixtures.py

CI never runs this: the fixtures are committed.
"""
import json
import os
import shutil

import diffusers
import numpy as np
import torch
from diffusers import (AutoencoderKL, DiTPipeline, DiTTransformer2DModel, DPMSolverMultistepScheduler,
                       FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel,
                       PixArtAlphaPipeline, PixArtTransformer2DModel, SD3Transformer2DModel,
                       StableDiffusion3Pipeline)
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTDiffusionTests", "Fixtures", "pipelines")


def randomize(model, seed):
    """Every parameter drawn N(0, 1/fan_in) + 0.01, so no layer stays zero and no activation explodes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 16
            p.copy_(torch.randn(p.shape, generator=g) / fan_in**0.5 + 0.01)
    return model.eval()


VAE_SCALE = 2  # 2 ** (len(block_out_channels) - 1), as the pipelines derive it


def tiny_vae(latent_channels, seed, **kwargs):
    """Two blocks (one upsampler, a scale factor of 2), the layout of the real VAEs otherwise."""
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 4),
                        layers_per_block=1, norm_num_groups=2, latent_channels=latent_channels,
                        sample_size=32, **kwargs)
    return randomize(vae, seed)


def sd_vae(seed):
    """sd-vae-ft-ema (DiT, PixArt-α): 4 latent channels, quant convs, scaling 0.18215, no shift."""
    return tiny_vae(4, seed, scaling_factor=0.18215)


def sd3_style_vae(seed, shift_factor, scaling_factor):
    """The SD3 / Flux VAE: 16 latent channels, no quant convs, a shift and a scale."""
    return tiny_vae(16, seed, shift_factor=shift_factor, scaling_factor=scaling_factor,
                    use_quant_conv=False, use_post_quant_conv=False)


class Recorder:
    """Wraps the pipeline's randn_tensor and scheduler.step to record what the pipeline drew and did."""

    def __init__(self, pipe, module):
        self.module, self.noise, self.steps = module, [], []
        self.original_randn = module.randn_tensor
        self.step_owner, self.original_step = pipe.scheduler, pipe.scheduler.step

        def randn_tensor(*args, **kwargs):
            x = self.original_randn(*args, **kwargs)
            self.noise.append(x.clone())
            return x

        def step(model_output, timestep, sample, *args, **kwargs):
            out = self.original_step(model_output, timestep, sample, *args, **kwargs)
            prev = out[0] if isinstance(out, tuple) else out.prev_sample
            self.steps.append((model_output.clone(), prev.clone()))
            return out

        module.randn_tensor = randn_tensor
        pipe.scheduler.step = step

    def close(self):
        self.module.randn_tensor = self.original_randn
        self.step_owner.step = self.original_step


def record(name, pipe, module, call, args, noise_shape, halve_steps, pack):
    """Runs `call` and returns the expected tensors; checks the noise, latents and latents= runs agree.

    halve_steps: the scheduler runs on the CFG-doubled batch (DiT); keep the first half of each step.
    pack: maps the [B,C,h,w] noise to the layout the pipeline's `latents=` argument takes (Flux).
    """
    seeded = lambda: torch.Generator("cpu").manual_seed(args["seed"])
    noise = torch.randn(noise_shape, generator=seeded())
    rec = Recorder(pipe, module)
    image = torch.from_numpy(np.asarray(call(pipe, generator=seeded(), output_type="np"))).float()
    rec.close()
    assert len(rec.noise) == 1 and torch.equal(rec.noise[0], noise), f"{name}: the pipeline drew other noise"
    assert len(rec.steps) == args["steps"], f"{name}: {len(rec.steps)} scheduler steps"

    steps = {}
    for i, (model_output, prev) in enumerate(rec.steps):
        if halve_steps:
            assert torch.equal(prev[: len(prev) // 2], prev[len(prev) // 2:]), f"{name}: CFG halves differ"
            model_output, prev = model_output[: len(model_output) // 2], prev[: len(prev) // 2]
        steps[f"model_output_{i}"], steps[f"step_{i}"] = model_output, prev
    final = steps[f"step_{args['steps'] - 1}"]
    if name != "dit":  # DiTPipeline.__call__ takes neither latents= nor output_type="latent"
        latents = call(pipe, generator=seeded(), output_type="latent")
        assert torch.equal(latents, final), f"{name}: output_type='latent' differs from the last step"
        again = call(pipe, latents=pack(noise) if pack else noise, output_type="np")
        assert np.array_equal(np.asarray(again), image.numpy()), f"{name}: latents=noise gives another image"

    expected = {"noise": noise, "image": image, "latents": final.clone(),
                "timesteps": pipe.scheduler.timesteps.float(), "sigmas": pipe.scheduler.sigmas.float()}
    if pack:
        expected["latents_unpacked"] = pack.unpack(final)
    expected.update(steps)
    return expected


def save_case(name, pipe, module, call, args, noise_shape, conditioning=None, halve_steps=False, pack=None):
    """Saves `pipe`, reloads it in float32 as a user would, and writes what `call` does with it."""
    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    pipe.save_pretrained(os.path.join(folder, "pipeline"), safe_serialization=True)
    nulls = {k: None for k, v in pipe.config.items() if not k.startswith("_") and v == (None, None)}
    pipe = type(pipe).from_pretrained(os.path.join(folder, "pipeline"), dtype=torch.float32, **nulls)
    pipe.set_progress_bar_config(disable=True)

    expected = record(name, pipe, module, call, args, noise_shape, halve_steps, pack)
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    if conditioning:
        save_file({k: v.contiguous() for k, v in conditioning.items()},
                  os.path.join(folder, "conditioning.safetensors"))
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump(dict(args, torch_cpu_capability=torch.backends.cpu.get_cpu_capability()), f, indent=2)
        f.write("\n")

    image, latents = expected["image"], expected["latents"]
    clamped = ((image == 0) | (image == 1)).float().mean().item()
    print(f"{name}: image {tuple(image.shape)} clamped {clamped:.1%}, latents {tuple(latents.shape)} "
          f"max |x| {latents.abs().max().item():.3g}, timesteps {expected['timesteps'].tolist()}")
    for root, _, files in sorted(os.walk(folder)):
        for file in sorted(files):
            path = os.path.join(root, file)
            print(f"  {os.path.relpath(path, folder):55s} {os.path.getsize(path):8d} B")


def dit_case():
    # DiTPipeline's unconditional label is the literal 1000, so the embedding table must have 1000
    # classes (+1 null row): ImageNet's size, whatever the width.
    transformer = randomize(DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=4,
                                                  out_channels=8, num_layers=2, sample_size=8, patch_size=2,
                                                  num_embeds_ada_norm=1000), seed=11)
    pipe = DiTPipeline(transformer=transformer, vae=sd_vae(12), scheduler=DPMSolverMultistepScheduler())
    args = dict(pipeline="DiTPipeline", seed=0, steps=4, guidance_scale=4.0, class_labels=[207, 3],
                height=16, width=16, num_images_per_prompt=1,
                notes="height/width are not arguments: sample_size 8 times the VAE's scale 2; noise [2,4,8,8] = "
                      "[len(class_labels), in_channels, sample_size, sample_size]; CFG batch [labels, 1000, 1000]; "
                      "model_output_<i>/step_<i> are the first (conditional) half")

    def call(pipe, generator, output_type):
        return pipe(class_labels=args["class_labels"], guidance_scale=args["guidance_scale"], generator=generator,
                    num_inference_steps=args["steps"], output_type=output_type).images

    save_case("dit", pipe, diffusers.pipelines.dit.pipeline_dit, call, args, (2, 4, 8, 8), halve_steps=True)


def pixart_case():
    # sample_size 128 (PixArt-α 1024): use_additional_conditions left null in the config, so the model
    # turns it on, and the pipeline passes resolution and aspect ratio (it does so only for 128).
    transformer = randomize(PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=6, in_channels=4,
                                                     out_channels=8, num_layers=2, cross_attention_dim=12,
                                                     caption_channels=20, sample_size=128, patch_size=2), seed=21)
    assert transformer.use_additional_conditions
    pipe = PixArtAlphaPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=sd_vae(22),
                               scheduler=DPMSolverMultistepScheduler())
    g = torch.Generator().manual_seed(23)
    cond = dict(prompt_embeds=torch.randn(1, 6, 20, generator=g),
                prompt_attention_mask=torch.tensor([[1, 1, 1, 1, 0, 0]], dtype=torch.int64),
                negative_prompt_embeds=torch.randn(1, 6, 20, generator=g),
                negative_prompt_attention_mask=torch.tensor([[1, 0, 0, 0, 0, 0]], dtype=torch.int64))
    args = dict(pipeline="PixArtAlphaPipeline", seed=1, steps=5, guidance_scale=4.5, height=16, width=24,
                num_images_per_prompt=1, use_resolution_binning=False, negative_prompt=None,
                notes="noise [1,4,8,12]; use_additional_conditions null -> true (sample_size 128): "
                      "resolution [[16,24]] and aspect_ratio [[16/24]] per CFG row; masks int64")

    def call(pipe, generator=None, output_type="np", latents=None):
        return pipe(guidance_scale=args["guidance_scale"], num_inference_steps=args["steps"], height=args["height"],
                    width=args["width"], generator=generator, latents=latents, output_type=output_type,
                    negative_prompt=None, use_resolution_binning=False, **cond).images

    save_case("pixart", pipe, diffusers.pipelines.pixart_alpha.pipeline_pixart_alpha, call, args, (1, 4, 8, 12),
              conditioning=cond)


def sd3_case():
    transformer = randomize(SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, num_layers=2,
                                                  attention_head_dim=4, num_attention_heads=2, joint_attention_dim=12,
                                                  caption_projection_dim=8, pooled_projection_dim=10, out_channels=16,
                                                  pos_embed_max_size=12), seed=31)
    pipe = StableDiffusion3Pipeline(transformer=transformer, vae=sd3_style_vae(32, 0.0609, 1.5305),
                                    scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
                                    text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
                                    text_encoder_3=None, tokenizer_3=None)
    g = torch.Generator().manual_seed(33)
    cond = dict(prompt_embeds=torch.randn(1, 7, 12, generator=g),
                negative_prompt_embeds=torch.randn(1, 7, 12, generator=g),
                pooled_prompt_embeds=torch.randn(1, 10, generator=g),
                negative_pooled_prompt_embeds=torch.randn(1, 10, generator=g))
    args = dict(pipeline="StableDiffusion3Pipeline", seed=42, steps=4, guidance_scale=5.0, height=8, width=16,
                num_images_per_prompt=1,
                notes="noise [1,16,4,8]; no dynamic shifting, so no mu; the transformer gets t = 1000*sigma")

    def call(pipe, generator=None, output_type="np", latents=None):
        return pipe(guidance_scale=args["guidance_scale"], num_inference_steps=args["steps"], height=args["height"],
                    width=args["width"], generator=generator, latents=latents, output_type=output_type,
                    **cond).images

    save_case("sd3", pipe, diffusers.pipelines.stable_diffusion_3.pipeline_stable_diffusion_3, call, args,
              (1, 16, 4, 8), conditioning=cond)


class FluxPacking:
    """[B,C,h,w] <-> [B, h/2·w/2, C·4] as FluxPipeline packs its latents."""

    def __init__(self, h, w):
        self.h, self.w = h, w

    def __call__(self, x):
        return FluxPipeline._pack_latents(x, x.shape[0], x.shape[1], self.h, self.w)

    def unpack(self, x):
        return FluxPipeline._unpack_latents(x, self.h * VAE_SCALE, self.w * VAE_SCALE, VAE_SCALE)


def flux_case(name, guidance_embeds, scheduler, steps, guidance_scale, seed, height, width, heads):
    transformer = randomize(FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                                   attention_head_dim=8, num_attention_heads=heads,
                                                   joint_attention_dim=12, pooled_projection_dim=10,
                                                   axes_dims_rope=(2, 2, 4), guidance_embeds=guidance_embeds),
                            seed=seed + 41)
    pipe = FluxPipeline(transformer=transformer, vae=sd3_style_vae(seed + 42, 0.1159, 0.3611), scheduler=scheduler,
                        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None)
    g = torch.Generator().manual_seed(seed + 43)
    cond = dict(prompt_embeds=torch.randn(1, 5, 12, generator=g), pooled_prompt_embeds=torch.randn(1, 10, generator=g))
    h, w = height // VAE_SCALE, width // VAE_SCALE
    tokens = (h // 2) * (w // 2)
    mu = diffusers.pipelines.flux.pipeline_flux.calculate_shift(tokens, 256, 4096, 0.5, 1.15)
    args = dict(pipeline="FluxPipeline", seed=seed, steps=steps, guidance_scale=guidance_scale, height=height,
                width=width, num_images_per_prompt=1, mu=mu,
                notes=f"noise [1,16,{h},{w}] packed to [1,{tokens},64]; no CFG (true_cfg_scale 1); "
                      f"sigmas linspace(1, 1/steps, steps), time-shifted with mu = calculate_shift({tokens}) "
                      "only when use_dynamic_shifting; "
                      "step_<i>/model_output_<i>/latents are packed, latents_unpacked is [1,16,h,w]; "
                      "txt_ids zeros; the transformer gets t/1000 (float32) and guidance when guidance_embeds")

    def call(pipe, generator=None, output_type="np", latents=None):
        return pipe(guidance_scale=guidance_scale, num_inference_steps=steps, height=height, width=width,
                    generator=generator, latents=latents, output_type=output_type, **cond).images

    save_case(name, pipe, diffusers.pipelines.flux.pipeline_flux, call, args, (1, 16, h, w), conditioning=cond,
              pack=FluxPacking(h, w))


def flux_cases():
    dev = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                          base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                          max_image_seq_len=4096)
    flux_case("flux", True, dev, steps=4, guidance_scale=3.5, seed=0, height=8, width=16, heads=2)
    schnell = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=False,
                                              base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                              max_image_seq_len=4096)
    flux_case("flux-schnell", False, schnell, steps=2, guidance_scale=0.0, seed=5, height=8, width=8, heads=1)


if __name__ == "__main__":
    if not diffusers.__version__.startswith("0.42."):
        raise SystemExit(f"fixtures are pinned to diffusers 0.42.x, found {diffusers.__version__}")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        raise SystemExit("torch.randn must run its AVX2 kernel here (the Swift noise follows it)")
    torch.manual_seed(0)
    dit_case()
    pixart_case()
    sd3_case()
    flux_cases()
    total = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(OUT) for f in fs)
    print(f"total {total} B")
