/* buffer.c — float32 device buffers with shapes, views and host transfers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* Validates ndim/shape and returns the element count through *numel. */
static clora_status check_shape(const char *op, size_t ndim, const size_t *shape, size_t *numel)
{
    if (!shape)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: shape is NULL", op);
    if (ndim < 1 || ndim > CLORA_MAX_DIMS)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: %zu dimensions; a buffer has 1 to %d", op, ndim, CLORA_MAX_DIMS);
    size_t n = 1;
    for (size_t i = 0; i < ndim; ++i) {
        if (shape[i] != 0 && n > SIZE_MAX / sizeof(float) / shape[i])
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: shape overflows the address space",
                               op);
        n *= shape[i];
    }
    *numel = n;
    return CLORA_OK;
}

static clora_status new_handle(clora_buffer **out, clora_device *device, cl_mem mem, size_t offset,
                               size_t ndim, const size_t *shape, size_t numel, clora_dtype dtype)
{
    clora_buffer *buf = clora__calloc(1, sizeof *buf);
    if (!buf)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a buffer handle");
    buf->device = device;
    buf->mem = mem;
    buf->offset = offset;
    buf->ndim = ndim;
    memcpy(buf->shape, shape, ndim * sizeof *shape);
    buf->numel = numel;
    buf->dtype = dtype;
    buf->category = CLORA_MEMORY_OTHER;
    *out = buf;
    return CLORA_OK;
}

/* Bytes of device memory an owning buffer holds. */
static size_t held_bytes(const clora_buffer *b)
{
    return clora_dtype_is_packed(b->dtype) ? clora_dtype_bytes(b->dtype, b->numel)
                                           : b->capacity * sizeof(float);
}

/* Counts an owning buffer's memory in (sign 1) or out (-1) of its
 * category, and frozen weights by their storage type too. */
static void account(const clora_buffer *b, int sign)
{
    const int64_t bytes = sign * (int64_t)held_bytes(b);
    clora__device_account(b->device, b->category, bytes);
    if (b->category == CLORA_MEMORY_FROZEN)
        b->device->frozen_by_dtype[b->dtype] =
            (uint64_t)((int64_t)b->device->frozen_by_dtype[b->dtype] + bytes);
}

/* A new device allocation of `bytes`, zero-filled. */
static clora_status allocate_zeroed(clora_device *device, size_t bytes, cl_mem *out)
{
    *out = NULL;
    if (bytes > device->info.max_alloc_bytes)
        return clora__fail(CLORA_ERR_OUT_OF_DEVICE_MEMORY,
                           "clora_buffer_create: %zu bytes exceed the largest allocation \"%s\" "
                           "allows (%llu bytes)",
                           bytes, device->info.name, (unsigned long long)device->info.max_alloc_bytes);
    if (device->dry) {
        uint64_t held = 0;
        for (int c = 0; c < CLORA_MEMORY_CATEGORY_COUNT; ++c)
            held += device->memory[c];
        return bytes <= device->dry_budget - held
                   ? CLORA_OK
                   : clora__fail(CLORA_ERR_OUT_OF_DEVICE_MEMORY,
                                 "clora_buffer_create: %zu bytes more than the %llu a dry "
                                 "device allows",
                                 bytes, (unsigned long long)device->dry_budget);
    }
    cl_int err;
    cl_mem mem = clora__fault(CLORA__FAULT_DEVICE_ALLOC)
                     ? (err = CL_MEM_OBJECT_ALLOCATION_FAILURE, NULL)
                     : clCreateBuffer(device->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clCreateBuffer");
    /* all-zero bits, four bytes at a time where the size allows (every
     * float32 and int32 buffer; packed rows may be any whole byte count) */
    const cl_uint zero = 0;
    const size_t pattern = bytes % sizeof zero ? 1 : sizeof zero;
    err = clora__fault(CLORA__FAULT_TRANSFER)
              ? CL_OUT_OF_RESOURCES
              : clEnqueueFillBuffer(device->queue, mem, &zero, pattern, 0, bytes, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        clReleaseMemObject(mem);
        return CLORA__FAIL_CL(err, "clEnqueueFillBuffer");
    }
    *out = mem;
    return CLORA_OK;
}

clora_status clora__buffer_create(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                  clora_memory_category category, size_t ndim, const size_t *shape)
{
    if (!out || !device)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_buffer_create: %s is NULL",
                           out ? "device" : "out");
    *out = NULL;
    if (dtype != CLORA_DTYPE_F32 && dtype != CLORA_DTYPE_I32)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "clora_buffer_create: device buffers hold F32 or I32, not %s",
                           clora_dtype_name(dtype));
    size_t numel = 0;
    clora_status status = check_shape("clora_buffer_create", ndim, shape, &numel);
    if (status != CLORA_OK)
        return status;
    if (numel == 0) /* an empty tensor owns no device memory */
        return new_handle(out, device, NULL, 0, ndim, shape, 0, dtype);
    cl_mem mem = NULL;
    status = allocate_zeroed(device, numel * sizeof(float), &mem);
    if (status == CLORA_OK)
        status = new_handle(out, device, mem, 0, ndim, shape, numel, dtype);
    if (status != CLORA_OK) {
        if (mem)
            clReleaseMemObject(mem);
        return status;
    }
    (*out)->owns_memory = 1;
    (*out)->capacity = numel;
    (*out)->category = category;
    account(*out, 1);
    return CLORA_OK;
}

