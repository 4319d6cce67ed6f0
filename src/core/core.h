/* core.h — what the core layer's sources share and the layers above may
 * use: errors and messages, the device handle, kernel launches, buffers,
 * files and argument checks. Private names start with clora__ / CLORA__.
 *
 * Layers, lowest first: core (this folder), ops and io (each on core only),
 * nn, train; a source includes only its own layer's header and lower ones
 * (tests/layering_check.sh). */
#ifndef CLORA_CORE_H
#define CLORA_CORE_H

#include <stddef.h>
#include <stdint.h>

#include "clora/buffer.h"
#include "clora/device.h"
#include "clora/dtype.h"
#include "clora/status.h"
#include "clora/version.h"
#include "core/kernels.h"

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

/* ---- the device (device.c) --------------------------------------------- */

/* Device memory a recycled buffer left, kept for the next buffer of about
 * its size (clora__buffer_recycle). */
typedef struct clora__pooled {
    cl_mem mem;
    size_t capacity; /* elements */
} clora__pooled;
enum { CLORA__POOL_SLOTS = 64 };

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
    cl_mem gemm_temp; /* CLBlast's GEMM temporaries (blas.c), grown on demand */
    size_t gemm_temp_bytes;
    clora__pooled pool[CLORA__POOL_SLOTS]; /* oldest first; counted as scratch */
    size_t pool_count;
    uint64_t memory[CLORA_MEMORY_CATEGORY_COUNT]; /* bytes held, by category */
    uint64_t memory_peak;
    uint64_t memory_category_peak[CLORA_MEMORY_CATEGORY_COUNT];
    uint64_t frozen_by_dtype[CLORA_DTYPE_COUNT]; /* frozen bytes by storage type */
    cl_mem dequantized; /* packed weights dequantized for a GEMM, grown on demand */
    size_t dequantized_bytes;
    size_t dequantize_tile; /* most floats one dequantized tile may hold */
    size_t packed_fused_rows; /* rows of x up to which packed products run fused */
    int dry;             /* clora__device_open_dry: no OpenCL behind it */
    uint64_t dry_budget; /* the most bytes a dry device's buffers may take */
};

/* Devices as core opens them: context, queue and rank-r kernel choice,
 * without CLBlast's parameters. clora_device_open, _open_index and _wrap
 * (ops/device_open.c) add those. */
clora_status clora__device_open(clora_device **out, const char *selector);
clora_status clora__device_open_index(clora_device **out, size_t index);
clora_status clora__device_wrap(clora_device **out, cl_context context, cl_command_queue queue);
/* A device with no OpenCL behind it, for checking a file by building the
 * model it describes: its buffers have shapes and no memory (counted as
 * if held, at most `budget` bytes in all), writes, fills and copies do
 * nothing, and reads and kernels are refused: it holds no values. */
clora_status clora__device_open_dry(clora_device **out, uint64_t budget);

/* Records `bytes` more (or, negative, fewer) held in `category`. */
void clora__device_account(clora_device *device, clora_memory_category category, int64_t bytes);

/* A scratch buffer of at least `bytes`, owned by the device. Its contents
 * live until the next clora op; the queue is in order, so reuse is safe. */
clora_status clora__device_scratch(clora_device *device, size_t bytes, cl_mem *out);
/* The same for CLBlast's GEMM temporaries, apart from the ops' scratch
 * (an op may hold operands there while it calls a GEMM). */
clora_status clora__device_gemm_temp(clora_device *device, size_t bytes, cl_mem *out);
/* The same for packed weights dequantized to float32 for a GEMM, apart from
 * both (ops/linear.c), at most device->dequantize_tile floats. */
clora_status clora__device_dequantized(clora_device *device, size_t bytes, cl_mem *out);
/* Most floats one dequantized tile holds unless set otherwise: 8 Mi (32
 * MiB), many rows of any layer, so each tile's GEMM is a large one. */
