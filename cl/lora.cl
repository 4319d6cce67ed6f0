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
 *                         walks k once for 8 m and 8 p, so Y is read once per
 *                         8 rows of C; global (ceil(P / 8), ceil(M / 8))
 *   lora_forward_rows,    CPUs: one pass over the rows of the forward (h and
 *   lora_backward_rows    the update of y) and of backward (g and the update
 *                         of dx), ROWS rows per work-item, after the frozen
 *                         GEMM wrote y or dx with beta = 0; global
 *                         (ceil(N / ROWS))
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
        const float drop_scale, const uint drop_row0

/* The epilogue both product kernels share: scale, dropout, bias, previous
 * value, store. `at` is the element's index in c. */
static void store_result(__global float *c, const uint at, const float acc, const float alpha,
                         const uint flags, __global const float *bias, const uint bias_index,
                         const drop_key key, const uint m, const uint p, const uint threshold,
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
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);

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
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);
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

static float4 dropped4(const float4 v, const drop_key key, const uint row, const uint col,
                       const uint threshold, const float scale)
{
    return (float4)(dropped(v.s0, key, row, col, threshold, scale),
                    dropped(v.s1, key, row, col + 1, threshold, scale),
                    dropped(v.s2, key, row, col + 2, threshold, scale),
                    dropped(v.s3, key, row, col + 3, threshold, scale));
}

static float8 dropped8(const float8 v, const drop_key key, const uint row, const uint col,
                       const uint threshold, const float scale)
{
    return (float8)(dropped4(v.lo, key, row, col, threshold, scale),
                    dropped4(v.hi, key, row, col + 4, threshold, scale));
}

__kernel void lora_cols_tn(PRODUCT_ARGUMENTS)
{
    const uint p0 = get_global_id(0) * 8;
    const uint m0 = get_global_id(1) * 8;
    if (m0 >= M || p0 >= P)
        return;
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);
    /* Columns of X past M repeat the last one; their results are not stored. */
    const uint m1 = min(m0 + 1, M - 1), m2 = min(m0 + 2, M - 1), m3 = min(m0 + 3, M - 1),
               m4 = min(m0 + 4, M - 1), m5 = min(m0 + 5, M - 1), m6 = min(m0 + 6, M - 1),
               m7 = min(m0 + 7, M - 1);

    float8 acc0 = (float8)(0.0f), acc1 = (float8)(0.0f), acc2 = (float8)(0.0f),
           acc3 = (float8)(0.0f), acc4 = (float8)(0.0f), acc5 = (float8)(0.0f),
           acc6 = (float8)(0.0f), acc7 = (float8)(0.0f);
    __global const float *xk = x + x_offset;
    __global const float *yk = y + y_offset;
    for (uint k = 0; k < K; ++k, xk += x_stride_k, yk += y_stride_k) {
        float8 yv = load8_tail(yk, p0, P);
        if (flags & DROP_Y)
            yv = dropped8(yv, key, k, p0, drop_threshold, drop_scale);
        float xv[8] = {xk[m0], xk[m1], xk[m2], xk[m3], xk[m4], xk[m5], xk[m6], xk[m7]};
        if (flags & DROP_X) {
            const uint mj[8] = {m0, m1, m2, m3, m4, m5, m6, m7};
            for (uint j = 0; j < 8; ++j)
                xv[j] = dropped(xv[j], key, mj[j], k, drop_threshold, drop_scale);
        }
        acc0 += xv[0] * yv;
        acc1 += xv[1] * yv;
        acc2 += xv[2] * yv;
        acc3 += xv[3] * yv;
        acc4 += xv[4] * yv;
        acc5 += xv[5] * yv;
        acc6 += xv[6] * yv;
        acc7 += xv[7] * yv;
    }

    const float8 sums[8] = {acc0, acc1, acc2, acc3, acc4, acc5, acc6, acc7};
    for (uint j = 0; j < 8 && m0 + j < M; ++j) {
        const uint m = m0 + j;
        const float results[8] = {sums[j].s0, sums[j].s1, sums[j].s2, sums[j].s3,
                                  sums[j].s4, sums[j].s5, sums[j].s6, sums[j].s7};
        for (uint i = 0; i < 8 && p0 + i < P; ++i)
            store_result(c, c_offset + m * c_stride_m + (p0 + i) * c_stride_p, results[i],
                         alpha, flags, bias, bias_offset + p0 + i, key, m, p0 + i,
                         drop_threshold, drop_scale);
    }
}

/* The LoRA arguments the two row kernels share. */
#define ROW_ARGUMENTS                                                                        \
    const uint N, const uint IN, const uint OUT, const uint R, const float scale,          \
        const uint flags, const uint seed_lo, const uint seed_hi, const uint drop_threshold, \
        const float drop_scale, const uint drop_row0

/* ROWS (a build define, CLORA__ROWS_PER_ITEM in the library) rows of the
 * batch per work-item of the row kernels: the rank-r matrix they stream
 * (B^T, B or A) is read once per ROWS rows. */
