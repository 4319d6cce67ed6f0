#!/usr/bin/env python3
"""Writes the GGUF files tests/test_gguf.c reads, with the gguf Python
package (0.10.0) that llama.cpp maintains, and the float32 values its
gguf.quants.dequantize gives for every tensor.

    /work/venv/bin/python make_gguf_golden.py

Writes into gguf/:
  tensors.gguf     version 3, default alignment: a tensor of each type clora
                   reads (F32 in 1 to 4 dimensions, F16 and BF16 with
                   infinities, NaN, subnormals and -0, Q8_0, Q4_0, Q4_1,
                   Q4_K, Q5_K, Q6_K) in odd shapes, and a Q5_0 one, which
                   clora knows but cannot dequantize;
  metadata.gguf    version 3: a value of every type the package writes,
                   arrays of strings, ints, floats, bools and bytes, an
                   array of arrays, and one small tensor;
  v2_align64.gguf  version 2 (the same layout; the package writes 3, so the
                   version it writes is patched) with general.alignment 64;
  expected.safetensors
                   "<file>/<tensor>" -> float32 values in PyTorch's shape
                   (NaN stays NaN).

gguf 0.10.0 quantizes Q8_0, Q4_0, Q4_1 and Q5_0 itself; for the K-quants it
has no quantizer, so their blocks are random bytes with sane f16 scales, and
dequantize gives their values. Every file is read back with GGUFReader.
"""
import os

import numpy as np
import gguf
import gguf.gguf_writer
from gguf import GGMLQuantizationType as T
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "gguf")
rng = np.random.default_rng(11)
expected = {}


def half_bits(values):
    return np.asarray(values, dtype=np.float16).view(np.uint16)


