/* cmd_info.c — `clora info`: what an adapter folder, a model folder or a
 * safetensors file holds. Reads files only; needs no device. */
#define _POSIX_C_SOURCE 200809L
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
    "model.safetensors) or a .safetensors file: tensors with dtypes and shapes,\n"
    "the configuration, parameter counts and file sizes.\n";

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
    const char *keys[] = {"target_modules", "rank_pattern", "alpha_pattern", "modules_to_save",
                          "lora_dropout", "fan_in_fan_out", "bias", "base_model_name_or_path"};
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
    return list_tensors(weights_path, "    ", 200) ? 0 : 1;
}

static int describe_model(const char *dir)
{
    char config_path[4096], weights_path[4096];
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
    printf("  tensors (%s):\n", weights_path);
    return list_tensors(weights_path, "    ", 40) ? 0 : 1;
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
            return describe_adapter(path);
        snprintf(probe, sizeof probe, "%s/config.json", path);
        if (is_file(probe))
            return describe_model(path);
        fprintf(stderr, "clora info: %s holds neither adapter_config.json nor config.json\n",
                path);
        return 1;
    }
    if (is_file(path)) {
        printf("safetensors file %s\n", path);
        return list_tensors(path, "  ", 500) ? 0 : 1;
    }
    fprintf(stderr, "clora info: %s: no such file or folder\n", path);
    return 1;
}
