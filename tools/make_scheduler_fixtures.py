#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/schedulers from diffusers' own schedulers.

Each folder holds a scheduler_config.json written as the Hub writes it (Python's json, so
`-Infinity` appears where a config has it; "dit-dpm" is saved by diffusers itself) and, per run, what the pipeline loop sees:

    run-<steps>[-<variant>].safetensors
        timesteps       scheduler.timesteps after set_timesteps (I64, or F32 for flow matching)
        sigmas          scheduler.sigmas (DPM-Solver, UniPC and flow matching only)
        samples         [steps + 1, *shape]: the start sample, then the sample after every step
        model_outputs   [steps, *output shape]: the fixed random model output fed at every step
        noises          [steps, *shape]: the variance noise of every step (where the step draws one)
        metadata        steps, mode ("default" or "flux": FluxPipeline's sigmas), mu, eta,
                        image_seq_len, noise_draws (how many steps drew noise)
    sweep.safetensors   timesteps_<n> (and sigmas_<n>) for many step counts n, no stepping

Noise that diffusers draws from a generator inside step() (DDPM, stochastic flow matching) is
drawn from a copy of the same generator state first, so the file holds exactly what step() used.

    /root/venv-torch/bin/python tools/make_scheduler_fixtures.py

CI never runs this: the fixtures are committed.
"""
import json
import math
import os
import shutil

import diffusers
import numpy as np
import torch
from diffusers import (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                       FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler)
from diffusers.pipelines.flux.pipeline_flux import calculate_shift
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTDiffusionTests", "Fixtures", "schedulers")
CLASSES = {c.__name__: c for c in (DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler,
                                   FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler)}
SWEEP = [1, 2, 3, 7, 10, 16, 25, 50, 100]
SWEEP_1000 = ("pixart-alpha", "dit", "sd3")  # these sweeps also hold n = 1000

# Configs as the Hub has them (PixArt-α, DiT, SD3, Flux) plus a few exercising other options.
CONFIGS = {
    "pixart-alpha": {
        "_class_name": "DPMSolverMultistepScheduler", "_diffusers_version": "0.22.0.dev0",
        "algorithm_type": "dpmsolver++", "beta_end": 0.02, "beta_schedule": "linear", "beta_start": 0.0001,
        "dynamic_thresholding_ratio": 0.995, "euler_at_final": False, "lambda_min_clipped": -math.inf,
        "lower_order_final": True, "num_train_timesteps": 1000, "prediction_type": "epsilon",
        "sample_max_value": 1.0, "solver_order": 2, "solver_type": "midpoint", "steps_offset": 0,
        "thresholding": False, "timestep_spacing": "linspace", "trained_betas": None,
        "use_karras_sigmas": False, "use_lu_lambdas": False, "variance_type": None,
    },
    "dpm-order3-heun": {
        "_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085,
        "beta_end": 0.012, "solver_order": 3, "solver_type": "heun", "timestep_spacing": "trailing",
        "lower_order_final": False, "final_sigmas_type": "sigma_min", "prediction_type": "v_prediction",
    },
    "dpm-cosine-clipped": {
        "_class_name": "DPMSolverMultistepScheduler", "beta_schedule": "squaredcos_cap_v2",
        "lambda_min_clipped": -5.1, "timestep_spacing": "leading", "steps_offset": 1, "euler_at_final": True,
        "prediction_type": "sample", "solver_type": "midpoint",
    },
    "dit": {
        "_class_name": "DDIMScheduler", "_diffusers_version": "0.12.0.dev0", "beta_end": 0.02,
        "beta_schedule": "linear", "beta_start": 0.0001, "clip_sample": False, "num_train_timesteps": 1000,
        "prediction_type": "epsilon", "set_alpha_to_one": True, "steps_offset": 0, "trained_betas": None,
    },
    "ddim-sd": {
        "_class_name": "DDIMScheduler", "beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
        "clip_sample": False, "set_alpha_to_one": False, "steps_offset": 1, "timestep_spacing": "leading",
    },
    "ddim-trailing-v": {
        "_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "clip_sample": True,
        "clip_sample_range": 1.5, "timestep_spacing": "trailing", "prediction_type": "v_prediction",
    },
    "ddim-linspace-sample": {
        "_class_name": "DDIMScheduler", "timestep_spacing": "linspace", "prediction_type": "sample",
        "num_train_timesteps": 100, "trained_betas": [round(0.001 + 0.2 * (i / 99) ** 2, 6) for i in range(100)],
    },
    "ddpm-default": {"_class_name": "DDPMScheduler", "beta_end": 0.02, "beta_schedule": "linear",
                     "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000,
                     "trained_betas": None, "variance_type": "fixed_small"},
    "ddpm-dit-learned-range": {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "clip_sample": False,
                               "variance_type": "learned_range"},
    "ddpm-learned": {"_class_name": "DDPMScheduler", "variance_type": "learned", "clip_sample": False,
                     "timestep_spacing": "trailing", "prediction_type": "v_prediction"},
    "ddpm-fixed-large": {"_class_name": "DDPMScheduler", "variance_type": "fixed_large",
                         "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "linspace"},
    "ddpm-fixed-small-log": {"_class_name": "DDPMScheduler", "variance_type": "fixed_small_log",
                             "beta_schedule": "scaled_linear", "steps_offset": 1, "prediction_type": "sample"},
    "sd3": {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.29.0.dev0",
            "num_train_timesteps": 1000, "shift": 3.0},
    "flux-schnell": {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.30.0.dev0",
                     "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
                     "num_train_timesteps": 1000, "shift": 1.0, "use_dynamic_shifting": False},
    "flux-dev": {"_class_name": "FlowMatchEulerDiscreteScheduler", "_diffusers_version": "0.30.0.dev0",
                 "base_image_seq_len": 256, "base_shift": 0.5, "max_image_seq_len": 4096, "max_shift": 1.15,
                 "num_train_timesteps": 1000, "shift": 3.0, "use_dynamic_shifting": True},
    "flow-dynamic-linear-stochastic": {"_class_name": "FlowMatchEulerDiscreteScheduler", "shift": 2.0,
                                       "use_dynamic_shifting": True, "time_shift_type": "linear",
                                       "stochastic_sampling": True},
    # Wan 2.1 T2V's scheduler_config.json (UniPC on flow sigmas, shift 3).
    "wan-unipc": {"_class_name": "UniPCMultistepScheduler", "_diffusers_version": "0.33.0.dev0", "beta_end": 0.02,
                  "beta_schedule": "linear", "beta_start": 0.0001, "disable_corrector": [],
                  "dynamic_thresholding_ratio": 0.995, "final_sigmas_type": "zero", "flow_shift": 3.0,
                  "lower_order_final": True, "num_train_timesteps": 1000, "predict_x0": True,
                  "prediction_type": "flow_prediction", "rescale_betas_zero_snr": False, "sample_max_value": 1.0,
                  "solver_order": 2, "solver_p": None, "solver_type": "bh2", "steps_offset": 0, "thresholding": False,
                  "timestep_spacing": "linspace", "trained_betas": None, "use_beta_sigmas": False,
                  "use_exponential_sigmas": False, "use_flow_sigmas": True, "use_karras_sigmas": False},
    "unipc-order3-bh1": {"_class_name": "UniPCMultistepScheduler", "use_flow_sigmas": True, "flow_shift": 5.0,
                         "prediction_type": "epsilon", "solver_order": 3, "solver_type": "bh1",
                         "disable_corrector": [2], "final_sigmas_type": "sigma_min"},
}
# Configs saved by diffusers 0.42 itself, every key written: DiTPipeline's documented swap to
# DPM-Solver (`DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)`).
SAVED = {
    "dit-dpm": lambda: DPMSolverMultistepScheduler.from_config(make("dit").config),
}

# (config, steps, options): mode "flux" passes FluxPipeline's sigmas and mu; image_seq_len gives mu.
RUNS = [
    ("pixart-alpha", 1, {}), ("pixart-alpha", 4, {}), ("pixart-alpha", 20, {}),
    ("dpm-order3-heun", 4, {}), ("dpm-order3-heun", 12, {}),
    ("dit-dpm", 25, {}),
    ("dpm-cosine-clipped", 5, {}), ("dpm-cosine-clipped", 16, {}),
    ("dit", 1, {}), ("dit", 4, {"batch": 2}), ("dit", 10, {}),
    ("ddim-sd", 8, {}), ("ddim-sd", 4, {"eta": 1.0}),
    ("ddim-trailing-v", 4, {}), ("ddim-trailing-v", 7, {"eta": 0.5}),
    ("ddim-linspace-sample", 6, {}),
    ("ddpm-default", 4, {}), ("ddpm-default", 1, {}),
    ("ddpm-dit-learned-range", 8, {"learned": True}),
    ("ddpm-learned", 4, {"learned": True}),
    ("ddpm-fixed-large", 5, {}), ("ddpm-fixed-small-log", 4, {}),
    ("sd3", 1, {}), ("sd3", 4, {}), ("sd3", 10, {}),
    ("flux-schnell", 1, {"mode": "flux", "image_seq_len": 4096}),
    ("flux-schnell", 4, {"mode": "flux", "image_seq_len": 4096}),
    ("flux-dev", 8, {"mode": "flux", "image_seq_len": 1024}),
    ("flux-dev", 10, {"mode": "flux", "image_seq_len": 4096}),
    ("flux-dev", 6, {"image_seq_len": 64}),
    ("flow-dynamic-linear-stochastic", 5, {"image_seq_len": 2000}),
    ("wan-unipc", 1, {}), ("wan-unipc", 4, {}), ("wan-unipc", 12, {}), ("wan-unipc", 3, {"batch": 2}),
    ("unipc-order3-bh1", 8, {}),
]


def make(name):
    if name in SAVED:
        return SAVED[name]()
    config = {k: v for k, v in CONFIGS[name].items() if not k.startswith("_")}
    return CLASSES[CONFIGS[name]["_class_name"]](**config)


def mu_for(scheduler, opts):
    if "image_seq_len" not in opts:
        return None
    c = scheduler.config
    return calculate_shift(opts["image_seq_len"], c.get("base_image_seq_len", 256), c.get("max_image_seq_len", 4096),
                           c.get("base_shift", 0.5), c.get("max_shift", 1.15))


def set_timesteps(scheduler, steps, opts):
    """What the pipelines call: FluxPipeline passes its own sigmas and mu; SD3 passes mu only with
    dynamic shifting; the others pass the step count."""
    mu = mu_for(scheduler, opts)
    if opts.get("mode") == "flux":
        scheduler.set_timesteps(sigmas=np.linspace(1.0, 1 / steps, steps), mu=mu)
    elif mu is not None:
        scheduler.set_timesteps(steps, mu=mu)
    else:
        scheduler.set_timesteps(steps)
    return mu


def schedule_tensors(scheduler):
    t = scheduler.timesteps
    out = {"timesteps": t.to(torch.int64) if not t.is_floating_point() else t.to(torch.float32)}
    if isinstance(scheduler, (DPMSolverMultistepScheduler, FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler)):
        out["sigmas"] = scheduler.sigmas.to(torch.float32)
    return out


def drawn_noise(generator, shape):
    """The noise randn_tensor will draw next from `generator`, leaving the generator as it was."""
    state = generator.get_state()
    noise = torch.randn(shape, generator=generator)
    generator.set_state(state)
    return noise


def step(scheduler, mo, t, sample, opts, g_noise):
    """One scheduler step as the pipelines call it; returns (new sample, noise used or None)."""
    shape = sample.shape
    if isinstance(scheduler, DDPMScheduler) or getattr(scheduler.config, "stochastic_sampling", False):
        noise = drawn_noise(g_noise, shape)
        return scheduler.step(mo, t, sample, generator=g_noise).prev_sample, noise
    if isinstance(scheduler, DDIMScheduler) and opts.get("eta", 0) > 0:
        noise = torch.randn(shape, generator=g_noise)
        return scheduler.step(mo, t, sample, eta=opts["eta"], variance_noise=noise).prev_sample, noise
    return scheduler.step(mo, t, sample).prev_sample, None


def run(name, steps, opts):
    scheduler = make(name)
    mu = set_timesteps(scheduler, steps, opts)
    is_flow = isinstance(scheduler, FlowMatchEulerDiscreteScheduler)
    shape = [opts.get("batch", 1), 8, 4] if is_flow else [opts.get("batch", 1), 4, 2, 4]
    out_shape = list(shape)
    if opts.get("learned"):
        out_shape[1] *= 2
    g = torch.Generator().manual_seed(1000 + steps)
    g_noise = torch.Generator().manual_seed(2000 + steps)
    sample = torch.randn(shape, generator=g)
    samples, outputs, noises = [sample], [], []
    for t in scheduler.timesteps:
        mo = torch.randn(out_shape, generator=g)
        if opts.get("learned") and CONFIGS[name]["variance_type"] == "learned":
            mo[:, shape[1]:] = mo[:, shape[1]:].abs() * 0.01  # a variance, so its square root is real
        sample, noise = step(scheduler, mo, t, sample, opts, g_noise)
        samples.append(sample)
        outputs.append(mo)
        if noise is not None:
            noises.append(noise)
    tensors = schedule_tensors(scheduler)
    tensors["samples"] = torch.stack(samples)
    tensors["model_outputs"] = torch.stack(outputs)
    if noises:
        tensors["noises"] = torch.stack(noises)
    # DDPM draws no noise at t = 0; the others draw one at every step once they draw at all.
    draws = int((scheduler.timesteps > 0).sum()) if isinstance(scheduler, DDPMScheduler) else len(noises)
    meta = {"steps": str(steps), "mode": opts.get("mode", "default"), "eta": repr(float(opts.get("eta", 0.0))),
            "noise_draws": str(draws)}
    if mu is not None:
        meta["mu"] = repr(mu)
        meta["image_seq_len"] = str(opts["image_seq_len"])
    variant = "".join(f"-{k}" for k in ("batch", "eta", "learned") if k in opts)
    path = os.path.join(OUT, name, f"run-{steps}{variant}.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=meta)
    assert torch.isfinite(tensors["samples"]).all(), path
    print(f"{name} {steps} steps{variant}: timesteps {scheduler.timesteps[:4].tolist()}…")


def sweep(name, opts):
    tensors = {}
    for n in SWEEP + ([1000] if name in SWEEP_1000 else []):
        scheduler = make(name)
        set_timesteps(scheduler, n, opts)
        for k, v in schedule_tensors(scheduler).items():
            tensors[f"{k}_{n}"] = v.to(torch.int32) if v.dtype == torch.int64 else v
    save_file(tensors, os.path.join(OUT, name, "sweep.safetensors"),
              metadata={"mode": opts.get("mode", "default"), "image_seq_len": str(opts.get("image_seq_len", ""))})


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    for name, config in CONFIGS.items():
        os.makedirs(os.path.join(OUT, name))
        with open(os.path.join(OUT, name, "scheduler_config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
    for name in SAVED:
        make(name).save_config(os.path.join(OUT, name))
    for name, steps, opts in RUNS:
        run(name, steps, opts)
    sweep_opts = {"flux-schnell": {"mode": "flux", "image_seq_len": 4096},
                  "flux-dev": {"mode": "flux", "image_seq_len": 1024}}
    for name in ("pixart-alpha", "dpm-order3-heun", "dpm-cosine-clipped", "dit", "ddim-trailing-v",
                 "ddim-linspace-sample", "ddpm-default", "sd3", "flux-schnell", "flux-dev", "wan-unipc"):
        sweep(name, sweep_opts.get(name, {}))
    print(f"diffusers {diffusers.__version__}, torch {torch.__version__}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
