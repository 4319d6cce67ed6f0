/* test_faults.c — every call clora makes to the OpenCL runtime, CLBlast,
 * the file system and the heap failed in turn (src/core/fault.c), over a
 * training step, an adapter save and load, a model save, a merge and an
 * unmerge, a run state's save and load, model loads (a Hugging Face folder
 * and a GGUF file) and a generation step. Each failure must come back as an
 * error with a message; the model must be as before the call (checksummed)
 * and give, once the fault is gone, what a run that never failed gives;
 * files on disk must be the old ones; device memory must come back.
 * jansson's own allocations are left alone: jansson 2.14 lets some of their
 * failures pass unreported (its lexer drops the byte it could not store,
 * akheron/jansson#362), so no caller could report them. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/hf_save.h"
#include "core/core.h"

#ifndef CLORA_TEST_GOLDEN_DIR
#error "CLORA_TEST_GOLDEN_DIR must name tests/golden"
#endif

/* Runs stop at the first k that meets no fault; a sweep longer than this
 * is a loop that never ends. */
#define MAX_FAULTS 20000

static void faults_at(long k)
{
    clora__fault_plan_set(CLORA__FAULT_ALL, k, NULL);
}

static void no_faults(void)
{
    clora__fault_plan_set(0, 0, NULL);
}

/* Whether the run with fault k met it: if not, the sweep is over (and the
 * call must have succeeded). */
static int met_fault(long k, clora_status status, const char *what)
{
    const long hits = clora__faults.hits;
    const int met = hits >= k;
    no_faults();
    if (!met) {
        if (status != CLORA_OK)
            fail_msg("%s failed with no fault injected: %s", what, clora_last_error());
        return 0;
    }
    if (status == CLORA_OK)
        fail_msg("%s: fault %ld of %ld calls was injected, but it returned CLORA_OK", what, k,
                 hits);
    if (!clora_last_error()[0])
        fail_msg("%s: fault %ld gave %s with no message", what, k, clora_status_name(status));
    return 1;
}

/* FNV-1a over every parameter's values (names and order included). */
static uint64_t model_checksum(clora_model *model)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const size_t count = clora_model_param_count(model);
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        for (const char *p = info.name; *p; ++p)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
        float *v = test_download(info.value);
        const unsigned char *bytes = (const unsigned char *)v;
        for (size_t b = 0; b < clora_buffer_numel(info.value) * sizeof(float); ++b)
            h = (h ^ bytes[b]) * 0x100000001b3ull;
        free(v);
    }
    return h;
}

/* Device memory clora holds, with the pool of recycled buffers let go. */
static uint64_t device_bytes(void)
{
    clora__device_pool_clear(test_device);
    clora_memory_report report;
    CHECK_OK(clora_device_memory(test_device, &report));
    return report.total;
}

/* ---- models ------------------------------------------------------------------------------ */

static clora_model *tiny_llama(uint64_t seed)
{
    clora_llama_config c = clora_llama_config_default();
    c.vocab_size = 13;
    c.hidden_size = 12;
    c.intermediate_size = 11;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = 6;
    c.rope_theta = 100.0f;
    c.initializer_range = 0.3f;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_llama(&model, test_device, &c, seed));
    return model;
}

static const char *const targets[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                      "gate_proj", "up_proj", "down_proj"};

/* The tiny Llama with LoRA (dropout on, so that a retried step must draw
 * the masks it would have drawn) and B drawn too, so the adapter acts;
 * with DoRA, magnitudes drawn off their start as well. */
static clora_model *lora_llama(uint64_t seed, int dora)
{
    clora_model *model = tiny_llama(seed);
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 2;
    lora.alpha = 4;
    lora.dropout = 0.25f;
    lora.target_modules = targets;
    lora.target_module_count = 7;
    lora.use_dora = dora;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    uint64_t rng = seed * 7 + 1;
    for (size_t i = 0; i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        const int magnitude = strstr(info.name, "lora_magnitude_vector") != NULL;
        if (!strstr(info.name, "lora_B") && !magnitude)
            continue;
        const size_t n = clora_buffer_numel(info.value);
        float *v = test_alloc(n);
        test_fill_uniform(v, n, &rng, magnitude ? 0.5f : -0.5f, magnitude ? 2.0f : 0.5f);
        CHECK_OK(clora_buffer_upload(info.value, 0, v, n));
        free(v);
    }
    return model;
}

