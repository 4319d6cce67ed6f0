/* kernels.h — the kernel families of cl/ that a device builds on first use,
 * the kernels in each, and the compile-time constants of the rank-r family.
 * A new family is a new cl/<family>.cl, a row in CLORA__PROGRAM_TABLE, its
 * kernels in CLORA__KERNEL_TABLE, and its launchers in src/ops. */
#ifndef CLORA_CORE_KERNELS_H
#define CLORA_CORE_KERNELS_H

/* X(id, file name without .cl) */
#define CLORA__PROGRAM_TABLE(X) \
    X(LINEAR, "linear")         \
    X(LORA, "lora")             \
    X(ACTIVATION, "activation") \
    X(NORM, "norm")             \
    X(EMBEDDING, "embedding")   \
    X(LORA_EMBEDDING, "lora_embedding") \
    X(REDUCE, "reduce")         \
    X(LOSS, "loss")             \
    X(OPTIM, "optim")           \
    X(ATTENTION, "attention")   \
    X(ROPE, "rope")             \
    X(KV_CACHE, "kv_cache")     \
    X(DEQUANT, "dequant")       \
    X(DORA, "dora")

/* X(id, program id, kernel function name) */
#define CLORA__KERNEL_TABLE(X)                                    \
    X(BIAS_BROADCAST, LINEAR, "bias_broadcast")                   \
    X(BIAS_ADD, LINEAR, "bias_add")                               \
    X(COLUMN_SUM, LINEAR, "column_sum")                           \
    X(ROWS_TIMES_WT, LINEAR, "rows_times_wt")                     \
    X(LORA_GEMM, LORA, "lora_gemm")                               \
    X(LORA_STREAM, LORA, "lora_stream")                           \
    X(LORA_COLS_TN, LORA, "lora_cols_tn")                         \
    X(LORA_FORWARD_ROWS, LORA, "lora_forward_rows")               \
    X(LORA_BACKWARD_ROWS, LORA, "lora_backward_rows")             \
    X(LORA_TRANSPOSE, LORA, "lora_transpose")                     \
    X(LORA_REDUCE, LORA, "lora_reduce_partials")                  \
    X(ACTIVATION_FORWARD, ACTIVATION, "activation_forward")       \
    X(ACTIVATION_BACKWARD, ACTIVATION, "activation_backward")     \
    X(DROPOUT_APPLY, ACTIVATION, "dropout_apply")                 \
    X(SWIGLU_FORWARD, ACTIVATION, "swiglu_forward")               \
    X(SWIGLU_BACKWARD, ACTIVATION, "swiglu_backward")             \
    X(LAYER_NORM_FORWARD, NORM, "layer_norm_forward")             \
    X(LAYER_NORM_BACKWARD, NORM, "layer_norm_backward")           \
    X(LAYER_NORM_PARAM_GRADS, NORM, "layer_norm_param_grads")     \
    X(RMS_NORM_FORWARD, NORM, "rms_norm_forward")                 \
    X(RMS_NORM_BACKWARD, NORM, "rms_norm_backward")               \
    X(RMS_NORM_WEIGHT_GRAD, NORM, "rms_norm_weight_grad")         \
    X(EMBEDDING_FORWARD, EMBEDDING, "embedding_forward")          \
    X(EMBEDDING_BACKWARD, EMBEDDING, "embedding_backward")        \
    X(LORA_EMBEDDING_FORWARD, LORA_EMBEDDING, "lora_embedding_forward") \
    X(LORA_EMBEDDING_GRAD_B, LORA_EMBEDDING, "lora_embedding_grad_b") \
    X(LORA_EMBEDDING_G, LORA_EMBEDDING, "lora_embedding_g")       \
    X(LORA_EMBEDDING_GRAD_A, LORA_EMBEDDING, "lora_embedding_grad_a") \
    X(SUM_PARTIALS, REDUCE, "sum_partials")                       \
    X(SUM_FINISH, REDUCE, "sum_finish")                           \
    X(SCALE_BY, REDUCE, "scale_by")                               \
    X(CROSS_ENTROPY_COUNT, LOSS, "cross_entropy_count")           \
    X(CROSS_ENTROPY_ROWS, LOSS, "cross_entropy_rows")             \
    X(MSE_ELEMENTS, LOSS, "mse_elements")                         \
    X(ADAMW_STEP, OPTIM, "adamw_step")                            \
    X(SGD_STEP, OPTIM, "sgd_step")                                \
    X(CLIP_COEFFICIENT, OPTIM, "clip_coefficient")                \
    X(HEADS_SPLIT, ATTENTION, "heads_split")                      \
    X(HEADS_MERGE, ATTENTION, "heads_merge")                      \
    X(SOFTMAX_ROWS, ATTENTION, "softmax_rows")                    \
    X(SOFTMAX_BACKWARD, ATTENTION, "softmax_backward")            \
    X(ADD, ATTENTION, "add")                                      \
    X(MEAN_POOL, ATTENTION, "mean_pool")                          \
    X(MEAN_POOL_BACKWARD, ATTENTION, "mean_pool_backward")        \
    X(LAST_TOKEN_POOL, ATTENTION, "last_token_pool")              \
    X(LAST_TOKEN_POOL_BACKWARD, ATTENTION, "last_token_pool_backward") \
    X(ROPE, ROPE, "rope")                                         \
    X(CACHE_WRITE, KV_CACHE, "cache_write")                       \
    X(CACHED_ATTENTION, KV_CACHE, "cached_attention")             \
    X(LAST_ROWS, KV_CACHE, "last_rows")                           \
    X(DEQUANTIZE_F16, DEQUANT, "dequantize_f16")                  \
    X(DEQUANTIZE_BF16, DEQUANT, "dequantize_bf16")                \
    X(DEQUANTIZE_Q8_0, DEQUANT, "dequantize_q8_0")                \
    X(DEQUANTIZE_Q4_0, DEQUANT, "dequantize_q4_0")                \
    X(DEQUANTIZE_Q4_1, DEQUANT, "dequantize_q4_1")                \
    X(DEQUANTIZE_Q4_K, DEQUANT, "dequantize_q4_k")                \
    X(DEQUANTIZE_Q5_K, DEQUANT, "dequantize_q5_k")                \
    X(DEQUANTIZE_Q6_K, DEQUANT, "dequantize_q6_k")                \
    X(ROWS_TIMES_WT_F16, DEQUANT, "rows_times_wt_f16")            \
    X(ROWS_TIMES_WT_BF16, DEQUANT, "rows_times_wt_bf16")          \
    X(ROWS_TIMES_WT_Q8_0, DEQUANT, "rows_times_wt_q8_0")          \
    X(ROWS_TIMES_WT_Q4_0, DEQUANT, "rows_times_wt_q4_0")          \
    X(ROWS_TIMES_WT_Q4_1, DEQUANT, "rows_times_wt_q4_1")          \
    X(ROWS_TIMES_WT_Q4_K, DEQUANT, "rows_times_wt_q4_k")          \
    X(ROWS_TIMES_WT_Q5_K, DEQUANT, "rows_times_wt_q5_k")          \
    X(ROWS_TIMES_WT_Q6_K, DEQUANT, "rows_times_wt_q6_k")          \
    X(DORA_WEIGHT_NORM, DORA, "dora_weight_norm")                 \
    X(DORA_SCALE_ROWS, DORA, "dora_scale_rows")                   \
    X(DORA_RESIDUAL, DORA, "dora_residual")                       \
    X(DORA_SCALE_GRAD, DORA, "dora_scale_grad")                   \
    X(DORA_MAGNITUDE_GRAD, DORA, "dora_magnitude_grad")           \
    X(DORA_DROPOUT_FIX, DORA, "dora_dropout_fix")

