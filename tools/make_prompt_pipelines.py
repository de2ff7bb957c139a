#!/usr/bin/env python3
"""Writes Tests/ParaDiTDiffusionTests/Fixtures/prompt-pipelines: diffusers pipelines run from a text prompt.

Each case (PixArt-Σ, SD3, Flux-dev) is a whole diffusers pipeline WITH its tokenizers and text
encoders, built from tiny random-weight models and run end to end from a prompt string: tokenize,
encode, seeded noise, scheduler, classifier-free guidance, transformer, VAE decode. A case folder holds:

    pipeline/                  pipe.save_pretrained(): model_index.json, transformer/, vae/, scheduler/,
                               text_encoder*/ (float32 safetensors) and tokenizer*/ (see below)
    args.json                  the __call__ arguments (prompt, negative_prompt, seed of a CPU
                               torch.Generator, steps, max_sequence_length, ...) and notes on what
                               the pipeline derived
    conditioning.safetensors   what pipe.encode_prompt() returned for those arguments, named as the
                               __call__ arguments (prompt_embeds, negative_prompt_embeds,
                               pooled_prompt_embeds, ...; float32, attention masks int64), plus the
                               padded token ids each tokenizer gave encode_prompt, int64:
                               input_ids_<tokenizer folder> and negative_input_ids_<tokenizer folder>
    expected.safetensors       latents (output_type="latent"; Flux: packed, plus latents_unpacked)
                               and image (output_type="np", float32)

The tokenizers are real ones with a small vocabulary. CLIP: CLIP's own byte-level BPE (the merges of
open_clip/bpe_simple_vocab_16e6.txt.gz from the open-clip-torch wheel) cut to its first 1000 merges:
256 byte characters, the same with "</w>", one entry per merge, "<|startoftext|>", "<|endoftext|>"
(1514 entries), model_max_length 77. SD3's tokenizer_2 (CLIP-G) pads with "!" as the real one does,
its tokenizer (CLIP-L) and Flux's with "<|endoftext|>". T5: the SentencePiece unigram model of
Tests/ParaDiTTokenizersTests/Fixtures/t5 (tools/make_text_fixtures.py; 2000 pieces, nmt_nfkc) with
T5's 100 <extra_id_N> sentinels (2100 ids), model_max_length 512. The tokenizer folders are written
as transformers 4.x writes them, i.e. as on the Hub: CLIPTokenizer.save_pretrained (vocab.json,
merges.txt, tokenizer_config.json, special_tokens_map.json) and T5TokenizerFast.save_pretrained
(spiece.model, tokenizer_config.json, special_tokens_map.json) run in a child process under
transformers 4.57. Their tokenizer.json is not kept (the Hub's CLIP folders have none; 4.57 converts
spiece.model with a Metaspace that drops the first word's "▁", and each T5 one is ~470 kB), so
transformers 5 rebuilds both tokenizers from those files when the pipeline is loaded. SD3's CLIP-G
tokenizer holds "!" as an added special token (id 0), so a "!" in a prompt is id 0 there and
"!</w>" (256) in CLIP-L.

The text encoders are tiny, with vocabularies the size of their tokenizers': CLIPTextModelWithProjection
(SD3: CLIP-L quick_gelu and CLIP-G gelu, of other widths and head counts), CLIPTextModel (Flux),
T5EncoderModel (T5 v1.1: gated-gelu, untied) as wide as the transformer's text input. Transformers
and VAEs are laid out as in tools/make_pipeline_fixtures.py (PixArt-Σ: sample_size 128,
interpolation_scale 2, no additional conditions, the SDXL VAE's scaling 0.13025). Every weight is
drawn non-zero (layers diffusers zero-initialises too), scaled by its fan-in so the activations,
and hence the image, stay in range. The reference is the saved folder loaded back in float32, as a
user would load it; the pipeline run from the recorded embeddings instead of the prompt must give
the same latents. The noise is torch.randn on CPU, which depends on the CPU capability torch
dispatches to (see tools/make_noise_fixtures.py): run this on an AVX2 machine.

    python3 -m venv ~/venv && ~/venv/bin/pip install torch "diffusers==0.42.*" "transformers==5.25.*" \\
        tokenizers sentencepiece protobuf safetensors          # ftfy and bs4 must NOT be installed
    ~/venv/bin/pip install --no-deps --target /tmp/tf4 "transformers==4.57.6" "tokenizers==0.22.1" \\
        "huggingface_hub==0.36.0"
    ~/venv/bin/pip download --no-deps -d /tmp/oc "open-clip-torch==3.3.0"
    ~/venv/bin/python tools/make_prompt_pipelines.py [--transformers4 /tmp/tf4] [--open-clip-wheel /tmp/oc/...whl]

CI never runs this: the fixtures are committed.
"""
import argparse
import glob
import gzip
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_text_fixtures import write_clip_sources  # noqa: E402  (stdlib-only imports: safe in the 4.57 child)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "ParaDiTDiffusionTests", "Fixtures", "prompt-pipelines")
SPIECE = os.path.join(ROOT, "Tests", "ParaDiTTokenizersTests", "Fixtures", "t5", "spiece.model")
CLIP_MERGES = 1000
CLIP_VOCAB = 256 + 256 + CLIP_MERGES + 2  # <|startoftext|> = CLIP_VOCAB - 2, <|endoftext|> = CLIP_VOCAB - 1
T5_VOCAB = 2000 + 100
VAE_SCALE = 2  # the tiny VAEs' 2 ** (len(block_out_channels) - 1), as the pipelines derive it
PROMPT = "A photo of an astronaut riding a horse on the moon, 4k"
NEGATIVE = "blurry, low quality"


