/* packed.c — frozen weights stored packed (F16, BF16, GGUF block types) in
 * the Linear products and embedding lookups. Two ways to multiply:
 *
 *   dequantize + GEMM  cl/dequant.cl writes rows of W as float32 into the
 *                      device's dequantize tile (at most
 *                      device->dequantize_tile floats: a whole layer, or a
 *                      band of its rows), then CLBlast's SGEMM multiplies as
 *                      for a float32 weight, band after band;
 *   fused              for a few rows of x (a generation step), one kernel
 *                      reads the packed bytes and multiplies them on the fly,
 *                      so only the packed bytes stream from memory.
 *
 * The fused kernel serves up to device->packed_fused_rows rows: a default
 * measured with `clora bench` (clora__packed_choose), overridden by
 * clora_device_set_packed_fused_rows and CLORA_PACKED_FUSED_ROWS. F16
 * weights take the same paths, not CLBlast's HGEMM, whose accumulation in
 * half precision measured thousands of times the float32 path's error
 * (`clora bench`'s packed_hgemm_error). */
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static clora__kernel_id dequantize_kernel(clora_dtype dtype)
{
    switch (dtype) {
    case CLORA_DTYPE_F16: return CLORA__KERNEL_DEQUANTIZE_F16;
    case CLORA_DTYPE_BF16: return CLORA__KERNEL_DEQUANTIZE_BF16;
    case CLORA_DTYPE_Q8_0: return CLORA__KERNEL_DEQUANTIZE_Q8_0;
    case CLORA_DTYPE_Q4_0: return CLORA__KERNEL_DEQUANTIZE_Q4_0;
    case CLORA_DTYPE_Q4_1: return CLORA__KERNEL_DEQUANTIZE_Q4_1;
    case CLORA_DTYPE_Q4_K: return CLORA__KERNEL_DEQUANTIZE_Q4_K;
    case CLORA_DTYPE_Q5_K: return CLORA__KERNEL_DEQUANTIZE_Q5_K;
    default: return CLORA__KERNEL_DEQUANTIZE_Q6_K;
    }
}

static clora__kernel_id fused_kernel(clora_dtype dtype)
{
    switch (dtype) {
    case CLORA_DTYPE_F16: return CLORA__KERNEL_ROWS_TIMES_WT_F16;
    case CLORA_DTYPE_BF16: return CLORA__KERNEL_ROWS_TIMES_WT_BF16;
    case CLORA_DTYPE_Q8_0: return CLORA__KERNEL_ROWS_TIMES_WT_Q8_0;
    case CLORA_DTYPE_Q4_0: return CLORA__KERNEL_ROWS_TIMES_WT_Q4_0;
    case CLORA_DTYPE_Q4_1: return CLORA__KERNEL_ROWS_TIMES_WT_Q4_1;
    case CLORA_DTYPE_Q4_K: return CLORA__KERNEL_ROWS_TIMES_WT_Q4_K;
    case CLORA_DTYPE_Q5_K: return CLORA__KERNEL_ROWS_TIMES_WT_Q5_K;
    default: return CLORA__KERNEL_ROWS_TIMES_WT_Q6_K;
    }
}

/* Rows [row0, row0 + n) of W, or rows ids[0..n) when ids, as float32
 * into (mem, offset) (n, cols). */
static clora_status dequantize(cl_mem mem, size_t offset, const clora_buffer *weight,
                               const clora_buffer *ids, size_t row0, size_t n)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, weight->device, dequantize_kernel(weight->dtype));
    if (status != CLORA_OK)
        return status;
    const size_t cols = weight->shape[1];
    clora__arg_mem(&a, mem);
    clora__arg_uint(&a, offset);
    clora__arg_mem(&a, weight->mem);
    clora__arg_mem(&a, ids ? ids->mem : weight->mem);
    clora__arg_uint(&a, ids ? ids->offset : 0);
    clora__arg_uint(&a, ids != NULL);
    clora__arg_uint(&a, row0);
    clora__arg_uint(&a, n);
    clora__arg_uint(&a, cols);
    const size_t global[2] = {(cols + 31) / 32, n}, local[2] = {8, 1};
    return clora__args_launch(&a, 2, global, local);
}

