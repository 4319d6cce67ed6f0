/* test_safetensors.c — the safetensors reader on valid and hostile input,
 * the writer, round trips and dtype conversion. Needs no device. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A file: little-endian length, header text, data bytes. */
static unsigned char *craft(const char *header, const void *data, size_t data_size, size_t *size)
{
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    unsigned char *bytes = malloc(*size);
    assert_non_null(bytes);
    for (int i = 0; i < 8; ++i)
        bytes[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(bytes + 8, header, n);
    if (data_size)
        memcpy(bytes + 8 + n, data, data_size);
    return bytes;
}

/* Expects `header` + `data` to be rejected with CLORA_ERR_FORMAT and a
 * message containing `why`. */
static void expect_rejected(const char *header, const void *data, size_t data_size, const char *why)
{
    size_t size = 0;
    unsigned char *bytes = craft(header, data, data_size, &size);
    clora_safetensors *file = (clora_safetensors *)1;
    CHECK_STATUS(clora_safetensors_parse(&file, bytes, size), CLORA_ERR_FORMAT);
    assert_null(file);
    test_expect_message(why);
    free(bytes);
}

static const char two_tensors[] =
    "{\"__metadata__\":{\"format\":\"pt\"},"
    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
    "\"a\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[0,4]}}";

static void reads_a_valid_file(void **state)
{
    (void)state;
    const float b[2] = {1.5f, -2.0f};
    unsigned char data[12];
    const int32_t a = -7;
    memcpy(data, &a, 4);
    memcpy(data + 4, b, 8);
    size_t size;
    unsigned char *bytes = craft(two_tensors, data, sizeof data, &size);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_parse(&file, bytes, size));
    free(bytes);
    assert_int_equal(clora_safetensors_count(file), 2);
    clora_tensor_view view;
    /* in offset order: the scalar a, then b */
    CHECK_OK(clora_safetensors_get(file, 0, &view));
    assert_string_equal(view.name, "a");
    assert_int_equal(view.ndim, 0);
    assert_int_equal(view.numel, 1);
    assert_int_equal(view.dtype, CLORA_DTYPE_I32);
    CHECK_OK(clora_safetensors_find(file, "b", &view));
    assert_int_equal(view.ndim, 1);
    assert_int_equal(view.shape[0], 2);
    float out[2];
    CHECK_OK(clora_tensor_to_f32(&view, out));
    assert_true(out[0] == 1.5f && out[1] == -2.0f);
    assert_string_equal(clora_safetensors_metadata(file, "format"), "pt");
    assert_null(clora_safetensors_metadata(file, "nope"));
    CHECK_STATUS(clora_safetensors_find(file, "c", &view), CLORA_ERR_NOT_FOUND);
    CHECK_STATUS(clora_safetensors_get(file, 2, &view), CLORA_ERR_NOT_FOUND);
    CHECK_OK(clora_safetensors_find(file, "a", &view));
    CHECK_STATUS(clora_tensor_to_f32(&view, out), CLORA_ERR_DTYPE_MISMATCH);
    clora_safetensors_close(file);
}

static void empty_tensors_scalars_and_padding_are_legal(void **state)
{
    (void)state;
    /* no tensors at all */
    expect_rejected("", NULL, 0, "not valid JSON");
    size_t size;
    unsigned char *bytes = craft("{}", NULL, 0, &size);
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_parse(&file, bytes, size));
    assert_int_equal(clora_safetensors_count(file), 0);
    clora_safetensors_close(file);
    free(bytes);
    /* an empty tensor next to a real one, and header padding */
    const char header[] = "{\"e\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
                          "\"s\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[0,2]}}      ";
    const unsigned char half_one[2] = {0x00, 0x3c};
    bytes = craft(header, half_one, 2, &size);
    CHECK_OK(clora_safetensors_parse(&file, bytes, size));
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "e", &view));
    assert_int_equal(view.numel, 0);
    CHECK_OK(clora_safetensors_find(file, "s", &view));
    float one;
    CHECK_OK(clora_tensor_to_f32(&view, &one));
    assert_true(one == 1.0f);
    clora_safetensors_close(file);
    free(bytes);
}

