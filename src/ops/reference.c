/* reference.c — plain-C versions of every op, accumulating in double.
 * Written for clarity, not speed: each is the formula in clora/lora.h,
 * loop by loop. */
#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

/* W[o][i] whatever the storage order. */
static float weight_at(const float *w, size_t o, size_t i, size_t in, size_t out,
                       clora_weight_layout layout)
{
    return layout == CLORA_WEIGHT_OUT_IN ? w[o * in + i] : w[i * out + o];
}

void clora_reference_linear_forward(float *y, const float *x, const float *weight, const float *bias,
                                    size_t n, size_t in, size_t out, clora_weight_layout layout)
{
    for (size_t row = 0; row < n; ++row)
        for (size_t o = 0; o < out; ++o) {
            double acc = bias ? bias[o] : 0.0;
            for (size_t i = 0; i < in; ++i)
                acc += (double)x[row * in + i] * weight_at(weight, o, i, in, out, layout);
            y[row * out + o] = (float)acc;
        }
}

void clora_reference_linear_backward(float *dx, float *d_weight, float *d_bias, const float *dy,
                                     const float *x, const float *weight, size_t n, size_t in,
                                     size_t out, clora_weight_layout layout)
{
    if (dx)
        for (size_t row = 0; row < n; ++row)
            for (size_t i = 0; i < in; ++i) {
                double acc = 0.0;
                for (size_t o = 0; o < out; ++o)
                    acc += (double)dy[row * out + o] * weight_at(weight, o, i, in, out, layout);
                dx[row * in + i] = (float)acc;
            }
    if (d_weight)
        for (size_t o = 0; o < out; ++o)
            for (size_t i = 0; i < in; ++i) {
                double acc = 0.0;
                for (size_t row = 0; row < n; ++row)
                    acc += (double)dy[row * out + o] * x[row * in + i];
                size_t at = layout == CLORA_WEIGHT_OUT_IN ? o * in + i : i * out + o;
                d_weight[at] = (float)(d_weight[at] + acc);
            }
    if (d_bias)
        for (size_t o = 0; o < out; ++o) {
            double acc = 0.0;
            for (size_t row = 0; row < n; ++row)
                acc += dy[row * out + o];
            d_bias[o] = (float)(d_bias[o] + acc);
        }
}

static uint32_t mix32(uint32_t v)
{
    v ^= v >> 16;
    v *= 0x7feb352du;
    v ^= v >> 15;
    v *= 0x846ca68bu;
    v ^= v >> 16;
    return v;
}

int clora_reference_dropout_keep(uint64_t seed, size_t row, size_t col, float p)
{
    uint32_t seed_lo = (uint32_t)(seed & 0xffffffffu), seed_hi = (uint32_t)(seed >> 32);
    uint32_t key = mix32(seed_lo ^ mix32(seed_hi ^ 0x85ebca6bu));
    uint32_t bits = mix32(mix32((uint32_t)col ^ 0x9e3779b9u) ^ mix32((uint32_t)row ^ key));
    uint32_t threshold = (uint32_t)floor((double)p * 16777216.0);
    return (bits >> 8) >= threshold;
}

/* What dropout multiplies x[row][i] by: 1 without dropout, else 0 or
 * 1 / (1 - p); also d drop(x) / dx. */
static double dropout_scale(const clora_lora_spec *spec, size_t row, size_t i)
{
    if (spec->dropout <= 0.0f)
        return 1.0;
    return clora_reference_dropout_keep(spec->dropout_seed, spec->dropout_row0 + row, i,
                                        spec->dropout)
               ? 1.0f / (1.0f - spec->dropout)
               : 0.0;
}

/* drop(x)[row][i] */
static double dropped_x(const float *x, size_t row, size_t i, size_t in,
                        const clora_lora_spec *spec)
{
    return x[row * in + i] * dropout_scale(spec, row, i);
}

/* h (n, r) = drop(x) · Aᵀ, in double. */
static void lora_down(double *h, const float *x, const float *lora_a, size_t n, size_t in, size_t r,
                      const clora_lora_spec *spec)
{
    for (size_t row = 0; row < n; ++row)
        for (size_t j = 0; j < r; ++j) {
            double acc = 0.0;
            for (size_t i = 0; i < in; ++i)
                acc += dropped_x(x, row, i, in, spec) * lora_a[j * in + i];
            h[row * r + j] = acc;
        }
}

