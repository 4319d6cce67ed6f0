/* bench_packed.c — `clora bench` on packed base weights: y = x·Wᵀ with W
 * stored in each packed type, fused and dequantized + GEMM, against the
 * same product on float32 W; and with --llama, a model's LoRA training
 * step, prefill and decode with its base stored as F32, F16, Q8_0, the
 * file's own types and Q4_1, side by side. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

/* ---- the products ------------------------------------------------------------------- */

typedef struct product {
    clora_device *dev;
    clora_buffer *x, *w, *y;
    size_t fused_rows; /* what the device's fused kernel takes while this case runs */
} product;

static clora_status run_product(void *p)
{
    product *c = p;
    clora_status status = clora_device_set_packed_fused_rows(c->dev, c->fused_rows);
    return status == CLORA_OK ? clora_linear_forward(c->y, c->x, c->w, NULL, CLORA_WEIGHT_OUT_IN)
                              : status;
}

/* (out, in) weights of `dtype`: random floats quantized by the reference
 * quantizer, or for the K-quants (read from GGUF files only) random bytes
 * with small f16 scales. */
static clora_status packed_weight(clora_device *dev, clora_dtype dtype, size_t out, size_t in,
                                  const float *values, uint64_t *rng, clora_buffer **w)
{
    const size_t bytes = out * clora_dtype_bytes(dtype, in);
    unsigned char *raw = malloc(bytes);
    if (!raw)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    clora_status status = CLORA_OK;
    if (clora_dtype_can_quantize(dtype)) {
        status = clora_reference_quantize(dtype, values, out * in, raw);
    } else {
        const size_t block = clora_dtype_block_bytes(dtype);
        for (size_t i = 0; i < bytes; ++i)
            raw[i] = (unsigned char)(cli_uniform(rng, 0.0f, 256.0f));
        for (size_t b = 0; b < bytes / block; ++b) { /* d (and dmin) = 2^-7 */
            unsigned char *p = raw + b * block + (dtype == CLORA_DTYPE_Q6_K ? 208 : 0);
            p[0] = 0x00, p[1] = 0x20;
            if (dtype != CLORA_DTYPE_Q6_K)
                p[2] = 0x00, p[3] = 0x20;
        }
    }
    if (status == CLORA_OK)
        status = clora_buffer_create_packed(w, dev, dtype, out, in);
    if (status == CLORA_OK)
        status = clora_buffer_upload_bytes(*w, 0, raw, bytes);
    free(raw);
    return status;
}

static clora_status random_floats(clora_device *dev, size_t rows, size_t cols, uint64_t *rng,
                                  float *host, clora_buffer **out)
{
    for (size_t i = 0; i < rows * cols; ++i)
        host[i] = cli_uniform(rng, -1.0f, 1.0f);
    clora_status status = clora_buffer_create_2d(out, dev, rows, cols);
    return status == CLORA_OK ? clora_buffer_upload(*out, 0, host, rows * cols) : status;
}

