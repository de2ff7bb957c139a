#!/usr/bin/env python3
"""Writes the text-side fixtures: tokenizer conformance data and text-encoder goldens.

Tests/ParaDiTTokenizersTests/Fixtures/
    clip/           a real CLIP BPE tokenizer folder (vocab.json, merges.txt, tokenizer_config.json,
                    special_tokens_map.json) as transformers 4.x `CLIPTokenizer.save_pretrained` writes
                    it, i.e. what the `tokenizer/` folders of SD3 and Flux on the Hub hold (no
                    tokenizer.json). Vocab and merges are CLIP's own, rebuilt from
                    open_clip/bpe_simple_vocab_16e6.txt.gz of the open-clip-torch wheel: 256 byte
                    characters, the same with "</w>", one entry per merge (the first 48894),
                    "<|startoftext|>", "<|endoftext|>": 49408 entries.
    t5/             a T5-style SentencePiece unigram tokenizer (about 2000 pieces, nmt_nfkc, <pad>=0
                    </s>=1 <unk>=2, no bos, no byte fallback) trained here on the docstrings of this
                    Python's standard library plus some accented/CJK text, saved as T5TokenizerFast
                    saves a real T5 (spiece.model, tokenizer.json, tokenizer_config.json,
                    special_tokens_map.json) with the 100 <extra_id_N> sentinels (ids 2099..2000).
                    tokenizer.json is the one transformers 5 writes: normalizer Precompiled,
                    pre-tokenizer WhitespaceSplit + Metaspace(prepend "always"), as on the Hub.
                    (transformers 4.57's own conversion of a bare spiece.model gets
                    add_prefix_space=None and writes a Metaspace with prepend "never", which drops
                    the leading "▁" of the first word; that file is not kept.)
    strings.json    the test strings (a JSON list, ASCII-escaped), seeded, deterministic.
    clip-ids.json   one object per string, same order: "ids" = transformers 4.x slow CLIPTokenizer
                    (pure Python; ftfy NOT installed, so it cleans text with BERT's BasicTokenizer),
                    no padding; "padded"/"mask" = input_ids/attention_mask with
                    padding="max_length", max_length=77, truncation=True. "fast_ids", "fast_padded"
                    and "fast_mask" appear only where transformers 5's CLIPTokenizer (=
                    CLIPTokenizerFast, tokenizers-backed, what diffusers 0.42 loads under
                    transformers 5) gives other ids: the slow one deletes control and format
                    characters (categories Cc/Cf but tab, LF, CR: ZWJ, U+200B, vertical tab, form
                    feed, tag characters...) and U+FFFD, and makes each CJK ideograph a word of its
                    own; the fast one keeps them as byte-level BPE (whitespace ones as spaces).
    t5-ids.json     one object per string: "ids" (with the trailing </s>), "padded" (max_length 120,
                    truncation) and "mask" from transformers 5's T5TokenizerFast (what diffusers'
                    SD3/Flux load; under transformers 5 `T5Tokenizer` is the same class), and
                    "slow_ids" from transformers 4.x's slow, sentencepiece-backed T5Tokenizer
                    (legacy=True, PixArt's loader under transformers 4).

Tests/ParaDiTModelsTests/Fixtures/<name>/, laid out as tools/make_fixtures.py lays them out:
model/ (save_pretrained: config.json + model.safetensors), inputs.safetensors (input_ids, and
attention_mask where used, int64) and output.safetensors, the float32 outputs of the saved folder
reloaded in float32 (eager attention, eval mode). Every weight is drawn non-zero.
    clip-text-b2            CLIPTextModel, eos_token_id 2 (legacy pooling: argmax of input_ids);
                            last_hidden_state, pooler_output, penultimate (= hidden_states[-2])
    clip-text-proj-b2-f16   CLIPTextModelWithProjection, float16 weights, eos_token_id 999 (pooling at
                            the first 999 of each row); last_hidden_state, text_embeds, penultimate
    t5-encoder-b2           T5EncoderModel (v1.1: gated-gelu; transformers 5 writes tie_word_embeddings
                            true whatever it is given, and stores the embedding once, as shared.weight),
                            length 300, row 1 padded after 137 tokens (attention_mask); last_hidden_state
    t5-encoder-b1-bf16      T5EncoderModel, bfloat16 weights, length 77, no mask; last_hidden_state
    umt5-encoder-b2         UMT5EncoderModel (Wan's): a relative bias per layer, length 40 with padding

Slow tokenizers no longer exist in transformers 5 (CLIPTokenizer and T5Tokenizer are the
tokenizers-backed classes there), so the slow ids and the two tokenizer folders' transformers-4
files come from transformers 4.57 run in a child process of this script with a side install put
first on PYTHONPATH (pass its path with --transformers4, default /tmp/tf4):

    ~/venv/bin/pip install torch "transformers==5.25.*" tokenizers sentencepiece protobuf safetensors \\
        "diffusers==0.42.*"                    # ftfy must NOT be installed
    ~/venv/bin/pip install --no-deps --target /tmp/tf4 "transformers==4.57.6" "tokenizers==0.22.1" \\
        "huggingface_hub==0.36.0"
    ~/venv/bin/pip download --no-deps -d /tmp/oc "open-clip-torch==3.3.0"
    ~/venv/bin/python tools/make_text_fixtures.py [--transformers4 /tmp/tf4] [--open-clip-wheel /tmp/oc/...whl]

The T5 vocabulary depends on the standard library the corpus is read from (written with CPython
3.11.7); everything else is fixed by seeds. CI never runs this: the fixtures are committed.
"""
import argparse
import ast
import glob
import gzip
import importlib.util
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
TOKENIZER_OUT = os.path.join(ROOT, "Tests", "ParaDiTTokenizersTests", "Fixtures")
MODEL_OUT = os.path.join(ROOT, "Tests", "ParaDiTModelsTests", "Fixtures")
CLIP_MAX_LENGTH = 77
T5_MAX_LENGTH = 120


