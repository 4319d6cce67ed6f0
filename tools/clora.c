/* clora.c — the `clora` command: dispatch, help, version. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char usage[] =
    "usage: clora <command> [options]\n"
    "\n"
    "LoRA fine-tuning and inference on any OpenCL device.\n"
    "\n"
    "commands:\n"
    "  devices     list the OpenCL devices clora can use\n"
    "  selfcheck   check one LoRA layer against the plain-C reference and time it\n"
    "  demo        what `make demo` runs: devices, then selfcheck on a GPT-2-sized layer\n"
    "  version     print the version (also: --version)\n"
    "  help        print this text (also: --help); `clora <command> --help` for a command\n"
    "\n"
    "environment:\n"
    "  CLORA_DEVICE      default device: an index from `clora devices` or part of a name\n"
    "  CLORA_KERNEL_DIR  load OpenCL kernels from this folder instead of the embedded copy\n"
    "  CLORA_RANK_KERNEL rank-r kernels: tiled or streaming (default: streaming on CPUs)\n"
    "  CLORA_RANK_TILE   cap the tiled rank-r kernel's tile edge (1, 2, 4, 8 or 16)\n";

static int cmd_demo(int argc, char **argv)
{
    if (argc > 1 && (cli_flag(argv, 1, "--help") || cli_flag(argv, 1, "-h"))) {
        printf("usage: clora demo [--device SEL]\n\n"
               "Lists the devices, then runs `clora selfcheck` on a GPT-2-sized LoRA layer\n"
               "(N = 512, in = out = 768, r = 8).\n");
        return 0;
    }
    char *devices_argv[] = {"devices", NULL};
    int status = cmd_devices(1, devices_argv);
    if (status != 0)
        return status;
    printf("\n");
    return cmd_selfcheck(argc, argv);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *command = argv[1];
    if (!strcmp(command, "--help") || !strcmp(command, "-h") || !strcmp(command, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(command, "--version") || !strcmp(command, "version")) {
        printf("clora %s\n", clora_version());
        return 0;
    }
    static const struct {
        const char *name;
        cli_command run;
    } commands[] = {
        {"devices", cmd_devices},
        {"selfcheck", cmd_selfcheck},
        {"demo", cmd_demo},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
        if (!strcmp(command, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "clora: unknown command \"%s\"\n\n%s", command, usage);
    return 2;
}
