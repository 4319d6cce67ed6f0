/* test_golden.c — the LoRA op (and clora's plain-C reference) against data
 * PyTorch produced with the seed's own LoRALayer / LinearWithLoRA classes
 * and with PEFT's layout and scaling (tests/golden/make_golden.py).
 *
 * The seed stores A_seed (in, r) and B_seed (r, out) and scales by alpha;
 * clora stores A = A_seedᵀ (r, in), B = B_seedᵀ (out, r) and uses
 * CLORA_SCALE_ALPHA for it. The gradients map the same way. */
#include "support.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"

static golden_file golden, training, peft;

static int setup(void **state)
{
    golden_load(CLORA_TEST_GOLDEN_DIR "/lora_layer.txt", &golden);
    golden_load(CLORA_TEST_GOLDEN_DIR "/seed_training.txt", &training);
    golden_load(CLORA_TEST_GOLDEN_DIR "/peft_reference.txt", &peft);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&golden);
    golden_free(&training);
    golden_free(&peft);
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
                            scale_mode_of(golden_param(c, "scale_mode")), 0.0f, 0, layout, 0};

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

/* ---- training: the seed's replace_linear_with_lora and an optimizer ---------- */

static void upload_param(clora_model *model, const char *name, const float *values, size_t n)
{
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, name, &info));
    assert_int_equal(clora_buffer_numel(info.value), n);
    CHECK_OK(clora_buffer_upload(info.value, 0, values, n));
}

static void compare_param(clora_model *model, const char *name, const float *want, size_t n,
                          const char *what)
{
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, name, &info));
    float *got = test_download(info.value);
    test_assert_close(what, got, want, n, 1e-5, 1e-4);
    free(got);
}

static void check_training(const char *name)
{
    const golden_case *c = golden_case_get(&training, name);
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 1));
    clora_node *root = clora_model_root(model);
    CHECK_OK(clora_node_add_linear(root, "0", 6, 8, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "1", CLORA_NODE_RELU, NULL));
    CHECK_OK(clora_node_add_linear(root, "2", 8, 5, 1, NULL));
    upload_param(model, "0.weight", golden_tensor_get(c, "w0")->data, 48);
    upload_param(model, "0.bias", golden_tensor_get(c, "b0")->data, 8);
    upload_param(model, "2.weight", golden_tensor_get(c, "w2")->data, 40);
    upload_param(model, "2.bias", golden_tensor_get(c, "b2")->data, 5);

    /* The seed's call: replace_linear_with_lora(model, rank=3, alpha=1.5). */
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = (size_t)golden_param_number(c, "rank");
    lora.alpha = (float)golden_param_number(c, "alpha");
    lora.scale_mode = CLORA_SCALE_ALPHA;
    lora.init = CLORA_INIT_SEED;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(root, &lora, &replaced));
    assert_int_equal(replaced, 2);
    float *a0 = transposed(golden_tensor_get(c, "A0_seed"));
    float *a2 = transposed(golden_tensor_get(c, "A2_seed"));
    upload_param(model, "0.lora_A.default.weight", a0, 18);
    upload_param(model, "2.lora_A.default.weight", a2, 24);

    clora_train_config cfg = clora_train_config_default();
    if (!strcmp(golden_param(c, "optimizer"), "adamw")) {
        cfg.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
        cfg.optimizer.weight_decay = (float)golden_param_number(c, "weight_decay");
    } else {
        cfg.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
        cfg.optimizer.momentum = (float)golden_param_number(c, "momentum");
    }
    cfg.optimizer.lr = (float)golden_param_number(c, "lr");
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));

    const golden_tensor *x = golden_tensor_get(c, "x"), *labels = golden_tensor_get(c, "labels");
    const golden_tensor *losses = golden_tensor_get(c, "losses");
    clora_buffer *bx = test_buffer_2d(10, 6, x->data), *by = NULL;
    int32_t ids[10];
    for (int i = 0; i < 10; ++i)
        ids[i] = (int32_t)labels->data[i];
    const size_t n = 10;
    CHECK_OK(clora_buffer_create_typed(&by, test_device, CLORA_DTYPE_I32, 1, &n));
    CHECK_OK(clora_buffer_upload_i32(by, 0, ids, 10));
    for (size_t step = 0; step < losses->numel; ++step) {
        float loss = 0;
        CHECK_OK(clora_trainer_step(trainer, bx, by, &loss));
        if (fabs(loss - losses->data[step]) > 1e-5 + 1e-5 * fabs(losses->data[step]))
            fail_msg("%s step %zu: loss %.8g, PyTorch %.8g", name, step, (double)loss,
                     (double)losses->data[step]);
    }
    float *want;
    want = transposed(golden_tensor_get(c, "A0_final"));
    compare_param(model, "0.lora_A.default.weight", want, 18, "A of layer 0 after training");
    free(want);
    want = transposed(golden_tensor_get(c, "B0_final"));
    compare_param(model, "0.lora_B.default.weight", want, 24, "B of layer 0 after training");
    free(want);
    want = transposed(golden_tensor_get(c, "A2_final"));
    compare_param(model, "2.lora_A.default.weight", want, 24, "A of layer 2 after training");
    free(want);
    want = transposed(golden_tensor_get(c, "B2_final"));
    compare_param(model, "2.lora_B.default.weight", want, 15, "B of layer 2 after training");
    free(want);
    /* the frozen base is what PyTorch started from */
    compare_param(model, "0.base_layer.weight", golden_tensor_get(c, "w0")->data, 48,
                  "frozen weight after training");
    const clora_buffer *logits = NULL;
    CHECK_OK(clora_model_forward(model, bx, &logits));
    float *got = test_download(logits);
    test_assert_close("logits after training", got, golden_tensor_get(c, "logits")->data, 50,
                      1e-5, 1e-4);
    free(got);
    free(a0);
    free(a2);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_trainer_destroy(trainer);
    clora_model_destroy(model);
}