def require_no_ftfy():
    if importlib.util.find_spec("ftfy") is not None:
        raise SystemExit("ftfy is installed: uninstall it, the CLIP fixtures are for the BasicTokenizer path")


def dump_rows(rows, path):
    """A JSON list, one compact row per line."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("[\n" + ",\n".join(json.dumps(r, separators=(",", ":")) for r in rows) + "\n]\n")


# ---------------------------------------------------------------------------------------------
# CLIP vocabulary

def byte_alphabet():
    """The 256 printable stand-ins of GPT-2/CLIP byte-level BPE, in vocabulary order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = {b: chr(b) for b in printable}, 0
    order = list(printable)
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
            order.append(b)
    return [chars[b] for b in order]


def write_clip_sources(wheel, folder, merge_count=49152 - 256 - 2):
    """vocab.json and merges.txt of CLIP's BPE (all 48,894 merges: the real 49,408-token vocabulary,
    or its first `merge_count`)."""
    with zipfile.ZipFile(wheel) as z:
        lines = gzip.decompress(z.read("open_clip/bpe_simple_vocab_16e6.txt.gz")).decode("utf-8").split("\n")
    merges = lines[1:1 + merge_count]  # line 0 is the "#version" header
    alphabet = byte_alphabet()
    vocab = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    size = 256 + 256 + merge_count + 2
    assert len(vocab) == size and len(set(vocab)) == size, len(vocab)
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump({token: i for i, token in enumerate(vocab)}, f, ensure_ascii=False)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n" + "\n".join(merges) + "\n")


# ---------------------------------------------------------------------------------------------
# T5 SentencePiece model

MULTILINGUAL = [
    "Le café est très chaud, déjà prêt à être servi à côté de la fenêtre.",
    "Où est la bibliothèque? Elle se trouve près de l'église, après le théâtre.",
    "El niño pequeño comió jalapeños en la mañana; ¡qué año tan extraño!",
    "Die Größe der Straße überrascht; Mädchen und Jungen spielen fröhlich im Grünen.",
    "São Paulo e Brasília são cidades; a canção do coração não tem razão.",
    "Tiếng Việt có nhiều dấu: người, đường, phở, bánh mì, cà phê sữa đá.",
    "Łódź, Kraków i Gdańsk leżą w Polsce; żółć i źdźbło są trudne.",
    "Ærøskøbing ligger på Ærø; søster og bror går på skøjter.",
    "İstanbul'da çay içip şehirde dolaştık; güzel bir gündü.",
    "东京是日本的首都，北京是中国的首都。我们喜欢吃饭和喝茶。",
    "今日は天気がいいので、公園で写真を撮りました。猫と犬がいます。",
    "カメラで山と川の風景を撮影する。美しい花が咲いている。",
    "한국어는 아름다운 언어입니다. 서울은 큰 도시입니다.",
    "Ελληνικά: καλημέρα κόσμε, η θάλασσα είναι γαλάζια.",
    "Русский язык: привет мир, красивая кошка спит на окне.",
]


