#!/usr/bin/env python3
"""Writes PEFT adapters for transformers' sequence classifiers on the small
decoders of make_transformer_golden.py and make_llama_golden.py, and the
logits and gradients PyTorch computes, for tests/test_classifier.c.

Needs transformers 4.49.0 and PEFT 0.21.2 over Debian's python3-torch
(tools/llama/hf_env.sh):

    tools/llama/hf_env.sh /tmp/hfenv
    /tmp/hfenv/bin/python tests/golden/make_classifier_golden.py

Writes:
    tiny_llama_cls_lora/  LlamaForSequenceClassification (3 labels) on tiny_llama:
                          PEFT task SEQ_CLS, LoRA r 4 alpha 8 on q_proj and v_proj,
                          "score" trained in full (modules_to_save)
    tiny_gpt2_cls_lora/   GPT2ForSequenceClassification (2 labels) on tiny_gpt2: LoRA
                          r 4 alpha 8 on c_attn and on the head "score" itself, whose
                          frozen random weight the adapter carries as
                          score.base_layer.weight
    classifier_reference.txt

Each case runs in eval mode on a (2, 7) batch whose second row ends in two
padding tokens (id 0, the config's pad_token_id, used nowhere else), takes
loss = sum(logits * G) for a fixed random G, and records the gradient of
every trainable parameter. Each adapter is loaded back with
PeftModel.from_pretrained onto a head drawn from another seed, and must
give the same logits: PEFT loads score.base_layer.weight from the file.
"""
import os
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import GPT2ForSequenceClassification, LlamaForSequenceClassification

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_transformer_golden import batch, grads, randomise_lora, save_adapter  # noqa: E402


def run(model, name, lora, ids, mask, carry_head):
    peft_model = get_peft_model(model, lora)
    randomise_lora(peft_model)
    peft_model.eval()
    logits = peft_model(input_ids=ids, attention_mask=mask).logits
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    save_adapter(peft_model, name)
    if carry_head:  # the frozen head the LoRA on "score" builds on
        path = os.path.join(HERE, name, "adapter_model.safetensors")
        tensors = load_file(path)
        base = peft_model.base_model.model.score.base_layer.weight
        tensors["base_model.model.score.base_layer.weight"] = base.detach().clone()
        save_file(tensors, path, metadata={"format": "pt"})
    return logits.detach(), g, grads(peft_model)


def reloaded(cls, folder, labels, name, ids, mask):
    torch.manual_seed(99)  # another head: the adapter must bring its own
    model = cls.from_pretrained(os.path.join(HERE, folder), num_labels=labels, pad_token_id=0)
    model = PeftModel.from_pretrained(model, os.path.join(HERE, name)).eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask).logits


def case(cls, folder, labels, seed, lora, name, carry_head):
    """A classifier of `labels` on the decoder in `folder`, its head drawn
    from N(0, 0.3^2), with the adapter `lora`; checked to reload in PEFT."""
    torch.manual_seed(seed)
    model = cls.from_pretrained(os.path.join(HERE, folder), num_labels=labels, pad_token_id=0)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 0.3)
    ids, mask = batch(model.config.vocab_size)
    logits, g, d = run(model, name, lora, ids, mask, carry_head)
    again = reloaded(cls, folder, labels, name, ids, mask)
    assert torch.allclose(again, logits, atol=1e-6), "%s does not reload in PEFT" % name
    tensors = {"ids": ids.float(), "mask": mask.float(), "g": g, "logits": logits}
    tensors.update(d)
    return tensors


def llama_case():
    lora = LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                      lora_dropout=0.0)
    return "llama_cls", case(LlamaForSequenceClassification, "tiny_llama", 3, 60, lora,
                             "tiny_llama_cls_lora", False)


def gpt2_case():
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "score"], lora_dropout=0.0)
    return "gpt2_cls", case(GPT2ForSequenceClassification, "tiny_gpt2", 2, 61, lora,
                            "tiny_gpt2_cls_lora", True)


def main():
    from make_golden import write_reference

    write_reference(os.path.join(HERE, "classifier_reference.txt"), "make_classifier_golden.py",
                    [make() for make in (llama_case, gpt2_case)])
    print("wrote tiny_llama_cls_lora/, tiny_gpt2_cls_lora/, classifier_reference.txt")


if __name__ == "__main__":
    main()
