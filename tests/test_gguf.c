/* test_gguf.c — the GGUF reader: files written by llama.cpp's gguf Python
 * package (tests/golden/make_gguf_golden.py) with the float32 values its
 * dequantize gives, every metadata type, and hostile files built here from
 * valid ones, each of which must fail with its own message. Needs no
 * device.
 *
 * With CLORA_GGUF_MODEL=<file.gguf> and CLORA_GGUF_EXPECTED=<file written
 * by tests/golden/gguf_spot_check.py>, it also compares a real model's
 * tensors with gguf-py's values. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define GOLDEN CLORA_TEST_GOLDEN_DIR "/gguf/"

/* ---- files and bytes ------------------------------------------------------------ */

static unsigned char *read_whole(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *bytes = malloc(n > 0 ? (size_t)n : 1);
    assert_non_null(bytes);
    assert_int_equal(fread(bytes, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return bytes;
}

static void write_whole(const char *path, const void *bytes, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(bytes, 1, size, f), size);
    fclose(f);
}

/* Opens the first `size` bytes from a copy of exactly that size, so that
 * AddressSanitizer sees any read past them. */
static clora_status open_copy(clora_gguf **out, const unsigned char *bytes, size_t size,
                              unsigned char **copy)
{
    *copy = malloc(size ? size : 1);
    assert_non_null(*copy);
    if (size)
        memcpy(*copy, bytes, size);
    return clora_gguf_open_memory(out, *copy, size, "crafted.gguf");
}

/* A GGUF file under construction. */
typedef struct bytes {
    unsigned char *data;
    size_t size, capacity;
} bytes;

static void put(bytes *b, const void *p, size_t n)
{
    if (b->size + n > b->capacity) {
        b->capacity = 2 * (b->size + n) + 64;
        b->data = realloc(b->data, b->capacity);
        assert_non_null(b->data);
    }
    memcpy(b->data + b->size, p, n);
    b->size += n;
}

static void put_le(bytes *b, uint64_t v, size_t n)
{
    unsigned char le[8];
    for (size_t i = 0; i < n; ++i)
        le[i] = (unsigned char)(v >> (8 * i));
    put(b, le, n);
}

static void put_u32(bytes *b, uint32_t v)
{
    put_le(b, v, 4);
}

static void put_u64(bytes *b, uint64_t v)
{
    put_le(b, v, 8);
}

static void put_string(bytes *b, const char *s)
{
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

static void put_header(bytes *b, uint32_t version, uint64_t tensors, uint64_t entries)
{
    put(b, "GGUF", 4);
    put_u32(b, version);
    put_u64(b, tensors);
    put_u64(b, entries);
}

/* A key and its value type (the value follows). */
static void put_key(bytes *b, const char *key, clora_gguf_value_type type)
{
    put_string(b, key);
    put_u32(b, type);
}

static void put_tensor(bytes *b, const char *name, uint32_t ndim, const uint64_t *dims,
                       uint32_t type, uint64_t offset)
{
    put_string(b, name);
    put_u32(b, ndim);
    for (uint32_t d = 0; d < ndim; ++d)
        put_u64(b, dims[d]);
    put_u32(b, type);
    put_u64(b, offset);
}

static void put_zeros(bytes *b, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        put(b, "", 1);
}

static void pad(bytes *b, size_t alignment)
{
    put_zeros(b, (alignment - b->size % alignment) % alignment);
}

/* Expects the file to be rejected with CLORA_ERR_FORMAT and a message that
 * names it and contains `why`; frees b. */
static void expect_rejected(bytes *b, const char *why)
{
    clora_gguf *file = (clora_gguf *)1;
    unsigned char *copy;
    clora_status status = open_copy(&file, b->data, b->size, &copy);
    if (status != CLORA_ERR_FORMAT)
        fail_msg("expected CLORA_ERR_FORMAT (\"%s\"), got %s: %s", why, clora_status_name(status),
                 clora_last_error());
    assert_null(file);
    test_expect_message("crafted.gguf: ");
    test_expect_message(why);
    free(copy);
    free(b->data);
    memset(b, 0, sizeof *b);
}

static clora_gguf *expect_opens(bytes *b, unsigned char **copy)
{
    clora_gguf *file = NULL;
    CHECK_OK(open_copy(&file, b->data, b->size, copy));
    return file;
}

/* Closes what expect_opens opened and empties b for the next file. */
static void close_crafted(clora_gguf *file, unsigned char *copy, bytes *b)
{
    clora_gguf_close(file);
    free(copy);
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* One F32 tensor "w" of 4 elements after the entries the caller wrote. */
static void put_one_tensor_file_end(bytes *b)
{
    const uint64_t dims[1] = {4};
    put_tensor(b, "w", 1, dims, CLORA_GGUF_F32, 0);
    pad(b, 32);
    put_zeros(b, 16);
}

/* Bit-identical, NaN matching NaN. */
static void assert_same_floats(const char *what, const float *got, const float *want, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        if (isnan(want[i]) && isnan(got[i]))
            continue;
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s: element %zu is %.9g, gguf-py gives %.9g", what, i, (double)got[i],
                     (double)want[i]);
    }
}

/* The end of the last tensor's data: shorter files must be rejected. */
static uint64_t data_end(const clora_gguf *file)
{
    uint64_t end = clora_gguf_data_offset(file);
    for (size_t i = 0; i < clora_gguf_tensor_count(file); ++i) {
        clora_gguf_tensor t;
        assert_true(clora_gguf_tensor_info(file, i, &t));
        if (t.offset + t.bytes > end)
            end = t.offset + t.bytes;
    }
    return end;
}

/* Reads every tensor (AddressSanitizer checks the reads). */
static void read_every_tensor(const clora_gguf *file)
{
    for (size_t i = 0; i < clora_gguf_tensor_count(file); ++i) {
        clora_gguf_tensor t;
        assert_true(clora_gguf_tensor_info(file, i, &t));
        void *raw = malloc(t.bytes ? (size_t)t.bytes : 1);
        float *values = malloc(t.elements ? (size_t)t.elements * sizeof(float) : 1);
        assert_true(raw && values);
        CHECK_OK(clora_gguf_read_raw(file, i, raw));
        clora_status status = clora_gguf_read_f32(file, i, values);
        assert_int_equal(status,
                         clora_gguf_type_supported(t.type) ? CLORA_OK : CLORA_ERR_UNSUPPORTED);
        free(raw);
        free(values);
    }
}

/* ---- files written by gguf-py ------------------------------------------------------ */

/* Each tensor of `stem`.gguf against expected.safetensors: PyTorch's shape
 * reversed in dims, and gguf-py's values bit for bit. */
static void check_against_gguf_py(const clora_gguf *file, const char *stem, size_t *checked)
{
    clora_safetensors *expected = NULL;
    CHECK_OK(clora_safetensors_open(&expected, GOLDEN "expected.safetensors"));
    for (size_t i = 0; i < clora_gguf_tensor_count(file); ++i) {
        clora_gguf_tensor t;
        assert_true(clora_gguf_tensor_info(file, i, &t));
        assert_int_equal(clora_gguf_find_tensor(file, t.name), (long)i);
        char key[128];
        snprintf(key, sizeof key, "%s/%s", stem, t.name);
        clora_tensor_view want;
        CHECK_OK(clora_safetensors_find(expected, key, &want));
        assert_int_equal(t.ndim, want.ndim);
        for (size_t d = 0; d < t.ndim; ++d)
            assert_int_equal(t.dims[d], want.shape[t.ndim - 1 - d]);
        assert_int_equal(t.elements, want.numel);
        assert_int_equal(t.offset % clora_gguf_alignment(file), 0);
        float *got = test_alloc((size_t)t.elements);
        if (!clora_gguf_type_supported(t.type)) {
            CHECK_STATUS(clora_gguf_read_f32(file, i, got), CLORA_ERR_UNSUPPORTED);
            test_expect_message("\"q5_0\" is Q5_0, which clora cannot dequantize");
            free(got);
            continue;
        }
        CHECK_OK(clora_gguf_read_f32(file, i, got));
        float *w = test_alloc(want.numel);
        CHECK_OK(clora_tensor_to_f32(&want, w));
        assert_same_floats(key, got, w, want.numel);
        free(got);
        free(w);
        ++*checked;
    }
    clora_safetensors_close(expected);
}

/* Opens tests/golden/gguf/<stem>.gguf, checks its version and alignment
 * and every tensor against gguf-py (`supported` of them dequantized). */
static clora_gguf *open_golden(const char *stem, uint32_t version, size_t alignment,
                               size_t supported)
{
    char path[512];
    snprintf(path, sizeof path, GOLDEN "%s.gguf", stem);
    clora_gguf *file = NULL;
    CHECK_OK(clora_gguf_open(&file, path));
    assert_int_equal(clora_gguf_version(file), version);
    assert_int_equal(clora_gguf_alignment(file), alignment);
    assert_int_equal(clora_gguf_data_offset(file) % alignment, 0);
    size_t checked = 0;
    check_against_gguf_py(file, stem, &checked);
    assert_int_equal(checked, supported);
    return file;
}

static void reads_every_supported_type(void **state)
{
    (void)state;
    clora_gguf *file = open_golden("tensors", 3, 32, 11);
    assert_int_equal(clora_gguf_tensor_count(file), 12);

    /* infos as the file gives them */
    clora_gguf_tensor t;
    long k = clora_gguf_find_tensor(file, "q6_k");
    assert_true(k >= 0 && clora_gguf_tensor_info(file, (size_t)k, &t));
    assert_int_equal(t.type, CLORA_GGUF_Q6_K);
    assert_int_equal(t.ndim, 2);
    assert_int_equal(t.dims[0], 512);
    assert_int_equal(t.dims[1], 3);
    assert_int_equal(t.bytes, 3 * 2 * 210);
    k = clora_gguf_find_tensor(file, "f32.4d");
    assert_true(k >= 0 && clora_gguf_tensor_info(file, (size_t)k, &t));
    assert_int_equal(t.ndim, 4);
    assert_int_equal(t.dims[0], 5);
    assert_int_equal(t.dims[3], 2);
    assert_int_equal(clora_gguf_find_tensor(file, "nope"), -1);
    assert_false(clora_gguf_tensor_info(file, 12, &t));

    /* raw bytes are the file's */
    k = clora_gguf_find_tensor(file, "q4_0");
    assert_true(clora_gguf_tensor_info(file, (size_t)k, &t));
    assert_int_equal(t.bytes, 5 * 2 * 18);
    size_t size;
    unsigned char *whole = read_whole(GOLDEN "tensors.gguf", &size);
    unsigned char raw[180];
    CHECK_OK(clora_gguf_read_raw(file, (size_t)k, raw));
    assert_memory_equal(raw, whole + t.offset, sizeof raw);
    assert_int_equal(clora_gguf_file_size(file), size);

    /* the same from memory */
    clora_gguf *memory = NULL;
    CHECK_OK(clora_gguf_open_memory(&memory, whole, size, NULL));
    size_t checked = 0;
    check_against_gguf_py(memory, "tensors", &checked);
    assert_int_equal(checked, 11);
    clora_gguf_close(memory);
    free(whole);

    float x;
    CHECK_STATUS(clora_gguf_read_f32(file, 12, &x), CLORA_ERR_NOT_FOUND);
    CHECK_STATUS(clora_gguf_read_f32(NULL, 0, &x), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_gguf_read_f32(file, 0, NULL), CLORA_ERR_NULL_ARGUMENT);
    clora_gguf_close(file);
    clora_gguf_close(NULL);
}

static void version_two_and_a_wider_alignment(void **state)
{
    (void)state;
    clora_gguf *file = open_golden("v2_align64", 2, 64, 3);
    uint64_t alignment = 0;
    assert_true(clora_gguf_get_u64(file, "general.alignment", &alignment));
    assert_int_equal(alignment, 64);
    size_t length = 0;
    assert_string_equal(clora_gguf_get_string(file, "general.name", &length), "version two");
    assert_int_equal(length, 11);
    clora_gguf_close(file);
}

static void type_names_and_support(void **state)
{
    (void)state;
    assert_string_equal(clora_gguf_tensor_type_name(CLORA_GGUF_Q4_K), "Q4_K");
    assert_string_equal(clora_gguf_tensor_type_name(CLORA_GGUF_BF16), "BF16");
    assert_string_equal(clora_gguf_tensor_type_name((clora_gguf_tensor_type)4), "unknown");
    const clora_gguf_tensor_type supported[] = {CLORA_GGUF_F32,  CLORA_GGUF_F16,  CLORA_GGUF_BF16,
                                                CLORA_GGUF_Q8_0, CLORA_GGUF_Q4_0, CLORA_GGUF_Q4_1,
                                                CLORA_GGUF_Q4_K, CLORA_GGUF_Q5_K, CLORA_GGUF_Q6_K};
    for (size_t i = 0; i < sizeof supported / sizeof supported[0]; ++i)
        assert_true(clora_gguf_type_supported(supported[i]));
    const clora_gguf_tensor_type known[] = {CLORA_GGUF_Q5_0, CLORA_GGUF_Q5_1, CLORA_GGUF_Q8_1,
                                            CLORA_GGUF_Q2_K, CLORA_GGUF_Q3_K, CLORA_GGUF_Q8_K};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; ++i) {
        assert_false(clora_gguf_type_supported(known[i]));
        assert_string_not_equal(clora_gguf_tensor_type_name(known[i]), "unknown");
    }
    assert_false(clora_gguf_type_supported((clora_gguf_tensor_type)99));
    assert_string_equal(clora_gguf_value_type_name(CLORA_GGUF_FLOAT64), "float64");
    assert_string_equal(clora_gguf_value_type_name(CLORA_GGUF_ARRAY), "array");
    assert_string_equal(clora_gguf_value_type_name((clora_gguf_value_type)13), "unknown");
}

