/* test_packed.c — frozen weights stored packed (F16, BF16, Q8_0, Q4_0,
 * Q4_1, Q4_K, Q5_K, Q6_K): the device's dequantize kernels against the
 * plain-C reference bit for bit, the Linear products on packed weights
 * (dequantize + GEMM, whole and in bands, and the fused few-row kernel)
 * against the same products on the float32 values the packed bytes stand
 * for, embedding lookups, the quantizers' rounding, and refusals. */
#include "model_checks.h"
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"

static const clora_dtype packed_types[] = {CLORA_DTYPE_F16,  CLORA_DTYPE_BF16, CLORA_DTYPE_Q8_0,
                                           CLORA_DTYPE_Q4_0, CLORA_DTYPE_Q4_1, CLORA_DTYPE_Q4_K,
                                           CLORA_DTYPE_Q5_K, CLORA_DTYPE_Q6_K};
#define TYPE_COUNT (sizeof packed_types / sizeof packed_types[0])

static uint64_t next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

static void put_half(unsigned char *p, float v)
{
    const uint16_t h = clora__f32_to_f16(v);
    p[0] = (unsigned char)(h & 0xff);
    p[1] = (unsigned char)(h >> 8);
}

/* rows x cols weights of `dtype` as bytes: random bits in every quant and
 * scale byte, with the f16 scales set to finite values of either sign
 * (block types), or random values with f16 subnormals, zeros of both signs
 * and the largest halves among them (F16 / BF16). */
static unsigned char *random_packed(clora_dtype dtype, size_t rows, size_t cols, uint64_t seed)
{
    const size_t bytes = rows * clora_dtype_bytes(dtype, cols);
    assert_true(bytes > 0);
    unsigned char *p = malloc(bytes);
    assert_non_null(p);
    uint64_t s = seed;
    if (dtype == CLORA_DTYPE_F16 || dtype == CLORA_DTYPE_BF16) {
        float *v = test_alloc(rows * cols);
        test_fill_uniform(v, rows * cols, &s, -3.0f, 3.0f);
        static const float edges[] = {0.0f, -0.0f, 5.96e-8f, -3.0e-6f, 6.1e-5f, 65504.0f, -65504.0f,
                                      1.0f / 3.0f};
        for (size_t i = 0; i < rows * cols; i += 7)
            v[i] = edges[(i / 7) % (sizeof edges / sizeof edges[0])];
        CHECK_OK(clora_reference_quantize(dtype, v, rows * cols, p));
        free(v);
        return p;
    }
    for (size_t i = 0; i < bytes; ++i)
        p[i] = (unsigned char)next(&s);
    const size_t block_bytes = clora_dtype_block_bytes(dtype), blocks = bytes / block_bytes;
    for (size_t b = 0; b < blocks; ++b) {
        unsigned char *blk = p + b * block_bytes;
        const float d = ((float)(next(&s) % 2001) - 1000.0f) * 1e-4f;
        const float m = ((float)(next(&s) % 2001) - 1000.0f) * 1e-4f;
        if (dtype == CLORA_DTYPE_Q6_K) {
            put_half(blk + 208, d);
        } else {
            put_half(blk, d);
            if (dtype != CLORA_DTYPE_Q8_0 && dtype != CLORA_DTYPE_Q4_0)
                put_half(blk + 2, m);
        }
    }
    return p;
}

/* Columns per row for a type: whole blocks, not a power of two. */
static size_t odd_cols(clora_dtype dtype)
{
    const size_t block = clora_dtype_block_size(dtype);
    return block == 1 ? 83 : block * 3;
}

static clora_buffer *packed_buffer(clora_dtype dtype, size_t rows, size_t cols,
                                   const unsigned char *bytes)
{
    clora_buffer *b = NULL;
    CHECK_OK(clora_buffer_create_packed(&b, test_device, dtype, rows, cols));
    assert_int_equal(clora_buffer_bytes(b), rows * clora_dtype_bytes(dtype, cols));
    CHECK_OK(clora_buffer_upload_bytes(b, 0, bytes, clora_buffer_bytes(b)));
    return b;
}

static float *reference_values(clora_dtype dtype, const unsigned char *bytes, size_t rows,
                               size_t cols)
{
    float *w = test_alloc(rows * cols);
    CHECK_OK(clora_reference_dequantize(dtype, bytes, rows * cols, w));
    return w;
}

/* ---- the kernels against the reference ------------------------------------------------ */

static void dequantize_matches_the_reference_bit_for_bit(void **state)
{
    (void)state;
    for (size_t t = 0; t < TYPE_COUNT; ++t) {
        const clora_dtype dtype = packed_types[t];
        const size_t rows = 5, cols = odd_cols(dtype);
        unsigned char *bytes = random_packed(dtype, rows, cols, 11 + t);
        float *want = reference_values(dtype, bytes, rows, cols);
        clora_buffer *w = packed_buffer(dtype, rows, cols, bytes);
        /* all rows, then rows 1..3 on their own */
        clora_buffer *y = test_buffer_2d(rows, cols, NULL);
        CHECK_OK(clora__dequantize_rows(y, w, 0, rows));
        float *got = test_download(y);
        test_assert_identical(clora_dtype_name(dtype), got, want, rows * cols);
        free(got);
        clora_buffer *part = test_buffer_2d(3, cols, NULL);
        CHECK_OK(clora__dequantize_rows(part, w, 1, 3));
        got = test_download(part);
        test_assert_identical("rows 1..3", got, want + cols, 3 * cols);
        free(got);
        clora_buffer_destroy(part);
        clora_buffer_destroy(y);
        clora_buffer_destroy(w);
        free(want);
        free(bytes);
    }
}

