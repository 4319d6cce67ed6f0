/* cmd_tune.c — `clora tune`: runs CLBlast's tuners (the clblast-utils
 * programs) for a device, keeps each kernel's best parameters, chooses where
 * CLBlast switches from its direct to its indirect GEMM by timing clora's own
 * Linear steps, checks the result against what the device used before, and
 * writes the device's tuning file, which clora applies at every open. */
/* POSIX.1-2008 for fork, mkdtemp, fileno and the folder calls. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "options.h"
#include "training.h"

static const char tune_description[] =
    "Tunes CLBlast's GEMM kernels for a device, so that clora's frozen GEMMs run\n"
    "fast on devices CLBlast has no parameters for (PoCL's CPU device among them).\n"
    "\n"
    "  1. runs CLBlast's tuners (clblast_tuner_xgemm, _xgemm_direct, _copy_fast,\n"
    "     _copy_pad, _transpose_fast, _transpose_pad from Debian's clblast-utils)\n"
    "     and keeps each kernel's fastest parameters;\n"
    "  2. times clora's Linear step (forward, dx, dW) at N = 512, in = out = 768\n"
    "     with the parameters the device uses now;\n"
    "  3. tries wider variants of the best Xgemm parameters (tiles up to 128,\n"
    "     vectors up to 8, which the tuner's fixed set lacks) on that step at\n"
    "     M x K -> N, then times it at sizes 64 .. 1024 with CLBlast's direct and\n"
    "     indirect GEMM to choose where it switches;\n"
    "  4. times the step of 2 with the new parameters;\n"
    "  5. writes the device's tuning file if they are faster (see CLORA_TUNING).\n"
    "\n"
    "The GEMM tuners run their fixed sets of kernel variants (578 and 46) and are\n"
    "stopped before their random searches, whose spaces (millions of variants on\n"
    "a CPU device) they enumerate in memory. Expect 30 to 45 minutes on a CPU\n"
    "device (CLBlast compiles its kernels anew for every variant of step 3),\n"
    "a few minutes on a GPU.\n";

typedef struct tune_options {
    const char *device, *keep, *from, *output, *match;
    size_t m, n, k;
    int force;
} tune_options;

/* The tuners clora runs and the CLBlast kernel each one tunes. */
static const struct {
    const char *program, *family, *kernel;
    int gemm_size;         /* takes -m -n -k */
    const char *stop_when; /* stopped once it wrote this (its fixed set's results) */
} tuners[] = {
    {"clblast_tuner_xgemm", "xgemm", "Xgemm", 1, "clblast_xgemm_1_32.json"},
    {"clblast_tuner_xgemm_direct", "xgemm_direct", "XgemmDirect", 1,
     "clblast_xgemm_direct_1_32.json"},
    {"clblast_tuner_copy_fast", "copy", "Copy", 0, NULL},
    {"clblast_tuner_copy_pad", "pad", "Pad", 0, NULL},
    {"clblast_tuner_transpose_fast", "transpose", "Transpose", 0, NULL},
    {"clblast_tuner_transpose_pad", "padtranspose", "Padtranspose", 0, NULL},
};
enum { TUNER_COUNT = sizeof tuners / sizeof tuners[0] };

/* ---- step 1: the tuners -------------------------------------------------------- */

/* The tuners address a device as (platform index, device index on it). */
static int opencl_position(clora_device *dev, unsigned *platform_index, unsigned *device_index)
{
    cl_device_id device = clora_device_cl_device(dev);
    cl_platform_id platform = NULL, platforms[64];
    cl_device_id devices[256];
    cl_uint platform_count = 0, device_count = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL) ||
        clGetPlatformIDs(64, platforms, &platform_count))
        return 0;
    for (cl_uint p = 0; p < platform_count && p < 64; ++p) {
        if (platforms[p] != platform)
            continue;
        if (clGetDeviceIDs(platform, CL_DEVICE_TYPE_ALL, 256, devices, &device_count))
            return 0;
        for (cl_uint d = 0; d < device_count && d < 256; ++d)
            if (devices[d] == device) {
                *platform_index = p;
                *device_index = d;
                return 1;
            }
    }
    return 0;
}

/* Runs argv[0] (looked up on PATH) in `dir` with its output in `log`;
 * returns its exit status, or -1 if it could not start. With `stop_when`,
 * stops it (successfully) a second after it wrote that file into `dir`. */
