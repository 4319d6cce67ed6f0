/* test_embedding_lora.c — LoRA on embeddings (PEFT's lora.Embedding): the
 * kernels against the plain-C reference, PEFT's own adapters on a tiny
 * GPT-2 (lm_head tied to wte) and a tiny Llama (tied, padding_idx 0,
 * rsLoRA, a rank pattern, the table saved beside the adapter) against
 * PEFT's logits, merged logits and gradients
 * (tests/golden/make_embedding_lora_golden.py, PEFT 0.21.2 and 0.6.2),
 * save and load in PEFT's key names, merge, packed tables, and the errors. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_checks.h"
#include "nn/nn.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static golden_file newest, oldest;

static int setup(void **state)
{
    golden_load(GOLDEN "/embedding_lora_reference.txt", &newest);
    golden_load(GOLDEN "/embedding_lora_reference_peft062.txt", &oldest);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&newest);
    golden_free(&oldest);
    return test_close_device(state);
}

static const clora_buffer *logits_of(clora_model *model, const clora_buffer *ids)
{
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    return y;
}

/* ---- the kernels against the reference ------------------------------------------------ */

static void kernels_match_reference_and_repeat_bit_for_bit(void **state)
{
    (void)state;
    const size_t n = 37, V = 11, C = 19, r = 5;
    const float scale = 0.75f;
    int32_t ids[37];
    for (size_t i = 0; i < n; ++i)
        ids[i] = (int32_t)((i * 7 + 3) % V) % 4 == 0 ? 2 : (int32_t)((i * 7 + 3) % V);
    uint64_t rng = 17;
    float *table = test_alloc(V * C), *a = test_alloc(r * V), *b = test_alloc(C * r);
    float *dy = test_alloc(n * C);
    test_fill_uniform(table, V * C, &rng, -1, 1);
    test_fill_uniform(a, r * V, &rng, -1, 1);
    test_fill_uniform(b, C * r, &rng, -1, 1);
    test_fill_uniform(dy, n * C, &rng, -1, 1);
    clora_buffer *bids = NULL;
    CHECK_OK(clora_buffer_create_typed(&bids, test_device, CLORA_DTYPE_I32, 1, &n));
    CHECK_OK(clora_buffer_upload_i32(bids, 0, ids, n));
    clora_buffer *bt = test_buffer_2d(V, C, table), *ba = test_buffer_2d(r, V, a);
    float *zeros = calloc(n * C + r * V + C * r, sizeof(float));
    /* outputs written by upload, not fill: oclgrind counts only the former */
    clora_buffer *bb = test_buffer_2d(C, r, b), *by = test_buffer_2d(n, C, zeros);
    clora_buffer *bdy = test_buffer_2d(n, C, dy);

    CHECK_OK(clora__embedding_forward(by, bt, bids, "table"));
    CHECK_OK(clora__lora_embedding_forward(by, bids, ba, bb, scale));
    float *want = test_alloc(n * C), *got = test_download(by);
    clora_reference_lora_embedding_forward(want, ids, table, a, b, n, V, C, r, scale);
    for (size_t i = 0; i < n * C; ++i)
        assert_true(fabsf(got[i] - want[i]) <= 1e-5f + 1e-5f * fabsf(want[i]));

    float *da_want = calloc(r * V, sizeof(float)), *db_want = calloc(C * r, sizeof(float));
    clora_reference_lora_embedding_backward(da_want, db_want, dy, ids, a, b, n, V, C, r, scale, 5);
    float *first_a = NULL, *first_b = NULL;
    for (int run = 0; run < 3; ++run) {
        clora_buffer *bda = test_buffer_2d(r, V, zeros), *bdb = test_buffer_2d(C, r, zeros);
        CHECK_OK(clora__lora_embedding_backward(bda, bdb, bdy, bids, ba, bb, scale, 5));
        float *da = test_download(bda), *db = test_download(bdb);
        for (size_t i = 0; i < r * V; ++i)
            assert_true(fabsf(da[i] - da_want[i]) <= 1e-5f + 1e-5f * fabsf(da_want[i]));
        for (size_t i = 0; i < C * r; ++i)
            assert_true(fabsf(db[i] - db_want[i]) <= 1e-5f + 1e-5f * fabsf(db_want[i]));
        for (size_t k = 0; k < r; ++k)
            assert_true(da[k * V + 5] == 0.0f); /* the padding row */
        if (!first_a) {
            first_a = da;
            first_b = db;
        } else { /* repeated ids sum in one order: the same bytes every run */
            assert_memory_equal(da, first_a, r * V * sizeof *da);
            assert_memory_equal(db, first_b, C * r * sizeof *db);
            free(da);
            free(db);
        }
        clora_buffer_destroy(bda);
        clora_buffer_destroy(bdb);
    }
    float *host[] = {table, a, b, dy, want, got, da_want, db_want, first_a, first_b, zeros};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {bids, bt, ba, bb, by, bdy};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

/* ---- PEFT's adapters ---------------------------------------------------------------------- */

/* Every "d:<param>" tensor of the case against that parameter's gradient,
 * within 1e-5 of the tensor's largest value: PyTorch's own float32
 * gradients here are that far from float64 ones (7e-5 where they reach 90),
 * so an element-wise 1e-5 would test PyTorch's rounding. Returns how many
 * were compared. */
static size_t expect_grads(clora_model *model, const golden_case *c)
{
    size_t compared = 0;
    for (size_t i = 0; i < c->n_tensors; ++i) {
        const golden_tensor *t = &c->tensors[i];
        if (strncmp(t->name, "d:", 2) != 0)
            continue;
        double largest = 0.0;
        for (size_t k = 0; k < t->numel; ++k)
            largest = fmax(largest, fabs((double)t->data[k]));
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, t->name + 2, &info));
        assert_non_null(info.grad);
        test_expect_golden(t->name, info.grad, t, 1e-5 * largest, 1e-5);
        ++compared;
    }
    return compared;
}