#if ROWS != 4
#error "the row kernels hold four rows per work-item"
#endif

/* out[i] += epilogue(s * coef[i] * M) for the rows[i] of a block of up to
 * ROWS rows (m0 + i, i < rows), where coef rows hold R values and M is
 * (R, W) row-major: the update of y (coef = h, M = B^T) and of dx
 * (coef = g, M = A). The epilogue applies the dropout mask keyed
 * (m0 + i, column) when flags has DROP_C and adds bias when it has
 * ADD_BIAS. Rows past `rows` repeat the last one and are not stored. */
static void add_rank_rows(__global const float *coef, __global const float *mat, const uint W,
                          const uint R, __global float *out, const uint m0, const uint rows,
                          const float s, const uint flags, __global const float *bias,
                          const drop_key key, const uint threshold, const float drop_scale)
{
    __global const float *c0 = coef;
    __global const float *c1 = coef + min(1u, rows - 1) * R;
    __global const float *c2 = coef + min(2u, rows - 1) * R;
    __global const float *c3 = coef + min(3u, rows - 1) * R;
    uint o = 0;
    for (; o + 16 <= W; o += 16) {
        float8 a0 = (float8)(0.0f), b0 = (float8)(0.0f), a1 = (float8)(0.0f),
               b1 = (float8)(0.0f), a2 = (float8)(0.0f), b2 = (float8)(0.0f),
               a3 = (float8)(0.0f), b3 = (float8)(0.0f);
        __global const float *mj = mat + o;
        for (uint j = 0; j < R; ++j, mj += W) {
            const float8 lo = vload8(0, mj), hi = vload8(0, mj + 8);
            a0 += c0[j] * lo;
            b0 += c0[j] * hi;
            a1 += c1[j] * lo;
            b1 += c1[j] * hi;
            a2 += c2[j] * lo;
            b2 += c2[j] * hi;
            a3 += c3[j] * lo;
            b3 += c3[j] * hi;
        }
        const float8 lo_sums[ROWS] = {a0, a1, a2, a3}, hi_sums[ROWS] = {b0, b1, b2, b3};
        for (uint i = 0; i < rows; ++i) {
            float8 lo = s * lo_sums[i], hi = s * hi_sums[i];
            if (flags & DROP_C) {
                lo = dropped8(lo, key, m0 + i, o, threshold, drop_scale);
                hi = dropped8(hi, key, m0 + i, o + 8, threshold, drop_scale);
            }
            if (flags & ADD_BIAS) {
                lo += vload8(0, bias + o);
                hi += vload8(0, bias + o + 8);
            }
            __global float *row = out + i * W + o;
            vstore8(vload8(0, row) + lo, 0, row);
            vstore8(vload8(0, row + 8) + hi, 0, row + 8);
        }
    }
    /* The last W % 16 columns, one row and four or one column at a time. */
    for (uint i = 0; i < rows; ++i) {
        __global const float *ci = coef + i * R;
        __global float *row = out + i * W;
        uint p = o;
        for (; p + 4 <= W; p += 4) {
            float4 acc = (float4)(0.0f);
            for (uint j = 0; j < R; ++j)
                acc += ci[j] * vload4(0, mat + j * W + p);
            acc *= s;
            if (flags & DROP_C)
                acc = dropped4(acc, key, m0 + i, p, threshold, drop_scale);
            if (flags & ADD_BIAS)
                acc += vload4(0, bias + p);
            vstore4(vload4(0, row + p) + acc, 0, row + p);
        }
        for (; p < W; ++p) {
            float acc = 0.0f;
            for (uint j = 0; j < R; ++j)
                acc += ci[j] * mat[j * W + p];
            acc *= s;
            if (flags & DROP_C)
                acc = dropped(acc, key, m0 + i, p, threshold, drop_scale);
            if (flags & ADD_BIAS)
                acc += bias[p];
            row[p] += acc;
        }
    }
}

/* CPUs: the LoRA branch of the forward in one pass over x and y, after the
 * frozen GEMM has written y = x * W^T and lora_transpose B^T:
 *   h[m]  = drop(x[m]) * A^T             (kept for backward)
 *   y[m] += s * h[m] * B^T (+ b)
 * x is read once, y once read and written. global (ceil(N / ROWS)). */
