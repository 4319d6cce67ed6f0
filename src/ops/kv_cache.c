/* kv_cache.c — launchers of cl/kv_cache.cl: the key/value cache of
 * generation sessions. Letters as in ops.h; G key/value heads, S the
 * cache's capacity per row. */
#include <math.h>

#include "ops/ops.h"

clora_status clora__cache_write(clora_buffer *cache, const clora_buffer *src,
                                const clora_buffer *lengths, const clora_buffer *counts)
{
    const size_t B = cache->shape[0], G = cache->shape[1], S = cache->shape[2];
    const size_t D = cache->shape[3], T = src->shape[2];
    clora__args a;
    clora_status status = clora__args_begin(&a, cache->device, CLORA__KERNEL_CACHE_WRITE);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, cache);
    clora__arg_buffer(&a, src);
    clora__arg_mem(&a, lengths->mem);
    clora__arg_mem(&a, counts->mem);
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, G);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, S);
    clora__arg_uint(&a, D);
    const size_t global[3] = {D, T, B * G}, local[3] = {D < 64 ? D : 64, 1, 1};
    return clora__args_launch(&a, 3, global, local);
}

clora_status clora__cached_attention(clora_buffer *out, const clora_buffer *q,
                                     const clora_buffer *keys, const clora_buffer *values,
                                     const clora_buffer *lengths)
{
    const size_t B = q->shape[0], H = q->shape[1], T = q->shape[2], D = q->shape[3];
    const size_t G = keys->shape[1], S = keys->shape[2];
    if (D > CLORA__MAX_CACHED_HEAD)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "cached attention: heads of %zu values; at most %d", D,
                           CLORA__MAX_CACHED_HEAD);
    clora__args a;
    clora_status status = clora__args_begin(&a, q->device, CLORA__KERNEL_CACHED_ATTENTION);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, q);
    clora__arg_buffer(&a, keys);
    clora__arg_buffer(&a, values);
    clora__arg_mem(&a, lengths->mem);
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, H);
    clora__arg_uint(&a, G);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, S);
    clora__arg_uint(&a, D);
    clora__arg_float(&a, 1.0f / sqrtf((float)D));
    const size_t rows[1] = {B * H * T}, local[1] = {16};
    return clora__args_launch(&a, 1, rows, local);
}

clora_status clora__last_rows(clora_buffer *out, const clora_buffer *in,
                              const clora_buffer *counts)
{
    const size_t B = in->shape[0], T = in->shape[1], C = in->shape[2];
    clora__args a;
    clora_status status = clora__args_begin(&a, in->device, CLORA__KERNEL_LAST_ROWS);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, in);
    clora__arg_mem(&a, counts->mem);
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, C);
    const size_t global[2] = {C, B}, local[2] = {C < 64 ? C : 64, 1};
    return clora__args_launch(&a, 2, global, local);
}