/* A model with a PEFT adapter against one golden case: logits, the
 * gradients of every LoRA parameter, merged logits (the tied head sees the
 * merged table) and unmerged again (it keeps the base one). */
static void against_peft(const char *model_dir, const char *adapter, const golden_case *c,
                         size_t grads)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, model_dir, 0, 0));
    const golden_tensor *base = golden_tensor_get(c, "logits_base");
    if (base)
        test_expect_golden("base logits", logits_of(model, ids), base, 1e-5, 1e-5);
    CHECK_OK(clora_adapter_load(model, adapter, "default"));
    test_expect_golden("logits", logits_of(model, ids), golden_tensor_get(c, "logits"), 1e-5,
                       1e-5);

    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(expect_grads(model, c), grads);

    CHECK_OK(clora_model_merge_adapter(model));
    test_expect_golden("merged logits", logits_of(model, ids),
                       golden_tensor_get(c, "logits_merged"), 1e-5, 1e-5);
    CHECK_OK(clora_model_unmerge_adapter(model));
    test_expect_golden("unmerged logits", logits_of(model, ids), golden_tensor_get(c, "logits"),
                       1e-5, 1e-5);
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

static void gpt2_wte_against_peft_0_21(void **state)
{
    (void)state;
    /* wte A and B, c_attn A and B in two blocks */
    against_peft(GOLDEN "/tiny_gpt2_emb", GOLDEN "/gpt2_emb_lora",
                 golden_case_get(&newest, "gpt2"), 6);
}

static void gpt2_wte_against_peft_0_6(void **state)
{
    (void)state;
    against_peft(GOLDEN "/tiny_gpt2_emb", GOLDEN "/gpt2_emb_lora_peft062",
                 golden_case_get(&oldest, "gpt2"), 6);
}

static void llama_embed_tokens_against_peft(void **state)
{
    (void)state;
    /* rsLoRA, rank 2 on embed_tokens, padding_idx 0 among the ids */
    against_peft(GOLDEN "/tiny_llama_emb", GOLDEN "/llama_emb_lora",
                 golden_case_get(&newest, "llama"), 6);
}

/* ---- save and load -------------------------------------------------------------------------- */

