#!/usr/bin/env python3
"""Writes tiny Llama-family GGUF files with the `gguf` package, in every
tensor type clora reads, and the logits transformers computes from the
weights the `gguf` package dequantizes, for tests/test_llama.c.

Runs in the environment of make_llama_golden.py (tools/llama/hf_env.sh):

    /tmp/hfenv/bin/python tests/golden/make_llama_gguf_golden.py

Writes (about 1 MB in all):
    gguf_llama/llama-<TYPE>.gguf   a 2-layer "llama" model (GQA, tied embedding)
                                   with every matrix in TYPE: F32, F16, BF16,
                                   Q8_0, Q4_0, Q4_1 (quantized by the package);
                                   Q and K rows in llama.cpp's rotary order, as
                                   its converter writes them
    gguf_llama/qwen2-kquants.gguf  a 1-layer "qwen2" model 256 wide (q/k/v
                                   biases, untied output) with its matrices in
                                   Q4_K, Q5_K and Q6_K (random blocks with sane
                                   scales: the package cannot quantize K-quants)
                                   and the embedding in Q8_0
    llama_gguf_reference.txt       ids and the reference logits of each file
"""
import os
import shutil
import sys

import numpy as np
import torch
from gguf import GGMLQuantizationType as Q
from gguf import GGUFWriter
from gguf.quants import dequantize, quantize
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gguf_llama")
sys.path.insert(0, HERE)
from make_llama_golden import spread  # noqa: E402

NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight", "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight", "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight", "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(hf):
    if hf == "model.embed_tokens.weight":
        return "token_embd.weight"
    if hf == "model.norm.weight":
        return "output_norm.weight"
    if hf == "lm_head.weight":
        return "output.weight"
    _, _, layer, rest = hf.split(".", 3)
    return "blk.%s.%s" % (layer, NAMES[rest])


def permute(w, heads):
    """llama.cpp's converter: Hugging Face row s*D/2 + i of a head -> row 2i + s."""
    return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(
        w.shape)


def unpermute(w, heads):
    return w.reshape(heads, w.shape[0] // heads // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(
        w.shape)


