/* tokenizer_hf.c — Hugging Face's tokenizer files into a byte-level BPE
 * model: tokenizer.json (the tokenizers library's), and GPT-2's vocab.json
 * with merges.txt. Every part of a tokenizer.json that changes the ids is
 * read and checked against what clora computes; the rest (truncation,
 * padding, offsets) does not change them and is left alone. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

static const char *type_of(json_t *object)
{
    const char *type = json_string_value(json_object_get(object, "type"));
    return type ? type : "(no type)";
}

/* A boolean field: `fallback` when absent or null; -1 when not a boolean. */
static int flag(json_t *object, const char *key, int fallback)
{
    json_t *v = json_object_get(object, key);
    if (!v || json_is_null(v))
        return fallback;
    return json_is_boolean(v) ? json_is_true(v) : -1;
}

/* ---- the parts of a tokenizer.json ----------------------------------------------------------- */

static clora_status normalizer(json_t *n, const char *path, clora__bpe_config *config)
{
    if (!n || json_is_null(n))
        return CLORA_OK;
    const char *type = type_of(n);
    if (!strcmp(type, "NFC")) {
        config->nfc = 1;
        return CLORA_OK;
    }
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *each;
        size_t i;
        if (!json_is_array(list))
            return clora__fail(CLORA_ERR_FORMAT, "%s: a Sequence normalizer without a list", path);
        json_array_foreach(list, i, each)
        {
            clora_status status = normalizer(each, path, config);
            if (status != CLORA_OK)
                return status;
        }
        return CLORA_OK;
    }
    return clora__fail(CLORA_ERR_UNSUPPORTED,
                       "%s: normalizer %s; clora's byte-level BPE has none or NFC", path, type);
}

/* ByteLevel's options: its own GPT-2 pattern (use_regex) or none, and
 * add_prefix_space. */
static clora_status byte_level(json_t *p, const char *path, int *use_regex,
                               clora__bpe_config *config)
{
    int regex = flag(p, "use_regex", 1), prefix = flag(p, "add_prefix_space", 1);
    if (regex < 0 || prefix < 0)
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: the ByteLevel pre-tokenizer's use_regex and add_prefix_space "
                           "must be booleans",
                           path);
    *use_regex = regex;
    config->add_prefix_space = prefix;
    return CLORA_OK;
}

/* A Split with one of the known patterns, isolating its matches. */
static clora_status split(json_t *p, const char *path, clora__bpe_config *config)
{
    json_t *pattern = json_object_get(p, "pattern");
    const char *regex = json_string_value(json_object_get(pattern, "Regex"));
    const char *behavior = json_string_value(json_object_get(p, "behavior"));
    if (!regex) {
        const char *literal = json_string_value(json_object_get(pattern, "String"));
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a Split pre-tokenizer on the string \"%s\"; clora knows only "
                           "GPT-2's, Llama 3's and Qwen2's patterns",
                           path, literal ? literal : "?");
    }
    if (!clora__pattern_from_regex(regex, &config->pattern))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: pre-tokenizer pattern %s is not one clora knows (GPT-2's, "
                           "Llama 3's, Qwen2's, written exactly as those models do)",
                           path, regex);
    if (!behavior || strcmp(behavior, "Isolated") || flag(p, "invert", 0) != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a Split pre-tokenizer with behavior %s%s; clora isolates the "
                           "matches",
                           path, behavior ? behavior : "(none)",
                           flag(p, "invert", 0) ? " inverted" : "");
    return CLORA_OK;
}

