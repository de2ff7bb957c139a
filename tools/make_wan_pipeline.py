#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/prompt-pipelines/wan: a tiny random WanPipeline (Wan 2.1
text-to-video) run by diffusers from a text prompt, for the engine's parity tests.

    pipeline/                 WanPipeline.save_pretrained: the PixArt-Σ fixture's T5 tokenizer (a
                              trained SentencePiece unigram, as umt5-xxl's is), a 2-layer UMT5 encoder,
                              a 2-block WanTransformer3DModel (3 heads), a tiny AutoencoderKLWan (not
                              run: the latents are the output) and Wan 2.1's UniPC scheduler config
    args.json                 the call (prompt, negative prompt, seed, steps, guidance, size, frames)
    conditioning.safetensors  prompt_embeds, negative_prompt_embeds (encode_prompt's)
    expected.safetensors      latents: the final latents, output_type="latent"; video: vae.decode of them
                              [B, 3, frames, H, W]; frames: postprocess_video's [B, frames, 3, H, W] in [0, 1]

    ~/venv/bin/python tools/make_wan_pipeline.py     (torch, diffusers 0.42.*, transformers 5.25.*)

CI never runs this: the fixture is committed.
"""
import json
import os
import shutil
import sys

import diffusers
import torch
import transformers
from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanPipeline, WanTransformer3DModel
from safetensors.torch import save_file
from transformers import T5TokenizerFast, UMT5Config, UMT5EncoderModel

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "Tests", "ParaDiTDiffusionTests", "Fixtures", "prompt-pipelines")
OUT = os.path.join(FIXTURES, "wan")

sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
from make_fixtures import randomize  # noqa: E402

# Wan 2.1 T2V's scheduler_config.json.
SCHEDULER = dict(num_train_timesteps=1000, solver_order=2, prediction_type="flow_prediction", predict_x0=True,
                 solver_type="bh2", lower_order_final=True, disable_corrector=[], use_flow_sigmas=True, flow_shift=3.0,
                 final_sigmas_type="zero", timestep_spacing="linspace", beta_schedule="linear")


def main():
    if not diffusers.__version__.startswith("0.42.") or not transformers.__version__.startswith("5.25."):
        raise SystemExit(f"pinned to diffusers 0.42 / transformers 5.25, found {diffusers.__version__} / "
                         f"{transformers.__version__}")
    torch.manual_seed(0)
    tokenizer = T5TokenizerFast.from_pretrained(os.path.join(FIXTURES, "pixart-sigma", "pipeline", "tokenizer"))
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=tokenizer.vocab_size, d_model=16, d_kv=8, num_heads=2, d_ff=32,
                                          num_layers=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                                          is_encoder_decoder=False, use_cache=False))
    transformer = WanTransformer3DModel(patch_size=(1, 2, 2), num_attention_heads=3, attention_head_dim=12,
                                        in_channels=4, out_channels=4, text_dim=16, freq_dim=32, ffn_dim=40,
                                        num_layers=2, rope_max_seq_len=32)
    vae = AutoencoderKLWan(base_dim=8, z_dim=4, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           latents_mean=[0.1, -0.2, 0.3, -0.4], latents_std=[1.5, 0.8, 1.2, 2.0])
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=randomize(encoder, seed=31),
                       transformer=randomize(transformer, seed=32), vae=randomize(vae, seed=33),
                       scheduler=UniPCMultistepScheduler(**SCHEDULER))
    shutil.rmtree(OUT, ignore_errors=True)
    pipe.save_pretrained(os.path.join(OUT, "pipeline"), safe_serialization=True)
    pipe = WanPipeline.from_pretrained(os.path.join(OUT, "pipeline"), torch_dtype=torch.float32)
    args = dict(pipeline="WanPipeline", prompt="A cat  walks on the grass, &amp; realistic  ",
                negative_prompt="blurry,  static", seed=7, steps=4, guidance_scale=5.0, height=32, width=48,
                num_frames=9, max_sequence_length=40)
    with torch.no_grad():
        embeds, negative = pipe.encode_prompt(args["prompt"], args["negative_prompt"], True,
                                              max_sequence_length=args["max_sequence_length"])
        latents = pipe(prompt=args["prompt"], negative_prompt=args["negative_prompt"], height=args["height"],
                       width=args["width"], num_frames=args["num_frames"], num_inference_steps=args["steps"],
                       guidance_scale=args["guidance_scale"], max_sequence_length=args["max_sequence_length"],
                       generator=torch.Generator().manual_seed(args["seed"]), output_type="latent").frames
    args["notes"] = ("prompt_clean: ftfy (absent here), html.unescape twice, whitespace collapsed and stripped; T5 ids "
                     "padded to max_sequence_length with the mask passed to UMT5; embeddings past each prompt's "
                     "tokens set to zero; CFG as two passes, uncond + g·(cond − uncond); latents "
                     "[1, 4, (9−1)/4+1, 32/8, 48/8] from randn; UniPC on flow σ, shift 3")
    args["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    with open(os.path.join(OUT, "args.json"), "w") as f:
        json.dump(args, f, indent=2)
    save_file({"prompt_embeds": embeds.contiguous(), "negative_prompt_embeds": negative.contiguous()},
              os.path.join(OUT, "conditioning.safetensors"))
    # The VAE's part, as WanPipeline does it after the loop: unscale, decode, postprocess to [0, 1].
    with torch.no_grad():
        vae = pipe.vae
        mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1)
        std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1)
        video = vae.decode(latents / std + mean, return_dict=False)[0]
        frames = pipe.video_processor.postprocess_video(video, output_type="pt")
    save_file({"latents": latents.contiguous(), "video": video.contiguous(), "frames": frames.contiguous()},
              os.path.join(OUT, "expected.safetensors"))
    print(f"wan: latents {tuple(latents.shape)}, prompt_embeds {tuple(embeds.shape)}")


if __name__ == "__main__":
    main()