static void metadata_of_every_type(void **state)
{
    (void)state;
    clora_gguf *f = NULL;
    CHECK_OK(clora_gguf_open(&f, GOLDEN "metadata.gguf"));
    assert_int_equal(clora_gguf_metadata_count(f), 22);
    /* in file order, general.architecture first */
    assert_string_equal(clora_gguf_metadata_key(f, 0), "general.architecture");
    assert_string_equal(clora_gguf_metadata_key(f, 1), "test.uint8");
    assert_null(clora_gguf_metadata_key(f, 22));
    assert_int_equal(clora_gguf_find(f, "test.uint8"), 1);
    assert_int_equal(clora_gguf_find(f, "test.none"), -1);
    assert_int_equal(clora_gguf_metadata_type(f, 1), CLORA_GGUF_UINT8);
    assert_string_equal(clora_gguf_value_type_name(clora_gguf_metadata_type(f, 99)), "unknown");
    const struct {
        const char *key;
        clora_gguf_value_type type;
    } types[] = {{"test.int8", CLORA_GGUF_INT8},       {"test.uint16", CLORA_GGUF_UINT16},
                 {"test.int16", CLORA_GGUF_INT16},     {"test.uint32", CLORA_GGUF_UINT32},
                 {"test.int32", CLORA_GGUF_INT32},     {"test.float32", CLORA_GGUF_FLOAT32},
                 {"test.true", CLORA_GGUF_BOOL},       {"test.string", CLORA_GGUF_STRING},
                 {"test.uint64", CLORA_GGUF_UINT64},   {"test.int64", CLORA_GGUF_INT64},
                 {"test.float64", CLORA_GGUF_FLOAT64}, {"test.nested", CLORA_GGUF_ARRAY}};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; ++i)
        assert_int_equal(clora_gguf_metadata_type(f, (size_t)clora_gguf_find(f, types[i].key)),
                         types[i].type);

    uint64_t u;
    int64_t i;
    double d;
    int b;
    assert_true(clora_gguf_get_u64(f, "test.uint8", &u) && u == 200);
    assert_true(clora_gguf_get_i64(f, "test.uint8", &i) && i == 200);
    assert_true(clora_gguf_get_f64(f, "test.uint8", &d) && d == 200.0);
    assert_false(clora_gguf_get_u64(f, "test.int8", &u));
    assert_true(clora_gguf_get_i64(f, "test.int8", &i) && i == -100);
    assert_true(clora_gguf_get_u64(f, "test.uint16", &u) && u == 65000);
    assert_true(clora_gguf_get_i64(f, "test.int16", &i) && i == -32000);
    assert_true(clora_gguf_get_u64(f, "test.uint32", &u) && u == 4000000000u);
    assert_true(clora_gguf_get_i64(f, "test.int32", &i) && i == -2000000000);
    assert_true(clora_gguf_get_u64(f, "test.uint64", &u) && u == 9223372036854775813ull);
    assert_false(clora_gguf_get_i64(f, "test.uint64", &i));
    assert_true(clora_gguf_get_i64(f, "test.int64", &i) && i == -4611686018427387907ll);
    assert_false(clora_gguf_get_u64(f, "test.int64", &u));
    assert_true(clora_gguf_get_f64(f, "test.float32", &d) && d == 0.25);
    assert_false(clora_gguf_get_u64(f, "test.float32", &u));
    assert_false(clora_gguf_get_i64(f, "test.float64", &i));
    assert_true(clora_gguf_get_f64(f, "test.float64", &d) && d == -1.0 / 3.0);
    assert_true(clora_gguf_get_bool(f, "test.true", &b) && b == 1);
    assert_true(clora_gguf_get_bool(f, "test.false", &b) && b == 0);
    assert_true(clora_gguf_get_u64(f, "test.true", &u) && u == 1);
    assert_false(clora_gguf_get_bool(f, "test.float32", &b));
    assert_false(clora_gguf_get_bool(f, "test.uint8", &b)); /* 200 is not a bool */
    assert_false(clora_gguf_get_u64(f, "test.string", &u));
    assert_false(clora_gguf_get_u64(f, "test.none", &u));

    size_t length = 0;
    assert_string_equal(clora_gguf_get_string(f, "test.string", &length), "héllo, wörld");
    assert_int_equal(length, strlen("héllo, wörld"));
    const char *s = clora_gguf_get_string(f, "test.nul_and_newline", &length);
    assert_int_equal(length, 5);
    assert_memory_equal(s, "a\0b\nc", 6); /* and the NUL after it */
    assert_int_equal(strlen(clora_gguf_get_string(f, "test.long", NULL)), 300);
    assert_null(clora_gguf_get_string(f, "test.uint8", &length));
    assert_string_equal(clora_gguf_get_string(f, "general.architecture", NULL), "clora-test");

    clora_gguf_value_type element;
    assert_true(clora_gguf_get_array(f, "test.strings", &element, &length));
    assert_int_equal(element, CLORA_GGUF_STRING);
    assert_int_equal(length, 4);
    const char *want[4] = {"<s>", "", "ünïcode", "a b"};
    for (size_t k = 0; k < 4; ++k) {
        size_t n;
        assert_string_equal(clora_gguf_array_string(f, "test.strings", k, &n), want[k]);
        assert_int_equal(n, strlen(want[k]));
    }
    assert_null(clora_gguf_array_string(f, "test.strings", 4, NULL));
    assert_false(clora_gguf_array_u64(f, "test.strings", 0, &u));

    assert_true(clora_gguf_get_array(f, "test.ints", &element, &length));
    assert_int_equal(element, CLORA_GGUF_INT32);
    assert_int_equal(length, 5);
    const int64_t ints[5] = {1, -2, 3, 2147483647, -2147483648ll};
    for (size_t k = 0; k < 5; ++k)
        assert_true(clora_gguf_array_i64(f, "test.ints", k, &i) && i == ints[k]);
    assert_false(clora_gguf_array_u64(f, "test.ints", 1, &u));
    assert_true(clora_gguf_array_u64(f, "test.ints", 3, &u) && u == 2147483647);
    assert_false(clora_gguf_array_i64(f, "test.ints", 5, &i));
    assert_null(clora_gguf_array_string(f, "test.ints", 0, NULL));

    assert_true(clora_gguf_get_array(f, "test.floats", &element, &length));
    assert_int_equal(element, CLORA_GGUF_FLOAT32);
    assert_true(clora_gguf_array_f64(f, "test.floats", 1, &d) && d == -1.5);
    assert_false(clora_gguf_array_i64(f, "test.floats", 1, &i));
    assert_true(clora_gguf_get_array(f, "test.bools", &element, &length));
    assert_int_equal(element, CLORA_GGUF_BOOL);
    assert_int_equal(length, 3);
    assert_true(clora_gguf_array_u64(f, "test.bools", 1, &u) && u == 0);
    assert_true(clora_gguf_array_u64(f, "test.bools", 2, &u) && u == 1);
    assert_true(clora_gguf_get_array(f, "test.bytes", &element, &length));
    assert_int_equal(element, CLORA_GGUF_UINT8);
    assert_int_equal(length, 4);
    assert_true(clora_gguf_array_u64(f, "test.bytes", 3, &u) && u == 255);

    /* an array of arrays is kept and described, its elements not read */
    assert_true(clora_gguf_get_array(f, "test.nested", &element, &length));
    assert_int_equal(element, CLORA_GGUF_ARRAY);
    assert_int_equal(length, 3);
    assert_false(clora_gguf_array_u64(f, "test.nested", 0, &u));
    assert_null(clora_gguf_array_string(f, "test.nested", 0, NULL));
    assert_false(clora_gguf_get_array(f, "test.uint8", &element, &length));

    /* the tensor after all that metadata */
    assert_int_equal(clora_gguf_tensor_count(f), 1);
    float one[3];
    CHECK_OK(clora_gguf_read_f32(f, 0, one));
    assert_true(one[0] == 1.0f && one[1] == 2.0f && one[2] == 3.0f);
    clora_gguf_close(f);
}

