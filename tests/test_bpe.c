/* test_bpe.c — byte-level BPE tokenizers against their references, for
 * every text of golden/bpe_texts.json (make_bpe_texts.py): Hugging Face's
 * tokenizers for GPT-2's vocab.json + merges.txt and for tokenizer.json
 * files with five pre-tokenizers, llama.cpp for GGUF tokenizers
 * (make_bpe_golden.py); the byte-exact round trip; chat templates against
 * Jinja2 (make_chat_golden.py); and the errors.
 * Host-only: no device. */
#define _POSIX_C_SOURCE 200809L /* strdup, clock_gettime */
#include "support.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <utf8proc.h>

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static json_t *texts;     /* the texts */
static json_t *reference; /* "tokenizers": name -> {"ids": [[...], ...]} */

static json_t *load(const char *path)
{
    json_error_t error;
    json_t *j = json_load_file(path, 0, &error);
    if (!j)
        fprintf(stderr, "%s: %s (line %d)\n", path, error.text, error.line);
    return j;
}

static int setup(void **state)
{
    (void)state;
    json_t *file = load(GOLDEN "/bpe_texts.json");
    reference = load(GOLDEN "/bpe_reference.json");
    if (!file || !reference)
        return -1;
    texts = json_incref(json_object_get(file, "texts"));
    json_decref(file);
    return json_array_size(texts) ==
                   (size_t)json_integer_value(json_object_get(reference, "texts"))
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(texts);
    json_decref(reference);
    return 0;
}

static const char *text_at(size_t i)
{
    return json_string_value(json_array_get(texts, i));
}

static int same_ids(const int32_t *got, size_t n, json_t *want)
{
    if (n != json_array_size(want))
        return 0;
    for (size_t i = 0; i < n; ++i)
        if (got[i] != json_integer_value(json_array_get(want, i)))
            return 0;
    return 1;
}

static void print_ids(const char *label, const int32_t *ids, size_t n)
{
    fprintf(stderr, "    %s:", label);
    for (size_t i = 0; i < n; ++i)
        fprintf(stderr, " %d", (int)ids[i]);
    fprintf(stderr, "\n");
}

/* What decoding a text's ids gives back: the text, NFC-normalised for
 * the tokenizers that normalise, or with a space before every stretch
 * between <|endoftext|> tokens that does not start with one (ByteLevel's
 * add_prefix_space). A new string. */
enum { EXACT, NFC, PREFIX_SPACE };
static char *expected_text(const char *text, int mode)
{
    if (mode == NFC)
        return (char *)utf8proc_NFC((const utf8proc_uint8_t *)text);
    if (mode == EXACT)
        return strdup(text);
    static const char end[] = "<|endoftext|>";
    char *out = malloc(2 * strlen(text) + 1), *o = out;
    assert_non_null(out);
    for (const char *p = text; *p;) {
        const char *next = strstr(p, end);
        size_t n = next ? (size_t)(next - p) : strlen(p);
        if (n && *p != ' ')
            *o++ = ' ';
        memcpy(o, p, n);
        o += n;
        p += n;
        if (next) {
            memcpy(o, end, strlen(end));
            o += strlen(end);
            p += strlen(end);
        }
    }
    *o = '\0';
    return out;
}

/* Every text against the reference's ids (the first `limit` with
 * add_special when `key` is "ids_add_special"), and decoding them back.
 * Prints the matches: the count the issue asks for. */