static int run_program(char *const *argv, const char *dir, const char *log,
                       const char *stop_when)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        if (chdir(dir) != 0 || !freopen(log, "w", stdout) || dup2(fileno(stdout), 2) < 0)
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    char stop_path[1200] = "";
    if (stop_when)
        snprintf(stop_path, sizeof stop_path, "%s/%s", dir, stop_when);
    int wstatus = 0, seen = 0, stopped = 0;
    for (;;) {
        pid_t done = waitpid(pid, &wstatus, stop_when ? WNOHANG : 0);
        if (done == pid)
            break;
        if (done < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        struct stat st;
        if (!stopped && stat(stop_path, &st) == 0) {
            if (seen++ >= 1) { /* written a second ago: complete */
                kill(pid, SIGTERM);
                stopped = 1;
            }
        }
        const struct timespec second = {1, 0};
        nanosleep(&second, NULL);
    }
    /* Stopped by us, or ended in any way after writing what we wait for
     * (the GEMM tuner aborts in its random search on some sizes). */
    struct stat st;
    if (stopped || (stop_when && stat(stop_path, &st) == 0))
        return 0;
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus) == 127 ? -1 : WEXITSTATUS(wstatus);
    return 128 + (WIFSIGNALED(wstatus) ? WTERMSIG(wstatus) : 0);
}

static int run_tuners(const tune_options *o, clora_device *dev, const char *dir)
{
    unsigned platform = 0, device = 0;
    if (!opencl_position(dev, &platform, &device)) {
        fprintf(stderr, "clora tune: cannot find the device's OpenCL platform and index\n");
        return 0;
    }
    char platform_text[16], device_text[16], m[32], n[32], k[32];
    snprintf(platform_text, sizeof platform_text, "%u", platform);
    snprintf(device_text, sizeof device_text, "%u", device);
    snprintf(m, sizeof m, "%zu", o->m);
    snprintf(n, sizeof n, "%zu", o->n);
    snprintf(k, sizeof k, "%zu", o->k);
    for (int t = 0; t < TUNER_COUNT; ++t) {
        char log[1200];
        snprintf(log, sizeof log, "%s/%s.log", dir, tuners[t].family);
        char *argv[24];
        int a = 0;
        argv[a++] = (char *)tuners[t].program;
        argv[a++] = "-platform", argv[a++] = platform_text;
        argv[a++] = "-device", argv[a++] = device_text;
        argv[a++] = "-precision", argv[a++] = "32";
        argv[a++] = "-runs", argv[a++] = "1";
        if (tuners[t].gemm_size) {
            argv[a++] = "-m", argv[a++] = m;
            argv[a++] = "-n", argv[a++] = n;
            argv[a++] = "-k", argv[a++] = k;
        }
        argv[a] = NULL;
        printf("  [%d/%d] %s ... ", t + 1, TUNER_COUNT, tuners[t].program);
        double t0 = cli_seconds();
        int rc = run_program(argv, dir, log, tuners[t].stop_when);
        if (rc == -1) {
            printf("\n");
            fprintf(stderr,
                    "clora tune: cannot run %s; install Debian's clblast-utils "
                    "(apt-get install clblast-utils)\n",
                    tuners[t].program);
            return 0;
        }
        if (rc != 0) {
            printf("\n");
            fprintf(stderr, "clora tune: %s failed (exit status %d); its output is in %s\n",
                    tuners[t].program, rc, log);
            return 0;
        }
        printf("%.0f s\n", cli_seconds() - t0);
    }
    return 1;
}

/* ---- reading the tuners' results ------------------------------------------------ */

/* "MWG=64 NWG=64 ... PRECISION=32" into {"MWG": 64, ...} without PRECISION;
 * NULL if malformed. */
