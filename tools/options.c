/* options.c — the commands' option parser and --help (options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HELP_WIDTH 79

static size_t option_count(const cli_spec *spec)
{
    size_t n = 0;
    while (spec->options[n].name || spec->options[n].help)
        ++n;
    return n;
}

static const cli_option *find(const cli_spec *spec, const char *name, size_t len)
{
    for (const cli_option *o = spec->options; o->name || o->help; ++o)
        if (o->name && strlen(o->name) == len && !strncmp(o->name, name, len))
            return o;
    return NULL;
}

/* Stores `text` as option o's value; prints the error and returns 0 when it
 * is not one (a default that is not one is the table's mistake, reported
 * the same way). */
static int store(const cli_spec *spec, const cli_option *o, const char *text)
{
    char *end = NULL;
    errno = 0;
    switch (o->kind) {
    case CLI_STRING:
        *(const char **)o->dest = text;
        return 1;
    case CLI_FLAG:
        *(int *)o->dest = 1;
        return 1;
    case CLI_SIZE: {
        unsigned long long v = strtoull(text, &end, 10);
        if (errno || end == text || *end != '\0' || text[0] == '-') {
            fprintf(stderr, "clora %s: option %s expects a non-negative integer, got \"%s\"\n",
                    spec->command, o->name, text);
            return 0;
        }
        if (o->multiple && (v == 0 || v % o->multiple)) {
            fprintf(stderr, "clora %s: %s takes positive multiples of %zu, not %s\n",
                    spec->command, o->name, o->multiple, text);
            return 0;
        }
        if (o->min < o->max && ((double)v < o->min || (double)v > o->max)) {
            if (o->max >= (double)SIZE_MAX)
                fprintf(stderr, "clora %s: %s must be at least %.0f\n", spec->command, o->name,
                        o->min);
            else
                fprintf(stderr, "clora %s: %s must be %.0f..%.0f\n", spec->command, o->name,
                        o->min, o->max);
            return 0;
        }
        *(size_t *)o->dest = (size_t)v;
        return 1;
    }
    case CLI_FLOAT: {
        float v = strtof(text, &end);
        if (errno || end == text || *end != '\0' || !isfinite(v)) {
            fprintf(stderr, "clora %s: option %s expects a number, got \"%s\"\n", spec->command,
                    o->name, text);
            return 0;
        }
        const int above = (o->flags & CLI_ABOVE_MIN) != 0;
        if (o->min < o->max && ((above ? !(v > o->min) : !(v >= o->min)) || v > o->max)) {
            if (o->max >= HUGE_VAL)
                fprintf(stderr, "clora %s: %s must be %s %g\n", spec->command, o->name,
                        above ? "above" : "at least", o->min);
            else
                fprintf(stderr, "clora %s: %s must be %g..%g\n", spec->command, o->name, o->min,
                        o->max);
            return 0;
        }
        *(float *)o->dest = v;
        return 1;
    }
    case CLI_CHOICE:
        for (int i = 0; o->choices[i]; ++i)
            if (!strcmp(text, o->choices[i])) {
                *(int *)o->dest = i;
                return 1;
            }
        fprintf(stderr, "clora %s: %s \"%s\" is not one of", spec->command, o->name, text);
        for (int i = 0; o->choices[i]; ++i)
            fprintf(stderr, " %s", o->choices[i]);
        fprintf(stderr, "\n");
        return 0;
    case CLI_NONE:
        break;
    }
    return 0;
}

/* "--a, --b and --c" of the required options into out. */
static void required_list(const cli_spec *spec, char *out, size_t size)
{
    size_t total = 0, done = 0, used = 0;
    for (const cli_option *o = spec->options; o->name || o->help; ++o)
        total += o->name && (o->flags & CLI_REQUIRED);
    out[0] = '\0';
    for (const cli_option *o = spec->options; o->name || o->help; ++o) {
        if (!o->name || !(o->flags & CLI_REQUIRED))
            continue;
        const char *sep = done == 0 ? "" : done + 1 == total ? " and " : ", ";
        int n = snprintf(out + used, size - used, "%s%s", sep, o->name);
        if (n < 0 || (size_t)n >= size - used)
            break;
        used += (size_t)n;
        ++done;
    }
}

