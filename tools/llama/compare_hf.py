#!/usr/bin/env python3
"""clora's logits and greedy tokens against transformers on the same folder:

    compare_hf.py HF_DIR PROMPT_IDS CLORA_LOGITS.safetensors CLORA_GENERATED_IDS

Fails (exit 1) unless max |logits difference| <= 1e-3 * max |logit| and the
greedy continuations agree token for token (up to and with EOS).
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    folder, prompt, logits_path, generated = sys.argv[1:5]
    ids = [int(x) for x in prompt.split(",")]
    want_new = [int(x) for x in generated.split(",")] if generated else []
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    eos = model.config.eos_token_id
    new = []
    with torch.no_grad():  # greedy with the model's own cache (generate() needs torch >= 2)
        result = model(torch.tensor([ids]), use_cache=True)
        ref = result.logits[0]
        past, logits = result.past_key_values, result.logits[0, -1]
        while len(new) < len(want_new):
            token = int(logits.argmax())
            new.append(token)
            if token == eos:
                break
            result = model(torch.tensor([[token]]), past_key_values=past, use_cache=True)
            past, logits = result.past_key_values, result.logits[0, -1]
    got = load_file(logits_path)["logits"]
    diff = (ref - got).abs().max().item()
    scale = ref.abs().max().item()
    ok_logits = diff <= 1e-3 * scale
    ok_tokens = new == want_new
    print("logits: %d positions x %d, max |diff| %.3g, logit scale %.3g (%.2g of it): %s"
          % (ref.shape[0], ref.shape[1], diff, scale, diff / scale, "ok" if ok_logits else "FAIL"))
    print("greedy: %d tokens from clora, %d from transformers, %s"
          % (len(want_new), len(new), "identical" if ok_tokens else "DIFFERENT"))
    if not ok_tokens:
        print("  clora:        ", want_new)
        print("  transformers: ", new)
    sys.exit(0 if ok_logits and ok_tokens else 1)


if __name__ == "__main__":
    main()
