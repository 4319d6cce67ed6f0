/* test_files.c — model folders and PEFT adapter folders: round trips that
 * reload bit-exactly, what the files contain, merged models, and every bad
 * adapter or model file a user can hand over (truncated, wrong shapes,
 * wrong names, missing tensors, bad JSON, wrong dtypes, unsupported
 * options), each with its own error and the model left unchanged. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char work[64];

static int setup(void **state)
{
    snprintf(work, sizeof work, "/tmp/clora-files-XXXXXX");
    if (!mkdtemp(work))
        return -1;
    return test_open_device(state);
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    if (system(cmd) != 0)
        return -1;
    return test_close_device(state);
}

static const char *dir_of(const char *name)
{
    static char paths[8][128];
    static int next = 0;
    char *out = paths[next++ % 8];
    snprintf(out, 128, "%s/%s", work, name);
    return out;
}

/* fc1 Linear(4, 8), norm LayerNorm(8), act GELU, drop Dropout, head Linear(8, 3). */
static clora_model *base_model(uint64_t seed)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, seed));
    clora_node *root = clora_model_root(model), *blocks;
    CHECK_OK(clora_node_add_linear(root, "fc1", 4, 8, 1, NULL));
    CHECK_OK(clora_node_add_sequential(root, "blocks", &blocks));
    CHECK_OK(clora_node_add_layer_norm(blocks, "norm", 8, 1e-5f, NULL));
    CHECK_OK(clora_node_add_activation(blocks, "act", CLORA_NODE_GELU_TANH, NULL));
    CHECK_OK(clora_node_add_dropout(blocks, "drop", 0.1f, NULL));
    CHECK_OK(clora_node_add_linear_in_out(root, "head", 8, 3, 0, NULL));
    return model;
}

static float *output_of(clora_model *model)
{
    float x[5 * 4];
    uint64_t rng = 99;
    test_fill_uniform(x, 20, &rng, -1, 1);
    clora_buffer *bx = test_buffer_2d(5, 4, x);
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, bx, &y));
    float *out = test_download(y);
    clora_buffer_destroy(bx);
    return out;
}

static void fill_param(clora_model *model, const char *name, uint64_t seed)
{
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, name, &info));
    size_t n = clora_buffer_numel(info.value);
    float *v = test_alloc(n);
    test_fill_uniform(v, n, &seed, -1, 1);
    CHECK_OK(clora_buffer_upload(info.value, 0, v, n));
    free(v);
}

static void assert_same_params(clora_model *a, clora_model *b)
{
    assert_int_equal(clora_model_param_count(a), clora_model_param_count(b));
    for (size_t i = 0; i < clora_model_param_count(a); ++i) {
        clora_param_info pa, pb;
        CHECK_OK(clora_model_param(a, i, &pa));
        CHECK_OK(clora_model_find_param(b, pa.name, &pb));
        float *va = test_download(pa.value), *vb = test_download(pb.value);
        test_assert_identical(pa.name, vb, va, clora_buffer_numel(pa.value));
        free(va);
        free(vb);
    }
}

/* ---- models --------------------------------------------------------------------- */

static void model_round_trip(void **state)
{
    (void)state;
    clora_model *model = base_model(1);
    fill_param(model, "blocks.norm.weight", 2);
    const char *dir = dir_of("model");
    CHECK_OK(clora_model_save(model, dir));
    clora_model *loaded = NULL;
    CHECK_OK(clora_model_load(&loaded, test_device, dir));
    assert_same_params(model, loaded);
    float *a = output_of(model), *b = output_of(loaded);
    test_assert_identical("reloaded output", b, a, 15);
    clora_node *head = NULL;
    CHECK_OK(clora_model_find(loaded, "head", &head));
    assert_int_equal(clora_node_in_features(head), 8);
    free(a);
    free(b);
    clora_model_destroy(loaded);
    clora_model_destroy(model);
}

