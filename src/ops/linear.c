/* linear.c — the Linear layer: frozen or trainable, forward and backward.
 * GEMMs go to CLBlast (blas.c); bias broadcast and bias gradient run in
 * cl/linear.cl. */
#include <stdio.h>

#include "ops/ops.h"

clora_status clora__linear_dims(const char *op, const clora_buffer *x, const clora_buffer *weight,
                                const char *bias_name, const clora_buffer *bias,
                                clora_weight_layout layout, size_t *in, size_t *out)
{
    clora_status status;
    if ((status = clora__check_nonempty(op, "x", x)) != CLORA_OK ||
        (status = clora__check_weight(op, "weight", weight, x->device)) != CLORA_OK ||
        (status = clora__check_float(op, bias_name, bias, x->device)) != CLORA_OK)
        return status;
    if (layout != CLORA_WEIGHT_OUT_IN && layout != CLORA_WEIGHT_IN_OUT)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown weight layout %d", op,
                           (int)layout);
    *in = clora__cols(x);
    if (weight->ndim != 2) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: weight has shape %s; a weight is 2-D",
                           op, clora_buffer_shape_string(weight, got, sizeof got));
    }
    int out_in = layout == CLORA_WEIGHT_OUT_IN;
    *out = weight->shape[out_in ? 0 : 1];
    status = clora__check_shape_2d(op, "weight", weight, out_in ? *out : *in, out_in ? *in : *out,
                                   out_in ? "(out, in)" : "(in, out)");
    if (status == CLORA_OK && bias)
        status = clora__check_shape_1d(op, bias_name, bias, *out, "(out)");
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "x", x);
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, bias_name, bias);
    return status;
}

/* Rows of x below which CPUs take rows_times_wt instead of a GEMM: a
 * generation step's tokens, where a GEMM pads to whole tiles. */
#define FEW_ROWS 4

/* y (M, out) = x · Wᵀ + beta · y, W (out, in), for a few rows on CPUs. */
static clora_status few_rows_times_wt(clora_buffer *y, const clora_buffer *x,
                                      const clora_buffer *weight, size_t rows, size_t in,
                                      size_t out, float beta)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ROWS_TIMES_WT);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, weight);
    clora__arg_uint(&a, in);
    clora__arg_uint(&a, out);
    clora__arg_uint(&a, rows);
    clora__arg_float(&a, beta);
    const size_t global[2] = {(out + 3) / 4, rows}, local[2] = {16, 1};
    return clora__args_launch(&a, 2, global, local);
}

clora_status clora__gemm_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                              clora_weight_layout layout, float beta)
{
    if (clora_dtype_is_packed(weight->dtype))
        return clora__packed_x_wt(y, x, weight, layout, beta);
    size_t n = clora__rows(x), in = clora__cols(x), out = clora__cols(y);
    int out_in = layout == CLORA_WEIGHT_OUT_IN;
    if (out_in && n <= FEW_ROWS && x->device->rank_kernel == CLORA__RANK_STREAMING)
        return few_rows_times_wt(y, x, weight, n, in, out, beta);
    return clora__sgemm(x->device, 0, out_in, n, out, in, 1.0f, x->mem, x->offset, in,
                        weight->mem, weight->offset, out_in ? in : out, beta, y->mem, y->offset,
                        out);
}

clora_status clora__gemm_dy_w(clora_buffer *dx, const clora_buffer *dy, const clora_buffer *weight,
                              clora_weight_layout layout, float beta)
{
    if (clora_dtype_is_packed(weight->dtype))
        return clora__packed_dy_w(dx, dy, weight, layout, beta);
    size_t n = clora__rows(dy), out = clora__cols(dy), in = clora__cols(dx);
    int out_in = layout == CLORA_WEIGHT_OUT_IN;
    return clora__sgemm(dy->device, 0, !out_in, n, in, out, 1.0f, dy->mem, dy->offset, out,
                        weight->mem, weight->offset, out_in ? in : out, beta, dx->mem, dx->offset,
                        in);
}

/* Launches a linear.cl kernel whose arguments are (out, out_offset, in,
 * in_offset, rows, cols), over `dims` dimensions: (cols) for column_sum, or
 * (ceil(cols / 8), rows) for the bias kernels, eight columns per work-item. */
static clora_status launch_rows_cols(clora__kernel_id id, clora_buffer *out, const clora_buffer *in,
                                     size_t rows, size_t cols, cl_uint dims)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, out->device, id);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, in);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    const size_t across = dims == 2 ? (cols + 7) / 8 : cols;
    const size_t global[2] = {across, rows}, local[2] = {16, 4};
    return clora__args_launch(&a, dims, global, local);
}

/* y (N, out) = b on every row. */
static clora_status bias_broadcast(clora_buffer *y, const clora_buffer *bias)
{
    return launch_rows_cols(CLORA__KERNEL_BIAS_BROADCAST, y, bias, clora__rows(y), clora__cols(y), 2);
}

/* sum (out) += the column sums of x (N, out). */
static clora_status column_sum(clora_buffer *sum, const clora_buffer *x)
{
    return launch_rows_cols(CLORA__KERNEL_COLUMN_SUM, sum, x, clora__rows(x), clora__cols(x), 1);
}