/* ---- files built here --------------------------------------------------------------- */

static void crafted_files_that_are_valid(void **state)
{
    (void)state;
    /* every element type in arrays, empty arrays, a zero-size tensor, a
     * hole between tensors, an empty key */
    bytes b = {0};
    put_header(&b, 3, 3, 8);
    const uint32_t types[] = {CLORA_GGUF_INT8, CLORA_GGUF_UINT16, CLORA_GGUF_INT16,
                              CLORA_GGUF_UINT64, CLORA_GGUF_INT64, CLORA_GGUF_FLOAT64};
    const char *keys[] = {"a.i8", "a.u16", "a.i16", "a.u64", "a.i64", "a.f64"};
    for (size_t k = 0; k < 6; ++k) {
        put_key(&b, keys[k], CLORA_GGUF_ARRAY);
        put_u32(&b, types[k]);
        put_u64(&b, 2);
        if (types[k] == CLORA_GGUF_FLOAT64) {
            const double v[2] = {0.125, -3.0};
            uint64_t bits[2];
            memcpy(bits, v, sizeof bits);
            put_u64(&b, bits[0]);
            put_u64(&b, bits[1]);
        } else {
            const size_t size = types[k] == CLORA_GGUF_INT8     ? 1
                                : types[k] <= CLORA_GGUF_INT16 ? 2
                                                               : 8;
            put_le(&b, 7, size);
            put_le(&b, UINT64_MAX, size); /* -1, or the type's largest */
        }
    }
    put_key(&b, "a.empty", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_STRING);
    put_u64(&b, 0);
    put_key(&b, "", CLORA_GGUF_UINT8);
    put(&b, "\x05", 1);
    const uint64_t empty[2] = {0, 4}, four[1] = {4}, q[2] = {32, 1};
    put_tensor(&b, "empty", 2, empty, CLORA_GGUF_F32, 0);
    put_tensor(&b, "later", 1, four, CLORA_GGUF_F32, 64);
    put_tensor(&b, "first", 2, q, CLORA_GGUF_Q8_0, 0);
    pad(&b, 32);
    const unsigned char block[34] = {0x00, 0x3c, 1, 2, 3, 0xff}; /* d = 1 */
    put(&b, block, sizeof block);
    put_zeros(&b, 64 - 34);
    const float later[4] = {1.5f, -2.0f, 0.0f, 8.0f};
    put(&b, later, sizeof later); /* the tests run little-endian */
    unsigned char *copy;
    clora_gguf *f = expect_opens(&b, &copy);
    uint64_t u;
    int64_t i;
    double d;
    assert_true(clora_gguf_array_i64(f, "a.i8", 1, &i) && i == -1);
    assert_true(clora_gguf_array_u64(f, "a.u16", 1, &u) && u == 65535);
    assert_true(clora_gguf_array_i64(f, "a.i16", 1, &i) && i == -1);
    assert_true(clora_gguf_array_u64(f, "a.u64", 1, &u) && u == UINT64_MAX);
    assert_false(clora_gguf_array_i64(f, "a.u64", 1, &i));
    assert_true(clora_gguf_array_i64(f, "a.i64", 1, &i) && i == -1);
    assert_true(clora_gguf_array_i64(f, "a.i64", 0, &i) && i == 7);
    assert_true(clora_gguf_array_f64(f, "a.f64", 0, &d) && d == 0.125);
    assert_true(clora_gguf_array_f64(f, "a.i16", 1, &d) && d == -1.0);
    clora_gguf_value_type element;
    size_t length = 9;
    assert_true(clora_gguf_get_array(f, "a.empty", &element, &length));
    assert_int_equal(length, 0);
    assert_true(clora_gguf_get_u64(f, "", &u) && u == 5);
    clora_gguf_tensor t;
    assert_true(clora_gguf_tensor_info(f, 0, &t));
    assert_int_equal(t.elements, 0);
    assert_int_equal(t.bytes, 0);
    CHECK_OK(clora_gguf_read_f32(f, 0, NULL));
    float v[32];
    CHECK_OK(clora_gguf_read_f32(f, 1, v));
    assert_same_floats("later", v, later, 4);
    CHECK_OK(clora_gguf_read_f32(f, 2, v));
    assert_true(v[0] == 1.0f && v[1] == 2.0f && v[3] == -1.0f && v[4] == 0.0f);
    close_crafted(f, copy, &b);

    /* no tensors at all, and no padding after the infos */
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_BOOL);
    put(&b, "\x01", 1);
    f = expect_opens(&b, &copy);
    assert_int_equal(clora_gguf_tensor_count(f), 0);
    int flag = 0;
    assert_true(clora_gguf_get_bool(f, "k", &flag) && flag == 1);
    close_crafted(f, copy, &b);
}

