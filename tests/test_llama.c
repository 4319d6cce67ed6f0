/* test_llama.c — Llama-family models: the new kernels (RMSNorm, rotary
 * embeddings, SwiGLU, grouped heads) against plain-C references at odd
 * sizes; Hugging Face checkpoints (F32, BF16 in shards) and PEFT adapters
 * against PyTorch (tests/golden/make_llama_golden.py); finite differences
 * through every part with dropout on; rotary positions; model folders; and
 * the configs and checkpoints clora refuses.
 *
 * The kernel checks call ops directly and the finite-difference checks pin
 * the forward counter, so the test reaches into nn/nn.h. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_checks.h"
#include "nn/nn.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static golden_file reference;

static int setup(void **state)
{
    golden_load(GOLDEN "/llama_reference.txt", &reference);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&reference);
    return test_close_device(state);
}

static clora_buffer *int_buffer(size_t ndim, const size_t *shape, const int32_t *values)
{
    clora_buffer *buf = NULL;
    size_t n = 1;
    for (size_t d = 0; d < ndim; ++d)
        n *= shape[d];
    CHECK_OK(clora_buffer_create_typed(&buf, test_device, CLORA_DTYPE_I32, ndim, shape));
    CHECK_OK(clora_buffer_upload_i32(buf, 0, values, n));
    return buf;
}

static void expect_buffer(const char *what, const clora_buffer *y, const float *want, double atol,
                          double rtol)
{
    float *got = test_download(y);
    test_assert_close(what, got, want, y->numel, atol, rtol);
    free(got);
}

/* ---- the kernels against plain C ---------------------------------------------------------- */

static void rms_norm_matches_reference(void **state)
{
    (void)state;
    enum { N = 13, C = 37 };
    uint64_t rng = 3;
    float x[N * C], w[C], dy[N * C], y[N * C], dx[N * C], dw[C];
    test_fill_uniform(x, N * C, &rng, -2.0f, 2.0f);
    test_fill_uniform(w, C, &rng, 0.5f, 1.5f);
    test_fill_uniform(dy, N * C, &rng, -1.0f, 1.0f);
    const double eps = 1e-5;
    memset(dw, 0, sizeof dw);
    for (size_t n = 0; n < N; ++n) {
        double ss = 0.0, gx = 0.0;
        for (size_t c = 0; c < C; ++c)
            ss += (double)x[n * C + c] * x[n * C + c];
        const double r = 1.0 / sqrt(ss / C + eps);
        for (size_t c = 0; c < C; ++c) {
            y[n * C + c] = (float)(w[c] * x[n * C + c] * r);
            gx += (double)dy[n * C + c] * w[c] * x[n * C + c];
            dw[c] += (float)(dy[n * C + c] * x[n * C + c] * r);
        }
        for (size_t c = 0; c < C; ++c)
            dx[n * C + c] =
                (float)(r * dy[n * C + c] * w[c] - x[n * C + c] * r * r * r * gx / C);
    }
    const size_t rows = N;
    clora_buffer *bx = test_buffer_2d(N, C, x), *bw = test_buffer_1d(C, w);
    clora_buffer *bdy = test_buffer_2d(N, C, dy), *by = test_buffer_2d(N, C, NULL);
    clora_buffer *bdx = test_buffer_2d(N, C, NULL), *bdw = test_buffer_1d(C, NULL);
    clora_buffer *rstd = NULL;
    float zero[C];
    memset(zero, 0, sizeof zero);
    CHECK_OK(clora_buffer_upload(bdw, 0, zero, C));
    CHECK_OK(clora_buffer_create(&rstd, test_device, 1, &rows));
    CHECK_OK(clora__rms_norm_forward(by, rstd, bx, bw, (float)eps));
    expect_buffer("rms_norm forward", by, y, 1e-5, 1e-5);
    CHECK_OK(clora__rms_norm_backward(bdx, bdw, bdy, bx, bw, rstd));
    expect_buffer("rms_norm dx", bdx, dx, 1e-5, 1e-4);
    expect_buffer("rms_norm dweight", bdw, dw, 1e-5, 1e-4);
    clora_buffer *all[] = {bx, bw, bdy, by, bdx, bdw, rstd};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
}

