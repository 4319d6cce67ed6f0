/* test_bert_heads.c — BERT's own heads against transformers and PEFT
 * (tests/golden/make_bert_heads_golden.py, PEFT 0.21.2 and 0.6.2):
 * BertForSequenceClassification (its modules under "bert.", the pooler
 * with tanh on [CLS], dropout, classifier) and a BertModel run through its
 * pooler, with and without PEFT adapters (a SEQ_CLS one training the
 * classifier in full, an all-linear one that adapts pooler.dense), outputs
 * and gradients; finite differences through the pooler head; the heads an
 * adapter and a model disagree on, each refused by name with the model
 * unchanged; adapters clora makes on these models saved under PEFT's own
 * keys; the old layouts as before. Reads the tree through nn/nn.h. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_checks.h"
#include "nn/nn.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR
#define SEQCLS GOLDEN "/tiny_bert_seqcls"
#define POOLED GOLDEN "/tiny_bert_pooled"

static golden_file newest, oldest; /* PEFT 0.21.2, 0.6.2 */

static int setup(void **state)
{
    golden_load(GOLDEN "/bert_heads_reference.txt", &newest);
    golden_load(GOLDEN "/bert_heads_reference_062.txt", &oldest);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&newest);
    golden_free(&oldest);
    return test_close_device(state);
}

static clora_model *load(const char *dir, clora_bert_head head, size_t labels)
{
    clora_load_options o = clora_load_options_default();
    o.bert_head = head;
    o.num_labels = labels;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_with(&model, test_device, dir, &o));
    return model;
}

/* The model's output on the golden batch (the mask set), compared. */
static void expect_output(clora_model *model, const golden_case *c, const char *key,
                          size_t width)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_forward(model, ids, &y));
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], width);
    test_expect_golden(key, y, golden_tensor_get(c, key), 1e-5, 1e-5);
    CHECK_OK(clora_model_set_attention_mask(model, NULL));
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
}

/* Backward of sum(G * output) against every "d:" gradient of the case,
 * whose keys leave out PEFT's adapter name ("...lora_A.weight"); returns
 * how many were compared, which must be every trainable parameter. The
 * tolerance is the other golden gradient checks' (1e-4 + 1e-3·|ref|): the
 * pooler's tanh runs saturated here (|y| up to 0.9996), and 1 - y² turns
 * float32 rounding of y into relative errors of some 1e-4. */
static size_t expect_grads(clora_model *model, const golden_case *c)
{
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_forward(model, ids, &y));
    CHECK_OK(clora_model_zero_grad(model));
    CHECK_OK(clora_model_backward(model, dy));
    size_t compared = 0;
    for (size_t i = 0; i < c->n_tensors; ++i) {
        const golden_tensor *t = &c->tensors[i];
        if (strncmp(t->name, "d:", 2) != 0)
            continue;
        char name[128];
        const char *lora = strstr(t->name, ".lora_");
        if (lora) /* "<module>.lora_A" ".default" ".weight" */
            snprintf(name, sizeof name, "%.*s.default%s", (int)(lora + 7 - t->name - 2),
                     t->name + 2, lora + 7);
        else
            snprintf(name, sizeof name, "%s", t->name + 2);
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, name, &info));
        assert_non_null(info.grad);
        test_expect_golden(name, info.grad, t, 1e-4, 1e-3);
        ++compared;
    }
    size_t trainable = 0;
    for (size_t i = 0; i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        trainable += info.trainable != 0;
    }
    assert_int_equal(compared, trainable);
    CHECK_OK(clora_model_set_attention_mask(model, NULL));
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
    return compared;
}

static void expect_kind(clora_model *model, const char *path, clora_node_kind kind)
{
    clora_node *node = NULL;
    CHECK_OK(clora_model_find(model, path, &node));
    assert_int_equal(clora_node_kind_of(node), kind);
}

/* ---- BertForSequenceClassification ----------------------------------------------------- */

/* The folder alone: its own head, named as transformers names it, and
 * transformers' logits; dropout before the classifier at
 * hidden_dropout_prob (classifier_dropout is null). */