static void lora_models_save_their_base(void **state)
{
    (void)state;
    clora_model *model = base_model(3);
    float *base = output_of(model);
    clora_lora_config cfg = clora_lora_config_default();
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    fill_param(model, "fc1.lora_B.default.weight", 4);
    float *adapted = output_of(model);
    const char *dir = dir_of("base-of-lora");
    CHECK_OK(clora_model_save(model, dir));
    clora_model *loaded = NULL;
    CHECK_OK(clora_model_load(&loaded, test_device, dir));
    clora_param_info info;
    CHECK_OK(clora_model_find_param(loaded, "fc1.weight", &info)); /* no base_layer */
    CHECK_STATUS(clora_model_find_param(loaded, "fc1.lora_A.default.weight", &info),
                 CLORA_ERR_NOT_FOUND);
    float *reloaded = output_of(loaded);
    test_assert_identical("saved base", reloaded, base, 15);
    clora_model_destroy(loaded);

    /* with the adapter merged, the saved model carries it */
    CHECK_OK(clora_model_merge_adapter(model));
    const char *merged_dir = dir_of("merged");
    CHECK_OK(clora_model_save(model, merged_dir));
    CHECK_OK(clora_model_load(&loaded, test_device, merged_dir));
    float *merged = output_of(loaded);
    test_assert_close("saved merged model", merged, adapted, 15, 1e-5, 1e-5);
    free(base);
    free(adapted);
    free(reloaded);
    free(merged);
    clora_model_destroy(loaded);
    clora_model_destroy(model);
}

static void bad_model_folders(void **state)
{
    (void)state;
    clora_model *model = NULL;
    CHECK_STATUS(clora_model_load(&model, test_device, dir_of("does-not-exist")), CLORA_ERR_IO);
    test_expect_message("config.json");
    const char *dir = dir_of("bad-model");
    test_write_text(dir, "config.json", "{\"format\": \"clora-model\", \"format_version\": 1,");
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_FORMAT);
    test_expect_message("not valid JSON");
    test_write_text(dir, "config.json", "{\"format\": \"something\"}");
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_FORMAT);
    test_write_text(dir, "config.json",
               "{\"format\": \"clora-model\", \"format_version\": 1, \"model\": {\"kind\": "
               "\"sequential\", \"children\": [{\"name\": \"x\", \"kind\": \"conv9d\"}]}}");
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_FORMAT);
    test_expect_message("unknown kind \"conv9d\"");

    /* config and weights that disagree */
    clora_model *saved = base_model(5);
    const char *good = dir_of("good");
    CHECK_OK(clora_model_save(saved, good));
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/model.safetensors %s/", good, dir);
    assert_int_equal(system(cmd), 0);
    test_write_text(dir, "config.json",
               "{\"format\": \"clora-model\", \"format_version\": 1, \"model\": {\"kind\": "
               "\"sequential\", \"children\": [{\"name\": \"fc1\", \"kind\": \"linear\", "
               "\"in_features\": 4, \"out_features\": 9, \"bias\": true, \"weight_layout\": "
               "\"out_in\"}]}}");
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("fc1.weight");
    test_write_text(dir, "config.json",
               "{\"format\": \"clora-model\", \"format_version\": 1, \"model\": {\"kind\": "
               "\"sequential\", \"children\": [{\"name\": \"fc1\", \"kind\": \"linear\", "
               "\"in_features\": 4, \"out_features\": 8, \"bias\": true, \"weight_layout\": "
               "\"out_in\"}]}}");
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_FORMAT);
    test_expect_message("matches no parameter");
    assert_null(model);
    clora_model_destroy(saved);
}

/* ---- adapters --------------------------------------------------------------------- */

/* A base model with a trained-looking adapter. */
static clora_model *adapted_model(clora_scale_mode mode)
{
    clora_model *model = base_model(7);
    clora_lora_config cfg = clora_lora_config_default();
    cfg.rank = 4;
    cfg.alpha = 12;
    cfg.scale_mode = mode;
    const clora_pattern_value ranks[1] = {{"head", 2}};
    cfg.rank_pattern = ranks;
    cfg.rank_pattern_count = 1;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    fill_param(model, "fc1.lora_A.default.weight", 8);
    fill_param(model, "fc1.lora_B.default.weight", 9);
    fill_param(model, "head.lora_B.default.weight", 10);
    return model;
}