static void swiglu_matches_reference(void **state)
{
    (void)state;
    enum { N = 3 * 37 };
    uint64_t rng = 4;
    float g[N], u[N], dh[N], h[N], dg[N], du[N];
    test_fill_uniform(g, N, &rng, -6.0f, 6.0f);
    test_fill_uniform(u, N, &rng, -2.0f, 2.0f);
    test_fill_uniform(dh, N, &rng, -1.0f, 1.0f);
    for (size_t i = 0; i < N; ++i) {
        const double s = 1.0 / (1.0 + exp(-(double)g[i]));
        h[i] = (float)(g[i] * s * u[i]);
        dg[i] = (float)(dh[i] * u[i] * (s + g[i] * s * (1.0 - s)));
        du[i] = (float)(dh[i] * g[i] * s);
    }
    clora_buffer *bg = test_buffer_1d(N, g), *bu = test_buffer_1d(N, u);
    clora_buffer *bdh = test_buffer_1d(N, dh);
    clora_buffer *bh = test_buffer_1d(N, NULL), *bdg = test_buffer_1d(N, NULL);
    clora_buffer *bdu = test_buffer_1d(N, NULL);
    CHECK_OK(clora__swiglu_forward(bh, bg, bu));
    expect_buffer("swiglu forward", bh, h, 1e-6, 1e-5);
    CHECK_OK(clora__swiglu_backward(bdg, bdu, bdh, bg, bu));
    expect_buffer("swiglu dg", bdg, dg, 1e-6, 1e-5);
    expect_buffer("swiglu du", bdu, du, 1e-6, 1e-5);
    clora_buffer *all[] = {bg, bu, bdh, bh, bdg, bdu};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
}

/* Rotation and its inverse at head size 10 (pairs i, i + 5), positions
 * that differ per row, and the llama3 rescaling of the frequencies. */
static void rope_matches_reference(void **state)
{
    (void)state;
    enum { B = 2, H = 3, T = 5, D = 10 };
    uint64_t rng = 5;
    float x[B * H * T * D], want[B * H * T * D], freq[D / 2];
    test_fill_uniform(x, B * H * T * D, &rng, -1.0f, 1.0f);
    const int32_t positions[B * T] = {0, 1, 2, 3, 4, 7, 8, 9, 30, 31};
    clora__rope_config rope;
    memset(&rope, 0, sizeof rope);
    rope.theta = 500.0f;
    rope.scaling = CLORA__ROPE_LLAMA3;
    rope.factor = 8.0;
    rope.low_freq_factor = 1.0;
    rope.high_freq_factor = 4.0;
    rope.original_max_positions = 8;
    clora__rope_frequencies(freq, D, &rope);
    /* theta^(-2i/D) = 1, 0.288, 0.083, 0.024, 0.0069: wavelengths 6.3 (between
     * 8/4 and 8/1: interpolated), then above 8 (divided by 8) */
    const double smooth = (8.0 / (2.0 * 3.14159265358979323846) - 1.0) / 3.0;
    assert_true(fabs(freq[0] - ((1.0 - smooth) / 8.0 + smooth)) < 1e-6);
    assert_true(fabs(freq[1] - pow(500.0, -0.2) / 8.0) < 1e-7);
    for (size_t b = 0; b < B; ++b)
        for (size_t h = 0; h < H; ++h)
            for (size_t t = 0; t < T; ++t) {
                const float *row = x + ((b * H + h) * T + t) * D;
                float *out = want + ((b * H + h) * T + t) * D;
                for (size_t i = 0; i < D / 2; ++i) {
                    const double a = (double)((float)positions[b * T + t] * freq[i]);
                    out[i] = (float)(row[i] * cos(a) - row[i + D / 2] * sin(a));
                    out[i + D / 2] = (float)(row[i + D / 2] * cos(a) + row[i] * sin(a));
                }
            }
    const size_t shape[4] = {B, H, T, D}, pshape[2] = {B, T}, half = D / 2;
    clora_buffer *bx = test_buffer(4, shape, x), *bf = test_buffer(1, &half, freq);
    clora_buffer *bp = int_buffer(2, pshape, positions);
    CHECK_OK(clora__rope(bx, bp, bf, 0));
    expect_buffer("rope forward", bx, want, 1e-5, 1e-5);
    CHECK_OK(clora__rope(bx, bp, bf, 1));
    expect_buffer("rope inverse", bx, x, 1e-5, 1e-5);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(bf);
    clora_buffer_destroy(bp);
}

/* Grouped split (query head h reads key/value head h / group) and its
 * gradient, the sum over each group, at head size 10 (an eight-wide step
 * and a tail) inside wider rows. */
/* Grouped-query attention (6 query heads over 2 key/value heads, causal,
 * two keys of the second row masked): the core's merged output and its
 * gradients against plain C, the key/value gradients summed over each
 * group's heads. */
