/* cmd_bench.c — `clora bench`: the frozen GEMM, the LoRA layer against it,
 * the LoRA training step against full fine-tuning, CLBlast against OpenBLAS
 * on the host, and whole training steps of the demo model and a
 * GPT-2-small-shaped model. Every comparison is measured side by side in one
 * run: the two cases alternate, each timed after the queue drains, and the
 * medians are compared. */
/* POSIX.1-2008 for dlopen. */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "bench.h"
#include "options.h"

static const char bench_description[] =
    "Measures, each as the median of several repetitions after warm-up, with\n"
    "the two sides of every ratio alternating in the same run:\n"
    "  gemm                    frozen SGEMM y = x*W^T through CLBlast (GFLOP/s)\n"
    "  gemm_untuned            the same with CLBlast's own parameters, when the\n"
    "                          device has tuned ones; measured first, as CLBlast\n"
    "                          cannot go back to its own parameters (ratio:\n"
    "                          untuned time / tuned time; not in --quick)\n"
    "  gemm_vs_openblas        CLBlast SGEMM speed / OpenBLAS cblas_sgemm on the\n"
    "                          host (skipped when libopenblas is not installed;\n"
    "                          one after the other, not alternating, as OpenBLAS's\n"
    "                          threads spin on after each call)\n"
    "  lora_forward_vs_gemm    LoRA forward time / bare frozen GEMM time\n"
    "  lora_step_vs_full_step  LoRA layer step (forward, dx, dA, dB) time / full\n"
    "                          fine-tuning step (forward, dx, dW, db) time, with\n"
    "                          gemm_floor: the forward and dx GEMMs alone / full\n"
    "                          step, the ratio if the rank-r work cost nothing\n"
    "  demo_step, gpt2_step    whole training steps (LoRA and full), tokens/s and\n"
    "                          peak device memory by category\n"
    "  checkpointing_step      a LoRA step on GPT-2 small's shapes (and on --llama's\n"
    "                          model) with gradient checkpointing, against the\n"
    "                          step without (ratio: time), with the working\n"
    "                          memory of each (all but parameters, gradients\n"
    "                          and optimizer state)\n"
    "  packed_<TYPE>           y = x*W^T with W stored packed (F16, BF16, Q8_0,\n"
    "                          Q4_0, Q4_1, Q4_K, Q5_K, Q6_K) by the path clora\n"
    "                          takes, against float32 W (ratio: time); with the\n"
    "                          dequantize + GEMM and fused (N <= 4) times\n"
    "With --llama PATH (a Llama-family folder or GGUF file, such as SmolLM2's):\n"
    "  llama_prefill           a 256-token prompt through a generation session\n"
    "                          (tokens/s)\n"
    "  llama_decode            one new token at T = 256 with the key/value cache\n"
    "                          (tokens/s), against recomputing the whole sequence\n"
    "                          for it (ratio: recompute time / cached time)\n"
    "  packed_train_step, packed_prefill, packed_decode\n"
    "                          the model with its base stored as F32, F16, Q8_0,\n"
    "                          the file's own types and Q4_1, all loaded at once\n"
    "                          and timed alternating: a LoRA step (r = 8 on\n"
    "                          q_proj and v_proj, B = 4, T = 64), a 256-token\n"
    "                          prefill, one decode step; ratios against F32, and\n"
    "                          each base's frozen-weight bytes\n"
    "  packed_hgemm_error      y = x*W^T on the model's F16 layers: the error of\n"
    "                          float32 accumulation (clora's path for F16) and of\n"
    "                          half accumulation with x in half (CLBlast's HGEMM,\n"
    "                          emulated), each relative to the outputs' RMS\n";

/* ---- output -------------------------------------------------------------- */

/* Results reported in this run: none after the run means --only let nothing run. */
static size_t reported;

