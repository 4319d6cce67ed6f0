/* test_peft_options.c — PEFT's options beyond plain targets, against
 * adapters and logits real PEFT 0.6.2 and 0.21.2 made
 * (tests/golden/make_peft_options_golden.py): layers_to_transform and
 * layers_pattern, bias "lora_only" and "all" (their gradients too),
 * folders of several named adapters, and add_weighted_adapter's "linear"
 * and "cat". Then clora's own side of each: training with the options,
 * saving what PEFT saves, and the errors. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/safetensors.h"
#include "model_checks.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static const char *const versions[2] = {"062", "0212"};
static golden_file reference[2];

static int setup(void **state)
{
    golden_load(GOLDEN "/peft_options_062.txt", &reference[0]);
    golden_load(GOLDEN "/peft_options_0212.txt", &reference[1]);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&reference[0]);
    golden_free(&reference[1]);
    return test_close_device(state);
}

static clora_model *tiny_gpt2(void)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2", 0, 0));
    return model;
}

static void expect_logits(clora_model *model, const golden_case *c, const char *name)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "tokens"));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    char what[160];
    snprintf(what, sizeof what, "%s: %s", c->name, name);
    test_expect_golden(what, y, golden_tensor_get(c, name), 1e-4, 1e-4);
    clora_buffer_destroy(ids);
}

static void folder_of(char *out, size_t size, int v, const char *name)
{
    snprintf(out, size, GOLDEN "/peft_options/%s/%s", versions[v], name);
}

/* ---- PEFT -> clora ---------------------------------------------------------------- */

static void layers_to_transform(void **state)
{
    (void)state;
    for (int v = 0; v < 2; ++v)
        for (int k = 0; k < 2; ++k) {
            const char *name = k ? "layers_int" : "layers_pattern";
            char dir[512];
            folder_of(dir, sizeof dir, v, name);
            clora_model *model = tiny_gpt2();
            /* the loader checks that the weights cover what the config
             * targets, and no more: only layer 1 (0) carries the adapter */
            CHECK_OK(clora_adapter_load(model, dir, NULL));
            clora_node *node = NULL;
            char carrier[96], other[96];
            snprintf(carrier, sizeof carrier, "transformer.h.%d.attn.c_attn.lora_A.default", 1 - k);
            snprintf(other, sizeof other, "transformer.h.%d.attn.c_attn.base_layer", k);
            clora_param_info info;
            char param[128];
            snprintf(param, sizeof param, "%s.weight", carrier);
            CHECK_OK(clora_model_find_param(model, param, &info));
            assert_int_equal(clora_model_find(model, other, &node), CLORA_ERR_NOT_FOUND);
            expect_logits(model, golden_case_get(&reference[v], name), "logits");
            clora_model_destroy(model);
        }
}

/* Gradients of sum(G * logits) for every trainable parameter against
 * PEFT's: LoRA matrices and the biases the mode trains, no others. */
static void expect_bias_grads(clora_model *model, const golden_case *c, size_t expected)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "tokens"));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_zero_grad(model));
    CHECK_OK(clora_model_forward(model, ids, &y));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(test_expect_golden_grads(model, c, 1e-4, 1e-3), expected);
    size_t trainable = 0;
    for (size_t i = 0; i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        trainable += info.trainable;
    }
    assert_int_equal(trainable, expected); /* and nothing else trains */
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
}

static void bias_modes(void **state)
{
    (void)state;
    for (int v = 0; v < 2; ++v)
        for (int all = 0; all < 2; ++all) {
            const char *name = all ? "bias_all" : "bias_lora_only";
            char dir[512];
            folder_of(dir, sizeof dir, v, name);
            clora_model *model = tiny_gpt2();
            CHECK_OK(clora_adapter_load(model, dir, NULL));
            const golden_case *c = golden_case_get(&reference[v], name);
            expect_logits(model, c, "logits");
            /* 2 layers x (A, B, c_attn's bias); all: + ln_1, c_proj, ln_2, c_fc,
             * mlp.c_proj biases per block and ln_f's */
            if (v == 1)
                expect_bias_grads(model, c, all ? 2 * 3 + 2 * 5 + 1 : 2 * 3);

            /* saved by clora, loaded again: the same logits, and the file
             * names each carrier's bias both ways PEFT versions read */
            char out[64];
            test_temp_dir(out, "bias");
            CHECK_OK(clora_adapter_save(model, NULL, out));
            clora_model *again = tiny_gpt2();
            CHECK_OK(clora_adapter_load(again, out, NULL));
            expect_logits(again, c, "logits");
            char file[160];
            snprintf(file, sizeof file, "%s/adapter_model.safetensors", out);
            clora_safetensors *st = NULL;
            CHECK_OK(clora_safetensors_open(&st, file));
            clora_tensor_view view;
            CHECK_OK(clora_safetensors_find(
                st, "base_model.model.transformer.h.1.attn.c_attn.base_layer.bias", &view));
            CHECK_OK(clora_safetensors_find(
                st, "base_model.model.transformer.h.1.attn.c_attn.bias", &view));
            assert_int_equal(clora_safetensors_find(
                                 st, "base_model.model.transformer.ln_f.bias", &view),
                             all ? CLORA_OK : CLORA_ERR_NOT_FOUND);
            clora_safetensors_close(st);
            clora_model_destroy(again);
            clora_model_destroy(model);
            test_remove_dir(out);
        }
}

