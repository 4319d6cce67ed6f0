/* clora/dtype.h — element types, as safetensors names them.
 *
 * Device buffers hold F32 (every op) or I32 (token ids, class labels).
 * The other types appear in files: F16, BF16 and F64 tensors convert to F32
 * on load; the rest can be listed but not loaded.
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

typedef enum clora_dtype {
#define CLORA_DTYPE_ENUM_(id, name, bits) CLORA_DTYPE_##id,
    CLORA_DTYPE_TABLE(CLORA_DTYPE_ENUM_)
#undef CLORA_DTYPE_ENUM_
    CLORA_DTYPE_COUNT
} clora_dtype;

/* "F32", "BF16", ...; "?" for a value outside the table. */
const char *clora_dtype_name(clora_dtype dtype);

/* Bits per element; 0 for a value outside the table. */
size_t clora_dtype_bits(clora_dtype dtype);

/* Looks a safetensors dtype name up (exact, case-sensitive).
 * CLORA_ERR_FORMAT if it is not one. */
clora_status clora_dtype_from_name(const char *name, clora_dtype *dtype);

/* 1 for F32, F16, BF16 and F64: the types that load as float32. */
int clora_dtype_is_float(clora_dtype dtype);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_DTYPE_H */
