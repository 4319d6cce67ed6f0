/* quant.c — the plain-C reference of the packed weight types (F16, BF16
 * and GGUF's block types): float32 values from their bytes, and bytes from
 * float32 values for the types clora quantizes to. The layouts are
 * described in core.h; cl/dequant.cl reads the same bytes on devices and
 * must give the same floats. This file is compiled without floating-point
 * contraction (CMakeLists.txt), as the kernels are, so that d·q + m is two
 * roundings on both sides. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define QK_K 256 /* weights in a K-quant super-block */

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint32_t bits_of(float f)
{
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
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

uint16_t clora__f32_to_f16(float value)
{
    const uint32_t bits = bits_of(value);
    const uint16_t sign = (uint16_t)(bits >> 16 & 0x8000u);
    const uint32_t exponent = bits >> 23 & 0xffu, mantissa = bits & 0x7fffffu;
    if (exponent == 0xff) /* inf stays inf; NaN stays a (quiet) NaN */
        return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u | mantissa >> 13 : 0));
    const int e = (int)exponent - 127 + 15;
    if (e >= 31) /* too large: infinity */
        return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* a half subnormal, or zero */
        if (e < -10)
            return sign;
        const uint32_t m = mantissa | 0x800000u; /* the implicit bit */
        const int shift = 14 - e;                 /* 14..24 */
        uint32_t half = m >> shift;
        const uint32_t rest = m & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1)))
            ++half; /* may carry into the smallest normal: still right */
        return (uint16_t)(sign | half);
    }
    uint32_t half = (uint32_t)e << 10 | mantissa >> 13;
    const uint32_t rest = mantissa & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1)))
        ++half; /* a carry into the exponent rounds up to the next binade or inf */
    return (uint16_t)(sign | half);
}

static uint16_t le16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static void put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char)(v & 0xff);
    p[1] = (unsigned char)(v >> 8);
}

static float f16_at(const unsigned char *p)
{
    return clora__f16_to_f32(le16(p));
}

/* ---- one block of each type to float32 ----------------------------------------------- */

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

/* ---- one block of float32 to each type clora quantizes to ---------------------------- */

static void quant_f16(unsigned char *dst, const float *src)
{
    put16(dst, clora__f32_to_f16(src[0]));
}

/* Round to nearest even on the upper 16 bits; NaN stays a quiet NaN. */
static void quant_bf16(unsigned char *dst, const float *src)
{
    const uint32_t u = bits_of(src[0]);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        put16(dst, (uint16_t)(u >> 16 | 0x40u));
        return;
    }
    put16(dst, (uint16_t)((u + (0x7fffu + (u >> 16 & 1))) >> 16));
}

/* d = max |x| / 127, q = round(x / d). */
static void quant_q8_0(unsigned char *dst, const float *src)
{
    float amax = 0.0f;
    for (int i = 0; i < 32; ++i)
        amax = fmaxf(amax, fabsf(src[i]));
    const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(dst, clora__f32_to_f16(d));
    for (int i = 0; i < 32; ++i)
        dst[2 + i] = (unsigned char)(int8_t)roundf(src[i] * id);
}

/* d = (the value of largest magnitude) / -8, q = x / d + 8 rounded, at most 15. */
static void quant_q4_0(unsigned char *dst, const float *src)
{
    float amax = 0.0f, max = 0.0f;
    for (int i = 0; i < 32; ++i)
        if (fabsf(src[i]) > amax) {
            amax = fabsf(src[i]);
            max = src[i];
        }
    const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(dst, clora__f32_to_f16(d));
    for (int j = 0; j < 16; ++j) {
        int lo = (int)(int8_t)(src[j] * id + 8.5f), hi = (int)(int8_t)(src[j + 16] * id + 8.5f);
        lo = lo < 15 ? lo : 15;
        hi = hi < 15 ? hi : 15;
        dst[2 + j] = (unsigned char)(lo | hi << 4);
    }
}

/* d = (max - min) / 15, m = min, q = (x - min) / d rounded, at most 15. */
static void quant_q4_1(unsigned char *dst, const float *src)
{
    float min = src[0], max = src[0];
    for (int i = 1; i < 32; ++i) {
        min = fminf(min, src[i]);
        max = fmaxf(max, src[i]);
    }
    const float d = (max - min) / 15.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    put16(dst, clora__f32_to_f16(d));
    put16(dst + 2, clora__f32_to_f16(min));
    for (int j = 0; j < 16; ++j) {
        int lo = (int)(int8_t)((src[j] - min) * id + 0.5f);
        int hi = (int)(int8_t)((src[j + 16] - min) * id + 0.5f);
        lo = lo < 15 ? lo : 15;
        hi = hi < 15 ? hi : 15;
        dst[4 + j] = (unsigned char)(lo | hi << 4);
    }
}