/* An embedding table stored packed: rows picked by id, repeated ids
 * included, equal to the reference's rows. */
static void packed_embedding_rows_are_the_reference_rows(void **state)
{
    (void)state;
    for (size_t t = 0; t < TYPE_COUNT; ++t) {
        const clora_dtype dtype = packed_types[t];
        const size_t rows = 7, cols = odd_cols(dtype);
        unsigned char *bytes = random_packed(dtype, rows, cols, 31 + t);
        float *table = reference_values(dtype, bytes, rows, cols);
        clora_buffer *w = packed_buffer(dtype, rows, cols, bytes);
        const int32_t ids[] = {6, 0, 3, 3, 1};
        const size_t n = sizeof ids / sizeof ids[0];
        clora_buffer *bids = NULL;
        CHECK_OK(clora_buffer_create_typed(&bids, test_device, CLORA_DTYPE_I32, 1, &n));
        CHECK_OK(clora_buffer_upload_i32(bids, 0, ids, n));
        clora_buffer *y = test_buffer_2d(n, cols, NULL);
        CHECK_OK(clora__embedding_forward(y, w, bids, "table"));
        float *got = test_download(y);
        for (size_t i = 0; i < n; ++i)
            test_assert_identical(clora_dtype_name(dtype), got + i * cols,
                                  table + (size_t)ids[i] * cols, cols);
        const int32_t bad = 7;
        CHECK_OK(clora_buffer_upload_i32(bids, 0, &bad, 1));
        CHECK_STATUS(clora__embedding_forward(y, w, bids, "table"), CLORA_ERR_INVALID_ARGUMENT);
        free(got);
        clora_buffer_destroy(y);
        clora_buffer_destroy(bids);
        clora_buffer_destroy(w);
        free(table);
        free(bytes);
    }
}

/* ---- the Linear products ---------------------------------------------------------------- */

typedef struct product_case {
    size_t n;
    clora_weight_layout layout;
    size_t tile; /* dequantize tile in floats; 0: the default (one band) */
} product_case;

/* y = x · Wᵀ + b and dx = dy · W with W packed, against the same ops on a
 * float32 copy of the values W stands for. One band runs the same SGEMM on
 * the same floats as the float32 weight does (beyond the few rows that
 * CPUs give their own kernel): identical results. Bands split the sum over
 * rows of W, and the fused and few-row kernels sum in their own orders:
 * within 1e-5 of the values' scale, float32 rounding over sums of ≤ 768
 * terms. */
static void check_products(clora_dtype dtype, product_case pc, uint64_t seed)
{
    const size_t rows = 9, cols = odd_cols(dtype);
    const int out_in = pc.layout == CLORA_WEIGHT_OUT_IN;
    const size_t in = out_in ? cols : rows, out = out_in ? rows : cols;
    unsigned char *bytes = random_packed(dtype, rows, cols, seed);
    float *values = reference_values(dtype, bytes, rows, cols);
    clora_buffer *packed = packed_buffer(dtype, rows, cols, bytes);
    clora_buffer *dense = test_buffer_2d(rows, cols, values);
    uint64_t s = seed * 3 + 1;
    float *x = test_alloc(pc.n * in), *dy = test_alloc(pc.n * out), *b = test_alloc(out);
    test_fill_uniform(x, pc.n * in, &s, -1, 1);
    test_fill_uniform(dy, pc.n * out, &s, -1, 1);
    test_fill_uniform(b, out, &s, -1, 1);
    clora_buffer *bx = test_buffer_2d(pc.n, in, x), *bdy = test_buffer_2d(pc.n, out, dy);
    clora_buffer *bb = test_buffer_1d(out, b);
    clora_buffer *y0 = test_buffer_2d(pc.n, out, NULL), *y1 = test_buffer_2d(pc.n, out, NULL);
    clora_buffer *dx0 = test_buffer_2d(pc.n, in, NULL), *dx1 = test_buffer_2d(pc.n, in, NULL);
    clora__device_set_dequantize_tile(test_device, pc.tile);
    CHECK_OK(clora_linear_forward(y0, bx, dense, bb, pc.layout));
    CHECK_OK(clora_linear_forward(y1, bx, packed, bb, pc.layout));
    CHECK_OK(clora_linear_backward(dx0, NULL, NULL, bdy, bx, dense, pc.layout));
    CHECK_OK(clora_linear_backward(dx1, NULL, NULL, bdy, bx, packed, pc.layout));
    clora__device_set_dequantize_tile(test_device, 0);
    float *a = test_download(y0), *c = test_download(y1);
    float *da = test_download(dx0), *dc = test_download(dx1);
    const int fused = clora__packed_fused(test_device, packed, pc.n, pc.layout);
    char what[96];
    snprintf(what, sizeof what, "%s y, n = %zu, %s, tile %zu%s", clora_dtype_name(dtype), pc.n,
             out_in ? "(out, in)" : "(in, out)", pc.tile, fused ? ", fused" : "");
    /* the scale of the values: |x| <= 1 against |w| summed over a row */
    double scale = 0.0;
    for (size_t i = 0; i < rows * cols; ++i)
        scale = fmax(scale, fabs(values[i]));
    scale *= (double)in;
    const int same_gemm = pc.tile == 0 && !fused && pc.n > 4;
    if (same_gemm)
        test_assert_identical(what, c, a, pc.n * out);
    else
        test_assert_close(what, c, a, pc.n * out, 1e-5 * scale, 0.0);
    snprintf(what, sizeof what, "%s dx, n = %zu, %s, tile %zu", clora_dtype_name(dtype), pc.n,
             out_in ? "(out, in)" : "(in, out)", pc.tile);
    if (pc.tile == 0)
        test_assert_identical(what, dc, da, pc.n * in);
    else
        test_assert_close(what, dc, da, pc.n * in, 1e-5 * scale, 0.0);
    free(a);
    free(c);
    free(da);
    free(dc);
    clora_buffer *bufs[] = {packed, dense, bx, bdy, bb, y0, y1, dx0, dx1};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
    free(x);
    free(dy);
    free(b);
    free(values);
    free(bytes);
}