static json_t *parse_parameters(const char *text)
{
    json_t *out = json_object();
    const char *p = text;
    while (*p) {
        while (*p == ' ')
            ++p;
        if (!*p)
            break;
        const char *eq = strchr(p, '=');
        if (!eq || eq == p || eq - p > 63) {
            json_decref(out);
            return NULL;
        }
        char name[64];
        memcpy(name, p, (size_t)(eq - p));
        name[eq - p] = '\0';
        char *end = NULL;
        long value = strtol(eq + 1, &end, 10);
        if (end == eq + 1 || (*end != ' ' && *end != '\0') || value < 0) {
            json_decref(out);
            return NULL;
        }
        if (strcmp(name, "PRECISION") != 0)
            json_object_set_new(out, name, json_integer(value));
        p = end;
    }
    if (json_object_size(out) == 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* "xgemm" matches the GEMM tuner's phases "xgemm_1", "xgemm_2", "xgemm_11",
 * ... but not "xgemm_direct_1". */
static int family_matches(const char *found, const char *family)
{
    size_t n = strlen(family);
    if (strncmp(found, family, n) != 0)
        return 0;
    if (found[n] == '\0')
        return 1;
    if (found[n] != '_' || found[n + 1] == '\0')
        return 0;
    for (const char *p = found + n + 1; *p; ++p)
        if (*p < '0' || *p > '9')
            return 0;
    return 1;
}

/* The fastest result of `family` among the tuner files in `dir` (the GEMM
 * tuners write one per search phase); *time_ms and *source describe it. */
static json_t *best_of_family(const char *dir, const char *family, double *time_ms,
                              char *source, size_t source_size)
{
    DIR *d = opendir(dir);
    if (!d)
        return NULL;
    json_t *best = NULL;
    double best_time = INFINITY;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        size_t len = strlen(name);
        if (strncmp(name, "clblast_", 8) != 0 || len < 5 || strcmp(name + len - 5, ".json"))
            continue;
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        json_t *doc = json_load_file(path, 0, NULL);
        const char *fam = json_string_value(json_object_get(doc, "kernel_family"));
        const char *precision = json_string_value(json_object_get(doc, "precision"));
        const char *time_text = json_string_value(json_object_get(doc, "best_time"));
        const char *params = json_string_value(json_object_get(doc, "best_parameters"));
        if (fam && family_matches(fam, family) && precision && !strcmp(precision, "32") &&
            time_text && params) {
            double t = strtod(time_text, NULL);
            json_t *parsed = parse_parameters(params);
            if (parsed && t > 0 && t < best_time) {
                json_decref(best);
                best = parsed;
                best_time = t;
                snprintf(source, source_size, "%s", name);
            } else {
                json_decref(parsed);
            }
        }
        json_decref(doc);
    }
    closedir(d);
    *time_ms = best_time;
    return best;
}

/* ---- steps 2 and 3: timing clora's Linear step -------------------------------- */

typedef struct linear_step {
    clora_buffer *x, *w, *y, *dy, *dx, *dw;
} linear_step;

static void step_free(linear_step *s)
{
    clora_buffer *all[] = {s->x, s->w, s->y, s->dy, s->dx, s->dw};
    for (int i = 0; i < 6; ++i)
        clora_buffer_destroy(all[i]);
    memset(s, 0, sizeof *s);
}

static clora_status step_create(linear_step *s, clora_device *dev, size_t n, size_t in, size_t out)
{
    memset(s, 0, sizeof *s);
    clora_status status;
    if ((status = clora_buffer_create_2d(&s->x, dev, n, in)) ||
        (status = clora_buffer_create_2d(&s->w, dev, out, in)) ||
        (status = clora_buffer_create_2d(&s->y, dev, n, out)) ||
        (status = clora_buffer_create_2d(&s->dy, dev, n, out)) ||
        (status = clora_buffer_create_2d(&s->dx, dev, n, in)) ||
        (status = clora_buffer_create_2d(&s->dw, dev, out, in)) ||
        (status = clora_buffer_fill(s->x, 0.5f)) || (status = clora_buffer_fill(s->w, 0.01f)) ||
        (status = clora_buffer_fill(s->dy, 0.001f)))
        return status;
    return CLORA_OK;
}

/* Median ms of forward + dx + dW (the three GEMM orientations clora uses). */
static clora_status time_step(clora_device *dev, linear_step *s, size_t reps, double *ms)
{
    double times[16];
    if (reps > 16)
        reps = 16;
    clora_status status = CLORA_OK;
    for (size_t rep = 0; rep < reps + 1 && status == CLORA_OK; ++rep) {
        double t0 = cli_seconds();
        status = clora_linear_forward(s->y, s->x, s->w, NULL, CLORA_WEIGHT_OUT_IN);
        if (status == CLORA_OK)
            status = clora_linear_backward(s->dx, s->dw, NULL, s->dy, s->x, s->w,
                                           CLORA_WEIGHT_OUT_IN);
        if (status == CLORA_OK)
            status = clora_device_finish(dev);
        if (rep > 0)
            times[rep - 1] = (cli_seconds() - t0) * 1e3;
    }
    if (status == CLORA_OK)
        *ms = cli_median(times, reps);
    return status;
}

/* Writes `doc` to `path` through a temporary file and a rename. */
static int write_json(const char *path, json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (!text) {
        fprintf(stderr, "clora tune: out of host memory\n");
        return 0;
    }
    int ok = write_file_atomic("tune", path, text, strlen(text));
    free(text);
    return ok;
}

/* Applies `kernels` through a tuning file in `dir`. */
static clora_status try_kernels(clora_device *dev, const char *dir, json_t *kernels)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/candidate.json", dir);
    json_t *doc = json_pack("{s:s, s:i, s:O}", "format", "clora-clblast-tuning", "version", 1,
                            "kernels", kernels);
    int ok = write_json(path, doc);
    json_decref(doc);
    if (!ok)
        return CLORA_ERR_IO;
    return clora_device_set_tuning(dev, path);
}