static void sequence_classifier_as_transformers(void **state)
{
    (void)state;
    clora_model *model = load(SEQCLS, CLORA_BERT_HEAD_AUTO, 0);
    expect_kind(model, "bert.embeddings", CLORA_NODE_BERT_EMBEDDINGS);
    expect_kind(model, "bert.pooler", CLORA_NODE_BERT_POOLER);
    expect_kind(model, "bert.pooler.dense", CLORA_NODE_LINEAR);
    expect_kind(model, "bert.pooler.activation", CLORA_NODE_TANH);
    expect_kind(model, "dropout", CLORA_NODE_DROPOUT);
    expect_kind(model, "classifier", CLORA_NODE_LINEAR);
    clora_node *node = NULL;
    CHECK_STATUS(clora_model_find(model, "pool", &node), CLORA_ERR_NOT_FOUND);
    clora_node *dropout = clora__child(model->root, "dropout");
    json_t *j = json_object();
    assert_int_equal(dropout->kind->save(dropout, j), 0);
    assert_float_equal(json_number_value(json_object_get(j, "p")), 0.1, 1e-7);
    json_decref(j);
    expect_output(model, golden_case_get(&newest, "seqcls"), "base", 3);
    expect_output(model, golden_case_get(&oldest, "seqcls"), "base", 3);
    clora_model_destroy(model);
    /* the labels asked for are the checkpoint's */
    model = load(SEQCLS, CLORA_BERT_HEAD_POOLER, 3);
    expect_output(model, golden_case_get(&newest, "seqcls"), "base", 3);
    clora_model_destroy(model);
}

/* PEFT's SEQ_CLS adapter (LoRA on query and value, the classifier saved in
 * full) from both versions: PEFT's logits and gradients. */
static void sequence_classifier_adapters(void **state)
{
    (void)state;
    static const char *const dirs[2] = {GOLDEN "/tiny_bert_seqcls_lora",
                                        GOLDEN "/tiny_bert_seqcls_lora_062"};
    const golden_file *refs[2] = {&newest, &oldest};
    for (int v = 0; v < 2; ++v) {
        clora_model *model = load(SEQCLS, CLORA_BERT_HEAD_AUTO, 0);
        CHECK_OK(clora_adapter_load(model, dirs[v], "default"));
        const golden_case *c = golden_case_get(refs[v], "seqcls");
        expect_output(model, c, "output", 3);
        /* 2 layers x query, value x A, B; classifier weight and bias */
        assert_int_equal(expect_grads(model, c), 2 * 2 * 2 + 2);
        clora_model_destroy(model);
    }
}

/* PEFT 0.6 leaves modules_to_save null for SEQ_CLS yet saves the
 * classifier, as PeftModelForSequenceClassification always does. */
