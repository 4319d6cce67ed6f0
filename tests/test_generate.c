/* test_generate.c — generation sessions against recomputing the whole
 * sequence (one row, rows of different lengths, prompts fed in pieces,
 * with a LoRA adapter), the errors a caller can make, and sampling. */
#include "model_checks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Heads of 10 run the cached attention's scalar loop, heads of 16 its
 * eight-wide one. */
static clora_model *tiny_llama(uint64_t seed, size_t head_dim)
{
    clora_llama_config c = clora_llama_config_default();
    c.vocab_size = 29;
    c.hidden_size = 24;
    c.intermediate_size = 19;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = head_dim;
    c.rope_theta = 1000.0f;
    c.qkv_bias = 1;
    c.initializer_range = 0.35f;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_llama(&model, test_device, &c, seed));
    return model;
}

/* The last position's logits of a full forward over ids[0..n). */
static void recompute(clora_model *model, const int32_t *ids, size_t n, float *logits)
{
    const size_t shape[2] = {1, n};
    clora_buffer *buf = NULL;
    CHECK_OK(clora_buffer_create_typed(&buf, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_upload_i32(buf, 0, ids, n));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, buf, &y));
    const size_t V = clora_buffer_dim(y, 2);
    CHECK_OK(clora_buffer_download(y, (n - 1) * V, logits, V));
    clora_buffer_destroy(buf);
}

static int32_t argmax(const float *v, size_t n)
{
    size_t best = 0;
    for (size_t i = 1; i < n; ++i)
        if (v[i] > v[best])
            best = i;
    return (int32_t)best;
}

/* Greedy generation of `steps` tokens for each row of a batch whose
 * prompts have different lengths, every step checked against a full
 * forward of that row's sequence; the prompt goes in `pieces` feeds. */
static void against_recomputation(clora_model *model, size_t rows, const size_t *prompt_lengths,
                                  size_t pieces, size_t steps)
{
    enum { CAP = 24, V = 29 };
    int32_t seq[4][CAP];
    uint64_t rng = 17;
    for (size_t r = 0; r < rows; ++r)
        for (size_t t = 0; t < CAP; ++t) {
            float u;
            test_fill_uniform(&u, 1, &rng, 0.0f, (float)V);
            seq[r][t] = (int32_t)u % V;
        }
    clora_session *session = NULL;
    CHECK_OK(clora_session_create(&session, model, rows, CAP));
    assert_int_equal(clora_session_vocab_size(session), V);
    float logits[4 * V], want[V];
    int32_t ids[4 * CAP];
    size_t counts[4], fed[4] = {0, 0, 0, 0};
    /* the prompts, in pieces */
    for (size_t p = 0; p < pieces; ++p) {
        size_t width = 0;
        for (size_t r = 0; r < rows; ++r) {
            const size_t end = prompt_lengths[r] * (p + 1) / pieces;
            counts[r] = end - fed[r];
            for (size_t t = 0; t < counts[r]; ++t)
                ids[r * CAP + t] = seq[r][fed[r] + t];
            width = counts[r] > width ? counts[r] : width;
        }
        /* rows of the flat array `width` apart */
        for (size_t r = 0; r < rows; ++r)
            memmove(ids + r * width, ids + r * CAP, counts[r] * sizeof *ids);
        CHECK_OK(clora_session_feed(session, ids, counts, width ? width : 1, logits));
        for (size_t r = 0; r < rows; ++r)
            fed[r] += counts[r];
    }
    for (size_t step = 0; step < steps; ++step) {
        for (size_t r = 0; r < rows; ++r) {
            assert_int_equal(clora_session_length(session, r), fed[r]);
            recompute(model, seq[r], fed[r], want);
            test_assert_close("cached logits", logits + r * V, want, V, 1e-4, 1e-4);
            const int32_t next = argmax(logits + r * V, V);
            assert_int_equal(next, argmax(want, V));
            seq[r][fed[r]] = next;
            ids[r] = next;
            counts[r] = 1;
        }
        CHECK_OK(clora_session_feed(session, ids, counts, 1, logits));
        for (size_t r = 0; r < rows; ++r)
            fed[r] += 1;
    }
    clora_session_destroy(session);
}

static void one_row_matches_recomputation(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(31, 10);
    const size_t prompt[1] = {5};
    against_recomputation(model, 1, prompt, 1, 10);
    clora_model_destroy(model);
}

static void rows_of_different_lengths(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(32, 10);
    const size_t prompts[3] = {3, 7, 1};
    against_recomputation(model, 3, prompts, 1, 6);
    /* the same prompts fed in three pieces each (a row gets none in some) */
    against_recomputation(model, 3, prompts, 3, 4);
    clora_model_destroy(model);
}

static void with_an_adapter(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(33, 16);
    clora_lora_config lora = clora_lora_config_default();
    static const char *const targets[] = {"q_proj", "v_proj", "down_proj"};
    lora.rank = 3;
    lora.target_modules = targets;
    lora.target_module_count = 3;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    uint64_t rng = 5;
    test_randomise_lora_b(model, &rng);
    const size_t prompts[2] = {4, 2};
    against_recomputation(model, 2, prompts, 1, 5);
    clora_model_destroy(model);
}

