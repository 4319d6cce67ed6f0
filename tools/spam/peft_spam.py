#!/usr/bin/env python3
"""The spam experiment in PyTorch and PEFT, beside `clora train --task
classify` on the same dataset files (what `clora tokenize` wrote), so both
runs see the same token ids, padding and batches.

    peft_spam.py --hf DIR --train F --val F --test F [--epochs E] [--init ADAPTER_DIR]
                 [--json OUT]
    peft_spam.py --hf DIR --adapter ADAPTER_DIR --test F [--val F] [--train F]

The model is transformers' LlamaForSequenceClassification on the Hugging
Face folder of tools/llama/gguf_to_hf.py: a new bias-free head `score`
(hidden -> 2) drawn from N(0, 0.02) after torch.manual_seed(seed), the class
read from the last non-padding token. LoRA (PEFT, no task_type, dropout 0)
goes on q/k/v/o_proj, gate/up/down_proj and on `score` too, so the head
stays the frozen random matrix and only its low-rank update trains, as the
book wraps its new head. AdamW at a constant learning rate over the LoRA
matrices, no clipping, cross-entropy on the last token's logits.

Batches are clora's: every epoch the example order comes from clora's
Fisher-Yates shuffle (tools/training.c, reproduced below bit for bit, C's
64-bit and float arithmetic included), batch k is order[k*B:(k+1)*B], an
epoch's last partial batch is skipped, and each batch is cut to its longest
row. The random draws of the head and of LoRA's A matrices are PyTorch's,
so the accuracies of the two sides agree in expectation, not bit for bit;
with --init, training starts instead from the adapter `clora train
--save-initial` wrote (its head and A and B matrices), so both sides begin
at the same point and differ only by rounding.

Reported: trainable parameters, accuracy before and after training on each
split (batches of 32), the mean time of a training step after the first 3,
real (unpadded) tokens per second over those steps (and, in the JSON file,
the tokens of the cut batches, padding included), the process's peak
resident memory, and the loss of every step (OUT's name with _loss.csv for
.json, columns phase,step,loss,lr as clora writes them).

With --adapter, a clora adapter folder is loaded instead (PeftModel.
from_pretrained) and evaluated. Such an adapter carries, besides lora_A and
lora_B, `base_model.model.score.base_layer.weight`, the frozen random head
its LoRA builds on; or else, trained in full, `base_model.model.score.weight`
(modules_to_save, task_type SEQ_CLS). Every tensor of the file is compared
with the loaded model; any that PEFT did not load is copied in and named.
--save-adapter writes the trained PEFT adapter in that same form.
"""
import argparse
import json
import os
import resource
import struct
import sys
import time


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf", required=True, help="Hugging Face folder (gguf_to_hf.py)")
    p.add_argument("--train", help="clora dataset file (.safetensors)")
    p.add_argument("--val", help="clora dataset file")
    p.add_argument("--test", help="clora dataset file")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=8e-4)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--rank", type=int, default=16)
    p.add_argument("--alpha", type=float, default=16.0)
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, help="stop after this many steps")
    p.add_argument("--skip-eval", action="store_true",
                   help="no accuracies before and after training (timing runs)")
    p.add_argument("--adapter", help="evaluate this clora adapter folder instead of training")
    p.add_argument("--init", help="train from this clora adapter folder (clora train "
                   "--save-initial) instead of PyTorch's draws")
    p.add_argument("--save-adapter", help="write the trained adapter to this folder")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()
    if args.adapter:
        if not (args.train or args.val or args.test):
            p.error("--adapter needs at least one of --train, --val, --test")
    elif not args.train:
        p.error("training needs --train")
    if args.adapter and args.init:
        p.error("--adapter evaluates, --init trains: give one of them")
    if args.batch_size < 1 or args.epochs < 1 or args.threads < 1:
        p.error("--batch-size, --epochs and --threads must be positive")
    return args


ARGS = parse_args()
# OpenMP and OpenBLAS size their thread pools when torch loads.
for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = str(ARGS.threads)

import peft  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from peft import LoraConfig, PeftModel, get_peft_model  # noqa: E402
from safetensors import safe_open  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from transformers import LlamaForSequenceClassification  # noqa: E402

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "score"]
EVAL_ROWS = 32
UNTIMED_STEPS = 3
HEAD_BASE_KEY = "base_model.model.score.base_layer.weight"


