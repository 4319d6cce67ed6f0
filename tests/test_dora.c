/* test_dora.c — DoRA (clora/dora.h): the op against the plain-C reference
 * on both weight layouts, with and without bias and dropout; its gradients
 * against finite differences (with the norm held constant, as PEFT detaches
 * it); F16 and BF16 base weights; adapters written by PEFT 0.21.2 itself
 * (tests/golden/make_dora_golden.py) giving PEFT's outputs and gradients of
 * lora_A, lora_B and the magnitude, on a small Linear net and on a GPT-2
 * with Conv1D weights; PEFT's merge and unmerge; a new DoRA adapter that
 * changes nothing until it trains; the save and reload of one; the files
 * clora refuses. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "golden.h"
#include "model_checks.h"

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static golden_file reference;
/* The net's input, kept until the model's next forward (backward reads it). */
static clora_buffer *net_input;

static int setup(void **state)
{
    golden_load(GOLDEN "/dora_reference.txt", &reference);
    return test_open_device(state);
}

static int teardown(void **state)
{
    golden_free(&reference);
    clora_buffer_destroy(net_input);
    return test_close_device(state);
}

/* ---- the op against the reference ---------------------------------------------- */

typedef struct op_case {
    size_t n, in, out, r;
    clora_weight_layout layout;
    int bias;
    float dropout;
} op_case;

typedef struct op_data {
    op_case c;
    clora_lora_spec spec;
    float *x, *w, *b, *a, *bm, *m, *g; /* g: R of the loss, (n, out) */
    clora_buffer *bx, *bw, *bb, *ba, *bbm, *bmag, *by, *bh, *bt, *bnorm;
} op_data;

static void op_setup(op_data *d, const op_case *c, uint64_t seed)
{
    memset(d, 0, sizeof *d);
    d->c = *c;
    d->spec = (clora_lora_spec){3.0f, CLORA_SCALE_ALPHA_OVER_R, c->dropout, 91, c->layout, 5};
    uint64_t rng = seed;
    d->x = test_alloc(c->n * c->in);
    d->w = test_alloc(c->out * c->in);
    d->b = test_alloc(c->out);
    d->a = test_alloc(c->r * c->in);
    d->bm = test_alloc(c->out * c->r);
    d->m = test_alloc(c->out);
    d->g = test_alloc(c->n * c->out);
    test_fill_uniform(d->x, c->n * c->in, &rng, -1.0f, 1.0f);
    test_fill_uniform(d->w, c->out * c->in, &rng, -0.5f, 0.5f);
    test_fill_uniform(d->b, c->out, &rng, -0.5f, 0.5f);
    test_fill_uniform(d->a, c->r * c->in, &rng, -0.5f, 0.5f);
    test_fill_uniform(d->bm, c->out * c->r, &rng, -0.5f, 0.5f);
    test_fill_uniform(d->m, c->out, &rng, 0.3f, 2.0f);
    test_fill_uniform(d->g, c->n * c->out, &rng, -1.0f, 1.0f);
    const int out_in = c->layout == CLORA_WEIGHT_OUT_IN;
    d->bx = test_buffer_2d(c->n, c->in, d->x);
    d->bw = test_buffer_2d(out_in ? c->out : c->in, out_in ? c->in : c->out, d->w);
    d->bb = c->bias ? test_buffer_1d(c->out, d->b) : NULL;
    d->ba = test_buffer_2d(c->r, c->in, d->a);
    d->bbm = test_buffer_2d(c->out, c->r, d->bm);
    d->bmag = test_buffer_1d(c->out, d->m);
    /* written out rather than zero-filled: oclgrind's uninitialised-value
     * check counts no fill as a write */
    float *zeros = calloc(c->n * (c->out + c->r + c->in) + c->out, sizeof *zeros);
    assert_non_null(zeros);
    d->by = test_buffer_2d(c->n, c->out, zeros);
    d->bh = test_buffer_2d(c->n, c->r, zeros);
    d->bt = test_buffer_2d(c->n, c->out, zeros);
    d->bnorm = test_buffer_1d(c->out, zeros);
    free(zeros);
}

