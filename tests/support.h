/* support.h — what every clora test binary shares: one device per binary
 * (opened in the cmocka group setup, so kernels compile once), status
 * assertions that print clora's detailed message, deterministic random
 * data, host<->device helpers and the |a - b| <= atol + rtol·|ref| check. */
#ifndef CLORA_TESTS_SUPPORT_H
#define CLORA_TESTS_SUPPORT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clora/clora.h"

/* The device of this test binary: CLORA_DEVICE if set, else the default. */
extern clora_device *test_device;

int test_open_device(void **state);
int test_close_device(void **state);

/* Fails the test with the call, the status name and clora_last_error(). */
#define CHECK_OK(call)                                                                   \
    do {                                                                                 \
        clora_status check_ok_status_ = (call);                                          \
        if (check_ok_status_ != CLORA_OK)                                                \
            fail_msg("%s returned %s: %s", #call, clora_status_name(check_ok_status_),   \
                     clora_last_error());                                                \
    } while (0)

/* Expects `call` to return exactly `expected`. */
#define CHECK_STATUS(call, expected)                                                     \
    do {                                                                                 \
        clora_status check_status_ = (call);                                             \
        if (check_status_ != (expected))                                                 \
            fail_msg("%s returned %s, expected %s (message: %s)", #call,                 \
                     clora_status_name(check_status_), clora_status_name(expected),      \
                     clora_last_error());                                                \
    } while (0)

/* Expects clora_last_error() to contain `text`. */
void test_expect_message(const char *text);

/* Deterministic uniform floats in [lo, hi). */
void test_fill_uniform(float *dst, size_t n, uint64_t *state, float lo, float hi);

/* malloc that fails the test instead of returning NULL. */
float *test_alloc(size_t n);

/* A device buffer of `shape` holding `data` (NULL: zeros). */
clora_buffer *test_buffer(size_t ndim, const size_t *shape, const float *data);
clora_buffer *test_buffer_2d(size_t rows, size_t cols, const float *data);
clora_buffer *test_buffer_1d(size_t n, const float *data);

/* The buffer's contents in a new host array (free() it). */
float *test_download(const clora_buffer *buffer);

/* Fails unless |got - want| <= atol + rtol·|want| everywhere; the message
 * names the worst element. */
void test_assert_close(const char *what, const float *got, const float *want, size_t n,
                       double atol, double rtol);

/* A new empty folder /tmp/clora-<name>-XXXXXX, its path in dir (64 bytes). */
void test_temp_dir(char dir[64], const char *name);
/* Removes a folder and everything in it. */
void test_remove_dir(const char *dir);
/* Writes `text` to dir/name, making the folder dir first if it is missing. */
void test_write_text(const char *dir, const char *name, const char *text);
/* The whole file at path as a string (the caller frees it). */
char *test_read_text(const char *path);

/* Fails unless the two arrays are bit-identical. */
void test_assert_identical(const char *what, const float *a, const float *b, size_t n);

/* The fingerprint clora_tokenizer_fingerprint defines (clora/tokenizer.h),
 * computed here on its own from the kind, the tokens clora_tokenizer_token
 * gives and `count` merges (merges[2i] and merges[2i + 1] the left and
 * right ids of rank i; none for WordPiece), as 16 hex digits in out. */
void test_fingerprint(const clora_tokenizer *tokenizer, const int32_t *merges, size_t count,
                      char out[17]);

#endif /* CLORA_TESTS_SUPPORT_H */
