/* test_tuning.c — CLBlast kernel parameters per device: the choice at open
 * (CLORA_TUNING, the cache file, clora's shipped files), tuning files and
 * their errors, switching an open device, and that the frozen GEMMs give
 * the reference's results whatever the parameters and GEMM routine. */
#define _POSIX_C_SOURCE 200809L
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];

static int setup(void **state)
{
    (void)state;
    unsetenv("CLORA_TUNING");
    test_temp_dir(dir, "tuning");
    setenv("CLORA_TUNING_DIR", dir, 1); /* no cache file unless a test writes one */
    return test_open_device(state);
}

static int teardown(void **state)
{
    test_remove_dir(dir);
    return test_close_device(state);
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A tuning file with Xgemm, XgemmDirect and the routine switch. */
static void write_tuning(const char *path, int mwg, int wgd, int min_indirect)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": {\n"
             " \"Xgemm\": {\"GEMMK\": 0, \"MWG\": %d, \"NWG\": 32, \"KWG\": 16, \"MDIMC\": 8,"
             " \"NDIMC\": 8, \"MDIMA\": 8, \"NDIMB\": 8, \"KWI\": 2, \"VWM\": 2, \"VWN\": 2,"
             " \"STRM\": 0, \"STRN\": 0, \"SA\": 0, \"SB\": 0, \"KREG\": 1},\n"
             " \"XgemmDirect\": {\"WGD\": %d, \"MDIMCD\": 8, \"NDIMCD\": 8, \"MDIMAD\": 8,"
             " \"NDIMBD\": 8, \"KWID\": 2, \"VWMD\": 2, \"VWND\": 2, \"PADA\": 1, \"PADB\": 1},\n"
             " \"GemmRoutine\": {\"XGEMM_MIN_INDIRECT_SIZE\": %d}}}\n",
             mwg, wgd, min_indirect);
    write_text(path, text);
}

/* A Linear step (forward, dx, dW) with odd sizes on the test device,
 * against the plain-C reference. */
static void check_linear(void)
{
    const size_t n = 37, in = 45, out = 29;
    uint64_t rng = 5;
    float *x = test_alloc(n * in), *w = test_alloc(out * in), *dy = test_alloc(n * out);
    float *y = test_alloc(n * out), *dx = test_alloc(n * in), *dw = test_alloc(out * in);
    test_fill_uniform(x, n * in, &rng, -1, 1);
    test_fill_uniform(w, out * in, &rng, -1, 1);
    test_fill_uniform(dy, n * out, &rng, -1, 1);
    clora_reference_linear_forward(y, x, w, NULL, n, in, out, CLORA_WEIGHT_OUT_IN);
    clora_reference_linear_backward(dx, dw, NULL, dy, x, w, n, in, out, CLORA_WEIGHT_OUT_IN);

    clora_buffer *bx = test_buffer_2d(n, in, x), *bw = test_buffer_2d(out, in, w);
    clora_buffer *bdy = test_buffer_2d(n, out, dy), *by = test_buffer_2d(n, out, NULL);
    clora_buffer *bdx = test_buffer_2d(n, in, NULL), *bdw = test_buffer_2d(out, in, NULL);
    CHECK_OK(clora_linear_forward(by, bx, bw, NULL, CLORA_WEIGHT_OUT_IN));
    CHECK_OK(clora_linear_backward(bdx, bdw, NULL, bdy, bx, bw, CLORA_WEIGHT_OUT_IN));
    float *got = test_download(by);
    test_assert_close("y", got, y, n * out, 1e-4, 1e-4);
    free(got);
    got = test_download(bdx);
    test_assert_close("dx", got, dx, n * in, 1e-4, 1e-4);
    free(got);
    got = test_download(bdw);
    test_assert_close("dW", got, dw, out * in, 1e-4, 1e-4);
    free(got);
    clora_buffer *all[] = {bx, bw, bdy, by, bdx, bdw};
    for (int i = 0; i < 6; ++i)
        clora_buffer_destroy(all[i]);
    float *host[] = {x, w, dy, y, dx, dw};
    for (int i = 0; i < 6; ++i)
        free(host[i]);
}

static const char *tuning_of(clora_device *dev)
{
    static clora_device_info info;
    CHECK_OK(clora_device_get_info(dev, &info));
    return info.tuning;
}

static void shipped_parameters_on_pocl(void **state)
{
    (void)state;
    clora_device_info info;
    CHECK_OK(clora_device_get_info(test_device, &info));
    if (!strstr(info.platform_name, "Portable Computing Language") ||
        info.type != CLORA_DEVICE_CPU) {
        assert_non_null(strstr(info.tuning, "CLBlast's own parameters"));
        skip();
    }
    assert_non_null(strstr(info.tuning, "shipped"));
    assert_non_null(strstr(info.tuning, "pocl-cpu.json"));
    check_linear();
}

