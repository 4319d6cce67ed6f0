/* transformer.c — GPT-2 and BERT: builders, and forward and backward of the
 * transformer parts, each driving its Hugging Face-named children.
 *
 * Attention, per batch b and head h (B batch, T tokens, H heads, D = C / H):
 *     S = Q·Kᵀ / √D (T, T),  P = softmax(S + mask),  ctx = drop(P)·V (T, D)
 * The GEMMs run as CLBlast strided-batched GEMMs over B·H; softmax, masks
 * and the head (un)shuffles in cl/attention.cl. Backward:
 *     dP = dctx·Vᵀ,  dV = drop(P)ᵀ·dctx,  dS = P ⊙ (drop'(dP) − rowsum(...)),
 *     dQ = dS·K / √D,  dK = dSᵀ·Q / √D
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/transformer.h"
#include "model_internal.h"

/* saved[] slots of the attention kinds */
enum { A_Q, A_K, A_V, A_P, A_PD, A_CTX, A_MERGED, A_DQ, A_DK, A_DV, A_DP, A_DCTX, A_DIN, A_T0,
       A_T1, A_T2 };
/* saved[] slots of the blocks and embeddings */
enum { S_0, S_1, S_2, S_3, S_POS, S_TYPES };

/* ---- the attention core ------------------------------------------------------------ */

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

/* The attention mask for a (B, T) batch, checked; NULL when none is set. */
static clora_status batch_mask(const clora_node *node, size_t B, size_t T,
                               const clora_buffer **mask)
{
    *mask = node->model->attention_mask;
    if (*mask && ((*mask)->shape[0] != B || (*mask)->shape[1] != T))
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "the attention mask is (%zu, %zu); the batch is (%zu, %zu) tokens",
                           (*mask)->shape[0], (*mask)->shape[1], B, T);
    return CLORA_OK;
}

/* Batch size and length of a (B, T, C) activation. */
static clora_status batch_dims(const clora_node *node, const clora_buffer *x, size_t C, size_t *B,
                               size_t *T)
{
    if (x->ndim != 3 || x->shape[2] != C || x->dtype != CLORA_DTYPE_F32) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s \"%s\" takes float32 (B, T, %zu) activations, not %s %s",
                           clora_node_kind_name(node->kind), node->name, C,
                           clora_dtype_name(x->dtype),
                           clora_buffer_shape_string(x, got, sizeof got));
    }
    *B = x->shape[0];
    *T = x->shape[1];
    return CLORA_OK;
}

/* From q, k, v in saved slots (B, H, T, D) to the merged context (B, T, C). */
static clora_status core_forward(clora_node *node, size_t B, size_t T, clora_buffer *merged)
{
    clora_device *dev = node->model->device;
    const size_t H = node->heads, D = node->features / H;
    const clora_buffer *mask = NULL;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D};
    clora_status status = batch_mask(node, B, T, &mask);
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[A_P], dev, 4, p_shape);
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[A_CTX], dev, 4, h_shape);
    if (status != CLORA_OK)
        return status;
    clora_buffer *q = node->saved[A_Q], *k = node->saved[A_K], *v = node->saved[A_V];
    clora_buffer *p = node->saved[A_P], *ctx = node->saved[A_CTX];
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
    clora__arg_uint(&a, node->causal != 0);
    clora__arg_mem(&a, mask ? mask->mem : p->mem);
    clora__arg_uint(&a, mask ? mask->offset : 0);
    clora__arg_uint(&a, mask != NULL);
    const size_t rows[1] = {B * H * T}, local[1] = {64};
    if ((status = clora__args_launch(&a, 1, rows, local)))
        return status;
    const clora_buffer *used = p;
    node->dropout_used = node->model->training ? node->p : 0.0f;
    if (node->dropout_used > 0.0f) {
        node->dropout_seed = clora__node_seed(node, 1);
        if ((status = clora__ensure(&node->saved[A_PD], dev, 4, p_shape)) ||
            (status = clora__dropout(node->saved[A_PD], p, node->dropout_seed, node->p)))
            return status;
        used = node->saved[A_PD];
    }
    status = clora__sgemm_batched(dev, 0, 0, T, D, T, 1.0f, used->mem, used->offset, T, T * T,
                                  v->mem, v->offset, D, T * D, 0.0f, ctx->mem, ctx->offset, D,
                                  T * D, B * H);
    if (status == CLORA_OK)
        status = heads(CLORA__KERNEL_HEADS_MERGE, merged, ctx, node->features, 0, B, T, H, D);
    return status;
}

/* From d_merged (B, T, C) to dq, dk, dv in saved slots (B, H, T, D). */
static clora_status core_backward(clora_node *node, size_t B, size_t T,
                                  const clora_buffer *d_merged)
{
    clora_device *dev = node->model->device;
    const size_t H = node->heads, D = node->features / H;
    const size_t p_shape[4] = {B, H, T, T}, h_shape[4] = {B, H, T, D};
    clora_status status = CLORA_OK;
    const int slots[4] = {A_DQ, A_DK, A_DV, A_DCTX};
    for (int i = 0; i < 4 && status == CLORA_OK; ++i)
        status = clora__ensure(&node->saved[slots[i]], dev, 4, h_shape);
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[A_DP], dev, 4, p_shape);
    if (status != CLORA_OK)
        return status;
    clora_buffer *q = node->saved[A_Q], *k = node->saved[A_K], *v = node->saved[A_V];
    clora_buffer *p = node->saved[A_P], *dp = node->saved[A_DP], *dctx = node->saved[A_DCTX];
    clora_buffer *dq = node->saved[A_DQ], *dk = node->saved[A_DK], *dv = node->saved[A_DV];
    const clora_buffer *used = node->dropout_used > 0.0f ? node->saved[A_PD] : p;
    const float scale = 1.0f / sqrtf((float)D);
    if ((status = heads(CLORA__KERNEL_HEADS_SPLIT, dctx, d_merged, node->features, 0, B, T, H, D)) ||
        (status = clora__sgemm_batched(dev, 0, 1, T, T, D, 1.0f, dctx->mem, dctx->offset, D,
                                       T * D, v->mem, v->offset, D, T * D, 0.0f, dp->mem,
                                       dp->offset, T, T * T, B * H)) ||
        (status = clora__sgemm_batched(dev, 1, 0, T, D, T, 1.0f, used->mem, used->offset, T,
                                       T * T, dctx->mem, dctx->offset, D, T * D, 0.0f, dv->mem,
                                       dv->offset, D, T * D, B * H)))
        return status;
    if (node->dropout_used > 0.0f &&
        (status = clora__dropout(dp, dp, node->dropout_seed, node->dropout_used)))
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

