/* test_lora.c — the LoRA linear op against the plain-C reference: many
 * shapes (N = 1, r = 1, r = 256, in != out, sizes no tile divides, N long
 * enough to split reductions), every scale mode, both weight layouts,
 * dropout, optional outputs, accumulation, determinism, scratch size. */
#include "support.h"

#include <math.h>
#include <stdlib.h>

typedef struct shape {
    size_t n, in, out, r;
} shape;

static const shape shapes[] = {
    {1, 1, 1, 1},     {1, 5, 7, 3},      {3, 17, 33, 1},   {37, 129, 65, 16},
    {64, 100, 90, 5}, {5, 13, 11, 256},  {7, 300, 200, 256}, {130, 64, 48, 7},
    {300, 40, 50, 9}, {1000, 33, 21, 4}, {257, 150, 70, 17},
};
#define SHAPE_COUNT (sizeof shapes / sizeof shapes[0])

static const double ATOL = 1e-4, RTOL = 1e-4;

/* Host data and device buffers of one LoRA layer. */
typedef struct lora_case {
    shape s;
    clora_lora_spec spec;
    float *x, *w, *b, *a, *bm, *dy, *da0, *db0;
    clora_buffer *bx, *bw, *bb, *ba, *bbm, *by, *bh, *bdy, *bdx, *bda, *bdb;
} lora_case;

static void case_create(lora_case *c, shape s, clora_lora_spec spec, uint64_t seed)
{
    c->s = s;
    c->spec = spec;
    uint64_t rng = seed;
    float bound_in = 1.0f / sqrtf((float)s.in), bound_r = 1.0f / sqrtf((float)s.r);
    c->x = test_alloc(s.n * s.in);
    c->w = test_alloc(s.out * s.in);
    c->b = test_alloc(s.out);
    c->a = test_alloc(s.r * s.in);
    c->bm = test_alloc(s.out * s.r);
    c->dy = test_alloc(s.n * s.out);
    c->da0 = test_alloc(s.r * s.in);
    c->db0 = test_alloc(s.out * s.r);
    test_fill_uniform(c->x, s.n * s.in, &rng, -1, 1);
    test_fill_uniform(c->w, s.out * s.in, &rng, -bound_in, bound_in);
    test_fill_uniform(c->b, s.out, &rng, -bound_in, bound_in);
    test_fill_uniform(c->a, s.r * s.in, &rng, -bound_in, bound_in);
    test_fill_uniform(c->bm, s.out * s.r, &rng, -bound_r, bound_r);
    test_fill_uniform(c->dy, s.n * s.out, &rng, -1, 1);
    test_fill_uniform(c->da0, s.r * s.in, &rng, -1, 1);
    test_fill_uniform(c->db0, s.out * s.r, &rng, -1, 1);
    c->bx = test_buffer_2d(s.n, s.in, c->x);
    c->bw = spec.weight_layout == CLORA_WEIGHT_OUT_IN ? test_buffer_2d(s.out, s.in, c->w)
                                                      : test_buffer_2d(s.in, s.out, c->w);
    c->bb = test_buffer_1d(s.out, c->b);
    c->ba = test_buffer_2d(s.r, s.in, c->a);
    c->bbm = test_buffer_2d(s.out, s.r, c->bm);
    c->by = test_buffer_2d(s.n, s.out, NULL);
    c->bh = test_buffer_2d(s.n, s.r, NULL);
    c->bdy = test_buffer_2d(s.n, s.out, c->dy);
    c->bdx = test_buffer_2d(s.n, s.in, NULL);
    CHECK_OK(clora_buffer_fill(c->bdx, 99.0f)); /* dx must be overwritten */
    c->bda = test_buffer_2d(s.r, s.in, c->da0);  /* gradients must be added to */
    c->bdb = test_buffer_2d(s.out, s.r, c->db0);
}

static void case_destroy(lora_case *c)
{
    float *host[] = {c->x, c->w, c->b, c->a, c->bm, c->dy, c->da0, c->db0};
    for (size_t i = 0; i < sizeof host / sizeof host[0]; ++i)
        free(host[i]);
    clora_buffer *bufs[] = {c->bx, c->bw, c->bb, c->ba, c->bbm, c->by,
                            c->bh, c->bdy, c->bdx, c->bda, c->bdb};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; ++i)
        clora_buffer_destroy(bufs[i]);
}

