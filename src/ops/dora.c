/* dora.c — DoRA on the LoRA linear op (the math is in clora/dora.h): the
 * LoRA op computes t = drop(x) · Wᵀ + s · h · Bᵀ and its gradients, given
 * c ⊙ dy; cl/dora.cl adds the weight norm, the rescaling by c = m / n,
 * the magnitude's gradient and, under dropout, what the dropped elements
 * of x owe: (x − drop(x)) · Wᵀ in y, drop'(v) − v in dx. */
#include <math.h>
#include <string.h>

#include "ops/ops.h"

/* The norm kernel's code for how W is stored (0 F32, 1 F16, 2 BF16), or -1. */
static int weight_code(const clora_buffer *weight)
{
    switch (weight->dtype) {
    case CLORA_DTYPE_F32: return 0;
    case CLORA_DTYPE_F16: return 1;
    case CLORA_DTYPE_BF16: return 2;
    default: return -1;
    }
}

static clora_status check_weight(const char *op, const clora_buffer *weight)
{
    if (weight && weight_code(weight) < 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: DoRA needs the base weight's row norms, which clora computes for "
                           "F32, F16 and BF16 weights, not for %s",
                           op, clora_dtype_name(weight->dtype));
    return CLORA_OK;
}

static clora_status launch_norm(clora_buffer *norm, const clora_buffer *weight,
                                const clora_buffer *lora_a, const clora_buffer *lora_b,
                                clora_weight_layout layout, size_t in, size_t out, size_t r,
                                float scale)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, norm->device, CLORA__KERNEL_DORA_WEIGHT_NORM);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, norm);
    clora__arg_buffer(&a, weight);
    clora__arg_uint(&a, (size_t)weight_code(weight));
    clora__arg_uint(&a, layout == CLORA_WEIGHT_OUT_IN);
    clora__arg_mem(&a, lora_a ? lora_a->mem : norm->mem); /* not read when r = 0 */
    clora__arg_uint(&a, lora_a ? lora_a->offset : 0);
    clora__arg_mem(&a, lora_b ? lora_b->mem : norm->mem);
    clora__arg_uint(&a, lora_b ? lora_b->offset : 0);
    clora__arg_uint(&a, in);
    clora__arg_uint(&a, out);
    clora__arg_uint(&a, r);
    clora__arg_float(&a, scale);
    const size_t global[1] = {out}, local[1] = {out < 64 ? out : 64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora_dora_weight_norm(clora_buffer *norm, const clora_buffer *weight,
                                    const clora_buffer *lora_a, const clora_buffer *lora_b,
                                    const clora_lora_spec *spec)
{
    static const char op[] = "clora_dora_weight_norm";
    if (!spec)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: spec is NULL", op);
    clora_status status = clora__check_present(op, "norm", norm);
    if (status == CLORA_OK && !weight)
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: weight is NULL", op);
    if (status == CLORA_OK)
        status = clora__check_weight(op, "weight", weight, norm->device);
    if (status == CLORA_OK)
        status = check_weight(op, weight);
    if (status == CLORA_OK && (!lora_a) != (!lora_b))
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: give both lora_a and lora_b, or neither",
                             op);
    if (status == CLORA_OK)
        status = clora__check_float(op, "lora_a", lora_a, norm->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "lora_b", lora_b, norm->device);
    if (status == CLORA_OK && weight->ndim != 2)
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: weight is not 2-D", op);
    if (status != CLORA_OK)
        return status;
    const int out_in = spec->weight_layout == CLORA_WEIGHT_OUT_IN;
    const size_t out = weight->shape[out_in ? 0 : 1], in = weight->shape[out_in ? 1 : 0];
    size_t r = 0;
    if (lora_a) {
        r = lora_a->ndim == 2 ? lora_a->shape[0] : 0;
        if ((status = clora__check_shape_2d(op, "lora_a", lora_a, r, in, "(r, in)")) ||
            (status = clora__check_shape_2d(op, "lora_b", lora_b, out, r, "(out, r)")))
            return status;
        if (r < 1 || r > CLORA_MAX_RANK)
            return clora__fail(CLORA_ERR_INVALID_RANK, "%s: rank r = %zu; 1 <= r <= %d", op, r,
                               CLORA_MAX_RANK);
    }
    if ((status = clora__check_shape_1d(op, "norm", norm, out, "(out)")) ||
        (status = clora__check_kernel_size(op, "weight", weight)))
        return status;
    const float scale = r ? clora_lora_scale(spec->scale_mode, spec->alpha, r) : 0.0f;
    if (!isfinite(scale))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: the scale is not finite", op);
    return launch_norm(norm, weight, lora_a, lora_b, spec->weight_layout, in, out, r, scale);
}

/* y = c ⊙ t + b */
static clora_status scale_rows(clora_buffer *y, const clora_buffer *t, const clora_buffer *norm,
                               const clora_buffer *magnitude, const clora_buffer *bias, size_t n,
                               size_t out)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, y->device, CLORA__KERNEL_DORA_SCALE_ROWS);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, t);
    clora__arg_buffer(&a, norm);
    clora__arg_buffer(&a, magnitude);
    clora__arg_buffer(&a, bias ? bias : norm); /* not read without has_bias */
    clora__arg_uint(&a, bias != NULL);
    clora__arg_uint(&a, n);
    clora__arg_uint(&a, out);
    const size_t global[2] = {out, n}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

