#!/usr/bin/python3
"""Seeds for fuzz_model_folder: the golden Hugging Face folders of
tests/golden cut to one layer with F16 tensors (so that each seed stays
under the 64 KiB that make fuzz gives an input), one of them sharded with
an index, and a small clora folder; each as config.json, FUZZ_SEPARATOR,
the weights (and, sharded, FUZZ_SEPARATOR and the index).
   /usr/bin/python3 fuzz/make_model_folder_seeds.py"""
import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "golden")
OUT = os.path.join(HERE, "corpus", "model_folder")
SEPARATOR = b"\n=====\n"
LAYER_KEYS = ("n_layer", "num_hidden_layers")


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    body = data[8 + n :]
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        values = struct.unpack(f"<{(end - begin) // 4}f", body[begin:end])
        tensors[name] = (info["shape"], values)
    return tensors


def safetensors_bytes(tensors):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        shape, values = tensors[name]
        blob = struct.pack(f"<{len(values)}e", *values)
        header[name] = {"dtype": "F16", "shape": list(shape),
                        "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def one_layer(folder):
    with open(os.path.join(GOLDEN, folder, "config.json")) as f:
        config = json.load(f)
    for key in LAYER_KEYS:
        if key in config:
            config[key] = 1
    tensors = read_safetensors(os.path.join(GOLDEN, folder, "model.safetensors"))
    kept = {n: t for n, t in tensors.items()
            if not any(f"{part}.1." in n for part in ("h", "layer", "layers"))}
    return json.dumps(config, indent=1).encode(), kept


def write(name, *parts):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(SEPARATOR.join(parts))


def main():
    os.makedirs(OUT, exist_ok=True)
    for folder in ("tiny_gpt2", "tiny_bert", "tiny_llama", "tiny_qwen2"):
        config, tensors = one_layer(folder)
        write(folder, config, safetensors_bytes(tensors))
    # the Llama folder in one shard named by an index (the target writes the
    # second part as model-00001-of-00001.safetensors when an index follows)
    config, tensors = one_layer("tiny_llama")
    shard = "model-00001-of-00001.safetensors"
    index = {"metadata": {}, "weight_map": {n: shard for n in sorted(tensors)}}
    write("tiny_llama_sharded", config, safetensors_bytes(tensors),
          json.dumps(index, indent=1).encode())
    # a clora folder: fc (4 -> 3, bias), gelu, layer_norm over 3
    tree = {"format": "clora-model", "format_version": 1, "clora_version": "0",
            "model": {"kind": "sequential", "children": [
                {"name": "fc", "kind": "linear", "in_features": 4, "out_features": 3,
                 "bias": True, "weight_layout": "out_in"},
                {"name": "act", "kind": "gelu"},
                {"name": "norm", "kind": "layer_norm", "features": 3, "eps": 1e-5}]}}
    rng = random.Random(1)
    tensors = {"fc.weight": ([3, 4], [rng.gauss(0, 1) for _ in range(12)]),
               "fc.bias": ([3], [rng.gauss(0, 1) for _ in range(3)]),
               "norm.weight": ([3], [1.0] * 3), "norm.bias": ([3], [0.0] * 3)}
    write("clora_small", json.dumps(tree, indent=1).encode(), safetensors_bytes(tensors))


if __name__ == "__main__":
    main()
