/* cli.h — what the `clora` command's subcommands share: the commands,
 * timing, deterministic random numbers, error reporting. Options are
 * options.h's. */
#ifndef CLORA_TOOLS_CLI_H
#define CLORA_TOOLS_CLI_H

#include <stddef.h>
#include <stdint.h>

#include "clora/clora.h"

/* A subcommand: argv[0] is its name; returns the process exit status. */
typedef int (*cli_command)(int argc, char **argv);

int cmd_devices(int argc, char **argv);
int cmd_selfcheck(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_merge(int argc, char **argv);
int cmd_info(int argc, char **argv);
int cmd_logits(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_decode(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_tune(int argc, char **argv);

/* Prints "clora <command>: <what>: <detail> (<status name>)" on one line to stderr. */
void cli_report(const char *command, const char *what, clora_status status);

/* Monotonic seconds. */
double cli_seconds(void);

/* Deterministic uniform floats in [lo, hi) from a 64-bit state. */
float cli_uniform(uint64_t *state, float lo, float hi);

/* Median of n values (sorts them in place). */
double cli_median(double *values, size_t n);

#endif /* CLORA_TOOLS_CLI_H */