def fail(message):
    sys.exit("peft_spam.py: " + message)


# --- clora's shuffle (tools/cli.c cli_uniform, tools/training.c train_loop) ---

MASK64 = (1 << 64) - 1
GOLDEN = 0x9e3779b97f4a7c15


def f32(x):
    """x rounded to float32. Each float32 +, -, * done in double and rounded
    once is the correctly rounded float32 result (53 >= 2*24 + 2 bits)."""
    return struct.unpack("f", struct.pack("f", x))[0]


class CloraRandom:
    """splitmix64, top 24 bits as a float in [lo, hi), as cli_uniform."""

    def __init__(self, seed):
        self.state = (0x5eed ^ ((seed & MASK64) * GOLDEN)) & MASK64

    def uniform(self, lo, hi):
        self.state = (self.state + GOLDEN) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & MASK64
        z ^= z >> 31
        lo, hi = f32(lo), f32(hi)
        return f32(lo + f32(f32(f32(hi - lo) * float(z >> 40)) * (1.0 / 16777216.0)))

    def epoch_order(self, n):
        order = list(range(n))
        for i in range(n - 1, 0, -1):
            j = min(int(self.uniform(0.0, float(i + 1))), i)
            order[i], order[j] = order[j], order[i]
        return order


# --- data ---

class Split:
    """A clora dataset file: ids and mask (N, T), labels (N), lengths (N)."""

    def __init__(self, name, path):
        self.name, self.path = name, path
        try:
            tensors = load_file(path)
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
        except Exception as e:  # safetensors raises several kinds
            fail("%s: %s" % (path, e))
        for key in ("inputs", "attention_mask", "labels"):
            if key not in tensors:
                fail("%s has no %r tensor" % (path, key))
        self.ids = tensors["inputs"].long()
        self.mask = tensors["attention_mask"].long()
        self.labels = tensors["labels"].long()
        if self.ids.dim() != 2 or self.mask.shape != self.ids.shape:
            fail("%s: inputs and attention_mask must both be (N, T)" % path)
        if self.labels.shape != (self.ids.shape[0],):
            fail("%s: labels must be (N): one class per text" % path)
        self.names = json.loads(meta.get("label_names", "null"))
        self.lengths = self.mask.sum(1)
        positions = torch.arange(self.ids.shape[1])
        if not torch.equal(self.mask, (positions[None, :] < self.lengths[:, None]).long()):
            fail("%s: the attention mask is not right padding (1 ... 1 0 ... 0)" % path)
        if int(self.lengths.min()) < 1:
            fail("%s: a row has no tokens" % path)

    def __len__(self):
        return self.ids.shape[0]

    def rows(self, index):
        """ids, mask, labels, lengths of the rows `index`, cut to the longest."""
        index = torch.as_tensor(index)
        width = int(self.lengths[index].max())
        return (self.ids[index, :width], self.mask[index, :width], self.labels[index],
                self.lengths[index])

    def pad_ids(self):
        return set(self.ids[self.mask == 0].unique().tolist())


def load_splits(args):
    splits = {name: Split(name, getattr(args, name))
              for name in ("train", "val", "test") if getattr(args, name)}
    first = next(iter(splits.values()))
    for s in splits.values():
        if s.names != first.names:
            fail("%s and %s have different label_names" % (first.path, s.path))
        print("  %-5s %s: %d texts, %d columns, %.1f tokens on average"
              % (s.name, s.path, len(s), s.ids.shape[1], float(s.lengths.float().mean())))
    classes = len(first.names) if first.names else 1 + max(int(s.labels.max()) for s in
                                                          splits.values())
    for s in splits.values():
        if int(s.labels.min()) < 0 or int(s.labels.max()) >= classes:
            fail("%s: labels must be class indices 0..%d" % (s.path, classes - 1))
    return splits, classes


def count_pad_endings(splits, pad_id):
    """Texts whose last real token is the pad id: there transformers' own
    pooling (the last id that is not the pad id) would pick another token."""
    return sum(int((s.ids[torch.arange(len(s)), s.lengths - 1] == pad_id).sum())
               for s in splits.values())


