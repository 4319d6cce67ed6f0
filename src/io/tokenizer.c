/* tokenizer.c — the front of the tokenizers (clora/tokenizer.h), above
 * the kinds: loading a model folder by what it holds, vocab.txt and GGUF
 * files, tokenizer_config.json, BOS / EOS / padding, and the public calls,
 * which reach the kind (WordPiece, byte-level BPE) through its table. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <utf8proc.h>

#include "io/io.h"

/* ---- tokenizer_config.json ---------------------------------------------------------------- */

/* The text of a token tokenizer_config.json names: a string, or an
 * AddedToken object's "content"; NULL otherwise. */
static const char *token_text(json_t *v)
{
    if (json_is_object(v))
        v = json_object_get(v, "content");
    return json_string_value(v);
}

/* "model_max_length": Hugging Face writes "no limit" as 1e30 in integer
 * digits, so the file is read with numbers as doubles. */
static void config_max_length(json_t *config, size_t *out)
{
    json_t *max = json_object_get(config, "model_max_length");
    if (json_is_number(max) && json_number_value(max) >= 1.0)
        *out = json_number_value(max) < 1e9 ? (size_t)json_number_value(max) : 0;
}

/* bos_token and the like: the id of the text it names (marked special and
 * matched in the text), -1 for null; untouched when absent. */
static clora_status config_special(clora_tokenizer *t, json_t *config, const char *key,
                                   const char *path, int32_t *id)
{
    json_t *v = json_object_get(config, key);
    if (!v)
        return CLORA_OK;
    if (json_is_null(v)) {
        *id = -1;
        return CLORA_OK;
    }
    const char *text = token_text(v);
    if (!text)
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be a string, a token object or null",
                           path, key);
    int32_t found = clora__vocab_find(&t->vocab, text, strlen(text));
    if (found < 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: %s \"%s\" is not in the vocabulary", path, key,
                           text);
    *id = found;
    return clora__bpe_add_matched(t, found, 1, 0, 0);
}

static clora_status config_bool(json_t *config, const char *key, const char *path, int *out)
{
    json_t *v = json_object_get(config, key);
    if (!v || json_is_null(v))
        return CLORA_OK;
    if (!json_is_boolean(v))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be true, false or null", path, key);
    *out = json_is_true(v);
    return CLORA_OK;
}

/* "chat_template": a string, or a list of named templates ("default" is
 * the one). */
static clora_status config_chat_template(clora_tokenizer *t, json_t *config, const char *path)
{
    json_t *v = json_object_get(config, "chat_template");
    const char *text = json_string_value(v);
    if (json_is_array(v)) {
        size_t i;
        json_t *entry;
        json_array_foreach(v, i, entry)
        {
            const char *name = json_string_value(json_object_get(entry, "name"));
            if (name && !strcmp(name, "default"))
                text = json_string_value(json_object_get(entry, "template"));
        }
    }
    if (!v || json_is_null(v) || (!text && json_is_array(v)))
        return CLORA_OK;
    if (!text)
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"chat_template\" must be a string", path);
    free(t->chat_template);
    t->chat_template = clora__strdup(text);
    return t->chat_template ? CLORA_OK
                            : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading %s", path);
}

/* "added_tokens_decoder": {"50256": {"content": ..., "special": true, ...}}. */
static clora_status config_added_tokens(clora_tokenizer *t, json_t *config, const char *path)
{
    json_t *added = json_object_get(config, "added_tokens_decoder");
    if (!added || json_is_null(added))
        return CLORA_OK;
    if (!json_is_object(added))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"added_tokens_decoder\" must be an object",
                           path);
    const char *key;
    json_t *entry;
    json_object_foreach(added, key, entry)
    {
        char *end = NULL;
        long id = strtol(key, &end, 10);
        const char *text = token_text(entry);
        if (!*key || *end || id < 0 || id > INT32_MAX || !text)
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: added_tokens_decoder entry \"%s\" is not an id with a content",
                               path, key);
        if (json_is_true(json_object_get(entry, "single_word")))
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "%s: added token \"%s\" is single_word; clora matches added "
                               "tokens anywhere",
                               path, text);
        int32_t have = clora__vocab_find(&t->vocab, text, strlen(text));
        clora_status status = CLORA_OK;
        if (have != (int32_t)id)
            status = clora__vocab_set(&t->vocab, (int32_t)id, text, strlen(text));
        if (status == CLORA_OK)
            status = clora__bpe_add_matched(t, (int32_t)id,
                                            !json_is_false(json_object_get(entry, "special")),
                                            json_is_true(json_object_get(entry, "lstrip")),
                                            json_is_true(json_object_get(entry, "rstrip")));
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