clora_status clora__dequantize_rows(clora_buffer *y, const clora_buffer *weight, size_t row0,
                                    size_t n)
{
    static const char op[] = "clora_dequantize_rows";
    clora_status status = clora__check_present(op, "y", y);
    if (status == CLORA_OK && (!weight || !clora_dtype_is_packed(weight->dtype)))
        status = clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: weight is not a packed weight", op);
    if (status == CLORA_OK && (row0 > weight->shape[0] || n > weight->shape[0] - row0 || n == 0))
        status = clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                             "%s: rows [%zu, %zu) are not rows of a weight of %zu", op, row0,
                             row0 + n, weight->shape[0]);
    if (status == CLORA_OK && y->numel != n * weight->shape[1])
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: y holds %zu floats, not %zu x %zu", op,
                             y->numel, n, weight->shape[1]);
    if (status == CLORA_OK && y->device != weight->device)
        status = clora__fail(CLORA_ERR_DEVICE_MISMATCH, "%s: y and weight are on different devices",
                             op);
    return status == CLORA_OK ? dequantize(y->mem, y->offset, weight, NULL, row0, n) : status;
}

clora_status clora__embedding_forward_packed(clora_buffer *y, const clora_buffer *weight,
                                             const clora_buffer *ids)
{
    return dequantize(y->mem, y->offset, weight, ids, 0, ids->numel);
}

/* ---- the fused product ---------------------------------------------------------------- */

int clora__packed_fused(const clora_device *device, const clora_buffer *weight, size_t rows,
                        clora_weight_layout layout)
{
    return layout == CLORA_WEIGHT_OUT_IN && rows <= device->packed_fused_rows &&
           rows <= CLORA__PACKED_FUSED_MAX_ROWS && weight->shape[1] % 32 == 0;
}

/* y (rows, out) = x · Wᵀ + beta · y, W (out, in) packed. */
static clora_status fused_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                               size_t rows, float beta)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, fused_kernel(weight->dtype));
    if (status != CLORA_OK)
        return status;
    const size_t out = weight->shape[0], in = weight->shape[1];
    const size_t lanes = x->device->info.type == CLORA_DEVICE_CPU ? CLORA__PACKED_LANES_CPU
                                                                  : CLORA__PACKED_LANES_GPU;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, x);
    clora__arg_mem(&a, weight->mem);
    clora__arg_uint(&a, in);
    clora__arg_uint(&a, out);
    clora__arg_uint(&a, rows);
    clora__arg_float(&a, beta);
    /* the reduction needs whole groups of LANES: no halving below it */
    const size_t global[1] = {out * lanes}, local[1] = {lanes > 1 ? lanes : 16};
    if (lanes > 1 && x->device->kernel_max_group[fused_kernel(weight->dtype)] < lanes)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "the packed product needs work-groups of %zu on \"%s\"", lanes,
                           x->device->info.name);
    return clora__args_launch(&a, 1, global, local);
}

/* ---- dequantize + GEMM ---------------------------------------------------------------- */

/* Rows of W per band: all of them when the layer fits the tile. */
static size_t band_rows(const clora_buffer *weight)
{
    const size_t rows = weight->shape[0], cols = weight->shape[1];
    size_t band = weight->device->dequantize_tile / cols;
    if (band == 0)
        band = 1;
    return band < rows ? band : rows;
}

/* c (n, cc) = a (n, ca) · W' + beta · c with W' = W's band after band as
 * float32 in the dequantize tile. Either c's columns are W's rows
 * (`slice`): each band of t rows gives c[:, r0 : r0 + t] = a · bandᵀ +
 * beta · c; or a's columns are W's rows: c += a[:, r0 : r0 + t] · band,
 * beta on the first band only. */
