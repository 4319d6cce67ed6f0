/* attention.c — the multi-head attention core that GPT-2's and BERT's
 * attention parts (and the next architectures') call, and its head
 * (un)shuffles.
 *
 * Per batch b and head h (B batch, T tokens, H heads, D per head; head h
 * reads key/value head h / (H/G) of G):
 *     S = Q·Kᵀ / √D (T, T),  P = softmax(S + mask),  ctx = drop(P)·V (T, D)
 * The GEMMs run as CLBlast strided-batched GEMMs over B·G, each over the
 * H/G query heads of one key/value head at once; softmax, masks and the
 * head (un)shuffles in cl/attention.cl. Backward:
 *     dP = dctx·Vᵀ,  dV = drop(P)ᵀ·dctx,  dS = P ⊙ (drop'(dP) − rowsum(...)),
 *     dQ = dS·K / √D,  dK = dSᵀ·Q / √D
 */
#include <math.h>

#include "ops/ops.h"

static clora_status heads(clora__kernel_id id, clora_buffer *out, const clora_buffer *in, size_t ld,
                          size_t col0, size_t B, size_t T, size_t H, size_t D)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, in->device, id);
    if (status != CLORA_OK)
        return status;
    if (id == CLORA__KERNEL_HEADS_SPLIT) { /* out (B,H,T,D) from in rows */
        clora__arg_buffer(&a, out);
        clora__arg_buffer(&a, in);
        clora__arg_uint(&a, ld);
        clora__arg_uint(&a, col0);
    } else { /* out rows from in (B,H,T,D) */
        clora__arg_buffer(&a, out);
        clora__arg_uint(&a, ld);
        clora__arg_uint(&a, col0);
        clora__arg_buffer(&a, in);
    }
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, H);
    clora__arg_uint(&a, D);
    const size_t runs = (D + 7) / 8; /* eight elements per work-item */
    const size_t global[3] = {runs, T, B * H}, local[3] = {runs < 8 ? runs : 8, 8, 1};
    return clora__args_launch(&a, 3, global, local);
}

clora_status clora__heads_split(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D)
{
    return heads(CLORA__KERNEL_HEADS_SPLIT, out, in, ld, col0, B, T, H, D);
}

clora_status clora__heads_merge(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D)
{
    return heads(CLORA__KERNEL_HEADS_MERGE, out, in, ld, col0, B, T, H, D);
}

clora_status clora__attention_prepare(clora__attention *att, clora_device *device, size_t B,
                                      size_t T, size_t H, size_t G, size_t D)
{
    if (G == 0 || H % G != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "attention: %zu key/value heads do not divide %zu query heads", G, H);
    const size_t q_shape[4] = {B, H, T, D}, kv_shape[4] = {B, G, T, D};
    clora_status status;
    if ((status = clora__buffer_ensure(&att->q, device, CLORA_DTYPE_F32, 4, q_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->k, device, CLORA_DTYPE_F32, 4, kv_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->v, device, CLORA_DTYPE_F32, 4, kv_shape, NULL)))
        return status;
    att->B = B;
    att->T = T;
    att->H = H;
    att->G = G;
    att->D = D;
    return CLORA_OK;
}

/* One strided-batched GEMM per (batch, key/value group): c = alpha·op(a)·op(b)
 * with each operand's matrices `stride` floats apart. */
static clora_status grouped_gemm(const clora__attention *att, int trans_a, int trans_b, size_t m,
                                 size_t n, size_t k, float alpha, const clora_buffer *a,
                                 size_t lda, size_t a_stride, const clora_buffer *b, size_t ldb,
                                 size_t b_stride, clora_buffer *c, size_t ldc, size_t c_stride)
{
    return clora__sgemm_batched(c->device, trans_a, trans_b, m, n, k, alpha, a->mem, a->offset,
                                lda, a_stride, b->mem, b->offset, ldb, b_stride, 0.0f, c->mem,
                                c->offset, ldc, c_stride, att->B * att->G);
}