void bench_report(bench *b, const char *name, const char *shape, double median_ms,
                   const char *baseline, double baseline_ms, const char *ratio_of, json_t *extra)
{
    ++reported;
    double ratio = 0.0;
    if (baseline_ms > 0)
        ratio = !strcmp(ratio_of, "speed") ? baseline_ms / median_ms : median_ms / baseline_ms;
    if (b->o.json) {
        json_t *line = json_pack("{s:s, s:s, s:f, s:s, s:s}", "name", name, "shape", shape,
                                 "median_ms", median_ms, "implementation", "clora", "device",
                                 b->info.name);
        if (baseline_ms > 0) {
            json_object_set_new(line, "baseline", json_string(baseline));
            json_object_set_new(line, "baseline_ms", json_real(baseline_ms));
            json_object_set_new(line, "ratio", json_real(ratio));
            json_object_set_new(line, "ratio_of", json_string(ratio_of));
        }
        if (extra)
            json_object_update(line, extra);
        char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
        if (text)
            puts(text);
        free(text);
        json_decref(line);
    } else {
        printf("  %-24s %-28s %10.3f ms", name, shape, median_ms);
        if (baseline_ms > 0)
            printf("  %-18s %10.3f ms  ratio %.3f (%s)", baseline, baseline_ms, ratio,
                   !strcmp(ratio_of, "speed") ? "speed" : "time");
        const char *key;
        json_t *value;
        json_object_foreach(extra, key, value) {
            if (json_is_real(value)) /* GFLOP/s, tokens/s: one decimal; ratios: three */
                printf(fabs(json_real_value(value)) < 10.0 ? "  %s %.3f" : "  %s %.1f", key,
                       json_real_value(value));
            else if (json_is_integer(value))
                printf("  %s %lld", key, (long long)json_integer_value(value));
            else if (json_is_object(value)) /* memory by category: the total */
                printf("  %s %.1f MiB", key,
                       (double)json_integer_value(json_object_get(value, "total")) / 1048576.0);
        }
        putchar('\n');
    }
    fflush(stdout);
    json_decref(extra);
}

int bench_wanted(const bench *b, const char *name)
{
    return !b->o.only || !strncmp(name, b->o.only, strlen(b->o.only));
}

int bench_group_wanted(const bench *b, const char *prefix)
{
    return bench_wanted(b, prefix) || !strncmp(b->o.only, prefix, strlen(prefix));
}

/* The --llama model's packed measurements, apart from the products on each
 * packed type (packed_<TYPE>), which share their prefix. */
static const char *const llama_packed[] = {"packed_train_step", "packed_prefill",
                                           "packed_decode", "packed_hgemm_error"};

static int llama_packed_wanted(const bench *b, size_t first, size_t count)
{
    for (size_t i = first; i < first + count; ++i)
        if (bench_wanted(b, llama_packed[i]))
            return 1;
    return 0;
}

/* The products, unless --only names one of the model's measurements. */
static int packed_products_wanted(const bench *b)
{
    if (!bench_group_wanted(b, "packed_"))
        return 0;
    return !b->o.only || strlen(b->o.only) <= strlen("packed_") ||
           !llama_packed_wanted(b, 0, 4);
}

void bench_fail(bench *b, const char *what, clora_status status)
{
    cli_report("bench", what, status);
    b->failed = 1;
}

/* ---- timing ----------------------------------------------------------------- */

clora_status bench_measure(bench *b, size_t count, bench_fn *fns, void **contexts,
                            size_t reps, double *out)
{
    double *times = calloc(count * reps, sizeof(double));
    if (!times)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    clora_status status = CLORA_OK;
    const size_t warmup = 2;
    for (size_t rep = 0; rep < reps + warmup && status == CLORA_OK; ++rep)
        for (size_t c = 0; c < count && status == CLORA_OK; ++c) {
            if ((status = clora_device_finish(b->dev)))
                break;
            double t0 = cli_seconds();
            status = fns[c](contexts[c]);
            if (status == CLORA_OK)
                status = clora_device_finish(b->dev);
            if (rep >= warmup)
                times[c * reps + rep - warmup] = (cli_seconds() - t0) * 1e3;
        }
    for (size_t c = 0; c < count && status == CLORA_OK; ++c)
        out[c] = cli_median(times + c * reps, reps);
    free(times);
    return status;
}

/* ---- one layer ------------------------------------------------------------------ */

typedef struct layer {
    size_t n, in, out, r;
    clora_lora_spec spec;
    clora_buffer *x, *w, *bias, *a, *bm, *y, *h, *dy, *dx, *dw, *db, *da, *dbm;
    float *host_x, *host_w, *host_y; /* for OpenBLAS */
} layer;

static void layer_free(layer *l)
{
    clora_buffer *all[] = {l->x,  l->w,  l->bias, l->a,  l->bm, l->y, l->h,
                           l->dy, l->dx, l->dw,   l->db, l->da, l->dbm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
    free(l->host_x);
    free(l->host_w);
    free(l->host_y);
    memset(l, 0, sizeof *l);
}

clora_status bench_random_buffer(clora_buffer **out, clora_device *dev, size_t rows, size_t cols,
                                 float bound, uint64_t *rng, float **keep)
{
    clora_status status = cols ? clora_buffer_create_2d(out, dev, rows, cols)
                               : clora_buffer_create_1d(out, dev, rows);
    const size_t count = rows * (cols ? cols : 1);
    float *host = status == CLORA_OK ? malloc(count * sizeof(float)) : NULL;
    if (status == CLORA_OK && !host)
        status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; status == CLORA_OK && i < count; ++i)
        host[i] = cli_uniform(rng, -bound, bound);
    if (status == CLORA_OK)
        status = clora_buffer_upload(*out, 0, host, count);
    if (keep && status == CLORA_OK)
        *keep = host;
    else
        free(host);
    return status;
}