static void sequence_classifier_head_without_modules_to_save(void **state)
{
    (void)state;
    char dir[64], cmd[512];
    test_temp_dir(dir, "seqcls-null");
    snprintf(cmd, sizeof cmd, "cp %s/tiny_bert_seqcls_lora_062/* %s/", GOLDEN, dir);
    assert_int_equal(system(cmd), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *config = json_load_file(path, 0, NULL);
    assert_non_null(config);
    json_object_set_new(config, "modules_to_save", json_null());
    assert_int_equal(json_dump_file(config, path, 0), 0);
    clora_model *model = load(SEQCLS, CLORA_BERT_HEAD_AUTO, 0);
    CHECK_OK(clora_adapter_load(model, dir, "default"));
    expect_output(model, golden_case_get(&oldest, "seqcls"), "output", 3);
    clora_model_destroy(model);
    /* without the task, the classifier is a tensor of no module to save */
    json_object_set_new(config, "task_type", json_null());
    assert_int_equal(json_dump_file(config, path, 0), 0);
    json_decref(config);
    model = load(SEQCLS, CLORA_BERT_HEAD_AUTO, 0);
    CHECK_STATUS(clora_adapter_load(model, dir, "default"), CLORA_ERR_FORMAT);
    test_expect_message("base_model.model.classifier.");
    clora_model_destroy(model);
    test_remove_dir(dir);
}

/* ---- BertModel with its pooler --------------------------------------------------------- */

/* Mean pooling unless asked; the pooler head gives transformers'
 * pooler_output, and PEFT's all-linear adapter (which adapts pooler.dense)
 * PEFT's output and gradients, from both versions. */
static void pooler_head_as_transformers(void **state)
{
    (void)state;
    clora_model *model = load(POOLED, CLORA_BERT_HEAD_AUTO, 0);
    expect_kind(model, "pool", CLORA_NODE_MEAN_POOL);
    clora_node *node = NULL;
    CHECK_STATUS(clora_model_find(model, "pooler", &node), CLORA_ERR_NOT_FOUND);
    clora_model_destroy(model);
    static const char *const dirs[2] = {GOLDEN "/tiny_bert_pooled_lora",
                                        GOLDEN "/tiny_bert_pooled_lora_062"};
    const golden_file *refs[2] = {&newest, &oldest};
    for (int v = 0; v < 2; ++v) {
        const golden_case *c = golden_case_get(refs[v], "pooled");
        model = load(POOLED, CLORA_BERT_HEAD_POOLER, 0);
        expect_kind(model, "pooler", CLORA_NODE_BERT_POOLER);
        expect_output(model, c, "base", 32);
        CHECK_OK(clora_adapter_load(model, dirs[v], "default"));
        expect_kind(model, "pooler.dense", CLORA_NODE_LORA);
        expect_output(model, c, "output", 32);
        /* 2 layers x 6 Linears and pooler.dense, A and B each */
        assert_int_equal(expect_grads(model, c), (2 * 6 + 1) * 2);
        clora_model_destroy(model);
    }
}

/* Central differences through the pooler head (the first token, dense,
 * tanh, dropout, classifier), LoRA on the pooler's dense too, with
 * padding and dropout. */
static void pooler_head_finite_differences(void **state)
{
    (void)state;
    clora_bert_config c = clora_bert_config_default();
    c.vocab_size = 13;
    c.hidden_size = 8;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 12;
    c.max_position_embeddings = 12;
    c.initializer_range = 0.3f;
    c.num_labels = 3;
    c.head = CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER;
    c.classifier_dropout = 0.25f;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_bert(&model, test_device, &c, 23));
    static const int32_t ids[10] = {3, 7, 1, 12, 5, 9, 2, 6, 0, 0};
    static const int32_t mask[10] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    const size_t shape[2] = {2, 5};
    clora_buffer *bids = NULL, *bmask = NULL;
    CHECK_OK(clora_buffer_create_typed(&bids, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_create_typed(&bmask, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(bids, 0, ids, 10));
    CHECK_OK(clora_buffer_upload_i32(bmask, 0, mask, 10));
    static const char *const targets[] = {"query", "dense"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, bids, bmask, targets, 2, &replaced) >= 3 * 20);
    assert_int_equal(replaced, 5); /* query, three dense of the layer, pooler.dense */
    clora_buffer_destroy(bids);
    clora_buffer_destroy(bmask);
    clora_model_destroy(model);
}

/* ---- heads that disagree ------------------------------------------------------------------- */

/* The model's output on a fixed batch, to see that a failed load changed
 * nothing. */
static float *output_of(clora_model *model, size_t *n)
{
    static const int32_t ids[7] = {1, 4, 35, 31, 38, 35, 48};
    const size_t shape[2] = {1, 7};
    clora_buffer *b = NULL;
    CHECK_OK(clora_buffer_create_typed(&b, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(b, 0, ids, 7));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, b, &y));
    float *host = test_download(y);
    *n = y->numel;
    clora_buffer_destroy(b);
    return host;
}