static void op_free(op_data *d)
{
    float *host[] = {d->x, d->w, d->b, d->a, d->bm, d->m, d->g};
    for (size_t i = 0; i < 7; ++i)
        free(host[i]);
    clora_buffer *dev[] = {d->bx, d->bw, d->bb, d->ba, d->bbm, d->bmag, d->by, d->bh, d->bt,
                           d->bnorm};
    for (size_t i = 0; i < 10; ++i)
        clora_buffer_destroy(dev[i]);
}

static void op_forward(op_data *d)
{
    CHECK_OK(clora_dora_forward(d->by, d->bh, d->bt, d->bnorm, d->bx, d->bw, d->bb, d->ba, d->bbm,
                                d->bmag, &d->spec));
}

static void check_op(const op_case *c)
{
    op_data d;
    op_setup(&d, c, 100 + c->n * 7 + c->in);
    const op_case k = d.c;
    op_forward(&d);
    float *want = test_alloc(k.n * k.out);
    CHECK_OK(clora_reference_dora_forward(want, d.x, d.w, c->bias ? d.b : NULL, d.a, d.bm, d.m,
                                          k.n, k.in, k.out, k.r, &d.spec));
    float *got = test_download(d.by);
    test_assert_close("DoRA y", got, want, k.n * k.out, 1e-5, 1e-4);
    free(got);
    float *norm = test_alloc(k.out);
    clora_reference_dora_weight_norm(norm, d.w, d.a, d.bm, k.in, k.out, k.r, &d.spec);
    got = test_download(d.bnorm);
    test_assert_close("DoRA weight norm", got, norm, k.out, 1e-6, 1e-5);
    free(got);

    /* gradients add to what is there */
    float *dx = test_alloc(k.n * k.in), *da = test_alloc(k.r * k.in);
    float *db = test_alloc(k.out * k.r), *dm = test_alloc(k.out);
    uint64_t rng = 5;
    test_fill_uniform(da, k.r * k.in, &rng, -1.0f, 1.0f);
    test_fill_uniform(db, k.out * k.r, &rng, -1.0f, 1.0f);
    test_fill_uniform(dm, k.out, &rng, -1.0f, 1.0f);
    clora_buffer *bdy = test_buffer_2d(k.n, k.out, d.g), *bdx = test_buffer_2d(k.n, k.in, d.x);
    clora_buffer *bda = test_buffer_2d(k.r, k.in, da), *bdb = test_buffer_2d(k.out, k.r, db);
    clora_buffer *bdm = test_buffer_1d(k.out, dm);
    CHECK_OK(clora_dora_backward(bdx, bda, bdb, bdm, bdy, d.bx, d.bh, d.bt, d.bnorm, d.bw, d.ba,
                                 d.bbm, d.bmag, &d.spec));
    CHECK_OK(clora_reference_dora_backward(dx, da, db, dm, d.g, d.x, d.w, d.a, d.bm, d.m, k.n, k.in,
                                           k.out, k.r, &d.spec));
    const struct {
        const char *what;
        clora_buffer *dev;
        const float *want;
        size_t n;
    } grads[] = {{"DoRA dx", bdx, dx, k.n * k.in},
                 {"DoRA d_lora_a", bda, da, k.r * k.in},
                 {"DoRA d_lora_b", bdb, db, k.out * k.r},
                 {"DoRA d_magnitude", bdm, dm, k.out}};
    for (size_t i = 0; i < 4; ++i) {
        got = test_download(grads[i].dev);
        test_assert_close(grads[i].what, got, grads[i].want, grads[i].n, 1e-4, 1e-4);
        free(got);
        clora_buffer_destroy(grads[i].dev);
    }
    clora_buffer_destroy(bdy);
    free(dx);
    free(da);
    free(db);
    free(dm);
    free(norm);
    free(want);
    op_free(&d);
}