static void environment_file_and_off(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof path, "%s/env.json", dir);
    write_tuning(path, 32, 16, 0);

    clora_device *dev = NULL;
    setenv("CLORA_TUNING", path, 1);
    CHECK_OK(clora_device_open(&dev, NULL));
    assert_non_null(strstr(tuning_of(dev), path));
    clora_device_destroy(dev);

    /* CLBlast has no way back to its own parameters once this process gave
     * it others for the device; CLORA_TUNING=off then says so. (An open
     * under CLORA_TUNING=off in a fresh process is in cli_check.sh.) */
    setenv("CLORA_TUNING", "off", 1);
    CHECK_STATUS(clora_device_open(&dev, NULL), CLORA_ERR_UNSUPPORTED);
    test_expect_message("CLBlast cannot go back to its own");
    assert_null(dev);
    unsetenv("CLORA_TUNING");
    CHECK_STATUS(clora_device_set_tuning(test_device, "off"), CLORA_ERR_UNSUPPORTED);
}

/* Each switch recompiles CLBlast's kernels with the new parameters: the
 * results must stay right, through the direct and the indirect routine. */
static void switching_an_open_device(void **state)
{
    (void)state;
    char indirect[128], direct[128];
    snprintf(indirect, sizeof indirect, "%s/indirect.json", dir);
    snprintf(direct, sizeof direct, "%s/direct.json", dir);
    write_tuning(indirect, 64, 16, 0);
    write_tuning(direct, 32, 32, 100000);
    CHECK_OK(clora_device_set_tuning(test_device, indirect));
    assert_non_null(strstr(tuning_of(test_device), indirect));
    check_linear();
    CHECK_OK(clora_device_set_tuning(test_device, direct));
    check_linear();
    CHECK_OK(clora_device_set_tuning(test_device, NULL));
    CHECK_STATUS(clora_device_set_tuning(test_device, ""), CLORA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(clora_device_set_tuning(NULL, "off"), CLORA_ERR_NULL_ARGUMENT);
}

static void cache_file_is_used(void **state)
{
    (void)state;
    char path[1024];
    CHECK_OK(clora_device_tuning_path(test_device, path, sizeof path));
    assert_true(strncmp(path, dir, strlen(dir)) == 0);
    assert_non_null(strstr(path, ".json"));
    assert_null(strchr(path + strlen(dir) + 1, ' '));
    write_tuning(path, 32, 16, 64);

    clora_device *dev = NULL;
    CHECK_OK(clora_device_open(&dev, NULL));
    assert_non_null(strstr(tuning_of(dev), "cache file"));
    clora_device_destroy(dev);

    /* A broken cache file stops the open with a message that names it and
     * says what to do. */
    write_text(path, "{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": {}}");
    CHECK_STATUS(clora_device_open(&dev, NULL), CLORA_ERR_FORMAT);
    test_expect_message(path);
    test_expect_message("clora tune");
    assert_null(dev);
    remove(path);

    char small[8];
    CHECK_STATUS(clora_device_tuning_path(test_device, small, sizeof small),
                 CLORA_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(clora_device_tuning_path(NULL, path, sizeof path), CLORA_ERR_NULL_ARGUMENT);
}

static void bad_tuning_files(void **state)
{
    (void)state;
    static const struct {
        const char *text, *message;
        clora_status status;
    } cases[] = {
        {"not json", "not JSON", CLORA_ERR_FORMAT},
        {"[1]", "not a tuning file", CLORA_ERR_FORMAT},
        {"{\"format\": \"other\"}", "not a tuning file", CLORA_ERR_FORMAT},
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 2, \"kernels\": {}}",
         "\"version\" must be 1", CLORA_ERR_FORMAT},
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 1}", "\"kernels\"",
         CLORA_ERR_FORMAT},
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": "
         "{\"Xgemv\": {\"WGS\": 1}}}",
         "unknown CLBlast kernel \"Xgemv\"", CLORA_ERR_FORMAT},
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": "
         "{\"Copy\": {\"COPY_DIMX\": -8}}}",
         "COPY_DIMX must be an integer", CLORA_ERR_FORMAT},
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": "
         "{\"Copy\": {\"COPY_DIMX\": 8}, \"Copy\": {\"COPY_DIMX\": 8}}}",
         "not JSON", CLORA_ERR_FORMAT},
        /* CLBlast wants every parameter of a kernel. */
        {"{\"format\": \"clora-clblast-tuning\", \"version\": 1, \"kernels\": "
         "{\"Copy\": {\"COPY_DIMX\": 8}}}",
         "CLBlast refused the parameters for its Copy kernel", CLORA_ERR_CLBLAST},
    };
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        write_text(path, cases[i].text);
        char before[sizeof ((clora_device_info *)0)->tuning];
        snprintf(before, sizeof before, "%s", tuning_of(test_device));
        CHECK_STATUS(clora_device_set_tuning(test_device, path), cases[i].status);
        test_expect_message(cases[i].message);
        /* What was in force stays. */
        assert_string_equal(tuning_of(test_device), before);

        clora_device *dev = NULL;
        setenv("CLORA_TUNING", path, 1);
        CHECK_STATUS(clora_device_open(&dev, NULL), cases[i].status);
        assert_null(dev);
        unsetenv("CLORA_TUNING");
    }
    CHECK_STATUS(clora_device_set_tuning(test_device, "/nonexistent/tuning.json"), CLORA_ERR_IO);
    CHECK_OK(clora_device_set_tuning(test_device, NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_parameters_on_pocl),
        cmocka_unit_test(environment_file_and_off),
        cmocka_unit_test(switching_an_open_device),
        cmocka_unit_test(cache_file_is_used),
        cmocka_unit_test(bad_tuning_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