/* e = (c − minus) ⊙ dy */
static clora_status scale_grad(clora_buffer *e, const clora_buffer *dy, const clora_buffer *norm,
                               const clora_buffer *magnitude, float minus, size_t n, size_t out)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, e->device, CLORA__KERNEL_DORA_SCALE_GRAD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, e);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, norm);
    clora__arg_buffer(&a, magnitude);
    clora__arg_float(&a, minus);
    clora__arg_uint(&a, n);
    clora__arg_uint(&a, out);
    const size_t global[2] = {out, n}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

/* The checks forward and backward share beyond the LoRA op's own. */
static clora_status check_dora(const char *op, const clora_buffer *x, const clora_buffer *weight,
                               const clora_buffer *t, const clora_buffer *norm,
                               const clora_buffer *magnitude, const clora_lora_spec *spec,
                               size_t *n, size_t *out)
{
    clora_status status = clora__check_present(op, "x", x);
    if (status == CLORA_OK && !spec)
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: spec is NULL", op);
    if (status == CLORA_OK && !weight)
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: weight is NULL", op);
    if (status == CLORA_OK)
        status = clora__check_weight(op, "weight", weight, x->device);
    if (status == CLORA_OK)
        status = check_weight(op, weight);
    if (status == CLORA_OK && weight->ndim != 2)
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: weight is not 2-D", op);
    const clora_buffer *need[] = {t, norm, magnitude};
    const char *need_names[] = {"t", "norm", "magnitude"};
    for (size_t i = 0; i < 3 && status == CLORA_OK; ++i)
        if ((status = clora__check_present(op, need_names[i], need[i])) == CLORA_OK)
            status = clora__check_float(op, need_names[i], need[i], x->device);
    if (status != CLORA_OK)
        return status;
    *out = weight->shape[spec->weight_layout == CLORA_WEIGHT_OUT_IN ? 0 : 1];
    *n = clora__rows(x);
    if ((status = clora__check_activation(op, "t", t, x, *out, "out")) ||
        (status = clora__check_shape_1d(op, "norm", norm, *out, "(out)")) ||
        (status = clora__check_shape_1d(op, "magnitude", magnitude, *out, "(out)")))
        return status;
    return CLORA_OK;
}

clora_status clora_dora_forward(clora_buffer *y, clora_buffer *h, clora_buffer *t,
                                clora_buffer *norm, const clora_buffer *x,
                                const clora_buffer *weight, const clora_buffer *bias,
                                const clora_buffer *lora_a, const clora_buffer *lora_b,
                                const clora_buffer *magnitude, const clora_lora_spec *spec)
{
    static const char op[] = "clora_dora_forward";
    size_t n = 0, out = 0;
    clora_status status = check_dora(op, x, weight, t, norm, magnitude, spec, &n, &out);
    if (status == CLORA_OK)
        status = clora__check_present(op, "y", y);
    if (status == CLORA_OK)
        status = clora__check_float(op, "bias", bias, x->device);
    if (status == CLORA_OK && bias)
        status = clora__check_shape_1d(op, "bias", bias, out, "(out)");
    if (status == CLORA_OK && y)
        status = clora__check_activation(op, "y", y, x, out, "out");
    if (status == CLORA_OK) {
        clora_buffer *outputs[] = {y, t, norm};
        const char *output_names[] = {"y", "t", "norm"};
        const clora_buffer *inputs[] = {x, weight, bias, lora_a, lora_b, magnitude};
        const char *input_names[] = {"x", "weight", "bias", "lora_a", "lora_b", "magnitude"};
        status = clora__check_disjoint_all(op, outputs, output_names, 3, inputs, input_names, 6);
    }
    if (status == CLORA_OK)
        status = clora__check_disjoint(op, "t", t, "output", "y", y);
    if (status != CLORA_OK)
        return status;

    /* t = drop(x) · Wᵀ + s · h · Bᵀ: the LoRA op without a bias, on drop(x)
     * with dropout off when there is dropout (h is drop(x) · Aᵀ either way) */
    clora_lora_spec plain = *spec;
    clora_buffer *dropped = NULL;
    if (spec->dropout > 0.0f) {
        status = clora__buffer_ensure_like(&dropped, x);
        if (status == CLORA_OK)
            status = clora__dropout(dropped, x, spec->dropout_seed, spec->dropout,
                                    spec->dropout_row0);
        plain.dropout = 0.0f;
    }
    if (status == CLORA_OK)
        status = clora_lora_forward(t, h, dropped ? dropped : x, weight, NULL, lora_a, lora_b,
                                    &plain);
    if (status == CLORA_OK)
        status = clora_dora_weight_norm(norm, weight, lora_a, lora_b, spec);
    /* y = c ⊙ t + b, then under dropout += (x − drop(x)) · Wᵀ */
    if (status == CLORA_OK)
        status = scale_rows(y, t, norm, magnitude, bias, n, out);
    if (status == CLORA_OK && dropped) {
        clora__args a;
        if ((status = clora__args_begin(&a, x->device, CLORA__KERNEL_DORA_RESIDUAL)) == CLORA_OK) {
            clora__arg_buffer(&a, dropped);
            clora__arg_buffer(&a, x);
            clora__arg_uint(&a, dropped->numel);
            const size_t global[1] = {dropped->numel}, local[1] = {64};
            status = clora__args_launch(&a, 1, global, local);
        }
        if (status == CLORA_OK)
            status = clora__gemm_x_wt(y, dropped, weight, spec->weight_layout, 1.0f);
    }
    clora__buffer_recycle(&dropped);
    return status;
}

