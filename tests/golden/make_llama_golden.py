#!/usr/bin/env python3
"""Writes small random Llama and Qwen2 checkpoints with transformers, PEFT
adapters on every attention and MLP projection, and the logits and LoRA
gradients PyTorch computes, for tests/test_llama.c.

Needs transformers >= 4.37 (Qwen2) on torch 1.13: transformers 4.49.0 and
PEFT 0.21.2 in a venv over Debian's python3-torch (tools/llama/hf_env.sh):

    tools/llama/hf_env.sh /tmp/hfenv
    /tmp/hfenv/bin/python tests/golden/make_llama_golden.py

Writes (all small enough to commit):
    tiny_llama/        LlamaForCausalLM: grouped-query attention (4 query heads,
                       2 key/value heads) with head_dim 10 != hidden / heads,
                       q/k/v/o biases, llama3 rope scaling, untied lm_head
    tiny_llama_bf16/   the same weights stored as bfloat16 in three shards
                       with model.safetensors.index.json
    tiny_llama_lora/   PEFT adapter: q/k/v/o_proj, gate/up/down_proj, r 4, alpha 8
    tiny_qwen2/        Qwen2ForCausalLM: 6 query heads sharing 2 key/value heads,
                       q/k/v biases, tied embeddings
    tiny_qwen2_lora/   the same adapter targets, r 4, alpha 8
    llama_reference.txt

Each case runs in eval mode on a (2, 7) batch whose second row ends in two
padding tokens, takes loss = sum(logits * G) for a fixed random G, and
records the gradient of every LoRA parameter.
"""
import os
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_transformer_golden import (batch, grads, randomise_lora, rounded,  # noqa: E402
                                     save_adapter, save_model)

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def spread(model, std):
    """Redraws every weight: matrices N(0, std^2), norms around 1, biases small."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.uniform_(0.6, 1.4)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, std)


def with_adapter(model, name, ids, mask):
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, lora_dropout=0.0)
    peft_model = get_peft_model(model, lora)
    randomise_lora(peft_model)
    peft_model.eval()
    logits = peft_model(input_ids=ids, attention_mask=mask).logits
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    save_adapter(peft_model, name)
    return logits.detach(), g, grads(peft_model)


def llama_case():
    torch.manual_seed(50)
    config = LlamaConfig(vocab_size=50, hidden_size=24, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         head_dim=10, rms_norm_eps=1e-5, rope_theta=500.0,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                       "original_max_position_embeddings": 8},
                         attention_bias=True, tie_word_embeddings=False,
                         max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    spread(model, 0.2)
    model.eval()
    save_model(model, "tiny_llama")
    ids, mask = batch(config.vocab_size)
    with torch.no_grad():
        logits_nomask = model(input_ids=ids).logits
        low = rounded(model, torch.bfloat16, "tiny_llama_bf16")
        logits_bf16 = low(input_ids=ids).logits
    # the bfloat16 copy again, in shards
    low_model = LlamaForCausalLM(config).to(torch.bfloat16)
    low_model.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
    out = os.path.join(HERE, "tiny_llama_bf16")
    import shutil
    shutil.rmtree(out, ignore_errors=True)
    low_model.save_pretrained(out, safe_serialization=True, max_shard_size="12KB")
    extra = os.path.join(out, "generation_config.json")
    if os.path.exists(extra):
        os.remove(extra)
    assert os.path.exists(os.path.join(out, "model.safetensors.index.json"))
    logits, g, d = with_adapter(model, "tiny_llama_lora", ids, mask)
    tensors = {"ids": ids.float(), "mask": mask.float(), "g": g, "logits": logits,
               "logits_nomask": logits_nomask, "logits_bf16": logits_bf16}
    tensors.update(d)
    return "llama", tensors


def qwen2_case():
    torch.manual_seed(51)
    config = Qwen2Config(vocab_size=50, hidden_size=24, intermediate_size=40,
                         num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2,
                         rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
                         max_position_embeddings=64, use_sliding_window=False)
    model = Qwen2ForCausalLM(config)
    spread(model, 0.2)
    model.eval()
    save_model(model, "tiny_qwen2")
    ids, mask = batch(config.vocab_size)
    with torch.no_grad():
        logits_nomask = model(input_ids=ids).logits
    logits, g, d = with_adapter(model, "tiny_qwen2_lora", ids, mask)
    tensors = {"ids": ids.float(), "mask": mask.float(), "g": g, "logits": logits,
               "logits_nomask": logits_nomask}
    tensors.update(d)
    return "qwen2", tensors


def main():
    from make_golden import write_reference

    write_reference(os.path.join(HERE, "llama_reference.txt"), "make_llama_golden.py",
                    [make() for make in (llama_case, qwen2_case)])
    print("wrote tiny_llama/, tiny_llama_bf16/, tiny_llama_lora/, tiny_qwen2/, "
          "tiny_qwen2_lora/, llama_reference.txt")


if __name__ == "__main__":
    main()
