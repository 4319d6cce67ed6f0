/* test_errors.c — every bad input to the ops returns its own status with a
 * message naming the argument, and leaves the outputs untouched. */
#include "support.h"

#include <math.h>
#include <stdlib.h>

enum { N = 4, IN = 6, OUT = 5, R = 3 };

/* A well-formed layer; each test breaks one thing. */
typedef struct layer {
    clora_buffer *x, *w, *w_in_out, *b, *a, *bm, *y, *h, *dy, *dx, *da, *db, *dw;
    clora_lora_spec spec;
} layer;

static layer L;

static int setup(void **state)
{
    if (test_open_device(state) != 0)
        return -1;
    L.x = test_buffer_2d(N, IN, NULL);
    L.w = test_buffer_2d(OUT, IN, NULL);
    L.w_in_out = test_buffer_2d(IN, OUT, NULL);
    L.b = test_buffer_1d(OUT, NULL);
    L.a = test_buffer_2d(R, IN, NULL);
    L.bm = test_buffer_2d(OUT, R, NULL);
    L.y = test_buffer_2d(N, OUT, NULL);
    L.h = test_buffer_2d(N, R, NULL);
    L.dy = test_buffer_2d(N, OUT, NULL);
    L.dx = test_buffer_2d(N, IN, NULL);
    L.da = test_buffer_2d(R, IN, NULL);
    L.db = test_buffer_2d(OUT, R, NULL);
    L.dw = test_buffer_2d(OUT, IN, NULL);
    L.spec = (clora_lora_spec){8.0f, CLORA_SCALE_ALPHA_OVER_R, 0.0f, 0, CLORA_WEIGHT_OUT_IN, 0};
    return 0;
}

static int teardown(void **state)
{
    clora_buffer *all[] = {L.x, L.y, L.w, L.w_in_out, L.b, L.a, L.bm,
                           L.h, L.dy, L.dx, L.da, L.db, L.dw};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
    return test_close_device(state);
}

static clora_status forward_with(const clora_buffer *a, const clora_buffer *bm,
                                 const clora_lora_spec *spec)
{
    return clora_lora_forward(L.y, L.h, L.x, L.w, L.b, a, bm, spec);
}

static void valid_layer_runs(void **state)
{
    (void)state;
    CHECK_OK(forward_with(L.a, L.bm, &L.spec));
    CHECK_OK(clora_lora_backward(L.dx, L.da, L.db, L.dy, L.x, L.h, L.w, L.a, L.bm, &L.spec));
    CHECK_OK(clora_linear_forward(L.y, L.x, L.w, L.b, CLORA_WEIGHT_OUT_IN));
    CHECK_OK(clora_linear_backward(L.dx, L.dw, L.b, L.dy, L.x, L.w, CLORA_WEIGHT_OUT_IN));
}

static void rank_zero_is_invalid_rank(void **state)
{
    (void)state;
    const size_t a_shape[2] = {0, IN}, b_shape[2] = {OUT, 0};
    clora_buffer *a = test_buffer(2, a_shape, NULL), *bm = test_buffer(2, b_shape, NULL);
    CHECK_STATUS(forward_with(a, bm, &L.spec), CLORA_ERR_INVALID_RANK);
    test_expect_message("r = 0");
    CHECK_STATUS(clora_lora_backward(L.dx, NULL, NULL, L.dy, L.x, L.h, L.w, a, bm, &L.spec),
                 CLORA_ERR_INVALID_RANK);
    clora_buffer_destroy(a);
    clora_buffer_destroy(bm);
}

static void rank_above_256_is_invalid_rank(void **state)
{
    (void)state;
    clora_buffer *a = test_buffer_2d(257, IN, NULL), *bm = test_buffer_2d(OUT, 257, NULL);
    CHECK_STATUS(forward_with(a, bm, &L.spec), CLORA_ERR_INVALID_RANK);
    test_expect_message("r = 257");
    test_expect_message("1 <= r <= 256");
    clora_buffer_destroy(a);
    clora_buffer_destroy(bm);
}

