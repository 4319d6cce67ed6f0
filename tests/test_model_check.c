/* test_model_check.c — clora_model_check() against the loader: for every
 * golden folder, and for folders broken one way at a time (a tensor
 * missing, left over, reshaped or of another type; a config whose sizes,
 * model type or tree contradict the tensors), the check without a device
 * must refuse exactly what clora_model_load() refuses on a real one, with
 * the same status and message, and pass what it loads. Values are the
 * one thing it does not read: a NaN weight passes the check. A config
 * that asks for more than its files hold is refused before it is built. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CLORA_TEST_GOLDEN_DIR
#error "CLORA_TEST_GOLDEN_DIR must name tests/golden"
#endif

static char work[64];

/* clora_model_check(dir) gives what loading it gives (and returns that). */
static clora_status check_as_load(const char *dir)
{
    clora_model *model = NULL;
    const clora_status loaded = clora_model_load(&model, test_device, dir);
    char load_message[1024];
    snprintf(load_message, sizeof load_message, "%s", clora_last_error());
    clora_model_destroy(model);
    const clora_status checked = clora_model_check(dir);
    if (checked != loaded)
        fail_msg("%s: clora_model_check gave %s (%s), clora_model_load %s (%s)", dir,
                 clora_status_name(checked), checked ? clora_last_error() : "",
                 clora_status_name(loaded), loaded ? load_message : "");
    if (loaded != CLORA_OK && strcmp(clora_last_error(), load_message))
        fail_msg("%s: the check says \"%s\", the loader \"%s\"", dir, clora_last_error(),
                 load_message);
    return loaded;
}

static void every_golden_folder_passes(void **state)
{
    (void)state;
    static const char *const folders[] = {"tiny_bert",  "tiny_bert_bf16",  "tiny_gpt2",
                                          "tiny_gpt2_f16", "tiny_llama", "tiny_llama_bf16",
                                          "tiny_qwen2", "gguf_llama/llama-Q4_1.gguf"};
    for (size_t i = 0; i < sizeof folders / sizeof folders[0]; ++i) {
        char dir[512];
        snprintf(dir, sizeof dir, "%s/%s", CLORA_TEST_GOLDEN_DIR, folders[i]);
        CHECK_OK(check_as_load(dir));
    }
}

/* ---- folders broken one way at a time ------------------------------------------------------ */

/* What a copy of a folder changes in its model.safetensors. */
typedef struct edit {
    const char *tensor;   /* the tensor edited (NULL: none) */
    int drop;             /* left out */
    int transpose;        /* 2-D shape reversed */
    int as_int;           /* written as I32 */
    int nan;              /* its first value NaN */
    const char *extra;    /* a tensor added under this name */
    const char *key;      /* config.json: this key (a path a.b for nested objects) */
    json_t *value;        /* ... set to this (stolen) */
} edit;

static void write_bytes(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    assert_int_equal(fclose(f), 0);
}

/* config.json of src with e's change, into dir. */
static void copy_config(const char *src, const char *dir, const edit *e)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", src);
    json_error_t error;
    json_t *root = json_load_file(path, 0, &error);
    assert_non_null(root);
    if (e->key) {
        json_t *obj = root;
        char key[128];
        snprintf(key, sizeof key, "%s", e->key);
        char *dot, *name = key;
        while ((dot = strchr(name, '.'))) {
            *dot = '\0';
            obj = json_object_get(obj, name);
            assert_non_null(obj);
            name = dot + 1;
        }
        /* a number names an element of an array */
        if (json_is_array(obj))
            json_array_set_new(obj, (size_t)atoi(name), e->value);
        else
            json_object_set_new(obj, name, e->value);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_INDENT(1)), 0);
    json_decref(root);
}