static void adapter_round_trip_is_bit_exact(void **state)
{
    (void)state;
    const clora_scale_mode modes[3] = {CLORA_SCALE_ALPHA_OVER_R, CLORA_SCALE_ALPHA,
                                       CLORA_SCALE_ALPHA_OVER_SQRT_R};
    for (int m = 0; m < 3; ++m) {
        clora_model *model = adapted_model(modes[m]);
        float *want = output_of(model);
        const char *dir = dir_of("adapter");
        CHECK_OK(clora_adapter_save(model, NULL, dir));
        clora_model *fresh = base_model(7);
        CHECK_OK(clora_adapter_load(fresh, dir, "loaded"));
        assert_string_equal(clora_model_active_adapter(fresh), "loaded");
        const char *pairs[4][2] = {
            {"fc1.lora_A.default.weight", "fc1.lora_A.loaded.weight"},
            {"fc1.lora_B.default.weight", "fc1.lora_B.loaded.weight"},
            {"head.lora_A.default.weight", "head.lora_A.loaded.weight"},
            {"head.lora_B.default.weight", "head.lora_B.loaded.weight"}};
        for (int k = 0; k < 4; ++k) {
            clora_param_info a, b;
            CHECK_OK(clora_model_find_param(model, pairs[k][0], &a));
            CHECK_OK(clora_model_find_param(fresh, pairs[k][1], &b));
            float *va = test_download(a.value), *vb = test_download(b.value);
            test_assert_identical(pairs[k][1], vb, va, clora_buffer_numel(a.value));
            free(va);
            free(vb);
        }
        float *got = output_of(fresh);
        /* the seed's scale is stored as PEFT's alpha·r / r: equal up to rounding */
        test_assert_close("output with the reloaded adapter", got, want, 15, 1e-6, 1e-6);
        free(want);
        free(got);
        clora_model_destroy(fresh);
        clora_model_destroy(model);
    }
}

static void adapter_files_speak_peft(void **state)
{
    (void)state;
    clora_model *model = adapted_model(CLORA_SCALE_ALPHA);
    const char *dir = dir_of("peft");
    CHECK_OK(clora_adapter_save(model, "default", dir));
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    assert_int_equal(clora_safetensors_count(file), 4);
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "base_model.model.fc1.lora_A.weight", &view));
    assert_int_equal(view.shape[0], 4);
    assert_int_equal(view.shape[1], 4);
    CHECK_OK(clora_safetensors_find(file, "base_model.model.head.lora_B.weight", &view));
    assert_int_equal(view.shape[0], 3);
    assert_int_equal(view.shape[1], 2);
    assert_string_equal(clora_safetensors_metadata(file, "format"), "pt");
    clora_safetensors_close(file);
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\"peft_type\": \"LORA\""));
    assert_non_null(strstr(text, "\"r\": 4"));
    assert_non_null(strstr(text, "\"lora_alpha\": 48.0")); /* the seed's alpha 12 at r = 4 */
    assert_non_null(strstr(text, "\"fan_in_fan_out\": false"));
    assert_non_null(strstr(text, "\"bias\": \"none\""));
    assert_non_null(strstr(text, "\"rank_pattern\": {\n    \"head\": 2"));
    assert_non_null(strstr(text, "\"alpha_pattern\": {\n    \"head\": 24.0"));
    assert_non_null(strstr(text, "\"target_modules\": [\n    \"fc1\",\n    \"head\""));
    CHECK_STATUS(clora_adapter_save(model, "nope", dir), CLORA_ERR_NOT_FOUND);
    clora_model_destroy(model);
}

/* fc0, a.x.fc, b.x.fc, enc.0.q: nested paths, two with one tail. */
static clora_model *nested_model(void)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 3));
    clora_node *root = clora_model_root(model), *a, *b, *enc, *node;
    CHECK_OK(clora_node_add_linear(root, "fc0", 4, 4, 1, NULL));
    CHECK_OK(clora_node_add_sequential(root, "a", &a));
    CHECK_OK(clora_node_add_sequential(a, "x", &node));
    CHECK_OK(clora_node_add_linear(node, "fc", 4, 4, 1, NULL));
    CHECK_OK(clora_node_add_sequential(root, "b", &b));
    CHECK_OK(clora_node_add_sequential(b, "x", &node));
    CHECK_OK(clora_node_add_linear(node, "fc", 4, 4, 1, NULL));
    CHECK_OK(clora_node_add_sequential(root, "enc", &enc));
    CHECK_OK(clora_node_add_sequential(enc, "0", &node));
    CHECK_OK(clora_node_add_linear(node, "q", 4, 4, 1, NULL));
    return model;
}