/* q, k, v slots shaped (B, H, T, D). */
static clora_status ensure_qkv(clora_node *node, size_t B, size_t T)
{
    const size_t H = node->heads, h_shape[4] = {B, H, T, node->features / H};
    clora_status status = CLORA_OK;
    for (int s = A_Q; s <= A_V && status == CLORA_OK; ++s)
        status = clora__ensure(&node->saved[s], node->model->device, 4, h_shape);
    return status;
}

/* ---- GPT-2 attention: c_attn -> attention (causal) -> c_proj -> resid_dropout -------- */

static clora_status gpt2_attention_forward(clora_node *node, const clora_buffer *x)
{
    const size_t C = node->features, H = node->heads, D = C / H;
    size_t B = 0, T = 0;
    const clora_buffer *qkv = NULL, *proj = NULL;
    clora_status status = batch_dims(node, x, C, &B, &T);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "c_attn"), x, &qkv);
    if (status == CLORA_OK)
        status = ensure_qkv(node, B, T);
    for (size_t s = 0; s < 3 && status == CLORA_OK; ++s)
        status = heads(CLORA__KERNEL_HEADS_SPLIT, node->saved[A_Q + s], qkv, 3 * C, s * C, B, T, H,
                       D);
    const size_t shape[3] = {B, T, C};
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[A_MERGED], x->device, 3, shape);
    if (status == CLORA_OK)
        status = core_forward(node, B, T, node->saved[A_MERGED]);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "c_proj"), node->saved[A_MERGED], &proj);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "resid_dropout"), proj, &node->output);
    return status;
}

static clora_status gpt2_attention_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                            const clora_buffer **dx)
{
    const size_t C = node->features, H = node->heads, D = C / H;
    const size_t B = node->input->shape[0], T = node->input->shape[1];
    const clora_buffer *d = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "resid_dropout"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "c_proj"), d, 1, &d)) ||
        (status = core_backward(node, B, T, d)))
        return status;
    const size_t qkv_shape[3] = {B, T, 3 * C};
    if ((status = clora__ensure(&node->saved[A_DIN], dy->device, 3, qkv_shape)))
        return status;
    for (size_t s = 0; s < 3 && status == CLORA_OK; ++s)
        status = heads(CLORA__KERNEL_HEADS_MERGE, node->saved[A_DIN], node->saved[A_DQ + s], 3 * C,
                       s * C, B, T, H, D);
    if (status == CLORA_OK)
        status = clora__node_backward(clora__child(node, "c_attn"), node->saved[A_DIN], need_dx, dx);
    return status;
}

/* ---- BERT self-attention: query, key, value -> attention (padding mask) -------------- */

static clora_status bert_self_attention_forward(clora_node *node, const clora_buffer *x)
{
    const size_t C = node->features, H = node->heads, D = C / H;
    static const char *const names[3] = {"query", "key", "value"};
    size_t B = 0, T = 0;
    clora_status status = batch_dims(node, x, C, &B, &T);
    if (status == CLORA_OK)
        status = ensure_qkv(node, B, T);
    for (size_t s = 0; s < 3 && status == CLORA_OK; ++s) {
        const clora_buffer *projected = NULL;
        status = clora__node_forward(clora__child(node, names[s]), x, &projected);
        if (status == CLORA_OK)
            status = heads(CLORA__KERNEL_HEADS_SPLIT, node->saved[A_Q + s], projected, C, 0, B, T,
                           H, D);
    }
    const size_t shape[3] = {B, T, C};
    if (status == CLORA_OK)
        status = clora__ensure(&node->owned_output, x->device, 3, shape);
    if (status == CLORA_OK)
        status = core_forward(node, B, T, node->owned_output);
    node->output = node->owned_output;
    return status;
}