static void op_matches_reference(void **state)
{
    (void)state;
    const op_case cases[] = {
        {3, 5, 4, 2, CLORA_WEIGHT_OUT_IN, 1, 0.0f},
        {7, 6, 9, 3, CLORA_WEIGHT_IN_OUT, 1, 0.0f},
        {130, 21, 17, 3, CLORA_WEIGHT_OUT_IN, 0, 0.25f},
        {9, 13, 11, 6, CLORA_WEIGHT_IN_OUT, 1, 0.5f},
        {1, 4, 3, 1, CLORA_WEIGHT_OUT_IN, 0, 0.0f},
        {5, 45, 77, 9, CLORA_WEIGHT_IN_OUT, 0, 0.2f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; ++i)
        check_op(&cases[i]);
}

/* ---- finite differences, the norm held constant -------------------------------------- */

/* L = Σ G ⊙ y with the weight norm n0 of the unperturbed layer: the
 * magnitude is scaled by n / n0 for the perturbed one, which leaves
 * c = m / n0, the function PEFT's backward differentiates. */
static double fd_loss(op_data *d, const float *n0)
{
    const op_case k = d->c;
    CHECK_OK(clora_dora_weight_norm(d->bnorm, d->bw, d->ba, d->bbm, &d->spec));
    float *n = test_download(d->bnorm), *m = test_alloc(k.out);
    for (size_t j = 0; j < k.out; ++j)
        m[j] = (float)((double)d->m[j] * n[j] / n0[j]);
    CHECK_OK(clora_buffer_upload(d->bmag, 0, m, k.out));
    op_forward(d);
    CHECK_OK(clora_buffer_upload(d->bmag, 0, d->m, k.out));
    float *y = test_download(d->by);
    double total = 0.0;
    for (size_t i = 0; i < k.n * k.out; ++i)
        total += (double)d->g[i] * y[i];
    free(y);
    free(n);
    free(m);
    return total;
}

static void fd_tensor(op_data *d, const float *n0, const char *what, float *host,
                      clora_buffer *dev, size_t count, const float *grad)
{
    const float eps = 1e-2f;
    for (size_t i = 0; i < count; ++i) {
        const float saved = host[i];
        float v = saved + eps;
        host[i] = v;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        const double up = fd_loss(d, n0);
        v = saved - eps;
        host[i] = v;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        const double down = fd_loss(d, n0);
        host[i] = saved;
        CHECK_OK(clora_buffer_upload(dev, i, &saved, 1));
        const double numeric = (up - down) / (2.0 * (double)eps);
        if (fabs(numeric - grad[i]) > 2e-3 + 2e-3 * fabs(numeric))
            fail_msg("%s[%zu] is %.7g by backward, %.7g by finite differences", what, i,
                     (double)grad[i], numeric);
    }
}

static void gradients_match_finite_differences(void **state)
{
    (void)state;
    const op_case cases[] = {
        {6, 5, 4, 2, CLORA_WEIGHT_OUT_IN, 1, 0.3f},
        {5, 4, 6, 3, CLORA_WEIGHT_IN_OUT, 1, 0.0f},
        {4, 7, 3, 2, CLORA_WEIGHT_IN_OUT, 0, 0.4f},
    };
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ++ci) {
        op_data d;
        op_setup(&d, &cases[ci], 7 + ci);
        const op_case k = d.c;
        op_forward(&d);
        float *n0 = test_download(d.bnorm);
        clora_buffer *bdy = test_buffer_2d(k.n, k.out, d.g), *bdx = test_buffer_2d(k.n, k.in, NULL);
        clora_buffer *bda = test_buffer_2d(k.r, k.in, NULL), *bdb = test_buffer_2d(k.out, k.r, NULL);
        clora_buffer *bdm = test_buffer_1d(k.out, NULL);
        CHECK_OK(clora_dora_backward(bdx, bda, bdb, bdm, bdy, d.bx, d.bh, d.bt, d.bnorm, d.bw, d.ba,
                                     d.bbm, d.bmag, &d.spec));
        float *dx = test_download(bdx), *da = test_download(bda), *db = test_download(bdb);
        float *dm = test_download(bdm);
        fd_tensor(&d, n0, "dx", d.x, d.bx, k.n * k.in, dx);
        fd_tensor(&d, n0, "d_lora_a", d.a, d.ba, k.r * k.in, da);
        fd_tensor(&d, n0, "d_lora_b", d.bm, d.bbm, k.out * k.r, db);
        fd_tensor(&d, n0, "d_magnitude", d.m, d.bmag, k.out, dm);
        float *grads[] = {dx, da, db, dm, n0};
        for (size_t i = 0; i < 5; ++i)
            free(grads[i]);
        clora_buffer *bufs[] = {bdy, bdx, bda, bdb, bdm};
        for (size_t i = 0; i < 5; ++i)
            clora_buffer_destroy(bufs[i]);
        op_free(&d);
    }
}

/* ---- packed base weights --------------------------------------------------------------- */

