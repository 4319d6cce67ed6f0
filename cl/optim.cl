/* optim.cl - optimizer updates over the trainable-parameter allocation,
 * one launch for all parameters; the same arithmetic order as PyTorch.
 *
 * Kernels (n elements; global (n)):
 *   adamw_step  decoupled weight decay, then Adam with bias correction:
 *               p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g;
 *               p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)
 *   sgd_step    g += wd*p; buf = g (first step) or momentum*buf + (1-dampening)*g;
 *               g = g + momentum*buf (nesterov) or buf; p -= lr*g
 *   clip_coefficient  state[1] = sqrt(state[0]) (the global norm),
 *                     state[2] = min(1, max_norm / (norm + 1e-6)); one work-item
 */

__kernel void adamw_step(__global float *param, __global const float *grad, __global float *m,
                         __global float *v, const uint n, const float lr, const float beta1,
                         const float beta2, const float eps, const float weight_decay,
                         const float bias_correction1, const float bias_correction2_sqrt)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float g = grad[i];
    float p = param[i] * (1.0f - lr * weight_decay);
    const float mi = m[i] * beta1 + g * (1.0f - beta1);
    const float vi = v[i] * beta2 + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrt(vi) / bias_correction2_sqrt + eps;
    p -= (lr / bias_correction1) * (mi / denom);
    param[i] = p;
}

__kernel void sgd_step(__global float *param, __global const float *grad, __global float *buf,
                       const uint n, const float lr, const float momentum, const float dampening,
                       const float weight_decay, const uint nesterov, const uint first)
{
    const uint i = get_global_id(0);
    if (i >= n)
        return;
    const float p = param[i];
    float g = grad[i];
    if (weight_decay != 0.0f)
        g = g + weight_decay * p;
    if (momentum != 0.0f) {
        const float b = first ? g : buf[i] * momentum + (1.0f - dampening) * g;
        buf[i] = b;
        g = nesterov ? g + momentum * b : b;
    }
    param[i] = p - lr * g;
}

__kernel void clip_coefficient(__global float *state, const float max_norm)
{
    if (get_global_id(0) != 0)
        return;
    const float norm = sqrt(state[0]);
    const float coef = max_norm / (norm + 1e-6f);
    state[1] = norm;
    state[2] = coef < 1.0f ? coef : 1.0f;
}
