/* ops.h — what the ops layer's sources share and nn and train call: frozen
 * GEMMs (blas.c, the only file that includes CLBlast) and CLBlast's tuning,
 * the Linear and rank-r pieces, and the host-side launchers of every other
 * kernel family in cl/. Ops know buffers and devices (core), nothing of
 * models. Letters: N rows, C features, B batch, T tokens, H heads, D per
 * head. */
#ifndef CLORA_OPS_H
#define CLORA_OPS_H

#include <math.h>

#include "clora/dora.h"
#include "clora/linear.h"
#include "clora/loss.h"
#include "clora/lora.h"
#include "clora/reference.h"
#include "core/core.h"

/* ---- frozen GEMMs (blas.c) -------------------------------------------------- */

/* C (m, n) = alpha · op(A) · op(B) + beta · C, row-major; offsets and leading
 * dimensions in elements. */
clora_status clora__sgemm(clora_device *device, int trans_a, int trans_b, size_t m, size_t n,
                          size_t k, float alpha, cl_mem a, size_t a_offset, size_t lda, cl_mem b,
                          size_t b_offset, size_t ldb, float beta, cl_mem c, size_t c_offset,
                          size_t ldc);

/* count GEMMs C_i = alpha * op(A_i) * op(B_i) + beta * C_i, row-major, the
 * i-th operands `stride` elements after the (i-1)-th. */
clora_status clora__sgemm_batched(clora_device *device, int trans_a, int trans_b, size_t m,
                                  size_t n, size_t k, float alpha, cl_mem a, size_t a_offset,
                                  size_t lda, size_t a_stride, cl_mem b, size_t b_offset,
                                  size_t ldb, size_t b_stride, float beta, cl_mem c,
                                  size_t c_offset, size_t ldc, size_t c_stride, size_t count);

/* Hands CLBlast `count` tuning parameters for one of its kernels ("Xgemm",
 * "XgemmDirect", "Copy", ...) in single precision on `device`; CLBlast
 * wants every parameter of the kernel. */
clora_status clora__clblast_override(cl_device_id device, const char *kernel, size_t count,
                                     const char **names, const size_t *values);
/* Drops CLBlast's compiled programs, process-wide (not the parameters
 * given through clora__clblast_override: CLBlast keeps those). */
void clora__clblast_clear_cache(void);

/* ---- CLBlast tuning parameters (tuning.c) ------------------------------------ */

/* Applies the device's tuning at open: CLORA_TUNING, the cache file or
 * clora's shipped parameters (see clora_device_set_tuning); fills
 * dev->info.tuning. device_open.c calls it for every device it opens. */
clora_status clora__tuning_open(clora_device *device);

/* ---- Linear pieces the LoRA op reuses (linear.c) ------------------------------ */

/* Checks x, weight and an optional bias-shaped buffer for a Linear and
 * returns in and out. */
clora_status clora__linear_dims(const char *op, const clora_buffer *x, const clora_buffer *weight,
                                const char *bias_name, const clora_buffer *bias,
                                clora_weight_layout layout, size_t *in, size_t *out);
/* y (N, out) = x · Wᵀ + beta · y */
clora_status clora__gemm_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                              clora_weight_layout layout, float beta);
/* dx (N, in) = dy · W + beta · dx */
clora_status clora__gemm_dy_w(clora_buffer *dx, const clora_buffer *dy, const clora_buffer *weight,
                              clora_weight_layout layout, float beta);

/* ---- packed frozen weights (packed.c) ---------------------------------------------- */

/* clora__gemm_x_wt and clora__gemm_dy_w for a packed weight: dequantized
 * band by band into the device's dequantize tile, each band an SGEMM, or
 * fused for a few rows of x (clora__packed_fused). */
clora_status clora__packed_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                                clora_weight_layout layout, float beta);
clora_status clora__packed_dy_w(clora_buffer *dx, const clora_buffer *dy, const clora_buffer *weight,
                                clora_weight_layout layout, float beta);