static void saves_in_peft_names_and_loads_back(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&newest, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL, *again = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    CHECK_OK(clora_adapter_load(model, GOLDEN "/gpt2_emb_lora", "default"));
    float *first = test_download(logits_of(model, ids));
    char dir[64], path[128];
    test_temp_dir(dir, "emb_lora");
    CHECK_OK(clora_adapter_save(model, NULL, dir));

    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "base_model.model.transformer.wte.lora_embedding_A",
                                    &view));
    assert_int_equal(view.shape[0], 4);
    assert_int_equal(view.shape[1], 40);
    CHECK_OK(clora_safetensors_find(file, "base_model.model.transformer.wte.lora_embedding_B",
                                    &view));
    assert_int_equal(view.shape[0], 16);
    assert_int_equal(view.shape[1], 4);
    CHECK_OK(clora_safetensors_find(file,
                                    "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight",
                                    &view));
    assert_int_equal(clora_safetensors_count(file), 6);
    clora_safetensors_close(file);

    CHECK_OK(clora_model_load_hf(&again, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    CHECK_OK(clora_adapter_load(again, dir, "default"));
    float *second = test_download(logits_of(again, ids));
    assert_memory_equal(first, second, clora_buffer_numel(logits_of(again, ids)) * sizeof *first);

    /* a merged model's folder keeps the head tied to the merged table */
    CHECK_OK(clora_model_merge_adapter(again));
    float *merged = test_download(logits_of(again, ids));
    char model_dir[64];
    test_temp_dir(model_dir, "emb_merged");
    CHECK_OK(clora_model_save(again, model_dir));
    clora_model *reloaded = NULL;
    CHECK_OK(clora_model_load(&reloaded, test_device, model_dir));
    float *from_folder = test_download(logits_of(reloaded, ids));
    assert_memory_equal(merged, from_folder,
                        clora_buffer_numel(logits_of(reloaded, ids)) * sizeof *merged);
    test_expect_golden("saved merged model", logits_of(reloaded, ids),
                       golden_tensor_get(c, "logits_merged"), 1e-5, 1e-5);

    free(first);
    free(second);
    free(merged);
    free(from_folder);
    clora_model_destroy(reloaded);
    clora_model_destroy(again);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
}

/* ---- a new adapter, training, packed tables -------------------------------------------------- */

static void new_adapter_changes_nothing_and_trains(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&newest, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    float *base = test_download(logits_of(model, ids));
    const char *targets[] = {"wte", "c_attn"};
    clora_lora_config config = clora_lora_config_default();
    config.rank = 3;
    config.target_modules = targets;
    config.target_module_count = 2;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced));
    assert_int_equal(replaced, 3);
    clora_node *wte = NULL;
    CHECK_OK(clora_model_find(model, "transformer.wte", &wte));
    assert_int_equal(clora_node_kind_of(wte), CLORA_NODE_LORA);
    /* PEFT's start: A = 0, B ~ N(0, 1); the logits do not move */
    clora_param_info a, b;
    CHECK_OK(clora_model_find_param(model, "transformer.wte.lora_embedding_A.default", &a));
    CHECK_OK(clora_model_find_param(model, "transformer.wte.lora_embedding_B.default", &b));
    assert_int_equal(a.value->shape[0], 3);
    assert_int_equal(a.value->shape[1], 40);
    assert_int_equal(b.value->shape[0], 16);
    float *av = test_download(a.value), *bv = test_download(b.value);
    double sq = 0.0;
    for (size_t i = 0; i < a.value->numel; ++i)
        assert_true(av[i] == 0.0f);
    for (size_t i = 0; i < b.value->numel; ++i)
        sq += (double)bv[i] * bv[i];
    sq /= (double)b.value->numel;
    assert_true(sq > 0.4 && sq < 2.0);
    float *fresh = test_download(logits_of(model, ids));
    assert_memory_equal(base, fresh, clora_buffer_numel(logits_of(model, ids)) * sizeof *base);

    /* finite differences through the whole model: wte's A (B random, A
     * nudged) and B both get their gradient through the tied head's input */
    test_randomise_lora_b(model, &(uint64_t){5});
    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    logits_of(model, ids);
    CHECK_OK(clora_model_backward(model, dy));
    float *ga = test_download(a.grad);
    double norm = 0.0;
    for (size_t i = 0; i < a.grad->numel; ++i)
        norm += fabs(ga[i]);
    assert_true(norm > 0.0);

    free(base);
    free(fresh);
    free(av);
    free(bv);
    free(ga);
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

