#!/usr/bin/env python3
"""clora against real PEFT, both ways, for the PEFT version of the Python
that runs this (a venv of tests/compat/env.sh):

    python tests/compat/run.py --clora build/tools/clora --work DIR [--results FILE] [CASE...]

For each configuration below, on tiny GPT-2, BERT and Llama models that
transformers saves (tests/compat/models.py), with every lora_B (and DoRA
magnitude, bias, head) set to random non-zero values:
  peft->clora   an adapter made and saved by PEFT: `clora logits` equals
                PEFT's output;
  clora->peft   an adapter trained a few steps by `clora train`: PEFT loads
                it (PeftModel.from_pretrained) and its output equals
                `clora logits`;
  merge:clora   `clora merge` on the Hugging Face folder: transformers'
                from_pretrained loads the result, whose output equals PEFT's
                merge_and_unload;
  merge:peft    the folder PEFT's merge_and_unload saves: `clora logits` on
                it equals PEFT's merged output.
A check passes when max |clora - reference| <= RTOL * max |reference|, and
every adapter must move the output by more than MOVED of its scale (so that
an adapter that is silently dropped fails). A configuration this PEFT
version cannot express is skipped, with the reason. Each case prints one
line; a failing one prints clora's own message. CASE names pick cases (a
prefix of the name is enough). DIR is emptied first and keeps every model,
adapter and output for a look after a failure.

    --model KIND=FOLDER   runs the cases of KIND on a real model saved by
                          transformers (SmolLM2 as a Llama, MiniLM as a
                          bert_mean or bert_pooler) instead of the tiny one;
                          only those kinds' cases run, and the base model's
                          own difference (clora logits against transformers,
                          no adapter) is reported first as the floor.
"""
import argparse
import dataclasses
import inspect
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
import warnings

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict
from safetensors.torch import load_file, save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import models  # noqa: E402

RTOL = 1e-4
MOVED = 1e-3
IDS = [5, 17, 3, 42, 9, 28, 11, 60]
TRAIN = ["--steps", "4", "--batch-size", "4", "--lr", "0.02", "--seed", "3"]
LLAMA_ALL = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class Failure(Exception):
    """A case that did not pass; the message says why."""


def feature_missing(feature):
    """Why this PEFT cannot express `feature`, or None when it can."""
    fields = {f.name for f in dataclasses.fields(LoraConfig)}
    if feature == "rslora" and "use_rslora" not in fields:
        return "PEFT %s has no use_rslora" % peft.__version__
    if feature == "dora" and "use_dora" not in fields:
        return "PEFT %s has no use_dora (DoRA)" % peft.__version__
    if feature == "gaussian":
        from peft.tuners.lora import layer
        if "gaussian" not in inspect.getsource(layer):
            return 'PEFT %s has no init_lora_weights="gaussian"' % peft.__version__
    if feature == "all-linear":
        try:
            from peft.utils.constants import INCLUDE_LINEAR_LAYERS_SHORTHAND  # noqa: F401
        except ImportError:
            return 'PEFT %s has no target_modules="all-linear"' % peft.__version__
    if feature == "linear-combination" and tuple(
            int(x) for x in peft.__version__.split(".")[:2]) < (0, 7):
        return ('PEFT %s combines "linear" by another rule (A <- sum w_i s_i A_i, B <- sum B_i); '
                "clora follows PEFT 0.7 on (A, B <- sum sqrt(w_i s_i) A_i, B_i)" % peft.__version__)
    if feature == "gguf":
        try:
            import gguf  # noqa: F401
        except ImportError as e:
            return "the gguf package does not import (%s)" % e
    return None


@dataclasses.dataclass
class Case:
    name: str
    kind: str                      # models.KINDS
    lora: dict                     # LoraConfig keywords
    needs: tuple = ()              # features this PEFT may lack
    train: list = None             # `clora train` options, or None: not_trained says why
    not_trained: str = ""
    merge: bool = True
    not_merged: str = ""
    gguf: bool = False             # clora's base is the Llama converted to GGUF
    second: dict = None            # a second named adapter ("second") in the folder
    combine: str = None            # linear or cat: PEFT's add_weighted_adapter of both