def pad_id_of(splits, hf):
    """The id at the padded positions; without padding, the tokenizer's (or
    the config's end-of-text id when the folder has no tokenizer)."""
    ids = set()
    for s in splits.values():
        ids |= s.pad_ids()
    if len(ids) > 1:
        fail("the padded positions hold several ids: %s" % sorted(ids))
    if ids:
        return ids.pop(), "the padded positions"
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(hf)
        if tokenizer.pad_token_id is not None:
            return tokenizer.pad_token_id, "the tokenizer"
    except (OSError, ValueError):
        pass
    config = transformers.AutoConfig.from_pretrained(hf)
    return config.pad_token_id if config.pad_token_id is not None else config.eos_token_id, \
        "the config"


# --- model ---

def build_model(args, classes, pad_id):
    model = LlamaForSequenceClassification.from_pretrained(
        args.hf, num_labels=classes, pad_token_id=pad_id, torch_dtype=torch.float32)
    torch.manual_seed(args.seed)
    with torch.no_grad():
        model.score.weight.normal_(0.0, 0.02)
    return model


class LastTokenLogits:
    """The logits at each row's last real token, read from `score`'s output.
    LlamaForSequenceClassification pools at the last id that is not the pad
    id, which is the same token unless a text ends in that id; here the
    mask decides (its last 1)."""

    def __init__(self, model):
        self.model = model
        self.captured = None
        model.get_base_model().score.register_forward_hook(self._keep)

    def _keep(self, module, inputs, output):
        self.captured = output

    def __call__(self, ids, mask, lengths):
        self.model(input_ids=ids, attention_mask=mask)
        return self.captured[torch.arange(ids.shape[0]), lengths - 1]


def accuracy(logits_of, split):
    logits_of.model.eval()
    correct = 0
    with torch.no_grad():
        for first in range(0, len(split), EVAL_ROWS):
            ids, mask, labels, lengths = split.rows(range(first, min(first + EVAL_ROWS, len(split))))
            correct += int((logits_of(ids, mask, lengths).argmax(-1) == labels).sum())
    return correct / len(split)


def accuracies(logits_of, splits, when):
    result = {}
    for name, split in splits.items():
        t = time.perf_counter()
        result[name] = accuracy(logits_of, split)
        print("  accuracy %-6s %-5s %6.2f%%  (%.0f s)"
              % (when, name, 100 * result[name], time.perf_counter() - t), flush=True)
    return result


def parameter_counts(model):
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def blas_library():
    """The BLAS library this process has loaded (Debian's torch takes the
    libblas.so.3 alternative: OpenBLAS, or the one-thread reference BLAS)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line and "/" in line}
    except OSError:
        return "unknown"
    return ", ".join(sorted(os.path.realpath(p) for p in paths)) or "none loaded"


def peak_rss_bytes():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# --- the two modes ---

def train(args, model, logits_of, data):
    per_epoch = len(data) // args.batch_size
    if per_epoch == 0:
        fail("%s has fewer texts (%d) than a batch (%d)" % (data.path, len(data), args.batch_size))
    steps = args.epochs * per_epoch
    if args.steps is not None:
        steps = min(steps, args.steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    rng = CloraRandom(args.seed)
    report_every = max(1, min(10, steps // 20))
    losses, seconds, tokens, padded = [], [], [], []
    print("training: %d steps (%d epochs of %d batches of %d)"
          % (steps, args.epochs, per_epoch, args.batch_size), flush=True)
    model.train()
    for step in range(steps):
        slot = step % per_epoch
        if slot == 0:
            order = rng.epoch_order(len(data))
        ids, mask, labels, lengths = data.rows(order[slot * args.batch_size:
                                                     (slot + 1) * args.batch_size])
        t = time.perf_counter()
        loss = F.cross_entropy(logits_of(ids, mask, lengths), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seconds.append(time.perf_counter() - t)
        losses.append(float(loss))
        tokens.append(int(mask.sum()))
        padded.append(mask.numel())
        if (step + 1) % report_every == 0 or step + 1 == steps:
            print("  step %d/%d  loss %.4f  %.2f s/step" % (step + 1, steps, losses[-1],
                                                              seconds[-1]), flush=True)
    untimed = UNTIMED_STEPS if steps > UNTIMED_STEPS else 0
    timed = slice(untimed, None)
    epochs = [sum(seconds[i:i + per_epoch]) for i in range(0, steps - per_epoch + 1, per_epoch)]
    return {
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "untimed_steps": untimed,
        "ms_per_step": 1e3 * sum(seconds[timed]) / len(seconds[timed]),
        "tokens_per_s": sum(tokens[timed]) / sum(seconds[timed]),
        "padded_tokens_per_s": sum(padded[timed]) / sum(seconds[timed]),
        "train_s": sum(seconds),
        "epoch_s": epochs,
        "losses": losses,
    }


def save_adapter(model, path):
    """PEFT's adapter plus the frozen head its LoRA builds on, as clora writes it."""
    model.save_pretrained(path)
    file = os.path.join(path, "adapter_model.safetensors")
    tensors = load_file(file)
    tensors[HEAD_BASE_KEY] = model.get_base_model().score.base_layer.weight.detach().clone()
    save_file(tensors, file, metadata={"format": "pt"})
    print("wrote %s (%d tensors, with %s)" % (path, len(tensors), HEAD_BASE_KEY))


