/* internal.h — what the library's sources share and the public headers hide.
 * Private names start with clora__ / CLORA__.
 */
#ifndef CLORA_INTERNAL_H
#define CLORA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "clora/clora.h"

#if defined(__GNUC__) || defined(__clang__)
#define CLORA__PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define CLORA__PRINTF(fmt_index, first_arg)
#endif

/* ---- errors (status.c) ------------------------------------------------ */

/* Records a detailed message for this thread and returns `status`. */
clora_status clora__fail(clora_status status, const char *fmt, ...) CLORA__PRINTF(2, 3);

/* Puts "<formatted>: " in front of the current message and returns `status`. */
clora_status clora__fail_prefixed(clora_status status, const char *fmt, ...) CLORA__PRINTF(2, 3);

/* Records "<call> failed: <CL error name> (<code>) [file:line]" and returns
 * the matching status (out-of-memory codes map to the memory statuses). */
clora_status clora__fail_cl(cl_int err, const char *call, const char *file, int line);
#define CLORA__FAIL_CL(err, call) clora__fail_cl((err), (call), __FILE__, __LINE__)

/* Name of an OpenCL error code, e.g. "CL_OUT_OF_RESOURCES". */
const char *clora__cl_error_name(cl_int err);

/* ---- programs and kernels (device.c) ------------------------------------ */

/* X(id, file name without .cl) */
#define CLORA__PROGRAM_TABLE(X) \
    X(LINEAR, "linear")         \
    X(LORA, "lora")             \
    X(ACTIVATION, "activation") \
    X(NORM, "norm")             \
    X(EMBEDDING, "embedding")   \
    X(REDUCE, "reduce")         \
    X(LOSS, "loss")             \
    X(OPTIM, "optim")           \
    X(ATTENTION, "attention")

/* X(id, program id, kernel function name) */
#define CLORA__KERNEL_TABLE(X)                    \
    X(BIAS_BROADCAST, LINEAR, "bias_broadcast")   \
    X(BIAS_ADD, LINEAR, "bias_add")               \
    X(COLUMN_SUM, LINEAR, "column_sum")           \
    X(LORA_GEMM, LORA, "lora_gemm")               \
    X(LORA_STREAM, LORA, "lora_stream")           \
    X(LORA_COLS_TN, LORA, "lora_cols_tn")         \
    X(LORA_FORWARD_ROWS, LORA, "lora_forward_rows") \
    X(LORA_BACKWARD_ROWS, LORA, "lora_backward_rows") \
    X(LORA_TRANSPOSE, LORA, "lora_transpose")     \
    X(LORA_REDUCE, LORA, "lora_reduce_partials")                  \
    X(ACTIVATION_FORWARD, ACTIVATION, "activation_forward")       \
    X(ACTIVATION_BACKWARD, ACTIVATION, "activation_backward")     \
    X(DROPOUT_APPLY, ACTIVATION, "dropout_apply")                 \
    X(LAYER_NORM_FORWARD, NORM, "layer_norm_forward")             \
    X(LAYER_NORM_BACKWARD, NORM, "layer_norm_backward")           \
    X(LAYER_NORM_PARAM_GRADS, NORM, "layer_norm_param_grads")     \
    X(EMBEDDING_FORWARD, EMBEDDING, "embedding_forward")          \
    X(EMBEDDING_BACKWARD, EMBEDDING, "embedding_backward")        \
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
    X(MEAN_POOL_BACKWARD, ATTENTION, "mean_pool_backward")

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

/* Rows of the batch each work-item of lora_forward_rows and
 * lora_backward_rows handles (the kernels' ROWS). */
#define CLORA__ROWS_PER_ITEM 4

/* How the rank-r products run: local-memory tiles (GPUs and other
 * devices) or one streaming work-item per 4 outputs (CPUs). */
typedef enum clora__rank_kernel {
    CLORA__RANK_TILED = 0,
    CLORA__RANK_STREAMING = 1
} clora__rank_kernel;

struct clora_device {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    clora_device_info info;
    clora__rank_kernel rank_kernel;
    size_t rank_tile; /* edge of the square work-group of the tiled kernel */
    cl_program programs[CLORA__PROGRAM_COUNT];
    cl_kernel kernels[CLORA__KERNEL_COUNT];
    size_t kernel_max_group[CLORA__KERNEL_COUNT]; /* CL_KERNEL_WORK_GROUP_SIZE */
    cl_mem scratch; /* grown on demand; valid within one op call */
    size_t scratch_bytes;
    uint64_t memory[CLORA_MEMORY_CATEGORY_COUNT]; /* bytes held, by category */
    uint64_t memory_peak;
    uint64_t memory_category_peak[CLORA_MEMORY_CATEGORY_COUNT];
};