void bench_packed_products(bench *b)
{
    static const clora_dtype all_types[] = {CLORA_DTYPE_F16,  CLORA_DTYPE_BF16, CLORA_DTYPE_Q8_0,
                                            CLORA_DTYPE_Q4_0, CLORA_DTYPE_Q4_1, CLORA_DTYPE_Q4_K,
                                            CLORA_DTYPE_Q5_K, CLORA_DTYPE_Q6_K};
    static const clora_dtype quick_types[] = {CLORA_DTYPE_Q8_0, CLORA_DTYPE_Q4_1};
    /* (out, in): a projection, an MLP's up projection, a vocabulary head */
    static const size_t full_shapes[][2] = {{768, 768}, {3072, 768}, {32768, 768}};
    static const size_t quick_shapes[][2] = {{3072, 768}};
    static const size_t full_rows[] = {1, 4, 64}, quick_rows[] = {1, 64};
    const clora_dtype *types = b->o.quick ? quick_types : all_types;
    const size_t type_count = b->o.quick ? 2 : sizeof all_types / sizeof all_types[0];
    const size_t(*shapes)[2] = b->o.quick ? quick_shapes : full_shapes;
    const size_t shape_count = b->o.quick ? 1 : 3;
    const size_t *rows = b->o.quick ? quick_rows : full_rows;
    const size_t row_count = b->o.quick ? 2 : 3;
    const size_t default_fused = clora_device_packed_fused_rows(b->dev);
    uint64_t rng = 21;
    for (size_t s = 0; s < shape_count && !b->failed; ++s) {
        const size_t out = shapes[s][0], in = shapes[s][1];
        float *values = malloc(out * in * sizeof *values), *xs = malloc(64 * in * sizeof *xs);
        clora_buffer *dense = NULL;
        clora_status status = values && xs ? random_floats(b->dev, out, in, &rng, values, &dense)
                                           : CLORA_ERR_OUT_OF_HOST_MEMORY;
        for (size_t t = 0; t < type_count && status == CLORA_OK; ++t) {
            clora_buffer *w = NULL;
            status = packed_weight(b->dev, types[t], out, in, values, &rng, &w);
            for (size_t r = 0; r < row_count && status == CLORA_OK; ++r) {
                const size_t n = rows[r];
                clora_buffer *x = NULL, *y = NULL;
                status = random_floats(b->dev, n, in, &rng, xs, &x);
                if (status == CLORA_OK)
                    status = clora_buffer_create_2d(&y, b->dev, n, out);
                product f32 = {b->dev, x, dense, y, default_fused},
                        fused = {b->dev, x, w, y, 4}, gemm = {b->dev, x, w, y, 0};
                bench_fn fns[3] = {run_product, run_product, run_product};
                void *ctx[3] = {&f32, &gemm, &fused};
                double ms[3] = {0, 0, 0};
                const size_t count = n <= 4 ? 3 : 2; /* the fused kernel takes up to 4 rows */
                if (status == CLORA_OK)
                    status = bench_measure(b, count, fns, ctx, b->o.reps, ms);
                clora_device_set_packed_fused_rows(b->dev, default_fused);
                if (status == CLORA_OK) {
                    char name[32], shape[64];
                    snprintf(name, sizeof name, "packed_%s", clora_dtype_name(types[t]));
                    snprintf(shape, sizeof shape, "N=%zu %zu->%zu", n, in, out);
                    const double chosen = n <= default_fused ? ms[2] : ms[1];
                    json_t *extra = json_pack("{s:f, s:f}", "dequant_gemm_ms", ms[1],
                                              "weight_bytes_ratio",
                                              (double)clora_buffer_bytes(w) /
                                                  (double)clora_buffer_bytes(dense));
                    if (count == 3) {
                        json_object_set_new(extra, "fused_ms", json_real(ms[2]));
                        json_object_set_new(extra, "fused_over_gemm", json_real(ms[2] / ms[1]));
                    }
                    bench_report(b, name, shape, chosen, "f32_weight", ms[0], "time", extra);
                }
                clora_buffer_destroy(x);
                clora_buffer_destroy(y);
            }
            clora_buffer_destroy(w);
        }
        if (status != CLORA_OK)
            bench_fail(b, "the packed products", status);
        clora_buffer_destroy(dense);
        free(values);
        free(xs);
    }
}

/* ---- a model with its base in each type ------------------------------------------------- */

enum { PROMPT = 256, BATCH = 4, SEQ = 64 };

typedef struct base_case {
    const char *label;
    clora_dtype dtype;
    clora_model *model;
    clora_trainer *trainer;
    clora_session *session;
    clora_buffer *input; /* (BATCH, SEQ): ids, also the targets */
    const int32_t *ids;  /* PROMPT + room for the decode steps */
    float *logits;
    uint64_t frozen; /* frozen-weight bytes this base takes */
} base_case;

static clora_status run_step(void *p)
{
    base_case *c = p;
    clora_status status = clora_model_set_training(c->model, 1);
    return status == CLORA_OK ? clora_trainer_step(c->trainer, c->input, c->input, NULL) : status;
}

static clora_status run_prefill(void *p)
{
    base_case *c = p;
    const size_t count = PROMPT;
    clora_status status = clora_model_set_training(c->model, 0);
    if (status != CLORA_OK)
        return status;
    clora_session_reset(c->session);
    return clora_session_feed(c->session, c->ids, &count, count, c->logits);
}

static clora_status run_decode(void *p)
{
    base_case *c = p;
    const size_t one = 1, at = clora_session_length(c->session, 0);
    clora_status status = clora_model_set_training(c->model, 0);
    if (status != CLORA_OK)
        return status;
    return clora_session_feed(c->session, c->ids + at, &one, 1, c->logits);
}

static uint64_t frozen_now(clora_device *dev)
{
    clora_memory_report report;
    return clora_device_memory(dev, &report) == CLORA_OK ? report.bytes[CLORA_MEMORY_FROZEN] : 0;
}

/* Loads the base as c->dtype, with LoRA r = 8 on q_proj and v_proj (PEFT's
 * Llama default), a trainer and a session. */