/* 1 when y = x · Wᵀ for `rows` rows of x runs as the fused kernel. */
int clora__packed_fused(const clora_device *device, const clora_buffer *weight, size_t rows,
                        clora_weight_layout layout);
/* y (n, cols) = rows [row0, row0 + n) of a packed weight as float32. */
clora_status clora__dequantize_rows(clora_buffer *y, const clora_buffer *weight, size_t row0,
                                    size_t n);
/* y (N, C) = rows of a packed table picked by ids (checked by the caller). */
clora_status clora__embedding_forward_packed(clora_buffer *y, const clora_buffer *weight,
                                             const clora_buffer *ids);
/* Sets device->packed_fused_rows at open (CLORA_PACKED_FUSED_ROWS overrides). */
clora_status clora__packed_choose(clora_device *device);

/* W += scale * B * A (lora.c): merging an adapter into its base weight. */
clora_status clora__lora_add_delta(clora_buffer *weight, clora_weight_layout layout,
                                   const clora_buffer *lora_a, const clora_buffer *lora_b,
                                   float scale);

/* The dropout mask's parameters as the rank-r and DoRA kernels take them
 * (their last five arguments). */
typedef struct clora__dropout_args {
    cl_uint seed_lo, seed_hi, threshold;
    float scale;  /* 1 / (1 - p) */
    cl_uint row0; /* the whole batch's row of the first row */
} clora__dropout_args;

static inline clora__dropout_args clora__dropout_args_of(const clora_lora_spec *spec)
{
    clora__dropout_args d;
    d.seed_lo = (cl_uint)(spec->dropout_seed & 0xffffffffu);
    d.seed_hi = (cl_uint)(spec->dropout_seed >> 32);
    d.threshold = (cl_uint)floor((double)spec->dropout * 16777216.0);
    d.scale = spec->dropout > 0.0f ? 1.0f / (1.0f - spec->dropout) : 1.0f;
    d.row0 = (cl_uint)spec->dropout_row0;
    return d;
}

static inline void clora__arg_dropout(clora__args *a, const clora__dropout_args *drop)
{
    clora__arg_uint(a, drop->seed_lo);
    clora__arg_uint(a, drop->seed_hi);
    clora__arg_uint(a, drop->threshold);
    clora__arg_float(a, drop->scale);
    clora__arg_uint(a, drop->row0);
}

/* ---- elementwise (elementwise.c) ------------------------------------------------ */

/* Activation functions; the values are cl/activation.cl's KIND_* codes. */
typedef enum clora__activation {
    CLORA__ACTIVATION_RELU = 0,
    CLORA__ACTIVATION_GELU = 1,      /* 0.5·x·(1 + erf(x/√2)) */
    CLORA__ACTIVATION_GELU_TANH = 2, /* PyTorch GELU(approximate="tanh") */
    CLORA__ACTIVATION_SILU = 3,
    CLORA__ACTIVATION_TANH = 4
} clora__activation;

/* y = f(x), elementwise (same number of elements). */
clora_status clora__activation_forward(clora_buffer *y, const clora_buffer *x,
                                       clora__activation activation);
/* dx = dy · f'(x); tanh reads y = f(x). */
clora_status clora__activation_backward(clora_buffer *dx, const clora_buffer *dy,
                                        const clora_buffer *x, const clora_buffer *y,
                                        clora__activation activation);
/* out = in * mask(seed) / (1 - p), keyed (row0 + row, col) over in's
 * (rows, cols); the same call regenerates the mask for backward. out may
 * be in. */
clora_status clora__dropout(clora_buffer *out, const clora_buffer *in, uint64_t seed, float p,
                           size_t row0);
/* out = a + b elementwise (same number of elements); out may be a or b. */
clora_status clora__add(clora_buffer *out, const clora_buffer *a, const clora_buffer *b);

