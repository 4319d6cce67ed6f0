/* lora.c — the LoRA linear op: frozen GEMMs through CLBlast, the rank-r path
 * through cl/lora.cl. The math and shapes are in clora/lora.h. */
#include <math.h>
#include <stdio.h>

#include "ops/ops.h"

float clora_lora_scale(clora_scale_mode mode, float alpha, size_t rank)
{
    if (rank == 0)
        return 0.0f;
    switch (mode) {
    case CLORA_SCALE_ALPHA:
        return alpha;
    case CLORA_SCALE_ALPHA_OVER_R:
        return (float)((double)alpha / (double)rank);
    case CLORA_SCALE_ALPHA_OVER_SQRT_R:
        return (float)((double)alpha / sqrt((double)rank));
    }
    return 0.0f;
}

/* ---- the rank-r GEMM launcher ------------------------------------------- */

/* One call of lora_gemm: C (m, p) = epilogue(alpha · X (m, k) · Y (k, p))
 * with strided operands; see cl/lora.cl. */
typedef struct rank_gemm {
    cl_mem x;
    size_t x_offset, x_stride_m, x_stride_k;
    cl_mem y;
    size_t y_offset, y_stride_k, y_stride_p;
    cl_mem c;
    size_t c_offset, c_stride_m, c_stride_p;
    cl_mem bias;
    size_t bias_offset;
    size_t m, k, p;
    float alpha;
    unsigned flags;
} rank_gemm;

/* The CPU kernel for a product: the column sweeps of the reductions over N
 * have their own (see cl/lora.cl), the rest stream. */
static clora__kernel_id streaming_kernel(const rank_gemm *g, size_t chunks)
{
    if (chunks == 1 && g->x_stride_m == 1 && g->y_stride_p == 1)
        return CLORA__KERNEL_LORA_COLS_TN;
    return CLORA__KERNEL_LORA_STREAM;
}

static clora_status launch_gemm(clora_device *dev, const rank_gemm *g,
                                const clora__dropout_args *drop, size_t chunks, size_t k_chunk)
{
    const int tiled = dev->rank_kernel == CLORA__RANK_TILED;
    const clora__kernel_id id = tiled ? CLORA__KERNEL_LORA_GEMM : streaming_kernel(g, chunks);
    clora__args a;
    clora_status status = clora__args_begin(&a, dev, id);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, g->x);
    clora__arg_uint(&a, g->x_offset);
    clora__arg_uint(&a, g->x_stride_m);
    clora__arg_uint(&a, g->x_stride_k);
    clora__arg_mem(&a, g->y);
    clora__arg_uint(&a, g->y_offset);
    clora__arg_uint(&a, g->y_stride_k);
    clora__arg_uint(&a, g->y_stride_p);
    clora__arg_mem(&a, g->c);
    clora__arg_uint(&a, g->c_offset);
    clora__arg_uint(&a, g->c_stride_m);
    clora__arg_uint(&a, g->c_stride_p);
    clora__arg_mem(&a, g->bias ? g->bias : g->c); /* never read without ADD_BIAS */
    clora__arg_uint(&a, g->bias_offset);
    clora__arg_uint(&a, g->m);
    clora__arg_uint(&a, g->k);
    clora__arg_uint(&a, g->p);
    clora__arg_uint(&a, k_chunk);
    clora__arg_float(&a, g->alpha);
    clora__arg_uint(&a, g->flags);
    clora__arg_dropout(&a, drop);
    if (tiled) {
        const size_t t = dev->rank_tile;
        const size_t global[3] = {g->p, g->m, chunks}, local[3] = {t, t, 1};
        return clora__args_launch(&a, 3, global, local);
    }
    /* One work-item per 8 x 8 outputs (cols_tn) or per 4 outputs of a row
     * (stream); ~64 per group. */
    const size_t width = id == CLORA__KERNEL_LORA_COLS_TN ? 8 : 4;
    const size_t blocks = (g->p + width - 1) / width;
    const size_t rows = id == CLORA__KERNEL_LORA_COLS_TN ? (g->m + 7) / 8 : g->m;
    /* cols_tn has few work-items (one per 64 outputs), each long: small
     * groups spread them over the compute units. */
    const size_t group = id == CLORA__KERNEL_LORA_COLS_TN ? 8 : 64;
    const size_t across = blocks < group ? blocks : group;
    const size_t down = group / across < rows ? group / across : rows;
    const size_t global[3] = {blocks, rows, chunks}, local[3] = {across, down, 1};
    return clora__args_launch(&a, 3, global, local);
}