static void expect_refused(const char *model_dir, clora_bert_head head, size_t labels,
                           const char *adapter, const char *wants, const char *has)
{
    clora_model *model = load(model_dir, head, labels);
    size_t n = 0, m = 0;
    float *before = output_of(model, &n);
    const size_t params = clora_model_param_count(model);
    CHECK_STATUS(clora_adapter_load(model, adapter, "default"), CLORA_ERR_FORMAT);
    test_expect_message(wants);
    test_expect_message(has);
    assert_int_equal(clora_model_adapter_count(model), 0);
    assert_int_equal(clora_model_param_count(model), params);
    float *after = output_of(model, &m);
    assert_int_equal(m, n);
    test_assert_identical("output after a refused adapter", after, before, n);
    free(before);
    free(after);
    clora_model_destroy(model);
}

static const char seq_text[] = "made for BertForSequenceClassification's head";
static const char mean_text[] = "made for mean pooling";
static const char pooler_text[] = "made for BertModel's pooler head";
static const char runs_seq[] = "runs with BertForSequenceClassification's head";
static const char runs_mean[] = "runs with mean pooling";

static void heads_disagree(void **state)
{
    (void)state;
    /* clora's mean-pooling classifier on BertForSequenceClassification */
    expect_refused(SEQCLS, CLORA_BERT_HEAD_AUTO, 0, GOLDEN "/tiny_bert_lora", mean_text,
                   runs_seq);
    /* a BertModel pooler adapter on BertForSequenceClassification */
    expect_refused(SEQCLS, CLORA_BERT_HEAD_AUTO, 0, GOLDEN "/tiny_bert_pooled_lora",
                   pooler_text, runs_seq);
    /* a SEQ_CLS adapter (keys under bert.) on a BertModel, either head */
    expect_refused(POOLED, CLORA_BERT_HEAD_MEAN, 3, GOLDEN "/tiny_bert_seqcls_lora", seq_text,
                   runs_mean);
    expect_refused(POOLED, CLORA_BERT_HEAD_POOLER, 0, GOLDEN "/tiny_bert_seqcls_lora_062",
                   seq_text, "runs with BertModel's pooler head");
    /* an adapter of pooler.dense on a model run with mean pooling */
    expect_refused(POOLED, CLORA_BERT_HEAD_MEAN, 0, GOLDEN "/tiny_bert_pooled_lora",
                   pooler_text, "CLORA_BERT_HEAD_POOLER");
}

/* A folder without a pooler cannot run the pooler head; a BertModel is no
 * sequence classifier; BertForSequenceClassification has its own labels;
 * a head outside the enum. */
static void heads_the_checkpoint_lacks(void **state)
{
    (void)state;
    char dir[64], cmd[512];
    test_temp_dir(dir, "no-pooler");
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, POOLED "/model.safetensors"));
    clora_safetensors_writer *w = NULL;
    CHECK_OK(clora_safetensors_writer_create(&w));
    for (size_t t = 0; t < clora_safetensors_count(file); ++t) {
        clora_tensor_view v;
        clora_safetensors_get(file, t, &v);
        if (strncmp(v.name, "pooler.", 7) != 0)
            CHECK_OK(clora_safetensors_writer_add(w, v.name, v.dtype, v.ndim, v.shape, v.data));
    }
    char path[128];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    CHECK_OK(clora_safetensors_writer_write(w, path));
    clora_safetensors_writer_destroy(w);
    clora_safetensors_close(file);
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/", POOLED, dir);
    assert_int_equal(system(cmd), 0);
    clora_load_options o = clora_load_options_default();
    clora_model *model = NULL;
    o.bert_head = CLORA_BERT_HEAD_POOLER;
    CHECK_STATUS(clora_model_load_with(&model, test_device, dir, &o), CLORA_ERR_UNSUPPORTED);
    test_expect_message("has no pooler (pooler.dense.weight)");
    assert_null(model);
    o.bert_head = CLORA_BERT_HEAD_MEAN; /* as before */
    CHECK_OK(clora_model_load_with(&model, test_device, dir, &o));
    CHECK_STATUS(clora_adapter_load(model, GOLDEN "/tiny_bert_pooled_lora", "default"),
                 CLORA_ERR_FORMAT);
    test_expect_message(pooler_text);
    clora_model_destroy(model);
    model = NULL;
    test_remove_dir(dir);

    o.bert_head = CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER;
    CHECK_STATUS(clora_model_load_with(&model, test_device, POOLED, &o), CLORA_ERR_UNSUPPORTED);
    test_expect_message("not a BertForSequenceClassification");
    o.bert_head = CLORA_BERT_HEAD_AUTO;
    o.num_labels = 2;
    CHECK_STATUS(clora_model_load_with(&model, test_device, SEQCLS, &o),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("classifier has 3 labels (id2label); 2 were asked for");
    o.num_labels = 0;
    o.bert_head = (clora_bert_head)7;
    CHECK_STATUS(clora_model_load_with(&model, test_device, SEQCLS, &o),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("bert_head 7");
    assert_null(model);
}

/* BertForSequenceClassification as clora loaded it before it had the
 * pooler head: modules at the top, mean pooling, the file's classifier. */
static void sequence_classifier_as_before(void **state)
{
    (void)state;
    clora_model *model = load(SEQCLS, CLORA_BERT_HEAD_MEAN, 3);
    expect_kind(model, "encoder.layer.0.attention.self.query", CLORA_NODE_LINEAR);
    expect_kind(model, "pool", CLORA_NODE_MEAN_POOL);
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "classifier.bias", &info));
    float *bias = test_download(info.value);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, SEQCLS "/model.safetensors"));
    clora_tensor_view v;
    CHECK_OK(clora_safetensors_find(file, "classifier.bias", &v));
    test_assert_identical("classifier.bias", bias, (const float *)v.data, 3);
    clora_safetensors_close(file);
    free(bias);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_bert_lora", "default"));
    clora_model_destroy(model);
}

