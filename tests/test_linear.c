/* test_linear.c — the Linear layer (CLBlast GEMMs plus clora's bias kernels)
 * against the plain-C reference: both weight layouts, with and without
 * bias, odd sizes, leading dimensions, gradient accumulation, determinism. */
#include "support.h"

#include <stdlib.h>

typedef struct shape {
    size_t n, in, out;
} shape;

/* Odd sizes, N = 1, in != out, and sizes that are no multiple of any tile. */
static const shape shapes[] = {
    {1, 1, 1}, {1, 7, 5}, {3, 17, 33}, {37, 129, 65}, {64, 100, 90}, {130, 257, 31}, {300, 64, 48},
};
#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

/* Host data and device buffers of one Linear case. */
typedef struct linear_case {
    shape s;
    float *x, *w, *b, *dy, *dw0, *db0;
    clora_buffer *bx, *bw, *bb, *by, *bdy, *bdx, *bdw, *bdb;
} linear_case;

static void case_create(linear_case *c, shape s, clora_weight_layout layout, uint64_t seed)
{
    c->s = s;
    uint64_t rng = seed;
    c->x = test_alloc(s.n * s.in);
    c->w = test_alloc(s.out * s.in);
    c->b = test_alloc(s.out);
    c->dy = test_alloc(s.n * s.out);
    c->dw0 = test_alloc(s.out * s.in);
    c->db0 = test_alloc(s.out);
    test_fill_uniform(c->x, s.n * s.in, &rng, -1, 1);
    test_fill_uniform(c->w, s.out * s.in, &rng, -1, 1);
    test_fill_uniform(c->b, s.out, &rng, -1, 1);
    test_fill_uniform(c->dy, s.n * s.out, &rng, -1, 1);
    /* Gradients start non-zero: backward must add to them. */
    test_fill_uniform(c->dw0, s.out * s.in, &rng, -1, 1);
    test_fill_uniform(c->db0, s.out, &rng, -1, 1);
    c->bx = test_buffer_2d(s.n, s.in, c->x);
    c->bw = layout == CLORA_WEIGHT_OUT_IN ? test_buffer_2d(s.out, s.in, c->w)
                                          : test_buffer_2d(s.in, s.out, c->w);
    c->bdw = layout == CLORA_WEIGHT_OUT_IN ? test_buffer_2d(s.out, s.in, c->dw0)
                                           : test_buffer_2d(s.in, s.out, c->dw0);
    c->bb = test_buffer_1d(s.out, c->b);
    c->bdb = test_buffer_1d(s.out, c->db0);
    c->by = test_buffer_2d(s.n, s.out, NULL);
    c->bdy = test_buffer_2d(s.n, s.out, c->dy);
    c->bdx = test_buffer_2d(s.n, s.in, NULL);
    CHECK_OK(clora_buffer_fill(c->bdx, 99.0f)); /* dx must be overwritten */
}