clora_status clora__buffer_create_packed(clora_buffer **out, clora_device *device,
                                         clora_dtype dtype, clora_memory_category category,
                                         size_t rows, size_t cols)
{
    static const char op[] = "clora_buffer_create_packed";
    if (!out || !device)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op, out ? "device" : "out");
    *out = NULL;
    if (!clora_dtype_is_packed(dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "%s: %s is not a packed type (F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K "
                           "or Q6_K)",
                           op, clora_dtype_name(dtype));
    const size_t shape[2] = {rows, cols}, block = clora_dtype_block_size(dtype);
    if (rows == 0 || cols == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: a packed weight of %zu x %zu is empty",
                           op, rows, cols);
    if (cols % block)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: rows of %zu weights are not whole blocks of %zu (%s)", op, cols,
                           block, clora_dtype_name(dtype));
    size_t numel = 0;
    clora_status status = check_shape(op, 2, shape, &numel);
    const size_t row_bytes = clora_dtype_bytes(dtype, cols);
    if (status == CLORA_OK && (row_bytes == 0 || rows > SIZE_MAX / row_bytes))
        status = clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: shape overflows the address space",
                             op);
    cl_mem mem = NULL;
    if (status == CLORA_OK)
        status = allocate_zeroed(device, rows * row_bytes, &mem);
    if (status == CLORA_OK)
        status = new_handle(out, device, mem, 0, 2, shape, numel, dtype);
    if (status != CLORA_OK) {
        if (mem)
            clReleaseMemObject(mem);
        return status;
    }
    (*out)->owns_memory = 1;
    (*out)->capacity = numel;
    (*out)->category = category;
    account(*out, 1);
    return CLORA_OK;
}

clora_status clora_buffer_create_packed(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                        size_t rows, size_t cols)
{
    return clora__buffer_create_packed(out, device, dtype, CLORA_MEMORY_OTHER, rows, cols);
}

size_t clora_buffer_bytes(const clora_buffer *buffer)
{
    if (!buffer)
        return 0;
    return clora_dtype_is_packed(buffer->dtype) ? clora_dtype_bytes(buffer->dtype, buffer->numel)
                                                : buffer->numel * sizeof(float);
}