/* Step 2: the smallest size from which the indirect GEMM stays at least as
 * fast as the direct one (CLBlast compares m*n*k with its cube). */
static clora_status choose_switch(clora_device *dev, const char *dir, json_t *kernels,
                                  size_t *threshold)
{
    static const size_t sizes[] = {64, 128, 192, 256, 384, 512, 768, 1024};
    enum { SIZE_COUNT = sizeof sizes / sizeof sizes[0] };
    double ms[2][SIZE_COUNT];
    clora_status status = CLORA_OK;
    printf("  direct or indirect GEMM: timing clora's Linear step at sizes 64 .. 1024\n");
    for (int method = 0; method < 2 && status == CLORA_OK; ++method) {
        /* 0: always direct (switch above every size); 1: always indirect. */
        json_object_set_new(kernels, "GemmRoutine",
                            json_pack("{s:i}", "XGEMM_MIN_INDIRECT_SIZE", method ? 0 : 100000));
        status = try_kernels(dev, dir, kernels);
        for (int i = 0; i < SIZE_COUNT && status == CLORA_OK; ++i) {
            linear_step s;
            status = step_create(&s, dev, sizes[i], sizes[i], sizes[i]);
            if (status == CLORA_OK)
                status = time_step(dev, &s, sizes[i] <= 256 ? 9 : 3, &ms[method][i]);
            step_free(&s);
        }
    }
    if (status != CLORA_OK)
        return status;
    size_t chosen = 100000;
    for (int i = SIZE_COUNT - 1; i >= 0 && ms[1][i] <= ms[0][i]; --i)
        chosen = sizes[i];
    for (int i = 0; i < SIZE_COUNT; ++i)
        printf("    %5zu: direct %9.3f ms, indirect %9.3f ms\n", sizes[i], ms[0][i], ms[1][i]);
    printf("    -> indirect from size %zu\n", chosen);
    *threshold = chosen;
    json_object_set_new(kernels, "GemmRoutine",
                        json_pack("{s:i}", "XGEMM_MIN_INDIRECT_SIZE", (json_int_t)chosen));
    return CLORA_OK;
}

/* Whether CLBlast's Xgemm takes these parameters (its tuner's constraints). */
static int xgemm_valid(json_t *x)
{
#define P(name) ((long)json_integer_value(json_object_get(x, name)))
    const long mwg = P("MWG"), nwg = P("NWG"), kwg = P("KWG"), mdimc = P("MDIMC"),
               ndimc = P("NDIMC"), mdima = P("MDIMA"), ndimb = P("NDIMB"), kwi = P("KWI"),
               vwm = P("VWM"), vwn = P("VWN");
#undef P
    if (mwg <= 0 || nwg <= 0 || kwg <= 0 || mdimc <= 0 || ndimc <= 0 || mdima <= 0 ||
        ndimb <= 0 || kwi <= 0 || vwm <= 0 || vwn <= 0)
        return 0;
    return mwg % (mdimc * vwm) == 0 && nwg % (ndimc * vwn) == 0 &&
           mwg % (mdima * vwm) == 0 && nwg % (ndimb * vwn) == 0 && kwg % kwi == 0 &&
           (mdimc * ndimc) % mdima == 0 && (mdimc * ndimc) % ndimb == 0 &&
           kwg % ((mdimc * ndimc) / mdima) == 0 && kwg % ((mdimc * ndimc) / ndimb) == 0;
}

