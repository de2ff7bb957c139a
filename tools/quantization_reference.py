#!/usr/bin/env python3
"""What diffusers itself gives on each golden fixture in lower precision, beside which the engine's
--weights-dtype int8 / int8-dynamic and --dtype bf16 figures in docs/QUALITY.md are read.

For every transformer fixture of Tests/ParaDiTModelsTests/Fixtures, the relative L2 distance from the
fixture's Float32 output of:
  bf16        the model and its float inputs cast to torch.bfloat16 (diffusers' own bf16 inference)
  int8-all    every nn.Linear weight rounded to INT8 (symmetric, one absmax scale per output row)
  int8        the same inside the transformer blocks only (the engine's --weights-dtype int8)
  int8-dyn    int8, and each block linear's input rounded per token to 8 bits (int8-dynamic)

    ~/venv/bin/python tools/quantization_reference.py
"""
import glob
import json
import os

import diffusers
import torch
from safetensors.torch import load_file

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTModelsTests", "Fixtures")


def load(name):
    folder = os.path.join(FIXTURES, name)
    cls = getattr(diffusers, json.load(open(os.path.join(folder, "model", "config.json")))["_class_name"])
    model = cls.from_pretrained(os.path.join(folder, "model"), torch_dtype=torch.float32).eval()
    return model, load_file(os.path.join(folder, "inputs.safetensors"))


def forward(model, inputs):
    kw = dict(inputs)
    extra = {k: kw.pop(k) for k in ["resolution", "aspect_ratio"] if k in kw}
    if extra:
        kw["added_cond_kwargs"] = extra
    with torch.no_grad():
        return model(**kw, return_dict=False)[0].float()


def int8(w):
    scale = w.abs().amax(1, keepdim=True).clamp_min(1e-30) / 127
    return torch.round(w / scale).clamp(-127, 127) * scale


class TokenInt8Linear(torch.nn.Module):
    """An INT8 weight whose input is rounded per token to 8 bits, as int8-dynamic computes."""

    def __init__(self, linear):
        super().__init__()
        self.weight, self.bias = int8(linear.weight.data), linear.bias

    def forward(self, x):
        scale = x.abs().amax(-1, keepdim=True).clamp_min(1e-30) / 127
        return torch.nn.functional.linear(torch.round(x / scale).clamp(-127, 127) * scale, self.weight, self.bias)


def quantized(name, blocks_only, dynamic):
    model, inputs = load(name)
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            full = f"{parent_name}.{child_name}" if parent_name else child_name
            if not isinstance(child, torch.nn.Linear) or (blocks_only and "blocks." not in full):
                continue
            if dynamic:
                setattr(parent, child_name, TokenInt8Linear(child))
            else:
                child.weight.data = int8(child.weight.data)
    return forward(model, inputs)


def distance(a, b):
    return ((a - b).norm() / b.norm()).item()


def main():
    print("| fixture | diffusers bf16 | int8 (all linears) | int8 (blocks) | int8-dynamic (blocks) |")
    print("|---|---:|---:|---:|---:|")
    for folder in sorted(glob.glob(os.path.join(FIXTURES, "*", "model"))):
        name = folder.split(os.sep)[-2]
        if "Transformer" not in json.load(open(os.path.join(folder, "config.json"))).get("_class_name", ""):
            continue
        model, inputs = load(name)
        reference = forward(model, inputs)
        cast = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in inputs.items()}
        bf16 = forward(model.to(torch.bfloat16), cast)
        figures = [distance(bf16, reference)] + [distance(quantized(name, b, d), reference)
                                                 for b, d in [(False, False), (True, False), (True, True)]]
        print(f"| {name} | " + " | ".join(f"{f:.1e}" for f in figures) + " |")


if __name__ == "__main__":
    main()