static void against_reference(const clora_tokenizer *tok, const char *name, const char *key,
                              int add_special, int mode)
{
    json_t *want_all = json_object_get(json_object_get(json_object_get(reference, "tokenizers"),
                                                       name),
                                       key);
    assert_non_null(want_all);
    size_t matched = 0, round_trips = 0, shown = 0;
    const size_t count = json_array_size(want_all);
    for (size_t i = 0; i < count; ++i) {
        const char *text = text_at(i);
        int32_t *ids = NULL;
        size_t n = 0;
        CHECK_OK(clora_tokenizer_encode_text(tok, text, add_special, &ids, &n));
        json_t *want = json_array_get(want_all, i);
        if (same_ids(ids, n, want)) {
            ++matched;
        } else if (shown++ < 5) {
            fprintf(stderr, "  %s text %zu \"%s\":\n", name, i, text);
            print_ids("clora", ids, n);
            char *w = json_dumps(want, JSON_COMPACT);
            fprintf(stderr, "    reference: %s\n", w);
            free(w);
        }
        /* decoding the reference's ids gives the text back, byte for byte */
        int32_t *ref = malloc((json_array_size(want) + 1) * sizeof *ref);
        assert_non_null(ref);
        for (size_t k = 0; k < json_array_size(want); ++k)
            ref[k] = (int32_t)json_integer_value(json_array_get(want, k));
        char *back = NULL;
        size_t length = 0;
        CHECK_OK(clora_tokenizer_decode_flags(tok, ref, json_array_size(want),
                                              add_special ? CLORA_DECODE_SKIP_SPECIAL : 0, &back,
                                              &length));
        char *expected = expected_text(text, mode);
        if (add_special && strstr(text, "<|"))
            round_trips++; /* skipping the specials also skips those written in the text */
        else if (length == strlen(expected) && !memcmp(back, expected, length))
            round_trips++;
        else if (shown++ < 5)
            fprintf(stderr, "  %s text %zu \"%s\" decodes to \"%s\"\n", name, i, text, back);
        free(expected);
        free(back);
        free(ref);
        free(ids);
    }
    printf("%s (%s): %zu of %zu texts match the reference, %zu round trips exact\n", name, key,
           matched, count, round_trips);
    assert_int_equal(matched, count);
    assert_int_equal(round_trips, count);
}

/* ---- tokenizer folders ----------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Calls visit(arg, left, right) for each merge of GPT-2's merges.txt, in
 * rank order. */
static void gpt2_merges(void (*visit)(void *arg, const char *left, const char *right), void *arg)
{
    FILE *f = fopen(GOLDEN "/gpt2_tokenizer/merges.txt", "rb");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        char *space = strchr(line, ' ');
        if (!space || !strncmp(line, "#version", 8))
            continue;
        *space = '\0';
        visit(arg, line, space + 1);
    }
    fclose(f);
}

/* A merge as a JSON [left, right] pair appended to the array arg. */
static void append_pair(void *arg, const char *left, const char *right)
{
    json_t *pair = json_array();
    json_array_append_new(pair, json_string(left));
    json_array_append_new(pair, json_string(right));
    json_array_append_new(arg, pair);
}

/* golden/bpe_tokenizer_json/<name>.json with GPT-2's vocabulary and
 * merges put in (as [left, right] pairs, the way tokenizers 0.21 writes
 * them), written to dir/tokenizer.json. `edit` (may be NULL) changes the
 * JSON first. */
static void tokenizer_json(const char *dir, const char *name, void (*edit)(json_t *root))
{
    char path[256];
    snprintf(path, sizeof path, GOLDEN "/bpe_tokenizer_json/%s.json", name);
    json_t *root = load(path);
    json_t *vocab = load(GOLDEN "/gpt2_tokenizer/vocab.json");
    assert_non_null(root);
    assert_non_null(vocab);
    json_t *model = json_object_get(root, "model");
    json_object_set_new(model, "vocab", vocab);
    json_t *merges = json_array();
    gpt2_merges(append_pair, merges);
    json_object_set_new(model, "merges", merges);
    if (edit)
        edit(root);
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
}

