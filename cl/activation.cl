/* activation.cl - elementwise nodes: activations and dropout.
 *
 * Kernels (n = elements; offsets in elements):
 *   activation_forward   y = f(x)
 *   activation_backward  dx = dy * f'(x)   (tanh uses y = tanh(x))
 *   dropout_apply        y = x * mask(row0 + row, col) / (1 - p) over (rows, cols);
 *                        the same call serves forward (x) and backward (dy)
 *   swiglu_forward       h = silu(g) * u (Llama's MLP: gate and up projections)
 *   swiglu_backward      dg = dh * u * silu'(g), du = dh * silu(g)
 *
 * kind: 0 ReLU, 1 GELU (erf), 2 GELU (tanh approximation), 3 SiLU, 4 Tanh.
 */

#define KIND_RELU 0u
#define KIND_GELU 1u
#define KIND_GELU_TANH 2u
#define KIND_SILU 3u
#define KIND_TANH 4u

#define SQRT_HALF 0.70710678118654752f
#define INV_SQRT_2PI 0.39894228040143268f
#define SQRT_2_OVER_PI 0.79788456080286536f
#define GELU_C 0.044715f

/* Each work-item of the activation kernels handles eight elements as one
 * float8 (load8_tail, store8_tail): on CPUs the vector forms of exp, erf and
 * tanh run eight lanes at once, where the scalar forms ran one element at a
 * time (a work-item loop with a switch in it does not vectorize). */
static float8 sigmoid8(const float8 x)
{
    return 1.0f / (1.0f + exp(-x));
}

/* global (ceil(n / 8)) */
__kernel void activation_forward(__global float *y, const uint y_offset,
                                 __global const float *x, const uint x_offset,
                                 const uint n, const uint kind)
{
    const size_t first = get_global_id(0) * 8;
    if (first >= n)
        return;
    const uint at = (uint)first;
    const float8 v = load8_tail(x + x_offset, at, n);
    float8 r;
    switch (kind) {
    case KIND_RELU:
        r = fmax(v, 0.0f);
        break;
    case KIND_GELU:
        r = 0.5f * v * (1.0f + erf(v * SQRT_HALF));
        break;
    case KIND_GELU_TANH:
        r = 0.5f * v * (1.0f + tanh(SQRT_2_OVER_PI * (v + GELU_C * v * v * v)));
        break;
    case KIND_SILU:
        r = v * sigmoid8(v);
        break;
    default:
        r = tanh(v);
        break;
    }
    store8_tail(r, y + y_offset, at, n);
}

/* global (ceil(n / 8)) */
__kernel void activation_backward(__global float *dx, const uint dx_offset,
                                  __global const float *dy, const uint dy_offset,
                                  __global const float *x, const uint x_offset,
                                  __global const float *y, const uint y_offset,
                                  const uint n, const uint kind)
{
    const size_t first = get_global_id(0) * 8;
    if (first >= n)
        return;
    const uint at = (uint)first;
    const float8 v = load8_tail(x + x_offset, at, n);
    float8 d;
    switch (kind) {
    case KIND_RELU:
        d = select((float8)(0.0f), (float8)(1.0f), v > 0.0f);
        break;
    case KIND_GELU:
        d = 0.5f * (1.0f + erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * exp(-0.5f * v * v);
        break;
    case KIND_GELU_TANH: {
        const float8 inner = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
        const float8 t = tanh(inner);
        d = 0.5f * (1.0f + t) +
            0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
        break;
    }
    case KIND_SILU: {
        const float8 s = sigmoid8(v);
        d = s * (1.0f + v * (1.0f - s));
        break;
    }
    default: {
        const float8 t = load8_tail(y + y_offset, at, n);
        d = 1.0f - t * t;
        break;
    }
    }
    store8_tail(load8_tail(dy + dy_offset, at, n) * d, dx + dx_offset, at, n);
}

__kernel void dropout_apply(__global float *y, const uint y_offset,
                            __global const float *x, const uint x_offset,
                            const uint rows, const uint cols,
                            const uint seed_lo, const uint seed_hi, const uint threshold,
                            const float scale, const uint row0)
{
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    if (col >= cols || row >= rows)
        return;
    const uint at = row * cols + col;
    y[y_offset + at] = dropped(x[x_offset + at], seed_key(seed_lo, seed_hi, row0), row, col,
                               threshold, scale);
}

/* global (ceil(n / 8)) */
__kernel void swiglu_forward(__global float *h, const uint h_offset,
                             __global const float *g, const uint g_offset,
                             __global const float *u, const uint u_offset, const uint n)
{
    const size_t first = get_global_id(0) * 8;
    if (first >= n)
        return;
    const uint at = (uint)first;
    const float8 gv = load8_tail(g + g_offset, at, n);
    store8_tail(gv * sigmoid8(gv) * load8_tail(u + u_offset, at, n), h + h_offset, at, n);
}

/* global (ceil(n / 8)) */
__kernel void swiglu_backward(__global float *dg, const uint dg_offset,
                              __global float *du, const uint du_offset,
                              __global const float *dh, const uint dh_offset,
                              __global const float *g, const uint g_offset,
                              __global const float *u, const uint u_offset, const uint n)
{
    const size_t first = get_global_id(0) * 8;
    if (first >= n)
        return;
    const uint at = (uint)first;
    const float8 gv = load8_tail(g + g_offset, at, n), d = load8_tail(dh + dh_offset, at, n);
    const float8 s = sigmoid8(gv);
    store8_tail(d * load8_tail(u + u_offset, at, n) * (s + gv * s * (1.0f - s)), dg + dg_offset,
                at, n);
    store8_tail(d * gv * s, du + du_offset, at, n);
}