clora_status clora__attention_forward(clora__attention *att, clora_buffer *merged,
                                      const clora_buffer *mask, int causal, float dropout,
                                      uint64_t dropout_seed, size_t first_example)
{
    clora_device *dev = merged->device;
    const size_t B = att->B, T = att->T, H = att->H, D = att->D, R = att->H / att->G;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D};
    clora_status status = clora__buffer_ensure(&att->p, dev, CLORA_DTYPE_F32, 4, p_shape, NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&att->ctx, dev, CLORA_DTYPE_F32, 4, h_shape, NULL);
    if (status != CLORA_OK)
        return status;
    clora_buffer *q = att->q, *k = att->k, *v = att->v, *p = att->p, *ctx = att->ctx;
    const float scale = 1.0f / sqrtf((float)D);
    /* S (R·T, T) = Q (R·T, D) · Kᵀ per group */
    status = grouped_gemm(att, 0, 1, R * T, T, D, scale, q, D, R * T * D, k, D, T * D, p, T,
                          R * T * T);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_SOFTMAX_ROWS);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, p);
    clora__arg_uint(&a, B * H * T);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, H);
    clora__arg_uint(&a, causal != 0);
    clora__arg_mem(&a, mask ? mask->mem : p->mem);
    clora__arg_uint(&a, mask ? mask->offset : 0);
    clora__arg_uint(&a, mask != NULL);
    const size_t rows[1] = {B * H * T}, local[1] = {64};
    if ((status = clora__args_launch(&a, 1, rows, local)))
        return status;
    const clora_buffer *used = p;
    att->dropout = dropout;
    att->dropout_seed = dropout_seed;
    att->first_example = first_example;
    if (dropout > 0.0f) {
        if ((status = clora__buffer_ensure(&att->p_dropped, dev, CLORA_DTYPE_F32, 4, p_shape,
                                           NULL)) ||
            (status = clora__dropout(att->p_dropped, p, dropout_seed, dropout,
                                     first_example * H * T)))
            return status;
        used = att->p_dropped;
    }
    /* ctx (R·T, D) = drop(P) (R·T, T) · V (T, D) */
    status = grouped_gemm(att, 0, 0, R * T, D, T, 1.0f, used, T, R * T * T, v, D, T * D, ctx, D,
                          R * T * D);
    if (status == CLORA_OK)
        status = clora__heads_merge(merged, ctx, H * D, 0, B, T, H, D);
    /* backward starts from d_merged: the next layer's forward may take ctx's memory */
    clora__buffer_recycle(&att->ctx);
    return status;
}

clora_status clora__attention_backward(clora__attention *att, const clora_buffer *d_merged)
{
    clora_device *dev = d_merged->device;
    const size_t B = att->B, T = att->T, H = att->H, G = att->G, D = att->D, R = H / G;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D}, kv_shape[4] = {B, G, T, D};
    clora_status status;
    if ((status = clora__buffer_ensure(&att->dq, dev, CLORA_DTYPE_F32, 4, h_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->dctx, dev, CLORA_DTYPE_F32, 4, h_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->dk, dev, CLORA_DTYPE_F32, 4, kv_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->dv, dev, CLORA_DTYPE_F32, 4, kv_shape, NULL)) ||
        (status = clora__buffer_ensure(&att->dp, dev, CLORA_DTYPE_F32, 4, p_shape, NULL)))
        return status;
    clora_buffer *q = att->q, *k = att->k, *v = att->v;
    clora_buffer *p = att->p, *dp = att->dp, *dctx = att->dctx;
    clora_buffer *dq = att->dq, *dk = att->dk, *dv = att->dv;
    const clora_buffer *used = att->dropout > 0.0f ? att->p_dropped : p;
    const float scale = 1.0f / sqrtf((float)D);
    /* dP (R·T, T) = dctx · Vᵀ; dV (T, D) = drop(P)ᵀ · dctx, summed over the group's heads */
    if ((status = clora__heads_split(dctx, d_merged, H * D, 0, B, T, H, D)) ||
        (status = grouped_gemm(att, 0, 1, R * T, T, D, 1.0f, dctx, D, R * T * D, v, D, T * D, dp,
                               T, R * T * T)) ||
        (status = grouped_gemm(att, 1, 0, T, D, R * T, 1.0f, used, T, R * T * T, dctx, D,
                               R * T * D, dv, D, T * D)))
        return status;
    if (att->dropout > 0.0f &&
        (status = clora__dropout(dp, dp, att->dropout_seed, att->dropout,
                                 att->first_example * H * T)))
        return status;
    clora__args a;
    if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_SOFTMAX_BACKWARD)))
        return status;
    clora__arg_buffer(&a, dp);
    clora__arg_buffer(&a, p);
    clora__arg_uint(&a, B * H * T);
    clora__arg_uint(&a, T);
    const size_t rows[1] = {B * H * T}, local[1] = {64};
    if ((status = clora__args_launch(&a, 1, rows, local)))
        return status;
    /* dQ (R·T, D) = dS · K; dK (T, D) = dSᵀ · Q */
    status = grouped_gemm(att, 0, 0, R * T, D, T, scale, dp, T, R * T * T, k, D, T * D, dq, D,
                          R * T * D);
    if (status == CLORA_OK)
        status = grouped_gemm(att, 1, 0, T, D, R * T, scale, dp, T, R * T * T, q, D, R * T * D, dk,
                              D, T * D);
    return status;
}

void clora__attention_release_grads(clora__attention *att)
{
    clora__buffer_recycle(&att->dq);
    clora__buffer_recycle(&att->dk);
    clora__buffer_recycle(&att->dv);
    clora__buffer_recycle(&att->dctx);
    clora__buffer_recycle(&att->dp);
}

void clora__attention_release(clora__attention *att)
{
    clora_buffer **all[] = {&att->q,  &att->k,  &att->v,  &att->p,    &att->p_dropped, &att->ctx,
                            &att->dq, &att->dk, &att->dv, &att->dctx, &att->dp};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i) {
        clora_buffer_destroy(*all[i]);
        *all[i] = NULL;
    }
}
