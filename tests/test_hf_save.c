/* test_hf_save.c — clora_model_save_hf: a merged model written as a
 * Hugging Face folder. Its shards and index against what transformers'
 * save_pretrained wrote for the same merges (tests/golden/
 * hf_merge_reference.json, from make_hf_merge_golden.py), its tensor names
 * and config against the source's, what it removes of an earlier save,
 * the dtypes it writes, BERT's mean-pooling classifier beside a BertModel,
 * and its refusals. Reading back is clora_model_load_hf; transformers'
 * side is the golden script's and `make compat`'s. */
#include "support.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clora/hf_save.h"
#include "clora/safetensors.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static char work[64];
static json_t *reference; /* hf_merge_reference.json */

static int setup(void **state)
{
    test_temp_dir(work, "hf-save");
    json_error_t error;
    reference = json_load_file(GOLDEN "/hf_merge_reference.json", 0, &error);
    if (!reference) {
        fprintf(stderr, "hf_merge_reference.json: %s\n", error.text);
        return -1;
    }
    return test_open_device(state);
}

static int teardown(void **state)
{
    json_decref(reference);
    test_remove_dir(work);
    return test_close_device(state);
}

static char *test_strdup(const char *s)
{
    char *copy = malloc(strlen(s) + 1);
    assert_non_null(copy);
    return strcpy(copy, s);
}

static const char *out_dir(const char *name)
{
    static char dirs[8][128];
    static int next;
    char *dir = dirs[next++ % 8];
    snprintf(dir, 128, "%s/%s", work, name);
    return dir;
}

/* GOLDEN/<name> with its adapter GOLDEN/<name>_lora merged in. */
static clora_model *merged(const char *name)
{
    char dir[512];
    clora_model *model = NULL;
    snprintf(dir, sizeof dir, GOLDEN "/%s", name);
    CHECK_OK(clora_model_load_hf(&model, test_device, dir, 0, 0));
    snprintf(dir, sizeof dir, GOLDEN "/%s_lora", name);
    CHECK_OK(clora_adapter_load(model, dir, "default"));
    CHECK_OK(clora_model_merge_adapter(model));
    return model;
}

/* The model's output for ids 5, 17, 3, 42, 9, 28, 11 (one row). */
static float *output_of(clora_model *model, size_t *n)
{
    const int32_t ids[7] = {5, 17, 3, 42, 9, 28, 11};
    clora_buffer *x = NULL;
    const size_t shape[2] = {1, 7};
    CHECK_OK(clora_buffer_create_typed(&x, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(x, 0, ids, 7));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, x, &y));
    *n = clora_buffer_numel(y);
    float *out = test_download(y);
    clora_buffer_destroy(x);
    return out;
}

/* Fails unless `model` and the folder it was saved to compute the same
 * output, bit for bit (F32 written as it is). */
static void expect_same_output(clora_model *model, const char *dir)
{
    clora_model *back = NULL;
    CHECK_OK(clora_model_load_hf(&back, test_device, dir, 0, 0));
    size_t n = 0, m = 0;
    float *want = output_of(model, &n), *got = output_of(back, &m);
    assert_int_equal(n, m);
    test_assert_identical(dir, got, want, n);
    free(want);
    free(got);
    clora_model_destroy(back);
}

/* The folder's entries, sorted, as one JSON array of names. */
static json_t *entries_of(const char *dir)
{
    json_t *names = json_array();
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *list[64];
    size_t count = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.' && count < 64)
            list[count++] = test_strdup(e->d_name);
    closedir(d);
    for (size_t i = 0; i < count; ++i)
        for (size_t j = i + 1; j < count; ++j)
            if (strcmp(list[j], list[i]) < 0) {
                char *t = list[i];
                list[i] = list[j];
                list[j] = t;
            }
    for (size_t i = 0; i < count; ++i) {
        json_array_append_new(names, json_string(list[i]));
        free(list[i]);
    }
    return names;
}

static json_t *load_json(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    json_error_t error;
    json_t *j = json_load_file(path, 0, &error);
    if (!j)
        fail_msg("%s: %s", path, error.text);
    return j;
}

static int exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* ---- shards ------------------------------------------------------------------------------ */