static clora_status bert_self_attention_backward(clora_node *node, const clora_buffer *dy,
                                                 int need_dx, const clora_buffer **dx)
{
    const size_t C = node->features, H = node->heads, D = C / H;
    const size_t B = node->input->shape[0], T = node->input->shape[1];
    static const char *const names[3] = {"query", "key", "value"};
    const size_t shape[3] = {B, T, C};
    clora_status status = core_backward(node, B, T, dy);
    const clora_buffer *parts[3] = {NULL, NULL, NULL};
    for (size_t s = 0; s < 3 && status == CLORA_OK; ++s) {
        /* slots T0..T2 hold dQ, dK, dV as (B, T, C) */
        status = clora__ensure(&node->saved[A_T0 + s], dy->device, 3, shape);
        if (status == CLORA_OK)
            status = heads(CLORA__KERNEL_HEADS_MERGE, node->saved[A_T0 + s], node->saved[A_DQ + s],
                           C, 0, B, T, H, D);
        if (status == CLORA_OK)
            status = clora__node_backward(clora__child(node, names[s]), node->saved[A_T0 + s],
                                          need_dx, &parts[s]);
    }
    if (status != CLORA_OK || !need_dx)
        return status;
    if ((status = clora__ensure(&node->d_input, dy->device, 3, shape)) ||
        (status = clora__add(node->d_input, parts[0], parts[1])) ||
        (status = clora__add(node->d_input, node->d_input, parts[2])))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

/* ---- blocks: residual wiring ------------------------------------------------------------ */

static clora_node *path(clora_node *node, const char *a, const char *b)
{
    clora_node *n = clora__child(node, a);
    return n && b ? clora__child(n, b) : n;
}

/* GPT-2: h = x + attn(ln_1(x)); y = h + mlp(ln_2(h)). */
static clora_status gpt2_block_forward(clora_node *node, const clora_buffer *x)
{
    const clora_buffer *t = NULL, *a = NULL, *m = NULL;
    clora_status status;
    if ((status = clora__node_forward(path(node, "ln_1", NULL), x, &t)) ||
        (status = clora__node_forward(path(node, "attn", NULL), t, &a)) ||
        (status = clora__ensure(&node->saved[S_0], x->device, x->ndim, x->shape)) ||
        (status = clora__add(node->saved[S_0], x, a)) ||
        (status = clora__node_forward(path(node, "ln_2", NULL), node->saved[S_0], &t)) ||
        (status = clora__node_forward(path(node, "mlp", NULL), t, &m)) ||
        (status = clora__ensure(&node->owned_output, x->device, x->ndim, x->shape)) ||
        (status = clora__add(node->owned_output, node->saved[S_0], m)))
        return status;
    node->output = node->owned_output;
    return CLORA_OK;
}

static clora_status gpt2_block_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    const clora_buffer *d = NULL, *e = NULL;
    clora_status status;
    /* dh = dy + ln_2'(mlp'(dy)) */
    if ((status = clora__node_backward(path(node, "mlp", NULL), dy, 1, &d)) ||
        (status = clora__node_backward(path(node, "ln_2", NULL), d, 1, &e)) ||
        (status = clora__ensure(&node->saved[S_1], dy->device, dy->ndim, dy->shape)) ||
        (status = clora__add(node->saved[S_1], dy, e)))
        return status;
    /* dx = dh + ln_1'(attn'(dh)) */
    if ((status = clora__node_backward(path(node, "attn", NULL), node->saved[S_1], 1, &d)) ||
        (status = clora__node_backward(path(node, "ln_1", NULL), d, need_dx, &e)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__ensure(&node->d_input, dy->device, dy->ndim, dy->shape)) ||
        (status = clora__add(node->d_input, node->saved[S_1], e)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

/* BERT (post-LN): a = LN(x + drop(dense(self(x)))); y = LN(a + drop(dense(act(dense(a))))). */
static clora_status bert_layer_forward(clora_node *node, const clora_buffer *x)
{
    clora_node *attention = path(node, "attention", NULL);
    clora_node *attn_out = clora__child(attention, "output");
    const clora_buffer *s = NULL, *d = NULL, *a = NULL, *i = NULL, *y = NULL;
    clora_status status;
    if ((status = clora__node_forward(clora__child(attention, "self"), x, &s)) ||
        (status = clora__node_forward(clora__child(attn_out, "dense"), s, &d)) ||
        (status = clora__node_forward(clora__child(attn_out, "dropout"), d, &d)) ||
        (status = clora__ensure(&node->saved[S_0], x->device, x->ndim, x->shape)) ||
        (status = clora__add(node->saved[S_0], d, x)) ||
        (status = clora__node_forward(clora__child(attn_out, "LayerNorm"), node->saved[S_0], &a)) ||
        (status = clora__node_forward(path(node, "intermediate", NULL), a, &i)) ||
        (status = clora__node_forward(path(node, "output", "dense"), i, &d)) ||
        (status = clora__node_forward(path(node, "output", "dropout"), d, &d)) ||
        (status = clora__ensure(&node->saved[S_1], x->device, x->ndim, x->shape)) ||
        (status = clora__add(node->saved[S_1], d, a)) ||
        (status = clora__node_forward(path(node, "output", "LayerNorm"), node->saved[S_1], &y)))
        return status;
    node->output = y;
    return CLORA_OK;
}

static clora_status bert_layer_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    clora_node *attention = path(node, "attention", NULL);
    clora_node *attn_out = clora__child(attention, "output");
    const clora_buffer *dr2 = NULL, *d = NULL, *di = NULL, *dr1 = NULL, *ds = NULL, *dself = NULL;
    clora_status status;
    /* da = dr2 + intermediate'(dense'(drop'(dr2))) */
    if ((status = clora__node_backward(path(node, "output", "LayerNorm"), dy, 1, &dr2)) ||
        (status = clora__node_backward(path(node, "output", "dropout"), dr2, 1, &d)) ||
        (status = clora__node_backward(path(node, "output", "dense"), d, 1, &d)) ||
        (status = clora__node_backward(path(node, "intermediate", NULL), d, 1, &di)) ||
        (status = clora__ensure(&node->saved[S_2], dy->device, dy->ndim, dy->shape)) ||
        (status = clora__add(node->saved[S_2], dr2, di)))
        return status;
    /* dx = dr1 + self'(dense'(drop'(dr1))), dr1 = LN'(da) */
    if ((status = clora__node_backward(clora__child(attn_out, "LayerNorm"), node->saved[S_2], 1,
                                       &dr1)) ||
        (status = clora__node_backward(clora__child(attn_out, "dropout"), dr1, 1, &d)) ||
        (status = clora__node_backward(clora__child(attn_out, "dense"), d, 1, &ds)) ||
        (status = clora__node_backward(clora__child(attention, "self"), ds, need_dx, &dself)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__ensure(&node->d_input, dy->device, dy->ndim, dy->shape)) ||
        (status = clora__add(node->d_input, dr1, dself)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

/* ---- embeddings and the GPT-2 trunk ------------------------------------------------------ */

/* ids (B, T) int32, checked against the longest sequence `positions`. */
static clora_status check_ids(const clora_node *node, const clora_buffer *ids, size_t positions)
{
    if (ids->dtype != CLORA_DTYPE_I32 || ids->ndim != 2 || ids->numel == 0) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s \"%s\" takes int32 token ids (B, T), not %s %s",
                           clora_node_kind_name(node->kind), node->name,
                           clora_dtype_name(ids->dtype),
                           clora_buffer_shape_string(ids, got, sizeof got));
    }
    if (ids->shape[1] > positions)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%zu tokens per sequence; the model has positions for %zu",
                           ids->shape[1], positions);
    return CLORA_OK;
}

/* The (B, T) position ids 0..T-1 in slot S_POS, written when the buffer is
 * made for a new shape. */
static clora_status position_ids(clora_node *node, const clora_buffer *ids)
{
    int created = 0;
    clora_status status =
        clora__ensure_i32(&node->saved[S_POS], ids->device, 2, ids->shape, &created);
    if (status != CLORA_OK || !created)
        return status;
    int32_t *host = malloc(ids->numel * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "position ids");
    for (size_t i = 0; i < ids->numel; ++i)
        host[i] = (int32_t)(i % ids->shape[1]);
    status = clora_buffer_upload_i32(node->saved[S_POS], 0, host, ids->numel);
    free(host);
    return status;
}

static clora_status gpt2_model_forward(clora_node *node, const clora_buffer *ids)
{
    const clora_buffer *e = NULL, *p = NULL, *h = NULL, *y = NULL;
    clora_node *wpe = clora__child(node, "wpe");
    clora_status status;
    if ((status = check_ids(node, ids, wpe->num_embeddings)) ||
        (status = position_ids(node, ids)) ||
        (status = clora__node_forward(clora__child(node, "wte"), ids, &e)) ||
        (status = clora__node_forward(wpe, node->saved[S_POS], &p)) ||
        (status = clora__ensure(&node->saved[S_0], ids->device, e->ndim, e->shape)) ||
        (status = clora__add(node->saved[S_0], e, p)) ||
        (status = clora__node_forward(clora__child(node, "drop"), node->saved[S_0], &h)) ||
        (status = clora__node_forward(clora__child(node, "h"), h, &h)) ||
        (status = clora__node_forward(clora__child(node, "ln_f"), h, &y)))
        return status;
    node->output = y;
    return CLORA_OK;
}

static clora_status gpt2_model_backward(clora_node *node, const clora_buffer *dy)
{
    const clora_buffer *d = NULL, *unused = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "ln_f"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "h"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "drop"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "wte"), d, 0, &unused)) ||
        (status = clora__node_backward(clora__child(node, "wpe"), d, 0, &unused)))
        return status;
    return CLORA_OK;
}

