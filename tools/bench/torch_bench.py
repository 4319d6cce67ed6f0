#!/usr/bin/python3
"""PyTorch side of `make bench`: the LoRA layer measurements of `clora bench`
done with PyTorch on the host CPU, in PEFT's arithmetic, printed as the same
JSON lines (one object per line: name, shape, median_ms, baseline,
baseline_ms, ratio, ratio_of).

PEFT's LoRA Linear computes
    y = base_layer(x) + lora_B(lora_A(dropout(x))) * scaling
with the base layer frozen; its training step is that forward plus a
backward pass that yields dx, dA and dB. The full fine-tuning step is the
plain Linear with weight and bias trainable (dx, dW, db). Each ratio is
measured side by side: the two cases alternate, and medians are compared.

    /usr/bin/python3 tools/bench/torch_bench.py [--quick] [--threads 2]
        [--compare clora.jsonl]

PEFT's DoRA Linear (use_dora) adds, with the norm n of W + scaling * B A per
output feature detached and m the trained magnitude,
    y = base_layer(x) + (m / n - 1) * (x W^T) + (m / n) * lora_B(lora_A(x)) * scaling
and its step yields dx, dA, dB and dm; dora_layer_step compares it with the
LoRA step on the same layer, as `clora bench` does.

With --compare, reads `clora bench --json` output and prints a table of
both, matched by name and shape, after the JSON lines (on stderr).
"""
import argparse
import json
import statistics
import sys
import time

import torch

# The shapes `clora bench` measures: (N, in, out, ranks).
FULL = [
    (512, 768, 768, (8, 16, 64)),
    (512, 768, 3072, (16,)),
    (512, 3072, 768, (16,)),
    (2048, 768, 768, (16,)),
    (512, 3072, 3072, (8, 16)),
    (512, 4096, 4096, (16,)),
    (2048, 768, 3072, (16,)),
]
QUICK = [(512, 768, 768, (8,))]
# The (out, in) shapes of `clora bench`'s dora_layer_step: (N, in, out, rank).
DORA_FULL = [(512, 768, 768, 8), (512, 768, 3072, 16), (512, 3072, 768, 16), (2048, 768, 768, 16)]
DORA_QUICK = [(512, 768, 768, 8)]


def measure(cases, reps, warmup=2):
    """Median milliseconds of each case, the cases alternating."""
    times = [[] for _ in cases]
    for rep in range(reps + warmup):
        for i, case in enumerate(cases):
            t0 = time.perf_counter()
            case()
            if rep >= warmup:
                times[i].append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


class Layer:
    """One Linear layer with a PEFT-style LoRA branch, at clora's init scales."""

    def __init__(self, n, fan_in, fan_out, rank, alpha=16.0):
        g = torch.Generator().manual_seed(7)
        bound = fan_in ** -0.5

        def uniform(*shape, b=1.0):
            return (torch.rand(*shape, generator=g) * 2 - 1) * b

        self.x = uniform(n, fan_in).requires_grad_(True)
        self.dy = uniform(n, fan_out, b=1e-3)
        self.base = torch.nn.Linear(fan_in, fan_out)
        self.nobias = torch.nn.Linear(fan_in, fan_out, bias=False)
        with torch.no_grad():
            self.base.weight.copy_(uniform(fan_out, fan_in, b=bound))
            self.base.bias.copy_(uniform(fan_out, b=bound))
            self.nobias.weight.copy_(self.base.weight)
        self.lora_A = torch.nn.Linear(fan_in, rank, bias=False)
        self.lora_B = torch.nn.Linear(rank, fan_out, bias=False)
        with torch.no_grad():
            self.lora_A.weight.copy_(uniform(rank, fan_in, b=bound))
            self.lora_B.weight.copy_(uniform(fan_out, rank, b=0.01))
        self.dropout = torch.nn.Identity()  # PEFT's lora_dropout at p = 0
        self.scaling = alpha / rank
        with torch.no_grad():  # DoRA's magnitude starts at ||W|| per output feature
            self.magnitude = torch.nn.Parameter(self.base.weight.norm(p=2, dim=1))

    def _train_base(self, trainable):
        for p in self.base.parameters():
            p.requires_grad_(trainable)
            p.grad = None

    def gemm(self):
        with torch.no_grad():
            return self.nobias(self.x)

    def lora_forward(self):
        with torch.no_grad():
            result = self.nobias(self.x)
            return result + self.lora_B(self.lora_A(self.dropout(self.x))) * self.scaling

    def full_step(self):
        self._train_base(True)
        self.x.grad = None
        y = self.base(self.x)
        y.backward(self.dy)

    def lora_step(self):
        self._train_base(False)
        self.x.grad = None
        self.lora_A.weight.grad = None
        self.lora_B.weight.grad = None
        y = self.base(self.x) + self.lora_B(self.lora_A(self.dropout(self.x))) * self.scaling
        y.backward(self.dy)

    def dora_step(self):
        self._train_base(False)
        self.x.grad = None
        self.lora_A.weight.grad = None
        self.lora_B.weight.grad = None
        self.magnitude.grad = None
        weight = self.base.weight
        lora_weight = self.lora_B.weight @ self.lora_A.weight
        norm = (weight + self.scaling * lora_weight).norm(p=2, dim=1).detach()
        scale = (self.magnitude / norm).view(1, -1)
        base = torch.nn.functional.linear(self.x, weight)
        lora = self.lora_B(self.lora_A(self.dropout(self.x))) * self.scaling
        y = base + self.base.bias + (scale - 1) * base + scale * lora
        y.backward(self.dy)


