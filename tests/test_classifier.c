/* test_classifier.c — sequence classification on decoders: the last-token
 * pooling kernels against plain C; LlamaForSequenceClassification and
 * GPT2ForSequenceClassification with PEFT adapters against PyTorch
 * (tests/golden/make_classifier_golden.py), the head trained in full and
 * with LoRA on it; the head's weight through an adapter saved and loaded;
 * finite differences through the pooling; and the models clora refuses to
 * give a classifier. The kernel check calls ops directly (nn/nn.h). */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_checks.h"
#include "nn/nn.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static golden_file reference;

static int setup(void **state)
{
    golden_load(GOLDEN "/classifier_reference.txt", &reference);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&reference);
    return test_close_device(state);
}

/* ---- the kernels against plain C ---------------------------------------------------------- */

/* Rows ending in padding, keeping every token, keeping none, and with a
 * hole before the last kept token; then the same without a mask. */
static void last_token_pool_matches_reference(void **state)
{
    (void)state;
    enum { B = 4, T = 5, C = 13 };
    static const int32_t mask[B * T] = {1, 1, 1, 0, 0, 1, 1, 1, 1, 1,
                                        0, 0, 0, 0, 0, 1, 0, 1, 1, 0};
    uint64_t rng = 21;
    float x[B * T * C], dy[B * C], y[B * C], dx[B * T * C];
    test_fill_uniform(x, B * T * C, &rng, -2.0f, 2.0f);
    test_fill_uniform(dy, B * C, &rng, -1.0f, 1.0f);
    const size_t xshape[3] = {B, T, C}, mshape[2] = {B, T};
    clora_buffer *bx = test_buffer(3, xshape, x), *bdy = test_buffer_2d(B, C, dy);
    clora_buffer *by = test_buffer_2d(B, C, NULL), *bdx = test_buffer(3, xshape, NULL);
    clora_buffer *bmask = NULL;
    CHECK_OK(clora_buffer_create_typed(&bmask, test_device, CLORA_DTYPE_I32, 2, mshape));
    CHECK_OK(clora_buffer_upload_i32(bmask, 0, mask, B * T));
    for (int masked = 1; masked >= 0; --masked) {
        for (size_t b = 0; b < B; ++b) {
            size_t last = masked ? 0 : T - 1;
            for (size_t t = 0; masked && t < T; ++t)
                if (mask[b * T + t])
                    last = t;
            for (size_t t = 0; t < T; ++t)
                for (size_t c = 0; c < C; ++c) {
                    if (t == last)
                        y[b * C + c] = x[(b * T + t) * C + c];
                    dx[(b * T + t) * C + c] = t == last ? dy[b * C + c] : 0.0f;
                }
        }
        const clora_buffer *m = masked ? bmask : NULL;
        CHECK_OK(clora__last_token_pool_forward(by, bx, m));
        float *got = test_download(by);
        test_assert_close("last_token_pool", got, y, B * C, 0.0, 0.0);
        free(got);
        CHECK_OK(clora__last_token_pool_backward(bdx, bdy, m));
        got = test_download(bdx);
        test_assert_close("last_token_pool_backward", got, dx, B * T * C, 0.0, 0.0);
        free(got);
    }
    clora_buffer *all[] = {bx, bdy, by, bdx, bmask};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
}

/* ---- PyTorch golden data --------------------------------------------------------------- */

/* A Hugging Face decoder with a classifier of `labels`, seeded by `seed`. */
static clora_model *classifier_model(const char *dir, size_t labels, uint64_t seed)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, dir, 0, 0));
    CHECK_OK(clora_model_add_classifier(model, labels, 0.0f, seed));
    return model;
}

/* Logits and every trainable parameter's gradient of the golden case. */
static void expect_case(clora_model *model, const golden_case *c, size_t labels, size_t grads)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_forward(model, ids, &y));
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[1], labels);
    test_expect_golden("classifier logits", y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);
    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(test_expect_golden_grads(model, c, 1e-4, 1e-3), grads);
    CHECK_OK(clora_model_set_attention_mask(model, NULL));
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
}

/* PEFT's SEQ_CLS task: LoRA on q_proj and v_proj, "score" trained in full
 * and saved with the adapter (modules_to_save lists "classifier" too,
 * which this model lacks). */