static void bad_headers(void **state)
{
    (void)state;
    bytes b = {0};
    put(&b, "GGU", 3);
    expect_rejected(&b, "the file is 3 bytes");
    put(&b, "GGML", 4);
    put_zeros(&b, 20);
    expect_rejected(&b, "the magic at byte 0 is 47 47 4d 4c, not \"GGUF\": not a GGUF file");
    put_header(&b, 3, 0, 0);
    b.size = 20;
    expect_rejected(&b, "the file is 20 bytes, shorter than the 24-byte header");
    put_header(&b, 1, 0, 0);
    expect_rejected(&b, "GGUF header: version 1 at byte 4");
    put_header(&b, 4, 0, 0);
    expect_rejected(&b, "version 4 at byte 4: clora reads versions 2 and 3");
    put_header(&b, 0x03000000u, 0, 0);
    expect_rejected(&b, "a big-endian file");
    put_header(&b, 3, UINT64_MAX, 0);
    expect_rejected(&b, "18446744073709551615 tensors (the count at byte 8) need at least 32 "
                        "bytes of info each, more than the 0 bytes after the header");
    put_header(&b, 3, 0, 1ull << 40);
    put_zeros(&b, 100);
    expect_rejected(&b, "1099511627776 metadata entries (the count at byte 16)");
    /* counts that fit the file's size at the header but not after the metadata */
    put_header(&b, 3, 2, 1);
    put_key(&b, "k", CLORA_GGUF_STRING);
    put_string(&b, "a string that takes up most of the file's bytes, so that the two tensors "
                   "cannot fit");
    expect_rejected(&b, "tensor infos: 2 tensors (the count at byte 8) need at least 32 bytes "
                        "of info each, more than the 0 bytes left after the metadata");
}