def t5_corpus(path):
    """Docstrings of the standard library's top-level modules, one line a sentence, plus text
    with accents and CJK repeated so that many (not all) of those characters enter the vocab."""
    stdlib = sysconfig.get_paths()["stdlib"]
    lines = []
    for source in sorted(glob.glob(os.path.join(stdlib, "*.py"))):
        try:
            with open(source, encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc:
                    lines += [line.strip() for line in doc.splitlines() if line.strip()]
    for repeat in range(40):
        lines += MULTILINGUAL[: len(MULTILINGUAL) - repeat % 3]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return len(lines)


def train_t5_spm(folder):
    import sentencepiece as spm

    corpus = os.path.join(folder, "corpus.txt")
    count = t5_corpus(corpus)
    spm.set_random_generator_seed(1234)
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=os.path.join(folder, "spiece"), model_type="unigram", vocab_size=2000,
        normalization_rule_name="nmt_nfkc", add_dummy_prefix=True, remove_extra_whitespaces=True,
        character_coverage=0.9995, byte_fallback=False, split_digits=False,
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        num_threads=1, minloglevel=2)
    # The trainer spec records the corpus path and model prefix: make them fixed names.
    from sentencepiece import sentencepiece_model_pb2

    path = os.path.join(folder, "spiece.model")
    proto = sentencepiece_model_pb2.ModelProto()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    proto.trainer_spec.input[:] = ["corpus.txt"]
    proto.trainer_spec.model_prefix = "spiece"
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    return path, count


# ---------------------------------------------------------------------------------------------
# Test strings

WORDS = """a an the of in on at with and or by for from to under over near beside behind inside
photo photograph painting portrait landscape cat dog horse astronaut castle forest mountain river
ocean city street night sunset sunrise morning rain snow fog light shadow reflection mirror window
girl boy woman man child old young smiling sitting standing running flying floating glowing
red blue green yellow purple orange black white golden silver pink cyan magenta crimson
beautiful detailed highly intricate cinematic dramatic soft sharp blurry vibrant muted pastel
oil watercolor digital sketch charcoal pencil render octane unreal engine trending artstation
masterpiece best quality ultra realistic photorealistic hyperrealistic surreal abstract minimal
lens bokeh wide angle macro telephoto depth field volumetric lighting studio natural neon
robot dragon wizard knight princess spaceship planet galaxy nebula star moon sun cloud sky
house garden flower tree leaf grass stone wall bridge tower road car train boat ship
coffee cup table chair book lamp clock door key bottle glass plate bowl apple bread cheese
running jumping reading writing painting dancing singing sleeping eating drinking walking
style art concept illustration anime manga comic cartoon pixel voxel low poly isometric
vintage retro futuristic cyberpunk steampunk gothic baroque renaissance impressionist
very quite extremely slightly gently softly brightly darkly quietly slowly quickly
""".split()

ACCENTED = """café naïve résumé jalapeño über São Paulo Zürich Ærøskøbing œuvre straße İstanbul
Ñandú crème brûlée façade déjà vu piñata Málaga Curaçao Kraków Łódź Gdańsk smörgåsbord
Dvořák Øresund Reykjavík Tiếng Việt phở Ελληνικά Москва coöperate señor niño año
Ångström Éclair ÉCOLE ÇA Ü Ö Ä ß ẞ ǅ ﬁ ﬂ Ⅻ ½ ² ℃ № ™""".split()

COMBINING = ["e\u0301", "a\u0300", "n\u0303", "u\u0308", "o\u0302", "c\u0327", "A\u030a", "i\u0307",
             "e\u0301\u0302", "z\u030c", "\u0301", "x\u0336y\u0336", "Z\u0351\u0358\u0350"]

CJK = ["東京", "北京", "日本語", "中文", "写真", "猫", "犬", "美しい", "風景", "山と川", "今日は",
       "カメラ", "ラーメン", "すし", "ひらがな", "カタカナ", "한국어", "서울", "사랑해요", "你好世界",
       "一个穿着红色衣服的女孩", "龍", "麒麟", "饕餮", "鬱", "𠮷野家", "㐀", "ｶﾀｶﾅ", "ＡＢＣ１２３",
       "　", "「引用」", "、。", "〜", "中国の山水画", "油絵", "水彩画"]