/* rank_pattern keys match their module under PEFT 0.6.2's rule (".*\.KEY$",
 * a dot before the key) and the newer one ("(.*\.)?(KEY)$"): the path
 * without its first component, unless that tail is another module's too. */
static void pattern_keys_suit_every_peft(void **state)
{
    (void)state;
    clora_model *model = nested_model();
    clora_lora_config cfg = clora_lora_config_default();
    cfg.rank = 4;
    const clora_pattern_value ranks[2] = {{"a\\.x\\.fc", 2}, {"q", 3}};
    cfg.rank_pattern = ranks;
    cfg.rank_pattern_count = 2;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &cfg, NULL));
    const char *dir = dir_of("patterns");
    CHECK_OK(clora_adapter_save(model, NULL, dir));
    char path[256], text[4096];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    text[fread(text, 1, sizeof text - 1, f)] = '\0';
    fclose(f);
    assert_non_null(strstr(text, "\"0\\\\.q\": 3"));         /* enc.0.q by its tail */
    assert_non_null(strstr(text, "\"a\\\\.x\\\\.fc\": 2")); /* x.fc is b.x.fc's too */
    assert_null(strstr(text, "\"x\\\\.fc\""));
    /* and clora reads the ranks back */
    clora_model *fresh = nested_model();
    CHECK_OK(clora_adapter_load(fresh, dir, "default"));
    const struct {
        const char *name;
        size_t rank;
    } want[4] = {{"fc0.lora_A.default.weight", 4},
                 {"a.x.fc.lora_A.default.weight", 2},
                 {"b.x.fc.lora_A.default.weight", 4},
                 {"enc.0.q.lora_A.default.weight", 3}};
    for (int i = 0; i < 4; ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_find_param(fresh, want[i].name, &info));
        assert_int_equal(clora_buffer_dim(info.value, 0), want[i].rank);
    }
    clora_model_destroy(fresh);
    clora_model_destroy(model);
}

/* Writes an adapter folder from parts: config text and tensors. */
typedef struct tensor_spec {
    const char *name;
    clora_dtype dtype;
    size_t d0, d1;
} tensor_spec;

static const char *craft_adapter(const char *name, const char *config, const tensor_spec *tensors,
                                 size_t count)
{
    const char *dir = dir_of(name);
    test_write_text(dir, "adapter_config.json", config);
    clora_safetensors_writer *w = NULL;
    CHECK_OK(clora_safetensors_writer_create(&w));
    for (size_t i = 0; i < count; ++i) {
        const size_t shape[2] = {tensors[i].d0, tensors[i].d1};
        float *zeros = test_alloc(tensors[i].d0 * tensors[i].d1 * 2);
        CHECK_OK(clora_safetensors_writer_add(w, tensors[i].name, tensors[i].dtype, 2, shape,
                                              zeros));
        free(zeros);
    }
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    CHECK_OK(clora_safetensors_writer_write(w, path));
    clora_safetensors_writer_destroy(w);
    return dir;
}

static const char config_fc1[] =
    "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"fc1\"]}";

/* Loads `dir` into a fresh base model, expects `status` and `why`, and
 * checks the model was not touched. */
static void expect_load_failure(const char *dir, clora_status status, const char *why)
{
    clora_model *model = base_model(11);
    float *before = output_of(model);
    CHECK_STATUS(clora_adapter_load(model, dir, NULL), status);
    test_expect_message(why);
    clora_node *fc1 = NULL;
    CHECK_OK(clora_model_find(model, "fc1", &fc1));
    assert_int_equal(clora_node_kind_of(fc1), CLORA_NODE_LINEAR);
    assert_int_equal(clora_model_adapter_count(model), 0);
    float *after = output_of(model);
    test_assert_identical("model after a refused adapter", after, before, 15);
    free(before);
    free(after);
    clora_model_destroy(model);
}

