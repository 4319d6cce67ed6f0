#!/usr/bin/env python3
"""The MiniLM fine-tune of tools/minilm/run.sh done with PyTorch and PEFT,
for the side-by-side figures in README.md.

    python peft_compare.py OUT [THREADS]

OUT is run.sh's folder: the model, the tokenized datasets clora wrote
(train/eval.safetensors, used here as they are, so both runs see the same
token ids, padding and batches of 16) and the text files they came from.

The run matches clora's: LoRA r=8, alpha 16, dropout 0.1 on query and value,
a new Linear head on the masked mean of the hidden states trained in full
(modules_to_save), AdamW lr 1e-3 (PyTorch's defaults otherwise), linear
schedule with 9 warm-up steps, 2 epochs of 44 batches (the last partial
batch of an epoch skipped), dropout on while training, PyTorch's own number
of threads unless THREADS is given. The random draws
(head and LoRA A initialisation, dropout masks, shuffling) are PyTorch's,
so accuracies agree in expectation, not bit for bit.

It also checks, on every text, that BertTokenizer gives the ids clora's
tokenizer wrote, and evaluates clora's adapter (OUT/adapter) in PyTorch:
the accuracy must be the one clora reported.

Environment: Debian's python3-torch with the packages of
tests/golden/make_peft_golden.py (peft 0.6.2, transformers 4.35.2,
safetensors 0.4.1).
"""
import json
import os
import sys
import time

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file
from transformers import BertModel, BertTokenizer, get_linear_schedule_with_warmup

BATCH = 16
EPOCHS = 2
WARMUP = 9
LR = 1e-3
SEED = 0


class BertMeanClassifier(BertModel):
    """BertModel -> masked mean over tokens -> Linear classifier (clora's layout)."""

    def __init__(self, config):
        super().__init__(config, add_pooling_layer=False)
        self.classifier = torch.nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, input_ids=None, attention_mask=None):
        h = super().forward(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.classifier((h * m).sum(1) / m.sum(1))


def load_dataset(path):
    tensors = load_file(path)
    with safe_open(path, framework="pt") as f:
        names = json.loads(f.metadata()["label_names"])
    return (tensors["inputs"].long(), tensors["attention_mask"].long(),
            tensors["labels"].long(), names)


def check_tokenizer(out, model_dir):
    tok = BertTokenizer.from_pretrained(model_dir)
    checked = differ = 0
    for split in ("train", "eval"):
        ids, mask, _, _ = load_dataset(os.path.join(out, split + ".safetensors"))
        with open(os.path.join(out, split + ".tsv"), encoding="utf-8") as f:
            texts = [line.rstrip("\n").split("\t", 1)[1] for line in f if line.strip()]
        assert len(texts) == ids.shape[0]
        for i, text in enumerate(texts):
            want = tok(text, max_length=64, truncation=True)["input_ids"]
            got = ids[i, : int(mask[i].sum())].tolist()
            checked += 1
            if got != want:
                differ += 1
                if differ <= 5:
                    print("  tokenizer differs on %s line %d: %r" % (split, i + 1, text[:60]))
    print("tokenizer: %d of %d texts give BertTokenizer's ids exactly" % (checked - differ, checked))
    return differ == 0


def accuracy(model, ids, mask, labels):
    model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, ids.shape[0], 256):
            logits = model(input_ids=ids[first:first + 256],
                           attention_mask=mask[first:first + 256])
            correct += int((logits.argmax(-1) == labels[first:first + 256]).sum())
    return correct / ids.shape[0]


def main():
    out = sys.argv[1]
    if len(sys.argv) > 2:  # --threads N; else PyTorch's own choice
        torch.set_num_threads(int(sys.argv[2]))
    model_dir = os.path.join(out, "model")
    tokenizer_ok = check_tokenizer(out, model_dir)
    train_ids, train_mask, train_labels, names = load_dataset(os.path.join(out, "train.safetensors"))
    eval_ids, eval_mask, eval_labels, _ = load_dataset(os.path.join(out, "eval.safetensors"))

    torch.manual_seed(SEED)
    model = BertMeanClassifier.from_pretrained(model_dir, num_labels=len(names))
    with torch.no_grad():  # Hugging Face's init, as clora's head
        model.classifier.weight.normal_(0.0, model.config.initializer_range)
        model.classifier.bias.zero_()
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"],
                        modules_to_save=["classifier"])
    model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    print("PEFT + PyTorch %s on %d threads" % (torch.__version__, torch.get_num_threads()))
    print("  trainable params: %d || all params: %d || trainable%%: %.4f"
          % (trainable, total, 100.0 * trainable / total))
    before = accuracy(model, eval_ids, eval_mask, eval_labels)

    per_epoch = train_ids.shape[0] // BATCH
    steps = EPOCHS * per_epoch
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    schedule = get_linear_schedule_with_warmup(optimizer, WARMUP, steps)
    generator = torch.Generator().manual_seed(SEED)
    untimed = min(steps // 10, 10)
    model.train()
    step = 0
    for _ in range(EPOCHS):
        order = torch.randperm(train_ids.shape[0], generator=generator)
        for b in range(per_epoch):
            if step == untimed:
                timed_from = time.perf_counter()
            rows = order[b * BATCH:(b + 1) * BATCH]
            logits = model(input_ids=train_ids[rows], attention_mask=train_mask[rows])
            loss = torch.nn.functional.cross_entropy(logits, train_labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 10 == 0 or step == steps:
                print("  step %d/%d  loss %.4f" % (step, steps, loss.item()), flush=True)
    per_step = (time.perf_counter() - timed_from) / (steps - untimed)
    after = accuracy(model, eval_ids, eval_mask, eval_labels)
    tokens = float(train_mask.sum()) / train_ids.shape[0]
    print("  accuracy: %.2f%% -> %.2f%%" % (100 * before, 100 * after))
    print("  %.2f ms per step, %.0f examples/s, %.0f tokens/s (%.1f tokens per example, "
          "padded to %d)" % (per_step * 1e3, BATCH / per_step, tokens * BATCH / per_step, tokens,
                             train_ids.shape[1]))
    model.save_pretrained(os.path.join(out, "peft_adapter"), safe_serialization=True)

    clora_adapter = os.path.join(out, "adapter")
    if os.path.isdir(clora_adapter):
        base = BertMeanClassifier.from_pretrained(model_dir, num_labels=len(names))
        loaded = PeftModel.from_pretrained(base, clora_adapter)
        print("  clora's adapter evaluated by PEFT: %.2f%%"
              % (100 * accuracy(loaded, eval_ids, eval_mask, eval_labels)))
    return 0 if tokenizer_ok else 1


if __name__ == "__main__":
    sys.exit(main())