static void gpt2_folder(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    assert_int_equal(clora_tokenizer_get_kind(tok), CLORA_TOKENIZER_BPE);
    assert_int_equal(clora_tokenizer_vocab_size(tok), 50257);
    assert_int_equal(clora_tokenizer_bos(tok), 50256);
    assert_int_equal(clora_tokenizer_eos(tok), 50256);
    assert_int_equal(clora_tokenizer_pad(tok), -1);
    assert_false(clora_tokenizer_adds_bos(tok));
    assert_false(clora_tokenizer_adds_eos(tok));
    assert_true(clora_tokenizer_is_special(tok, 50256));
    assert_false(clora_tokenizer_is_special(tok, 464));
    assert_false(clora_tokenizer_is_special(tok, 50257));
    assert_int_equal(clora_tokenizer_max_length(tok), 1024);
    assert_null(clora_tokenizer_chat_template(tok));
    assert_int_equal(clora_tokenizer_token_id(tok, "Ġthe"), 262);
    against_reference(tok, "gpt2", "ids", 0, EXACT);
    clora_tokenizer_destroy(tok);

    /* add_prefix_space in tokenizer_config.json, as GPT2Tokenizer takes it */
    char dir[64], cmd[256];
    test_temp_dir(dir, "bpe");
    snprintf(cmd, sizeof cmd, "cp %s/gpt2_tokenizer/vocab.json %s/gpt2_tokenizer/merges.txt %s/",
             GOLDEN, GOLDEN, dir);
    assert_int_equal(system(cmd), 0);
    write_file(dir, "tokenizer_config.json", "{\"add_prefix_space\": true}");
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    against_reference(tok, "gpt2_prefix_space", "ids", 0, PREFIX_SPACE);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);
}

static void json_variant(const char *name, int mode)
{
    char dir[64];
    test_temp_dir(dir, "bpe");
    tokenizer_json(dir, name, NULL);
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    against_reference(tok, name, "ids", 0, mode);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);
}

static void gpt2_json(void **state)
{
    (void)state;
    json_variant("gpt2", EXACT);
}

static void gpt2_prefix_space_json(void **state)
{
    (void)state;
    json_variant("gpt2_prefix_space", PREFIX_SPACE);
}

static void smollm_style_json(void **state)
{
    (void)state;
    json_variant("smollm_style", EXACT);
}

static void llama3_style_json(void **state)
{
    (void)state;
    json_variant("llama3_style", EXACT);
}

static void qwen2_style_json(void **state)
{
    (void)state;
    json_variant("qwen2_style", NFC);
}

/* A Llama-3-like post-processor: BOS before every sequence. */
static void add_template_processing(json_t *root)
{
    json_t *p = json_pack("{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}}}",
                          "type", "TemplateProcessing", "single", "SpecialToken", "id",
                          "<|endoftext|>", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
                          "special_tokens", "<|endoftext|>", "id", "<|endoftext|>", "ids", 50256,
                          "tokens", "<|endoftext|>");
    assert_non_null(p);
    json_object_set_new(root, "post_processor", p);
}

static void config_and_post_processor(void **state)
{
    (void)state;
    char dir[64];
    test_temp_dir(dir, "bpe");
    tokenizer_json(dir, "llama3_style", add_template_processing);
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    assert_int_equal(clora_tokenizer_bos(tok), 50256);
    assert_true(clora_tokenizer_adds_bos(tok));
    assert_false(clora_tokenizer_adds_eos(tok));
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, "Hello", 1, &ids, &n));
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 50256);
    assert_int_equal(ids[1], 15496);
    free(ids);
    /* the fixed-length form: BOS, tokens, padding with EOS (no pad id) */
    int32_t enc[4], mask[4];
    size_t length = 0;
    int cut = -1;
    CHECK_OK(clora_tokenizer_encode(tok, "Hello world", 4, enc, mask, &length, &cut));
    assert_int_equal(length, 3);
    assert_int_equal(cut, 0);
    assert_int_equal(enc[0], 50256);
    assert_int_equal(enc[1], 15496);
    assert_int_equal(enc[2], 995);
    assert_int_equal(mask[3], 0);
    clora_tokenizer_destroy(tok);

    /* tokenizer_config.json overrides: EOS added, a chat template, a pad */
    write_file(dir, "tokenizer_config.json",
               "{\"add_eos_token\": true, \"eos_token\": {\"content\": \"<|endoftext|>\", "
               "\"__type\": \"AddedToken\"}, \"pad_token\": \"!\", \"bos_token\": null, "
               "\"chat_template\": [{\"name\": \"default\", \"template\": \"{{ x }}\"}], "
               "\"model_max_length\": 2048}");
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    assert_int_equal(clora_tokenizer_bos(tok), -1);
    assert_false(clora_tokenizer_adds_bos(tok));
    assert_true(clora_tokenizer_adds_eos(tok));
    assert_int_equal(clora_tokenizer_pad(tok), 0);
    assert_string_equal(clora_tokenizer_chat_template(tok), "{{ x }}");
    assert_int_equal(clora_tokenizer_max_length(tok), 2048);
    CHECK_OK(clora_tokenizer_encode_text(tok, "Hello", 1, &ids, &n));
    assert_int_equal(n, 2);
    assert_int_equal(ids[1], 50256);
    free(ids);
    /* add_prefix_space: ByteLevel's after a Split would add it to every piece */
    write_file(dir, "tokenizer_config.json", "{\"add_prefix_space\": true}");
    clora_tokenizer *refused = NULL;
    CHECK_STATUS(clora_tokenizer_load(&refused, dir), CLORA_ERR_UNSUPPORTED);
    test_expect_message("add_prefix_space with a pre-tokenizer that splits first");
    /* "!" is special now: matched whole and left out when asked */
    CHECK_OK(clora_tokenizer_encode_text(tok, "Hi!!", 0, &ids, &n));
    char *text = NULL;
    size_t len = 0;
    CHECK_OK(clora_tokenizer_decode_flags(tok, ids, n, CLORA_DECODE_SKIP_SPECIAL, &text, &len));
    assert_string_equal(text, "Hi");
    free(text);
    free(ids);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);
}

