/* peft.c — PEFT's adapter_config.json: read and checked into a
 * clora__peft_config, PEFT's rules for which modules it targets and which
 * rank and alpha each gets, and the config clora writes for an adapter it
 * saves. The tensors (adapter_model.safetensors) are nn's to place. */
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

/* ---- reading ----------------------------------------------------------------------- */

static clora_status parse_config(json_t *root, const char *path, size_t max_rank,
                                 clora__peft_config *c)
{
    const char *type = json_string_value(json_object_get(root, "peft_type"));
    if (!type)
        return clora__fail(CLORA_ERR_FORMAT, "%s: no \"peft_type\"", path);
    if (strcmp(type, "LORA") != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: peft_type \"%s\"; clora loads LORA", path,
                           type);
    json_t *r = json_object_get(root, "r");
    if (!json_is_integer(r) || json_integer_value(r) < 1 ||
        json_integer_value(r) > (json_int_t)max_rank)
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"r\" must be an integer from 1 to %zu", path,
                           max_rank);
    c->r = (size_t)json_integer_value(r);
    json_t *alpha = json_object_get(root, "lora_alpha");
    c->alpha = alpha ? json_number_value(alpha) : 8.0;
    if ((alpha && !json_is_number(alpha)) || !isfinite(c->alpha))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"lora_alpha\" must be a number", path);
    json_t *rs = json_object_get(root, "use_rslora");
    if (rs && !json_is_boolean(rs) && !json_is_null(rs))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"use_rslora\" must be true or false", path);
    c->rslora = json_is_true(rs);
    json_t *dropout = json_object_get(root, "lora_dropout");
    c->dropout = json_is_number(dropout) ? json_number_value(dropout) : 0.0;
    if (!(c->dropout >= 0.0 && c->dropout < 1.0))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"lora_dropout\" must be in [0, 1)", path);
    json_t *bias = json_object_get(root, "bias");
    static const char *const bias_modes[3] = {"none", "lora_only", "all"};
    c->bias = -1;
    for (int m = 0; m < 3; ++m)
        if (!bias || json_is_null(bias) ||
            (json_is_string(bias) && !strcmp(json_string_value(bias), bias_modes[m]))) {
            c->bias = bias && !json_is_null(bias) ? m : 0;
            break;
        }
    if (c->bias < 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: bias \"%s\": clora loads bias \"none\", \"lora_only\" and \"all\"",
                           path, json_is_string(bias) ? json_string_value(bias) : "?");
    json_t *dora = json_object_get(root, "use_dora");
    if (dora && !json_is_boolean(dora) && !json_is_null(dora))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"use_dora\" must be true or false", path);
    c->dora = json_is_true(dora);
    /* Options that change what the adapter computes, which clora does not
     * compute: refused when set, never ignored. */
    static const char *const refused[] = {"layer_replication",  "use_qalora",
                                          "lora_bias",          "target_parameters",
                                          "trainable_token_indices", "alora_invocation_tokens",
                                          "megatron_config",    "arrow_config",
                                          "kasa_config",        "use_bdlora",
                                          "velora_config",      "monteclora_config"};
    for (size_t k = 0; k < sizeof refused / sizeof *refused; ++k) {
        json_t *v = json_object_get(root, refused[k]);
        if (v && !json_is_null(v) && !json_is_false(v) &&
            !(json_is_array(v) && json_array_size(v) == 0) &&
            !(json_is_object(v) && json_object_size(v) == 0))
            return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: \"%s\" is not supported", path,
                               refused[k]);
    }
    c->layers = json_object_get(root, "layers_to_transform");
    if (json_is_null(c->layers) || (json_is_array(c->layers) && json_array_size(c->layers) == 0))
        c->layers = NULL;
    if (c->layers && !json_is_integer(c->layers) && !json_is_array(c->layers))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: \"layers_to_transform\" must be an integer or a list of them",
                           path);
    for (size_t i = 0; json_is_array(c->layers) && i < json_array_size(c->layers); ++i)
        if (!json_is_integer(json_array_get(c->layers, i)))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: \"layers_to_transform\" entry %zu is not an integer", path,
                               i);
    c->layers_pattern = json_object_get(root, "layers_pattern");
    if (json_is_null(c->layers_pattern))
        c->layers_pattern = NULL;
    if (c->layers_pattern && !json_is_string(c->layers_pattern) &&
        !json_is_array(c->layers_pattern))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: \"layers_pattern\" must be a string or a list of strings", path);
    if (json_is_array(c->layers_pattern) && json_array_size(c->layers_pattern) > 64)
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: more than 64 \"layers_pattern\" entries",
                           path);
    for (size_t i = 0; json_is_array(c->layers_pattern) && i < json_array_size(c->layers_pattern);
         ++i)
        if (!json_is_string(json_array_get(c->layers_pattern, i)))
            return clora__fail(CLORA_ERR_FORMAT, "%s: \"layers_pattern\" entry %zu is not a string",
                               path, i);
    c->targets = json_object_get(root, "target_modules");
    if (c->targets && !json_is_null(c->targets) && !json_is_array(c->targets) &&
        !json_is_string(c->targets))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"target_modules\" must be a list or a string",
                           path);
    if (json_is_null(c->targets))
        c->targets = NULL;
    for (size_t i = 0; json_is_array(c->targets) && i < json_array_size(c->targets); ++i)
        if (!json_is_string(json_array_get(c->targets, i)))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: \"target_modules\" entry %zu is not a string", path, i);
    if (c->layers && json_is_string(c->targets))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: \"layers_to_transform\" cannot be used with a regex "
                           "\"target_modules\"",
                           path);
    c->excludes = json_object_get(root, "exclude_modules");
    if (c->excludes && !json_is_array(c->excludes) && !json_is_string(c->excludes)) {
        if (!json_is_null(c->excludes))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: \"exclude_modules\" must be a list or a string", path);
        c->excludes = NULL;
    }
    const char *maps[2] = {"rank_pattern", "alpha_pattern"};
    json_t **dest[2] = {&c->rank_pattern, &c->alpha_pattern};
    for (int m = 0; m < 2; ++m) {
        json_t *v = json_object_get(root, maps[m]);
        if (v && !json_is_null(v) && !json_is_object(v))
            return clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be an object", path, maps[m]);
        *dest[m] = json_is_object(v) ? v : NULL;
        const char *key;
        json_t *value;
        if (!*dest[m])
            continue;
        json_object_foreach(*dest[m], key, value) {
            if (!json_is_number(value))
                return clora__fail(CLORA_ERR_FORMAT, "%s: %s value of \"%s\" is not a number",
                                   path, maps[m], key);
            if (m == 0 && (!json_is_integer(value) || json_integer_value(value) < 1 ||
                           json_integer_value(value) > (json_int_t)max_rank))
                return clora__fail(CLORA_ERR_FORMAT,
                                   "%s: rank_pattern value of \"%s\" must be an integer from 1 "
                                   "to %zu",
                                   path, key, max_rank);
        }
    }
    c->saved = json_object_get(root, "modules_to_save");
    if (c->saved && !json_is_array(c->saved)) {
        if (!json_is_null(c->saved))
            return clora__fail(CLORA_ERR_FORMAT, "%s: \"modules_to_save\" must be a list", path);
        c->saved = NULL;
    }
    return CLORA_OK;
}