static void packed_products_equal_the_float32_products(void **state)
{
    (void)state;
    /* n = 1 and 3 take the fused kernel where it is chosen, 37 the GEMM;
     * tiles of 2 rows' worth of floats make bands of 2 rows (9 = 4 · 2 + 1) */
    const product_case cases[] = {
        {1, CLORA_WEIGHT_OUT_IN, 0},  {3, CLORA_WEIGHT_OUT_IN, 0},  {37, CLORA_WEIGHT_OUT_IN, 0},
        {37, CLORA_WEIGHT_IN_OUT, 0}, {5, CLORA_WEIGHT_OUT_IN, 1},  {37, CLORA_WEIGHT_IN_OUT, 1},
    };
    for (size_t t = 0; t < TYPE_COUNT; ++t)
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; ++k) {
            product_case pc = cases[k];
            if (pc.tile)
                pc.tile = 2 * odd_cols(packed_types[t]);
            check_products(packed_types[t], pc, 100 + 10 * t + k);
        }
}

/* The fused kernel for every row count it takes, forced on (and off). */
static void the_fused_kernel_serves_up_to_four_rows(void **state)
{
    (void)state;
    const size_t saved = test_device->packed_fused_rows;
    for (size_t t = 0; t < TYPE_COUNT; ++t) {
        if (odd_cols(packed_types[t]) % 32)
            continue; /* F16 rows of 83: the fused kernel takes whole groups of 32 */
        for (size_t n = 1; n <= CLORA__PACKED_FUSED_MAX_ROWS; ++n) {
            test_device->packed_fused_rows = CLORA__PACKED_FUSED_MAX_ROWS;
            product_case pc = {n, CLORA_WEIGHT_OUT_IN, 0};
            check_products(packed_types[t], pc, 500 + 10 * t + n);
        }
    }
    test_device->packed_fused_rows = saved;
}

/* ---- the quantizers' rounding ----------------------------------------------------------- */

static void halves_round_to_nearest_even(void **state)
{
    (void)state;
    /* 1 + 2^-11 is half-way between 1 and the next half: even (1) wins;
     * 1 + 3·2^-11 rounds up to 1 + 2^-9; 65520 overflows to infinity;
     * 2^-25 is half the smallest subnormal: rounds to zero (even) */
    const struct {
        float value;
        uint16_t half;
    } cases[] = {
        {1.0f, 0x3c00},          {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 3 * 0x1p-11f, 0x3c02},
        {65504.0f, 0x7bff},      {65520.0f, 0x7c00},        {-2.0f, 0xc000},
        {0x1p-24f, 0x0001},      {0x1p-25f, 0x0000},        {0x3p-25f, 0x0002},
        {6.103515625e-5f, 0x0400}, {INFINITY, 0x7c00},      {-0.0f, 0x8000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        if (clora__f32_to_f16(cases[i].value) != cases[i].half)
            fail_msg("%a: got 0x%04x, want 0x%04x", (double)cases[i].value,
                     clora__f32_to_f16(cases[i].value), cases[i].half);
    }
    /* every half survives the round trip */
    for (uint32_t h = 0; h < 0x10000; ++h) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaNs */
        if (clora__f32_to_f16(clora__f16_to_f32((uint16_t)h)) != h)
            fail_msg("0x%04x does not survive the round trip", h);
    }
}

/* Quantized blocks come back within half a step of each value, and the
 * block formats' own facts hold: Q8_0 keeps the largest magnitude (to f16
 * precision), Q4_1 the minimum. */
