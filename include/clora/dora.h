/* clora/dora.h — DoRA (weight-decomposed LoRA) on the LoRA linear op, as
 * PEFT computes it (PEFT's use_dora).
 *
 * Letters as in clora/lora.h, plus m (out), the trainable magnitude, and
 * n (out), the norm of the adapted weight per output feature j:
 *
 *     n_j = || W_j + s · (B · A)_j ||          (W_j: output feature j's weights)
 *     c   = m / n                              (out)
 *     h   = drop(x) · Aᵀ                       (N, r)
 *     t   = drop(x) · Wᵀ + s · h · Bᵀ          (N, out)
 *     y   = x · Wᵀ + b + (c − 1) ⊙ (drop(x) · Wᵀ) + c ⊙ (s · h · Bᵀ)
 *         = (x − drop(x)) · Wᵀ + c ⊙ t + b       (N, out), c broadcast over rows
 *
 * Without dropout that is y = c ⊙ t + b = c ⊙ (x · (W + s·B·A)ᵀ) + b, the
 * weight m ⊙ (W + s·B·A) / n; with dropout, PEFT's form: the dropped input
 * feeds the LoRA branch and the rescaling of the base output, the plain
 * input the base output itself. The norm is a constant to backward (PEFT detaches
 * it, as the DoRA paper advises), so, with e = c ⊙ dy:
 *
 *     dm += Σ_rows dy ⊙ t / n                 (out)
 *     dB += s · eᵀ · h,  g = s · e · B,  dA += gᵀ · drop(x)
 *     dx  = dy · W + drop'(((c − 1) ⊙ dy) · W + g · A)
 *
 * The bias is not rescaled. The frozen W may be F32, F16 or BF16 (the norm
 * reads it as stored); block-quantized weights are refused. Conventions
 * (outputs first, gradients added to, dx overwritten, spec as forward's)
 * are those of clora/lora.h.
 */
#ifndef CLORA_DORA_H
#define CLORA_DORA_H

#include "clora/buffer.h"
#include "clora/lora.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* norm (out) = || W_j + s · (B · A)_j || for each output feature j, s from
 * spec; lora_a and lora_b both NULL: || W_j || (the magnitude a new DoRA
 * adapter starts from). */
clora_status clora_dora_weight_norm(clora_buffer *norm, const clora_buffer *weight,
                                    const clora_buffer *lora_a, const clora_buffer *lora_b,
                                    const clora_lora_spec *spec);

/* Forward (above). Writes y (N, out), and h (N, r), t (N, out) and
 * norm (out), which backward needs; bias may be NULL. */
clora_status clora_dora_forward(clora_buffer *y, clora_buffer *h, clora_buffer *t,
                                clora_buffer *norm, const clora_buffer *x,
                                const clora_buffer *weight, const clora_buffer *bias,
                                const clora_buffer *lora_a, const clora_buffer *lora_b,
                                const clora_buffer *magnitude, const clora_lora_spec *spec);

/* Backward (above), given dy (N, out) and forward's x, h, t and norm; any
 * of dx, d_lora_a, d_lora_b, d_magnitude (out) may be NULL to skip. */
clora_status clora_dora_backward(clora_buffer *dx, clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                 clora_buffer *d_magnitude, const clora_buffer *dy,
                                 const clora_buffer *x, const clora_buffer *h,
                                 const clora_buffer *t, const clora_buffer *norm,
                                 const clora_buffer *weight, const clora_buffer *lora_a,
                                 const clora_buffer *lora_b, const clora_buffer *magnitude,
                                 const clora_lora_spec *spec);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_DORA_H */
