/* attention.c — the multi-head attention core that GPT-2's and BERT's
 * attention parts (and the next architectures') call, and its head
 * (un)shuffles.
 *
 * Per batch b and head h (B batch, T tokens, H heads, D per head):
 *     S = Q·Kᵀ / √D (T, T),  P = softmax(S + mask),  ctx = drop(P)·V (T, D)
 * The GEMMs run as CLBlast strided-batched GEMMs over B·H; softmax, masks
 * and the head (un)shuffles in cl/attention.cl. Backward:
 *     dP = dctx·Vᵀ,  dV = drop(P)ᵀ·dctx,  dS = P ⊙ (drop'(dP) − rowsum(...)),
 *     dQ = dS·K / √D,  dK = dSᵀ·Q / √D
 */
#include <math.h>

#include "ops/ops.h"

static clora_status heads(clora__kernel_id id, clora_buffer *out, const clora_buffer *in, size_t ld,
                          size_t col0, size_t B, size_t T, size_t H, size_t D, size_t group)
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
    if (id != CLORA__KERNEL_HEADS_MERGE)
        clora__arg_uint(&a, group);
    const size_t runs = (D + 7) / 8; /* eight elements per work-item */
    const size_t items = id == CLORA__KERNEL_HEADS_MERGE_SUM ? B * (H / group) : B * H;
    const size_t global[3] = {runs, T, items}, local[3] = {runs < 8 ? runs : 8, 8, 1};
    return clora__args_launch(&a, 3, global, local);
}

clora_status clora__heads_split(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D)
{
    return heads(CLORA__KERNEL_HEADS_SPLIT, out, in, ld, col0, B, T, H, D, 1);
}

clora_status clora__heads_merge(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D)
{
    return heads(CLORA__KERNEL_HEADS_MERGE, out, in, ld, col0, B, T, H, D, 1);
}

clora_status clora__heads_split_grouped(clora_buffer *out, const clora_buffer *in, size_t ld,
                                        size_t col0, size_t B, size_t T, size_t H, size_t D,
                                        size_t group)
{
    return heads(CLORA__KERNEL_HEADS_SPLIT, out, in, ld, col0, B, T, H, D, group);
}

clora_status clora__heads_merge_sum(clora_buffer *out, const clora_buffer *in, size_t ld,
                                    size_t col0, size_t B, size_t T, size_t H, size_t D,
                                    size_t group)
{
    return heads(CLORA__KERNEL_HEADS_MERGE_SUM, out, in, ld, col0, B, T, H, D, group);
}

clora_status clora__attention_prepare(clora__attention *att, clora_device *device, size_t B,
                                      size_t T, size_t H, size_t D)
{
    const size_t h_shape[4] = {B, H, T, D};
    clora_buffer **qkv[3] = {&att->q, &att->k, &att->v};
    clora_status status = CLORA_OK;
    for (int s = 0; s < 3 && status == CLORA_OK; ++s)
        status = clora__buffer_ensure(qkv[s], device, CLORA_DTYPE_F32, 4, h_shape, NULL);
    att->B = B;
    att->T = T;
    att->H = H;
    att->D = D;
    return status;
}

clora_status clora__attention_forward(clora__attention *att, clora_buffer *merged,
                                      const clora_buffer *mask, int causal, float dropout,
                                      uint64_t dropout_seed)
{
    clora_device *dev = merged->device;
    const size_t B = att->B, T = att->T, H = att->H, D = att->D;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D};
    clora_status status = clora__buffer_ensure(&att->p, dev, CLORA_DTYPE_F32, 4, p_shape, NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&att->ctx, dev, CLORA_DTYPE_F32, 4, h_shape, NULL);
    if (status != CLORA_OK)
        return status;
    clora_buffer *q = att->q, *k = att->k, *v = att->v, *p = att->p, *ctx = att->ctx;
    const float scale = 1.0f / sqrtf((float)D);
    status = clora__sgemm_batched(dev, 0, 1, T, T, D, scale, q->mem, q->offset, D, T * D, k->mem,
                                  k->offset, D, T * D, 0.0f, p->mem, p->offset, T, T * T, B * H);
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
    if (dropout > 0.0f) {
        if ((status = clora__buffer_ensure(&att->p_dropped, dev, CLORA_DTYPE_F32, 4, p_shape,
                                           NULL)) ||
            (status = clora__dropout(att->p_dropped, p, dropout_seed, dropout)))
            return status;
        used = att->p_dropped;
    }
    status = clora__sgemm_batched(dev, 0, 0, T, D, T, 1.0f, used->mem, used->offset, T, T * T,
                                  v->mem, v->offset, D, T * D, 0.0f, ctx->mem, ctx->offset, D,
                                  T * D, B * H);
    if (status == CLORA_OK)
        status = clora__heads_merge(merged, ctx, H * D, 0, B, T, H, D);
    return status;
}

clora_status clora__attention_backward(clora__attention *att, const clora_buffer *d_merged)
{
    clora_device *dev = d_merged->device;
    const size_t B = att->B, T = att->T, H = att->H, D = att->D;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D};
    clora_status status = CLORA_OK;
    clora_buffer **grads[4] = {&att->dq, &att->dk, &att->dv, &att->dctx};
    for (int i = 0; i < 4 && status == CLORA_OK; ++i)
        status = clora__buffer_ensure(grads[i], dev, CLORA_DTYPE_F32, 4, h_shape, NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&att->dp, dev, CLORA_DTYPE_F32, 4, p_shape, NULL);
    if (status != CLORA_OK)
        return status;
    clora_buffer *q = att->q, *k = att->k, *v = att->v;
    clora_buffer *p = att->p, *dp = att->dp, *dctx = att->dctx;
    clora_buffer *dq = att->dq, *dk = att->dk, *dv = att->dv;
    const clora_buffer *used = att->dropout > 0.0f ? att->p_dropped : p;
    const float scale = 1.0f / sqrtf((float)D);
    if ((status = clora__heads_split(dctx, d_merged, H * D, 0, B, T, H, D)) ||
        (status = clora__sgemm_batched(dev, 0, 1, T, T, D, 1.0f, dctx->mem, dctx->offset, D,
                                       T * D, v->mem, v->offset, D, T * D, 0.0f, dp->mem,
                                       dp->offset, T, T * T, B * H)) ||
        (status = clora__sgemm_batched(dev, 1, 0, T, D, T, 1.0f, used->mem, used->offset, T,
                                       T * T, dctx->mem, dctx->offset, D, T * D, 0.0f, dv->mem,
                                       dv->offset, D, T * D, B * H)))
        return status;
    if (att->dropout > 0.0f &&
        (status = clora__dropout(dp, dp, att->dropout_seed, att->dropout)))
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
    status = clora__sgemm_batched(dev, 0, 0, T, D, T, scale, dp->mem, dp->offset, T, T * T, k->mem,
                                  k->offset, D, T * D, 0.0f, dq->mem, dq->offset, D, T * D, B * H);
    if (status == CLORA_OK)
        status = clora__sgemm_batched(dev, 1, 0, T, D, T, scale, dp->mem, dp->offset, T, T * T,
                                      q->mem, q->offset, D, T * D, 0.0f, dk->mem, dk->offset, D,
                                      T * D, B * H);
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
