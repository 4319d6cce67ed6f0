/* attention.cl - the parts of multi-head self-attention that are not GEMMs
 * (those run as strided-batched GEMMs in CLBlast).
 *
 * B batch, T tokens, H heads, D = C / H per head; offsets in elements.
 *
 *   heads_split     out (B, H, T, D) = columns [col0, col0 + H*D) of the rows of
 *                   in (B*T, ld); global (ceil(D / 8), T, B*H), eight elements of a
 *                   head's row per work-item
 *   heads_merge     columns [col0, col0 + H*D) of out (B*T, ld) = in (B, H, T, D);
 *                   global (ceil(D / 8), T, B*H)
 *   softmax_rows    p (B*H*T, T) = softmax of each row, in place, with key j of
 *                   query i masked when causal and j > i, or when mask[b][j] == 0
 *                   (has_mask); masked entries get probability 0; global (B*H*T)
 *   softmax_backward  dp = p * (dp - sum_j dp_j * p_j), in place; global (rows)
 *   add             out = a + b over n elements; global (ceil(n / 8)), eight
 *                   elements per work-item
 *   mean_pool       out (B, C) = mean over t of x (B, T, C) where mask[b][t] != 0
 *                   (all t without has_mask); global (C, B)
 *   mean_pool_backward  dx (B, T, C) = dout[b] / count_b where kept, else 0;
 *                   global (C, T, B)
 *   last_token_pool out (B, C) = x (B, T, C)[b, last_b], last_b the largest t with
 *                   mask[b][t] != 0 (0 when the row keeps none; T - 1 without
 *                   has_mask); global (C, B)
 *   last_token_pool_backward  dx (B, T, C) = dout[b] at t = last_b, else 0;
 *                   global (C, T, B)
 */

__kernel void heads_split(__global float *out, const uint out_offset,
                          __global const float *in, const uint in_offset, const uint ld,
                          const uint col0, const uint B, const uint T, const uint H,
                          const uint D)
{
    const uint d = get_global_id(0) * 8, t = get_global_id(1), bh = get_global_id(2);
    if (d >= D || t >= T || bh >= B * H)
        return;
    const uint b = bh / H, h = bh % H;
    store8_tail(load8_tail(in + in_offset + (b * T + t) * ld + col0 + h * D, d, D),
                out + out_offset + (bh * T + t) * D, d, D);
}

__kernel void heads_merge(__global float *out, const uint out_offset, const uint ld,
                          const uint col0, __global const float *in, const uint in_offset,
                          const uint B, const uint T, const uint H, const uint D)
{
    const uint d = get_global_id(0) * 8, t = get_global_id(1), bh = get_global_id(2);
    if (d >= D || t >= T || bh >= B * H)
        return;
    const uint b = bh / H, h = bh % H;
    store8_tail(load8_tail(in + in_offset + (bh * T + t) * D, d, D),
                out + out_offset + (b * T + t) * ld + col0 + h * D, d, D);
}

/* Whether key j of query i is masked out (see softmax_rows). */
static int key_masked(const uint j, const uint i, const uint causal, __global const int *mask,
                      const uint has_mask)
{
    return (causal && j > i) || (has_mask && mask[j] == 0);
}

/* The same for keys j .. j + 7 at once: -1 (all bits) where masked. */
static int8 keys_masked(const uint j, const uint i, const uint causal, __global const int *mask,
                        const uint has_mask)
{
    int8 masked = (int8)(0);
    if (causal)
        masked = (int8)(j) + (int8)(0, 1, 2, 3, 4, 5, 6, 7) > (int8)(i);
    if (has_mask)
        masked |= vload8(0, mask + j) == (int8)(0);
    return masked;
}

/* One row per work-item, eight keys at a time as one float8 (then one by
 * one for the last T % 8). */
__kernel void softmax_rows(__global float *p, const uint p_offset, const uint rows,
                           const uint T, const uint H, const uint causal,
                           __global const int *mask, const uint mask_offset,
                           const uint has_mask)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    const uint i = row % T;
    const uint b = row / (H * T);
    __global float *r = p + p_offset + row * T;
    __global const int *mb = mask + mask_offset + b * T;
    const uint whole = T - T % 8;

    float8 m8 = (float8)(-INFINITY);
    for (uint j = 0; j < whole; j += 8)
        m8 = select(fmax(m8, vload8(0, r + j)), m8, keys_masked(j, i, causal, mb, has_mask));
    float m = max8(m8);
    for (uint j = whole; j < T; ++j)
        if (!key_masked(j, i, causal, mb, has_mask))
            m = fmax(m, r[j]);

    float8 sums = (float8)(0.0f);
    for (uint j = 0; j < whole; j += 8) {
        const int8 off = keys_masked(j, i, causal, mb, has_mask) | (int8)(m == -INFINITY ? -1 : 0);
        const float8 e = select(exp(vload8(0, r + j) - m), (float8)(0.0f), off);
        vstore8(e, 0, r + j);
        sums += e;
    }
    float sum = sum8(sums);
    for (uint j = whole; j < T; ++j) {
        const float e =
            key_masked(j, i, causal, mb, has_mask) || m == -INFINITY ? 0.0f : exp(r[j] - m);
        r[j] = e;
        sum += e;
    }
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (uint j = 0; j < whole; j += 8)
        vstore8(vload8(0, r + j) * inv, 0, r + j);
    for (uint j = whole; j < T; ++j)
        r[j] *= inv;
}

