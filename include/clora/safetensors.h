/* clora/safetensors.h — reading and writing safetensors files.
 *
 * The format: an 8-byte little-endian length N, N bytes of UTF-8 JSON (a
 * "__metadata__" string map and one entry per tensor: dtype, shape,
 * data_offsets relative to the data section), then the tensor bytes.
 *
 * The reader treats every file as untrusted and rejects, with
 * CLORA_ERR_FORMAT and a message saying what and where: files under 8
 * bytes; N over 100,000,000; a header past the end of the file; invalid
 * UTF-8 or JSON; duplicate keys; entries that are not objects, unknown
 * dtypes, shapes or offsets that are not non-negative integers; tensors
 * that overlap, leave holes, or do not start at 0; byte sizes that differ
 * from product(shape) × dtype size; arithmetic overflow; and bytes after
 * the last tensor. Empty tensors and 0-d scalars are legal. It never reads
 * outside the file.
 *
 * The writer lays tensors out by dtype size (largest first), then name, pads
 * the header with spaces to a multiple of 8 bytes, and writes through a
 * temporary file renamed over the target, so a failed write leaves any
 * previous file untouched.
 */
#ifndef CLORA_SAFETENSORS_H
#define CLORA_SAFETENSORS_H

#include <stddef.h>

#include "clora/dtype.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_safetensors clora_safetensors;
typedef struct clora_safetensors_writer clora_safetensors_writer;

/* One tensor of an open file; pointers stay valid until the file is closed. */
typedef struct clora_tensor_view {
    const char *name;
    clora_dtype dtype;
    size_t ndim;
    const size_t *shape; /* ndim entries; NULL for a 0-d scalar */
    size_t numel;        /* product of shape; 1 for a scalar */
    const void *data;    /* little-endian bytes */
    size_t nbytes;
} clora_tensor_view;

/* Opens and validates a file (memory-mapped). Close with
 * clora_safetensors_close(). CLORA_ERR_IO if it cannot be read. */
clora_status clora_safetensors_open(clora_safetensors **out, const char *path);

/* Validates `size` bytes already in memory (copied). */
clora_status clora_safetensors_parse(clora_safetensors **out, const void *bytes, size_t size);

/* NULL is a no-op. */
void clora_safetensors_close(clora_safetensors *file);

/* Number of tensors. */
size_t clora_safetensors_count(const clora_safetensors *file);

/* Tensor `index`, counting in data-offset order. */
clora_status clora_safetensors_get(const clora_safetensors *file, size_t index,
                                   clora_tensor_view *view);

/* The tensor called `name`; CLORA_ERR_NOT_FOUND if there is none. */
clora_status clora_safetensors_find(const clora_safetensors *file, const char *name,
                                    clora_tensor_view *view);

/* The "__metadata__" entries, in file order. */
size_t clora_safetensors_metadata_count(const clora_safetensors *file);
clora_status clora_safetensors_metadata_at(const clora_safetensors *file, size_t index,
                                           const char **key, const char **value);
/* The value for `key`, or NULL. */
const char *clora_safetensors_metadata(const clora_safetensors *file, const char *key);

/* Byte sizes of the header JSON and of the whole file. */
size_t clora_safetensors_header_size(const clora_safetensors *file);
size_t clora_safetensors_file_size(const clora_safetensors *file);

/* Converts a tensor of F32, F16, BF16 or F64 into view->numel floats;
 * CLORA_ERR_DTYPE_MISMATCH for any other dtype. */
clora_status clora_tensor_to_f32(const clora_tensor_view *view, float *dst);

/* ---- writing ------------------------------------------------------------ */

clora_status clora_safetensors_writer_create(clora_safetensors_writer **out);

/* NULL is a no-op. */
void clora_safetensors_writer_destroy(clora_safetensors_writer *writer);

/* Adds a tensor, copying product(shape) elements of `dtype` from `data`
 * (which may be NULL when that product is 0). Names must be unique, not
 * empty and not "__metadata__". */
clora_status clora_safetensors_writer_add(clora_safetensors_writer *writer, const char *name,
                                          clora_dtype dtype, size_t ndim, const size_t *shape,
                                          const void *data);

/* Sets a "__metadata__" entry (replacing an earlier value of the key). */
clora_status clora_safetensors_writer_metadata(clora_safetensors_writer *writer, const char *key,
                                               const char *value);

/* The whole file in memory (free() it). */
clora_status clora_safetensors_writer_serialize(const clora_safetensors_writer *writer,
                                                void **bytes, size_t *size);

/* Writes the file atomically: a temporary file beside `path`, flushed, then
 * renamed over it. On failure nothing at `path` changes. */
clora_status clora_safetensors_writer_write(const clora_safetensors_writer *writer,
                                            const char *path);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_SAFETENSORS_H */