clora_status clora_reference_lora_forward(float *y, float *h, const float *x, const float *weight,
                                          const float *bias, const float *lora_a,
                                          const float *lora_b, size_t n, size_t in, size_t out,
                                          size_t r, const clora_lora_spec *spec)
{
    double s = clora_lora_scale(spec->scale_mode, spec->alpha, r);
    double *hd = clora__malloc(n * r * sizeof *hd);
    if (!hd)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_reference_lora_forward: h");
    lora_down(hd, x, lora_a, n, in, r, spec);
    for (size_t row = 0; row < n; ++row)
        for (size_t o = 0; o < out; ++o) {
            double acc = bias ? bias[o] : 0.0;
            for (size_t i = 0; i < in; ++i)
                acc += (double)x[row * in + i] *
                       weight_at(weight, o, i, in, out, spec->weight_layout);
            double lora = 0.0;
            for (size_t j = 0; j < r; ++j)
                lora += hd[row * r + j] * lora_b[o * r + j];
            y[row * out + o] = (float)(acc + s * lora);
        }
    if (h)
        for (size_t k = 0; k < n * r; ++k)
            h[k] = (float)hd[k];
    free(hd);
    return CLORA_OK;
}

clora_status clora_reference_lora_backward(float *dx, float *d_lora_a, float *d_lora_b,
                                           const float *dy, const float *x, const float *weight,
                                           const float *lora_a, const float *lora_b, size_t n,
                                           size_t in, size_t out, size_t r,
                                           const clora_lora_spec *spec)
{
    double s = clora_lora_scale(spec->scale_mode, spec->alpha, r);
    double *h = clora__malloc(n * r * sizeof *h);
    double *g = clora__malloc(n * r * sizeof *g);
    if (!h || !g) {
        free(h);
        free(g);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_reference_lora_backward: h, g");
    }
    lora_down(h, x, lora_a, n, in, r, spec);
    for (size_t row = 0; row < n; ++row)
        for (size_t j = 0; j < r; ++j) {
            double acc = 0.0;
            for (size_t o = 0; o < out; ++o)
                acc += (double)dy[row * out + o] * lora_b[o * r + j];
            g[row * r + j] = s * acc;
        }
    if (d_lora_b)
        for (size_t o = 0; o < out; ++o)
            for (size_t j = 0; j < r; ++j) {
                double acc = 0.0;
                for (size_t row = 0; row < n; ++row)
                    acc += (double)dy[row * out + o] * h[row * r + j];
                d_lora_b[o * r + j] = (float)(d_lora_b[o * r + j] + s * acc);
            }
    if (d_lora_a)
        for (size_t j = 0; j < r; ++j)
            for (size_t i = 0; i < in; ++i) {
                double acc = 0.0;
                for (size_t row = 0; row < n; ++row)
                    acc += g[row * r + j] * dropped_x(x, row, i, in, spec);
                d_lora_a[j * in + i] = (float)(d_lora_a[j * in + i] + acc);
            }
    if (dx)
        for (size_t row = 0; row < n; ++row)
            for (size_t i = 0; i < in; ++i) {
                double frozen = 0.0, lora = 0.0;
                for (size_t o = 0; o < out; ++o)
                    frozen += (double)dy[row * out + o] *
                              weight_at(weight, o, i, in, out, spec->weight_layout);
                for (size_t j = 0; j < r; ++j)
                    lora += g[row * r + j] * lora_a[j * in + i];
                const double mask = dropout_scale(spec, row, i); /* d drop(x) / dx */
                dx[row * in + i] = (float)(frozen + mask * lora);
            }
    free(h);
    free(g);
    return CLORA_OK;
}

/* ---- DoRA (clora/dora.h) ---------------------------------------------------------- */

void clora_reference_dora_weight_norm(float *norm, const float *weight, const float *lora_a,
                                      const float *lora_b, size_t in, size_t out, size_t r,
                                      const clora_lora_spec *spec)
{
    const double s = lora_a ? clora_lora_scale(spec->scale_mode, spec->alpha, r) : 0.0;
    for (size_t o = 0; o < out; ++o) {
        double sum = 0.0;
        for (size_t i = 0; i < in; ++i) {
            double v = weight_at(weight, o, i, in, out, spec->weight_layout), delta = 0.0;
            for (size_t j = 0; lora_a && j < r; ++j)
                delta += (double)lora_b[o * r + j] * lora_a[j * in + i];
            v += s * delta;
            sum += v * v;
        }
        norm[o] = (float)sqrt(sum);
    }
}

/* The forward's pieces in double: c (out) = m / n, h (n, r), t (n, out),
 * and u (n, out) = drop(x) · Wᵀ, its base part, when not NULL. */
