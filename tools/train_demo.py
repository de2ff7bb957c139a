#!/usr/bin/env python3
"""Trains the demo model shipped in models/digits-dit: a class-conditional DiT on scikit-learn's digits.

Run by hand (never by CI), in a virtualenv with torch, diffusers and scikit-learn:

    ~/venv/bin/python tools/train_demo.py            # writes models/digits-dit (about 20 min on 2 cores)

The data set ships inside the scikit-learn wheel: 1,797 digits of 8x8 pixels (values 0..16), 10 classes.
They are scaled to [-1, 1], upsampled bilinearly to 32x32 and repeated over RGB. A seeded shuffle keeps
1,000 for the generator and holds out 797 for the classifier that judges generated images.

1. AutoencoderKL (3 down/up blocks of 16, 32, 32 channels, GroupNorm of 8 groups, 4 latent channels, 32x32 -> 8x8): L1 + MSE
   reconstruction and a KL term of weight 1e-4 (weaker left decoder artefacts); its scaling factor is
   1 / std of the training latents, as diffusers' DiTPipeline divides by it before decoding.
2. DiTTransformer2DModel (6 layers, 4 heads x 32, patch 2 over the 4x8x8 latent: 16 tokens), epsilon
   prediction on DDPM's linear betas, labels dropped to the null class 1000 for 10 % of samples (once
   per sample: the model's own dropout is drawn per block, so the model trains in eval mode).
   num_embeds_ada_norm is 1000 because DiTPipeline's null label is the literal 1000.
3. The classifier: multinomial logistic regression on the 8x8 average-pooled grey image in [0, 1],
   trained on the 797 held-out digits (upsampled and pooled the same way); `paradit quality` runs it.

Everything is seeded; the loss curve and timings go to models/digits-dit/training.json.
"""
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, DiTPipeline, DiTTransformer2DModel
from safetensors.torch import save_file
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "models", "digits-dit")
HELD_OUT = 797


def images_32(digits):
    """[N, 8, 8] in 0..16 -> [N, 3, 32, 32] in [-1, 1]."""
    x = torch.from_numpy(digits).float().div(16).mul(2).sub(1).unsqueeze(1)
    return F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False).clamp(-1, 1).repeat(1, 3, 1, 1)


def classifier_features(images):
    """[N, 3, 32, 32] in [-1, 1] -> [N, 64]: grey in [0, 1], 4x4 average pooling (what the engine computes)."""
    grey = images.mean(dim=1, keepdim=True).add(1).div(2)
    return F.avg_pool2d(grey, 4).flatten(1)


def train_vae(x, steps, log):
    torch.manual_seed(1)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
                        up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(16, 32, 32),
                        layers_per_block=1, latent_channels=4, norm_num_groups=8, sample_size=32)
    opt = torch.optim.AdamW(vae.parameters(), lr=1e-3, weight_decay=0)
    g = torch.Generator().manual_seed(2)
    start = time.time()
    for step in range(steps):
        batch = x[torch.randint(len(x), (64,), generator=g)]
        posterior = vae.encode(batch).latent_dist
        recon = vae.decode(posterior.sample(generator=g)).sample
        loss = F.l1_loss(recon, batch) + F.mse_loss(recon, batch) + 1e-4 * posterior.kl().mean() / (32 * 32)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            log.append(dict(stage="vae", step=step, loss=round(loss.item(), 5), seconds=round(time.time() - start, 1)))
            print(log[-1], flush=True)
    vae.eval()
    with torch.no_grad():
        latents = torch.cat([vae.encode(x[i:i + 256]).latent_dist.mean for i in range(0, len(x), 256)])
    vae.register_to_config(scaling_factor=float(1 / latents.std()))
    return vae, latents * vae.config.scaling_factor


def train_dit(latents, labels, steps, log):
    torch.manual_seed(3)
    dit = DiTTransformer2DModel(num_attention_heads=4, attention_head_dim=32, in_channels=4, out_channels=4,
                                num_layers=6, sample_size=8, patch_size=2, num_embeds_ada_norm=1000)
    dit.eval()  # no per-block label dropout: labels are dropped once per sample below
    ddpm = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear")
    alphas = ddpm.alphas_cumprod
    opt = torch.optim.AdamW(dit.parameters(), lr=3e-4, weight_decay=0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 200))
    g = torch.Generator().manual_seed(4)
    start = time.time()
    for step in range(steps):
        idx = torch.randint(len(latents), (128,), generator=g)
        x0, y = latents[idx], labels[idx].clone()
        y[torch.rand(len(y), generator=g) < 0.1] = 1000
        t = torch.randint(1000, (len(x0),), generator=g)
        noise = torch.randn(x0.shape, generator=g)
        a = alphas[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * noise
        loss = F.mse_loss(dit(xt, timestep=t, class_labels=y).sample, noise)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dit.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == steps - 1:
            log.append(dict(stage="dit", step=step, loss=round(loss.item(), 5), seconds=round(time.time() - start, 1)))
            print(log[-1], flush=True)
    return dit


def main(vae_steps=2000, dit_steps=5000):
    torch.set_num_threads(os.cpu_count() or 2)
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.images))
    train, held = order[HELD_OUT:], order[:HELD_OUT]
    x = images_32(digits.images[train])
    labels = torch.from_numpy(digits.target[train]).long()
    log = []
    vae, latents = train_vae(x, vae_steps, log)
    dit = train_dit(latents, labels, dit_steps, log)

    held_x = images_32(digits.images[held])
    clf = LogisticRegression(max_iter=5000, C=10.0).fit(classifier_features(held_x).numpy(), digits.target[held])
    train_accuracy = clf.score(classifier_features(x).numpy(), digits.target[train])
    print(f"classifier: accuracy {train_accuracy:.3f} on the generator's 1,000 training digits", flush=True)

    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=False)
    pipe = DiTPipeline(transformer=dit, vae=vae, scheduler=scheduler)
    pipe.save_pretrained(OUT, safe_serialization=True)
    os.makedirs(os.path.join(OUT, "classifier"), exist_ok=True)
    save_file({"weight": torch.from_numpy(clf.coef_).float().contiguous(),
               "bias": torch.from_numpy(clf.intercept_).float().contiguous()},
              os.path.join(OUT, "classifier", "model.safetensors"))
    with open(os.path.join(OUT, "classifier", "config.json"), "w") as f:
        json.dump({"_class_name": "DigitClassifier", "pool": 4, "classes": 10,
                   "features": "grey = mean(RGB) in [0, 1], average-pooled 4x4 to 8x8, row-major",
                   "accuracy_on_generator_training_digits": round(train_accuracy, 4)}, f, indent=2)
        f.write("\n")
    with open(os.path.join(OUT, "training.json"), "w") as f:
        json.dump({"torch": torch.__version__, "threads": torch.get_num_threads(), "vae_steps": vae_steps,
                   "dit_steps": dit_steps, "vae_parameters": sum(p.numel() for p in vae.parameters()),
                   "dit_parameters": sum(p.numel() for p in dit.parameters()),
                   "scaling_factor": vae.config.scaling_factor, "log": log}, f, indent=1)
        f.write("\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(*map(int, sys.argv[1:3]))