/* GPT-2's merges as ids. */
typedef struct merge_ids {
    const clora_tokenizer *tok;
    int32_t pairs[2 * 50000]; /* left, right by rank */
    size_t count;
} merge_ids;

static void add_ids(void *arg, const char *left, const char *right)
{
    merge_ids *m = arg;
    assert_true(m->count < 50000);
    m->pairs[2 * m->count] = clora_tokenizer_token_id(m->tok, left);
    m->pairs[2 * m->count++ + 1] = clora_tokenizer_token_id(m->tok, right);
}

/* The fingerprint: as clora/tokenizer.h defines it, the same from
 * vocab.json + merges.txt as from tokenizer.json, another when two merges
 * trade ranks. */
static void fingerprint(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    merge_ids *merges = calloc(1, sizeof *merges);
    assert_non_null(merges);
    merges->tok = tok;
    gpt2_merges(add_ids, merges);
    assert_int_equal(merges->count, 50000);
    char got[17], want[17], other[17];
    CHECK_OK(clora_tokenizer_fingerprint(tok, got));
    test_fingerprint(tok, merges->pairs, merges->count, want);
    assert_string_equal(got, want);
    test_fingerprint(tok, NULL, 0, other); /* the merges count */
    assert_string_not_equal(got, other);
    free(merges);
    clora_tokenizer_destroy(tok);

    char dir[64], cmd[512];
    test_temp_dir(dir, "bpe");
    tokenizer_json(dir, "gpt2", NULL);
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    CHECK_OK(clora_tokenizer_fingerprint(tok, other));
    assert_string_equal(got, other);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);

    test_temp_dir(dir, "bpe");
    snprintf(cmd, sizeof cmd,
             "cp %s/gpt2_tokenizer/vocab.json %s/ && sed '2{h;d};3{G}' "
             "%s/gpt2_tokenizer/merges.txt > %s/merges.txt",
             GOLDEN, dir, GOLDEN, dir);
    assert_int_equal(system(cmd), 0);
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    CHECK_OK(clora_tokenizer_fingerprint(tok, other));
    assert_string_not_equal(got, other);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);

    CHECK_OK(clora_tokenizer_load_gguf(&tok, GOLDEN "/smollm2_tokenizer.gguf"));
    CHECK_OK(clora_tokenizer_fingerprint(tok, other));
    assert_string_not_equal(got, other);
    clora_tokenizer_destroy(tok);
}

/* ---- GGUF tokenizers (llama.cpp's ids) ------------------------------------------------------- */