static clora_status layer_create(layer *l, clora_device *dev, size_t n, size_t in, size_t out,
                                 size_t r)
{
    memset(l, 0, sizeof *l);
    l->n = n, l->in = in, l->out = out, l->r = r;
    l->spec = (clora_lora_spec){16.0f, CLORA_SCALE_ALPHA_OVER_R, 0.0f, 1, CLORA_WEIGHT_OUT_IN, 0};
    uint64_t rng = 7;
    const float bound = 1.0f / sqrtf((float)in);
    clora_status status;
    if ((status = bench_random_buffer(&l->x, dev, n, in, 1.0f, &rng, &l->host_x)) ||
        (status = bench_random_buffer(&l->w, dev, out, in, bound, &rng, &l->host_w)) ||
        (status = bench_random_buffer(&l->bias, dev, out, 0, bound, &rng, NULL)) ||
        (status = bench_random_buffer(&l->a, dev, r, in, bound, &rng, NULL)) ||
        (status = bench_random_buffer(&l->bm, dev, out, r, 0.01f, &rng, NULL)) ||
        (status = bench_random_buffer(&l->dy, dev, n, out, 1e-3f, &rng, NULL)) ||
        (status = clora_buffer_create_2d(&l->y, dev, n, out)) ||
        (status = clora_buffer_create_2d(&l->h, dev, n, r)) ||
        (status = clora_buffer_create_2d(&l->dx, dev, n, in)) ||
        (status = clora_buffer_create_2d(&l->dw, dev, out, in)) ||
        (status = clora_buffer_create_1d(&l->db, dev, out)) ||
        (status = clora_buffer_create_2d(&l->da, dev, r, in)) ||
        (status = clora_buffer_create_2d(&l->dbm, dev, out, r)))
        return status;
    if (!(l->host_y = malloc(n * out * sizeof(float))))
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    return CLORA_OK;
}

static clora_status run_gemm(void *p)
{
    layer *l = p;
    return clora_linear_forward(l->y, l->x, l->w, NULL, CLORA_WEIGHT_OUT_IN);
}

static clora_status run_lora_forward(void *p)
{
    layer *l = p;
    return clora_lora_forward(l->y, l->h, l->x, l->w, NULL, l->a, l->bm, &l->spec);
}

static clora_status run_full_step(void *p)
{
    layer *l = p;
    clora_status status = clora_linear_forward(l->y, l->x, l->w, l->bias, CLORA_WEIGHT_OUT_IN);
    if (status == CLORA_OK)
        status = clora_linear_backward(l->dx, l->dw, l->db, l->dy, l->x, l->w,
                                       CLORA_WEIGHT_OUT_IN);
    return status;
}

/* The frozen GEMMs a LoRA step cannot avoid: forward and dx. */
static clora_status run_frozen_gemms(void *p)
{
    layer *l = p;
    clora_status status = clora_linear_forward(l->y, l->x, l->w, l->bias, CLORA_WEIGHT_OUT_IN);
    if (status == CLORA_OK)
        status = clora_linear_backward(l->dx, NULL, NULL, l->dy, l->x, l->w, CLORA_WEIGHT_OUT_IN);
    return status;
}

static clora_status run_lora_step(void *p)
{
    layer *l = p;
    clora_status status =
        clora_lora_forward(l->y, l->h, l->x, l->w, l->bias, l->a, l->bm, &l->spec);
    if (status == CLORA_OK)
        status = clora_lora_backward(l->dx, l->da, l->dbm, l->dy, l->x, l->h, l->w, l->a, l->bm,
                                     &l->spec);
    return status;
}

/* OpenBLAS, found at run time so that it stays a benchmark-only dependency. */
typedef void (*cblas_sgemm_fn)(int layout, int trans_a, int trans_b, int m, int n, int k,
                               float alpha, const float *a, int lda, const float *b, int ldb,
                               float beta, float *c, int ldc);
static cblas_sgemm_fn openblas_sgemm(void)
{
    static int tried;
    static cblas_sgemm_fn fn;
    if (!tried) {
        tried = 1;
        const char *names[] = {"libopenblas.so.0", "libopenblas.so"};
        for (size_t i = 0; i < 2 && !fn; ++i) {
            void *lib = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
            if (lib) {
                *(void **)&fn = dlsym(lib, "cblas_sgemm");
            } else { /* glibc frees a failure's message at the next dlerror() but one */
                (void)dlerror();
                (void)dlerror();
            }
        }
    }
    return fn;
}

