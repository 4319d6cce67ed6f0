/* linear.cl - the elementwise parts of the Linear layer (its GEMMs run in CLBlast).
 *
 * Kernels (N = rows, out = features; offsets and sizes in elements):
 *   bias_broadcast  y (N, out) = b (out) on every row; global (ceil(out / 8), N),
 *                   eight columns per work-item
 *   bias_add        y (N, out) += b (out) on every row; global (ceil(out / 8), N)
 *   column_sum      db (out) += sum_n dy (N, out); global (out), one work-item
 *                   per column summing rows in order, so the result is the
 *                   same on every run
 */

__kernel void bias_broadcast(__global float *y, const uint y_offset,
                             __global const float *bias, const uint bias_offset,
                             const uint rows, const uint cols)
{
    const uint col = get_global_id(0) * 8;
    const uint row = get_global_id(1);
    if (col < cols && row < rows)
        store8_tail(load8_tail(bias + bias_offset, col, cols), y + y_offset + row * cols, col,
                    cols);
}

__kernel void bias_add(__global float *y, const uint y_offset,
                       __global const float *bias, const uint bias_offset,
                       const uint rows, const uint cols)
{
    const uint col = get_global_id(0) * 8;
    const uint row = get_global_id(1);
    if (col >= cols || row >= rows)
        return;
    __global float *yr = y + y_offset + row * cols;
    store8_tail(load8_tail(yr, col, cols) + load8_tail(bias + bias_offset, col, cols), yr, col,
                cols);
}

__kernel void column_sum(__global float *sum, const uint sum_offset,
                         __global const float *x, const uint x_offset,
                         const uint rows, const uint cols)
{
    const uint col = get_global_id(0);
    if (col >= cols)
        return;
    float acc = 0.0f;
    for (uint row = 0; row < rows; ++row)
        acc += x[x_offset + row * cols + col];
    sum[sum_offset + col] += acc;
}
