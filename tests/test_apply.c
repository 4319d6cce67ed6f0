/* test_apply.c — replace_linear_with_lora: which layers it wraps (every
 * Linear, PEFT target lists, regexes, excludes), per-module rank and alpha,
 * freezing and modules_to_save, init modes, a second call, bad configs;
 * named adapters; merge and unmerge. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* fc1 Linear(4, 8), act GELU, blocks.0.{fc Linear(8, 8), norm LayerNorm(8)}, head Linear(8, 3) */
static clora_model *small_tree(uint64_t seed)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, seed));
    clora_node *root = clora_model_root(model), *blocks, *block;
    CHECK_OK(clora_node_add_linear(root, "fc1", 4, 8, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_sequential(root, "blocks", &blocks));
    CHECK_OK(clora_node_add_sequential(blocks, "0", &block));
    CHECK_OK(clora_node_add_linear(block, "fc", 8, 8, 1, NULL));
    CHECK_OK(clora_node_add_layer_norm(block, "norm", 8, 1e-5f, NULL));
    CHECK_OK(clora_node_add_linear(root, "head", 8, 3, 1, NULL));
    return model;
}

static clora_node_kind kind_at(clora_model *model, const char *path)
{
    clora_node *node = NULL;
    if (clora_model_find(model, path, &node) != CLORA_OK)
        return CLORA_NODE_KIND_COUNT;
    return clora_node_kind_of(node);
}

/* The model's output for a fixed input (freed by the caller). */
static float *output_of(clora_model *model)
{
    float x[5 * 4];
    uint64_t rng = 77;
    test_fill_uniform(x, 20, &rng, -1, 1);
    clora_buffer *bx = test_buffer_2d(5, 4, x);
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, bx, &y));
    float *out = test_download(y);
    clora_buffer_destroy(bx);
    return out;
}

static void fill_param(clora_model *model, const char *name, float lo, float hi, uint64_t seed)
{
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, name, &info));
    size_t n = clora_buffer_numel(info.value);
    float *v = test_alloc(n);
    test_fill_uniform(v, n, &seed, lo, hi);
    CHECK_OK(clora_buffer_upload(info.value, 0, v, n));
    free(v);
}

static size_t trainable_count(clora_model *model)
{
    clora_param_counts counts;
    CHECK_OK(clora_model_count_params(model, &counts));
    return counts.trainable;
}

static void wraps_every_linear_like_the_seed(void **state)
{
    (void)state;
    clora_model *model = small_tree(1);
    float *before = output_of(model);
    clora_lora_config cfg = clora_lora_config_default();
    cfg.rank = 2;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced));
    assert_int_equal(replaced, 3);
    assert_int_equal(kind_at(model, "fc1"), CLORA_NODE_LORA);
    assert_int_equal(kind_at(model, "fc1.base_layer"), CLORA_NODE_LINEAR);
    assert_int_equal(kind_at(model, "blocks.0.fc"), CLORA_NODE_LORA);
    assert_int_equal(kind_at(model, "head"), CLORA_NODE_LORA);
    assert_int_equal(kind_at(model, "blocks.0.norm"), CLORA_NODE_LAYER_NORM);
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "fc1.base_layer.weight", &info));
    assert_false(info.trainable);
    CHECK_OK(clora_model_find_param(model, "blocks.0.norm.weight", &info));
    assert_false(info.trainable);
    CHECK_OK(clora_model_find_param(model, "fc1.lora_A.default.weight", &info));
    assert_true(info.trainable);
    assert_int_equal(clora_buffer_dim(info.value, 0), 2);
    assert_int_equal(clora_buffer_dim(info.value, 1), 4);
    CHECK_OK(clora_model_find_param(model, "head.lora_B.default.weight", &info));
    assert_int_equal(clora_buffer_dim(info.value, 0), 3);
    /* only A and B train: r·(in + out) per layer */
    assert_int_equal(trainable_count(model), 2 * (4 + 8) + 2 * (8 + 8) + 2 * (8 + 3));
    /* B = 0: the output is exactly the base model's */
    float *after = output_of(model);
    test_assert_identical("output after wrapping", after, before, 15);
    assert_string_equal(clora_model_active_adapter(model), "default");

    /* a second call wraps nothing again */
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced));
    assert_int_equal(replaced, 0);
    assert_int_equal(kind_at(model, "fc1.base_layer.base_layer"), CLORA_NODE_KIND_COUNT);
    free(before);
    free(after);
    clora_model_destroy(model);
}