static void case_destroy(linear_case *c)
{
    float *host[] = {c->x, c->w, c->b, c->dy, c->dw0, c->db0};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {c->bx, c->bw, c->bb, c->by, c->bdy, c->bdx, c->bdw, c->bdb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

static void check_forward(clora_weight_layout layout, int with_bias)
{
    for (size_t i = 0; i < SHAPE_COUNT; ++i) {
        linear_case c;
        case_create(&c, shapes[i], layout, 100 + i);
        CHECK_OK(clora_linear_forward(c.by, c.bx, c.bw, with_bias ? c.bb : NULL, layout));
        float *y = test_download(c.by);
        float *want = test_alloc(c.s.n * c.s.out);
        clora_reference_linear_forward(want, c.x, c.w, with_bias ? c.b : NULL, c.s.n, c.s.in,
                                       c.s.out, layout);
        test_assert_close("linear y", y, want, c.s.n * c.s.out, 1e-5, 1e-4);
        free(y);
        free(want);
        case_destroy(&c);
    }
}

static void forward_out_in_with_bias(void **state)
{
    (void)state;
    check_forward(CLORA_WEIGHT_OUT_IN, 1);
}

static void forward_out_in_without_bias(void **state)
{
    (void)state;
    check_forward(CLORA_WEIGHT_OUT_IN, 0);
}

static void forward_in_out_layout(void **state)
{
    (void)state;
    check_forward(CLORA_WEIGHT_IN_OUT, 1);
}

static void check_backward(clora_weight_layout layout)
{
    for (size_t i = 0; i < SHAPE_COUNT; ++i) {
        linear_case c;
        case_create(&c, shapes[i], layout, 200 + i);
        const shape s = c.s;
        CHECK_OK(clora_linear_backward(c.bdx, c.bdw, c.bdb, c.bdy, c.bx, c.bw, layout));
        float *dx = test_download(c.bdx), *dw = test_download(c.bdw), *db = test_download(c.bdb);
        float *want_dx = test_alloc(s.n * s.in);
        clora_reference_linear_backward(want_dx, c.dw0, c.db0, c.dy, c.x, c.w, s.n, s.in, s.out,
                                        layout);
        test_assert_close("linear dx", dx, want_dx, s.n * s.in, 1e-5, 1e-4);
        test_assert_close("linear dW", dw, c.dw0, s.out * s.in, 1e-5, 1e-4);
        test_assert_close("linear db", db, c.db0, s.out, 1e-5, 1e-4);
        free(dx);
        free(dw);
        free(db);
        free(want_dx);
        case_destroy(&c);
    }
}

static void backward_out_in(void **state)
{
    (void)state;
    check_backward(CLORA_WEIGHT_OUT_IN);
}

static void backward_in_out(void **state)
{
    (void)state;
    check_backward(CLORA_WEIGHT_IN_OUT);
}

static void backward_frozen_weight_computes_only_dx(void **state)
{
    (void)state;
    linear_case c;
    case_create(&c, shapes[3], CLORA_WEIGHT_OUT_IN, 7);
    CHECK_OK(clora_linear_backward(c.bdx, NULL, NULL, c.bdy, c.bx, c.bw, CLORA_WEIGHT_OUT_IN));
    float *dx = test_download(c.bdx);
    float *want = test_alloc(c.s.n * c.s.in);
    clora_reference_linear_backward(want, NULL, NULL, c.dy, c.x, c.w, c.s.n, c.s.in, c.s.out,
                                    CLORA_WEIGHT_OUT_IN);
    test_assert_close("dx only", dx, want, c.s.n * c.s.in, 1e-5, 1e-4);
    /* The untouched gradients still hold their starting values. */
    float *dw = test_download(c.bdw);
    test_assert_identical("dW untouched", dw, c.dw0, c.s.out * c.s.in);
    free(dx);
    free(want);
    free(dw);
    case_destroy(&c);
}

static void leading_dimensions_are_rows(void **state)
{
    (void)state;
    enum { B = 2, T = 3, IN = 5, OUT = 4 };
    float x[B * T * IN], w[OUT * IN], b[OUT], want[B * T * OUT];
    uint64_t rng = 3;
    test_fill_uniform(x, B * T * IN, &rng, -1, 1);
    test_fill_uniform(w, OUT * IN, &rng, -1, 1);
    test_fill_uniform(b, OUT, &rng, -1, 1);
    const size_t x_shape[3] = {B, T, IN}, y_shape[3] = {B, T, OUT};
    clora_buffer *bx = test_buffer(3, x_shape, x), *by = test_buffer(3, y_shape, NULL);
    clora_buffer *bw = test_buffer_2d(OUT, IN, w), *bb = test_buffer_1d(OUT, b);
    CHECK_OK(clora_linear_forward(by, bx, bw, bb, CLORA_WEIGHT_OUT_IN));
    float *y = test_download(by);
    clora_reference_linear_forward(want, x, w, b, B * T, IN, OUT, CLORA_WEIGHT_OUT_IN);
    test_assert_close("(B, T, out)", y, want, B * T * OUT, 1e-5, 1e-5);
    free(y);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_buffer_destroy(bw);
    clora_buffer_destroy(bb);
}

static void backward_is_deterministic(void **state)
{
    (void)state;
    linear_case c;
    case_create(&c, shapes[6], CLORA_WEIGHT_OUT_IN, 11);
    float *first_dw = NULL, *first_db = NULL;
    for (int run = 0; run < 2; ++run) {
        CHECK_OK(clora_buffer_upload(c.bdw, 0, c.dw0, c.s.out * c.s.in));
        CHECK_OK(clora_buffer_upload(c.bdb, 0, c.db0, c.s.out));
        CHECK_OK(clora_linear_backward(c.bdx, c.bdw, c.bdb, c.bdy, c.bx, c.bw, CLORA_WEIGHT_OUT_IN));
        float *dw = test_download(c.bdw), *db = test_download(c.bdb);
        if (run == 0) {
            first_dw = dw;
            first_db = db;
        } else {
            test_assert_identical("dW run 2 vs run 1", dw, first_dw, c.s.out * c.s.in);
            test_assert_identical("db run 2 vs run 1", db, first_db, c.s.out);
            free(dw);
            free(db);
        }
    }
    free(first_dw);
    free(first_db);
    case_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_out_in_with_bias),
        cmocka_unit_test(forward_out_in_without_bias),
        cmocka_unit_test(forward_in_out_layout),
        cmocka_unit_test(backward_out_in),
        cmocka_unit_test(backward_in_out),
        cmocka_unit_test(backward_frozen_weight_computes_only_dx),
        cmocka_unit_test(leading_dimensions_are_rows),
        cmocka_unit_test(backward_is_deterministic),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