static void finite_differences_through_gpt2(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&newest, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    const char *targets[] = {"wte", "c_attn"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, ids, NULL, targets, 2, &replaced) > 0);
    assert_int_equal(replaced, 3);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

static void packed_table_runs_but_refuses_merge(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&newest, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_load_options options = clora_load_options_default();
    options.base_dtype = CLORA_DTYPE_F16;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_with(&model, test_device, GOLDEN "/tiny_gpt2_emb", &options));
    clora_param_info table;
    CHECK_OK(clora_model_find_param(model, "transformer.wte.weight", &table));
    assert_int_equal(table.value->dtype, CLORA_DTYPE_F16);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/gpt2_emb_lora", "default"));
    /* float16 rounding of the base weights only */
    test_expect_golden("packed logits", logits_of(model, ids), golden_tensor_get(c, "logits"),
                       2e-2, 2e-2);
    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    clora_param_info a;
    CHECK_OK(clora_model_find_param(model, "transformer.wte.lora_embedding_A.default", &a));
    test_expect_golden("packed dA", a.grad,
                       golden_tensor_get(c, "d:transformer.wte.lora_embedding_A.default"), 5e-2,
                       5e-2);
    float *before = test_download(logits_of(model, ids));
    assert_int_equal(clora_model_merge_adapter(model), CLORA_ERR_DTYPE_MISMATCH);
    assert_non_null(strstr(clora_last_error(), "transformer.wte"));
    float *after = test_download(logits_of(model, ids));
    assert_memory_equal(before, after, clora_buffer_numel(logits_of(model, ids)) * sizeof *after);
    free(before);
    free(after);
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

/* A merge that overflows in the last layer of the walk (h.1's c_attn)
 * fails and puts the table, merged before it, back bit for bit. */