static clora_lora_spec spec_of(clora_scale_mode mode, float dropout, clora_weight_layout layout)
{
    clora_lora_spec spec = {3.0f, mode, dropout, 0x1234567890abcdefull, layout, 0};
    return spec;
}

/* Forward on the device (with or without h and bias) vs the reference. */
static void check_forward(lora_case *c, int keep_h, int with_bias)
{
    const shape s = c->s;
    const clora_buffer *bias = with_bias ? c->bb : NULL;
    CHECK_OK(clora_lora_forward(c->by, keep_h ? c->bh : NULL, c->bx, c->bw, bias, c->ba, c->bbm,
                                &c->spec));
    float *y = test_download(c->by);
    float *want_y = test_alloc(s.n * s.out), *want_h = test_alloc(s.n * s.r);
    CHECK_OK(clora_reference_lora_forward(want_y, want_h, c->x, c->w, with_bias ? c->b : NULL,
                                          c->a, c->bm, s.n, s.in, s.out, s.r, &c->spec));
    test_assert_close("lora y", y, want_y, s.n * s.out, ATOL, RTOL);
    if (keep_h) {
        float *h = test_download(c->bh);
        test_assert_close("lora h", h, want_h, s.n * s.r, ATOL, RTOL);
        free(h);
    }
    free(y);
    free(want_y);
    free(want_h);
}

/* Backward on the device (forward first, for h) vs the reference. */
static void check_backward(lora_case *c, int want_dx, int want_da, int want_db)
{
    const shape s = c->s;
    CHECK_OK(clora_lora_forward(c->by, c->bh, c->bx, c->bw, c->bb, c->ba, c->bbm, &c->spec));
    CHECK_OK(clora_lora_backward(want_dx ? c->bdx : NULL, want_da ? c->bda : NULL,
                                 want_db ? c->bdb : NULL, c->bdy, c->bx, c->bh, c->bw, c->ba,
                                 c->bbm, &c->spec));
    float *ref_dx = test_alloc(s.n * s.in);
    float *ref_da = test_alloc(s.r * s.in), *ref_db = test_alloc(s.out * s.r);
    for (size_t i = 0; i < s.r * s.in; ++i)
        ref_da[i] = c->da0[i];
    for (size_t i = 0; i < s.out * s.r; ++i)
        ref_db[i] = c->db0[i];
    CHECK_OK(clora_reference_lora_backward(ref_dx, ref_da, ref_db, c->dy, c->x, c->w, c->a, c->bm,
                                           s.n, s.in, s.out, s.r, &c->spec));
    float *dx = test_download(c->bdx), *da = test_download(c->bda), *db = test_download(c->bdb);
    if (want_dx) {
        test_assert_close("lora dx", dx, ref_dx, s.n * s.in, ATOL, RTOL);
    } else {
        for (size_t i = 0; i < s.n * s.in; ++i)
            assert_true(dx[i] == 99.0f);
    }
    test_assert_close("lora dA", da, want_da ? ref_da : c->da0, s.r * s.in, ATOL, RTOL);
    test_assert_close("lora dB", db, want_db ? ref_db : c->db0, s.out * s.r, ATOL, RTOL);
    free(dx);
    free(da);
    free(db);
    free(ref_dx);
    free(ref_da);
    free(ref_db);
}

static void forward_all_shapes_all_scale_modes(void **state)
{
    (void)state;
    const clora_scale_mode modes[3] = {CLORA_SCALE_ALPHA, CLORA_SCALE_ALPHA_OVER_R,
                                       CLORA_SCALE_ALPHA_OVER_SQRT_R};
    for (size_t i = 0; i < SHAPE_COUNT; ++i)
        for (int m = 0; m < 3; ++m) {
            lora_case c;
            case_create(&c, shapes[i], spec_of(modes[m], 0.0f, CLORA_WEIGHT_OUT_IN), 10 + i);
            check_forward(&c, 1, 1);
            case_destroy(&c);
        }
}