clora_status clora_dora_backward(clora_buffer *dx, clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                 clora_buffer *d_magnitude, const clora_buffer *dy,
                                 const clora_buffer *x, const clora_buffer *h,
                                 const clora_buffer *t, const clora_buffer *norm,
                                 const clora_buffer *weight, const clora_buffer *lora_a,
                                 const clora_buffer *lora_b, const clora_buffer *magnitude,
                                 const clora_lora_spec *spec)
{
    static const char op[] = "clora_dora_backward";
    size_t n = 0, out = 0;
    clora_status status = check_dora(op, x, weight, t, norm, magnitude, spec, &n, &out);
    if (status == CLORA_OK)
        status = clora__check_present(op, "dy", dy);
    if (status == CLORA_OK)
        status = clora__check_activation(op, "dy", dy, x, out, "out");
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_magnitude", d_magnitude, x->device);
    if (status == CLORA_OK && d_magnitude)
        status = clora__check_shape_1d(op, "d_magnitude", d_magnitude, out, "(out)");
    if (status == CLORA_OK && d_magnitude) {
        clora_buffer *outputs[] = {d_magnitude, dx};
        const char *output_names[] = {"d_magnitude", "dx"};
        const clora_buffer *inputs[] = {dy, x, h, t, norm, weight, lora_a, lora_b, magnitude};
        const char *input_names[] = {"dy",     "x",      "h",      "t",        "norm",
                                     "weight", "lora_a", "lora_b", "magnitude"};
        status = clora__check_disjoint_all(op, outputs, output_names, 2, inputs, input_names, 9);
    }
    if (status != CLORA_OK)
        return status;

    /* dm += Σ_rows dy ⊙ t / n, before anything else reads or writes */
    if (d_magnitude) {
        clora__args a;
        if ((status = clora__args_begin(&a, x->device, CLORA__KERNEL_DORA_MAGNITUDE_GRAD)))
            return status;
        clora__arg_buffer(&a, d_magnitude);
        clora__arg_buffer(&a, dy);
        clora__arg_buffer(&a, t);
        clora__arg_buffer(&a, norm);
        clora__arg_uint(&a, n);
        clora__arg_uint(&a, out);
        const size_t global[1] = {out}, local[1] = {out < 64 ? out : 64};
        if ((status = clora__args_launch(&a, 1, global, local)))
            return status;
    }
    if (!dx && !d_lora_a && !d_lora_b)
        return CLORA_OK;

    /* the LoRA op's backward on e = c ⊙ dy gives dA, dB, and
     * dx = e · W + drop'(g · A) */
    clora_buffer *e = NULL, *v = NULL;
    status = clora__buffer_ensure_like(&e, dy);
    if (status == CLORA_OK)
        status = scale_grad(e, dy, norm, magnitude, 0.0f, n, out);
    if (status == CLORA_OK)
        status = clora_lora_backward(dx, d_lora_a, d_lora_b, e, x, h, weight, lora_a, lora_b, spec);
    /* under dropout dx owes drop'(v) − v more, v = ((c − 1) ⊙ dy) · W */
    if (status == CLORA_OK && dx && spec->dropout > 0.0f) {
        status = scale_grad(e, dy, norm, magnitude, 1.0f, n, out);
        if (status == CLORA_OK)
            status = clora__buffer_ensure_like(&v, dx);
        if (status == CLORA_OK)
            status = clora__gemm_dy_w(v, e, weight, spec->weight_layout, 0.0f);
        clora__args a;
        if (status == CLORA_OK)
            status = clora__args_begin(&a, x->device, CLORA__KERNEL_DORA_DROPOUT_FIX);
        if (status == CLORA_OK) {
            const size_t in = clora__cols(dx);
            const clora__dropout_args drop = clora__dropout_args_of(spec);
            clora__arg_buffer(&a, dx);
            clora__arg_buffer(&a, v);
            clora__arg_uint(&a, n);
            clora__arg_uint(&a, in);
            clora__arg_dropout(&a, &drop);
            const size_t global[2] = {in, n}, local[2] = {16, 4};
            status = clora__args_launch(&a, 2, global, local);
        }
    }
    clora__buffer_recycle(&v);
    clora__buffer_recycle(&e);
    return status;
}
