/* clora/gguf.h — reading GGUF files (versions 2 and 3): metadata, tensor
 * infos, and tensor data dequantized to float32.
 *
 * The format, little-endian: magic "GGUF", uint32 version, uint64 tensor
 * count, uint64 metadata count; the metadata as key (uint64 length + UTF-8
 * bytes), uint32 value type, value (arrays: uint32 element type, uint64
 * length, elements; strings: uint64 length + bytes); the tensor infos as
 * name, uint32 dimension count (1..4), uint64 dimensions (the first one
 * varies fastest), uint32 tensor type, uint64 offset into the data section;
 * then padding to general.alignment (default 32) and the data section.
 *
 * The reader treats every file as untrusted: every count, length, string,
 * array, dimension, offset and alignment is checked against the file's
 * size before anything is allocated or read, sizes are computed without
 * overflow, tensors must lie inside the data section, aligned, without
 * overlapping, and unknown value or tensor types are errors. Failures are
 * CLORA_ERR_FORMAT (CLORA_ERR_IO when the file cannot be read) with a
 * message that says what is wrong and at which byte offset. Tensor data is
 * read one tensor at a time, on request.
 */
#ifndef CLORA_GGUF_H
#define CLORA_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_gguf clora_gguf;

/* Metadata value types, as the file stores them. Arrays may hold arrays
 * (nested up to 8 deep); clora keeps them, with their element types and
 * lengths, but reads elements only of arrays of numbers, bools and
 * strings. */
typedef enum clora_gguf_value_type {
    CLORA_GGUF_UINT8 = 0,
    CLORA_GGUF_INT8 = 1,
    CLORA_GGUF_UINT16 = 2,
    CLORA_GGUF_INT16 = 3,
    CLORA_GGUF_UINT32 = 4,
    CLORA_GGUF_INT32 = 5,
    CLORA_GGUF_FLOAT32 = 6,
    CLORA_GGUF_BOOL = 7,
    CLORA_GGUF_STRING = 8,
    CLORA_GGUF_ARRAY = 9,
    CLORA_GGUF_UINT64 = 10,
    CLORA_GGUF_INT64 = 11,
    CLORA_GGUF_FLOAT64 = 12
} clora_gguf_value_type;

/* Tensor types (ggml's numbering). clora reads F32, F16, BF16, Q8_0,
 * Q4_0, Q4_1, Q4_K, Q5_K and Q6_K; files with other types open (their
 * infos are listed) but their data cannot be read. */
typedef enum clora_gguf_tensor_type {
    CLORA_GGUF_F32 = 0,
    CLORA_GGUF_F16 = 1,
    CLORA_GGUF_Q4_0 = 2,
    CLORA_GGUF_Q4_1 = 3,
    CLORA_GGUF_Q5_0 = 6,
    CLORA_GGUF_Q5_1 = 7,
    CLORA_GGUF_Q8_0 = 8,
    CLORA_GGUF_Q8_1 = 9,
    CLORA_GGUF_Q2_K = 10,
    CLORA_GGUF_Q3_K = 11,
    CLORA_GGUF_Q4_K = 12,
    CLORA_GGUF_Q5_K = 13,
    CLORA_GGUF_Q6_K = 14,
    CLORA_GGUF_Q8_K = 15,
    CLORA_GGUF_BF16 = 30
} clora_gguf_tensor_type;

/* Whether `path` names a regular file that is a GGUF file by its ending
 * (".gguf") or its first four bytes ("GGUF"); nothing else is checked. */
int clora_gguf_probe(const char *path);

/* Opens a file and validates its header, metadata and tensor infos. The
 * file stays open until clora_gguf_close; a handle may be read from
 * several threads at once (nothing below changes it). */
clora_status clora_gguf_open(clora_gguf **out, const char *path);
/* The same for a file already in memory: `bytes` (size of them) are
 * borrowed and must outlive the handle; `name` (may be NULL) stands for
 * the file in messages. */
clora_status clora_gguf_open_memory(clora_gguf **out, const void *bytes, size_t size,
                                    const char *name);
void clora_gguf_close(clora_gguf *file); /* NULL: no-op */

uint32_t clora_gguf_version(const clora_gguf *file);
/* general.alignment, or 32. */
size_t clora_gguf_alignment(const clora_gguf *file);
/* The file's size, and the byte at which its data section starts (the
 * bytes before it are header, metadata, tensor infos and padding). */