/* Step 3: the GEMM tuner's fixed set stops at moderate tiles and vector
 * widths; wider ones (VWM = VWN = 8, 128-wide tiles) are often much faster
 * on CPUs. Tries the tuner's best with MWG, NWG, VWM and VWN each kept or
 * doubled (up to 128 and 8) and KWG kept or halved, timing clora's Linear
 * step through the indirect GEMM, and keeps the fastest in `kernels`. */
static clora_status search_xgemm(clora_device *dev, const char *dir, json_t *kernels,
                                 const tune_options *o)
{
    json_t *start = json_deep_copy(json_object_get(kernels, "Xgemm"));
    json_t *best = NULL;
    double best_ms = INFINITY;
    linear_step s;
    clora_status status = step_create(&s, dev, o->m, o->k, o->n);
    /* Always the indirect GEMM, which is what Xgemm's parameters drive. */
    json_object_set_new(kernels, "GemmRoutine", json_pack("{s:i}", "XGEMM_MIN_INDIRECT_SIZE", 0));
    const char *doubled[4] = {"MWG", "NWG", "VWM", "VWN"};
    const long limit[4] = {128, 128, 8, 8};
    clora_status last_failure = CLORA_OK;
    printf("  Xgemm neighbours of the tuner's best, timing clora's Linear step "
           "(N=%zu in=%zu out=%zu, each first compiles CLBlast's kernels):\n",
           o->m, o->k, o->n);
    for (unsigned mask = 0; mask < 32 && status == CLORA_OK; ++mask) {
        json_t *x = json_deep_copy(start);
        int skip = 0;
        for (int i = 0; i < 4; ++i)
            if (mask & (1u << i)) {
                long v = 2 * (long)json_integer_value(json_object_get(x, doubled[i]));
                skip |= v > limit[i];
                json_object_set_new(x, doubled[i], json_integer(v));
            }
        if (mask & 16) {
            long kwg = (long)json_integer_value(json_object_get(x, "KWG")) / 2;
            skip |= kwg < 8;
            json_object_set_new(x, "KWG", json_integer(kwg));
        }
        if (skip || !xgemm_valid(x)) {
            json_decref(x);
            continue;
        }
        json_object_set(kernels, "Xgemm", x);
        double ms = INFINITY;
        clora_status tried_status = try_kernels(dev, dir, kernels);
        if (tried_status == CLORA_OK)
            tried_status = time_step(dev, &s, 3, &ms);
        printf("    MWG %3lld NWG %3lld KWG %2lld VWM %lld VWN %lld: ",
               (long long)json_integer_value(json_object_get(x, "MWG")),
               (long long)json_integer_value(json_object_get(x, "NWG")),
               (long long)json_integer_value(json_object_get(x, "KWG")),
               (long long)json_integer_value(json_object_get(x, "VWM")),
               (long long)json_integer_value(json_object_get(x, "VWN")));
        if (tried_status != CLORA_OK) {
            printf("refused (%s)\n", clora_status_name(tried_status));
            last_failure = tried_status;
        } else {
            printf("%8.2f ms\n", ms);
            if (ms < best_ms) {
                best_ms = ms;
                json_decref(best);
                best = json_incref(x);
            }
        }
        fflush(stdout);
        json_decref(x);
    }
    step_free(&s);
    json_object_set_new(kernels, "Xgemm", best ? best : json_incref(start));
    json_decref(start);
    if (status == CLORA_OK && !best)
        status = last_failure != CLORA_OK ? last_failure : CLORA_ERR_CLBLAST;
    return status;
}

