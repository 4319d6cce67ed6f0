#!/usr/bin/python3
"""Writes the PyTorch golden data the clora tests compare against.

Run with Debian's interpreter (python3-torch): /usr/bin/python3 make_golden.py
It rewrites lora_layer.txt and seed_training.txt next to this script; the
output is committed so the tests need no Python.

Cases:
  seed_*   the seed's own LoRALayer / LinearWithLoRA classes (A_seed (in, r),
           B_seed (r, out), y = linear(x) + alpha * (x @ A_seed @ B_seed)),
           with B set non-zero so the LoRA branch shows.
  peft_*   PEFT's layout and math: lora_A = Linear(in, r), lora_B = Linear(r, out),
           y = base(x) + lora_B(lora_A(x)) * scaling, scaling = alpha / r, or
           alpha / sqrt(r) for rsLoRA.
Each case records the inputs, y, and the gradients of loss = sum(y * R)
with respect to A, B and x, all in float32.

seed_training.txt: the seed's replace_linear_with_lora(model, rank, alpha)
applied to nn.Sequential(Linear(6, 8), ReLU(), Linear(8, 5)) after freezing
every parameter (as the seed's text does), then a few optimizer steps of
cross-entropy on a fixed batch, with AdamW and with SGD + momentum. It
records the base weights, the initial A_seed, the loss of every step, and
A, B and the logits after training.
"""
import math
import os

import torch


# ---- the seed's code, as given in the original request ---------------------

class LoRALayer(torch.nn.Module):
    def __init__(self, in_dim, out_dim, rank, alpha):
        super().__init__()
        self.A = torch.nn.Parameter(torch.empty(in_dim, rank))
        torch.nn.init.kaiming_uniform_(self.A, a=math.sqrt(5))
        self.B = torch.nn.Parameter(torch.zeros(rank, out_dim))
        self.alpha = alpha

    def forward(self, x):
        x = self.alpha * (x @ self.A @ self.B)
        return x


class LinearWithLoRA(torch.nn.Module):
    def __init__(self, linear, rank, alpha):
        super().__init__()
        self.linear = linear
        self.lora = LoRALayer(linear.in_features, linear.out_features, rank, alpha)

    def forward(self, x):
        return self.linear(x) + self.lora(x)


# ---- writing ------------------------------------------------------------------

def hex_float(v):
    """Exact C99 hex float of a float32 value, trailing zeros dropped."""
    text = float(v).hex()
    mantissa, exponent = text.split("p")
    return mantissa.rstrip("0") + "p" + exponent


def tensor_text(name, t):
    t = t.detach().to(torch.float32).contiguous()
    values = [hex_float(v) for v in t.reshape(-1).tolist()]
    lines = [" ".join(values[i:i + 6]) for i in range(0, len(values), 6)]
    dims = " ".join(str(d) for d in t.shape)
    return "tensor %s %d %s\n%s\n" % (name, t.dim(), dims, "\n".join(lines))


def case_text(name, params, tensors):
    out = ["case %s\n" % name]
    for key, value in params.items():
        out.append("param %s %s\n" % (key, value))
    for key, value in tensors.items():
        out.append(tensor_text(key, value))
    out.append("end\n")
    return "".join(out)


# ---- cases --------------------------------------------------------------------

def seed_case(name, n, d_in, d_out, rank, alpha, seed):
    torch.manual_seed(seed)
    layer = LinearWithLoRA(torch.nn.Linear(d_in, d_out), rank, alpha)
    with torch.no_grad():
        layer.lora.B.copy_(torch.randn(rank, d_out) * 0.5)
    x = torch.randn(n, d_in, requires_grad=True)
    weights = torch.randn(n, d_out)
    y = layer(x)
    (y * weights).sum().backward()
    params = {"scale_mode": "alpha", "alpha": hex_float(alpha), "rank": rank}
    tensors = {
        "x": x, "weight": layer.linear.weight, "bias": layer.linear.bias,
        "A_seed": layer.lora.A, "B_seed": layer.lora.B, "R": weights, "y": y,
        "dA_seed": layer.lora.A.grad, "dB_seed": layer.lora.B.grad, "dx": x.grad,
    }
    return case_text(name, params, tensors)