EMOJI = ["😀", "🐱", "🐶", "🚀", "🌅", "❤️", "❤", "👍", "👍🏽", "👋🏿", "🧑🏻‍🚀", "👨‍👩‍👧‍👦",
         "👩‍❤️‍💋‍👨", "🏳️‍🌈", "🇯🇵", "🇺🇸🇫🇷", "1️⃣", "#️⃣", "✨", "🔥", "🎨", "🖼️", "☕", "🌧️",
         "🫠", "🦄", "🐈‍⬛", "👁️‍🗨️", "🤷‍♀️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]

PUNCT = ["!!!", "...", "?!?", "--", "—", "–", "((masterpiece))", "[[detailed]]", "{best}", ":::",
         ";;", ",,,", "''", '""', "“quoted”", "‘single’", "«guillemets»", "***", "___", "~~~",
         "@@", "##", "$$$", "%%", "^^", "&&", "||", "\\\\", "//", "<<>>", "(a:1.2)", "[a|b]",
         "<lora:style:0.8>", "...!?", "¡¿", "•", "…", "/*", "*/", "=>", "->", "+-", "±"]

APOSTROPHES = ["it's", "don't", "they're", "we've", "I'm", "you'll", "he'd", "cat's", "IT'S",
               "DON'T", "They'Re", "we'VE", "I'M", "YOU'LL", "HE'D", "it’s", "don’t", "'s", "'t",
               "'re", "'ve", "'m", "'ll", "'d", "rock 'n' roll", "o'clock", "'quoted'", "can''t",
               "it's's", "ma'am", "y'all'd've"]

URLS = ["https://example.com", "http://www.example.org/path/to/page.html",
        "https://example.com/search?q=cat+photo&size=1024x768#results", "ftp://files.example.net/a_b-c.tar.gz",
        "https://user:pass@host.example.com:8080/x?y=z", "www.example.co.uk", "example.com/~user/",
        "someone@example.com", "https://huggingface.co/stabilityai/stable-diffusion-3-medium",
        "https://ja.wikipedia.org/wiki/東京", "https://example.com/%E6%9D%B1%E4%BA%AC",
        "file:///tmp/a%20b.png", "mailto:a.b+c@example.com", "https://t.co/AbC123xYz"]

SPECIALS = ["<|endoftext|>", "<|startoftext|>", "</s>", "<extra_id_3>", "<extra_id_0>", "<extra_id_99>",
            "<pad>", "<unk>", "<s>", "<extra_id_100>", "<|endoftext|", "</s", "<EXTRA_ID_3>", "<|ENDOFTEXT|>"]

WHITESPACE = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \t\n ", "\u00a0", "\u3000", "\u2003",
              "\u200b", "\u2028", "\f", "\v"]

CONTROL = ["\x00", "\x07", "\x1b[31m", "\u200d", "\u200c", "\ufeff", "\ufffd", "\u00ad", "\u0085", "\u202e"]


