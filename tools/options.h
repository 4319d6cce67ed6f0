/* options.h — the one option parser of the `clora` commands. A command
 * lists its options once, as a table; cli_parse() reads the command line
 * against it, checks it (unknown, missing, malformed, repeated, out of
 * range, mutually exclusive options, missing or extra arguments) with one
 * message each, and prints the command's --help from the same table:
 *
 *     const cli_option options[] = {
 *         CLI_SECTION("required:"),
 *         {CLI_OPT("--model", CLI_STRING, &o.model, "DIR", "a model folder"),
 *          .flags = CLI_REQUIRED},
 *         {CLI_OPT("--rank", CLI_SIZE, &o.rank, "R", "rank r"), .fallback = "8",
 *          .min = 1, .max = 256},
 *         CLI_END};
 *     const cli_spec spec = {.command = "train", .usage = ..., .options = options};
 *     int parsed = cli_parse(&spec, argc, argv);
 *     if (parsed != CLI_RUN)
 *         return parsed;   // the exit status: 0 after --help, 2 after an error
 *
 * Option values: `--name value` or `--name=value`. */
#ifndef CLORA_TOOLS_OPTIONS_H
#define CLORA_TOOLS_OPTIONS_H

#include <math.h>
#include <stddef.h>

typedef enum cli_kind {
    CLI_NONE = 0, /* a section heading (CLI_SECTION) or the table's end (CLI_END) */
    CLI_FLAG,     /* no value; int * set to 1 */
    CLI_STRING,   /* const char * (borrowed from argv) */
    CLI_SIZE,     /* size_t: a non-negative integer */
    CLI_FLOAT,    /* float: a finite number */
    CLI_CHOICE    /* int: the index of the value in `choices` */
} cli_kind;

enum {
    CLI_REQUIRED = 1u << 0,     /* must be given */
    CLI_ABOVE_MIN = 1u << 1     /* the value must be above min (not at least min) */
};

typedef struct cli_option {
    const char *name;  /* "--rank"; NULL ends the table */
    cli_kind kind;
    void *dest;        /* filled with the default, then with the given value */
    const char *meta;  /* the value's name in --help: "R" */
    const char *help;  /* one line or more; wrapped by --help */
    const char *fallback; /* default, as text parsed like a given value and shown as
                             "(default ...)"; NULL: dest keeps what the command put there */
    unsigned flags;    /* CLI_REQUIRED, CLI_ABOVE_MIN */
    double min, max;   /* CLI_SIZE and CLI_FLOAT: allowed range when min < max */
    size_t multiple;   /* CLI_SIZE: the value must be a positive multiple of it (0: any) */
    const char *const *choices; /* CLI_CHOICE: the values, NULL-terminated */
    int *given;        /* set to 1 when the option is on the command line (may be NULL) */
} cli_option;

/* The fields every option has, for a designated initializer:
 * {CLI_OPT(name, kind, dest, meta, help), .fallback = ..., ...}. */
#define CLI_OPT(opt_name, opt_kind, opt_dest, opt_meta, opt_help) \
    .name = (opt_name), .kind = (opt_kind), .dest = (opt_dest), .meta = (opt_meta), \
    .help = (opt_help)
/* A range with no upper end: .min = n, .max = HUGE_VAL. */
#define CLI_AT_LEAST(n) .min = (n), .max = HUGE_VAL

#define CLI_SECTION(title) {.help = (title)}
#define CLI_END {.name = NULL}

/* Two options that exclude each other: "--a and --b exclude each other";
 * with `one_required`, one of them must be given. */
typedef struct cli_exclusive {
    const char *a, *b;
    int one_required;
} cli_exclusive;

typedef struct cli_spec {
    const char *command;    /* "train": messages start "clora train: " */
    const char *usage;      /* "usage: clora train --model DIR ... [options]" */
    const char *description; /* the paragraphs --help prints before the options */
    const cli_option *options; /* ended by CLI_END */
    const cli_exclusive *exclusive; /* ended by {NULL}; may be NULL */
    const char *const *arguments; /* positional, all required: {"PATH", NULL}; may be NULL */
    const char **argument_values; /* where they go, one each */
} cli_spec;

/* What cli_parse returns when the command should run. */
#define CLI_RUN (-1)

/* Parses argv[1..argc) (argv[0] is the command's name). Returns CLI_RUN
 * when the command should run, else the command's exit status: 0 after
 * printing --help (to stdout), 2 after printing one line of error to
 * stderr. */
int cli_parse(const cli_spec *spec, int argc, char **argv);

/* Prints the command's --help: usage, description, the options table. */
void cli_print_help(const cli_spec *spec);

#endif /* CLORA_TOOLS_OPTIONS_H */