static clora_status dora_pieces(double *c, double *h, double *t, double *u, const float *x,
                                const float *weight, const float *lora_a, const float *lora_b,
                                const float *magnitude, size_t n, size_t in, size_t out, size_t r,
                                const clora_lora_spec *spec)
{
    float *norm = clora__malloc(out * sizeof *norm);
    if (!norm)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_reference_dora: norm");
    clora_reference_dora_weight_norm(norm, weight, lora_a, lora_b, in, out, r, spec);
    for (size_t o = 0; o < out; ++o)
        c[o] = (double)magnitude[o] / norm[o];
    free(norm);
    const double s = clora_lora_scale(spec->scale_mode, spec->alpha, r);
    lora_down(h, x, lora_a, n, in, r, spec);
    for (size_t row = 0; row < n; ++row)
        for (size_t o = 0; o < out; ++o) {
            double base = 0.0, lora = 0.0;
            for (size_t i = 0; i < in; ++i)
                base += dropped_x(x, row, i, in, spec) *
                        weight_at(weight, o, i, in, out, spec->weight_layout);
            for (size_t j = 0; j < r; ++j)
                lora += h[row * r + j] * lora_b[o * r + j];
            t[row * out + o] = base + s * lora;
            if (u)
                u[row * out + o] = base;
        }
    return CLORA_OK;
}

clora_status clora_reference_dora_forward(float *y, const float *x, const float *weight,
                                          const float *bias, const float *lora_a,
                                          const float *lora_b, const float *magnitude, size_t n,
                                          size_t in, size_t out, size_t r,
                                          const clora_lora_spec *spec)
{
    double *c = clora__malloc(out * sizeof *c), *h = clora__malloc(n * r * sizeof *h);
    double *t = clora__malloc(n * out * sizeof *t), *u = clora__malloc(n * out * sizeof *u);
    clora_status status = c && h && t && u ? CLORA_OK
                                           : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY,
                                                         "clora_reference_dora_forward");
    if (status == CLORA_OK)
        status = dora_pieces(c, h, t, u, x, weight, lora_a, lora_b, magnitude, n, in, out, r,
                             spec);
    for (size_t row = 0; status == CLORA_OK && row < n; ++row)
        for (size_t o = 0; o < out; ++o) {
            double base = bias ? bias[o] : 0.0;
            for (size_t i = 0; i < in; ++i)
                base += (double)x[row * in + i] *
                        weight_at(weight, o, i, in, out, spec->weight_layout);
            /* (c − 1) ⊙ u + c ⊙ (the LoRA part t − u) */
            const double rest = (c[o] - 1.0) * u[row * out + o] +
                                c[o] * (t[row * out + o] - u[row * out + o]);
            y[row * out + o] = (float)(base + rest);
        }
    free(c);
    free(h);
    free(t);
    free(u);
    return status;
}

clora_status clora_reference_dora_backward(float *dx, float *d_lora_a, float *d_lora_b,
                                           float *d_magnitude, const float *dy, const float *x,
                                           const float *weight, const float *lora_a,
                                           const float *lora_b, const float *magnitude, size_t n,
                                           size_t in, size_t out, size_t r,
                                           const clora_lora_spec *spec)
{
    double *c = clora__malloc(out * sizeof *c), *h = clora__malloc(n * r * sizeof *h);
    double *t = clora__malloc(n * out * sizeof *t), *g = clora__malloc(n * r * sizeof *g);
    float *norm = clora__malloc(out * sizeof *norm);
    clora_status status = c && h && t && g && norm
                              ? CLORA_OK
                              : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY,
                                            "clora_reference_dora_backward");
    if (status == CLORA_OK)
        status =
            dora_pieces(c, h, t, NULL, x, weight, lora_a, lora_b, magnitude, n, in, out, r, spec);
    if (status == CLORA_OK) {
        const double s = clora_lora_scale(spec->scale_mode, spec->alpha, r);
        clora_reference_dora_weight_norm(norm, weight, lora_a, lora_b, in, out, r, spec);
        for (size_t o = 0; d_magnitude && o < out; ++o) {
            double acc = 0.0;
            for (size_t row = 0; row < n; ++row)
                acc += (double)dy[row * out + o] * t[row * out + o];
            d_magnitude[o] = (float)(d_magnitude[o] + acc / norm[o]);
        }
        /* the LoRA branch sees e = c ⊙ dy */
        for (size_t row = 0; row < n; ++row)
            for (size_t j = 0; j < r; ++j) {
                double acc = 0.0;
                for (size_t o = 0; o < out; ++o)
                    acc += c[o] * dy[row * out + o] * lora_b[o * r + j];
                g[row * r + j] = s * acc;
            }
        for (size_t o = 0; d_lora_b && o < out; ++o)
            for (size_t j = 0; j < r; ++j) {
                double acc = 0.0;
                for (size_t row = 0; row < n; ++row)
                    acc += c[o] * dy[row * out + o] * h[row * r + j];
                d_lora_b[o * r + j] = (float)(d_lora_b[o * r + j] + s * acc);
            }
        for (size_t j = 0; d_lora_a && j < r; ++j)
            for (size_t i = 0; i < in; ++i) {
                double acc = 0.0;
                for (size_t row = 0; row < n; ++row)
                    acc += g[row * r + j] * dropped_x(x, row, i, in, spec);
                d_lora_a[j * in + i] = (float)(d_lora_a[j * in + i] + acc);
            }
        for (size_t row = 0; dx && row < n; ++row)
            for (size_t i = 0; i < in; ++i) {
                double plain = 0.0, through = 0.0; /* through the mask: rescaled base, LoRA */
                for (size_t o = 0; o < out; ++o) {
                    const double w = weight_at(weight, o, i, in, out, spec->weight_layout);
                    plain += (double)dy[row * out + o] * w;
                    through += (c[o] - 1.0) * dy[row * out + o] * w;
                }
                for (size_t j = 0; j < r; ++j)
                    through += g[row * r + j] * lora_a[j * in + i];
                const double mask = dropout_scale(spec, row, i);
                dx[row * in + i] = (float)(plain + mask * through);
            }
    }
    free(c);
    free(h);
    free(t);
    free(g);
    free(norm);
    return status;
}