/* h = silu(g) · u elementwise (Llama's MLP; same numbers of elements). */
clora_status clora__swiglu_forward(clora_buffer *h, const clora_buffer *g, const clora_buffer *u);
/* dg = dh · u · silu'(g), du = dh · silu(g). */
clora_status clora__swiglu_backward(clora_buffer *dg, clora_buffer *du, const clora_buffer *dh,
                                    const clora_buffer *g, const clora_buffer *u);

/* ---- LayerNorm and RMSNorm (norm.c) --------------------------------------------------------- */

/* y (N, C) = (x - mean) * rstd * weight (C) + bias (C), saving mean (N)
 * and rstd (N) for backward. */
clora_status clora__layer_norm_forward(clora_buffer *y, clora_buffer *mean, clora_buffer *rstd,
                                       const clora_buffer *x, const clora_buffer *weight,
                                       const clora_buffer *bias, float eps);
/* d_weight (C) += sum_n dy · xhat and d_bias (C) += sum_n dy where not
 * NULL (rows in order: deterministic); dx (N, C) when not NULL. */
clora_status clora__layer_norm_backward(clora_buffer *dx, clora_buffer *d_weight,
                                        clora_buffer *d_bias, const clora_buffer *dy,
                                        const clora_buffer *x, const clora_buffer *weight,
                                        const clora_buffer *mean, const clora_buffer *rstd);

/* y (N, C) = x * rstd * weight (C), rstd (N) = 1 / sqrt(mean(x^2) + eps)
 * saved for backward (Llama's RMSNorm). */
clora_status clora__rms_norm_forward(clora_buffer *y, clora_buffer *rstd, const clora_buffer *x,
                                     const clora_buffer *weight, float eps);
/* d_weight (C) += sum_n dy · x · rstd when not NULL (rows in order); dx
 * (N, C) when not NULL. */
clora_status clora__rms_norm_backward(clora_buffer *dx, clora_buffer *d_weight,
                                      const clora_buffer *dy, const clora_buffer *x,
                                      const clora_buffer *weight, const clora_buffer *rstd);

/* ---- embedding (embedding.c) ------------------------------------------------------ */

/* y (N, C) = weight (V, C) rows picked by int32 ids (N), each id checked to
 * lie in [0, V) first (the message names the table `name`). */
clora_status clora__embedding_forward(clora_buffer *y, const clora_buffer *weight,
                                      const clora_buffer *ids, const char *name);
/* d_weight (V, C) += dy (N, C) rows scattered by id, in order (no atomics). */
clora_status clora__embedding_backward(clora_buffer *d_weight, const clora_buffer *dy,
                                       const clora_buffer *ids);

/* ---- LoRA on an embedding table (lora_embedding.c) ----------------------------------- */

/* y (N, C) += s · B (C, r) · A (r, V)[:, ids] after the lookup of the
 * frozen table wrote y (ids checked by it). */
clora_status clora__lora_embedding_forward(clora_buffer *y, const clora_buffer *ids,
                                           const clora_buffer *lora_a,
                                           const clora_buffer *lora_b, float scale);
/* d_lora_b (C, r) += s · Σ_n dy[n] ⊗ A[:, ids[n]] and d_lora_a (r, V)
 * [:, ids[n]] += s · Bᵀ · dy[n], n in order (deterministic, no atomics);
 * ids equal to padding get no gradient (-1: none); NULL gradients are
 * skipped. */
clora_status clora__lora_embedding_backward(clora_buffer *d_lora_a, clora_buffer *d_lora_b,
                                            const clora_buffer *dy, const clora_buffer *ids,
                                            const clora_buffer *lora_a,
                                            const clora_buffer *lora_b, float scale,
                                            int padding);

/* ---- attention (attention.c) -------------------------------------------------------- */

/* The attention core's buffers, kept from forward for backward; an
 * attention node owns one. H query heads share G key/value heads (G
 * divides H; G = H without grouping): query heads g·H/G .. (g+1)·H/G - 1
 * read key/value head g. Those H/G heads lie next to each other, so each
 * product runs as one GEMM per (batch, group) of H/G·T rows, and key and
 * value heads are never repeated. */