/* What tokenizer_config.json says about a BPE tokenizer; it is optional. */
static clora_status bpe_config(clora_tokenizer *t, const char *dir)
{
    char path[4096];
    clora_status status = clora__join_path(path, sizeof path, dir, "tokenizer_config.json");
    FILE *probe = status == CLORA_OK ? fopen(path, "rb") : NULL;
    if (!probe)
        return status;
    fclose(probe);
    json_t *config = NULL;
    if ((status = clora__read_json_flags(path, JSON_DECODE_INT_AS_REAL, &config)))
        return status;
    config_max_length(config, &t->max_length);
    if (status == CLORA_OK)
        status = config_added_tokens(t, config, path);
    if (status == CLORA_OK)
        status = config_special(t, config, "bos_token", path, &t->bos);
    if (status == CLORA_OK)
        status = config_special(t, config, "eos_token", path, &t->eos);
    if (status == CLORA_OK)
        status = config_special(t, config, "pad_token", path, &t->pad);
    if (status == CLORA_OK)
        status = config_special(t, config, "unk_token", path, &t->unk);
    if (status == CLORA_OK)
        status = config_bool(config, "add_bos_token", path, &t->add_bos);
    if (status == CLORA_OK)
        status = config_bool(config, "add_eos_token", path, &t->add_eos);
    if (status == CLORA_OK)
        status = config_chat_template(t, config, path);
    int prefix = -1;
    if (status == CLORA_OK)
        status = config_bool(config, "add_prefix_space", path, &prefix);
    if (status == CLORA_OK && prefix >= 0)
        status = clora__bpe_prefix_space(t, prefix, path);
    json_decref(config);
    return status;
}

/* ---- loading ------------------------------------------------------------------------------- */