static void grouped_attention_matches_reference(void **state)
{
    (void)state;
    enum { B = 2, T = 5, H = 6, G = 2, D = 4, R = H / G };
    uint64_t rng = 6;
    float q[B * H * T * D], k[B * G * T * D], v[B * G * T * D], dm[B * T * H * D];
    test_fill_uniform(q, B * H * T * D, &rng, -1.0f, 1.0f);
    test_fill_uniform(k, B * G * T * D, &rng, -1.0f, 1.0f);
    test_fill_uniform(v, B * G * T * D, &rng, -1.0f, 1.0f);
    test_fill_uniform(dm, B * T * H * D, &rng, -1.0f, 1.0f);
    static const int32_t mask[B * T] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0};
    const double scale = 1.0 / sqrt((double)D);
    float merged[B * T * H * D], dq[B * H * T * D];
    float dk[B * G * T * D] = {0}, dv[B * G * T * D] = {0};
    for (size_t b = 0; b < B; ++b)
        for (size_t h = 0; h < H; ++h) {
            const size_t g = h / R;
            const float *qh = q + (b * H + h) * T * D, *kg = k + (b * G + g) * T * D;
            const float *vg = v + (b * G + g) * T * D;
            double p[T][T], dp[T][T];
            for (size_t i = 0; i < T; ++i) {
                double top = -INFINITY, sum = 0.0;
                for (size_t j = 0; j < T; ++j) {
                    double sij = 0.0;
                    for (size_t d = 0; d < D; ++d)
                        sij += (double)qh[i * D + d] * kg[j * D + d];
                    p[i][j] = j > i || !mask[b * T + j] ? -INFINITY : sij * scale;
                    top = p[i][j] > top ? p[i][j] : top;
                }
                for (size_t j = 0; j < T; ++j)
                    sum += (p[i][j] = exp(p[i][j] - top));
                for (size_t j = 0; j < T; ++j)
                    p[i][j] /= sum;
                for (size_t d = 0; d < D; ++d) {
                    double c = 0.0;
                    for (size_t j = 0; j < T; ++j)
                        c += p[i][j] * vg[j * D + d];
                    merged[(b * T + i) * H * D + h * D + d] = (float)c;
                }
            }
            /* backward from dm's columns of head h */
            for (size_t i = 0; i < T; ++i) {
                const float *dc = dm + (b * T + i) * H * D + h * D;
                double row = 0.0;
                for (size_t j = 0; j < T; ++j) {
                    dp[i][j] = 0.0;
                    for (size_t d = 0; d < D; ++d) {
                        dp[i][j] += (double)dc[d] * vg[j * D + d];
                        dv[(b * G + g) * T * D + j * D + d] += (float)(p[i][j] * dc[d]);
                    }
                    row += p[i][j] * dp[i][j];
                }
                for (size_t j = 0; j < T; ++j)
                    dp[i][j] = p[i][j] * (dp[i][j] - row) * scale; /* dS, scaled */
            }
            for (size_t i = 0; i < T; ++i)
                for (size_t d = 0; d < D; ++d) {
                    double a = 0.0;
                    for (size_t j = 0; j < T; ++j) {
                        a += dp[i][j] * kg[j * D + d];
                        dk[(b * G + g) * T * D + j * D + d] += (float)(dp[i][j] * qh[i * D + d]);
                    }
                    dq[(b * H + h) * T * D + i * D + d] = (float)a;
                }
        }
    clora__attention att = {0};
    CHECK_OK(clora__attention_prepare(&att, test_device, B, T, H, G, D));
    CHECK_OK(clora_buffer_upload(att.q, 0, q, B * H * T * D));
    CHECK_OK(clora_buffer_upload(att.k, 0, k, B * G * T * D));
    CHECK_OK(clora_buffer_upload(att.v, 0, v, B * G * T * D));
    const size_t m_shape[3] = {B, T, H * D}, mask_shape[2] = {B, T};
    clora_buffer *bmerged = test_buffer(3, m_shape, NULL), *bdm = test_buffer(3, m_shape, dm);
    clora_buffer *bmask = int_buffer(2, mask_shape, mask);
    CHECK_OK(clora__attention_forward(&att, bmerged, bmask, 1, 0.0f, 0, 0));
    expect_buffer("merged", bmerged, merged, 1e-5, 1e-4);
    CHECK_OK(clora__attention_backward(&att, bdm));
    expect_buffer("dq", att.dq, dq, 1e-5, 1e-4);
    expect_buffer("dk (summed over the group)", att.dk, dk, 1e-5, 1e-4);
    expect_buffer("dv (summed over the group)", att.dv, dv, 1e-5, 1e-4);
    assert_int_equal(clora_buffer_dim(att.k, 1), G);
    CHECK_STATUS(clora__attention_prepare(&att, test_device, B, T, H, 4, D),
                 CLORA_ERR_INVALID_ARGUMENT);
    clora__attention_release(&att);
    clora_buffer_destroy(bmerged);
    clora_buffer_destroy(bdm);
    clora_buffer_destroy(bmask);
}

/* y = x · Wᵀ + beta · y for one to five rows (CPUs take their own kernel
 * below five), widths that leave eight-wide tails and partial groups of
 * four outputs. */