# ---------------------------------------------------------------------------------------------
# Tokenizer folders

def v4_worker(job_path):
    """Runs under transformers 4.57: saves the tokenizer folders as the Hub's were saved."""
    import transformers

    if not transformers.__version__.startswith("4.57."):
        raise SystemExit(f"the child process needs transformers 4.57.x, found {transformers.__version__}")
    from transformers import CLIPTokenizer, T5TokenizerFast
    from transformers.utils import logging

    logging.set_verbosity_error()
    with open(job_path) as f:
        job = json.load(f)
    vocab, merges = os.path.join(job["clip_src"], "vocab.json"), os.path.join(job["clip_src"], "merges.txt")
    CLIPTokenizer(vocab_file=vocab, merges_file=merges, model_max_length=77).save_pretrained(job["clip-l"])
    CLIPTokenizer(vocab_file=vocab, merges_file=merges, model_max_length=77,
                  pad_token="!").save_pretrained(job["clip-g"])
    T5TokenizerFast(vocab_file=job["spiece"], extra_ids=100, model_max_length=512).save_pretrained(job["t5"])
    for name in ("clip-l", "clip-g", "t5"):
        tokenizer_json = os.path.join(job[name], "tokenizer.json")
        if os.path.exists(tokenizer_json):
            os.remove(tokenizer_json)


def write_tokenizers(tmp, tf4, wheel):
    """Returns {"clip-l": folder, "clip-g": folder, "t5": folder} written by transformers 4.57."""
    clip_src = os.path.join(tmp, "clip-src")
    os.makedirs(clip_src)
    write_clip_sources(wheel, clip_src, merge_count=CLIP_MERGES)
    job = {"clip_src": clip_src, "spiece": SPIECE, **{k: os.path.join(tmp, k) for k in ("clip-l", "clip-g", "t5")}}
    job_path = os.path.join(tmp, "job.json")
    with open(job_path, "w") as f:
        json.dump(job, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [tf4, os.environ.get("PYTHONPATH")] if p),
               TOKENIZERS_PARALLELISM="false")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--v4-worker", job_path], env=env, check=True)
    return {k: job[k] for k in ("clip-l", "clip-g", "t5")}


