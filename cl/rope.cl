/* rope.cl - rotary position embeddings, in Hugging Face's rotate-half
 * layout: within each head's row of D values, element i and element
 * i + D/2 form a pair rotated by the angle position * inv_freq[i].
 *
 * B batch, T tokens, H heads, D per head (even); offsets in elements.
 *
 *   rope   x (B, H, T, D) rotated in place by the int32 positions (B, T) and
 *          the frequencies inv_freq (D/2):
 *              x[i]       <- x[i] cos - x[i + D/2] sin
 *              x[i + D/2] <- x[i + D/2] cos + x[i] sin
 *          with inverse != 0 the transpose (the rotation by minus the
 *          angle: backward); global (D/2, T, B*H)
 *
 * The angle is the float32 product of the position and the frequency, as
 * PyTorch computes it, so the same positions give the same rotation.
 */

__kernel void rope(__global float *x, const uint x_offset, __global const int *positions,
                   const uint positions_offset, __global const float *inv_freq,
                   const uint inv_freq_offset, const uint B, const uint T, const uint H,
                   const uint D, const uint inverse)
{
    const uint i = get_global_id(0), t = get_global_id(1), bh = get_global_id(2);
    const uint half_d = D / 2;
    if (i >= half_d || t >= T || bh >= B * H)
        return;
    const uint b = bh / H;
    const float position = (float)positions[positions_offset + b * T + t];
    const float angle = position * inv_freq[inv_freq_offset + i];
    float c;
    const float sine = sincos(angle, &c);
    const float s = inverse ? -sine : sine;
    __global float *row = x + x_offset + (bh * T + t) * D;
    const float a = row[i], z = row[i + half_d];
    row[i] = a * c - z * s;
    row[i + half_d] = z * c + a * s;
}