def peft_case(name, n, d_in, d_out, rank, alpha, rslora, fan_in_fan_out, seed):
    torch.manual_seed(seed)
    base = torch.nn.Linear(d_in, d_out)
    lora_a = torch.nn.Linear(d_in, rank, bias=False)
    lora_b = torch.nn.Linear(rank, d_out, bias=False)
    with torch.no_grad():
        lora_b.weight.copy_(torch.randn(d_out, rank) * 0.5)
    scaling = alpha / math.sqrt(rank) if rslora else alpha / rank
    # A fan_in_fan_out base stores its weight (in, out), as GPT-2's Conv1D.
    weight = base.weight.detach().t().contiguous() if fan_in_fan_out else base.weight.detach()
    x = torch.randn(n, d_in, requires_grad=True)
    weights = torch.randn(n, d_out)
    frozen = x @ weight + base.bias if fan_in_fan_out else base(x)
    y = frozen + lora_b(lora_a(x)) * scaling
    (y * weights).sum().backward()
    params = {
        "scale_mode": "alpha_over_sqrt_r" if rslora else "alpha_over_r",
        "alpha": hex_float(alpha), "rank": rank,
        "layout": "in_out" if fan_in_fan_out else "out_in",
    }
    tensors = {
        "x": x, "weight": weight, "bias": base.bias, "lora_A": lora_a.weight,
        "lora_B": lora_b.weight, "R": weights, "y": y, "d_lora_A": lora_a.weight.grad,
        "d_lora_B": lora_b.weight.grad, "dx": x.grad,
    }
    return case_text(name, params, tensors)


def replace_linear_with_lora(model, rank, alpha):
    # The seed's function, as given in the original request.
    for name, module in model.named_children():
        if isinstance(module, torch.nn.Linear):
            setattr(model, name, LinearWithLoRA(module, rank, alpha))
        else:
            replace_linear_with_lora(module, rank, alpha)


def training_case(name, optimizer_name, steps, seed):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 5))
    base = {k: v.detach().clone() for k, v in model.state_dict().items()}
    for param in model.parameters():
        param.requires_grad = False
    replace_linear_with_lora(model, rank=3, alpha=1.5)
    initial_a = {i: model[i].lora.A.detach().clone() for i in (0, 2)}
    x = torch.randn(10, 6)
    labels = torch.randint(0, 5, (10,))
    if optimizer_name == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=0.02, weight_decay=0.01)
        params = {"optimizer": "adamw", "lr": hex_float(0.02), "weight_decay": hex_float(0.01)}
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        params = {"optimizer": "sgd", "lr": hex_float(0.1), "momentum": hex_float(0.9)}
    params.update({"rank": 3, "alpha": hex_float(1.5), "steps": steps})
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    with torch.no_grad():
        logits = model(x)
    tensors = {
        "w0": base["0.weight"], "b0": base["0.bias"], "w2": base["2.weight"],
        "b2": base["2.bias"], "A0_seed": initial_a[0], "A2_seed": initial_a[2], "x": x,
        "labels": labels.to(torch.float32), "losses": torch.tensor(losses),
        "A0_final": model[0].lora.A, "B0_final": model[0].lora.B,
        "A2_final": model[2].lora.A, "B2_final": model[2].lora.B, "logits": logits,
    }
    return case_text(name, params, tensors)


def main():
    torch.set_num_threads(1)
    text = ["# Generated by tests/golden/make_golden.py with torch %s; do not edit.\n"
            % torch.__version__]
    text.append(seed_case("seed_small", 5, 13, 11, 3, 2.0, seed=0))
    text.append(seed_case("seed_wider", 8, 40, 24, 8, 16.0, seed=1))
    text.append(seed_case("seed_rank1_row1", 1, 7, 5, 1, 0.5, seed=2))
    text.append(peft_case("peft_small", 4, 9, 6, 2, 8.0, False, False, seed=3))
    text.append(peft_case("peft_rank_above_in", 3, 20, 16, 32, 16.0, False, False, seed=4))
    text.append(peft_case("rslora_fan_in_fan_out", 1, 7, 10, 4, 4.0, True, True, seed=5))
    text.append(peft_case("peft_fan_in_fan_out", 6, 24, 9, 5, 10.0, False, True, seed=6))
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "lora_layer.txt")
    with open(path, "w") as f:
        f.write("".join(text))
    print("wrote", path)

    text = ["# Generated by tests/golden/make_golden.py with torch %s; do not edit.\n"
            % torch.__version__]
    text.append(training_case("seed_adamw", "adamw", 5, seed=20))
    text.append(training_case("seed_sgd", "sgd", 5, seed=21))
    path = os.path.join(here, "seed_training.txt")
    with open(path, "w") as f:
        f.write("".join(text))
    print("wrote", path)


if __name__ == "__main__":
    main()