static clora_status pre_tokenizer(json_t *p, const char *path, clora__bpe_config *config)
{
    const char *type = p && !json_is_null(p) ? type_of(p) : "null";
    int use_regex = 0;
    clora_status status;
    config->pattern = CLORA__PATTERN_GPT2;
    if (!strcmp(type, "ByteLevel")) {
        if ((status = byte_level(p, path, &use_regex, config)))
            return status;
        if (use_regex)
            return CLORA_OK;
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a ByteLevel pre-tokenizer without a pattern; clora splits the "
                           "text with one",
                           path);
    }
    if (strcmp(type, "Sequence"))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: pre-tokenizer %s; clora's byte-level BPE knows ByteLevel, and a "
                           "Sequence of Split or Digits with ByteLevel",
                           path, type);
    json_t *list = json_object_get(p, "pretokenizers");
    const size_t n = json_array_size(list);
    json_t *first = json_array_get(list, 0), *last = json_array_get(list, n - 1);
    if (n != 2 || strcmp(type_of(last), "ByteLevel"))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a Sequence pre-tokenizer of %zu parts ending in %s; clora knows "
                           "Split or Digits, then ByteLevel",
                           path, n, n ? type_of(last) : "nothing");
    if ((status = byte_level(last, path, &use_regex, config)))
        return status;
    config->after_split = 1;
    if (config->add_prefix_space) /* it would apply to every piece of the part before */
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a ByteLevel pre-tokenizer with add_prefix_space after another; "
                           "clora adds the space to the text, not to each piece",
                           path);
    const char *what = type_of(first);
    if (!strcmp(what, "Split")) {
        if ((status = split(first, path, config)))
            return status;
        if (use_regex)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: a Split, then a ByteLevel with its own pattern too; clora "
                               "knows one pattern",
                               path);
        return CLORA_OK;
    }
    if (!strcmp(what, "Digits")) {
        if (flag(first, "individual_digits", 0) != 1)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: a Digits pre-tokenizer without individual_digits; clora "
                               "splits digits one by one",
                               path);
        if (!use_regex)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: Digits, then ByteLevel without a pattern; clora knows "
                               "ByteLevel's GPT-2 pattern after Digits",
                               path);
        config->split_digits = 1;
        return CLORA_OK;
    }
    return clora__fail(CLORA_ERR_UNSUPPORTED,
                       "%s: pre-tokenizer %s before ByteLevel; clora knows Split and Digits", path,
                       what);
}

/* The model's fields that change the ids; clora computes these values. */
static clora_status model_options(json_t *model, const char *path, clora__bpe_config *config)
{
    static const char *const empty[2] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; ++i) {
        json_t *v = json_object_get(model, empty[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && !*json_string_value(v)))
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: the BPE model has a %s; clora's has none", path, empty[i]);
    }
    json_t *dropout = json_object_get(model, "dropout");
    if (dropout && !json_is_null(dropout) && json_number_value(dropout) != 0.0)
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: BPE dropout; clora's merges are exact",
                           path);
    if (flag(model, "byte_fallback", 0) != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a BPE model with byte_fallback (SentencePiece style); clora reads "
                           "byte-level BPE",
                           path);
    int ignore = flag(model, "ignore_merges", 0);
    if (ignore < 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"ignore_merges\" must be a boolean", path);
    config->ignore_merges = ignore;
    return CLORA_OK;
}

static clora_status decoder(json_t *d, const char *path)
{
    const char *type = d && !json_is_null(d) ? type_of(d) : "null";
    if (strcmp(type, "ByteLevel"))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: decoder %s; clora decodes byte-level BPE with ByteLevel's table",
                           path, type);
    return CLORA_OK;
}

