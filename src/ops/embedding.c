/* embedding.c — launchers of cl/embedding.cl: table lookup and its
 * gradient. ids: int32 (N); table (V, C); rows (N, C). */
#include <stdlib.h>

#include "ops/ops.h"

clora_status clora__embedding_forward(clora_buffer *y, const clora_buffer *weight,
                                      const clora_buffer *ids, const char *name)
{
    const size_t rows = weight->shape[0], cols = weight->shape[1];
    /* Ids come from outside; check their range before they index a table. */
    int32_t *host = clora__malloc((ids->numel ? ids->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "checking embedding ids");
    clora_status status = clora_buffer_download_i32(ids, 0, host, ids->numel);
    for (size_t i = 0; i < ids->numel && status == CLORA_OK; ++i)
        if (host[i] < 0 || (size_t)host[i] >= rows)
            status = clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                                 "embedding \"%s\": id %d at position %zu is outside [0, %zu)",
                                 name, (int)host[i], i, rows);
    free(host);
    if (status != CLORA_OK)
        return status;
    if (clora_dtype_is_packed(weight->dtype))
        return clora__embedding_forward_packed(y, weight, ids);
    clora__args a;
    if ((status = clora__args_begin(&a, ids->device, CLORA__KERNEL_EMBEDDING_FORWARD)))
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, weight);
    clora__arg_buffer(&a, ids);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, cols);
    const size_t global[2] = {cols, ids->numel}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

clora_status clora__embedding_backward(clora_buffer *d_weight, const clora_buffer *dy,
                                       const clora_buffer *ids)
{
    const size_t cols = d_weight->shape[1];
    clora__args a;
    clora_status status = clora__args_begin(&a, ids->device, CLORA__KERNEL_EMBEDDING_BACKWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, d_weight);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, ids);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, cols);
    const size_t global[1] = {cols}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}