static void quantizers_round_within_half_a_step(void **state)
{
    (void)state;
    uint64_t s = 77;
    float v[64], back[64];
    unsigned char bytes[64 * 4];
    test_fill_uniform(v, 64, &s, -2.0f, 3.0f);
    v[5] = 4.0f; /* the largest magnitude */
    const clora_dtype types[] = {CLORA_DTYPE_Q8_0, CLORA_DTYPE_Q4_0, CLORA_DTYPE_Q4_1,
                                 CLORA_DTYPE_F16, CLORA_DTYPE_BF16};
    const double steps[] = {4.0 / 127, 4.0 / 8, 6.0 / 15, 0.0, 0.0};
    for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
        CHECK_OK(clora_reference_quantize(types[t], v, 64, bytes));
        CHECK_OK(clora_reference_dequantize(types[t], bytes, 64, back));
        for (size_t i = 0; i < 64; ++i) {
            const double limit = steps[t] ? 0.5 * steps[t] * 1.01 + 1e-3
                                          : fabs(v[i]) * (types[t] == CLORA_DTYPE_F16 ? 0x1p-11
                                                                                      : 0x1p-8);
            if (fabs(back[i] - v[i]) > limit)
                fail_msg("%s: value %zu = %g came back as %g", clora_dtype_name(types[t]), i,
                         (double)v[i], (double)back[i]);
        }
    }
    CHECK_OK(clora_reference_quantize(CLORA_DTYPE_Q8_0, v, 32, bytes));
    CHECK_OK(clora_reference_dequantize(CLORA_DTYPE_Q8_0, bytes, 32, back));
    assert_true(fabsf(back[5] - 4.0f) < 4.0f * 0x1p-10f);
    float lo = v[0];
    for (size_t i = 0; i < 32; ++i)
        lo = fminf(lo, v[i]);
    CHECK_OK(clora_reference_quantize(CLORA_DTYPE_Q4_1, v, 32, bytes));
    CHECK_OK(clora_reference_dequantize(CLORA_DTYPE_Q4_1, bytes, 32, back));
    float got_lo = back[0];
    for (size_t i = 0; i < 32; ++i)
        got_lo = fminf(got_lo, back[i]);
    assert_true(fabsf(got_lo - lo) < fabsf(lo) * 0x1p-10f + 1e-6f);
    /* a block of equal values: d = 0, every value exact */
    float same[32];
    for (size_t i = 0; i < 32; ++i)
        same[i] = 0.75f;
    CHECK_OK(clora_reference_quantize(CLORA_DTYPE_Q4_1, same, 32, bytes));
    CHECK_OK(clora_reference_dequantize(CLORA_DTYPE_Q4_1, bytes, 32, back));
    test_assert_identical("equal values", back, same, 32);
}

/* ---- refusals ----------------------------------------------------------------------------- */