static uint16_t to_bf16(float v)
{
    uint32_t bits;
    memcpy(&bits, &v, 4);
    return (uint16_t)(bits >> 16); /* truncation: the reference reads the same bits */
}

static void f16_and_bf16_bases(void **state)
{
    (void)state;
    const size_t in = 6, out = 5, r = 2;
    uint64_t rng = 3;
    float w[30], a[12], b[10];
    test_fill_uniform(w, 30, &rng, -1.0f, 1.0f);
    test_fill_uniform(a, 12, &rng, -0.5f, 0.5f);
    test_fill_uniform(b, 10, &rng, -0.5f, 0.5f);
    clora_buffer *ba = test_buffer_2d(r, in, a), *bb = test_buffer_2d(out, r, b);
    clora_buffer *norm = test_buffer_1d(out, NULL);
    const clora_lora_spec spec = {2.0f, CLORA_SCALE_ALPHA_OVER_R, 0.0f, 0, CLORA_WEIGHT_OUT_IN, 0};
    for (int kind = 0; kind < 2; ++kind) {
        const clora_dtype dtype = kind ? CLORA_DTYPE_BF16 : CLORA_DTYPE_F16;
        uint16_t packed[30];
        float rounded[30];
        for (size_t i = 0; i < 30; ++i)
            packed[i] = kind ? to_bf16(w[i]) : 0;
        if (!kind) /* float16 through the library's own quantizer */
            CHECK_OK(clora_reference_quantize(CLORA_DTYPE_F16, w, 30, packed));
        CHECK_OK(clora_reference_dequantize(dtype, packed, 30, rounded));
        clora_buffer *bw = NULL;
        CHECK_OK(clora_buffer_create_packed(&bw, test_device, dtype, out, in));
        CHECK_OK(clora_buffer_upload_bytes(bw, 0, packed, sizeof packed));
        CHECK_OK(clora_dora_weight_norm(norm, bw, ba, bb, &spec));
        float want[5];
        clora_reference_dora_weight_norm(want, rounded, a, b, in, out, r, &spec);
        float *got = test_download(norm);
        test_assert_close(kind ? "norm of a BF16 weight" : "norm of an F16 weight", got, want, out,
                          1e-6, 1e-5);
        free(got);
        clora_buffer_destroy(bw);
    }
    /* a block-quantized weight is refused, by name */
    clora_buffer *q = NULL;
    CHECK_OK(clora_buffer_create_packed(&q, test_device, CLORA_DTYPE_Q8_0, 4, 32));
    CHECK_STATUS(clora_dora_weight_norm(norm, q, NULL, NULL, &spec), CLORA_ERR_UNSUPPORTED);
    test_expect_message("Q8_0");
    clora_buffer_destroy(q);
    clora_buffer_destroy(ba);
    clora_buffer_destroy(bb);
    clora_buffer_destroy(norm);
}

/* ---- PEFT's own DoRA adapters ---------------------------------------------------------- */

static void upload_param(clora_model *model, const char *name, const float *values, size_t n)
{
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, name, &info));
    assert_int_equal(clora_buffer_numel(info.value), n);
    CHECK_OK(clora_buffer_upload(info.value, 0, values, n));
}

/* The golden file's gradients (names "d:<clora name>", the magnitude's
 * without ".default.weight") against the model's; how many. */
static size_t expect_grads(clora_model *model, const golden_case *c, double atol, double rtol)
{
    size_t compared = 0, magnitudes = 0;
    for (size_t i = 0; i < c->n_tensors; ++i) {
        const golden_tensor *t = &c->tensors[i];
        if (strncmp(t->name, "d:", 2) != 0)
            continue;
        char name[128];
        const int magnitude = strstr(t->name, "lora_magnitude_vector") != NULL;
        snprintf(name, sizeof name, "%s%s", t->name + 2, magnitude ? ".default.weight" : "");
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, name, &info));
        assert_non_null(info.grad);
        test_expect_golden(t->name, info.grad, t, atol, rtol);
        ++compared;
        magnitudes += (size_t)magnitude;
    }
    assert_true(magnitudes > 0 && magnitudes * 3 == compared);
    return compared;
}