static clora_status base_open(bench *b, base_case *c, const int32_t *ids, size_t room)
{
    clora_load_options o = clora_load_options_default();
    o.base_dtype = c->dtype;
    const uint64_t before = frozen_now(b->dev);
    clora_status status = clora_model_load_with(&c->model, b->dev, b->o.llama, &o);
    const char *targets[] = {"q_proj", "v_proj"};
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 8;
    lora.alpha = 16;
    lora.target_modules = targets;
    lora.target_module_count = 2;
    if (status == CLORA_OK)
        status = clora_replace_linear_with_lora(clora_model_root(c->model), &lora, NULL);
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 1e-4f;
    if (status == CLORA_OK)
        status = clora_model_set_training(c->model, 1);
    if (status == CLORA_OK)
        status = clora_trainer_create(&c->trainer, c->model, &cfg);
    /* with LoRA in place the base is frozen: its bytes are this base's */
    c->frozen = frozen_now(b->dev) - before;
    const size_t shape[2] = {BATCH, SEQ};
    if (status == CLORA_OK)
        status = clora_buffer_create_typed(&c->input, b->dev, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(c->input, 0, ids, BATCH * SEQ);
    if (status == CLORA_OK)
        status = clora_session_create(&c->session, c->model, 1, room);
    if (status == CLORA_OK) {
        c->logits = malloc(clora_session_vocab_size(c->session) * sizeof *c->logits);
        if (!c->logits)
            status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    }
    c->ids = ids;
    return status;
}

static void base_close(base_case *c)
{
    free(c->logits);
    clora_buffer_destroy(c->input);
    clora_session_destroy(c->session);
    clora_trainer_destroy(c->trainer);
    clora_model_destroy(c->model);
}

void bench_packed_llama(bench *b)
{
    base_case cases[] = {
        {.label = "f32", .dtype = CLORA_DTYPE_F32},
        {.label = "f16", .dtype = CLORA_DTYPE_F16},
        {.label = "q8_0", .dtype = CLORA_DTYPE_Q8_0},
        {.label = "stored", .dtype = CLORA_DTYPE_AS_STORED},
        {.label = "q4_1", .dtype = CLORA_DTYPE_Q4_1},
    };
    enum { CASES = sizeof cases / sizeof cases[0] };
    const size_t room = PROMPT + 2 * (b->o.reps + 2) + 8;
    /* zeros (below any vocabulary) until the first model gives its size */
    int32_t *ids = calloc(room > BATCH * SEQ ? room : BATCH * SEQ, sizeof *ids);
    clora_status status = ids ? CLORA_OK : CLORA_ERR_OUT_OF_HOST_MEMORY;
    uint64_t rng = 31;
    size_t opened = 0;
    for (; opened < CASES && status == CLORA_OK; ++opened) {
        status = base_open(b, &cases[opened], ids, room);
        if (status == CLORA_OK && opened == 0) {
            const size_t vocab = clora_session_vocab_size(cases[0].session);
            for (size_t i = 0; i < room || i < BATCH * SEQ; ++i)
                ids[i] = (int32_t)(cli_uniform(&rng, 0.0f, 1.0f) * (float)(vocab - 1));
            status = clora_buffer_upload_i32(cases[0].input, 0, ids, BATCH * SEQ);
        }
    }
    const char *slash = strrchr(b->o.llama, '/');
    const char *model_name = slash && slash[1] ? slash + 1 : b->o.llama;
    bench_fn fns[CASES];
    void *ctx[CASES];
    double ms[CASES];
    static const struct {
        const char *name;
        bench_fn fn;
        size_t tokens;
    } kinds[] = {{"packed_train_step", run_step, BATCH * SEQ},
                 {"packed_prefill", run_prefill, PROMPT},
                 {"packed_decode", run_decode, 1}};
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0] && status == CLORA_OK; ++k) {
        for (size_t c = 0; c < CASES; ++c) {
            fns[c] = kinds[k].fn;
            ctx[c] = &cases[c];
        }
        if (kinds[k].fn == run_decode) /* the sessions hold the prompt first */
            for (size_t c = 0; c < CASES && status == CLORA_OK; ++c)
                status = run_prefill(&cases[c]);
        const size_t reps = kinds[k].fn == run_decode ? b->o.reps : b->o.quick ? 1 : 3;
        if (status == CLORA_OK)
            status = bench_measure(b, CASES, fns, ctx, reps, ms);
        for (size_t c = 0; c < CASES && status == CLORA_OK; ++c) {
            char shape[128];
            snprintf(shape, sizeof shape, "%.28s base %s", model_name, cases[c].label);
            json_t *extra = json_pack("{s:f, s:I}", "tokens_per_s",
                                      (double)kinds[k].tokens / (ms[c] * 1e-3), "frozen_bytes",
                                      (json_int_t)cases[c].frozen);
            json_object_set_new(extra, "frozen_vs_f32",
                                json_real((double)cases[c].frozen / (double)cases[0].frozen));
            bench_report(b, kinds[k].name, shape, ms[c], c ? "f32" : "", c ? ms[0] : -1.0,
                         kinds[k].fn == run_decode ? "speed" : "time", extra);
        }
    }
    if (status != CLORA_OK)
        bench_fail(b, "the packed-base measurements", status);
    for (size_t c = 0; c < opened; ++c)
        base_close(&cases[c]);
    free(ids);
}