def load_tokenizers(folders):
    """The tokenizers as transformers 5 (what diffusers 0.42 runs with here) loads those folders."""
    from transformers import CLIPTokenizer, T5TokenizerFast

    tokenizers = {"clip-l": CLIPTokenizer.from_pretrained(folders["clip-l"]),
                  "clip-g": CLIPTokenizer.from_pretrained(folders["clip-g"]),
                  "t5": T5TokenizerFast.from_pretrained(folders["t5"])}
    for name in ("clip-l", "clip-g"):
        tok = tokenizers[name]
        assert len(tok) == CLIP_VOCAB and tok.model_max_length == 77, (name, len(tok), tok.model_max_length)
        assert tok.convert_tokens_to_ids("<|endoftext|>") == CLIP_VOCAB - 1
    assert tokenizers["clip-g"].pad_token == "!" and tokenizers["clip-g"].pad_token_id == 0
    assert tokenizers["clip-l"].pad_token_id == CLIP_VOCAB - 1
    t5 = tokenizers["t5"]
    assert len(t5) == T5_VOCAB and t5.pad_token_id == 0 and t5.eos_token_id == 1, len(t5)
    return tokenizers


# ---------------------------------------------------------------------------------------------
# Models

# The random weights and tiny VAEs of tools/make_pipeline_fixtures.py (imported when models are
# built: it imports torch and diffusers, which the transformers-4.57 child must not).

def randomize(model, seed):
    from make_pipeline_fixtures import randomize
    return randomize(model, seed)


def sdxl_vae(seed):
    """The SDXL VAE (PixArt-Σ): 4 latent channels, quant convs, scaling 0.13025, no shift."""
    from make_pipeline_fixtures import tiny_vae
    return tiny_vae(4, seed, scaling_factor=0.13025)


def sd3_style_vae(seed, shift_factor, scaling_factor):
    from make_pipeline_fixtures import sd3_style_vae
    return sd3_style_vae(seed, shift_factor, scaling_factor)


def clip_encoder(cls, seed, tokenizer, hidden, heads, act, projection_dim=None):
    """A 2-layer CLIP text tower over the small CLIP vocabulary; pools at the first <|endoftext|>."""
    from transformers import CLIPTextConfig

    extra = {} if projection_dim is None else {"projection_dim": projection_dim}
    config = CLIPTextConfig(vocab_size=CLIP_VOCAB, hidden_size=hidden, intermediate_size=4 * hidden,
                            num_attention_heads=heads, num_hidden_layers=2, max_position_embeddings=77,
                            hidden_act=act, layer_norm_eps=1e-5, bos_token_id=tokenizer.bos_token_id,
                            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, **extra)
    return randomize(cls(config), seed)


