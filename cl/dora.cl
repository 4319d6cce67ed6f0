/* dora.cl - the kernels DoRA adds to the LoRA linear op (N rows, in, out,
 * r rank, s scale; c = m / n per output feature, n the weight norm):
 *
 *   dora_weight_norm      n (out) = || W_j + s * (B * A)_j ||, the 2-norm of
 *                         output feature j's row of the adapted weight, W
 *                         stored (out, in) or (in, out) (out_in = 0), as
 *                         F32, F16 or BF16 (w_dtype 0, 1, 2); r = 0 leaves
 *                         the LoRA term out (n = ||W_j||); global (out)
 *   dora_scale_rows       y (N, out) = c * t + b (b only when has_bias);
 *                         global (out, N)
 *   dora_residual         xd (n) = x - xd: what dropout took from x; global (n)
 *   dora_scale_grad       e (N, out) = (c - minus) * dy; global (out, N)
 *   dora_magnitude_grad   dm (out) += sum over rows of dy * t / n, the rows
 *                         summed in order (deterministic); global (out)
 *   dora_dropout_fix      dx (N, in) += drop'(v) - v; global (in, N)
 *
 * Offsets are in elements. The dropout helpers come from common.cl; the
 * mask of element (i, k) is that of row row0 + i, column k, as the LoRA
 * kernels (and dropout_apply, which makes drop(x) for DoRA) draw it.
 */

static float weight_at(__global const uchar *w, const uint at, const uint dtype)
{
    if (dtype == 1)
        return vload_half(at, (__global const half *)w);
    if (dtype == 2)
        return as_float((uint)((__global const ushort *)w)[at] << 16);
    return ((__global const float *)w)[at];
}

__kernel void dora_weight_norm(__global float *norm, const uint norm_offset,
                               __global const uchar *w, const uint w_offset, const uint w_dtype,
                               const uint out_in, __global const float *a, const uint a_offset,
                               __global const float *b, const uint b_offset, const uint in,
                               const uint out, const uint r, const float s)
{
    const uint j = get_global_id(0);
    if (j >= out)
        return;
    float sum = 0.0f;
    for (uint k = 0; k < in; ++k) {
        const uint at = w_offset + (out_in ? j * in + k : k * out + j);
        float v = weight_at(w, at, w_dtype);
        float delta = 0.0f;
        for (uint q = 0; q < r; ++q)
            delta += b[b_offset + j * r + q] * a[a_offset + q * in + k];
        v += s * delta;
        sum += v * v;
    }
    norm[norm_offset + j] = sqrt(sum);
}

__kernel void dora_scale_rows(__global float *y, const uint y_offset, __global const float *t,
                              const uint t_offset, __global const float *norm,
                              const uint norm_offset, __global const float *magnitude,
                              const uint magnitude_offset, __global const float *bias,
                              const uint bias_offset, const uint has_bias, const uint n,
                              const uint out)
{
    const uint j = get_global_id(0), i = get_global_id(1);
    if (j >= out || i >= n)
        return;
    const float c = magnitude[magnitude_offset + j] / norm[norm_offset + j];
    const uint at = i * out + j;
    const float v = has_bias ? bias[bias_offset + j] : 0.0f;
    y[y_offset + at] = v + c * t[t_offset + at];
}

__kernel void dora_residual(__global float *xd, const uint xd_offset, __global const float *x,
                            const uint x_offset, const uint n)
{
    const uint i = get_global_id(0);
    if (i < n)
        xd[xd_offset + i] = x[x_offset + i] - xd[xd_offset + i];
}

__kernel void dora_scale_grad(__global float *e, const uint e_offset, __global const float *dy,
                              const uint dy_offset, __global const float *norm,
                              const uint norm_offset, __global const float *magnitude,
                              const uint magnitude_offset, const float minus, const uint n,
                              const uint out)
{
    const uint j = get_global_id(0), i = get_global_id(1);
    if (j >= out || i >= n)
        return;
    const float c = magnitude[magnitude_offset + j] / norm[norm_offset + j];
    e[e_offset + i * out + j] = (c - minus) * dy[dy_offset + i * out + j];
}

__kernel void dora_magnitude_grad(__global float *dm, const uint dm_offset,
                                  __global const float *dy, const uint dy_offset,
                                  __global const float *t, const uint t_offset,
                                  __global const float *norm, const uint norm_offset,
                                  const uint n, const uint out)
{
    const uint j = get_global_id(0);
    if (j >= out)
        return;
    float sum = 0.0f;
    for (uint i = 0; i < n; ++i)
        sum += dy[dy_offset + i * out + j] * t[t_offset + i * out + j];
    dm[dm_offset + j] += sum / norm[norm_offset + j];
}

__kernel void dora_dropout_fix(__global float *dx, const uint dx_offset, __global const float *v,
                               const uint v_offset, const uint n, const uint in,
                               const uint seed_lo, const uint seed_hi, const uint drop_threshold,
                               const float drop_scale, const uint drop_row0)
{
    const uint k = get_global_id(0), i = get_global_id(1);
    if (k >= in || i >= n)
        return;
    const drop_key key = seed_key(seed_lo, seed_hi, drop_row0);
    const float value = v[v_offset + i * in + k];
    dx[dx_offset + i * in + k] += dropped(value, key, i, k, drop_threshold, drop_scale) - value;
}