uint64_t clora_gguf_file_size(const clora_gguf *file);
uint64_t clora_gguf_data_offset(const clora_gguf *file);

/* ---- metadata ------------------------------------------------------------------ */

size_t clora_gguf_metadata_count(const clora_gguf *file);
/* Entries are numbered in file order. The key of entry `index`
 * (NUL-terminated; keys may not contain NUL), or NULL when out of range. */
const char *clora_gguf_metadata_key(const clora_gguf *file, size_t index);
/* The index of `key`, or -1. */
long clora_gguf_find(const clora_gguf *file, const char *key);
/* The value type of entry `index`; out of range, a number no type has
 * (its name is "unknown"). */
clora_gguf_value_type clora_gguf_metadata_type(const clora_gguf *file, size_t index);
/* Name of a value type ("uint32", "string", "array"...), or "unknown". */
const char *clora_gguf_value_type_name(clora_gguf_value_type type);

/* Scalars by key: 1 and the value when the key exists with a type that
 * converts exactly (any integer type that fits, bool as 0/1; for floats
 * any numeric type), else 0. */
int clora_gguf_get_u64(const clora_gguf *file, const char *key, uint64_t *out);
int clora_gguf_get_i64(const clora_gguf *file, const char *key, int64_t *out);
int clora_gguf_get_f64(const clora_gguf *file, const char *key, double *out);
int clora_gguf_get_bool(const clora_gguf *file, const char *key, int *out);
/* A string value (not NUL-terminated in general: use *length; it is
 * followed by a NUL in memory), or NULL when absent or not a string. */
const char *clora_gguf_get_string(const clora_gguf *file, const char *key, size_t *length);

/* Arrays by key: 1 with the element type and length when `key` holds an
 * array, else 0. */
int clora_gguf_get_array(const clora_gguf *file, const char *key,
                         clora_gguf_value_type *element_type, size_t *length);
/* Element i of an array of numbers or bools, converted as the scalar
 * getters do; 0 when out of range or not convertible. */
int clora_gguf_array_u64(const clora_gguf *file, const char *key, size_t i, uint64_t *out);
int clora_gguf_array_i64(const clora_gguf *file, const char *key, size_t i, int64_t *out);
int clora_gguf_array_f64(const clora_gguf *file, const char *key, size_t i, double *out);
/* Element i of an array of strings (followed by a NUL in memory), or NULL. */
const char *clora_gguf_array_string(const clora_gguf *file, const char *key, size_t i,
                                    size_t *length);

/* ---- tensors ---------------------------------------------------------------------- */

typedef struct clora_gguf_tensor {
    const char *name;
    clora_gguf_tensor_type type;
    size_t ndim;          /* 1..4 */
    uint64_t dims[4];     /* GGUF order: dims[0] varies fastest (PyTorch's shape reversed) */
    uint64_t elements;
    uint64_t offset;      /* of its data in the file */
    uint64_t bytes;       /* of its data */
} clora_gguf_tensor;

size_t clora_gguf_tensor_count(const clora_gguf *file);
/* Tensor `index`'s info (pointers valid until the file is closed); 0 when
 * out of range. */
int clora_gguf_tensor_info(const clora_gguf *file, size_t index, clora_gguf_tensor *out);
/* The index of tensor `name`, or -1. */
long clora_gguf_find_tensor(const clora_gguf *file, const char *name);
/* "F32", "Q4_K"...; "unknown" for others. */
const char *clora_gguf_tensor_type_name(clora_gguf_tensor_type type);
/* Whether clora can dequantize the type. */
int clora_gguf_type_supported(clora_gguf_tensor_type type);

/* Reads tensor `index` from the file and dequantizes it into dst, which
 * holds info.elements floats, in the tensor's own order (row-major over
 * PyTorch's shape). A type clora cannot dequantize is
 * CLORA_ERR_UNSUPPORTED, with a message naming it. Memory: dst and a
 * bounded staging buffer, never the whole tensor twice. */
clora_status clora_gguf_read_f32(const clora_gguf *file, size_t index, float *dst);
/* The tensor's bytes as stored (info.bytes of them). */
clora_status clora_gguf_read_raw(const clora_gguf *file, size_t index, void *dst);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_GGUF_H */