static void packed_buffers_refuse_what_they_cannot_do(void **state)
{
    (void)state;
    clora_buffer *w = NULL, *view = NULL;
    CHECK_STATUS(clora_buffer_create_packed(&w, test_device, CLORA_DTYPE_Q4_1, 4, 48),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("whole blocks of 32");
    CHECK_STATUS(clora_buffer_create_packed(&w, test_device, CLORA_DTYPE_F32, 4, 48),
                 CLORA_ERR_DTYPE_MISMATCH);
    CHECK_STATUS(clora_buffer_create_packed(&w, test_device, CLORA_DTYPE_Q4_K, 0, 256),
                 CLORA_ERR_INVALID_ARGUMENT);
    CHECK_OK(clora_buffer_create_packed(&w, test_device, CLORA_DTYPE_Q4_1, 4, 64));
    assert_int_equal(clora_buffer_bytes(w), 4 * 2 * 20);
    assert_int_equal(clora_buffer_numel(w), 4 * 64);
    const size_t shape[1] = {64};
    CHECK_STATUS(clora_buffer_view(&view, w, 0, 1, shape), CLORA_ERR_DTYPE_MISMATCH);
    float host[4];
    CHECK_STATUS(clora_buffer_download(w, 0, host, 4), CLORA_ERR_DTYPE_MISMATCH);
    CHECK_STATUS(clora_buffer_fill(w, 1.0f), CLORA_ERR_DTYPE_MISMATCH);
    unsigned char raw[161];
    CHECK_STATUS(clora_buffer_download_bytes(w, 0, raw, 161), CLORA_ERR_BUFFER_TOO_SMALL);
    /* a packed weight has no gradient */
    clora_buffer *x = test_buffer_2d(2, 64, NULL), *dy = test_buffer_2d(2, 4, NULL);
    clora_buffer *dw = test_buffer_2d(4, 64, NULL);
    CHECK_STATUS(clora_linear_backward(NULL, dw, NULL, dy, x, w, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("packed weights stay frozen");
    CHECK_STATUS(clora_reference_quantize(CLORA_DTYPE_Q4_K, host, 0, raw), CLORA_ERR_DTYPE_MISMATCH);
    CHECK_STATUS(clora_reference_dequantize(CLORA_DTYPE_Q8_0, raw, 31, host),
                 CLORA_ERR_INVALID_ARGUMENT);
    clora_buffer_destroy(x);
    clora_buffer_destroy(dy);
    clora_buffer_destroy(dw);
    clora_buffer_destroy(w);
}

/* The memory report counts packed weights by their packed size. */
static void packed_bytes_are_counted_by_type(void **state)
{
    (void)state;
    clora_memory_report before, after;
    CHECK_OK(clora_device_memory(test_device, &before));
    clora_buffer *w = NULL;
    CHECK_OK(clora__buffer_create_packed(&w, test_device, CLORA_DTYPE_Q4_1, CLORA_MEMORY_FROZEN, 10,
                                         256));
    CHECK_OK(clora_device_memory(test_device, &after));
    assert_int_equal(after.bytes[CLORA_MEMORY_FROZEN] - before.bytes[CLORA_MEMORY_FROZEN],
                     10 * 8 * 20);
    assert_int_equal(after.frozen_bytes_by_dtype[CLORA_DTYPE_Q4_1] -
                         before.frozen_bytes_by_dtype[CLORA_DTYPE_Q4_1],
                     10 * 8 * 20);
    clora_buffer_destroy(w);
    CHECK_OK(clora_device_memory(test_device, &after));
    assert_int_equal(after.frozen_bytes_by_dtype[CLORA_DTYPE_Q4_1],
                     before.frozen_bytes_by_dtype[CLORA_DTYPE_Q4_1]);
}


/* ---- whole models ------------------------------------------------------------------------ */

#define GOLDEN CLORA_TEST_GOLDEN_DIR

/* Every LoRA parameter's gradient after L = sum(G * output), in
 * parameter order, and the output; LoRA (rank 4, dropout 0.1) on every
 * Linear with B drawn from a fixed stream, so two models built alike get
 * the same adapters and dropout masks. */
typedef struct run_result {
    float *output, *grads;
    size_t output_count, grad_count;
} run_result;

static void run_free(run_result *r)
{
    free(r->output);
    free(r->grads);
}

static void add_lora(clora_model *model)
{
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 4;
    lora.alpha = 8;
    lora.dropout = 0.1f;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, &replaced));
    assert_true(replaced > 0);
    uint64_t rng = 5;
    test_randomise_lora_b(model, &rng);
}

static run_result run_model(clora_model *model, const clora_buffer *ids)
{
    run_result r;
    memset(&r, 0, sizeof r);
    CHECK_OK(clora_model_set_training(model, 1));
    CHECK_OK(clora_model_zero_grad(model));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    r.output = test_download(y);
    r.output_count = clora_buffer_numel(y);
    float *g = test_alloc(r.output_count);
    uint64_t s = 9;
    test_fill_uniform(g, r.output_count, &s, -1, 1);
    size_t shape[CLORA_MAX_DIMS];
    for (size_t d = 0; d < clora_buffer_ndim(y); ++d)
        shape[d] = clora_buffer_dim(y, d);
    clora_buffer *bg = test_buffer(clora_buffer_ndim(y), shape, g);
    CHECK_OK(clora_model_backward(model, bg));
    const size_t count = clora_model_param_count(model);
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        if (!info.trainable)
            continue;
        const size_t n = clora_buffer_numel(info.grad);
        r.grads = realloc(r.grads, (r.grad_count + n) * sizeof *r.grads);
        assert_non_null(r.grads);
        CHECK_OK(clora_buffer_download(info.grad, 0, r.grads + r.grad_count, n));
        r.grad_count += n;
    }
    clora_buffer_destroy(bg);
    free(g);
    return r;
}

/* The two runs: identical, or within `rtol` of the larger values. */
static void expect_same_run(const char *what, const run_result *a, const run_result *b,
                            double rtol)
{
    assert_int_equal(a->output_count, b->output_count);
    assert_int_equal(a->grad_count, b->grad_count);
    char text[160];
    double scale = 0.0, gscale = 0.0;
    for (size_t i = 0; i < b->output_count; ++i)
        scale = fmax(scale, fabs(b->output[i]));
    for (size_t i = 0; i < b->grad_count; ++i)
        gscale = fmax(gscale, fabs(b->grads[i]));
    snprintf(text, sizeof text, "%s: output", what);
    if (rtol == 0.0)
        test_assert_identical(text, a->output, b->output, a->output_count);
    else
        test_assert_close(text, a->output, b->output, a->output_count, rtol * scale, 0.0);
    snprintf(text, sizeof text, "%s: LoRA gradients", what);
    if (rtol == 0.0)
        test_assert_identical(text, a->grads, b->grads, a->grad_count);
    else
        test_assert_close(text, a->grads, b->grads, a->grad_count, rtol * gscale, 0.0);
}

static clora_model *load_as(const char *path, clora_dtype base_dtype)
{
    clora_load_options o = clora_load_options_default();
    o.base_dtype = base_dtype;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_with(&model, test_device, path, &o));
    return model;
}

/* Bytes of frozen weights held now by storage type. */
static uint64_t frozen_bytes(clora_dtype dtype)
{
    clora_memory_report report;
    CHECK_OK(clora_device_memory(test_device, &report));
    return report.frozen_bytes_by_dtype[dtype];
}

