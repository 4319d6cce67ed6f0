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
 * The fused kernel serves up to device->packed_fused_rows rows (see
 * choose_fused_rows): a table measured per kind of device by `clora bench`,
 * overridden by CLORA_PACKED_FUSED_ROWS. */
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

/* Band [r0, r0 + n) of W as float32 in the dequantize tile. */
static clora_status band(const clora_buffer *weight, size_t r0, size_t n, size_t band_rows,
                         cl_mem *tile)
{
    clora_status status = clora__device_dequantized(
        weight->device, band_rows * weight->shape[1] * sizeof(float), tile);
    return status == CLORA_OK ? dequantize(*tile, 0, weight, NULL, r0, n) : status;
}

clora_status clora__packed_x_wt(clora_buffer *y, const clora_buffer *x, const clora_buffer *weight,
                                clora_weight_layout layout, float beta)
{
    const size_t n = clora__rows(x), in = clora__cols(x), out = clora__cols(y);
    if (clora__packed_fused(x->device, weight, n, layout))
        return fused_x_wt(y, x, weight, n, beta);
    const size_t per = band_rows(weight), rows = weight->shape[0];
    clora_status status = CLORA_OK;
    for (size_t r0 = 0; r0 < rows && status == CLORA_OK; r0 += per) {
        const size_t t = rows - r0 < per ? rows - r0 : per;
        cl_mem tile = NULL;
        if ((status = band(weight, r0, t, per, &tile)) != CLORA_OK)
            break;
        if (layout == CLORA_WEIGHT_OUT_IN) /* y[:, r0 : r0 + t] = x · tileᵀ + beta · y */
            status = clora__sgemm(x->device, 0, 1, n, t, in, 1.0f, x->mem, x->offset, in, tile, 0,
                                  in, beta, y->mem, y->offset + r0, out);
        else /* W (in, out): y += x[:, r0 : r0 + t] · tile, beta on the first band only */
            status = clora__sgemm(x->device, 0, 0, n, out, t, 1.0f, x->mem, x->offset + r0, in,
                                  tile, 0, out, r0 == 0 ? beta : 1.0f, y->mem, y->offset, out);
    }
    return status;
}

clora_status clora__packed_dy_w(clora_buffer *dx, const clora_buffer *dy, const clora_buffer *weight,
                                clora_weight_layout layout, float beta)
{
    const size_t n = clora__rows(dy), out = clora__cols(dy), in = clora__cols(dx);
    const size_t per = band_rows(weight), rows = weight->shape[0];
    clora_status status = CLORA_OK;
    for (size_t r0 = 0; r0 < rows && status == CLORA_OK; r0 += per) {
        const size_t t = rows - r0 < per ? rows - r0 : per;
        cl_mem tile = NULL;
        if ((status = band(weight, r0, t, per, &tile)) != CLORA_OK)
            break;
        if (layout == CLORA_WEIGHT_OUT_IN) /* dx += dy[:, r0 : r0 + t] · tile */
            status = clora__sgemm(dy->device, 0, 0, n, in, t, 1.0f, dy->mem, dy->offset + r0, out,
                                  tile, 0, in, r0 == 0 ? beta : 1.0f, dx->mem, dx->offset, in);
        else /* W (in, out): dx[:, r0 : r0 + t] = dy · tileᵀ + beta · dx */
            status = clora__sgemm(dy->device, 0, 1, n, t, out, 1.0f, dy->mem, dy->offset, out,
                                  tile, 0, out, beta, dx->mem, dx->offset + r0, in);
    }
    return status;
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
