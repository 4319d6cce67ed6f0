/* test_transformer.c — GPT-2 and BERT: Hugging Face checkpoints and PEFT
 * adapters against PyTorch (tests/golden/make_transformer_golden.py),
 * finite-difference checks of every transformer part's backward (dropout
 * included), model folders, and the errors a user can run into.
 *
 * The finite-difference checks reach into the model (nn/nn.h) for
 * one thing: pinning the forward counter, so that each re-run forward in
 * training mode draws the same dropout masks. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model_checks.h"
#include "nn/nn.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static golden_file reference;

static int setup(void **state)
{
    golden_load(GOLDEN "/transformer_reference.txt", &reference);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&reference);
    return test_close_device(state);
}

/* ---- PyTorch golden data --------------------------------------------------------------- */

static void gpt2_against_pytorch(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "gpt2");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    clora_model *model = NULL;
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2", 0, 0));

    /* the base model, no mask: every position attends to all before it */
    CHECK_OK(clora_model_forward(model, ids, &y));
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], 50);
    test_expect_golden("base logits", y, golden_tensor_get(c, "logits_nomask"), 1e-4, 1e-4);

    /* PEFT's adapter on c_attn, c_proj, c_fc (Conv1D layout), with padding */
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_gpt2_lora", "default"));
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("LoRA logits", y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);

    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(test_expect_golden_grads(model, c, 1e-4, 1e-3), 16); /* 2 c_proj per block */

    clora_buffer_destroy(dy);
    clora_model_destroy(model);

    /* the same weights stored as float16 */
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_f16", 0, 0));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("float16 checkpoint", y, golden_tensor_get(c, "logits_f16"), 1e-4, 1e-4);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
}

static void bert_against_pytorch(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "bert");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    clora_buffer *types = test_golden_ints(golden_tensor_get(c, "types"));
    clora_model *model = NULL;
    const clora_buffer *y = NULL;

    /* no head: the pooled embedding (the file's pooler is skipped) */
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_bert", 0, 0));
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_set_token_types(model, types));
    CHECK_OK(clora_model_forward(model, ids, &y));
    assert_int_equal(y->ndim, 2);
    test_expect_golden("pooled", y, golden_tensor_get(c, "pooled_base"), 1e-4, 1e-4);
    clora_model_destroy(model);

    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_bert_bf16", 0, 0));
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_set_token_types(model, types));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("bfloat16 checkpoint", y, golden_tensor_get(c, "pooled_bf16"), 1e-4, 1e-4);
    clora_model_destroy(model);

    /* a 3-way head, its weights and LoRA on query/value from PEFT's adapter */
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_bert", 3, 5));
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_bert_lora", "default"));
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_set_token_types(model, types));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("class logits", y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);

    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(test_expect_golden_grads(model, c, 1e-4, 1e-3), 10);

    clora_buffer_destroy(dy);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
    clora_buffer_destroy(types);
}

/* ---- the command ------------------------------------------------------------------------ */

/* "a,b,c" of row `row` of a (rows, T) golden tensor of whole numbers. */
static void id_list(const golden_tensor *t, size_t row, char *out, size_t size)
{
    size_t used = 0, T = t->shape[1];
    for (size_t i = 0; i < T; ++i)
        used += (size_t)snprintf(out + used, size - used, "%s%d", i ? "," : "",
                                 (int)t->data[row * T + i]);
}

/* Runs `clora logits` and returns the file's "logits" (free() it). */
static float *run_logits(const char *args, size_t *numel)
{
    char dir[64], cmd[2048], path[128];
    test_temp_dir(dir, "logits");
    snprintf(path, sizeof path, "%s/logits.safetensors", dir);
    snprintf(cmd, sizeof cmd, "%s logits %s --out %s > %s/log 2>&1", CLORA_TEST_CLI, args, path,
             dir);
    if (system(cmd) != 0) {
        snprintf(cmd, sizeof cmd, "cat %s/log", dir);
        assert_int_equal(system(cmd), 0);
        fail_msg("clora logits %s failed", args);
    }
    clora_safetensors *file = NULL;
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_open(&file, path));
    CHECK_OK(clora_safetensors_find(file, "logits", &view));
    float *out = test_alloc(view.numel);
    CHECK_OK(clora_tensor_to_f32(&view, out));
    *numel = view.numel;
    clora_safetensors_close(file);
    test_remove_dir(dir);
    return out;
}

/* `clora logits` on a model folder with an adapter gives PyTorch's logits
 * (the first batch row of the golden data, which has no padding). */