__kernel void lora_forward_rows(__global const float *x, const uint x_offset,
                                __global const float *a, const uint a_offset,
                                __global const float *bt, const uint bt_offset,
                                __global const float *bias, const uint bias_offset,
                                __global float *restrict h, const uint h_offset,
                                __global float *restrict y, const uint y_offset, ROW_ARGUMENTS)
{
    const uint m0 = get_global_id(0) * ROWS;
    if (m0 >= N)
        return;
    const uint rows = min((uint)ROWS, N - m0);
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);

    /* h, one row and four ranks at a time; rows of A past R repeat the last
     * one. */
    for (uint i = 0; i < rows; ++i) {
        const uint m = m0 + i;
        __global const float *xm = x + x_offset + m * IN;
        __global float *hm = h + h_offset + m * R;
        for (uint j0 = 0; j0 < R; j0 += 4) {
            __global const float *a0 = a + a_offset + j0 * IN;
            __global const float *a1 = a + a_offset + min(j0 + 1, R - 1) * IN;
            __global const float *a2 = a + a_offset + min(j0 + 2, R - 1) * IN;
            __global const float *a3 = a + a_offset + min(j0 + 3, R - 1) * IN;
            float8 acc0 = (float8)(0.0f), acc1 = (float8)(0.0f), acc2 = (float8)(0.0f),
                   acc3 = (float8)(0.0f);
            uint k = 0;
            for (; k + 8 <= IN; k += 8) {
                float8 xv = vload8(0, xm + k);
                if (flags & DROP_X)
                    xv = dropped8(xv, key, m, k, drop_threshold, drop_scale);
                acc0 += xv * vload8(0, a0 + k);
                acc1 += xv * vload8(0, a1 + k);
                acc2 += xv * vload8(0, a2 + k);
                acc3 += xv * vload8(0, a3 + k);
            }
            float sum[4] = {sum8(acc0), sum8(acc1), sum8(acc2), sum8(acc3)};
            for (; k < IN; ++k) {
                float xv = xm[k];
                if (flags & DROP_X)
                    xv = dropped(xv, key, m, k, drop_threshold, drop_scale);
                sum[0] += xv * a0[k];
                sum[1] += xv * a1[k];
                sum[2] += xv * a2[k];
                sum[3] += xv * a3[k];
            }
            for (uint j = 0; j < 4 && j0 + j < R; ++j)
                hm[j0 + j] = sum[j];
        }
    }

    add_rank_rows(h + h_offset + m0 * R, bt + bt_offset, OUT, R, y + y_offset + m0 * OUT, m0,
                  rows, scale, flags & ADD_BIAS, bias + bias_offset, key, drop_threshold,
                  drop_scale);
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

/* CPUs: the rank-r part of dx in one pass over dy and dx, after the frozen
 * GEMM has written dx = dy * W:
 *   g[m]   = s * dy[m] * B               (kept for dA)
 *   dx[m] += drop'(g[m] * A)             (when flags has ACCUMULATE)
 * dy is read once, dx once read and written. global (ceil(N / ROWS)). */
__kernel void lora_backward_rows(__global const float *dy, const uint dy_offset,
                                 __global const float *b, const uint b_offset,
                                 __global const float *a, const uint a_offset,
                                 __global float *restrict g, const uint g_offset,
                                 __global float *restrict dx, const uint dx_offset, ROW_ARGUMENTS)
{
    const uint m0 = get_global_id(0) * ROWS;
    if (m0 >= N)
        return;
    const uint rows = min((uint)ROWS, N - m0);
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);
    __global const float *d0 = dy + dy_offset + m0 * OUT;
    __global const float *d1 = d0 + min(1u, rows - 1) * OUT;
    __global const float *d2 = d0 + min(2u, rows - 1) * OUT;
    __global const float *d3 = d0 + min(3u, rows - 1) * OUT;
    __global float *gm = g + g_offset + m0 * R;

    /* g, ROWS rows and eight ranks at a time: each row of B (OUT, R) holds
     * the ranks of one output, read once for the block of rows. */
    for (uint j0 = 0; j0 < R; j0 += 8) {
        const uint width = min(8u, R - j0);
        __global const float *bo = b + b_offset + j0;
        if (width == 8) {
            float8 acc0 = (float8)(0.0f), acc1 = (float8)(0.0f), acc2 = (float8)(0.0f),
                   acc3 = (float8)(0.0f);
            for (uint o = 0; o < OUT; ++o, bo += R) {
                const float8 bv = vload8(0, bo);
                acc0 += d0[o] * bv;
                acc1 += d1[o] * bv;
                acc2 += d2[o] * bv;
                acc3 += d3[o] * bv;
            }
            const float8 sums[ROWS] = {acc0, acc1, acc2, acc3};
            for (uint i = 0; i < rows; ++i)
                vstore8(scale * sums[i], 0, gm + i * R + j0);
        } else {
            for (uint i = 0; i < rows; ++i) {
                __global const float *dym = d0 + i * OUT;
                float sum[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
                __global const float *bi = bo;
                for (uint o = 0; o < OUT; ++o, bi += R) {
                    const float d = dym[o];
                    for (uint j = 0; j < width; ++j)
                        sum[j] += d * bi[j];
                }
                for (uint j = 0; j < width; ++j)
                    gm[i * R + j0 + j] = scale * sum[j];
            }
        }
    }
    if (!(flags & ACCUMULATE))
        return;

    /* dx += drop'(g * A), A (R, IN) row-major. */
    add_rank_rows(gm, a + a_offset, IN, R, dx + dx_offset + m0 * IN, m0, rows, 1.0f,
                  flags & DROP_C, a, key, drop_threshold, drop_scale);
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