static void forward_in_out_layout(void **state)
{
    (void)state;
    for (size_t i = 0; i < SHAPE_COUNT; ++i) {
        lora_case c;
        case_create(&c, shapes[i], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_IN_OUT),
                    20 + i);
        check_forward(&c, 1, 1);
        case_destroy(&c);
    }
}

static void forward_without_h_or_bias(void **state)
{
    (void)state;
    for (size_t i = 0; i < SHAPE_COUNT; i += 2) {
        lora_case c;
        case_create(&c, shapes[i], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_OUT_IN),
                    30 + i);
        check_forward(&c, 0, 0);
        check_forward(&c, 0, 1);
        case_destroy(&c);
    }
}

static void backward_all_shapes(void **state)
{
    (void)state;
    for (size_t i = 0; i < SHAPE_COUNT; ++i) {
        lora_case c;
        case_create(&c, shapes[i], spec_of((clora_scale_mode)(i % 3), 0.0f, CLORA_WEIGHT_OUT_IN),
                    40 + i);
        check_backward(&c, 1, 1, 1);
        case_destroy(&c);
    }
}

static void backward_in_out_layout(void **state)
{
    (void)state;
    for (size_t i = 0; i < SHAPE_COUNT; ++i) {
        lora_case c;
        case_create(&c, shapes[i], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_IN_OUT),
                    50 + i);
        check_backward(&c, 1, 1, 1);
        case_destroy(&c);
    }
}

static void backward_optional_outputs(void **state)
{
    (void)state;
    const int combos[4][3] = {{0, 1, 1}, {1, 0, 1}, {1, 1, 0}, {0, 0, 1}};
    for (int k = 0; k < 4; ++k) {
        lora_case c;
        case_create(&c, shapes[10], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_OUT_IN),
                    60 + (uint64_t)k);
        check_backward(&c, combos[k][0], combos[k][1], combos[k][2]);
        case_destroy(&c);
    }
}

static void dropout_forward_and_backward(void **state)
{
    (void)state;
    const float rates[2] = {0.1f, 0.5f};
    for (size_t i = 0; i < SHAPE_COUNT; ++i)
        for (int p = 0; p < 2; ++p) {
            lora_case c;
            clora_weight_layout layout = i % 2 ? CLORA_WEIGHT_IN_OUT : CLORA_WEIGHT_OUT_IN;
            case_create(&c, shapes[i], spec_of(CLORA_SCALE_ALPHA_OVER_R, rates[p], layout),
                        70 + i);
            c.spec.dropout_seed = 1000 * i + (uint64_t)p;
            check_forward(&c, 1, 1);
            check_backward(&c, 1, 1, 1);
            case_destroy(&c);
            /* a part of a larger batch: its rows' masks are those of rows row0 + i */
            case_create(&c, shapes[i], spec_of(CLORA_SCALE_ALPHA_OVER_R, rates[p], layout),
                        70 + i);
            c.spec.dropout_seed = 1000 * i + (uint64_t)p;
            c.spec.dropout_row0 = 37 * i + 5;
            check_forward(&c, 1, 1);
            check_backward(&c, 1, 1, 1);
            case_destroy(&c);
        }
}

