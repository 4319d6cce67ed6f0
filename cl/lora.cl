/* lora.cl - the rank-r kernels of the LoRA linear op.
 *
 * Every rank-r product of the op is one shape of a small GEMM whose operands
 * are read through strides, so one tiled kernel serves them all:
 *
 *   lora_gemm             C (M, P) = epilogue(alpha * X (M, K) * Y (K, P))
 *                         X(m, k) = x[x_offset + m*x_stride_m + k*x_stride_k]
 *                         Y(k, p) = y[y_offset + k*y_stride_k + p*y_stride_p]
 *                         global (P, M, chunks), local (TILE, TILE, 1); work
 *                         group z sums k in [z*k_chunk, (z+1)*k_chunk)
 *   lora_stream           the same product and arguments, for CPUs: each
 *                         work-item walks k for one m and four consecutive p,
 *                         reading operands straight from (cached) memory,
 *                         with no local memory or barriers; global
 *                         (ceil(P / 4), M, chunks)
 *   lora_cols_tn          the same product when X(., k) and Y(k, .) are
 *                         contiguous (x_stride_m == y_stride_p == 1), as in
 *                         the reductions over N, for CPUs: each work-item
 *                         walks k once for 8 m and 4 p, so Y is read once per
 *                         8 rows of C; global (ceil(P / 4), ceil(M / 8))
 *   lora_forward_rows,    CPUs: whole passes per row of the forward (h and the
 *   lora_backward_rows    update of y) and of backward (g and the update of dx),
 *                         after the frozen GEMM wrote y or dx (beta = 0, which
 *                         CLBlast runs faster there than beta = 1)
 *   lora_transpose        B^T for lora_forward_rows
 *   lora_reduce_partials  C (M, P) = epilogue(alpha * sum_z partial (z, M, P)),
 *                         partial starting at element partial_offset
 *                         global (P, M), sums the chunks in order
 *
 * The op uses them as (N rows, r rank, s scale; on CPUs h, y, g and dx come
 * from the row kernels instead):
 *   h  (N, r)    = drop(x) * A^T      X = x, Y(k, p) = A[p][k]
 *   y  (N, out)  = s * h * B^T + b    X = h, Y(k, p) = B[p][k]
 *   dB (out, r) += s * dy^T * h       X(m, k) = dy[k][m], K = N, split
 *                 (CPUs: dB^T = s * h^T * dy, X(m, k) = h[k][m]       (cols_tn))
 *   g  (N, r)    = s * dy * B         X = dy, Y = B
 *   dA (r, in)  += g^T * drop(x)      X(m, k) = g[k][m], K = N, split (cols_tn)
 *   dx (N, in)   = drop'(g * A)       X = g, Y = A
 * A reduction over N is split into chunks whose partial sums land in scratch,
 * then lora_reduce_partials adds them in a fixed order: deterministic, no
 * atomics.
 *
 * The dropout helpers (dropped, seed_key) come from common.cl.
 *
 * Flags (values come from the library as -D defines): DROP_X, DROP_Y,
 * DROP_C apply the dropout keep mask to X keyed (m, k), to Y keyed (k, p), or
 * to the product keyed (m, p) - each time the (row, column) of the element
 * of x it stands for; ADD_BIAS adds bias[p]; ACCUMULATE adds the previous C;
 * PARTIAL writes raw sums to slab z of C.
 */

#ifndef TILE
#error "TILE must be defined at build time"
#endif

/* The arguments of both product kernels, which the library sets alike. */
#define PRODUCT_ARGUMENTS                                                                    \
    __global const float *x, const uint x_offset, const uint x_stride_m,                   \
        const uint x_stride_k, __global const float *y, const uint y_offset,               \
        const uint y_stride_k, const uint y_stride_p, __global float *c,                   \
        const uint c_offset, const uint c_stride_m, const uint c_stride_p,                 \
        __global const float *bias, const uint bias_offset, const uint M, const uint K,     \
        const uint P, const uint k_chunk, const float alpha, const uint flags,             \
        const uint seed_lo, const uint seed_hi, const uint drop_threshold,                 \
        const float drop_scale

/* The epilogue both product kernels share: scale, dropout, bias, previous
 * value, store. `at` is the element's index in c. */
