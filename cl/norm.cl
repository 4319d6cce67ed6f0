/* norm.cl - LayerNorm and RMSNorm over the last dimension.
 *
 * Kernels (N rows, C features; offsets in elements):
 *   layer_norm_forward     y (N, C) = (x - mean) * rstd * weight + bias,
 *                          saving mean (N) and rstd (N); global (N), one
 *                          work-item per row, two passes over the row
 *   layer_norm_backward    dx (N, C) from dy, x, weight, mean, rstd; global (N)
 *   layer_norm_param_grads d_weight (C) += sum_n dy * xhat, d_bias (C) += sum_n dy;
 *                          global (C), rows summed in order (deterministic)
 *   rms_norm_forward       y (N, C) = x * rstd * weight, rstd (N) = 1 / sqrt(mean(x^2) + eps)
 *                          saved for backward; global (N)
 *   rms_norm_backward      dx (N, C) = rstd * g - x * rstd^3 * mean(g * x), g = dy * weight;
 *                          global (N)
 *   rms_norm_weight_grad   d_weight (C) += sum_n dy * x * rstd; global (C), rows in order
 */

__kernel void layer_norm_forward(__global float *y, const uint y_offset,
                                 __global float *mean, __global float *rstd,
                                 __global const float *x, const uint x_offset,
                                 __global const float *weight, const uint weight_offset,
                                 __global const float *bias, const uint bias_offset,
                                 const uint rows, const uint cols, const float eps)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    __global const float *xr = x + x_offset + row * cols;
    float sum = 0.0f;
    for (uint c = 0; c < cols; ++c)
        sum += xr[c];
    const float mu = sum / (float)cols;
    float var = 0.0f;
    for (uint c = 0; c < cols; ++c) {
        const float d = xr[c] - mu;
        var += d * d;
    }
    const float r = rsqrt(var / (float)cols + eps);
    mean[row] = mu;
    rstd[row] = r;
    __global float *yr = y + y_offset + row * cols;
    for (uint c = 0; c < cols; ++c)
        yr[c] = (xr[c] - mu) * r * weight[weight_offset + c] + bias[bias_offset + c];
}

__kernel void layer_norm_backward(__global float *dx, const uint dx_offset,
                                  __global const float *dy, const uint dy_offset,
                                  __global const float *x, const uint x_offset,
                                  __global const float *weight, const uint weight_offset,
                                  __global const float *mean, __global const float *rstd,
                                  const uint rows, const uint cols)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    __global const float *xr = x + x_offset + row * cols;
    __global const float *dyr = dy + dy_offset + row * cols;
    const float mu = mean[row], r = rstd[row];
    /* dxhat = dy * weight; dx = r * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) */
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (uint c = 0; c < cols; ++c) {
        const float g = dyr[c] * weight[weight_offset + c];
        sum_g += g;
        sum_gx += g * (xr[c] - mu) * r;
    }
    const float mean_g = sum_g / (float)cols, mean_gx = sum_gx / (float)cols;
    __global float *dxr = dx + dx_offset + row * cols;
    for (uint c = 0; c < cols; ++c) {
        const float xhat = (xr[c] - mu) * r;
        dxr[c] = r * (dyr[c] * weight[weight_offset + c] - mean_g - xhat * mean_gx);
    }
}

__kernel void layer_norm_param_grads(__global float *d_weight, const uint d_weight_offset,
                                     __global float *d_bias, const uint d_bias_offset,
                                     const uint has_weight_grad, const uint has_bias_grad,
                                     __global const float *dy, const uint dy_offset,
                                     __global const float *x, const uint x_offset,
                                     __global const float *mean, __global const float *rstd,
                                     const uint rows, const uint cols)
{
    const uint c = get_global_id(0);
    if (c >= cols)
        return;
    float gw = 0.0f, gb = 0.0f;
    for (uint row = 0; row < rows; ++row) {
        const float g = dy[dy_offset + row * cols + c];
        gw += g * (x[x_offset + row * cols + c] - mean[row]) * rstd[row];
        gb += g;
    }
    if (has_weight_grad)
        d_weight[d_weight_offset + c] += gw;
    if (has_bias_grad)
        d_bias[d_bias_offset + c] += gb;
}

__kernel void rms_norm_forward(__global float *y, const uint y_offset, __global float *rstd,
                               __global const float *x, const uint x_offset,
                               __global const float *weight, const uint weight_offset,
                               const uint rows, const uint cols, const float eps)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    __global const float *xr = x + x_offset + row * cols;
    float sum = 0.0f;
    for (uint c = 0; c < cols; ++c)
        sum += xr[c] * xr[c];
    const float r = rsqrt(sum / (float)cols + eps);
    rstd[row] = r;
    __global float *yr = y + y_offset + row * cols;
    for (uint c = 0; c < cols; ++c)
        yr[c] = weight[weight_offset + c] * (xr[c] * r);
}

__kernel void rms_norm_backward(__global float *dx, const uint dx_offset,
                                __global const float *dy, const uint dy_offset,
                                __global const float *x, const uint x_offset,
                                __global const float *weight, const uint weight_offset,
                                __global const float *rstd, const uint rows, const uint cols)
{
    const uint row = get_global_id(0);
    if (row >= rows)
        return;
    __global const float *xr = x + x_offset + row * cols;
    __global const float *dyr = dy + dy_offset + row * cols;
    const float r = rstd[row];
    float sum_gx = 0.0f;
    for (uint c = 0; c < cols; ++c)
        sum_gx += dyr[c] * weight[weight_offset + c] * xr[c];
    const float k = r * r * r * sum_gx / (float)cols;
    __global float *dxr = dx + dx_offset + row * cols;
    for (uint c = 0; c < cols; ++c)
        dxr[c] = r * dyr[c] * weight[weight_offset + c] - xr[c] * k;
}

__kernel void rms_norm_weight_grad(__global float *d_weight, const uint d_weight_offset,
                                   __global const float *dy, const uint dy_offset,
                                   __global const float *x, const uint x_offset,
                                   __global const float *rstd, const uint rows, const uint cols)
{
    const uint c = get_global_id(0);
    if (c >= cols)
        return;
    float g = 0.0f;
    for (uint row = 0; row < rows; ++row)
        g += dy[dy_offset + row * cols + c] * x[x_offset + row * cols + c] * rstd[row];
    d_weight[d_weight_offset + c] += g;
}