/* ---- half-precision accumulation, as CLBlast's HGEMM does it --------------------------- */

static float to_half(float v)
{
    unsigned char h[2];
    float back = v;
    if (clora_reference_quantize(CLORA_DTYPE_F16, &v, 1, h) == CLORA_OK)
        clora_reference_dequantize(CLORA_DTYPE_F16, h, 1, &back);
    return back;
}

/* The error of y = x·Wᵀ on real F16 layers of the model, against double
 * precision: float32 accumulation (what clora does with F16 weights: the
 * dequantized values through SGEMM) and half-precision accumulation with x
 * in half (what CLBlast's HGEMM does on devices with cl_khr_fp16),
 * emulated on the host by rounding every product and sum to half. */
void bench_hgemm_error(bench *b)
{
    clora_load_options o = clora_load_options_default();
    o.base_dtype = CLORA_DTYPE_F16;
    clora_model *model = NULL;
    clora_status status = clora_model_load_with(&model, b->dev, b->o.llama, &o);
    static const char *const layers[] = {"model.layers.0.self_attn.q_proj.weight",
                                         "model.layers.0.mlp.down_proj.weight",
                                         "model.layers.15.mlp.up_proj.weight"};
    enum { ROWS = 8 };
    uint64_t rng = 41;
    for (size_t l = 0; l < sizeof layers / sizeof layers[0] && status == CLORA_OK; ++l) {
        clora_param_info info;
        if ((status = clora_model_find_param(model, layers[l], &info)) != CLORA_OK)
            break;
        if (clora_buffer_dtype(info.value) != CLORA_DTYPE_F16)
            continue;
        const size_t out = clora_buffer_dim(info.value, 0), in = clora_buffer_dim(info.value, 1);
        const size_t bytes = clora_buffer_bytes(info.value);
        unsigned char *raw = malloc(bytes);
        float *w = malloc(out * in * sizeof *w), *x = malloc(ROWS * in * sizeof *x);
        if (!raw || !w || !x)
            status = CLORA_ERR_OUT_OF_HOST_MEMORY;
        if (status == CLORA_OK)
            status = clora_buffer_download_bytes(info.value, 0, raw, bytes);
        if (status == CLORA_OK)
            status = clora_reference_dequantize(CLORA_DTYPE_F16, raw, out * in, w);
        /* inputs as RMS-normalised activations are: about unit scale */
        for (size_t i = 0; status == CLORA_OK && i < ROWS * in; ++i)
            x[i] = cli_uniform(&rng, -1.7320508f, 1.7320508f);
        double worst32 = 0, worst16 = 0, sum32 = 0, sum16 = 0, norm = 0;
        for (size_t r = 0; status == CLORA_OK && r < ROWS; ++r)
            for (size_t j = 0; j < out; ++j) {
                double exact = 0;
                float acc32 = 0, acc16 = 0;
                for (size_t k = 0; k < in; ++k) {
                    const float xv = x[r * in + k], wv = w[j * in + k];
                    exact += (double)xv * (double)wv;
                    acc32 += xv * wv;
                    acc16 = to_half(acc16 + to_half(to_half(xv) * wv));
                }
                norm += exact * exact;
                const double e32 = fabs(acc32 - exact), e16 = fabs(acc16 - exact);
                worst32 = e32 > worst32 ? e32 : worst32;
                worst16 = e16 > worst16 ? e16 : worst16;
                sum32 += e32 * e32;
                sum16 += e16 * e16;
            }
        free(raw);
        free(w);
        free(x);
        if (status != CLORA_OK)
            break;
        const double rms = sqrt(norm / (double)(ROWS * out));
        char shape[96];
        snprintf(shape, sizeof shape, "%.40s", layers[l] + strlen("model."));
        /* in parts per million of the outputs' RMS */
        json_t *extra = json_pack(
            "{s:f, s:f, s:f, s:f}", "f32_rms_ppm", 1e6 * sqrt(sum32 / (double)(ROWS * out)) / rms,
            "f32_max_ppm", 1e6 * worst32 / rms, "half_rms_ppm",
            1e6 * sqrt(sum16 / (double)(ROWS * out)) / rms, "half_max_ppm", 1e6 * worst16 / rms);
        bench_report(b, "packed_hgemm_error", shape, 0.0, "", -1.0, "time", extra);
    }
    if (status != CLORA_OK)
        bench_fail(b, "the half-precision error", status);
    clora_model_destroy(model);
}
