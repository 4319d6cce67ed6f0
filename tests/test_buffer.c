/* test_buffer.c — device buffers: shapes, transfers, fill, copy, views,
 * wrapped cl_mem, empty tensors, and every bad argument; how activation
 * buffers keep and share their memory (core/core.h). */
#include "support.h"

#include <stdlib.h>
#include <string.h>

#include "core/core.h"

static void shape_and_numel(void **state)
{
    (void)state;
    const size_t shape[3] = {2, 3, 5};
    clora_buffer *buf = test_buffer(3, shape, NULL);
    assert_int_equal(clora_buffer_ndim(buf), 3);
    assert_int_equal(clora_buffer_dim(buf, 0), 2);
    assert_int_equal(clora_buffer_dim(buf, 2), 5);
    assert_int_equal(clora_buffer_dim(buf, 3), 0);
    assert_int_equal(clora_buffer_numel(buf), 30);
    assert_int_equal(clora_buffer_offset(buf), 0);
    assert_ptr_equal(clora_buffer_device(buf), test_device);
    assert_non_null(clora_buffer_cl_mem(buf));
    char text[32];
    assert_string_equal(clora_buffer_shape_string(buf, text, sizeof text), "(2, 3, 5)");
    /* A short output buffer truncates but stays terminated. */
    assert_int_equal(strlen(clora_buffer_shape_string(buf, text, 4)), 3);
    clora_buffer_destroy(buf);
}

static void new_buffers_are_zero(void **state)
{
    (void)state;
    clora_buffer *buf = test_buffer_2d(7, 9, NULL);
    float *host = test_download(buf);
    for (size_t i = 0; i < 63; ++i)
        assert_true(host[i] == 0.0f);
    free(host);
    clora_buffer_destroy(buf);
}

static void upload_download_round_trip(void **state)
{
    (void)state;
    enum { N = 1000 };
    float data[N], back[N];
    uint64_t rng = 1;
    test_fill_uniform(data, N, &rng, -5, 5);
    clora_buffer *buf = test_buffer_1d(N, data);
    CHECK_OK(clora_buffer_download(buf, 0, back, N));
    test_assert_identical("round trip", back, data, N);
    clora_buffer_destroy(buf);
}

static void transfers_at_element_offsets(void **state)
{
    (void)state;
    clora_buffer *buf = test_buffer_1d(10, NULL);
    const float part[3] = {1, 2, 3};
    CHECK_OK(clora_buffer_upload(buf, 6, part, 3));
    float back[4];
    CHECK_OK(clora_buffer_download(buf, 5, back, 4));
    assert_true(back[0] == 0 && back[1] == 1 && back[2] == 2 && back[3] == 3);
    /* Zero-length transfers at the very end are legal. */
    CHECK_OK(clora_buffer_upload(buf, 10, NULL, 0));
    clora_buffer_destroy(buf);
}

static void fill_sets_every_element(void **state)
{
    (void)state;
    clora_buffer *buf = test_buffer_2d(33, 17, NULL);
    CHECK_OK(clora_buffer_fill(buf, -0.75f));
    float *host = test_download(buf);
    for (size_t i = 0; i < 33 * 17; ++i)
        assert_true(host[i] == -0.75f);
    free(host);
    clora_buffer_destroy(buf);
}

static void views_share_storage_and_outlive_base(void **state)
{
    (void)state;
    float data[12];
    for (int i = 0; i < 12; ++i)
        data[i] = (float)i;
    const size_t base_shape[2] = {3, 4};
    clora_buffer *base = test_buffer(2, base_shape, data);
    clora_buffer *row = NULL;
    const size_t row_shape[1] = {4};
    CHECK_OK(clora_buffer_view(&row, base, 4, 1, row_shape));
    assert_int_equal(clora_buffer_offset(row), 4);
    CHECK_OK(clora_buffer_fill(row, 100.0f));

    float *host = test_download(base);
    for (int i = 0; i < 12; ++i)
        assert_true(host[i] == ((i >= 4 && i < 8) ? 100.0f : (float)i));
    free(host);

    /* A view of a view adds offsets; the view stays valid without its base. */
    clora_buffer *inner = NULL;
    const size_t one[1] = {2};
    CHECK_OK(clora_buffer_view(&inner, row, 1, 1, one));
    assert_int_equal(clora_buffer_offset(inner), 5);
    clora_buffer_destroy(base);
    clora_buffer_destroy(row);
    float two[2];
    CHECK_OK(clora_buffer_download(inner, 0, two, 2));
    assert_true(two[0] == 100.0f && two[1] == 100.0f);
    clora_buffer_destroy(inner);
}