static void lora_a_with_wrong_in_is_a_shape_mismatch(void **state)
{
    (void)state;
    clora_buffer *a = test_buffer_2d(R, IN + 1, NULL);
    CHECK_STATUS(forward_with(a, L.bm, &L.spec), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("lora_a has shape (3, 7), expected (r, in) = (3, 6)");
    clora_buffer_destroy(a);
    const size_t a3[3] = {1, R, IN};
    a = test_buffer(3, a3, NULL);
    CHECK_STATUS(forward_with(a, L.bm, &L.spec), CLORA_ERR_SHAPE_MISMATCH);
    clora_buffer_destroy(a);
}

static void lora_b_with_wrong_rank_is_a_shape_mismatch(void **state)
{
    (void)state;
    clora_buffer *bm = test_buffer_2d(OUT, R + 1, NULL);
    CHECK_STATUS(forward_with(L.a, bm, &L.spec), CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("lora_b");
    test_expect_message("(out, r)");
    clora_buffer_destroy(bm);
}

static void activations_with_wrong_shapes(void **state)
{
    (void)state;
    clora_buffer *x_wrong = test_buffer_2d(N, IN + 2, NULL);
    CHECK_STATUS(clora_lora_forward(L.y, L.h, x_wrong, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("weight has shape (5, 6), expected (out, in) = (5, 8)");
    clora_buffer *y_wrong = test_buffer_2d(N + 1, OUT, NULL);
    CHECK_STATUS(clora_lora_forward(y_wrong, L.h, L.x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("y has shape (5, 5)");
    clora_buffer *h_wrong = test_buffer_2d(N, R + 1, NULL);
    CHECK_STATUS(clora_lora_forward(L.y, h_wrong, L.x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("h has shape");
    CHECK_STATUS(clora_lora_backward(L.dx, L.da, L.db, L.dy, L.x, h_wrong, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    clora_buffer *dy_wrong = test_buffer_2d(N, OUT + 1, NULL);
    CHECK_STATUS(clora_lora_backward(L.dx, L.da, L.db, dy_wrong, L.x, L.h, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("dy");
    CHECK_STATUS(clora_lora_backward(L.dx, L.db, L.da, L.dy, L.x, L.h, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("d_lora_a");
    clora_buffer *bufs[] = {x_wrong, y_wrong, h_wrong, dy_wrong};
    for (int i = 0; i < 4; ++i)
        clora_buffer_destroy(bufs[i]);
}

static void bias_and_weight_with_wrong_shapes(void **state)
{
    (void)state;
    clora_buffer *b_wrong = test_buffer_1d(OUT + 1, NULL);
    CHECK_STATUS(clora_lora_forward(L.y, L.h, L.x, L.w, b_wrong, L.a, L.bm, &L.spec),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("bias has shape (6), expected (out) = (5)");
    CHECK_STATUS(clora_linear_forward(L.y, L.x, L.w, b_wrong, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_SHAPE_MISMATCH);
    /* An (in, out) weight handed over as (out, in). */
    CHECK_STATUS(clora_linear_forward(L.y, L.x, L.w_in_out, L.b, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_SHAPE_MISMATCH);
    CHECK_STATUS(clora_linear_backward(L.dx, L.dw, NULL, L.dy, L.x, L.w_in_out, CLORA_WEIGHT_IN_OUT),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("d_weight");
    CHECK_STATUS(clora_linear_forward(L.y, L.x, L.b, NULL, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_SHAPE_MISMATCH);
    test_expect_message("a weight is 2-D");
    clora_buffer_destroy(b_wrong);
}

static void null_arguments(void **state)
{
    (void)state;
    CHECK_STATUS(clora_lora_forward(NULL, L.h, L.x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_NULL_ARGUMENT);
    test_expect_message("y is NULL");
    CHECK_STATUS(clora_lora_forward(L.y, L.h, NULL, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_lora_forward(L.y, L.h, L.x, NULL, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(forward_with(NULL, L.bm, &L.spec), CLORA_ERR_NULL_ARGUMENT);
    test_expect_message("lora_a is NULL");
    CHECK_STATUS(forward_with(L.a, NULL, &L.spec), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(forward_with(L.a, L.bm, NULL), CLORA_ERR_NULL_ARGUMENT);
    test_expect_message("spec is NULL");
    CHECK_STATUS(clora_lora_backward(L.dx, L.da, L.db, L.dy, L.x, NULL, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_NULL_ARGUMENT);
    test_expect_message("h is NULL");
    CHECK_STATUS(clora_lora_backward(L.dx, L.da, L.db, NULL, L.x, L.h, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_linear_forward(L.y, NULL, L.w, NULL, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_linear_backward(L.dx, NULL, NULL, NULL, L.x, L.w, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_NULL_ARGUMENT);
}

static void bad_spec_values(void **state)
{
    (void)state;
    clora_lora_spec spec = L.spec;
    spec.dropout = 1.0f;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("dropout");
    spec.dropout = -0.1f;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    spec.dropout = NAN;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    spec = L.spec;
    spec.alpha = INFINITY;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("alpha");
    spec = L.spec;
    spec.scale_mode = (clora_scale_mode)7;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("scale mode 7");
    spec = L.spec;
    spec.weight_layout = (clora_weight_layout)5;
    CHECK_STATUS(forward_with(L.a, L.bm, &spec), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("weight layout 5");
}

static void outputs_overlapping_inputs_are_rejected(void **state)
{
    (void)state;
    /* y written into x's storage */
    clora_buffer *shared = test_buffer_1d(N * (IN + OUT), NULL);
    clora_buffer *x = NULL, *y = NULL;
    const size_t x_shape[2] = {N, IN}, y_shape[2] = {N, OUT};
    CHECK_OK(clora_buffer_view(&x, shared, 0, 2, x_shape));
    CHECK_OK(clora_buffer_view(&y, shared, 2, 2, y_shape));
    CHECK_STATUS(clora_lora_forward(y, L.h, x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("output y overlaps input x");
    CHECK_STATUS(clora_linear_forward(y, x, L.w, NULL, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_INVALID_ARGUMENT);
    /* a gradient written over the parameter itself */
    CHECK_STATUS(clora_lora_backward(L.dx, L.a, L.db, L.dy, L.x, L.h, L.w, L.a, L.bm, &L.spec),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("d_lora_a overlaps input lora_a");
    /* two outputs sharing storage */
    clora_buffer *h = NULL;
    const size_t h_shape[2] = {N, R};
    CHECK_OK(clora_buffer_view(&h, shared, 2 + N * OUT - 1, 2, h_shape));
    CHECK_STATUS(clora_lora_forward(y, h, L.x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("output y overlaps output h");
    clora_buffer_destroy(x);
    clora_buffer_destroy(y);
    clora_buffer_destroy(h);
    clora_buffer_destroy(shared);
}

static void buffers_of_another_device_are_rejected(void **state)
{
    (void)state;
    clora_device *other = NULL;
    CHECK_OK(clora_device_open(&other, NULL));
    clora_buffer *a = NULL;
    CHECK_OK(clora_buffer_create_2d(&a, other, R, IN));
    CHECK_STATUS(forward_with(a, L.bm, &L.spec), CLORA_ERR_DEVICE_MISMATCH);
    test_expect_message("lora_a belongs to a different device");
    CHECK_STATUS(clora_buffer_copy(L.da, a), CLORA_ERR_DEVICE_MISMATCH);
    clora_buffer_destroy(a);
    clora_device_destroy(other);
}

static void empty_activations_are_rejected(void **state)
{
    (void)state;
    const size_t empty_x[2] = {0, IN}, empty_y[2] = {0, OUT};
    clora_buffer *x = test_buffer(2, empty_x, NULL), *y = test_buffer(2, empty_y, NULL);
    CHECK_STATUS(clora_lora_forward(y, NULL, x, L.w, L.b, L.a, L.bm, &L.spec),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("x has shape (0, 6); it must not be empty");
    CHECK_STATUS(clora_linear_forward(y, x, L.w, NULL, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_INVALID_ARGUMENT);
    clora_buffer_destroy(x);
    clora_buffer_destroy(y);
}

static void failed_calls_leave_outputs_untouched(void **state)
{
    (void)state;
    CHECK_OK(clora_buffer_fill(L.y, 42.0f));
    clora_buffer *bm = test_buffer_2d(OUT, R + 1, NULL);
    CHECK_STATUS(forward_with(L.a, bm, &L.spec), CLORA_ERR_SHAPE_MISMATCH);
    float *y = test_download(L.y);
    for (size_t i = 0; i < N * OUT; ++i)
        assert_true(y[i] == 42.0f);
    free(y);
    clora_buffer_destroy(bm);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(valid_layer_runs),
        cmocka_unit_test(rank_zero_is_invalid_rank),
        cmocka_unit_test(rank_above_256_is_invalid_rank),
        cmocka_unit_test(lora_a_with_wrong_in_is_a_shape_mismatch),
        cmocka_unit_test(lora_b_with_wrong_rank_is_a_shape_mismatch),
        cmocka_unit_test(activations_with_wrong_shapes),
        cmocka_unit_test(bias_and_weight_with_wrong_shapes),
        cmocka_unit_test(null_arguments),
        cmocka_unit_test(bad_spec_values),
        cmocka_unit_test(outputs_overlapping_inputs_are_rejected),
        cmocka_unit_test(buffers_of_another_device_are_rejected),
        cmocka_unit_test(empty_activations_are_rejected),
        cmocka_unit_test(failed_calls_leave_outputs_untouched),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