/* Sharded at the reference's max_shard_size, the folder holds the shard
 * files save_pretrained wrote, and the index maps every tensor to the
 * same shard with the same total_size. */
static void shards_as_transformers_writes_them(void **state)
{
    (void)state;
    const char *names[2] = {"tiny_gpt2", "tiny_llama"};
    for (int i = 0; i < 2; ++i) {
        const json_t *ref = json_object_get(json_object_get(reference, "cases"), names[i]);
        assert_non_null(ref);
        clora_model *model = merged(names[i]);
        const char *dir = out_dir(names[i]);
        clora_hf_save_options options = clora_hf_save_options_default();
        options.max_shard_bytes =
            (uint64_t)json_integer_value(json_object_get(ref, "max_shard_size"));
        char source[256];
        snprintf(source, sizeof source, GOLDEN "/%s", names[i]);
        CHECK_OK(clora_model_save_hf(model, source, dir, &options));
        /* the weight files: shards and index, as save_pretrained names them */
        json_t *entries = entries_of(dir), *weights = json_array();
        size_t k;
        json_t *e;
        json_array_foreach(entries, k, e) {
            const char *name = json_string_value(e);
            if (strncmp(name, "model", 5) == 0)
                json_array_append(weights, e);
        }
        if (!json_equal(weights, json_object_get(ref, "files"))) {
            char *got = json_dumps(weights, 0), *want = json_dumps(json_object_get(ref, "files"), 0);
            fail_msg("%s: weight files %s, transformers wrote %s", names[i], got, want);
        }
        json_t *index = load_json(dir, "model.safetensors.index.json");
        const json_t *want = json_object_get(ref, "index");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(index, "metadata"),
                                                            "total_size")),
                         json_integer_value(json_object_get(json_object_get(want, "metadata"),
                                                            "total_size")));
        const json_t *got_map = json_object_get(index, "weight_map");
        const json_t *want_map = json_object_get(want, "weight_map");
        assert_int_equal(json_object_size(got_map), json_object_size(want_map));
        const char *tensor;
        json_t *file;
        json_object_foreach((json_t *)want_map, tensor, file) {
            const char *got_file = json_string_value(json_object_get(got_map, tensor));
            if (!got_file || strcmp(got_file, json_string_value(file)))
                fail_msg("%s: tensor %s in %s, transformers put it in %s", names[i], tensor,
                         got_file ? got_file : "(none)", json_string_value(file));
        }
        expect_same_output(model, dir);
        json_decref(index);
        json_decref(weights);
        json_decref(entries);
        clora_model_destroy(model);
    }
}

/* ---- one file, names, config, earlier saves ------------------------------------------------ */

static void expect_entries(const char *dir, const char *const *names, size_t count)
{
    json_t *want = json_array(), *got = entries_of(dir);
    for (size_t i = 0; i < count; ++i)
        json_array_append_new(want, json_string(names[i]));
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, 0), *w = json_dumps(want, 0);
        fail_msg("%s holds %s, expected %s", dir, g, w);
    }
    json_decref(want);
    json_decref(got);
}

/* Below the limit: config.json and one model.safetensors with every
 * tensor of the source under its name; the config is the source's. A save
 * into a folder of an earlier one removes the weight files it does not
 * write: a whole file where shards go, shards of another count, the index. */