static void seed_replace_linear_with_lora_adamw(void **state)
{
    (void)state;
    check_training("seed_adamw");
}

static void seed_replace_linear_with_lora_sgd(void **state)
{
    (void)state;
    check_training("seed_sgd");
}

/* ---- an adapter written by PEFT itself (tests/golden/make_peft_golden.py) ---- */

static void peft_written_adapter_gives_peft_outputs(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&peft, "peft_net");
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 1));
    clora_node *root = clora_model_root(model);
    CHECK_OK(clora_node_add_linear(root, "fc1", 4, 8, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_linear(root, "fc2", 8, 8, 1, NULL));
    CHECK_OK(clora_node_add_layer_norm(root, "norm", 8, 1e-5f, NULL));
    CHECK_OK(clora_node_add_linear(root, "head", 8, 3, 1, NULL));
    const char *names[8][2] = {{"fc1.weight", "fc1_weight"},   {"fc1.bias", "fc1_bias"},
                               {"fc2.weight", "fc2_weight"},   {"fc2.bias", "fc2_bias"},
                               {"norm.weight", "norm_weight"}, {"norm.bias", "norm_bias"},
                               {"head.weight", "head_weight"}, {"head.bias", "head_bias"}};
    for (int i = 0; i < 8; ++i) {
        const golden_tensor *t = golden_tensor_get(c, names[i][1]);
        upload_param(model, names[i][0], t->data, t->numel);
    }
    CHECK_OK(clora_adapter_load(model, CLORA_TEST_GOLDEN_DIR "/peft_adapter", NULL));
    clora_param_info info; /* rank_pattern {"head": 2} took effect */
    CHECK_OK(clora_model_find_param(model, "head.lora_A.default.weight", &info));
    assert_int_equal(clora_buffer_dim(info.value, 0), 2);
    const golden_tensor *x = golden_tensor_get(c, "x");
    clora_buffer *bx = test_buffer_2d(6, 4, x->data);
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, bx, &y));
    float *got = test_download(y);
    test_assert_close("logits with PEFT's adapter", got, golden_tensor_get(c, "logits")->data, 18,
                      1e-5, 1e-4);
    free(got);
    clora_buffer_destroy(bx);
    clora_model_destroy(model);
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
        cmocka_unit_test(seed_replace_linear_with_lora_adamw),
        cmocka_unit_test(seed_replace_linear_with_lora_sgd),
        cmocka_unit_test(peft_written_adapter_gives_peft_outputs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
