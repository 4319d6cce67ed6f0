/* support.c — shared helpers of the clora test binaries. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

clora_device *test_device = NULL;

int test_open_device(void **state)
{
    (void)state;
    clora_status status = clora_device_open(&test_device, NULL);
    if (status != CLORA_OK) {
        fprintf(stderr, "cannot open an OpenCL device: %s: %s\n", clora_status_name(status),
                clora_last_error());
        return -1;
    }
    return 0;
}

int test_close_device(void **state)
{
    (void)state;
    clora_device_destroy(test_device);
    test_device = NULL;
    return 0;
}

void test_expect_message(const char *text)
{
    if (!strstr(clora_last_error(), text))
        fail_msg("expected the error message to mention \"%s\"; it reads: %s", text,
                 clora_last_error());
}

void test_fill_uniform(float *dst, size_t n, uint64_t *state, float lo, float hi)
{
    for (size_t i = 0; i < n; ++i) {
        uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        dst[i] = lo + (hi - lo) * (float)(z >> 40) * (1.0f / 16777216.0f);
    }
}

float *test_alloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof *p);
    if (!p)
        fail_msg("out of host memory (%zu floats)", n);
    return p;
}

clora_buffer *test_buffer(size_t ndim, const size_t *shape, const float *data)
{
    clora_buffer *buf = NULL;
    CHECK_OK(clora_buffer_create(&buf, test_device, ndim, shape));
    if (data)
        CHECK_OK(clora_buffer_upload(buf, 0, data, clora_buffer_numel(buf)));
    return buf;
}

clora_buffer *test_buffer_2d(size_t rows, size_t cols, const float *data)
{
    const size_t shape[2] = {rows, cols};
    return test_buffer(2, shape, data);
}

clora_buffer *test_buffer_1d(size_t n, const float *data)
{
    return test_buffer(1, &n, data);
}

float *test_download(const clora_buffer *buffer)
{
    size_t n = clora_buffer_numel(buffer);
    float *host = test_alloc(n);
    CHECK_OK(clora_buffer_download(buffer, 0, host, n));
    return host;
}

void test_assert_close(const char *what, const float *got, const float *want, size_t n,
                       double atol, double rtol)
{
    size_t worst = 0;
    double worst_excess = -1.0;
    for (size_t i = 0; i < n; ++i) {
        double diff = fabs((double)got[i] - (double)want[i]);
        double allowed = atol + rtol * fabs((double)want[i]);
        double excess = isnan(diff) ? INFINITY : diff / allowed;
        if (excess > worst_excess) {
            worst_excess = excess;
            worst = i;
        }
    }
    if (worst_excess > 1.0)
        fail_msg("%s: element %zu is %.9g, expected %.9g (|diff| %.3g > %.3g + %.3g*|ref|)",
                 what, worst, (double)got[worst], (double)want[worst],
                 fabs((double)got[worst] - (double)want[worst]), atol, rtol);
}

void test_assert_identical(const char *what, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (memcmp(&a[i], &b[i], sizeof a[i]) != 0)
            fail_msg("%s: element %zu differs: %.9g vs %.9g", what, i, (double)a[i], (double)b[i]);
}

void test_temp_dir(char dir[64], const char *name)
{
    snprintf(dir, 64, "/tmp/clora-%.32s-XXXXXX", name);
    if (!mkdtemp(dir))
        fail_msg("cannot create %s", dir);
}

void test_remove_dir(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

void test_write_text(const char *dir, const char *name, const char *text)
{
    mkdir(dir, 0777);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_true(fputs(text, f) >= 0);
    assert_int_equal(fclose(f), 0);
}

char *test_read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    const long n = ftell(f);
    assert_true(n >= 0);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    char *text = malloc((size_t)n + 1);
    assert_non_null(text);
    assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
    text[n] = '\0';
    fclose(f);
    return text;
}

static uint64_t fnv1a(uint64_t hash, const void *bytes, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        hash = (hash ^ ((const unsigned char *)bytes)[i]) * 1099511628211ull;
    return hash;
}

static uint64_t fnv1a_le32(uint64_t hash, uint32_t v)
{
    for (int shift = 0; shift < 32; shift += 8) {
        const unsigned char byte = (unsigned char)(v >> shift);
        hash = fnv1a(hash, &byte, 1);
    }
    return hash;
}

void test_fingerprint(const clora_tokenizer *tokenizer, const int32_t *merges, size_t count,
                      char out[17])
{
    const unsigned char kind = (unsigned char)clora_tokenizer_get_kind(tokenizer);
    uint64_t hash = fnv1a(14695981039346656037ull, &kind, 1);
    for (size_t id = 0; id < clora_tokenizer_vocab_size(tokenizer); ++id) {
        const char *token = clora_tokenizer_token(tokenizer, (int32_t)id);
        hash = fnv1a_le32(hash, token ? (uint32_t)strlen(token) : 0xFFFFFFFFu);
        if (token)
            hash = fnv1a(hash, token, strlen(token));
    }
    for (size_t i = 0; i < 2 * count; ++i)
        hash = fnv1a_le32(hash, (uint32_t)merges[i]);
    snprintf(out, 17, "%016llx", (unsigned long long)hash);
}