/* GGUF files in every type clora stores: kept packed as the file stores
 * them (their bytes on the device, no more), the logits and LoRA gradients
 * equal those of the same file loaded as float32: the same SGEMMs on the
 * same values (whole layers in one band), bit for bit; in bands of two
 * rows, within 1e-5 of the values (the sums split differently). */
static void gguf_files_stay_packed_and_compute_as_float32(void **state)
{
    (void)state;
    static const char *const files[] = {"llama-F16",  "llama-BF16", "llama-Q8_0",
                                        "llama-Q4_0", "llama-Q4_1", "qwen2-kquants"};
    golden_file gguf;
    golden_load(GOLDEN "/llama_gguf_reference.txt", &gguf);
    for (size_t f = 0; f < sizeof files / sizeof files[0]; ++f) {
        char path[512];
        snprintf(path, sizeof path, "%s/gguf_llama/%s.gguf", GOLDEN, files[f]);
        const golden_case *c = golden_case_get(&gguf, files[f]);
        clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
        /* what the file's packed tensors take */
        clora_gguf *file = NULL;
        CHECK_OK(clora_gguf_open(&file, path));
        uint64_t want[CLORA_DTYPE_COUNT] = {0};
        for (size_t t = 0; t < clora_gguf_tensor_count(file); ++t) {
            clora_gguf_tensor info;
            clora_gguf_tensor_info(file, t, &info);
            clora_dtype d;
            if (info.ndim == 2 && clora_dtype_parse(clora_gguf_tensor_type_name(info.type), &d) ==
                                      CLORA_OK && clora_dtype_is_packed(d))
                want[d] += info.bytes;
        }
        clora_gguf_close(file);
        uint64_t before[CLORA_DTYPE_COUNT];
        for (int d = 0; d < CLORA_DTYPE_COUNT; ++d)
            before[d] = frozen_bytes((clora_dtype)d);
        clora_model *packed = load_as(path, CLORA_DTYPE_AS_STORED);
        for (int d = 0; d < CLORA_DTYPE_COUNT; ++d)
            if (clora_dtype_is_packed((clora_dtype)d) &&
                frozen_bytes((clora_dtype)d) - before[d] != want[d])
                fail_msg("%s: %s weights take %llu bytes on the device; the file's take %llu",
                         files[f], clora_dtype_name((clora_dtype)d),
                         (unsigned long long)(frozen_bytes((clora_dtype)d) - before[d]),
                         (unsigned long long)want[d]);
        clora_model *dense = load_as(path, CLORA_DTYPE_F32);
        add_lora(packed);
        add_lora(dense);
        run_result a = run_model(packed, ids), b = run_model(dense, ids);
        expect_same_run(files[f], &a, &b, 0.0);
        run_free(&a);
        run_free(&b);
        /* again (the next dropout masks), the packed side in bands */
        clora__device_set_dequantize_tile(test_device, 2 * 96);
        a = run_model(packed, ids);
        clora__device_set_dequantize_tile(test_device, 0);
        b = run_model(dense, ids);
        expect_same_run(files[f], &a, &b, 1e-5);
        run_free(&a);
        run_free(&b);
        clora_model_destroy(packed);
        clora_model_destroy(dense);
        clora_buffer_destroy(ids);
    }
    golden_free(&gguf);
}

/* Copies every packed parameter's values (as float32) into the same
 * parameter of `dense`. */
static void copy_packed_values(clora_model *packed, clora_model *dense, size_t *copied)
{
    *copied = 0;
    const size_t count = clora_model_param_count(packed);
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info, other;
        CHECK_OK(clora_model_param(packed, i, &info));
        if (!clora_dtype_is_packed(clora_buffer_dtype(info.value)))
            continue;
        assert_false(info.trainable);
        CHECK_OK(clora_model_find_param(dense, info.name, &other));
        float *v = test_alloc(clora_buffer_numel(info.value));
        CHECK_OK(clora__download_values(info.value, v));
        CHECK_OK(clora_buffer_upload(other.value, 0, v, clora_buffer_numel(info.value)));
        free(v);
        ++*copied;
    }
}

/* Hugging Face folders packed on load: each packed weight holds what the
 * reference quantizer makes of the file's values, and the model computes
 * as a float32 model holding those values does, bit for bit (GPT-2's
 * Conv1D weights are stored (in, out), its lm_head reads the packed wte). */