typedef struct clora__attention {
    size_t B, T, H, G, D;      /* of the last prepare */
    clora_buffer *q;           /* (B, H, T, D): the caller fills q, k, v after prepare */
    clora_buffer *k, *v;       /* (B, G, T, D) */
    clora_buffer *p;           /* (B, H, T, T) softmax probabilities */
    clora_buffer *p_dropped;   /* (B, H, T, T) drop(P), while dropout is on */
    clora_buffer *ctx;         /* (B, H, T, D) drop(P)·V, during forward only */
    clora_buffer *dq;          /* (B, H, T, D): backward's results */
    clora_buffer *dk, *dv;     /* (B, G, T, D) */
    clora_buffer *dctx;        /* (B, H, T, D) */
    clora_buffer *dp;          /* (B, H, T, T) */
    float dropout;             /* the probability dropout the last forward applied */
    uint64_t dropout_seed;
    size_t first_example;      /* the whole batch's example of b = 0, for the masks */
} clora__attention;

/* Sizes q (B, H, T, D), k and v (B, G, T, D) for the next forward. */
clora_status clora__attention_prepare(clora__attention *att, clora_device *device, size_t B,
                                      size_t T, size_t H, size_t G, size_t D);
/* merged (B, T, H·D) = the heads of drop(softmax(Q·Kᵀ/√D + mask))·V, keys
 * j > i masked when causal, and keys where the int32 (B, T) mask is 0 (no
 * mask: none); dropout p (0: off) keyed by dropout_seed and by each
 * probability's row in the whole batch, b = 0 being example first_example. */
clora_status clora__attention_forward(clora__attention *att, clora_buffer *merged,
                                      const clora_buffer *mask, int causal, float dropout,
                                      uint64_t dropout_seed, size_t first_example);
/* dq, dk, dv (B, H, T, D) from d_merged (B, T, H·D), for the last forward. */
clora_status clora__attention_backward(clora__attention *att, const clora_buffer *d_merged);
/* Frees the buffers (the sizes go with them). */
void clora__attention_release(clora__attention *att);
/* Recycles backward's buffers (dq, dk, dv and the intermediates). */
void clora__attention_release_grads(clora__attention *att);

/* out (B, H, T, D) = columns [col0, col0 + H·D) of the rows of in (B·T, ld). */
clora_status clora__heads_split(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D);
/* Columns [col0, col0 + H·D) of the rows of out (B·T, ld) = in (B, H, T, D). */
clora_status clora__heads_merge(clora_buffer *out, const clora_buffer *in, size_t ld, size_t col0,
                                size_t B, size_t T, size_t H, size_t D);

/* ---- rotary position embeddings (rope.c) -------------------------------------------------- */

typedef enum clora__rope_scaling {
    CLORA__ROPE_DEFAULT = 0,
    CLORA__ROPE_LLAMA3 = 1 /* Llama 3.1's frequency rescaling */
} clora__rope_scaling;

typedef struct clora__rope_config {
    float theta;                   /* rope_theta */
    clora__rope_scaling scaling;
    double factor, low_freq_factor, high_freq_factor; /* llama3 */
    size_t original_max_positions; /* llama3: original_max_position_embeddings */
    const float *freq_factors;     /* (D/2) divisors of the frequencies (GGUF's rope_freqs), or
                                      NULL; borrowed */
} clora__rope_config;

/* inv_freq (D/2) of head size D, as transformers computes them in float32
 * (then divided by freq_factors, as llama.cpp does, when given). */
void clora__rope_frequencies(float *inv_freq, size_t D, const clora__rope_config *config);
/* Rotates x (B, H, T, D) in place, in rotate-half layout, by the int32
 * positions (B, T) times inv_freq (D/2); inverse: by minus the angle (the
 * rotation's transpose, for backward). */
clora_status clora__rope(clora_buffer *x, const clora_buffer *positions,
                         const clora_buffer *inv_freq, int inverse);

/* ---- the key/value cache of generation (kv_cache.c) ------------------------------------- */