static void smollm2_gguf(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load_gguf(&tok, GOLDEN "/smollm2_tokenizer.gguf"));
    assert_int_equal(clora_tokenizer_get_kind(tok), CLORA_TOKENIZER_BPE);
    assert_int_equal(clora_tokenizer_vocab_size(tok), 49152);
    assert_int_equal(clora_tokenizer_bos(tok), 1);
    assert_int_equal(clora_tokenizer_eos(tok), 2);
    assert_int_equal(clora_tokenizer_pad(tok), 2);
    assert_false(clora_tokenizer_adds_bos(tok));
    assert_true(clora_tokenizer_is_special(tok, 1));
    assert_non_null(clora_tokenizer_chat_template(tok));
    against_reference(tok, "smollm2_gguf", "ids", 0, EXACT);
    against_reference(tok, "smollm2_gguf", "ids_add_special", 1, EXACT);
    /* " 42": the digits one by one after the space */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, " 42", 0, &ids, &n));
    assert_int_equal(n, 3);
    assert_string_equal(clora_tokenizer_token(tok, ids[1]), "4");
    free(ids);
    clora_tokenizer_destroy(tok);
}

static void mini_gguf(void **state)
{
    (void)state;
    static const char *const pres[3] = {"gpt-2", "llama-bpe", "qwen2"};
    for (int i = 0; i < 3; ++i) {
        char path[256], name[64];
        snprintf(path, sizeof path, GOLDEN "/mini_%s.gguf", pres[i]);
        snprintf(name, sizeof name, "mini_%s", pres[i]);
        clora_tokenizer *tok = NULL;
        CHECK_OK(clora_tokenizer_load_gguf(&tok, path));
        assert_int_equal(clora_tokenizer_adds_bos(tok), i == 1); /* llama-bpe adds BOS */
        against_reference(tok, name, "ids", 0, EXACT);
        against_reference(tok, name, "ids_add_special", 1, EXACT);
        clora_tokenizer_destroy(tok);
    }
}

/* ---- decoding -------------------------------------------------------------------------------- */

static void decoding(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    /* any valid UTF-8 comes back: every code point class, every byte value */
    char text[2048];
    size_t at = 0;
    for (int32_t c = 1; c < 0x110000 && at < sizeof text - 8; c += c < 0x800 ? 7 : 4099)
        if (utf8proc_codepoint_valid(c))
            at += (size_t)utf8proc_encode_char(c, (utf8proc_uint8_t *)text + at);
    text[at] = '\0';
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, text, 0, &ids, &n));
    char *back = NULL;
    size_t length = 0;
    CHECK_OK(clora_tokenizer_decode(tok, ids, n, &back, &length));
    assert_int_equal(length, at);
    assert_memory_equal(back, text, at);
    free(back);
    free(ids);
    /* a part of a sequence may end inside a character: the bytes so far */
    CHECK_OK(clora_tokenizer_encode_text(tok, "\xF0\x9F\x98\x80", 0, &ids, &n));
    assert_true(n >= 2);
    CHECK_OK(clora_tokenizer_decode(tok, ids, 1, &back, &length));
    assert_true(length >= 1 && length < 4);
    assert_memory_equal(back, "\xF0\x9F\x98\x80", length);
    free(back);
    free(ids);
    /* nothing: an empty text */
    CHECK_OK(clora_tokenizer_decode(tok, NULL, 0, &back, &length));
    assert_int_equal(length, 0);
    assert_string_equal(back, "");
    free(back);
    /* specials as their text, or left out */
    const int32_t with_end[3] = {15496, 50256, 995};
    CHECK_OK(clora_tokenizer_decode(tok, with_end, 3, &back, &length));
    assert_string_equal(back, "Hello<|endoftext|> world");
    free(back);
    CHECK_OK(clora_tokenizer_decode_flags(tok, with_end, 3, CLORA_DECODE_SKIP_SPECIAL, &back,
                                          NULL));
    assert_string_equal(back, "Hello world");
    free(back);
    /* ids outside the vocabulary */
    const int32_t bad[2] = {15496, 50257};
    CHECK_STATUS(clora_tokenizer_decode(tok, bad, 2, &back, &length), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("token id 50257 (at 1) is outside the vocabulary (ids 0 to 50256)");
    assert_null(back);
    const int32_t negative[1] = {-1};
    CHECK_STATUS(clora_tokenizer_decode(tok, negative, 1, &back, &length),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("token id -1");
    CHECK_STATUS(clora_tokenizer_decode(tok, NULL, 2, &back, &length), CLORA_ERR_NULL_ARGUMENT);
    clora_tokenizer_destroy(tok);
}

/* Encoding a megabyte of varied text takes well under a second. */
static void speed(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    const size_t size = 1u << 20;
    char *big = malloc(size + 512);
    assert_non_null(big);
    size_t at = 0;
    for (size_t i = 0; at < size; i = (i + 1) % json_array_size(texts)) {
        const char *t = text_at(i);
        size_t n = strlen(t);
        memcpy(big + at, t, n);
        at += n;
        big[at++] = '\n';
    }
    big[at] = '\0';
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, big, 0, &ids, &n));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    printf("encoding %zu bytes: %zu ids in %.3f s\n", at, n, seconds);
    assert_true(seconds < 5.0); /* generous: sanitizer builds and busy machines */
    char *back = NULL;
    size_t length = 0;
    CHECK_OK(clora_tokenizer_decode(tok, ids, n, &back, &length));
    assert_int_equal(length, at);
    assert_memory_equal(back, big, at);
    free(back);
    free(ids);
    free(big);
    clora_tokenizer_destroy(tok);
}

