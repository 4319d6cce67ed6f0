#!/usr/bin/env python3
"""The companion of `clora bench --llama`: the same model in PyTorch and
transformers (LlamaForCausalLM, float32, eval, no gradients), with the same
number of threads, measuring what clora measures:

    prefill   a 256-token prompt in one forward with the key/value cache on
    decode    one new token at T = 256 from the cache (past_key_values)
    recompute the same token by a forward over all 256 tokens

    torch_generate_bench.py HF_DIR [--threads N] [--reps K]

HF_DIR is a Hugging Face folder; for a GGUF file make one with
tools/llama/gguf_to_hf.py, so both sides run the same float32 weights.
Prints one line per measurement: median ms and tokens/s.
"""
import argparse
import os
import statistics
import time

import torch
from transformers import AutoModelForCausalLM

PROMPT = 256


def median_ms(fn, reps, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("model")
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--reps", type=int, default=5)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    model = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32).eval()
    g = torch.Generator().manual_seed(12)
    ids = torch.randint(0, model.config.vocab_size, (1, PROMPT + 1), generator=g)
    print("torch %s, %d threads, %s" % (torch.__version__, torch.get_num_threads(), a.model))
    with torch.no_grad():
        prefill = median_ms(lambda: model(ids[:, :PROMPT], use_cache=True), max(1, a.reps // 2))
        past = model(ids[:, :PROMPT], use_cache=True).past_key_values

        def one_step():
            # each step extends a copy of the 256-token cache by one token
            import copy
            cache = copy.deepcopy(past)
            t = time.perf_counter()
            model(ids[:, PROMPT:PROMPT + 1], past_key_values=cache, use_cache=True)
            return (time.perf_counter() - t) * 1e3

        for _ in range(2):
            one_step()
        decode = statistics.median(one_step() for _ in range(a.reps))
        recompute = median_ms(lambda: model(ids[:, :PROMPT], use_cache=False).logits[:, -1],
                              a.reps)
    print("torch_prefill   T=%d  %10.1f ms  %8.1f tokens/s" % (PROMPT, prefill,
                                                               PROMPT / prefill * 1e3))
    print("torch_decode    T=%d  %10.2f ms  %8.1f tokens/s" % (PROMPT, decode, 1e3 / decode))
    print("torch_recompute T=%d  %10.1f ms  %8.2f tokens/s  (cache %.1fx faster)"
          % (PROMPT, recompute, 1e3 / recompute, recompute / decode))


if __name__ == "__main__":
    main()
