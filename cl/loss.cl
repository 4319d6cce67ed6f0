/* loss.cl - losses and their gradients.
 *
 * Kernels (N rows, C classes; offsets in elements):
 *   cross_entropy_count  stats = {1 / valid rows, invalid labels, valid rows}
 *                        over labels (N) (a label equal to ignore_index does
 *                        not count; one outside [0, C) is invalid); one work-item
 *   cross_entropy_rows   row_loss (N) = (logsumexp(logits) - logits[label]) / valid,
 *                        d_logits (N, C) = (softmax - onehot) / valid when
 *                        has_grad; ignored or invalid rows give 0; global (N)
 *   mse_elements         sq (n) = (pred - target)^2 / n,
 *                        d_pred (n) = 2 (pred - target) / n when has_grad; global (n)
 * The mean is then the deterministic sum (reduce.cl) of row_loss or sq.
 */

__kernel void cross_entropy_count(__global float *stats, __global const int *labels,
                                  const uint labels_offset, const uint rows, const uint classes,
                                  const int ignore_index)
{
    if (get_global_id(0) != 0)
        return;
    uint valid = 0, invalid = 0;
    for (uint i = 0; i < rows; ++i) {
        const int label = labels[labels_offset + i];
        if (label == ignore_index)
            continue;
        if (label < 0 || (uint)label >= classes)
            ++invalid;
        else
            ++valid;
    }
    stats[0] = valid ? 1.0f / (float)valid : 0.0f;
    stats[1] = (float)invalid;
    stats[2] = (float)valid;
}

__kernel void cross_entropy_rows(__global float *d_logits, const uint d_offset,
                                 const uint has_grad, __global float *row_loss,
                                 __global const float *logits, const uint logits_offset,
                                 __global const int *labels, const uint labels_offset,
                                 __global const float *stats, const uint rows,
                                 const uint classes, const int ignore_index)
{
    const uint i = get_global_id(0);
    if (i >= rows)
        return;
    const int label = labels[labels_offset + i];
    __global const float *l = logits + logits_offset + i * classes;
    __global float *d = d_logits + d_offset + i * classes;
    if (label == ignore_index || label < 0 || (uint)label >= classes) {
        row_loss[i] = 0.0f;
        if (has_grad)
            for (uint c = 0; c < classes; ++c)
                d[c] = 0.0f;
        return;
    }
    /* Eight classes at a time as one float8, the last C % 8 one by one. */
    const float inv = stats[0];
    const uint whole = classes - classes % 8;
    float8 m8 = (float8)(-INFINITY);
    for (uint c = 0; c < whole; c += 8)
        m8 = fmax(m8, vload8(0, l + c));
    float m = max8(m8);
    for (uint c = whole; c < classes; ++c)
        m = fmax(m, l[c]);
    float8 s8 = (float8)(0.0f);
    for (uint c = 0; c < whole; c += 8)
        s8 += exp(vload8(0, l + c) - m);
    float s = sum8(s8);
    for (uint c = whole; c < classes; ++c)
        s += exp(l[c] - m);
    row_loss[i] = (m + log(s) - l[label]) * inv;
    if (has_grad) {
        const float inv_s = 1.0f / s;
        const int8 lanes = (int8)(0, 1, 2, 3, 4, 5, 6, 7);
        for (uint c = 0; c < whole; c += 8) {
            const float8 onehot =
                select((float8)(0.0f), (float8)(1.0f), (int8)(c) + lanes == (int8)(label));
            vstore8((exp(vload8(0, l + c) - m) * inv_s - onehot) * inv, 0, d + c);
        }
        for (uint c = whole; c < classes; ++c)
            d[c] = (exp(l[c] - m) * inv_s - (c == (uint)label ? 1.0f : 0.0f)) * inv;
    }
}

__kernel void mse_elements(__global float *d_pred, const uint d_offset, const uint has_grad,
                           __global float *sq, __global const float *pred, const uint pred_offset,
                           __global const float *target, const uint target_offset, const uint n,
                           const float inv_n)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float diff = pred[pred_offset + i] - target[target_offset + i];
    sq[i] = diff * diff * inv_n;
    if (has_grad)
        d_pred[d_offset + i] = 2.0f * diff * inv_n;
}