/* A LoRA layer's sizes and scale. */
typedef struct lora_dims {
    size_t n, in, out, r;
    float scale;
} lora_dims;

/* The row kernels of the CPU family (cl/lora.cl): one work-item per
 * CLORA__ROWS_PER_ITEM rows. */
typedef struct row_pass {
    cl_mem in;               /* x (forward) or dy (backward) */
    size_t in_offset;
    cl_mem first, second;    /* A, Bᵀ (forward) or B, A (backward) */
    size_t first_offset, second_offset;
    const clora_buffer *bias;
    cl_mem kept;             /* h (forward) or g (backward), (N, r) */
    size_t kept_offset;
    clora_buffer *out;       /* y or dx, updated in place; NULL: g only */
    unsigned flags;
} row_pass;

static clora_status launch_rows(clora_device *dev, clora__kernel_id id, const row_pass *pass,
                                const lora_dims *d, const clora__dropout_args *drop)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, dev, id);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, pass->in);
    clora__arg_uint(&a, pass->in_offset);
    clora__arg_mem(&a, pass->first);
    clora__arg_uint(&a, pass->first_offset);
    clora__arg_mem(&a, pass->second);
    clora__arg_uint(&a, pass->second_offset);
    if (id == CLORA__KERNEL_LORA_FORWARD_ROWS) {
        clora__arg_mem(&a, pass->bias ? pass->bias->mem : pass->in);
        clora__arg_uint(&a, pass->bias ? pass->bias->offset : 0);
    }
    clora__arg_mem(&a, pass->kept);
    clora__arg_uint(&a, pass->kept_offset);
    clora__arg_mem(&a, pass->out ? pass->out->mem : pass->kept); /* never written without one */
    clora__arg_uint(&a, pass->out ? pass->out->offset : 0);
    clora__arg_uint(&a, d->n);
    clora__arg_uint(&a, d->in);
    clora__arg_uint(&a, d->out);
    clora__arg_uint(&a, d->r);
    clora__arg_float(&a, d->scale);
    clora__arg_uint(&a, pass->flags);
    clora__arg_dropout(&a, drop);
    const size_t items = (d->n + CLORA__ROWS_PER_ITEM - 1) / CLORA__ROWS_PER_ITEM;
    const size_t global[1] = {items}, local[1] = {items < 16 ? items : 16};
    return clora__args_launch(&a, 1, global, local);
}

/* C = epilogue(alpha · X · Y) in one pass over K. */
static clora_status gemm_direct(clora_device *dev, const rank_gemm *g,
                                const clora__dropout_args *drop)
{
    return launch_gemm(dev, g, drop, 1, g->k);
}

/* How many chunks to split a reduction over k into: for the tiled kernel
 * (GPUs), enough to give ~64K work-items, each chunk at least 64 long, at
 * most 64 chunks; the streaming kernel (CPUs) has parallelism enough in the
 * outputs and reads less without a split. A function of the shape and the
 * kernel family only, so repeated runs sum in the same order and give the
 * same bits. */
static size_t reduction_chunks(const clora_device *dev, size_t outputs, size_t k)
{
    const size_t target = 65536, min_length = 64, max_chunks = 64;
    if (dev->rank_kernel == CLORA__RANK_STREAMING || outputs >= target || k < 2 * min_length)
        return 1;
    size_t chunks = (target + outputs - 1) / outputs;
    if (chunks > k / min_length)
        chunks = k / min_length;
    if (chunks > max_chunks)
        chunks = max_chunks;
    return chunks;
}

/* Scratch floats reduce_gemm needs for this shape. */
static size_t reduction_scratch(const clora_device *dev, size_t m, size_t k, size_t p)
{
    size_t chunks = reduction_chunks(dev, m * p, k);
    return chunks > 1 ? chunks * m * p : 0;
}