static clora_status vocabulary(clora_tokenizer *t, json_t *vocab, const char *path)
{
    if (!json_is_object(vocab))
        return clora__fail(CLORA_ERR_FORMAT, "%s: the vocabulary is not an object", path);
    const char *token;
    json_t *id;
    json_object_foreach(vocab, token, id)
    {
        json_int_t v = json_integer_value(id);
        if (!json_is_integer(id) || v < 0 || v > INT32_MAX)
            return clora__fail(CLORA_ERR_FORMAT, "%s: token \"%s\" has no id (0 to %d)", path,
                               token, INT32_MAX);
        /* jansson keys end at a NUL; tokens never hold one */
        clora_status status = clora__vocab_set(&t->vocab, (int32_t)v, token, strlen(token));
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

static clora_status merges(clora_tokenizer *t, json_t *list, const char *path)
{
    if (!json_is_array(list))
        return clora__fail(CLORA_ERR_FORMAT, "%s: the merges are not a list", path);
    size_t i;
    json_t *merge;
    json_array_foreach(list, i, merge)
    {
        clora_status status;
        if (json_is_string(merge)) {
            status = clora__bpe_add_merge_line(t, json_string_value(merge),
                                               json_string_length(merge), path);
        } else if (json_array_size(merge) == 2 && json_is_string(json_array_get(merge, 0)) &&
                   json_is_string(json_array_get(merge, 1))) {
            json_t *a = json_array_get(merge, 0), *b = json_array_get(merge, 1);
            status = clora__bpe_add_merge(t, json_string_value(a), json_string_length(a),
                                          json_string_value(b), json_string_length(b), path);
        } else {
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: merge %zu is neither \"left right\" nor [left, right]",
                                 path, i);
        }
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

static clora_status added_tokens(clora_tokenizer *t, json_t *list, const char *path)
{
    if (!list || json_is_null(list))
        return CLORA_OK;
    if (!json_is_array(list))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"added_tokens\" is not a list", path);
    size_t i;
    json_t *a;
    json_array_foreach(list, i, a)
    {
        json_t *id = json_object_get(a, "id");
        const char *content = json_string_value(json_object_get(a, "content"));
        if (!json_is_integer(id) || json_integer_value(id) < 0 ||
            json_integer_value(id) > INT32_MAX || !content || !*content)
            return clora__fail(CLORA_ERR_FORMAT, "%s: added token %zu has no id or no content",
                               path, i);
        if (flag(a, "single_word", 0) != 0)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: added token \"%s\" is single_word; clora matches added "
                               "tokens anywhere",
                               path, content);
        const int32_t v = (int32_t)json_integer_value(id);
        clora_status status = CLORA_OK;
        if (clora__vocab_find(&t->vocab, content, strlen(content)) != v)
            status = clora__vocab_set(&t->vocab, v, content, strlen(content));
        if (status == CLORA_OK)
            status = clora__bpe_add_matched(t, v, flag(a, "special", 0) == 1,
                                            flag(a, "lstrip", 0) == 1, flag(a, "rstrip", 0) == 1);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

/* The id of a special token a post-processor names. */
static clora_status processor_token(clora_tokenizer *t, const char *text, const char *path,
                                    int32_t *id)
{
    *id = text ? clora__vocab_find(&t->vocab, text, strlen(text)) : -1;
    if (*id < 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: the post-processor's token \"%s\" is not in the "
                                             "vocabulary",
                           path, text ? text : "?");
    return clora__tokenizer_mark(t, *id, CLORA__TOKEN_SPECIAL);
}

/* BOS / EOS as the post-processor adds them to one sequence. */
static clora_status post_processor(clora_tokenizer *t, json_t *p, const char *path)
{
    const char *type = p && !json_is_null(p) ? type_of(p) : "null";
    clora_status status = CLORA_OK;
    if (!strcmp(type, "null") || !strcmp(type, "ByteLevel"))
        return CLORA_OK;
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "processors"), *each;
        size_t i;
        json_array_foreach(list, i, each)
        {
            if ((status = post_processor(t, each, path)))
                return status;
        }
        return CLORA_OK;
    }
    if (!strcmp(type, "RobertaProcessing") || !strcmp(type, "BertProcessing")) {
        const char *cls = json_string_value(json_array_get(json_object_get(p, "cls"), 0));
        const char *sep = json_string_value(json_array_get(json_object_get(p, "sep"), 0));
        if ((status = processor_token(t, cls, path, &t->bos)) ||
            (status = processor_token(t, sep, path, &t->eos)))
            return status;
        t->add_bos = t->add_eos = 1;
        return CLORA_OK;
    }
    if (strcmp(type, "TemplateProcessing"))
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: post-processor %s", path, type);
    /* "single": [SpecialToken]?, Sequence A, [SpecialToken]? */
    json_t *single = json_object_get(p, "single");
    const size_t n = json_array_size(single);
    size_t a = n;
    for (size_t i = 0; i < n; ++i)
        if (json_object_get(json_array_get(single, i), "Sequence"))
            a = i;
    if (a == n || a > 1 || n - a > 2)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: a TemplateProcessing post-processor other than [BOS] $A [EOS]",
                           path);
    json_t *specials = json_object_get(p, "special_tokens");
    for (size_t i = 0; i < n; ++i) {
        if (i == a)
            continue;
        const char *name = json_string_value(
            json_object_get(json_object_get(json_array_get(single, i), "SpecialToken"), "id"));
        json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids");
        if (!name || json_array_size(ids) != 1)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: a TemplateProcessing token other than one special token",
                               path);
        const char *text = json_string_value(json_array_get(
            json_object_get(json_object_get(specials, name), "tokens"), 0));
        int32_t id = -1;
        if ((status = processor_token(t, text ? text : name, path, &id)))
            return status;
        if (i < a) {
            t->bos = id;
            t->add_bos = 1;
        } else {
            t->eos = id;
            t->add_eos = 1;
        }
    }
    return CLORA_OK;
}

