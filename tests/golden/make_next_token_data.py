#!/usr/bin/python3
"""Writes next_token_24x10.safetensors, the dataset of the determinism check
(tests/determinism_check.sh): 24 sequences of 10 token ids drawn uniformly
from the 50 of tests/golden/tiny_gpt2, labelled with the next token (-100
after the last one), as `clora train` reads datasets ("inputs" and "labels",
both I32 (24, 10)).

Needs only Python's standard library: /usr/bin/python3 make_next_token_data.py
The output is committed so the tests need no Python.
"""
import json
import os
import random
import struct

ROWS, LENGTH, VOCAB = 24, 10, 50


def main():
    rng = random.Random(7)
    ids = [[rng.randrange(VOCAB) for _ in range(LENGTH)] for _ in range(ROWS)]
    labels = [row[1:] + [-100] for row in ids]
    blobs = {
        name: b"".join(struct.pack("<%di" % LENGTH, *row) for row in table)
        for name, table in (("inputs", ids), ("labels", labels))
    }
    header, offset = {}, 0
    for name, blob in blobs.items():
        header[name] = {"dtype": "I32", "shape": [ROWS, LENGTH],
                        "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "next_token_24x10.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs.values()))


if __name__ == "__main__":
    main()