static void one_file_then_shards_then_one_file(void **state)
{
    (void)state;
    clora_model *model = merged("tiny_gpt2");
    const char *dir = out_dir("gpt2");
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, NULL));
    const char *whole[2] = {"config.json", "model.safetensors"};
    expect_entries(dir, whole, 2);
    clora_safetensors *source = NULL, *file = NULL;
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(clora_safetensors_open(&source, GOLDEN "/tiny_gpt2/model.safetensors"));
    CHECK_OK(clora_safetensors_open(&file, path));
    assert_int_equal(clora_safetensors_count(file), clora_safetensors_count(source));
    for (size_t t = 0; t < clora_safetensors_count(source); ++t) {
        clora_tensor_view want, got;
        CHECK_OK(clora_safetensors_get(source, t, &want));
        CHECK_OK(clora_safetensors_find(file, want.name, &got));
        assert_int_equal(got.dtype, want.dtype);
        assert_int_equal(got.ndim, want.ndim);
        for (size_t d = 0; d < want.ndim; ++d)
            assert_int_equal(got.shape[d], want.shape[d]);
    }
    assert_string_equal(clora_safetensors_metadata(file, "format"), "pt");
    clora_safetensors_close(file);
    clora_safetensors_close(source);
    json_t *config = load_json(dir, "config.json"), *own = load_json(GOLDEN "/tiny_gpt2",
                                                                       "config.json");
    assert_true(json_equal(config, own)); /* float32 in, float32 out */
    json_decref(config);
    json_decref(own);
    expect_same_output(model, dir);

    clora_hf_save_options options = clora_hf_save_options_default();
    options.max_shard_bytes = 20000;
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, &options));
    assert_false(exists(dir, "model.safetensors"));
    assert_true(exists(dir, "model-00007-of-00007.safetensors"));
    options.max_shard_bytes = 40000;
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, &options));
    assert_false(exists(dir, "model-00007-of-00007.safetensors"));
    assert_true(exists(dir, "model.safetensors.index.json"));
    expect_same_output(model, dir);
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, NULL));
    expect_entries(dir, whole, 2);
    expect_same_output(model, dir);
    clora_model_destroy(model);
}

/* ---- dtypes -------------------------------------------------------------------------------- */

/* float32 to bfloat16, round to nearest even (finite values). */
static float bf16_of(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* BF16: every float tensor written as bfloat16, config.json says so, and
 * each value is the merged one rounded to nearest even. F16 refuses a
 * value beyond its range and writes nothing. */
static void dtypes_written_as_asked(void **state)
{
    (void)state;
    clora_model *model = merged("tiny_llama");
    const char *dir = out_dir("llama_bf16");
    clora_hf_save_options options = clora_hf_save_options_default();
    options.dtype = CLORA_DTYPE_BF16;
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_llama", dir, &options));
    json_t *config = load_json(dir, "config.json");
    assert_string_equal(json_string_value(json_object_get(config, "torch_dtype")), "bfloat16");
    json_decref(config);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    for (size_t t = 0; t < clora_safetensors_count(file); ++t) {
        clora_tensor_view view;
        CHECK_OK(clora_safetensors_get(file, t, &view));
        if (view.dtype != CLORA_DTYPE_BF16)
            fail_msg("%s is %s", view.name, clora_dtype_name(view.dtype));
    }
    clora_safetensors_close(file);
    clora_model *back = NULL;
    CHECK_OK(clora_model_load_hf(&back, test_device, dir, 0, 0));
    for (size_t i = 0; i < clora_model_param_count(back); ++i) {
        clora_param_info a, b;
        CHECK_OK(clora_model_param(back, i, &b));
        if (clora_model_find_param(model, b.name, &a) != CLORA_OK) { /* under a LoRA node */
            char name[256];
            const char *dot = strrchr(b.name, '.');
            snprintf(name, sizeof name, "%.*s.base_layer%s", (int)(dot - b.name), b.name, dot);
            CHECK_OK(clora_model_find_param(model, name, &a));
        }
        const size_t n = clora_buffer_numel(a.value);
        float *want = test_download(a.value), *got = test_download(b.value);
        for (size_t k = 0; k < n; ++k)
            want[k] = bf16_of(want[k]);
        test_assert_identical(a.name, got, want, n);
        free(want);
        free(got);
    }
    clora_model_destroy(back);

    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "model.norm.weight", &info));
    const float huge = 1e6f;
    CHECK_OK(clora_buffer_upload(info.value, 3, &huge, 1));
    options.dtype = CLORA_DTYPE_F16;
    const char *refused = out_dir("llama_f16");
    CHECK_STATUS(clora_model_save_hf(model, GOLDEN "/tiny_llama", refused, &options),
                 CLORA_ERR_NON_FINITE);
    test_expect_message("model.norm.weight");
    assert_false(exists(refused, "."));
    clora_model_destroy(model);
}

/* ---- BERT's mean-pooling classifier --------------------------------------------------------- */

