/* kv_cache.cl - the key/value cache of generation sessions: new keys and
 * values written at each row's own length, attention of the new queries
 * over everything cached, and each row's last hidden state.
 *
 * B rows, T new tokens per row (some rows may use fewer), G key/value
 * heads, H query heads (a multiple of G), D per head, S the cache's
 * capacity per row, C features; offsets in elements. lengths (B) are the
 * tokens each row held before this step, counts (B) the new ones.
 *
 *   cache_write       cache (B, G, S, D)[b, g, lengths[b] + t] = src (B, G, T, D)[b, g, t]
 *                     for t < counts[b]; global (D, T, B*G)
 *   cached_attention  out (B, T, H*D)[b, t, h] = softmax_j(q[b, h, t] . K[b, g, j] * scale)
 *                     . V[b, g, j] over the keys j <= lengths[b] + t (and < S), with
 *                     g = h / (H / G); one work-item per query row, the softmax
 *                     computed online in one pass; global (B*H*T)
 *   last_rows         out (B, C) = in (B, T, C)[b, counts[b] - 1] (row 0 when counts[b]
 *                     is 0); global (C, B)
 */

#define MAX_HEAD 256

__kernel void cache_write(__global float *cache, const uint cache_offset,
                          __global const float *src, const uint src_offset,
                          __global const int *lengths, __global const int *counts, const uint B,
                          const uint G, const uint T, const uint S, const uint D)
{
    const uint d = get_global_id(0), t = get_global_id(1), bg = get_global_id(2);
    if (d >= D || t >= T || bg >= B * G)
        return;
    const uint b = bg / G;
    const uint at = (uint)lengths[b] + t;
    if (t >= (uint)counts[b] || at >= S)
        return;
    cache[cache_offset + (bg * S + at) * D + d] = src[src_offset + (bg * T + t) * D + d];
}

/* The score of query row qr against key row kr over D values (eight at a
 * time when D is a multiple of eight). */
static float score_of(__global const float *qr, __global const float *kr, const uint D)
{
    float score = 0.0f;
    if (D % 8 == 0) {
        float8 acc = (float8)(0.0f);
        for (uint d = 0; d < D; d += 8)
            acc += vload8(0, qr + d) * vload8(0, kr + d);
        return sum8(acc);
    }
    for (uint d = 0; d < D; ++d)
        score += qr[d] * kr[d];
    return score;
}

__kernel void cached_attention(__global float *out, const uint out_offset,
                               __global const float *q, const uint q_offset,
                               __global const float *keys, const uint keys_offset,
                               __global const float *values, const uint values_offset,
                               __global const int *lengths, const uint B, const uint H,
                               const uint G, const uint T, const uint S, const uint D,
                               const float scale)
{
    const uint row = get_global_id(0);
    if (row >= B * H * T || D > MAX_HEAD)
        return;
    const uint t = row % T, bh = row / T, b = bh / H, h = bh % H;
    const uint g = h / (H / G);
    uint keys_seen = (uint)lengths[b] + t + 1;
    if (keys_seen > S)
        keys_seen = S;
    __global const float *qr = q + q_offset + row * D;
    __global const float *kr = keys + keys_offset + (b * G + g) * S * D;
    __global const float *vr = values + values_offset + (b * G + g) * S * D;
    const uint D8 = D % 8 == 0 ? D / 8 : 0; /* eight-wide accumulators, else scalar */
    float8 acc8[MAX_HEAD / 8];
    float acc[MAX_HEAD];
    for (uint i = 0; i < D8; ++i)
        acc8[i] = (float8)(0.0f);
    for (uint d = 0; D8 == 0 && d < D; ++d)
        acc[d] = 0.0f;
    float best = -INFINITY, total = 0.0f;
    for (uint j = 0; j < keys_seen; ++j) {
        const float score = score_of(qr, kr + j * D, D) * scale;
        if (score > best) { /* rescale what was summed under the old maximum */
            const float shrink = exp(best - score);
            total *= shrink;
            for (uint i = 0; i < D8; ++i)
                acc8[i] *= shrink;
            for (uint d = 0; D8 == 0 && d < D; ++d)
                acc[d] *= shrink;
            best = score;
        }
        const float w = exp(score - best);
        total += w;
        __global const float *v = vr + j * D;
        for (uint i = 0; i < D8; ++i)
            acc8[i] += w * vload8(i, v);
        for (uint d = 0; D8 == 0 && d < D; ++d)
            acc[d] += w * v[d];
    }
    __global float *o = out + out_offset + ((b * T + t) * H + h) * D;
    const float inv = keys_seen ? 1.0f / total : 0.0f;
    for (uint i = 0; i < D8; ++i)
        vstore8(acc8[i] * inv, i, o);
    for (uint d = 0; D8 == 0 && d < D; ++d)
        o[d] = acc[d] * inv;
}

__kernel void last_rows(__global float *out, const uint out_offset, __global const float *in,
                        const uint in_offset, __global const int *counts, const uint B,
                        const uint T, const uint C)
{
    const uint c = get_global_id(0), b = get_global_id(1);
    if (c >= C || b >= B)
        return;
    const uint t = counts[b] > 0 ? (uint)counts[b] - 1 : 0;
    out[out_offset + b * C + c] = in[in_offset + (b * T + t) * C + c];
}