/* ---- the command ------------------------------------------------------------------ */

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse_options(int argc, char **argv, tune_options *o)
{
    const cli_option options[] = {
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL",
                 "device index or name part (default: CLORA_DEVICE, else first GPU)")},
        {CLI_OPT("--m", CLI_SIZE, &o->m, "M",
                 "M of the M x K -> N GEMM the GEMM tuners time, a multiple of 128 (what "
                 "CLBlast's GEMM tuner accepts)"),
         .fallback = "512", .multiple = 128},
        {CLI_OPT("--n", CLI_SIZE, &o->n, "N", "its N, a multiple of 128"), .fallback = "768",
         .multiple = 128},
        {CLI_OPT("--k", CLI_SIZE, &o->k, "K", "its K, a multiple of 128"), .fallback = "768",
         .multiple = 128},
        {CLI_OPT("--keep", CLI_STRING, &o->keep, "DIR",
                 "run the tuners in DIR and keep their logs and results there")},
        {CLI_OPT("--from", CLI_STRING, &o->from, "DIR",
                 "skip step 1: read the tuner results (clblast_*.json) in DIR")},
        {CLI_OPT("--output", CLI_STRING, &o->output, "FILE",
                 "write FILE instead of the device's tuning cache file")},
        {CLI_OPT("--match", CLI_STRING, &o->match, "PLATFORM",
                 "record that the file fits every device of this type on platforms whose name "
                 "contains PLATFORM (clora's shipped files)")},
        {CLI_OPT("--force", CLI_FLAG, &o->force, NULL,
                 "write the result even if it is not faster than before")},
        CLI_END};
    static const cli_exclusive exclusive[] = {{"--from", "--keep", 0}, {NULL, NULL, 0}};
    const cli_spec spec = {.command = "tune",
                           .usage = "usage: clora tune [options]",
                           .description = tune_description,
                           .options = options,
                           .exclusive = exclusive};
    return cli_parse(&spec, argc, argv);
}

/* Removes the tuners' files from a temporary folder, then the folder. */
static void remove_work_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char path[1200];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            remove(path);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* Creates every missing folder on the way to `path`'s parent. */
static int make_parent_dirs(const char *path)
{
    char buf[1200];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; ++p) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "clora tune: cannot create folder %s: %s\n", buf, strerror(errno));
            return 0;
        }
        *p = '/';
    }
    return 1;
}

