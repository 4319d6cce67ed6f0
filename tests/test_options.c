/* test_options.c — the commands' option parser (tools/options.c): values
 * and defaults from a table, and one specific message for every kind of
 * bad command line. Needs no device. */
#define _POSIX_C_SOURCE 200809L /* fileno, dup */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "options.h"

/* What a parse of one command line gave: the values and stderr's text. */
typedef struct parsed {
    int result;
    const char *model, *path, *from, *keep;
    size_t rank, batch, step;
    float alpha, temperature;
    int mode, quick, alpha_given;
    char err[512];
    char out[4096];
} parsed;

static const char *const modes[] = {"peft", "seed", "rslora", NULL};

/* Runs cli_parse on `args` (NULL-terminated) against the test table, with
 * stdout and stderr caught; one_required: --from or --keep must be given. */
static void parse_with(parsed *p, const char *const *args, int one_required)
{
    memset(p, 0, sizeof *p);
    const cli_option options[] = {
        CLI_SECTION("required:"),
        {CLI_OPT("--model", CLI_STRING, &p->model, "DIR", "a model folder"),
         .flags = CLI_REQUIRED},
        CLI_SECTION("other:"),
        {CLI_OPT("--rank", CLI_SIZE, &p->rank, "R", "rank"), .fallback = "8", .min = 1,
         .max = 256},
        {CLI_OPT("--batch", CLI_SIZE, &p->batch, "B", "batch"), .fallback = "32",
         CLI_AT_LEAST(1)},
        {CLI_OPT("--step", CLI_SIZE, &p->step, "S", "step"), .fallback = "128", .multiple = 128},
        {CLI_OPT("--alpha", CLI_FLOAT, &p->alpha, "A", "alpha"), .fallback = "16",
         .given = &p->alpha_given},
        {CLI_OPT("--temperature", CLI_FLOAT, &p->temperature, "T", "temperature"),
         .fallback = "1", .flags = CLI_ABOVE_MIN, CLI_AT_LEAST(0)},
        {CLI_OPT("--mode", CLI_CHOICE, &p->mode, "MODE", "the mode"), .fallback = "peft",
         .choices = modes},
        {CLI_OPT("--quick", CLI_FLAG, &p->quick, NULL, "a smoke run")},
        {CLI_OPT("--from", CLI_STRING, &p->from, "DIR", "read from DIR")},
        {CLI_OPT("--keep", CLI_STRING, &p->keep, "DIR", "keep in DIR")},
        CLI_END};
    const cli_exclusive exclusive[] = {{"--from", "--keep", one_required}, {NULL, NULL, 0}};
    static const char *const arguments[] = {"PATH", NULL};
    const cli_spec spec = {.command = "probe",
                           .usage = "usage: clora probe PATH --model DIR [options]",
                           .description = "Probes the parser.\n",
                           .options = options,
                           .exclusive = exclusive,
                           .arguments = arguments,
                           .argument_values = &p->path};
    char *argv[32];
    int argc = 0;
    argv[argc++] = (char *)"probe";
    for (size_t i = 0; args[i]; ++i)
        argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    FILE *err = tmpfile(), *out = tmpfile();
    assert_non_null(err);
    assert_non_null(out);
    fflush(stdout);
    fflush(stderr);
    int saved_err = dup(2), saved_out = dup(1);
    dup2(fileno(err), 2);
    dup2(fileno(out), 1);
    p->result = cli_parse(&spec, argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_err, 2);
    dup2(saved_out, 1);
    close(saved_err);
    close(saved_out);
    rewind(err);
    rewind(out);
    size_t n = fread(p->err, 1, sizeof p->err - 1, err);
    p->err[n] = '\0';
    n = fread(p->out, 1, sizeof p->out - 1, out);
    p->out[n] = '\0';
    fclose(err);
    fclose(out);
}

static void parse(parsed *p, const char *const *args)
{
    parse_with(p, args, 0);
}

/* A failed parse with exactly one line on stderr: `want`. */
static void expect_error_with(const char *const *args, int one_required, const char *want)
{
    parsed p;
    parse_with(&p, args, one_required);
    assert_int_equal(p.result, 2);
    char line[600];
    snprintf(line, sizeof line, "%s\n", want);
    assert_string_equal(p.err, line);
    assert_string_equal(p.out, "");
}

static void expect_error(const char *const *args, const char *want)
{
    expect_error_with(args, 0, want);
}