clora_status clora__hf_tokenizer_json(clora_tokenizer *t, const char *path, json_t *root)
{
    clora__bpe_config config;
    memset(&config, 0, sizeof config);
    json_t *model = json_object_get(root, "model");
    clora_status status = normalizer(json_object_get(root, "normalizer"), path, &config);
    if (status == CLORA_OK)
        status = pre_tokenizer(json_object_get(root, "pre_tokenizer"), path, &config);
    if (status == CLORA_OK)
        status = model_options(model, path, &config);
    if (status == CLORA_OK)
        status = decoder(json_object_get(root, "decoder"), path);
    if (status == CLORA_OK)
        status = clora__bpe_init(t, &config);
    if (status == CLORA_OK)
        status = vocabulary(t, json_object_get(model, "vocab"), path);
    if (status == CLORA_OK)
        status = merges(t, json_object_get(model, "merges"), path);
    if (status == CLORA_OK)
        status = added_tokens(t, json_object_get(root, "added_tokens"), path);
    if (status == CLORA_OK)
        status = post_processor(t, json_object_get(root, "post_processor"), path);
    return status;
}

/* ---- vocab.json + merges.txt ---------------------------------------------------------------- */

static clora_status merges_file(clora_tokenizer *t, const char *path)
{
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(path, &text, &size);
    char *line = text;
    while (status == CLORA_OK && line < text + size) {
        char *end = memchr(line, '\n', (size_t)(text + size - line));
        size_t n = end ? (size_t)(end - line) : (size_t)(text + size - line);
        if (n > 0 && line[n - 1] == '\r')
            --n;
        if (n > 0 && !(n >= 8 && !memcmp(line, "#version", 8)))
            status = clora__bpe_add_merge_line(t, line, n, path);
        line = end ? end + 1 : text + size;
    }
    free(text);
    return status;
}

clora_status clora__hf_vocab_merges(clora_tokenizer *t, const char *vocab_path,
                                    const char *merges_path)
{
    clora__bpe_config config;
    memset(&config, 0, sizeof config);
    config.pattern = CLORA__PATTERN_GPT2;
    json_t *vocab = NULL;
    clora_status status = clora__bpe_init(t, &config);
    if (status == CLORA_OK)
        status = clora__read_json(vocab_path, &vocab);
    if (status == CLORA_OK)
        status = vocabulary(t, vocab, vocab_path);
    json_decref(vocab);
    if (status == CLORA_OK)
        status = merges_file(t, merges_path);
    /* GPT2Tokenizer's defaults: <|endoftext|> begins, ends and stands in */
    int32_t end = clora__vocab_find(&t->vocab, "<|endoftext|>", 13);
    if (status == CLORA_OK && end >= 0) {
        t->bos = t->eos = t->unk = end;
        status = clora__bpe_add_matched(t, end, 1, 0, 0);
    }
    return status;
}
