/* fuzz_tokenize.c — arbitrary bytes as text through the tokenizers of the
 * test data (SmolLM2's byte-level BPE and a WordPiece vocabulary): encode
 * with and without special tokens, fixed-length encode, and the same bytes
 * read as token ids to decode. */
#include <stdlib.h>
#include <string.h>

#include "clora/tokenizer.h"
#include "fuzz.h"

#ifndef CLORA_FUZZ_GOLDEN_DIR
#error "CLORA_FUZZ_GOLDEN_DIR must name tests/golden"
#endif

static clora_tokenizer *tokenizers[2];
static int missing[256]; /* bytes whose character the BPE vocabulary lacks */

/* GPT-2's byte-to-character table, as UTF-8. */
static void byte_char(int b, char out[4])
{
    int c = b;
    if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) {
        int n = 0; /* the others, in order, from U+0100 */
        for (int k = 0; k < b; ++k)
            n += !((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE && k <= 0xFF));
        c = 0x100 + n;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        out[1] = '\0';
    } else {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        out[2] = '\0';
    }
}

static void load(void)
{
    if (tokenizers[0])
        return;
    clora_wordpiece_options options = clora_wordpiece_options_default();
    if (clora_tokenizer_load_gguf(&tokenizers[0],
                                  CLORA_FUZZ_GOLDEN_DIR "/smollm2_tokenizer.gguf") != CLORA_OK ||
        clora_tokenizer_load_vocab(&tokenizers[1], CLORA_FUZZ_GOLDEN_DIR "/wordpiece_vocab.txt",
                                   &options) != CLORA_OK)
        abort();
    for (int b = 0; b < 256; ++b) {
        char c[4];
        byte_char(b, c);
        missing[b] = clora_tokenizer_token_id(tokenizers[0], c) < 0;
    }
}

/* Whether `back` is `text` without the bytes the vocabulary lacks. */
static int round_trip(const char *text, const char *back, size_t length)
{
    size_t k = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; ++p)
        if (!missing[*p] && (k >= length || (unsigned char)back[k++] != *p))
            return 0;
    return k == length;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    load();
    char *text = malloc(size + 1);
    if (!text)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    int32_t *raw_ids = malloc((size / 4 + 1) * sizeof *raw_ids);
    const size_t raw_count = size / 4;
    if (raw_ids)
        memcpy(raw_ids, data, raw_count * sizeof *raw_ids);
    for (int t = 0; t < 2; ++t) {
        for (int special = 0; special < 2; ++special) {
            int32_t *ids = NULL;
            size_t count = 0;
            if (clora_tokenizer_encode_text(tokenizers[t], text, special, &ids, &count) ==
                CLORA_OK) {
                char *back = NULL;
                size_t length = 0;
                clora_tokenizer_decode(tokenizers[t], ids, count, &back, &length);
                /* byte-level BPE gives every valid text back as it was (up to a
                 * NUL), but for the bytes its vocabulary has no character for */
                if (t == 0 && !special && back && !round_trip(text, back, length))
                    abort();
                free(back);
            }
            free(ids);
        }
        int32_t fixed[32], mask[32];
        clora_tokenizer_encode(tokenizers[t], text, 32, fixed, mask, NULL, NULL);
        if (raw_ids) {
            char *back = NULL;
            size_t length = 0;
            clora_tokenizer_decode(tokenizers[t], raw_ids, raw_count, &back, &length);
            free(back);
        }
    }
    free(raw_ids);
    free(text);
    return 0;
}