/* ---- errors ---------------------------------------------------------------------------------- */

static void set_regex(json_t *root)
{
    json_t *split = json_array_get(json_object_get(json_object_get(root, "pre_tokenizer"),
                                                   "pretokenizers"),
                                   0);
    json_object_set_new(json_object_get(split, "pattern"), "Regex", json_string("\\w+|\\s+"));
}

static void set_whitespace(json_t *root)
{
    json_object_set_new(root, "pre_tokenizer", json_pack("{s:s}", "type", "Whitespace"));
}

static void set_unigram(json_t *root)
{
    json_object_set_new(json_object_get(root, "model"), "type", json_string("Unigram"));
}

static void set_byte_fallback(json_t *root)
{
    json_object_set_new(json_object_get(root, "model"), "byte_fallback", json_true());
}

static void set_lowercase(json_t *root)
{
    json_object_set_new(root, "normalizer", json_pack("{s:s}", "type", "Lowercase"));
}

static void set_bad_merge(json_t *root)
{
    json_array_append_new(json_object_get(json_object_get(root, "model"), "merges"),
                          json_string("zzqx qqzz"));
}

static void set_decoder(json_t *root)
{
    json_object_set_new(root, "decoder", json_pack("{s:s}", "type", "WordPiece"));
}

static void set_prefix_space(json_t *root)
{
    json_t *byte_level = json_array_get(
        json_object_get(json_object_get(root, "pre_tokenizer"), "pretokenizers"), 1);
    json_object_set_new(byte_level, "add_prefix_space", json_true());
}

static void expect_refused(const char *variant, void (*edit)(json_t *), clora_status status,
                           const char *message)
{
    char dir[64];
    test_temp_dir(dir, "bpe");
    tokenizer_json(dir, variant, edit);
    clora_tokenizer *tok = NULL;
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), status);
    test_expect_message(message);
    assert_null(tok);
    test_remove_dir(dir);
}