static void llama_head_in_full(void **state)
{
    (void)state;
    clora_model *model = classifier_model(GOLDEN "/tiny_llama", 3, 1);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_llama_cls_lora", "default"));
    clora_node *score = NULL;
    CHECK_OK(clora_model_find(model, "score", &score));
    assert_int_equal(clora_node_kind_of(score), CLORA_NODE_LINEAR);
    /* 2 layers, 2 projections, A and B; score.weight */
    expect_case(model, golden_case_get(&reference, "llama_cls"), 3, 2 * 2 * 2 + 1);
    clora_model_destroy(model);
}

/* LoRA on c_attn and on the head itself, over the frozen random head the
 * adapter carries; saved again, the adapter brings that head to a model
 * whose own head was drawn from another seed. */
static void gpt2_lora_on_head(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "gpt2_cls");
    clora_model *model = classifier_model(GOLDEN "/tiny_gpt2", 2, 1);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_gpt2_cls_lora", "default"));
    expect_case(model, c, 2, 2 * 2 + 2);
    char dir[64];
    test_temp_dir(dir, "cls-adapter");
    CHECK_OK(clora_adapter_save(model, NULL, dir));
    clora_model_destroy(model);

    char path[128];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_open(&file, path));
    CHECK_OK(clora_safetensors_find(file, "base_model.model.score.base_layer.weight", &view));
    assert_int_equal(view.shape[0], 2);
    assert_int_equal(clora_safetensors_find(file, "base_model.model.score.weight", &view),
                     CLORA_ERR_NOT_FOUND);
    clora_safetensors_close(file);
    model = classifier_model(GOLDEN "/tiny_gpt2", 2, 77);
    CHECK_OK(clora_adapter_load(model, dir, "default"));
    expect_case(model, c, 2, 2 * 2 + 2);
    clora_model_destroy(model);
    test_remove_dir(dir);
}

/* Backward through the pooling and the head against central differences,
 * rows padded to different lengths. */
static void finite_differences_through_the_head(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "llama_cls");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    clora_model *model = classifier_model(GOLDEN "/tiny_llama", 3, 5);
    static const char *const targets[] = {"v_proj", "score"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, ids, mask, targets, 2, &replaced) > 0);
    assert_int_equal(replaced, 3);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
}

/* ---- refusals -------------------------------------------------------------------------- */

static void refusals(void **state)
{
    (void)state;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_llama", 0, 0));
    assert_int_equal(clora_model_add_classifier(model, 0, 0.0f, 1), CLORA_ERR_INVALID_ARGUMENT);
    assert_int_equal(clora_model_add_classifier(model, 2, -1.0f, 1), CLORA_ERR_INVALID_ARGUMENT);
    clora_lora_config lora = clora_lora_config_default();
    static const char *const all[] = {"lm_head"}; /* untied in this model */
    lora.target_modules = all;
    lora.target_module_count = 1;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, &replaced));
    assert_int_equal(clora_model_add_classifier(model, 2, 0.0f, 1), CLORA_ERR_STATE);
    assert_non_null(strstr(clora_last_error(), "before applying LoRA"));
    clora_model_destroy(model);

    model = classifier_model(GOLDEN "/tiny_gpt2", 2, 1);
    assert_int_equal(clora_model_add_classifier(model, 2, 0.0f, 1), CLORA_ERR_STATE);
    assert_non_null(strstr(clora_last_error(), "already"));
    /* an adapter of another head size */
    assert_int_not_equal(clora_adapter_load(model, GOLDEN "/tiny_llama_cls_lora", "default"),
                         CLORA_OK);
    clora_model_destroy(model);

    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_bert", 0, 0));
    assert_int_equal(clora_model_add_classifier(model, 2, 0.0f, 1), CLORA_ERR_UNSUPPORTED);
    clora_model_destroy(model);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(last_token_pool_matches_reference),
        cmocka_unit_test(llama_head_in_full),
        cmocka_unit_test(gpt2_lora_on_head),
        cmocka_unit_test(finite_differences_through_the_head),
        cmocka_unit_test(refusals),
    };
    if (argc > 1) /* run only the tests whose names match */
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
