/* test_threads.c — the threading contract of the public headers, by
 * stress: two threads training a model each on devices of their own, at
 * the same time, write the bytes each writes alone; clora_last_error is
 * per thread while both fail at once; threads sharing one tokenizer get
 * the ids one thread gets. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CLORA_TEST_GOLDEN_DIR
#error "CLORA_TEST_GOLDEN_DIR must name tests/golden"
#endif

enum { THREADS = 2, STEPS = 6, ROUNDS = 3, B = 3, T = 6, VOCAB = 17 };

static clora_device *devices[THREADS];
static pthread_barrier_t barrier;

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < THREADS; ++i)
        if (clora_device_open(&devices[i], NULL) != CLORA_OK) {
            fprintf(stderr, "cannot open a device: %s\n", clora_last_error());
            return -1;
        }
    return pthread_barrier_init(&barrier, NULL, THREADS) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < THREADS; ++i)
        clora_device_destroy(devices[i]);
    pthread_barrier_destroy(&barrier);
    return 0;
}

/* ---- training ------------------------------------------------------------------------------ */

typedef struct training_job {
    clora_device *device;
    uint64_t seed;
    uint64_t checksum; /* of the trainable values after the run */
    clora_status status;
    char message[512];
} training_job;

static clora_status train_on(training_job *job)
{
    clora_llama_config c = clora_llama_config_default();
    c.vocab_size = VOCAB;
    c.hidden_size = 16;
    c.intermediate_size = 20;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 4;
    c.initializer_range = 0.3f;
    clora_model *model = NULL;
    clora_trainer *trainer = NULL;
    clora_buffer *x = NULL, *y = NULL;
    clora_status status = clora_model_create_llama(&model, job->device, &c, job->seed);
    clora_lora_config lora = clora_lora_config_default();
    static const char *const targets[] = {"q_proj", "v_proj", "down_proj"};
    lora.rank = 4;
    lora.dropout = 0.2f;
    lora.target_modules = targets;
    lora.target_module_count = 3;
    if (status == CLORA_OK)
        status = clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL);
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 0.02f;
    if (status == CLORA_OK)
        status = clora_trainer_create(&trainer, model, &cfg);
    const size_t shape[2] = {B, T};
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(&x, job->device, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(&y, job->device, CLORA_DTYPE_I32, 2, shape);
    int32_t ids[B * T + 1];
    for (size_t i = 0; i < B * T + 1; ++i)
        ids[i] = (int32_t)((i * 7 + job->seed) % VOCAB);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(x, 0, ids, B * T);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(y, 0, ids + 1, B * T);
    for (int step = 0; step < STEPS && status == CLORA_OK; ++step) {
        float loss;
        status = clora_trainer_step(trainer, x, y, &loss);
    }
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; status == CLORA_OK && i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        status = clora_model_param(model, i, &info);
        if (status != CLORA_OK || !info.trainable)
            continue;
        const size_t n = clora_buffer_numel(info.value);
        float *v = malloc(n * sizeof *v);
        status = v ? clora_buffer_download(info.value, 0, v, n) : CLORA_ERR_OUT_OF_HOST_MEMORY;
        for (size_t b = 0; status == CLORA_OK && b < n * sizeof *v; ++b)
            h = (h ^ ((const unsigned char *)v)[b]) * 0x100000001b3ull;
        free(v);
    }
    job->checksum = h;
    if (status != CLORA_OK)
        snprintf(job->message, sizeof job->message, "%s", clora_last_error());
    clora_buffer_destroy(x);
    clora_buffer_destroy(y);
    clora_trainer_destroy(trainer);
    clora_model_destroy(model);
    return status;
}

static void *training_thread(void *arg)
{
    training_job *job = arg;
    pthread_barrier_wait(&barrier); /* both start together */
    job->status = train_on(job);
    return NULL;
}

