/* test_gradcheck.c — finite-difference checks of the LoRA op's gradients,
 * and of LoRA on an embedding table (ops/lora_embedding.c, reached through
 * ops/ops.h).
 *
 * Loss L = ½ Σ R ⊙ y², so dL/dy = R ⊙ y: the upstream gradient depends on
 * the forward output, as it does inside a network. Each parameter (A, B)
 * and input (x) element is nudged by ±eps, the forward re-run on the
 * device, and (L+ − L−) / 2eps compared with what backward returned. L is
 * quadratic in every single element, so central differences carry no
 * truncation error and the tolerance only covers float32 rounding.
 */
#include "support.h"

#include <math.h>
#include <stdlib.h>

#include "ops/ops.h"

typedef struct grad_case {
    const char *name;
    size_t n, in, out, r;
    clora_scale_mode mode;
    float dropout;
    clora_weight_layout layout;
    size_t probes; /* elements checked per tensor (0: all) */
} grad_case;

typedef struct layer {
    grad_case c;
    clora_lora_spec spec;
    float *x, *w, *b, *a, *bm, *weights; /* weights: R of the loss, (n, out) */
    clora_buffer *bx, *bw, *bb, *ba, *bbm, *by, *bh;
} layer;

static double loss(layer *L)
{
    CHECK_OK(clora_lora_forward(L->by, L->bh, L->bx, L->bw, L->bb, L->ba, L->bbm, &L->spec));
    float *y = test_download(L->by);
    double total = 0.0;
    for (size_t i = 0; i < L->c.n * L->c.out; ++i)
        total += 0.5 * (double)L->weights[i] * (double)y[i] * (double)y[i];
    free(y);
    return total;
}

/* Checks the analytic gradient `grad` of host tensor `host` (mirrored in
 * `dev`) against central differences. */
static void check_tensor(layer *L, const char *what, float *host, clora_buffer *dev, size_t count,
                         const float *grad, uint64_t *rng)
{
    const float eps = 0.05f;
    size_t probes = L->c.probes && L->c.probes < count ? L->c.probes : count;
    for (size_t p = 0; p < probes; ++p) {
        size_t i = p;
        if (probes < count) {
            float u;
            test_fill_uniform(&u, 1, rng, 0.0f, (float)count);
            i = (size_t)u < count ? (size_t)u : count - 1;
        }
        const float saved = host[i];
        float v = saved + eps;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        double up = loss(L);
        v = saved - eps;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        double down = loss(L);
        CHECK_OK(clora_buffer_upload(dev, i, &saved, 1));
        double numeric = (up - down) / (2.0 * (double)eps);
        double diff = fabs(numeric - (double)grad[i]);
        if (diff > 2e-3 + 2e-3 * fabs(numeric))
            fail_msg("%s: d%s[%zu] is %.7g by backward, %.7g by finite differences", L->c.name,
                     what, i, (double)grad[i], numeric);
    }
}