static int exists(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

/* The model type of a tokenizer.json ("BPE", "WordPiece"...), read in full
 * into *root. */
static clora_status read_tokenizer_json(const char *path, json_t **root, const char **type)
{
    clora_status status = clora__read_json(path, root);
    if (status != CLORA_OK)
        return status;
    *type = json_string_value(json_object_get(json_object_get(*root, "model"), "type"));
    if (!*type)
        return clora__fail(CLORA_ERR_FORMAT, "%s: no \"model\" with a \"type\"", path);
    return CLORA_OK;
}

static clora_status load_bpe_folder(clora_tokenizer *t, const char *dir, const char *json_path,
                                    json_t *root, const char *vocab_json, const char *merges)
{
    clora_status status = root ? clora__hf_tokenizer_json(t, json_path, root)
                               : clora__hf_vocab_merges(t, vocab_json, merges);
    if (status == CLORA_OK)
        status = bpe_config(t, dir);
    if (status == CLORA_OK)
        status = clora__bpe_finish(t);
    return status;
}

clora_status clora_tokenizer_load(clora_tokenizer **out, const char *dir)
{
    if (!out || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_load: %s is NULL",
                           out ? "dir" : "out");
    *out = NULL;
    char json_path[4096], vocab_json[4096], merges[4096], vocab_txt[4096], config_path[4096];
    clora_status status;
    if ((status = clora__join_path(json_path, sizeof json_path, dir, "tokenizer.json")) ||
        (status = clora__join_path(vocab_json, sizeof vocab_json, dir, "vocab.json")) ||
        (status = clora__join_path(merges, sizeof merges, dir, "merges.txt")) ||
        (status = clora__join_path(vocab_txt, sizeof vocab_txt, dir, "vocab.txt")) ||
        (status = clora__join_path(config_path, sizeof config_path, dir, "tokenizer_config.json")))
        return status;
    struct stat folder;
    if (stat(dir, &folder) != 0 || !S_ISDIR(folder.st_mode))
        return clora__fail(CLORA_ERR_IO,
                           "%s: %s (a tokenizer's folder holds tokenizer.json, vocab.json with "
                           "merges.txt, or vocab.txt)",
                           dir, stat(dir, &folder) != 0 ? "no such folder" : "not a folder");
    json_t *root = NULL;
    int bpe = 0;
    if (exists(json_path)) {
        const char *type = NULL;
        if ((status = read_tokenizer_json(json_path, &root, &type))) {
            json_decref(root);
            return status;
        }
        bpe = !strcmp(type, "BPE");
        if (!bpe && !(exists(vocab_txt) && !strcmp(type, "WordPiece"))) {
            status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                 "%s: a %s model; clora reads byte-level BPE, and WordPiece "
                                 "from vocab.txt",
                                 json_path, type);
            json_decref(root);
            return status;
        }
        if (!bpe) {
            json_decref(root);
            root = NULL;
        }
    } else if (exists(vocab_json) && exists(merges)) {
        bpe = 1;
    } else if (!exists(vocab_txt)) {
        return clora__fail(CLORA_ERR_IO,
                           "%s: no tokenizer there (tokenizer.json, vocab.json with merges.txt, "
                           "or vocab.txt)",
                           dir);
    }
    if (!bpe) {
        clora_wordpiece_options options = clora_wordpiece_options_default();
        if (exists(config_path)) {
            json_t *config = NULL;
            if ((status = clora__read_json_flags(config_path, JSON_DECODE_INT_AS_REAL, &config)))
                return status;
            status = clora__wordpiece_config(config, config_path, &options);
            json_decref(config);
            if (status != CLORA_OK)
                return status;
        }
        return clora_tokenizer_load_vocab(out, vocab_txt, &options);
    }
    clora_tokenizer *t = clora__tokenizer_new();
    if (!t) {
        json_decref(root);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_tokenizer_load");
    }
    status = load_bpe_folder(t, dir, json_path, root, vocab_json, merges);
    json_decref(root);
    if (status != CLORA_OK) {
        clora_tokenizer_destroy(t);
        return status;
    }
    *out = t;
    return CLORA_OK;
}

clora_status clora_tokenizer_load_vocab(clora_tokenizer **out, const char *vocab_path,
                                        const clora_wordpiece_options *options)
{
    if (!out || !vocab_path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_load_vocab: %s is NULL",
                           out ? "vocab_path" : "out");
    *out = NULL;
    clora_tokenizer *t = clora__tokenizer_new();
    if (!t)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_tokenizer_load_vocab");
    clora_status status = clora__wordpiece_init(t, vocab_path, options);
    if (status != CLORA_OK) {
        clora_tokenizer_destroy(t);
        return status;
    }
    *out = t;
    return CLORA_OK;
}

clora_status clora_tokenizer_load_gguf(clora_tokenizer **out, const char *path)
{
    if (!out || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_load_gguf: %s is NULL",
                           out ? "path" : "out");
    *out = NULL;
    clora_gguf *g = NULL;
    clora_status status = clora_gguf_open(&g, path);
    if (status != CLORA_OK)
        return status;
    clora_tokenizer *t = clora__tokenizer_new();
    status = t ? clora__gguf_tokenizer(t, g, path)
               : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_tokenizer_load_gguf");
    clora_gguf_close(g);
    if (status != CLORA_OK) {
        clora_tokenizer_destroy(t);
        return status;
    }
    *out = t;
    return CLORA_OK;
}

void clora_tokenizer_destroy(clora_tokenizer *tokenizer)
{
    if (!tokenizer)
        return;
    if (tokenizer->ops && tokenizer->model)
        tokenizer->ops->destroy(tokenizer->model);
    clora__vocab_free(&tokenizer->vocab);
    free(tokenizer->flags);
    free(tokenizer->chat_template);
    free(tokenizer);
}

