#!/usr/bin/env python3
"""Writes LoRA adapters on embeddings (PEFT's lora.Embedding) with real PEFT,
and the logits and gradients PyTorch computes with them, for
tests/test_embedding_lora.c.

Run it with the newest PEFT first (it makes the models), then with 0.6.2:

    /work/venvs/peft0212/bin/python tests/golden/make_embedding_lora_golden.py
    /work/venvs/peft062/bin/python tests/golden/make_embedding_lora_golden.py

(any venv over Debian's torch 1.13 with peft 0.21.2 + transformers 4.49.0,
and peft 0.6.2 + transformers 4.35.2; see make_peft_golden.py).

The first run writes (all small enough to commit):
    tiny_gpt2_emb/           GPT2LMHeadModel from a config (lm_head tied to wte)
    tiny_llama_emb/          LlamaForCausalLM, tie_word_embeddings and
                             pad_token_id 0 (embed_tokens has padding_idx 0)
    gpt2_emb_lora/           PEFT 0.21 adapter: wte and c_attn, r 4, alpha 8,
                             fan_in_fan_out (c_attn is a Conv1D)
    llama_emb_lora/          PEFT 0.21 adapter: embed_tokens and q_proj, r 4,
                             alpha 6, use_rslora, rank_pattern {embed_tokens: 2}
    embedding_lora_reference.txt
The second run writes, from the same models and the same LoRA values:
    gpt2_emb_lora_peft062/   the GPT-2 adapter as PEFT 0.6.2 saves it
    embedding_lora_reference_peft062.txt

Every lora_A, lora_B, lora_embedding_A and lora_embedding_B is drawn
non-zero (PEFT starts lora_embedding_A at zero). Each case runs in eval mode
on a (2, 7) batch whose ids repeat (so the gradient of lora_embedding_A sums
several rows) and, for Llama, include the padding id 0; it records the
logits with the adapter, the logits after merge_and_unload (the tied head
then sees the merged table; unmerged it keeps the base one), and the
gradients of every LoRA parameter of loss = sum(logits * G).

    python make_embedding_lora_golden.py --check MODEL_DIR ADAPTER_DIR IDS
prints the logits PEFT computes with an adapter clora saved (IDS: comma
separated token ids of one row).
"""
import json
import os
import shutil
import sys

import peft
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_golden import case_text  # noqa: E402

NEWEST = not peft.__version__.startswith("0.6.")
T = 7