def t5_encoder(seed, d_model, heads):
    """A 2-layer T5 v1.1 encoder (gated-gelu, untied head, relative attention buckets 32/128)."""
    from transformers import T5Config, T5EncoderModel

    config = T5Config(vocab_size=T5_VOCAB, d_model=d_model, d_kv=8, num_heads=heads, d_ff=2 * d_model,
                      num_layers=2, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                      relative_attention_num_buckets=32, relative_attention_max_distance=128,
                      layer_norm_epsilon=1e-6, is_encoder_decoder=False, use_cache=False,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return randomize(T5EncoderModel(config), seed)


# ---------------------------------------------------------------------------------------------
# Running and recording

class TokenRecorder:
    """Records the input_ids each tokenizer of the pipeline returns for its padding="max_length" calls
    (those the encoders get; the padding="longest" calls only check for truncation)."""

    def __init__(self, pipe, names):
        self.names = {id(getattr(pipe, n)): n for n in names}
        self.ids = {n: [] for n in names}
        self.patched = {}
        for cls in {type(getattr(pipe, n)) for n in names}:
            self.patched[cls] = cls.__dict__.get("__call__")
            original = cls.__call__

            def call(tok, *args, _original=original, **kwargs):
                out = _original(tok, *args, **kwargs)
                if kwargs.get("padding") == "max_length" and id(tok) in self.names:
                    self.ids[self.names[id(tok)]].append(out["input_ids"].clone())
                return out

            cls.__call__ = call

    def close(self):
        for cls, own in self.patched.items():
            if own is None:
                del cls.__call__
            else:
                cls.__call__ = own


def tokenizer_names(pipe):
    return [k for k in sorted(pipe.components) if k.startswith("tokenizer") and pipe.components[k] is not None]


def save_case(name, pipe, tokenizer_folders, encode, call, args, pack=None):
    """Saves `pipe` (tokenizer folders as transformers 4 wrote them), reloads it in float32 as a user
    would, and records what encode_prompt and __call__ do with the prompt.

    tokenizer_folders: {pipeline tokenizer folder name: folder written by the transformers 4 child}.
    encode(pipe) -> {__call__ argument name: tensor}; call(pipe, cond, generator, output_type) runs
    __call__ with the prompt when cond is None, else with the embeddings in cond.
    pack: maps [B,C,h,w] latents to the pipeline's packed layout (Flux).
    """
    import diffusers
    import numpy as np
    import torch
    from safetensors.torch import save_file

    folder = os.path.join(OUT, name)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    pipeline_dir = os.path.join(folder, "pipeline")
    before = {k: getattr(pipe, k)(PROMPT).input_ids for k in tokenizer_folders}
    pipe.save_pretrained(pipeline_dir, safe_serialization=True)
    for component, source in tokenizer_folders.items():
        target = os.path.join(pipeline_dir, component)
        shutil.rmtree(target)
        shutil.copytree(source, target)
    pipe = type(pipe).from_pretrained(pipeline_dir, dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    assert all(getattr(pipe, k)(PROMPT).input_ids == v for k, v in before.items()), f"{name}: tokenizers changed"
    names = tokenizer_names(pipe)
    assert sorted(names) == sorted(tokenizer_folders), names
    seeded = lambda: torch.Generator("cpu").manual_seed(args["seed"])

    with torch.no_grad():
        recorder = TokenRecorder(pipe, names)
        conditioning = encode(pipe)
        recorder.close()
        encode_ids = recorder.ids
        recorder = TokenRecorder(pipe, names)
        image = torch.from_numpy(np.asarray(call(pipe, None, seeded(), "np"))).float()
        recorder.close()
        latents = call(pipe, None, seeded(), "latent")
        from_embeds = call(pipe, conditioning, seeded(), "latent")
    assert torch.equal(latents, from_embeds), f"{name}: the recorded embeddings give other latents"
    negative = args.get("negative_prompt") is not None
    for k in names:
        assert len(encode_ids[k]) == 1 + negative, (name, k, len(encode_ids[k]))
        assert all(torch.equal(a, b) for a, b in zip(encode_ids[k], recorder.ids[k])), f"{name}: {k} ids differ"
        conditioning[f"input_ids_{k}"] = encode_ids[k][0]
        if negative:
            conditioning[f"negative_input_ids_{k}"] = encode_ids[k][1]
    for k, v in conditioning.items():
        assert v.dtype in (torch.float32, torch.int64), (k, v.dtype)

    expected = {"latents": latents, "image": image}
    if pack:
        expected["latents_unpacked"] = pack.unpack(latents)
    save_file({k: v.contiguous() for k, v in conditioning.items()}, os.path.join(folder, "conditioning.safetensors"))
    save_file({k: v.contiguous() for k, v in expected.items()}, os.path.join(folder, "expected.safetensors"))
    with open(os.path.join(folder, "args.json"), "w") as f:
        json.dump(dict(args, torch_cpu_capability=torch.backends.cpu.get_cpu_capability()), f, indent=2,
                  ensure_ascii=False)
        f.write("\n")

    size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(folder) for f in fs)
    weights = sum(os.path.getsize(p) for p in glob.glob(os.path.join(pipeline_dir, "*", "*.safetensors")))
    tokenizers = sum(os.path.getsize(p) for k in names for p in glob.glob(os.path.join(pipeline_dir, k, "*")))
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in conditioning.items() if "input_ids" not in k)
    tokens = ", ".join(f"{k} {int((v != getattr(pipe, k[len('input_ids_'):]).pad_token_id).sum())}"
                       for k, v in conditioning.items() if k.startswith("input_ids_"))
    clamped = ((image == 0) | (image == 1)).float().mean().item()
    print(f"{name}: {size} B (weights {weights} B, tokenizers {tokenizers} B); {shapes}; non-pad tokens {tokens}; "
          f"latents {tuple(latents.shape)} max |x| {latents.abs().max().item():.3g}; "
          f"image {tuple(image.shape)} clamped {clamped:.1%}")
    return size


# ---------------------------------------------------------------------------------------------
# Cases

