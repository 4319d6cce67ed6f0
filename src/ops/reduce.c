/* reduce.c — deterministic sums (cl/reduce.cl): fixed chunks summed in
 * order, then the chunk sums in order; no atomics, the same bits on every
 * run. */
#include "ops/ops.h"

#define SUM_CHUNK 4096

clora_status clora__sum(clora_device *dev, cl_mem out, size_t out_offset, const clora_buffer *x,
                        int square, float scale)
{
    size_t parts = (x->numel + SUM_CHUNK - 1) / SUM_CHUNK;
    if (parts == 0)
        parts = 1;
    cl_mem partials;
    clora__args a;
    clora_status status = clora__device_scratch(dev, parts * sizeof(float), &partials);
    if (status == CLORA_OK && x->numel > 0) {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_SUM_PARTIALS)))
            return status;
        clora__arg_mem(&a, partials);
        clora__arg_buffer(&a, x);
        clora__arg_uint(&a, x->numel);
        clora__arg_uint(&a, SUM_CHUNK);
        clora__arg_uint(&a, square != 0);
        const size_t global[1] = {parts}, local[1] = {1};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_SUM_FINISH);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, out);
    clora__arg_uint(&a, out_offset);
    clora__arg_mem(&a, partials);
    clora__arg_uint(&a, x->numel > 0 ? parts : 0);
    clora__arg_float(&a, scale);
    clora__arg_uint(&a, 0);
    const size_t one[1] = {1};
    return clora__args_launch(&a, 1, one, one);
}

clora_status clora__scale_by(clora_buffer *x, const clora_buffer *factor, size_t factor_index)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_SCALE_BY);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, x);
    clora__arg_uint(&a, x->numel);
    clora__arg_mem(&a, factor->mem);
    clora__arg_uint(&a, factor->offset + factor_index);
    const size_t global[1] = {x->numel}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}