static clora_model *adapted_llama(uint64_t seed)
{
    return lora_llama(seed, 0);
}

static clora_model *dora_llama(uint64_t seed)
{
    return lora_llama(seed, 1);
}

enum { B = 2, T = 5, V = 13 };

static clora_buffer *ids_buffer(const int32_t *ids)
{
    const size_t shape[2] = {B, T};
    clora_buffer *buf = NULL;
    CHECK_OK(clora_buffer_create_typed(&buf, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(buf, 0, ids, B * T));
    return buf;
}

/* ---- a training step ----------------------------------------------------------------------- */

/* One step of the optimizer after `done` clean ones. */
typedef struct step_run {
    clora_model *model;
    clora_trainer *trainer;
    clora_buffer *x, *y;
} step_run;

static void step_run_start(step_run *r)
{
    static const int32_t ids[B * T] = {1, 5, 9, 2, 7, 3, 3, 11, 0, 6};
    static const int32_t next[B * T] = {5, 9, 2, 7, 4, 3, 11, 0, 6, 12};
    r->model = adapted_llama(31);
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 0.01f;
    cfg.max_grad_norm = 1.0f; /* the clipping kernels too */
    r->trainer = NULL;
    CHECK_OK(clora_trainer_create(&r->trainer, r->model, &cfg));
    r->x = ids_buffer(ids);
    r->y = ids_buffer(next);
    float loss;
    CHECK_OK(clora_trainer_step(r->trainer, r->x, r->y, &loss)); /* the moments are set */
}

static void step_run_end(step_run *r)
{
    clora_buffer_destroy(r->x);
    clora_buffer_destroy(r->y);
    clora_trainer_destroy(r->trainer);
    clora_model_destroy(r->model);
}

static void a_failed_training_step_changes_nothing(void **state)
{
    (void)state;
    float loss = 0.0f;
    step_run clean;
    step_run_start(&clean);
    CHECK_OK(clora_trainer_step(clean.trainer, clean.x, clean.y, &loss));
    const uint64_t want = model_checksum(clean.model);
    step_run_end(&clean);
    /* what the device keeps between calls (GEMM and rank-r temporaries) is there now */
    const uint64_t bytes_before = device_bytes();
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        step_run r;
        step_run_start(&r);
        const uint64_t before = model_checksum(r.model);
        faults_at(k);
        clora_status status = clora_trainer_step(r.trainer, r.x, r.y, &loss);
        if (!met_fault(k, status, "clora_trainer_step")) {
            step_run_end(&r);
            break;
        }
        ++failures;
        if (model_checksum(r.model) != before)
            fail_msg("fault %ld of a training step changed the model", k);
        assert_int_equal(clora_trainer_step_count(r.trainer), 1);
        /* the step again, now without the fault: as if it had never failed */
        CHECK_OK(clora_trainer_step(r.trainer, r.x, r.y, &loss));
        if (model_checksum(r.model) != want)
            fail_msg("after fault %ld, the retried training step differs from a clean one", k);
        step_run_end(&r);
    }
    assert_true(failures > 20); /* the sweep reached the step's calls */
    print_message("a training step: %ld calls failed in turn\n", failures);
    if (device_bytes() != bytes_before)
        fail_msg("device memory: %llu bytes before the sweep, %llu after",
                 (unsigned long long)bytes_before, (unsigned long long)device_bytes());
}

/* A program whose build fails is built again at its next use. Runs first
 * in the binary, while the cached attention's programs are not built. */
static void a_failed_build_is_tried_again(void **state)
{
    (void)state;
    static const int32_t prompt[3] = {2, 7, 1};
    const size_t three = 3;
    float got[V];
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        clora_model *model = tiny_llama(9);
        clora_session *session = NULL;
        CHECK_OK(clora_session_create(&session, model, 1, 8));
        clora__fault_plan_set(1u << CLORA__FAULT_BUILD, k, NULL);
        clora_status status = clora_session_feed(session, prompt, &three, 3, got);
        const int met = met_fault(k, status, "clora_session_feed");
        if (met) {
            ++failures;
            assert_int_equal(clora_session_length(session, 0), 0);
            test_expect_message("CL_BUILD_PROGRAM_FAILURE");
        }
        clora_session_destroy(session);
        clora_model_destroy(model);
        if (!met)
            break;
    }
    assert_true(failures >= 1);
    print_message("a first generation step: %ld program builds failed in turn\n", failures);
}