def pixart_sigma_case(folders, tokenizers):
    import torch
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    # PixArt-Σ 1024: sample_size 128 with use_additional_conditions false and interpolation_scale 2
    # written out (α derives true for 128); caption_channels = the T5 width.
    transformer = randomize(PixArtTransformer2DModel(num_attention_heads=2, attention_head_dim=6, in_channels=4,
                                                     out_channels=8, num_layers=2, cross_attention_dim=12,
                                                     caption_channels=16, sample_size=128, patch_size=2,
                                                     use_additional_conditions=False, interpolation_scale=2),
                            seed=61)
    assert not transformer.use_additional_conditions
    pipe = PixArtSigmaPipeline(tokenizer=tokenizers["t5"], text_encoder=t5_encoder(63, d_model=16, heads=2),
                               transformer=transformer, vae=sdxl_vae(62), scheduler=DPMSolverMultistepScheduler())
    args = dict(pipeline="PixArtSigmaPipeline", prompt=PROMPT, negative_prompt=NEGATIVE, seed=3, steps=4,
                guidance_scale=4.5, height=16, width=24, max_sequence_length=300, num_images_per_prompt=1,
                clean_caption=False, use_resolution_binning=False,
                notes="clean_caption=False still lower()s and strip()s prompt and negative prompt before T5; "
                      "T5 ids padded with <pad> (0) to max_sequence_length 300 after </s> (1), attention_mask "
                      "1 on the real tokens and </s>, passed to the T5 encoder and to the transformer as "
                      "encoder_attention_mask; the negative prompt is padded to prompt_embeds.shape[1] = 300; "
                      "CFG batch [negative, prompt]; no resolution/aspect-ratio conditions; noise [1,4,8,12]")

    def encode(pipe):
        embeds, mask, negative_embeds, negative_mask = pipe.encode_prompt(
            PROMPT, True, negative_prompt=NEGATIVE, num_images_per_prompt=1, clean_caption=False,
            max_sequence_length=300)
        return dict(prompt_embeds=embeds, prompt_attention_mask=mask, negative_prompt_embeds=negative_embeds,
                    negative_prompt_attention_mask=negative_mask)

    def call(pipe, cond, generator, output_type):
        text = dict(prompt=PROMPT, negative_prompt=NEGATIVE) if cond is None else dict(cond, negative_prompt=None)
        return pipe(**text, guidance_scale=args["guidance_scale"], num_inference_steps=args["steps"],
                    height=args["height"], width=args["width"], generator=generator, output_type=output_type,
                    clean_caption=False, use_resolution_binning=False, max_sequence_length=300).images

    return save_case("pixart-sigma", pipe, {"tokenizer": folders["t5"]}, encode, call, args)