def k_quant_blocks(qtype, rows, cols):
    """Random K-quant blocks whose f16 scales lie in [0.001, 0.05)."""
    n_blocks = rows * cols // 256
    size = gguf.GGML_QUANT_SIZES[qtype][1]
    blocks = rng.integers(0, 256, size=(n_blocks, size), dtype=np.uint8)
    d = half_bits(rng.uniform(0.001, 0.05, n_blocks)).view(np.uint8).reshape(n_blocks, 2)
    dmin = half_bits(rng.uniform(0.001, 0.05, n_blocks)).view(np.uint8).reshape(n_blocks, 2)
    if qtype == T.Q6_K:  # ql, qh, scales, then d at byte 208
        blocks[:, 208:210] = d
    else:  # d, dmin first
        blocks[:, 0:2] = d
        blocks[:, 2:4] = dmin
    return blocks.reshape(rows, cols // 256 * size)


def add(writer, stem, name, qtype, array):
    """Adds a tensor (array: float values, or a quantized byte array) and
    records gguf-py's float32 values for it."""
    if qtype in (T.F32, T.F16):
        data = array.astype(np.float32 if qtype == T.F32 else np.float16)
        writer.add_tensor(name, data)
    else:
        data = array if array.dtype == np.uint8 else gguf.quants.quantize(array, qtype)
        writer.add_tensor(name, data, raw_dtype=qtype)
    values = gguf.quants.dequantize(data if qtype in (T.F32, T.F16) else data, qtype)
    expected[f"{stem}/{name}"] = np.ascontiguousarray(values, dtype=np.float32)


def write(writer, stem):
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    reader = gguf.GGUFReader(os.path.join(OUT, stem + ".gguf"))
    for t in reader.tensors:
        got = gguf.quants.dequantize(t.data, t.tensor_type)
        want = expected[f"{stem}/{t.name}"]
        assert got.shape == want.shape, (stem, t.name, got.shape, want.shape)
        assert np.array_equal(got, want, equal_nan=True), (stem, t.name)


def tensors_file():
    w = gguf.GGUFWriter(os.path.join(OUT, "tensors.gguf"), "clora-test")
    special = [0.0, -0.0, 1.0, -2.5, np.inf, -np.inf, np.nan, 6.0e-8, 1.0e-5, 65504.0]
    add(w, "tensors", "f32.3d", T.F32, rng.standard_normal((3, 5, 7)))
    add(w, "tensors", "f32.vector", T.F32, np.array(special[:7], dtype=np.float32))
    add(w, "tensors", "f32.4d", T.F32, rng.standard_normal((2, 3, 1, 5)))
    f16 = rng.standard_normal((5, 33)).astype(np.float32)
    f16.flat[: len(special)] = special
    add(w, "tensors", "f16", T.F16, f16)
    bf16 = (rng.standard_normal((3, 17)) * 100).astype(np.float32)
    bf16.flat[: len(special)] = special
    add(w, "tensors", "bf16", T.BF16, gguf.quants.quantize(bf16, T.BF16))
    add(w, "tensors", "q8_0", T.Q8_0, rng.standard_normal((2, 3, 64)).astype(np.float32))
    add(w, "tensors", "q4_0", T.Q4_0, rng.standard_normal((5, 64)).astype(np.float32))
    add(w, "tensors", "q4_1", T.Q4_1, (rng.standard_normal((7, 32)) + 0.5).astype(np.float32))
    add(w, "tensors", "q4_k", T.Q4_K, k_quant_blocks(T.Q4_K, 3, 256))
    add(w, "tensors", "q5_k", T.Q5_K, k_quant_blocks(T.Q5_K, 3, 256))
    add(w, "tensors", "q6_k", T.Q6_K, k_quant_blocks(T.Q6_K, 3, 512))
    add(w, "tensors", "q5_0", T.Q5_0, rng.standard_normal((2, 32)).astype(np.float32))
    write(w, "tensors")


def metadata_file():
    w = gguf.GGUFWriter(os.path.join(OUT, "metadata.gguf"), "clora-test")
    w.add_uint8("test.uint8", 200)
    w.add_int8("test.int8", -100)
    w.add_uint16("test.uint16", 65000)
    w.add_int16("test.int16", -32000)
    w.add_uint32("test.uint32", 4000000000)
    w.add_int32("test.int32", -2000000000)
    w.add_float32("test.float32", 0.25)
    w.add_bool("test.true", True)
    w.add_bool("test.false", False)
    w.add_string("test.string", "héllo, wörld")
    w.add_string("test.nul_and_newline", "a\x00b\nc")
    w.add_string("test.long", "0123456789" * 30)
    w.add_uint64("test.uint64", 2**63 + 5)
    w.add_int64("test.int64", -(2**62) - 3)
    w.add_float64("test.float64", -1.0 / 3.0)
    w.add_array("test.strings", ["<s>", "", "ünïcode", "a b"])
    w.add_array("test.ints", [1, -2, 3, 2**31 - 1, -(2**31)])
    w.add_array("test.floats", [0.5, -1.5, 3.0])
    w.add_array("test.bools", [True, False, True])
    w.add_array("test.bytes", b"\x00\x01\xfe\xff")
    w.add_array("test.nested", [[1, 2, 3], ["x", "yz"], [[True], [False, True]]])
    add(w, "metadata", "one", T.F32, np.array([[1.0, 2.0, 3.0]], dtype=np.float32))
    write(w, "metadata")


def v2_file():
    gguf.gguf_writer.GGUF_VERSION = 2
    try:
        w = gguf.GGUFWriter(os.path.join(OUT, "v2_align64.gguf"), "clora-test")
        w.add_custom_alignment(64)
        w.add_name("version two")
        add(w, "v2_align64", "q8_0", T.Q8_0, rng.standard_normal((3, 32)).astype(np.float32))
        add(w, "v2_align64", "f32", T.F32, rng.standard_normal((3, 3)))
        add(w, "v2_align64", "q4_k", T.Q4_K, k_quant_blocks(T.Q4_K, 1, 256))
        write(w, "v2_align64")
    finally:
        gguf.gguf_writer.GGUF_VERSION = gguf.GGUF_VERSION
    reader = gguf.GGUFReader(os.path.join(OUT, "v2_align64.gguf"))
    assert reader.fields["GGUF.version"].parts[0][0] == 2
    assert reader.alignment == 64


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors_file()
    metadata_file()
    v2_file()
    save_file(expected, os.path.join(OUT, "expected.safetensors"))
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")


if __name__ == "__main__":
    main()
