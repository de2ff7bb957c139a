#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/noise/randn.safetensors from torch itself.

Every case is torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed)) in float32.
torch's CPU normal kernel depends on the CPU capability it dispatches to (AVX2 machines, AVX-512
ones included, run a Cephes-polynomial Box-Muller; the "default" capability calls libm), so the
script runs one worker per capability, forced with ATEN_CPU_CAPABILITY, on an AVX2 machine.

Tensors up to 2048 values are stored whole. Larger ones keep their first and last 512 values,
and the __metadata__ entry "<name>.fnv1a64" holds the FNV-1a 64-bit hash (hex) of all their
float32 little-endian bytes, so the test still checks every value bit for bit.

Names: "<capability>.seed<seed>.<d0>x<d1>..." (plus ".head"/".tail" for large tensors), and
"<capability>.sequence.<i>.<shape>" for successive randn calls on one generator seeded with 7.

    ~/venv/bin/python tools/make_noise_fixtures.py

CI never runs this: the fixture is committed.
"""
import os
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "Tests", "ParaDiTDiffusionTests", "Fixtures", "noise")

FULL_LIMIT = 2048
EDGE = 512

SHAPES = [[1, 4, 8, 8], [2, 4, 16, 16], [1, 16, 32, 32], [1, 4096, 64], [1, 4, 13, 13],
          [3], [15], [16], [17], [1000]]
CASES = {
    "avx2": [(seed, shape) for seed in (0, 1, 42) for shape in SHAPES],
    "default": [(0, shape) for shape in ([1, 4, 8, 8], [1, 16, 32, 32], [17], [1000])],
}
# Successive calls on one generator: the odd-sized small calls leave and then use torch's cached
# second Box-Muller sample, and the large calls in between must not disturb it.
SEQUENCE_SEED = 7
SEQUENCE = [[3], [1, 4, 8, 8], [5], [17], [1], [2, 4, 16, 16], [2]]


def fnv1a64(values):
    h = 0xCBF29CE484222325
    for b in values.astype("<f4").tobytes():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def name_of(shape):
    return "x".join(str(d) for d in shape)


def store(tensors, metadata, name, x):
    flat = x.reshape(-1).contiguous()
    if flat.numel() <= FULL_LIMIT:
        tensors[name] = x.contiguous()
    else:
        tensors[name + ".head"] = flat[:EDGE].clone()
        tensors[name + ".tail"] = flat[-EDGE:].clone()
        metadata[name + ".fnv1a64"] = fnv1a64(flat.numpy())


def worker(capability, path):
    found = torch.backends.cpu.get_cpu_capability()
    assert found.lower() == capability, f"asked for {capability}, torch dispatches to {found}"
    tensors, metadata = {}, {}
    for seed, shape in CASES[capability]:
        x = torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed), dtype=torch.float32)
        store(tensors, metadata, f"{capability}.seed{seed}.{name_of(shape)}", x)
    if capability == "avx2":
        g = torch.Generator("cpu").manual_seed(SEQUENCE_SEED)
        for i, shape in enumerate(SEQUENCE):
            x = torch.randn(shape, generator=g, dtype=torch.float32)
            store(tensors, metadata, f"{capability}.sequence.{i}.{name_of(shape)}", x)
    save_file(tensors, path, metadata=metadata)


def main():
    tensors, metadata = {}, {"torch": torch.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        for capability in CASES:
            part = os.path.join(tmp, capability + ".safetensors")
            env = dict(os.environ, ATEN_CPU_CAPABILITY=capability)
            subprocess.run([sys.executable, __file__, "--worker", capability, part], env=env, check=True)
            with safe_open(part, "pt") as f:
                metadata.update(f.metadata())
                for key in f.keys():
                    tensors[key] = f.get_tensor(key)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, "randn.safetensors")
    save_file(tensors, path, metadata=metadata)
    print(f"wrote {len(tensors)} tensors, {os.path.getsize(path)} bytes to {os.path.normpath(path)}")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3])
    else:
        main()