def random_kquant(rows, cols, qtype, rng):
    """Random K-quant blocks (rows, cols / 256 blocks) with small f16 scales."""
    size = {Q.Q4_K: 144, Q.Q5_K: 176, Q.Q6_K: 210}[qtype]
    blocks = rng.integers(0, 256, size=(rows, cols // 256, size), dtype=np.uint8)
    if qtype == Q.Q6_K:  # ql, qh, int8 scales, then d
        d = rng.uniform(0.0005, 0.002, size=(rows, cols // 256)).astype(np.float16)
        blocks[:, :, 208:210] = d.view(np.uint8).reshape(rows, cols // 256, 2)
    else:  # d, dmin, then scales and quants
        d = rng.uniform(0.0005, 0.002, size=(rows, cols // 256)).astype(np.float16)
        dmin = rng.uniform(0.0005, 0.002, size=(rows, cols // 256)).astype(np.float16)
        blocks[:, :, 0:2] = d.view(np.uint8).reshape(rows, cols // 256, 2)
        blocks[:, :, 2:4] = dmin.view(np.uint8).reshape(rows, cols // 256, 2)
    return blocks.reshape(rows, -1)


def stored(w, qtype):
    """(bytes or floats to write, the float32 values the file then holds)."""
    if qtype == Q.F32:
        return w, w
    if qtype == Q.F16:
        h = w.astype(np.float16)
        return h, h.astype(np.float32)
    data = quantize(w, qtype)
    return data, dequantize(data, qtype).reshape(w.shape).astype(np.float32)


def rope_freqs(config):
    """The divisors llama.cpp's converter writes for llama3 rope scaling."""
    import math
    r = config.rope_scaling
    dim = config.hidden_size // config.num_attention_heads
    freqs = 1.0 / (config.rope_theta ** (np.arange(0, dim, 2, dtype=np.float32) / dim))
    low = r["original_max_position_embeddings"] / r["low_freq_factor"]
    high = r["original_max_position_embeddings"] / r["high_freq_factor"]
    out = []
    for f in freqs:
        wavelen = 2 * math.pi / f
        if wavelen < high:
            out.append(1.0)
        elif wavelen > low:
            out.append(r["factor"])
        else:
            smooth = ((r["original_max_position_embeddings"] / wavelen - r["low_freq_factor"])
                      / (r["high_freq_factor"] - r["low_freq_factor"]))
            out.append(1.0 / ((1 - smooth) / r["factor"] + smooth))
    return np.array(out, dtype=np.float32)


def write(path, arch, config, tensors, types, heads, kv_heads, extra=None):
    """Writes the model's tensors (Hugging Face names, float32) as a GGUF file;
    types[name] is each tensor's type or raw K-quant bytes. Returns the
    float32 state dict the file holds, in Hugging Face's layout."""
    w = GGUFWriter(path, arch)
    w.add_block_count(config.num_hidden_layers)
    w.add_context_length(config.max_position_embeddings)
    w.add_embedding_length(config.hidden_size)
    w.add_feed_forward_length(config.intermediate_size)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(config.rms_norm_eps)
    w.add_rope_freq_base(config.rope_theta)
    w.add_rope_dimension_count(config.hidden_size // heads)
    for name, value in (extra or {}).items():
        w.add_tensor(name, value)
    held = {}
    for name, value in tensors.items():
        value = value.numpy().astype(np.float32)
        perm = arch == "llama" and (".q_proj." in name or ".k_proj." in name)
        h = heads if ".q_proj." in name else kv_heads
        if perm:
            value = permute(value, h)
        kind = types.get(name, Q.F32)
        if isinstance(kind, np.ndarray):  # raw K-quant blocks
            qtype = types[name + "#type"]
            w.add_tensor(gguf_name(name), kind, raw_dtype=qtype)
            values = dequantize(kind, qtype).reshape(value.shape).astype(np.float32)
        elif kind == Q.BF16:
            data = quantize(value, Q.BF16)
            w.add_tensor(gguf_name(name), data, raw_dtype=Q.BF16)
            values = dequantize(data, Q.BF16).reshape(value.shape).astype(np.float32)
        elif kind in (Q.F32, Q.F16):
            data, values = stored(value, kind)
            w.add_tensor(gguf_name(name), data)
        else:
            data, values = stored(value, kind)
            w.add_tensor(gguf_name(name), data, raw_dtype=kind)
        held[name] = torch.from_numpy(unpermute(values, h) if perm else values)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return held


def logits_of(model_class, config, held, ids):
    model = model_class(config).eval()
    missing, unexpected = model.load_state_dict(held, strict=False)
    assert not unexpected and all("lm_head" in m for m in missing), (missing, unexpected)
    with torch.no_grad():
        return model(input_ids=ids).logits


def main():
    from make_golden import case_text
    import transformers
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    params = {"torch": torch.__version__, "transformers": transformers.__version__}
    text = ["# Generated by tests/golden/make_llama_gguf_golden.py; do not edit.\n"]

    torch.manual_seed(60)
    config = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                         max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    spread(model, 0.15)
    tensors = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    ids = torch.randint(0, 50, (1, 9))
    for qtype in (Q.F32, Q.F16, Q.BF16, Q.Q8_0, Q.Q4_0, Q.Q4_1):
        types = {k: qtype for k, v in tensors.items() if v.dim() == 2}
        path = os.path.join(OUT, "llama-%s.gguf" % qtype.name)
        held = write(path, "llama", config, tensors, types, 4, 2)
        logits = logits_of(LlamaForCausalLM, config, held, ids)
        text.append(case_text("llama-" + qtype.name, params,
                              {"ids": ids.float(), "logits": logits}))

    # Llama 3.1's rope scaling: transformers computes it from rope_scaling,
    # the GGUF file carries llama.cpp's divisors of each frequency
    torch.manual_seed(62)
    config = LlamaConfig(vocab_size=50, hidden_size=64, intermediate_size=96,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         rms_norm_eps=1e-5, rope_theta=500.0, tie_word_embeddings=True,
                         max_position_embeddings=64,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 16})
    model = LlamaForCausalLM(config)
    spread(model, 0.15)
    tensors = {k: v for k, v in model.state_dict().items() if k != "lm_head.weight"}
    types = {k: Q.Q8_0 for k, v in tensors.items() if v.dim() == 2}
    ids = torch.randint(0, 50, (1, 31))
    held = write(os.path.join(OUT, "llama3-rope-freqs.gguf"), "llama", config, tensors, types, 4,
                 2, extra={"rope_freqs.weight": rope_freqs(config)})
    logits = logits_of(LlamaForCausalLM, config, held, ids)
    text.append(case_text("llama3-rope-freqs", params, {"ids": ids.float(), "logits": logits}))

    torch.manual_seed(61)
    rng = np.random.default_rng(61)
    config = Qwen2Config(vocab_size=40, hidden_size=256, intermediate_size=256,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
                         rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
                         max_position_embeddings=64, use_sliding_window=False)
    model = Qwen2ForCausalLM(config)
    spread(model, 0.05)
    tensors = dict(model.state_dict())
    kinds = [Q.Q4_K, Q.Q5_K, Q.Q6_K]
    types = {}
    matrices = [k for k, v in tensors.items() if v.dim() == 2 and "embed" not in k]
    for i, name in enumerate(matrices):
        rows, cols = tensors[name].shape
        types[name] = random_kquant(rows, cols, kinds[i % 3], rng)
        types[name + "#type"] = kinds[i % 3]
    types["model.embed_tokens.weight"] = Q.Q8_0
    ids = torch.randint(0, 40, (1, 7))
    held = write(os.path.join(OUT, "qwen2-kquants.gguf"), "qwen2", config, tensors, types, 4, 2)
    logits = logits_of(Qwen2ForCausalLM, config, held, ids)
    text.append(case_text("qwen2-kquants", params, {"ids": ids.float(), "logits": logits}))
    with open(os.path.join(HERE, "llama_gguf_reference.txt"), "w") as f:
        f.write("".join(text))
    print("wrote gguf_llama/ and llama_gguf_reference.txt")


if __name__ == "__main__":
    main()