static void bad_metadata(void **state)
{
    (void)state;
    bytes b = {0};
    /* a key's length past the end; the key at byte 24 */
    put_header(&b, 3, 0, 1);
    put_u64(&b, UINT64_MAX);
    put_zeros(&b, 20);
    expect_rejected(&b, "metadata entry 0: the key length 18446744073709551615 at byte 24 passes "
                        "the end of the 52-byte file (20 bytes are left)");
    put_header(&b, 3, 0, 1);
    put_u64(&b, 3);
    put(&b, "a\0b", 3);
    put_u32(&b, CLORA_GGUF_UINT8);
    put(&b, "\x01", 1);
    expect_rejected(&b, "metadata entry 0: the key at byte 32 holds a NUL byte");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", (clora_gguf_value_type)13);
    put_zeros(&b, 8);
    expect_rejected(&b, "metadata \"k\": unknown value type 13 at byte 33");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_STRING);
    put_u64(&b, 1ull << 50);
    put(&b, "abc", 3);
    expect_rejected(&b, "metadata \"k\": the string length 1125899906842624 at byte 37 passes");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_BOOL);
    put(&b, "\x02", 1);
    expect_rejected(&b, "metadata \"k\": bool 2 at byte 37 is neither 0 nor 1");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_UINT64);
    put_zeros(&b, 5);
    expect_rejected(&b, "metadata \"k\": the value (8 bytes at byte 37) passes the end of the "
                        "42-byte file");

    /* arrays */
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_UINT32);
    put_u64(&b, 1ull << 61);
    put_zeros(&b, 16);
    expect_rejected(&b, "metadata \"k\": an array of 2305843009213693952 uint32 elements (length "
                        "at byte 41) needs at least 4 bytes each, more than the 16 bytes the "
                        "file has left for it");
    /* the length leaves room for a later entry and a tensor info */
    put_header(&b, 3, 1, 2);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_UINT8);
    put_u64(&b, 50);
    put_zeros(&b, 50);
    expect_rejected(&b, "50 uint8 elements (length at byte 41) needs at least 1 bytes each, more "
                        "than the 5 bytes the file has left for it");
    /* nested arrays cannot each claim the rest of the file */
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_ARRAY);
    put_u64(&b, 4);
    put_u32(&b, CLORA_GGUF_UINT8);
    put_u64(&b, 20);
    put_zeros(&b, 20 + 3 * 12 - 1);
    expect_rejected(&b, "20 uint8 elements (length at byte 53) needs at least 1 bytes each, more "
                        "than the 19 bytes the file has left for it");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, 99);
    put_u64(&b, 1);
    expect_rejected(&b, "unknown array element type 99 at byte 37");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_STRING);
    put_u64(&b, 2);
    put_string(&b, "ok");
    put_u64(&b, 1ull << 40);
    put_zeros(&b, 4);
    expect_rejected(&b, "string 1 of the array: length 1099511627776 at byte 59 passes the end");
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    put_u32(&b, CLORA_GGUF_BOOL);
    put_u64(&b, 3);
    put(&b, "\x01\x00\x07", 3);
    expect_rejected(&b, "bool 7 at byte 51 is neither 0 nor 1");
    /* arrays of arrays nested nine deep */
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    for (int depth = 0; depth < 9; ++depth) {
        put_u32(&b, CLORA_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    put_zeros(&b, 64);
    expect_rejected(&b, "is nested 9 deep; clora reads up to 8");
    /* eight deep is fine */
    put_header(&b, 3, 0, 1);
    put_key(&b, "k", CLORA_GGUF_ARRAY);
    for (int depth = 0; depth < 7; ++depth) {
        put_u32(&b, CLORA_GGUF_ARRAY);
        put_u64(&b, 1);
    }
    put_u32(&b, CLORA_GGUF_INT16);
    put_u64(&b, 1);
    put_zeros(&b, 2);
    unsigned char *copy;
    clora_gguf *f = expect_opens(&b, &copy);
    close_crafted(f, copy, &b);

    /* duplicate keys */
    put_header(&b, 3, 0, 3);
    put_key(&b, "k", CLORA_GGUF_UINT8);
    put(&b, "\x01", 1);
    put_key(&b, "j", CLORA_GGUF_UINT8);
    put(&b, "\x01", 1);
    put_key(&b, "k", CLORA_GGUF_INT8);
    put(&b, "\x02", 1);
    expect_rejected(&b, "metadata: the key \"k\" appears twice, at bytes 24 and 52");
}

static void bad_alignments(void **state)
{
    (void)state;
    bytes b = {0};
    put_header(&b, 3, 1, 1);
    put_key(&b, "general.alignment", CLORA_GGUF_UINT64);
    put_u64(&b, 64);
    put_one_tensor_file_end(&b);
    expect_rejected(&b, "metadata \"general.alignment\": the value at byte 53 is a uint64; GGUF "
                        "requires a uint32");
    const uint32_t bad[3] = {0, 48, 0x80000001u};
    for (int k = 0; k < 3; ++k) {
        put_header(&b, 3, 1, 1);
        put_key(&b, "general.alignment", CLORA_GGUF_UINT32);
        put_u32(&b, bad[k]);
        put_one_tensor_file_end(&b);
        char why[96];
        snprintf(why, sizeof why, "the alignment %u at byte 53 is not a power of two", bad[k]);
        expect_rejected(&b, why);
    }
    /* a tensor whose offset is a multiple of 32 but not of 64 */
    put_header(&b, 3, 1, 1);
    put_key(&b, "general.alignment", CLORA_GGUF_UINT32);
    put_u32(&b, 64);
    const uint64_t four[1] = {4};
    put_tensor(&b, "w", 1, four, CLORA_GGUF_F32, 32);
    pad(&b, 64);
    put_zeros(&b, 64);
    expect_rejected(&b, "tensor \"w\": its data offset 32 (at byte 82) is not a multiple of the "
                        "alignment, 64");
}

/* A file with one tensor "w" (its info at byte 24, its offset field at
 * byte 33 + 8·ndim) and a 64-byte data section at byte 64, expected to be
 * rejected with `why`. */
static void expect_tensor_rejected(uint32_t ndim, const uint64_t *dims, uint32_t type,
                                   uint64_t offset, const char *why)
{
    bytes b = {0};
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "w", ndim, dims, type, offset);
    pad(&b, 32);
    put_zeros(&b, 64);
    expect_rejected(&b, why);
}