clora_status clora_buffer_create(clora_buffer **out, clora_device *device, size_t ndim,
                                 const size_t *shape)
{
    return clora__buffer_create(out, device, CLORA_DTYPE_F32, CLORA_MEMORY_OTHER, ndim, shape);
}

clora_status clora_buffer_create_typed(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                       size_t ndim, const size_t *shape)
{
    return clora__buffer_create(out, device, dtype, CLORA_MEMORY_OTHER, ndim, shape);
}

/* Removes pool entry i, which the caller now holds (still counted as
 * scratch). */
static clora__pooled pool_remove(clora_device *dev, size_t i)
{
    const clora__pooled entry = dev->pool[i];
    memmove(&dev->pool[i], &dev->pool[i + 1], (dev->pool_count - i - 1) * sizeof dev->pool[0]);
    dev->pool_count--;
    return entry;
}

/* Takes the pooled allocation that best fits numel elements (holding no
 * more than twice as many), or leaves *mem NULL. */
static void pool_take(clora_device *dev, size_t numel, clora_memory_category category,
                      cl_mem *mem, size_t *capacity)
{
    size_t best = dev->pool_count;
    for (size_t i = 0; i < dev->pool_count; ++i) {
        const size_t c = dev->pool[i].capacity;
        const int fits = c >= numel && c / 2 <= numel;
        if (fits && (best == dev->pool_count || c < dev->pool[best].capacity))
            best = i;
    }
    *mem = NULL;
    if (best == dev->pool_count)
        return;
    const clora__pooled taken = pool_remove(dev, best);
    *mem = taken.mem;
    *capacity = taken.capacity;
    const int64_t bytes = (int64_t)(*capacity * sizeof(float));
    clora__device_account(dev, CLORA_MEMORY_SCRATCH, -bytes);
    clora__device_account(dev, category, bytes);
}

void clora__buffer_recycle(clora_buffer **buf)
{
    clora_buffer *b = *buf;
    *buf = NULL;
    if (!b || !b->owns_memory || !b->mem || clora_dtype_is_packed(b->dtype)) {
        clora_buffer_destroy(b);
        return;
    }
    clora_device *dev = b->device;
    if (dev->pool_count == CLORA__POOL_SLOTS) {
        const clora__pooled old = pool_remove(dev, 0);
        clora__device_account(dev, CLORA_MEMORY_SCRATCH, -(int64_t)(old.capacity * sizeof(float)));
        clReleaseMemObject(old.mem);
    }
    account(b, -1);
    clora__device_account(dev, CLORA_MEMORY_SCRATCH, (int64_t)(b->capacity * sizeof(float)));
    dev->pool[dev->pool_count].mem = b->mem;
    dev->pool[dev->pool_count].capacity = b->capacity;
    dev->pool_count++;
    free(b);
}

/* Zero-fills the first numel elements of b's memory and gives b that shape. */
static clora_status reshape_zeroed(clora_buffer *b, clora_dtype dtype, size_t ndim,
                                   const size_t *shape, size_t numel)
{
    const float zero = 0.0f;
    cl_int err = CL_SUCCESS;
    if (!b->device->dry)
        err = clora__fault(CLORA__FAULT_TRANSFER)
                  ? CL_OUT_OF_RESOURCES
                  : clEnqueueFillBuffer(b->device->queue, b->mem, &zero, sizeof zero, 0,
                                        numel * sizeof(float), 0, NULL, NULL);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clEnqueueFillBuffer");
    b->dtype = dtype;
    b->ndim = ndim;
    memcpy(b->shape, shape, ndim * sizeof *shape);
    b->numel = numel;
    return CLORA_OK;
}