static clora_status bert_embeddings_forward(clora_node *node, const clora_buffer *ids)
{
    clora_node *position = clora__child(node, "position_embeddings");
    const clora_buffer *types = node->model->token_types, *w = NULL, *p = NULL, *t = NULL,
                       *n = NULL, *y = NULL;
    clora_status status = check_ids(node, ids, position->num_embeddings);
    if (status == CLORA_OK)
        status = position_ids(node, ids);
    if (status == CLORA_OK && types &&
        (types->shape[0] != ids->shape[0] || types->shape[1] != ids->shape[1]))
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                             "the token types are (%zu, %zu); the ids are (%zu, %zu)",
                             types->shape[0], types->shape[1], ids->shape[0], ids->shape[1]);
    if (status == CLORA_OK && !types) { /* all zero: a zero-filled buffer of the ids' shape */
        status = clora__ensure_i32(&node->saved[S_TYPES], ids->device, 2, ids->shape, NULL);
        types = node->saved[S_TYPES];
    }
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "word_embeddings"), ids, &w);
    if (status == CLORA_OK)
        status = clora__node_forward(position, node->saved[S_POS], &p);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "token_type_embeddings"), types, &t);
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[S_0], ids->device, w->ndim, w->shape);
    if (status == CLORA_OK)
        status = clora__add(node->saved[S_0], w, p);
    if (status == CLORA_OK)
        status = clora__add(node->saved[S_0], node->saved[S_0], t);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "LayerNorm"), node->saved[S_0], &n);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "dropout"), n, &y);
    if (status == CLORA_OK)
        node->output = y;
    return status;
}

static clora_status bert_embeddings_backward(clora_node *node, const clora_buffer *dy)
{
    const clora_buffer *d = NULL, *unused = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "dropout"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "LayerNorm"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "word_embeddings"), d, 0, &unused)) ||
        (status = clora__node_backward(clora__child(node, "position_embeddings"), d, 0, &unused)) ||
        (status = clora__node_backward(clora__child(node, "token_type_embeddings"), d, 0, &unused)))
        return status;
    return CLORA_OK;
}

/* ---- mean pooling -------------------------------------------------------------------------- */

static clora_status mean_pool_launch(clora_node *node, clora__kernel_id id, clora_buffer *out,
                                     const clora_buffer *in, size_t B, size_t T, size_t C)
{
    const clora_buffer *mask = NULL;
    clora__args a;
    clora_status status = batch_mask(node, B, T, &mask);
    if (status == CLORA_OK)
        status = clora__args_begin(&a, out->device, id);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, in);
    clora__arg_mem(&a, mask ? mask->mem : in->mem);
    clora__arg_uint(&a, mask ? mask->offset : 0);
    clora__arg_uint(&a, mask != NULL);
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, C);
    if (id == CLORA__KERNEL_MEAN_POOL) {
        const size_t global[2] = {C, B}, local[2] = {16, 4};
        return clora__args_launch(&a, 2, global, local);
    }
    const size_t global[3] = {C, T, B}, local[3] = {16, 4, 1};
    return clora__args_launch(&a, 3, global, local);
}

/* ---- dispatch ------------------------------------------------------------------------------- */