__kernel void softmax_backward(__global float *dp, const uint dp_offset,
                               __global const float *p, const uint p_offset, const uint rows,
                               const uint T)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    __global float *g = dp + dp_offset + row * T;
    __global const float *q = p + p_offset + row * T;
    float dot = 0.0f;
    for (uint j = 0; j < T; ++j)
        dot += g[j] * q[j];
    for (uint j = 0; j < T; ++j)
        g[j] = q[j] * (g[j] - dot);
}

__kernel void add(__global float *out, const uint out_offset, __global const float *a,
                  const uint a_offset, __global const float *b, const uint b_offset, const uint n)
{
    const size_t first = get_global_id(0) * 8;
    if (first >= n)
        return;
    const uint at = (uint)first;
    store8_tail(load8_tail(a + a_offset, at, n) + load8_tail(b + b_offset, at, n),
                out + out_offset, at, n);
}

static float kept_tokens(__global const int *mask, const uint mask_offset, const uint has_mask,
                         const uint b, const uint T)
{
    if (!has_mask)
        return (float)T;
    float count = 0.0f;
    for (uint t = 0; t < T; ++t)
        count += mask[mask_offset + b * T + t] != 0 ? 1.0f : 0.0f;
    return count;
}

__kernel void mean_pool(__global float *out, const uint out_offset, __global const float *x,
                        const uint x_offset, __global const int *mask, const uint mask_offset,
                        const uint has_mask, const uint B, const uint T, const uint C)
{
    const uint c = get_global_id(0), b = get_global_id(1);
    if (c >= C || b >= B)
        return;
    float sum = 0.0f;
    for (uint t = 0; t < T; ++t)
        if (!has_mask || mask[mask_offset + b * T + t] != 0)
            sum += x[x_offset + (b * T + t) * C + c];
    const float count = kept_tokens(mask, mask_offset, has_mask, b, T);
    out[out_offset + b * C + c] = count > 0.0f ? sum / count : 0.0f;
}

__kernel void mean_pool_backward(__global float *dx, const uint dx_offset,
                                 __global const float *dout, const uint dout_offset,
                                 __global const int *mask, const uint mask_offset,
                                 const uint has_mask, const uint B, const uint T, const uint C)
{
    const uint c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= C || t >= T || b >= B)
        return;
    const int kept = !has_mask || mask[mask_offset + b * T + t] != 0;
    const float count = kept_tokens(mask, mask_offset, has_mask, b, T);
    dx[dx_offset + (b * T + t) * C + c] =
        kept && count > 0.0f ? dout[dout_offset + b * C + c] / count : 0.0f;
}

static uint last_kept(__global const int *mask, const uint mask_offset, const uint has_mask,
                      const uint b, const uint T)
{
    if (!has_mask)
        return T - 1;
    uint last = 0;
    for (uint t = 0; t < T; ++t)
        if (mask[mask_offset + b * T + t] != 0)
            last = t;
    return last;
}

__kernel void last_token_pool(__global float *out, const uint out_offset,
                              __global const float *x, const uint x_offset,
                              __global const int *mask, const uint mask_offset,
                              const uint has_mask, const uint B, const uint T, const uint C)
{
    const uint c = get_global_id(0), b = get_global_id(1);
    if (c >= C || b >= B)
        return;
    const uint t = last_kept(mask, mask_offset, has_mask, b, T);
    out[out_offset + b * C + c] = x[x_offset + (b * T + t) * C + c];
}

__kernel void last_token_pool_backward(__global float *dx, const uint dx_offset,
                                       __global const float *dout, const uint dout_offset,
                                       __global const int *mask, const uint mask_offset,
                                       const uint has_mask, const uint B, const uint T,
                                       const uint C)
{
    const uint c = get_global_id(0), t = get_global_id(1), b = get_global_id(2);
    if (c >= C || t >= T || b >= B)
        return;
    const uint last = last_kept(mask, mask_offset, has_mask, b, T);
    dx[dx_offset + (b * T + t) * C + c] = t == last ? dout[dout_offset + b * C + c] : 0.0f;
}
