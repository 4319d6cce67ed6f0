/* tokenizer_gguf.c — a byte-level BPE tokenizer from a GGUF file's
 * tokenizer.* metadata, as llama.cpp reads it (clora/tokenizer.h). */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

/* llama.cpp's token types (tokenizer.ggml.token_type). */
enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER_DEFINED = 4 };

/* The pre-tokenizers clora knows, by tokenizer.ggml.pre. */
static const struct pre {
    const char *name;
    clora__pattern pattern;
    int split_digits, ignore_merges, add_bos;
} pres[] = {
    {"gpt-2", CLORA__PATTERN_GPT2, 0, 0, 0},
    {"gpt2", CLORA__PATTERN_GPT2, 0, 0, 0},
    {"smollm", CLORA__PATTERN_GPT2, 1, 0, 0},
    {"starcoder", CLORA__PATTERN_GPT2, 1, 0, 0},
    {"llama-bpe", CLORA__PATTERN_LLAMA3, 0, 1, 1},
    {"llama3", CLORA__PATTERN_LLAMA3, 0, 1, 1},
    {"llama-v3", CLORA__PATTERN_LLAMA3, 0, 1, 1},
    {"qwen2", CLORA__PATTERN_QWEN2, 0, 0, 0},
};

static clora_status pre_of(const clora_gguf *g, const char *path, const struct pre **out)
{
    size_t length = 0;
    const char *name = clora_gguf_get_string(g, "tokenizer.ggml.pre", &length);
    if (!name)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: no tokenizer.ggml.pre (llama.cpp's \"default\" pre-tokenizer); "
                           "clora knows gpt-2, smollm, starcoder, llama-bpe and qwen2",
                           path);
    for (size_t i = 0; i < sizeof pres / sizeof pres[0]; ++i)
        if (strlen(pres[i].name) == length && !memcmp(pres[i].name, name, length)) {
            *out = &pres[i];
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.pre \"%.*s\" is a pre-tokenizer clora does not know "
                       "(it knows gpt-2, smollm, starcoder, llama-bpe and qwen2)",
                       path, (int)length, name);
}

/* A string array's length; the key must hold one. */
static clora_status string_array(const clora_gguf *g, const char *key, const char *path,
                                 size_t *length)
{
    clora_gguf_value_type type;
    if (!clora_gguf_get_array(g, key, &type, length))
        return clora__fail(CLORA_ERR_FORMAT, "%s: no %s array", path, key);
    if (type != CLORA_GGUF_STRING)
        return clora__fail(CLORA_ERR_FORMAT, "%s: %s holds %s, not strings", path, key,
                           clora_gguf_value_type_name(type));
    return CLORA_OK;
}

static clora_status read_tokens(clora_tokenizer *t, const clora_gguf *g, const char *path)
{
    size_t count = 0, length = 0;
    clora_status status = string_array(g, "tokenizer.ggml.tokens", path, &count);
    if (status == CLORA_OK && (count == 0 || count > INT32_MAX))
        status = clora__fail(CLORA_ERR_FORMAT, "%s: tokenizer.ggml.tokens holds %zu tokens", path,
                             count);
    for (size_t i = 0; status == CLORA_OK && i < count; ++i) {
        const char *token = clora_gguf_array_string(g, "tokenizer.ggml.tokens", i, &length);
        status = token ? clora__vocab_set(&t->vocab, (int32_t)i, token, length)
                       : clora__fail(CLORA_ERR_FORMAT, "%s: token %zu is unreadable", path, i);
    }
    return status;
}

/* Control, unknown and user-defined tokens are matched whole in the text;
 * control and unknown ones are special (left out when decoding skips
 * them), user-defined ones are text. */
