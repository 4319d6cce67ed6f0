/* quant.c — GGUF's tensor types: their block sizes and the float32 values
 * of their blocks. The layouts are described once, in io/io.h. */
#include <string.h>

#include "io/io.h"

#define QK_K 256 /* weights in a K-quant super-block */

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

float clora__f16_to_f32(uint16_t half)
{
    uint32_t sign = (uint32_t)(half & 0x8000u) << 16;
    uint32_t exponent = (half >> 10) & 0x1fu;
    uint32_t mantissa = half & 0x3ffu;
    if (exponent == 0x1f) /* inf / nan */
        return f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent == 0) {
        if (mantissa == 0)
            return f32_from_bits(sign);
        /* subnormal: normalise */
        int e = -1;
        do {
            ++e;
            mantissa <<= 1;
        } while (!(mantissa & 0x400u));
        return f32_from_bits(sign | ((uint32_t)(112 - e) << 23) | ((mantissa & 0x3ffu) << 13));
    }
    return f32_from_bits(sign | ((exponent + 112) << 23) | (mantissa << 13));
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static float f16_at(const unsigned char *p)
{
    return clora__f16_to_f32(le16(p));
}

/* ---- one block of each type ------------------------------------------------ */

static void block_f32(float *dst, const unsigned char *src)
{
    dst[0] = f32_from_bits((uint32_t)src[0] | (uint32_t)src[1] << 8 | (uint32_t)src[2] << 16 |
                           (uint32_t)src[3] << 24);
}

static void block_f16(float *dst, const unsigned char *src)
{
    dst[0] = f16_at(src);
}

static void block_bf16(float *dst, const unsigned char *src)
{
    dst[0] = f32_from_bits((uint32_t)le16(src) << 16);
}

static void block_q8_0(float *dst, const unsigned char *src)
{
    const float d = f16_at(src);
    const unsigned char *q = src + 2;
    for (int i = 0; i < 32; ++i)
        dst[i] = (float)(int8_t)q[i] * d;
}

static void block_q4_0(float *dst, const unsigned char *src)
{
    const float d = f16_at(src);
    const unsigned char *qs = src + 2;
    for (int j = 0; j < 16; ++j) {
        dst[j] = (float)((qs[j] & 15) - 8) * d;
        dst[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void block_q4_1(float *dst, const unsigned char *src)
{
    const float d = f16_at(src), m = f16_at(src + 2);
    const unsigned char *qs = src + 4;
    for (int j = 0; j < 16; ++j) {
        dst[j] = (float)(qs[j] & 15) * d + m;
        dst[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Sub-block s's 6-bit scale and min in the 12 packed bytes of Q4_K / Q5_K. */
static void k_scale_min(const unsigned char *scales, int s, int *sc, int *m)
{
    if (s < 4) {
        *sc = scales[s] & 63;
        *m = scales[s + 4] & 63;
    } else {
        *sc = (scales[s + 4] & 15) | (scales[s - 4] >> 6) << 4;
        *m = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4;
    }
}

/* Q4_K, and Q5_K when qh is not NULL (its fifth bits). */
static void k_quant_4_or_5(float *dst, const unsigned char *src, const unsigned char *qh,
                           const unsigned char *qs)
{
    const float d = f16_at(src), dmin = f16_at(src + 2);
    const unsigned char *scales = src + 4;
    for (int s = 0; s < 8; ++s) {
        int sc, m;
        k_scale_min(scales, s, &sc, &m);
        const float scale = d * (float)sc, min = dmin * (float)m;
        const unsigned char *q = qs + 32 * (s / 2);
        const int shift = 4 * (s % 2);
        for (int l = 0; l < 32; ++l) {
            int v = (q[l] >> shift) & 15;
            if (qh && (qh[l] >> s & 1))
                v += 16;
            dst[32 * s + l] = scale * (float)v - min;
        }
    }
}

static void block_q4_k(float *dst, const unsigned char *src)
{
    k_quant_4_or_5(dst, src, NULL, src + 16);
}

static void block_q5_k(float *dst, const unsigned char *src)
{
    k_quant_4_or_5(dst, src, src + 16, src + 48);
}

static void block_q6_k(float *dst, const unsigned char *src)
{
    const unsigned char *ql = src, *qh = src + 128;
    const signed char *scales = (const signed char *)(src + 192);
    const float d = f16_at(src + 208);
    for (int h = 0; h < 2; ++h) {
        const unsigned char *lo = ql + 64 * h, *hi = qh + 32 * h;
        float *y = dst + 128 * h;
        for (int l = 0; l < 32; ++l) {
            const int b = hi[l];
            const int q[4] = {(lo[l] & 15) | (b & 3) << 4,
                              (lo[l + 32] & 15) | (b >> 2 & 3) << 4,
                              (lo[l] >> 4) | (b >> 4 & 3) << 4,
                              (lo[l + 32] >> 4) | (b >> 6 & 3) << 4};
            for (int k = 0; k < 4; ++k) {
                const int i = 32 * k + l; /* within the half */
                y[i] = d * (float)scales[8 * h + i / 16] * (float)(q[k] - 32);
            }
        }
    }
}

/* ---- the table --------------------------------------------------------------- */

static const clora__quant_type types[] = {
    {CLORA_GGUF_F32, "F32", 1, 4, block_f32},
    {CLORA_GGUF_F16, "F16", 1, 2, block_f16},
    {CLORA_GGUF_Q4_0, "Q4_0", 32, 18, block_q4_0},
    {CLORA_GGUF_Q4_1, "Q4_1", 32, 20, block_q4_1},
    {CLORA_GGUF_Q5_0, "Q5_0", 32, 22, NULL},
    {CLORA_GGUF_Q5_1, "Q5_1", 32, 24, NULL},
    {CLORA_GGUF_Q8_0, "Q8_0", 32, 34, block_q8_0},
    {CLORA_GGUF_Q8_1, "Q8_1", 32, 36, NULL},
    {CLORA_GGUF_Q2_K, "Q2_K", QK_K, 84, NULL},
    {CLORA_GGUF_Q3_K, "Q3_K", QK_K, 110, NULL},
    {CLORA_GGUF_Q4_K, "Q4_K", QK_K, 144, block_q4_k},
    {CLORA_GGUF_Q5_K, "Q5_K", QK_K, 176, block_q5_k},
    {CLORA_GGUF_Q6_K, "Q6_K", QK_K, 210, block_q6_k},
    {CLORA_GGUF_Q8_K, "Q8_K", QK_K, 292, NULL},
    {CLORA_GGUF_BF16, "BF16", 1, 2, block_bf16},
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
    const unsigned char *p = src;
    for (size_t done = 0; done + type->block <= n; done += type->block, p += type->bytes)
        type->dequantize_block(dst + done, p);
}
