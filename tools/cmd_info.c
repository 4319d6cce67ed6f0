/* cmd_info.c — `clora info`: what an adapter folder, a model folder, a
 * safetensors file or a GGUF file holds. Reads files only; needs no
 * device. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "options.h"
#include "training.h"

static const char info_description[] =
    "Describes PATH: a PEFT adapter folder (adapter_config.json +\n"
    "adapter_model.safetensors), a clora model folder (config.json +\n"
    "model.safetensors), a .safetensors file or a GGUF file (.gguf): tensors with\n"
    "dtypes and shapes, the configuration or metadata, parameter counts and file\n"
    "sizes. An adapter is checked as the loaders check it, and a GGUF model or\n"
    "tokenizer as its loader checks it; the exit status is non-zero when they\n"
    "would refuse it (after what could be shown).\n";

static int is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Lists a safetensors file; returns 0 after printing an error. */
static int list_tensors(const char *path, const char *indent, size_t limit)
{
    clora_safetensors *file = NULL;
    if (clora_safetensors_open(&file, path) != CLORA_OK) {
        fprintf(stderr, "clora info: %s\n", clora_last_error());
        return 0;
    }
    size_t count = clora_safetensors_count(file), params = 0;
    char a[32], b[32], c[32];
    for (size_t i = 0; i < count; ++i) {
        clora_tensor_view v;
        clora_safetensors_get(file, i, &v);
        params += v.numel;
        if (i >= limit)
            continue;
        char shape[128] = "(";
        for (size_t d = 0; d < v.ndim; ++d)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%zu", d ? ", " : "",
                     v.shape[d]);
        strncat(shape, ")", sizeof shape - strlen(shape) - 1);
        printf("%s%-56s %-5s %s\n", indent, v.name, clora_dtype_name(v.dtype), shape);
    }
    if (count > limit)
        printf("%s... and %zu more\n", indent, count - limit);
    for (size_t i = 0; i < clora_safetensors_metadata_count(file); ++i) {
        const char *key, *value;
        clora_safetensors_metadata_at(file, i, &key, &value);
        printf("%smetadata %s = %s\n", indent, key, value);
    }
    printf("%s%zu tensors, %s parameters, %s (header %s bytes)\n", indent, count,
           with_commas(params, a, sizeof a),
           human_bytes((double)clora_safetensors_file_size(file), b, sizeof b),
           with_commas(clora_safetensors_header_size(file), c, sizeof c));
    clora_safetensors_close(file);
    return 1;
}

/* ---- GGUF files ------------------------------------------------------------------- */

#define GGUF_STRING_SHOWN 60 /* bytes of a string value shown before an ellipsis */
#define GGUF_ELEMENT_STRING_SHOWN 24
#define GGUF_ELEMENTS_SHOWN 3

/* A string value quoted, with control characters escaped, cut after
 * `limit` bytes (at a character boundary) with an ellipsis. */
static void print_quoted(const char *s, size_t length, size_t limit)
{
    size_t shown = length;
    if (shown > limit) {
        shown = limit;
        while (shown > 0 && ((unsigned char)s[shown] & 0xc0) == 0x80)
            --shown; /* not inside a UTF-8 sequence */
    }
    putchar('"');
    for (size_t i = 0; i < shown; ++i) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c == '\n')
            printf("\\n");
        else if (c == '\t')
            printf("\\t");
        else if (c < 0x20 || c == 0x7f)
            printf("\\x%02x", c);
        else
            putchar(c);
    }
    printf(shown < length ? "\"…" : "\"");
}

/* A number or bool of `type`: the value of `key` (index < 0) or element
 * `index` of its array. */
static void print_number(const clora_gguf *file, const char *key, long index,
                         clora_gguf_value_type type)
{
    const size_t i = index < 0 ? 0 : (size_t)index;
    uint64_t u = 0;
    int64_t s = 0;
    double f = 0;
    switch (type) {
    case CLORA_GGUF_INT8:
    case CLORA_GGUF_INT16:
    case CLORA_GGUF_INT32:
    case CLORA_GGUF_INT64:
        (void)(index < 0 ? clora_gguf_get_i64(file, key, &s)
                         : clora_gguf_array_i64(file, key, i, &s));
        printf("%lld", (long long)s);
        break;
    case CLORA_GGUF_FLOAT32:
    case CLORA_GGUF_FLOAT64:
        (void)(index < 0 ? clora_gguf_get_f64(file, key, &f)
                         : clora_gguf_array_f64(file, key, i, &f));
        printf(type == CLORA_GGUF_FLOAT32 ? "%.9g" : "%.17g", f);
        break;
    default: /* unsigned integers and bools */
        (void)(index < 0 ? clora_gguf_get_u64(file, key, &u)
                         : clora_gguf_array_u64(file, key, i, &u));
        if (type == CLORA_GGUF_BOOL)
            printf("%s", u ? "true" : "false");
        else
            printf("%llu", (unsigned long long)u);
        break;
    }
}