static void target_lists_regexes_and_excludes(void **state)
{
    (void)state;
    struct {
        const char *targets[2];
        size_t count;
        const char *regex;
        const char *exclude;
        size_t want;
        const char *wrapped;
    } cases[] = {
        {{"fc"}, 1, NULL, NULL, 1, "blocks.0.fc"}, /* ends with ".fc"; fc1 does not */
        {{"head", "fc1"}, 2, NULL, NULL, 2, "fc1"},
        {{"blocks.0.fc"}, 1, NULL, NULL, 1, "blocks.0.fc"},
        {{0}, 0, "blocks\\.0\\.f.", NULL, 1, "blocks.0.fc"},
        {{0}, 0, "(fc1|head)", NULL, 2, "head"},
        {{0}, 0, NULL, "head", 2, "fc1"},
        {{"fc", "fc1"}, 2, NULL, "fc", 1, "fc1"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        clora_model *model = small_tree(2);
        clora_lora_config cfg = clora_lora_config_default();
        cfg.target_modules = cases[i].targets;
        cfg.target_module_count = cases[i].count;
        cfg.target_regex = cases[i].regex;
        const char *exclude[1] = {cases[i].exclude};
        cfg.exclude_modules = exclude;
        cfg.exclude_module_count = cases[i].exclude ? 1 : 0;
        size_t replaced = 99;
        CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced));
        if (replaced != cases[i].want)
            fail_msg("case %zu wrapped %zu layers, expected %zu", i, replaced, cases[i].want);
        assert_int_equal(kind_at(model, cases[i].wrapped), CLORA_NODE_LORA);
        clora_model_destroy(model);
    }
}

static void subtree_roots_and_missing_targets(void **state)
{
    (void)state;
    clora_model *model = small_tree(3);
    clora_node *blocks = NULL;
    CHECK_OK(clora_model_find(model, "blocks", &blocks));
    clora_lora_config cfg = clora_lora_config_default();
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(blocks, &cfg, &replaced));
    assert_int_equal(replaced, 1);
    assert_int_equal(kind_at(model, "fc1"), CLORA_NODE_LINEAR);
    clora_model_destroy(model);

    model = small_tree(3);
    const char *missing[2] = {"fc1", "q_proj"};
    cfg.target_modules = missing;
    cfg.target_module_count = 2;
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced),
                 CLORA_ERR_NOT_FOUND);
    test_expect_message("target modules not found in the model: q_proj");
    /* nothing was wrapped */
    assert_int_equal(kind_at(model, "fc1"), CLORA_NODE_LINEAR);
    assert_int_equal(trainable_count(model), 4 * 8 + 8 + 8 * 8 + 8 + 16 + 8 * 3 + 3);

    const char *norm[1] = {"norm"};
    cfg.target_modules = norm;
    cfg.target_module_count = 1;
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("target module \"blocks.0.norm\" is layer_norm");
    cfg.target_modules = NULL;
    cfg.target_module_count = 0;
    cfg.target_regex = "blocks.*";
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &cfg, &replaced),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("\"blocks\" is sequential");
    clora_model_destroy(model);
}

static void rank_and_alpha_patterns(void **state)
{
    (void)state;
    clora_model *model = small_tree(4);
    clora_lora_config cfg = clora_lora_config_default();
    const clora_pattern_value ranks[2] = {{"fc1", 4}, {"blocks\\.[0-9]+\\.fc", 16}};
    const clora_pattern_value alphas[1] = {{"head", 32}};
    cfg.rank_pattern = ranks;
    cfg.rank_pattern_count = 2;
    cfg.alpha_pattern = alphas;
    cfg.alpha_pattern_count = 1;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "fc1.lora_A.default.weight", &info));
    assert_int_equal(clora_buffer_dim(info.value, 0), 4);
    CHECK_OK(clora_model_find_param(model, "blocks.0.fc.lora_B.default.weight", &info));
    assert_int_equal(clora_buffer_dim(info.value, 1), 16);
    CHECK_OK(clora_model_find_param(model, "head.lora_A.default.weight", &info));
    assert_int_equal(clora_buffer_dim(info.value, 0), 8);
    clora_model_destroy(model);
}