static void view_past_the_end_is_too_small(void **state)
{
    (void)state;
    clora_buffer *base = test_buffer_1d(10, NULL);
    clora_buffer *view = NULL;
    const size_t shape[1] = {4};
    CHECK_STATUS(clora_buffer_view(&view, base, 7, 1, shape), CLORA_ERR_BUFFER_TOO_SMALL);
    test_expect_message("offset 7");
    assert_null(view);
    CHECK_STATUS(clora_buffer_view(&view, base, 11, 1, shape), CLORA_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(clora_buffer_view(&view, NULL, 0, 1, shape), CLORA_ERR_NULL_ARGUMENT);
    clora_buffer_destroy(base);
}

static void wrap_application_memory(void **state)
{
    (void)state;
    cl_int err;
    float data[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cl_mem mem = clCreateBuffer(clora_device_cl_context(test_device),
                                CL_MEM_READ_WRITE | CL_MEM_COPY_HOST_PTR, sizeof data, data, &err);
    assert_int_equal(err, CL_SUCCESS);
    clora_buffer *buf = NULL;
    const size_t shape[2] = {2, 3};
    CHECK_OK(clora_buffer_wrap(&buf, test_device, mem, 2, 2, shape));
    float back[6];
    CHECK_OK(clora_buffer_download(buf, 0, back, 6));
    for (int i = 0; i < 6; ++i)
        assert_true(back[i] == data[i + 2]);
    clora_buffer_destroy(buf);

    /* The cl_mem is 8 floats: 2 x 3 at offset 3 does not fit. */
    CHECK_STATUS(clora_buffer_wrap(&buf, test_device, mem, 3, 2, shape),
                 CLORA_ERR_BUFFER_TOO_SMALL);
    test_expect_message("holds 8 floats");
    CHECK_STATUS(clora_buffer_wrap(&buf, test_device, NULL, 0, 2, shape), CLORA_ERR_NULL_ARGUMENT);
    /* Still ours to release: wrap retained and destroy released. */
    assert_int_equal(clReleaseMemObject(mem), CL_SUCCESS);
}

static void wrap_rejects_memory_of_another_context(void **state)
{
    (void)state;
    cl_device_id device = clora_device_cl_device(test_device);
    cl_int err;
    cl_context other = clCreateContext(NULL, 1, &device, NULL, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    cl_mem mem = clCreateBuffer(other, CL_MEM_READ_WRITE, 64, NULL, &err);
    assert_int_equal(err, CL_SUCCESS);
    clora_buffer *buf = NULL;
    const size_t shape[1] = {4};
    CHECK_STATUS(clora_buffer_wrap(&buf, test_device, mem, 0, 1, shape), CLORA_ERR_DEVICE_MISMATCH);
    clReleaseMemObject(mem);
    clReleaseContext(other);
}

static void transfers_past_the_end_are_too_small(void **state)
{
    (void)state;
    clora_buffer *buf = test_buffer_1d(5, NULL);
    float host[6] = {0};
    CHECK_STATUS(clora_buffer_upload(buf, 0, host, 6), CLORA_ERR_BUFFER_TOO_SMALL);
    test_expect_message("6 elements at offset 0");
    CHECK_STATUS(clora_buffer_download(buf, 3, host, 3), CLORA_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(clora_buffer_download(buf, 6, host, 0), CLORA_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(clora_buffer_upload(buf, 0, NULL, 2), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_buffer_download(NULL, 0, host, 1), CLORA_ERR_NULL_ARGUMENT);
    clora_buffer_destroy(buf);
}

static void bad_shapes_are_rejected(void **state)
{
    (void)state;
    clora_buffer *buf = NULL;
    const size_t shape[5] = {1, 2, 3, 4, 5};
    CHECK_STATUS(clora_buffer_create(&buf, test_device, 0, shape), CLORA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(clora_buffer_create(&buf, test_device, 5, shape), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("5 dimensions");
    CHECK_STATUS(clora_buffer_create(&buf, test_device, 2, NULL), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_buffer_create(&buf, NULL, 2, shape), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_buffer_create(NULL, test_device, 2, shape), CLORA_ERR_NULL_ARGUMENT);
    const size_t huge[2] = {(size_t)1 << 40, (size_t)1 << 30};
    CHECK_STATUS(clora_buffer_create(&buf, test_device, 2, huge), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("overflows");
    assert_null(buf);
}

static void allocation_beyond_the_device_limit_fails_cleanly(void **state)
{
    (void)state;
    clora_device_info info;
    CHECK_OK(clora_device_get_info(test_device, &info));
    clora_buffer *buf = NULL;
    CHECK_STATUS(clora_buffer_create_1d(&buf, test_device, (size_t)(info.max_alloc_bytes / 4) + 1),
                 CLORA_ERR_OUT_OF_DEVICE_MEMORY);
    test_expect_message("largest allocation");
    assert_null(buf);
}

static void empty_buffers(void **state)
{
    (void)state;
    const size_t shape[2] = {0, 7};
    clora_buffer *buf = test_buffer(2, shape, NULL);
    assert_int_equal(clora_buffer_numel(buf), 0);
    assert_null(clora_buffer_cl_mem(buf));
    CHECK_OK(clora_buffer_fill(buf, 1.0f));
    CHECK_OK(clora_buffer_upload(buf, 0, NULL, 0));
    float host[1];
    CHECK_STATUS(clora_buffer_download(buf, 0, host, 1), CLORA_ERR_BUFFER_TOO_SMALL);
    clora_buffer_destroy(buf);
}

static void copy_between_buffers(void **state)
{
    (void)state;
    float data[6] = {1, 2, 3, 4, 5, 6};
    clora_buffer *src = test_buffer_2d(2, 3, data);
    clora_buffer *dst = test_buffer_1d(6, NULL);
    CHECK_OK(clora_buffer_copy(dst, src));
    float *back = test_download(dst);
    test_assert_identical("copy", back, data, 6);
    free(back);

    clora_buffer *wrong = test_buffer_1d(5, NULL);
    CHECK_STATUS(clora_buffer_copy(wrong, src), CLORA_ERR_SHAPE_MISMATCH);
    clora_buffer *view = NULL;
    const size_t shape[1] = {3};
    CHECK_OK(clora_buffer_view(&view, src, 2, 1, shape));
    clora_buffer *first_half = NULL;
    CHECK_OK(clora_buffer_view(&first_half, src, 0, 1, shape));
    CHECK_STATUS(clora_buffer_copy(view, first_half), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("overlap");
    CHECK_STATUS(clora_buffer_copy(NULL, src), CLORA_ERR_NULL_ARGUMENT);
    clora_buffer *buffers[] = {src, dst, wrong, view, first_half};
    for (int i = 0; i < 5; ++i)
        clora_buffer_destroy(buffers[i]);
}

static void int32_buffers(void **state)
{
    (void)state;
    const size_t shape[2] = {3, 4};
    clora_buffer *ids = NULL;
    CHECK_OK(clora_buffer_create_typed(&ids, test_device, CLORA_DTYPE_I32, 2, shape));
    assert_int_equal(clora_buffer_dtype(ids), CLORA_DTYPE_I32);
    int32_t data[12], back[12];
    for (int i = 0; i < 12; ++i)
        data[i] = i * 1000003 - 7;
    CHECK_OK(clora_buffer_upload_i32(ids, 0, data, 12));
    CHECK_OK(clora_buffer_download_i32(ids, 0, back, 12));
    for (int i = 0; i < 12; ++i)
        assert_int_equal(back[i], data[i]);

    float f[12];
    CHECK_STATUS(clora_buffer_upload(ids, 0, f, 12), CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("holds I32, not F32");
    CHECK_STATUS(clora_buffer_fill(ids, 1.0f), CLORA_ERR_DTYPE_MISMATCH);
    clora_buffer *floats = test_buffer_2d(3, 4, NULL);
    CHECK_STATUS(clora_buffer_download_i32(floats, 0, back, 12), CLORA_ERR_DTYPE_MISMATCH);
    CHECK_STATUS(clora_buffer_copy(floats, ids), CLORA_ERR_DTYPE_MISMATCH);
    /* An op given int32 where it needs floats. */
    clora_buffer *w = test_buffer_2d(5, 4, NULL), *y = test_buffer_2d(3, 5, NULL);
    CHECK_STATUS(clora_linear_forward(y, ids, w, NULL, CLORA_WEIGHT_OUT_IN),
                 CLORA_ERR_DTYPE_MISMATCH);
    test_expect_message("x holds I32; it must hold F32");
    clora_buffer *half = NULL;
    CHECK_STATUS(clora_buffer_create_typed(&half, test_device, CLORA_DTYPE_F16, 2, shape),
                 CLORA_ERR_DTYPE_MISMATCH);
    clora_buffer *all[] = {ids, floats, w, y};
    for (int i = 0; i < 4; ++i)
        clora_buffer_destroy(all[i]);
}

static void memory_is_accounted_by_category(void **state)
{
    (void)state;
    clora_memory_report before, during, after;
    CHECK_OK(clora_device_memory(test_device, &before));
    clora_buffer *buf = test_buffer_1d(1000, NULL);
    clora_buffer *view = NULL;
    const size_t half[1] = {500};
    CHECK_OK(clora_buffer_view(&view, buf, 0, 1, half));
    CHECK_OK(clora_device_memory(test_device, &during));
    assert_int_equal(during.bytes[CLORA_MEMORY_OTHER], before.bytes[CLORA_MEMORY_OTHER] + 4000);
    assert_int_equal(during.total, before.total + 4000);
    assert_true(during.peak >= during.total);
    clora_buffer_destroy(view);
    clora_buffer_destroy(buf);
    CHECK_OK(clora_device_memory(test_device, &after));
    assert_int_equal(after.bytes[CLORA_MEMORY_OTHER], before.bytes[CLORA_MEMORY_OTHER]);
    assert_string_equal(clora_memory_category_name(CLORA_MEMORY_OPTIMIZER), "optimizer state");
    CHECK_STATUS(clora_device_memory(test_device, NULL), CLORA_ERR_NULL_ARGUMENT);
}

/* Activation buffers keep their memory over smaller shapes (zero-filled
 * when the shape changes) and pass it on when recycled, to a buffer of
 * about its size only. */
static void activation_buffers_keep_and_share_memory(void **state)
{
    (void)state;
    clora__device_pool_clear(test_device);
    clora_memory_report r0, r;
    CHECK_OK(clora_device_memory(test_device, &r0));
    const uint64_t act0 = r0.bytes[CLORA_MEMORY_ACTIVATIONS], scr0 = r0.bytes[CLORA_MEMORY_SCRATCH];
    const size_t four[2] = {4, 100}, three[2] = {3, 100}, five[2] = {5, 100}, one[2] = {1, 100};
    clora_buffer *b = NULL;
    int created = 0;
    CHECK_OK(clora__buffer_ensure(&b, test_device, CLORA_DTYPE_F32, 2, four, &created));
    assert_true(created);
    CHECK_OK(clora_buffer_fill(b, 1.0f));
    CHECK_OK(clora__buffer_ensure(&b, test_device, CLORA_DTYPE_F32, 2, four, &created));
    assert_false(created);
    CHECK_OK(clora__buffer_ensure(&b, test_device, CLORA_DTYPE_F32, 2, three, &created));
    assert_true(created);
    assert_int_equal(clora_buffer_numel(b), 300);
    float *host = test_download(b);
    for (size_t i = 0; i < 300; ++i)
        assert_true(host[i] == 0.0f);
    free(host);
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0 + 1600); /* kept, not shrunk */
    /* more than it holds: new memory; the old goes to the pool */
    CHECK_OK(clora__buffer_ensure(&b, test_device, CLORA_DTYPE_F32, 2, five, &created));
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0 + 2000);
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + 1600);

    CHECK_OK(clora_buffer_fill(b, 2.0f));
    clora__buffer_recycle(&b);
    assert_null(b);
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0);
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + 3600);
    /* 450 floats fit in the 500 held only: taken, zero-filled */
    const size_t nine[2] = {9, 50};
    clora_buffer *c = NULL;
    CHECK_OK(clora__buffer_ensure(&c, test_device, CLORA_DTYPE_F32, 2, nine, &created));
    assert_true(created);
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + 1600);
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0 + 2000);
    host = test_download(c);
    for (size_t i = 0; i < 450; ++i)
        assert_true(host[i] == 0.0f);
    free(host);
    clora__buffer_recycle(&c);
    /* 300 floats fit in 400 and in 500: the smaller is taken */
    CHECK_OK(clora__buffer_ensure(&c, test_device, CLORA_DTYPE_F32, 2, three, &created));
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + 2000);
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0 + 1600);
    /* 100 floats would waste most of 400 or 500: a new allocation */
    clora__buffer_recycle(&c);
    clora_buffer *d = NULL;
    CHECK_OK(clora__buffer_ensure(&d, test_device, CLORA_DTYPE_F32, 2, one, &created));
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0 + 400);
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + 3600);
    clora_buffer_destroy(d);
    /* the pool holds a bounded number of allocations, the oldest going first */
    for (int i = 0; i < CLORA__POOL_SLOTS + 5; ++i) {
        clora_buffer *e = NULL;
        CHECK_OK(clora__buffer_create(&e, test_device, CLORA_DTYPE_F32, CLORA_MEMORY_ACTIVATIONS,
                                      1, &(size_t){10}));
        clora__buffer_recycle(&e);
    }
    assert_int_equal(test_device->pool_count, CLORA__POOL_SLOTS);
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0 + CLORA__POOL_SLOTS * 40);
    clora__device_pool_clear(test_device);
    CHECK_OK(clora_device_memory(test_device, &r));
    assert_int_equal(r.bytes[CLORA_MEMORY_SCRATCH], scr0);
    assert_int_equal(r.bytes[CLORA_MEMORY_ACTIVATIONS], act0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shape_and_numel),
        cmocka_unit_test(new_buffers_are_zero),
        cmocka_unit_test(upload_download_round_trip),
        cmocka_unit_test(transfers_at_element_offsets),
        cmocka_unit_test(fill_sets_every_element),
        cmocka_unit_test(views_share_storage_and_outlive_base),
        cmocka_unit_test(view_past_the_end_is_too_small),
        cmocka_unit_test(wrap_application_memory),
        cmocka_unit_test(wrap_rejects_memory_of_another_context),
        cmocka_unit_test(transfers_past_the_end_are_too_small),
        cmocka_unit_test(bad_shapes_are_rejected),
        cmocka_unit_test(allocation_beyond_the_device_limit_fails_cleanly),
        cmocka_unit_test(empty_buffers),
        cmocka_unit_test(copy_between_buffers),
        cmocka_unit_test(int32_buffers),
        cmocka_unit_test(memory_is_accounted_by_category),
        cmocka_unit_test(activation_buffers_keep_and_share_memory),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