static void short_files_and_header_lengths(void **state)
{
    (void)state;
    clora_safetensors *file = NULL;
    const unsigned char tiny[5] = {1, 2, 3, 4, 5};
    CHECK_STATUS(clora_safetensors_parse(&file, tiny, 5), CLORA_ERR_FORMAT);
    test_expect_message("at least 8");
    unsigned char huge[8] = {0x01, 0xe1, 0xf5, 0x05, 0, 0, 0, 0}; /* 100,000,001 */
    CHECK_STATUS(clora_safetensors_parse(&file, huge, 8), CLORA_ERR_FORMAT);
    test_expect_message("exceeds the limit");
    unsigned char past[10] = {9, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    CHECK_STATUS(clora_safetensors_parse(&file, past, 10), CLORA_ERR_FORMAT);
    test_expect_message("passes the end");
    unsigned char max[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    CHECK_STATUS(clora_safetensors_parse(&file, max, 8), CLORA_ERR_FORMAT);
}

static void bad_json_is_rejected(void **state)
{
    (void)state;
    expect_rejected("{\"a\": {\"dtype\": \"F32\",", NULL, 0, "not valid JSON");
    expect_rejected("[1, 2]", NULL, 0, "not a JSON object");
    expect_rejected("{\"a\": 5}", NULL, 0, "entry \"a\" is not an object");
    expect_rejected("{\"\xff\": 1}", NULL, 0, "not valid JSON");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}}",
                    NULL, 0, "not valid JSON");
    test_expect_message("duplicate");
    expect_rejected("{\"__metadata__\": {\"k\": 1}}", NULL, 0, "not a string");
    expect_rejected("{\"__metadata__\": [1]}", NULL, 0, "__metadata__ is not an object");
}

static void bad_entries_are_rejected(void **state)
{
    (void)state;
    const unsigned char data[8] = {0};
    expect_rejected("{\"a\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8,
                    "unknown dtype \"F33\"");
    expect_rejected("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8, "no dtype");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8,
                    "shape entry 0 is not a non-negative integer");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", data, 8,
                    "shape entry 0");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", data, 8,
                    "no shape array");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", data, 8,
                    "data_offsets");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", data, 8,
                    "data_offsets");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
                    "\"data_offsets\":[0,8]}}",
                    data, 8, "overflows");
}

static void layouts_must_tile_the_data(void **state)
{
    (void)state;
    unsigned char data[16] = {0};
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", data, 12,
                    "leaving a hole after offset 0");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                    data, 12, "overlaps");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                    "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
                    data, 16, "hole after offset 8");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 8,
                    "need 12 bytes, data_offsets give 8");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", data, 8,
                    "ends (0) before it begins (8)");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 12,
                    "4 bytes follow the last tensor");
    expect_rejected("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8,
                    "truncated");
    expect_rejected("{\"a\":{\"dtype\":\"F4\",\"shape\":[3],\"data_offsets\":[0,2]}}", data, 2,
                    "whole number of bytes");
}

static clora_safetensors_writer *sample_writer(void)
{
    clora_safetensors_writer *w = NULL;
    CHECK_OK(clora_safetensors_writer_create(&w));
    const float weights[6] = {1, 2, 3, 4, 5, 6};
    const int32_t ids[3] = {7, -8, 9};
    const uint16_t halves[2] = {0x3c00, 0xc000};
    const size_t s23[2] = {2, 3}, s3[1] = {3}, s2[1] = {2}, s0[2] = {0, 4};
    CHECK_OK(clora_safetensors_writer_add(w, "model.weight", CLORA_DTYPE_F32, 2, s23, weights));
    CHECK_OK(clora_safetensors_writer_add(w, "ids", CLORA_DTYPE_I32, 1, s3, ids));
    CHECK_OK(clora_safetensors_writer_add(w, "half", CLORA_DTYPE_F16, 1, s2, halves));
    CHECK_OK(clora_safetensors_writer_add(w, "empty", CLORA_DTYPE_F32, 2, s0, NULL));
    const float pi = 3.25f;
    CHECK_OK(clora_safetensors_writer_add(w, "scalar", CLORA_DTYPE_F32, 0, NULL, &pi));
    CHECK_OK(clora_safetensors_writer_metadata(w, "format", "pt"));
    return w;
}