static clora_model *dora_net(const golden_case *c)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 1));
    clora_node *root = clora_model_root(model);
    CHECK_OK(clora_node_add_linear(root, "fc1", 4, 8, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_linear(root, "fc2", 8, 6, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "act2", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_linear(root, "head", 6, 3, 0, NULL));
    const char *names[5][2] = {{"fc1.weight", "fc1_weight"}, {"fc1.bias", "fc1_bias"},
                               {"fc2.weight", "fc2_weight"}, {"fc2.bias", "fc2_bias"},
                               {"head.weight", "head_weight"}};
    for (int i = 0; i < 5; ++i) {
        const golden_tensor *t = golden_tensor_get(c, names[i][1]);
        upload_param(model, names[i][0], t->data, t->numel);
    }
    return model;
}

static void net_forward(clora_model *model, const golden_case *c, const clora_buffer **y)
{
    const golden_tensor *x = golden_tensor_get(c, "x");
    clora_buffer_destroy(net_input);
    net_input = test_buffer(x->ndim, x->shape, x->data);
    CHECK_OK(clora_model_forward(model, net_input, y));
}

static void peft_net_outputs_gradients_merge(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "dora_net");
    clora_model *model = dora_net(c);
    CHECK_OK(clora_adapter_load(model, GOLDEN "/dora_net_adapter", NULL));
    const clora_buffer *y = NULL;
    net_forward(model, c, &y);
    test_expect_golden("DoRA logits", y, golden_tensor_get(c, "logits"), 1e-5, 1e-5);

    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(expect_grads(model, c, 1e-5, 1e-5), 9);
    clora_buffer_destroy(dy);

    /* merge: PEFT's merged weights, the same outputs; unmerge: the base back */
    const char *layers[3] = {"fc1", "fc2", "head"};
    float *before[3];
    for (int i = 0; i < 3; ++i) {
        char name[64];
        snprintf(name, sizeof name, "%s.base_layer.weight", layers[i]);
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, name, &info));
        before[i] = test_download(info.value);
    }
    CHECK_OK(clora_model_merge_adapter(model));
    for (int i = 0; i < 3; ++i) {
        char name[64], key[64];
        snprintf(name, sizeof name, "%s.base_layer.weight", layers[i]);
        snprintf(key, sizeof key, "merged_%s_weight", layers[i]);
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, name, &info));
        test_expect_golden(key, info.value, golden_tensor_get(c, key), 1e-6, 1e-5);
    }
    net_forward(model, c, &y);
    test_expect_golden("merged DoRA logits", y, golden_tensor_get(c, "logits"), 1e-5, 1e-5);
    CHECK_OK(clora_model_unmerge_adapter(model));
    for (int i = 0; i < 3; ++i) {
        char name[64];
        snprintf(name, sizeof name, "%s.base_layer.weight", layers[i]);
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, name, &info));
        float *after = test_download(info.value);
        test_assert_close("unmerged weight", after, before[i], clora_buffer_numel(info.value),
                          1e-6, 1e-5);
        free(after);
        free(before[i]);
    }
    net_forward(model, c, &y);
    test_expect_golden("unmerged DoRA logits", y, golden_tensor_get(c, "logits"), 1e-5, 1e-5);
    clora_model_destroy(model);
}

static void peft_gpt2_outputs_gradients(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "dora_gpt2");
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_dora_base", 0, 0));
    CHECK_OK(clora_adapter_load(model, GOLDEN "/tiny_gpt2_dora", NULL));
    clora_buffer *ids = test_golden_ints(golden_tensor_get(c, "ids"));
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    test_expect_golden("DoRA GPT-2 logits", y, golden_tensor_get(c, "logits"), 1e-5, 1e-5);
    CHECK_OK(clora_model_zero_grad(model));
    const golden_tensor *g = golden_tensor_get(c, "g");
    clora_buffer *dy = test_buffer(g->ndim, g->shape, g->data);
    CHECK_OK(clora_model_backward(model, dy));
    assert_int_equal(expect_grads(model, c, 1e-5, 1e-4), 12); /* c_attn, 2 c_proj, c_fc */
    clora_buffer_destroy(dy);
    clora_buffer_destroy(ids);
    clora_model_destroy(model);
}

/* ---- new DoRA adapters, saved and loaded ------------------------------------------------ */

static float *logits_of(clora_model *model, const golden_case *c)
{
    const clora_buffer *y = NULL;
    net_forward(model, c, &y);
    return test_download(y);
}