/* An array as "[N × type: first few …]". */
static void print_array(const clora_gguf *file, const char *key)
{
    clora_gguf_value_type element;
    size_t length = 0;
    clora_gguf_get_array(file, key, &element, &length);
    printf("[%zu × %s", length, clora_gguf_value_type_name(element));
    if (element != CLORA_GGUF_ARRAY && length > 0) {
        printf(":");
        for (size_t k = 0; k < length && k < GGUF_ELEMENTS_SHOWN; ++k) {
            printf(k ? ", " : " ");
            if (element == CLORA_GGUF_STRING) {
                size_t n = 0;
                const char *s = clora_gguf_array_string(file, key, k, &n);
                print_quoted(s, n, GGUF_ELEMENT_STRING_SHOWN);
            } else {
                print_number(file, key, (long)k, element);
            }
        }
        if (length > GGUF_ELEMENTS_SHOWN)
            printf(" …");
    }
    printf("]");
}

static int describe_gguf(const char *path)
{
    clora_gguf *file = NULL;
    if (clora_gguf_open(&file, path) != CLORA_OK) {
        fprintf(stderr, "clora info: %s\n", clora_last_error());
        return 1;
    }
    char a[32], b[32], c[32];
    printf("GGUF file %s\n", path);
    printf("  version %u, alignment %zu, data section at byte %s\n", clora_gguf_version(file),
           clora_gguf_alignment(file),
           with_commas((size_t)clora_gguf_data_offset(file), a, sizeof a));
    size_t entries = clora_gguf_metadata_count(file);
    printf("  metadata (%zu entries):\n", entries);
    for (size_t i = 0; i < entries; ++i) {
        const char *key = clora_gguf_metadata_key(file, i);
        clora_gguf_value_type type = clora_gguf_metadata_type(file, i);
        printf("    %-44s %-7s ", key, clora_gguf_value_type_name(type));
        if (type == CLORA_GGUF_STRING) {
            size_t n = 0;
            const char *s = clora_gguf_get_string(file, key, &n);
            print_quoted(s, n, GGUF_STRING_SHOWN);
            if (n > GGUF_STRING_SHOWN)
                printf(" (%s bytes)", with_commas(n, a, sizeof a));
        } else if (type == CLORA_GGUF_ARRAY) {
            print_array(file, key);
        } else {
            print_number(file, key, -1, type);
        }
        printf("\n");
    }
    size_t count = clora_gguf_tensor_count(file);
    uint64_t params = 0, data = 0;
    size_t by_type[32] = {0}; /* tensor types are numbered below 32 */
    printf("  tensors (%zu):\n", count);
    for (size_t i = 0; i < count; ++i) {
        clora_gguf_tensor t;
        clora_gguf_tensor_info(file, i, &t);
        params += t.elements;
        data += t.bytes;
        by_type[(unsigned)t.type % 32]++;
        if (i >= 500)
            continue;
        char shape[128] = "(";
        for (size_t d = t.ndim; d-- > 0;)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%llu%s",
                     (unsigned long long)t.dims[d], d ? ", " : ")");
        printf("    %-44s %-5s %-20s %14s bytes\n", t.name, clora_gguf_tensor_type_name(t.type),
               shape, with_commas((size_t)t.bytes, a, sizeof a));
    }
    if (count > 500)
        printf("    ... and %zu more\n", count - 500);
    printf("  %zu tensors, %s parameters, %s of tensor data (", count,
           with_commas((size_t)params, a, sizeof a), human_bytes((double)data, b, sizeof b));
    const char *separator = "";
    for (unsigned type = 0; type < 32; ++type)
        if (by_type[type]) {
            printf("%s%s %zu", separator,
                   clora_gguf_tensor_type_name((clora_gguf_tensor_type)type), by_type[type]);
            separator = ", ";
        }
    printf("); file %s\n", human_bytes((double)clora_gguf_file_size(file), c, sizeof c));
    /* what the loaders make of it: a file with tensors and an architecture is
     * a model, one with tokenizer.ggml.* a tokenizer; refused as what it is,
     * it is invalid */
    const int is_model = count > 0 && clora_gguf_find(file, "general.architecture") >= 0;
    const int is_tokenizer = clora_gguf_find(file, "tokenizer.ggml.model") >= 0;
    clora_gguf_close(file);
    int ok = 1;
    if (is_model) {
        if (clora_model_check_gguf(path) == CLORA_OK) {
            printf("  as a model: clora loads it (structure checked; values when loaded)\n");
        } else {
            fprintf(stderr, "clora info: invalid model file: %s\n", clora_last_error());
            ok = 0;
        }
    }
    if (is_tokenizer) {
        clora_tokenizer *tokenizer = NULL;
        if (clora_tokenizer_load_gguf(&tokenizer, path) == CLORA_OK) {
            printf("  as a tokenizer: clora loads it (%s tokens)\n",
                   with_commas(clora_tokenizer_vocab_size(tokenizer), a, sizeof a));
            clora_tokenizer_destroy(tokenizer);
        } else {
            fprintf(stderr, "clora info: invalid tokenizer: %s\n", clora_last_error());
            ok = 0;
        }
    }
    if (!is_model && !is_tokenizer)
        printf("  neither a model (architecture and tensors) nor a tokenizer "
               "(tokenizer.ggml.*)\n");
    return ok ? 0 : 1;
}