clora_status clora__peft_config_read(const char *path, size_t max_rank,
                                     clora__peft_config *config)
{
    memset(config, 0, sizeof *config);
    clora_status status = clora__read_json(path, &config->root);
    if (status == CLORA_OK)
        status = parse_config(config->root, path, max_rank, config);
    if (status != CLORA_OK)
        clora__peft_config_free(config);
    return status;
}

void clora__peft_config_free(clora__peft_config *config)
{
    json_decref(config->root);
    memset(config, 0, sizeof *config);
}

/* ---- PEFT's matching rules ------------------------------------------------------------ */

int clora__peft_list_match(const char *path, const char *entry)
{
    size_t lp = strlen(path), le = strlen(entry);
    if (lp == le)
        return !strcmp(path, entry);
    return lp > le && path[lp - le - 1] == '.' && !strcmp(path + lp - le, entry);
}

/* Whether `pattern` (an extended regex, wrapped as format gives it)
 * matches `text`: 1, 0, or -1 (with the failure set) when memory for it
 * runs out. A pattern that does not compile matches nothing. */
static int regex_match(const char *format, const char *pattern, const char *text)
{
    const size_t len = strlen(pattern) + strlen(format);
    char *full = clora__malloc(len);
    if (!full) {
        clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "matching module %s", text);
        return -1;
    }
    snprintf(full, len, format, pattern);
    regex_t re;
    const int compiled = regcomp(&re, full, REG_EXTENDED | REG_NOSUB);
    free(full);
    if (compiled == REG_ESPACE) {
        clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "matching module %s", text);
        return -1;
    }
    if (compiled != 0)
        return 0;
    const int matched = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    if (matched == REG_ESPACE) {
        clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "matching module %s", text);
        return -1;
    }
    return matched == 0;
}