static void errors(void **state)
{
    (void)state;
    expect_refused("llama3_style", set_regex, CLORA_ERR_UNSUPPORTED,
                   "pre-tokenizer pattern \\w+|\\s+ is not one clora knows");
    expect_refused("gpt2", set_whitespace, CLORA_ERR_UNSUPPORTED, "pre-tokenizer Whitespace");
    expect_refused("gpt2", set_unigram, CLORA_ERR_UNSUPPORTED, "a Unigram model");
    expect_refused("gpt2", set_byte_fallback, CLORA_ERR_UNSUPPORTED, "byte_fallback");
    expect_refused("gpt2", set_lowercase, CLORA_ERR_UNSUPPORTED, "normalizer Lowercase");
    expect_refused("gpt2", set_bad_merge, CLORA_ERR_FORMAT, "merge \"zzqx qqzz\"");
    expect_refused("gpt2", set_decoder, CLORA_ERR_UNSUPPORTED, "decoder WordPiece");
    expect_refused("smollm_style", set_prefix_space, CLORA_ERR_UNSUPPORTED,
                   "add_prefix_space after another");

    char dir[64];
    clora_tokenizer *tok = NULL;
    test_temp_dir(dir, "bpe");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_IO);
    test_expect_message("no tokenizer there");
    write_file(dir, "tokenizer.json", "{\"model\": ");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_FORMAT);
    test_expect_message("not valid JSON");
    write_file(dir, "tokenizer.json", "{\"version\": \"1.0\"}");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_FORMAT);
    test_expect_message("no \"model\" with a \"type\"");
    test_remove_dir(dir);

    /* merges.txt with a line that is not a pair */
    test_temp_dir(dir, "bpe");
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cp %s/gpt2_tokenizer/vocab.json %s/", GOLDEN, dir);
    assert_int_equal(system(cmd), 0);
    write_file(dir, "merges.txt", "#version: 0.2\n\xc4\xa0 t\nnospace\n");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_FORMAT);
    test_expect_message("merge \"nospace\" is not \"left right\"");
    test_remove_dir(dir);
    assert_null(tok);

    /* invalid UTF-8 to encode */
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    int32_t *ids = NULL;
    size_t n = 0;
    static const char *const bad[4] = {"ok \xff bad", "ok \xc3", "\xed\xa0\x80 surrogate",
                                       "\xc0\xaf overlong"};
    static const char *const where[4] = {"byte 3", "byte 3", "byte 0", "byte 0"};
    for (int i = 0; i < 4; ++i) {
        CHECK_STATUS(clora_tokenizer_encode_text(tok, bad[i], 0, &ids, &n),
                     CLORA_ERR_INVALID_ARGUMENT);
        test_expect_message(where[i]);
        assert_null(ids);
    }
    CHECK_STATUS(clora_tokenizer_encode_text(tok, NULL, 0, &ids, &n), CLORA_ERR_NULL_ARGUMENT);
    clora_tokenizer_destroy(tok);
}

static void gguf_errors(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_STATUS(clora_tokenizer_load_gguf(&tok, "/nonexistent.gguf"), CLORA_ERR_IO);
    CHECK_STATUS(clora_tokenizer_load_gguf(&tok, GOLDEN "/bpe_texts.json"), CLORA_ERR_FORMAT);
    /* a pre-tokenizer clora does not know, and a SentencePiece model:
     * the mini file with its strings changed in place (same lengths) */
    static const struct {
        const char *key, *from, *to, *message;
    } edits[2] = {
        {"tokenizer.ggml.pre", "gpt-2", "gpt-9",
         "tokenizer.ggml.pre \"gpt-9\" is a pre-tokenizer clora does not know"},
        {"tokenizer.ggml.model", "gpt2", "bert", "tokenizer.ggml.model \"bert\""},
    };
    static char bytes[1 << 17];
    for (int e = 0; e < 2; ++e) {
        FILE *f = fopen(GOLDEN "/mini_gpt-2.gguf", "rb");
        assert_non_null(f);
        size_t size = fread(bytes, 1, sizeof bytes, f);
        fclose(f);
        assert_true(size > 0 && size < sizeof bytes);
        /* the value follows its key (after its type and length) */
        const size_t key_len = strlen(edits[e].key), len = strlen(edits[e].from);
        char *v = NULL;
        for (size_t i = 0; i + key_len + 12 + len < size && !v; ++i)
            if (!memcmp(bytes + i, edits[e].key, key_len) &&
                !memcmp(bytes + i + key_len + 12, edits[e].from, len))
                v = bytes + i + key_len + 12;
        assert_non_null(v);
        memcpy(v, edits[e].to, len);
        char dir[64], path[128];
        test_temp_dir(dir, "bpe");
        snprintf(path, sizeof path, "%s/edited.gguf", dir);
        f = fopen(path, "wb");
        assert_non_null(f);
        fwrite(bytes, 1, size, f);
        fclose(f);
        CHECK_STATUS(clora_tokenizer_load_gguf(&tok, path), CLORA_ERR_UNSUPPORTED);
        test_expect_message(edits[e].message);
        assert_null(tok);
        test_remove_dir(dir);
    }
}