static void logits_command_matches_pytorch(void **state)
{
    (void)state;
    char ids[256], types[256], args[1024];
    size_t numel = 0;
    const golden_case *g = golden_case_get(&reference, "gpt2");
    const golden_tensor *want = golden_tensor_get(g, "logits");
    id_list(golden_tensor_get(g, "ids"), 0, ids, sizeof ids);
    snprintf(args, sizeof args, "--model %s/tiny_gpt2 --adapter %s/tiny_gpt2_lora --tokens %s",
             GOLDEN, GOLDEN, ids);
    float *got = run_logits(args, &numel);
    assert_int_equal(numel, want->numel / 2); /* (T, V) of row 0 */
    test_assert_close("clora logits, GPT-2", got, want->data, numel, 1e-4, 1e-4);
    free(got);

    const golden_case *b = golden_case_get(&reference, "bert");
    want = golden_tensor_get(b, "logits");
    id_list(golden_tensor_get(b, "ids"), 0, ids, sizeof ids);
    id_list(golden_tensor_get(b, "types"), 0, types, sizeof types);
    snprintf(args, sizeof args,
             "--model %s/tiny_bert --adapter %s/tiny_bert_lora --tokens %s --token-types %s",
             GOLDEN, GOLDEN, ids, types);
    got = run_logits(args, &numel);
    assert_int_equal(numel, 3); /* (1, classes) */
    test_assert_close("clora logits, BERT", got, want->data, numel, 1e-4, 1e-4);
    free(got);
}

/* ---- finite differences ---------------------------------------------------------------- */

/* Tiny models with every dropout on, so backward's masks are checked too.
 * GPT-2's heads are 12 wide, BERT's 4: the attention kernels' eight-wide
 * steps and their tails both run. */
static clora_model *tiny_gpt2(float p)
{
    clora_gpt2_config c = clora_gpt2_config_default();
    c.vocab_size = 13;
    c.n_positions = 12;
    c.n_embd = 24;
    c.n_layer = 2;
    c.n_head = 2;
    c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = p;
    c.initializer_range = 0.3f;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_gpt2(&model, test_device, &c, 21));
    return model;
}

static clora_model *tiny_bert(float p, size_t labels)
{
    clora_bert_config c = clora_bert_config_default();
    c.vocab_size = 13;
    c.hidden_size = 8;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 2;
    c.intermediate_size = 12;
    c.max_position_embeddings = 12;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = p;
    c.initializer_range = 0.3f;
    c.num_labels = labels;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_bert(&model, test_device, &c, 22));
    return model;
}

typedef struct batch {
    clora_buffer *ids, *mask, *types;
} batch;

/* (2, 11) ids; the second row ends in five padding tokens. Eleven keys
 * run the attention softmax's eight-wide step and its tail, with masked
 * keys in both. */
static batch tiny_batch(void)
{
    static const int32_t ids[22] = {3, 7, 1, 12, 5, 4, 8, 10, 11, 2, 6,
                                    9, 2, 6, 4, 1, 3, 0, 0, 0, 0, 0};
    static const int32_t mask[22] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                     1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    static const int32_t types[22] = {0, 0, 0, 1, 1, 1, 0, 0, 1, 1, 1,
                                      0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    const size_t shape[2] = {2, 11};
    batch b = {NULL, NULL, NULL};
    CHECK_OK(clora_buffer_create_typed(&b.ids, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_create_typed(&b.mask, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_create_typed(&b.types, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(b.ids, 0, ids, 22));
    CHECK_OK(clora_buffer_upload_i32(b.mask, 0, mask, 22));
    CHECK_OK(clora_buffer_upload_i32(b.types, 0, types, 22));
    return b;
}

static void batch_free(batch *b)
{
    clora_buffer_destroy(b->ids);
    clora_buffer_destroy(b->mask);
    clora_buffer_destroy(b->types);
}

static void gpt2_finite_differences(void **state)
{
    (void)state;
    clora_model *model = tiny_gpt2(0.2f);
    batch b = tiny_batch();
    static const char *const targets[] = {"c_attn", "c_fc"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, b.ids, b.mask, targets, 2, &replaced) >= 3 * 20);
    assert_int_equal(replaced, 4);
    batch_free(&b);
    clora_model_destroy(model);
}

static void bert_finite_differences(void **state)
{
    (void)state;
    clora_model *model = tiny_bert(0.2f, 3);
    batch b = tiny_batch();
    CHECK_OK(clora_model_set_token_types(model, b.types));
    static const char *const targets[] = {"query", "value", "dense"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, b.ids, b.mask, targets, 3, &replaced) >= 3 * 20);
    assert_true(replaced >= 3);
    batch_free(&b);
    clora_model_destroy(model);
}

/* ---- dropout ----------------------------------------------------------------------------- */

static void dropout_only_while_training(void **state)
{
    (void)state;
    clora_model *model = tiny_gpt2(0.3f);
    batch b = tiny_batch();
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, b.ids, &y));
    float *eval1 = test_download(y);
    CHECK_OK(clora_model_forward(model, b.ids, &y));
    float *eval2 = test_download(y);
    test_assert_identical("eval forwards", eval1, eval2, y->numel);
    CHECK_OK(clora_model_set_training(model, 1));
    CHECK_OK(clora_model_forward(model, b.ids, &y));
    float *train1 = test_download(y);
    CHECK_OK(clora_model_forward(model, b.ids, &y));
    float *train2 = test_download(y);
    size_t differ_eval = 0, differ_steps = 0;
    for (size_t i = 0; i < y->numel; ++i) {
        differ_eval += train1[i] != eval1[i];
        differ_steps += train1[i] != train2[i];
    }
    assert_true(differ_eval > y->numel / 2);  /* dropout acts in training */
    assert_true(differ_steps > y->numel / 2); /* with new masks every step */
    free(eval1);
    free(eval2);
    free(train1);
    free(train2);
    batch_free(&b);
    clora_model_destroy(model);
}

