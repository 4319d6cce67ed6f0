/* wordpiece.c — BERT's WordPiece (clora/tokenizer.h) and its vocab.txt.
 * Text is handled as arrays of code points; utf8proc decodes, classifies,
 * lower-cases and normalises them. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io/io.h"

#define MAX_CHARS_PER_WORD 100

typedef struct wordpiece {
    clora_wordpiece_options options;
    int32_t unk, cls, sep, pad;
} wordpiece;

static const wordpiece *model_of(const clora_tokenizer *t)
{
    return (const wordpiece *)t->model;
}

static int32_t lookup(const clora_tokenizer *t, const char *s, size_t n)
{
    return clora__vocab_find(&t->vocab, s, n);
}

clora_wordpiece_options clora_wordpiece_options_default(void)
{
    clora_wordpiece_options o;
    o.lower_case = 1;
    o.strip_accents = -1;
    o.tokenize_chinese_chars = 1;
    o.model_max_length = 512;
    return o;
}

/* ---- code-point arrays ----------------------------------------------------------------- */

typedef struct cps {
    int32_t *v;
    size_t n, cap;
} cps;

typedef clora__ids ids;

static int push(int32_t **v, size_t *n, size_t *cap, int32_t x)
{
    if (*n == *cap) {
        size_t next = *cap ? 2 * *cap : 64;
        int32_t *grown = clora__realloc(*v, next * sizeof *grown);
        if (!grown)
            return 0;
        *v = grown;
        *cap = next;
    }
    (*v)[(*n)++] = x;
    return 1;
}

#define PUSH(arr, x) push(&(arr).v, &(arr).n, &(arr).cap, (x))

/* Decodes UTF-8 bytes, appending to out; -1 at the first invalid byte. */
static long decode(const char *s, size_t n, cps *out)
{
    size_t i = 0;
    while (i < n) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0)
            return (long)i;
        if (!PUSH(*out, c))
            return -2;
        i += (size_t)k;
    }
    return -1;
}

/* UTF-8 of `prefix` then a code-point range into dst, which holds
 * strlen(prefix) + 4 * n + 1 bytes; returns the length. */
static size_t encode_into(char *dst, const int32_t *c, size_t n, const char *prefix)
{
    size_t len = prefix ? strlen(prefix) : 0;
    memcpy(dst, prefix ? prefix : "", len);
    for (size_t i = 0; i < n; ++i)
        len += (size_t)utf8proc_encode_char(c[i], (utf8proc_uint8_t *)dst + len);
    dst[len] = '\0';
    return len;
}

/* Normalises a code-point array in place (NFC or NFD). */
static int normalise(cps *text, int compose)
{
    char *utf8 = clora__malloc(4 * text->n + 1);
    if (!utf8)
        return 0;
    encode_into(utf8, text->v, text->n, NULL);
    utf8proc_uint8_t *mapped = NULL;
    utf8proc_ssize_t n = utf8proc_map((const utf8proc_uint8_t *)utf8, 0, &mapped,
                                      UTF8PROC_NULLTERM | UTF8PROC_STABLE |
                                          (compose ? UTF8PROC_COMPOSE : UTF8PROC_DECOMPOSE));
    free(utf8);
    if (n < 0)
        return 0;
    text->n = 0;
    long bad = decode((const char *)mapped, (size_t)n, text);
    free(mapped);
    return bad == -1;
}

static int is_whitespace(int32_t c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' ||
           utf8proc_category(c) == UTF8PROC_CATEGORY_ZS;
}

static int is_control(int32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r')
        return 0;
    switch (utf8proc_category(c)) {
    case UTF8PROC_CATEGORY_CN:
    case UTF8PROC_CATEGORY_CC:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_CS:
    case UTF8PROC_CATEGORY_CO:
        return 1;
    default:
        return 0;
    }
}