/* A BertModel with clora's classifier over mean pooling (num_labels): the
 * head goes in as classifier.weight / classifier.bias beside the source's
 * tensors, config.json gets labels for its rows, and the folder loads
 * back with the head (num_labels 0) and the same output; asking it for
 * another count of labels is refused. */
static void bert_classifier_beside_the_bert_model(void **state)
{
    (void)state;
    clora_load_options load = clora_load_options_default();
    load.num_labels = 3;
    load.seed = 5;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_with(&model, test_device, GOLDEN "/tiny_bert", &load));
    const char *dir = out_dir("bert_classifier");
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_bert", dir, NULL));
    json_t *config = load_json(dir, "config.json");
    const json_t *id2label = json_object_get(config, "id2label");
    assert_int_equal(json_object_size(id2label), 3);
    assert_string_equal(json_string_value(json_object_get(id2label, "2")), "LABEL_2");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(config, "label2id"),
                                                        "LABEL_1")),
                     1);
    json_decref(config);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "classifier.weight", &view));
    assert_int_equal(view.shape[0], 3);
    assert_int_equal(view.shape[1], 32);
    CHECK_OK(clora_safetensors_find(file, "classifier.bias", &view));
    CHECK_OK(clora_safetensors_find(file, "pooler.dense.weight", &view)); /* copied */
    clora_safetensors *source = NULL;
    CHECK_OK(clora_safetensors_open(&source, GOLDEN "/tiny_bert/model.safetensors"));
    assert_int_equal(clora_safetensors_count(file), clora_safetensors_count(source) + 2);
    clora_safetensors_close(source);
    clora_safetensors_close(file);
    size_t n = 0;
    float *out = output_of(model, &n);
    free(out);
    assert_int_equal(n, 3);
    expect_same_output(model, dir);
    clora_model *other = NULL;
    CHECK_STATUS(clora_model_load_hf(&other, test_device, dir, 2, 0), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("classifier has 3 labels");
    assert_null(other);
    clora_model_destroy(model);
}

/* ---- refusals ------------------------------------------------------------------------------- */

static void refusals_write_nothing(void **state)
{
    (void)state;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2", 0, 0));
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_gpt2_lora", "default"));
    const char *dir = out_dir("refused");
    CHECK_STATUS(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, NULL), CLORA_ERR_STATE);
    assert_false(exists(dir, "."));
    CHECK_OK(clora_model_merge_adapter(model));
    clora_hf_save_options options = clora_hf_save_options_default();
    options.dtype = CLORA_DTYPE_Q8_0;
    CHECK_STATUS(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, &options),
                 CLORA_ERR_INVALID_ARGUMENT);
    assert_false(exists(dir, "."));
    /* a clora folder is no source of Hugging Face names */
    const char *own = out_dir("clora_folder");
    CHECK_OK(clora_model_save(model, own));
    CHECK_STATUS(clora_model_save_hf(model, own, dir, NULL), CLORA_ERR_FORMAT);
    assert_false(exists(dir, "."));
    /* the source folder itself */
    const char *copy = out_dir("copy");
    CHECK_OK(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", copy, NULL));
    CHECK_STATUS(clora_model_save_hf(model, copy, copy, NULL), CLORA_ERR_INVALID_ARGUMENT);
    expect_same_output(model, copy);
    CHECK_STATUS(clora_model_save_hf(NULL, GOLDEN "/tiny_gpt2", dir, NULL),
                 CLORA_ERR_NULL_ARGUMENT);
    clora_model_destroy(model);
    /* a head whose Hugging Face class the config does not name */
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2", 0, 0));
    CHECK_OK(clora_model_add_classifier(model, 2, 0.0f, 1));
    CHECK_STATUS(clora_model_save_hf(model, GOLDEN "/tiny_gpt2", dir, NULL),
                 CLORA_ERR_UNSUPPORTED);
    test_expect_message("has no tensor");
    assert_false(exists(dir, "."));
    clora_model_destroy(model);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shards_as_transformers_writes_them),
        cmocka_unit_test(one_file_then_shards_then_one_file),
        cmocka_unit_test(dtypes_written_as_asked),
        cmocka_unit_test(bert_classifier_beside_the_bert_model),
        cmocka_unit_test(refusals_write_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