/* A copy of the one-file folder src with e's changes, in work/name. */
static void broken_copy(const char *src, const char *name, const edit *e, char dir[256])
{
    snprintf(dir, 256, "%s/%s", work, name);
    char path[512];
    snprintf(path, sizeof path, "mkdir -p '%s'", dir);
    assert_int_equal(system(path), 0);
    copy_config(src, dir, e);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    clora_safetensors_writer *writer = NULL;
    CHECK_OK(clora_safetensors_writer_create(&writer));
    int edited = 0;
    for (size_t i = 0; i < clora_safetensors_count(file); ++i) {
        clora_tensor_view v;
        CHECK_OK(clora_safetensors_get(file, i, &v));
        const int this = e->tensor && !strcmp(v.name, e->tensor);
        edited |= this;
        if (this && e->drop)
            continue;
        size_t shape[8];
        for (size_t d = 0; d < v.ndim; ++d)
            shape[d] = v.shape[this && e->transpose ? v.ndim - 1 - d : d];
        float *values = test_alloc(v.numel);
        CHECK_OK(clora_tensor_to_f32(&v, values));
        if (this && e->nan)
            values[0] = NAN;
        if (this && e->as_int) {
            int32_t *ints = (int32_t *)values;
            for (size_t k = 0; k < v.numel; ++k)
                ints[k] = 1;
        }
        CHECK_OK(clora_safetensors_writer_add(writer, v.name,
                                              this && e->as_int ? CLORA_DTYPE_I32
                                                                : CLORA_DTYPE_F32,
                                              v.ndim, shape, values));
        free(values);
    }
    if (e->tensor && !edited)
        fail_msg("%s has no tensor %s", path, e->tensor);
    if (e->extra) {
        const float one[2] = {1.0f, 2.0f};
        const size_t two = 2;
        CHECK_OK(clora_safetensors_writer_add(writer, e->extra, CLORA_DTYPE_F32, 1, &two, one));
    }
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(clora_safetensors_writer_serialize(writer, &bytes, &size));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    write_bytes(path, bytes, size);
    free(bytes);
    clora_safetensors_writer_destroy(writer);
    clora_safetensors_close(file);
}

/* The folder broken by e is refused, as the loader refuses it, with `expected`. */
static void refused(const char *src, const char *name, edit e, clora_status expected,
                    const char *message)
{
    char dir[256];
    broken_copy(src, name, &e, dir);
    const clora_status status = check_as_load(dir);
    if (status != expected)
        fail_msg("%s: %s, expected %s (%s)", name, clora_status_name(status),
                 clora_status_name(expected), clora_last_error());
    test_expect_message(message);
}

#define GPT2 CLORA_TEST_GOLDEN_DIR "/tiny_gpt2"
#define BERT CLORA_TEST_GOLDEN_DIR "/tiny_bert"
#define LLAMA CLORA_TEST_GOLDEN_DIR "/tiny_llama"

static void hugging_face_folders_are_refused_as_the_loader_refuses_them(void **state)
{
    (void)state;
    refused(GPT2, "gpt2_missing", (edit){.tensor = "transformer.h.0.attn.c_attn.weight", .drop = 1},
            CLORA_ERR_FORMAT, "no tensor for parameter");
    refused(GPT2, "gpt2_extra", (edit){.extra = "transformer.h.0.attn.c_attn.scale"}, CLORA_ERR_FORMAT,
            "matches no parameter");
    refused(GPT2, "gpt2_transposed", (edit){.tensor = "transformer.h.0.mlp.c_fc.weight", .transpose = 1},
            CLORA_ERR_SHAPE_MISMATCH, "transformer.h.0.mlp.c_fc.weight");
    refused(GPT2, "gpt2_ints", (edit){.tensor = "transformer.wpe.weight", .as_int = 1},
            CLORA_ERR_DTYPE_MISMATCH, "not floats");
    refused(GPT2, "gpt2_wider", (edit){.key = "n_embd", .value = json_integer(48)},
            CLORA_ERR_SHAPE_MISMATCH, "");
    refused(GPT2, "gpt2_heads", (edit){.key = "n_head", .value = json_integer(5)},
            CLORA_ERR_INVALID_ARGUMENT, "");
    refused(GPT2, "gpt2_type", (edit){.key = "model_type", .value = json_string("gpt3")},
            CLORA_ERR_UNSUPPORTED, "model_type \"gpt3\"");
    refused(BERT, "bert_layers", (edit){.key = "num_hidden_layers", .value = json_integer(3)},
            CLORA_ERR_FORMAT, "no tensor for parameter");
    refused(BERT, "bert_position", (edit){.key = "position_embedding_type",
                                           .value = json_string("relative_key")},
            CLORA_ERR_UNSUPPORTED, "relative_key");
    refused(LLAMA, "llama_kv_heads", (edit){.key = "num_key_value_heads", .value = json_integer(1)},
            CLORA_ERR_SHAPE_MISMATCH, "k_proj");
    refused(LLAMA, "llama_vocab", (edit){.key = "vocab_size", .value = json_string("many")},
            CLORA_ERR_FORMAT, "vocab_size");
}

