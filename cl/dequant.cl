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

/* IEEE half to float32, exactly (subnormals are normal float32 values;
 * written as selects, not branches, which one simulator mis-ran). */
static float half_bits(uint h)
{
    const uint sign = (h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    const uint normal = sign | ((e + 112u) << 23) | (m << 13);
    const uint special = sign | 0x7f800000u | (m << 13); /* inf, nan */
    const uint subnormal = sign | as_uint((float)m * 5.9604644775390625e-8f); /* m * 2^-24 */
    return as_float(e == 0x1fu ? special : e == 0u ? subnormal : normal);
}

static float half_at(const __global uchar *p)
{
    return half_bits((uint)p[0] | (uint)p[1] << 8);
}

/* ---- group g (32 weights) of one row, per type, as two float16 (weights
 * 0-15 and 16-31 of the group); F16 and BF16 rows may end in a shorter
 * group, which tail_T writes one weight at a time ------------------------------ */

static void group_f16(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    /* vload_half converts exactly (core OpenCL; CPUs have instructions for it) */
    const __global half *h = (const __global half *)row;
    *a = vload_half16(2u * g, h);
    *b = vload_half16(2u * g + 1u, h);
}

static void group_bf16(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    const __global ushort *h = (const __global ushort *)row;
    *a = as_float16(convert_uint16(vload16(2u * g, h)) << 16);
    *b = as_float16(convert_uint16(vload16(2u * g + 1u, h)) << 16);
}

static float tail_f16(const __global uchar *row, uint c)
{
    return half_at(row + 2u * c);
}

static float tail_bf16(const __global uchar *row, uint c)
{
    return as_float(((uint)row[2u * c] | (uint)row[2u * c + 1u] << 8) << 16);
}

static void group_q8_0(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    const __global uchar *blk = row + g * 34u;
    const float d = half_at(blk);
    const __global char *q = (const __global char *)(blk + 2);
    *a = convert_float16(vload16(0, q)) * d;
    *b = convert_float16(vload16(1, q)) * d;
}

static void group_q4_0(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    const __global uchar *blk = row + g * 18u;
    const float d = half_at(blk);
    const int16 q = convert_int16(vload16(0, blk + 2));
    *a = convert_float16((q & 15) - 8) * d;
    *b = convert_float16((q >> 4) - 8) * d;
}

static void group_q4_1(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    const __global uchar *blk = row + g * 20u;
    const float d = half_at(blk), m = half_at(blk + 2);
    const int16 q = convert_int16(vload16(0, blk + 4));
    *a = convert_float16(q & 15) * d + m;
    *b = convert_float16(q >> 4) * d + m;
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

/* Sub-block s of a Q4_K (qh_offset 0) or Q5_K (its fifth bits at
 * qh_offset) super-block. */
static void k_quant_group(const __global uchar *blk, uint s, uint qh_offset, uint qs_offset,
                          float16 *a, float16 *b)
{
    const float d = half_at(blk), dmin = half_at(blk + 2);
    int sc, m;
    k_scale_min(blk + 4, s, &sc, &m);
    const float scale = d * (float)sc, min = dmin * (float)m;
    const __global uchar *q = blk + qs_offset + 32u * (s / 2u);
    const int shift = 4 * (int)(s % 2u);
    int16 va = (convert_int16(vload16(0, q)) >> shift) & 15;
    int16 vb = (convert_int16(vload16(1, q)) >> shift) & 15;
    if (qh_offset) {
        va += ((convert_int16(vload16(0, blk + qh_offset)) >> (int)s) & 1) << 4;
        vb += ((convert_int16(vload16(1, blk + qh_offset)) >> (int)s) & 1) << 4;
    }
    *a = scale * convert_float16(va) - min;
    *b = scale * convert_float16(vb) - min;
}

static void group_q4_k(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    k_quant_group(row + (g / 8u) * 144u, g % 8u, 0u, 16u, a, b);
}

static void group_q5_k(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    k_quant_group(row + (g / 8u) * 176u, g % 8u, 16u, 48u, a, b);
}

/* Group j of a Q6_K super-block: weights 32k + l of half h (j = 4h + k). */
static void group_q6_k(const __global uchar *row, uint g, float16 *a, float16 *b)
{
    const __global uchar *blk = row + (g / 8u) * 210u;
    const uint j = g % 8u, h = j / 4u, k = j % 4u;
    const __global uchar *lo = blk + 64u * h + 32u * (k & 1u), *hi = blk + 128u + 32u * h;
    const __global char *scales = (const __global char *)(blk + 192);
    const float d = half_at(blk + 208);
    const int lo_shift = 4 * (int)(k >> 1), hi_shift = 2 * (int)k;
    const int16 qa = ((convert_int16(vload16(0, lo)) >> lo_shift) & 15) |
                     ((convert_int16(vload16(0, hi)) >> hi_shift) & 3) << 4;
    const int16 qb = ((convert_int16(vload16(1, lo)) >> lo_shift) & 15) |
                     ((convert_int16(vload16(1, hi)) >> hi_shift) & 3) << 4;
    /* weights 32k + l use scale 8h + (32k + l) / 16: 2k for l < 16, 2k + 1 after */
    *a = d * (float)scales[8u * h + 2u * k] * convert_float16(qa - 32);
    *b = d * (float)scales[8u * h + 2u * k + 1u] * convert_float16(qb - 32);
}

/* Block types have no short groups. */
#define tail_q8_0(row, c) 0.0f
#define tail_q4_0(row, c) 0.0f
#define tail_q4_1(row, c) 0.0f
#define tail_q4_k(row, c) 0.0f
#define tail_q5_k(row, c) 0.0f
#define tail_q6_k(row, c) 0.0f

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
        const __global uchar *row = wq + (ulong)r * ROW_BYTES(cols);                            \
        __global float *out = y + y_offset + (ulong)i * cols + g * 32u;                         \
        if (g * 32u + 32u <= cols) {                                                            \
            float16 a, b;                                                                       \
            group_##T(row, g, &a, &b);                                                          \
            vstore16(a, 0, out);                                                                \
            vstore16(b, 1, out);                                                                \
        } else {                                                                                \
            for (uint c = g * 32u; c < cols; ++c)                                               \
                out[c - g * 32u] = tail_##T(row, c);                                            \
        }                                                                                       \
    }                                                                                           \
                                                                                                \
    __kernel void rows_times_wt_##T(__global float *y, const uint y_offset,                    \
                                    __global const float *x, const uint x_offset,               \
                                    __global const uchar *wq, const uint in, const uint out,    \
                                    const uint rows, const float beta)                          \
    {                                                                                           \
        DECLARE_PART                                                                            \
        const uint o = get_global_id(0) / LANES, lane = get_global_id(0) % LANES;               \
        float16 acc16[MAX_ROWS] = {(float16)(0.0f), (float16)(0.0f), (float16)(0.0f),          \
                                   (float16)(0.0f)};                                            \
        if (o < out) {                                                                          \
            const __global uchar *wr = wq + (ulong)o * ROW_BYTES(in);                           \
            for (uint g = lane; g * 32u < in; g += LANES) {                                     \
                float16 a, b;                                                                   \
                group_##T(wr, g, &a, &b);                                                       \
                for (uint r = 0; r < MAX_ROWS; ++r) {                                           \
                    if (r >= rows)                                                              \
                        break;                                                                  \
                    const __global float *xr = x + x_offset + r * in + g * 32u;                 \
                    acc16[r] += a * vload16(0, xr) + b * vload16(1, xr);                        \
                }                                                                               \
            }                                                                                   \
        }                                                                                       \
        float acc[MAX_ROWS];                                                                    \
        for (uint r = 0; r < MAX_ROWS; ++r) {                                                   \
            const float8 h8 = acc16[r].lo + acc16[r].hi;                                        \
            const float4 h4 = h8.lo + h8.hi;                                                    \
            acc[r] = (h4.x + h4.y) + (h4.z + h4.w);                                             \
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