/* C += alpha · X · Y for a long k (a reduction over rows): split k into
 * chunks, write partial sums to `partial` (starting at element
 * partial_offset), then add them in order. g->flags must include
 * ACCUMULATE and may include DROP_Y. */
static clora_status gemm_reduce(clora_device *dev, const rank_gemm *g,
                                const clora__dropout_args *drop, cl_mem partial,
                                size_t partial_offset)
{
    size_t chunks = reduction_chunks(dev, g->m * g->p, g->k);
    if (chunks == 1)
        return gemm_direct(dev, g, drop);
    size_t k_chunk = (g->k + chunks - 1) / chunks;
    chunks = (g->k + k_chunk - 1) / k_chunk;

    rank_gemm slabs = *g;
    slabs.c = partial;
    slabs.c_offset = partial_offset;
    slabs.c_stride_m = g->p;
    slabs.c_stride_p = 1;
    slabs.alpha = 1.0f;
    slabs.flags = (g->flags & CLORA__GEMM_DROP_Y) | CLORA__GEMM_PARTIAL;
    clora_status status = launch_gemm(dev, &slabs, drop, chunks, k_chunk);
    if (status != CLORA_OK)
        return status;

    clora__args a;
    if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LORA_REDUCE)))
        return status;
    clora__arg_mem(&a, partial);
    clora__arg_uint(&a, partial_offset);
    clora__arg_uint(&a, chunks);
    clora__arg_uint(&a, g->m);
    clora__arg_uint(&a, g->p);
    clora__arg_mem(&a, g->c);
    clora__arg_uint(&a, g->c_offset);
    clora__arg_uint(&a, g->c_stride_m);
    clora__arg_uint(&a, g->c_stride_p);
    clora__arg_float(&a, g->alpha);
    clora__arg_uint(&a, CLORA__GEMM_ACCUMULATE);
    const size_t t = dev->rank_tile;
    const size_t global[2] = {g->p, g->m}, local[2] = {t, t};
    return clora__args_launch(&a, 2, global, local);
}

/* W += scale * B * A for a base weight stored (out, in) or (in, out); the
 * merge and unmerge of adapters. */
clora_status clora__lora_add_delta(clora_buffer *weight, clora_weight_layout layout,
                                   const clora_buffer *lora_a, const clora_buffer *lora_b,
                                   float scale)
{
    const size_t r = lora_a->shape[0], in = lora_a->shape[1], out = lora_b->shape[0];
    const int out_in = layout == CLORA_WEIGHT_OUT_IN;
    rank_gemm delta = {
        .x = lora_b->mem, .x_offset = lora_b->offset, .x_stride_m = r, .x_stride_k = 1,
        .y = lora_a->mem, .y_offset = lora_a->offset, .y_stride_k = in, .y_stride_p = 1,
        .c = weight->mem, .c_offset = weight->offset,
        .c_stride_m = out_in ? in : 1, .c_stride_p = out_in ? 1 : out,
        .m = out, .k = r, .p = in, .alpha = scale,
        .flags = CLORA__GEMM_ACCUMULATE,
    };
    const clora__dropout_args none = {0, 0, 0, 1.0f, 0};
    return gemm_direct(weight->device, &delta, &none);
}

/* ---- argument checks shared by forward and backward ---------------------- */

