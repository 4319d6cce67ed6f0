/* cli.c — option parsing, timing and small helpers of the `clora` command. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Matches `--name value` / `--name=value`; *text receives the value. */
static int option_text(int argc, char **argv, int *i, const char *name, const char **text)
{
    const char *arg = argv[*i];
    size_t len = strlen(name);
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (arg[len] == '=') {
        *text = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        fprintf(stderr, "clora: option %s needs a value\n", name);
        return -1;
    }
    *i += 1;
    *text = argv[*i];
    return 1;
}

int cli_option_string(int argc, char **argv, int *i, const char *name, const char **value)
{
    return option_text(argc, argv, i, name, value);
}

int cli_option_size(int argc, char **argv, int *i, const char *name, size_t *value)
{
    const char *text = NULL;
    int found = option_text(argc, argv, i, name, &text);
    if (found != 1)
        return found;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "clora: option %s expects a non-negative integer, got \"%s\"\n", name,
                text);
        return -1;
    }
    *value = (size_t)v;
    return 1;
}

int cli_option_float(int argc, char **argv, int *i, const char *name, float *value)
{
    const char *text = NULL;
    int found = option_text(argc, argv, i, name, &text);
    if (found != 1)
        return found;
    char *end = NULL;
    errno = 0;
    float v = strtof(text, &end);
    if (errno || end == text || *end != '\0' || !isfinite(v)) {
        fprintf(stderr, "clora: option %s expects a number, got \"%s\"\n", name, text);
        return -1;
    }
    *value = v;
    return 1;
}

int cli_flag(char **argv, int i, const char *name)
{
    return strcmp(argv[i], name) == 0;
}

void cli_report(const char *command, const char *what, clora_status status)
{
    fprintf(stderr, "clora %s: %s: %s (%s)\n", command, what, clora_last_error(),
            clora_status_name(status));
}

double cli_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

float cli_uniform(uint64_t *state, float lo, float hi)
{
    /* splitmix64 step, top 24 bits as a float in [0, 1). */
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return lo + (hi - lo) * (float)(z >> 40) * (1.0f / 16777216.0f);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double cli_median(double *values, size_t n)
{
    if (n == 0)
        return 0.0;
    qsort(values, n, sizeof *values, compare_doubles);
    return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}