clora_status clora_linear_forward(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                                  const clora_buffer *bias, clora_weight_layout layout)
{
    static const char op[] = "clora_linear_forward";
    size_t in = 0, out = 0;
    clora_status status = clora__linear_dims(op, x, weight, "bias", bias, layout, &in, &out);
    if (status == CLORA_OK)
        status = clora__check_present(op, "y", y);
    if (status == CLORA_OK)
        status = clora__check_float(op, "y", y, x->device);
    if (status == CLORA_OK)
        status = clora__check_activation(op, "y", y, x, out, "out");
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "y", y);
    if (status == CLORA_OK) {
        clora_buffer *outputs[] = {y};
        const char *output_names[] = {"y"};
        const clora_buffer *inputs[] = {x, weight, bias};
        const char *input_names[] = {"x", "weight", "bias"};
        status = clora__check_disjoint_all(op, outputs, output_names, 1, inputs, input_names, 3);
    }
    if (status != CLORA_OK)
        return status;

    /* CPUs: the GEMM with beta = 0, then a pass that adds b. With
     * CLBlast's row-major calls beta = 1 cost 13% of the GEMM on PoCL
     * against 2% for the pass; with the column-major calls clora makes now
     * the two orders measure the same there (beta = 1 / beta = 0: 0.84-1.03
     * at N = 512-1024). */
    if (bias && x->device->info.type == CLORA_DEVICE_CPU) {
        status = clora__gemm_x_wt(y, x, weight, layout, 0.0f);
        if (status == CLORA_OK)
            status = launch_rows_cols(CLORA__KERNEL_BIAS_ADD, y, bias, clora__rows(y),
                                      clora__cols(y), 2);
        return status;
    }
    /* Elsewhere, writing b first lets the GEMM add x · Wᵀ on top (beta =
     * 1): the bias costs one write of y instead of a read-modify-write. */
    if (bias) {
        status = bias_broadcast(y, bias);
        if (status != CLORA_OK)
            return status;
    }
    return clora__gemm_x_wt(y, x, weight, layout, bias ? 1.0f : 0.0f);
}

clora_status clora_linear_backward(clora_buffer *dx, clora_buffer *d_weight, clora_buffer *d_bias,
                                   const clora_buffer *dy, const clora_buffer *x,
                                   const clora_buffer *weight, clora_weight_layout layout)
{
    static const char op[] = "clora_linear_backward";
    size_t in = 0, out = 0;
    clora_status status = clora__linear_dims(op, x, weight, "d_bias", d_bias, layout, &in, &out);
    if (status == CLORA_OK)
        status = clora__check_present(op, "dy", dy);
    if (status == CLORA_OK)
        status = clora__check_float(op, "dy", dy, x->device);
    if (status == CLORA_OK)
        status = clora__check_activation(op, "dy", dy, x, out, "out");
    if (status == CLORA_OK)
        status = clora__check_float(op, "dx", dx, x->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_weight", d_weight, x->device);
    if (status == CLORA_OK && dx)
        status = clora__check_activation(op, "dx", dx, x, in, "in");
    if (status == CLORA_OK && d_weight && clora_dtype_is_packed(weight->dtype))
        status = clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                             "%s: the weight is stored packed (%s) and has no gradient; packed "
                             "weights stay frozen",
                             op, clora_dtype_name(weight->dtype));
    if (status == CLORA_OK && d_weight)
        status = layout == CLORA_WEIGHT_OUT_IN
                     ? clora__check_shape_2d(op, "d_weight", d_weight, out, in, "(out, in)")
                     : clora__check_shape_2d(op, "d_weight", d_weight, in, out, "(in, out)");
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "dy", dy);
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "dx", dx);
    if (status == CLORA_OK) {
        clora_buffer *outputs[] = {dx, d_weight, d_bias};
        const char *output_names[] = {"dx", "d_weight", "d_bias"};
        const clora_buffer *inputs[] = {dy, x, weight};
        const char *input_names[] = {"dy", "x", "weight"};
        status = clora__check_disjoint_all(op, outputs, output_names, 3, inputs, input_names, 3);
    }
    if (status != CLORA_OK)
        return status;

    if (dx && (status = clora__gemm_dy_w(dx, dy, weight, layout, 0.0f)) != CLORA_OK)
        return status;
    if (d_weight) {
        size_t n = clora__rows(x);
        /* (out, in): dW += dyᵀ · x.   (in, out): dW += xᵀ · dy. */
        status = layout == CLORA_WEIGHT_OUT_IN
                     ? clora__sgemm(x->device, 1, 0, out, in, n, 1.0f, dy->mem, dy->offset, out,
                                    x->mem, x->offset, in, 1.0f, d_weight->mem, d_weight->offset,
                                    in)
                     : clora__sgemm(x->device, 1, 0, in, out, n, 1.0f, x->mem, x->offset, in,
                                    dy->mem, dy->offset, out, 1.0f, d_weight->mem,
                                    d_weight->offset, out);
        if (status != CLORA_OK)
            return status;
    }
    if (d_bias)
        status = column_sum(d_bias, dy);
    return status;
}