/* Batches of other shapes in between change nothing: the position ids are
 * rewritten whenever their buffer is made anew, even when the allocator
 * hands the new buffer the old one's address (which it does often, and
 * more or less often with the load on the machine). */
static void other_batch_shapes_in_between(void **state)
{
    (void)state;
    static const int32_t ids[33] = {3, 7, 1, 12, 5, 4, 8, 10, 11, 2, 6, 9, 2, 6, 4, 1, 3,
                                    0, 5, 8, 7, 2, 1, 1, 4, 12, 10, 3, 9, 8, 6, 0, 2};
    const size_t one[2] = {1, 11}, three[2] = {3, 11};
    clora_buffer *first = NULL, *all = NULL;
    CHECK_OK(clora_buffer_create_typed(&first, test_device, CLORA_DTYPE_I32, 2, one));
    CHECK_OK(clora_buffer_create_typed(&all, test_device, CLORA_DTYPE_I32, 2, three));
    CHECK_OK(clora_buffer_upload_i32(first, 0, ids, 11));
    CHECK_OK(clora_buffer_upload_i32(all, 0, ids, 33));
    for (int bert = 0; bert < 2; ++bert) {
        clora_model *model = bert ? tiny_bert(0.0f, 0) : tiny_gpt2(0.0f);
        const clora_buffer *y = NULL;
        CHECK_OK(clora_model_forward(model, first, &y));
        const size_t numel = y->numel;
        float *want = test_download(y);
        for (int round = 0; round < 12; ++round) {
            CHECK_OK(clora_model_forward(model, all, &y));
            float *wide = test_download(y);
            /* GPT-2's first row of three is the one-row batch's output */
            if (!bert)
                test_assert_close("first of three rows", wide, want, numel, 1e-5, 1e-4);
            free(wide);
            CHECK_OK(clora_model_forward(model, first, &y));
            float *got = test_download(y);
            test_assert_identical("one row after three", got, want, numel);
            free(got);
        }
        free(want);
        clora_model_destroy(model);
    }
    clora_buffer_destroy(first);
    clora_buffer_destroy(all);
}

/* ---- a training step ------------------------------------------------------------------------ */

/* Forward, backward and an AdamW step of both architectures with padding,
 * token types, every dropout and LoRA: the path a fine-tune takes, small
 * enough to run under oclgrind (tests/oclgrind_check.sh). */