/* A clora folder of a small GPT-2, saved by clora. */
static void saved_gpt2(char dir[256])
{
    snprintf(dir, 256, "%s/saved", work);
    clora_gpt2_config c = clora_gpt2_config_default();
    c.vocab_size = 40;
    c.n_positions = 16;
    c.n_embd = 16;
    c.n_layer = 2;
    c.n_head = 2;
    c.n_inner = 32;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_gpt2(&model, test_device, &c, 7));
    CHECK_OK(clora_model_save(model, dir));
    clora_model_destroy(model);
}

static void clora_folders_are_refused_as_the_loader_refuses_them(void **state)
{
    (void)state;
    char saved[256];
    saved_gpt2(saved);
    CHECK_OK(check_as_load(saved));
    refused(saved, "clora_missing", (edit){.tensor = "transformer.h.1.ln_2.bias", .drop = 1},
            CLORA_ERR_FORMAT, "no tensor for parameter transformer.h.1.ln_2.bias");
    refused(saved, "clora_extra", (edit){.extra = "transformer.h.9.ln_1.weight"},
            CLORA_ERR_FORMAT, "matches no parameter");
    refused(saved, "clora_kind", (edit){.key = "model.kind", .value = json_string("parallel")},
            CLORA_ERR_FORMAT, "sequential");
}

/* A model of 2.1 million values: the check's budget holds what a load
 * holds at once (the parameters, the trainable and the gradient arenas). */
static void a_larger_model_passes(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/larger", work);
    clora_gpt2_config c = clora_gpt2_config_default();
    c.vocab_size = 2000;
    c.n_positions = 64;
    c.n_embd = 256;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_inner = 1024;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_gpt2(&model, test_device, &c, 7));
    clora_param_counts counts;
    CHECK_OK(clora_model_count_params(model, &counts));
    assert_true(counts.total > 2000000);
    CHECK_OK(clora_model_save(model, dir));
    clora_model_destroy(model);
    CHECK_OK(check_as_load(dir));
}

static void values_are_left_to_the_load(void **state)
{
    (void)state;
    char dir[256];
    edit e = {.tensor = "transformer.h.1.mlp.c_proj.weight", .nan = 1};
    broken_copy(GPT2, "gpt2_nan", &e, dir);
    CHECK_OK(clora_model_check(dir));
    clora_model *model = NULL;
    CHECK_STATUS(clora_model_load(&model, test_device, dir), CLORA_ERR_NON_FINITE);
    assert_null(model);
}

/* A config far larger than its files is refused before it is built
 * (a million layers would take the loader minutes to build and refuse). */
static void configs_larger_than_their_files_are_refused_early(void **state)
{
    (void)state;
    char dir[256];
    edit e = {.key = "n_layer", .value = json_integer(1000000)};
    broken_copy(GPT2, "gpt2_deep", &e, dir);
    CHECK_STATUS(clora_model_check(dir), CLORA_ERR_FORMAT);
    test_expect_message("more than its weight files can fill");
}

static void missing_paths_are_refused_as_the_loader_refuses_them(void **state)
{
    (void)state;
    char dir[256];
    snprintf(dir, sizeof dir, "%s/nothing_here", work);
    assert_int_not_equal(check_as_load(dir), CLORA_OK);
    CHECK_STATUS(clora_model_check(NULL), CLORA_ERR_NULL_ARGUMENT);
}

static int setup(void **state)
{
    test_temp_dir(work, "model-check");
    return test_open_device(state);
}

static int teardown(void **state)
{
    test_remove_dir(work);
    return test_close_device(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_golden_folder_passes),
        cmocka_unit_test(hugging_face_folders_are_refused_as_the_loader_refuses_them),
        cmocka_unit_test(clora_folders_are_refused_as_the_loader_refuses_them),
        cmocka_unit_test(a_larger_model_passes),
        cmocka_unit_test(values_are_left_to_the_load),
        cmocka_unit_test(configs_larger_than_their_files_are_refused_early),
        cmocka_unit_test(missing_paths_are_refused_as_the_loader_refuses_them),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
