/* fuzz_tokenizer_files.c — a tokenizer folder from a stranger. The first
 * byte picks the files the parts become: tokenizer.json (and
 * tokenizer_config.json), vocab.json and merges.txt (and
 * tokenizer_config.json), or vocab.txt (and tokenizer_config.json); the
 * tokenizer, when one loads, then encodes and decodes a few texts and the
 * input itself. */
#include <stdlib.h>
#include <string.h>

#include "clora/tokenizer.h"
#include "fuzz.h"

static const char *const names[3][3] = {
    {"tokenizer.json", "tokenizer_config.json", NULL},
    {"vocab.json", "merges.txt", "tokenizer_config.json"},
    {"vocab.txt", "tokenizer_config.json", NULL}};
static const char *const every[] = {"tokenizer.json", "tokenizer_config.json", "vocab.json",
                                    "merges.txt", "vocab.txt"};

static void use(const clora_tokenizer *tokenizer, const char *text, int add_special)
{
    int32_t *ids = NULL;
    size_t count = 0;
    if (clora_tokenizer_encode_text(tokenizer, text, add_special, &ids, &count) == CLORA_OK) {
        char *back = NULL;
        size_t length = 0;
        clora_tokenizer_decode(tokenizer, ids, count, &back, &length);
        free(back);
    }
    free(ids);
    int32_t fixed[16], mask[16];
    clora_tokenizer_encode(tokenizer, text, 16, fixed, mask, NULL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const int kind = data[0] % 3;
    const uint8_t *parts[3];
    size_t sizes[3];
    const size_t n = fuzz_split(data + 1, size - 1, parts, sizes, 3);
    for (size_t i = 0; i < sizeof every / sizeof every[0]; ++i)
        fuzz_write(0, every[i], NULL, 0);
    for (size_t i = 0; i < n && i < 3 && names[kind][i]; ++i)
        fuzz_write((int)i, names[kind][i], parts[i], sizes[i]);
    clora_tokenizer *tokenizer = NULL;
    if (clora_tokenizer_load(&tokenizer, fuzz_dir()) != CLORA_OK)
        return 0;
    use(tokenizer, "Hello, world! Ünïcode 日本 123 [CLS] <|endoftext|>", 1);
    char *text = malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        use(tokenizer, text, 0);
        free(text);
    }
    clora_tokenizer_destroy(tokenizer);
    return 0;
}