static clora_status read_types(clora_tokenizer *t, const clora_gguf *g, const char *path)
{
    clora_gguf_value_type type;
    size_t count = 0;
    if (!clora_gguf_get_array(g, "tokenizer.ggml.token_type", &type, &count))
        return CLORA_OK;
    if (count != t->vocab.count)
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: tokenizer.ggml.token_type has %zu entries for %zu tokens", path,
                           count, t->vocab.count);
    for (size_t i = 0; i < count; ++i) {
        int64_t v = 0;
        if (!clora_gguf_array_i64(g, "tokenizer.ggml.token_type", i, &v))
            return clora__fail(CLORA_ERR_FORMAT, "%s: tokenizer.ggml.token_type holds %s", path,
                               clora_gguf_value_type_name(type));
        int matched = v == TYPE_CONTROL || v == TYPE_UNKNOWN || v == TYPE_USER_DEFINED;
        if (!matched || t->vocab.lengths[i] == 0)
            continue;
        clora_status status = clora__bpe_add_matched(t, (int32_t)i, v != TYPE_USER_DEFINED, 0, 0);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

static clora_status read_merges(clora_tokenizer *t, const clora_gguf *g, const char *path)
{
    size_t count = 0, length = 0;
    clora_status status = string_array(g, "tokenizer.ggml.merges", path, &count);
    for (size_t i = 0; status == CLORA_OK && i < count; ++i) {
        const char *merge = clora_gguf_array_string(g, "tokenizer.ggml.merges", i, &length);
        status = merge ? clora__bpe_add_merge_line(t, merge, length, path)
                       : clora__fail(CLORA_ERR_FORMAT, "%s: merge %zu is unreadable", path, i);
    }
    return status;
}

/* A special id: -1 when absent; it must name a token. */
static clora_status special_id(clora_tokenizer *t, const clora_gguf *g, const char *key,
                               const char *path, int32_t *id)
{
    uint64_t v = 0;
    if (clora_gguf_find(g, key) < 0)
        return CLORA_OK;
    if (!clora_gguf_get_u64(g, key, &v) || v >= t->vocab.count)
        return clora__fail(CLORA_ERR_FORMAT, "%s: %s is not a token id below %zu", path, key,
                           t->vocab.count);
    *id = (int32_t)v;
    return CLORA_OK;
}

clora_status clora__gguf_tokenizer(clora_tokenizer *t, const clora_gguf *g, const char *path)
{
    size_t length = 0;
    const char *model = clora_gguf_get_string(g, "tokenizer.ggml.model", &length);
    if (!model)
        return clora__fail(CLORA_ERR_FORMAT, "%s: no tokenizer.ggml.model: the file has no "
                                             "tokenizer",
                           path);
    if (length != 4 || memcmp(model, "gpt2", 4))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: tokenizer.ggml.model \"%.*s\"; clora reads byte-level BPE "
                           "tokenizers (\"gpt2\")",
                           path, (int)length, model);
    const struct pre *pre = NULL;
    clora_status status = pre_of(g, path, &pre);
    if (status != CLORA_OK)
        return status;
    clora__bpe_config config;
    memset(&config, 0, sizeof config);
    config.pattern = pre->pattern;
    config.split_digits = pre->split_digits;
    config.ignore_merges = pre->ignore_merges;
    t->add_bos = pre->add_bos;
    if ((status = clora__bpe_init(t, &config)) || (status = read_tokens(t, g, path)) ||
        (status = read_merges(t, g, path)) || (status = read_types(t, g, path)) ||
        (status = special_id(t, g, "tokenizer.ggml.bos_token_id", path, &t->bos)) ||
        (status = special_id(t, g, "tokenizer.ggml.eos_token_id", path, &t->eos)) ||
        (status = special_id(t, g, "tokenizer.ggml.padding_token_id", path, &t->pad)) ||
        (status = special_id(t, g, "tokenizer.ggml.unknown_token_id", path, &t->unk)))
        return status;
    int flag = 0;
    if (clora_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &flag))
        t->add_bos = flag;
    if (clora_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &flag))
        t->add_eos = flag;
    const int32_t marks[2] = {t->bos, t->eos};
    for (int i = 0; i < 2; ++i)
        if (marks[i] >= 0 && (status = clora__tokenizer_mark(t, marks[i], CLORA__TOKEN_SPECIAL)))
            return status;
    const char *chat = clora_gguf_get_string(g, "tokenizer.chat_template", &length);
    if (chat) {
        if (!(t->chat_template = clora__malloc(length + 1)))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading %s", path);
        memcpy(t->chat_template, chat, length);
        t->chat_template[length] = '\0';
    }
    return clora__bpe_finish(t);
}
