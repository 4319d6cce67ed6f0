#!/usr/bin/env python3
"""Writes DoRA adapters with Hugging Face PEFT itself (use_dora=True), with
PEFT's outputs and the gradients of lora_A, lora_B and the magnitude
vector for one loss, for tests/test_dora.c; and checks, the other way,
that PEFT loads a DoRA adapter clora saved with the outputs clora gives.

Needs PEFT 0.21.2 (the first PEFT line with DoRA that runs on Debian's
torch 1.13) with transformers 4.49.0:

    /work/venvs/peft0212/bin/python make_dora_golden.py
        rewrites dora_net_adapter/, tiny_gpt2_dora_base/, tiny_gpt2_dora/ and
        dora_reference.txt
    /work/venvs/peft0212/bin/python make_dora_golden.py --check KIND DIR LOGITS [BASE IDS]
        KIND is net, gpt2 or hf: PEFT loads the clora-saved adapter DIR onto
        this script's model (hf: the GPT-2 folder BASE, run on the comma-
        separated token IDS), and its outputs must equal LOGITS (whitespace-
        separated floats, or the safetensors file `clora logits` writes);
        exits 1 when they differ

Models: "net" is fc1 Linear(4, 8) -> GELU -> fc2 Linear(8, 6) -> GELU ->
head Linear(6, 3, no bias), DoRA on all three with r = 2 and lora_alpha 4;
"gpt2" a one-block GPT-2 (n_embd 16, 2 heads, vocab 20), DoRA on c_attn,
c_proj and c_fc (Conv1D, fan_in_fan_out), r = 4, lora_alpha 8. Every lora_B
is random and non-zero and every magnitude differs from the row norm of
W + s·B·A, so each part of the adapter matters. The loss is sum(G * out)
for a fixed random G, in eval mode (no dropout).
"""
import os
import shutil
import sys

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import GPT2Config, GPT2LMHeadModel

HERE = os.path.dirname(os.path.abspath(__file__))
T = 5


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(8, 6)
        self.head = torch.nn.Linear(6, 3, bias=False)

    def forward(self, x):
        return self.head(self.act(self.fc2(self.act(self.fc1(x)))))


def net_base():
    torch.manual_seed(50)
    net = Net()
    x = torch.randn(5, 4)
    return net, x


def gpt2_base():
    torch.manual_seed(51)
    config = GPT2Config(vocab_size=20, n_positions=8, n_embd=16, n_layer=1, n_head=2)
    model = GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.normal_(0.0, 0.1) if "bias" in name else p.uniform_(0.6, 1.4)
            else:
                p.normal_(0.0, 0.2)
    model.eval()
    ids = torch.randint(1, config.vocab_size, (2, T))
    return model, ids


def randomise_dora(model):
    """Random A and B, and magnitudes 0.5 to 1.5 times what PEFT set."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_A" in name or "lora_B" in name:
                p.normal_(0.0, 0.3)
        for name, p in model.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(torch.empty_like(p).uniform_(0.5, 1.5))


def clora_name(peft_name):
    """PEFT's parameter name -> clora's; the magnitude's ".default.weight"
    is left off (the golden format's names are short), test_dora.c adds it."""
    name = peft_name.replace("base_model.model.", "", 1)
    return name.replace("lora_magnitude_vector.default.weight", "lora_magnitude_vector")


def grads(model):
    out = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            key = "d:" + clora_name(name)
            assert len(key) < 64, key
            out[key] = p.grad.detach().clone()
    return out


def save(model, name, adapter):
    out = os.path.join(HERE, name)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out, safe_serialization=True)
    for extra in ("README.md", "generation_config.json"):
        if os.path.exists(os.path.join(out, extra)):
            os.remove(os.path.join(out, extra))
    if adapter:  # only the keys a reader needs, as PEFT wrote them
        assert os.path.exists(os.path.join(out, "adapter_model.safetensors"))