/* The value the first matching pattern gives (PEFT's (.*\.)?(key)$ rule):
 * 1 with *value, 0 for none, -1 when memory runs out. */
static int pattern_value(json_t *map, const char *module, double *value)
{
    if (!map)
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        const int hit = regex_match("^(.*\\.)?(%s)$", key, module);
        if (hit < 0)
            return -1;
        if (hit) {
            *value = json_number_value(v);
            return 1;
        }
    }
    return 0;
}

clora_status clora__peft_module(const clora__peft_config *config, const char *module,
                                size_t *rank, double *alpha)
{
    double r = (double)config->r, a = config->alpha;
    if (pattern_value(config->rank_pattern, module, &r) < 0 ||
        pattern_value(config->alpha_pattern, module, &a) < 0)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    if (rank)
        *rank = (size_t)r;
    if (alpha)
        *alpha = a;
    return CLORA_OK;
}

long clora__peft_layer_index(const char *path, const char *const *patterns, size_t count)
{
    if (count == 0) { /* .<segment>.<digits>. */
        for (const char *dot = strchr(path, '.'); dot; dot = strchr(dot + 1, '.')) {
            const char *seg_end = strchr(dot + 1, '.');
            if (!seg_end)
                break;
            const char *d = seg_end + 1, *digits = d;
            while (*d >= '0' && *d <= '9')
                ++d;
            if (d > digits && *d == '.')
                return strtol(digits, NULL, 10);
        }
        return -1;
    }
    for (size_t p = 0; p < count; ++p) {
        const size_t len = strlen(patterns[p]) + 32;
        char *full = clora__malloc(len);
        if (!full) {
            clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "matching module %s", path);
            return -2;
        }
        snprintf(full, len, "^(%s)\\.[0-9]+\\.", patterns[p]);
        regex_t re;
        const int compiled = regcomp(&re, full, REG_EXTENDED);
        free(full);
        if (compiled == REG_ESPACE) {
            clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "matching module %s", path);
            return -2;
        }
        if (compiled != 0)
            continue;
        long index = -1;
        for (const char *start = path; start && index < 0;
             start = strchr(start, '.') ? strchr(start, '.') + 1 : NULL) {
            regmatch_t m;
            if (regexec(&re, start, 1, &m, 0) != 0)
                continue;
            const char *digits = start + m.rm_eo - 1; /* the dot after the digits */
            while (digits > start && digits[-1] >= '0' && digits[-1] <= '9')
                --digits;
            index = strtol(digits, NULL, 10);
        }
        regfree(&re);
        if (index >= 0)
            return index;
    }
    return -1;
}