static clora_status run_openblas(void *p)
{
    layer *l = p;
    enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 }; /* CBLAS's values */
    openblas_sgemm()(ROW_MAJOR, NO_TRANS, TRANS, (int)l->n, (int)l->out, (int)l->in, 1.0f,
                     l->host_x, (int)l->in, l->host_w, (int)l->in, 0.0f, l->host_y, (int)l->out);
    return CLORA_OK;
}

static json_t *gflops(double flops, double ms)
{
    return json_pack("{s:f}", "gflops", flops / (ms * 1e6));
}

/* The layer measurements for one shape; the GEMM-only ones once per (N, in,
 * out), the LoRA ones per rank. */
static void bench_layer(bench *b, size_t n, size_t in, size_t out, const size_t *ranks,
                        size_t rank_count, double untuned_ms)
{
    char shape[96];
    layer l;
    clora_status status = layer_create(&l, b->dev, n, in, out, ranks[0]);
    if (status != CLORA_OK) {
        bench_fail(b, "allocating a layer", status);
        layer_free(&l);
        return;
    }
    const double flops = 2.0 * (double)n * (double)in * (double)out;
    snprintf(shape, sizeof shape, "N=%zu in=%zu out=%zu", n, in, out);
    double ms[2];
    bench_fn fns[2];
    void *ctx[2] = {&l, &l};

    if (bench_wanted(b, "gemm") || untuned_ms > 0) {
        fns[0] = run_gemm;
        if ((status = bench_measure(b, 1, fns, ctx, b->o.reps, ms)))
            goto failed;
        if (bench_wanted(b, "gemm"))
            bench_report(b, "gemm", shape, ms[0], NULL, -1, "time", gflops(flops, ms[0]));
    }
    if (untuned_ms > 0) {
        /* gemm_untuned ran first (CLBlast cannot go back to its own
         * parameters later); its baseline is the tuned gemm above. */
        bench_report(b, "gemm_untuned", shape, untuned_ms, "gemm", ms[0], "time",
               gflops(flops, untuned_ms));
    }
    if (bench_wanted(b, "gemm_vs_openblas")) {
        if (!openblas_sgemm()) {
            if (!b->o.json)
                printf("  %-24s %-28s skipped: libopenblas not found\n", "gemm_vs_openblas",
                       shape);
        } else {
            /* Not alternating: OpenBLAS's threads keep spinning for a while
             * after each call and would slow the device's threads (PoCL's
             * CPU device shares the cores). CLBlast first, then OpenBLAS,
             * then a pause for its threads to go to sleep. */
            fns[0] = run_gemm;
            fns[1] = run_openblas;
            if ((status = bench_measure(b, 1, fns, ctx, b->o.reps, &ms[0])) ||
                (status = bench_measure(b, 1, fns + 1, ctx + 1, b->o.reps, &ms[1])))
                goto failed;
            const struct timespec pause = {0, 300000000};
            nanosleep(&pause, NULL);
            json_t *extra = json_pack("{s:f, s:f}", "gflops", flops / (ms[0] * 1e6),
                                      "baseline_gflops", flops / (ms[1] * 1e6));
            bench_report(b, "gemm_vs_openblas", shape, ms[0], "openblas", ms[1], "speed", extra);
        }
    }
    for (size_t i = 0; i < rank_count; ++i) {
        if (ranks[i] != l.r) {
            layer_free(&l);
            if ((status = layer_create(&l, b->dev, n, in, out, ranks[i])))
                goto failed;
        }
        snprintf(shape, sizeof shape, "N=%zu in=%zu out=%zu r=%zu", n, in, out, ranks[i]);
        if (bench_wanted(b, "lora_forward_vs_gemm")) {
            fns[0] = run_lora_forward;
            fns[1] = run_gemm;
            if ((status = bench_measure(b, 2, fns, ctx, b->o.reps, ms)))
                goto failed;
            bench_report(b, "lora_forward_vs_gemm", shape, ms[0], "gemm", ms[1], "time", NULL);
        }
        if (bench_wanted(b, "lora_step_vs_full_step")) {
            /* gemm_floor: the ratio a LoRA step would reach if its rank-r
             * work cost nothing (forward and dx GEMMs / full step). */
            bench_fn step_fns[3] = {run_lora_step, run_full_step, run_frozen_gemms};
            void *step_ctx[3] = {&l, &l, &l};
            double step_ms[3];
            if ((status = bench_measure(b, 3, step_fns, step_ctx, b->o.reps, step_ms)))
                goto failed;
            bench_report(b, "lora_step_vs_full_step", shape, step_ms[0], "full_step", step_ms[1],
                   "time", json_pack("{s:f}", "gemm_floor", step_ms[2] / step_ms[1]));
        }
    }
    layer_free(&l);
    return;
failed:
    bench_fail(b, shape, status);
    layer_free(&l);
}

