/* cmd_selfcheck.c — `clora selfcheck`: one LoRA layer on the device against
 * the plain-C reference, then its forward timed next to the bare frozen
 * GEMM in the same run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"

typedef struct selfcheck_options {
    const char *device;
    size_t rows, in, out, rank, reps;
    float alpha, dropout;
} selfcheck_options;

static const char selfcheck_description[] =
    "Runs one LoRA layer (forward and backward) on the device, compares every\n"
    "output with clora's plain-C reference, then times the LoRA forward next to\n"
    "the bare frozen GEMM x*W^T, interleaved in the same run, and prints medians\n"
    "and their ratio. Exits 1 if any output is off.\n";

/* Worst element of |got - want| / (atol + rtol·|want|); <= 1 passes. */
static double worst_ratio(const float *got, const float *want, size_t n, double *max_abs)
{
    const double atol = 1e-4, rtol = 1e-3;
    double worst = 0.0;
    *max_abs = 0.0;
    for (size_t i = 0; i < n; ++i) {
        double diff = fabs((double)got[i] - (double)want[i]);
        if (!(diff == diff)) /* NaN */
            return INFINITY;
        double ratio = diff / (atol + rtol * fabs((double)want[i]));
        if (ratio > worst)
            worst = ratio;
        if (diff > *max_abs)
            *max_abs = diff;
    }
    return worst;
}

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse_options(int argc, char **argv, selfcheck_options *o)
{
    const cli_option options[] = {
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL",
                 "device index or name part (default: CLORA_DEVICE, else first GPU)")},
        {CLI_OPT("--rows", CLI_SIZE, &o->rows, "N", "rows of x, batch x sequence"),
         .fallback = "512", CLI_AT_LEAST(1)},
        {CLI_OPT("--in", CLI_SIZE, &o->in, "N", "in_features"), .fallback = "768",
         CLI_AT_LEAST(1)},
        {CLI_OPT("--out", CLI_SIZE, &o->out, "N", "out_features"), .fallback = "768",
         CLI_AT_LEAST(1)},
        {CLI_OPT("--rank", CLI_SIZE, &o->rank, "R", "LoRA rank, 1..256"), .fallback = "8"},
        {CLI_OPT("--alpha", CLI_FLOAT, &o->alpha, "A", "LoRA alpha; scale = alpha / r"),
         .fallback = "16"},
        {CLI_OPT("--dropout", CLI_FLOAT, &o->dropout, "P",
                 "dropout on the LoRA branch, 0 <= P < 1"),
         .fallback = "0"},
        {CLI_OPT("--reps", CLI_SIZE, &o->reps, "K", "timed repetitions; 0 checks without timing"),
         .fallback = "20"},
        CLI_END};
    const cli_spec spec = {.command = "selfcheck",
                           .usage = "usage: clora selfcheck [options]",
                           .description = selfcheck_description,
                           .options = options};
    return cli_parse(&spec, argc, argv);
}

/* Host copies of the layer and of the device's results. */
enum { X, W, BIAS, A, B, DY, Y, H, DX, DA, DB, TENSOR_COUNT };
static const char *const tensor_names[TENSOR_COUNT] = {"x",  "weight", "bias", "lora_a",
                                                        "lora_b", "dy", "y", "h", "dx",
                                                        "d_lora_a", "d_lora_b"};