static void bad_tensor_infos(void **state)
{
    (void)state;
    /* the dimension count at byte 33, the dimensions from byte 37 */
    const uint64_t four[1] = {4}, five[5] = {1, 1, 1, 1, 1};
    expect_tensor_rejected(0, five, CLORA_GGUF_F32, 0,
                           "tensor \"w\": 0 dimensions (at byte 33); GGUF tensors have 1 to 4");
    expect_tensor_rejected(5, five, CLORA_GGUF_F32, 0, "tensor \"w\": 5 dimensions (at byte 33)");
    const uint64_t huge[2] = {4, 1ull << 63};
    expect_tensor_rejected(2, huge, CLORA_GGUF_F32, 0,
                           "tensor \"w\": dimension 1 is 9223372036854775808 (at byte 45), more "
                           "than 2^63 - 1");
    const uint64_t product[3] = {1ull << 32, 1ull << 31, 2};
    expect_tensor_rejected(3, product, CLORA_GGUF_F32, 0,
                           "tensor \"w\": its dimensions (at byte 37) multiply to more than "
                           "2^63 - 1");
    const uint64_t many[2] = {1ull << 31, 1ull << 31}; /* 2^62 elements, 2^64 bytes */
    expect_tensor_rejected(2, many, CLORA_GGUF_F32, 0,
                           "its 4611686018427387904 elements of F32 take more than 2^63 - 1 "
                           "bytes");
    expect_tensor_rejected(1, four, 99, 0, "tensor \"w\": unknown tensor type 99 at byte 45");
    expect_tensor_rejected(1, four, 4, 0, "unknown tensor type 4"); /* a number ggml retired */
    const uint64_t row[2] = {100, 3};
    expect_tensor_rejected(2, row, CLORA_GGUF_Q4_K, 0,
                           "tensor \"w\": its first dimension, 100, is not a whole number of "
                           "Q4_K blocks of 256");

    bytes b = {0};
    put_header(&b, 3, 1, 0);
    put_u64(&b, 2);
    put(&b, "w\0", 2);
    put_u32(&b, 1);
    put_u64(&b, 4);
    put_u32(&b, CLORA_GGUF_F32);
    put_u64(&b, 0);
    put_zeros(&b, 64);
    expect_rejected(&b, "tensor info 0: the name at byte 32 holds a NUL byte");
    put_header(&b, 3, 1, 0);
    put_u64(&b, 1ull << 62);
    put_zeros(&b, 40);
    expect_rejected(&b, "tensor info 0: the name length 4611686018427387904 at byte 24 passes");
    put_header(&b, 3, 2, 0);
    put_tensor(&b, "w", 1, four, CLORA_GGUF_F32, 0);
    put_tensor(&b, "w", 1, four, CLORA_GGUF_F32, 32);
    pad(&b, 32);
    put_zeros(&b, 64);
    expect_rejected(&b, "tensor infos: the tensor name \"w\" appears twice, at bytes 24 and 57");
}

