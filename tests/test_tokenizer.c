/* test_tokenizer.c — WordPiece against the ids Hugging Face's
 * BertTokenizer gives (tests/golden/make_tokenizer_golden.py), the model
 * folder's tokenizer_config.json, the calls every kind shares (decoding
 * included), and errors. Host-only: no device. (Byte-level BPE:
 * test_bpe.c.) */
#include "support.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOLDEN CLORA_TEST_GOLDEN_DIR

static json_t *reference;

static int setup(void **state)
{
    (void)state;
    json_error_t error;
    reference = json_load_file(GOLDEN "/tokenizer_reference.json", 0, &error);
    if (!reference) {
        fprintf(stderr, "tokenizer_reference.json: %s (line %d)\n", error.text, error.line);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    json_decref(reference);
    return 0;
}

static clora_wordpiece_options options_named(const char *name)
{
    json_t *list = json_object_get(reference, "options"), *o;
    size_t i;
    json_array_foreach(list, i, o)
    {
        if (strcmp(json_string_value(json_object_get(o, "name")), name) != 0)
            continue;
        clora_wordpiece_options opts = clora_wordpiece_options_default();
        json_t *strip = json_object_get(o, "strip_accents");
        opts.lower_case = json_is_true(json_object_get(o, "do_lower_case"));
        opts.strip_accents = json_is_null(strip) ? -1 : json_is_true(strip);
        opts.tokenize_chinese_chars = json_is_true(json_object_get(o, "tokenize_chinese_chars"));
        return opts;
    }
    fail_msg("no option set %s", name);
    return clora_wordpiece_options_default();
}

static void expect_ids(const char *what, const char *text, const int32_t *got, size_t n,
                       json_t *want)
{
    int same = n == json_array_size(want);
    for (size_t i = 0; same && i < n; ++i)
        same = got[i] == json_integer_value(json_array_get(want, i));
    if (!same) {
        char line[1024];
        size_t used = 0;
        for (size_t i = 0; i < n && used < sizeof line - 16; ++i)
            used += (size_t)snprintf(line + used, sizeof line - used, "%d ", (int)got[i]);
        line[used] = '\0';
        char *expected = json_dumps(want, JSON_COMPACT);
        fail_msg("%s of \"%s\": got [%s], Python gives %s", what, text, line, expected);
    }
}

static void against_python(void **state)
{
    (void)state;
    const size_t max_length = (size_t)json_integer_value(json_object_get(reference, "max_length"));
    json_t *cases = json_object_get(reference, "cases"), *c;
    size_t i, compared = 0;
    clora_tokenizer *tok = NULL;
    const char *loaded = "";
    json_array_foreach(cases, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "options"));
        const char *text = json_string_value(json_object_get(c, "text"));
        if (strcmp(name, loaded) != 0) {
            clora_tokenizer_destroy(tok);
            const clora_wordpiece_options opts = options_named(name);
            CHECK_OK(clora_tokenizer_load_vocab(&tok, GOLDEN "/wordpiece_vocab.txt", &opts));
            loaded = name;
        }
        int32_t *ids = NULL;
        size_t count = 0;
        CHECK_OK(clora_tokenizer_tokenize(tok, text, &ids, &count));
        expect_ids(name, text, ids, count, json_object_get(c, "ids"));
        free(ids);

        int32_t enc[64], mask[64];
        size_t length = 0;
        int truncated = -1;
        assert_true(max_length <= 64);
        CHECK_OK(clora_tokenizer_encode(tok, text, max_length, enc, mask, &length, &truncated));
        expect_ids(name, text, enc, max_length, json_object_get(c, "encoded_ids"));
        expect_ids(name, text, mask, max_length, json_object_get(c, "encoded_mask"));
        assert_int_equal(truncated, count > max_length - 2);
        assert_int_equal(length, (count < max_length - 2 ? count : max_length - 2) + 2);
        ++compared;
    }
    assert_true(compared >= 80);
    clora_tokenizer_destroy(tok);
}

static void vocabulary(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load_vocab(&tok, GOLDEN "/wordpiece_vocab.txt", NULL));
    assert_int_equal(clora_tokenizer_vocab_size(tok), 152);
    assert_int_equal(clora_tokenizer_token_id(tok, "[CLS]"), 2);
    assert_int_equal(clora_tokenizer_token_id(tok, "##aff"), clora_tokenizer_token_id(tok, "##aff"));
    assert_int_equal(clora_tokenizer_token_id(tok, "not-there"), -1);
    assert_string_equal(clora_tokenizer_token(tok, 2), "[CLS]");
    assert_null(clora_tokenizer_token(tok, 152));
    assert_null(clora_tokenizer_token(tok, -1));
    assert_int_equal(clora_tokenizer_max_length(tok), 512);
    clora_tokenizer_destroy(tok);
}