int cmd_selfcheck(int argc, char **argv)
{
    selfcheck_options o = {0};
    int parsed = parse_options(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;

    const size_t n = o.rows, in = o.in, out = o.out, r = o.rank;
    const size_t sizes[TENSOR_COUNT] = {n * in, out * in, out, r * in, out * r, n * out,
                                        n * out, n * r, n * in, r * in, out * r};
    const size_t shapes[TENSOR_COUNT][2] = {{n, in}, {out, in}, {out, 0}, {r, in}, {out, r},
                                            {n, out}, {n, out}, {n, r}, {n, in}, {r, in},
                                            {out, r}};
    clora_lora_spec spec = {o.alpha, CLORA_SCALE_ALPHA_OVER_R, o.dropout, 1234,
                            CLORA_WEIGHT_OUT_IN, 0};

    clora_device *dev = NULL;
    clora_buffer *buf[TENSOR_COUNT] = {0};
    float *host[TENSOR_COUNT] = {0};
    float *ref[TENSOR_COUNT] = {0};
    double *times[4] = {0};
    int exit_code = 1;
    clora_status status = clora_device_open(&dev, o.device);
    if (status != CLORA_OK) {
        cli_report("selfcheck", "opening the device", status);
        goto done;
    }
    clora_device_info info;
    clora_device_get_info(dev, &info);
    printf("clora selfcheck on device %zu: %s (%s)\n", info.index, info.name, info.platform_name);
    printf("CLBlast parameters: %s\n", info.tuning);
    printf("LoRA layer: N = %zu rows, in = %zu, out = %zu, r = %zu, alpha = %g (scale %g)%s\n", n,
           in, out, r, (double)o.alpha, (double)clora_lora_scale(spec.scale_mode, o.alpha, r),
           o.dropout > 0 ? ", with dropout" : "");

    /* Random layer, deterministic: x in [-1, 1), weights at PyTorch's init
     * scale, B non-zero so the LoRA branch shows in the output. */
    uint64_t rng = 42;
    for (int t = 0; t < TENSOR_COUNT; ++t) {
        host[t] = calloc(sizes[t], sizeof(float));
        ref[t] = calloc(sizes[t], sizeof(float));
        if (!host[t] || !ref[t]) {
            fprintf(stderr, "clora selfcheck: out of host memory\n");
            goto done;
        }
    }
    const float bound_in = 1.0f / sqrtf((float)in), bound_r = 1.0f / sqrtf((float)r);
    const float bounds[DY + 1] = {1.0f, bound_in, bound_in, bound_in, bound_r, 1.0f};
    for (int t = X; t <= DY; ++t)
        for (size_t i = 0; i < sizes[t]; ++i)
            host[t][i] = cli_uniform(&rng, -bounds[t], bounds[t]);

    for (int t = 0; t < TENSOR_COUNT && status == CLORA_OK; ++t) {
        status = t == BIAS ? clora_buffer_create_1d(&buf[t], dev, out)
                           : clora_buffer_create_2d(&buf[t], dev, shapes[t][0], shapes[t][1]);
        /* Outputs too: their zeros then count as written for memory checkers
         * such as oclgrind, which do not track clEnqueueFillBuffer. */
        if (status == CLORA_OK)
            status = clora_buffer_upload(buf[t], 0, host[t], sizes[t]);
    }
    if (status != CLORA_OK) {
        cli_report("selfcheck", "allocating buffers", status);
        goto done;
    }

    /* ---- correctness ---- */
    printf("compiling kernels and checking against the plain-C reference ...\n");
    fflush(stdout);
    status = clora_lora_forward(buf[Y], buf[H], buf[X], buf[W], buf[BIAS], buf[A], buf[B], &spec);
    if (status == CLORA_OK)
        status = clora_lora_backward(buf[DX], buf[DA], buf[DB], buf[DY], buf[X], buf[H], buf[W],
                                     buf[A], buf[B], &spec);
    for (int t = Y; t < TENSOR_COUNT && status == CLORA_OK; ++t)
        status = clora_buffer_download(buf[t], 0, host[t], sizes[t]);
    if (status != CLORA_OK) {
        cli_report("selfcheck", "running the LoRA layer", status);
        goto done;
    }
    status = clora_reference_lora_forward(ref[Y], ref[H], host[X], host[W], host[BIAS], host[A],
                                          host[B], n, in, out, r, &spec);
    if (status == CLORA_OK)
        status = clora_reference_lora_backward(ref[DX], ref[DA], ref[DB], host[DY], host[X],
                                               host[W], host[A], host[B], n, in, out, r, &spec);
    if (status != CLORA_OK) {
        cli_report("selfcheck", "running the reference", status);
        goto done;
    }
    int all_pass = 1;
    printf("  %-9s %12s  %s\n", "output", "max |error|", "within 1e-4 + 1e-3*|ref|");
    for (int t = Y; t < TENSOR_COUNT; ++t) {
        double max_abs = 0.0;
        double worst = worst_ratio(host[t], ref[t], sizes[t], &max_abs);
        int pass = worst <= 1.0;
        all_pass &= pass;
        printf("  %-9s %12.3g  %s\n", tensor_names[t], max_abs, pass ? "yes" : "NO");
    }

    if (o.reps == 0) {
        printf("selfcheck %s\n", all_pass ? "passed" : "FAILED: outputs differ from the reference");
        exit_code = all_pass ? 0 : 1;
        goto done;
    }

    /* ---- timing: the four cases interleaved, one round per repetition ---- */
    printf("timing %zu repetitions after warm-up ...\n", o.reps);
    fflush(stdout);
    for (int c = 0; c < 4; ++c)
        if (!(times[c] = calloc(o.reps, sizeof(double)))) {
            fprintf(stderr, "clora selfcheck: out of host memory\n");
            goto done;
        }
    for (size_t rep = 0; rep < o.reps + 2 && status == CLORA_OK; ++rep) {
        for (int c = 0; c < 4 && status == CLORA_OK; ++c) {
            double t0 = cli_seconds();
            switch (c) {
            case 0:
                status = clora_linear_forward(buf[Y], buf[X], buf[W], NULL, spec.weight_layout);
                break;
            case 1:
                status = clora_linear_forward(buf[Y], buf[X], buf[W], buf[BIAS], spec.weight_layout);
                break;
            case 2:
                status = clora_lora_forward(buf[Y], buf[H], buf[X], buf[W], buf[BIAS], buf[A],
                                            buf[B], &spec);
                break;
            default:
                status = clora_lora_backward(buf[DX], buf[DA], buf[DB], buf[DY], buf[X], buf[H],
                                             buf[W], buf[A], buf[B], &spec);
                break;
            }
            if (status == CLORA_OK)
                status = clora_device_finish(dev);
            if (rep >= 2)
                times[c][rep - 2] = (cli_seconds() - t0) * 1e3;
        }
    }
    if (status != CLORA_OK) {
        cli_report("selfcheck", "timing", status);
        goto done;
    }
    double median[4];
    for (int c = 0; c < 4; ++c)
        median[c] = cli_median(times[c], o.reps);
    const double gemm_gflops = 2.0 * (double)n * (double)in * (double)out / (median[0] * 1e6);
    printf("  %-34s %9.3f ms   (%.1f GFLOP/s)\n", "frozen GEMM x*W^T (bare)", median[0],
           gemm_gflops);
    printf("  %-34s %9.3f ms   %.3fx the bare GEMM\n", "frozen Linear x*W^T + b", median[1],
           median[1] / median[0]);
    printf("  %-34s %9.3f ms   %.3fx the bare GEMM, %.3fx the Linear\n",
           "LoRA forward", median[2], median[2] / median[0], median[2] / median[1]);
    printf("  %-34s %9.3f ms   %.3fx the bare GEMM\n", "LoRA backward (dx, dA, dB)",
           median[3], median[3] / median[0]);
    printf("selfcheck %s\n", all_pass ? "passed" : "FAILED: outputs differ from the reference");
    exit_code = all_pass ? 0 : 1;

done:
    for (int c = 0; c < 4; ++c)
        free(times[c]);
    for (int t = 0; t < TENSOR_COUNT; ++t) {
        clora_buffer_destroy(buf[t]);
        free(host[t]);
        free(ref[t]);
    }
    clora_device_destroy(dev);
    return exit_code;
}
