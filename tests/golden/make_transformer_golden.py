#!/usr/bin/env python3
"""Writes small random GPT-2 and BERT checkpoints with transformers, LoRA
adapters for them with PEFT, and the logits and LoRA gradients PyTorch
computes, for tests/test_transformer.c.

Runs in the environment described in make_peft_golden.py:

    /tmp/peftenv/bin/python make_transformer_golden.py

Writes (all small enough to commit):
    tiny_gpt2/       config.json + model.safetensors (GPT2LMHeadModel.save_pretrained)
    tiny_gpt2_lora/  PEFT adapter: c_attn, c_proj and c_fc, r 4, alpha 8
    tiny_gpt2_f16/   the same model stored as float16
    tiny_bert/       config.json + model.safetensors (BertModel with its pooler)
    tiny_bert_bf16/  the same model stored as bfloat16
    tiny_bert_lora/  PEFT adapter: query and value, r 4, alpha 8, modules_to_save classifier
    transformer_reference.txt

The BERT classifier is clora's layout for sentence-transformer models: the
BertModel, the mean of the hidden states over the tokens the attention
mask keeps, then a Linear "classifier".

Each case runs in eval mode (no dropout) on a (2, 7) batch whose second
row ends in two padding tokens, takes loss = sum(output * G) for a fixed
random G, and records the gradient of every LoRA parameter (and of the
classifier, which modules_to_save trains). Weights are drawn with a wider
spread than Hugging Face's init and lora_B is drawn non-zero, so that every
part changes the result measurably.
"""
import copy
import os
import shutil
import sys

import torch
from peft import LoraConfig, get_peft_model
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
T = 7


def spread(model, std):
    """Redraws every weight: matrices N(0, std^2), vectors around their init."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("LayerNorm.weight") or ".ln_" in name and name.endswith("weight"):
                p.uniform_(0.6, 1.4)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, std)


def save_model(model, name):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    extra = os.path.join(out, "generation_config.json")
    if os.path.exists(extra):
        os.remove(extra)


def save_adapter(model, name):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def rounded(model, dtype, name):
    """Saves a copy of model stored as dtype; returns a float32 copy whose
    weights are rounded to dtype, the model clora builds from that file."""
    low = copy.deepcopy(model).to(dtype)
    save_model(low, name)
    ref = copy.deepcopy(model)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(dtype).float())
    return ref.eval()


def mean_pool(h, mask):
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1)


def randomise_lora(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name:
                p.normal_(0.0, 0.3)
            elif "lora_B" in name:
                p.normal_(0.0, 0.3)


def clora_name(peft_name):
    """PEFT's parameter name -> clora's."""
    name = peft_name.replace("base_model.model.", "", 1)
    return name.replace(".modules_to_save.default", "")


def grads(model):
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = "d:" + clora_name(name)
            assert len(key) < 64, key
            out[key] = p.grad.detach().clone()
    return out


def batch(vocab):
    ids = torch.randint(1, vocab, (2, T))
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, T - 2:] = 0
    ids[1, T - 2:] = 0
    return ids, mask


def gpt2_case():
    torch.manual_seed(40)
    config = GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4)
    model = GPT2LMHeadModel(config)
    spread(model, 0.2)
    model.eval()
    save_model(model, "tiny_gpt2")
    ids, mask = batch(config.vocab_size)
    with torch.no_grad():
        logits_nomask = model(input_ids=ids).logits
        logits_f16 = rounded(model, torch.float16, "tiny_gpt2_f16")(input_ids=ids).logits
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                      fan_in_fan_out=True, lora_dropout=0.0)
    peft_model = get_peft_model(model, lora)
    randomise_lora(peft_model)
    peft_model.eval()
    logits = peft_model(input_ids=ids, attention_mask=mask).logits
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    save_adapter(peft_model, "tiny_gpt2_lora")
    tensors = {"ids": ids.float(), "mask": mask.float(), "g": g,
               "logits": logits.detach(), "logits_nomask": logits_nomask,
               "logits_f16": logits_f16}
    tensors.update(grads(peft_model))
    return "gpt2", tensors


class BertMeanClassifier(BertModel):
    """BertModel -> masked mean over tokens -> Linear classifier."""

    def __init__(self, config, num_labels):
        super().__init__(config, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(config.hidden_size, num_labels)

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None):
        h = super().forward(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).last_hidden_state
        pooled = mean_pool(h, attention_mask)
        return self.classifier(pooled), pooled


def bert_case():
    torch.manual_seed(41)
    config = BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16, type_vocab_size=2)
    base = BertModel(config)  # with its pooler, which clora skips
    spread(base, 0.2)
    base.eval()
    save_model(base, "tiny_bert")
    ids, mask = batch(config.vocab_size)
    types = torch.zeros(2, T, dtype=torch.long)
    types[0, 4:] = 1
    with torch.no_grad():
        ref = rounded(base, torch.bfloat16, "tiny_bert_bf16")
        h = ref(input_ids=ids, attention_mask=mask, token_type_ids=types).last_hidden_state
        pooled_bf16 = mean_pool(h, mask)
    model = BertMeanClassifier(config, 3)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert missing == ["classifier.weight", "classifier.bias"], missing
    model.eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 0.3)
        model.classifier.bias.normal_(0.0, 0.1)
        _, pooled_base = model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"],
                      modules_to_save=["classifier"], lora_dropout=0.0)
    peft_model = get_peft_model(model, lora)
    randomise_lora(peft_model)
    peft_model.eval()
    logits, _ = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    save_adapter(peft_model, "tiny_bert_lora")
    tensors = {"ids": ids.float(), "mask": mask.float(), "types": types.float(), "g": g,
               "logits": logits.detach(), "pooled_base": pooled_base, "pooled_bf16": pooled_bf16}
    tensors.update(grads(peft_model))
    return "bert", tensors


def main():
    sys.path.insert(0, HERE)
    from make_golden import write_reference

    write_reference(os.path.join(HERE, "transformer_reference.txt"), "make_transformer_golden.py",
                    [make() for make in (gpt2_case, bert_case)])
    print("wrote tiny_gpt2/, tiny_gpt2_lora/, tiny_bert/, tiny_bert_lora/, "
          "transformer_reference.txt")


if __name__ == "__main__":
    main()