static void modules_to_save_stay_trainable(void **state)
{
    (void)state;
    clora_model *model = small_tree(5);
    clora_lora_config cfg = clora_lora_config_default();
    const char *targets[1] = {"fc1"}, *save[1] = {"head"};
    cfg.target_modules = targets;
    cfg.target_module_count = 1;
    cfg.modules_to_save = save;
    cfg.modules_to_save_count = 1;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "head.weight", &info));
    assert_true(info.trainable);
    CHECK_OK(clora_model_find_param(model, "blocks.0.fc.weight", &info));
    assert_false(info.trainable);
    assert_int_equal(trainable_count(model), 8 * (4 + 8) + 8 * 3 + 3);
    const char *nothing[1] = {"classifier"};
    cfg.modules_to_save = nothing;
    cfg.adapter_name = "other";
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL),
                 CLORA_ERR_NOT_FOUND);
    test_expect_message("modules_to_save not found: classifier");
    clora_model_destroy(model);
}

static void init_modes_follow_their_distributions(void **state)
{
    (void)state;
    const clora_init_mode modes[3] = {CLORA_INIT_PEFT, CLORA_INIT_SEED, CLORA_INIT_GAUSSIAN};
    for (int m = 0; m < 3; ++m) {
        clora_model *model = NULL;
        CHECK_OK(clora_model_create(&model, test_device, 6));
        CHECK_OK(clora_node_add_linear(clora_model_root(model), "big", 400, 300, 0, NULL));
        clora_lora_config cfg = clora_lora_config_default();
        cfg.rank = 16;
        cfg.init = modes[m];
        CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
        clora_param_info a, b;
        CHECK_OK(clora_model_find_param(model, "big.lora_A.default.weight", &a));
        CHECK_OK(clora_model_find_param(model, "big.lora_B.default.weight", &b));
        float *va = test_download(a.value), *vb = test_download(b.value);
        size_t n = 16 * 400;
        double max = 0, sum2 = 0, sum = 0;
        for (size_t i = 0; i < n; ++i) {
            max = fmax(max, fabs(va[i]));
            sum += va[i];
            sum2 += (double)va[i] * va[i];
        }
        double std = sqrt(sum2 / (double)n - (sum / (double)n) * (sum / (double)n));
        if (modes[m] == CLORA_INIT_PEFT) {
            assert_true(max <= 1.0 / sqrt(400.0) && max > 0.98 / sqrt(400.0));
        } else if (modes[m] == CLORA_INIT_SEED) {
            assert_true(max <= 1.0 / sqrt(16.0) && max > 0.98 / sqrt(16.0));
        } else {
            assert_true(fabs(std - 1.0 / 16.0) < 0.1 / 16.0);
        }
        for (size_t i = 0; i < 300 * 16; ++i)
            assert_true(vb[i] == 0.0f);
        free(va);
        free(vb);
        clora_model_destroy(model);
    }
}

static void bad_configs_are_rejected(void **state)
{
    (void)state;
    clora_model *model = small_tree(7);
    clora_node *root = clora_model_root(model);
    clora_lora_config cfg = clora_lora_config_default();
    cfg.rank = 0;
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_RANK);
    cfg.rank = 257;
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_RANK);
    cfg = clora_lora_config_default();
    cfg.target_regex = "fc(";
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("not a valid regex");
    const char *t[1] = {"fc1"};
    cfg.target_modules = t;
    cfg.target_module_count = 1;
    cfg.target_regex = "fc1";
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("not both");
    cfg = clora_lora_config_default();
    cfg.adapter_name = "a.b";
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_ARGUMENT);
    cfg = clora_lora_config_default();
    cfg.dropout = 1.0f;
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_ARGUMENT);
    cfg = clora_lora_config_default();
    const clora_pattern_value bad_rank[1] = {{"fc1", 2.5f}};
    cfg.rank_pattern = bad_rank;
    cfg.rank_pattern_count = 1;
    CHECK_STATUS(clora_replace_linear_with_lora(root, &cfg, NULL), CLORA_ERR_INVALID_RANK);
    CHECK_STATUS(clora_replace_linear_with_lora(NULL, &cfg, NULL), CLORA_ERR_NULL_ARGUMENT);
    assert_int_equal(kind_at(model, "fc1"), CLORA_NODE_LINEAR);
    clora_model_destroy(model);
}