int clora__peft_layer_selected(const clora__peft_config *c, const char *path)
{
    if (!c->layers)
        return 1;
    const char *patterns[64];
    size_t count = 0;
    if (json_is_string(c->layers_pattern))
        patterns[count++] = json_string_value(c->layers_pattern);
    for (size_t i = 0; json_is_array(c->layers_pattern) && i < json_array_size(c->layers_pattern) &&
                       count < sizeof patterns / sizeof *patterns;
         ++i)
        patterns[count++] = json_string_value(json_array_get(c->layers_pattern, i));
    const long index = clora__peft_layer_index(path, patterns, count);
    if (index < -1)
        return -1;
    if (index < 0)
        return 0;
    if (json_is_integer(c->layers))
        return json_integer_value(c->layers) == index;
    size_t i;
    json_t *entry;
    json_array_foreach(c->layers, i, entry) {
        if (json_integer_value(entry) == index)
            return 1;
    }
    return 0;
}

/* PEFT's rules, in its order: exclude_modules (a list, or a regex the
 * whole path must match) and modules to save are never targets; a regex
 * target_modules must match the whole path; a listed path is a target; a
 * path ending in "." + an entry is one when layers_to_transform (if given)
 * holds its layer index. */
int clora__peft_targets(const clora__peft_config *c, const char *path)
{
    if (!c->targets)
        return 0;
    if (json_is_string(c->excludes)) {
        const int hit = regex_match("^(%s)$", json_string_value(c->excludes), path);
        if (hit != 0)
            return hit < 0 ? -1 : 0;
    } else if (c->excludes) {
        size_t i;
        json_t *entry;
        json_array_foreach(c->excludes, i, entry) {
            if (json_is_string(entry) && clora__peft_list_match(path, json_string_value(entry)))
                return 0;
        }
    }
    if (c->saved) {
        size_t i;
        json_t *entry;
        json_array_foreach(c->saved, i, entry) {
            if (!json_is_string(entry))
                continue;
            const int hit = regex_match("^(.*\\.)?(%s)(\\..*)?$", json_string_value(entry), path);
            if (hit != 0)
                return hit < 0 ? -1 : 0;
        }
    }
    if (json_is_string(c->targets))
        return regex_match("^(%s)$", json_string_value(c->targets), path);
    size_t i;
    json_t *entry;
    json_array_foreach(c->targets, i, entry) {
        if (json_is_string(entry) && !strcmp(path, json_string_value(entry)))
            return 1;
    }
    json_array_foreach(c->targets, i, entry) {
        if (json_is_string(entry) && clora__peft_list_match(path, json_string_value(entry)))
            return clora__peft_layer_selected(c, path);
    }
    return 0;
}

int clora__peft_saves(const clora__peft_config *c, const char *module)
{
    size_t i;
    json_t *entry;
    /* the module itself or one above it: PEFT saves a listed module whole,
     * the parameters of its children too ("bert.pooler" -> "bert.pooler.dense") */
    char above[512];
    snprintf(above, sizeof above, "%s", module);
    for (;;) {
        json_array_foreach(c->saved, i, entry) {
            if (json_is_string(entry) && clora__peft_list_match(above, json_string_value(entry)))
                return 1;
        }
        char *dot = strrchr(above, '.');
        if (!dot)
            break;
        *dot = '\0';
    }
    /* PeftModelForSequenceClassification saves its head whatever the
     * config lists (PEFT 0.6 leaves modules_to_save null) */
    const char *task = json_string_value(json_object_get(c->root, "task_type"));
    return task && !strcmp(task, "SEQ_CLS") &&
           (clora__peft_list_match(module, "classifier") ||
            clora__peft_list_match(module, "score"));
}

/* ---- writing ------------------------------------------------------------------------- */

/* A regex matching exactly `path` (dots escaped). */
static void escaped(const char *path, char *out, size_t size)
{
    size_t used = 0;
    for (const char *c = path; *c && used + 3 < size; ++c) {
        if (strchr(".^$|()[]{}*+?\\", *c))
            out[used++] = '\\';
        out[used++] = *c;
    }
    out[used] = '\0';
}

