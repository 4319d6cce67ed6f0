#!/usr/bin/env python3
"""Writes gguf-py's float32 values for some tensors of a real GGUF model, for
test_gguf's real_model_matches_gguf_py check (the model is not committed):

    /work/venv/bin/python gguf_spot_check.py MODEL.gguf OUT.safetensors [NAME ...]
    CLORA_GGUF_MODEL=MODEL.gguf CLORA_GGUF_EXPECTED=OUT.safetensors test_gguf

Without names it takes the first tensor of each type in the file and the
last tensor. Each is read with GGUFReader and gguf.quants.dequantize.
"""
import sys

import numpy as np
import gguf
from safetensors.numpy import save_file


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    reader = gguf.GGUFReader(sys.argv[1])
    names = sys.argv[3:]
    if not names:
        seen = set()
        for t in reader.tensors:
            if t.tensor_type not in seen:
                seen.add(t.tensor_type)
                names.append(t.name)
        names.append(reader.tensors[-1].name)
    by_name = {t.name: t for t in reader.tensors}
    out = {}
    for name in names:
        t = by_name[name]
        values = gguf.quants.dequantize(t.data, t.tensor_type)
        out[name] = np.ascontiguousarray(values, dtype=np.float32)
        print(f"{name}: {t.tensor_type.name} {tuple(values.shape)}")
    save_file(out, sys.argv[2])


if __name__ == "__main__":
    main()