GPT2 = {"fan_in_fan_out": True}
CASES = [
    Case("gpt2-targets", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn", "c_proj", "c_fc"]),
         train=["--targets", "c_attn,c_proj,c_fc", "--rank", "4", "--alpha", "8"]),
    Case("gpt2-regex", "gpt2", dict(GPT2, r=4, lora_alpha=8,
                                    target_modules=r".*\.h\.1\.(attn\.c_attn|mlp\.c_fc)"),
         train=["--target-regex", r".*\.h\.1\.(attn\.c_attn|mlp\.c_fc)", "--rank", "4"]),
    Case("gpt2-rslora", "gpt2", dict(GPT2, r=8, lora_alpha=16, use_rslora=True,
                                     target_modules=["c_attn"]),
         needs=("rslora",), train=["--scale-mode", "rslora", "--rank", "8", "--alpha", "16"]),
    Case("gpt2-patterns", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn", "c_fc", "c_proj"],
                                       rank_pattern={"c_fc": 2}, alpha_pattern={"mlp.c_proj": 32}),
         train=["--targets", "c_attn,c_fc,c_proj", "--rank", "4", "--rank-pattern", "c_fc=2"]),
    Case("gpt2-gaussian", "gpt2", dict(GPT2, r=4, lora_alpha=8, init_lora_weights="gaussian",
                                       target_modules=["c_attn"]),
         needs=("gaussian",), train=["--init", "gaussian", "--rank", "4"]),
    Case("gpt2-dropout", "gpt2", dict(GPT2, r=4, lora_alpha=8, lora_dropout=0.1,
                                      target_modules=["c_attn"]),
         train=["--dropout", "0.1", "--rank", "4"]),
    Case("gpt2-fan-in-fan-out", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn"]),
         train=[]),
    Case("gpt2-layers", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"],
                                     layers_to_transform=[1], layers_pattern="h"),
         train=["--targets", "c_attn,c_fc", "--layers", "1", "--layers-pattern", "h"]),
    Case("llama-layers", "llama", dict(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                       layers_to_transform=[0]),
         train=["--targets", "q_proj,v_proj", "--layers", "0"]),
    Case("gpt2-bias-lora-only", "gpt2", dict(GPT2, r=4, lora_alpha=8, bias="lora_only",
                                             target_modules=["c_attn"]),
         train=["--bias", "lora_only"]),
    Case("gpt2-bias-all", "gpt2", dict(GPT2, r=4, lora_alpha=8, bias="all", target_modules=["c_attn"]),
         train=["--bias", "all"]),
    Case("gpt2-dora", "gpt2", dict(GPT2, r=4, lora_alpha=8, use_dora=True, target_modules=["c_attn", "c_fc"]),
         needs=("dora",), train=["--dora", "--targets", "c_attn,c_fc"]),
    Case("llama-dora", "llama", dict(r=4, lora_alpha=8, use_dora=True, target_modules=["q_proj", "v_proj"]),
         needs=("dora",), train=["--dora", "--targets", "q_proj,v_proj"]),
    Case("gpt2-dora-rslora", "gpt2", dict(GPT2, r=4, lora_alpha=8, use_dora=True, use_rslora=True,
                                          target_modules=["c_attn", "c_proj"]),
         needs=("dora", "rslora"), train=["--dora", "--scale-mode", "rslora",
                                          "--targets", "c_attn,c_proj"]),
    Case("gpt2-dora-bias", "gpt2", dict(GPT2, r=4, lora_alpha=8, use_dora=True, bias="lora_only",
                                        target_modules=["c_attn"]),
         needs=("dora",), train=["--dora", "--bias", "lora_only"]),
    Case("llama-dora-patterns", "llama", dict(r=4, lora_alpha=8, use_dora=True,
                                              target_modules=["q_proj", "v_proj", "down_proj"],
                                              rank_pattern={"down_proj": 2},
                                              alpha_pattern={"v_proj": 16}),
         needs=("dora",), train=["--dora", "--targets", "q_proj,v_proj,down_proj",
                                 "--rank-pattern", "down_proj=2"]),
    Case("bert-dora", "bert_mean", dict(r=4, lora_alpha=8, use_dora=True,
                                        target_modules=["query", "value"],
                                        modules_to_save=["classifier"]),
         needs=("dora",), train=["--dora"]),
    Case("bert-bias-all", "bert_mean", dict(r=4, lora_alpha=8, bias="all",
                                            target_modules=["query", "value"],
                                            modules_to_save=["classifier"]),
         train=["--bias", "all"]),
    Case("gpt2-embedding", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["wte", "c_attn"]),
         train=["--targets", "wte,c_attn"]),
    Case("llama-embedding", "llama", dict(r=4, lora_alpha=8, target_modules=["embed_tokens", "q_proj"]),
         train=["--targets", "embed_tokens,q_proj"]),
    Case("bert-embedding", "bert_mean", dict(r=4, lora_alpha=8, target_modules=["word_embeddings", "query"],
                                             modules_to_save=["classifier"]),
         train=["--targets", "word_embeddings,query"]),
    Case("bert-query-value", "bert_mean", dict(r=4, lora_alpha=8, target_modules=["query", "value"],
                                               modules_to_save=["classifier"]),
         train=[]),
    Case("bert-seq-cls", "bert_cls", dict(r=4, lora_alpha=8, target_modules=["query", "value"],
                                          task_type="SEQ_CLS"),
         train=[]),
    Case("bert-all-linear-pooler", "bert_pooler", dict(r=4, lora_alpha=8, target_modules="all-linear"),
         needs=("all-linear",),
         not_trained="a BertModel folder brings no head to train; bert-seq-cls trains the pooler head"),
    Case("llama-all", "llama", dict(r=4, lora_alpha=8, target_modules=LLAMA_ALL),
         train=["--targets", ",".join(LLAMA_ALL)]),
    Case("llama-gguf", "llama", dict(r=4, lora_alpha=8, target_modules=LLAMA_ALL), needs=("gguf",),
         gguf=True, train=["--targets", ",".join(LLAMA_ALL)], merge=False,
         not_merged="a GGUF base merges into clora's own folder; llama-all merges the same adapter"),
    Case("gpt2-multi-adapter", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn"]),
         second=dict(GPT2, r=2, lora_alpha=4, target_modules=["c_attn", "c_fc"]),
         not_trained="`clora train` writes one adapter", merge=False,
         not_merged="the combine cases merge from a folder of two adapters"),
    Case("gpt2-combine-linear", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"]),
         second=dict(GPT2, r=4, lora_alpha=16, target_modules=["c_attn", "c_fc"]),
         needs=("linear-combination",), combine="linear", merge=False),
    Case("gpt2-combine-cat", "gpt2", dict(GPT2, r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"]),
         second=dict(GPT2, r=2, lora_alpha=8, target_modules=["c_attn", "c_fc"]),
         combine="cat", merge=False),
    Case("gpt2-combine-cat-embedding", "gpt2",
         dict(GPT2, r=4, lora_alpha=8, target_modules=["wte", "c_attn"]),
         second=dict(GPT2, r=2, lora_alpha=8, target_modules=["wte", "c_attn"]),
         combine="cat", merge=False),
    Case("gpt2-combine-linear-embedding", "gpt2",
         dict(GPT2, r=4, lora_alpha=8, target_modules=["wte", "c_attn"]),
         second=dict(GPT2, r=4, lora_alpha=16, target_modules=["wte", "c_attn"]),
         needs=("linear-combination",), combine="linear", merge=False),
]
COMBINE_WEIGHTS = (0.7, 0.3)