static void one_training_step(void **state)
{
    (void)state;
    batch b = tiny_batch();
    for (int bert = 0; bert < 2; ++bert) {
        clora_model *model = bert ? tiny_bert(0.2f, 3) : tiny_gpt2(0.2f);
        static const char *const gpt2_targets[] = {"c_attn", "c_proj"};
        static const char *const bert_targets[] = {"query", "value"};
        static const char *const head[] = {"classifier"};
        clora_lora_config lora = clora_lora_config_default();
        lora.rank = 2;
        lora.dropout = 0.1f;
        lora.target_modules = bert ? bert_targets : gpt2_targets;
        lora.target_module_count = 2;
        lora.modules_to_save = bert ? head : NULL;
        lora.modules_to_save_count = bert ? 1 : 0;
        CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
        CHECK_OK(clora_model_set_attention_mask(model, b.mask));
        if (bert)
            CHECK_OK(clora_model_set_token_types(model, b.types));
        clora_trainer *trainer = NULL;
        clora_train_config cfg = clora_train_config_default();
        CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
        /* GPT-2: next-token labels (-100 where there is none); BERT: classes */
        static const int32_t lm[22] = {7, 1, 12, 5, 4, 8, 10, 11, 2, 6, -100,
                                       2, 6, 4, 1, 3, -100, -100, -100, -100, -100, -100};
        static const int32_t classes[2] = {2, 0};
        const size_t lm_shape[2] = {2, 11}, class_shape[1] = {2};
        clora_buffer *labels = NULL;
        CHECK_OK(clora_buffer_create_typed(&labels, test_device, CLORA_DTYPE_I32, bert ? 1 : 2,
                                           bert ? class_shape : lm_shape));
        CHECK_OK(clora_buffer_upload_i32(labels, 0, bert ? classes : lm, bert ? 2 : 22));
        float first = 0.0f, loss = 0.0f;
        for (int step = 0; step < 3; ++step)
            CHECK_OK(clora_trainer_step(trainer, b.ids, labels, step == 0 ? &first : &loss));
        assert_true(isfinite(first) && isfinite(loss));
        clora_buffer_destroy(labels);
        clora_trainer_destroy(trainer);
        clora_model_destroy(model);
    }
    batch_free(&b);
}

/* ---- model folders -------------------------------------------------------------------------- */

static void expect_same_output(clora_model *a, clora_model *b, const batch *in, int bert)
{
    const clora_buffer *ya = NULL, *yb = NULL;
    CHECK_OK(clora_model_set_attention_mask(a, in->mask));
    CHECK_OK(clora_model_set_attention_mask(b, in->mask));
    if (bert) {
        CHECK_OK(clora_model_set_token_types(a, in->types));
        CHECK_OK(clora_model_set_token_types(b, in->types));
    }
    CHECK_OK(clora_model_forward(a, in->ids, &ya));
    float *ha = test_download(ya);
    CHECK_OK(clora_model_forward(b, in->ids, &yb));
    float *hb = test_download(yb);
    assert_int_equal(ya->numel, yb->numel);
    test_assert_identical("reloaded model", ha, hb, ya->numel);
    free(ha);
    free(hb);
}

static void model_folder_round_trip(void **state)
{
    (void)state;
    char dir[64];
    test_temp_dir(dir, "transformer");
    batch b = tiny_batch();
    for (int bert = 0; bert < 2; ++bert) {
        clora_model *model = bert ? tiny_bert(0.1f, 3) : tiny_gpt2(0.1f);
        CHECK_OK(clora_model_save(model, dir));
        clora_model *loaded = NULL;
        CHECK_OK(clora_model_load(&loaded, test_device, dir));
        clora_param_counts before, after;
        CHECK_OK(clora_model_count_params(model, &before));
        CHECK_OK(clora_model_count_params(loaded, &after));
        assert_int_equal(before.total, after.total);
        expect_same_output(model, loaded, &b, bert);
        if (!bert) { /* lm_head still shares wte's weight */
            clora_node *head = NULL;
            CHECK_OK(clora_model_find(loaded, "lm_head", &head));
            assert_ptr_equal(clora__param_get(head, "weight")->value,
                             clora__param_get(head->tied, "weight")->value);
        }
        clora_model_destroy(model);
        clora_model_destroy(loaded);
    }
    /* a Hugging Face folder through clora_model_load */
    clora_model *hf = NULL, *direct = NULL;
    CHECK_OK(clora_model_load(&hf, test_device, GOLDEN "/tiny_gpt2"));
    CHECK_OK(clora_model_load_hf(&direct, test_device, GOLDEN "/tiny_gpt2", 0, 0));
    expect_same_output(hf, direct, &b, 0);
    clora_model_destroy(hf);
    clora_model_destroy(direct);
    batch_free(&b);
    test_remove_dir(dir);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* A copy of tiny_gpt2 with config.json's `key` set to `value` (JSON text). */
static void edited_copy(char *dir, const char *from, const char *key, const char *value)
{
    test_temp_dir(dir, "hf");
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "cp %s/model.safetensors %s/ && sed 's/\"%s\": [^,]*,/\"%s\": %s,/' "
             "%s/config.json > %s/config.json",
             from, dir, key, key, value, from, dir);
    assert_int_equal(system(cmd), 0);
}