clora_status clora__buffer_ensure(clora_buffer **buf, clora_device *device, clora_dtype dtype,
                                  size_t ndim, const size_t *shape, int *created)
{
    if (created)
        *created = 0;
    clora_buffer *b = *buf;
    if (b && b->dtype == dtype && b->ndim == ndim && !memcmp(b->shape, shape, ndim * sizeof *shape))
        return CLORA_OK;
    size_t numel = 0;
    clora_status status = check_shape("clora__buffer_ensure", ndim, shape, &numel);
    if (status != CLORA_OK)
        return status;
    if (created)
        *created = 1;
    if (b && b->owns_memory && b->mem && b->device == device && numel > 0 && numel <= b->capacity)
        return reshape_zeroed(b, dtype, ndim, shape, numel);
    clora__buffer_recycle(buf);
    cl_mem mem = NULL;
    size_t capacity = 0;
    if (numel > 0)
        pool_take(device, numel, CLORA_MEMORY_ACTIVATIONS, &mem, &capacity);
    if (!mem)
        return clora__buffer_create(buf, device, dtype, CLORA_MEMORY_ACTIVATIONS, ndim, shape);
    status = new_handle(buf, device, mem, 0, ndim, shape, numel, dtype);
    if (status != CLORA_OK) {
        clReleaseMemObject(mem);
        clora__device_account(device, CLORA_MEMORY_ACTIVATIONS,
                              -(int64_t)(capacity * sizeof(float)));
        return status;
    }
    (*buf)->owns_memory = 1;
    (*buf)->capacity = capacity;
    (*buf)->category = CLORA_MEMORY_ACTIVATIONS;
    return reshape_zeroed(*buf, dtype, ndim, shape, numel);
}

clora_status clora__buffer_ensure_like(clora_buffer **buf, const clora_buffer *like)
{
    return clora__buffer_ensure(buf, like->device, CLORA_DTYPE_F32, like->ndim, like->shape,
                                NULL);
}

clora_status clora__buffer_temporary(clora_buffer **out, clora_device *device, size_t n)
{
    return clora__buffer_create(out, device, CLORA_DTYPE_F32, CLORA_MEMORY_SCRATCH, 1, &n);
}

void clora__buffer_set_category(clora_buffer *buffer, clora_memory_category category)
{
    if (!buffer->owns_memory || buffer->category == category) {
        buffer->category = category;
        return;
    }
    account(buffer, -1);
    buffer->category = category;
    account(buffer, 1);
}

clora_status clora_buffer_create_1d(clora_buffer **out, clora_device *device, size_t n)
{
    return clora_buffer_create(out, device, 1, &n);
}

clora_status clora_buffer_create_2d(clora_buffer **out, clora_device *device, size_t rows,
                                    size_t cols)
{
    const size_t shape[2] = {rows, cols};
    return clora_buffer_create(out, device, 2, shape);
}

/* Elements of `mem` from its start: its byte size / 4. */
static clora_status mem_elements(cl_mem mem, size_t *elements)
{
    size_t bytes = 0;
    cl_int err = clGetMemObjectInfo(mem, CL_MEM_SIZE, sizeof bytes, &bytes, NULL);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clGetMemObjectInfo");
    *elements = bytes / sizeof(float);
    return CLORA_OK;
}

clora_status clora_buffer_view(clora_buffer **out, const clora_buffer *base, size_t offset,
                               size_t ndim, const size_t *shape)
{
    if (!out || !base)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_buffer_view: %s is NULL",
                           out ? "base" : "out");
    *out = NULL;
    if (clora_dtype_is_packed(base->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "clora_buffer_view: the buffer holds packed %s weights, which have no "
                           "views",
                           clora_dtype_name(base->dtype));
    size_t numel = 0;
    clora_status status = check_shape("clora_buffer_view", ndim, shape, &numel);
    if (status != CLORA_OK)
        return status;
    if (offset > base->numel || numel > base->numel - offset) {
        char text[64];
        return clora__fail(CLORA_ERR_BUFFER_TOO_SMALL,
                           "clora_buffer_view: %zu elements at offset %zu reach past the end of "
                           "a %zu-element buffer %s",
                           numel, offset, base->numel,
                           clora_buffer_shape_string(base, text, sizeof text));
    }
    status = new_handle(out, base->device, base->mem, base->offset + offset, ndim, shape, numel,
                        base->dtype);
    if (status == CLORA_OK && base->mem)
        clRetainMemObject(base->mem);
    return status;
}

