/* cmd_decode.c — `clora decode`: token ids back into text with a model's
 * tokenizer (a model folder or a GGUF file). */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "models.h"
#include "options.h"

static const char decode_description[] =
    "Prints the text of token ids, followed by a line break (--no-newline: the bytes\n"
    "alone). Byte-level BPE tokenizers give back exactly the bytes that were encoded;\n"
    "special tokens print as their text unless --skip-special. The ids may end in\n"
    "the middle of a UTF-8 character: the bytes so far are printed.\n";

int cmd_decode(int argc, char **argv)
{
    const char *model = NULL, *tokens = NULL;
    int skip_special = 0, no_newline = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model, "PATH", "a model folder or a .gguf file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--tokens", CLI_STRING, &tokens, "IDS", "the ids, comma-separated: 15496,995"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--skip-special", CLI_FLAG, &skip_special, NULL,
                 "leave out special tokens (BOS, EOS, control tokens)")},
        {CLI_OPT("--no-newline", CLI_FLAG, &no_newline, NULL,
                 "no line break after the text")},
        CLI_END};
    const cli_spec spec = {.command = "decode",
                           .usage = "usage: clora decode --model PATH --tokens IDS [options]",
                           .description = decode_description,
                           .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    int32_t *ids = NULL;
    size_t count = 0;
    if (!parse_ids("decode", "--tokens", tokens, &ids, &count))
        return 2;
    clora_tokenizer *tok = NULL;
    if (!open_tokenizer("decode", model, &tok)) {
        free(ids);
        return 1;
    }
    char *text = NULL;
    size_t length = 0;
    clora_status status =
        clora_tokenizer_decode_flags(tok, ids, count, skip_special ? CLORA_DECODE_SKIP_SPECIAL : 0,
                                     &text, &length);
    int ok = status == CLORA_OK;
    if (!ok)
        cli_report("decode", "--tokens", status);
    if (ok && (fwrite(text, 1, length, stdout) != length || (!no_newline && putchar('\n') < 0) ||
               fflush(stdout) != 0)) {
        fprintf(stderr, "clora decode: cannot write the text\n");
        ok = 0;
    }
    free(text);
    free(ids);
    clora_tokenizer_destroy(tok);
    return ok ? 0 : 1;
}