def net_case():
    net, x = net_base()
    base_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    config = LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2", "head"], use_dora=True,
                        lora_dropout=0.0)
    model = get_peft_model(net, config)
    randomise_dora(model)
    model.eval()
    out = model(x)
    g = torch.randn_like(out)
    (out * g).sum().backward()
    save(model, "dora_net_adapter", True)
    tensors = {"x": x, "g": g, "logits": out.detach()}
    tensors.update({k.replace(".", "_"): v for k, v in base_state.items()})
    tensors.update(grads(model))
    # merged: the base weights PEFT's merge_and_unload writes
    merged = model.merge_and_unload()
    for k, v in merged.state_dict().items():
        if k.endswith("weight"):
            tensors["merged_" + k.replace(".", "_")] = v.detach().clone()
    return "dora_net", tensors


def gpt2_case():
    model, ids = gpt2_base()
    save(model, "tiny_gpt2_dora_base", False)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"],
                        fan_in_fan_out=True, use_dora=True, lora_dropout=0.0)
    peft_model = get_peft_model(model, config)
    randomise_dora(peft_model)
    peft_model.eval()
    logits = peft_model(input_ids=ids).logits
    g = torch.randn_like(logits)
    (logits * g).sum().backward()
    save(peft_model, "tiny_gpt2_dora", True)
    tensors = {"ids": ids.float(), "g": g, "logits": logits.detach()}
    tensors.update(grads(peft_model))
    return "dora_gpt2", tensors


def main():
    sys.path.insert(0, HERE)
    from make_golden import case_text
    import peft

    version = {"peft_version": peft.__version__}
    text = "# Generated by tests/golden/make_dora_golden.py with peft; do not edit.\n"
    for name, tensors in (net_case(), gpt2_case()):
        text += case_text(name, version, tensors)
    with open(os.path.join(HERE, "dora_reference.txt"), "w") as f:
        f.write(text)
    print("wrote dora_net_adapter/, tiny_gpt2_dora_base/, tiny_gpt2_dora/, dora_reference.txt")


def check(kind, adapter_dir, logits_path, base_dir=None, ids_text=None):
    if logits_path.endswith(".safetensors"):
        from safetensors.torch import load_file
        got = load_file(logits_path)["logits"].flatten()
    else:
        with open(logits_path) as f:
            got = torch.tensor([float(v) for v in f.read().split()])
    if kind == "hf":
        base = GPT2LMHeadModel.from_pretrained(base_dir).eval()
        ids = torch.tensor([[int(v) for v in ids_text.split(",")]])
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
        with torch.no_grad():
            want = model(input_ids=ids).logits.flatten()
    elif kind == "net":
        base, x = net_base()
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
        with torch.no_grad():
            want = model(x).flatten()
    else:
        base, ids = gpt2_base()
        model = PeftModel.from_pretrained(base, adapter_dir).eval()
        with torch.no_grad():
            want = model(input_ids=ids).logits.flatten()
    config = model.peft_config["default"]
    assert config.use_dora, "PEFT did not read use_dora"
    magnitudes = [n for n, _ in model.named_parameters() if "lora_magnitude_vector" in n]
    assert magnitudes, "PEFT loaded no magnitude vector"
    if got.numel() != want.numel():
        print("clora wrote %d outputs, PEFT gives %d" % (got.numel(), want.numel()))
        sys.exit(1)
    err = (got - want).abs().max().item()
    print("%s: PEFT %s loads clora's DoRA adapter: %d outputs, %d magnitude vectors, "
          "max |clora - PEFT| = %.3g" % (kind, __import__("peft").__version__, want.numel(),
                                         len(magnitudes), err))
    sys.exit(0 if err <= 1e-5 + 1e-5 * want.abs().max().item() else 1)


if __name__ == "__main__":
    if len(sys.argv) in (5, 7) and sys.argv[1] == "--check":
        check(*sys.argv[2:])
    else:
        main()
