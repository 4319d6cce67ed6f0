/* pooling.c — launchers of cl/attention.cl's pooling: x (B, T, C) to
 * (B, C), the mean over the tokens an int32 (B, T) mask keeps (all tokens
 * without a mask) or the last token it keeps, and their gradients. */
#include "ops/ops.h"

static clora_status pool_launch(clora__kernel_id id, clora_buffer *out,
                                     const clora_buffer *in, const clora_buffer *mask, size_t B,
                                     size_t T, size_t C)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, out->device, id);
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
    if (id == CLORA__KERNEL_MEAN_POOL || id == CLORA__KERNEL_LAST_TOKEN_POOL) {
        const size_t global[2] = {C, B}, local[2] = {16, 4};
        return clora__args_launch(&a, 2, global, local);
    }
    const size_t global[3] = {C, T, B}, local[3] = {16, 4, 1};
    return clora__args_launch(&a, 3, global, local);
}

clora_status clora__mean_pool_forward(clora_buffer *y, const clora_buffer *x,
                                      const clora_buffer *mask)
{
    return pool_launch(CLORA__KERNEL_MEAN_POOL, y, x, mask, x->shape[0], x->shape[1],
                            x->shape[2]);
}

clora_status clora__mean_pool_backward(clora_buffer *dx, const clora_buffer *dy,
                                       const clora_buffer *mask)
{
    return pool_launch(CLORA__KERNEL_MEAN_POOL_BACKWARD, dx, dy, mask, dx->shape[0],
                            dx->shape[1], dx->shape[2]);
}

clora_status clora__last_token_pool_forward(clora_buffer *y, const clora_buffer *x,
                                            const clora_buffer *mask)
{
    return pool_launch(CLORA__KERNEL_LAST_TOKEN_POOL, y, x, mask, x->shape[0], x->shape[1],
                       x->shape[2]);
}

clora_status clora__last_token_pool_backward(clora_buffer *dx, const clora_buffer *dy,
                                             const clora_buffer *mask)
{
    return pool_launch(CLORA__KERNEL_LAST_TOKEN_POOL_BACKWARD, dx, dy, mask, dx->shape[0],
                       dx->shape[1], dx->shape[2]);
}