static void bad_adapters_are_rejected_with_specific_errors(void **state)
{
    (void)state;
    const tensor_spec good[2] = {{"base_model.model.fc1.lora_A.weight", CLORA_DTYPE_F32, 2, 4},
                                 {"base_model.model.fc1.lora_B.weight", CLORA_DTYPE_F32, 8, 2}};
    /* the well-formed one loads */
    clora_model *model = base_model(11);
    CHECK_OK(clora_adapter_load(model, craft_adapter("ok", config_fc1, good, 2), NULL));
    /* loading it again under the same name is refused */
    CHECK_STATUS(clora_adapter_load(model, dir_of("ok"), NULL), CLORA_ERR_STATE);
    clora_model_destroy(model);

    expect_load_failure(dir_of("nowhere"), CLORA_ERR_IO, "adapter_config.json");

    const tensor_spec wrong_shape[2] = {
        {"base_model.model.fc1.lora_A.weight", CLORA_DTYPE_F32, 3, 4},
        {"base_model.model.fc1.lora_B.weight", CLORA_DTYPE_F32, 8, 2}};
    /* a rank other than the config's: refused before the model is looked at */
    expect_load_failure(craft_adapter("shape", config_fc1, wrong_shape, 2),
                        CLORA_ERR_SHAPE_MISMATCH,
                        "\"base_model.model.fc1.lora_A.weight\" has shape (3, 4); module \"fc1\" "
                        "has rank 2");
    /* the config's rank, the wrong width for the model's fc1 */
    const tensor_spec wrong_width[2] = {
        {"base_model.model.fc1.lora_A.weight", CLORA_DTYPE_F32, 2, 5},
        {"base_model.model.fc1.lora_B.weight", CLORA_DTYPE_F32, 8, 2}};
    expect_load_failure(craft_adapter("width", config_fc1, wrong_width, 2),
                        CLORA_ERR_SHAPE_MISMATCH,
                        "\"base_model.model.fc1.lora_A.weight\" has shape (2, 5), the model "
                        "needs (2, 4)");

    const tensor_spec wrong_name[2] = {
        {"base_model.model.fc9.lora_A.weight", CLORA_DTYPE_F32, 2, 4},
        {"base_model.model.fc9.lora_B.weight", CLORA_DTYPE_F32, 8, 2}};
    expect_load_failure(craft_adapter("name", config_fc1, wrong_name, 2), CLORA_ERR_NOT_FOUND,
                        "module \"fc9\", which the model lacks");

    const tensor_spec odd_key[3] = {good[0], good[1],
                                    {"base_model.model.fc1.lora_C.weight", CLORA_DTYPE_F32, 2, 2}};
    expect_load_failure(craft_adapter("extra", config_fc1, odd_key, 3), CLORA_ERR_FORMAT,
                        "unexpected tensor \"base_model.model.fc1.lora_C.weight\"");

    expect_load_failure(craft_adapter("half", config_fc1, good, 1), CLORA_ERR_FORMAT,
                        "module \"fc1\" has lora_A but no lora_B");

    const char both[] = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, "
                        "\"target_modules\": [\"fc1\", \"head\"]}";
    expect_load_failure(craft_adapter("missing", both, good, 2), CLORA_ERR_FORMAT,
                        "do not cover: head");

    const tensor_spec ints[2] = {{"base_model.model.fc1.lora_A.weight", CLORA_DTYPE_I32, 2, 4},
                                 good[1]};
    expect_load_failure(craft_adapter("dtype", config_fc1, ints, 2), CLORA_ERR_DTYPE_MISMATCH,
                        "holds I32, not floats");

    expect_load_failure(craft_adapter("json", "{\"peft_type\": \"LORA\", \"r\": ", good, 2),
                        CLORA_ERR_FORMAT, "not valid JSON");
    expect_load_failure(craft_adapter("dupes", "{\"r\": 2, \"r\": 4}", good, 2), CLORA_ERR_FORMAT,
                        "duplicate");
    expect_load_failure(craft_adapter("ia3", "{\"peft_type\": \"IA3\", \"r\": 2}", good, 2),
                        CLORA_ERR_UNSUPPORTED, "peft_type \"IA3\"");
    expect_load_failure(
        craft_adapter("dora", "{\"peft_type\": \"LORA\", \"r\": 2, \"use_dora\": true}", good, 2),
        CLORA_ERR_FORMAT, "has no lora_magnitude_vector");
    expect_load_failure(craft_adapter("rank0", "{\"peft_type\": \"LORA\", \"r\": 0}", good, 2),
                        CLORA_ERR_FORMAT, "\"r\" must be an integer");
    expect_load_failure(
        craft_adapter("bias", "{\"peft_type\": \"LORA\", \"r\": 2, \"bias\": \"most\"}", good, 2),
        CLORA_ERR_UNSUPPORTED, "bias \"most\"");

    /* a truncated weights file */
    const char *dir = craft_adapter("truncated", config_fc1, good, 2);
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    assert_int_equal(truncate(path, 100), 0);
    expect_load_failure(dir, CLORA_ERR_FORMAT, "adapter_model.safetensors");
}

