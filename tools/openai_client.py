#!/usr/bin/env python3
"""Asks a running `paradit serve` for images through OpenAI's own Python client.

    python3 tools/openai_client.py --base-url http://127.0.0.1:8000/v1 --prompt "a red fox" \
        --size 64x64 --seed 3 --steps 4 --out /tmp/fox

writes /tmp/fox/0.png, 1.png … (one per image) and prints the answer's seed. ParaDiT's extension
fields (seed, num_inference_steps, guidance_scale, negative_prompt, class_label) travel in
extra_body, as the client sends any field it does not know. With --response-format url the PNGs
are fetched from the URLs the server returns. The serve tests run this script (`openai` from pip).
"""
import argparse
import base64
import json
import os
import sys
import urllib.request


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-url", required=True)
    p.add_argument("--prompt", required=True)
    p.add_argument("--model", default="paradit")
    p.add_argument("--size")
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--response-format", default="b64_json", choices=["b64_json", "url"])
    p.add_argument("--seed", type=int)
    p.add_argument("--steps", type=int)
    p.add_argument("--guidance", type=float)
    p.add_argument("--negative-prompt")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    try:
        import openai
    except ImportError:
        sys.exit("the openai package is missing: pip install openai (tools/install-deps does)")
    extra = {"seed": a.seed, "num_inference_steps": a.steps, "guidance_scale": a.guidance,
             "negative_prompt": a.negative_prompt}
    client = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=600)
    kwargs = {"size": a.size} if a.size else {}
    answer = client.images.generate(model=a.model, prompt=a.prompt, n=a.n, response_format=a.response_format,
                                    extra_body={k: v for k, v in extra.items() if v is not None}, **kwargs)
    os.makedirs(a.out, exist_ok=True)
    for i, image in enumerate(answer.data):
        png = base64.b64decode(image.b64_json) if a.response_format == "b64_json" else \
            urllib.request.urlopen(image.url, timeout=60).read()
        with open(os.path.join(a.out, f"{i}.png"), "wb") as f:
            f.write(png)
    print(json.dumps({"images": len(answer.data), "seed": getattr(answer, "seed", None)}))


if __name__ == "__main__":
    main()