/* ---- adapter files -------------------------------------------------------------------------- */

static char work[64];

static char *read_all(const char *dir, const char *name, size_t *size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *data = malloc(*size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, *size, f), *size);
    fclose(f);
    return data;
}

static void assert_same_file(const char *dir, const char *other, const char *name, long k)
{
    size_t a_size, b_size;
    char *a = read_all(dir, name, &a_size), *b = read_all(other, name, &b_size);
    if (a_size != b_size || memcmp(a, b, a_size) != 0)
        fail_msg("after fault %ld, %s/%s is not the one in %s", k, dir, name, other);
    free(a);
    free(b);
}

/* Fails if dir holds a name other than the two files `a` and `b`. */
static void assert_only_files(const char *dir, const char *a, const char *b, long k)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..") && strcmp(e->d_name, a) &&
            strcmp(e->d_name, b))
            fail_msg("after fault %ld, %s holds %s", k, dir, e->d_name);
    closedir(d);
}

static void assert_only_adapter_files(const char *dir, long k)
{
    assert_only_files(dir, "adapter_config.json", "adapter_model.safetensors", k);
}

static void a_failed_adapter_save_keeps_the_old_files(void **state)
{
    (void)state;
    char old_dir[96], new_dir[96], dir[96];
    snprintf(old_dir, sizeof old_dir, "%s/old", work);
    snprintf(new_dir, sizeof new_dir, "%s/new", work);
    snprintf(dir, sizeof dir, "%s/saved", work);
    clora_model *old_model = adapted_llama(3), *model = adapted_llama(4);
    CHECK_OK(clora_adapter_save(old_model, NULL, old_dir));
    CHECK_OK(clora_adapter_save(model, NULL, new_dir));
    CHECK_OK(clora_adapter_save(old_model, NULL, dir));
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status = clora_adapter_save(model, NULL, dir);
        if (!met_fault(k, status, "clora_adapter_save"))
            break;
        ++failures;
        assert_same_file(dir, old_dir, "adapter_config.json", k);
        assert_same_file(dir, old_dir, "adapter_model.safetensors", k);
        assert_only_adapter_files(dir, k);
        CHECK_OK(clora_adapter_check(dir));
    }
    assert_same_file(dir, new_dir, "adapter_model.safetensors", 0);
    assert_only_adapter_files(dir, 0);
    assert_true(failures >= 6); /* downloads, opens, writes, fsyncs, renames */
    print_message("an adapter save: %ld calls failed in turn\n", failures);
    clora_model_destroy(old_model);
    clora_model_destroy(model);
}

/* The tiny Llama with ranks and alphas by pattern, as PEFT's rank_pattern
 * and alpha_pattern save them: a failure while matching them must not read
 * as "no pattern matches" (a wrong rank or, silently, a wrong scale). */
static clora_model *patterned_llama(uint64_t seed)
{
    clora_model *model = tiny_llama(seed);
    static const clora_pattern_value ranks[] = {{"q_proj", 3}}, alphas[] = {{"v_proj", 7}};
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 2;
    lora.alpha = 4;
    lora.target_modules = targets;
    lora.target_module_count = 3;
    lora.rank_pattern = ranks;
    lora.rank_pattern_count = 1;
    lora.alpha_pattern = alphas;
    lora.alpha_pattern_count = 1;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    return model;
}

/* The tiny Llama with LoRA on embed_tokens (lora_embedding_A and _B) and on
 * q_proj, A of the table drawn non-zero too. */
