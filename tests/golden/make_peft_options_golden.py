#!/usr/bin/env python3
"""PEFT adapters with the options clora honours beyond plain targets:
layers_to_transform / layers_pattern, bias "lora_only" and "all", folders
holding several named adapters, and add_weighted_adapter's "linear" and
"cat" combinations. Run it once per PEFT version (tests/compat/env.sh or
tools/minilm/peft_env.sh make the environments):

    VENV/bin/python tests/golden/make_peft_options_golden.py

It writes, for the running PEFT version V (062 for 0.6.2, 0212 for 0.21.2):
    peft_options/V/<case>/          the adapter folders, as PEFT saved them
    peft_options_V.txt              logits (and gradients) for each case

The base is tests/golden/tiny_gpt2 (GPT-2, 2 blocks, width 32, vocabulary
50). Every lora_A and lora_B is random, and so is every bias a case trains,
so each tensor in a file changes the logits.
"""
import json
import os
import shutil
import sys

import peft
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
VERSION = "".join(peft.__version__.split(".")[:3])  # 0.6.2 -> 062
OUT = os.path.join(HERE, "peft_options", VERSION)
NEW_PEFT = tuple(int(x) for x in peft.__version__.split(".")[:2]) >= (0, 7)
TOKENS = torch.tensor([[1, 5, 9, 20, 33, 49, 2, 7]])


def base():
    model = GPT2LMHeadModel.from_pretrained(os.path.join(HERE, "tiny_gpt2"))
    model.eval()
    return model


def randomise(model, seed, biases=()):
    """Random lora_A/lora_B; and biases whose names end with one of `biases`."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
            elif name.endswith(".bias") and any(b in name for b in biases):
                p.add_(torch.randn(p.shape, generator=gen) * 0.2)


def save(model, name, **kwargs):
    path = os.path.join(OUT, name)
    shutil.rmtree(path, ignore_errors=True)
    model.save_pretrained(path, safe_serialization=True, **kwargs)
    for root, _, files in os.walk(path):
        for f in files:
            if f == "README.md":
                os.remove(os.path.join(root, f))
            if f == "adapter_config.json":  # no path of this machine in the files
                config_path = os.path.join(root, f)
                with open(config_path) as fp:
                    config = json.load(fp)
                config["base_model_name_or_path"] = "tiny_gpt2"
                if isinstance(config.get("target_modules"), list):  # a set: no order
                    config["target_modules"] = sorted(config["target_modules"])
                with open(config_path, "w") as fp:
                    json.dump(config, fp, indent=2, sort_keys=True)
    return path


def logits(model):
    with torch.no_grad():
        return model(input_ids=TOKENS).logits


def clora_name(name):
    """PEFT's parameter name -> clora's."""
    name = name.replace("base_model.model.", "", 1)
    if not NEW_PEFT and name.endswith(".bias"):  # 0.6.2: a LoRA layer is its Linear
        for target in ("c_attn", "c_fc", "attn.c_proj", "mlp.c_proj"):
            if name.endswith(target + ".bias"):
                name = name[: -len(".bias")] + ".base_layer.bias"
    return name


def with_grads(model, tensors):
    """Gradients of sum(G * logits) for every trainable parameter."""
    model.zero_grad()
    y = model(input_ids=TOKENS).logits
    g = torch.randn(y.shape, generator=torch.Generator().manual_seed(99))
    (y * g).sum().backward()
    tensors["g"] = g
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = "d:" + clora_name(name)
            assert len(key) < 64, key
            tensors[key] = p.grad.detach().clone()
    model.zero_grad()


def layers_cases():
    cases = []
    for name, kwargs in [
        ("layers_pattern", dict(layers_to_transform=[1], layers_pattern="h")),
        ("layers_int", dict(layers_to_transform=0)),
    ]:
        model = get_peft_model(base(), LoraConfig(r=2, lora_alpha=4,
                                                  target_modules=["c_attn", "c_fc"],
                                                  fan_in_fan_out=True, **kwargs))
        randomise(model, 1)
        save(model, name)
        cases.append((name, {"tokens": TOKENS.float(), "logits": logits(model)}))
    return cases


def bias_cases():
    cases = []
    for mode in ("lora_only", "all"):
        model = get_peft_model(base(), LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"],
                                                  fan_in_fan_out=True, bias=mode))
        randomise(model, 2, biases=("",))  # every bias moves: a saved one must be used
        name = "bias_" + mode
        save(model, name)
        # what PEFT loads back: the biases the mode saves, the rest as before
        loaded = PeftModel.from_pretrained(base(), os.path.join(OUT, name))
        loaded.eval()
        tensors = {"tokens": TOKENS.float(), "logits": logits(loaded)}
        if NEW_PEFT:
            loaded_train = PeftModel.from_pretrained(base(), os.path.join(OUT, name),
                                                     is_trainable=True)
            loaded_train.eval()
            with_grads(loaded_train, tensors)
        cases.append((name, tensors))
    return cases


def bert_bias_case():
    """bias "all" with a module to save: PEFT lists the head's bias three
    times (its own, and its trained and original copies')."""
    from make_transformer_golden import BertMeanClassifier
    from transformers import BertModel

    base_bert = BertModel.from_pretrained(os.path.join(HERE, "tiny_bert"))
    model = BertMeanClassifier(base_bert.config, 3)
    model.load_state_dict(base_bert.state_dict(), strict=False)
    model.eval()
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        model.classifier.weight.copy_(torch.randn(model.classifier.weight.shape, generator=gen))
        model.classifier.bias.copy_(torch.randn(model.classifier.bias.shape, generator=gen))
    peft_model = get_peft_model(model, LoraConfig(r=2, lora_alpha=4,
                                                  target_modules=["query", "value"],
                                                  modules_to_save=["classifier"], bias="all"))
    randomise(peft_model, 5, biases=("",))
    save(peft_model, "bert_bias_all")
    ids = torch.tensor([[2, 7, 11, 30, 41, 5, 3]])
    mask = torch.ones_like(ids)
    types = torch.tensor([[0, 0, 0, 1, 1, 1, 1]])
    with torch.no_grad():
        logits, _ = peft_model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    return [("bert_bias_all", {"tokens": ids.float(), "types": types.float(), "logits": logits})]


def multi_case():
    model = get_peft_model(base(), LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"],
                                              fan_in_fan_out=True))
    model.add_adapter("other", LoraConfig(r=4, lora_alpha=2, target_modules=["c_fc", "c_proj"],
                                          fan_in_fan_out=True))
    randomise(model, 3)
    save(model, "multi")
    tensors = {"tokens": TOKENS.float()}
    for adapter in ("default", "other"):
        model.set_adapter(adapter)
        tensors["logits_" + adapter] = logits(model)
    return [("multi", tensors)]