static void writer_round_trip(void **state)
{
    (void)state;
    clora_safetensors_writer *w = sample_writer();
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(clora_safetensors_writer_serialize(w, &bytes, &size));
    clora_safetensors_writer_destroy(w);
    /* header padded with spaces so the data starts at a multiple of 8 */
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | ((unsigned char *)bytes)[i];
    assert_int_equal((8 + n) % 8, 0);
    assert_int_equal(((char *)bytes)[8 + n - 1] == ' ' || ((char *)bytes)[8 + n - 1] == '}', 1);

    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_parse(&file, bytes, size));
    assert_int_equal(clora_safetensors_count(file), 5);
    clora_tensor_view view;
    CHECK_OK(clora_safetensors_find(file, "model.weight", &view));
    assert_int_equal(view.ndim, 2);
    assert_int_equal(view.shape[1], 3);
    float w6[6];
    CHECK_OK(clora_tensor_to_f32(&view, w6));
    for (int i = 0; i < 6; ++i)
        assert_true(w6[i] == (float)(i + 1));
    CHECK_OK(clora_safetensors_find(file, "ids", &view));
    int32_t ids[3];
    memcpy(ids, view.data, sizeof ids);
    assert_int_equal(ids[1], -8);
    CHECK_OK(clora_safetensors_find(file, "half", &view));
    float h2[2];
    CHECK_OK(clora_tensor_to_f32(&view, h2));
    assert_true(h2[0] == 1.0f && h2[1] == -2.0f);
    CHECK_OK(clora_safetensors_find(file, "empty", &view));
    assert_int_equal(view.numel, 0);
    CHECK_OK(clora_safetensors_find(file, "scalar", &view));
    assert_int_equal(view.ndim, 0);
    /* larger dtypes first: the F32 and I32 tensors precede the F16 one */
    CHECK_OK(clora_safetensors_get(file, clora_safetensors_count(file) - 1, &view));
    assert_string_equal(view.name, "half");
    assert_string_equal(clora_safetensors_metadata(file, "format"), "pt");
    clora_safetensors_close(file);
    free(bytes);
}

