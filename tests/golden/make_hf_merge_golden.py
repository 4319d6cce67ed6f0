#!/usr/bin/env python3
"""Checks `clora merge` on Hugging Face folders against real transformers
and PEFT, and writes what tests/test_hf_save.c compares offline.

    /work/venvs/peft062/bin/python  make_hf_merge_golden.py --clora build/tools/clora
    /work/venvs/peft0212/bin/python make_hf_merge_golden.py --clora build/tools/clora [--write]

For tiny GPT-2 (GPT2LMHeadModel, with a tokenizer), BERT (BertModel with
its pooler), Llama (LlamaForCausalLM, lm_head its own) and a Llama whose
lm_head is tied to its embedding, each built from a config with a fixed
seed and saved by save_pretrained(safe_serialization=True), it makes a
PEFT adapter on several Linears with every lora_B drawn non-zero, then:

  - PEFT's merge_and_unload() gives the reference outputs (logits; BERT:
    last_hidden_state and pooler_output) on a padded (2, 7) batch, and a
    folder transformers' own save_pretrained writes from the merged model
    (once whole, once with max_shard_size set to force shards);
  - `clora merge` writes the same model whole, sharded at that size,
    sharded below the largest tensor, and as F16 and BF16;
  - each folder clora wrote is loaded with from_pretrained (no missing,
    unexpected or mismatched keys allowed) and its outputs compared with
    PEFT's (F16 and BF16: with the merged model rounded to that type);
    its tensor names, shard files, index weight_map and total_size with
    what save_pretrained wrote at the same max_shard_size; its config with
    the source's (torch_dtype aside); tokenizer and generation files byte
    for byte.

Every check prints one line; the last line counts them, and the exit
status is 1 if any failed. With --write it also writes
hf_merge_reference.json: what transformers' save_pretrained (this
version) writes for the committed tiny_gpt2 + tiny_gpt2_lora and
tiny_llama + tiny_llama_lora when merged and sharded, which the C test
checks clora's writer against without Python.
"""
import argparse
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import peft
import torch
import transformers
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import (AutoModel, AutoModelForCausalLM, BertConfig, BertModel, GPT2Config,
                          GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
HUB_SPLIT = hasattr(transformers.modeling_utils, "split_torch_state_dict_into_shards")
T = 7
results = []


def check(name, ok, detail=""):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name + (": " + detail if detail else ""))


def spread(model, std):
    """Redraws every weight so that each part matters: matrices N(0, std^2),
    norm weights around 1, other vectors small."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in name.lower() or ".ln_" in name) and \
                    name.endswith("weight"):
                p.uniform_(0.6, 1.4)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)
            else:
                p.normal_(0.0, std)


def batch(vocab):
    g = torch.Generator().manual_seed(7)
    ids = torch.randint(1, vocab, (2, T), generator=g)
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, T - 2:] = 0
    return ids, mask


def outputs(model, ids, mask):
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask)
    if hasattr(out, "logits"):
        return {"logits": out.logits.float()}
    return {"last_hidden_state": out.last_hidden_state.float(),
            "pooler_output": out.pooler_output.float()}


def header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n))


def folder_tensors(folder):
    """{tensor: file} of a saved folder, sharded or not."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            return json.load(f)["weight_map"]
    return {k: "model.safetensors" for k in header(os.path.join(folder, "model.safetensors"))
            if k != "__metadata__"}


def weight_files(folder):
    return sorted(f for f in os.listdir(folder) if f.startswith("model") and
                  (f.endswith(".safetensors") or f.endswith(".index.json")))


