/* dequant.cl - frozen weights stored packed (F16, BF16 and GGUF's block
 * types; layouts in src/core/core.h), read as the float32 values they
 * stand for. Every value equals the plain-C reference's (src/core/quant.c)
 * bit for bit: both evaluate d * q + m as two roundings, left to right
 * (FP_CONTRACT OFF here, -ffp-contract=off there).
 *
 * A weight is (rows, cols) with each row a whole number of blocks; the
 * kernels work on groups of 32 consecutive weights of a row (a block of
 * the 32-weight types, a sub-block of a 256-weight super-block, 32 values
 * of F16 / BF16 with a shorter last group).
 *
 * Kernels, one of each per type T (f16, bf16, q8_0, q4_0, q4_1, q4_k,
 * q5_k, q6_k):
 *   dequantize_T     y (n, cols) = rows of W as float32: row i is W's row
 *                    row0 + i, or ids[i] when use_ids (an embedding lookup;
 *                    the library checks the ids first); global
 *                    (ceil(cols / 32), n), one group per work-item
 *   rows_times_wt_T  y (M, out) = x (M, in) * W^T + beta * y for a few rows
 *                    (M <= 4, a generation step's tokens), W (out, in)
 *                    packed, dequantized on the fly, so the packed bytes are
 *                    all that stream from memory; in a multiple of 32;
 *                    global (out * LANES): LANES work-items per row of W
 *                    (1 on CPUs; a work-group of LANES on GPUs, reduced in
 *                    local memory)
 */
#pragma OPENCL FP_CONTRACT OFF

#ifndef LANES
#define LANES 1
#endif
#define MAX_ROWS 4

/* IEEE half to float32, exactly (subnormals are normal float32 values). */
static float half_at(const __global uchar *p)
{
    const uint h = (uint)p[0] | (uint)p[1] << 8;
    const uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const uint normal = sign | ((e + 112u) << 23) | (m << 13);
    const uint special = sign | 0x7f800000u | (m << 13); /* inf, nan */
    /* subnormal: m * 2^-24, exact as a (normal) float32 */
    const uint subnormal = sign | as_uint((float)m * 5.9604644775390625e-8f);
    return as_float(e == 0x1fu ? special : e == 0u ? subnormal : normal);
}

static float bf16_at(const __global uchar *p)
{
    return as_float(((uint)p[0] | (uint)p[1] << 8) << 16);
}

/* ---- group g (32 weights) of one row, per type ---------------------------------- */

static void group_f16(const __global uchar *row, uint g, uint cols, float *w)
{
    for (uint l = 0; l < 32u; ++l) {
        const uint c = g * 32u + l;
        w[l] = c < cols ? half_at(row + 2u * c) : 0.0f;
    }
}

static void group_bf16(const __global uchar *row, uint g, uint cols, float *w)
{
    for (uint l = 0; l < 32u; ++l) {
        const uint c = g * 32u + l;
        w[l] = c < cols ? bf16_at(row + 2u * c) : 0.0f;
    }
}

static void group_q8_0(const __global uchar *row, uint g, uint cols, float *w)
{
    const __global uchar *b = row + g * 34u;
    const float d = half_at(b);
    for (uint l = 0; l < 32u; ++l)
        w[l] = (float)(char)b[2u + l] * d;
}

static void group_q4_0(const __global uchar *row, uint g, uint cols, float *w)
{
    const __global uchar *b = row + g * 18u;
    const float d = half_at(b);
    for (uint j = 0; j < 16u; ++j) {
        const int q = b[2u + j];
        w[j] = (float)((q & 15) - 8) * d;
        w[j + 16u] = (float)((q >> 4) - 8) * d;
    }
}

static void group_q4_1(const __global uchar *row, uint g, uint cols, float *w)
{
    const __global uchar *b = row + g * 20u;
    const float d = half_at(b), m = half_at(b + 2);
    for (uint j = 0; j < 16u; ++j) {
        const int q = b[4u + j];
        w[j] = (float)(q & 15) * d + m;
        w[j + 16u] = (float)(q >> 4) * d + m;
    }
}

/* Sub-block s's 6-bit scale and min of a Q4_K / Q5_K super-block. */
static void k_scale_min(const __global uchar *scales, uint s, int *sc, int *m)
{
    if (s < 4u) {
        *sc = scales[s] & 63;
        *m = scales[s + 4u] & 63;
    } else {
        *sc = (scales[s + 4u] & 15) | (scales[s - 4u] >> 6) << 4;
        *m = (scales[s + 4u] >> 4) | (scales[s] >> 6) << 4;
    }
}

/* Q4_K (qh_offset 0) and Q5_K (its fifth bits at qh_offset). */
static void k_quant_group(const __global uchar *b, uint s, uint qh_offset, uint qs_offset,
                          float *w)
{
    const float d = half_at(b), dmin = half_at(b + 2);
    int sc, m;
    k_scale_min(b + 4, s, &sc, &m);
    const float scale = d * (float)sc, min = dmin * (float)m;
    const __global uchar *q = b + qs_offset + 32u * (s / 2u);
    const uint shift = 4u * (s % 2u);
    for (uint l = 0; l < 32u; ++l) {
        int v = (q[l] >> shift) & 15;
        if (qh_offset && (b[qh_offset + l] >> s & 1u))
            v += 16;
        w[l] = scale * (float)v - min;
    }
}

static void group_q4_k(const __global uchar *row, uint g, uint cols, float *w)
{
    k_quant_group(row + (g / 8u) * 144u, g % 8u, 0u, 16u, w);
}

static void group_q5_k(const __global uchar *row, uint g, uint cols, float *w)
{
    k_quant_group(row + (g / 8u) * 176u, g % 8u, 16u, 48u, w);
}