/* Records `bytes` more (or, negative, fewer) held in `category`. */
void clora__device_account(clora_device *device, clora_memory_category category, int64_t bytes);

/* A scratch buffer of at least `bytes`, owned by the device. Its contents
 * live until the next clora op; the queue is in order, so reuse is safe. */
clora_status clora__device_scratch(clora_device *device, size_t bytes, cl_mem *out);

/* One kernel launch: clora__args_begin() fetches kernel `id` (building its
 * program on first use), the clora__arg_* calls set its arguments in order,
 * and clora__args_launch() enqueues it over `global` (rounded up to
 * multiples of `local`, which is halved while larger than the kernel
 * allows on the device), reporting the first argument that failed to set. */
typedef struct clora__args {
    clora_device *device;
    clora__kernel_id id;
    cl_kernel kernel;
    cl_uint index;
    cl_int err;
} clora__args;
clora_status clora__args_begin(clora__args *args, clora_device *device, clora__kernel_id id);
void clora__arg_mem(clora__args *args, cl_mem mem);
/* A buffer as the kernels take it: its cl_mem, then its element offset. */
void clora__arg_buffer(clora__args *args, const clora_buffer *buffer);
void clora__arg_uint(clora__args *args, size_t value); /* caller ensures it fits */
void clora__arg_int(clora__args *args, int value);
void clora__arg_float(clora__args *args, float value);
clora_status clora__args_launch(const clora__args *args, cl_uint dims, const size_t *global,
                                const size_t *local);

/* ---- buffers (buffer.c) ------------------------------------------------ */

struct clora_buffer {
    clora_device *device;
    cl_mem mem;
    size_t offset; /* elements from the start of mem */
    size_t ndim;
    size_t shape[CLORA_MAX_DIMS];
    size_t numel;
    clora_dtype dtype;              /* F32 or I32 */
    clora_memory_category category; /* what its memory counts as */
    int owns_memory;                /* 1 if created here (not a view or wrap) */
};

/* clora_buffer_create with a dtype and a memory category. */
clora_status clora__buffer_create(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                  clora_memory_category category, size_t ndim, const size_t *shape);
/* Moves an owning buffer's bytes to another memory category. */
void clora__buffer_set_category(clora_buffer *buffer, clora_memory_category category);

/* Rows of an activation: the product of every dimension but the last. */
size_t clora__rows(const clora_buffer *buffer);
/* Its last dimension (features). */
size_t clora__cols(const clora_buffer *buffer);
/* 1 if the element ranges of a and b overlap in the same cl_mem. */
int clora__overlap(const clora_buffer *a, const clora_buffer *b);

/* The largest element count or offset the kernels index with 32-bit math. */
#define CLORA__MAX_KERNEL_ELEMENTS ((size_t)UINT32_MAX)

/* ---- files (fileio.c) ----------------------------------------------------- */

typedef struct clora__chunk {
    const void *data;
    size_t size;
} clora__chunk;

/* Writes the chunks to a temporary file beside `path`, flushes it, and
 * renames it over `path`: all or nothing. */
clora_status clora__write_file_atomic(const char *path, const clora__chunk *chunks, size_t count);

/* Several files as one: every temporary is written first; if any rename
 * then fails, the files already replaced get their previous content back. */
typedef struct clora__file {
    const char *path;
    const clora__chunk *chunks;
    size_t chunk_count;
} clora__file;
clora_status clora__write_files_atomic(const clora__file *files, size_t count);
/* The whole file, NUL-terminated (free() it). */
clora_status clora__read_file(const char *path, char **out, size_t *size);
/* out = dir + "/" + name. */
clora_status clora__join_path(char *out, size_t size, const char *dir, const char *name);
/* Creates the folder unless it exists. */
clora_status clora__ensure_dir(const char *path);

/* The chunks of a safetensors file (length, header, tensors); free *chunks
 * and *header after use. */
struct clora_safetensors_writer;
clora_status clora__safetensors_chunks(const struct clora_safetensors_writer *writer,
                                       clora__chunk **chunks, size_t *count, char **header,
                                       unsigned char length[8]);