def write_loss_log(path, losses, lr):
    with open(path, "w") as f:
        f.write("phase,step,loss,lr\n")
        for step, loss in enumerate(losses, 1):
            f.write("train,%d,%.6g,%.6g\n" % (step, loss, lr))


def model_key(state, key):
    """The PeftModel state_dict key that an adapter file's `key` loads into."""
    for part in (".lora_A.", ".lora_B.", ".lora_embedding_A.", ".lora_embedding_B."):
        if part in key:
            head, tail = key.rsplit(part, 1)
            return "%s%sdefault.%s" % (head, part, tail)
    if key in state:
        return key
    stem, _, leaf = key.rpartition(".")
    saved = "%s.modules_to_save.default.%s" % (stem, leaf)
    return saved if saved in state else None


def load_adapter(path, model, trainable=False):
    """PeftModel.from_pretrained, then every tensor of the file checked
    against the model; those PEFT left out are copied in and reported."""
    file = os.path.join(path, "adapter_model.safetensors")
    if not os.path.isfile(file):
        fail("%s has no adapter_model.safetensors" % path)
    config = LoraConfig.from_pretrained(path)
    if config.task_type == "SEQ_CLS" and "score" in (config.target_modules or ()):
        # PeftModelForSequenceClassification makes `score` a modules_to_save
        # copy, which then wants base_model.model.score.weight (a KeyError).
        fail("%s: LoRA on score needs task_type null, not SEQ_CLS" % path)
    tensors = load_file(file)
    head_before = model.score.weight.detach().clone()
    model = PeftModel.from_pretrained(model, path, is_trainable=trainable)
    state = model.state_dict()
    copied, unknown = [], []
    for key, tensor in tensors.items():
        target = model_key(state, key)
        if target is None:
            unknown.append(key)
        elif not torch.equal(state[target], tensor.to(state[target].dtype)):
            with torch.no_grad():
                state[target].copy_(tensor)
            copied.append(key)
    if unknown:
        fail("%s holds tensors that fit nothing in the model: %s" % (file, ", ".join(unknown)))
    report = {
        "adapter": path,
        "task_type": model.peft_config["default"].task_type,
        "tensors": len(tensors),
        "copied_by_hand": copied,
    }
    if HEAD_BASE_KEY in tensors:
        report["head"] = "frozen random head with LoRA (score.base_layer.weight from the file)"
        report["peft_loaded_head_base"] = HEAD_BASE_KEY not in copied
        if torch.equal(head_before, tensors[HEAD_BASE_KEY]):
            print("note: the file's frozen head equals this script's own draw; "
                  "the check cannot tell whether PEFT loaded it")
    elif "base_model.model.score.weight" in tensors:
        report["head"] = "head trained in full (modules_to_save)"
    else:
        report["head"] = "no head tensor in the file: the head is this script's random draw"
    print("loaded %s: %d tensors, each now equal in the model; %s"
          % (path, len(tensors),
             "PEFT loaded them all" if not copied else
             "PEFT left out %s (copied in by hand)" % ", ".join(copied)))
    print("  head: " + report["head"])
    return model, report