static clora_status check_spec(const char *op, const clora_lora_spec *spec)
{
    if (!spec)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: spec is NULL", op);
    if (!isfinite(spec->alpha))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: alpha is %g; it must be finite", op,
                           (double)spec->alpha);
    if (spec->scale_mode != CLORA_SCALE_ALPHA && spec->scale_mode != CLORA_SCALE_ALPHA_OVER_R &&
        spec->scale_mode != CLORA_SCALE_ALPHA_OVER_SQRT_R)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown scale mode %d", op,
                           (int)spec->scale_mode);
    if (!(spec->dropout >= 0.0f && spec->dropout < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: dropout is %g; it must be in [0, 1)", op, (double)spec->dropout);
    return CLORA_OK;
}

/* Checks the inputs both directions share and derives the dimensions. */
static clora_status check_layer(const char *op, const clora_buffer *x, const clora_buffer *weight,
                                const clora_buffer *bias, const clora_buffer *lora_a,
                                const clora_buffer *lora_b, const clora_lora_spec *spec,
                                lora_dims *dims)
{
    clora_status status = check_spec(op, spec);
    if (status == CLORA_OK)
        status = clora__linear_dims(op, x, weight, "bias", bias, spec->weight_layout, &dims->in,
                                    &dims->out);
    if (status == CLORA_OK)
        status = clora__check_present(op, "lora_a", lora_a);
    if (status == CLORA_OK)
        status = clora__check_present(op, "lora_b", lora_b);
    if (status == CLORA_OK)
        status = clora__check_float(op, "lora_a", lora_a, x->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "lora_b", lora_b, x->device);
    if (status != CLORA_OK)
        return status;
    if (lora_a->ndim != 2) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: lora_a has shape %s, expected (r, in)",
                           op, clora_buffer_shape_string(lora_a, got, sizeof got));
    }
    dims->r = lora_a->shape[0];
    if (dims->r < 1 || dims->r > CLORA_MAX_RANK)
        return clora__fail(CLORA_ERR_INVALID_RANK, "%s: rank r = %zu (from lora_a); 1 <= r <= %d",
                           op, dims->r, CLORA_MAX_RANK);
    dims->n = clora__rows(x);
    dims->scale = clora_lora_scale(spec->scale_mode, spec->alpha, dims->r);
    if ((status = clora__check_shape_2d(op, "lora_a", lora_a, dims->r, dims->in, "(r, in)")) ||
        (status = clora__check_shape_2d(op, "lora_b", lora_b, dims->out, dims->r, "(out, r)")))
        return status;
    return CLORA_OK;
}

/* ---- forward -------------------------------------------------------------- */