static json_t *read_json(const char *path)
{
    json_error_t error;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &error);
    if (!root)
        fprintf(stderr, "clora info: %s: not valid JSON: %s (line %d)\n", path, error.text,
                error.line);
    return root;
}

static void print_tree(json_t *node, int depth)
{
    const char *name = json_string_value(json_object_get(node, "name"));
    const char *kind = json_string_value(json_object_get(node, "kind"));
    printf("  %*s%s%s%s", 2 * depth, "", name ? name : "(root)", name ? ": " : " ",
           kind ? kind : "?");
    if (kind && !strcmp(kind, "linear"))
        printf(" %lld -> %lld%s%s", json_integer_value(json_object_get(node, "in_features")),
               json_integer_value(json_object_get(node, "out_features")),
               json_is_true(json_object_get(node, "bias")) ? ", bias" : "",
               json_is_string(json_object_get(node, "weight_layout")) &&
                       !strcmp(json_string_value(json_object_get(node, "weight_layout")), "in_out")
                   ? ", weight (in, out)"
                   : "");
    else if (kind && (!strcmp(kind, "layer_norm") || !strcmp(kind, "embedding")))
        printf(" %lld", json_integer_value(json_object_get(node, !strcmp(kind, "embedding")
                                                                       ? "num_embeddings"
                                                                       : "features")));
    printf("\n");
    json_t *children = json_object_get(node, "children");
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child) print_tree(child, depth + 1);
}

static int describe_adapter(const char *dir)
{
    char config_path[4096], weights_path[4096];
    snprintf(config_path, sizeof config_path, "%s/adapter_config.json", dir);
    snprintf(weights_path, sizeof weights_path, "%s/adapter_model.safetensors", dir);
    /* first, as every reader: it also completes a save that was interrupted */
    const clora_status status = clora_adapter_check(dir);
    char reason[1024];
    snprintf(reason, sizeof reason, "%s", clora_last_error());
    json_t *config = read_json(config_path);
    if (!config)
        return 1;
    printf("PEFT adapter %s\n", dir);
    const char *type = json_string_value(json_object_get(config, "peft_type"));
    json_t *r = json_object_get(config, "r"), *alpha = json_object_get(config, "lora_alpha");
    int rs = json_is_true(json_object_get(config, "use_rslora"));
    printf("  peft_type %s, r %lld, lora_alpha %g, scale %s = %g\n", type ? type : "?",
           json_integer_value(r), json_number_value(alpha), rs ? "alpha/sqrt(r)" : "alpha/r",
           json_integer_value(r) > 0
               ? json_number_value(alpha) /
                     (rs ? sqrt((double)json_integer_value(r)) : (double)json_integer_value(r))
               : 0.0);
    const char *keys[] = {"target_modules",      "exclude_modules", "layers_to_transform",
                          "layers_pattern",      "rank_pattern",    "alpha_pattern",
                          "modules_to_save",     "lora_dropout",    "fan_in_fan_out",
                          "bias",                "use_dora",        "base_model_name_or_path"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; ++k) {
        json_t *v = json_object_get(config, keys[k]);
        if (!v || json_is_null(v))
            continue;
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        printf("  %s %s\n", keys[k], text ? text : "?");
        free(text);
    }
    json_decref(config);
    printf("  tensors (%s):\n", weights_path);
    const int listed = list_tensors(weights_path, "    ", 200);
    /* what a loader would refuse makes the adapter invalid, whatever it shows;
     * a tensor file that could not be listed has had its one line of error */
    if (status != CLORA_OK && listed)
        fprintf(stderr, "clora info: invalid adapter: %s (%s)\n", reason,
                clora_status_name(status));
    return listed && status == CLORA_OK ? 0 : 1;
}

/* An adapter folder and the named adapters in its sub-folders (PEFT's
 * layout for several), each described in turn. */
