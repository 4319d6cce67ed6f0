/* lora_embedding.c — the forward and backward of LoRA over an Embedding,
 * as PEFT's lora.Embedding computes them: for int32 ids (...) and the
 * frozen table E (V, C), A (r, V) and B (C, r),
 *     y[t] = E[id_t] + s · B · A[:, id_t]          (..., C)
 * with no dropout (PEFT keeps a dropout module for embeddings but never
 * applies it). Backward: dB += s · Σ_t dy[t] ⊗ A[:, id_t], dA[:, v] +=
 * s · Bᵀ · Σ_{t: id_t = v} dy[t], except for the table's padding row, which
 * PyTorch gives no gradient. The node kind, its state and adapters are
 * lora_layer.c's, which passes the adapter that runs (NULL: base only);
 * the products are ops/lora_embedding.c's. */
#include "nn/nn.h"

static clora_node *table(const clora_node *node)
{
    return node->children[0];
}

clora_status clora__lora_embedding_run(clora_node *node, const clora__adapter *ad,
                                       const clora_buffer *x, const clora_buffer **y)
{
    clora_status status = clora__embedding_lookup(node, table(node), x, y);
    if (status != CLORA_OK || !ad)
        return status;
    const float scale = clora_lora_scale(ad->scale_mode, ad->alpha, ad->rank);
    return clora__lora_embedding_forward(node->owned_output, x, ad->lora_a->value,
                                         ad->lora_b->value, scale);
}

clora_status clora__lora_embedding_run_backward(clora_node *node, const clora__adapter *ad,
                                                const clora_buffer *dy, int need_dx,
                                                const clora_buffer **dx)
{
    (void)dx;
    if (need_dx)
        return clora__fail(CLORA_ERR_STATE,
                           "embedding \"%s\" cannot pass a gradient to integer ids", node->name);
    const clora_node *base = table(node);
    const clora_buffer *ids = node->input;
    clora_buffer *dw = clora__param_grad(base, "weight");
    clora_status status = dw ? clora__embedding_backward(dw, dy, ids) : CLORA_OK;
    if (status != CLORA_OK || !ad || (!ad->lora_a->grad && !ad->lora_b->grad))
        return status;
    const float scale = clora_lora_scale(ad->scale_mode, ad->alpha, ad->rank);
    return clora__lora_embedding_backward(ad->lora_a->grad, ad->lora_b->grad, dy, ids,
                                          ad->lora_a->value, ad->lora_b->value, scale,
                                          clora__embedding_padding(base));
}
