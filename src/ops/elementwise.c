/* elementwise.c — launchers of cl/activation.cl (activations and dropout)
 * and of the eight-wide add in cl/attention.cl. Shapes are the caller's:
 * every kernel here runs over all elements (dropout: over (rows, cols),
 * the mask keyed by both). */
#include <math.h>

#include "ops/ops.h"

clora_status clora__activation_forward(clora_buffer *y, const clora_buffer *x,
                                       clora__activation activation)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ACTIVATION_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, x);
    clora__arg_uint(&a, x->numel);
    clora__arg_uint(&a, (size_t)activation);
    const size_t global[1] = {(x->numel + 7) / 8}, local[1] = {64}; /* eight per work-item */
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__activation_backward(clora_buffer *dx, const clora_buffer *dy,
                                        const clora_buffer *x, const clora_buffer *y,
                                        clora__activation activation)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ACTIVATION_BACKWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, dx);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, y);
    clora__arg_uint(&a, x->numel);
    clora__arg_uint(&a, (size_t)activation);
    const size_t global[1] = {(x->numel + 7) / 8}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__dropout(clora_buffer *out, const clora_buffer *in, uint64_t seed, float p,
                           size_t row0)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, in->device, CLORA__KERNEL_DROPOUT_APPLY);
    if (status != CLORA_OK)
        return status;
    size_t rows = clora__rows(in), cols = clora__cols(in);
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, in);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    clora__arg_uint(&a, (cl_uint)(seed & 0xffffffffu));
    clora__arg_uint(&a, (cl_uint)(seed >> 32));
    clora__arg_uint(&a, (cl_uint)floor((double)p * 16777216.0));
    clora__arg_float(&a, 1.0f / (1.0f - p));
    clora__arg_uint(&a, (cl_uint)row0);
    const size_t global[2] = {cols, rows}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

clora_status clora__add(clora_buffer *out, const clora_buffer *a, const clora_buffer *b)
{
    clora__args args;
    clora_status status = clora__args_begin(&args, out->device, CLORA__KERNEL_ADD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&args, out);
    clora__arg_buffer(&args, a);
    clora__arg_buffer(&args, b);
    clora__arg_uint(&args, out->numel);
    const size_t global[1] = {(out->numel + 7) / 8}, local[1] = {64}; /* eight per work-item */
    return clora__args_launch(&args, 1, global, local);
}

clora_status clora__swiglu_forward(clora_buffer *h, const clora_buffer *g, const clora_buffer *u)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, h->device, CLORA__KERNEL_SWIGLU_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, h);
    clora__arg_buffer(&a, g);
    clora__arg_buffer(&a, u);
    clora__arg_uint(&a, h->numel);
    const size_t global[1] = {(h->numel + 7) / 8}, local[1] = {64}; /* eight per work-item */
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__swiglu_backward(clora_buffer *dg, clora_buffer *du, const clora_buffer *dh,
                                    const clora_buffer *g, const clora_buffer *u)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, dh->device, CLORA__KERNEL_SWIGLU_BACKWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, dg);
    clora__arg_buffer(&a, du);
    clora__arg_buffer(&a, dh);
    clora__arg_buffer(&a, g);
    clora__arg_buffer(&a, u);
    clora__arg_uint(&a, dh->numel);
    const size_t global[1] = {(dh->numel + 7) / 8}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}