static void new_adapter_changes_nothing_until_trained_and_round_trips(void **state)
{
    (void)state;
    const golden_case *c = golden_case_get(&reference, "dora_net");
    clora_model *model = dora_net(c);
    float *base = logits_of(model, c);
    clora_lora_config config = clora_lora_config_default();
    config.rank = 3;
    config.use_dora = 1;
    size_t replaced = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced));
    assert_int_equal(replaced, 3);
    float *fresh = logits_of(model, c);
    test_assert_close("a new DoRA adapter's output", fresh, base, 15, 1e-6, 1e-5);

    /* m starts at ||W|| per output feature, and trains */
    clora_param_info info;
    CHECK_OK(clora_model_find_param(model, "fc2.lora_magnitude_vector.default.weight", &info));
    assert_non_null(info.grad);
    float norm[6];
    const clora_lora_spec spec = {8.0f, CLORA_SCALE_ALPHA_OVER_R, 0, 0, CLORA_WEIGHT_OUT_IN, 0};
    clora_reference_dora_weight_norm(norm, golden_tensor_get(c, "fc2_weight")->data, NULL, NULL, 8,
                                     6, 0, &spec);
    float *m = test_download(info.value);
    test_assert_close("initial magnitude", m, norm, 6, 1e-6, 1e-5);
    free(m);

    /* made to matter: random B, magnitudes off the norm; then save, reload */
    uint64_t rng = 11;
    test_randomise_lora_b(model, &rng);
    const size_t count = clora_model_param_count(model);
    for (size_t i = 0; i < count; ++i) {
        CHECK_OK(clora_model_param(model, i, &info));
        if (!strstr(info.name, "lora_magnitude_vector"))
            continue;
        float *v = test_download(info.value), scale[8];
        test_fill_uniform(scale, clora_buffer_numel(info.value), &rng, 0.5f, 1.5f);
        for (size_t k = 0; k < clora_buffer_numel(info.value); ++k)
            v[k] *= scale[k];
        CHECK_OK(clora_buffer_upload(info.value, 0, v, clora_buffer_numel(info.value)));
        free(v);
    }
    float *trained = logits_of(model, c);
    char dir[64];
    const char *keep = getenv("CLORA_DORA_PEFT_CHECK_DIR"); /* for make_dora_golden.py --check */
    if (keep)
        snprintf(dir, sizeof dir, "%s", keep);
    else
        test_temp_dir(dir, "dora");
    CHECK_OK(clora_adapter_save(model, NULL, dir));
    CHECK_OK(clora_adapter_check(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "base_model.model.fc2.lora_magnitude_vector", &view));
    assert_int_equal(view.ndim, 1);
    assert_int_equal(view.shape[0], 6);
    clora_safetensors_close(file);
    if (keep) {
        snprintf(path, sizeof path, "%s/logits.txt", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        for (size_t i = 0; i < 15; ++i)
            fprintf(f, "%.9g\n", (double)trained[i]);
        fclose(f);
    }

    clora_model *again = dora_net(c);
    CHECK_OK(clora_adapter_load(again, dir, NULL));
    float *reloaded = logits_of(again, c);
    test_assert_identical("reloaded DoRA adapter's output", reloaded, trained, 15);
    float diff = 0.0f;
    for (size_t i = 0; i < 15; ++i)
        diff += fabsf(trained[i] - base[i]);
    assert_true(diff > 0.1f); /* the adapter matters */
    clora_model_destroy(again);
    clora_model_destroy(model);
    if (!keep)
        test_remove_dir(dir);
    free(base);
    free(fresh);
    free(trained);
    free(reloaded);
}

/* PEFT makes DoRA embeddings; clora's DoRA is for Linear layers, and says so
 * before it changes anything, rather than training an adapter without it. */
static void dora_on_an_embedding_is_refused(void **state)
{
    (void)state;
    clora_model *model = NULL;
    CHECK_OK(clora_model_load_hf(&model, test_device, GOLDEN "/tiny_gpt2_dora_base", 0, 0));
    const size_t before = clora_model_param_count(model);
    clora_lora_config config = clora_lora_config_default();
    config.use_dora = 1;
    const char *targets[] = {"c_attn", "wte"};
    config.target_modules = targets;
    config.target_module_count = 2;
    size_t replaced = 99; /* set to 0: nothing wrapped */
    CHECK_STATUS(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced),
                 CLORA_ERR_UNSUPPORTED);
    test_expect_message("target module \"transformer.wte\" is an Embedding");
    assert_int_equal(replaced, 0);
    assert_int_equal(clora_model_param_count(model), before);
    /* the same targets without DoRA wrap both kinds */
    config.use_dora = 0;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &config, &replaced));
    assert_true(replaced > 1);
    clora_model_destroy(model);
}