int cli_parse(const cli_spec *spec, int argc, char **argv)
{
    const size_t count = option_count(spec);
    char seen[128] = {0};
    if (count > sizeof seen) {
        fprintf(stderr, "clora %s: too many options in its table\n", spec->command);
        return 2;
    }
    for (const cli_option *o = spec->options; o->name || o->help; ++o)
        if (o->name && o->fallback && !store(spec, o, o->fallback))
            return 2;
    size_t arguments = 0, wanted = 0;
    while (spec->arguments && spec->arguments[wanted])
        ++wanted;
    for (int i = 1; i < argc; ++i) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            cli_print_help(spec);
            return 0;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (arguments == wanted) {
                fprintf(stderr, "clora %s: unexpected argument \"%s\" (see --help)\n",
                        spec->command, arg);
                return 2;
            }
            spec->argument_values[arguments++] = arg;
            continue;
        }
        const char *eq = strchr(arg, '=');
        const size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        const cli_option *o = find(spec, arg, len);
        if (!o || (eq && o->kind == CLI_FLAG)) {
            fprintf(stderr, "clora %s: unknown option \"%s\" (see --help)\n", spec->command, arg);
            return 2;
        }
        const size_t index = (size_t)(o - spec->options);
        if (seen[index]) {
            fprintf(stderr, "clora %s: option %s is given twice\n", spec->command, o->name);
            return 2;
        }
        seen[index] = 1;
        if (o->given)
            *o->given = 1;
        const char *value = NULL;
        if (o->kind != CLI_FLAG) {
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "clora %s: option %s needs a value\n", spec->command, o->name);
                return 2;
            }
        }
        if (!store(spec, o, value))
            return 2;
    }
    for (const cli_option *o = spec->options; o->name || o->help; ++o)
        if (o->name && (o->flags & CLI_REQUIRED) && !seen[o - spec->options]) {
            char list[256];
            required_list(spec, list, sizeof list);
            fprintf(stderr, "clora %s: %s %s required (see --help)\n", spec->command, list,
                    strchr(list, ' ') ? "are" : "is");
            return 2;
        }
    for (const cli_exclusive *x = spec->exclusive; x && x->a; ++x) {
        const cli_option *a = find(spec, x->a, strlen(x->a)), *b = find(spec, x->b, strlen(x->b));
        const int has_a = a && seen[a - spec->options], has_b = b && seen[b - spec->options];
        if (has_a && has_b) {
            fprintf(stderr, "clora %s: %s and %s exclude each other\n", spec->command, x->a,
                    x->b);
            return 2;
        }
        if (x->one_required && !has_a && !has_b) {
            fprintf(stderr, "clora %s: %s or %s is required (see --help)\n", spec->command, x->a,
                    x->b);
            return 2;
        }
    }
    if (arguments < wanted) {
        fprintf(stderr, "clora %s: %s is required (see --help)\n", spec->command,
                spec->arguments[arguments]);
        return 2;
    }
    return CLI_RUN;
}

/* ---- --help ------------------------------------------------------------------------ */

/* Prints `text` from the cursor at column `indent`, wrapped to HELP_WIDTH
 * with continuation lines starting at that column; '\n' in text breaks. */
static void print_wrapped(const char *text, size_t indent)
{
    size_t col = indent;
    int line_empty = 1;
    for (const char *p = text; *p;) {
        if (*p == ' ') {
            ++p;
            continue;
        }
        const size_t word = *p == '\n' ? 0 : strcspn(p, " \n");
        if (*p == '\n' || (!line_empty && col + 1 + word > HELP_WIDTH)) {
            printf("\n%*s", (int)indent, "");
            col = indent;
            line_empty = 1;
            p += *p == '\n';
            continue;
        }
        printf("%s%.*s", line_empty ? "" : " ", (int)word, p);
        col += word + !line_empty;
        line_empty = 0;
        p += word;
    }
    printf("\n");
}

void cli_print_help(const cli_spec *spec)
{
    printf("%s\n", spec->usage);
    if (spec->description)
        printf("\n%s", spec->description);
    size_t column = 0;
    for (const cli_option *o = spec->options; o->name || o->help; ++o)
        if (o->name) {
            size_t w = 2 + strlen(o->name) + (o->meta ? 1 + strlen(o->meta) : 0) + 2;
            column = w > column ? w : column;
        }
    if (column > 24)
        column = 24;
    int first = 1;
    for (const cli_option *o = spec->options; o->name || o->help; ++o) {
        if (!o->name) {
            printf("%s%s\n", first ? "\n" : "", o->help);
            first = 0;
            continue;
        }
        if (first) {
            printf("\noptions:\n");
            first = 0;
        }
        int n = printf("  %s%s%s", o->name, o->meta ? " " : "", o->meta ? o->meta : "");
        size_t at = (size_t)n;
        if (at + 1 > column) { /* a long name: the help starts on the next line */
            printf("\n%*s", (int)column, "");
        } else {
            printf("%*s", (int)(column - at), "");
        }
        char text[1024];
        const char *quote = o->kind == CLI_STRING ? "\"" : "";
        if (o->fallback)
            snprintf(text, sizeof text, "%s (default %s%s%s)", o->help ? o->help : "", quote,
                     o->fallback, quote);
        else
            snprintf(text, sizeof text, "%s", o->help ? o->help : "");
        print_wrapped(text, column);
    }
}