/* bias "all" with a module to save: PEFT's file gives the head's bias three
 * times (its own and its two copies'); clora takes the head's own. */
static void bias_all_with_a_head(void **state)
{
    (void)state;
    for (int v = 0; v < 2; ++v) {
        char dir[512];
        folder_of(dir, sizeof dir, v, "bert_bias_all");
        const golden_case *c = golden_case_get(&reference[v], "bert_bias_all");
        clora_model *model = NULL;
        CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_bert", 3, 0));
        CHECK_OK(clora_adapter_load(model, dir, NULL));
        clora_buffer *types = test_golden_ints(golden_tensor_get(c, "types"));
        CHECK_OK(clora_model_set_token_types(model, types));
        expect_logits(model, c, "logits");
        clora_buffer_destroy(types);
        clora_model_destroy(model);
    }
}

static void several_adapters(void **state)
{
    (void)state;
    for (int v = 0; v < 2; ++v) {
        char dir[512];
        folder_of(dir, sizeof dir, v, "multi");
        clora_model *model = tiny_gpt2();
        size_t loaded = 0;
        CHECK_OK(clora_adapter_load_all(model, dir, &loaded));
        assert_int_equal(loaded, 2);
        assert_string_equal(clora_model_active_adapter(model), "default");
        const golden_case *c = golden_case_get(&reference[v], "multi");
        expect_logits(model, c, "logits_default");
        CHECK_OK(clora_model_set_adapter(model, "other"));
        expect_logits(model, c, "logits_other");

        /* saved the same way and read back */
        char out[64];
        test_temp_dir(out, "multi");
        CHECK_OK(clora_adapter_save_all(model, out));
        clora_model *again = tiny_gpt2();
        CHECK_OK(clora_adapter_load_all(again, out, &loaded));
        assert_int_equal(loaded, 2);
        CHECK_OK(clora_model_set_adapter(again, "other"));
        expect_logits(again, c, "logits_other");
        clora_model_destroy(again);
        test_remove_dir(out);

        /* all or none: a folder whose second adapter is broken loads nothing */
        assert_int_equal(clora_adapter_load_all(model, dir, NULL), CLORA_ERR_STATE);
        assert_int_equal(clora_model_adapter_count(model), 2);
        clora_model_destroy(model);
    }
}

static void weighted_combinations(void **state)
{
    (void)state;
    const char *const names[2] = {"default", "second"};
    const float weights[2] = {0.7f, 0.3f};
    for (int v = 0; v < 2; ++v) {
        char dir[512];
        folder_of(dir, sizeof dir, v, "combine");
        const golden_case *c = golden_case_get(&reference[v], "combine");
        for (int how = v == 1 ? 0 : 1; how < 2; ++how) { /* 0.6.2's linear differs */
            clora_model *model = tiny_gpt2();
            CHECK_OK(clora_adapter_load_all(model, dir, NULL));
            CHECK_OK(clora_model_add_weighted_adapter(model, names, weights, 2, "mix",
                                                      (clora_combination)how));
            assert_string_equal(clora_model_active_adapter(model), "default"); /* not switched */
            CHECK_OK(clora_model_set_adapter(model, "mix"));
            expect_logits(model, c, how ? "logits_cat" : "logits_linear");
            /* refused: the name again, an unknown adapter */
            assert_int_equal(clora_model_add_weighted_adapter(model, names, weights, 2, "mix",
                                                              CLORA_COMBINE_CAT),
                             CLORA_ERR_STATE);
            const char *const unknown[2] = {"default", "nope"};
            assert_int_equal(clora_model_add_weighted_adapter(model, unknown, weights, 2, "x",
                                                              CLORA_COMBINE_CAT),
                             CLORA_ERR_NOT_FOUND);
            test_expect_message("no adapter \"nope\"");
            clora_model_destroy(model);
        }
    }
}

/* ---- clora's own side ------------------------------------------------------------------- */