static void checkpoint_errors(void **state)
{
    (void)state;
    clora_model *model = NULL;
    char dir[64];
    CHECK_STATUS(clora_model_load_hf(&model, test_device, "/nonexistent/clora", 0, 0),
                 CLORA_ERR_IO);
    assert_null(model);

    edited_copy(dir, GOLDEN "/tiny_gpt2", "model_type", "\"t5\"");
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_UNSUPPORTED);
    test_expect_message("model_type \"t5\"");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_gpt2", "n_layer", "3");
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_FORMAT);
    test_expect_message("transformer.h.2.");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_gpt2", "n_embd", "16");
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_SHAPE_MISMATCH);
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_gpt2", "n_layer", "1");
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_FORMAT);
    test_expect_message("matches no parameter");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_gpt2", "n_head", "3");
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("heads");
    test_remove_dir(dir);

    CHECK_STATUS(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2", 2, 0),
                 CLORA_ERR_UNSUPPORTED);
    assert_null(model);
}

static void input_errors(void **state)
{
    (void)state;
    clora_model *model = tiny_gpt2(0.0f);
    batch b = tiny_batch();
    const clora_buffer *y = NULL;
    int32_t bad = 13; /* vocab_size */
    CHECK_OK(clora_buffer_upload_i32(b.ids, 3, &bad, 1));
    CHECK_STATUS(clora_model_forward(model, b.ids, &y), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("outside [0, 13)");

    const size_t long_shape[2] = {1, 13}, odd_shape[2] = {2, 4};
    clora_buffer *too_long = NULL, *odd_mask = NULL;
    CHECK_OK(clora_buffer_create_typed(&too_long, test_device, CLORA_DTYPE_I32, 2, long_shape));
    CHECK_STATUS(clora_model_forward(model, too_long, &y), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("positions for 12");

    clora_buffer *floats = test_buffer_2d(2, 5, NULL);
    CHECK_STATUS(clora_model_forward(model, floats, &y), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("int32 token ids");
    CHECK_STATUS(clora_model_set_attention_mask(model, floats), CLORA_ERR_SHAPE_MISMATCH);

    bad = 0;
    CHECK_OK(clora_buffer_upload_i32(b.ids, 3, &bad, 1));
    CHECK_OK(clora_buffer_create_typed(&odd_mask, test_device, CLORA_DTYPE_I32, 2, odd_shape));
    CHECK_OK(clora_model_set_attention_mask(model, odd_mask));
    CHECK_STATUS(clora_model_forward(model, b.ids, &y), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("attention mask");
    CHECK_OK(clora_model_set_attention_mask(model, NULL));
    CHECK_OK(clora_model_forward(model, b.ids, &y));

    /* the tree's shape is clora's: no children into transformer parts */
    clora_node *attn = NULL;
    CHECK_OK(clora_model_find(model, "transformer.h.0.attn", &attn));
    CHECK_STATUS(clora_node_add_dropout(attn, "extra", 0.1f, NULL), CLORA_ERR_INVALID_ARGUMENT);

    /* LoRA on the tied lm_head is refused; "all linear layers" skips it */
    clora_lora_config lora = clora_lora_config_default();
    static const char *const head[] = {"lm_head"};
    lora.target_modules = head;
    lora.target_module_count = 1;
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL),
                 CLORA_ERR_UNSUPPORTED);
    test_expect_message("transformer.wte");
    lora.target_modules = NULL;
    lora.target_module_count = 0;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, &replaced));
    assert_int_equal(replaced, 8); /* c_attn, c_proj, c_fc, c_proj per block */

    clora_buffer_destroy(too_long);
    clora_buffer_destroy(odd_mask);
    clora_buffer_destroy(floats);
    batch_free(&b);
    clora_model_destroy(model);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gpt2_against_pytorch),
        cmocka_unit_test(bert_against_pytorch),
        cmocka_unit_test(logits_command_matches_pytorch),
        cmocka_unit_test(gpt2_finite_differences),
        cmocka_unit_test(bert_finite_differences),
        cmocka_unit_test(dropout_only_while_training),
        cmocka_unit_test(other_batch_shapes_in_between),
        cmocka_unit_test(one_training_step),
        cmocka_unit_test(model_folder_round_trip),
        cmocka_unit_test(checkpoint_errors),
        cmocka_unit_test(input_errors),
    };
    if (argc > 1) /* run only the tests whose names match */
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