/* ---- whole models ------------------------------------------------------------------ */

clora_status bench_run_step(void *p)
{
    bench_step *s = p;
    return clora_trainer_step(s->trainer, s->input, s->target, NULL);
}

/* Peak device memory by category since the last reset. */
static json_t *memory_json(clora_device *dev)
{
    static const char *const memory_keys[CLORA_MEMORY_CATEGORY_COUNT] = {
        "other", "frozen", "trainable", "gradients", "optimizer", "activations", "scratch"};
    clora_memory_report report;
    if (clora_device_memory(dev, &report) != CLORA_OK)
        return json_null();
    json_t *mem = json_object();
    for (int c = 0; c < CLORA_MEMORY_CATEGORY_COUNT; ++c)
        json_object_set_new(mem, memory_keys[c], json_integer((json_int_t)report.peak_bytes[c]));
    json_object_set_new(mem, "total", json_integer((json_int_t)report.peak));
    return mem;
}

/* Training steps of `model` on (input, target), first in full (every
 * weight trains), then LoRA-wrapped by `lora`; each with its own trainer and
 * its own memory peak. */
static clora_status time_steps(bench *b, clora_model *model, clora_buffer *input,
                               clora_buffer *target, const clora_lora_config *lora, size_t tokens,
                               const char *name, const char *shape, size_t reps)
{
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 1e-4f;
    bench_step full = {NULL, input, target}, adapted = {NULL, input, target};
    double full_ms = 0, lora_ms = 0;
    bench_fn fns[1] = {bench_run_step};
    void *ctx[1] = {&full};
    json_t *full_memory = NULL, *lora_memory = NULL;
    clora_status status = clora_model_set_training(model, 1);
    if (status == CLORA_OK)
        status = clora_device_reset_memory_peak(b->dev);
    if (status == CLORA_OK)
        status = clora_trainer_create(&full.trainer, model, &cfg);
    if (status == CLORA_OK)
        status = bench_measure(b, 1, fns, ctx, reps, &full_ms);
    clora_trainer_destroy(full.trainer);
    if (status == CLORA_OK) {
        full_memory = memory_json(b->dev);
        status = clora_replace_linear_with_lora(clora_model_root(model), lora, NULL);
    }
    /* Counting lays the parameters out anew (frozen weights lose their
     * gradients), so the LoRA peak starts from the LoRA model. */
    clora_param_counts counts;
    if (status == CLORA_OK)
        status = clora_model_count_params(model, &counts);
    if (status == CLORA_OK)
        status = clora_device_reset_memory_peak(b->dev);
    if (status == CLORA_OK)
        status = clora_trainer_create(&adapted.trainer, model, &cfg);
    ctx[0] = &adapted;
    if (status == CLORA_OK)
        status = bench_measure(b, 1, fns, ctx, reps, &lora_ms);
    clora_trainer_destroy(adapted.trainer);
    if (status == CLORA_OK) {
        lora_memory = memory_json(b->dev);
        json_t *extra = json_pack("{s:f, s:f, s:o, s:o}", "tokens_per_s",
                                  (double)tokens / (lora_ms * 1e-3), "full_tokens_per_s",
                                  (double)tokens / (full_ms * 1e-3), "peak_memory_bytes",
                                  lora_memory, "full_peak_memory_bytes", full_memory);
        bench_report(b, name, shape, lora_ms, "full_step", full_ms, "time", extra);
    } else {
        json_decref(full_memory);
    }
    return status;
}