def sd3_case(folders, tokenizers):
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    # CLIP-L 8 wide (2 heads, quick_gelu) and CLIP-G 12 wide (3 heads, gelu), projections as wide as
    # their towers: pooled 8 + 12 = pooled_projection_dim 20; CLIP 8 + 12 = 20 < T5 24 = joint_attention_dim.
    clip_l = clip_encoder(CLIPTextModelWithProjection, 73, tokenizers["clip-l"], hidden=8, heads=2, act="quick_gelu",
                          projection_dim=8)
    clip_g = clip_encoder(CLIPTextModelWithProjection, 74, tokenizers["clip-g"], hidden=12, heads=3, act="gelu",
                          projection_dim=12)
    transformer = randomize(SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=16, num_layers=2,
                                                  attention_head_dim=4, num_attention_heads=2, joint_attention_dim=24,
                                                  caption_projection_dim=8, pooled_projection_dim=20, out_channels=16,
                                                  pos_embed_max_size=12), seed=71)
    pipe = StableDiffusion3Pipeline(transformer=transformer, vae=sd3_style_vae(72, 0.0609, 1.5305),
                                    scheduler=FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0),
                                    text_encoder=clip_l, tokenizer=tokenizers["clip-l"], text_encoder_2=clip_g,
                                    tokenizer_2=tokenizers["clip-g"], text_encoder_3=t5_encoder(75, d_model=24, heads=3),
                                    tokenizer_3=tokenizers["t5"])
    args = dict(pipeline="StableDiffusion3Pipeline", prompt=PROMPT, negative_prompt=NEGATIVE, seed=42, steps=4,
                guidance_scale=5.0, height=8, width=16, max_sequence_length=256, num_images_per_prompt=1,
                notes="prompt_2/prompt_3 and negative_prompt_2/_3 default to prompt / negative_prompt. "
                      "Each CLIP: ids padded to 77 (tokenizer: <|endoftext|>, tokenizer_2: '!' = 0), no "
                      "attention mask; embeds = hidden_states[-2] (penultimate layer, before final_layer_norm), "
                      "pooled = text_embeds (final_layer_norm at the first <|endoftext|>, then text_projection). "
                      "T5: ids padded with <pad> to 256, no attention mask; last_hidden_state. "
                      "prompt_embeds = cat(pad(cat(clip_l, clip_g, -1) with zeros to the T5 width 24), t5; dim 1) "
                      "= [1, 77+256, 24]; pooled = cat(clip_l, clip_g, -1). The negative prompt goes the same way. "
                      "CFG batch [negative, prompt]; noise [1,16,4,8]; no dynamic shifting, so no mu")

    def encode(pipe):
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompt=PROMPT, prompt_2=None, prompt_3=None, negative_prompt=NEGATIVE, do_classifier_free_guidance=True,
            num_images_per_prompt=1, max_sequence_length=256)
        return dict(prompt_embeds=embeds, negative_prompt_embeds=negative_embeds, pooled_prompt_embeds=pooled,
                    negative_pooled_prompt_embeds=negative_pooled)

    def call(pipe, cond, generator, output_type):
        text = dict(prompt=PROMPT, negative_prompt=NEGATIVE) if cond is None else cond
        return pipe(**text, guidance_scale=args["guidance_scale"], num_inference_steps=args["steps"],
                    height=args["height"], width=args["width"], generator=generator, output_type=output_type,
                    max_sequence_length=256).images

    return save_case("sd3", pipe, {"tokenizer": folders["clip-l"], "tokenizer_2": folders["clip-g"],
                                   "tokenizer_3": folders["t5"]}, encode, call, args)


class FluxPacking:
    """[B,C,h,w] <-> [B, h/2·w/2, C·4] as FluxPipeline packs its latents."""

    def __init__(self, h, w):
        self.h, self.w = h, w

    def __call__(self, x):
        from diffusers import FluxPipeline

        return FluxPipeline._pack_latents(x, x.shape[0], x.shape[1], self.h, self.w)

    def unpack(self, x):
        from diffusers import FluxPipeline

        return FluxPipeline._unpack_latents(x, self.h * VAE_SCALE, self.w * VAE_SCALE, VAE_SCALE)


