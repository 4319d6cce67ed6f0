/* bench.h — what the parts of `clora bench` share: the options, the run,
 * one result's output and the alternating timer. cmd_bench.c holds the
 * layer, model and generation measurements; bench_packed.c those of
 * packed base weights. */
#ifndef CLORA_TOOLS_BENCH_H
#define CLORA_TOOLS_BENCH_H

#include <jansson.h>

#include "clora/clora.h"

typedef struct bench_options {
    const char *device;
    const char *only;
    const char *llama; /* a Llama-family model for the generation measurements */
    int quick, json;
    size_t reps;
} bench_options;

typedef struct bench {
    bench_options o;
    clora_device *dev;
    clora_device_info info;
    int failed;
} bench;

/* Prints one result: a JSON line, or a table row. ratio_of is "time" (lower
 * is better) or "speed" (higher is better); baseline_ms < 0: no baseline.
 * Takes `extra` (may be NULL): more fields of the line. */
void bench_report(bench *b, const char *name, const char *shape, double median_ms,
            const char *baseline, double baseline_ms, const char *ratio_of, json_t *extra);
/* Whether --only lets the measurement `name` run. */
int bench_wanted(const bench *b, const char *name);
/* Whether --only lets some measurement of a group named prefix* run. */
int bench_group_wanted(const bench *b, const char *prefix);
/* Reports a failed measurement; the command then exits 1. */
void bench_fail(bench *b, const char *what, clora_status status);

/* Random token ids (rows, seq) below vocab from `seed`, uploaded as both
 * the input and the target of a next-token step. */
clora_status bench_tokens(clora_device *dev, size_t rows, size_t seq, size_t vocab, uint64_t seed,
                          clora_buffer **input, clora_buffer **target);

/* A buffer (rows, cols) (cols 0: 1-D) of values uniform in [-bound, bound]
 * drawn from *rng; with keep, also the host copy (the caller frees it). */
clora_status bench_random_buffer(clora_buffer **out, clora_device *dev, size_t rows, size_t cols,
                                 float bound, uint64_t *rng, float **keep);

/* A case: runs once (enqueueing work) and returns a status. */
typedef clora_status (*bench_fn)(void *context);

/* A training step of `trainer` on (input, target), and the bench_fn that
 * runs it (its context a bench_step). */
typedef struct bench_step {
    clora_trainer *trainer;
    clora_buffer *input, *target;
} bench_step;
clora_status bench_run_step(void *step);
/* Times `count` cases alternating, `reps` times after two warm-up rounds
 * (the first compiles kernels); medians in ms into out. The queue drains
 * before each case starts and is waited for before its clock stops. */
clora_status bench_measure(bench *b, size_t count, bench_fn *fns, void **contexts, size_t reps,
                     double *out);

/* Packed base weights (bench_packed.c): the products on each packed type,
 * fused and dequantized, against float32 weights; and, with --llama, a
 * model's training step, prefill and decode with its base stored as F32,
 * F16, Q8_0 and Q4_1. */
void bench_packed_products(bench *b);
void bench_packed_llama(bench *b);
/* With --llama: the error of half-precision accumulation (CLBlast's HGEMM)
 * against float32 accumulation on the model's F16 layers. */
void bench_hgemm_error(bench *b);

/* Gradient checkpointing (bench_checkpoint.c): a LoRA step with and
 * without it, time and working memory, on GPT-2 small's shapes and on
 * --llama's model. */
void bench_checkpointing(bench *b);

/* PEFT's variants against plain LoRA (bench_peft.c): a DoRA layer step and
 * GPT-2-shaped training steps with DoRA and with LoRA on the token
 * embedding. */
void bench_peft_variants(bench *b);

#endif /* CLORA_TOOLS_BENCH_H */
