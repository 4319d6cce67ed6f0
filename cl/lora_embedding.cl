/* lora_embedding.cl - the rank-r path of LoRA on an embedding table, as PEFT's
 * lora.Embedding computes it, beside embedding.cl's lookup of the frozen table:
 *     y[n] = E[ids[n]] + s * B * A[:, ids[n]]
 *
 * Kernels (N ids, C features, V rows of the table, r rank, s scale; ids
 * checked in range by the library before launch; A (r, V), B (C, r)):
 *   lora_embedding_forward  y (N, C) += s * sum_k B[c, k] * A[k, ids[n]], after
 *                           the lookup wrote E[ids]; global (C, N)
 *   lora_embedding_grad_b   dB (C, r) += s * sum_n dy[n, c] * A[k, ids[n]];
 *                           global (r, C), each work-item sums n in order
 *   lora_embedding_g        g (N, r) = s * dy (N, C) * B (C, r); global (r, N)
 *   lora_embedding_grad_a   dA[k, ids[n]] += g[n, k] for n in order, skipping
 *                           ids equal to `padding` (PyTorch's padding_idx:
 *                           its row gets no gradient; -1: none); global (r),
 *                           so repeated ids add up in a fixed order, no atomics
 */

__kernel void lora_embedding_forward(__global float *y, const uint y_offset,
                                     __global const int *ids, const uint ids_offset,
                                     __global const float *a, const uint a_offset,
                                     __global const float *b, const uint b_offset,
                                     const uint n, const uint cols, const uint rows,
                                     const uint r, const float scale)
{
    const uint c = get_global_id(0);
    const uint i = get_global_id(1);
    if (c >= cols || i >= n)
        return;
    const uint id = (uint)ids[ids_offset + i];
    float acc = 0.0f;
    for (uint k = 0; k < r; ++k)
        acc += b[b_offset + c * r + k] * a[a_offset + k * rows + id];
    y[y_offset + i * cols + c] += acc * scale;
}

__kernel void lora_embedding_grad_b(__global float *d_b, const uint d_b_offset,
                                    __global const float *dy, const uint dy_offset,
                                    __global const int *ids, const uint ids_offset,
                                    __global const float *a, const uint a_offset,
                                    const uint n, const uint cols, const uint rows,
                                    const uint r, const float scale)
{
    const uint k = get_global_id(0);
    const uint c = get_global_id(1);
    if (k >= r || c >= cols)
        return;
    float acc = 0.0f;
    for (uint i = 0; i < n; ++i) {
        const uint id = (uint)ids[ids_offset + i];
        acc += dy[dy_offset + i * cols + c] * a[a_offset + k * rows + id];
    }
    d_b[d_b_offset + c * r + k] += acc * scale;
}

__kernel void lora_embedding_g(__global float *g, const uint g_offset,
                               __global const float *dy, const uint dy_offset,
                               __global const float *b, const uint b_offset,
                               const uint n, const uint cols, const uint r, const float scale)
{
    const uint k = get_global_id(0);
    const uint i = get_global_id(1);
    if (k >= r || i >= n)
        return;
    float acc = 0.0f;
    for (uint c = 0; c < cols; ++c)
        acc += dy[dy_offset + i * cols + c] * b[b_offset + c * r + k];
    g[g_offset + i * r + k] = acc * scale;
}

__kernel void lora_embedding_grad_a(__global float *d_a, const uint d_a_offset,
                                    __global const float *g, const uint g_offset,
                                    __global const int *ids, const uint ids_offset,
                                    const uint n, const uint rows, const uint r,
                                    const int padding)
{
    const uint k = get_global_id(0);
    if (k >= r)
        return;
    for (uint i = 0; i < n; ++i) {
        const int id = ids[ids_offset + i];
        if (id != padding)
            d_a[d_a_offset + k * rows + (uint)id] += g[g_offset + i * r + k];
    }
}