static void dropout_mask_rate_and_seed(void **state)
{
    (void)state;
    /* The reference mask keeps about 1 - p, and different seeds differ. */
    size_t kept = 0, differ = 0, total = 200 * 300;
    for (size_t row = 0; row < 200; ++row)
        for (size_t col = 0; col < 300; ++col) {
            int k1 = clora_reference_dropout_keep(1, row, col, 0.3f);
            kept += (size_t)k1;
            differ += (size_t)(k1 != clora_reference_dropout_keep(2, row, col, 0.3f));
        }
    double rate = (double)kept / (double)total;
    assert_true(rate > 0.69 && rate < 0.71);
    assert_true(differ > total / 4);
    assert_int_equal(clora_reference_dropout_keep(5, 3, 4, 0.0f), 1);

    /* On the device: the same seed repeats bit for bit, another seed does not. */
    lora_case c;
    case_create(&c, shapes[7], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.3f, CLORA_WEIGHT_OUT_IN), 80);
    CHECK_OK(clora_lora_forward(c.by, c.bh, c.bx, c.bw, c.bb, c.ba, c.bbm, &c.spec));
    float *first = test_download(c.bh);
    CHECK_OK(clora_lora_forward(c.by, c.bh, c.bx, c.bw, c.bb, c.ba, c.bbm, &c.spec));
    float *again = test_download(c.bh);
    test_assert_identical("h, same seed", again, first, c.s.n * c.s.r);
    c.spec.dropout_seed += 1;
    CHECK_OK(clora_lora_forward(c.by, c.bh, c.bx, c.bw, c.bb, c.ba, c.bbm, &c.spec));
    float *other = test_download(c.bh);
    size_t same = 0;
    for (size_t i = 0; i < c.s.n * c.s.r; ++i)
        same += first[i] == other[i];
    assert_true(same < c.s.n * c.s.r / 2);
    free(first);
    free(again);
    free(other);
    case_destroy(&c);
}

static void backward_is_deterministic(void **state)
{
    (void)state;
    /* N = 1000 splits both reductions into chunks. */
    lora_case c;
    case_create(&c, shapes[9], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.2f, CLORA_WEIGHT_OUT_IN), 90);
    float *first[3] = {0};
    for (int run = 0; run < 3; ++run) {
        CHECK_OK(clora_buffer_upload(c.bda, 0, c.da0, c.s.r * c.s.in));
        CHECK_OK(clora_buffer_upload(c.bdb, 0, c.db0, c.s.out * c.s.r));
        CHECK_OK(clora_lora_forward(c.by, c.bh, c.bx, c.bw, c.bb, c.ba, c.bbm, &c.spec));
        CHECK_OK(clora_lora_backward(c.bdx, c.bda, c.bdb, c.bdy, c.bx, c.bh, c.bw, c.ba, c.bbm,
                                     &c.spec));
        float *now[3] = {test_download(c.bdx), test_download(c.bda), test_download(c.bdb)};
        const size_t sizes[3] = {c.s.n * c.s.in, c.s.r * c.s.in, c.s.out * c.s.r};
        for (int k = 0; k < 3; ++k) {
            if (run == 0) {
                first[k] = now[k];
            } else {
                test_assert_identical("repeated backward", now[k], first[k], sizes[k]);
                free(now[k]);
            }
        }
    }
    for (int k = 0; k < 3; ++k)
        free(first[k]);
    case_destroy(&c);
}

static void gradients_accumulate_over_calls(void **state)
{
    (void)state;
    lora_case c;
    case_create(&c, shapes[8], spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.0f, CLORA_WEIGHT_OUT_IN), 95);
    const shape s = c.s;
    CHECK_OK(clora_buffer_fill(c.bda, 0.0f));
    CHECK_OK(clora_buffer_fill(c.bdb, 0.0f));
    CHECK_OK(clora_lora_forward(c.by, c.bh, c.bx, c.bw, c.bb, c.ba, c.bbm, &c.spec));
    for (int k = 0; k < 2; ++k)
        CHECK_OK(clora_lora_backward(NULL, c.bda, c.bdb, c.bdy, c.bx, c.bh, c.bw, c.ba, c.bbm,
                                     &c.spec));
    float *da = test_download(c.bda), *db = test_download(c.bdb);
    float *ref_da = test_alloc(s.r * s.in), *ref_db = test_alloc(s.out * s.r);
    CHECK_OK(clora_reference_lora_backward(NULL, ref_da, ref_db, c.dy, c.x, c.w, c.a, c.bm, s.n,
                                           s.in, s.out, s.r, &c.spec));
    for (size_t i = 0; i < s.r * s.in; ++i)
        ref_da[i] *= 2.0f;
    for (size_t i = 0; i < s.out * s.r; ++i)
        ref_db[i] *= 2.0f;
    test_assert_close("dA after two calls", da, ref_da, s.r * s.in, ATOL, RTOL);
    test_assert_close("dB after two calls", db, ref_db, s.out * s.r, ATOL, RTOL);
    free(da);
    free(db);
    free(ref_da);
    free(ref_db);
    case_destroy(&c);
}

