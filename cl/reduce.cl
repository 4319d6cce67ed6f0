/* reduce.cl - deterministic sums: fixed chunks summed in order, then the
 * chunk sums summed in order. No atomics, the same bits on every run.
 *
 * Kernels (offsets in elements):
 *   sum_partials  partials[i] = sum of x[i*chunk, min(n, (i+1)*chunk)), of the
 *                 squares when square != 0; global (ceil(n / chunk))
 *   sum_finish    out[0] = scale * sum of partials[0, count) (+ out[0] when
 *                 accumulate != 0); one work-item
 *   scale_by      x *= factor[0]; global (n)
 */

__kernel void sum_partials(__global float *partials, __global const float *x, const uint x_offset,
                           const uint n, const uint chunk, const uint square)
{
    const uint i = get_global_id(0);
    const uint begin = i * chunk;
    if (begin >= n)
        return;
    const uint end = min(n, begin + chunk);
    float acc = 0.0f;
    for (uint k = begin; k < end; ++k) {
        const float v = x[x_offset + k];
        acc += square ? v * v : v;
    }
    partials[i] = acc;
}

__kernel void sum_finish(__global float *out, const uint out_offset,
                         __global const float *partials, const uint count, const float scale,
                         const uint accumulate)
{
    if (get_global_id(0) != 0)
        return;
    float acc = 0.0f;
    for (uint i = 0; i < count; ++i)
        acc += partials[i];
    acc *= scale;
    if (accumulate)
        acc += out[out_offset];
    out[out_offset] = acc;
}

__kernel void scale_by(__global float *x, const uint x_offset, const uint n,
                       __global const float *factor, const uint factor_offset)
{
    const uint i = get_global_id(0);
    if (i < n)
        x[x_offset + i] *= factor[factor_offset];
}
