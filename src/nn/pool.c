/* pool.c — the pooling node kinds, (B, T, C) -> (B, C) over the tokens the
 * model's attention mask keeps: "mean_pool" (BERT's sentence embedding)
 * and "last_token_pool" (the last kept token, where decoders'
 * sequence classifiers read). ops/pooling.c computes them. */
#include "nn/nn.h"

typedef clora_status (*pool_op)(clora_buffer *out, const clora_buffer *in,
                                const clora_buffer *mask);

static clora_status pool_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y,
                                 pool_op op)
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
        status = op(node->owned_output, x, mask);
    *y = node->owned_output;
    return status;
}

static clora_status pool_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx, pool_op op)
{
    if (!need_dx)
        return CLORA_OK;
    const clora_buffer *x = node->input, *mask = NULL;
    clora_status status = clora__buffer_ensure_like(&node->d_input, x);
    if (status == CLORA_OK)
        status = clora__batch_mask(node, x->shape[0], x->shape[1], &mask);
    if (status == CLORA_OK)
        status = op(node->d_input, dy, mask);
    if (status == CLORA_OK)
        *dx = node->d_input;
    return status;
}

static clora_status mean_pool_forward(clora_node *node, const clora_buffer *x,
                                      const clora_buffer **y)
{
    return pool_forward(node, x, y, clora__mean_pool_forward);
}

static clora_status mean_pool_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                       const clora_buffer **dx)
{
    return pool_backward(node, dy, need_dx, dx, clora__mean_pool_backward);
}

static clora_status last_token_pool_forward(clora_node *node, const clora_buffer *x,
                                            const clora_buffer **y)
{
    return pool_forward(node, x, y, clora__last_token_pool_forward);
}

static clora_status last_token_pool_backward(clora_node *node, const clora_buffer *dy,
                                             int need_dx, const clora_buffer **dx)
{
    return pool_backward(node, dy, need_dx, dx, clora__last_token_pool_backward);
}

const clora__node_kind clora__mean_pool_kind = {
    .id = CLORA_NODE_MEAN_POOL,
    .name = "mean_pool",
    .flags = CLORA__KIND_COMPOSITE,
    .forward = mean_pool_forward,
    .backward = mean_pool_backward,
    .load = clora__load_composite,
};

const clora__node_kind clora__last_token_pool_kind = {
    .id = CLORA_NODE_LAST_TOKEN_POOL,
    .name = "last_token_pool",
    .flags = CLORA__KIND_COMPOSITE,
    .forward = last_token_pool_forward,
    .backward = last_token_pool_backward,
    .load = clora__load_composite,
};