/* ---- what a tokenizer holds ----------------------------------------------------------------- */

clora_tokenizer_kind clora_tokenizer_get_kind(const clora_tokenizer *tokenizer)
{
    return tokenizer && tokenizer->ops ? tokenizer->ops->kind : CLORA_TOKENIZER_WORDPIECE;
}

size_t clora_tokenizer_vocab_size(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->vocab.count : 0;
}

int32_t clora_tokenizer_token_id(const clora_tokenizer *tokenizer, const char *token)
{
    return tokenizer && token ? clora__vocab_find(&tokenizer->vocab, token, strlen(token)) : -1;
}

const char *clora_tokenizer_token(const clora_tokenizer *tokenizer, int32_t id)
{
    if (!tokenizer || id < 0 || (size_t)id >= tokenizer->vocab.count)
        return NULL;
    return tokenizer->vocab.tokens[id];
}

size_t clora_tokenizer_max_length(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->max_length : 0;
}

int32_t clora_tokenizer_bos(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->bos : -1;
}

int32_t clora_tokenizer_eos(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->eos : -1;
}

int32_t clora_tokenizer_pad(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->pad : -1;
}

int clora_tokenizer_adds_bos(const clora_tokenizer *tokenizer)
{
    return tokenizer && tokenizer->add_bos && tokenizer->bos >= 0;
}

int clora_tokenizer_adds_eos(const clora_tokenizer *tokenizer)
{
    return tokenizer && tokenizer->add_eos && tokenizer->eos >= 0;
}

int clora_tokenizer_is_special(const clora_tokenizer *tokenizer, int32_t id)
{
    return tokenizer && id >= 0 && (size_t)id < tokenizer->flag_count &&
           (tokenizer->flags[id] & CLORA__TOKEN_SPECIAL);
}

const char *clora_tokenizer_chat_template(const clora_tokenizer *tokenizer)
{
    return tokenizer ? tokenizer->chat_template : NULL;
}

clora_status clora_tokenizer_fingerprint(const clora_tokenizer *tokenizer, char out[17])
{
    if (!tokenizer || !out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_fingerprint: %s is NULL",
                           out ? "tokenizer" : "out");
    const unsigned char kind = (unsigned char)tokenizer->ops->kind;
    uint64_t hash = clora__fnv1a(CLORA__FNV1A_BASIS, &kind, 1);
    const clora__vocab *v = &tokenizer->vocab;
    for (size_t id = 0; id < v->count; ++id) {
        hash = clora__fnv1a_u32(hash, v->tokens[id] ? (uint32_t)v->lengths[id] : UINT32_MAX);
        if (v->tokens[id])
            hash = clora__fnv1a(hash, v->tokens[id], v->lengths[id]);
    }
    if (tokenizer->ops->fingerprint) {
        clora_status status = tokenizer->ops->fingerprint(tokenizer, &hash);
        if (status != CLORA_OK)
            return status;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)hash);
    return CLORA_OK;
}

/* ---- encoding and decoding ------------------------------------------------------------------- */

/* CLORA_OK, or CLORA_ERR_INVALID_ARGUMENT naming the first bad byte. */
static clora_status check_utf8(const char *text, size_t n)
{
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "the text is not valid UTF-8 at byte %zu", i);
        i += (size_t)k;
    }
    return CLORA_OK;
}

/* The text's ids with BOS / EOS where `add_special` and the tokenizer
 * say so. */
static clora_status encode_ids(const clora_tokenizer *t, const char *text, int add_special,
                               clora__ids *out)
{
    const size_t n = strlen(text);
    clora_status status = check_utf8(text, n);
    if (status == CLORA_OK && add_special && clora_tokenizer_adds_bos(t) &&
        !clora__ids_push(out, t->bos))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    if (status == CLORA_OK)
        status = t->ops->tokenize(t, text, n, out);
    if (status == CLORA_OK && add_special && clora_tokenizer_adds_eos(t) &&
        !clora__ids_push(out, t->eos))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    return status;
}

