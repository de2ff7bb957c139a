// Layer 5 — the denoising loop's parts that are not the transformer: schedulers (Schedulers/),
// torch-exact seeded noise (Random/), the AutoencoderKL decoder (VAE/) and image files (Image/).