clora_status clora_lora_forward(clora_buffer *y, clora_buffer *h, const clora_buffer *x,
                                const clora_buffer *weight, const clora_buffer *bias,
                                const clora_buffer *lora_a, const clora_buffer *lora_b,
                                const clora_lora_spec *spec)
{
    static const char op[] = "clora_lora_forward";
    lora_dims d;
    clora_status status = check_layer(op, x, weight, bias, lora_a, lora_b, spec, &d);
    if (status == CLORA_OK)
        status = clora__check_present(op, "y", y);
    if (status == CLORA_OK)
        status = clora__check_float(op, "y", y, x->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "h", h, x->device);
    if (status == CLORA_OK)
        status = clora__check_activation(op, "y", y, x, d.out, "out");
    if (status == CLORA_OK && h)
        status = clora__check_activation(op, "h", h, x, d.r, "r");
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "y", y);
    if (status == CLORA_OK) {
        clora_buffer *outputs[] = {y, h};
        const char *output_names[] = {"y", "h"};
        const clora_buffer *inputs[] = {x, weight, bias, lora_a, lora_b};
        const char *input_names[] = {"x", "weight", "bias", "lora_a", "lora_b"};
        status = clora__check_disjoint_all(op, outputs, output_names, 2, inputs, input_names, 5);
    }
    if (status != CLORA_OK)
        return status;

    clora_device *dev = x->device;
    const int rows_family = dev->rank_kernel == CLORA__RANK_STREAMING;
    /* Scratch: h when the caller keeps none, then (CPUs) Bᵀ. */
    const size_t h_floats = h ? 0 : d.n * d.r, bt_floats = rows_family ? d.r * d.out : 0;
    if (h_floats + bt_floats > CLORA__MAX_KERNEL_ELEMENTS)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: N = %zu rows need more scratch than 32-bit indexing reaches; "
                           "split the batch",
                           op, d.n);
    cl_mem scratch = NULL;
    if (h_floats + bt_floats > 0 &&
        (status = clora__device_scratch(dev, (h_floats + bt_floats) * sizeof(float),
                                        &scratch)) != CLORA_OK)
        return status;
    cl_mem h_mem = h ? h->mem : scratch;
    const size_t h_offset = h ? h->offset : 0;
    const clora__dropout_args drop = clora__dropout_args_of(spec);

    if (rows_family) {
        /* y = x · Wᵀ; Bᵀ; then one pass over the rows keeps h and adds
         * s · h · Bᵀ + b: x is read once for h, y once read and written. */
        if ((status = clora__gemm_x_wt(y, x, weight, spec->weight_layout, 0.0f)) != CLORA_OK)
            return status;
        clora__args a;
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LORA_TRANSPOSE)))
            return status;
        clora__arg_buffer(&a, lora_b);
        clora__arg_mem(&a, scratch);
        clora__arg_uint(&a, h_floats);
        clora__arg_uint(&a, d.out);
        clora__arg_uint(&a, d.r);
        const size_t global[2] = {d.r, d.out}, local[2] = {d.r < 8 ? d.r : 8, 8};
        if ((status = clora__args_launch(&a, 2, global, local)))
            return status;
        const row_pass pass = {
            .in = x->mem, .in_offset = x->offset,
            .first = lora_a->mem, .first_offset = lora_a->offset,
            .second = scratch, .second_offset = h_floats, .bias = bias,
            .kept = h_mem, .kept_offset = h_offset, .out = y,
            .flags = (bias ? CLORA__GEMM_BIAS : 0u) |
                     (spec->dropout > 0.0f ? CLORA__GEMM_DROP_X : 0u),
        };
        return launch_rows(dev, CLORA__KERNEL_LORA_FORWARD_ROWS, &pass, &d, &drop);
    }

    /* h = drop(x) · Aᵀ */
    rank_gemm down = {
        .x = x->mem, .x_offset = x->offset, .x_stride_m = d.in, .x_stride_k = 1,
        .y = lora_a->mem, .y_offset = lora_a->offset, .y_stride_k = 1, .y_stride_p = d.in,
        .c = h_mem, .c_offset = h_offset, .c_stride_m = d.r, .c_stride_p = 1,
        .m = d.n, .k = d.in, .p = d.r, .alpha = 1.0f,
        .flags = spec->dropout > 0.0f ? CLORA__GEMM_DROP_X : 0u,
    };
    if ((status = gemm_direct(dev, &down, &drop)) != CLORA_OK)
        return status;

    /* y = s · h · Bᵀ + b, written first so the frozen GEMM can add x · Wᵀ
     * with beta = 1: the LoRA branch and the bias cost one write of y. */
    rank_gemm up = {
        .x = h_mem, .x_offset = h_offset, .x_stride_m = d.r, .x_stride_k = 1,
        .y = lora_b->mem, .y_offset = lora_b->offset, .y_stride_k = 1, .y_stride_p = d.r,
        .c = y->mem, .c_offset = y->offset, .c_stride_m = d.out, .c_stride_p = 1,
        .bias = bias ? bias->mem : NULL, .bias_offset = bias ? bias->offset : 0,
        .m = d.n, .k = d.r, .p = d.out, .alpha = d.scale,
        .flags = bias ? CLORA__GEMM_BIAS : 0u,
    };
    if ((status = gemm_direct(dev, &up, &drop)) != CLORA_OK)
        return status;

    return clora__gemm_x_wt(y, x, weight, spec->weight_layout, 1.0f);
}

/* ---- backward ------------------------------------------------------------- */

