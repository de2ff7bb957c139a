#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/pipelines/digits: diffusers' DiTPipeline on the shipped
demo model (models/digits-dit, trained weights), the golden test on real weights.

The case folder has the layout of tools/make_pipeline_fixtures.py (args.json, expected.safetensors)
with pipeline/ a link to models/digits-dit instead of a copy. Rerun after tools/train_demo.py:

    ~/venv/bin/python tools/make_digits_fixture.py
"""
import json
import os

import diffusers
import torch
from diffusers import DiTPipeline
from safetensors.torch import save_file

from make_pipeline_fixtures import OUT, record

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models", "digits-dit")


def main():
    folder = os.path.join(OUT, "digits")
    os.makedirs(folder, exist_ok=True)
    link = os.path.join(folder, "pipeline")
    if not os.path.islink(link):
        os.symlink(os.path.join("..", "..", "..", "..", "..", "models", "digits-dit"), link)
    pipe = DiTPipeline.from_pretrained(MODEL, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    pipe.scheduler.sigmas = torch.zeros(0)  # DDIM has no sigmas; the fixture layout records them
    args = dict(pipeline="DiTPipeline", seed=0, steps=10, guidance_scale=4.0, class_labels=list(range(10)),
                height=32, width=32, num_images_per_prompt=1,
                notes="the shipped demo model; noise [10,4,8,8]; CFG batch [labels, 1000 x 10]; "
                      "model_output_<i>/step_<i> are the conditional half")

    def call(pipe, generator, output_type):
        return pipe(class_labels=args["class_labels"], guidance_scale=args["guidance_scale"], generator=generator,
                    num_inference_steps=args["steps"], output_type=output_type).images

    expected = record("dit", pipe, diffusers.pipelines.dit.pipeline_dit, call, args, (10, 4, 8, 8),
                      halve_steps=True, pack=None)
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump(dict(args, torch_cpu_capability=torch.backends.cpu.get_cpu_capability()), f, indent=2)
        f.write("\n")
    print(f"{folder}: latents max |x| {expected['latents'].abs().max().item():.3g}")


if __name__ == "__main__":
    main()
