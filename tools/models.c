/* models.c — opening models and adapters for the `clora` commands. */
#include "models.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

model_family model_family_of(const char *dir)
{
    if (clora_gguf_probe(dir))
        return FAMILY_LLAMA;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *config = json_load_file(path, 0, NULL);
    const char *type = json_string_value(json_object_get(config, "model_type"));
    model_family family = FAMILY_CLORA;
    if (type && !json_object_get(config, "format"))
        family = !strcmp(type, "bert")                                     ? FAMILY_BERT
                 : !strcmp(type, "gpt2")                                   ? FAMILY_GPT2
                 : !strcmp(type, "llama") || !strcmp(type, "qwen2") ||
                         !strcmp(type, "mistral")                          ? FAMILY_LLAMA
                                                                           : FAMILY_CLORA;
    json_decref(config);
    return family;
}

size_t adapter_classes(const char *adapter_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", adapter_dir);
    clora_safetensors *file = NULL;
    if (clora_safetensors_open(&file, path) != CLORA_OK)
        return 0; /* clora_adapter_load says what is wrong */
    clora_tensor_view view;
    size_t classes = 0;
    static const char *const heads[] = {"base_model.model.classifier.weight",
                                        "base_model.model.score.weight",
                                        "base_model.model.score.base_layer.weight"};
    for (size_t i = 0; i < sizeof heads / sizeof heads[0] && !classes; ++i)
        if (clora_safetensors_find(file, heads[i], &view) == CLORA_OK && view.ndim == 2)
            classes = view.shape[0];
    clora_safetensors_close(file);
    return classes;
}

size_t bert_sequence_labels(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *config = json_load_file(path, 0, NULL);
    const json_t *list = json_object_get(config, "architectures"), *entry;
    size_t i, labels = 0;
    json_array_foreach(list, i, entry) {
        if (json_is_string(entry) &&
            !strcmp(json_string_value(entry), "BertForSequenceClassification")) {
            const json_t *names = json_object_get(config, "id2label");
            labels = json_object_size(names) ? json_object_size(names)
                     : json_is_integer(json_object_get(config, "num_labels"))
                         ? (size_t)json_integer_value(json_object_get(config, "num_labels"))
                         : 2;
        }
    }
    json_decref(config);
    return labels;
}

/* Whether an adapter adapts or saves BERT's pooler (keys "pooler.*" at the
 * top): it was made for the pooler head. */
static int adapter_has_pooler(const char *adapter_dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", adapter_dir);
    clora_safetensors *file = NULL;
    if (clora_safetensors_open(&file, path) != CLORA_OK)
        return 0; /* clora_adapter_load says what is wrong */
    int pooler = 0;
    for (size_t t = 0; t < clora_safetensors_count(file) && !pooler; ++t) {
        clora_tensor_view view;
        clora_safetensors_get(file, t, &view);
        pooler = !strncmp(view.name, "base_model.model.pooler.", 24) ||
                 !strncmp(view.name, "pooler.", 7);
    }
    clora_safetensors_close(file);
    return pooler;
}

const char *const base_dtype_choices[] = {"stored", "f32",  "f16",  "bf16",
                                          "q8_0",   "q4_0", "q4_1", NULL};

clora_dtype base_dtype_of(int choice)
{
    static const clora_dtype types[] = {CLORA_DTYPE_AS_STORED, CLORA_DTYPE_F32,  CLORA_DTYPE_F16,
                                        CLORA_DTYPE_BF16,      CLORA_DTYPE_Q8_0, CLORA_DTYPE_Q4_0,
                                        CLORA_DTYPE_Q4_1};
    return choice >= 0 && (size_t)choice < sizeof types / sizeof types[0] ? types[choice]
                                                                          : CLORA_DTYPE_AS_STORED;
}

/* 1 when `dir` has a sub-folder holding an adapter (PEFT's layout for
 * several named adapters). */
static int has_named_adapters(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        char path[4096];
        struct stat st;
        found = e->d_name[0] != '.' &&
                snprintf(path, sizeof path, "%s/%s/adapter_config.json", dir, e->d_name) <
                    (int)sizeof path &&
                stat(path, &st) == 0;
    }
    closedir(d);
    return found;
}

int open_model(const char *command, clora_device *device, const char *dir, const char *adapter,
               const char *adapter_name, size_t classes, uint64_t seed, int base_dtype,
               clora_model **out, model_family *family)
{
    return open_model_with_head(command, device, dir, adapter, adapter_name, classes, seed,
                                base_dtype,
                                CLORA_BERT_HEAD_AUTO, out, family);
}