clora_status clora_buffer_wrap(clora_buffer **out, clora_device *device, cl_mem mem, size_t offset,
                               size_t ndim, const size_t *shape)
{
    if (!out || !device || !mem)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_buffer_wrap: %s is NULL",
                           !out ? "out" : !device ? "device" : "mem");
    *out = NULL;
    size_t numel = 0;
    clora_status status = check_shape("clora_buffer_wrap", ndim, shape, &numel);
    if (status != CLORA_OK)
        return status;
    cl_context context = NULL;
    cl_int err = clGetMemObjectInfo(mem, CL_MEM_CONTEXT, sizeof context, &context, NULL);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clGetMemObjectInfo");
    if (context != device->context)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH,
                           "clora_buffer_wrap: the cl_mem belongs to another context");
    size_t elements = 0;
    status = mem_elements(mem, &elements);
    if (status != CLORA_OK)
        return status;
    if (offset > elements || numel > elements - offset)
        return clora__fail(CLORA_ERR_BUFFER_TOO_SMALL,
                           "clora_buffer_wrap: the cl_mem holds %zu floats; the shape needs %zu "
                           "at offset %zu",
                           elements, numel, offset);
    status = new_handle(out, device, mem, offset, ndim, shape, numel, CLORA_DTYPE_F32);
    if (status == CLORA_OK)
        clRetainMemObject(mem);
    return status;
}

void clora_buffer_destroy(clora_buffer *buffer)
{
    if (!buffer)
        return;
    if (buffer->owns_memory)
        account(buffer, -1);
    if (buffer->mem)
        clReleaseMemObject(buffer->mem);
    free(buffer);
}

size_t clora_buffer_ndim(const clora_buffer *buffer)
{
    return buffer ? buffer->ndim : 0;
}

clora_dtype clora_buffer_dtype(const clora_buffer *buffer)
{
    return buffer ? buffer->dtype : CLORA_DTYPE_F32;
}

size_t clora_buffer_dim(const clora_buffer *buffer, size_t i)
{
    return buffer && i < buffer->ndim ? buffer->shape[i] : 0;
}

size_t clora_buffer_numel(const clora_buffer *buffer)
{
    return buffer ? buffer->numel : 0;
}