clora_status clora__transformer_forward(clora_node *node, const clora_buffer *x,
                                        const clora_buffer **y)
{
    node->input = x;
    clora_status status = clora__transformer_validate(node);
    if (status != CLORA_OK)
        return status;
    switch (node->kind) {
    case CLORA_NODE_GPT2_MODEL:
        status = gpt2_model_forward(node, x);
        break;
    case CLORA_NODE_GPT2_BLOCK:
        status = gpt2_block_forward(node, x);
        break;
    case CLORA_NODE_GPT2_ATTENTION:
        status = gpt2_attention_forward(node, x);
        break;
    case CLORA_NODE_BERT_EMBEDDINGS:
        status = bert_embeddings_forward(node, x);
        break;
    case CLORA_NODE_BERT_LAYER:
        status = bert_layer_forward(node, x);
        break;
    case CLORA_NODE_BERT_SELF_ATTENTION:
        status = bert_self_attention_forward(node, x);
        break;
    case CLORA_NODE_MEAN_POOL: {
        size_t B = 0, T = 0;
        const size_t C = x->ndim == 3 ? x->shape[2] : 0;
        status = batch_dims(node, x, C, &B, &T);
        const size_t shape[2] = {B, C};
        if (status == CLORA_OK)
            status = clora__ensure(&node->owned_output, x->device, 2, shape);
        if (status == CLORA_OK)
            status = mean_pool_launch(node, CLORA__KERNEL_MEAN_POOL, node->owned_output, x, B, T, C);
        node->output = node->owned_output;
        break;
    }
    default:
        return clora__fail(CLORA_ERR_STATE, "node \"%s\" has an unknown kind", node->name);
    }
    if (status == CLORA_OK)
        *y = node->output;
    return status;
}

clora_status clora__transformer_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                         const clora_buffer **dx)
{
    *dx = NULL;
    switch (node->kind) {
    case CLORA_NODE_GPT2_MODEL:
    case CLORA_NODE_BERT_EMBEDDINGS:
        if (need_dx)
            return clora__fail(CLORA_ERR_STATE,
                               "%s \"%s\" cannot pass a gradient to integer ids",
                               clora_node_kind_name(node->kind), node->name);
        return node->kind == CLORA_NODE_GPT2_MODEL ? gpt2_model_backward(node, dy)
                                                   : bert_embeddings_backward(node, dy);
    case CLORA_NODE_GPT2_BLOCK:
        return gpt2_block_backward(node, dy, need_dx, dx);
    case CLORA_NODE_GPT2_ATTENTION:
        return gpt2_attention_backward(node, dy, need_dx, dx);
    case CLORA_NODE_BERT_LAYER:
        return bert_layer_backward(node, dy, need_dx, dx);
    case CLORA_NODE_BERT_SELF_ATTENTION:
        return bert_self_attention_backward(node, dy, need_dx, dx);
    case CLORA_NODE_MEAN_POOL: {
        if (!need_dx)
            return CLORA_OK;
        const clora_buffer *x = node->input;
        clora_status status = clora__ensure(&node->d_input, x->device, x->ndim, x->shape);
        if (status == CLORA_OK)
            status = mean_pool_launch(node, CLORA__KERNEL_MEAN_POOL_BACKWARD, node->d_input, dy,
                                      x->shape[0], x->shape[1], x->shape[2]);
        if (status == CLORA_OK)
            *dx = node->d_input;
        return status;
    }
    default:
        return clora__fail(CLORA_ERR_STATE, "node \"%s\" has an unknown kind", node->name);
    }
}

/* ---- structure ------------------------------------------------------------------------------ */

/* The node at dotted `path` below `node`, or NULL. */
static clora_node *below(const clora_node *node, const char *path)
{
    char part[64];
    const clora_node *cur = node;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        cur = clora__child(cur, part);
        path += n + (path[n] == '.');
    }
    return (clora_node *)cur;
}

#define LINEAR_LIKE (-1)
typedef struct part {
    const char *path;
    int kind; /* a clora_node_kind, or LINEAR_LIKE: Linear or LoRA */
} part;

static const part gpt2_model_parts[] = {{"wte", CLORA_NODE_EMBEDDING},
                                        {"wpe", CLORA_NODE_EMBEDDING},
                                        {"drop", CLORA_NODE_DROPOUT},
                                        {"h", CLORA_NODE_SEQUENTIAL},
                                        {"ln_f", CLORA_NODE_LAYER_NORM},
                                        {NULL, 0}};
static const part gpt2_block_parts[] = {{"ln_1", CLORA_NODE_LAYER_NORM},
                                        {"attn", CLORA_NODE_GPT2_ATTENTION},
                                        {"ln_2", CLORA_NODE_LAYER_NORM},
                                        {"mlp", CLORA_NODE_SEQUENTIAL},
                                        {NULL, 0}};
static const part gpt2_attention_parts[] = {{"c_attn", LINEAR_LIKE},
                                            {"c_proj", LINEAR_LIKE},
                                            {"resid_dropout", CLORA_NODE_DROPOUT},
                                            {NULL, 0}};
static const part bert_embeddings_parts[] = {{"word_embeddings", CLORA_NODE_EMBEDDING},
                                             {"position_embeddings", CLORA_NODE_EMBEDDING},
                                             {"token_type_embeddings", CLORA_NODE_EMBEDDING},
                                             {"LayerNorm", CLORA_NODE_LAYER_NORM},
                                             {"dropout", CLORA_NODE_DROPOUT},
                                             {NULL, 0}};
static const part bert_layer_parts[] = {
    {"attention.self", CLORA_NODE_BERT_SELF_ATTENTION},
    {"attention.output.dense", LINEAR_LIKE},
    {"attention.output.LayerNorm", CLORA_NODE_LAYER_NORM},
    {"attention.output.dropout", CLORA_NODE_DROPOUT},
    {"intermediate", CLORA_NODE_SEQUENTIAL},
    {"output.dense", LINEAR_LIKE},
    {"output.LayerNorm", CLORA_NODE_LAYER_NORM},
    {"output.dropout", CLORA_NODE_DROPOUT},
    {NULL, 0}};