#define CLORA__DEQUANTIZE_TILE ((size_t)8 << 20)
/* Sets device->dequantize_tile (0: the default); tests use small tiles. */
void clora__device_set_dequantize_tile(clora_device *device, size_t floats);

/* ---- kernel launches (program.c) ------------------------------------------ */

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
    clora_dtype dtype;              /* F32 or I32; a packed type for frozen weights */
    clora_memory_category category; /* what its memory counts as */
    int owns_memory;                /* 1 if created here (not a view or wrap) */
    size_t capacity;                /* owns_memory: the elements mem holds (>= numel) */
};

/* clora_buffer_create with a dtype and a memory category. */
clora_status clora__buffer_create(clora_buffer **out, clora_device *device, clora_dtype dtype,
                                  clora_memory_category category, size_t ndim, const size_t *shape);
/* clora_buffer_create_packed with a memory category. */
clora_status clora__buffer_create_packed(clora_buffer **out, clora_device *device,
                                         clora_dtype dtype, clora_memory_category category,
                                         size_t rows, size_t cols);
/* Makes *buf an activation buffer (CLORA_MEMORY_ACTIVATIONS) of `dtype`
 * and `shape`. It is kept as it is when both are unchanged (the common
 * case: the same batch shape every step); when the shape changes and the
 * buffer's memory holds the new element count, the memory is kept and
 * reshaped, else made anew, so that batches cut to their own length do not
 * free and allocate every layer's buffers each step (which fragments the
 * host allocator of CPU devices). *created (may be NULL) is 1 when the
 * shape changed: the buffer is then zero-filled, and a caller that fills a
 * buffer once per shape must ask this rather than compare the handle's
 * address with the old one's, which the allocator may hand out again. */
clora_status clora__buffer_ensure(clora_buffer **buf, clora_device *device, clora_dtype dtype,
                                  size_t ndim, const size_t *shape, int *created);
/* The same for float32, shaped like `like`. */
clora_status clora__buffer_ensure_like(clora_buffer **buf, const clora_buffer *like);
/* Destroys *buf (NULL then) but keeps its device memory for the next
 * clora__buffer_ensure that needs about as much: buffers that live only
 * for part of a step (backward's gradients, layer after layer of the same
 * shapes) then share a few allocations instead of holding one each. The
 * device keeps at most CLORA__POOL_SLOTS such allocations, letting the
 * oldest go first. No view of *buf may outlive it. */
void clora__buffer_recycle(clora_buffer **buf);
/* Lets every recycled allocation go. */
void clora__device_pool_clear(clora_device *device);
/* A temporary float32 buffer of n elements, counted as scratch. */
clora_status clora__buffer_temporary(clora_buffer **out, clora_device *device, size_t n);
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

/* Several files of one folder as one (at most CLORA__COMMIT_MAX_FILES):
 * every temporary is written and flushed first, then a commit record naming
 * them (the commit point), then the renames; a failed rename puts the old
 * files back. Killed at any moment, the folder holds the old files or, once
 * clora__finish_interrupted_save has run, the new ones; never a mix. One
 * process at a time may save into a folder. */
typedef struct clora__file {
    const char *path;
    const clora__chunk *chunks;
    size_t chunk_count;
} clora__file;
#define CLORA__COMMIT_MAX_FILES 64
clora_status clora__write_files_atomic(const clora__file *files, size_t count);
/* The same, the group also removing the files `removed` names (in the same
 * folder; those that do not exist are skipped): each is kept under a
 * backup name until the group is in place, and back again if it fails.
 * Files and removals together: at most CLORA__COMMIT_MAX_FILES. */
clora_status clora__replace_files_atomic(const clora__file *files, size_t count,
                                         const char *const *removed, size_t removed_count);
/* Completes a group save into `dir` that was interrupted after its commit
 * point; CLORA_OK when there is none. Every reader of a folder that
 * clora__write_files_atomic writes calls it first. */
clora_status clora__finish_interrupted_save(const char *dir);

/* ---- packed weight types (quant.c) ------------------------------------------------- */