static void an_overflowing_merge_changes_nothing(void **state)
{
    (void)state;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    CHECK_OK(clora_adapter_load(model, GOLDEN "/gpt2_emb_lora", "default"));
    clora_param_info a, table, attn;
    CHECK_OK(clora_model_find_param(model, "transformer.h.1.attn.c_attn.lora_A.default.weight",
                                    &a));
    CHECK_OK(clora_model_find_param(model, "transformer.wte.base_layer.weight", &table));
    CHECK_OK(clora_model_find_param(model, "transformer.h.1.attn.c_attn.base_layer.weight", &attn));
    float *huge = test_alloc(a.value->numel);
    for (size_t i = 0; i < a.value->numel; ++i)
        huge[i] = 3e38f;
    CHECK_OK(clora_buffer_upload(a.value, 0, huge, a.value->numel));
    float *t0 = test_download(table.value), *w0 = test_download(attn.value);
    assert_int_equal(clora_model_merge_adapter(model), CLORA_ERR_NON_FINITE);
    assert_non_null(strstr(clora_last_error(), "into \"c_attn\""));
    float *t1 = test_download(table.value), *w1 = test_download(attn.value);
    assert_memory_equal(t0, t1, table.value->numel * sizeof *t0);
    assert_memory_equal(w0, w1, attn.value->numel * sizeof *w0);
    free(huge);
    free(t0);
    free(t1);
    free(w0);
    free(w1);
    clora_model_destroy(model);
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* An adapter whose only tensors are float32 (r, d1) and (d2, r) under the given keys. */
static void write_adapter(const char *dir, const char *config, const char *key_a, size_t a0,
                          size_t a1, const char *key_b, size_t b0, size_t b1)
{
    test_write_text(dir, "adapter_config.json", config);
    clora_safetensors_writer *w = NULL;
    CHECK_OK(clora_safetensors_writer_create(&w));
    float *zeros = calloc(a0 * a1 + b0 * b1, sizeof(float));
    const size_t sa[2] = {a0, a1}, sb[2] = {b0, b1};
    CHECK_OK(clora_safetensors_writer_add(w, key_a, CLORA_DTYPE_F32, 2, sa, zeros));
    CHECK_OK(clora_safetensors_writer_add(w, key_b, CLORA_DTYPE_F32, 2, sb, zeros));
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    CHECK_OK(clora_safetensors_writer_write(w, path));
    clora_safetensors_writer_destroy(w);
    free(zeros);
}

static void bad_adapters_are_refused_and_change_nothing(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&newest, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_emb", 0, 0));
    float *base = test_download(logits_of(model, ids));
    const size_t bytes = clora_buffer_numel(logits_of(model, ids)) * sizeof *base;
    char dir[64];
    static const char config[] =
        "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"wte\"]}";
    static const char config_attn[] =
        "{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"c_attn\"]}";
    static const char prefix[] = "base_model.model.transformer.";

    struct {
        const char *config, *a, *b;
        size_t a0, a1, b0, b1;
        clora_status status;
        const char *message;
    } cases[] = {
        /* lora_embedding_* on a Linear, lora_A.weight on an Embedding */
        {config_attn, "h.0.attn.c_attn.lora_embedding_A", "h.0.attn.c_attn.lora_embedding_B", 4,
         16, 48, 4, CLORA_ERR_FORMAT, "not Embedding"},
        {config, "wte.lora_A.weight", "wte.lora_B.weight", 4, 40, 16, 4, CLORA_ERR_FORMAT,
         "not Linear"},
        /* the table's sizes, the rank */
        {config, "wte.lora_embedding_A", "wte.lora_embedding_B", 4, 39, 16, 4,
         CLORA_ERR_SHAPE_MISMATCH, "(4, 40)"},
        {config, "wte.lora_embedding_A", "wte.lora_embedding_B", 3, 40, 16, 3,
         CLORA_ERR_SHAPE_MISMATCH, "lora_embedding_A must be (r, num_embeddings)"},
        /* half a pair, or a pair of both kinds */
        {config, "wte.lora_embedding_A", "wte.lora_B.weight", 4, 40, 16, 4, CLORA_ERR_FORMAT,
         "both lora_A/lora_B and lora_embedding_A/lora_embedding_B"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        char name[32], a[128], b[128];
        snprintf(name, sizeof name, "emb_bad%zu", i);
        test_temp_dir(dir, name);
        snprintf(a, sizeof a, "%s%s", prefix, cases[i].a);
        snprintf(b, sizeof b, "%s%s", prefix, cases[i].b);
        write_adapter(dir, cases[i].config, a, cases[i].a0, cases[i].a1, b, cases[i].b0,
                      cases[i].b1);
        clora_status status = clora_adapter_load(model, dir, "default");
        if (status != cases[i].status || !strstr(clora_last_error(), cases[i].message))
            fail_msg("case %zu: status %d, \"%s\"", i, (int)status, clora_last_error());
        assert_int_equal(clora_model_adapter_count(model), 0);
        float *now = test_download(logits_of(model, ids));
        assert_memory_equal(base, now, bytes);
        free(now);
    }
    /* a target that is neither Linear nor Embedding */
    const char *targets[] = {"ln_f"};
    clora_lora_config lora = clora_lora_config_default();
    lora.target_modules = targets;
    lora.target_module_count = 1;
    assert_int_equal(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL),
                     CLORA_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(clora_last_error(), "Linear and Embedding"));
    free(base);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

/* argv[1]: a cmocka test filter (tests/oclgrind_check.sh runs the kernel
 * test on its own). */
int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kernels_match_reference_and_repeat_bit_for_bit),
        cmocka_unit_test(gpt2_wte_against_peft_0_21),
        cmocka_unit_test(gpt2_wte_against_peft_0_6),
        cmocka_unit_test(llama_embed_tokens_against_peft),
        cmocka_unit_test(saves_in_peft_names_and_loads_back),
        cmocka_unit_test(new_adapter_changes_nothing_and_trains),
        cmocka_unit_test(finite_differences_through_gpt2),
        cmocka_unit_test(packed_table_runs_but_refuses_merge),
        cmocka_unit_test(an_overflowing_merge_changes_nothing),
        cmocka_unit_test(bad_adapters_are_refused_and_change_nothing),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