static clora_model *embedding_llama(uint64_t seed)
{
    clora_model *model = tiny_llama(seed);
    static const char *const both[] = {"embed_tokens", "q_proj"};
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 2;
    lora.target_modules = both;
    lora.target_module_count = 2;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "model.embed_tokens.lora_embedding_A.default", &info));
    const size_t n = clora_buffer_numel(info.value);
    float *v = test_alloc(n);
    uint64_t rng = seed + 3;
    test_fill_uniform(v, n, &rng, -0.5f, 0.5f);
    CHECK_OK(clora_buffer_upload(info.value, 0, v, n));
    free(v);
    return model;
}

static void sweep_adapter_load(clora_model *(*make)(uint64_t), const char *what)
{
    char dir[96];
    snprintf(dir, sizeof dir, "%s/to_load_%s", work, what);
    clora_model *source = make(5);
    CHECK_OK(clora_adapter_save(source, NULL, dir));
    const uint64_t want = model_checksum(source);
    clora_model_destroy(source);
    clora_model *model = tiny_llama(5);
    const uint64_t before = model_checksum(model);
    const size_t params = clora_model_param_count(model);
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status = clora_adapter_load(model, dir, NULL);
        if (!met_fault(k, status, "clora_adapter_load"))
            break;
        ++failures;
        assert_int_equal(clora_model_param_count(model), params);
        assert_null(clora_model_active_adapter(model));
        if (model_checksum(model) != before)
            fail_msg("fault %ld of an adapter load changed the model (%s)", k,
                     clora_last_error());
    }
    assert_int_equal(model_checksum(model), want);
    assert_true(failures >= 3);
    print_message("an adapter load (%s): %ld calls failed in turn\n", what, failures);
    clora_model_destroy(model);
}

/* PEFT's own folders on tiny GPT-2 (tests/golden/peft_options): an
 * adapter with bias "all" (biases of the whole model in the file), a
 * folder of two named adapters (clora_adapter_load_all), and a weighted
 * combination of two. A failure leaves the model as it was. */
static void sweep_peft_folder(const char *name, int op)
{
    static const char *const what[3] = {"clora_adapter_load", "clora_adapter_load_all",
                                        "clora_model_add_weighted_adapter"};
    char dir[512];
    snprintf(dir, sizeof dir, CLORA_TEST_GOLDEN_DIR "/peft_options/0212/%s", name);
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", 0, 0));
    if (op == 2)
        CHECK_OK(clora_adapter_load_all(model, dir, NULL));
    const char *const names[2] = {"default", "second"};
    const float weights[2] = {0.7f, 0.3f};
    const uint64_t before = model_checksum(model);
    const size_t params = clora_model_param_count(model);
    const size_t adapters = clora_model_adapter_count(model);
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status =
            op == 0   ? clora_adapter_load(model, dir, NULL)
            : op == 1 ? clora_adapter_load_all(model, dir, NULL)
                      : clora_model_add_weighted_adapter(model, names, weights, 2, "mix",
                                                         CLORA_COMBINE_CAT);
        if (!met_fault(k, status, what[op]))
            break;
        ++failures;
        assert_int_equal(clora_model_param_count(model), params);
        assert_int_equal(clora_model_adapter_count(model), adapters);
        if (model_checksum(model) != before)
            fail_msg("fault %ld of %s changed the model (%s)", k, what[op], clora_last_error());
    }
    assert_int_equal(clora_model_adapter_count(model), op == 1 ? 2 : adapters + 1);
    assert_true(model_checksum(model) != before);
    assert_true(failures >= 3);
    print_message("%s (%s): %ld calls failed in turn\n", what[op], name, failures);
    clora_model_destroy(model);
}

static void a_failed_adapter_load_changes_nothing(void **state)
{
    (void)state;
    sweep_adapter_load(adapted_llama, "uniform");
    sweep_adapter_load(patterned_llama, "patterns");
    sweep_adapter_load(dora_llama, "DoRA");
    sweep_peft_folder("bias_all", 0);
    sweep_peft_folder("multi", 1);
    sweep_peft_folder("combine", 2);
    sweep_adapter_load(embedding_llama, "embedding");
}