/* A folder with the test vocabulary and a tokenizer_config.json. */
static void folder_with_config(char *dir, const char *config)
{
    test_temp_dir(dir, "tok");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s/wordpiece_vocab.txt %s/vocab.txt", GOLDEN, dir);
    assert_int_equal(system(cmd), 0);
    if (config) {
        snprintf(cmd, sizeof cmd, "%s/tokenizer_config.json", dir);
        FILE *f = fopen(cmd, "w");
        assert_non_null(f);
        fputs(config, f);
        fclose(f);
    }
}

static void folder_config(void **state)
{
    (void)state;
    char dir[64];
    clora_tokenizer *tok = NULL;
    int32_t *ids = NULL;
    size_t count = 0;

    /* cased, as the config says: "Hello" is its own entry */
    folder_with_config(dir, "{\"do_lower_case\": false, \"model_max_length\": 128, "
                            "\"tokenizer_class\": \"BertTokenizer\"}");
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    assert_int_equal(clora_tokenizer_max_length(tok), 128);
    CHECK_OK(clora_tokenizer_tokenize(tok, "Hello", &ids, &count));
    assert_int_equal(count, 1);
    assert_int_equal(ids[0], clora_tokenizer_token_id(tok, "Hello"));
    free(ids);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);

    /* no config: uncased defaults; Hugging Face's "no limit" number */
    folder_with_config(dir, NULL);
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    CHECK_OK(clora_tokenizer_tokenize(tok, "Hello", &ids, &count));
    assert_int_equal(ids[0], clora_tokenizer_token_id(tok, "hello"));
    free(ids);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);
    folder_with_config(dir, "{\"model_max_length\": 1000000000000000019884624838656}");
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    assert_int_equal(clora_tokenizer_max_length(tok), 0);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);

    /* a BERT folder's tokenizer.json (a WordPiece model) defers to vocab.txt */
    folder_with_config(dir, NULL);
    char json_path[128];
    snprintf(json_path, sizeof json_path, "%s/tokenizer.json", dir);
    FILE *f = fopen(json_path, "w");
    assert_non_null(f);
    fputs("{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}", f);
    fclose(f);
    CHECK_OK(clora_tokenizer_load(&tok, dir));
    assert_int_equal(clora_tokenizer_get_kind(tok), CLORA_TOKENIZER_WORDPIECE);
    assert_int_equal(clora_tokenizer_vocab_size(tok), 152);
    clora_tokenizer_destroy(tok);
    tok = NULL;
    snprintf(json_path, sizeof json_path, "%s/vocab.txt", dir);
    assert_int_equal(remove(json_path), 0);
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_UNSUPPORTED);
    test_expect_message("a WordPiece model; clora reads byte-level BPE, and WordPiece from "
                        "vocab.txt");
    test_remove_dir(dir);

    folder_with_config(dir, "{\"tokenizer_class\": \"GPT2Tokenizer\"}");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_UNSUPPORTED);
    test_expect_message("GPT2Tokenizer");
    test_remove_dir(dir);
    folder_with_config(dir, "{\"do_lower_case\": 1}");
    CHECK_STATUS(clora_tokenizer_load(&tok, dir), CLORA_ERR_FORMAT);
    test_expect_message("do_lower_case");
    test_remove_dir(dir);
    assert_null(tok);
}

