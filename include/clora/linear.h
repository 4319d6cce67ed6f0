/* clora/linear.h — the Linear layer's forward and backward (GEMMs through CLBlast).
 *
 * Letters: N = rows (the product of all dimensions but the last, e.g. batch x
 * sequence), in = in_features, out = out_features.
 *
 *     x  (N, in)    W  (out, in) or (in, out)    b  (out)    y  (N, out)
 *
 *     y  = x · Wᵀ + b
 *     dx = dy · W           dW += dyᵀ · x          db += Σ_N dy
 *
 * A weight stored (in, out) — GPT-2's Conv1D, PEFT's fan_in_fan_out — is used
 * in place: the GEMM reads it transposed, nothing is copied on the host or
 * the device. Activations may have any number of leading dimensions, e.g.
 * (B, T, in); x, y, dx and dy must agree on them.
 *
 * Conventions of every clora op: outputs first, then inputs; parameter
 * gradients are *added to* (clear them with clora_buffer_fill(g, 0) to start
 * a step), activation gradients (dx) are overwritten; all buffers belong to
 * one device and the work is enqueued on its queue (call
 * clora_device_finish() or download to wait for it). Outputs must not
 * overlap inputs.
 */
#ifndef CLORA_LINEAR_H
#define CLORA_LINEAR_H

#include "clora/buffer.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum clora_weight_layout {
    CLORA_WEIGHT_OUT_IN = 0, /* W (out, in): PyTorch nn.Linear */
    CLORA_WEIGHT_IN_OUT = 1  /* W (in, out): GPT-2 Conv1D, PEFT fan_in_fan_out */
} clora_weight_layout;

/* y (N, out) = x (N, in) · Wᵀ + b. bias may be NULL. */
clora_status clora_linear_forward(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                                  const clora_buffer *bias, clora_weight_layout layout);

/* Backward of clora_linear_forward, given dy (N, out):
 *   dx (N, in)  = dy · W         (overwritten; NULL to skip)
 *   d_weight   += dyᵀ · x        (same shape as weight; NULL for a frozen W)
 *   d_bias     += Σ_N dy (out)   (NULL for a frozen or absent bias)
 * Reductions over N are deterministic: the same inputs give the same bits. */
clora_status clora_linear_backward(clora_buffer *dx, clora_buffer *d_weight, clora_buffer *d_bias,
                                   const clora_buffer *dy, const clora_buffer *x,
                                   const clora_buffer *weight, clora_weight_layout layout);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_LINEAR_H */