static void few_rows_product_matches_reference(void **state)
{
    (void)state;
    enum { IN = 37, OUT = 13 };
    uint64_t rng = 8;
    float w[OUT * IN], x[5 * IN], y0[5 * OUT], want[5 * OUT];
    test_fill_uniform(w, OUT * IN, &rng, -1.0f, 1.0f);
    test_fill_uniform(x, 5 * IN, &rng, -1.0f, 1.0f);
    test_fill_uniform(y0, 5 * OUT, &rng, -1.0f, 1.0f);
    clora_buffer *bw = test_buffer_2d(OUT, IN, w);
    for (size_t rows = 1; rows <= 5; ++rows)
        for (int beta = 0; beta < 2; ++beta) {
            for (size_t r = 0; r < rows; ++r)
                for (size_t o = 0; o < OUT; ++o) {
                    double sum = beta ? y0[r * OUT + o] : 0.0;
                    for (size_t c = 0; c < IN; ++c)
                        sum += (double)x[r * IN + c] * w[o * IN + c];
                    want[r * OUT + o] = (float)sum;
                }
            clora_buffer *bx = test_buffer_2d(rows, IN, x), *by = test_buffer_2d(rows, OUT, y0);
            CHECK_OK(clora__gemm_x_wt(by, bx, bw, CLORA_WEIGHT_OUT_IN, (float)beta));
            expect_buffer("x W^T", by, want, 1e-5, 1e-5);
            clora_buffer_destroy(bx);
            clora_buffer_destroy(by);
        }
    clora_buffer_destroy(bw);
}

/* ---- PyTorch golden data --------------------------------------------------------------- */

/* The base model without a mask, then PEFT's adapter on all seven
 * projections with padding: logits and every LoRA gradient. */
static void against_pytorch(const char *name, const char *dir, const char *adapter,
                            size_t vocab)
{
    const golden_case *c = golden_case_get(&reference, name);
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_buffer *mask = test_golden_ints(golden_tensor_get(c, "mask"));
    clora_model *model = NULL;
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, dir, 0, 0));
    CHECK_OK(clora_model_forward(model, ids, &y));
    assert_int_equal(y->ndim, 3);
    assert_int_equal(y->shape[2], vocab);
    test_expect_golden("base logits", y, golden_tensor_get(c, "logits_nomask"), 1e-4, 1e-4);

    CHECK_OK(clora_adapter_load(model, adapter, "default"));
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("LoRA logits", y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);
    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    /* 2 layers, 7 projections, A and B */
    assert_int_equal(test_expect_golden_grads(model, c, 1e-4, 1e-3), 2 * 7 * 2);
    clora_buffer_destroy(dy);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
    clora_buffer_destroy(mask);
}

static void llama_against_pytorch(void **state)
{
    (void)state;
    against_pytorch("llama", GOLDEN "/tiny_llama", GOLDEN "/tiny_llama_lora", 50);

    /* bfloat16 weights in three shards */
    const golden_case *c = golden_case_get(&reference, "llama");
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    clora_model *model = NULL;
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_llama_bf16", 0, 0));
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("bfloat16 shards", y, golden_tensor_get(c, "logits_bf16"), 1e-4, 1e-4);
    clora_model_destroy(model);
    clora_buffer_destroy(ids);
}

static void qwen2_against_pytorch(void **state)
{
    (void)state;
    against_pytorch("qwen2", GOLDEN "/tiny_qwen2", GOLDEN "/tiny_qwen2_lora", 50);
}

/* ---- GGUF files ------------------------------------------------------------------------------ */

/* The tiny models the gguf package wrote in every type clora reads, against
 * transformers on the weights the package dequantizes. */
static void gguf_files_against_pytorch(void **state)
{
    (void)state;
    golden_file gguf;
    golden_load(GOLDEN "/llama_gguf_reference.txt", &gguf);
    static const char *const cases[] = {"llama-F32",  "llama-F16",  "llama-BF16",
                                        "llama-Q8_0", "llama-Q4_0", "llama-Q4_1",
                                        "llama3-rope-freqs", "qwen2-kquants"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const golden_case *c = golden_case_get(&gguf, cases[i]);
        char path[512];
        snprintf(path, sizeof path, "%s/gguf_llama/%s.gguf", GOLDEN, cases[i]);
        clora_model *model = NULL;
        CHECK_OK(clora_model_load(&model, test_device, path));
        clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
        const clora_buffer *y = NULL;
        CHECK_OK(clora_model_forward(model, ids, &y));
        test_expect_golden(cases[i], y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);
        if (!strcmp(cases[i], "llama3-rope-freqs")) {
            /* saved as a clora folder, the divisors come back with the tree */
            char dir[64];
            clora_model *loaded = NULL;
            test_temp_dir(dir, "gguf-saved");
            CHECK_OK(clora_model_save(model, dir));
            CHECK_OK(clora_model_load(&loaded, test_device, dir));
            CHECK_OK(clora_model_forward(loaded, ids, &y));
            test_expect_golden("saved and loaded", y, golden_tensor_get(c, "logits"), 1e-4, 1e-4);
            clora_model_destroy(loaded);
            test_remove_dir(dir);
        }
        clora_buffer_destroy(ids);
        clora_model_destroy(model);
    }
    golden_free(&gguf);
}

