#!/usr/bin/env python3
"""Turns a Llama-family GGUF file into a Hugging Face folder (config.json and
model.safetensors in float32) with the `gguf` package's own dequantization,
so that transformers' LlamaForCausalLM can run the same weights clora does.

    gguf_to_hf.py MODEL.gguf OUT_DIR

Names follow llama.cpp's converter backwards (blk.N.attn_q -> model.layers.N.
self_attn.q_proj, ...), and the rows of the Q and K projections of "llama"
files are put back from llama.cpp's rotary order into Hugging Face's: within
each head of D rows, the file's row 2i + s is Hugging Face's row s*D/2 + i.
"""
import json
import os
import sys

import numpy as np
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.torch import save_file

PARTS = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight", "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}


def field(reader, key, default=None):
    f = reader.fields.get(key)
    if f is None:
        return default
    value = f.parts[f.data[0]]
    if f.types[0].name == "STRING":
        return bytes(value).decode()
    return value.tolist()[0]


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, rest = name.split(".", 2)
    return "model.layers.%s.%s" % (layer, PARTS[rest])


def unpermute(w, heads):
    rows = w.shape[0]
    d = rows // heads
    return w.reshape(heads, d // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main():
    path, out = sys.argv[1], sys.argv[2]
    reader = GGUFReader(path)
    arch = field(reader, "general.architecture")
    assert arch in ("llama", "qwen2"), arch
    heads = field(reader, arch + ".attention.head_count")
    kv_heads = field(reader, arch + ".attention.head_count_kv", heads)
    hidden = field(reader, arch + ".embedding_length")
    tensors = {}
    for t in reader.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(x) for x in reversed(t.shape.tolist())]
        w = w.reshape(shape)
        name = hf_name(t.name)
        if arch == "llama" and ".q_proj." in name:
            w = unpermute(w, heads)
        elif arch == "llama" and ".k_proj." in name:
            w = unpermute(w, kv_heads)
        tensors[name] = torch.from_numpy(np.ascontiguousarray(w))
    vocab = tensors["model.embed_tokens.weight"].shape[0]
    config = {
        "architectures": ["LlamaForCausalLM" if arch == "llama" else "Qwen2ForCausalLM"],
        "model_type": arch,
        "vocab_size": vocab,
        "hidden_size": hidden,
        "intermediate_size": field(reader, arch + ".feed_forward_length"),
        "num_hidden_layers": field(reader, arch + ".block_count"),
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": field(reader, arch + ".attention.key_length", hidden // heads),
        "max_position_embeddings": field(reader, arch + ".context_length", 2048),
        "rms_norm_eps": field(reader, arch + ".attention.layer_norm_rms_epsilon", 1e-5),
        "rope_theta": field(reader, arch + ".rope.freq_base", 10000.0),
        "tie_word_embeddings": "lm_head.weight" not in tensors,
        "hidden_act": "silu",
        "torch_dtype": "float32",
        "bos_token_id": field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": field(reader, "tokenizer.ggml.eos_token_id"),
    }
    os.makedirs(out, exist_ok=True)
    save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    print("wrote %s: %d tensors, %s" % (out, len(tensors), arch))


if __name__ == "__main__":
    main()