static void leading_dimensions_are_rows(void **state)
{
    (void)state;
    enum { B = 3, T = 5, IN = 11, OUT = 6, R = 2 };
    float x[B * T * IN], w[OUT * IN], a[R * IN], bm[OUT * R], want[B * T * OUT];
    uint64_t rng = 5;
    test_fill_uniform(x, B * T * IN, &rng, -1, 1);
    test_fill_uniform(w, OUT * IN, &rng, -1, 1);
    test_fill_uniform(a, R * IN, &rng, -1, 1);
    test_fill_uniform(bm, OUT * R, &rng, -1, 1);
    const size_t x_shape[3] = {B, T, IN}, y_shape[3] = {B, T, OUT}, h_shape[3] = {B, T, R};
    clora_buffer *bx = test_buffer(3, x_shape, x), *by = test_buffer(3, y_shape, NULL);
    clora_buffer *bh = test_buffer(3, h_shape, NULL);
    clora_buffer *bw = test_buffer_2d(OUT, IN, w), *ba = test_buffer_2d(R, IN, a);
    clora_buffer *bbm = test_buffer_2d(OUT, R, bm);
    clora_lora_spec spec = spec_of(CLORA_SCALE_ALPHA, 0.0f, CLORA_WEIGHT_OUT_IN);
    CHECK_OK(clora_lora_forward(by, bh, bx, bw, NULL, ba, bbm, &spec));
    float *y = test_download(by);
    CHECK_OK(clora_reference_lora_forward(want, NULL, x, w, NULL, a, bm, B * T, IN, OUT, R, &spec));
    test_assert_close("(B, T, out)", y, want, B * T * OUT, ATOL, RTOL);
    free(y);
    clora_buffer *bufs[] = {bx, by, bh, bw, ba, bbm};
    for (int i = 0; i < 6; ++i)
        clora_buffer_destroy(bufs[i]);
}

static void scratch_never_grows_to_the_weight_size(void **state)
{
    (void)state;
    const shape s = {300, 512, 512, 4};
    lora_case c;
    case_create(&c, s, spec_of(CLORA_SCALE_ALPHA_OVER_R, 0.1f, CLORA_WEIGHT_OUT_IN), 99);
    check_backward(&c, 1, 1, 1);
    size_t scratch = clora_device_scratch_bytes(test_device);
    size_t weight_bytes = s.out * s.in * sizeof(float);
    /* g (N, r) plus split-reduction partials: far below W's size. */
    size_t bound = sizeof(float) * (s.n * s.r + 65536 + 2 * s.r * (s.in > s.out ? s.in : s.out));
    assert_true(scratch <= bound);
    assert_true(scratch < weight_bytes / 4);
    case_destroy(&c);
}

static void scale_modes(void **state)
{
    (void)state;
    assert_true(clora_lora_scale(CLORA_SCALE_ALPHA, 16.0f, 8) == 16.0f);
    assert_true(clora_lora_scale(CLORA_SCALE_ALPHA_OVER_R, 16.0f, 8) == 2.0f);
    assert_true(fabsf(clora_lora_scale(CLORA_SCALE_ALPHA_OVER_SQRT_R, 16.0f, 8) - 5.656854f) <
                1e-5f);
    assert_true(clora_lora_scale(CLORA_SCALE_ALPHA_OVER_R, 16.0f, 0) == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_all_shapes_all_scale_modes),
        cmocka_unit_test(forward_in_out_layout),
        cmocka_unit_test(forward_without_h_or_bias),
        cmocka_unit_test(backward_all_shapes),
        cmocka_unit_test(backward_in_out_layout),
        cmocka_unit_test(backward_optional_outputs),
        cmocka_unit_test(dropout_forward_and_backward),
        cmocka_unit_test(dropout_mask_rate_and_seed),
        cmocka_unit_test(backward_is_deterministic),
        cmocka_unit_test(gradients_accumulate_over_calls),
        cmocka_unit_test(leading_dimensions_are_rows),
        cmocka_unit_test(scratch_never_grows_to_the_weight_size),
        cmocka_unit_test(scale_modes),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