def flux_case(folders, tokenizers):
    import diffusers
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    # CLIP 16 wide = pooled_projection_dim; T5 12 wide = joint_attention_dim.
    transformer = randomize(FluxTransformer2DModel(patch_size=1, in_channels=64, num_layers=1, num_single_layers=1,
                                                   attention_head_dim=8, num_attention_heads=2, joint_attention_dim=12,
                                                   pooled_projection_dim=16, axes_dims_rope=(2, 2, 4),
                                                   guidance_embeds=True), seed=81)
    scheduler = FlowMatchEulerDiscreteScheduler(num_train_timesteps=1000, shift=3.0, use_dynamic_shifting=True,
                                                base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
                                                max_image_seq_len=4096)
    pipe = FluxPipeline(transformer=transformer, vae=sd3_style_vae(82, 0.1159, 0.3611), scheduler=scheduler,
                        text_encoder=clip_encoder(CLIPTextModel, 83, tokenizers["clip-l"], hidden=16, heads=2,
                                                  act="quick_gelu"),
                        tokenizer=tokenizers["clip-l"], text_encoder_2=t5_encoder(84, d_model=12, heads=2),
                        tokenizer_2=tokenizers["t5"])
    height, width = 8, 16
    h, w = height // VAE_SCALE, width // VAE_SCALE
    tokens = (h // 2) * (w // 2)
    mu = diffusers.pipelines.flux.pipeline_flux.calculate_shift(tokens, 256, 4096, 0.5, 1.15)
    args = dict(pipeline="FluxPipeline", prompt=PROMPT, negative_prompt=None, seed=0, steps=4, guidance_scale=3.5,
                true_cfg_scale=1.0, height=height, width=width, max_sequence_length=512, num_images_per_prompt=1,
                mu=mu,
                notes="prompt_2 defaults to prompt. CLIP: ids padded with <|endoftext|> to 77, no attention "
                      "mask; pooled_prompt_embeds = pooler_output of CLIPTextModel (final_layer_norm output at "
                      "the first <|endoftext|>, no projection). T5: ids padded with <pad> to 512, no attention "
                      "mask; prompt_embeds = last_hidden_state [1,512,12]; text_ids zeros [512,3] (not stored). "
                      "No negative prompt, no CFG (true_cfg_scale 1); guidance 3.5 goes to the guidance embedder. "
                      f"noise [1,16,{h},{w}] packed to [1,{tokens},64]; mu = calculate_shift({tokens}); "
                      "latents are packed, latents_unpacked is [1,16,h,w]")

    def encode(pipe):
        embeds, pooled, _ = pipe.encode_prompt(prompt=PROMPT, prompt_2=None, num_images_per_prompt=1,
                                               max_sequence_length=512)
        return dict(prompt_embeds=embeds, pooled_prompt_embeds=pooled)

    def call(pipe, cond, generator, output_type):
        text = dict(prompt=PROMPT) if cond is None else cond
        return pipe(**text, guidance_scale=args["guidance_scale"], num_inference_steps=args["steps"], height=height,
                    width=width, generator=generator, output_type=output_type, max_sequence_length=512).images

    return save_case("flux", pipe, {"tokenizer": folders["clip-l"], "tokenizer_2": folders["t5"]}, encode, call,
                     args, pack=FluxPacking(h, w))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transformers4", default=os.environ.get("TRANSFORMERS4_PATH", "/tmp/tf4"),
                        help="a --target install of transformers 4.57 / tokenizers 0.22 / huggingface_hub 0.36")
    parser.add_argument("--open-clip-wheel", default=None, help="open_clip_torch-*.whl (default: /tmp/oc/*.whl)")
    args = parser.parse_args()

    import diffusers
    import torch
    import transformers
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    if not diffusers.__version__.startswith("0.42."):
        raise SystemExit(f"fixtures are pinned to diffusers 0.42.x, found {diffusers.__version__}")
    if not transformers.__version__.startswith("5.25."):
        raise SystemExit(f"fixtures are pinned to transformers 5.25.x, found {transformers.__version__}")
    if torch.backends.cpu.get_cpu_capability() == "DEFAULT":
        raise SystemExit("torch.randn must run its AVX2 kernel here (the Swift noise follows it)")
    for module in ("ftfy", "bs4"):
        if importlib.util.find_spec(module) is not None:
            raise SystemExit(f"{module} is installed: uninstall it, the fixtures take the prompt as given")
    if not os.path.exists(SPIECE):
        raise SystemExit(f"no {SPIECE}: run tools/make_text_fixtures.py first")
    wheel = args.open_clip_wheel or next(iter(sorted(glob.glob("/tmp/oc/open_clip_torch-*.whl"))), None)
    if wheel is None:
        raise SystemExit("no open-clip-torch wheel: pip download --no-deps -d /tmp/oc open-clip-torch==3.3.0")
    if not os.path.isdir(os.path.join(args.transformers4, "transformers")):
        raise SystemExit(f"no transformers 4 at {args.transformers4}: see this script's docstring")
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()

    torch.manual_seed(0)
    shutil.rmtree(OUT, ignore_errors=True)
    total = 0
    with tempfile.TemporaryDirectory() as tmp:
        folders = write_tokenizers(tmp, args.transformers4, wheel)
        tokenizers = load_tokenizers(folders)
        total += pixart_sigma_case(folders, tokenizers)
        total += sd3_case(folders, tokenizers)
        total += flux_case(folders, tokenizers)
    print(f"total {total} B")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--v4-worker":
        v4_worker(sys.argv[2])
    else:
        main()