static void a_failed_model_save_keeps_the_old_files(void **state)
{
    (void)state;
    char old_dir[96], new_dir[96], dir[96];
    snprintf(old_dir, sizeof old_dir, "%s/old_model", work);
    snprintf(new_dir, sizeof new_dir, "%s/new_model", work);
    snprintf(dir, sizeof dir, "%s/saved_model", work);
    clora_model *old_model = tiny_llama(21), *model = tiny_llama(22);
    CHECK_OK(clora_model_save(old_model, old_dir));
    CHECK_OK(clora_model_save(model, new_dir));
    CHECK_OK(clora_model_save(old_model, dir));
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status = clora_model_save(model, dir);
        if (!met_fault(k, status, "clora_model_save"))
            break;
        ++failures;
        assert_same_file(dir, old_dir, "config.json", k);
        assert_same_file(dir, old_dir, "model.safetensors", k);
        assert_only_files(dir, "config.json", "model.safetensors", k);
    }
    assert_same_file(dir, new_dir, "model.safetensors", 0);
    assert_only_files(dir, "config.json", "model.safetensors", 0);
    assert_true(failures >= 6);
    print_message("a model save: %ld calls failed in turn\n", failures);
    clora_model_destroy(old_model);
    clora_model_destroy(model);
}

/* Fails unless dir holds exactly the files of `other`, each the same. */
static void assert_same_folder(const char *dir, const char *other, long k)
{
    size_t count = 0, other_count = 0;
    DIR *d = opendir(other);
    assert_non_null(d);
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') {
            assert_same_file(dir, other, e->d_name, k);
            ++other_count;
        }
    closedir(d);
    assert_non_null(d = opendir(dir));
    for (struct dirent *e; (e = readdir(d));)
        count += e->d_name[0] != '.';
    closedir(d);
    if (count != other_count)
        fail_msg("after fault %ld, %s holds %zu files, %s %zu", k, dir, count, other, other_count);
}

/* A Hugging Face save (clora_model_save_hf) of a merged GPT-2 over an
 * earlier one in seven shards with an index: each failure leaves the
 * earlier folder file for file; the save that meets no fault writes one
 * model.safetensors and removes the shards and the index. */
