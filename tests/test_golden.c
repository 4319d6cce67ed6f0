/* test_golden.c — the LoRA op (and clora's plain-C reference) against data
 * PyTorch produced with the seed's own LoRALayer / LinearWithLoRA classes
 * and with PEFT's layout and scaling (tests/golden/make_golden.py).
 *
 * The seed stores A_seed (in, r) and B_seed (r, out) and scales by alpha;
 * clora stores A = A_seedᵀ (r, in), B = B_seedᵀ (out, r) and uses
 * CLORA_SCALE_ALPHA for it. The gradients map the same way. */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "golden.h"

static golden_file golden;

static int setup(void **state)
{
    golden_load(CLORA_TEST_GOLDEN_DIR "/lora_layer.txt", &golden);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&golden);
    return test_close_device(state);
}

/* A (rows, cols) copy of the transpose of a (cols, rows) golden tensor. */
static float *transposed(const golden_tensor *t)
{
    assert_int_equal(t->ndim, 2);
    size_t rows = t->shape[1], cols = t->shape[0];
    float *out = test_alloc(rows * cols);
    for (size_t i = 0; i < rows; ++i)
        for (size_t j = 0; j < cols; ++j)
            out[i * cols + j] = t->data[j * rows + i];
    return out;
}

static clora_scale_mode scale_mode_of(const char *name)
{
    if (!strcmp(name, "alpha"))
        return CLORA_SCALE_ALPHA;
    if (!strcmp(name, "alpha_over_r"))
        return CLORA_SCALE_ALPHA_OVER_R;
    if (!strcmp(name, "alpha_over_sqrt_r"))
        return CLORA_SCALE_ALPHA_OVER_SQRT_R;
    fail_msg("unknown scale mode %s", name);
    return CLORA_SCALE_ALPHA;
}