const char *clora_buffer_shape_string(const clora_buffer *buffer, char *out, size_t out_size)
{
    if (!out || out_size == 0)
        return out;
    if (!buffer) {
        snprintf(out, out_size, "(null)");
        return out;
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < buffer->ndim && used < out_size; ++i) {
        int n = snprintf(out + used, out_size - used, "%s%zu", i ? ", " : "(", buffer->shape[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    if (used < out_size)
        snprintf(out + used, out_size - used, ")");
    return out;
}

clora_device *clora_buffer_device(const clora_buffer *buffer)
{
    return buffer ? buffer->device : NULL;
}

cl_mem clora_buffer_cl_mem(const clora_buffer *buffer)
{
    return buffer ? buffer->mem : NULL;
}

size_t clora_buffer_offset(const clora_buffer *buffer)
{
    return buffer ? buffer->offset : 0;
}

static clora_status check_range(const char *op, const clora_buffer *buffer, clora_dtype dtype,
                                const void *host, size_t offset, size_t count)
{
    if (!buffer || (!host && count > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op,
                           buffer ? "the host pointer" : "buffer");
    if (buffer->dtype != dtype)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: the buffer holds %s, not %s", op,
                           clora_dtype_name(buffer->dtype), clora_dtype_name(dtype));
    if (offset > buffer->numel || count > buffer->numel - offset) {
        char text[64];
        return clora__fail(CLORA_ERR_BUFFER_TOO_SMALL,
                           "%s: %zu elements at offset %zu pass the end of buffer %s (%zu "
                           "elements)",
                           op, count, offset, clora_buffer_shape_string(buffer, text, sizeof text),
                           buffer->numel);
    }
    return CLORA_OK;
}

/* Blocking writes and reads of `bytes` bytes at byte `offset` of the
 * buffer's data (checked by the caller). */
static clora_status write_bytes(clora_buffer *buffer, size_t offset, const void *src, size_t bytes)
{
    if (buffer->device->dry)
        return CLORA_OK;
    cl_int err = clora__fault(CLORA__FAULT_TRANSFER)
                     ? CL_OUT_OF_RESOURCES
                     : clEnqueueWriteBuffer(buffer->device->queue, buffer->mem, CL_TRUE,
                                            buffer->offset * sizeof(float) + offset, bytes, src, 0,
                                            NULL, NULL);
    return err == CL_SUCCESS ? CLORA_OK : CLORA__FAIL_CL(err, "clEnqueueWriteBuffer");
}

static clora_status read_bytes(const clora_buffer *buffer, size_t offset, void *dst, size_t bytes)
{
    if (buffer->device->dry)
        return clora__fail(CLORA_ERR_STATE, "reading a buffer of a dry device: it holds no values");
    cl_int err = clora__fault(CLORA__FAULT_TRANSFER)
                     ? CL_OUT_OF_RESOURCES
                     : clEnqueueReadBuffer(buffer->device->queue, buffer->mem, CL_TRUE,
                                           buffer->offset * sizeof(float) + offset, bytes, dst, 0,
                                           NULL, NULL);
    return err == CL_SUCCESS ? CLORA_OK : CLORA__FAIL_CL(err, "clEnqueueReadBuffer");
}

/* Both element types are 4 bytes wide. */
static clora_status upload(const char *op, clora_buffer *buffer, clora_dtype dtype, size_t offset,
                           const void *src, size_t count)
{
    clora_status status = check_range(op, buffer, dtype, src, offset, count);
    if (status != CLORA_OK || count == 0)
        return status;
    return write_bytes(buffer, offset * sizeof(float), src, count * sizeof(float));
}

static clora_status download(const char *op, const clora_buffer *buffer, clora_dtype dtype,
                             size_t offset, void *dst, size_t count)
{
    clora_status status = check_range(op, buffer, dtype, dst, offset, count);
    if (status != CLORA_OK || count == 0)
        return status;
    return read_bytes(buffer, offset * sizeof(float), dst, count * sizeof(float));
}

clora_status clora_buffer_upload(clora_buffer *buffer, size_t offset, const float *src, size_t count)
{
    return upload("clora_buffer_upload", buffer, CLORA_DTYPE_F32, offset, src, count);
}

clora_status clora_buffer_download(const clora_buffer *buffer, size_t offset, float *dst,
                                   size_t count)
{
    return download("clora_buffer_download", buffer, CLORA_DTYPE_F32, offset, dst, count);
}

clora_status clora_buffer_upload_i32(clora_buffer *buffer, size_t offset, const int32_t *src,
                                     size_t count)
{
    return upload("clora_buffer_upload_i32", buffer, CLORA_DTYPE_I32, offset, src, count);
}

clora_status clora_buffer_download_i32(const clora_buffer *buffer, size_t offset, int32_t *dst,
                                       size_t count)
{
    return download("clora_buffer_download_i32", buffer, CLORA_DTYPE_I32, offset, dst, count);
}

/* Bytes [offset, offset + bytes) of the buffer's data, checked. */
static clora_status check_bytes(const char *op, const clora_buffer *buffer, const void *host,
                                size_t offset, size_t bytes)
{
    if (!buffer || (!host && bytes > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op,
                           buffer ? "the host pointer" : "buffer");
    const size_t size = clora_buffer_bytes(buffer);
    if (offset > size || bytes > size - offset)
        return clora__fail(CLORA_ERR_BUFFER_TOO_SMALL,
                           "%s: %zu bytes at offset %zu pass the end of a buffer of %zu bytes", op,
                           bytes, offset, size);
    return CLORA_OK;
}

clora_status clora_buffer_upload_bytes(clora_buffer *buffer, size_t offset, const void *src,
                                       size_t bytes)
{
    clora_status status = check_bytes("clora_buffer_upload_bytes", buffer, src, offset, bytes);
    if (status != CLORA_OK || bytes == 0)
        return status;
    return write_bytes(buffer, offset, src, bytes);
}

clora_status clora_buffer_download_bytes(const clora_buffer *buffer, size_t offset, void *dst,
                                         size_t bytes)
{
    clora_status status = check_bytes("clora_buffer_download_bytes", buffer, dst, offset, bytes);
    if (status != CLORA_OK || bytes == 0)
        return status;
    return read_bytes(buffer, offset, dst, bytes);
}

clora_status clora_buffer_fill(clora_buffer *buffer, float value)
{
    if (!buffer)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_buffer_fill: buffer is NULL");
    if (buffer->dtype != CLORA_DTYPE_F32)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "clora_buffer_fill: the buffer holds %s",
                           clora_dtype_name(buffer->dtype));
    if (buffer->numel == 0 || buffer->device->dry)
        return CLORA_OK;
    cl_int err = clora__fault(CLORA__FAULT_TRANSFER)
                     ? CL_OUT_OF_RESOURCES
                     : clEnqueueFillBuffer(buffer->device->queue, buffer->mem, &value,
                                           sizeof value, buffer->offset * sizeof(float),
                                           buffer->numel * sizeof(float), 0, NULL, NULL);
    return err == CL_SUCCESS ? CLORA_OK : CLORA__FAIL_CL(err, "clEnqueueFillBuffer");
}

clora_status clora_buffer_copy(clora_buffer *dst, const clora_buffer *src)
{
    if (!dst || !src)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_buffer_copy: %s is NULL",
                           dst ? "src" : "dst");
    if (dst->device != src->device)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH,
                           "clora_buffer_copy: dst and src belong to different devices");
    if (dst->dtype != src->dtype)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "clora_buffer_copy: dst holds %s, src %s",
                           clora_dtype_name(dst->dtype), clora_dtype_name(src->dtype));
    if (dst->numel != src->numel) {
        char a[64], b[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "clora_buffer_copy: dst %s and src %s differ in element count",
                           clora_buffer_shape_string(dst, a, sizeof a),
                           clora_buffer_shape_string(src, b, sizeof b));
    }
    if (clora__overlap(dst, src))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_buffer_copy: dst and src overlap");
    if (src->numel == 0 || src->device->dry)
        return CLORA_OK;
    /* packed buffers have offset 0 (no views) */
    cl_int err = clora__fault(CLORA__FAULT_TRANSFER)
                     ? CL_OUT_OF_RESOURCES
                     : clEnqueueCopyBuffer(src->device->queue, src->mem, dst->mem,
                                           src->offset * sizeof(float),
                                           dst->offset * sizeof(float), clora_buffer_bytes(src),
                                           0, NULL, NULL);
    return err == CL_SUCCESS ? CLORA_OK : CLORA__FAIL_CL(err, "clEnqueueCopyBuffer");
}

size_t clora__rows(const clora_buffer *buffer)
{
    size_t cols = buffer->shape[buffer->ndim - 1];
    return cols ? buffer->numel / cols : 0;
}

size_t clora__cols(const clora_buffer *buffer)
{
    return buffer->shape[buffer->ndim - 1];
}

int clora__overlap(const clora_buffer *a, const clora_buffer *b)
{
    return a->mem && a->mem == b->mem && a->offset < b->offset + b->numel &&
           b->offset < a->offset + a->numel;
}