static void bad_tensor_layouts(void **state)
{
    (void)state;
    const uint64_t four[1] = {4}, sixteen[1] = {16};
    expect_tensor_rejected(1, four, CLORA_GGUF_F32, 4,
                           "tensor \"w\": its data offset 4 (at byte 49) is not a multiple of "
                           "the alignment, 32");
    expect_tensor_rejected(1, four, CLORA_GGUF_F32, 64,
                           "tensor \"w\": its 16 bytes at data offset 64 (at byte 49; the data "
                           "section starts at byte 64) pass the end of the 128-byte file");
    expect_tensor_rejected(1, four, CLORA_GGUF_F32, UINT64_MAX - 31,
                           "pass the end of the 128-byte file");
    bytes b = {0};
    put_header(&b, 3, 1, 0);
    put_tensor(&b, "w", 1, four, CLORA_GGUF_F32, 0);
    expect_rejected(&b, "data section: it would start at byte 64 (the tensor infos end at byte "
                        "57, aligned to 32), past the end of the 57-byte file");
    put_header(&b, 3, 3, 0);
    put_tensor(&b, "a", 1, sixteen, CLORA_GGUF_F32, 0);
    put_tensor(&b, "b", 1, four, CLORA_GGUF_F32, 64);
    put_tensor(&b, "c", 1, four, CLORA_GGUF_F32, 32); /* inside a's 64 bytes */
    pad(&b, 32);
    put_zeros(&b, 128);
    expect_rejected(&b, "tensor data: tensor \"c\" (data bytes 32 to 48, offset at byte 115) "
                        "overlaps tensor \"a\" (0 to 64, offset at byte 49)");
}

/* Every prefix of a valid file fails with CLORA_ERR_FORMAT, except those
 * that keep every tensor's bytes (the file's last padding is optional). */
static void every_truncation_fails_cleanly(void **state)
{
    (void)state;
    const char *names[3] = {GOLDEN "tensors.gguf", GOLDEN "metadata.gguf",
                            GOLDEN "v2_align64.gguf"};
    char dir[64];
    test_temp_dir(dir, "gguf");
    for (int n = 0; n < 3; ++n) {
        size_t size;
        unsigned char *whole = read_whole(names[n], &size);
        clora_gguf *file = NULL;
        CHECK_OK(clora_gguf_open_memory(&file, whole, size, NULL));
        const uint64_t end = data_end(file);
        clora_gguf_close(file);
        for (size_t cut = 0; cut < size; ++cut) {
            unsigned char *copy;
            file = NULL;
            clora_status status = open_copy(&file, whole, cut, &copy);
            clora_status expected = cut < end ? CLORA_ERR_FORMAT : CLORA_OK;
            if (status != expected)
                fail_msg("%s cut to %zu of %zu bytes gave %s: %s", names[n], cut, size,
                         clora_status_name(status), clora_last_error());
            if (file)
                read_every_tensor(file);
            else
                test_expect_message("crafted.gguf: ");
            clora_gguf_close(file);
            free(copy);
        }
        /* the same through a file for a few cuts */
        char path[128];
        snprintf(path, sizeof path, "%s/cut.gguf", dir);
        for (size_t cut = 0; cut < size; cut += size / 7 + 1) {
            write_whole(path, whole, cut);
            file = NULL;
            clora_status status = clora_gguf_open(&file, path);
            assert_int_equal(status, cut < end ? CLORA_ERR_FORMAT : CLORA_OK);
            if (!file)
                test_expect_message("cut.gguf: ");
            clora_gguf_close(file);
        }
        free(whole);
    }
    test_remove_dir(dir);
}