/* A copy of a GGUF file with every `from` replaced by `to` (same length). */
static void patched_copy(char *path, size_t size, const char *from_file, const char *from,
                         const char *to)
{
    FILE *f = fopen(from_file, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    const long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *bytes = malloc((size_t)n);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    const size_t k = strlen(from);
    assert_int_equal(strlen(to), k);
    for (long i = 0; i + (long)k <= n; ++i)
        if (!memcmp(bytes + i, from, k))
            memcpy(bytes + i, to, k);
    char dir[64];
    test_temp_dir(dir, "gguf");
    snprintf(path, size, "%s/model.gguf", dir);
    f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    free(bytes);
}

/* Removes the folder patched_copy made for `path`. */
static void remove_copy(char *path)
{
    *strrchr(path, '/') = '\0';
    test_remove_dir(path);
}

/* The loader and clora_model_check_gguf refuse `path` alike. */
static void expect_refused(const char *path, clora_status status, const char *why)
{
    clora_model *model = NULL;
    CHECK_STATUS(clora_model_check_gguf(path), status);
    test_expect_message(why);
    CHECK_STATUS(clora_model_load(&model, test_device, path), status);
    test_expect_message(why);
    assert_null(model);
}

static void gguf_errors(void **state)
{
    (void)state;
    const char *src = GOLDEN "/gguf_llama/llama-Q8_0.gguf";
    char path[128];
    static const char *const good[] = {"llama-F32", "llama-Q4_1", "llama3-rope-freqs",
                                       "qwen2-kquants"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; ++i) {
        snprintf(path, sizeof path, "%s/gguf_llama/%s.gguf", GOLDEN, good[i]);
        CHECK_OK(clora_model_check_gguf(path));
    }
    patched_copy(path, sizeof path, src, "llama", "lbmma");
    expect_refused(path, CLORA_ERR_UNSUPPORTED, "general.architecture \"lbmma\"");
    remove_copy(path);
    /* the second layer's tensors under another number */
    patched_copy(path, sizeof path, src, "blk.1.", "blk.7.");
    expect_refused(path, CLORA_ERR_FORMAT, "no tensor \"blk.1.attn_norm.weight\"");
    remove_copy(path);
    /* a head count that does not fit the tensors */
    patched_copy(path, sizeof path, src, "attention.head_count_kv", "attention.head_countXkv");
    expect_refused(path, CLORA_ERR_SHAPE_MISMATCH, "blk.0.attn_k.weight");
    remove_copy(path);
    /* a tensor the model has no parameter for */
    patched_copy(path, sizeof path, src, "output_norm", "output_morm");
    expect_refused(path, CLORA_ERR_FORMAT, "no tensor \"output_norm.weight\"");
    remove_copy(path);
    /* a file that is not GGUF at all, named .gguf */
    patched_copy(path, sizeof path, src, "GGUF", "GGUG");
    expect_refused(path, CLORA_ERR_FORMAT, "not \"GGUF\"");
    remove_copy(path);
}

/* ---- finite differences ---------------------------------------------------------------- */

/* GQA (6 query heads over 2 key/value heads of 6), llama3 rope, every
 * bias, an untied head, dropout on the attention probabilities. */
static clora_model *tiny_llama_of(float p, int tied, size_t layers)
{
    clora_llama_config c = clora_llama_config_default();
    c.vocab_size = 13;
    c.hidden_size = 12;
    c.intermediate_size = 11;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 6;
    c.num_key_value_heads = 2;
    c.head_dim = 6;
    c.rope_theta = 100.0f;
    c.rope_scaling = CLORA_ROPE_SCALING_LLAMA3;
    c.rope_factor = 4.0f;
    c.rope_low_freq_factor = 1.0f;
    c.rope_high_freq_factor = 2.0f;
    c.rope_original_max_position_embeddings = 16;
    c.qkv_bias = c.o_bias = c.mlp_bias = 1;
    c.tie_word_embeddings = tied;
    c.attention_dropout = p;
    c.initializer_range = 0.3f;
    clora_model *model = NULL;
    CHECK_OK(clora_model_create_llama(&model, test_device, &c, 23));
    return model;
}

static clora_model *tiny_llama(float p, int tied)
{
    return tiny_llama_of(p, tied, 2);
}

/* A backward pass spends each layer's gradients before the next layer's
 * start: at its peak it holds far less than the forward's activations of
 * eight layers (all layers' gradients at once would be more than those). */
static void backward_holds_one_layer_of_gradients(void **state)
{
    (void)state;
    clora_model *model = tiny_llama_of(0.0f, 1, 8);
    clora_lora_config lora = clora_lora_config_default();
    static const char *const targets[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                          "gate_proj", "up_proj", "down_proj"};
    lora.target_modules = targets;
    lora.target_module_count = 7;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    CHECK_OK(clora_model_set_training(model, 1));
    const size_t shape[2] = {4, 24};
    int32_t ids[96];
    for (int i = 0; i < 96; ++i)
        ids[i] = (i * 7 + 3) % 13;
    clora_buffer *bids = int_buffer(2, shape, ids);
    clora__device_pool_clear(test_device);
    clora_memory_report before, forward, backward;
    CHECK_OK(clora_device_memory(test_device, &before));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, bids, &y));
    CHECK_OK(clora_device_memory(test_device, &forward));
    const uint64_t saved = forward.bytes[CLORA_MEMORY_ACTIVATIONS] -
                           before.bytes[CLORA_MEMORY_ACTIVATIONS];
    clora_buffer *dy = NULL;
    CHECK_OK(clora_buffer_create(&dy, test_device, clora_buffer_ndim(y), (const size_t[]){
                                     clora_buffer_dim(y, 0), clora_buffer_dim(y, 1),
                                     clora_buffer_dim(y, 2)}));
    CHECK_OK(clora_buffer_fill(dy, 0.01f));
    CHECK_OK(clora_device_reset_memory_peak(test_device));
    CHECK_OK(clora_model_backward(model, dy));
    CHECK_OK(clora_device_memory(test_device, &backward));
    const uint64_t grads = backward.peak_bytes[CLORA_MEMORY_ACTIVATIONS] -
                           forward.bytes[CLORA_MEMORY_ACTIVATIONS];
    assert_true(grads < saved / 3);
    clora_buffer_destroy(dy);
    clora_buffer_destroy(bids);
    clora_model_destroy(model);
    clora__device_pool_clear(test_device);
}