static void feed_errors(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(34, 10);
    clora_session *session = NULL;
    CHECK_STATUS(clora_session_create(&session, model, 0, 8), CLORA_ERR_INVALID_ARGUMENT);
    CHECK_OK(clora_session_create(&session, model, 2, 4));
    float logits[2 * 29];
    const int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t counts[2] = {3, 2};
    CHECK_OK(clora_session_feed(session, ids, counts, 3, logits));
    counts[0] = 2;
    counts[1] = 0;
    CHECK_STATUS(clora_session_feed(session, ids, counts, 3, logits), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("would hold 5 tokens");
    assert_int_equal(clora_session_length(session, 0), 3); /* unchanged */
    counts[0] = 4;
    CHECK_STATUS(clora_session_feed(session, ids, counts, 3, logits), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("in a width of 3");
    const int32_t bad[2] = {29, 0};
    counts[0] = 1;
    CHECK_STATUS(clora_session_feed(session, bad, counts, 1, logits), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("token id 29");
    CHECK_OK(clora_model_set_training(model, 1));
    CHECK_STATUS(clora_session_feed(session, ids, counts, 1, logits), CLORA_ERR_STATE);
    test_expect_message("evaluation mode");
    CHECK_OK(clora_model_set_training(model, 0));
    clora_session_reset(session);
    assert_int_equal(clora_session_length(session, 0), 0);
    counts[0] = 4;
    counts[1] = 4;
    CHECK_OK(clora_session_feed(session, ids, counts, 4, logits));
    clora_session_destroy(session);
    clora_model_destroy(model);

    /* GPT-2 models have no cached attention */
    clora_gpt2_config g = clora_gpt2_config_default();
    g.vocab_size = 11;
    g.n_positions = 8;
    g.n_embd = 8;
    g.n_layer = 1;
    g.n_head = 2;
    CHECK_OK(clora_model_create_gpt2(&model, test_device, &g, 1));
    CHECK_STATUS(clora_session_create(&session, model, 1, 4), CLORA_ERR_UNSUPPORTED);
    assert_null(session);
    clora_model_destroy(model);
}

/* ---- sampling ------------------------------------------------------------------------------ */

static void sampling(void **state)
{
    (void)state;
    const float logits[4] = {logf(0.5f), logf(0.3f), logf(0.2f), -INFINITY};
    clora_sampling greedy = clora_sampling_greedy();
    uint64_t rng = 1;
    assert_int_equal(clora_sample(logits, 4, &greedy, &rng), 0);
    assert_int_equal(clora_sample(NULL, 4, &greedy, &rng), -1);
    const float tie[3] = {1.0f, 2.0f, 2.0f};
    assert_int_equal(clora_sample(tie, 3, &greedy, &rng), 1);

    /* temperature 1: the softmax's own frequencies */
    clora_sampling plain = {1.0f, 0, 1.0f};
    size_t seen[4] = {0, 0, 0, 0};
    enum { DRAWS = 20000 };
    for (int i = 0; i < DRAWS; ++i)
        seen[clora_sample(logits, 4, &plain, &rng)]++;
    assert_true(fabs((double)seen[0] / DRAWS - 0.5) < 0.02);
    assert_true(fabs((double)seen[1] / DRAWS - 0.3) < 0.02);
    assert_true(fabs((double)seen[2] / DRAWS - 0.2) < 0.02);
    assert_int_equal(seen[3], 0);

    /* top-k 2 never draws the third; top-p 0.6 keeps 0.5 + 0.3 */
    clora_sampling top_k = {1.0f, 2, 1.0f}, top_p = {1.0f, 0, 0.6f};
    size_t k_seen[4] = {0, 0, 0, 0}, p_seen[4] = {0, 0, 0, 0};
    for (int i = 0; i < 4000; ++i) {
        k_seen[clora_sample(logits, 4, &top_k, &rng)]++;
        p_seen[clora_sample(logits, 4, &top_p, &rng)]++;
    }
    assert_int_equal(k_seen[2] + k_seen[3], 0);
    assert_int_equal(p_seen[2] + p_seen[3], 0);
    assert_true(k_seen[1] > 1000 && p_seen[1] > 1000);

    /* the same seed, the same draws */
    uint64_t a = 42, b = 42;
    for (int i = 0; i < 50; ++i)
        assert_int_equal(clora_sample(logits, 4, &plain, &a), clora_sample(logits, 4, &plain, &b));
    /* a low temperature is nearly greedy */
    clora_sampling cold = {0.05f, 0, 1.0f};
    for (int i = 0; i < 50; ++i)
        assert_int_equal(clora_sample(logits, 4, &cold, &rng), 0);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_row_matches_recomputation),
        cmocka_unit_test(rows_of_different_lengths),
        cmocka_unit_test(with_an_adapter),
        cmocka_unit_test(feed_errors),
        cmocka_unit_test(sampling),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