/* Whether n weights of dtype are whole blocks of a type `allowed` takes. */
static clora_status check_packed(const char *op, const char *verb, clora_dtype dtype, size_t n,
                                 int allowed)
{
    if (!allowed)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: clora does not %s %s", op, verb,
                           clora_dtype_name(dtype));
    if (n % clora_dtype_block_size(dtype))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: %zu weights are not whole blocks of %zu (%s)", op, n,
                           clora_dtype_block_size(dtype), clora_dtype_name(dtype));
    return CLORA_OK;
}

clora_status clora_reference_dequantize(clora_dtype dtype, const void *src, size_t n, float *dst)
{
    static const char op[] = "clora_reference_dequantize";
    if ((!src || !dst) && n)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: NULL argument", op);
    clora_status status = check_packed(op, "dequantize", dtype, n, clora__can_dequantize(dtype));
    if (status == CLORA_OK)
        clora__dequantize(dtype, src, n, dst);
    return status;
}

clora_status clora_reference_quantize(clora_dtype dtype, const float *src, size_t n, void *dst)
{
    static const char op[] = "clora_reference_quantize";
    if ((!src || !dst) && n)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: NULL argument", op);
    clora_status status = check_packed(op, "quantize to", dtype, n, clora_dtype_can_quantize(dtype));
    if (status == CLORA_OK)
        clora__quantize(dtype, src, n, dst);
    return status;
}

void clora_reference_lora_embedding_forward(float *y, const int32_t *ids, const float *table,
                                            const float *lora_a, const float *lora_b, size_t n,
                                            size_t V, size_t C, size_t r, float scale)
{
    for (size_t t = 0; t < n; ++t) {
        const size_t id = (size_t)ids[t];
        for (size_t c = 0; c < C; ++c) {
            double acc = 0.0;
            for (size_t k = 0; k < r; ++k)
                acc += (double)lora_b[c * r + k] * lora_a[k * V + id];
            y[t * C + c] = (float)((double)table[id * C + c] + (double)scale * acc);
        }
    }
}

void clora_reference_lora_embedding_backward(float *d_lora_a, float *d_lora_b, const float *dy,
                                             const int32_t *ids, const float *lora_a,
                                             const float *lora_b, size_t n, size_t V, size_t C,
                                             size_t r, float scale, int padding)
{
    if (d_lora_b)
        for (size_t c = 0; c < C; ++c)
            for (size_t k = 0; k < r; ++k) {
                double acc = 0.0;
                for (size_t t = 0; t < n; ++t)
                    acc += (double)dy[t * C + c] * lora_a[k * V + (size_t)ids[t]];
                d_lora_b[c * r + k] = (float)(d_lora_b[c * r + k] + (double)scale * acc);
            }
    if (d_lora_a)
        for (size_t k = 0; k < r; ++k)
            for (size_t v = 0; v < V; ++v) {
                if ((int)v == padding)
                    continue;
                double acc = 0.0;
                for (size_t t = 0; t < n; ++t)
                    if ((size_t)ids[t] == v)
                        for (size_t c = 0; c < C; ++c)
                            acc += (double)lora_b[c * r + k] * dy[t * C + c];
                d_lora_a[k * V + v] = (float)(d_lora_a[k * V + v] + (double)scale * acc);
            }
}