static void random_corruption_never_crashes(void **state)
{
    (void)state;
    const char *names[2] = {GOLDEN "tensors.gguf", GOLDEN "metadata.gguf"};
    uint64_t rng = 7;
    for (int n = 0; n < 2; ++n) {
        size_t size;
        unsigned char *whole = read_whole(names[n], &size);
        clora_gguf *file = NULL;
        CHECK_OK(clora_gguf_open_memory(&file, whole, size, NULL));
        const size_t structure = (size_t)clora_gguf_data_offset(file);
        clora_gguf_close(file);
        size_t accepted = 0;
        for (int round = 0; round < 2000; ++round) {
            float u[4];
            test_fill_uniform(u, 4, &rng, 0.0f, 1.0f);
            unsigned char *copy;
            file = NULL;
            /* one or two bytes of the header, metadata or infos changed */
            const unsigned char flip = (unsigned char)(1 + u[1] * 254.0f);
            whole[(size_t)(u[0] * (float)structure) % structure] ^= flip;
            if (u[2] < 0.5f)
                whole[(size_t)(u[3] * (float)structure) % structure] ^= 0x80;
            clora_status status = open_copy(&file, whole, size, &copy);
            if (status == CLORA_OK) {
                read_every_tensor(file);
                ++accepted;
            } else if (status != CLORA_ERR_FORMAT) {
                fail_msg("a corrupt %s gave %s: %s", names[n], clora_status_name(status),
                         clora_last_error());
            }
            clora_gguf_close(file);
            free(copy);
            free(whole);
            whole = read_whole(names[n], &size);
        }
        /* changes inside a name, a string or a number still give a valid
         * file (about 10 % of tries on tensors.gguf, 45 % on metadata.gguf,
         * which is mostly strings) */
        assert_true(accepted < 1200);
        free(whole);
    }
}

static void files_that_cannot_be_read(void **state)
{
    (void)state;
    clora_gguf *file = NULL;
    CHECK_STATUS(clora_gguf_open(&file, GOLDEN "no_such.gguf"), CLORA_ERR_IO);
    test_expect_message("no_such.gguf");
    CHECK_STATUS(clora_gguf_open(&file, GOLDEN), CLORA_ERR_IO);
    test_expect_message("not a regular file");
    CHECK_STATUS(clora_gguf_open(NULL, GOLDEN "tensors.gguf"), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_gguf_open_memory(&file, NULL, 4, NULL), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_gguf_open_memory(&file, NULL, 0, NULL), CLORA_ERR_FORMAT);
    test_expect_message("GGUF data in memory: GGUF header: the file is 0 bytes");

    /* a file cut short after it was opened: its tensors cannot be read */
    char dir[64], path[128];
    test_temp_dir(dir, "gguf");
    snprintf(path, sizeof path, "%s/shrinks.gguf", dir);
    size_t size;
    unsigned char *whole = read_whole(GOLDEN "tensors.gguf", &size);
    write_whole(path, whole, size);
    CHECK_OK(clora_gguf_open(&file, path));
    assert_int_equal(truncate(path, 1000), 0);
    long k = clora_gguf_find_tensor(file, "q6_k");
    float *values = test_alloc(1536);
    CHECK_STATUS(clora_gguf_read_f32(file, (size_t)k, values), CLORA_ERR_IO);
    test_expect_message("shrinks.gguf: the file ends before byte");
    CHECK_STATUS(clora_gguf_read_raw(file, (size_t)k, values), CLORA_ERR_IO);
    free(values);
    clora_gguf_close(file);
    free(whole);
    test_remove_dir(dir);
}

/* A real model against gguf-py, when the environment names one. */
static void real_model_matches_gguf_py(void **state)
{
    (void)state;
    const char *model = getenv("CLORA_GGUF_MODEL"), *expected_path = getenv("CLORA_GGUF_EXPECTED");
    if (!model || !expected_path) {
        skip();
        return;
    }
    clora_gguf *file = NULL;
    CHECK_OK(clora_gguf_open(&file, model));
    clora_safetensors *expected = NULL;
    CHECK_OK(clora_safetensors_open(&expected, expected_path));
    for (size_t i = 0; i < clora_safetensors_count(expected); ++i) {
        clora_tensor_view want;
        CHECK_OK(clora_safetensors_get(expected, i, &want));
        long k = clora_gguf_find_tensor(file, want.name);
        assert_true(k >= 0);
        clora_gguf_tensor t;
        assert_true(clora_gguf_tensor_info(file, (size_t)k, &t));
        assert_int_equal(t.elements, want.numel);
        float *got = test_alloc(want.numel), *w = test_alloc(want.numel);
        CHECK_OK(clora_gguf_read_f32(file, (size_t)k, got));
        CHECK_OK(clora_tensor_to_f32(&want, w));
        assert_same_floats(want.name, got, w, want.numel);
        print_message("%s (%s, %zu values) matches gguf-py\n", want.name,
                      clora_gguf_tensor_type_name(t.type), want.numel);
        free(got);
        free(w);
    }
    clora_safetensors_close(expected);
    clora_gguf_close(file);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_every_supported_type),
        cmocka_unit_test(version_two_and_a_wider_alignment),
        cmocka_unit_test(type_names_and_support),
        cmocka_unit_test(metadata_of_every_type),
        cmocka_unit_test(crafted_files_that_are_valid),
        cmocka_unit_test(bad_headers),
        cmocka_unit_test(bad_metadata),
        cmocka_unit_test(bad_alignments),
        cmocka_unit_test(bad_tensor_infos),
        cmocka_unit_test(bad_tensor_layouts),
        cmocka_unit_test(every_truncation_fails_cleanly),
        cmocka_unit_test(random_corruption_never_crashes),
        cmocka_unit_test(files_that_cannot_be_read),
        cmocka_unit_test(real_model_matches_gguf_py),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