static void named_adapters_switch_disable_delete(void **state)
{
    (void)state;
    clora_model *model = small_tree(8);
    float *base = output_of(model);
    clora_lora_config a = clora_lora_config_default(), b = clora_lora_config_default();
    a.adapter_name = "task_a";
    b.adapter_name = "task_b";
    const char *only_head[1] = {"head"};
    b.target_modules = only_head;
    b.target_module_count = 1;
    b.rank = 3;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &a, &replaced));
    assert_int_equal(replaced, 3);
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &b, &replaced));
    assert_int_equal(replaced, 1);
    assert_int_equal(clora_model_adapter_count(model), 2);
    assert_string_equal(clora_model_adapter_name(model, 1), "task_b");
    assert_string_equal(clora_model_active_adapter(model), "task_b");
    assert_int_equal(trainable_count(model), 3 * (8 + 3));

    /* give both adapters non-zero B so they change the output */
    fill_param(model, "head.lora_B.task_a.weight", -1, 1, 1);
    fill_param(model, "fc1.lora_B.task_a.weight", -1, 1, 2);
    fill_param(model, "head.lora_B.task_b.weight", -1, 1, 3);
    float *out_b = output_of(model);
    CHECK_OK(clora_model_set_adapter(model, "task_a"));
    assert_int_equal(trainable_count(model), 8 * (4 + 8) + 8 * (8 + 8) + 8 * (8 + 3));
    float *out_a = output_of(model);
    size_t differ = 0;
    for (int i = 0; i < 15; ++i)
        differ += out_a[i] != out_b[i];
    assert_true(differ > 10);

    /* disabled: exactly the base model, nothing trains */
    CHECK_OK(clora_model_set_adapter(model, NULL));
    assert_null(clora_model_active_adapter(model));
    assert_int_equal(trainable_count(model), 0);
    float *out_none = output_of(model);
    test_assert_identical("adapters disabled", out_none, base, 15);
    CHECK_STATUS(clora_model_set_adapter(model, "task_c"), CLORA_ERR_NOT_FOUND);

    /* deleting task_b keeps task_a; deleting task_a unwraps the layers */
    CHECK_OK(clora_model_set_adapter(model, "task_b"));
    CHECK_OK(clora_model_delete_adapter(model, "task_b"));
    assert_null(clora_model_active_adapter(model));
    assert_int_equal(kind_at(model, "head"), CLORA_NODE_LORA);
    clora_param_info info;
    CHECK_STATUS(clora_model_find_param(model, "head.lora_A.task_b.weight", &info),
                 CLORA_ERR_NOT_FOUND);
    CHECK_OK(clora_model_set_adapter(model, "task_a"));
    float *again_a = output_of(model);
    test_assert_identical("task_a after deleting task_b", again_a, out_a, 15);
    CHECK_OK(clora_model_delete_adapter(model, "task_a"));
    assert_int_equal(kind_at(model, "head"), CLORA_NODE_LINEAR);
    CHECK_OK(clora_model_find_param(model, "head.weight", &info));
    assert_int_equal(clora_model_adapter_count(model), 0);
    float *unwrapped = output_of(model);
    test_assert_identical("all adapters deleted", unwrapped, base, 15);
    CHECK_STATUS(clora_model_delete_adapter(model, "task_a"), CLORA_ERR_NOT_FOUND);
    float *all[] = {base, out_b, out_a, out_none, again_a, unwrapped};
    for (int i = 0; i < 6; ++i)
        free(all[i]);
    clora_model_destroy(model);
}