def run_clora(clora, *args):
    done = subprocess.run([clora, "merge", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError("clora merge " + " ".join(args) + ":\n" + done.stderr)


def compare(name, got, want, atol):
    worst = max(float((got[k] - want[k]).abs().max()) for k in want)
    check(name, worst <= atol, "max |diff| %.3g (tolerance %.1g)" % (worst, atol))


def load(cls, folder, dtype=None):
    kwargs = {"output_loading_info": True}
    if dtype is not None:
        kwargs["torch_dtype"] = dtype
    model, info = cls.from_pretrained(folder, **kwargs)
    bad = {k: v for k, v in info.items() if v}
    return model.eval(), bad


def case(name, clora, work, make, cls, targets, fan_in_fan_out, shard, small_shard,
         tokenizer=None):
    torch.manual_seed(sum(map(ord, name)))
    model = make()
    spread(model, 0.2)
    model.eval()
    src = os.path.join(work, name, "source")
    model.save_pretrained(src, safe_serialization=True)
    if tokenizer:
        for f in os.listdir(tokenizer):
            if f != "README.md":
                shutil.copy(os.path.join(tokenizer, f), src)
    ids, mask = batch(model.config.vocab_size)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=targets, lora_dropout=0.0,
                      fan_in_fan_out=fan_in_fan_out)
    peft_model = get_peft_model(model, lora)
    with torch.no_grad():
        for n, p in peft_model.named_parameters():
            if "lora_B" in n:
                p.normal_(0.0, 0.5)
    peft_model.eval()
    adapter = os.path.join(work, name, "adapter")
    peft_model.save_pretrained(adapter, safe_serialization=True)
    with_lora = outputs(peft_model, ids, mask)
    merged = peft_model.merge_and_unload()
    want = outputs(merged, ids, mask)
    compare(name + ": PEFT's merge_and_unload equals its adapter", want, with_lora, 1e-4)
    ref_whole = os.path.join(work, name, "transformers_whole")
    ref_sharded = os.path.join(work, name, "transformers_sharded")
    ref_small = os.path.join(work, name, "transformers_small")
    merged.save_pretrained(ref_whole, safe_serialization=True)
    merged.save_pretrained(ref_sharded, safe_serialization=True, max_shard_size=shard)
    merged.save_pretrained(ref_small, safe_serialization=True, max_shard_size=small_shard)

    runs = {"whole": [], "sharded": ["--max-shard-size", str(shard)],
            "below the largest tensor": ["--max-shard-size", str(small_shard)],
            "f16": ["--out-dtype", "f16"], "bf16": ["--out-dtype", "bf16"]}
    refs = {"whole": ref_whole, "sharded": ref_sharded, "below the largest tensor": ref_small}
    for run, extra in runs.items():
        out = os.path.join(work, name, "clora_" + run.replace(" ", "_"))
        run_clora(clora, "--model", src, "--adapter", adapter, "--out", out, *extra)
        dtype = {"f16": torch.float16, "bf16": torch.bfloat16}.get(run)
        loaded, bad = load(cls, out, torch.float32 if dtype else None)
        check("%s %s: from_pretrained loads every key" % (name, run), not bad, str(bad))
        got = outputs(loaded, ids, mask)
        if dtype is None:
            compare("%s %s: transformers on clora's folder equals PEFT's merge" % (name, run),
                    got, want, 2e-5)
        else:
            rounded = type(merged)(merged.config)
            rounded.load_state_dict({k: v.to(dtype).float()
                                     for k, v in merged.state_dict().items()}, strict=False)
            rounded.tie_weights()
            compare("%s %s: equals PEFT's merge rounded to %s" % (name, run, run),
                    got, outputs(rounded.eval(), ids, mask), 2e-2 if run == "bf16" else 2e-3)
            dtypes = {v["dtype"] for k, v in header(os.path.join(out, "model.safetensors")).items()
                      if k != "__metadata__" and v["dtype"] in ("F32", "F16", "BF16")}
            with open(os.path.join(out, "config.json")) as f:
                torch_dtype = json.load(f)["torch_dtype"]
            check("%s %s: every float tensor %s, torch_dtype %s" % (name, run, run.upper(),
                                                                   torch_dtype),
                  dtypes == {run.upper()} and torch_dtype ==
                  {"f16": "float16", "bf16": "bfloat16"}[run])
        if run in refs:
            ref = refs[run]
            mine, theirs = folder_tensors(out), folder_tensors(ref)
            check("%s %s: the tensor names save_pretrained writes" % (name, run),
                  set(mine) == set(theirs),
                  "only clora: %s, only transformers: %s" % (sorted(set(mine) - set(theirs)),
                                                             sorted(set(theirs) - set(mine))))
            same = weight_files(out) == weight_files(ref) and mine == theirs
            detail = "clora %d files, transformers %d" % (len(weight_files(out)),
                                                          len(weight_files(ref)))
            if run == "below the largest tensor" and not HUB_SPLIT:
                # transformers before huggingface_hub's split closes the open
                # shard before a tensor over the limit; clora splits as 4.49
                print("note %s %s: %s the files save_pretrained writes (%s; this transformers "
                      "splits tensors over the limit another way)" %
                      (name, run, "the same as" if same else "other than", detail))
            else:
                check("%s %s: the files and weight_map save_pretrained writes" % (name, run),
                      same, detail)
            if os.path.exists(os.path.join(ref, "model.safetensors.index.json")):
                with open(os.path.join(out, "model.safetensors.index.json")) as f:
                    a = json.load(f)["metadata"]
                with open(os.path.join(ref, "model.safetensors.index.json")) as f:
                    b = json.load(f)["metadata"]
                check("%s %s: index metadata" % (name, run), a == b, "%s vs %s" % (a, b))
            meta = {header(os.path.join(out, f)).get("__metadata__", {}).get("format")
                    for f in weight_files(out) if f.endswith(".safetensors")}
            check("%s %s: metadata format=pt in every file" % (name, run), meta == {"pt"})
        with open(os.path.join(src, "config.json")) as f:
            a = json.load(f)
        with open(os.path.join(out, "config.json")) as f:
            b = json.load(f)
        a.pop("torch_dtype", None)
        b.pop("torch_dtype", None)
        check("%s %s: the source's config.json" % (name, run), a == b)
        for f in sorted(os.listdir(src)):
            if f.endswith(".json") and f.startswith(("config", "model")) or \
                    f.endswith(".safetensors"):
                continue
            with open(os.path.join(src, f), "rb") as x, open(os.path.join(out, f), "rb") as y:
                check("%s %s: %s copied" % (name, run, f), x.read() == y.read())
    return merged


def gpt2():
    return GPT2LMHeadModel(GPT2Config(vocab_size=50, n_positions=16, n_embd=32, n_layer=2,
                                      n_head=4))


def bert():
    return BertModel(BertConfig(vocab_size=60, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=4, intermediate_size=64,
                                max_position_embeddings=16, type_vocab_size=2))


def llama(tied):
    def make():
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=50, hidden_size=24, intermediate_size=37, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-5,
            rope_theta=500.0, max_position_embeddings=64, tie_word_embeddings=tied))
    return make