static void writer_rejects_bad_tensors(void **state)
{
    (void)state;
    clora_safetensors_writer *w = sample_writer();
    const float x = 1;
    const size_t s1[1] = {1};
    CHECK_STATUS(clora_safetensors_writer_add(w, "ids", CLORA_DTYPE_F32, 1, s1, &x),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("exists");
    CHECK_STATUS(clora_safetensors_writer_add(w, "__metadata__", CLORA_DTYPE_F32, 1, s1, &x),
                 CLORA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(clora_safetensors_writer_add(w, "", CLORA_DTYPE_F32, 1, s1, &x),
                 CLORA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(clora_safetensors_writer_add(w, "n", CLORA_DTYPE_F32, 1, s1, NULL),
                 CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_safetensors_writer_add(w, "bad\xff", CLORA_DTYPE_F32, 1, s1, &x), CLORA_OK);
    void *bytes = NULL;
    size_t size = 0;
    CHECK_STATUS(clora_safetensors_writer_serialize(w, &bytes, &size), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("UTF-8");
    clora_safetensors_writer_destroy(w);
}

static void files_on_disk_and_atomic_writes(void **state)
{
    (void)state;
    char dir[64];
    test_temp_dir(dir, "st");
    char path[256];
    snprintf(path, sizeof path, "%s/t.safetensors", dir);
    clora_safetensors_writer *w = sample_writer();
    CHECK_OK(clora_safetensors_writer_write(w, path));
    clora_safetensors *file = NULL;
    CHECK_OK(clora_safetensors_open(&file, path));
    assert_int_equal(clora_safetensors_count(file), 5);
    size_t first_size = clora_safetensors_file_size(file);
    clora_safetensors_close(file);

    /* A failed write (the target's folder vanished) leaves nothing behind. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/no/such/folder/t.safetensors", dir);
    CHECK_STATUS(clora_safetensors_writer_write(w, missing), CLORA_ERR_IO);
    test_expect_message("no/such/folder");

    /* A failed rename (target is a non-empty folder) removes the temporary file. */
    char blocker[300], inside[340];
    snprintf(blocker, sizeof blocker, "%s/blocked.safetensors", dir);
    snprintf(inside, sizeof inside, "%s/x", blocker);
    assert_int_equal(mkdir(blocker, 0700), 0);
    FILE *f = fopen(inside, "w");
    assert_non_null(f);
    fclose(f);
    CHECK_STATUS(clora_safetensors_writer_write(w, blocker), CLORA_ERR_IO);

    /* The original file is intact, and only the expected entries remain. */
    CHECK_OK(clora_safetensors_open(&file, path));
    assert_int_equal(clora_safetensors_file_size(file), first_size);
    clora_safetensors_close(file);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 2", dir);
    assert_int_equal(system(cmd), 0);

    CHECK_STATUS(clora_safetensors_open(&file, dir), CLORA_ERR_IO);
    test_expect_message("not a regular file");
    CHECK_STATUS(clora_safetensors_open(&file, missing), CLORA_ERR_IO);
    /* An empty file is a format error that names the file. */
    char empty[300];
    snprintf(empty, sizeof empty, "%s/empty.safetensors", dir);
    f = fopen(empty, "w");
    fclose(f);
    CHECK_STATUS(clora_safetensors_open(&file, empty), CLORA_ERR_FORMAT);
    test_expect_message("empty.safetensors");

    clora_safetensors_writer_destroy(w);
    test_remove_dir(dir);
}

static void every_truncation_is_rejected(void **state)
{
    (void)state;
    clora_safetensors_writer *w = sample_writer();
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(clora_safetensors_writer_serialize(w, &bytes, &size));
    clora_safetensors_writer_destroy(w);
    for (size_t cut = 0; cut < size; ++cut) {
        clora_safetensors *file = NULL;
        clora_status status = clora_safetensors_parse(&file, bytes, cut);
        if (status != CLORA_ERR_FORMAT)
            fail_msg("a file cut to %zu of %zu bytes gave %s", cut, size,
                     clora_status_name(status));
    }
    free(bytes);
}

static void random_corruption_never_crashes(void **state)
{
    (void)state;
    clora_safetensors_writer *w = sample_writer();
    void *bytes = NULL;
    size_t size = 0;
    CHECK_OK(clora_safetensors_writer_serialize(w, &bytes, &size));
    clora_safetensors_writer_destroy(w);
    unsigned char *copy = malloc(size);
    assert_non_null(copy);
    uint64_t rng = 99;
    size_t accepted = 0;
    for (int round = 0; round < 3000; ++round) {
        memcpy(copy, bytes, size);
        float u[3];
        test_fill_uniform(u, 3, &rng, 0.0f, 1.0f);
        /* flip one byte of the length or header (where the structure is) */
        size_t header_end = 8 + (size_t)((unsigned char *)bytes)[0];
        size_t at = (size_t)(u[0] * (float)header_end) % header_end;
        copy[at] = (unsigned char)(u[1] * 256.0f);
        clora_safetensors *file = NULL;
        clora_status status = clora_safetensors_parse(&file, copy, size);
        if (status == CLORA_OK) {
            /* whatever it accepted lies inside the file: read every byte
             * (AddressSanitizer builds catch a read outside) */
            unsigned sum = 0;
            for (size_t i = 0; i < clora_safetensors_count(file); ++i) {
                clora_tensor_view view;
                CHECK_OK(clora_safetensors_get(file, i, &view));
                assert_true(view.nbytes <= size);
                for (size_t b = 0; b < view.nbytes; ++b)
                    sum += ((const unsigned char *)view.data)[b];
            }
            (void)sum;
            ++accepted;
        } else {
            assert_int_equal(status, CLORA_ERR_FORMAT);
        }
        clora_safetensors_close(file);
    }
    /* Flipping a digit inside a shape or a name can still give a valid
     * file, but most flips must be caught. */
    assert_true(accepted < 1500);
    free(copy);
    free(bytes);
}

static void half_and_bfloat_conversion(void **state)
{
    (void)state;
    const uint16_t halves[7] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00, 0xfc00, 0x7e00};
    const float want[6] = {1.0f, -2.0f, 65504.0f, 5.9604644775390625e-8f, INFINITY, -INFINITY};
    clora_tensor_view view = {"h", CLORA_DTYPE_F16, 1, NULL, 7, halves, 14};
    float out[7];
    CHECK_OK(clora_tensor_to_f32(&view, out));
    for (int i = 0; i < 6; ++i)
        assert_true(out[i] == want[i]);
    assert_true(isnan(out[6]));
    const uint16_t bf[2] = {0x3f80, 0xc0a0}; /* 1.0, -5.0 */
    clora_tensor_view bview = {"b", CLORA_DTYPE_BF16, 1, NULL, 2, bf, 4};
    CHECK_OK(clora_tensor_to_f32(&bview, out));
    assert_true(out[0] == 1.0f && out[1] == -5.0f);
    const double d[2] = {0.1, -3.0};
    clora_tensor_view dview = {"d", CLORA_DTYPE_F64, 1, NULL, 2, d, 16};
    CHECK_OK(clora_tensor_to_f32(&dview, out));
    assert_true(out[0] == 0.1f && out[1] == -3.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_valid_file),
        cmocka_unit_test(empty_tensors_scalars_and_padding_are_legal),
        cmocka_unit_test(short_files_and_header_lengths),
        cmocka_unit_test(bad_json_is_rejected),
        cmocka_unit_test(bad_entries_are_rejected),
        cmocka_unit_test(layouts_must_tile_the_data),
        cmocka_unit_test(writer_round_trip),
        cmocka_unit_test(writer_rejects_bad_tensors),
        cmocka_unit_test(files_on_disk_and_atomic_writes),
        cmocka_unit_test(every_truncation_is_rejected),
        cmocka_unit_test(random_corruption_never_crashes),
        cmocka_unit_test(half_and_bfloat_conversion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
