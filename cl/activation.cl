/* activation.cl - elementwise nodes: activations and dropout.
 *
 * Kernels (n = elements; offsets in elements; global (n)):
 *   activation_forward   y = f(x)
 *   activation_backward  dx = dy * f'(x)   (tanh uses y = tanh(x))
 *   dropout_apply        y = x * mask(row, col) / (1 - p) over (rows, cols);
 *                        the same call serves forward (x) and backward (dy)
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

static float sigmoid(const float x)
{
    return 1.0f / (1.0f + exp(-x));
}

__kernel void activation_forward(__global float *y, const uint y_offset,
                                 __global const float *x, const uint x_offset,
                                 const uint n, const uint kind)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float v = x[x_offset + i];
    float r;
    switch (kind) {
    case KIND_RELU:
        r = v > 0.0f ? v : 0.0f;
        break;
    case KIND_GELU:
        r = 0.5f * v * (1.0f + erf(v * SQRT_HALF));
        break;
    case KIND_GELU_TANH:
        r = 0.5f * v * (1.0f + tanh(SQRT_2_OVER_PI * (v + GELU_C * v * v * v)));
        break;
    case KIND_SILU:
        r = v * sigmoid(v);
        break;
    default:
        r = tanh(v);
        break;
    }
    y[y_offset + i] = r;
}

__kernel void activation_backward(__global float *dx, const uint dx_offset,
                                  __global const float *dy, const uint dy_offset,
                                  __global const float *x, const uint x_offset,
                                  __global const float *y, const uint y_offset,
                                  const uint n, const uint kind)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float v = x[x_offset + i];
    float d;
    switch (kind) {
    case KIND_RELU:
        d = v > 0.0f ? 1.0f : 0.0f;
        break;
    case KIND_GELU:
        d = 0.5f * (1.0f + erf(v * SQRT_HALF)) + v * INV_SQRT_2PI * exp(-0.5f * v * v);
        break;
    case KIND_GELU_TANH: {
        const float inner = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
        const float t = tanh(inner);
        d = 0.5f * (1.0f + t) +
            0.5f * v * (1.0f - t * t) * SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
        break;
    }
    case KIND_SILU: {
        const float s = sigmoid(v);
        d = s * (1.0f + v * (1.0f - s));
        break;
    }
    default: {
        const float t = y[y_offset + i];
        d = 1.0f - t * t;
        break;
    }
    }
    dx[dx_offset + i] = dy[dy_offset + i] * d;
}

__kernel void dropout_apply(__global float *y, const uint y_offset,
                            __global const float *x, const uint x_offset,
                            const uint rows, const uint cols,
                            const uint seed_lo, const uint seed_hi, const uint threshold,
                            const float scale)
{
    const uint col = get_global_id(0);
    const uint row = get_global_id(1);
    if (col >= cols || row >= rows)
        return;
    const uint at = row * cols + col;
    y[y_offset + at] = dropped(x[x_offset + at], seed_key(seed_lo, seed_hi), row, col, threshold,
                               scale);
}