static void two_threads_train_on_two_devices_as_one_does(void **state)
{
    (void)state;
    training_job alone[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        alone[i] = (training_job){devices[0], 100 + (uint64_t)i, 0, CLORA_OK, ""};
        CHECK_OK(train_on(&alone[i]));
    }
    assert_int_not_equal(alone[0].checksum, alone[1].checksum);
    for (int round = 0; round < ROUNDS; ++round) {
        training_job jobs[THREADS];
        pthread_t threads[THREADS];
        for (int i = 0; i < THREADS; ++i) {
            jobs[i] = (training_job){devices[i], 100 + (uint64_t)i, 0, CLORA_OK, ""};
            assert_int_equal(pthread_create(&threads[i], NULL, training_thread, &jobs[i]), 0);
        }
        for (int i = 0; i < THREADS; ++i)
            assert_int_equal(pthread_join(threads[i], NULL), 0);
        for (int i = 0; i < THREADS; ++i) {
            if (jobs[i].status != CLORA_OK)
                fail_msg("round %d, thread %d: %s", round, i, jobs[i].message);
            if (jobs[i].checksum != alone[i].checksum)
                fail_msg("round %d: thread %d's run differs from the same run alone", round, i);
        }
    }
}

/* ---- errors ---------------------------------------------------------------------------------- */

typedef struct error_job {
    int index;
    int ok; /* every message this thread read was its own */
} error_job;

static void *error_thread(void *arg)
{
    error_job *job = arg;
    char name[64];
    snprintf(name, sizeof name, "no-such-module-of-thread-%d", job->index);
    clora_model *model = NULL;
    job->ok = clora_model_create(&model, devices[job->index], 1) == CLORA_OK;
    for (int i = 0; i < 200; ++i) { /* every round, so that neither waits alone */
        clora_param_info info;
        pthread_barrier_wait(&barrier); /* both fail, then both read */
        const int failed = model && clora_model_find_param(model, name, &info) != CLORA_OK;
        pthread_barrier_wait(&barrier);
        job->ok = job->ok && failed && strstr(clora_last_error(), name) != NULL;
    }
    clora_model_destroy(model);
    return NULL;
}

static void each_thread_reads_its_own_error(void **state)
{
    (void)state;
    error_job jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        jobs[i] = (error_job){i, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, error_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; ++i)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < THREADS; ++i)
        assert_true(jobs[i].ok);
}

/* ---- a shared tokenizer ------------------------------------------------------------------------ */

static const char *const texts[] = {
    "Hello world, this is a test of threads.", "  spaces   and\ttabs\nand lines  ",
    "Numbers 1234567 and punctuation!?", "ümlaut café naïve — dash", "日本語のテキスト",
    "emoji 🙂 and more 🚀 text", "<|im_start|>user\nhi<|im_end|>", "a"};
#define TEXT_COUNT (sizeof texts / sizeof texts[0])

typedef struct tokenizer_job {
    const clora_tokenizer *tokenizer;
    uint64_t checksum;
    int ok;
} tokenizer_job;

static uint64_t encode_all(const clora_tokenizer *tokenizer, int rounds, int *ok)
{
    uint64_t h = 0xcbf29ce484222325ull;
    *ok = 1;
    for (int r = 0; r < rounds && *ok; ++r)
        for (size_t t = 0; t < TEXT_COUNT && *ok; ++t) {
            int32_t *ids = NULL;
            size_t count = 0;
            *ok = clora_tokenizer_encode_text(tokenizer, texts[t], 1, &ids, &count) == CLORA_OK;
            for (size_t i = 0; i < count; ++i)
                h = (h ^ (uint32_t)ids[i]) * 0x100000001b3ull;
            free(ids);
        }
    return h;
}

static void *tokenizer_thread(void *arg)
{
    tokenizer_job *job = arg;
    pthread_barrier_wait(&barrier);
    job->checksum = encode_all(job->tokenizer, 50, &job->ok);
    return NULL;
}

static void threads_share_a_tokenizer(void **state)
{
    (void)state;
    clora_tokenizer *tokenizer = NULL;
    CHECK_OK(clora_tokenizer_load_gguf(&tokenizer, CLORA_TEST_GOLDEN_DIR "/smollm2_tokenizer.gguf"));
    int ok = 0;
    const uint64_t want = encode_all(tokenizer, 50, &ok);
    assert_true(ok);
    tokenizer_job jobs[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; ++i) {
        jobs[i] = (tokenizer_job){tokenizer, 0, 0};
        assert_int_equal(pthread_create(&threads[i], NULL, tokenizer_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < THREADS; ++i)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < THREADS; ++i) {
        assert_true(jobs[i].ok);
        assert_int_equal(jobs[i].checksum, want);
    }
    clora_tokenizer_destroy(tokenizer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(two_threads_train_on_two_devices_as_one_does),
        cmocka_unit_test(each_thread_reads_its_own_error),
        cmocka_unit_test(threads_share_a_tokenizer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
