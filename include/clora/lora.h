/* clora/lora.h — the LoRA linear op: a frozen Linear plus a trainable rank-r path.
 *
 * Letters: N = rows, in = in_features, out = out_features, r = rank, s = scale.
 * Layout is PEFT's: lora_A (r, in), lora_B (out, r).
 *
 *     x  (N, in)    W (out, in) or (in, out), frozen    b (out), frozen
 *     A  (r, in)    B (out, r)                          trainable
 *
 *     h  = drop(x) · Aᵀ                       (N, r)
 *     y  = x · Wᵀ + b + s · h · Bᵀ            (N, out)
 *
 * Backward, given dy (N, out):
 *
 *     dB += s · dyᵀ · h                       (out, r)
 *     g   = s · dy · B                        (N, r)
 *     dA += gᵀ · drop(x)                      (r, in)
 *     dx  = dy · W + drop'(g · A)             (N, in)
 *
 * The frozen W and b get no gradient, no optimizer state and no W-sized
 * scratch. Frozen GEMMs run through CLBlast, the rank-r path in clora's own
 * kernels; reductions over N are deterministic.
 *
 * The seed's LoRALayer (A_seed (in, r), B_seed (r, out), y += alpha · x ·
 * A_seed · B_seed) is this op with A = A_seedᵀ, B = B_seedᵀ and
 * CLORA_SCALE_ALPHA.
 *
 * Dropout acts on the LoRA branch only: drop(x) = x ⊙ m / (1 - p), where the
 * keep mask m is a pure function of (dropout_seed, dropout_row0 + row,
 * column). Backward
 * regenerates it from the same seed, so no mask is stored; give each training
 * step its own seed, and forward and backward of one step the same one.
 * Conventions (outputs first, gradients added to, dx overwritten) are those
 * of clora/linear.h.
 */
#ifndef CLORA_LORA_H
#define CLORA_LORA_H

#include <stdint.h>

#include "clora/buffer.h"
#include "clora/linear.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define CLORA_MAX_RANK 256

typedef enum clora_scale_mode {
    CLORA_SCALE_ALPHA = 0,          /* s = alpha           (the seed's LoRALayer) */
    CLORA_SCALE_ALPHA_OVER_R = 1,   /* s = alpha / r       (PEFT's default) */
    CLORA_SCALE_ALPHA_OVER_SQRT_R = 2 /* s = alpha / sqrt(r) (rsLoRA) */
} clora_scale_mode;

/* How one LoRA layer computes; a plain value, copied by every call. */
typedef struct clora_lora_spec {
    float alpha;
    clora_scale_mode scale_mode;
    float dropout;                     /* p in [0, 1); 0 disables dropout */
    uint64_t dropout_seed;             /* selects the keep mask; see above */
    clora_weight_layout weight_layout; /* how the frozen W is stored */
    /* The row of the whole batch x's first row stands for: the mask of
     * row i is that of row dropout_row0 + i, so a batch split into parts
     * (micro-batches, processes) draws the masks it draws whole. */
    size_t dropout_row0;
} clora_lora_spec;

/* The scale s for a mode, alpha and rank (rank >= 1). */
float clora_lora_scale(clora_scale_mode mode, float alpha, size_t rank);

/* Forward: y (N, out) = x · Wᵀ + b + s · h · Bᵀ with h = drop(x) · Aᵀ.
 * h (N, r) receives the rank-r activation that backward needs; pass NULL at
 * inference to keep it in device scratch instead. bias may be NULL.
 * 1 <= r <= CLORA_MAX_RANK, taken from lora_a's shape. */
clora_status clora_lora_forward(clora_buffer *y, clora_buffer *h, const clora_buffer *x,
                                const clora_buffer *weight, const clora_buffer *bias,
                                const clora_buffer *lora_a, const clora_buffer *lora_b,
                                const clora_lora_spec *spec);

/* Backward, given dy (N, out) and forward's x and h:
 *   d_lora_a (r, in)  += gᵀ · drop(x)   (NULL to skip)
 *   d_lora_b (out, r) += s · dyᵀ · h    (NULL to skip)
 *   dx (N, in)         = dy · W + drop'(g · A)   (overwritten; NULL to skip)
 * spec must equal forward's, dropout seed included. */
clora_status clora_lora_backward(clora_buffer *dx, clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                 const clora_buffer *dy, const clora_buffer *x,
                                 const clora_buffer *h, const clora_buffer *weight,
                                 const clora_buffer *lora_a, const clora_buffer *lora_b,
                                 const clora_lora_spec *spec);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_LORA_H */