int cmd_tune(int argc, char **argv)
{
    tune_options o = {0};
    int parsed = parse_options(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;

    clora_device *dev = NULL;
    json_t *kernels = json_object(), *sources = json_object(), *doc = NULL;
    char work[1100] = "", scratch[1100] = "", output[1500] = "";
    char before[sizeof ((clora_device_info *)0)->tuning];
    int exit_code = 1;
    clora_status status = clora_device_open(&dev, o.device);
    if (status != CLORA_OK) {
        cli_report("tune", "opening the device", status);
        goto done;
    }
    clora_device_info info;
    clora_device_get_info(dev, &info);
    snprintf(before, sizeof before, "%s", info.tuning);
    if (o.output) {
        snprintf(output, sizeof output, "%s", o.output);
    } else if ((status = clora_device_tuning_path(dev, output, sizeof output)) != CLORA_OK) {
        cli_report("tune", "naming the tuning file", status);
        goto done;
    }
    printf("clora tune on %s (%s, %s)\n", info.name, info.platform_name, info.driver_version);
    printf("  now using: %s\n  result to: %s\n", before, output);

    /* A folder of our own for candidate files (and the tuners' output
     * unless --keep or --from names one). */
    const char *tmp = getenv("TMPDIR");
    snprintf(scratch, sizeof scratch, "%s/clora-tune-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(scratch)) {
        fprintf(stderr, "clora tune: cannot create a temporary folder: %s\n", strerror(errno));
        scratch[0] = '\0';
        goto done;
    }

    /* 1. the tuners */
    snprintf(work, sizeof work, "%s", o.from ? o.from : o.keep ? o.keep : scratch);
    if (o.from) {
        printf("  reading tuner results in %s\n", work);
    } else {
        if (o.keep && mkdir(work, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "clora tune: cannot create %s: %s\n", work, strerror(errno));
            goto done;
        }
        printf("  running CLBlast's tuners in %s (GEMM size %zu x %zu x %zu)\n", work, o.m,
               o.n, o.k);
        if (!run_tuners(&o, dev, work))
            goto done;
    }
    for (int t = 0; t < TUNER_COUNT; ++t) {
        double best_ms = 0;
        char source[300];
        json_t *best = best_of_family(work, tuners[t].family, &best_ms, source, sizeof source);
        if (!best) {
            fprintf(stderr, "clora tune: no %s results (clblast_*.json of kernel family \"%s\") "
                            "in %s\n",
                    tuners[t].program, tuners[t].family, work);
            goto done;
        }
        printf("  %-13s %8.3f ms  (%s)\n", tuners[t].kernel, best_ms, source);
        json_object_set_new(kernels, tuners[t].kernel, best);
        json_object_set_new(sources, tuners[t].kernel, json_string(source));
    }

    /* 2. what the device uses now: CLBlast cannot go back to its own
     * parameters once given others, so this is measured first. */
    linear_step s;
    double old_ms[3], new_ms[3];
    status = step_create(&s, dev, 512, 768, 768);
    for (int round = 0; round < 3 && status == CLORA_OK; ++round)
        status = time_step(dev, &s, 5, &old_ms[round]);
    step_free(&s);
    if (status != CLORA_OK) {
        cli_report("tune", "timing the parameters in use", status);
        goto done;
    }

    /* 3. wider Xgemm variants than the tuner's fixed set holds */
    if ((status = search_xgemm(dev, scratch, kernels, &o)) != CLORA_OK) {
        cli_report("tune", "searching Xgemm variants", status);
        goto done;
    }

    /* 3b. direct or indirect */
    size_t threshold = 0;
    if ((status = choose_switch(dev, scratch, kernels, &threshold)) != CLORA_OK) {
        cli_report("tune", "timing the GEMM routines", status);
        goto done;
    }

    /* 4. the new parameters at the same shape */
    status = try_kernels(dev, scratch, kernels);
    if (status == CLORA_OK)
        status = step_create(&s, dev, 512, 768, 768);
    for (int round = 0; round < 3 && status == CLORA_OK; ++round)
        status = time_step(dev, &s, 5, &new_ms[round]);
    step_free(&s);
    if (status != CLORA_OK) {
        cli_report("tune", "timing the new parameters", status);
        goto done;
    }
    const double old_median = cli_median(old_ms, 3), new_median = cli_median(new_ms, 3);
    const double gflops = 3 * 2.0 * 512 * 768 * 768 / 1e6;
    printf("  Linear step N=512 in=out=768 (forward, dx, dW): %.2f ms before (%.1f GFLOP/s), "
           "%.2f ms tuned (%.1f GFLOP/s): %.2fx\n",
           old_median, gflops / old_median, new_median, gflops / new_median,
           old_median / new_median);
    if (new_median >= old_median && !o.force) {
        printf("  not faster than what the device uses now; nothing written (--force writes "
               "it anyway)\n");
        exit_code = 0;
        goto done;
    }

    /* 5. the file */
    time_t now = time(NULL);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    doc = json_pack("{s:s, s:i}", "format", "clora-clblast-tuning", "version", 1);
    if (o.match)
        json_object_set_new(doc, "match",
                            json_pack("{s:s, s:s}", "platform", o.match, "type",
                                      clora_device_type_name(info.type)));
    json_object_set_new(doc, "device",
                        json_pack("{s:s, s:s, s:s}", "name", info.name, "platform",
                                  info.platform_name, "driver", info.driver_version));
    json_object_set_new(doc, "created", json_string(when));
    char tuned_with[200];
    if (o.from)
        snprintf(tuned_with, sizeof tuned_with, "clora tune --from: results of earlier "
                                                "CLBlast tuner runs (files in \"sources\")");
    else
        snprintf(tuned_with, sizeof tuned_with,
                 "CLBlast tuners, -precision 32 -runs 1, GEMM -m %zu -n %zu -k %zu, fixed sets",
                 o.m, o.n, o.k);
    json_object_set_new(doc, "tuned_with", json_string(tuned_with));
    json_object_set_new(doc, "sources", json_incref(sources));
    json_object_set_new(doc, "linear_step_ms",
                        json_pack("{s:s, s:f, s:f}", "shape", "N=512 in=768 out=768", "before",
                                  old_median, "tuned", new_median));
    json_object_set_new(doc, "kernels", json_incref(kernels));
    if (!make_parent_dirs(output) || !write_json(output, doc))
        goto done;
    printf("  wrote %s\n", output);
    exit_code = 0;

done:
    if (scratch[0])
        remove_work_dir(scratch);
    json_decref(doc);
    json_decref(kernels);
    json_decref(sources);
    clora_device_destroy(dev);
    return exit_code;
}