def check_init(config):
    """The --init adapter must be the run this script would set up."""
    targets = config.target_modules or ()
    targets = {targets} if isinstance(targets, str) else {t.rsplit(".", 1)[-1] for t in targets}
    if (config.r != ARGS.rank or float(config.lora_alpha) != ARGS.alpha
            or targets != set(TARGETS) or config.lora_dropout or config.rank_pattern
            or config.alpha_pattern or config.use_rslora):
        fail("%s is not r=%d, alpha=%g on %s without dropout: r=%s, alpha=%s on %s"
             % (ARGS.init, ARGS.rank, ARGS.alpha, ",".join(TARGETS), config.r,
                config.lora_alpha, ",".join(sorted(targets))))


def main():
    wall = time.perf_counter()
    torch.set_num_threads(ARGS.threads)
    transformers.logging.set_verbosity_error()
    blas = blas_library()
    print("torch %s, transformers %s, peft %s, %d threads; BLAS %s"
          % (torch.__version__, transformers.__version__, peft.__version__, ARGS.threads, blas))
    if "openblas" not in blas:
        print("warning: torch runs on the reference BLAS here, one thread and many times "
              "slower than OpenBLAS (apt-get install libopenblas0)", flush=True)
    splits, classes = load_splits(ARGS)
    pad_id, pad_source = pad_id_of(splits, ARGS.hf)
    print("pad id %d (from %s), %d classes; %d texts end in the pad id"
          % (pad_id, pad_source, classes, count_pad_endings(splits, pad_id)))
    model = build_model(ARGS, classes, pad_id)
    result = {"side": "peft", "torch": torch.__version__, "transformers": transformers.__version__,
              "peft": peft.__version__, "threads": ARGS.threads, "seed": ARGS.seed, "blas": blas,
              "pad_id": pad_id}

    if ARGS.adapter:
        model, report = load_adapter(ARGS.adapter, model)
        result.update(report)
        logits_of = LastTokenLogits(model)
        result["accuracy"] = {"adapter": accuracies(logits_of, splits, "adapter")}
    else:
        if ARGS.init:
            model, report = load_adapter(ARGS.init, model, trainable=True)
            check_init(model.peft_config["default"])
            result["init"] = report
        else:
            config = LoraConfig(r=ARGS.rank, lora_alpha=ARGS.alpha, lora_dropout=0.0,
                                target_modules=TARGETS, bias="none")
            model = get_peft_model(model, config)
        model.print_trainable_parameters()
        trainable, total = parameter_counts(model)
        print("trainable parameters (counted here): %s of %s" % (format(trainable, ","),
                                                                   format(total, ",")))
        logits_of = LastTokenLogits(model)
        before = {} if ARGS.skip_eval else accuracies(logits_of, splits, "before")
        run = train(ARGS, model, logits_of, splits["train"])
        after = {} if ARGS.skip_eval else accuracies(logits_of, splits, "after")
        print("%.1f ms/step, %.0f tokens/s (steps %d to %d); %.1f s training"
              % (run["ms_per_step"], run["tokens_per_s"], run["untimed_steps"] + 1, run["steps"],
                 run["train_s"]))
        if run["epoch_s"]:
            print("seconds per epoch: " + " ".join("%.0f" % t for t in run["epoch_s"]))
        result.update({
            "trainable_params": trainable, "all_params": total,
            "accuracy": {"before": before, "after": after},
            "epochs": ARGS.epochs, "batch_size": ARGS.batch_size, "lr": ARGS.lr,
            "weight_decay": ARGS.weight_decay, "rank": ARGS.rank, "alpha": ARGS.alpha,
        })
        result.update({k: v for k, v in run.items() if k != "losses"})
        if ARGS.save_adapter:
            save_adapter(model, ARGS.save_adapter)
        if ARGS.json:
            log = os.path.splitext(ARGS.json)[0] + "_loss.csv"
            write_loss_log(log, run["losses"], ARGS.lr)
            print("wrote " + log)

    result["peak_rss_bytes"] = peak_rss_bytes()
    result["wall_s"] = time.perf_counter() - wall
    print("peak resident memory %.0f MiB; %.0f s in all" % (result["peak_rss_bytes"] / 2**20,
                                                          result["wall_s"]))
    if ARGS.json:
        with open(ARGS.json, "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        print("wrote " + ARGS.json)


if __name__ == "__main__":
    main()