/* The largest head cached attention handles (cl/kv_cache.cl's MAX_HEAD). */
#define CLORA__MAX_CACHED_HEAD 256

/* cache (B, G, S, D)[b, :, lengths[b] + t] = src (B, G, T, D)[b, :, t] for t <
 * counts[b] (int32 (B) each; positions past S are dropped). */
clora_status clora__cache_write(clora_buffer *cache, const clora_buffer *src,
                                const clora_buffer *lengths, const clora_buffer *counts);
/* out (B, T, H·D) = attention of q (B, H, T, D) over the cached keys and
 * values (B, G, S, D): query t of row b sees keys 0 .. lengths[b] + t, its
 * head h reading key/value head h / (H / G); scale 1/√D. */
clora_status clora__cached_attention(clora_buffer *out, const clora_buffer *q,
                                     const clora_buffer *keys, const clora_buffer *values,
                                     const clora_buffer *lengths);
/* out (B, C) = in (B, T, C) at each row's last new token, counts[b] - 1. */
clora_status clora__last_rows(clora_buffer *out, const clora_buffer *in,
                              const clora_buffer *counts);

/* ---- pooling (pooling.c) -------------------------------------------------------------- */

/* y (B, C) = mean over t of x (B, T, C) where the int32 (B, T) mask is not
 * 0 (every t when mask is NULL). */
clora_status clora__mean_pool_forward(clora_buffer *y, const clora_buffer *x,
                                      const clora_buffer *mask);
/* dx (B, T, C) = dy[b] / kept_b where kept, else 0. */
clora_status clora__mean_pool_backward(clora_buffer *dx, const clora_buffer *dy,
                                       const clora_buffer *mask);
/* y (B, C) = x (B, T, C) at each row's last kept token: the largest t whose
 * mask is not 0 (0 when none is; T - 1 when mask is NULL). */
clora_status clora__last_token_pool_forward(clora_buffer *y, const clora_buffer *x,
                                            const clora_buffer *mask);
/* dx (B, T, C) = dy[b] at that token, 0 elsewhere. */
clora_status clora__last_token_pool_backward(clora_buffer *dx, const clora_buffer *dy,
                                             const clora_buffer *mask);

/* ---- sums (reduce.c) ---------------------------------------------------------------- */

/* out[out_offset] = scale * sum of x (or of its squares), deterministically. */
clora_status clora__sum(clora_device *device, cl_mem out, size_t out_offset, const clora_buffer *x,
                        int square, float scale);
/* x *= factor[factor_index], on the device. */
clora_status clora__scale_by(clora_buffer *x, const clora_buffer *factor, size_t factor_index);

/* ---- optimizer updates (optim.c) -------------------------------------------------------- */

typedef struct clora__adamw_args {
    float beta1, beta2, eps, weight_decay;
    float bias_correction1;      /* 1 - beta1^t */
    float sqrt_bias_correction2; /* sqrt(1 - beta2^t) */
} clora__adamw_args;

/* One AdamW step (torch.optim.AdamW's arithmetic) of params from grads,
 * with moments m and v; all four of the same size. */
clora_status clora__adamw_update(const clora__adamw_args *args, clora_buffer *params,
                                 clora_buffer *grads, clora_buffer *m, clora_buffer *v, float lr);

typedef struct clora__sgd_args {
    float momentum, dampening, weight_decay;
    int nesterov;
    int first_step; /* the momentum buffer starts as the gradient */
} clora__sgd_args;

/* One SGD step (torch.optim.SGD's arithmetic); momentum may be NULL when
 * args->momentum is 0. */
clora_status clora__sgd_update(const clora__sgd_args *args, clora_buffer *params,
                               clora_buffer *grads, clora_buffer *momentum, float lr);

/* Scales grads so that their L2 norm is at most max_norm; *norm (may be
 * NULL) gets the norm before (waits for the device). */
clora_status clora__clip_by_norm(clora_buffer *grads, float max_norm, float *norm);

#endif /* CLORA_OPS_H */
