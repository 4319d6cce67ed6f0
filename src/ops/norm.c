/* norm.c — launchers of cl/norm.cl: LayerNorm and RMSNorm over the last dimension.
 * N rows (every leading dimension), C features. */
#include "ops/ops.h"

clora_status clora__layer_norm_forward(clora_buffer *y, clora_buffer *mean, clora_buffer *rstd,
                                       const clora_buffer *x, const clora_buffer *weight,
                                       const clora_buffer *bias, float eps)
{
    const size_t rows = clora__rows(x), cols = clora__cols(x);
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_LAYER_NORM_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_mem(&a, mean->mem);
    clora__arg_mem(&a, rstd->mem);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, weight);
    clora__arg_buffer(&a, bias);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    clora__arg_float(&a, eps);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__layer_norm_backward(clora_buffer *dx, clora_buffer *d_weight,
                                        clora_buffer *d_bias, const clora_buffer *dy,
                                        const clora_buffer *x, const clora_buffer *weight,
                                        const clora_buffer *mean, const clora_buffer *rstd)
{
    const size_t rows = clora__rows(x), cols = clora__cols(x);
    clora_device *dev = x->device;
    clora__args a;
    clora_status status;
    if (d_weight || d_bias) {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LAYER_NORM_PARAM_GRADS)))
            return status;
        clora__arg_mem(&a, d_weight ? d_weight->mem : dy->mem);
        clora__arg_uint(&a, d_weight ? d_weight->offset : 0);
        clora__arg_mem(&a, d_bias ? d_bias->mem : dy->mem);
        clora__arg_uint(&a, d_bias ? d_bias->offset : 0);
        clora__arg_uint(&a, d_weight != NULL);
        clora__arg_uint(&a, d_bias != NULL);
        clora__arg_buffer(&a, dy);
        clora__arg_buffer(&a, x);
        clora__arg_mem(&a, mean->mem);
        clora__arg_mem(&a, rstd->mem);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, cols);
        const size_t global[1] = {cols}, local[1] = {64};
        if ((status = clora__args_launch(&a, 1, global, local)))
            return status;
    }
    if (!dx)
        return CLORA_OK;
    if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LAYER_NORM_BACKWARD)))
        return status;
    clora__arg_buffer(&a, dx);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, weight);
    clora__arg_mem(&a, mean->mem);
    clora__arg_mem(&a, rstd->mem);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__rms_norm_forward(clora_buffer *y, clora_buffer *rstd, const clora_buffer *x,
                                     const clora_buffer *weight, float eps)
{
    const size_t rows = clora__rows(x), cols = clora__cols(x);
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_RMS_NORM_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_mem(&a, rstd->mem);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, weight);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    clora__arg_float(&a, eps);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__rms_norm_backward(clora_buffer *dx, clora_buffer *d_weight,
                                      const clora_buffer *dy, const clora_buffer *x,
                                      const clora_buffer *weight, const clora_buffer *rstd)
{
    const size_t rows = clora__rows(x), cols = clora__cols(x);
    clora_device *dev = x->device;
    clora__args a;
    clora_status status;
    if (d_weight) {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_RMS_NORM_WEIGHT_GRAD)))
            return status;
        clora__arg_buffer(&a, d_weight);
        clora__arg_buffer(&a, dy);
        clora__arg_buffer(&a, x);
        clora__arg_mem(&a, rstd->mem);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, cols);
        const size_t global[1] = {cols}, local[1] = {64};
        if ((status = clora__args_launch(&a, 1, global, local)))
            return status;
    }
    if (!dx)
        return CLORA_OK;
    if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_RMS_NORM_BACKWARD)))
        return status;
    clora__arg_buffer(&a, dx);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, weight);
    clora__arg_mem(&a, rstd->mem);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}