def line(name, shape, ms, baseline=None, baseline_ms=None, extra=None):
    out = {"name": name, "shape": shape, "median_ms": round(ms, 6),
           "implementation": "pytorch",
           "device": f"PyTorch {torch.__version__} CPU, {torch.get_num_threads()} threads"}
    if baseline is not None:
        out.update(baseline=baseline, baseline_ms=round(baseline_ms, 6),
                   ratio=round(ms / baseline_ms, 6), ratio_of="time")
    if extra:
        out.update(extra)
    print(json.dumps(out), flush=True)
    return out


def run(args):
    torch.set_num_threads(args.threads)
    reps = args.reps or (3 if args.quick else 7)
    results = []
    for n, fan_in, fan_out, ranks in (QUICK if args.quick else FULL):
        flops = 2.0 * n * fan_in * fan_out
        layer = Layer(n, fan_in, fan_out, ranks[0])
        shape = f"N={n} in={fan_in} out={fan_out}"
        (ms,) = measure([layer.gemm], reps)
        results.append(line("gemm", shape, ms, extra={"gflops": round(flops / (ms * 1e6), 3)}))
        for rank in ranks:
            layer = Layer(n, fan_in, fan_out, rank)
            shape = f"N={n} in={fan_in} out={fan_out} r={rank}"
            lora, gemm = measure([layer.lora_forward, layer.gemm], reps)
            results.append(line("lora_forward_vs_gemm", shape, lora, "gemm", gemm))
            lora, full = measure([layer.lora_step, layer.full_step], reps)
            results.append(line("lora_step_vs_full_step", shape, lora, "full_step", full))
    for n, fan_in, fan_out, rank in (DORA_QUICK if args.quick else DORA_FULL):
        layer = Layer(n, fan_in, fan_out, rank)
        shape = f"N={n} in={fan_in} out={fan_out} r={rank} W(out,in)"
        dora, lora = measure([layer.dora_step, layer.lora_step], reps)
        results.append(line("dora_layer_step", shape, dora, "lora_layer_step", lora))
    return results


def compare(clora_path, torch_results):
    """A table of clora's and PyTorch's figures for the same name and shape."""
    clora = {}
    with open(clora_path) as f:
        for text in f:
            text = text.strip()
            if text.startswith("{"):
                r = json.loads(text)
                clora[(r["name"], r["shape"])] = r
    out = sys.stderr
    print("\n%-24s %-28s %14s %14s" % ("measurement", "shape", "clora", "PyTorch"), file=out)
    for r in torch_results:
        c = clora.get((r["name"], r["shape"]))
        if not c:
            continue
        if r["name"] == "gemm":
            print("%-24s %-28s %9.1f GF/s %9.1f GF/s" % ("gemm", r["shape"], c["gflops"],
                                                       r["gflops"]), file=out)
        else:
            print("%-24s %-28s %13.3fx %13.3fx" % (r["name"], r["shape"], c["ratio"],
                                                   r["ratio"]), file=out)
    for (name, shape), c in clora.items():
        if name in ("gemm_vs_openblas", "gemm_untuned", "demo_step", "gpt2_step",
                    "dora_gpt2_step", "embedding_lora_gpt2_step"):
            print("%-24s %-28s %13.3fx %14s" % (name, shape, c.get("ratio", 0.0), "-"), file=out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one shape, 3 repetitions")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (default 2)")
    parser.add_argument("--reps", type=int, default=0, help="timed repetitions per case")
    parser.add_argument("--compare", metavar="FILE", help="`clora bench --json` output")
    args = parser.parse_args()
    results = run(args)
    if args.compare:
        compare(args.compare, results)


if __name__ == "__main__":
    main()
