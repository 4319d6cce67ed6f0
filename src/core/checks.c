/* checks.c — argument checks shared by the ops, each with a message that
 * names the op, the argument, what it got and what it needed. */
#include <math.h>
#include <stdio.h>

#include "core/core.h"

clora_status clora__check_dtype(const char *op, const char *name, const clora_buffer *buffer,
                                clora_dtype dtype)
{
    if (buffer && buffer->dtype != dtype)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: %s holds %s; it must hold %s", op, name,
                           clora_dtype_name(buffer->dtype), clora_dtype_name(dtype));
    return CLORA_OK;
}

clora_status clora__check_present(const char *op, const char *name, const clora_buffer *buffer)
{
    if (!buffer)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op, name);
    return clora__check_dtype(op, name, buffer, CLORA_DTYPE_F32);
}

clora_status clora__check_finite(const char *file, const char *tensor, const float *values,
                                 size_t count)
{
    for (size_t i = 0; i < count; ++i)
        if (!isfinite(values[i]))
            return clora__fail(CLORA_ERR_NON_FINITE,
                               "%s: tensor \"%s\" holds %s at element %zu; clora loads finite "
                               "values only",
                               file, tensor, isnan(values[i]) ? "NaN" : "an infinity", i);
    return CLORA_OK;
}

clora_status clora__check_nonempty(const char *op, const char *name, const clora_buffer *buffer)
{
    clora_status status = clora__check_present(op, name, buffer);
    if (status != CLORA_OK)
        return status;
    if (buffer->numel == 0) {
        char got[64];
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: %s has shape %s; it must not be empty",
                           op, name, clora_buffer_shape_string(buffer, got, sizeof got));
    }
    return CLORA_OK;
}

clora_status clora__check_same_device(const char *op, const char *name, const clora_buffer *buffer,
                                      const clora_device *device)
{
    if (buffer && buffer->device != device)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH,
                           "%s: %s belongs to a different device than the other buffers", op, name);
    return CLORA_OK;
}

clora_status clora__check_float(const char *op, const char *name, const clora_buffer *buffer,
                                const clora_device *device)
{
    clora_status status = clora__check_dtype(op, name, buffer, CLORA_DTYPE_F32);
    return status == CLORA_OK ? clora__check_same_device(op, name, buffer, device) : status;
}

clora_status clora__check_weight(const char *op, const char *name, const clora_buffer *buffer,
                                 const clora_device *device)
{
    if (!buffer)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op, name);
    if (!clora_dtype_is_packed(buffer->dtype)) {
        clora_status status = clora__check_nonempty(op, name, buffer);
        return status == CLORA_OK ? clora__check_same_device(op, name, buffer, device) : status;
    }
    return clora__check_same_device(op, name, buffer, device);
}

clora_status clora__check_shape_2d(const char *op, const char *name, const clora_buffer *buffer,
                                   size_t rows, size_t cols, const char *expected)
{
    if (buffer->ndim != 2 || buffer->shape[0] != rows || buffer->shape[1] != cols) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: %s has shape %s, expected %s = (%zu, %zu)",
                           op, name, clora_buffer_shape_string(buffer, got, sizeof got), expected,
                           rows, cols);
    }
    return CLORA_OK;
}

clora_status clora__check_shape_1d(const char *op, const char *name, const clora_buffer *buffer,
                                   size_t n, const char *expected)
{
    if (buffer->ndim != 1 || buffer->shape[0] != n) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: %s has shape %s, expected %s = (%zu)",
                           op, name, clora_buffer_shape_string(buffer, got, sizeof got), expected, n);
    }
    return CLORA_OK;
}

clora_status clora__check_activation(const char *op, const char *name, const clora_buffer *act,
                                     const clora_buffer *like, size_t cols, const char *expected)
{
    int same = act->ndim == like->ndim && clora__cols(act) == cols;
    for (size_t i = 0; same && i + 1 < act->ndim; ++i)
        same = act->shape[i] == like->shape[i];
    if (!same) {
        char got[64], lead[64];
        clora_buffer_shape_string(like, lead, sizeof lead);
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: %s has shape %s, expected the leading dimensions of x %s and a "
                           "last dimension of %s = %zu",
                           op, name, clora_buffer_shape_string(act, got, sizeof got), lead, expected,
                           cols);
    }
    return CLORA_OK;
}

clora_status clora__check_disjoint(const char *op, const char *out_name, const clora_buffer *out,
                                   const char *other_role, const char *other_name,
                                   const clora_buffer *other)
{
    if (out && other && clora__overlap(out, other))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: output %s overlaps %s %s", op,
                           out_name, other_role, other_name);
    return CLORA_OK;
}

clora_status clora__check_disjoint_all(const char *op, clora_buffer *const *outputs,
                                       const char *const *output_names, size_t n_outputs,
                                       const clora_buffer *const *inputs,
                                       const char *const *input_names, size_t n_inputs)
{
    clora_status status = CLORA_OK;
    for (size_t o = 0; o < n_outputs && status == CLORA_OK; ++o) {
        for (size_t i = 0; i < n_inputs && status == CLORA_OK; ++i)
            status = clora__check_disjoint(op, output_names[o], outputs[o], "input",
                                           input_names[i], inputs[i]);
        for (size_t p = o + 1; p < n_outputs && status == CLORA_OK; ++p)
            status = clora__check_disjoint(op, output_names[o], outputs[o], "output",
                                           output_names[p], outputs[p]);
    }
    return status;
}

clora_status clora__check_kernel_size(const char *op, const char *name, const clora_buffer *buffer)
{
    if (buffer && (buffer->offset > CLORA__MAX_KERNEL_ELEMENTS ||
                   buffer->numel > CLORA__MAX_KERNEL_ELEMENTS - buffer->offset))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: %s reaches past element 2^32 of its cl_mem; clora's kernels "
                           "index with 32 bits",
                           op, name);
    return CLORA_OK;
}