/* How each packed type stores its weights: the one description of these
 * layouts in clora (cl/dequant.cl reads the same bytes). A row of a
 * weight is a sequence of blocks; a block holds clora_dtype_block_size()
 * weights in clora_dtype_block_bytes() bytes.
 * Everything is little-endian; f16 is IEEE half precision, bf16 the upper
 * 16 bits of a float32; q is an unsigned integer unless said otherwise.
 *
 *   F32     1 weight,    4 bytes  float32
 *   F16     1 weight,    2 bytes  f16
 *   BF16    1 weight,    2 bytes  bf16
 *   Q8_0   32 weights,  34 bytes  f16 d; int8 q[32]
 *            w[i] = d·q[i]
 *   Q4_0   32 weights,  18 bytes  f16 d; u8 qs[16]
 *            q of weight j is qs[j] & 15, of weight j + 16 is qs[j] >> 4 (j < 16);
 *            w = d·(q − 8)
 *   Q4_1   32 weights,  20 bytes  f16 d; f16 m; u8 qs[16] (nibbles as Q4_0)
 *            w = d·q + m
 *   Q4_K  256 weights, 144 bytes  f16 d; f16 dmin; u8 scales[12]; u8 qs[128]
 *            eight sub-blocks s of 32 weights, each with a 6-bit scale sc
 *            and a 6-bit min m packed in scales:
 *              s < 4:  sc = scales[s] & 63,
 *                      m  = scales[s + 4] & 63
 *              s >= 4: sc = (scales[s + 4] & 15) | (scales[s − 4] >> 6) << 4,
 *                      m  = (scales[s + 4] >> 4) | (scales[s] >> 6) << 4
 *            weights 64c + l (sub-block 2c) have q = qs[32c + l] & 15 and
 *            weights 64c + 32 + l (sub-block 2c + 1) q = qs[32c + l] >> 4
 *            (c < 4, l < 32); w = (d·sc)·q − dmin·m
 *   Q5_K  256 weights, 176 bytes  f16 d; f16 dmin; u8 scales[12]; u8 qh[32];
 *                                 u8 qs[128]
 *            as Q4_K, with a fifth bit: weight 32s + l of sub-block s adds
 *            16 to q when bit s of qh[l] is set
 *   Q6_K  256 weights, 210 bytes  u8 ql[128]; u8 qh[64]; int8 scales[16]; f16 d
 *            two halves h of 128 weights; for l < 32, with b = qh[32h + l]:
 *              weight 128h + l:       q = (ql[64h + l] & 15)      | (b & 3) << 4
 *              weight 128h + 32 + l:  q = (ql[64h + 32 + l] & 15) | (b >> 2 & 3) << 4
 *              weight 128h + 64 + l:  q = (ql[64h + l] >> 4)      | (b >> 4 & 3) << 4
 *              weight 128h + 96 + l:  q = (ql[64h + 32 + l] >> 4) | (b >> 6 & 3) << 4
 *            w[i] = (d·scales[i / 16])·(q − 32)
 *
 * Products are evaluated left to right in float32, as ggml does, so that
 * the results match its own bit for bit.
 *
 * Quantizing (F16, BF16, Q8_0, Q4_0, Q4_1) rounds as ggml's reference
 * quantizers do: F16 and BF16 to nearest even; Q8_0 d = max|x| / 127,
 * q = round(x / d); Q4_0 d = x_max / -8 with x_max the value of largest
 * magnitude, q = min(15, trunc(x / d + 8.5)); Q4_1 d = (max - min) / 15,
 * m = min, q = min(15, trunc((x - m) / d + 0.5)). d and m are stored as
 * f16, q computed with the float32 d. */
/* 1 for the types clora__dequantize reads (F32 and the packed types). */
int clora__can_dequantize(clora_dtype dtype);
/* n weights (a whole number of blocks) of `dtype` at src to float32. */
void clora__dequantize(clora_dtype dtype, const void *src, size_t n, float *dst);
/* n float32 values (a whole number of blocks, finite) to `dtype`, one of
 * the types clora_dtype_can_quantize() accepts, at dst. */