static void merge_matches_unmerged_output(void **state)
{
    (void)state;
    for (int layout = 0; layout < 2; ++layout) {
        clora_model *model = NULL;
        CHECK_OK(clora_model_create(&model, test_device, 9));
        clora_node *root = clora_model_root(model);
        if (layout == 0)
            CHECK_OK(clora_node_add_linear(root, "fc1", 4, 8, 1, NULL));
        else
            CHECK_OK(clora_node_add_linear_in_out(root, "fc1", 4, 8, 1, NULL));
        CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_TANH, NULL));
        CHECK_OK(clora_node_add_linear(root, "head", 8, 3, 1, NULL));
        clora_lora_config cfg = clora_lora_config_default();
        cfg.rank = 3;
        cfg.alpha = 6;
        CHECK_OK(clora_replace_linear_with_lora(root, &cfg, NULL));
        fill_param(model, "fc1.lora_B.default.weight", -1, 1, 10);
        fill_param(model, "head.lora_B.default.weight", -1, 1, 11);
        clora_param_info w;
        CHECK_OK(clora_model_find_param(model, "fc1.base_layer.weight", &w));
        float *w_before = test_download(w.value);
        float *unmerged = output_of(model);
        CHECK_OK(clora_model_merge_adapter(model));
        float *merged = output_of(model);
        test_assert_close("merged vs unmerged", merged, unmerged, 15, 1e-5, 1e-5);
        CHECK_STATUS(clora_model_merge_adapter(model), CLORA_ERR_STATE);
        CHECK_STATUS(clora_model_set_adapter(model, NULL), CLORA_ERR_STATE);
        CHECK_OK(clora_model_unmerge_adapter(model));
        float *w_after = test_download(w.value);
        test_assert_close("weight after unmerge", w_after, w_before, 32, 1e-6, 1e-5);
        float *again = output_of(model);
        test_assert_close("unmerged again", again, unmerged, 15, 1e-5, 1e-5);
        CHECK_STATUS(clora_model_unmerge_adapter(model), CLORA_ERR_STATE);
        float *all[] = {w_before, unmerged, merged, w_after, again};
        for (int i = 0; i < 5; ++i)
            free(all[i]);
        clora_model_destroy(model);
    }
}

static void merge_refuses_non_finite_weights(void **state)
{
    (void)state;
    clora_model *model = small_tree(12);
    clora_lora_config cfg = clora_lora_config_default();
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    fill_param(model, "fc1.lora_B.default.weight", -1, 1, 13);
    fill_param(model, "head.lora_A.default.weight", 1e20f, 2e20f, 14); /* B·A overflows */
    fill_param(model, "head.lora_B.default.weight", 1e20f, 2e20f, 15);
    clora_param_info w1, w2;
    CHECK_OK(clora_model_find_param(model, "fc1.base_layer.weight", &w1));
    CHECK_OK(clora_model_find_param(model, "head.base_layer.weight", &w2));
    float *before1 = test_download(w1.value), *before2 = test_download(w2.value);
    CHECK_STATUS(clora_model_merge_adapter(model), CLORA_ERR_NON_FINITE);
    test_expect_message("\"head\"");
    float *after1 = test_download(w1.value), *after2 = test_download(w2.value);
    /* head is restored exactly; fc1, merged before head failed, is merged back out */
    test_assert_identical("head weight after a refused merge", after2, before2, 24);
    test_assert_close("fc1 weight after a refused merge", after1, before1, 32, 1e-6, 1e-5);
    CHECK_STATUS(clora_model_unmerge_adapter(model), CLORA_ERR_STATE);
    CHECK_OK(clora_model_set_adapter(model, NULL));
    CHECK_STATUS(clora_model_merge_adapter(model), CLORA_ERR_STATE);
    test_expect_message("no adapter is active");
    free(before1);
    free(before2);
    free(after1);
    free(after2);
    clora_model_destroy(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(wraps_every_linear_like_the_seed),
        cmocka_unit_test(target_lists_regexes_and_excludes),
        cmocka_unit_test(subtree_roots_and_missing_targets),
        cmocka_unit_test(rank_and_alpha_patterns),
        cmocka_unit_test(modules_to_save_stay_trainable),
        cmocka_unit_test(init_modes_follow_their_distributions),
        cmocka_unit_test(bad_configs_are_rejected),
        cmocka_unit_test(named_adapters_switch_disable_delete),
        cmocka_unit_test(merge_matches_unmerged_output),
        cmocka_unit_test(merge_refuses_non_finite_weights),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