clora_status clora_tokenizer_encode_text(const clora_tokenizer *tokenizer, const char *text,
                                         int add_special, int32_t **ids, size_t *count)
{
    if (!tokenizer || !text || !ids || !count)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_encode_text: NULL argument");
    *ids = NULL;
    *count = 0;
    clora__ids result = {NULL, 0, 0};
    clora_status status = encode_ids(tokenizer, text, add_special, &result);
    if (status != CLORA_OK || result.n == 0) {
        free(result.v);
        return status;
    }
    *ids = result.v;
    *count = result.n;
    return CLORA_OK;
}

clora_status clora_tokenizer_tokenize(const clora_tokenizer *tokenizer, const char *text,
                                      int32_t **ids, size_t *count)
{
    if (!tokenizer || !text || !ids || !count)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_tokenize: NULL argument");
    return clora_tokenizer_encode_text(tokenizer, text, 0, ids, count);
}

clora_status clora_tokenizer_encode(const clora_tokenizer *tokenizer, const char *text,
                                    size_t max_length, int32_t *out_ids, int32_t *mask,
                                    size_t *length, int *truncated)
{
    if (!tokenizer || !text || !out_ids)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_encode: NULL argument");
    const int bos = clora_tokenizer_adds_bos(tokenizer), eos = clora_tokenizer_adds_eos(tokenizer);
    const size_t added = (size_t)bos + (size_t)eos;
    if (max_length < added || max_length == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_tokenizer_encode: max_length %zu leaves no room for %s",
                           max_length,
                           tokenizer->ops->kind == CLORA_TOKENIZER_WORDPIECE ? "[CLS] and [SEP]"
                           : added ? "BOS and EOS"
                                   : "a token");
    clora__ids result = {NULL, 0, 0};
    clora_status status = encode_ids(tokenizer, text, 0, &result);
    if (status != CLORA_OK) {
        free(result.v);
        return status;
    }
    const size_t kept = result.n < max_length - added ? result.n : max_length - added;
    const int32_t pad = tokenizer->pad >= 0 ? tokenizer->pad
                        : tokenizer->eos >= 0 ? tokenizer->eos
                                              : 0;
    size_t at = 0;
    if (bos)
        out_ids[at++] = tokenizer->bos;
    if (kept)
        memcpy(out_ids + at, result.v, kept * sizeof *out_ids);
    at += kept;
    if (eos)
        out_ids[at++] = tokenizer->eos;
    for (size_t i = at; i < max_length; ++i)
        out_ids[i] = pad;
    for (size_t i = 0; mask && i < max_length; ++i)
        mask[i] = i < at;
    if (length)
        *length = at;
    if (truncated)
        *truncated = kept < result.n;
    free(result.v);
    return CLORA_OK;
}

clora_status clora_tokenizer_decode_flags(const clora_tokenizer *tokenizer, const int32_t *ids,
                                          size_t count, unsigned flags, char **text,
                                          size_t *length)
{
    if (!tokenizer || (!ids && count) || !text)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tokenizer_decode: NULL argument");
    *text = NULL;
    if (length)
        *length = 0;
    for (size_t i = 0; i < count; ++i) {
        if (ids[i] < 0 || (size_t)ids[i] >= tokenizer->vocab.count)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "token id %d (at %zu) is outside the vocabulary (ids 0 to %zu)",
                               (int)ids[i], i, tokenizer->vocab.count - 1);
        if (!tokenizer->vocab.tokens[ids[i]])
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "token id %d (at %zu) has no token",
                               (int)ids[i], i);
    }
    clora__bytes out = {NULL, 0, 0};
    clora_status status = tokenizer->ops->decode(tokenizer, ids, count, flags, &out);
    if (status == CLORA_OK && !out.v && !clora__bytes_append(&out, "", 0))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "decoding");
    if (status != CLORA_OK) {
        free(out.v);
        return status;
    }
    *text = out.v;
    if (length)
        *length = out.n;
    return CLORA_OK;
}

clora_status clora_tokenizer_decode(const clora_tokenizer *tokenizer, const int32_t *ids,
                                    size_t count, char **text, size_t *length)
{
    return clora_tokenizer_decode_flags(tokenizer, ids, count, 0, text, length);
}