/* ---- files clora refuses ----------------------------------------------------------------- */

/* A folder with `weights` (copied) and the config `config`. */
static void make_folder(const char *dir, const char *weights, const char *config)
{
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    FILE *in = fopen(weights, "rb"), *out = fopen(path, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    test_write_text(dir, "adapter_config.json", config);
}

static void bad_dora_folders(void **state)
{
    (void)state;
    char dir[64];
    test_temp_dir(dir, "dora-bad");
    char *config = test_read_text(GOLDEN "/dora_net_adapter/adapter_config.json");
    char *at = strstr(config, "\"use_dora\": true");
    assert_non_null(at);

    /* magnitudes, and a config without use_dora */
    memcpy(at, "\"use_dora\": 0   ", 16);
    make_folder(dir, GOLDEN "/dora_net_adapter/adapter_model.safetensors", config);
    CHECK_STATUS(clora_adapter_check(dir), CLORA_ERR_FORMAT);
    test_expect_message("\"use_dora\" must be true or false");
    memcpy(at, "\"use_dora\": null", 16);
    test_write_text(dir, "adapter_config.json", config);
    CHECK_STATUS(clora_adapter_check(dir), CLORA_ERR_FORMAT);
    test_expect_message("does not set use_dora");

    /* use_dora, and no magnitudes (a plain LoRA file) */
    char *plain = test_read_text(GOLDEN "/peft_adapter/adapter_config.json");
    char *peft_type = strstr(plain, "\"peft_type\"");
    assert_non_null(peft_type);
    char *with_dora = malloc(strlen(plain) + 32);
    assert_non_null(with_dora);
    snprintf(with_dora, strlen(plain) + 32, "%.*s\"use_dora\": true, %s",
             (int)(peft_type - plain), plain, peft_type);
    make_folder(dir, GOLDEN "/peft_adapter/adapter_model.safetensors", with_dora);
    CHECK_STATUS(clora_adapter_check(dir), CLORA_ERR_FORMAT);
    test_expect_message("no lora_magnitude_vector");

    /* a magnitude of the wrong length */
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, GOLDEN "/dora_net_adapter/adapter_model.safetensors"));
    clora_safetensors_writer *writer = NULL;
    CHECK_OK(clora_safetensors_writer_create(&writer));
    float wrong[7] = {1, 1, 1, 1, 1, 1, 1};
    for (size_t i = 0; i < clora_safetensors_count(file); ++i) {
        clora_tensor_view v;
        clora_safetensors_get(file, i, &v);
        if (strstr(v.name, "fc2.lora_magnitude_vector")) {
            const size_t shape[1] = {7};
            CHECK_OK(clora_safetensors_writer_add(writer, v.name, CLORA_DTYPE_F32, 1, shape,
                                                  wrong));
        } else {
            CHECK_OK(clora_safetensors_writer_add(writer, v.name, v.dtype, v.ndim, v.shape,
                                                  v.data));
        }
    }
    char path[128];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    CHECK_OK(clora_safetensors_writer_write(writer, path));
    clora_safetensors_writer_destroy(writer);
    clora_safetensors_close(file);
    memcpy(at, "\"use_dora\": true", 16);
    test_write_text(dir, "adapter_config.json", config);
    CHECK_STATUS(clora_adapter_check(dir), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("lora_B's rows");

    free(with_dora);
    free(plain);
    free(config);
    test_remove_dir(dir);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(op_matches_reference),
        cmocka_unit_test(gradients_match_finite_differences),
        cmocka_unit_test(f16_and_bf16_bases),
        cmocka_unit_test(peft_net_outputs_gradients_merge),
        cmocka_unit_test(peft_gpt2_outputs_gradients),
        cmocka_unit_test(new_adapter_changes_nothing_until_trained_and_round_trips),
        cmocka_unit_test(dora_on_an_embedding_is_refused),
        cmocka_unit_test(bad_dora_folders),
    };
    if (argc > 1) /* one test or a pattern (tests/oclgrind_check.sh) */
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, setup, teardown);
}