/* BERT counts all non-letter/number ASCII as punctuation, and Unicode's P*. */
static int is_punctuation(int32_t c)
{
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    utf8proc_category_t k = utf8proc_category(c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* The CJK Unified Ideographs blocks BERT puts spaces around. */
static int is_cjk(int32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* What Python's str.split() splits on once the text is cleaned: spaces,
 * and the line and paragraph separators. */
static int splits(int32_t c)
{
    utf8proc_category_t k = utf8proc_category(c);
    return c == ' ' || k == UTF8PROC_CATEGORY_ZL || k == UTF8PROC_CATEGORY_ZP;
}

/* ---- word pieces --------------------------------------------------------------------------- */

static clora_status word_pieces(const clora_tokenizer *t, const int32_t *word, size_t n, ids *out)
{
    if (n == 0)
        return CLORA_OK;
    const size_t before = out->n;
    int bad = n > MAX_CHARS_PER_WORD;
    char piece[2 + 4 * MAX_CHARS_PER_WORD + 1]; /* "##" and the longest word */
    for (size_t start = 0; start < n && !bad;) {
        int32_t found = -1;
        size_t end = n;
        for (; end > start; --end) {
            size_t len = encode_into(piece, word + start, end - start, start > 0 ? "##" : NULL);
            if ((found = lookup(t, piece, len)) >= 0)
                break;
        }
        if (found < 0)
            bad = 1;
        else if (!PUSH(*out, found))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
        start = end;
    }
    if (bad) {
        out->n = before;
        if (!PUSH(*out, model_of(t)->unk))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    }
    return CLORA_OK;
}

/* Appends the lower case of c as BertTokenizer gives it: it lower-cases
 * the text one character at a time with Python's str.lower(), so without
 * context (a capital sigma always becomes σ), and U+0130, the one
 * character whose lower case is two, becomes i and a combining dot. */
static int push_lower(cps *out, int32_t c)
{
    if (c == 0x130)
        return PUSH(*out, 'i') && PUSH(*out, 0x307);
    return PUSH(*out, utf8proc_tolower(c));
}

/* One whitespace-separated word: case, accents, punctuation, pieces. */
static clora_status word_tokens(const clora_tokenizer *t, const int32_t *c, size_t n, ids *out)
{
    cps word = {NULL, 0, 0};
    const clora_wordpiece_options *o = &model_of(t)->options;
    const int strip = o->lower_case ? o->strip_accents != 0 : o->strip_accents == 1;
    clora_status status = CLORA_OK;
    for (size_t i = 0; i < n && status == CLORA_OK; ++i)
        if (!(o->lower_case ? push_lower(&word, c[i]) : PUSH(word, c[i])))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    if (status == CLORA_OK && strip) {
        if (!normalise(&word, 0))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
        size_t kept = 0;
        for (size_t i = 0; i < word.n; ++i)
            if (utf8proc_category(word.v[i]) != UTF8PROC_CATEGORY_MN)
                word.v[kept++] = word.v[i];
        word.n = kept;
    }
    size_t start = 0;
    for (size_t i = 0; i <= word.n && status == CLORA_OK; ++i) {
        if (i < word.n && !is_punctuation(word.v[i]))
            continue;
        if (i > start) /* word.v is NULL while the word is empty */
            status = word_pieces(t, word.v + start, i - start, out);
        if (status == CLORA_OK && i < word.n)
            status = word_pieces(t, word.v + i, 1, out);
        start = i + 1;
    }
    free(word.v);
    return status;
}

/* Text without special tokens, `base` bytes into the whole text: clean,
 * CJK spacing, NFC, words. */
static clora_status plain_tokens(const clora_tokenizer *t, const char *s, size_t n, size_t base,
                                 ids *out)
{
    cps raw = {NULL, 0, 0}, text = {NULL, 0, 0};
    clora_status status = CLORA_OK;
    long bad = decode(s, n, &raw);
    if (bad == -2)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    else if (bad >= 0)
        status = clora__fail(CLORA_ERR_INVALID_ARGUMENT, "the text is not valid UTF-8 at byte %zu",
                             base + (size_t)bad);
    for (size_t i = 0; i < raw.n && status == CLORA_OK; ++i) {
        int32_t c = raw.v[i];
        int ok = 1;
        if (c == 0 || c == 0xFFFD || is_control(c))
            continue;
        if (is_whitespace(c))
            ok = PUSH(text, ' ');
        else if (model_of(t)->options.tokenize_chinese_chars && is_cjk(c))
            ok = PUSH(text, ' ') && PUSH(text, c) && PUSH(text, ' ');
        else
            ok = PUSH(text, c);
        if (!ok)
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    }
    if (status == CLORA_OK && text.n > 0 && !normalise(&text, 1))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    size_t start = 0;
    for (size_t i = 0; i <= text.n && status == CLORA_OK; ++i)
        if (i == text.n || splits(text.v[i])) {
            if (i > start) /* text.v is NULL while the text is empty */
                status = word_tokens(t, text.v + start, i - start, out);
            start = i + 1;
        }
    free(raw.v);
    free(text.v);
    return status;
}

/* The first special token written in s[0, n): its position, length, id. */
static int find_special(const clora_tokenizer *t, const char *s, size_t n, size_t *at,
                        size_t *len, int32_t *id)
{
    static const char *const specials[5] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    int found = 0;
    for (int k = 0; k < 5; ++k) {
        int32_t kid = lookup(t, specials[k], strlen(specials[k]));
        size_t m = strlen(specials[k]);
        if (kid < 0)
            continue;
        for (size_t i = 0; i + m <= n && (!found || i < *at); ++i)
            if (!memcmp(s + i, specials[k], m)) {
                *at = i;
                *len = m;
                *id = kid;
                found = 1;
                break;
            }
    }
    return found;
}

static clora_status tokenize(const clora_tokenizer *t, const char *text, size_t n, ids *out)
{
    size_t base = 0;
    clora_status status = CLORA_OK;
    while (status == CLORA_OK) {
        size_t at = 0, len = 0;
        int32_t id = -1;
        if (!find_special(t, text + base, n - base, &at, &len, &id))
            return plain_tokens(t, text + base, n - base, base, out);
        status = plain_tokens(t, text + base, at, base, out);
        if (status == CLORA_OK && !PUSH(*out, id))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
        base += at + len;
    }
    return status;
}

/* ---- decoding ------------------------------------------------------------------------------ */

/* Tokens joined by spaces, a "##" continuation glued to the one before. */
static clora_status decode_ids(const clora_tokenizer *t, const int32_t *v, size_t count,
                               unsigned flags, clora__bytes *out)
{
    int first = 1;
    for (size_t i = 0; i < count; ++i) {
        const char *token = t->vocab.tokens[v[i]];
        size_t n = t->vocab.lengths[v[i]];
        if ((flags & CLORA_DECODE_SKIP_SPECIAL) && (size_t)v[i] < t->flag_count &&
            (t->flags[v[i]] & CLORA__TOKEN_SPECIAL))
            continue;
        int glued = n > 2 && token[0] == '#' && token[1] == '#';
        if (glued) {
            token += 2;
            n -= 2;
        }
        if ((!first && !glued && !clora__bytes_append(out, " ", 1)) ||
            !clora__bytes_append(out, token, n))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "decoding");
        first = 0;
    }
    return CLORA_OK;
}

static void destroy(void *model)
{
    free(model);
}

static const clora__tokenizer_ops wordpiece_ops = {
    .kind = CLORA_TOKENIZER_WORDPIECE,
    .tokenize = tokenize,
    .decode = decode_ids,
    .destroy = destroy,
};

/* ---- vocab.txt and tokenizer_config.json ----------------------------------------------------- */

static clora_status parse_vocab(clora_tokenizer *t, wordpiece *w, const char *path, char *text,
                                size_t size)
{
    char *line = text;
    for (int32_t id = 0; line < text + size; ++id) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        size_t n = end ? (size_t)(end - line) : (size_t)(text + size - line);
        if (n > 0 && line[n - 1] == '\r') /* read as text, "\r\n" ends a line too */
            --n;
        clora_status status = clora__vocab_set(&t->vocab, id, line, n);
        if (status != CLORA_OK)
            return clora__fail_prefixed(status, "reading %s: ", path);
        line = end ? end + 1 : text + size;
    }
    static const char *const required[5] = {"[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"};
    int32_t *slots[4] = {&w->unk, &w->cls, &w->sep, &w->pad};
    for (int i = 0; i < 5; ++i) {
        int32_t id = lookup(t, required[i], strlen(required[i]));
        if (i < 4 && id < 0)
            return clora__fail(CLORA_ERR_FORMAT, "%s: the vocabulary has no %s token", path,
                               required[i]);
        if (i < 4)
            *slots[i] = id;
        clora_status status =
            id >= 0 ? clora__tokenizer_mark(t, id, CLORA__TOKEN_SPECIAL) : CLORA_OK;
        if (status != CLORA_OK)
            return status;
    }
    t->unk = w->unk;
    t->bos = w->cls;
    t->eos = w->sep;
    t->pad = w->pad;
    t->add_bos = t->add_eos = 1;
    return CLORA_OK;
}

clora_status clora__wordpiece_init(clora_tokenizer *t, const char *vocab_path,
                                   const clora_wordpiece_options *options)
{
    wordpiece *w = clora__calloc(1, sizeof *w);
    if (!w)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading %s", vocab_path);
    w->options = options ? *options : clora_wordpiece_options_default();
    t->ops = &wordpiece_ops;
    t->model = w;
    t->max_length = w->options.model_max_length;
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(vocab_path, &text, &size);
    if (status == CLORA_OK && utf8proc_decompose((const utf8proc_uint8_t *)text,
                                                 (utf8proc_ssize_t)size, NULL, 0, 0) < 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: not valid UTF-8", vocab_path);
    if (status == CLORA_OK)
        status = parse_vocab(t, w, vocab_path, text, size);
    free(text);
    return status;
}

/* A boolean option of tokenizer_config.json; null gives `null_value`. */
static clora_status config_flag(json_t *config, const char *key, const char *path, int null_value,
                                int *out)
{
    json_t *v = json_object_get(config, key);
    if (!v)
        return CLORA_OK;
    if (json_is_null(v)) {
        *out = null_value;
        return CLORA_OK;
    }
    if (!json_is_boolean(v))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be true, false or null", path, key);
    *out = json_is_true(v);
    return CLORA_OK;
}

clora_status clora__wordpiece_config(json_t *config, const char *path,
                                     clora_wordpiece_options *options)
{
    clora_status status = CLORA_OK;
    const char *type = json_string_value(json_object_get(config, "tokenizer_class"));
    json_t *max = json_object_get(config, "model_max_length");
    if (type && strcmp(type, "BertTokenizer") && strcmp(type, "BertTokenizerFast"))
        status = clora__fail(CLORA_ERR_UNSUPPORTED,
                             "%s: tokenizer_class %s with only a vocab.txt; clora reads it as "
                             "BERT WordPiece, which it is not",
                             path, type);
    if (status == CLORA_OK)
        status = config_flag(config, "do_lower_case", path, 1, &options->lower_case);
    if (status == CLORA_OK)
        status = config_flag(config, "strip_accents", path, -1, &options->strip_accents);
    if (status == CLORA_OK)
        status = config_flag(config, "tokenize_chinese_chars", path, 1,
                             &options->tokenize_chinese_chars);
    /* numbers as doubles: "no limit" is written as 1e30 in integer digits */
    if (status == CLORA_OK && json_is_number(max) && json_number_value(max) >= 1.0)
        options->model_max_length =
            json_number_value(max) < 1e9 ? (size_t)json_number_value(max) : 0;
    return status;
}