static void hf_folders_packed_on_load_compute_as_their_values(void **state)
{
    (void)state;
    static const char *const folders[] = {"tiny_gpt2", "tiny_bert", "tiny_llama"};
    const clora_dtype types[] = {CLORA_DTYPE_F16, CLORA_DTYPE_BF16, CLORA_DTYPE_Q8_0,
                                 CLORA_DTYPE_Q4_0, CLORA_DTYPE_Q4_1};
    const int32_t tokens[] = {3, 17, 5, 41, 8, 22, 0, 9};
    const size_t shape[2] = {2, 4};
    clora_buffer *ids = NULL;
    CHECK_OK(clora_buffer_create_typed(&ids, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(ids, 0, tokens, 8));
    for (size_t f = 0; f < sizeof folders / sizeof folders[0]; ++f)
        for (size_t t = 0; t < sizeof types / sizeof types[0]; ++t) {
            char path[512], what[96];
            snprintf(path, sizeof path, "%s/%s", GOLDEN, folders[f]);
            snprintf(what, sizeof what, "%s as %s", folders[f], clora_dtype_name(types[t]));
            clora_model *packed = load_as(path, types[t]);
            clora_model *dense = load_as(path, CLORA_DTYPE_F32);
            /* the packed values are the reference quantizer's */
            const size_t count = clora_model_param_count(packed);
            size_t checked = 0;
            for (size_t i = 0; i < count; ++i) {
                clora_param_info info, other;
                CHECK_OK(clora_model_param(packed, i, &info));
                if (clora_buffer_dtype(info.value) != types[t])
                    continue;
                CHECK_OK(clora_model_find_param(dense, info.name, &other));
                const size_t n = clora_buffer_numel(info.value);
                float *v = test_download(other.value), *got = test_alloc(n), *want = test_alloc(n);
                unsigned char *bytes = malloc(clora_buffer_bytes(info.value));
                assert_non_null(bytes);
                CHECK_OK(clora_reference_quantize(types[t], v, n, bytes));
                CHECK_OK(clora_reference_dequantize(types[t], bytes, n, want));
                CHECK_OK(clora__download_values(info.value, got));
                test_assert_identical(info.name, got, want, n);
                free(v);
                free(got);
                free(want);
                free(bytes);
                ++checked;
            }
            /* tiny_llama's rows of 24 and 37 are no whole blocks of 32 */
            if (types[t] == CLORA_DTYPE_F16 || types[t] == CLORA_DTYPE_BF16 ||
                strcmp(folders[f], "tiny_llama"))
                assert_true(checked > 0);
            size_t copied = 0;
            copy_packed_values(packed, dense, &copied);
            assert_int_equal(copied, checked);
            add_lora(packed);
            add_lora(dense);
            run_result a = run_model(packed, ids), b = run_model(dense, ids);
            expect_same_run(what, &a, &b, 0.0);
            run_free(&a);
            run_free(&b);
            clora_model_destroy(packed);
            clora_model_destroy(dense);
        }
    clora_buffer_destroy(ids);
}

/* Training steps on a Q4_1 GGUF model: the losses are those of the same
 * file loaded as float32, step for step, bit for bit, and they fall. */
static void training_on_a_packed_base_follows_the_float32_run(void **state)
{
    (void)state;
    const char *path = GOLDEN "/gguf_llama/llama-Q4_1.gguf";
    float losses[2][6];
    const int32_t tokens[] = {3, 17, 5, 41, 8, 22, 0, 9, 11, 30, 2, 7};
    const size_t shape[2] = {2, 6};
    clora_buffer *ids = NULL;
    CHECK_OK(clora_buffer_create_typed(&ids, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(ids, 0, tokens, 12));
    for (int side = 0; side < 2; ++side) {
        clora_model *model = load_as(path, side ? CLORA_DTYPE_F32 : CLORA_DTYPE_AS_STORED);
        add_lora(model);
        clora_train_config cfg = clora_train_config_default();
        cfg.optimizer.lr = 1e-2f;
        clora_trainer *trainer = NULL;
        CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
        for (int step = 0; step < 6; ++step)
            CHECK_OK(clora_trainer_step(trainer, ids, ids, &losses[side][step]));
        clora_trainer_destroy(trainer);
        clora_model_destroy(model);
    }
    test_assert_identical("losses", losses[0], losses[1], 6);
    assert_true(losses[0][5] < losses[0][0]);
    clora_buffer_destroy(ids);
}

/* Packed weights stay frozen, merging into them is refused, and a packed
 * model saves the values it stands for. */
static void packed_models_refuse_training_and_merging(void **state)
{
    (void)state;
    const char *path = GOLDEN "/gguf_llama/llama-Q8_0.gguf";
    clora_model *model = load_as(path, CLORA_DTYPE_AS_STORED);
    CHECK_STATUS(clora_model_set_trainable(model, "model.layers.0.self_attn", 1),
                 CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("model.layers.0.self_attn.q_proj.weight is stored packed (Q8_0)");
    CHECK_STATUS(clora_model_set_trainable(model, "model.layers.0.mlp.up_proj.weight", 1),
                 CLORA_ERR_DTYPE_MISMATCH);
    /* the norms are float32 and may train */
    CHECK_OK(clora_model_set_trainable(model, "model.norm", 1));
    clora_param_counts counts;
    CHECK_OK(clora_model_count_params(model, &counts));
    /* a module to save in full that is packed */
    clora_lora_config lora = clora_lora_config_default();
    const char *targets[] = {"q_proj", "v_proj"}, *saved[] = {"model.layers.1.mlp.down_proj"};
    lora.target_modules = targets;
    lora.target_module_count = 2;
    lora.modules_to_save = saved;
    lora.modules_to_save_count = 1;
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL),
                 CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("modules_to_save");
    lora.modules_to_save_count = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    CHECK_STATUS(clora_model_merge_adapter(model), CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("--out-dtype f16");
    /* saved as a clora folder: the values, loaded back as float32 */
    clora_model *plain = load_as(path, CLORA_DTYPE_AS_STORED);
    char dir[64];
    test_temp_dir(dir, "packed-save");
    CHECK_OK(clora_model_save(plain, dir));
    clora_model *loaded = load_as(dir, CLORA_DTYPE_AS_STORED), *dense = load_as(path, CLORA_DTYPE_F32);
    clora_param_info a, b;
    CHECK_OK(clora_model_find_param(loaded, "model.layers.1.mlp.down_proj.weight", &a));
    CHECK_OK(clora_model_find_param(dense, "model.layers.1.mlp.down_proj.weight", &b));
    assert_int_equal(clora_buffer_dtype(a.value), CLORA_DTYPE_F32);
    float *va = test_download(a.value), *vb = test_download(b.value);
    test_assert_identical("saved values", va, vb, clora_buffer_numel(a.value));
    free(va);
    free(vb);
    /* load options that make no sense */
    clora_load_options o = clora_load_options_default();
    o.base_dtype = CLORA_DTYPE_Q4_K;
    clora_model *none = NULL;
    CHECK_STATUS(clora_model_load_with(&none, test_device, path, &o), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("K-quant tensors come from GGUF files");
    o.base_dtype = CLORA_DTYPE_I32;
    CHECK_STATUS(clora_model_load_with(&none, test_device, path, &o), CLORA_ERR_INVALID_ARGUMENT);
    assert_null(none);
    test_remove_dir(dir);
    clora_model_destroy(loaded);
    clora_model_destroy(dense);
    clora_model_destroy(plain);
    clora_model_destroy(model);
}

/* A packed tensor whose scale is NaN is refused when kept packed and when
 * dequantized, naming the tensor; values beyond a type's range are refused
 * when quantized on load. */
static void non_finite_packed_weights_are_refused(void **state)
{
    (void)state;
    const char *src = GOLDEN "/gguf_llama/llama-Q8_0.gguf";
    FILE *f = fopen(src, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc((size_t)n);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    clora_gguf *file = NULL;
    CHECK_OK(clora_gguf_open(&file, src));
    clora_gguf_tensor t;
    const long index = clora_gguf_find_tensor(file, "blk.1.ffn_up.weight");
    assert_true(index >= 0 && clora_gguf_tensor_info(file, (size_t)index, &t));
    clora_gguf_close(file);
    /* the second block's f16 scale d becomes a NaN */
    bytes[t.offset + 34] = 0x00;
    bytes[t.offset + 35] = 0x7e;
    char dir[64], path[128];
    test_temp_dir(dir, "packed-nan");
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(bytes);
    const clora_dtype bases[] = {CLORA_DTYPE_AS_STORED, CLORA_DTYPE_F32, CLORA_DTYPE_Q4_1};
    for (size_t i = 0; i < sizeof bases / sizeof bases[0]; ++i) {
        clora_load_options o = clora_load_options_default();
        o.base_dtype = bases[i];
        clora_model *model = NULL;
        CHECK_STATUS(clora_model_load_with(&model, test_device, path, &o), CLORA_ERR_NON_FINITE);
        test_expect_message("blk.1.ffn_up.weight");
        assert_null(model);
    }
    test_remove_dir(dir);
    /* 1e7 is beyond F16 (65504), and its Q8_0 scale 1e7 / 127 too */
    const clora_dtype types[] = {CLORA_DTYPE_F16, CLORA_DTYPE_Q8_0};
    float values[64];
    for (size_t i = 0; i < 64; ++i)
        values[i] = i == 37 ? 1e7f : 0.5f;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i) {
        clora_buffer *w = NULL;
        CHECK_OK(clora_buffer_create_packed(&w, test_device, types[i], 2, 32));
        CHECK_STATUS(clora__upload_values(w, values, "tensor \"big\""), CLORA_ERR_NON_FINITE);
        test_expect_message("beyond what");
        clora_buffer_destroy(w);
    }
}

/* argv[1]: a cmocka test filter (tests/oclgrind_check.sh runs the kernel
 * tests on their own). */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dequantize_matches_the_reference_bit_for_bit),
        cmocka_unit_test(packed_embedding_rows_are_the_reference_rows),
        cmocka_unit_test(packed_products_equal_the_float32_products),
        cmocka_unit_test(the_fused_kernel_serves_up_to_four_rows),
        cmocka_unit_test(halves_round_to_nearest_even),
        cmocka_unit_test(quantizers_round_within_half_a_step),
        cmocka_unit_test(packed_buffers_refuse_what_they_cannot_do),
        cmocka_unit_test(packed_bytes_are_counted_by_type),
        cmocka_unit_test(gguf_files_stay_packed_and_compute_as_float32),
        cmocka_unit_test(hf_folders_packed_on_load_compute_as_their_values),
        cmocka_unit_test(training_on_a_packed_base_follows_the_float32_run),
        cmocka_unit_test(packed_models_refuse_training_and_merging),
        cmocka_unit_test(non_finite_packed_weights_are_refused),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