static void values_and_defaults(void **state)
{
    (void)state;
    parsed p;
    static const char *const args[] = {"--model", "m", "--rank=16", "--alpha", "0.5", "--mode",
                                       "rslora", "--quick", "the/path", NULL};
    parse(&p, args);
    assert_int_equal(p.result, CLI_RUN);
    assert_string_equal(p.err, "");
    assert_string_equal(p.model, "m");
    assert_string_equal(p.path, "the/path");
    assert_int_equal(p.rank, 16);
    assert_int_equal(p.batch, 32); /* the default */
    assert_int_equal(p.step, 128);
    assert_true(p.alpha == 0.5f && p.alpha_given);
    assert_true(p.temperature == 1.0f);
    assert_int_equal(p.mode, 2);
    assert_int_equal(p.quick, 1);

    static const char *const fewer[] = {"x", "--model", "m", NULL};
    parse(&p, fewer);
    assert_int_equal(p.result, CLI_RUN);
    assert_int_equal(p.alpha_given, 0);
    assert_true(p.alpha == 16.0f);
    assert_int_equal(p.mode, 0);
}

static void help_from_the_table(void **state)
{
    (void)state;
    parsed p;
    static const char *const args[] = {"--model", "m", "--help", "--bogus", NULL};
    parse(&p, args);
    assert_int_equal(p.result, 0);
    assert_string_equal(p.err, "");
    assert_non_null(strstr(p.out, "usage: clora probe PATH --model DIR [options]\n\n"
                                  "Probes the parser.\n\nrequired:\n"));
    assert_non_null(strstr(p.out, "  --rank R         rank (default 8)\n"));
    assert_non_null(strstr(p.out, "  --model DIR      a model folder\n"));
    assert_non_null(strstr(p.out, "  --quick          a smoke run\n"));
    assert_non_null(strstr(p.out, "other:\n"));
    static const char *const short_form[] = {"-h", NULL};
    parse(&p, short_form);
    assert_int_equal(p.result, 0);
}

static void every_bad_command_line(void **state)
{
    (void)state;
    static const char *const unknown[] = {"x", "--model", "m", "--bogus", NULL};
    expect_error(unknown, "clora probe: unknown option \"--bogus\" (see --help)");
    static const char *const flag_value[] = {"x", "--model", "m", "--quick=1", NULL};
    expect_error(flag_value, "clora probe: unknown option \"--quick=1\" (see --help)");
    static const char *const no_value[] = {"x", "--model", NULL};
    expect_error(no_value, "clora probe: option --model needs a value");
    static const char *const twice[] = {"x", "--model", "m", "--model", "n", NULL};
    expect_error(twice, "clora probe: option --model is given twice");
    static const char *const not_integer[] = {"x", "--model", "m", "--rank", "8x", NULL};
    expect_error(not_integer, "clora probe: option --rank expects a non-negative integer, got \"8x\"");
    static const char *const negative[] = {"x", "--model", "m", "--rank", "-2", NULL};
    expect_error(negative, "clora probe: option --rank expects a non-negative integer, got \"-2\"");
    static const char *const not_number[] = {"x", "--model", "m", "--alpha", "nan", NULL};
    expect_error(not_number, "clora probe: option --alpha expects a number, got \"nan\"");
    static const char *const past_max[] = {"x", "--model", "m", "--rank", "257", NULL};
    expect_error(past_max, "clora probe: --rank must be 1..256");
    static const char *const below_min[] = {"x", "--model", "m", "--batch", "0", NULL};
    expect_error(below_min, "clora probe: --batch must be at least 1");
    static const char *const not_above[] = {"x", "--model", "m", "--temperature", "0", NULL};
    expect_error(not_above, "clora probe: --temperature must be above 0");
    static const char *const not_multiple[] = {"x", "--model", "m", "--step", "100", NULL};
    expect_error(not_multiple, "clora probe: --step takes positive multiples of 128, not 100");
    static const char *const zero_multiple[] = {"x", "--model", "m", "--step", "0", NULL};
    expect_error(zero_multiple, "clora probe: --step takes positive multiples of 128, not 0");
    static const char *const choice[] = {"x", "--model", "m", "--mode", "fast", NULL};
    expect_error(choice, "clora probe: --mode \"fast\" is not one of peft seed rslora");
    static const char *const missing[] = {"x", NULL};
    expect_error(missing, "clora probe: --model is required (see --help)");
    static const char *const both[] = {"x", "--model", "m", "--from", "a", "--keep", "b", NULL};
    expect_error(both, "clora probe: --from and --keep exclude each other");
    static const char *const neither[] = {"x", "--model", "m", NULL};
    expect_error_with(neither, 1, "clora probe: --from or --keep is required (see --help)");
    static const char *const no_path[] = {"--model", "m", NULL};
    expect_error(no_path, "clora probe: PATH is required (see --help)");
    static const char *const extra[] = {"x", "y", "--model", "m", NULL};
    expect_error(extra, "clora probe: unexpected argument \"y\" (see --help)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_and_defaults),
        cmocka_unit_test(help_from_the_table),
        cmocka_unit_test(every_bad_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