/* ---- adapters clora makes on these models ------------------------------------------------ */

/* The keys of an adapter file, sorted, one string. */
static char *sorted_keys(const char *dir)
{
    char path[128];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    const size_t n = clora_safetensors_count(file);
    const char **names = calloc(n, sizeof *names);
    assert_non_null(names);
    for (size_t t = 0; t < n; ++t) {
        clora_tensor_view v;
        clora_safetensors_get(file, t, &v);
        names[t] = v.name;
    }
    for (size_t i = 1; i < n; ++i) /* insertion sort: a few dozen names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; --j) {
            const char *swap = names[j];
            names[j] = names[j - 1];
            names[j - 1] = swap;
        }
    char *out = calloc(n * 96 + 1, 1);
    assert_non_null(out);
    for (size_t t = 0; t < n; ++t) {
        strcat(out, names[t]);
        strcat(out, "\n");
    }
    free(names);
    clora_safetensors_close(file);
    return out;
}

/* The model in `model_dir` with LoRA r 4, alpha 8 on `targets` (none:
 * every Linear) and `saved` trained in full, lora_B drawn non-zero. */
static clora_model *with_lora(const char *model_dir, clora_bert_head head,
                              const char *const *targets, size_t target_count,
                              const char *const *saved, size_t saved_count)
{
    clora_model *model = load(model_dir, head, 0);
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 4;
    lora.alpha = 8.0f;
    lora.target_modules = targets;
    lora.target_module_count = target_count;
    lora.modules_to_save = saved;
    lora.modules_to_save_count = saved_count;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    uint64_t rng = 5;
    test_randomise_lora_b(model, &rng);
    return model;
}

/* Saves *model's adapter, destroys it, loads the adapter onto a fresh
 * model of the folder (into *model), which must give the same output;
 * returns the saved file's keys (free() them). */
static char *saved_and_reloaded(clora_model **model, const char *model_dir,
                                clora_bert_head head)
{
    size_t n = 0, m = 0;
    float *trained = output_of(*model, &n);
    char dir[64];
    test_temp_dir(dir, "bert-head-save");
    CHECK_OK(clora_adapter_save(*model, NULL, dir));
    clora_model_destroy(*model);
    char *keys = sorted_keys(dir);
    *model = load(model_dir, head, 0);
    CHECK_OK(clora_adapter_load(*model, dir, "default"));
    float *again = output_of(*model, &m);
    assert_int_equal(m, n);
    test_assert_identical("reloaded adapter", again, trained, n);
    free(trained);
    free(again);
    test_remove_dir(dir);
    return keys;
}

/* LoRA as the golden adapters have it (no targets: every Linear, PEFT's
 * all-linear on a model without a classifier), made by clora on the
 * models: saved, exactly PEFT's keys, and loaded back, the same output. */
static void adapters_saved_under_peft_keys(void **state)
{
    (void)state;
    static const char *const qv[] = {"query", "value"}, *const head[] = {"classifier"};
    clora_model *model = with_lora(SEQCLS, CLORA_BERT_HEAD_AUTO, qv, 2, head, 1);
    char *ours = saved_and_reloaded(&model, SEQCLS, CLORA_BERT_HEAD_AUTO);
    char *theirs = sorted_keys(GOLDEN "/tiny_bert_seqcls_lora");
    assert_string_equal(ours, theirs);
    free(ours);
    free(theirs);
    clora_model_destroy(model);
    model = with_lora(POOLED, CLORA_BERT_HEAD_POOLER, NULL, 0, NULL, 0);
    ours = saved_and_reloaded(&model, POOLED, CLORA_BERT_HEAD_POOLER);
    theirs = sorted_keys(GOLDEN "/tiny_bert_pooled_lora");
    assert_string_equal(ours, theirs);
    free(ours);
    free(theirs);
    clora_model_destroy(model);
}

/* modules_to_save "pooler": a module whose parameters are its child's
 * (pooler.dense), saved and loaded whole, as PEFT saves it. */
static void pooler_trained_in_full(void **state)
{
    (void)state;
    static const char *const qv[] = {"query", "value"}, *const saved[] = {"pooler"};
    clora_model *model = with_lora(SEQCLS, CLORA_BERT_HEAD_AUTO, qv, 2, saved, 1);
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "bert.pooler.dense.bias", &info));
    assert_true(info.trainable);
    float *bias = test_alloc(32);
    uint64_t rng = 9;
    test_fill_uniform(bias, 32, &rng, -1.0f, 1.0f);
    CHECK_OK(clora_buffer_upload(info.value, 0, bias, 32));
    free(bias);
    char *keys = saved_and_reloaded(&model, SEQCLS, CLORA_BERT_HEAD_AUTO);
    assert_non_null(strstr(keys, "base_model.model.bert.pooler.dense.bias\n"
                                 "base_model.model.bert.pooler.dense.weight\n"));
    free(keys);
    CHECK_OK(clora_model_find_param(model, "bert.pooler.dense.bias", &info));
    assert_true(info.trainable);
    clora_model_destroy(model);
}

