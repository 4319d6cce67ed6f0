/* mean_pool.c — the mean-pooling node kind (BERT's sentence embedding):
 * (B, T, C) -> (B, C), the mean over the tokens the model's attention mask
 * keeps; ops/pooling.c computes it. */
#include "nn/nn.h"

static clora_status mean_pool_forward(clora_node *node, const clora_buffer *x,
                                      const clora_buffer **y)
{
    size_t B = 0, T = 0;
    const size_t C = x->ndim == 3 ? x->shape[2] : 0;
    const clora_buffer *mask = NULL;
    clora_status status = clora__batch_dims(node, x, C, &B, &T);
    const size_t shape[2] = {B, C};
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&node->owned_output, x->device, CLORA_DTYPE_F32, 2, shape,
                                      NULL);
    if (status == CLORA_OK)
        status = clora__batch_mask(node, B, T, &mask);
    if (status == CLORA_OK)
        status = clora__mean_pool_forward(node->owned_output, x, mask);
    *y = node->owned_output;
    return status;
}

static clora_status mean_pool_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                       const clora_buffer **dx)
{
    if (!need_dx)
        return CLORA_OK;
    const clora_buffer *x = node->input, *mask = NULL;
    clora_status status = clora__buffer_ensure_like(&node->d_input, x);
    if (status == CLORA_OK)
        status = clora__batch_mask(node, x->shape[0], x->shape[1], &mask);
    if (status == CLORA_OK)
        status = clora__mean_pool_backward(node->d_input, dy, mask);
    if (status == CLORA_OK)
        *dx = node->d_input;
    return status;
}

const clora__node_kind clora__mean_pool_kind = {
    .id = CLORA_NODE_MEAN_POOL,
    .name = "mean_pool",
    .flags = CLORA__KIND_COMPOSITE,
    .forward = mean_pool_forward,
    .backward = mean_pool_backward,
    .load = clora__load_composite,
};