static void finite_differences(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(0.2f, 0);
    static const int32_t ids[22] = {3, 7, 1, 12, 5, 4, 8, 10, 11, 2, 6,
                                    9, 2, 6, 4, 1, 3, 0, 0, 0, 0, 0};
    static const int32_t mask[22] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
                                     1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
    const size_t shape[2] = {2, 11};
    clora_buffer *bids = int_buffer(2, shape, ids), *bmask = int_buffer(2, shape, mask);
    static const char *const targets[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                          "gate_proj", "up_proj", "down_proj"};
    size_t replaced = 0;
    assert_true(test_finite_differences(model, bids, bmask, targets, 7, &replaced) >= 3 * 60);
    assert_int_equal(replaced, 14);
    clora_buffer_destroy(bids);
    clora_buffer_destroy(bmask);
    clora_model_destroy(model);
}

/* ---- positions and folders ------------------------------------------------------------- */

/* Rotary attention depends on position differences only: every row moved
 * by the same offset gives the same logits; a row moved alone differs. */
static void positions_shift_invariance(void **state)
{
    (void)state;
    clora_model *model = tiny_llama(0.0f, 1);
    static const int32_t ids[10] = {3, 7, 1, 12, 5, 4, 8, 10, 11, 2};
    static const int32_t shifted[10] = {9, 10, 11, 12, 13, 40, 41, 42, 43, 44};
    static const int32_t wrong_shape[3] = {0, 1, 2};
    const size_t shape[2] = {2, 5}, short_shape[2] = {1, 3};
    clora_buffer *bids = int_buffer(2, shape, ids), *pos = int_buffer(2, shape, shifted);
    clora_buffer *bad = int_buffer(2, short_shape, wrong_shape);
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, bids, &y));
    float *plain = test_download(y);
    CHECK_OK(clora_model_set_positions(model, pos));
    CHECK_OK(clora_model_forward(model, bids, &y));
    float *moved = test_download(y);
    test_assert_close("shifted positions", moved, plain, y->numel, 1e-4, 1e-4);
    int32_t one = 0;
    CHECK_OK(clora_buffer_upload_i32(pos, 0, &one, 1)); /* row 0: 0, 10, 11, ... */
    CHECK_OK(clora_model_forward(model, bids, &y));
    float *changed = test_download(y);
    double diff = 0.0;
    for (size_t i = 13; i < 5 * 13; ++i) /* row 0 after its first token */
        diff += fabs((double)changed[i] - plain[i]);
    assert_true(diff > 1e-3);
    CHECK_OK(clora_model_set_positions(model, bad));
    CHECK_STATUS(clora_model_forward(model, bids, &y), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("positions are (1, 3)");
    CHECK_OK(clora_model_set_positions(model, NULL));
    CHECK_OK(clora_model_forward(model, bids, &y));
    float *again = test_download(y);
    test_assert_identical("default positions again", again, plain, y->numel);
    free(plain);
    free(moved);
    free(changed);
    free(again);
    clora_buffer_destroy(bids);
    clora_buffer_destroy(pos);
    clora_buffer_destroy(bad);
    clora_model_destroy(model);
}