static int describe_adapters(const char *dir)
{
    int failed = describe_adapter(dir);
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char sub[4096], probe[4200];
        struct stat st;
        if (e->d_name[0] == '.' ||
            snprintf(sub, sizeof sub, "%s/%s", dir, e->d_name) >= (int)sizeof sub)
            continue;
        snprintf(probe, sizeof probe, "%s/adapter_config.json", sub);
        if (stat(probe, &st) != 0)
            continue;
        printf("named adapter \"%s\" (loaded with the folder; --adapter-name %s):\n", e->d_name,
               e->d_name);
        failed |= describe_adapter(sub);
    }
    if (d)
        closedir(d);
    return failed;
}

/* Hugging Face's shards: each file the index names (0: not all listed). */
static int list_shards(const char *dir, const char *weights_path)
{
    char index_path[4200];
    snprintf(index_path, sizeof index_path, "%s.index.json", weights_path);
    struct stat st;
    if (stat(index_path, &st) != 0) {
        fprintf(stderr, "clora info: %s: no such file, nor %s\n", weights_path, index_path);
        return 0;
    }
    json_t *index = read_json(index_path);
    json_t *map = index ? json_object_get(index, "weight_map") : NULL;
    if (!json_is_object(map)) {
        if (index)
            fprintf(stderr, "clora info: %s has no weight_map\n", index_path);
        json_decref(index);
        return 0;
    }
    json_t *shards = json_object(); /* the shard names, once each, in order */
    const char *key;
    json_t *value;
    json_object_foreach(map, key, value)
    {
        if (json_is_string(value))
            json_object_set(shards, json_string_value(value), json_true());
    }
    int ok = 1;
    printf("  %zu tensors in %zu shards (%s):\n", json_object_size(map),
           json_object_size(shards), index_path);
    json_object_foreach(shards, key, value)
    {
        char shard[4200];
        snprintf(shard, sizeof shard, "%s/%s", dir, key);
        printf("  %s:\n", shard);
        ok &= list_tensors(shard, "    ", 40);
    }
    json_decref(shards);
    json_decref(index);
    return ok;
}

static int describe_model(const char *dir)
{
    char config_path[4096], weights_path[4096];
    clora_status status = clora_folder_finish_save(dir); /* as every reader */
    if (status != CLORA_OK) {
        cli_report("info", "reading the folder", status);
        return 1;
    }
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    snprintf(weights_path, sizeof weights_path, "%s/model.safetensors", dir);
    json_t *config = read_json(config_path);
    if (!config)
        return 1;
    const char *format = json_string_value(json_object_get(config, "format"));
    if (format && !strcmp(format, "clora-model")) {
        printf("clora model %s (written by clora %s)\n", dir,
               json_string_value(json_object_get(config, "clora_version"))
                   ? json_string_value(json_object_get(config, "clora_version"))
                   : "?");
        print_tree(json_object_get(config, "model"), 0);
    } else {
        char *text = json_dumps(config, JSON_INDENT(2));
        printf("model folder %s (not a clora model config):\n%s\n", dir, text ? text : "");
        free(text);
    }
    json_decref(config);
    FILE *probe = fopen(weights_path, "rb");
    int listed;
    if (probe) {
        fclose(probe);
        printf("  tensors (%s):\n", weights_path);
        listed = list_tensors(weights_path, "    ", 40);
    } else {
        listed = list_shards(dir, weights_path);
    }
    /* what the loader would refuse makes the folder invalid, whatever it shows;
     * weights that could not be listed have had their one line of error */
    if (clora_model_check(dir) != CLORA_OK) {
        if (listed)
            fprintf(stderr, "clora info: invalid model: %s\n", clora_last_error());
        return 1;
    }
    printf("  as a model: clora loads it (structure checked; values when loaded)\n");
    return listed ? 0 : 1;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    const cli_option options[] = {CLI_END};
    static const char *const arguments[] = {"PATH", NULL};
    const cli_spec spec = {.command = "info",
                           .usage = "usage: clora info PATH",
                           .description = info_description,
                           .options = options,
                           .arguments = arguments,
                           .argument_values = &path};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    char probe[4096];
    if (is_dir(path)) {
        snprintf(probe, sizeof probe, "%s/adapter_config.json", path);
        if (is_file(probe))
            return describe_adapters(path);
        snprintf(probe, sizeof probe, "%s/config.json", path);
        if (is_file(probe))
            return describe_model(path);
        fprintf(stderr, "clora info: %s holds neither adapter_config.json nor config.json\n",
                path);
        return 1;
    }
    if (clora_gguf_probe(path))
        return describe_gguf(path);
    if (is_file(path)) {
        printf("safetensors file %s\n", path);
        return list_tensors(path, "  ", 500) ? 0 : 1;
    }
    fprintf(stderr, "clora info: %s: no such file or folder\n", path);
    return 1;
}