/* The rank_pattern / alpha_pattern key of site i: its path without the
 * first component, escaped. PEFT 0.6.2 matches a key as ".*\.KEY$" (a dot
 * must come before it), newer versions as "(.*\.)?(KEY)$"; the tail
 * matches the site in both. The whole path is kept when it has one
 * component, or when the tail would also match another site. */
static void pattern_key(const clora__peft_save *save, size_t i, char *out, size_t size)
{
    const char *path = save->sites[i].path, *dot = strchr(path, '.');
    const char *tail = dot ? dot + 1 : path;
    for (size_t j = 0; j < save->count && tail != path; ++j)
        if (j != i && clora__peft_list_match(save->sites[j].path, tail))
            tail = path;
    escaped(tail, out, size);
}

json_t *clora__peft_config_json(const clora__peft_save *save)
{
    const clora__peft_site *first = &save->sites[0];
    json_t *j = json_object(), *targets = json_array(), *ranks = json_object(),
           *alphas = json_object(), *saved = NULL;
    if (!j || !targets || !ranks || !alphas) {
        json_decref(j);
        json_decref(targets);
        json_decref(ranks);
        json_decref(alphas);
        return NULL;
    }
    int bad = 0;
    for (size_t i = 0; i < save->count; ++i) {
        const clora__peft_site *s = &save->sites[i];
        char key[2048];
        bad |= json_array_append_new(targets, json_string(s->path));
        pattern_key(save, i, key, sizeof key);
        if (s->rank != first->rank)
            bad |= json_object_set_new(ranks, key, json_integer((json_int_t)s->rank));
        if (s->alpha != first->alpha)
            bad |= json_object_set_new(alphas, key, json_real(s->alpha));
    }
    if (save->saved_count > 0) {
        saved = json_array();
        bad |= !saved;
        for (size_t i = 0; i < save->saved_count && !bad; ++i)
            bad |= json_array_append_new(saved, json_string(save->saved[i]));
    }
    bad |= json_object_set_new(j, "peft_type", json_string("LORA"));
    bad |= json_object_set_new(j, "task_type", json_null());
    bad |= json_object_set_new(j, "base_model_name_or_path", json_null());
    bad |= json_object_set_new(j, "r", json_integer((json_int_t)first->rank));
    bad |= json_object_set_new(j, "lora_alpha", json_real(first->alpha));
    bad |= json_object_set_new(j, "lora_dropout", json_real(save->dropout));
    /* Keys newer PEFT versions added are written only when they say
     * something: older versions refuse keys they do not know. */
    if (save->rslora)
        bad |= json_object_set_new(j, "use_rslora", json_true());
    if (save->dora)
        bad |= json_object_set_new(j, "use_dora", json_true());
    bad |= json_object_set_new(j, "target_modules", targets);
    if (json_object_size(ranks))
        bad |= json_object_set_new(j, "rank_pattern", ranks);
    else
        json_decref(ranks);
    if (json_object_size(alphas))
        bad |= json_object_set_new(j, "alpha_pattern", alphas);
    else
        json_decref(alphas);
    bad |= json_object_set_new(j, "fan_in_fan_out", json_boolean(save->fan_in_fan_out));
    static const char *const bias_modes[3] = {"none", "lora_only", "all"};
    bad |= json_object_set_new(j, "bias", json_string(bias_modes[save->bias]));
    bad |= json_object_set_new(j, "modules_to_save", saved ? saved : json_null());
    bad |= json_object_set_new(j, "init_lora_weights", json_true());
    bad |= json_object_set_new(j, "inference_mode", json_true());
    bad |= json_object_set_new(j, "layers_to_transform", json_null());
    bad |= json_object_set_new(j, "layers_pattern", json_null());
    bad |= json_object_set_new(j, "revision", json_null());
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}