/* ---- the table --------------------------------------------------------------- */

typedef struct block_codec {
    void (*to_f32)(float *dst, const unsigned char *src);
    void (*from_f32)(unsigned char *dst, const float *src); /* NULL: read only */
} block_codec;

static const block_codec *codec_of(clora_dtype dtype)
{
    static const block_codec f32 = {block_f32, NULL}, f16 = {block_f16, quant_f16},
                             bf16 = {block_bf16, quant_bf16}, q8_0 = {block_q8_0, quant_q8_0},
                             q4_0 = {block_q4_0, quant_q4_0}, q4_1 = {block_q4_1, quant_q4_1},
                             q4_k = {block_q4_k, NULL}, q5_k = {block_q5_k, NULL},
                             q6_k = {block_q6_k, NULL};
    switch (dtype) {
    case CLORA_DTYPE_F32: return &f32;
    case CLORA_DTYPE_F16: return &f16;
    case CLORA_DTYPE_BF16: return &bf16;
    case CLORA_DTYPE_Q8_0: return &q8_0;
    case CLORA_DTYPE_Q4_0: return &q4_0;
    case CLORA_DTYPE_Q4_1: return &q4_1;
    case CLORA_DTYPE_Q4_K: return &q4_k;
    case CLORA_DTYPE_Q5_K: return &q5_k;
    case CLORA_DTYPE_Q6_K: return &q6_k;
    default: return NULL;
    }
}

int clora__can_dequantize(clora_dtype dtype)
{
    return codec_of(dtype) != NULL;
}

void clora__dequantize(clora_dtype dtype, const void *src, size_t n, float *dst)
{
    const block_codec *codec = codec_of(dtype);
    const size_t block = clora_dtype_block_size(dtype), bytes = clora_dtype_block_bytes(dtype);
    const unsigned char *p = src;
    for (size_t done = 0; codec && done + block <= n; done += block, p += bytes)
        codec->to_f32(dst + done, p);
}

void clora__quantize(clora_dtype dtype, const float *src, size_t n, void *dst)
{
    const block_codec *codec = codec_of(dtype);
    const size_t block = clora_dtype_block_size(dtype), bytes = clora_dtype_block_bytes(dtype);
    unsigned char *p = dst;
    for (size_t done = 0; codec && codec->from_f32 && done + block <= n; done += block, p += bytes)
        codec->from_f32(p, src + done);
}

/* ---- packed buffers from and to float32 host values -------------------------------------- */

clora_status clora__upload_values(clora_buffer *dst, const float *values, const char *what)
{
    if (!clora_dtype_is_packed(dst->dtype))
        return clora_buffer_upload(dst, 0, values, dst->numel);
    if (!clora_dtype_can_quantize(dst->dtype))
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: clora does not quantize to %s", what,
                           clora_dtype_name(dst->dtype));
    const size_t bytes = clora_buffer_bytes(dst), cols = dst->shape[dst->ndim - 1];
    unsigned char *packed = clora__malloc(bytes ? bytes : 1);
    float *row = clora__malloc(cols * sizeof *row);
    clora_status status = packed && row ? CLORA_OK
                                        : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "packing %s",
                                                      what);
    const size_t rows = cols ? dst->numel / cols : 0, row_bytes = clora_dtype_bytes(dst->dtype, cols);
    for (size_t r = 0; r < rows && status == CLORA_OK; ++r) {
        clora__quantize(dst->dtype, values + r * cols, cols, packed + r * row_bytes);
        /* values past the type's range (65504 for the f16 scales) */
        clora__dequantize(dst->dtype, packed + r * row_bytes, cols, row);
        for (size_t c = 0; c < cols; ++c)
            if (!isfinite(row[c])) {
                status = clora__fail(CLORA_ERR_NON_FINITE,
                                     "%s: value %zu (%g) is beyond what %s can hold", what,
                                     r * cols + c, (double)values[r * cols + c],
                                     clora_dtype_name(dst->dtype));
                break;
            }
    }
    if (status == CLORA_OK)
        status = clora_buffer_upload_bytes(dst, 0, packed, bytes);
    free(packed);
    free(row);
    return status;
}

clora_status clora__download_values(const clora_buffer *src, float *values)
{
    if (!clora_dtype_is_packed(src->dtype))
        return clora_buffer_download(src, 0, values, src->numel);
    const size_t bytes = clora_buffer_bytes(src);
    unsigned char *packed = clora__malloc(bytes ? bytes : 1);
    if (!packed)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading packed weights");
    clora_status status = clora_buffer_download_bytes(src, 0, packed, bytes);
    if (status == CLORA_OK)
        clora__dequantize(src->dtype, packed, src->numel, values);
    free(packed);
    return status;
}