static const part bert_self_attention_parts[] = {
    {"query", LINEAR_LIKE}, {"key", LINEAR_LIKE}, {"value", LINEAR_LIKE}, {NULL, 0}};
static const part no_parts[] = {{NULL, 0}};

static const part *parts_of(clora_node_kind kind)
{
    switch (kind) {
    case CLORA_NODE_GPT2_MODEL:
        return gpt2_model_parts;
    case CLORA_NODE_GPT2_BLOCK:
        return gpt2_block_parts;
    case CLORA_NODE_GPT2_ATTENTION:
        return gpt2_attention_parts;
    case CLORA_NODE_BERT_EMBEDDINGS:
        return bert_embeddings_parts;
    case CLORA_NODE_BERT_LAYER:
        return bert_layer_parts;
    case CLORA_NODE_BERT_SELF_ATTENTION:
        return bert_self_attention_parts;
    default:
        return no_parts;
    }
}

clora_status clora__transformer_validate(const clora_node *node)
{
    for (const part *p = parts_of(node->kind); p->path; ++p) {
        const clora_node *n = below(node, p->path);
        int ok = n && (p->kind == LINEAR_LIKE
                           ? n->kind == CLORA_NODE_LINEAR || n->kind == CLORA_NODE_LORA
                           : (int)n->kind == p->kind);
        if (!ok)
            return clora__fail(CLORA_ERR_STATE, "%s \"%s\" needs a %s \"%s\"%s",
                               clora_node_kind_name(node->kind), node->name,
                               p->kind == LINEAR_LIKE ? "linear"
                                                      : clora_node_kind_name((clora_node_kind)p->kind),
                               p->path, n ? " of that kind" : "");
    }
    if ((node->kind == CLORA_NODE_GPT2_ATTENTION || node->kind == CLORA_NODE_BERT_SELF_ATTENTION)) {
        const size_t C = node->features, q_out = node->kind == CLORA_NODE_GPT2_ATTENTION ? 3 * C : C;
        const clora_node *q =
            clora__linear_of(below(node, node->kind == CLORA_NODE_GPT2_ATTENTION ? "c_attn" : "query"));
        if (q->in_features != C || q->out_features != q_out)
            return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                               "%s \"%s\" of %zu features has a %zu -> %zu input projection",
                               clora_node_kind_name(node->kind), node->name, C, q->in_features,
                               q->out_features);
    }
    return CLORA_OK;
}

clora_status clora__add_attention(clora_node *parent, const char *name, clora_node_kind kind,
                                  size_t features, size_t heads, float p, clora_node **out)
{
    if (kind != CLORA_NODE_GPT2_ATTENTION && kind != CLORA_NODE_BERT_SELF_ATTENTION)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s is not an attention kind",
                           clora_node_kind_name(kind));
    if (heads == 0 || features == 0 || features % heads != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "attention \"%s\": %zu features do not split into %zu heads", name,
                           features, heads);
    if (!(p >= 0.0f && p < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "attention \"%s\": dropout %g is outside [0, 1)", name, (double)p);
    clora_node *node = NULL;
    clora_status status = clora__add_composite(parent, name, kind, &node);
    if (status != CLORA_OK)
        return status;
    node->features = features;
    node->heads = heads;
    node->causal = kind == CLORA_NODE_GPT2_ATTENTION;
    node->p = p;
    if (out)
        *out = node;
    return CLORA_OK;
}

/* ---- builders ------------------------------------------------------------------------------- */

/* A Linear with Hugging Face's init: weight ~ N(0, std^2), bias 0. */
static clora_status hf_linear(clora_node *parent, const char *name, size_t in, size_t out,
                              int in_out, float std, clora_node **node)
{
    clora_node *n = NULL;
    clora_status status = in_out ? clora_node_add_linear_in_out(parent, name, in, out, 1, &n)
                                 : clora_node_add_linear(parent, name, in, out, 1, &n);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "weight", CLORA__INIT_NORMAL, std);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "bias", CLORA__INIT_ZERO, 0.0f);
    if (status == CLORA_OK && node)
        *node = n;
    return status;
}

static clora_status hf_embedding(clora_node *parent, const char *name, size_t rows, size_t cols,
                                 float std, clora_node **node)
{
    clora_node *n = NULL;
    clora_status status = clora_node_add_embedding(parent, name, rows, cols, &n);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "weight", CLORA__INIT_NORMAL, std);
    if (status == CLORA_OK && node)
        *node = n;
    return status;
}

static int activation_ok(clora_node_kind kind)
{
    return kind == CLORA_NODE_RELU || kind == CLORA_NODE_GELU || kind == CLORA_NODE_GELU_TANH ||
           kind == CLORA_NODE_SILU || kind == CLORA_NODE_TANH;
}

clora_gpt2_config clora_gpt2_config_default(void)
{
    clora_gpt2_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 50257;
    c.n_positions = 1024;
    c.n_embd = 768;
    c.n_layer = 12;
    c.n_head = 12;
    c.n_inner = 0;
    c.activation = CLORA_NODE_GELU_TANH;
    c.layer_norm_epsilon = 1e-5f;
    c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.1f;
    c.initializer_range = 0.02f;
    return c;
}

clora_bert_config clora_bert_config_default(void)
{
    clora_bert_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 30522;
    c.hidden_size = 384;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 12;
    c.intermediate_size = 1536;
    c.max_position_embeddings = 512;
    c.type_vocab_size = 2;
    c.activation = CLORA_NODE_GELU;
    c.layer_norm_eps = 1e-12f;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1f;
    c.initializer_range = 0.02f;
    c.num_labels = 0;
    return c;
}