static void model_folder_round_trip(void **state)
{
    (void)state;
    static const int32_t ids[10] = {3, 7, 1, 12, 5, 4, 8, 10, 11, 2};
    const size_t shape[2] = {2, 5};
    clora_buffer *bids = int_buffer(2, shape, ids);
    for (int tied = 0; tied < 2; ++tied) {
        clora_model *model = tiny_llama(0.1f, tied), *loaded = NULL;
        char dir[64];
        test_temp_dir(dir, "llama");
        CHECK_OK(clora_model_save(model, dir));
        CHECK_OK(clora_model_load(&loaded, test_device, dir));
        const clora_buffer *y = NULL;
        CHECK_OK(clora_model_forward(model, bids, &y));
        float *a = test_download(y);
        CHECK_OK(clora_model_forward(loaded, bids, &y));
        float *b = test_download(y);
        test_assert_identical("saved and loaded", a, b, y->numel);
        assert_int_equal(clora_model_param_count(loaded), clora_model_param_count(model));
        free(a);
        free(b);
        clora_model_destroy(model);
        clora_model_destroy(loaded);
        test_remove_dir(dir);
    }
    clora_buffer_destroy(bids);
}

/* ---- errors -------------------------------------------------------------------------------- */

/* A copy of a folder (its safetensors files and index) with config.json's
 * `key` replaced by `value` (JSON text), or the whole config when key is
 * NULL and value is the new text. */
static void edited_copy(char *dir, const char *from, const char *key, const char *value)
{
    test_temp_dir(dir, "hf");
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s/*.safetensors %s/ && (cp %s/*.index.json %s/ 2>/dev/null; "
             "true) && sed 's/\"%s\": [^,]*,/\"%s\": %s,/' %s/config.json > %s/config.json",
             from, dir, from, dir, key, key, value, from, dir);
    assert_int_equal(system(cmd), 0);
}

static void load_fails(const char *dir, clora_status want, const char *message)
{
    clora_model *model = NULL;
    CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), want);
    assert_null(model);
    test_expect_message(message);
}

static void config_errors(void **state)
{
    (void)state;
    char dir[64];
    edited_copy(dir, GOLDEN "/tiny_llama", "hidden_act", "\"gelu\"");
    load_fails(dir, CLORA_ERR_UNSUPPORTED, "hidden_act \"gelu\"");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_llama", "vocab_size", "50");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sed -i 's/\"llama3\"/\"yarn\"/' %s/config.json", dir);
    assert_int_equal(system(cmd), 0);
    load_fails(dir, CLORA_ERR_UNSUPPORTED, "rope_scaling of type \"yarn\"");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_llama", "num_key_value_heads", "3");
    load_fails(dir, CLORA_ERR_INVALID_ARGUMENT, "must divide num_attention_heads 4");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_llama", "model_type", "\"mistral\"");
    {
        /* Llama's tree with a bias is not Mistral's */
        clora_model *model = NULL;
        CHECK_STATUS(clora_model_load_hf(&model, test_device, dir, 0, 0), CLORA_ERR_FORMAT);
        test_expect_message("matches no parameter");
    }
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_qwen2", "use_sliding_window", "true");
    load_fails(dir, CLORA_ERR_UNSUPPORTED, "use_sliding_window");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_llama", "tie_word_embeddings", "1");
    load_fails(dir, CLORA_ERR_FORMAT, "\"tie_word_embeddings\" must be true or false");
    test_remove_dir(dir);

    /* one layer fewer than the file: its tensors are left over */
    edited_copy(dir, GOLDEN "/tiny_llama", "num_hidden_layers", "1");
    load_fails(dir, CLORA_ERR_FORMAT, "model.layers.1.");
    test_remove_dir(dir);

    edited_copy(dir, GOLDEN "/tiny_llama", "intermediate_size", "38");
    load_fails(dir, CLORA_ERR_SHAPE_MISMATCH, "model.layers.0.mlp.");
    test_remove_dir(dir);

    clora_model *model = NULL;
    CHECK_STATUS(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_llama", 3, 0),
                 CLORA_ERR_UNSUPPORTED);
    assert_null(model);
}