clora_status bench_tokens(clora_device *dev, size_t rows, size_t seq, size_t vocab, uint64_t seed,
                          clora_buffer **input, clora_buffer **target)
{
    const size_t shape[2] = {rows, seq};
    int32_t *ids = malloc(rows * seq * sizeof *ids);
    if (!ids)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    uint64_t rng = seed;
    for (size_t i = 0; i < rows * seq; ++i)
        ids[i] = (int32_t)(cli_uniform(&rng, 0.0f, 1.0f) * (float)(vocab - 1));
    clora_status status = clora_buffer_create_typed(input, dev, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(target, dev, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(*input, 0, ids, rows * seq);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(*target, 0, ids, rows * seq);
    free(ids);
    return status;
}

/* The demo's model: 64 -> H -> H -> 10 MLP, batch 64, rank 4 on every Linear. */
static void bench_demo(bench *b)
{
    const size_t rows = 64, hidden = 256;
    clora_model *model = NULL;
    clora_buffer *input = NULL, *target = NULL;
    uint64_t rng = 3;
    clora_status status = clora_model_create(&model, b->dev, 1);
    clora_node *root = status == CLORA_OK ? clora_model_root(model) : NULL;
    if (status == CLORA_OK)
        status = clora_node_add_linear(root, "fc1", 64, hidden, 1, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_activation(root, "act1", CLORA_NODE_GELU, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_linear(root, "fc2", hidden, hidden, 1, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_layer_norm(root, "norm", hidden, 1e-5f, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_activation(root, "act2", CLORA_NODE_GELU, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_linear(root, "head", hidden, 10, 1, NULL);
    if (status == CLORA_OK)
        status = bench_random_buffer(&input, b->dev, rows, 64, 1.0f, &rng, NULL);
    const size_t shape[1] = {rows};
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(&target, b->dev, CLORA_DTYPE_I32, 1, shape);
    int32_t labels[64];
    for (size_t i = 0; i < rows; ++i)
        labels[i] = (int32_t)(i % 10);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(target, 0, labels, rows);
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 4;
    lora.alpha = 8;
    if (status == CLORA_OK)
        status = time_steps(b, model, input, target, &lora, rows, "demo_step",
                            "MLP 64-256-256-10 B=64 r=4", b->o.quick ? 5 : 25);
    if (status != CLORA_OK)
        bench_fail(b, "the demo model's step", status);
    clora_buffer_destroy(input);
    clora_buffer_destroy(target);
    clora_model_destroy(model);
}

/* GPT-2 small's shapes (12 layers, 768 wide, 12 heads, 50257 tokens) at
 * random weights; LoRA rank 8 on c_attn (PEFT's default for GPT-2). */
static void bench_gpt2(bench *b)
{
    const size_t batch = 1, seq = b->o.quick ? 64 : 256;
    clora_gpt2_config cfg = clora_gpt2_config_default();
    if (b->o.quick)
        cfg.n_layer = 2;
    clora_model *model = NULL;
    clora_buffer *input = NULL, *target = NULL;
    clora_status status = clora_model_create_gpt2(&model, b->dev, &cfg, 1);
    if (status == CLORA_OK)
        status = bench_tokens(b->dev, batch, seq, cfg.vocab_size, 11, &input, &target);
    const char *targets[] = {"c_attn"};
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 8;
    lora.alpha = 16;
    lora.target_modules = targets;
    lora.target_module_count = 1;
    char text[96];
    snprintf(text, sizeof text, "GPT-2 %zux%zu B=%zu T=%zu r=8", cfg.n_layer, cfg.n_embd, batch,
             seq);
    if (status == CLORA_OK)
        status = time_steps(b, model, input, target, &lora, batch * seq, "gpt2_step", text,
                            b->o.quick ? 1 : 3);
    if (status != CLORA_OK)
        bench_fail(b, "the GPT-2-shaped model's step", status);
    clora_buffer_destroy(input);
    clora_buffer_destroy(target);
    clora_model_destroy(model);
}

/* ---- generation with a Llama-family model ------------------------------------------------ */

enum { LLAMA_PROMPT = 256 };

typedef struct llama_case {
    clora_model *model;
    clora_session *session;
    clora_buffer *input;  /* (1, T) for recomputation */
    const int32_t *ids;   /* LLAMA_PROMPT + room for the decode steps */
    float *logits;        /* (V) */
    size_t vocab;
} llama_case;

static clora_status run_prefill(void *p)
{
    llama_case *c = p;
    const size_t count = LLAMA_PROMPT;
    clora_session_reset(c->session);
    return clora_session_feed(c->session, c->ids, &count, count, c->logits);
}

/* One token more on a session that holds the prompt (and the tokens of the
 * runs before). */
static clora_status run_cached_step(void *p)
{
    llama_case *c = p;
    const size_t one = 1, at = clora_session_length(c->session, 0);
    return clora_session_feed(c->session, c->ids + at, &one, 1, c->logits);
}

/* The same token by a forward over the whole sequence (last position read). */
static clora_status run_recompute_step(void *p)
{
    llama_case *c = p;
    const clora_buffer *y = NULL;
    clora_status status = clora_model_forward(c->model, c->input, &y);
    if (status == CLORA_OK)
        status = clora_buffer_download(y, (LLAMA_PROMPT - 1) * c->vocab, c->logits, c->vocab);
    return status;
}

static void bench_llama(bench *b)
{
    llama_case c;
    memset(&c, 0, sizeof c);
    const size_t room = LLAMA_PROMPT + 2 * (b->o.reps + 2) + 8;
    int32_t *ids = malloc(room * sizeof *ids);
    clora_status status = ids ? clora_model_load(&c.model, b->dev, b->o.llama)
                              : CLORA_ERR_OUT_OF_HOST_MEMORY;
    if (status == CLORA_OK)
        status = clora_session_create(&c.session, c.model, 1, room);
    if (status == CLORA_OK) {
        c.vocab = clora_session_vocab_size(c.session);
        c.logits = malloc(c.vocab * sizeof *c.logits);
        uint64_t rng = 12;
        for (size_t i = 0; i < room; ++i)
            ids[i] = (int32_t)(cli_uniform(&rng, 0.0f, 1.0f) * (float)(c.vocab - 1));
        c.ids = ids;
        if (!c.logits)
            status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    }
    const size_t shape[2] = {1, LLAMA_PROMPT};
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(&c.input, b->dev, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(c.input, 0, ids, LLAMA_PROMPT);
    double prefill = 0.0, steps[2] = {0.0, 0.0};
    if (status == CLORA_OK) {
        bench_fn fns[1] = {run_prefill};
        void *ctx[1] = {&c};
        status = bench_measure(b, 1, fns, ctx, b->o.quick ? 1 : 3, &prefill);
    }
    const char *slash = strrchr(b->o.llama, '/');
    const char *model_name = slash && slash[1] ? slash + 1 : b->o.llama;
    char text[160];
    snprintf(text, sizeof text, "%.40s T=%d", model_name, LLAMA_PROMPT);
    if (status == CLORA_OK) {
        json_t *extra = json_pack("{s:f}", "tokens_per_s", LLAMA_PROMPT / (prefill * 1e-3));
        bench_report(b, "llama_prefill", text, prefill, "", -1.0, "time", extra);
    }
    /* the session holds the prompt when the decode steps start */
    if (status == CLORA_OK)
        status = run_prefill(&c);
    if (status == CLORA_OK) {
        bench_fn fns[2] = {run_cached_step, run_recompute_step};
        void *ctx[2] = {&c, &c};
        status = bench_measure(b, 2, fns, ctx, b->o.reps, steps);
    }
    if (status == CLORA_OK) {
        json_t *extra = json_pack("{s:f, s:f}", "tokens_per_s", 1e3 / steps[0],
                                  "recompute_tokens_per_s", 1e3 / steps[1]);
        bench_report(b, "llama_decode", text, steps[0], "recompute", steps[1], "speed", extra);
    }
    if (status != CLORA_OK)
        bench_fail(b, "the Llama generation measurements", status);
    free(ids);
    free(c.logits);
    clora_buffer_destroy(c.input);
    clora_session_destroy(c.session);
    clora_model_destroy(c.model);
}

/* ---- the command -------------------------------------------------------------------- */

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse_options(int argc, char **argv, bench_options *o)
{
    const cli_option options[] = {
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL",
                 "device index or name part (default: CLORA_DEVICE, else first GPU)")},
        {CLI_OPT("--quick", CLI_FLAG, &o->quick, NULL,
                 "one small shape of each kind, few repetitions (a smoke run)")},
        {CLI_OPT("--json", CLI_FLAG, &o->json, NULL,
                 "one JSON object per line instead of the table")},
        {CLI_OPT("--reps", CLI_SIZE, &o->reps, "K",
                 "timed repetitions per case (default 7, --quick 3)")},
        {CLI_OPT("--only", CLI_STRING, &o->only, "NAME",
                 "run only measurements whose name starts with NAME")},
        {CLI_OPT("--llama", CLI_STRING, &o->llama, "PATH",
                 "also measure generation with this Llama-family folder or GGUF file")},
        CLI_END};
    const cli_spec spec = {.command = "bench",
                           .usage = "usage: clora bench [options]",
                           .description = bench_description,
                           .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed == CLI_RUN && o->reps == 0)
        o->reps = o->quick ? 3 : 7;
    return parsed;
}

/* (N, in, out) and the ranks measured on each. */
typedef struct layer_shape {
    size_t n, in, out;
    size_t ranks[3], rank_count;
} layer_shape;
static const layer_shape full_shapes[] = {
    {512, 768, 768, {8, 16, 64}, 3},    {512, 768, 3072, {16}, 1},
    {512, 3072, 768, {16}, 1},          {2048, 768, 768, {16}, 1},
    {512, 3072, 3072, {8, 16}, 2},      {512, 4096, 4096, {16}, 1},
    {2048, 768, 3072, {16}, 1},
};
static const layer_shape quick_shapes[] = {{512, 768, 768, {8}, 1}};
enum { FULL_SHAPES = sizeof full_shapes / sizeof full_shapes[0] };

int cmd_bench(int argc, char **argv)
{
    bench b = {{0}, NULL, {0}, 0};
    int parsed = parse_options(argc, argv, &b.o);
    if (parsed != CLI_RUN)
        return parsed;
    const layer_shape *shapes = b.o.quick ? quick_shapes : full_shapes;
    const size_t count = b.o.quick ? 1 : FULL_SHAPES;
    double untuned[FULL_SHAPES] = {0};

    /* CLBlast cannot go back to its own parameters once it has others, so
     * gemm_untuned runs first, on a device opened with CLORA_TUNING=off,
     * which then takes its tuned parameters (if it has any). */
    const char *env = getenv("CLORA_TUNING");
    const int user_off = env && !strcmp(env, "off");
    clora_status status;
    if (!b.o.quick && !user_off && bench_wanted(&b, "gemm_untuned")) {
        setenv("CLORA_TUNING", "off", 1);
        status = clora_device_open(&b.dev, b.o.device);
        unsetenv("CLORA_TUNING");
        if (env)
            setenv("CLORA_TUNING", env, 1);
    } else {
        status = clora_device_open(&b.dev, b.o.device);
    }
    if (status != CLORA_OK) {
        cli_report("bench", "opening the device", status);
        return 1;
    }
    clora_device_get_info(b.dev, &b.info);
    if (!b.o.quick && !user_off && bench_wanted(&b, "gemm_untuned")) {
        if (!b.o.json)
            printf("clora bench on %s: gemm with CLBlast's own parameters first ...\n",
                   b.info.name);
        for (size_t i = 0; i < count && !b.failed; ++i) {
            layer l;
            bench_fn fns[1] = {run_gemm};
            void *ctx[1] = {&l};
            status = layer_create(&l, b.dev, shapes[i].n, shapes[i].in, shapes[i].out, 1);
            if (status == CLORA_OK)
                status = bench_measure(&b, 1, fns, ctx, b.o.reps, &untuned[i]);
            if (status != CLORA_OK)
                bench_fail(&b, "timing gemm_untuned", status);
            layer_free(&l);
        }
        if ((status = clora_device_set_tuning(b.dev, NULL)) != CLORA_OK)
            bench_fail(&b, "putting the device's tuned parameters in force", status);
        clora_device_get_info(b.dev, &b.info);
        if (strncmp(b.info.tuning, "CLBlast's own", 13) == 0)
            memset(untuned, 0, sizeof untuned); /* nothing tuned to compare with */
    }
    if (!b.o.json) {
        printf("clora bench on %s (%s, %s)\n", b.info.name, b.info.platform_name,
               b.info.driver_version);
        printf("CLBlast parameters: %s\n", b.info.tuning);
        printf("OpenBLAS: %s\n\n", openblas_sgemm() ? "found" : "not found (skipping)");
    }
    for (size_t i = 0; i < count && !b.failed; ++i)
        bench_layer(&b, shapes[i].n, shapes[i].in, shapes[i].out, shapes[i].ranks,
                    shapes[i].rank_count, untuned[i] > 0 ? untuned[i] : -1.0);
    if (!b.failed && bench_wanted(&b, "demo_step"))
        bench_demo(&b);
    if (!b.failed && bench_wanted(&b, "gpt2_step"))
        bench_gpt2(&b);
    if (!b.failed && b.o.llama && bench_group_wanted(&b, "llama_"))
        bench_llama(&b);
    if (!b.failed && packed_products_wanted(&b))
        bench_packed_products(&b);
    if (!b.failed && b.o.llama && llama_packed_wanted(&b, 0, 3))
        bench_packed_llama(&b);
    if (!b.failed && b.o.llama && llama_packed_wanted(&b, 3, 1))
        bench_hgemm_error(&b);
    if (!b.failed && bench_wanted(&b, "checkpointing_step"))
        bench_checkpointing(&b);
    if (!b.failed)
        bench_peft_variants(&b);
    clora_device_destroy(b.dev);
    if (!b.failed && b.o.only && reported == 0) {
        fprintf(stderr, "clora bench: --only %s ran no measurement (see --help for the names%s)\n",
                b.o.only, b.o.llama ? "" : "; a model's llama_* and packed_* ones need --llama");
        return 1;
    }
    return b.failed ? 1 : 0;
}
