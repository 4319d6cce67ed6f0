/* clora/reference.h — plain-C reference implementations of every op.
 *
 * Slow, obviously correct host versions of the device ops, accumulating in
 * double: the yardstick the tests and `clora selfcheck` compare the device
 * against. Shapes and conventions are those of clora/linear.h and
 * clora/lora.h, on contiguous row-major host arrays. Gradients are added to,
 * dx is overwritten, NULL outputs are skipped — as on the device. The LoRA
 * references need O(n·r) temporaries and return CLORA_ERR_OUT_OF_HOST_MEMORY
 * when those cannot be allocated.
 */
#ifndef CLORA_REFERENCE_H
#define CLORA_REFERENCE_H

#include <stddef.h>
#include <stdint.h>

#include "clora/linear.h"
#include "clora/lora.h"
#include "clora/dtype.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* y (n, out) = x (n, in) · Wᵀ + b; b may be NULL. */
void clora_reference_linear_forward(float *y, const float *x, const float *weight, const float *bias,
                                    size_t n, size_t in, size_t out, clora_weight_layout layout);

/* dx (n, in) = dy · W;  d_weight += dyᵀ · x;  d_bias += Σ_n dy. */
void clora_reference_linear_backward(float *dx, float *d_weight, float *d_bias, const float *dy,
                                     const float *x, const float *weight, size_t n, size_t in,
                                     size_t out, clora_weight_layout layout);

/* n weights of a packed dtype (a whole number of blocks; clora/dtype.h)
 * at src to float32: the definition the device's dequantize kernels
 * follow bit for bit. CLORA_ERR_DTYPE_MISMATCH for a type clora does not
 * store, CLORA_ERR_INVALID_ARGUMENT when n is no whole number of blocks. */
clora_status clora_reference_dequantize(clora_dtype dtype, const void *src, size_t n, float *dst);

/* n finite float32 values to F16, BF16, Q8_0, Q4_0 or Q4_1 (rounded as
 * ggml's reference quantizers round; see clora_dtype_can_quantize()) at
 * dst, clora_dtype_bytes(dtype, n) bytes. */
clora_status clora_reference_quantize(clora_dtype dtype, const float *src, size_t n, void *dst);

/* The dropout keep decision for element (row, col) of x: 1 keeps, 0 drops.
 * The definition every clora device kernel follows, on 32-bit unsigned
 * arithmetic with mix(v) = v ^= v >> 16, v *= 0x7feb352d, v ^= v >> 15,
 * v *= 0x846ca68b, v ^= v >> 16:
 *     key  = mix(seed_lo ^ mix(seed_hi ^ 0x85ebca6b))
 *     bits = mix(mix(col ^ 0x9e3779b9) ^ mix(row ^ key))
 *     keep = (bits >> 8) >= floor(p * 2^24)
 * where seed_lo / seed_hi are the low / high 32 bits of the seed. */
int clora_reference_dropout_keep(uint64_t seed, size_t row, size_t col, float p);

/* y (n, out) = x · Wᵀ + b + s · h · Bᵀ,  h (n, r) = drop(x) · Aᵀ.
 * h may be NULL. A (r, in), B (out, r). */
clora_status clora_reference_lora_forward(float *y, float *h, const float *x, const float *weight,
                                          const float *bias, const float *lora_a,
                                          const float *lora_b, size_t n, size_t in, size_t out,
                                          size_t r, const clora_lora_spec *spec);

/* d_lora_a += gᵀ · drop(x), d_lora_b += s · dyᵀ · h, dx = dy · W + drop'(g · A),
 * g = s · dy · B; h is recomputed from x. */
clora_status clora_reference_lora_backward(float *dx, float *d_lora_a, float *d_lora_b,
                                           const float *dy, const float *x, const float *weight,
                                           const float *lora_a, const float *lora_b, size_t n,
                                           size_t in, size_t out, size_t r,
                                           const clora_lora_spec *spec);

/* DoRA (clora/dora.h). norm (out) = ||W_j + s·(B·A)_j|| (lora_a and
 * lora_b NULL: ||W_j||). */
void clora_reference_dora_weight_norm(float *norm, const float *weight, const float *lora_a,
                                      const float *lora_b, size_t in, size_t out, size_t r,
                                      const clora_lora_spec *spec);
/* y (n, out) = x · Wᵀ + b + (c − 1) ⊙ (drop(x) · Wᵀ) + c ⊙ (s · h · Bᵀ),
 * c = m / norm. */
clora_status clora_reference_dora_forward(float *y, const float *x, const float *weight,
                                          const float *bias, const float *lora_a,
                                          const float *lora_b, const float *magnitude, size_t n,
                                          size_t in, size_t out, size_t r,
                                          const clora_lora_spec *spec);
/* d_magnitude += Σ dy ⊙ t / norm; dA, dB as the LoRA op's on c ⊙ dy;
 * dx = dy · W + drop'(((c − 1) ⊙ dy) · W + g · A). Any output may be NULL. */
clora_status clora_reference_dora_backward(float *dx, float *d_lora_a, float *d_lora_b,
                                           float *d_magnitude, const float *dy, const float *x,
                                           const float *weight, const float *lora_a,
                                           const float *lora_b, const float *magnitude, size_t n,
                                           size_t in, size_t out, size_t r,
                                           const clora_lora_spec *spec);

/* LoRA on an embedding table (PEFT's lora.Embedding), ids (n) in [0, V):
 * y (n, C) = table (V, C)[ids] + s · B (C, r) · A (r, V)[:, ids]. */
void clora_reference_lora_embedding_forward(float *y, const int32_t *ids, const float *table,
                                            const float *lora_a, const float *lora_b, size_t n,
                                            size_t V, size_t C, size_t r, float scale);

/* d_lora_b += s · Σ_n dy[n] ⊗ A[:, ids[n]], d_lora_a[:, ids[n]] += s · Bᵀ ·
 * dy[n] for every n whose id is not `padding` (-1: none); either may be NULL. */
void clora_reference_lora_embedding_backward(float *d_lora_a, float *d_lora_b, const float *dy,
                                             const int32_t *ids, const float *lora_a,
                                             const float *lora_b, size_t n, size_t V, size_t C,
                                             size_t r, float scale, int padding);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_REFERENCE_H */