class Suite:
    def __init__(self, clora, work):
        self.clora = os.path.abspath(clora)
        self.work = work
        self.ids = torch.tensor([IDS])
        self.results = []

    # --- clora -------------------------------------------------------------
    def run_clora(self, args):
        proc = subprocess.run([self.clora] + args, capture_output=True, text=True)
        if proc.returncode != 0:
            lines = [l for l in (proc.stderr or proc.stdout).splitlines() if l.strip()]
            message = " / ".join(lines[-2:]) if lines else "(no message)"
            raise Failure("clora %s failed (exit %d): %s" % (args[0], proc.returncode, message))
        return proc.stdout

    def clora_logits(self, model, out, adapter=None, extra=()):
        args = ["logits", "--model", model, "--tokens", ",".join(map(str, IDS)), "--out", out]
        if adapter:
            args += ["--adapter", adapter]
        self.run_clora(args + list(extra))
        return load_file(out)["logits"]

    # --- checks ------------------------------------------------------------
    def compare(self, got, want, what):
        got = got.reshape(got.shape[-2:]) if got.dim() > 2 else got
        want = want.reshape(want.shape[-2:]) if want.dim() > 2 else want
        if tuple(got.shape) != tuple(want.shape):
            raise Failure("%s: clora writes shape %s, the reference is %s"
                          % (what, tuple(got.shape), tuple(want.shape)))
        scale = float(want.abs().max())
        diff = float((got - want).abs().max())
        if not diff <= RTOL * scale:
            raise Failure("%s: max |clora - reference| = %.3g, over %.0e x %.3g"
                          % (what, diff, RTOL, scale))
        return "max diff %.1e of %.2g" % (diff, scale)

    def moved(self, out, base, what):
        scale = float(base.abs().max())
        change = float((out - base).abs().max())
        if not change > MOVED * scale:
            raise Failure("%s moves the output by only %.3g of %.3g: the check would be empty"
                          % (what, change, scale))

    def record(self, case, check, run):
        skipped = next((feature_missing(f) for f in case.needs if feature_missing(f)), None)
        start = time.perf_counter()
        status, detail = "PASS", ""
        if skipped:
            status, detail = "SKIP", skipped
        else:
            try:
                detail = run() or ""
            except Failure as e:
                status, detail = "FAIL", str(e)
            except Exception as e:  # the suite's own fault: say where
                frame = traceback.extract_tb(e.__traceback__)[-1]
                status, detail = "FAIL", "suite error %s: %s (%s:%d)" % (
                    type(e).__name__, e, os.path.basename(frame.filename), frame.lineno)
        if detail.startswith("SKIP:"):
            status, detail = "SKIP", detail[5:].strip()
        self.results.append({"case": case.name, "check": check, "status": status,
                             "detail": detail, "seconds": round(time.perf_counter() - start, 2)})
        print("  %-4s  %-24s %-12s %s" % (status, case.name, check, detail), flush=True)

    # --- PEFT's side -------------------------------------------------------
    def base(self, kind):
        return models.load(kind, self.folders[kind])

    def clora_model(self, case):
        return self.gguf_file if case.gguf else self.folders[case.kind]

    def peft_adapter(self, case):
        """Makes, saves and evaluates the case's PEFT adapter(s), once."""
        if case.name in self.made:
            made = self.made[case.name]
            if isinstance(made, Exception):
                raise made
            return made
        try:
            made = self._make_peft_adapter(case)
        except Exception as e:
            self.made[case.name] = e
            raise
        self.made[case.name] = made
        return made

    def _make_peft_adapter(self, case):
        root = os.path.join(self.work, case.name)
        os.makedirs(root, exist_ok=True)
        base_out = models.output(case.kind, self.base(case.kind), self.ids)
        torch.manual_seed(7)
        model = get_peft_model(self.base(case.kind), LoraConfig(**case.lora))
        if case.second:
            model.add_adapter("second", LoraConfig(**case.second))
        randomize(model)
        model.eval()
        made = {"root": root, "adapter": os.path.join(root, "peft_adapter"), "base_out": base_out}
        model.set_adapter("default")
        made["out"] = models.output(case.kind, model, self.ids)
        if case.second:
            model.set_adapter("second")
            made["out_second"] = models.output(case.kind, model, self.ids)
            model.set_adapter("default")
        model.save_pretrained(made["adapter"], safe_serialization=True)
        if case.combine:
            model.add_weighted_adapter(["default", "second"], list(COMBINE_WEIGHTS), "combined",
                                       combination_type=case.combine)
            model.set_adapter("combined")
            made["out_combined"] = models.output(case.kind, model, self.ids)
            # merged, a head tied to an adapted table sees the merged table
            merged = model.merge_and_unload()  # the active adapter: "combined"
            made["out_combined_merged"] = models.output(case.kind, merged.eval(), self.ids)
        if case.merge:
            merged = model.merge_and_unload()
            made["merged"] = os.path.join(root, "peft_merged")
            merged.save_pretrained(made["merged"], safe_serialization=True)
            made["out_merged"] = models.output(case.kind, merged.eval(), self.ids)
            # A merged folder is a plain model: clora gives a BertModel its
            # mean pooling, the adapter no longer saying "pooler".
            made["out_merged_plain"] = models.output(case.kind, merged, self.ids, pooler=False)
        return made

    # --- the four directions -----------------------------------------------
    def peft_to_clora(self, case):
        made = self.peft_adapter(case)
        self.moved(made["out"], made["base_out"], "PEFT's adapter")
        got = self.clora_logits(self.clora_model(case), os.path.join(made["root"], "a.safetensors"),
                                made["adapter"])
        return self.compare(got, made["out"], "clora logits on PEFT's adapter")

    def second_adapter(self, case):
        made = self.peft_adapter(case)
        self.moved(made["out_second"], made["base_out"], "PEFT's second adapter")
        got = self.clora_logits(self.clora_model(case),
                                os.path.join(made["root"], "second.safetensors"), made["adapter"],
                                ["--adapter-name", "second"])
        return self.compare(got, made["out_second"], "clora logits --adapter-name second")

    def clora_to_peft(self, case):
        if case.train is None:
            return "SKIP: " + case.not_trained
        root = os.path.join(self.work, case.name)
        os.makedirs(root, exist_ok=True)
        data = os.path.join(root, "train.safetensors")
        save_file(dataset(case.kind), data)
        out = os.path.join(root, "clora_adapter")
        self.run_clora(["train", "--model", self.clora_model(case), "--data", data, "--out", out]
                       + TRAIN + case.train)
        got = self.clora_logits(self.clora_model(case), os.path.join(root, "b.safetensors"), out)
        model = peft_load(self.base(case.kind), out)
        want = models.output(case.kind, model, self.ids)
        self.moved(want, models.output(case.kind, self.base(case.kind), self.ids),
                   "clora's trained adapter, in PEFT,")
        return self.compare(got, want, "PEFT on clora's adapter vs clora logits")

    def merge_by_clora(self, case):
        made = self.peft_adapter(case)
        out = os.path.join(made["root"], "clora_merged")
        shutil.rmtree(out, ignore_errors=True)
        self.run_clora(["merge", "--model", self.folders[case.kind], "--adapter", made["adapter"],
                        "--out", out])
        merged = transformers_load(case.kind, out)
        return self.compare(models.output(case.kind, merged, self.ids), made["out_merged"],
                            "transformers on clora's merge vs PEFT merge_and_unload")

    def merge_by_peft(self, case):
        made = self.peft_adapter(case)
        got = self.clora_logits(made["merged"], os.path.join(made["root"], "m.safetensors"))
        return self.compare(got, made["out_merged_plain"], "clora logits on PEFT's merged folder")

    def combined_merge(self, case):
        made = self.peft_adapter(case)
        self.moved(made["out_combined"], made["base_out"], "PEFT's combination")
        out = os.path.join(made["root"], "clora_combined_merged")
        shutil.rmtree(out, ignore_errors=True)
        self.run_clora(["merge", "--model", self.folders[case.kind], "--adapter", made["adapter"],
                        "--combine", combine_spec(), "--combination", case.combine, "--out", out])
        merged = transformers_load(case.kind, out)
        return self.compare(models.output(case.kind, merged, self.ids), made["out_combined_merged"],
                            "transformers on clora's combined merge vs PEFT's merge of "
                            "add_weighted_adapter's")

    def combined_adapter(self, case):
        made = self.peft_adapter(case)
        out = os.path.join(made["root"], "clora_combined")
        shutil.rmtree(out, ignore_errors=True)
        self.run_clora(["merge", "--model", self.folders[case.kind], "--adapter", made["adapter"],
                        "--combine", combine_spec(), "--combination", case.combine,
                        "--adapter-out", out])
        got = self.clora_logits(self.folders[case.kind], os.path.join(made["root"], "c.safetensors"),
                                out)
        detail = self.compare(got, made["out_combined"],
                              "clora logits on its combined adapter vs PEFT add_weighted_adapter")
        model = peft_load(self.base(case.kind), out)
        self.compare(models.output(case.kind, model, self.ids), made["out_combined"],
                     "PEFT on clora's combined adapter vs PEFT add_weighted_adapter")
        return detail

    def base_floor(self, kind):
        """The base model alone: clora logits against transformers (for a
        BertModel folder, without an adapter to bring a head or say
        "pooler", the mean of its last hidden states)."""
        got = self.clora_logits(self.folders[kind], os.path.join(self.work, kind + "-base.safetensors"))
        if kind.startswith("bert"):
            bert = transformers.BertModel.from_pretrained(self.folders[kind]).eval()
            want = models.output("bert_pooler", bert, self.ids, pooler=False)
        else:
            want = models.output(kind, self.base(kind), self.ids)
        return self.compare(got, want, "clora logits on the base model vs transformers")

    def run(self, cases, real=None):
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.folders = models.save_all(os.path.join(self.work, "models"))
        for kind, folder in (real or {}).items():
            self.folders[kind] = (labelled(folder, os.path.join(self.work, "models", kind + "-real"))
                                  if kind == "bert_mean" else folder)
        self.gguf_file = os.path.join(self.work, "models", "llama.gguf")
        if not feature_missing("gguf") and any(c.gguf for c in cases):
            models.llama_to_gguf(self.folders["llama"], self.gguf_file)
        self.made = {}
        for kind in sorted(real or {}):
            self.record(Case(kind, kind, {}), "base", lambda: self.base_floor(kind))
        for case in cases:
            if case.combine:
                self.record(case, "merge:clora", lambda: self.combined_merge(case))
                self.record(case, "adapter", lambda: self.combined_adapter(case))
                continue
            self.record(case, "peft->clora", lambda: self.peft_to_clora(case))
            if case.second:
                self.record(case, "by-name", lambda: self.second_adapter(case))
            if case.train is not None or case.not_trained:
                self.record(case, "clora->peft", lambda: self.clora_to_peft(case))
            if case.merge:
                self.record(case, "merge:clora", lambda: self.merge_by_clora(case))
                self.record(case, "merge:peft", lambda: self.merge_by_peft(case))
            elif case.not_merged:
                self.record(case, "merge", lambda: "SKIP: " + case.not_merged)
        return self.results


