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
    if (bias && !json_is_null(bias) &&
        (!json_is_string(bias) || strcmp(json_string_value(bias), "none") != 0))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: bias \"%s\": clora loads adapters with bias \"none\"", path,
                           json_is_string(bias) ? json_string_value(bias) : "?");
    if (json_is_true(json_object_get(root, "use_dora")))
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: DoRA adapters (use_dora) are not supported",
                           path);
    json_t *layers = json_object_get(root, "layers_to_transform");
    if (layers && !json_is_null(layers))
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: layers_to_transform is not supported",
                           path);
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
    c->excludes = json_object_get(root, "exclude_modules");
    if (c->excludes && !json_is_array(c->excludes)) {
        if (!json_is_null(c->excludes))
            return clora__fail(CLORA_ERR_FORMAT, "%s: \"exclude_modules\" must be a list", path);
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

int clora__peft_targets(const clora__peft_config *c, const char *path)
{
    if (!c->targets)
        return 0;
    int hit = 0;
    if (json_is_string(c->targets)) {
        hit = regex_match("^(%s)$", json_string_value(c->targets), path);
        if (hit < 0)
            return -1;
    } else {
        size_t i;
        json_t *entry;
        json_array_foreach(c->targets, i, entry) {
            if (json_is_string(entry) && clora__peft_list_match(path, json_string_value(entry)))
                hit = 1;
        }
    }
    if (hit && c->excludes) {
        size_t i;
        json_t *entry;
        json_array_foreach(c->excludes, i, entry) {
            if (json_is_string(entry) && clora__peft_list_match(path, json_string_value(entry)))
                hit = 0;
        }
    }
    return hit;
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

/* A regex matching exactly `path` (dots escaped), for rank_pattern keys. */
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
        escaped(s->path, key, sizeof key);
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
    bad |= json_object_set_new(j, "bias", json_string("none"));
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