static void errors(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_STATUS(clora_tokenizer_load_vocab(&tok, "/nonexistent/vocab.txt", NULL), CLORA_ERR_IO);
    CHECK_STATUS(clora_tokenizer_load(&tok, "/nonexistent"), CLORA_ERR_IO);

    char dir[64], path[128];
    test_temp_dir(dir, "tok");
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[PAD]\n[UNK]\n[CLS]\nhello\n", f); /* no [SEP] */
    fclose(f);
    CHECK_STATUS(clora_tokenizer_load_vocab(&tok, path, NULL), CLORA_ERR_FORMAT);
    test_expect_message("[SEP]");
    test_remove_dir(dir);
    assert_null(tok);

    CHECK_OK(clora_tokenizer_load_vocab(&tok, GOLDEN "/wordpiece_vocab.txt", NULL));
    int32_t *ids = NULL;
    size_t count = 0;
    CHECK_STATUS(clora_tokenizer_tokenize(tok, "ok \xff\xfe bad", &ids, &count),
                 CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("byte 3");
    int32_t enc[4];
    CHECK_STATUS(clora_tokenizer_encode(tok, "hello", 1, enc, NULL, NULL, NULL),
                 CLORA_ERR_INVALID_ARGUMENT);
    CHECK_OK(clora_tokenizer_encode(tok, "hello world", 2, enc, NULL, NULL, NULL));
    assert_int_equal(enc[0], clora_tokenizer_token_id(tok, "[CLS]"));
    assert_int_equal(enc[1], clora_tokenizer_token_id(tok, "[SEP]"));
    CHECK_STATUS(clora_tokenizer_tokenize(tok, NULL, &ids, &count), CLORA_ERR_NULL_ARGUMENT);
    clora_tokenizer_destroy(tok);
    clora_tokenizer_destroy(NULL);
}

/* The calls every tokenizer kind has: [CLS] / [SEP] as BOS / EOS, and
 * decoding by joining the pieces. */
static void common_calls(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL;
    CHECK_OK(clora_tokenizer_load_vocab(&tok, GOLDEN "/wordpiece_vocab.txt", NULL));
    assert_int_equal(clora_tokenizer_get_kind(tok), CLORA_TOKENIZER_WORDPIECE);
    const int32_t cls = clora_tokenizer_token_id(tok, "[CLS]");
    const int32_t sep = clora_tokenizer_token_id(tok, "[SEP]");
    assert_int_equal(clora_tokenizer_bos(tok), cls);
    assert_int_equal(clora_tokenizer_eos(tok), sep);
    assert_int_equal(clora_tokenizer_pad(tok), clora_tokenizer_token_id(tok, "[PAD]"));
    assert_true(clora_tokenizer_adds_bos(tok) && clora_tokenizer_adds_eos(tok));
    assert_true(clora_tokenizer_is_special(tok, cls));
    assert_true(clora_tokenizer_is_special(tok, clora_tokenizer_token_id(tok, "[MASK]")));
    assert_false(clora_tokenizer_is_special(tok, clora_tokenizer_token_id(tok, "hello")));
    assert_null(clora_tokenizer_chat_template(tok));

    int32_t *ids = NULL;
    size_t n = 0;
    CHECK_OK(clora_tokenizer_encode_text(tok, "Hello, world [MASK]", 1, &ids, &n));
    assert_true(n >= 4);
    assert_int_equal(ids[0], cls);
    assert_int_equal(ids[n - 1], sep);
    char *text = NULL;
    size_t length = 0;
    CHECK_OK(clora_tokenizer_decode(tok, ids, n, &text, &length));
    assert_string_equal(text, "[CLS] hello , world [MASK] [SEP]");
    assert_int_equal(length, strlen(text));
    free(text);
    CHECK_OK(clora_tokenizer_decode_flags(tok, ids, n, CLORA_DECODE_SKIP_SPECIAL, &text, NULL));
    assert_string_equal(text, "hello , world");
    free(text);
    free(ids);
    /* continuations glue to the piece before */
    const int32_t pieces[3] = {clora_tokenizer_token_id(tok, "hello"),
                               clora_tokenizer_token_id(tok, "##s"),
                               clora_tokenizer_token_id(tok, "world")};
    CHECK_OK(clora_tokenizer_decode(tok, pieces, 3, &text, NULL));
    assert_string_equal(text, "hellos world");
    free(text);
    const int32_t bad[1] = {152};
    CHECK_STATUS(clora_tokenizer_decode(tok, bad, 1, &text, NULL), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("token id 152 (at 0) is outside the vocabulary (ids 0 to 151)");
    clora_tokenizer_destroy(tok);
}

/* The vocabulary's fingerprint: as clora/tokenizer.h defines it, the same
 * whatever the options, another for another vocabulary. */
static void fingerprint(void **state)
{
    (void)state;
    clora_tokenizer *tok = NULL, *cased = NULL;
    CHECK_OK(clora_tokenizer_load_vocab(&tok, GOLDEN "/wordpiece_vocab.txt", NULL));
    char got[17], want[17], other[17];
    CHECK_OK(clora_tokenizer_fingerprint(tok, got));
    test_fingerprint(tok, NULL, 0, want);
    assert_string_equal(got, want);
    assert_int_equal(strspn(got, "0123456789abcdef"), 16);
    clora_wordpiece_options options = clora_wordpiece_options_default();
    options.lower_case = 0;
    CHECK_OK(clora_tokenizer_load_vocab(&cased, GOLDEN "/wordpiece_vocab.txt", &options));
    CHECK_OK(clora_tokenizer_fingerprint(cased, other));
    assert_string_equal(got, other);
    clora_tokenizer_destroy(cased);
    CHECK_STATUS(clora_tokenizer_fingerprint(NULL, other), CLORA_ERR_NULL_ARGUMENT);
    CHECK_STATUS(clora_tokenizer_fingerprint(tok, NULL), CLORA_ERR_NULL_ARGUMENT);
    clora_tokenizer_destroy(tok);

    /* one token spelt otherwise: another fingerprint */
    char dir[64], path[128];
    test_temp_dir(dir, "tok");
    snprintf(path, sizeof path, "%s/vocab.txt", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n", f);
    fclose(f);
    CHECK_OK(clora_tokenizer_load_vocab(&tok, path, NULL));
    CHECK_OK(clora_tokenizer_fingerprint(tok, got));
    clora_tokenizer_destroy(tok);
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhullo\n", f);
    fclose(f);
    CHECK_OK(clora_tokenizer_load_vocab(&tok, path, NULL));
    CHECK_OK(clora_tokenizer_fingerprint(tok, other));
    assert_string_not_equal(got, other);
    clora_tokenizer_destroy(tok);
    test_remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(against_python),
        cmocka_unit_test(vocabulary),
        cmocka_unit_test(folder_config),
        cmocka_unit_test(errors),
        cmocka_unit_test(common_calls),
        cmocka_unit_test(fingerprint),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