def transformers_load(kind, folder):
    try:
        with open(os.path.join(folder, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure("clora merge's folder has no readable config.json: %s" % e)
    if "model_type" not in config:
        raise Failure("clora merge wrote its own model folder (config.json without model_type, "
                      "keys %s), not a Hugging Face one" % ", ".join(sorted(config)[:4]))
    try:
        return models.load(kind, folder)
    except Exception as e:
        raise Failure("transformers cannot load clora merge's folder: %s"
                      % " ".join(str(e).split())[:400])


def labelled(folder, out):
    """A real BertModel folder as a bert_mean one: the same weights (linked)
    with CLASSES labels in its config.json, the count its classifier (in
    the adapters) has."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    config["id2label"] = {str(i): "LABEL_%d" % i for i in range(models.CLASSES)}
    config["label2id"] = {"LABEL_%d" % i: i for i in range(models.CLASSES)}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    for name in os.listdir(folder):
        if name.endswith(".safetensors") or name.endswith(".safetensors.index.json"):
            os.symlink(os.path.abspath(os.path.join(folder, name)), os.path.join(out, name))
    return out


def peft_load(base, folder):
    """PeftModel.from_pretrained, failing when the adapter lacks a tensor
    PEFT's model of it has (PEFT itself only warns, or says nothing)."""
    try:
        model = PeftModel.from_pretrained(base, folder).eval()
    except Exception as e:
        raise Failure("PEFT cannot load clora's adapter: %s" % " ".join(str(e).split())[:400])
    strip = lambda k: k[len("base_model.model."):] if k.startswith("base_model.model.") else k
    held = {strip(k) for k in load_file(os.path.join(folder, "adapter_model.safetensors"))}
    wanted = {strip(k) for k in get_peft_model_state_dict(model)}
    missing = sorted(k for k in wanted - held
                     if not frozen_table(model, k) and not wrapper_copy(k))
    if missing:
        raise Failure("PEFT's model of the adapter has %d tensors the adapter lacks, e.g. %s"
                      " (the adapter holds e.g. %s)" % (len(missing), missing[0], sorted(held)[0]))
    return model


def frozen_table(model, key):
    """Whether `key` of PEFT's state dict is the frozen table of an adapted
    embedding (….embed_tokens.base_layer.weight): PEFT saves those, with
    save_embedding_layers "auto", when the targets name embed_tokens and the
    head shares its table, for a vocabulary resized before training. clora
    never changes them, so an adapter without them loads as the same model
    (the logits check that follows says so)."""
    if not key.endswith(".base_layer.weight"):
        return False
    from peft.tuners.lora import Embedding
    name = key[:-len(".base_layer.weight")]
    for prefix in ("base_model.model.", "base_model.model.model.", ""):
        try:
            return isinstance(model.get_submodule(prefix + name), Embedding)
        except AttributeError:
            continue
    return False


def wrapper_copy(key):
    """Whether `key` of PEFT's state dict is a bias "all" copy of a module to
    save's inner modules (classifier.modules_to_save.bias,
    classifier.original_module.bias): with bias "all" PEFT saves every bias
    of the model under its path, those of the wrapper's two copies too, but
    its loader maps such a key nowhere (the trained bias loads from
    classifier.bias) and the original is the base model's own. An adapter
    without them loads as the same model (the logits check that follows
    says so)."""
    return ".modules_to_save." in key or ".original_module." in key


def combine_spec():
    return "default:%g,second:%g" % COMBINE_WEIGHTS


def randomize(model):
    """Every adapter tensor random and non-zero: lora_A/B (and embedding
    ones), trained biases and heads get N(0, 0.1^2) added; DoRA magnitudes
    are scaled by U(0.5, 1.5) so that they stay positive."""
    gen = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(torch.rand(p.shape, generator=gen) + 0.5)
            elif "lora_" in name or "modules_to_save" in name or p.requires_grad:
                p.add_(torch.randn(p.shape, generator=gen) * 0.1)


def dataset(kind):
    """A tiny training set in `clora train`'s format: 8 rows of 8 token ids,
    all real, with next-token labels (the last position unscored) for the
    decoders and a class per row for BERT."""
    gen = torch.Generator().manual_seed(5)
    inputs = torch.randint(0, models.VOCAB, (8, 8), generator=gen, dtype=torch.int32)
    data = {"inputs": inputs, "attention_mask": torch.ones_like(inputs)}
    if kind in ("gpt2", "llama"):
        labels = torch.full_like(inputs, -100)
        labels[:, :-1] = inputs[:, 1:]
        data["labels"] = labels
    else:
        data["labels"] = torch.randint(0, models.CLASSES, (8,), generator=gen, dtype=torch.int32)
    return data


def main():
    parser = argparse.ArgumentParser(description="clora against PEFT %s" % peft.__version__)
    parser.add_argument("--clora", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--results", help="write the results as JSON")
    parser.add_argument("--model", action="append", default=[], metavar="KIND=FOLDER",
                        help="run KIND's cases on this transformers folder (kinds: %s)"
                        % ", ".join(models.KINDS))
    parser.add_argument("cases", nargs="*")
    args = parser.parse_args()
    real = {}
    for spec in args.model:
        kind, _, folder = spec.partition("=")
        if kind not in models.KINDS or not folder:
            parser.error("--model %s: expected KIND=FOLDER with KIND one of %s"
                         % (spec, ", ".join(models.KINDS)))
        if not os.path.isfile(os.path.join(folder, "config.json")):
            parser.error("--model %s: %s has no config.json" % (spec, folder))
        real[kind] = os.path.abspath(folder)
    cases = [c for c in CASES if not args.cases or any(c.name.startswith(p) for p in args.cases)]
    if real:
        cases = [c for c in cases if c.kind in real]
    if not cases:
        parser.error("no case matches %s" % " ".join(args.cases))
    torch.set_num_threads(1)
    # PEFT's warnings (an adapter's missing keys among them) become checks
    # of their own (peft_load); the rest would bury the case lines.
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    print("PEFT %s, transformers %s, torch %s: max |clora - reference| <= %g x max |reference|"
          % (peft.__version__, transformers.__version__, torch.__version__, RTOL), flush=True)
    start = time.perf_counter()
    results = Suite(args.clora, args.work).run(cases, real)
    counts = {s: sum(r["status"] == s for r in results) for s in ("PASS", "FAIL", "SKIP")}
    ran = counts["PASS"] + counts["FAIL"]
    print("PEFT %s: %d/%d cases passed, %d skipped (%.0f s)" % (
        peft.__version__, counts["PASS"], ran, counts["SKIP"], time.perf_counter() - start))
    if args.results:
        with open(args.results, "w") as f:
            json.dump({"peft": peft.__version__, "transformers": transformers.__version__,
                       "passed": counts["PASS"], "ran": ran, "skipped": counts["SKIP"],
                       "results": results}, f, indent=1)
    return 1 if counts["FAIL"] else 0


if __name__ == "__main__":
    sys.exit(main())