/* Runs one golden case on the device and through the reference. */
static void check_case(const char *name)
{
    const golden_case *c = golden_case_get(&golden, name);
    const int seed_layout = strncmp(name, "seed_", 5) == 0;
    const golden_tensor *x = golden_tensor_get(c, "x"), *w = golden_tensor_get(c, "weight");
    const golden_tensor *bias = golden_tensor_get(c, "bias"), *weights = golden_tensor_get(c, "R");
    const golden_tensor *y_want = golden_tensor_get(c, "y"), *dx_want = golden_tensor_get(c, "dx");

    /* A (r, in), B (out, r) and their expected gradients in clora's layout. */
    float *a, *b, *da_want, *db_want;
    if (seed_layout) {
        a = transposed(golden_tensor_get(c, "A_seed"));
        b = transposed(golden_tensor_get(c, "B_seed"));
        da_want = transposed(golden_tensor_get(c, "dA_seed"));
        db_want = transposed(golden_tensor_get(c, "dB_seed"));
    } else {
        const golden_tensor *ga = golden_tensor_get(c, "lora_A"), *gb = golden_tensor_get(c, "lora_B");
        const golden_tensor *gda = golden_tensor_get(c, "d_lora_A");
        const golden_tensor *gdb = golden_tensor_get(c, "d_lora_B");
        a = test_alloc(ga->numel);
        b = test_alloc(gb->numel);
        da_want = test_alloc(gda->numel);
        db_want = test_alloc(gdb->numel);
        memcpy(a, ga->data, ga->numel * sizeof *a);
        memcpy(b, gb->data, gb->numel * sizeof *b);
        memcpy(da_want, gda->data, gda->numel * sizeof *a);
        memcpy(db_want, gdb->data, gdb->numel * sizeof *b);
    }
    const size_t n = x->shape[0], in = x->shape[1], out = y_want->shape[1];
    const size_t r = (size_t)golden_param_number(c, "rank");
    clora_weight_layout layout = CLORA_WEIGHT_OUT_IN;
    if (!seed_layout && !strcmp(golden_param(c, "layout"), "in_out"))
        layout = CLORA_WEIGHT_IN_OUT;
    clora_lora_spec spec = {(float)golden_param_number(c, "alpha"),
                            scale_mode_of(golden_param(c, "scale_mode")), 0.0f, 0, layout};

    clora_buffer *bx = test_buffer_2d(n, in, x->data);
    clora_buffer *bw = test_buffer_2d(w->shape[0], w->shape[1], w->data);
    clora_buffer *bb = test_buffer_1d(out, bias->data);
    clora_buffer *ba = test_buffer_2d(r, in, a), *bbm = test_buffer_2d(out, r, b);
    clora_buffer *by = test_buffer_2d(n, out, NULL), *bh = test_buffer_2d(n, r, NULL);
    clora_buffer *bdy = test_buffer_2d(n, out, weights->data);
    clora_buffer *bdx = test_buffer_2d(n, in, NULL);
    clora_buffer *bda = test_buffer_2d(r, in, NULL), *bdb = test_buffer_2d(out, r, NULL);

    CHECK_OK(clora_lora_forward(by, bh, bx, bw, bb, ba, bbm, &spec));
    CHECK_OK(clora_lora_backward(bdx, bda, bdb, bdy, bx, bh, bw, ba, bbm, &spec));
    float *y = test_download(by), *dx = test_download(bdx);
    float *da = test_download(bda), *db = test_download(bdb);
    test_assert_close("device y vs PyTorch", y, y_want->data, n * out, 1e-5, 1e-4);
    test_assert_close("device dx vs PyTorch", dx, dx_want->data, n * in, 1e-5, 1e-4);
    test_assert_close("device dA vs PyTorch", da, da_want, r * in, 1e-5, 1e-4);
    test_assert_close("device dB vs PyTorch", db, db_want, out * r, 1e-5, 1e-4);

    /* The plain-C reference the other tests trust agrees with PyTorch too. */
    float *ry = test_alloc(n * out), *rdx = test_alloc(n * in);
    float *rda = test_alloc(r * in), *rdb = test_alloc(out * r);
    CHECK_OK(clora_reference_lora_forward(ry, NULL, x->data, w->data, bias->data, a, b, n, in, out,
                                          r, &spec));
    CHECK_OK(clora_reference_lora_backward(rdx, rda, rdb, weights->data, x->data, w->data, a, b,
                                           n, in, out, r, &spec));
    test_assert_close("reference y vs PyTorch", ry, y_want->data, n * out, 1e-5, 1e-4);
    test_assert_close("reference dx vs PyTorch", rdx, dx_want->data, n * in, 1e-5, 1e-4);
    test_assert_close("reference dA vs PyTorch", rda, da_want, r * in, 1e-5, 1e-4);
    test_assert_close("reference dB vs PyTorch", rdb, db_want, out * r, 1e-5, 1e-4);

    float *host[] = {a, b, da_want, db_want, y, dx, da, db, ry, rdx, rda, rdb};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {bx, bw, bb, ba, bbm, by, bh, bdy, bdx, bda, bdb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

static void seed_small(void **state)
{
    (void)state;
    check_case("seed_small");
}

static void seed_wider(void **state)
{
    (void)state;
    check_case("seed_wider");
}

static void seed_rank1_row1(void **state)
{
    (void)state;
    check_case("seed_rank1_row1");
}

static void peft_small(void **state)
{
    (void)state;
    check_case("peft_small");
}

static void peft_rank_above_in(void **state)
{
    (void)state;
    check_case("peft_rank_above_in");
}

static void rslora_fan_in_fan_out(void **state)
{
    (void)state;
    check_case("rslora_fan_in_fan_out");
}

static void peft_fan_in_fan_out(void **state)
{
    (void)state;
    check_case("peft_fan_in_fan_out");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_small),
        cmocka_unit_test(seed_wider),
        cmocka_unit_test(seed_rank1_row1),
        cmocka_unit_test(peft_small),
        cmocka_unit_test(peft_rank_above_in),
        cmocka_unit_test(rslora_fan_in_fan_out),
        cmocka_unit_test(peft_fan_in_fan_out),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