def reference_for_c(work):
    """What save_pretrained writes for the committed tiny models merged by
    PEFT, sharded: the C test checks clora's writer against it."""
    ref = {"transformers": transformers.__version__, "peft": peft.__version__, "cases": {}}
    for name, cls, shard in (("tiny_gpt2", GPT2LMHeadModel, 20000),
                             ("tiny_llama", LlamaForCausalLM, 8000)):
        base = cls.from_pretrained(os.path.join(HERE, name))
        merged = PeftModel.from_pretrained(base, os.path.join(HERE, name + "_lora"))
        merged = merged.merge_and_unload()
        out = os.path.join(work, "c_" + name)
        merged.save_pretrained(out, safe_serialization=True, max_shard_size=shard)
        with open(os.path.join(out, "model.safetensors.index.json")) as f:
            index = json.load(f)
        ref["cases"][name] = {"max_shard_size": shard, "files": weight_files(out),
                              "index": index}
    path = os.path.join(HERE, "hf_merge_reference.json")
    with open(path, "w") as f:
        json.dump(ref, f, indent=1, sort_keys=True)
        f.write("\n")
    print("wrote", path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clora", required=True, help="the clora command")
    parser.add_argument("--write", action="store_true",
                        help="also write hf_merge_reference.json for the C test")
    args = parser.parse_args()
    clora = os.path.abspath(args.clora)
    print("transformers %s, PEFT %s, torch %s" % (transformers.__version__, peft.__version__,
                                                  torch.__version__))
    with tempfile.TemporaryDirectory() as work:
        case("gpt2", clora, work, gpt2, AutoModelForCausalLM, ["c_attn", "c_proj", "c_fc"],
             True, 20000, 10000, tokenizer=os.path.join(HERE, "gpt2_tokenizer"))
        case("bert", clora, work, bert, AutoModel,
             ["query", "value", "intermediate.dense", "output.dense"], False, 20000, 5000)
        targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        case("llama", clora, work, llama(False), AutoModelForCausalLM, targets, False, 8000,
             3000)
        case("llama_tied", clora, work, llama(True), AutoModelForCausalLM, targets, False, 8000,
             3000)
        if args.write:
            reference_for_c(work)
    failed = results.count(False)
    print("%d checks, %d failed (transformers %s, PEFT %s)" % (len(results), failed,
                                                              transformers.__version__,
                                                              peft.__version__))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