static void a_failed_hugging_face_save_keeps_the_old_files(void **state)
{
    (void)state;
    char old_dir[96], new_dir[96], dir[96];
    snprintf(old_dir, sizeof old_dir, "%s/old_hf", work);
    snprintf(new_dir, sizeof new_dir, "%s/new_hf", work);
    snprintf(dir, sizeof dir, "%s/saved_hf", work);
    clora_model *old_model = NULL, *model = NULL;
    CHECK_OK(clora_model_load_hf(&old_model, test_device, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", 0, 0));
    CHECK_OK(clora_model_load_hf(&model, test_device, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", 0, 0));
    CHECK_OK(clora_adapter_load(model, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2_lora", "default"));
    CHECK_OK(clora_model_merge_adapter(model));
    clora_hf_save_options sharded = clora_hf_save_options_default();
    sharded.max_shard_bytes = 20000;
    CHECK_OK(clora_model_save_hf(old_model, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", old_dir, &sharded));
    CHECK_OK(clora_model_save_hf(model, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", new_dir, NULL));
    CHECK_OK(clora_model_save_hf(old_model, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", dir, &sharded));
    const uint64_t before = model_checksum(model);
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status =
            clora_model_save_hf(model, CLORA_TEST_GOLDEN_DIR "/tiny_gpt2", dir, NULL);
        if (!met_fault(k, status, "clora_model_save_hf"))
            break;
        ++failures;
        assert_same_folder(dir, old_dir, k);
        if (model_checksum(model) != before)
            fail_msg("fault %ld of clora_model_save_hf changed the model", k);
    }
    assert_same_folder(dir, new_dir, 0);
    assert_true(failures >= 6);
    print_message("a Hugging Face save: %ld calls failed in turn\n", failures);
    clora_model_destroy(old_model);
    clora_model_destroy(model);
}

/* ---- merging ------------------------------------------------------------------------------------ */

/* Fails each call of `op` (merge or unmerge) on the adapted Llama in turn,
 * the model `unmerge` times merged first: a failure leaves its checksum
 * `before`, the op retried gives `after`, as a clean op does. */
static void sweep_merge(clora_model *(*make)(uint64_t), clora_status (*op)(clora_model *),
                        int unmerge, uint64_t before, uint64_t after, const char *what)
{
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        clora_model *model = make(12);
        if (unmerge)
            CHECK_OK(clora_model_merge_adapter(model));
        faults_at(k);
        const int met = met_fault(k, op(model), what);
        if (met) {
            ++failures;
            if (model_checksum(model) != before)
                fail_msg("fault %ld of %s changed the model", k, what);
            CHECK_OK(op(model));
        }
        if (model_checksum(model) != after)
            fail_msg("after fault %ld, %s differs from a clean one", k, what);
        clora_model_destroy(model);
        if (!met)
            break;
    }
    assert_true(failures >= 3);
    print_message("%s: %ld calls failed in turn\n", what, failures);
}

static void a_failed_merge_changes_nothing(void **state)
{
    (void)state;
    clora_model *(*const makes[3])(uint64_t) = {adapted_llama, dora_llama, embedding_llama};
    static const char *const merges[3] = {"clora_model_merge_adapter",
                                          "clora_model_merge_adapter (DoRA)",
                                          "clora_model_merge_adapter (embedding)"};
    static const char *const unmerges[3] = {"clora_model_unmerge_adapter",
                                            "clora_model_unmerge_adapter (DoRA)",
                                            "clora_model_unmerge_adapter (embedding)"};
    for (int m = 0; m < 3; ++m) {
        clora_model *clean = makes[m](12);
        const uint64_t adapted = model_checksum(clean);
        CHECK_OK(clora_model_merge_adapter(clean));
        const uint64_t merged = model_checksum(clean);
        CHECK_OK(clora_model_unmerge_adapter(clean));
        const uint64_t unmerged = model_checksum(clean);
        clora_model_destroy(clean);
        assert_true(merged != adapted);
        sweep_merge(makes[m], clora_model_merge_adapter, 0, adapted, merged, merges[m]);
        sweep_merge(makes[m], clora_model_unmerge_adapter, 1, merged, unmerged, unmerges[m]);
    }
}

/* ---- a run's state -------------------------------------------------------------------------------- */

static void a_failed_state_save_or_load_changes_nothing(void **state)
{
    (void)state;
    char old_path[128], path[128];
    snprintf(old_path, sizeof old_path, "%s/old_state.safetensors", work);
    snprintf(path, sizeof path, "%s/state.safetensors", work);
    float loss;
    step_run r;
    step_run_start(&r); /* one step taken */
    CHECK_OK(clora_trainer_save_state(r.trainer, old_path));
    CHECK_OK(clora_trainer_save_state(r.trainer, path));
    CHECK_OK(clora_trainer_step(r.trainer, r.x, r.y, &loss)); /* two */
    const uint64_t two = model_checksum(r.model);
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status = clora_trainer_save_state(r.trainer, path);
        if (!met_fault(k, status, "clora_trainer_save_state"))
            break;
        ++failures;
        size_t a_size, b_size;
        char *a = read_all(work, "state.safetensors", &a_size);
        char *b = read_all(work, "old_state.safetensors", &b_size);
        if (a_size != b_size || memcmp(a, b, a_size))
            fail_msg("after fault %ld of a state save, the old state file is gone", k);
        free(a);
        free(b);
    }
    assert_true(failures >= 4);
    print_message("a run state save: %ld calls failed in turn\n", failures);
    /* the file now holds step two; load the old one over it, failing in turn */
    long load_failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        faults_at(k);
        clora_status status = clora_trainer_load_state(r.trainer, old_path);

        const int met = met_fault(k, status, "clora_trainer_load_state");
        if (!met)
            break;
        ++load_failures;
        if (model_checksum(r.model) != two || clora_trainer_step_count(r.trainer) != 2)
            fail_msg("fault %ld of a state load changed the run", k);
    }
    assert_int_equal(clora_trainer_step_count(r.trainer), 1); /* the last load went through */
    assert_true(load_failures >= 3);
    print_message("a run state load: %ld calls failed in turn\n", load_failures);
    step_run_end(&r);
}

/* ---- the parameter list ----------------------------------------------------------------------- */

/* A list that cannot be built is an error, not "no parameters". */
static void a_failed_parameter_list_is_an_error(void **state)
{
    (void)state;
    clora_model *model = adapted_llama(2); /* the list was built; a new adapter dirties it */
    const size_t want = clora_model_param_count(model);
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 1;
    lora.adapter_name = "second";
    lora.target_modules = targets;
    lora.target_module_count = 1;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        size_t count = 99;
        faults_at(k);
        clora_status status = clora_model_params(model, &count);
        if (!met_fault(k, status, "clora_model_params"))
            break;
        ++failures;
        assert_int_equal(count, 0);
    }
    assert_true(failures >= 1);
    size_t count = 0;
    CHECK_OK(clora_model_params(model, &count));
    assert_int_equal(count, want + 2 * 2); /* A and B of the two layers' q_proj */
    clora_model_destroy(model);
}

/* ---- model loads ------------------------------------------------------------------------------ */

static void sweep_model_load(const char *path)
{
    const uint64_t bytes_before = device_bytes();
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        clora_model *model = NULL;
        faults_at(k);
        clora_status status = clora_model_load(&model, test_device, path);
        if (!met_fault(k, status, path)) {
            clora_model_destroy(model);
            break;
        }
        ++failures;
        assert_null(model);
        if (device_bytes() != bytes_before)
            fail_msg("fault %ld loading %s left %llu bytes of device memory behind", k, path,
                     (unsigned long long)(device_bytes() - bytes_before));
    }
    assert_true(failures >= 3);
    print_message("loading %s: %ld calls failed in turn\n", path, failures);
    assert_int_equal(device_bytes(), bytes_before);
}

static void a_failed_model_load_leaves_nothing(void **state)
{
    (void)state;
    sweep_model_load(CLORA_TEST_GOLDEN_DIR "/tiny_llama");
    sweep_model_load(CLORA_TEST_GOLDEN_DIR "/gguf_llama/llama-Q4_1.gguf");
}

/* ---- generation ---------------------------------------------------------------------------------- */

static void a_failed_feed_leaves_the_session_as_it_was(void **state)
{
    (void)state;
    clora_model *model = adapted_llama(8);
    static const int32_t prompt[4] = {3, 1, 4, 1}, next[1] = {5};
    const size_t four = 4, one = 1;
    float want[V], got[V];
    clora_session *session = NULL;
    CHECK_OK(clora_session_create(&session, model, 1, 16));
    CHECK_OK(clora_session_feed(session, prompt, &four, 4, got));
    CHECK_OK(clora_session_feed(session, next, &one, 1, want));
    long failures = 0;
    for (long k = 1; k < MAX_FAULTS; ++k) {
        clora_session_reset(session);
        CHECK_OK(clora_session_feed(session, prompt, &four, 4, got));
        faults_at(k);
        clora_status status = clora_session_feed(session, next, &one, 1, got);
        if (!met_fault(k, status, "clora_session_feed"))
            break;
        ++failures;
        assert_int_equal(clora_session_length(session, 0), 4);
        CHECK_OK(clora_session_feed(session, next, &one, 1, got));
        test_assert_identical("logits after a failed feed", got, want, V);
    }
    assert_true(failures >= 5);
    print_message("a generation step: %ld calls failed in turn\n", failures);
    clora_session_destroy(session);
    clora_model_destroy(model);
}

static int setup(void **state)
{
    test_temp_dir(work, "faults");
    return test_open_device(state);
}

static int teardown(void **state)
{
    no_faults();
    test_remove_dir(work);
    return test_close_device(state);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_failed_build_is_tried_again),
        cmocka_unit_test(a_failed_training_step_changes_nothing),
        cmocka_unit_test(a_failed_adapter_save_keeps_the_old_files),
        cmocka_unit_test(a_failed_adapter_load_changes_nothing),
        cmocka_unit_test(a_failed_model_save_keeps_the_old_files),
        cmocka_unit_test(a_failed_hugging_face_save_keeps_the_old_files),
        cmocka_unit_test(a_failed_merge_changes_nothing),
        cmocka_unit_test(a_failed_state_save_or_load_changes_nothing),
        cmocka_unit_test(a_failed_parameter_list_is_an_error),
        cmocka_unit_test(a_failed_model_load_leaves_nothing),
        cmocka_unit_test(a_failed_feed_leaves_the_session_as_it_was),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