def spread(model, std):
    """Redraws every weight: matrices N(0, std^2), norms around 1, biases small."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln_" in name and name.endswith("weight") or name.endswith("norm.weight"):
                p.uniform_(0.6, 1.4)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, std)


def save_dir(obj, name):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    obj.save_pretrained(out, safe_serialization=True)
    for extra in ("README.md", "generation_config.json"):
        path = os.path.join(out, extra)
        if os.path.exists(path):
            os.remove(path)


def randomise_lora(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.3)


def grads(model):
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = "d:" + name.replace("base_model.model.", "", 1)
            assert len(key) < 64, key
            out[key] = p.grad.detach().clone()
    return out


def gpt2_model():
    torch.manual_seed(60)
    config = GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config)
    spread(model, 0.3)
    return model


def llama_model():
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(61)
    config = LlamaConfig(vocab_size=40, hidden_size=16, intermediate_size=24,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1,
                         rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=True,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         max_position_embeddings=32)
    model = LlamaForCausalLM(config)
    spread(model, 0.3)
    return model


def ids_for(vocab, padding):
    torch.manual_seed(62)
    ids = torch.randint(0 if padding else 1, vocab, (2, T))
    ids[0, 3] = ids[0, 1]  # a repeated id: its gradient sums two rows
    ids[1, 5] = ids[0, 1]
    if padding:
        ids[1, 2] = 0  # the padding id gets no gradient in lora_embedding_A
    return ids


def run_case(model, config, ids, lora_values=None):
    """Logits, merged logits, G and the LoRA gradients; the PEFT model."""
    peft_model = get_peft_model(model, config)
    if lora_values is None:
        randomise_lora(peft_model)
    else:
        peft.set_peft_model_state_dict(peft_model, lora_values)
    peft_model.eval()
    logits = peft_model(input_ids=ids).logits
    torch.manual_seed(63)
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    tensors = {"ids": ids.float(), "g": g, "logits": logits.detach()}
    tensors.update(grads(peft_model))
    return peft_model, tensors


def merged_logits(peft_model, ids):
    with torch.no_grad():
        merged = peft_model.merge_and_unload()
        return merged(input_ids=ids).logits


def newest():
    cases = []
    gpt2 = gpt2_model().eval()
    save_dir(gpt2, "tiny_gpt2_emb")
    ids = ids_for(40, padding=False)
    with torch.no_grad():
        base_logits = gpt2(input_ids=ids).logits
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["wte", "c_attn"],
                        fan_in_fan_out=True, lora_dropout=0.0)
    peft_model, tensors = run_case(gpt2, config, ids)
    save_dir(peft_model, "gpt2_emb_lora")
    tensors["logits_base"] = base_logits
    tensors["logits_merged"] = merged_logits(peft_model, ids)
    cases.append(case_text("gpt2", {"peft_version": peft.__version__}, tensors))

    llama = llama_model().eval()
    save_dir(llama, "tiny_llama_emb")
    ids = ids_for(40, padding=True)
    with torch.no_grad():
        base_logits = llama(input_ids=ids).logits
    config = LoraConfig(r=4, lora_alpha=6, target_modules=["embed_tokens", "q_proj"],
                        use_rslora=True, rank_pattern={"embed_tokens": 2}, lora_dropout=0.0)
    peft_model, tensors = run_case(llama, config, ids)
    save_dir(peft_model, "llama_emb_lora")
    tensors["logits_base"] = base_logits
    tensors["logits_merged"] = merged_logits(peft_model, ids)
    cases.append(case_text("llama", {"peft_version": peft.__version__}, tensors))
    write("embedding_lora_reference.txt", cases)


def peft062():
    """The GPT-2 case again in PEFT 0.6.2, from the files the first run wrote."""
    model = GPT2LMHeadModel.from_pretrained(os.path.join(HERE, "tiny_gpt2_emb")).eval()
    ids = ids_for(40, padding=False)
    with torch.no_grad():
        base_logits = model(input_ids=ids).logits
    values = load_file(os.path.join(HERE, "gpt2_emb_lora", "adapter_model.safetensors"))
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["wte", "c_attn"],
                        fan_in_fan_out=True, lora_dropout=0.0)
    peft_model, tensors = run_case(model, config, ids, values)
    save_dir(peft_model, "gpt2_emb_lora_peft062")
    tensors["logits_base"] = base_logits
    tensors["logits_merged"] = merged_logits(peft_model, ids)
    write("embedding_lora_reference_peft062.txt",
          [case_text("gpt2", {"peft_version": peft.__version__}, tensors)])


def write(name, cases):
    with open(os.path.join(HERE, name), "w") as f:
        f.write("# Generated by tests/golden/make_embedding_lora_golden.py with peft %s; "
                "do not edit.\n" % peft.__version__)
        f.write("".join(cases))
    print("wrote", name)


def check(model_dir, adapter_dir, ids_text):
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    peft_model = PeftModel.from_pretrained(model, adapter_dir).eval()
    ids = torch.tensor([[int(v) for v in ids_text.split(",")]])
    with torch.no_grad():
        logits = peft_model(input_ids=ids).logits
    print(json.dumps(logits.reshape(-1).tolist()))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--check":
        check(sys.argv[2], sys.argv[3], sys.argv[4])
    elif NEWEST:
        newest()
    else:
        peft062()