void clora__quantize(clora_dtype dtype, const float *src, size_t n, void *dst);
/* IEEE half precision from and to float32 (to: round to nearest even;
 * subnormals, infinities and NaNs included). */
float clora__f16_to_f32(uint16_t half);
uint16_t clora__f32_to_f16(float value);
/* A whole buffer's values from float32 host values: uploaded as they are
 * into F32, quantized row by row into a packed buffer (refused when a
 * value lies beyond what the type holds; `what` names the tensor). */
clora_status clora__upload_values(clora_buffer *dst, const float *values, const char *what);
/* A whole buffer's values as float32 (packed ones dequantized). */
clora_status clora__download_values(const clora_buffer *src, float *values);

/* ---- fault injection (fault.c), for tests ---------------------------------- */

/* The kinds of call that can be made to fail. */
typedef enum clora__fault_kind {
    CLORA__FAULT_DEVICE_ALLOC, /* clCreateBuffer */
    CLORA__FAULT_BUILD,        /* clBuildProgram */
    CLORA__FAULT_LAUNCH,       /* clEnqueueNDRangeKernel */
    CLORA__FAULT_BLAS,         /* a CLBlast routine */
    CLORA__FAULT_TRANSFER,     /* a read, write, fill or copy of a buffer */
    CLORA__FAULT_FILE_OPEN,    /* opening a file to read or a temporary to write */
    CLORA__FAULT_FILE_WRITE,
    CLORA__FAULT_FSYNC,
    CLORA__FAULT_RENAME,
    CLORA__FAULT_HOST_ALLOC, /* malloc, calloc, realloc, strdup (clora__malloc, ...) */
    CLORA__FAULT_KIND_COUNT
} clora__fault_kind;
#define CLORA__FAULT_ALL ((1u << CLORA__FAULT_KIND_COUNT) - 1u)

/* Counts the calls of the kinds in the mask `kinds`; the fail_at-th fails
 * (0: none does); on_hit, if set, sees every counted call first (and may
 * end the process there, as a crash would). */
typedef struct clora__fault_plan {
    unsigned kinds;
    long fail_at;
    long hits;
    void (*on_hit)(clora__fault_kind kind, long hit);
} clora__fault_plan;
extern clora__fault_plan clora__faults;
void clora__fault_plan_set(unsigned kinds, long fail_at, void (*on_hit)(clora__fault_kind, long));
/* Counts one call of `kind`: 1 when it is to fail. */
int clora__fault(clora__fault_kind kind);
/* Every host allocation of clora's goes through these: the C library's,
 * counted as CLORA__FAULT_HOST_ALLOC (NULL when that call is to fail).
 * What they return is freed with free(), by clora or by its caller. */
void *clora__malloc(size_t bytes);
void *clora__calloc(size_t count, size_t bytes);
void *clora__realloc(void *p, size_t bytes);
char *clora__strdup(const char *s);
/* The whole file, NUL-terminated (free() it). */
clora_status clora__read_file(const char *path, char **out, size_t *size);
/* out = dir + "/" + name. */
clora_status clora__join_path(char *out, size_t size, const char *dir, const char *name);
/* Creates the folder unless it exists. */
clora_status clora__ensure_dir(const char *path);

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
/* Every value finite: CLORA_ERR_NON_FINITE naming `file`, `tensor` and the
 * first element that is NaN or infinite. For values read from files. */
clora_status clora__check_finite(const char *file, const char *tensor, const float *values,
                                 size_t count);
clora_status clora__check_same_device(const char *op, const char *name, const clora_buffer *buffer,
                                      const clora_device *device);
/* A weight on `device`: a non-empty float32 buffer, or a packed one. */
clora_status clora__check_weight(const char *op, const char *name, const clora_buffer *buffer,
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

#endif /* CLORA_CORE_H */