static void keys_without_prefix_and_modules_to_save(void **state)
{
    (void)state;
    /* PEFT's prefix is optional; a saved head comes back in full */
    const char config[] = "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 2, "
                          "\"target_modules\": [\"fc1\"], \"modules_to_save\": [\"head\"]}";
    const tensor_spec tensors[3] = {{"fc1.lora_A.weight", CLORA_DTYPE_F32, 2, 4},
                                    {"fc1.lora_B.weight", CLORA_DTYPE_F16, 8, 2},
                                    {"base_model.model.head.weight", CLORA_DTYPE_F32, 8, 3}};
    clora_model *model = base_model(13);
    CHECK_OK(clora_adapter_load(model, craft_adapter("saved", config, tensors, 3), "mine"));
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "head.weight", &info));
    assert_true(info.trainable);
    float *head = test_download(info.value);
    for (int i = 0; i < 24; ++i)
        assert_true(head[i] == 0.0f);
    free(head);
    /* and save writes it back under PEFT's names */
    const char *dir = dir_of("saved-again");
    CHECK_OK(clora_adapter_save(model, "mine", dir));
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "base_model.model.head.weight", &view));
    clora_safetensors_close(file);
    clora_model_destroy(model);
}

static void a_failed_save_keeps_the_previous_adapter(void **state)
{
    (void)state;
    clora_model *model = adapted_model(CLORA_SCALE_ALPHA_OVER_R);
    const char *dir = dir_of("atomic");
    CHECK_OK(clora_adapter_save(model, NULL, dir));
    char weights[256], config[256], cmd[2048];
    snprintf(weights, sizeof weights, "%s/adapter_model.safetensors", dir);
    snprintf(config, sizeof config, "%s/adapter_config.json", dir);
    snprintf(cmd, sizeof cmd, "cp %s %s.expected && cp %s %s.expected", weights, weights, config,
             config);
    assert_int_equal(system(cmd), 0);
    /* change the adapter, then make the config's rename fail: the new
     * weights must not stay behind */
    fill_param(model, "fc1.lora_B.default.weight", 42);
    snprintf(cmd, sizeof cmd, "mv %s %s.moved && mkdir %s && touch %s/blocker", config, config,
             config, config);
    assert_int_equal(system(cmd), 0);
    CHECK_STATUS(clora_adapter_save(model, NULL, dir), CLORA_ERR_IO);
    snprintf(cmd, sizeof cmd, "cmp -s %s %s.expected", weights, weights);
    assert_int_equal(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s && mv %s.moved %s && cmp -s %s %s.expected", config,
             config, config, config, config);
    assert_int_equal(system(cmd), 0);
    /* no temporaries or backups left */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls %s | grep -E 'tmp|bak')\"", dir);
    assert_int_equal(system(cmd), 0);
    clora_model *fresh = base_model(7);
    CHECK_OK(clora_adapter_load(fresh, dir, NULL));
    clora_model_destroy(fresh);
    clora_model_destroy(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_round_trip),
        cmocka_unit_test(lora_models_save_their_base),
        cmocka_unit_test(bad_model_folders),
        cmocka_unit_test(adapter_round_trip_is_bit_exact),
        cmocka_unit_test(adapter_files_speak_peft),
        cmocka_unit_test(pattern_keys_suit_every_peft),
        cmocka_unit_test(bad_adapters_are_rejected_with_specific_errors),
        cmocka_unit_test(keys_without_prefix_and_modules_to_save),
        cmocka_unit_test(a_failed_save_keeps_the_previous_adapter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