/* A clora model folder saved from the sequence classifier loads with the
 * same tree and logits. */
static void sequence_classifier_saved_by_clora(void **state)
{
    (void)state;
    clora_model *model = load(SEQCLS, CLORA_BERT_HEAD_AUTO, 0);
    char dir[64];
    test_temp_dir(dir, "seqcls-tree");
    CHECK_OK(clora_model_save(model, dir));
    clora_model_destroy(model);
    CHECK_OK(clora_model_load(&model, test_device, dir));
    expect_kind(model, "bert.pooler", CLORA_NODE_BERT_POOLER);
    expect_output(model, golden_case_get(&newest, "seqcls"), "base", 3);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_bert_seqcls_lora", "default"));
    expect_output(model, golden_case_get(&newest, "seqcls"), "output", 3);
    clora_model_destroy(model);
    test_remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sequence_classifier_as_transformers),
        cmocka_unit_test(sequence_classifier_adapters),
        cmocka_unit_test(sequence_classifier_head_without_modules_to_save),
        cmocka_unit_test(pooler_head_as_transformers),
        cmocka_unit_test(pooler_head_finite_differences),
        cmocka_unit_test(heads_disagree),
        cmocka_unit_test(heads_the_checkpoint_lacks),
        cmocka_unit_test(sequence_classifier_as_before),
        cmocka_unit_test(adapters_saved_under_peft_keys),
        cmocka_unit_test(pooler_trained_in_full),
        cmocka_unit_test(sequence_classifier_saved_by_clora),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