static void store_result(__global float *c, const uint at, const float acc, const float alpha,
                         const uint flags, __global const float *bias, const uint bias_index,
                         const uint key, const uint m, const uint p, const uint threshold,
                         const float scale)
{
    float v = alpha * acc;
    if (flags & DROP_C)
        v = dropped(v, key, m, p, threshold, scale);
    if (flags & ADD_BIAS)
        v += bias[bias_index];
    if (flags & ACCUMULATE)
        v += c[at];
    c[at] = v;
}

__kernel __attribute__((reqd_work_group_size(TILE, TILE, 1)))
void lora_gemm(PRODUCT_ARGUMENTS)
{
    __local float x_tile[TILE][TILE + 1]; /* [m][k] */
    __local float y_tile[TILE][TILE + 1]; /* [k][p] */

    const uint lp = get_local_id(0);
    const uint lm = get_local_id(1);
    const uint p0 = get_group_id(0) * TILE;
    const uint m0 = get_group_id(1) * TILE;
    const uint chunk = get_group_id(2);
    const uint k_begin = chunk * k_chunk;
    const uint k_end = min(K, k_begin + k_chunk);
    const uint key = seed_key(seed_lo, seed_hi);

    /* Each work-item loads one element of each tile; local id 0 walks the
     * operand's contiguous direction so neighbours read neighbouring
     * addresses. */
    const int x_k_fast = x_stride_k == 1;
    const uint xm = x_k_fast ? lm : lp;
    const uint xk = x_k_fast ? lp : lm;
    const int y_p_fast = y_stride_p == 1;
    const uint yk = y_p_fast ? lm : lp;
    const uint yp = y_p_fast ? lp : lm;

    float acc = 0.0f;
    for (uint k0 = k_begin; k0 < k_end; k0 += TILE) {
        const uint gm = m0 + xm;
        const uint gk = k0 + xk;
        float xv = 0.0f;
        if (gm < M && gk < k_end) {
            xv = x[x_offset + gm * x_stride_m + gk * x_stride_k];
            if (flags & DROP_X)
                xv = dropped(xv, key, gm, gk, drop_threshold, drop_scale);
        }
        x_tile[xm][xk] = xv;

        const uint hk = k0 + yk;
        const uint hp = p0 + yp;
        float yv = 0.0f;
        if (hk < k_end && hp < P) {
            yv = y[y_offset + hk * y_stride_k + hp * y_stride_p];
            if (flags & DROP_Y)
                yv = dropped(yv, key, hk, hp, drop_threshold, drop_scale);
        }
        y_tile[yk][yp] = yv;
        barrier(CLK_LOCAL_MEM_FENCE);

        for (uint t = 0; t < TILE; ++t)
            acc += x_tile[lm][t] * y_tile[t][lp];
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    const uint m = m0 + lm;
    const uint p = p0 + lp;
    if (m >= M || p >= P)
        return;
    const uint slab = (flags & PARTIAL) ? chunk * M * P : 0u;
    store_result(c, c_offset + slab + m * c_stride_m + p * c_stride_p, acc, alpha, flags, bias,
                 bias_offset + p, key, m, p, drop_threshold, drop_scale);
}

__kernel void lora_stream(PRODUCT_ARGUMENTS)
{
    const uint p0 = get_global_id(0) * 4;
    const uint m = get_global_id(1);
    const uint chunk = get_global_id(2);
    if (m >= M || p0 >= P)
        return;
    const uint k_begin = chunk * k_chunk;
    const uint k_end = min(K, k_begin + k_chunk);
    const uint key = seed_key(seed_lo, seed_hi);
    /* Columns past P repeat the last one; their results are not stored. */
    const uint4 p = min((uint4)(p0, p0 + 1, p0 + 2, p0 + 3), (uint4)(P - 1));
    const uint4 y_cols = p * y_stride_p;
    __global const float *xm = x + x_offset + m * x_stride_m;
    __global const float *yk = y + y_offset + k_begin * y_stride_k;
    const int contiguous = y_stride_p == 1 && p0 + 4 <= P && !(flags & DROP_Y);

    float4 acc = (float4)(0.0f);
    for (uint k = k_begin; k < k_end; ++k, yk += y_stride_k) {
        float xv = xm[k * x_stride_k];
        if (flags & DROP_X)
            xv = dropped(xv, key, m, k, drop_threshold, drop_scale);
        float4 yv;
        if (contiguous) {
            yv = vload4(0, yk + p0);
        } else {
            yv = (float4)(yk[y_cols.s0], yk[y_cols.s1], yk[y_cols.s2], yk[y_cols.s3]);
            if (flags & DROP_Y)
                yv = (float4)(dropped(yv.s0, key, k, p.s0, drop_threshold, drop_scale),
                              dropped(yv.s1, key, k, p.s1, drop_threshold, drop_scale),
                              dropped(yv.s2, key, k, p.s2, drop_threshold, drop_scale),
                              dropped(yv.s3, key, k, p.s3, drop_threshold, drop_scale));
        }
        acc += xv * yv;
    }

    const uint base = c_offset + ((flags & PARTIAL) ? chunk * M * P : 0u) + m * c_stride_m;
    const float results[4] = {acc.s0, acc.s1, acc.s2, acc.s3};
    for (uint i = 0; i < 4 && p0 + i < P; ++i)
        store_result(c, base + (p0 + i) * c_stride_p, results[i], alpha, flags, bias,
                     bias_offset + p0 + i, key, m, p0 + i, drop_threshold, drop_scale);
}

/* Loads 4 consecutive elements of a row, the last ones repeated past
 * `count` (their results are never stored). */
static float4 load4_clamped(__global const float *row, const uint at, const uint count)
{
    if (at + 4 <= count)
        return vload4(0, row + at);
    return (float4)(row[min(at, count - 1)], row[min(at + 1, count - 1)],
                    row[min(at + 2, count - 1)], row[min(at + 3, count - 1)]);
}

static float4 dropped4(const float4 v, const uint key, const uint row, const uint col,
                       const uint threshold, const float scale)
{
    return (float4)(dropped(v.s0, key, row, col, threshold, scale),
                    dropped(v.s1, key, row, col + 1, threshold, scale),
                    dropped(v.s2, key, row, col + 2, threshold, scale),
                    dropped(v.s3, key, row, col + 3, threshold, scale));
}

__kernel void lora_cols_tn(PRODUCT_ARGUMENTS)
{
    const uint p0 = get_global_id(0) * 4;
    const uint m0 = get_global_id(1) * 8;
    if (m0 >= M || p0 >= P)
        return;
    const uint key = seed_key(seed_lo, seed_hi);
    /* Columns of X past M repeat the last one; their results are not stored. */
    uint mj[8];
    for (uint j = 0; j < 8; ++j)
        mj[j] = min(m0 + j, M - 1);

    float4 acc[8];
    for (uint j = 0; j < 8; ++j)
        acc[j] = (float4)(0.0f);
    __global const float *xk = x + x_offset;
    __global const float *yk = y + y_offset;
    for (uint k = 0; k < K; ++k, xk += x_stride_k, yk += y_stride_k) {
        float4 yv = load4_clamped(yk, p0, P);
        if (flags & DROP_Y)
            yv = dropped4(yv, key, k, p0, drop_threshold, drop_scale);
        for (uint j = 0; j < 8; ++j) {
            float xv = xk[mj[j]];
            if (flags & DROP_X)
                xv = dropped(xv, key, mj[j], k, drop_threshold, drop_scale);
            acc[j] += xv * yv;
        }
    }

    for (uint j = 0; j < 8 && m0 + j < M; ++j) {
        const uint m = m0 + j;
        const float results[4] = {acc[j].s0, acc[j].s1, acc[j].s2, acc[j].s3};
        for (uint i = 0; i < 4 && p0 + i < P; ++i)
            store_result(c, c_offset + m * c_stride_m + (p0 + i) * c_stride_p, results[i],
                         alpha, flags, bias, bias_offset + p0 + i, key, m, p0 + i,
                         drop_threshold, drop_scale);
    }
}

/* The LoRA arguments the two row kernels share. */
#define ROW_ARGUMENTS                                                                        \
    const uint N, const uint IN, const uint OUT, const uint R, const float scale,          \
        const uint flags, const uint seed_lo, const uint seed_hi, const uint drop_threshold, \
        const float drop_scale

/* CPUs: the LoRA branch of the forward in one pass per row, after the
 * frozen GEMM has written y = x * W^T and lora_transpose B^T:
 *   h[m]  = drop(x[m]) * A^T             (kept for backward)
 *   y[m] += s * h[m] * B^T (+ b)
 * x is read once, y once read and written. global (N). */
__kernel void lora_forward_rows(__global const float *x, const uint x_offset,
                                __global const float *a, const uint a_offset,
                                __global const float *bt, const uint bt_offset,
                                __global const float *bias, const uint bias_offset,
                                __global float *restrict h, const uint h_offset,
                                __global float *restrict y, const uint y_offset, ROW_ARGUMENTS)
{
    const uint m = get_global_id(0);
    if (m >= N)
        return;
    const uint key = seed_key(seed_lo, seed_hi);
    __global const float *xm = x + x_offset + m * IN;
    __global float *hm = h + h_offset + m * R;
    __global float *ym = y + y_offset + m * OUT;

    /* h, eight ranks at a time; rows of A past R repeat the last one. */
    for (uint j0 = 0; j0 < R; j0 += 8) {
        __global const float *aj[8];
        for (uint j = 0; j < 8; ++j)
            aj[j] = a + a_offset + min(j0 + j, R - 1) * IN;
        float4 acc[8];
        for (uint j = 0; j < 8; ++j)
            acc[j] = (float4)(0.0f);
        uint k = 0;
        for (; k + 4 <= IN; k += 4) {
            float4 xv = vload4(0, xm + k);
            if (flags & DROP_X)
                xv = dropped4(xv, key, m, k, drop_threshold, drop_scale);
            for (uint j = 0; j < 8; ++j)
                acc[j] += xv * vload4(0, aj[j] + k);
        }
        float sum[8];
        for (uint j = 0; j < 8; ++j)
            sum[j] = (acc[j].s0 + acc[j].s1) + (acc[j].s2 + acc[j].s3);
        for (; k < IN; ++k) {
            float xv = xm[k];
            if (flags & DROP_X)
                xv = dropped(xv, key, m, k, drop_threshold, drop_scale);
            for (uint j = 0; j < 8; ++j)
                sum[j] += xv * aj[j][k];
        }
        for (uint j = 0; j < 8 && j0 + j < R; ++j)
            hm[j0 + j] = sum[j];
    }

    /* y += s * h * B^T + b with B^T (R, OUT) row-major, eight outputs at a
     * time: y is read and written once. (Forms that hold h in vector
     * registers, built from a private array or loaded from the h just
     * written, crash oclgrind 21.10's uninitialised-value check.) */
    uint o = 0;
    for (; o + 8 <= OUT; o += 8) {
        float4 acc0 = (float4)(0.0f), acc1 = (float4)(0.0f);
        __global const float *bj = bt + bt_offset + o;
        for (uint j = 0; j < R; ++j, bj += OUT) {
            const float hj = hm[j];
            acc0 += hj * vload4(0, bj);
            acc1 += hj * vload4(0, bj + 4);
        }
        acc0 *= scale;
        acc1 *= scale;
        if (flags & ADD_BIAS) {
            acc0 += vload4(0, bias + bias_offset + o);
            acc1 += vload4(0, bias + bias_offset + o + 4);
        }
        vstore4(vload4(0, ym + o) + acc0, 0, ym + o);
        vstore4(vload4(0, ym + o + 4) + acc1, 0, ym + o + 4);
    }
    for (; o + 4 <= OUT; o += 4) {
        float4 acc = (float4)(0.0f);
        for (uint j = 0; j < R; ++j)
            acc += hm[j] * vload4(0, bt + bt_offset + j * OUT + o);
        acc *= scale;
        if (flags & ADD_BIAS)
            acc += vload4(0, bias + bias_offset + o);
        vstore4(vload4(0, ym + o) + acc, 0, ym + o);
    }
    for (; o < OUT; ++o) {
        float acc = 0.0f;
        for (uint j = 0; j < R; ++j)
            acc += hm[j] * bt[bt_offset + j * OUT + o];
        acc *= scale;
        if (flags & ADD_BIAS)
            acc += bias[bias_offset + o];
        ym[o] += acc;
    }
}

/* dst (cols, rows) = src (rows, cols)^T; global (cols, rows). */
__kernel void lora_transpose(__global const float *src, const uint src_offset,
                             __global float *dst, const uint dst_offset, const uint rows,
                             const uint cols)
{
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    if (col < cols && row < rows)
        dst[dst_offset + col * rows + row] = src[src_offset + row * cols + col];
}

/* CPUs: the rank-r part of dx in one pass per row, after the frozen GEMM
 * has written dx = dy * W:
 *   g[m]   = s * dy[m] * B               (kept for dA)
 *   dx[m] += drop'(g[m] * A)             (when flags has ACCUMULATE)
 * dy is read once, dx once read and written. global (N). */
__kernel void lora_backward_rows(__global const float *dy, const uint dy_offset,
                                 __global const float *b, const uint b_offset,
                                 __global const float *a, const uint a_offset,
                                 __global float *restrict g, const uint g_offset,
                                 __global float *restrict dx, const uint dx_offset, ROW_ARGUMENTS)
{
    const uint m = get_global_id(0);
    if (m >= N)
        return;
    const uint key = seed_key(seed_lo, seed_hi);
    __global const float *dym = dy + dy_offset + m * OUT;
    __global float *gm = g + g_offset + m * R;

    /* g, eight ranks at a time: each row of B (OUT, R) holds the ranks of
     * one output. */
    for (uint j0 = 0; j0 < R; j0 += 8) {
        const uint width = min(8u, R - j0);
        __global const float *bo = b + b_offset + j0;
        float sum[8];
        if (width == 8) {
            float8 acc = (float8)(0.0f);
            for (uint o = 0; o < OUT; ++o, bo += R)
                acc += dym[o] * vload8(0, bo);
            sum[0] = acc.s0, sum[1] = acc.s1, sum[2] = acc.s2, sum[3] = acc.s3;
            sum[4] = acc.s4, sum[5] = acc.s5, sum[6] = acc.s6, sum[7] = acc.s7;
        } else {
            for (uint j = 0; j < 8; ++j)
                sum[j] = 0.0f;
            for (uint o = 0; o < OUT; ++o, bo += R) {
                const float d = dym[o];
                for (uint j = 0; j < width; ++j)
                    sum[j] += d * bo[j];
            }
        }
        for (uint j = 0; j < width; ++j)
            gm[j0 + j] = scale * sum[j];
    }
    if (!(flags & ACCUMULATE))
        return;

    /* dx += drop'(g * A), A (R, IN) row-major, four columns at a time. */
    __global float *dxm = dx + dx_offset + m * IN;
    __global const float *arow = a + a_offset;
    uint k = 0;
    for (; k + 8 <= IN; k += 8) {
        float4 acc0 = (float4)(0.0f), acc1 = (float4)(0.0f);
        __global const float *aj = arow + k;
        for (uint j = 0; j < R; ++j, aj += IN) {
            const float gj = gm[j];
            acc0 += gj * vload4(0, aj);
            acc1 += gj * vload4(0, aj + 4);
        }
        if (flags & DROP_C) {
            acc0 = dropped4(acc0, key, m, k, drop_threshold, drop_scale);
            acc1 = dropped4(acc1, key, m, k + 4, drop_threshold, drop_scale);
        }
        vstore4(vload4(0, dxm + k) + acc0, 0, dxm + k);
        vstore4(vload4(0, dxm + k + 4) + acc1, 0, dxm + k + 4);
    }
    for (; k + 4 <= IN; k += 4) {
        float4 acc = (float4)(0.0f);
        for (uint j = 0; j < R; ++j)
            acc += gm[j] * vload4(0, arow + j * IN + k);
        if (flags & DROP_C)
            acc = dropped4(acc, key, m, k, drop_threshold, drop_scale);
        vstore4(vload4(0, dxm + k) + acc, 0, dxm + k);
    }
    for (; k < IN; ++k) {
        float acc = 0.0f;
        for (uint j = 0; j < R; ++j)
            acc += gm[j] * arow[j * IN + k];
        if (flags & DROP_C)
            acc = dropped(acc, key, m, k, drop_threshold, drop_scale);
        dxm[k] += acc;
    }
}

__kernel void lora_reduce_partials(__global const float *partial, const uint partial_offset,
                                   const uint chunks,
                                   const uint M, const uint P,
                                   __global float *c, const uint c_offset,
                                   const uint c_stride_m, const uint c_stride_p,
                                   const float alpha, const uint flags)
{
    const uint p = get_global_id(0);
    const uint m = get_global_id(1);
    if (m >= M || p >= P)
        return;
    float acc = 0.0f;
    for (uint z = 0; z < chunks; ++z)
        acc += partial[partial_offset + (z * M + m) * P + p];
    float v = alpha * acc;
    const uint at = c_offset + m * c_stride_m + p * c_stride_p;
    if (flags & ACCUMULATE)
        v += c[at];
    c[at] = v;
}
