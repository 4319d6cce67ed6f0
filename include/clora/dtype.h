/* clora/dtype.h — element types: those safetensors names, and GGUF's block
 * types.
 *
 * Device buffers hold F32 (every op) or I32 (token ids, class labels), and
 * frozen weights may also be stored packed: F16, BF16, or one of GGUF's
 * block types Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K, byte for byte as GGUF
 * stores them (see clora_buffer_create_packed()). A block type stores each
 * row of a weight as blocks of clora_dtype_block_size() weights in
 * clora_dtype_block_bytes() bytes:
 *
 *   Q8_0  32 weights in 34 bytes: f16 scale d, 32 int8 q; w = d * q
 *   Q4_0  32 in 18: f16 d, 16 bytes; byte j holds weight j in its low and
 *         weight j + 16 in its high nibble; w = d * (q - 8)
 *   Q4_1  32 in 20: f16 d, f16 m, 16 bytes as Q4_0; w = d * q + m
 *   Q4_K  256 in 144, Q5_K 256 in 176, Q6_K 256 in 210: super-blocks with
 *         packed sub-block scales, as llama.cpp defines them
 *
 * Safetensors tensors of F16, BF16 and F64 convert to F32 on load; the
 * other safetensors types can be listed but not loaded.
 */
#ifndef CLORA_DTYPE_H
#define CLORA_DTYPE_H

#include <stddef.h>

#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X(enumerator suffix, safetensors name, bits per element) */
#define CLORA_DTYPE_TABLE(X)        \
    X(F32, "F32", 32)               \
    X(I32, "I32", 32)               \
    X(F16, "F16", 16)               \
    X(BF16, "BF16", 16)             \
    X(F64, "F64", 64)               \
    X(BOOL, "BOOL", 8)              \
    X(U8, "U8", 8)                  \
    X(I8, "I8", 8)                  \
    X(F8_E5M2, "F8_E5M2", 8)        \
    X(F8_E4M3, "F8_E4M3", 8)        \
    X(F8_E8M0, "F8_E8M0", 8)        \
    X(I16, "I16", 16)               \
    X(U16, "U16", 16)               \
    X(U32, "U32", 32)               \
    X(I64, "I64", 64)               \
    X(U64, "U64", 64)               \
    X(C64, "C64", 64)               \
    X(F4, "F4", 4)                  \
    X(F6_E2M3, "F6_E2M3", 6)        \
    X(F6_E3M2, "F6_E3M2", 6)

/* X(enumerator suffix, name, weights per block, bytes per block): GGUF's
 * block types that clora stores on devices. */
#define CLORA_DTYPE_BLOCK_TABLE(X) \
    X(Q8_0, "Q8_0", 32, 34)         \
    X(Q4_0, "Q4_0", 32, 18)         \
    X(Q4_1, "Q4_1", 32, 20)         \
    X(Q4_K, "Q4_K", 256, 144)       \
    X(Q5_K, "Q5_K", 256, 176)       \
    X(Q6_K, "Q6_K", 256, 210)

typedef enum clora_dtype {
#define CLORA_DTYPE_ENUM_(id, name, bits) CLORA_DTYPE_##id,
    CLORA_DTYPE_TABLE(CLORA_DTYPE_ENUM_)
#undef CLORA_DTYPE_ENUM_
#define CLORA_DTYPE_BLOCK_ENUM_(id, name, block, bytes) CLORA_DTYPE_##id,
    CLORA_DTYPE_BLOCK_TABLE(CLORA_DTYPE_BLOCK_ENUM_)
#undef CLORA_DTYPE_BLOCK_ENUM_
    CLORA_DTYPE_COUNT
} clora_dtype;

/* "F32", "BF16", "Q4_1", ...; "?" for a value outside the tables. */
const char *clora_dtype_name(clora_dtype dtype);

/* Bits per element of a safetensors type; 0 for block types and values
 * outside the tables. */
size_t clora_dtype_bits(clora_dtype dtype);

/* Looks a safetensors dtype name up (exact, case-sensitive; block types
 * are not safetensors names). CLORA_ERR_FORMAT if it is not one. */
clora_status clora_dtype_from_name(const char *name, clora_dtype *dtype);

/* Looks any dtype name up, block types included, ignoring case ("q4_1",
 * "f16"). CLORA_ERR_FORMAT if it is none. */
clora_status clora_dtype_parse(const char *name, clora_dtype *dtype);

/* Weights per block (1 for element types, 32 or 256 for block types) and
 * bytes per block (0 for types below a byte and values outside the
 * tables). */
size_t clora_dtype_block_size(clora_dtype dtype);
size_t clora_dtype_block_bytes(clora_dtype dtype);

/* Bytes of n weights of `dtype` stored one after another; 0 when n is not a
 * whole number of blocks, the type is not byte-sized, or the size
 * overflows. */
size_t clora_dtype_bytes(clora_dtype dtype, size_t n);

/* 1 for the types a frozen weight may be stored as on a device besides
 * F32: F16, BF16 and the block types. */
int clora_dtype_is_packed(clora_dtype dtype);

/* 1 for the packed types clora can also make from float32 values when it
 * loads a model (--base-dtype): F16, BF16, Q8_0, Q4_0 and Q4_1. The K-quant
 * types are read from GGUF files only. */
int clora_dtype_can_quantize(clora_dtype dtype);

/* 1 for F32, F16, BF16 and F64: the types that load as float32. */
int clora_dtype_is_float(clora_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_DTYPE_H */