def combine_cases():
    """Adapters "default" (c_attn, r 2, alpha 4) and "second" (c_attn and
    c_fc, r 2, alpha 8), combined 0.7 / 0.3."""
    model = get_peft_model(base(), LoraConfig(r=2, lora_alpha=4, target_modules=["c_attn"],
                                              fan_in_fan_out=True))
    model.add_adapter("second", LoraConfig(r=2, lora_alpha=8, target_modules=["c_attn", "c_fc"],
                                           fan_in_fan_out=True))
    randomise(model, 4)
    save(model, "combine")
    tensors = {"tokens": TOKENS.float()}
    # PEFT 0.6.2 computes "linear" otherwise (A ← Σ wᵢsᵢAᵢ, B ← ΣBᵢ);
    # clora follows the newer rule, so only "cat" is compared there.
    kinds = ("linear", "cat") if NEW_PEFT else ("cat",)
    for kind in kinds:
        model.add_weighted_adapter(["default", "second"], [0.7, 0.3], "mix_" + kind,
                                   combination_type=kind)
        model.set_adapter("mix_" + kind)
        tensors["logits_" + kind] = logits(model)
    return [("combine", tensors)]


def main():
    sys.path.insert(0, HERE)
    from make_golden import case_text

    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    cases = layers_cases() + bias_cases() + bert_bias_case() + multi_case() + combine_cases()
    path = os.path.join(HERE, "peft_options_%s.txt" % VERSION)
    with open(path, "w") as f:
        f.write("# PEFT %s, transformers adapters on tiny_gpt2: "
                "tests/golden/make_peft_options_golden.py\n" % peft.__version__)
        for name, tensors in cases:
            f.write(case_text(name, {"peft": peft.__version__}, tensors))
    print("wrote", path, "and", OUT)


if __name__ == "__main__":
    main()