clora_status clora_lora_backward(clora_buffer *dx, clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                 const clora_buffer *dy, const clora_buffer *x,
                                 const clora_buffer *h, const clora_buffer *weight,
                                 const clora_buffer *lora_a, const clora_buffer *lora_b,
                                 const clora_lora_spec *spec)
{
    static const char op[] = "clora_lora_backward";
    lora_dims d;
    clora_status status = check_layer(op, x, weight, NULL, lora_a, lora_b, spec, &d);
    if (status == CLORA_OK)
        status = clora__check_present(op, "dy", dy);
    if (status == CLORA_OK)
        status = clora__check_present(op, "h", h);
    const clora_buffer *same_device[] = {dy, h, dx, d_lora_a, d_lora_b};
    const char *same_device_names[] = {"dy", "h", "dx", "d_lora_a", "d_lora_b"};
    for (size_t i = 0; i < 5 && status == CLORA_OK; ++i)
        status = clora__check_float(op, same_device_names[i], same_device[i], x->device);
    if (status == CLORA_OK)
        status = clora__check_activation(op, "dy", dy, x, d.out, "out");
    if (status == CLORA_OK)
        status = clora__check_activation(op, "h", h, x, d.r, "r");
    if (status == CLORA_OK && dx)
        status = clora__check_activation(op, "dx", dx, x, d.in, "in");
    if (status == CLORA_OK && d_lora_a)
        status = clora__check_shape_2d(op, "d_lora_a", d_lora_a, d.r, d.in, "(r, in)");
    if (status == CLORA_OK && d_lora_b)
        status = clora__check_shape_2d(op, "d_lora_b", d_lora_b, d.out, d.r, "(out, r)");
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "dy", dy);
    if (status == CLORA_OK)
        status = clora__check_kernel_size(op, "dx", dx);
    if (status == CLORA_OK) {
        clora_buffer *outputs[] = {dx, d_lora_a, d_lora_b};
        const char *output_names[] = {"dx", "d_lora_a", "d_lora_b"};
        const clora_buffer *inputs[] = {dy, x, h, weight, lora_a, lora_b};
        const char *input_names[] = {"dy", "x", "h", "weight", "lora_a", "lora_b"};
        status = clora__check_disjoint_all(op, outputs, output_names, 3, inputs, input_names, 6);
    }
    if (status != CLORA_OK)
        return status;

    clora_device *dev = x->device;
    const clora__dropout_args drop = clora__dropout_args_of(spec);
    const unsigned drop_flag = spec->dropout > 0.0f ? 1u : 0u;
    const int need_g = d_lora_a || dx;

    /* Scratch: g (N, r), then the partial sums of whichever reduction is
     * larger (they run one after the other on the in-order queue). */
    size_t g_floats = need_g ? d.n * d.r : 0;
    size_t partial_floats = 0;
    if (d_lora_b)
        partial_floats = reduction_scratch(dev, d.out, d.n, d.r);
    if (d_lora_a && reduction_scratch(dev, d.r, d.n, d.in) > partial_floats)
        partial_floats = reduction_scratch(dev, d.r, d.n, d.in);
    if (g_floats + partial_floats > CLORA__MAX_KERNEL_ELEMENTS)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: N = %zu rows need more scratch than 32-bit indexing reaches; "
                           "split the batch",
                           op, d.n);
    cl_mem scratch = NULL;
    if (g_floats + partial_floats > 0 &&
        (status = clora__device_scratch(dev, (g_floats + partial_floats) * sizeof(float),
                                        &scratch)) != CLORA_OK)
        return status;

    /* dB += s · dyᵀ · h; on CPUs as dBᵀ += s · hᵀ · dy, which sweeps dy
     * once per 8 ranks (cols_tn) instead of once per 4. */
    if (d_lora_b) {
        rank_gemm db = {
            .x = dy->mem, .x_offset = dy->offset, .x_stride_m = 1, .x_stride_k = d.out,
            .y = h->mem, .y_offset = h->offset, .y_stride_k = d.r, .y_stride_p = 1,
            .c = d_lora_b->mem, .c_offset = d_lora_b->offset, .c_stride_m = d.r, .c_stride_p = 1,
            .m = d.out, .k = d.n, .p = d.r, .alpha = d.scale,
            .flags = CLORA__GEMM_ACCUMULATE,
        };
        if (dev->rank_kernel == CLORA__RANK_STREAMING)
            db = (rank_gemm){
                .x = h->mem, .x_offset = h->offset, .x_stride_m = 1, .x_stride_k = d.r,
                .y = dy->mem, .y_offset = dy->offset, .y_stride_k = d.out, .y_stride_p = 1,
                .c = d_lora_b->mem, .c_offset = d_lora_b->offset,
                .c_stride_m = 1, .c_stride_p = d.r,
                .m = d.r, .k = d.n, .p = d.out, .alpha = d.scale,
                .flags = CLORA__GEMM_ACCUMULATE,
            };
        if ((status = gemm_reduce(dev, &db, &drop, scratch, g_floats)) != CLORA_OK)
            return status;
    }
    if (!need_g)
        return CLORA_OK;

    if (dev->rank_kernel == CLORA__RANK_STREAMING) {
        /* dx = dy · W first; then one pass over the rows computes g = s · dy · B
         * and adds drop'(g · A) to dx; then dA from g. */
        if (dx && (status = clora__gemm_dy_w(dx, dy, weight, spec->weight_layout, 0.0f)))
            return status;
        const row_pass pass = {
            .in = dy->mem, .in_offset = dy->offset,
            .first = lora_b->mem, .first_offset = lora_b->offset,
            .second = lora_a->mem, .second_offset = lora_a->offset,
            .kept = scratch, .kept_offset = 0, .out = dx,
            .flags = (dx ? CLORA__GEMM_ACCUMULATE : 0u) | (drop_flag ? CLORA__GEMM_DROP_C : 0u),
        };
        if ((status = launch_rows(dev, CLORA__KERNEL_LORA_BACKWARD_ROWS, &pass, &d, &drop)))
            return status;
        if (!d_lora_a)
            return CLORA_OK;
        rank_gemm da = {
            .x = scratch, .x_offset = 0, .x_stride_m = 1, .x_stride_k = d.r,
            .y = x->mem, .y_offset = x->offset, .y_stride_k = d.in, .y_stride_p = 1,
            .c = d_lora_a->mem, .c_offset = d_lora_a->offset, .c_stride_m = d.in, .c_stride_p = 1,
            .m = d.r, .k = d.n, .p = d.in, .alpha = 1.0f,
            .flags = CLORA__GEMM_ACCUMULATE | (drop_flag ? CLORA__GEMM_DROP_Y : 0u),
        };
        return gemm_direct(dev, &da, &drop);
    }

    /* g = s · dy · B */
    rank_gemm g = {
        .x = dy->mem, .x_offset = dy->offset, .x_stride_m = d.out, .x_stride_k = 1,
        .y = lora_b->mem, .y_offset = lora_b->offset, .y_stride_k = d.r, .y_stride_p = 1,
        .c = scratch, .c_offset = 0, .c_stride_m = d.r, .c_stride_p = 1,
        .m = d.n, .k = d.out, .p = d.r, .alpha = d.scale,
    };
    if ((status = gemm_direct(dev, &g, &drop)) != CLORA_OK)
        return status;

    /* dA += gᵀ · drop(x) */
    if (d_lora_a) {
        rank_gemm da = {
            .x = scratch, .x_offset = 0, .x_stride_m = 1, .x_stride_k = d.r,
            .y = x->mem, .y_offset = x->offset, .y_stride_k = d.in, .y_stride_p = 1,
            .c = d_lora_a->mem, .c_offset = d_lora_a->offset, .c_stride_m = d.in, .c_stride_p = 1,
            .m = d.r, .k = d.n, .p = d.in, .alpha = 1.0f,
            .flags = CLORA__GEMM_ACCUMULATE | (drop_flag ? CLORA__GEMM_DROP_Y : 0u),
        };
        if ((status = gemm_reduce(dev, &da, &drop, scratch, g_floats)) != CLORA_OK)
            return status;
    }

    /* dx = drop'(g · A), then the frozen GEMM adds dy · W (beta = 1). */
    if (dx) {
        rank_gemm ga = {
            .x = scratch, .x_offset = 0, .x_stride_m = d.r, .x_stride_k = 1,
            .y = lora_a->mem, .y_offset = lora_a->offset, .y_stride_k = d.in, .y_stride_p = 1,
            .c = dx->mem, .c_offset = dx->offset, .c_stride_m = d.in, .c_stride_p = 1,
            .m = d.n, .k = d.r, .p = d.in, .alpha = 1.0f,
            .flags = drop_flag ? CLORA__GEMM_DROP_C : 0u,
        };
        if ((status = gemm_direct(dev, &ga, &drop)) != CLORA_OK)
            return status;
        status = clora__gemm_dy_w(dx, dy, weight, spec->weight_layout, 1.0f);
    }
    return status;
}
