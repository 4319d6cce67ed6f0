#!/usr/bin/env python3
"""Writes tiny BERT folders with transformers' own heads, PEFT adapters on
them, and what transformers and PEFT compute, for tests/test_bert_heads.c.

Run it with the newest PEFT first (it makes the base folders), then with
PEFT 0.6.2 (it adds that version's adapters on the same folders):

    /work/venvs/peft0212/bin/python tests/golden/make_bert_heads_golden.py
    /work/venvs/peft062/bin/python tests/golden/make_bert_heads_golden.py

Writes (small enough to commit):
    tiny_bert_seqcls/    BertForSequenceClassification, 3 labels (keys under
                         "bert.", its pooler, "classifier", id2label)
    tiny_bert_pooled/    BertModel with its pooler (pooler.dense.*)
    tiny_bert_seqcls_lora[_062]/  task SEQ_CLS, LoRA r 4 alpha 8 on query and
                         value, "classifier" trained in full (modules_to_save)
    tiny_bert_pooled_lora[_062]/  LoRA r 4 alpha 8 on every Linear of the
                         BertModel, pooler.dense included (PEFT 0.21:
                         target_modules "all-linear"; 0.6.2, which has no
                         all-linear: query, key, value, dense)
    bert_heads_reference[_062].txt

The pooler head is transformers' own: tanh(pooler.dense(h[:, 0])), then
(BertForSequenceClassification) dropout and "classifier". Each case runs in
eval mode on a (2, 7) batch whose second row ends in two padding tokens,
takes loss = sum(output * G) for a fixed random G, and records the gradient
of every trainable parameter; lora_B and the classifier are drawn non-zero
so that each matters. Each adapter is loaded back with
PeftModel.from_pretrained and must give the same output.

    --check DIR   loads an adapter clora saved (clora train on one of the
                  folders above) in PEFT: every tensor of the file must be
                  one PEFT itself saves for that model, under PEFT's key,
                  and PEFT's output on the golden batch must equal the one
                  clora wrote beside it (DIR/clora_output.txt, one value a
                  line, as `clora logits` prints them). Prints the largest
                  difference; exits 1 on any mismatch.
"""
import argparse
import json
import os
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import BertConfig, BertForSequenceClassification, BertModel

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_transformer_golden import (batch, randomise_lora, save_adapter,  # noqa: E402
                                     save_model, spread)

LABELS = 3


def config():
    return BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                      num_labels=LABELS, id2label={0: "neg", 1: "mid", 2: "pos"},
                      label2id={"neg": 0, "mid": 1, "pos": 2})


def make_folders():
    """The two base folders, from configs and a fixed seed."""
    torch.manual_seed(70)
    seqcls = BertForSequenceClassification(config())
    spread(seqcls, 0.2)
    save_model(seqcls.eval(), "tiny_bert_seqcls")
    torch.manual_seed(71)
    pooled = BertModel(config())  # add_pooling_layer=True: the pooler is saved
    spread(pooled, 0.2)
    save_model(pooled.eval(), "tiny_bert_pooled")


def load_base(name):
    path = os.path.join(HERE, name)
    cls = BertForSequenceClassification if name == "tiny_bert_seqcls" else BertModel
    return cls.from_pretrained(path).eval()


def output(model, ids, mask):
    out = model(input_ids=ids, attention_mask=mask)
    return out.logits if hasattr(out, "logits") else out.pooler_output


def inputs():
    torch.manual_seed(72)
    return batch(60)


def grads(model):
    """Every trainable parameter's gradient, keyed "d:" + its module path and
    parameter without PEFT's adapter name ("...query.lora_A.weight")."""
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = name.replace("base_model.model.", "", 1).replace(".modules_to_save.default", "")
            key = "d:" + key.replace(".default.", ".")
            assert len(key) < 64, key
            out[key] = p.grad.detach().clone()
    return out


