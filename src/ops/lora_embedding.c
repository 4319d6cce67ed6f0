/* lora_embedding.c — launchers of cl/lora_embedding.cl: the rank-r path of
 * LoRA on an embedding table (PEFT's lora.Embedding) and its gradients.
 * ids: int32 (N), checked in range by the lookup that ran first; A (r, V),
 * B (C, r); y, dy (N, C). */
#include "ops/ops.h"

/* The sizes of one call, checked against each other. */
static clora_status dims(const char *op, const clora_buffer *rows_like, const clora_buffer *ids,
                         const clora_buffer *lora_a, const clora_buffer *lora_b, size_t *r,
                         size_t *V, size_t *C)
{
    if (!rows_like || !ids || !lora_a || !lora_b)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: NULL argument", op);
    if (ids->dtype != CLORA_DTYPE_I32)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: ids must be int32", op);
    clora_status status = clora__check_float(op, "lora_a", lora_a, ids->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "lora_b", lora_b, ids->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "rows", rows_like, ids->device);
    if (status != CLORA_OK)
        return status;
    if (lora_a->ndim != 2 || lora_b->ndim != 2)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: lora_a and lora_b must be 2-D", op);
    *r = lora_a->shape[0];
    *V = lora_a->shape[1];
    *C = lora_b->shape[0];
    if (*r < 1 || *r > CLORA_MAX_RANK)
        return clora__fail(CLORA_ERR_INVALID_RANK, "%s: rank r = %zu (from lora_a); 1 <= r <= %d",
                           op, *r, CLORA_MAX_RANK);
    if ((status = clora__check_shape_2d(op, "lora_b", lora_b, *C, *r, "(C, r)")))
        return status;
    if (clora__cols(rows_like) != *C || clora__rows(rows_like) != ids->numel)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: rows of %zu x %zu for %zu ids of %zu features", op,
                           clora__rows(rows_like), clora__cols(rows_like), ids->numel, *C);
    return CLORA_OK;
}

clora_status clora__lora_embedding_forward(clora_buffer *y, const clora_buffer *ids,
                                           const clora_buffer *lora_a,
                                           const clora_buffer *lora_b, float scale)
{
    static const char op[] = "lora embedding forward";
    size_t r = 0, V = 0, C = 0;
    clora_status status = dims(op, y, ids, lora_a, lora_b, &r, &V, &C);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, ids->device, CLORA__KERNEL_LORA_EMBEDDING_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, ids);
    clora__arg_buffer(&a, lora_a);
    clora__arg_buffer(&a, lora_b);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, C);
    clora__arg_uint(&a, V);
    clora__arg_uint(&a, r);
    clora__arg_float(&a, scale);
    const size_t global[2] = {C, ids->numel}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

static clora_status grad_b(clora_buffer *d_lora_b, const clora_buffer *dy, const clora_buffer *ids,
                           const clora_buffer *lora_a, size_t r, size_t V, size_t C, float scale)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, ids->device, CLORA__KERNEL_LORA_EMBEDDING_GRAD_B);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, d_lora_b);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, ids);
    clora__arg_buffer(&a, lora_a);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, C);
    clora__arg_uint(&a, V);
    clora__arg_uint(&a, r);
    clora__arg_float(&a, scale);
    const size_t global[2] = {r, C}, local[2] = {r < 8 ? r : 8, 8};
    return clora__args_launch(&a, 2, global, local);
}

/* g (N, r) = s · dy · B, then dA[:, ids[n]] += g[n] in order of n. */
static clora_status grad_a(clora_buffer *d_lora_a, const clora_buffer *dy, const clora_buffer *ids,
                           const clora_buffer *lora_b, size_t r, size_t V, size_t C, float scale,
                           int padding)
{
    clora_buffer *g = NULL;
    const size_t g_shape[2] = {ids->numel, r};
    clora_status status = clora__buffer_ensure(&g, ids->device, CLORA_DTYPE_F32, 2, g_shape, NULL);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, ids->device, CLORA__KERNEL_LORA_EMBEDDING_G);
    if (status == CLORA_OK) {
        clora__arg_buffer(&a, g);
        clora__arg_buffer(&a, dy);
        clora__arg_buffer(&a, lora_b);
        clora__arg_uint(&a, ids->numel);
        clora__arg_uint(&a, C);
        clora__arg_uint(&a, r);
        clora__arg_float(&a, scale);
        const size_t global[2] = {r, ids->numel}, local[2] = {r < 8 ? r : 8, 8};
        status = clora__args_launch(&a, 2, global, local);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, ids->device, CLORA__KERNEL_LORA_EMBEDDING_GRAD_A);
    if (status == CLORA_OK) {
        clora__arg_buffer(&a, d_lora_a);
        clora__arg_buffer(&a, g);
        clora__arg_buffer(&a, ids);
        clora__arg_uint(&a, ids->numel);
        clora__arg_uint(&a, V);
        clora__arg_uint(&a, r);
        clora__arg_int(&a, padding);
        const size_t global[1] = {r}, local[1] = {r < 16 ? r : 16};
        status = clora__args_launch(&a, 1, global, local);
    }
    clora__buffer_recycle(&g);
    return status;
}

clora_status clora__lora_embedding_backward(clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                            const clora_buffer *dy, const clora_buffer *ids,
                                            const clora_buffer *lora_a,
                                            const clora_buffer *lora_b, float scale,
                                            int padding)
{
    static const char op[] = "lora embedding backward";
    size_t r = 0, V = 0, C = 0;
    clora_status status = dims(op, dy, ids, lora_a, lora_b, &r, &V, &C);
    if (status == CLORA_OK && d_lora_b)
        status = clora__check_shape_2d(op, "d_lora_b", d_lora_b, C, r, "(C, r)");
    if (status == CLORA_OK && d_lora_a)
        status = clora__check_shape_2d(op, "d_lora_a", d_lora_a, r, V, "(r, V)");
    if (status == CLORA_OK && d_lora_b)
        status = grad_b(d_lora_b, dy, ids, lora_a, r, V, C, scale);
    if (status == CLORA_OK && d_lora_a)
        status = grad_a(d_lora_a, dy, ids, lora_b, r, V, C, scale, padding);
    return status;
}