static clora_status check_sizes(const char *what, const size_t *sizes, const char *const *names,
                                size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (sizes[i] == 0 || sizes[i] > (size_t)INT32_MAX)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s config: %s is %zu", what, names[i],
                               sizes[i]);
    return CLORA_OK;
}

static clora_status check_common(const char *what, size_t C, size_t heads, clora_node_kind act,
                                 float eps, const float *drops, size_t n_drops, float std)
{
    int drops_ok = 1;
    for (size_t i = 0; i < n_drops; ++i)
        drops_ok &= drops[i] >= 0.0f && drops[i] < 1.0f;
    if (C % heads != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s config: %zu features do not split into %zu heads", what, C, heads);
    if (!activation_ok(act))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s config: %s is not an activation",
                           what, clora_node_kind_name(act));
    if (!(eps > 0.0f) || !isfinite(eps) || !drops_ok || !(std >= 0.0f) || !isfinite(std))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s config: needs eps > 0, dropouts in [0, 1) and initializer_range "
                           ">= 0 (got eps %g, initializer_range %g)",
                           what, (double)eps, (double)std);
    return CLORA_OK;
}

static clora_status build_gpt2(clora_model *model, const clora_gpt2_config *c)
{
    const size_t C = c->n_embd, inner = c->n_inner ? c->n_inner : 4 * C;
    const float std = c->initializer_range, proj_std = std / sqrtf(2.0f * (float)c->n_layer);
    const float eps = c->layer_norm_epsilon, p = c->resid_pdrop;
    clora_node *tr = NULL, *wte = NULL, *h = NULL;
    clora_status status = clora__add_composite(model->root, "transformer", CLORA_NODE_GPT2_MODEL,
                                               &tr);
    if (status == CLORA_OK)
        status = hf_embedding(tr, "wte", c->vocab_size, C, std, &wte);
    if (status == CLORA_OK)
        status = hf_embedding(tr, "wpe", c->n_positions, C, std, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_dropout(tr, "drop", c->embd_pdrop, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_sequential(tr, "h", &h);
    for (size_t i = 0; i < c->n_layer && status == CLORA_OK; ++i) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        clora_node *block = NULL, *attn = NULL, *mlp = NULL;
        if ((status = clora__add_composite(h, name, CLORA_NODE_GPT2_BLOCK, &block)) ||
            (status = clora_node_add_layer_norm(block, "ln_1", C, eps, NULL)) ||
            (status = clora__add_attention(block, "attn", CLORA_NODE_GPT2_ATTENTION, C, c->n_head,
                                           c->attn_pdrop, &attn)) ||
            (status = hf_linear(attn, "c_attn", C, 3 * C, 1, std, NULL)) ||
            (status = hf_linear(attn, "c_proj", C, C, 1, proj_std, NULL)) ||
            (status = clora_node_add_dropout(attn, "resid_dropout", p, NULL)) ||
            (status = clora_node_add_layer_norm(block, "ln_2", C, eps, NULL)) ||
            (status = clora_node_add_sequential(block, "mlp", &mlp)) ||
            (status = hf_linear(mlp, "c_fc", C, inner, 1, std, NULL)) ||
            (status = clora_node_add_activation(mlp, "act", c->activation, NULL)) ||
            (status = hf_linear(mlp, "c_proj", inner, C, 1, proj_std, NULL)))
            break;
        status = clora_node_add_dropout(mlp, "dropout", p, NULL);
    }
    if (status == CLORA_OK)
        status = clora_node_add_layer_norm(tr, "ln_f", C, eps, NULL);
    if (status == CLORA_OK)
        status = clora__add_tied_linear(model->root, "lm_head", wte, NULL);
    return status;
}

static clora_status build_bert(clora_model *model, const clora_bert_config *c)
{
    const size_t C = c->hidden_size, I = c->intermediate_size;
    const float std = c->initializer_range, eps = c->layer_norm_eps, p = c->hidden_dropout_prob;
    clora_node *emb = NULL, *enc = NULL, *layers = NULL, *word = NULL;
    clora_status status;
    if ((status = clora__add_composite(model->root, "embeddings", CLORA_NODE_BERT_EMBEDDINGS,
                                       &emb)) ||
        (status = hf_embedding(emb, "word_embeddings", c->vocab_size, C, std, &word)) ||
        (status = hf_embedding(emb, "position_embeddings", c->max_position_embeddings, C, std,
                               NULL)) ||
        (status = hf_embedding(emb, "token_type_embeddings", c->type_vocab_size, C, std, NULL)) ||
        (status = clora_node_add_layer_norm(emb, "LayerNorm", C, eps, NULL)) ||
        (status = clora_node_add_dropout(emb, "dropout", p, NULL)) ||
        (status = clora_node_add_sequential(model->root, "encoder", &enc)) ||
        (status = clora_node_add_sequential(enc, "layer", &layers)))
        return status;
    if (!model->skip_init) { /* the padding token's row (id 0) starts at zero, as in BERT */
        float *zero = calloc(C, sizeof *zero);
        if (!zero)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "initialising BERT");
        status = clora_buffer_upload(clora__param_get(word, "weight")->value, 0, zero, C);
        free(zero);
    }
    for (size_t i = 0; i < c->num_hidden_layers && status == CLORA_OK; ++i) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        clora_node *layer = NULL, *att = NULL, *self = NULL, *out = NULL, *mid = NULL, *o = NULL;
        if ((status = clora__add_composite(layers, name, CLORA_NODE_BERT_LAYER, &layer)) ||
            (status = clora_node_add_sequential(layer, "attention", &att)) ||
            (status = clora__add_attention(att, "self", CLORA_NODE_BERT_SELF_ATTENTION, C,
                                           c->num_attention_heads,
                                           c->attention_probs_dropout_prob, &self)) ||
            (status = hf_linear(self, "query", C, C, 0, std, NULL)) ||
            (status = hf_linear(self, "key", C, C, 0, std, NULL)) ||
            (status = hf_linear(self, "value", C, C, 0, std, NULL)) ||
            (status = clora_node_add_sequential(att, "output", &out)) ||
            (status = hf_linear(out, "dense", C, C, 0, std, NULL)) ||
            (status = clora_node_add_layer_norm(out, "LayerNorm", C, eps, NULL)) ||
            (status = clora_node_add_dropout(out, "dropout", p, NULL)) ||
            (status = clora_node_add_sequential(layer, "intermediate", &mid)) ||
            (status = hf_linear(mid, "dense", C, I, 0, std, NULL)) ||
            (status = clora_node_add_activation(mid, "intermediate_act_fn", c->activation, NULL)) ||
            (status = clora_node_add_sequential(layer, "output", &o)) ||
            (status = hf_linear(o, "dense", I, C, 0, std, NULL)) ||
            (status = clora_node_add_layer_norm(o, "LayerNorm", C, eps, NULL)))
            break;
        status = clora_node_add_dropout(o, "dropout", p, NULL);
    }
    if (status == CLORA_OK)
        status = clora__add_composite(model->root, "pool", CLORA_NODE_MEAN_POOL, NULL);
    if (status == CLORA_OK && c->num_labels > 0)
        status = hf_linear(model->root, "classifier", C, c->num_labels, 0, std, NULL);
    return status;
}

