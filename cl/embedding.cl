/* embedding.cl - table lookup and its gradient.
 *
 * Kernels (N ids, C features, V rows in the table; ids checked in range by
 * the library before launch):
 *   embedding_forward   y (N, C) = weight[ids[n]]; global (C, N)
 *   embedding_backward  d_weight (V, C) += dy rows scattered by id; global (C),
 *                       each work-item walks the ids in order for its column,
 *                       so repeated ids add up deterministically, no atomics
 */

__kernel void embedding_forward(__global float *y, const uint y_offset,
                                __global const float *weight, const uint weight_offset,
                                __global const int *ids, const uint ids_offset,
                                const uint n, const uint cols)
{
    const uint c = get_global_id(0);
    const uint i = get_global_id(1);
    if (c >= cols || i >= n)
        return;
    const uint id = (uint)ids[ids_offset + i];
    y[y_offset + i * cols + c] = weight[weight_offset + id * cols + c];
}

__kernel void embedding_backward(__global float *d_weight, const uint d_weight_offset,
                                 __global const float *dy, const uint dy_offset,
                                 __global const int *ids, const uint ids_offset,
                                 const uint n, const uint cols)
{
    const uint c = get_global_id(0);
    if (c >= cols)
        return;
    for (uint i = 0; i < n; ++i) {
        const uint id = (uint)ids[ids_offset + i];
        d_weight[d_weight_offset + id * cols + c] += dy[dy_offset + i * cols + c];
    }
}
