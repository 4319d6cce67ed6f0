/* linear.cl - the elementwise parts of the Linear layer (its GEMMs run in
 * CLBlast), and the few-rows product of CPUs.
 *
 * Kernels (N = rows, out = features; offsets and sizes in elements):
 *   bias_broadcast  y (N, out) = b (out) on every row; global (ceil(out / 8), N),
 *                   eight columns per work-item
 *   bias_add        y (N, out) += b (out) on every row; global (ceil(out / 8), N)
 *   column_sum      db (out) += sum_n dy (N, out); global (out), one work-item
 *                   per column summing rows in order, so the result is the
 *                   same on every run
 *   rows_times_wt   y (M, out) = x (M, in) * W^T + beta * y for a few rows (a
 *                   generation step's tokens), W (out, in) row-major, on CPUs:
 *                   each work-item takes four rows of W, eight columns at a
 *                   time, for one row of x, so W streams from memory once per
 *                   row of x at full vector width; global (ceil(out / 4), M)
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

__kernel void rows_times_wt(__global float *y, const uint y_offset, __global const float *x,
                            const uint x_offset, __global const float *w, const uint w_offset,
                            const uint in, const uint out, const uint rows, const float beta)
{
    const uint o = get_global_id(0) * 4, row = get_global_id(1);
    if (o >= out || row >= rows)
        return;
    __global const float *xr = x + x_offset + row * in;
    /* rows past `out` repeat the last one; their sums are not stored */
    __global const float *w0 = w + w_offset + min(o, out - 1) * in;
    __global const float *w1 = w + w_offset + min(o + 1, out - 1) * in;
    __global const float *w2 = w + w_offset + min(o + 2, out - 1) * in;
    __global const float *w3 = w + w_offset + min(o + 3, out - 1) * in;
    float8 a0 = (float8)(0.0f), a1 = a0, a2 = a0, a3 = a0;
    uint c = 0;
    for (; c + 8 <= in; c += 8) {
        const float8 xv = vload8(0, xr + c);
        a0 += vload8(0, w0 + c) * xv;
        a1 += vload8(0, w1 + c) * xv;
        a2 += vload8(0, w2 + c) * xv;
        a3 += vload8(0, w3 + c) * xv;
    }
    float s0 = sum8(a0), s1 = sum8(a1), s2 = sum8(a2), s3 = sum8(a3);
    for (; c < in; ++c) {
        s0 += w0[c] * xr[c];
        s1 += w1[c] * xr[c];
        s2 += w2[c] * xr[c];
        s3 += w3[c] * xr[c];
    }
    __global float *yr = y + y_offset + row * out + o;
    const float sums[4] = {s0, s1, s2, s3};
    for (uint j = 0; j < 4 && o + j < out; ++j)
        yr[j] = (beta != 0.0f ? beta * yr[j] : 0.0f) + sums[j];
}