int open_model_with_head(const char *command, clora_device *device, const char *dir,
                         const char *adapter, const char *adapter_name, size_t classes, uint64_t seed, int base_dtype,
                         clora_bert_head bert_head, clora_model **out, model_family *family)
{
    *out = NULL;
    *family = model_family_of(dir);
    clora_load_options options = clora_load_options_default();
    options.base_dtype = base_dtype_of(base_dtype);
    const char *loading = "loading the model";
    if (*family == FAMILY_BERT) {
        if (classes == 0 && adapter)
            classes = adapter_classes(adapter);
        /* a BertForSequenceClassification folder brings its own classifier,
         * which data with fewer classes fits */
        const size_t own = bert_sequence_labels(dir);
        options.num_labels = own && classes <= own ? 0 : classes;
        options.bert_head = bert_head;
        if (bert_head == CLORA_BERT_HEAD_AUTO && adapter && adapter_has_pooler(adapter)) {
            options.bert_head = CLORA_BERT_HEAD_POOLER;
            loading = "loading the model with the pooler head the adapter was made for";
        }
    }
    if (*family != FAMILY_CLORA)
        options.seed = seed;
    clora_status status = clora_model_load_with(out, device, dir, &options);
    if (status == CLORA_OK && adapter && (*family == FAMILY_GPT2 || *family == FAMILY_LLAMA) &&
        (classes = adapter_classes(adapter)) > 0) /* a sequence classifier's adapter */
        status = clora_model_add_classifier(*out, classes, 0.0f, seed);
    if (status != CLORA_OK) {
        cli_report(command, loading, status);
        clora_model_destroy(*out);
        *out = NULL;
        return 0;
    }
    if (adapter) {
        status = has_named_adapters(adapter) ? clora_adapter_load_all(*out, adapter, NULL)
                                             : clora_adapter_load(*out, adapter, "default");
        if (status == CLORA_OK && adapter_name)
            status = clora_model_set_adapter(*out, adapter_name);
    }
    if (status != CLORA_OK) {
        cli_report(command, "loading the adapter", status);
        clora_model_destroy(*out);
        *out = NULL;
        return 0;
    }
    return 1;
}

/* A GGUF file's tokenizer, or a model folder's. */
static clora_status load_tokenizer(const char *path, clora_tokenizer **out)
{
    *out = NULL;
    return clora_gguf_probe(path) ? clora_tokenizer_load_gguf(out, path)
                                  : clora_tokenizer_load(out, path);
}

int open_tokenizer(const char *command, const char *path, clora_tokenizer **out)
{
    clora_status status = load_tokenizer(path, out);
    if (status != CLORA_OK) {
        cli_report(command, "loading the tokenizer", status);
        return 0;
    }
    return 1;
}

int find_tokenizer(const char *path, clora_tokenizer **out)
{
    return load_tokenizer(path, out) == CLORA_OK;
}

int parse_ids(const char *command, const char *option, const char *text, int32_t **ids,
              size_t *count)
{
    *ids = NULL;
    *count = 0;
    size_t capacity = 1;
    for (const char *p = text; *p; ++p)
        capacity += *p == ',';
    *ids = malloc(capacity * sizeof **ids);
    if (!*ids) {
        fprintf(stderr, "clora %s: out of memory\n", command);
        return 0;
    }
    const char *p = text;
    while (*p) {
        char *end = NULL;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v > INT32_MAX ||
            (*end && (*end != ',' || end[1] == '\0'))) { /* a comma, and an id after it */
            fprintf(stderr, "clora %s: %s expects ids like 15496,11,995; \"%s\" is not\n",
                    command, option, text);
            free(*ids);
            *ids = NULL;
            *count = 0;
            return 0;
        }
        (*ids)[(*count)++] = (int32_t)v;
        p = *end ? end + 1 : end;
    }
    if (*count == 0) {
        fprintf(stderr, "clora %s: %s is empty\n", command, option);
        free(*ids);
        *ids = NULL;
        return 0;
    }
    return 1;
}

int prompt_ids(const char *command, const clora_tokenizer *tok, const char *prompt, int chat,
               const char *system, const char *tokens, int32_t **ids, size_t *count)
{
    if (tokens)
        return parse_ids(command, "--tokens", tokens, ids, count);
    clora_status status;
    const size_t limit = clora_tokenizer_max_length(tok);
    if (chat) {
        clora_chat_message turns[2] = {{"system", system}, {"user", prompt}};
        char *text = NULL;
        status = clora_tokenizer_apply_chat(tok, system ? turns : turns + 1, system ? 2 : 1, 1,
                                            &text);
        if (status != CLORA_OK) {
            cli_report(command, "formatting the chat prompt", status);
            return 0;
        }
        status = clora_tokenizer_encode_text(tok, text, 0, ids, count);
        free(text);
    } else if (clora_tokenizer_get_kind(tok) == CLORA_TOKENIZER_WORDPIECE && limit) {
        /* [CLS] text [SEP], cut to what the model takes */
        int32_t *pieces = NULL;
        size_t n = 0;
        status = clora_tokenizer_tokenize(tok, prompt, &pieces, &n);
        free(pieces);
        const size_t length = n + 2 < limit ? n + 2 : limit;
        *ids = malloc(length * sizeof **ids);
        if (status == CLORA_OK && !*ids)
            status = CLORA_ERR_OUT_OF_HOST_MEMORY;
        if (status == CLORA_OK)
            status = clora_tokenizer_encode(tok, prompt, length, *ids, NULL, count, NULL);
    } else {
        status = clora_tokenizer_encode_text(tok, prompt, 1, ids, count);
    }
    if (status != CLORA_OK) {
        cli_report(command, "tokenizing the prompt", status);
        free(*ids);
        *ids = NULL;
        return 0;
    }
    if (*count == 0) {
        fprintf(stderr, "clora %s: the prompt has no tokens\n", command);
        free(*ids);
        *ids = NULL;
        return 0;
    }
    return 1;
}
