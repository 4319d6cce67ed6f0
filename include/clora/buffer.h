/* clora/buffer.h — device buffers with shapes.
 *
 * A clora_buffer is a dense row-major tensor of float32 (or int32, for token
 * ids and class labels) on one device, shaped
 * PyTorch-style (outermost dimension first): a (N, in) activation has N rows
 * of `in` contiguous floats. It is a window into an OpenCL buffer starting at
 * an element offset, so views and buffers wrapped from an application's own
 * cl_mem work everywhere a buffer does.
 *
 * Ownership: a buffer keeps its cl_mem alive (retained), so a view stays valid
 * after the buffer it came from is destroyed. The device must outlive every
 * buffer created on it.
 */
#ifndef CLORA_BUFFER_H
#define CLORA_BUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "clora/device.h"
#include "clora/dtype.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLORA_MAX_DIMS 4

typedef struct clora_buffer clora_buffer;

/* A new zero-filled buffer of shape[0] x ... x shape[ndim - 1] floats,
 * 1 <= ndim <= CLORA_MAX_DIMS. A dimension may be 0: the buffer is then empty
 * and owns no device memory (clora_buffer_cl_mem() returns NULL); ops reject
 * empty operands with a status that says which one. */
clora_status clora_buffer_create(clora_buffer **out, clora_device *device, size_t ndim,
                                 const size_t *shape);

/* The same with an element type: CLORA_DTYPE_F32 or CLORA_DTYPE_I32
 * (anything else: CLORA_ERR_DTYPE_MISMATCH). */
clora_status clora_buffer_create_typed(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                       size_t ndim, const size_t *shape);

/* A zero-filled buffer for a frozen weight stored packed: (rows, cols)
 * weights of a packed dtype (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K,
 * Q6_K; clora/dtype.h), each row a whole number of blocks, in
 * clora_buffer_bytes() bytes laid out as GGUF lays them out. Its data moves
 * with clora_buffer_upload_bytes() / _download_bytes(); the Linear ops and
 * embedding lookups read it as the float32 weight it stands for, every
 * other op refuses it (CLORA_ERR_DTYPE_MISMATCH), and it has no views. */
clora_status clora_buffer_create_packed(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                        size_t rows, size_t cols);

/* Bytes of the buffer's data: numel * 4 for F32 and I32, the packed size
 * for packed weights. */
size_t clora_buffer_bytes(const clora_buffer *buffer);

/* Shorthands for 1-D (n) and 2-D (rows, cols) float32 buffers. */
clora_status clora_buffer_create_1d(clora_buffer **out, clora_device *device, size_t n);
clora_status clora_buffer_create_2d(clora_buffer **out, clora_device *device, size_t rows,
                                    size_t cols);

/* A view of `base`: `ndim`/`shape` elements starting `offset` elements into
 * base. CLORA_ERR_BUFFER_TOO_SMALL if it would reach past base's end. */
clora_status clora_buffer_view(clora_buffer **out, const clora_buffer *base, size_t offset,
                               size_t ndim, const size_t *shape);

/* Wraps an application's cl_mem (retained here, released on destroy) as a
 * buffer of `shape` starting `offset` floats in. The cl_mem must belong to
 * the device's context and hold offset + numel floats, else
 * CLORA_ERR_BUFFER_TOO_SMALL. */
clora_status clora_buffer_wrap(clora_buffer **out, clora_device *device, cl_mem mem,
                               size_t offset, size_t ndim, const size_t *shape);

/* Releases the handle and its reference on the cl_mem. NULL is a no-op. */
void clora_buffer_destroy(clora_buffer *buffer);

size_t clora_buffer_ndim(const clora_buffer *buffer);
/* CLORA_DTYPE_F32 or CLORA_DTYPE_I32, or a packed weight's type. */
clora_dtype clora_buffer_dtype(const clora_buffer *buffer);
/* Dimension i (0 = outermost); 0 if i >= ndim. */
size_t clora_buffer_dim(const clora_buffer *buffer, size_t i);
/* Number of elements: the product of the shape. */
size_t clora_buffer_numel(const clora_buffer *buffer);
/* Writes "(2, 3)" style text into out (always NUL-terminated); returns out. */
const char *clora_buffer_shape_string(const clora_buffer *buffer, char *out, size_t out_size);

clora_device *clora_buffer_device(const clora_buffer *buffer);
/* The OpenCL buffer (borrowed) and the element offset into it. */
cl_mem clora_buffer_cl_mem(const clora_buffer *buffer);
size_t clora_buffer_offset(const clora_buffer *buffer);

/* Blocking copies of `count` elements between host memory and elements
 * [offset, offset + count) of the buffer. CLORA_ERR_BUFFER_TOO_SMALL if that
 * range passes the buffer's end; CLORA_ERR_DTYPE_MISMATCH if the buffer
 * holds the other type. */
clora_status clora_buffer_upload(clora_buffer *buffer, size_t offset, const float *src,
                                 size_t count);
clora_status clora_buffer_download(const clora_buffer *buffer, size_t offset, float *dst,
                                   size_t count);
clora_status clora_buffer_upload_i32(clora_buffer *buffer, size_t offset, const int32_t *src,
                                     size_t count);
clora_status clora_buffer_download_i32(const clora_buffer *buffer, size_t offset, int32_t *dst,
                                       size_t count);

/* Blocking copies of `bytes` raw bytes between host memory and bytes
 * [offset, offset + bytes) of the buffer's data, of any element type
 * (packed weights as stored). CLORA_ERR_BUFFER_TOO_SMALL past its end. */
clora_status clora_buffer_upload_bytes(clora_buffer *buffer, size_t offset, const void *src,
                                       size_t bytes);
clora_status clora_buffer_download_bytes(const clora_buffer *buffer, size_t offset, void *dst,
                                         size_t bytes);

/* Sets every element of a float32 buffer to `value` (enqueued; ordered
 * with later work). */
clora_status clora_buffer_fill(clora_buffer *buffer, float value);

/* Copies src into dst (enqueued). Both must have the same element type and
 * number of elements, else CLORA_ERR_DTYPE_MISMATCH / CLORA_ERR_SHAPE_MISMATCH. */
clora_status clora_buffer_copy(clora_buffer *dst, const clora_buffer *src);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_BUFFER_H */