static void layers_and_bias_in_training(void **state)
{
    (void)state;
    clora_model *model = tiny_gpt2();
    const char *const targets[2] = {"c_attn", "c_fc"};
    const size_t layers[1] = {1};
    const char *const patterns[1] = {"h"};
    clora_lora_config config = clora_lora_config_default();
    config.rank = 2;
    config.target_modules = targets;
    config.target_module_count = 2;
    config.layers_to_transform = layers;
    config.layers_to_transform_count = 1;
    config.layers_pattern = patterns;
    config.layers_pattern_count = 1;
    config.bias = CLORA_BIAS_LORA_ONLY;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced));
    assert_int_equal(replaced, 2); /* h.1's c_attn and c_fc */
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "transformer.h.1.mlp.c_fc.base_layer.bias", &info));
    assert_true(info.trainable);
    CHECK_OK(clora_model_find_param(model, "transformer.h.0.mlp.c_fc.bias", &info));
    assert_false(info.trainable);
    CHECK_OK(clora_model_find_param(model, "transformer.h.1.ln_1.bias", &info));
    assert_false(info.trainable);
    clora_model_destroy(model);

    /* "all": every bias, also outside the adapted layers */
    model = tiny_gpt2();
    config.bias = CLORA_BIAS_ALL;
    config.layers_to_transform_count = 0;
    config.layers_pattern_count = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced));
    assert_int_equal(replaced, 4);
    CHECK_OK(clora_model_find_param(model, "transformer.ln_f.bias", &info));
    assert_true(info.trainable);
    CHECK_OK(clora_model_find_param(model, "transformer.ln_f.weight", &info));
    assert_false(info.trainable);
    /* disabled: no bias trains; on again: they do */
    CHECK_OK(clora_model_set_adapter(model, NULL));
    CHECK_OK(clora_model_find_param(model, "transformer.ln_f.bias", &info));
    assert_false(info.trainable);
    CHECK_OK(clora_model_set_adapter(model, "default"));
    CHECK_OK(clora_model_find_param(model, "transformer.ln_f.bias", &info));
    assert_true(info.trainable);
    clora_model_destroy(model);

    /* refused */
    model = tiny_gpt2();
    clora_lora_config bad = clora_lora_config_default();
    bad.target_regex = ".*c_attn";
    bad.layers_to_transform = layers;
    bad.layers_to_transform_count = 1;
    assert_int_equal(clora_replace_linear_with_lora(clora_model_root(model), &bad, NULL),
                     CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("not target_regex");
    bad = clora_lora_config_default();
    bad.layers_pattern = patterns;
    bad.layers_pattern_count = 1;
    assert_int_equal(clora_replace_linear_with_lora(clora_model_root(model), &bad, NULL),
                     CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("layers_pattern needs layers_to_transform");
    bad = clora_lora_config_default();
    bad.bias = (clora_bias_mode)7;
    assert_int_equal(clora_replace_linear_with_lora(clora_model_root(model), &bad, NULL),
                     CLORA_ERR_INVALID_ARGUMENT);
    clora_model_destroy(model);
}

/* A PEFT adapter with an option clora does not compute is refused by
 * name; layers_to_transform with a regex target is PEFT's own error. */
static void refused_options(void **state)
{
    (void)state;
    static const struct {
        const char *json, *message;
    } cases[] = {
        {"\"lora_bias\": true", "\"lora_bias\" is not supported"},
        {"\"layer_replication\": [[0, 1]]", "\"layer_replication\" is not supported"},
        {"\"trainable_token_indices\": [1, 2]", "\"trainable_token_indices\" is not supported"},
        {"\"bias\": \"some\"", "bias \"some\""},
        {"\"layers_to_transform\": [\"a\"]", "entry 0 is not an integer"},
        {"\"layers_pattern\": 3", "must be a string or a list"},
    };
    char dir[512];
    folder_of(dir, sizeof dir, 1, "layers_int");
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i) {
        char out[64], path[160], command[1024];
        test_temp_dir(out, "refused");
        snprintf(command, sizeof command, "cp %s/adapter_model.safetensors %s/", dir, out);
        assert_int_equal(system(command), 0);
        snprintf(path, sizeof path, "%s/adapter_config.json", out);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": "
                "[\"c_attn\", \"c_fc\"], %s}",
                cases[i].json);
        fclose(f);
        assert_int_not_equal(clora_adapter_check(out), CLORA_OK);
        test_expect_message(cases[i].message);
        test_remove_dir(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layers_to_transform),
        cmocka_unit_test(bias_modes),
        cmocka_unit_test(bias_all_with_a_head),
        cmocka_unit_test(several_adapters),
        cmocka_unit_test(weighted_combinations),
        cmocka_unit_test(layers_and_bias_in_training),
        cmocka_unit_test(refused_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