def test_strings():
    rng = random.Random(20240607)
    out = []

    def words(n, pool=WORDS):
        return " ".join(rng.choice(pool) for _ in range(n))

    def prompt():
        parts = [words(rng.randint(2, 7)) for _ in range(rng.randint(1, 4))]
        return ", ".join(parts)

    # Fixed classics first.
    out += ["a photo of a cat", "A photo of a cat.", "An astronaut riding a horse on Mars, highly detailed, 4k",
            "a painting of a fox sitting in a field at sunrise in the style of Claude Monet",
            "", " ", "a", "A", ".", "0", "I", "  leading spaces", "trailing spaces  ", "\tTabbed\t",
            "\nnewline first", "last newline\n", "hello world", "Hello World", "HELLO WORLD"]
    out += [prompt() for _ in range(200)]                                         # plain ASCII prompts
    for _ in range(70):                                                           # upper / mixed case
        p = prompt()
        out.append(rng.choice([p.upper(), p.title(), "".join(c.upper() if rng.random() < 0.3 else c for c in p)]))
    for _ in range(90):                                                           # accents, combining marks
        toks = [rng.choice(ACCENTED) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        if rng.random() < 0.4:
            toks.insert(rng.randrange(len(toks) + 1), "caf" + rng.choice(COMBINING) + rng.choice(["", " au lait"]))
        if rng.random() < 0.2:
            toks.append(rng.choice(COMBINING))
        out.append(" ".join(toks))
    for _ in range(80):                                                           # CJK, fullwidth, mixed
        toks = [rng.choice(CJK) if rng.random() < 0.6 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        out.append(rng.choice([" ", "", "、", ", "]).join(toks))
    for _ in range(60):                                                           # emoji
        toks = [rng.choice(EMOJI) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        out.append(rng.choice([" ", ""]).join(toks))
    for _ in range(80):                                                           # whitespace runs
        toks = [rng.choice(WORDS) for _ in range(rng.randint(1, 5))]
        s = "".join(t + "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 3))) for t in toks)
        lead = "".join(rng.choice(WHITESPACE) for _ in range(rng.randint(0, 3)))
        out.append(lead + (s if rng.random() < 0.6 else s.rstrip()))
    out += ["".join(rng.choice(WHITESPACE) for _ in range(rng.randint(1, 6))) for _ in range(12)]
    for _ in range(60):                                                           # punctuation runs
        toks = [rng.choice(PUNCT) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        out.append(rng.choice([" ", ""]).join(toks))
    for _ in range(60):                                                           # digits
        num = rng.choice([str(rng.randint(0, 9)), str(rng.randint(10, 99999)), f"{rng.random() * 100:.3f}",
                          f"{rng.randint(1, 4096)}x{rng.randint(1, 4096)}", f"{rng.randint(1000, 9999999):,}",
                          f"20{rng.randint(10, 29)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                          str(rng.randint(10**15, 10**20)), f"{rng.randint(1, 99)}%", f"v{rng.randint(1, 9)}.{rng.randint(0, 9)}",
                          "٣٤٥", "１２３", "Ⅻ", "½", "²³"])
        out.append(rng.choice([f"{words(2)} {num} {words(2)}", f"{num}{rng.choice(WORDS)}", num]))
    for _ in range(60):                                                           # apostrophes
        toks = [rng.choice(APOSTROPHES) if rng.random() < 0.5 else rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
        out.append(" ".join(toks))
    for url in URLS:                                                              # URLs
        out += [url, f"see {url} for more", f"{words(3)} ({url}), {words(2)}"]
    for sp in SPECIALS:                                                           # special-token text
        out += [sp, f"{words(2)} {sp} {words(2)}", f"{words(1)}{sp}{words(1)}", f"{sp}{sp}", f" {sp} "]
    for c in CONTROL:                                                             # control / invisible characters
        out += [f"{words(2)}{c}{words(2)}", c]
    for _ in range(100):                                                          # everything mixed
        pools = [WORDS, ACCENTED, CJK, EMOJI, PUNCT, APOSTROPHES, WHITESPACE, COMBINING, SPECIALS, CONTROL]
        weights = [30, 6, 5, 5, 5, 4, 4, 2, 1, 1]
        toks = [rng.choice(rng.choices(pools, weights)[0]) for _ in range(rng.randint(1, 12))]
        out.append(rng.choice([" ", "", ", "]).join(toks))
    for n in (600, 650, 800):                                                     # over-long prompts
        out.append(" ".join(rng.choice(WORDS) + rng.choice([""] * 8 + [",", "."]) for _ in range(n)))
    out.append(" ".join(["a photo of a cat"] * 150))

    seen, unique = set(), []
    for s in out:
        if s not in seen:
            seen.add(s)
            unique.append(s)
    for s in unique:
        s.encode("utf-8")  # no lone surrogates
    return unique


# ---------------------------------------------------------------------------------------------
# transformers 4.x child process: slow tokenizers, and the folders as transformers 4 writes them

def v4_worker(mode, job_path):
    import transformers

    if not transformers.__version__.startswith("4.57."):
        raise SystemExit(f"the child process needs transformers 4.57.x, found {transformers.__version__}")
    require_no_ftfy()
    from transformers import CLIPTokenizer, CLIPTokenizerFast, T5Tokenizer, T5TokenizerFast
    from transformers.utils import logging

    logging.set_verbosity_error()
    warnings.filterwarnings("ignore", message="This sequence already has </s>")  # slow T5 on text ending in </s>
    with open(job_path) as f:
        job = json.load(f)
    if mode == "save":
        slow = CLIPTokenizer(vocab_file=os.path.join(job["clip_src"], "vocab.json"),
                             merges_file=os.path.join(job["clip_src"], "merges.txt"))
        slow.save_pretrained(job["clip"])
        T5TokenizerFast(vocab_file=job["spiece"], extra_ids=100).save_pretrained(job["t5"])
        return
    with open(job["strings"]) as f:
        strings = json.load(f)
    clip_slow = CLIPTokenizer.from_pretrained(job["clip"])
    assert clip_slow.nlp is not None and clip_slow.fix_text is None, "expected the BasicTokenizer path (no ftfy)"
    clip_fast = CLIPTokenizerFast.from_pretrained(job["clip"])
    t5_slow = T5Tokenizer.from_pretrained(job["t5"])
    t5_fast = T5TokenizerFast.from_pretrained(job["t5"])
    result = dict(clip=[], clip_fast=[], t5_slow=[], t5_fast=[])
    for s in strings:
        padded = clip_slow(s, padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True)
        result["clip"].append(dict(ids=clip_slow(s).input_ids, padded=padded.input_ids, mask=padded.attention_mask))
        result["clip_fast"].append(clip_fast(s).input_ids)
        result["t5_slow"].append(t5_slow(s).input_ids)
        result["t5_fast"].append(t5_fast(s).input_ids)
    with open(job["result"], "w") as f:
        json.dump(result, f)


def run_v4(mode, job, tf4):
    with open(job["job_path"], "w") as f:
        json.dump(job, f)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [tf4, os.environ.get("PYTHONPATH")] if p),
               TOKENIZERS_PARALLELISM="false")
    subprocess.run([sys.executable, os.path.abspath(__file__), "--v4-worker", mode, job["job_path"]], env=env, check=True)


# ---------------------------------------------------------------------------------------------
# Part A

def report(name, strings, a, b, a_label, b_label):
    diff = [i for i in range(len(strings)) if a[i] != b[i]]
    print(f"  {name}: {a_label} vs {b_label}: {len(diff)} of {len(strings)} strings differ")
    for i in diff[:3]:
        print(f"    #{i} {strings[i]!r}\n      {a_label}: {a[i]}\n      {b_label}: {b[i]}")
    return diff


def tokenizer_fixtures(tf4, wheel):
    import transformers
    from transformers import CLIPTokenizer, T5TokenizerFast
    from transformers.utils import logging

    logging.set_verbosity_error()
    clip_dir, t5_dir = os.path.join(TOKENIZER_OUT, "clip"), os.path.join(TOKENIZER_OUT, "t5")
    for d in (clip_dir, t5_dir):
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(TOKENIZER_OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip_src = os.path.join(tmp, "clip-src")
        os.makedirs(clip_src)
        write_clip_sources(wheel, clip_src)
        spiece, corpus_lines = train_t5_spm(tmp)
        job = dict(job_path=os.path.join(tmp, "job.json"), clip_src=clip_src, clip=clip_dir, t5=t5_dir,
                   spiece=spiece, strings=os.path.join(TOKENIZER_OUT, "strings.json"),
                   result=os.path.join(tmp, "v4.json"))
        run_v4("save", job, tf4)
        if os.path.exists(os.path.join(clip_dir, "tokenizer.json")):
            os.remove(os.path.join(clip_dir, "tokenizer.json"))
        # tokenizer.json as transformers 5 writes it (the Hub's WhitespaceSplit + Metaspace pipeline).
        T5TokenizerFast.from_pretrained(t5_dir).save_pretrained(os.path.join(tmp, "t5-v5"))
        shutil.copy(os.path.join(tmp, "t5-v5", "tokenizer.json"), os.path.join(t5_dir, "tokenizer.json"))

        strings = test_strings()
        with open(job["strings"], "w", encoding="ascii") as f:
            json.dump(strings, f, ensure_ascii=True, indent=0)
            f.write("\n")
        run_v4("encode", job, tf4)
        with open(job["result"]) as f:
            v4 = json.load(f)

    clip = CLIPTokenizer.from_pretrained(clip_dir)  # transformers 5: the tokenizers-backed class
    sanity = clip("a photo of a cat").input_ids
    assert len(clip) == 49408, len(clip)
    assert sanity == [49406, 320, 1125, 539, 320, 2368, 49407], sanity
    assert v4["clip"][0]["ids"] == sanity, v4["clip"][0]["ids"]
    t5 = T5TokenizerFast.from_pretrained(t5_dir)
    assert len(t5) == 2100 and t5.convert_tokens_to_ids("<extra_id_0>") == 2099, len(t5)

    print(f"strings.json: {len(strings)} strings, longest {max(len(s.split()) for s in strings)} words")
    print(f"clip: CLIPTokenizer vocab {len(clip)}, 'a photo of a cat' -> {sanity}")
    clip_v5 = [clip(s).input_ids for s in strings]
    clip_slow = [r["ids"] for r in v4["clip"]]
    report("clip", strings, clip_slow, v4["clip_fast"], "slow(4.57)", "fast(4.57)")
    report("clip", strings, clip_slow, clip_v5, "slow(4.57)", f"CLIPTokenizer({transformers.__version__})")
    report("clip", strings, v4["clip_fast"], clip_v5, "fast(4.57)", f"CLIPTokenizer({transformers.__version__})")
    rows = []
    for s, r, fast in zip(strings, v4["clip"], clip_v5):
        if fast != r["ids"]:
            padded = clip(s, padding="max_length", max_length=CLIP_MAX_LENGTH, truncation=True)
            r = dict(r, fast_ids=fast, fast_padded=padded.input_ids, fast_mask=padded.attention_mask)
        rows.append(r)
    dump_rows(rows, os.path.join(TOKENIZER_OUT, "clip-ids.json"))
    print("clip-ids.json: slow CLIPTokenizer ids/padded/mask (max_length 77); fast_ids/fast_padded/fast_mask where they differ")

    print(f"t5: unigram spiece.model from {corpus_lines} corpus lines, vocab {len(t5)} with 100 sentinels")
    rows, t5_v5 = [], []
    for s, slow in zip(strings, v4["t5_slow"]):
        padded = t5(s, padding="max_length", max_length=T5_MAX_LENGTH, truncation=True)
        ids = t5(s).input_ids
        t5_v5.append(ids)
        rows.append(dict(ids=ids, padded=padded.input_ids, mask=padded.attention_mask, slow_ids=slow))
    report("t5", strings, t5_v5, v4["t5_slow"], f"T5TokenizerFast({transformers.__version__})", "slow(4.57)")
    report("t5", strings, t5_v5, v4["t5_fast"], f"T5TokenizerFast({transformers.__version__})", "fast(4.57)")
    dump_rows(rows, os.path.join(TOKENIZER_OUT, "t5-ids.json"))
    print("t5-ids.json: T5TokenizerFast ids/padded/mask (max_length 120), slow_ids")


# ---------------------------------------------------------------------------------------------
# Part B

def encoder_fixtures():
    import torch
    from safetensors.torch import save_file
    from transformers import (CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, T5Config,
                              T5EncoderModel, UMT5Config, UMT5EncoderModel)

    from transformers.utils import logging

    sys.dont_write_bytecode = True  # no tools/__pycache__
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from make_fixtures import randomize

    logging.disable_progress_bar()

    def save_case(name, model, inputs, pick, dtype=torch.float32):
        folder = os.path.join(MODEL_OUT, name)
        shutil.rmtree(folder, ignore_errors=True)
        os.makedirs(folder)
        model.to(dtype).save_pretrained(os.path.join(folder, "model"), safe_serialization=True)
        stored = {k: v.float() for k, v in model.state_dict().items()}
        model = type(model).from_pretrained(os.path.join(folder, "model"), dtype=torch.float32,
                                            attn_implementation="eager").eval()
        loaded = model.state_dict()
        assert stored.keys() == loaded.keys() and all(torch.equal(stored[k], loaded[k]) for k in stored), name
        with torch.no_grad():
            out = model(**inputs, output_hidden_states=True, return_dict=True)
        outputs = {k: f(out).contiguous() for k, f in pick.items()}
        save_file({k: v.contiguous() for k, v in inputs.items()}, os.path.join(folder, "inputs.safetensors"))
        save_file(outputs, os.path.join(folder, "output.safetensors"))
        shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items())
        print(f"{name}: {type(model).__name__} {dtype}, {shapes}")
        return outputs

    g = torch.Generator().manual_seed(500)
    clip = dict(vocab_size=1000, hidden_size=36, num_attention_heads=3, num_hidden_layers=2, intermediate_size=37,
                max_position_embeddings=77, hidden_act="quick_gelu", eos_token_id=2)
    ids = torch.randint(3, 999, (2, 77), generator=g)
    out = save_case("clip-text-b2", randomize(CLIPTextModel(CLIPTextConfig(**clip)), seed=20), dict(input_ids=ids),
                    dict(last_hidden_state=lambda o: o.last_hidden_state, pooler_output=lambda o: o.pooler_output,
                         penultimate=lambda o: o.hidden_states[-2]))
    assert torch.equal(out["pooler_output"], out["last_hidden_state"][torch.arange(2), ids.argmax(-1)])

    proj = dict(vocab_size=1000, hidden_size=40, num_attention_heads=5, num_hidden_layers=3, intermediate_size=50,
                projection_dim=24, max_position_embeddings=77, hidden_act="gelu", eos_token_id=999)
    ids = torch.randint(3, 999, (2, 77), generator=g)
    ids[0, 20] = 999
    ids[1, 9] = 999
    ids[1, 60] = 999  # only the first one pools
    save_case("clip-text-proj-b2-f16", randomize(CLIPTextModelWithProjection(CLIPTextConfig(**proj)), seed=21),
              dict(input_ids=ids),
              dict(last_hidden_state=lambda o: o.last_hidden_state, text_embeds=lambda o: o.text_embeds,
                   penultimate=lambda o: o.hidden_states[-2]), dtype=torch.float16)

    t5 = dict(vocab_size=1000, d_model=40, d_kv=8, num_heads=3, d_ff=52, num_layers=2, feed_forward_proj="gated-gelu",
              tie_word_embeddings=False, relative_attention_num_buckets=32, relative_attention_max_distance=128,
              is_encoder_decoder=False, use_cache=False)
    ids = torch.randint(3, 1000, (2, 300), generator=g)
    mask = torch.ones(2, 300, dtype=torch.int64)
    ids[0, -1] = 1  # </s>
    ids[1, 136] = 1
    ids[1, 137:] = 0  # <pad>
    mask[1, 137:] = 0
    save_case("t5-encoder-b2", randomize(T5EncoderModel(T5Config(**t5)), seed=22),
              dict(input_ids=ids, attention_mask=mask), dict(last_hidden_state=lambda o: o.last_hidden_state))

    ids = torch.randint(3, 1000, (1, 77), generator=g)
    ids[0, -1] = 1
    save_case("t5-encoder-b1-bf16",
              randomize(T5EncoderModel(T5Config(**dict(t5, d_model=32, num_heads=4, d_kv=8, d_ff=48, num_layers=3))), seed=23),
              dict(input_ids=ids), dict(last_hidden_state=lambda o: o.last_hidden_state), dtype=torch.bfloat16)

    # UMT5 (Wan's text encoder): a relative attention bias in every layer, 40 tokens with padding.
    ids = torch.randint(3, 1000, (2, 40), generator=g)
    mask = torch.ones(2, 40, dtype=torch.int64)
    ids[0, -1] = 1
    ids[1, 22] = 1
    ids[1, 23:] = 0
    mask[1, 23:] = 0
    save_case("umt5-encoder-b2", randomize(UMT5EncoderModel(UMT5Config(**dict(t5, num_layers=3))), seed=24),
              dict(input_ids=ids, attention_mask=mask), dict(last_hidden_state=lambda o: o.last_hidden_state))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--transformers4", default=os.environ.get("TRANSFORMERS4_PATH", "/tmp/tf4"),
                        help="a --target install of transformers 4.57 / tokenizers 0.22 / huggingface_hub 0.36")
    parser.add_argument("--open-clip-wheel", default=None, help="open_clip_torch-*.whl (default: /tmp/oc/*.whl)")
    parser.add_argument("--skip-tokenizers", action="store_true")
    parser.add_argument("--skip-encoders", action="store_true")
    args = parser.parse_args()

    import transformers

    if not transformers.__version__.startswith("5.25."):
        raise SystemExit(f"fixtures are pinned to transformers 5.25.x, found {transformers.__version__}")
    require_no_ftfy()
    if not args.skip_tokenizers:
        wheel = args.open_clip_wheel or next(iter(sorted(glob.glob("/tmp/oc/open_clip_torch-*.whl"))), None)
        if wheel is None:
            raise SystemExit("no open-clip-torch wheel: pip download --no-deps -d /tmp/oc open-clip-torch==3.3.0")
        if not os.path.isdir(os.path.join(args.transformers4, "transformers")):
            raise SystemExit(f"no transformers 4 at {args.transformers4}: see this script's docstring")
        tokenizer_fixtures(args.transformers4, wheel)
    if not args.skip_encoders:
        import torch

        torch.manual_seed(0)
        encoder_fixtures()


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--v4-worker":
        v4_worker(sys.argv[2], sys.argv[3])
    else:
        main()
