/* cmd_encode.c — `clora encode`: text into token ids with a model's
 * tokenizer (a model folder or a GGUF file). */
#define _POSIX_C_SOURCE 200809L /* getline */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"

static const char encode_description[] =
    "Prints the token ids of text, comma-separated: of --text (line breaks and all),\n"
    "or else of each line read from standard input (UTF-8; the line break is not\n"
    "part of the text), one line of ids per line, an empty line for an empty one.\n"
    "Special tokens written in the text (<|endoftext|>, <|im_start|>...) become\n"
    "their ids. The tokenizer is the model's: a GGUF file's tokenizer.ggml.*, or a\n"
    "folder's tokenizer.json, vocab.json + merges.txt, or vocab.txt.\n";

/* Prints the ids of one text on one line; 0 after printing an error. */
static int encode_one(const clora_tokenizer *tok, const char *text, int add_special, int chat,
                      const char *where)
{
    char *prompt = NULL;
    clora_status status = CLORA_OK;
    if (chat) {
        const clora_chat_message message = {"user", text};
        status = clora_tokenizer_apply_chat(tok, &message, 1, 1, &prompt);
        if (status != CLORA_OK) {
            cli_report("encode", "--chat", status);
            return 0;
        }
        text = prompt;
    }
    int32_t *ids = NULL;
    size_t count = 0;
    status = clora_tokenizer_encode_text(tok, text, add_special, &ids, &count);
    free(prompt);
    if (status != CLORA_OK) {
        fprintf(stderr, "clora encode: %s: %s\n", where, clora_last_error());
        return 0;
    }
    for (size_t i = 0; i < count; ++i)
        printf(i ? ",%d" : "%d", (int)ids[i]);
    putchar('\n');
    free(ids);
    return 1;
}

int cmd_encode(int argc, char **argv)
{
    const char *model = NULL, *text = NULL;
    int add_special = 0, chat = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model, "PATH", "a model folder or a .gguf file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--text", CLI_STRING, &text, "TEXT",
                 "the text to encode (default: each line of standard input)")},
        {CLI_OPT("--add-special", CLI_FLAG, &add_special, NULL,
                 "add BOS and EOS where the tokenizer's configuration says so (BERT: [CLS] "
                 "and [SEP])")},
        {CLI_OPT("--chat", CLI_FLAG, &chat, NULL,
                 "encode the text as a user's message in the model's chat template, followed "
                 "by the assistant's header (ChatML and Llama 3 templates)")},
        CLI_END};
    static const cli_exclusive exclusive[] = {{"--add-special", "--chat", 0}, {NULL, NULL, 0}};
    const cli_spec spec = {.command = "encode",
                           .usage = "usage: clora encode --model PATH [--text TEXT] [options]",
                           .description = encode_description,
                           .options = options,
                           .exclusive = exclusive};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    clora_tokenizer *tok = NULL;
    if (!open_tokenizer("encode", model, &tok))
        return 1;
    int ok = 1;
    if (text) {
        ok = encode_one(tok, text, add_special, chat, "--text");
    } else {
        char *line = NULL, where[64];
        size_t cap = 0;
        ssize_t n;
        for (size_t number = 1; ok && (n = getline(&line, &cap, stdin)) >= 0; ++number) {
            if (n > 0 && line[n - 1] == '\n')
                line[--n] = '\0';
            snprintf(where, sizeof where, "line %zu", number);
            if (memchr(line, '\0', (size_t)n)) {
                fprintf(stderr, "clora encode: %s holds a NUL byte\n", where);
                ok = 0;
            } else {
                ok = encode_one(tok, line, add_special, chat, where);
            }
        }
        free(line);
        if (ok && ferror(stdin)) {
            fprintf(stderr, "clora encode: cannot read standard input\n");
            ok = 0;
        }
    }
    clora_tokenizer_destroy(tok);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "clora encode: cannot write the ids\n");
        ok = 0;
    }
    return ok ? 0 : 1;
}
