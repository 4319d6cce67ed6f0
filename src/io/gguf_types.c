/* gguf_types.c — GGUF's tensor types by their numbers in files: sizes, and
 * the clora dtype each readable one is stored as. */
#include "io/io.h"

#define QK_K 256

static const clora__quant_type types[] = {
    {CLORA_GGUF_F32, "F32", 1, 4, 1, CLORA_DTYPE_F32},
    {CLORA_GGUF_F16, "F16", 1, 2, 1, CLORA_DTYPE_F16},
    {CLORA_GGUF_Q4_0, "Q4_0", 32, 18, 1, CLORA_DTYPE_Q4_0},
    {CLORA_GGUF_Q4_1, "Q4_1", 32, 20, 1, CLORA_DTYPE_Q4_1},
    {CLORA_GGUF_Q5_0, "Q5_0", 32, 22, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_Q5_1, "Q5_1", 32, 24, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_Q8_0, "Q8_0", 32, 34, 1, CLORA_DTYPE_Q8_0},
    {CLORA_GGUF_Q8_1, "Q8_1", 32, 36, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_Q2_K, "Q2_K", QK_K, 84, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_Q3_K, "Q3_K", QK_K, 110, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_Q4_K, "Q4_K", QK_K, 144, 1, CLORA_DTYPE_Q4_K},
    {CLORA_GGUF_Q5_K, "Q5_K", QK_K, 176, 1, CLORA_DTYPE_Q5_K},
    {CLORA_GGUF_Q6_K, "Q6_K", QK_K, 210, 1, CLORA_DTYPE_Q6_K},
    {CLORA_GGUF_Q8_K, "Q8_K", QK_K, 292, 0, CLORA_DTYPE_COUNT},
    {CLORA_GGUF_BF16, "BF16", 1, 2, 1, CLORA_DTYPE_BF16},
};

const clora__quant_type *clora__quant_find(uint32_t id)
{
    for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i)
        if (types[i].id == id)
            return &types[i];
    return NULL;
}

void clora__quant_dequantize(float *dst, const void *src, const clora__quant_type *type, size_t n)
{
    if (type->readable)
        clora__dequantize(type->dtype, src, n, dst);
}