static clora_status banded_product(clora_buffer *c, const clora_buffer *a,
                                   const clora_buffer *weight, int slice, float beta)
{
    const size_t n = clora__rows(a), ca = clora__cols(a), cc = clora__cols(c);
    const size_t per = band_rows(weight), rows = weight->shape[0], cols = weight->shape[1];
    cl_mem tile = NULL;
    clora_status status =
        clora__device_dequantized(weight->device, per * cols * sizeof(float), &tile);
    for (size_t r0 = 0; r0 < rows && status == CLORA_OK; r0 += per) {
        const size_t t = rows - r0 < per ? rows - r0 : per;
        if ((status = dequantize(tile, 0, weight, NULL, r0, t)) != CLORA_OK)
            break;
        status = slice ? clora__sgemm(a->device, 0, 1, n, t, ca, 1.0f, a->mem, a->offset, ca, tile,
                                      0, cols, beta, c->mem, c->offset + r0, cc)
                       : clora__sgemm(a->device, 0, 0, n, cc, t, 1.0f, a->mem, a->offset + r0, ca,
                                      tile, 0, cols, r0 == 0 ? beta : 1.0f, c->mem, c->offset, cc);
    }
    return status;
}

/* y = x · Wᵀ: W (out, in) slices y's columns; W (in, out) splits x's. */
clora_status clora__packed_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                                clora_weight_layout layout, float beta)
{
    if (clora__packed_fused(x->device, weight, clora__rows(x), layout))
        return fused_x_wt(y, x, weight, clora__rows(x), beta);
    return banded_product(y, x, weight, layout == CLORA_WEIGHT_OUT_IN, beta);
}

/* dx = dy · W: W (out, in) splits dy's columns; W (in, out) slices dx's. */
clora_status clora__packed_dy_w(clora_buffer *dx, const clora_buffer *dy, const clora_buffer *weight,
                                clora_weight_layout layout, float beta)
{
    return banded_product(dx, dy, weight, layout == CLORA_WEIGHT_IN_OUT, beta);
}

/* ---- which rows the fused kernel takes ------------------------------------------------ */

clora_status clora_device_set_packed_fused_rows(clora_device *device, size_t rows)
{
    if (!device)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT,
                           "clora_device_set_packed_fused_rows: device is NULL");
    if (rows > CLORA__PACKED_FUSED_MAX_ROWS)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_device_set_packed_fused_rows: %zu rows; the fused kernel takes "
                           "0 to %d",
                           rows, CLORA__PACKED_FUSED_MAX_ROWS);
    device->packed_fused_rows = rows;
    return CLORA_OK;
}

size_t clora_device_packed_fused_rows(const clora_device *device)
{
    return device ? device->packed_fused_rows : 0;
}

clora_status clora__packed_choose(clora_device *device)
{
    /* Measured with `clora bench --only packed_` (README, "Packed and
     * quantized base weights"): on PoCL's CPU device the fused kernel takes
     * 0.07-0.23 of the dequantize + GEMM time at N = 1 and 0.03-0.08 at
     * N = 4, for every type and shape measured; GPUs get the same until
     * measured there. */
    device->packed_fused_rows = CLORA__PACKED_FUSED_MAX_ROWS;
    const char *text = getenv("CLORA_PACKED_FUSED_ROWS");
    if (text && *text) {
        char *end = NULL;
        const long v = strtol(text, &end, 10);
        if (*end || v < 0 || v > CLORA__PACKED_FUSED_MAX_ROWS)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "CLORA_PACKED_FUSED_ROWS=\"%s\": expected 0 to %d rows", text,
                               CLORA__PACKED_FUSED_MAX_ROWS);
        device->packed_fused_rows = (size_t)v;
    }
    return CLORA_OK;
}