static void shard_errors(void **state)
{
    (void)state;
    char dir[64], cmd[1024];
    /* a shard the index names is missing */
    edited_copy(dir, GOLDEN "/tiny_llama_bf16", "vocab_size", "50");
    snprintf(cmd, sizeof cmd, "rm %s/model-00002-of-00003.safetensors", dir);
    assert_int_equal(system(cmd), 0);
    load_fails(dir, CLORA_ERR_IO, "model-00002-of-00003.safetensors");
    test_remove_dir(dir);

    /* the index puts a tensor in the wrong shard (model.norm.weight is in the third) */
    edited_copy(dir, GOLDEN "/tiny_llama_bf16", "vocab_size", "50");
    snprintf(cmd, sizeof cmd,
             "sed -i 's/\"model.norm.weight\": \"model-00003/\"model.norm.weight\": "
             "\"model-00001/' %s/model.safetensors.index.json",
             dir);
    assert_int_equal(system(cmd), 0);
    load_fails(dir, CLORA_ERR_FORMAT, "tensor \"model.norm.weight\" is not in");
    test_remove_dir(dir);

    /* a shard name that leaves the folder */
    edited_copy(dir, GOLDEN "/tiny_llama_bf16", "vocab_size", "50");
    snprintf(cmd, sizeof cmd,
             "sed -i 's|\"model.norm.weight\": \"|\"model.norm.weight\": \"../|' "
             "%s/model.safetensors.index.json",
             dir);
    assert_int_equal(system(cmd), 0);
    load_fails(dir, CLORA_ERR_FORMAT, "not the name of a file beside the index");
    test_remove_dir(dir);

    /* an index without a weight map */
    edited_copy(dir, GOLDEN "/tiny_llama_bf16", "vocab_size", "50");
    snprintf(cmd, sizeof cmd, "echo '{\"metadata\": {}}' > %s/model.safetensors.index.json", dir);
    assert_int_equal(system(cmd), 0);
    load_fails(dir, CLORA_ERR_FORMAT, "weight_map");
    test_remove_dir(dir);
}

/* ---- the parameter plan (what file checks compare with) --------------------------------- */

typedef struct plan_walk {
    clora_model *model;
    size_t next;
    int ok;
} plan_walk;

static int plan_matches(const char *name, size_t ndim, const size_t *shape, void *user)
{
    plan_walk *w = user;
    clora_param_info info;
    if (w->next >= clora_model_param_count(w->model) ||
        clora_model_param(w->model, w->next++, &info) != CLORA_OK) {
        print_message("the plan has %s past the model's parameters\n", name);
        return w->ok = 0;
    }
    int same = !strcmp(info.name, name) && clora_buffer_ndim(info.value) == ndim;
    for (size_t d = 0; same && d < ndim; ++d)
        same = clora_buffer_dim(info.value, d) == shape[d];
    if (!same)
        print_message("the plan's %s is the model's %s\n", name, info.name);
    return w->ok = same;
}

/* clora__llama_params lists the parameters clora__llama_create builds, in
 * order, names and shapes, for each kind of config. */
static void the_parameter_plan_is_the_built_model(void **state)
{
    (void)state;
    for (int variant = 0; variant < 4; ++variant) {
        clora_llama_config c = clora_llama_config_default();
        c.vocab_size = 13;
        c.hidden_size = 12;
        c.intermediate_size = 11;
        c.num_hidden_layers = 3;
        c.num_attention_heads = 6;
        c.num_key_value_heads = variant % 2 ? 2 : 6;
        c.head_dim = variant >= 2 ? 4 : 0;
        c.tie_word_embeddings = variant % 2;
        c.qkv_bias = variant == 1 || variant == 3;
        c.o_bias = c.mlp_bias = variant == 2;
        clora_model *model = NULL;
        CHECK_OK(clora_model_create_llama(&model, test_device, &c, 5));
        plan_walk w = {model, 0, 1};
        clora__llama_params(&c, plan_matches, &w);
        assert_true(w.ok);
        assert_int_equal(w.next, clora_model_param_count(model));
        clora_model_destroy(model);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rms_norm_matches_reference),
        cmocka_unit_test(swiglu_matches_reference),
        cmocka_unit_test(rope_matches_reference),
        cmocka_unit_test(grouped_attention_matches_reference),
        cmocka_unit_test(few_rows_product_matches_reference),
        cmocka_unit_test(llama_against_pytorch),
        cmocka_unit_test(qwen2_against_pytorch),
        cmocka_unit_test(gguf_files_against_pytorch),
        cmocka_unit_test(gguf_errors),
        cmocka_unit_test(finite_differences),
        cmocka_unit_test(backward_holds_one_layer_of_gradients),
        cmocka_unit_test(positions_shift_invariance),
        cmocka_unit_test(model_folder_round_trip),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(shard_errors),
        cmocka_unit_test(the_parameter_plan_is_the_built_model),
    };
    if (argc > 1) /* run only the tests whose names match */
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
