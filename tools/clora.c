/* clora.c — the `clora` command: dispatch, help, version. */
#include <stdio.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli.h"

static const char usage[] =
    "usage: clora <command> [options]\n"
    "\n"
    "LoRA fine-tuning and inference on any OpenCL device.\n"
    "\n"
    "commands:\n"
    "  demo        the main job: pre-train a model, freeze it, fine-tune a LoRA adapter\n"
    "              on a new task, report and save everything (what `make demo` runs)\n"
    "  train       LoRA-fine-tune a model (clora, GPT-2 or BERT folder) on a dataset\n"
    "              file; save a PEFT adapter\n"
    "  tokenize    turn text into a dataset through a model's tokenizer: labelled lines,\n"
    "              CSV or TSV to classify, JSON Lines of texts, prompts and completions\n"
    "              or chats for causal-LM training\n"
    "  encode      print the token ids of text (a model folder's or a GGUF file's\n"
    "              tokenizer: BPE or WordPiece)\n"
    "  decode      print the text of token ids\n"
    "  logits      run a model (with an adapter) on token ids or text; write the logits\n"
    "  generate    continue a prompt (text, a chat turn or ids) with GPT-2 or a Llama-\n"
    "              family folder or GGUF file: key/value cache, greedy or sampled\n"
    "  merge       merge an adapter into a model and save the merged model\n"
    "  info        describe an adapter folder, a model folder, a .safetensors or a\n"
    "              .gguf file\n"
    "  devices     list the OpenCL devices clora can use\n"
    "  selfcheck   check one LoRA layer against the plain-C reference and time it\n"
    "  bench       measure GEMM, LoRA layer, training-step and generation speed (ratios\n"
    "              side by side)\n"
    "  tune        tune CLBlast's GEMM kernels for a device; later runs use the result\n"
    "  version     print the version (also: --version)\n"
    "  help        print this text (also: --help); `clora <command> --help` for a command\n"
    "\n"
    "environment:\n"
    "  CLORA_DEVICE      default device: an index from `clora devices` or part of a name\n"
    "  CLORA_KERNEL_DIR  load OpenCL kernels from this folder instead of the embedded copy\n"
    "  CLORA_RANK_KERNEL rank-r kernels: tiled or streaming (default: streaming on CPUs)\n"
    "  CLORA_RANK_TILE   cap the tiled rank-r kernel's tile edge (1, 2, 4, 8 or 16)\n"
    "  CLORA_TUNING      CLBlast parameters: off, or a tuning file (default: the\n"
    "                    device's `clora tune` result, else clora's shipped ones)\n"
    "  CLORA_TUNING_DIR  where `clora tune` keeps its results (default ~/.cache/clora)\n";

int main(int argc, char **argv)
{
#ifdef __GLIBC__
    /* A CPU device's buffers (PoCL's) come from this process's heap. glibc
     * serves a large block from the heap once a block of that size has been
     * freed, and the holes that buffers of changing sizes leave there stay
     * resident: training held a gigabyte or more that way. Blocks of a MiB
     * and up mapped apiece go back to the system when freed. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
#endif
    if (argc < 2) {
        fprintf(stderr, "clora: no command given (see clora --help)\n");
        return 2;
    }
    const char *command = argv[1];
    const int help = !strcmp(command, "--help") || !strcmp(command, "-h") ||
                     !strcmp(command, "help");
    const int version = !strcmp(command, "--version") || !strcmp(command, "version");
    if ((help || version) && argc > 2) {
        fprintf(stderr, "clora: unexpected argument \"%s\" after %s (see clora --help)\n",
                argv[2], command);
        return 2;
    }
    if (help) {
        fputs(usage, stdout);
        return 0;
    }
    if (version) {
        printf("clora %s\n", clora_version());
        return 0;
    }
    static const struct {
        const char *name;
        cli_command run;
    } commands[] = {
        {"demo", cmd_demo},         {"train", cmd_train},       {"merge", cmd_merge},
        {"info", cmd_info},         {"devices", cmd_devices},   {"selfcheck", cmd_selfcheck},
        {"logits", cmd_logits},     {"generate", cmd_generate}, {"tokenize", cmd_tokenize},
        {"bench", cmd_bench},       {"tune", cmd_tune},         {"encode", cmd_encode},
        {"decode", cmd_decode},
    };
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; ++i)
        if (!strcmp(command, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "clora: unknown command \"%s\" (see clora --help)\n", command);
    return 2;
}