/* ---- frozen GEMMs (blas.c, the only user of CLBlast) -------------------- */

/* C (m, n) = alpha · op(A) · op(B) + beta · C, row-major; offsets and leading
 * dimensions in elements. */
clora_status clora__sgemm(clora_device *device, int trans_a, int trans_b, size_t m, size_t n,
                          size_t k, float alpha, cl_mem a, size_t a_offset, size_t lda, cl_mem b,
                          size_t b_offset, size_t ldb, float beta, cl_mem c, size_t c_offset,
                          size_t ldc);

/* Hands CLBlast `count` tuning parameters for one of its kernels ("Xgemm",
 * "XgemmDirect", "Copy", ...) in single precision on `device`; CLBlast
 * wants every parameter of the kernel. */
clora_status clora__clblast_override(cl_device_id device, const char *kernel, size_t count,
                                     const char **names, const size_t *values);
/* Drops CLBlast's compiled programs, process-wide (not the parameters
 * given through clora__clblast_override: CLBlast keeps those). */
void clora__clblast_clear_cache(void);

/* ---- CLBlast tuning parameters (tuning.c) -------------------------------- */

/* Applies the device's tuning at open: CLORA_TUNING, the cache file or
 * clora's shipped parameters (see clora_device_set_tuning); fills
 * dev->info.tuning. */
clora_status clora__tuning_open(clora_device *device);

/* ---- Linear pieces the LoRA op reuses (linear.c) ------------------------- */

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

/* W += scale * B * A (lora.c): merging an adapter into its base weight. */
clora_status clora__lora_add_delta(clora_buffer *weight, clora_weight_layout layout,
                                   const clora_buffer *lora_a, const clora_buffer *lora_b,
                                   float scale);

/* count GEMMs C_i = alpha * op(A_i) * op(B_i) + beta * C_i, row-major, the
 * i-th operands `stride` elements after the (i-1)-th. */
clora_status clora__sgemm_batched(clora_device *device, int trans_a, int trans_b, size_t m,
                                  size_t n, size_t k, float alpha, cl_mem a, size_t a_offset,
                                  size_t lda, size_t a_stride, cl_mem b, size_t b_offset,
                                  size_t ldb, size_t b_stride, float beta, cl_mem c,
                                  size_t c_offset, size_t ldc, size_t c_stride, size_t count);

/* ---- op argument checks (checks.c) -------------------------------------- */

/* Each returns CLORA_OK or records a message prefixed with `op` and the
 * argument's name. */
/* Present and holding float32. */
clora_status clora__check_present(const char *op, const char *name, const clora_buffer *buffer);
/* Holding `dtype` (NULL passes). */
clora_status clora__check_dtype(const char *op, const char *name, const clora_buffer *buffer,
                                clora_dtype dtype);
/* Present and holding at least one element. */
clora_status clora__check_nonempty(const char *op, const char *name, const clora_buffer *buffer);
clora_status clora__check_same_device(const char *op, const char *name, const clora_buffer *buffer,
                                      const clora_device *device);
/* NULL, or a float32 buffer on `device`. */
clora_status clora__check_float(const char *op, const char *name, const clora_buffer *buffer,
                                const clora_device *device);
clora_status clora__check_shape_2d(const char *op, const char *name, const clora_buffer *buffer,
                                   size_t rows, size_t cols, const char *expected);
clora_status clora__check_shape_1d(const char *op, const char *name, const clora_buffer *buffer,
                                   size_t n, const char *expected);
/* `act` has the same leading dimensions as `like` and `cols` columns. */
clora_status clora__check_activation(const char *op, const char *name, const clora_buffer *act,
                                     const clora_buffer *like, size_t cols, const char *expected);
/* Outputs must not overlap inputs or each other. */
clora_status clora__check_disjoint(const char *op, const char *out_name, const clora_buffer *out,
                                   const char *other_role, const char *other_name,
                                   const clora_buffer *other);
clora_status clora__check_disjoint_all(const char *op, clora_buffer *const *outputs,
                                       const char *const *output_names, size_t n_outputs,
                                       const clora_buffer *const *inputs,
                                       const char *const *input_names, size_t n_inputs);
clora_status clora__check_kernel_size(const char *op, const char *name, const clora_buffer *buffer);

#endif /* CLORA_INTERNAL_H */