static void group_q6_k(const __global uchar *row, uint g, uint cols, float *w)
{
    const __global uchar *b = row + (g / 8u) * 210u;
    const uint j = g % 8u, h = j / 4u, k = j % 4u;
    const __global uchar *lo = b + 64u * h + 32u * (k & 1u), *hi = b + 128u + 32u * h;
    const __global char *scales = (const __global char *)(b + 192);
    const float d = half_at(b + 208);
    const uint lo_shift = 4u * (k >> 1), hi_shift = 2u * k;
    for (uint l = 0; l < 32u; ++l) {
        const int q = ((lo[l] >> lo_shift) & 15) | ((hi[l] >> hi_shift) & 3) << 4;
        const uint i = 32u * k + l; /* within the half */
        w[l] = d * (float)scales[8u * h + i / 16u] * (float)(q - 32);
    }
}

/* ---- the kernels, once per type ---------------------------------------------------- */

#define PACKED_KERNELS(T, ROW_BYTES)                                                            \
    __kernel void dequantize_##T(__global float *y, const uint y_offset,                       \
                                 __global const uchar *wq, __global const int *ids,            \
                                 const uint ids_offset, const uint use_ids, const uint row0,    \
                                 const uint n, const uint cols)                                 \
    {                                                                                           \
        const uint g = get_global_id(0), i = get_global_id(1);                                  \
        if (g * 32u >= cols || i >= n)                                                          \
            return;                                                                             \
        const uint r = use_ids ? (uint)ids[ids_offset + i] : row0 + i;                          \
        float w[32];                                                                            \
        group_##T(wq + (ulong)r * ROW_BYTES(cols), g, cols, w);                                 \
        __global float *out = y + y_offset + (ulong)i * cols + g * 32u;                         \
        const uint count = min(32u, cols - g * 32u);                                            \
        for (uint l = 0; l < count; ++l)                                                        \
            out[l] = w[l];                                                                      \
    }                                                                                           \
                                                                                                \
    __kernel void rows_times_wt_##T(__global float *y, const uint y_offset,                    \
                                    __global const float *x, const uint x_offset,               \
                                    __global const uchar *wq, const uint in, const uint out,    \
                                    const uint rows, const float beta)                          \
    {                                                                                           \
        DECLARE_PART                                                                            \
        const uint o = get_global_id(0) / LANES, lane = get_global_id(0) % LANES;               \
        float acc[MAX_ROWS] = {0.0f, 0.0f, 0.0f, 0.0f};                                         \
        if (o < out) {                                                                          \
            const __global uchar *wr = wq + (ulong)o * ROW_BYTES(in);                           \
            for (uint g = lane; g * 32u < in; g += LANES) {                                     \
                float w[32];                                                                    \
                group_##T(wr, g, in, w);                                                        \
                for (uint r = 0; r < MAX_ROWS; ++r) {                                           \
                    if (r >= rows)                                                              \
                        break;                                                                  \
                    const __global float *xr = x + x_offset + r * in + g * 32u;                 \
                    float sum = 0.0f;                                                           \
                    for (uint l = 0; l < 32u; ++l)                                              \
                        sum += xr[l] * w[l];                                                    \
                    acc[r] += sum;                                                              \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        REDUCE_LANES(acc, lane);                                                                \
        if (o < out && lane == 0u)                                                              \
            for (uint r = 0; r < rows && r < MAX_ROWS; ++r) {                                   \
                __global float *yo = y + y_offset + r * out + o;                                \
                *yo = beta == 0.0f ? acc[r] : acc[r] + beta * *yo;                              \
            }                                                                                   \
    }

#if LANES > 1
#define DECLARE_PART __local float part[LANES * MAX_ROWS];
/* Sums acc over the LANES work-items of a group into lane 0's acc. */
#define REDUCE_LANES(acc, lane)                                                                 \
    do {                                                                                        \
        for (uint r = 0; r < MAX_ROWS; ++r)                                                     \
            part[r * LANES + (lane)] = acc[r];                                                  \
        barrier(CLK_LOCAL_MEM_FENCE);                                                           \
        for (uint step = LANES / 2u; step > 0u; step /= 2u) {                                   \
            if ((lane) < step)                                                                  \
                for (uint r = 0; r < MAX_ROWS; ++r)                                             \
                    part[r * LANES + (lane)] += part[r * LANES + (lane) + step];                \
            barrier(CLK_LOCAL_MEM_FENCE);                                                       \
        }                                                                                       \
        for (uint r = 0; r < MAX_ROWS; ++r)                                                     \
            acc[r] = part[r * LANES];                                                           \
    } while (0)
#else
#define DECLARE_PART
#define REDUCE_LANES(acc, lane) ((void)0)
#endif

#define F16_ROW(cols) (2u * (cols))
#define Q8_0_ROW(cols) ((cols) / 32u * 34u)
#define Q4_0_ROW(cols) ((cols) / 32u * 18u)
#define Q4_1_ROW(cols) ((cols) / 32u * 20u)
#define Q4_K_ROW(cols) ((cols) / 256u * 144u)
#define Q5_K_ROW(cols) ((cols) / 256u * 176u)
#define Q6_K_ROW(cols) ((cols) / 256u * 210u)

PACKED_KERNELS(f16, F16_ROW)
PACKED_KERNELS(bf16, F16_ROW)
PACKED_KERNELS(q8_0, Q8_0_ROW)
PACKED_KERNELS(q4_0, Q4_0_ROW)
PACKED_KERNELS(q4_1, Q4_1_ROW)
PACKED_KERNELS(q4_k, Q4_K_ROW)
PACKED_KERNELS(q5_k, Q5_K_ROW)
PACKED_KERNELS(q6_k, Q6_K_ROW)