/* ---- chat templates -------------------------------------------------------------------------- */

static void chat_templates(void **state)
{
    (void)state;
    json_t *r = load(GOLDEN "/chat_reference.json");
    assert_non_null(r);
    json_t *list = json_object_get(r, "templates"), *t;
    size_t i, rendered = 0;
    json_array_foreach(list, i, t)
    {
        const char *name = json_string_value(json_object_get(t, "name"));
        const char *source = json_string_value(json_object_get(t, "template"));
        const char *format = json_string_value(json_object_get(t, "format"));
        const char *bos = json_string_value(json_object_get(t, "bos_token"));
        clora_chat_format got;
        if (!format) {
            CHECK_STATUS(clora_chat_template_recognize(source, &got), CLORA_ERR_UNSUPPORTED);
            test_expect_message("format the prompt yourself");
            continue;
        }
        CHECK_OK(clora_chat_template_recognize(source, &got));
        assert_int_equal(got, strcmp(format, "llama3") ? CLORA_CHAT_CHATML : CLORA_CHAT_LLAMA3);
        json_t *cases = json_object_get(t, "cases"), *c;
        size_t k;
        json_array_foreach(cases, k, c)
        {
            json_t *messages = json_object_get(c, "messages");
            clora_chat_message m[8];
            const size_t count = json_array_size(messages);
            assert_true(count <= 8);
            for (size_t j = 0; j < count; ++j) {
                m[j].role = json_string_value(json_object_get(json_array_get(messages, j), "role"));
                m[j].content =
                    json_string_value(json_object_get(json_array_get(messages, j), "content"));
            }
            char *text = NULL;
            CHECK_OK(clora_chat_apply(source, bos, m, count,
                                      json_is_true(json_object_get(c, "add_generation_prompt")),
                                      &text));
            const char *want = json_string_value(json_object_get(c, "text"));
            if (strcmp(text, want))
                fail_msg("%s, case %zu: clora writes \"%s\", Jinja2 \"%s\"", name, k, text, want);
            free(text);
            ++rendered;
        }
    }
    printf("chat templates: %zu renderings match Jinja2\n", rendered);
    assert_true(rendered >= 100);
    json_decref(r);

    /* through the tokenizer: the SmolLM2 file's template */
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load_gguf(&tok, GOLDEN "/smollm2_tokenizer.gguf"));
    const clora_chat_message hi[1] = {{"user", "Hi"}};
    char *text = NULL;
    CHECK_OK(clora_tokenizer_apply_chat(tok, hi, 1, 1, &text));
    assert_string_equal(text, "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, "
                              "trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                              "<|im_start|>assistant\n");
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, text, 0, &ids, &n));
    assert_int_equal(ids[0], 1); /* <|im_start|> whole */
    free(ids);
    free(text);
    clora_tokenizer_destroy(tok);
    CHECK_OK(clora_tokenizer_load(&tok, GOLDEN "/gpt2_tokenizer"));
    CHECK_STATUS(clora_tokenizer_apply_chat(tok, hi, 1, 1, &text), CLORA_ERR_NOT_FOUND);
    clora_tokenizer_destroy(tok);
    CHECK_STATUS(clora_chat_apply(NULL, NULL, hi, 1, 1, &text), CLORA_ERR_NULL_ARGUMENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gpt2_folder),
        cmocka_unit_test(gpt2_json),
        cmocka_unit_test(gpt2_prefix_space_json),
        cmocka_unit_test(smollm_style_json),
        cmocka_unit_test(llama3_style_json),
        cmocka_unit_test(qwen2_style_json),
        cmocka_unit_test(config_and_post_processor),
        cmocka_unit_test(smollm2_gguf),
        cmocka_unit_test(mini_gguf),
        cmocka_unit_test(decoding),
        cmocka_unit_test(speed),
        cmocka_unit_test(errors),
        cmocka_unit_test(gguf_errors),
        cmocka_unit_test(chat_templates),
        cmocka_unit_test(fingerprint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