static void run_case(const grad_case *c)
{
    layer L = {0};
    L.c = *c;
    L.spec = (clora_lora_spec){2.0f, c->mode, c->dropout, 77, c->layout, 0};
    uint64_t rng = 1234;
    L.x = test_alloc(c->n * c->in);
    L.w = test_alloc(c->out * c->in);
    L.b = test_alloc(c->out);
    L.a = test_alloc(c->r * c->in);
    L.bm = test_alloc(c->out * c->r);
    L.weights = test_alloc(c->n * c->out);
    test_fill_uniform(L.x, c->n * c->in, &rng, -1, 1);
    test_fill_uniform(L.w, c->out * c->in, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.b, c->out, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.a, c->r * c->in, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.bm, c->out * c->r, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.weights, c->n * c->out, &rng, -1, 1);
    L.bx = test_buffer_2d(c->n, c->in, L.x);
    L.bw = c->layout == CLORA_WEIGHT_OUT_IN ? test_buffer_2d(c->out, c->in, L.w)
                                            : test_buffer_2d(c->in, c->out, L.w);
    L.bb = test_buffer_1d(c->out, L.b);
    L.ba = test_buffer_2d(c->r, c->in, L.a);
    L.bbm = test_buffer_2d(c->out, c->r, L.bm);
    L.by = test_buffer_2d(c->n, c->out, NULL);
    L.bh = test_buffer_2d(c->n, c->r, NULL);

    /* Analytic gradients: dy = R ⊙ y. */
    loss(&L);
    float *y = test_download(L.by);
    float *dy = test_alloc(c->n * c->out);
    for (size_t i = 0; i < c->n * c->out; ++i)
        dy[i] = L.weights[i] * y[i];
    clora_buffer *bdy = test_buffer_2d(c->n, c->out, dy);
    clora_buffer *bdx = test_buffer_2d(c->n, c->in, NULL);
    clora_buffer *bda = test_buffer_2d(c->r, c->in, NULL);
    clora_buffer *bdb = test_buffer_2d(c->out, c->r, NULL);
    CHECK_OK(clora_lora_backward(bdx, bda, bdb, bdy, L.bx, L.bh, L.bw, L.ba, L.bbm, &L.spec));
    float *dx = test_download(bdx), *da = test_download(bda), *db = test_download(bdb);

    check_tensor(&L, "A", L.a, L.ba, c->r * c->in, da, &rng);
    check_tensor(&L, "B", L.bm, L.bbm, c->out * c->r, db, &rng);
    check_tensor(&L, "x", L.x, L.bx, c->n * c->in, dx, &rng);

    float *host[] = {L.x, L.w, L.b, L.a, L.bm, L.weights, y, dy, dx, da, db};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {L.bx, L.bw, L.bb, L.ba, L.bbm, L.by, L.bh, bdy, bdx, bda, bdb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

static void peft_layout_no_dropout(void **state)
{
    (void)state;
    const grad_case c = {"peft", 6, 9, 7, 3, CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_OUT_IN, 0};
    run_case(&c);
}

static void seed_scale_with_dropout_in_out_weight(void **state)
{
    (void)state;
    const grad_case c = {"seed+dropout", 5, 8, 10, 4, CLORA_SCALE_ALPHA, 0.3f, CLORA_WEIGHT_IN_OUT,
                         0};
    run_case(&c);
}

static void rank_one_single_row(void **state)
{
    (void)state;
    const grad_case c = {"r=1,N=1", 1, 6, 5, 1, CLORA_SCALE_ALPHA_OVER_SQRT_R, 0.0f,
                         CLORA_WEIGHT_OUT_IN, 0};
    run_case(&c);
}

static void split_reductions_over_many_rows(void **state)
{
    (void)state;
    /* N = 200 splits the dA and dB reductions into chunks. */
    const grad_case c = {"N=200", 200, 12, 10, 5, CLORA_SCALE_ALPHA_OVER_R, 0.1f,
                         CLORA_WEIGHT_OUT_IN, 24};
    run_case(&c);
}

/* ---- LoRA on an embedding table ----------------------------------------------------- */

typedef struct table_layer {
    size_t n, V, C, r;
    float scale;
    float *table, *a, *b, *weights;
    clora_buffer *bids, *btable, *ba, *bb, *by;
} table_layer;

/* L = ½ Σ R ⊙ y², y = E[ids] + s · B · A[:, ids] on the device. */
static double table_loss(table_layer *L)
{
    CHECK_OK(clora__embedding_forward(L->by, L->btable, L->bids, "wte"));
    CHECK_OK(clora__lora_embedding_forward(L->by, L->bids, L->ba, L->bb, L->scale));
    float *y = test_download(L->by);
    double total = 0.0;
    for (size_t i = 0; i < L->n * L->C; ++i)
        total += 0.5 * (double)L->weights[i] * (double)y[i] * (double)y[i];
    free(y);
    return total;
}

static void check_table_tensor(table_layer *L, const char *what, float *host, clora_buffer *dev,
                               size_t count, const float *grad)
{
    const float eps = 0.05f;
    for (size_t i = 0; i < count; ++i) {
        const float saved = host[i];
        float v = saved + eps;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        double up = table_loss(L);
        v = saved - eps;
        CHECK_OK(clora_buffer_upload(dev, i, &v, 1));
        double down = table_loss(L);
        CHECK_OK(clora_buffer_upload(dev, i, &saved, 1));
        double numeric = (up - down) / (2.0 * (double)eps);
        if (fabs(numeric - (double)grad[i]) > 2e-3 + 2e-3 * fabs(numeric))
            fail_msg("embedding LoRA: d%s[%zu] is %.7g by backward, %.7g by finite differences",
                     what, i, (double)grad[i], numeric);
    }
}

/* Ids repeat (their rows' gradients sum) and include the padding row 0,
 * whose column of A gets no gradient: its finite difference is not zero,
 * so that column is checked to be zero instead, as PyTorch leaves it. */
static void embedding_lora_with_repeats_and_padding(void **state)
{
    (void)state;
    table_layer L = {0};
    L.n = 9, L.V = 7, L.C = 5, L.r = 3, L.scale = 1.5f;
    const int32_t ids[9] = {3, 1, 3, 0, 6, 3, 2, 1, 0};
    uint64_t rng = 4321;
    L.table = test_alloc(L.V * L.C);
    L.a = test_alloc(L.r * L.V);
    L.b = test_alloc(L.C * L.r);
    L.weights = test_alloc(L.n * L.C);
    test_fill_uniform(L.table, L.V * L.C, &rng, -1, 1);
    test_fill_uniform(L.a, L.r * L.V, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.b, L.C * L.r, &rng, -0.5f, 0.5f);
    test_fill_uniform(L.weights, L.n * L.C, &rng, -1, 1);
    const size_t n = L.n;
    CHECK_OK(clora_buffer_create_typed(&L.bids, test_device, CLORA_DTYPE_I32, 1, &n));
    CHECK_OK(clora_buffer_upload_i32(L.bids, 0, ids, n));
    L.btable = test_buffer_2d(L.V, L.C, L.table);
    L.ba = test_buffer_2d(L.r, L.V, L.a);
    L.bb = test_buffer_2d(L.C, L.r, L.b);
    L.by = test_buffer_2d(L.n, L.C, NULL);

    table_loss(&L);
    float *y = test_download(L.by);
    float *dy = test_alloc(L.n * L.C);
    for (size_t i = 0; i < L.n * L.C; ++i)
        dy[i] = L.weights[i] * y[i];
    clora_buffer *bdy = test_buffer_2d(L.n, L.C, dy);
    clora_buffer *bda = test_buffer_2d(L.r, L.V, NULL), *bdb = test_buffer_2d(L.C, L.r, NULL);
    CHECK_OK(clora__lora_embedding_backward(bda, bdb, bdy, L.bids, L.ba, L.bb, L.scale, -1));
    float *da = test_download(bda), *db = test_download(bdb);
    check_table_tensor(&L, "A", L.a, L.ba, L.r * L.V, da);
    check_table_tensor(&L, "B", L.b, L.bb, L.C * L.r, db);

    /* the padding row: the same gradients elsewhere, none in its column */
    clora_buffer *bpa = test_buffer_2d(L.r, L.V, NULL);
    CHECK_OK(clora__lora_embedding_backward(bpa, NULL, bdy, L.bids, L.ba, L.bb, L.scale, 0));
    float *pa = test_download(bpa);
    for (size_t k = 0; k < L.r; ++k)
        for (size_t v = 0; v < L.V; ++v) {
            if (v == 0)
                assert_true(fabsf(da[k * L.V]) > 0.0f); /* without padding, it has one */
            if (v == 0)
                assert_true(pa[k * L.V + v] == 0.0f);
            else
                assert_memory_equal(&pa[k * L.V + v], &da[k * L.V + v], sizeof(float));
        }

    float *host[] = {L.table, L.a, L.b, L.weights, y, dy, da, db, pa};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {L.bids, L.btable, L.ba, L.bb, L.by, bdy, bda, bdb, bpa};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedding_lora_with_repeats_and_padding),
        cmocka_unit_test(peft_layout_no_dropout),
        cmocka_unit_test(seed_scale_with_dropout_in_out_weight),
        cmocka_unit_test(rank_one_single_row),
        cmocka_unit_test(split_reductions_over_many_rows),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