/* Creates a model and runs `build` on it with the builders' permissions;
 * skip_init leaves parameters at zero (a checkpoint fills them next). */
static clora_status create_with(clora_model **out, clora_device *device, uint64_t seed,
                                int skip_init, clora_status (*build)(clora_model *, const void *),
                                const void *config)
{
    clora_model *model = NULL;
    clora_status status = clora_model_create(&model, device, seed);
    if (status != CLORA_OK)
        return status;
    model->building = 1;
    model->skip_init = skip_init;
    status = build(model, config);
    model->building = 0;
    model->skip_init = 0;
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}

static clora_status build_gpt2_any(clora_model *model, const void *config)
{
    return build_gpt2(model, config);
}

static clora_status build_bert_any(clora_model *model, const void *config)
{
    return build_bert(model, config);
}

clora_status clora__create_gpt2(clora_model **out, clora_device *device,
                                const clora_gpt2_config *c, uint64_t seed, int skip_init)
{
    if (!out || !device || !c)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create_gpt2: NULL argument");
    *out = NULL;
    const size_t sizes[4] = {c->vocab_size, c->n_positions, c->n_embd, c->n_head};
    static const char *const names[4] = {"vocab_size", "n_positions", "n_embd", "n_head"};
    clora_status status = check_sizes("GPT-2", sizes, names, 4);
    if (status == CLORA_OK) {
        const float drops[3] = {c->embd_pdrop, c->attn_pdrop, c->resid_pdrop};
        status = check_common("GPT-2", c->n_embd, c->n_head, c->activation, c->layer_norm_epsilon,
                              drops, 3, c->initializer_range);
    }
    if (status != CLORA_OK)
        return status;
    return create_with(out, device, seed, skip_init, build_gpt2_any, c);
}

clora_status clora__create_bert(clora_model **out, clora_device *device,
                                const clora_bert_config *c, uint64_t seed, int skip_init)
{
    if (!out || !device || !c)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create_bert: NULL argument");
    *out = NULL;
    const size_t sizes[6] = {c->vocab_size,        c->hidden_size,          c->num_attention_heads,
                             c->intermediate_size, c->max_position_embeddings, c->type_vocab_size};
    static const char *const names[6] = {"vocab_size",        "hidden_size",
                                         "num_attention_heads", "intermediate_size",
                                         "max_position_embeddings", "type_vocab_size"};
    clora_status status = check_sizes("BERT", sizes, names, 6);
    if (status == CLORA_OK) {
        const float drops[2] = {c->hidden_dropout_prob, c->attention_probs_dropout_prob};
        status = check_common("BERT", c->hidden_size, c->num_attention_heads, c->activation,
                              c->layer_norm_eps, drops, 2, c->initializer_range);
    }
    if (status != CLORA_OK)
        return status;
    return create_with(out, device, seed, skip_init, build_bert_any, c);
}

clora_status clora_model_create_gpt2(clora_model **out, clora_device *device,
                                     const clora_gpt2_config *config, uint64_t seed)
{
    return clora__create_gpt2(out, device, config, seed, 0);
}

clora_status clora_model_create_bert(clora_model **out, clora_device *device,
                                     const clora_bert_config *config, uint64_t seed)
{
    return clora__create_bert(out, device, config, seed, 0);
}

/* ---- per-batch inputs ----------------------------------------------------------------------- */

static clora_status set_batch_input(clora_model *model, const clora_buffer *buf, const char *op,
                                    const clora_buffer **slot)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: model is NULL", op);
    if (buf && (buf->dtype != CLORA_DTYPE_I32 || buf->ndim != 2)) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: needs int32 (B, T), not %s %s", op,
                           clora_dtype_name(buf->dtype),
                           clora_buffer_shape_string(buf, got, sizeof got));
    }
    if (buf && buf->device != model->device)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH, "%s: the buffer is on another device", op);
    *slot = buf;
    model->has_forward = 0; /* a backward must follow a forward with these inputs */
    return CLORA_OK;
}

clora_status clora_model_set_attention_mask(clora_model *model, const clora_buffer *mask)
{
    return set_batch_input(model, mask, "clora_model_set_attention_mask",
                           model ? &model->attention_mask : NULL);
}

clora_status clora_model_set_token_types(clora_model *model, const clora_buffer *types)
{
    return set_batch_input(model, types, "clora_model_set_token_types",
                           model ? &model->token_types : NULL);
}