def case(base_name, lora, adapter_name):
    ids, mask = inputs()
    base = load_base(base_name)
    with torch.no_grad():
        plain = output(base, ids, mask)
    peft_model = get_peft_model(base, lora)
    randomise_lora(peft_model)
    with torch.no_grad():  # the saved head differs from the checkpoint's
        for name, p in peft_model.named_parameters():
            if "modules_to_save" in name:
                p.normal_(0.0, 0.3)
    peft_model.eval()
    out = output(peft_model, ids, mask)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    save_adapter(peft_model, adapter_name)
    config_path = os.path.join(HERE, adapter_name, "adapter_config.json")
    with open(config_path) as f:
        saved = json.load(f)
    saved["base_model_name_or_path"] = base_name  # not this machine's path
    with open(config_path, "w") as f:
        json.dump(saved, f, indent=2, sort_keys=True)
    again = PeftModel.from_pretrained(load_base(base_name), os.path.join(HERE, adapter_name))
    with torch.no_grad():
        reloaded = output(again.eval(), ids, mask)
    assert torch.allclose(reloaded, out, atol=1e-6), "%s does not reload in PEFT" % adapter_name
    tensors = {"ids": ids.float(), "mask": mask.float(), "g": g, "base": plain,
               "output": out.detach()}
    tensors.update(grads(peft_model))
    return tensors


def all_linear(newest):
    return "all-linear" if newest else ["query", "key", "value", "dense"]


def generate():
    import peft
    from make_golden import write_reference
    newest = not peft.__version__.startswith("0.6.")
    suffix = "" if newest else "_062"
    if newest:
        make_folders()
    elif not os.path.isdir(os.path.join(HERE, "tiny_bert_seqcls")):
        sys.exit("run this with the newest PEFT first: it makes the base folders")
    seqcls = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["query", "value"],
                        modules_to_save=["classifier"], lora_dropout=0.0)
    pooled = LoraConfig(r=4, lora_alpha=8, target_modules=all_linear(newest), lora_dropout=0.0)
    torch.manual_seed(73)
    cases = [("seqcls", case("tiny_bert_seqcls", seqcls, "tiny_bert_seqcls_lora" + suffix)),
             ("pooled", case("tiny_bert_pooled", pooled, "tiny_bert_pooled_lora" + suffix))]
    write_reference(os.path.join(HERE, "bert_heads_reference%s.txt" % suffix),
                    "make_bert_heads_golden.py", cases)
    for name in ("tiny_bert_seqcls_lora", "tiny_bert_pooled_lora"):
        with open(os.path.join(HERE, name + suffix, "adapter_config.json")) as f:
            c = json.load(f)
        print("%s%s: target_modules %s, modules_to_save %s" %
              (name, suffix, c["target_modules"], c["modules_to_save"]))


def check(adapter):
    """A clora-saved adapter read by PEFT, as described above."""
    tensors = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    base_name = ("tiny_bert_seqcls" if any(k.startswith("base_model.model.bert.") for k in tensors)
                 else "tiny_bert_pooled")
    model = PeftModel.from_pretrained(load_base(base_name), adapter).eval()
    expected = get_peft_model_state_dict(model)
    failed = 0
    if set(tensors) != set(expected):
        print("keys PEFT does not save: %s" % sorted(set(tensors) - set(expected)))
        print("keys PEFT saves that clora did not: %s" % sorted(set(expected) - set(tensors)))
        failed = 1
    for key in sorted(set(tensors) & set(expected)):
        if not torch.equal(tensors[key], expected[key].cpu()):
            print("%s: PEFT loaded other values" % key)
            failed = 1
    ids, mask = inputs()
    with torch.no_grad():
        out = output(model, ids, mask).flatten()
    with open(os.path.join(adapter, "clora_output.txt")) as f:
        theirs = torch.tensor([float(v) for v in f.read().split()])
    if theirs.numel() != out.numel():
        print("clora wrote %d values, PEFT computes %d" % (theirs.numel(), out.numel()))
        return 1
    diff = (theirs - out).abs().max().item()
    print("%s on %s: %d tensors under PEFT's keys; PEFT vs clora output: max |diff| %.3g"
          % (adapter, base_name, len(tensors), diff))
    return failed or not diff <= 1e-5 + 1e-5 * out.abs().max().item()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", metavar="DIR")
    args = parser.parse_args()
    if args.check:
        sys.exit(check(args.check))
    generate()


if __name__ == "__main__":
    main()