typedef enum clora__program_id {
#define CLORA__PROGRAM_ENUM_(id, file) CLORA__PROGRAM_##id,
    CLORA__PROGRAM_TABLE(CLORA__PROGRAM_ENUM_)
#undef CLORA__PROGRAM_ENUM_
    CLORA__PROGRAM_COUNT
} clora__program_id;

typedef enum clora__kernel_id {
#define CLORA__KERNEL_ENUM_(id, program, name) CLORA__KERNEL_##id,
    CLORA__KERNEL_TABLE(CLORA__KERNEL_ENUM_)
#undef CLORA__KERNEL_ENUM_
    CLORA__KERNEL_COUNT
} clora__kernel_id;

/* Flags of the lora_gemm kernel. They reach cl/lora.cl as -D defines, so
 * this enum is their one definition. */
enum {
    CLORA__GEMM_DROP_X = 1u << 0,     /* dropout on operand X, keyed (m, k) */
    CLORA__GEMM_DROP_Y = 1u << 1,     /* dropout on operand Y, keyed (k, p) */
    CLORA__GEMM_DROP_C = 1u << 2,     /* dropout on the product, keyed (m, p) */
    CLORA__GEMM_BIAS = 1u << 3,       /* add bias[p] */
    CLORA__GEMM_ACCUMULATE = 1u << 4, /* add the previous C */
    CLORA__GEMM_PARTIAL = 1u << 5     /* write raw partial sums, one slab per K-chunk */
};

/* Work-items per row of W in dequant.cl's rows_times_wt_* kernels (its
 * LANES): 1 on CPUs, a work-group that reduces in local memory elsewhere. */
#define CLORA__PACKED_LANES_CPU 1
#define CLORA__PACKED_LANES_GPU 32
/* Rows of x the rows_times_wt_* kernels take at most (their MAX_ROWS). */
#define CLORA__PACKED_FUSED_MAX_ROWS 4

/* Rows of the batch each work-item of lora_forward_rows and
 * lora_backward_rows handles (the kernels' ROWS). */
#define CLORA__ROWS_PER_ITEM 4

/* How the rank-r products run: local-memory tiles (GPUs and other
 * devices) or one streaming work-item per 4 outputs (CPUs). */
typedef enum clora__rank_kernel {
    CLORA__RANK_TILED = 0,
    CLORA__RANK_STREAMING = 1
} clora__rank_kernel;

#endif /* CLORA_CORE_KERNELS_H */
