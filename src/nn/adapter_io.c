/* adapter_io.c — PEFT LoRA adapter folders: adapter_config.json and
 * adapter_model.safetensors, saved from and loaded into a model.
 *
 * Keys: base_model.model.<module path>.lora_A.weight (r, in) and
 * .lora_B.weight (out, r), the "base_model.model." prefix optional on load;
 * modules_to_save as base_model.model.<module path>.<param>.
 *
 * Scales: PEFT multiplies by lora_alpha / r (use_rslora: / sqrt(r)). An
 * adapter trained with the original request's scale (alpha itself) is saved
 * with lora_alpha = alpha * r, which PEFT then applies as alpha: the same
 * outputs, in PEFT's terms.
 */
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define KEY_PREFIX "base_model.model."

/* ---- saving -------------------------------------------------------------------- */

typedef struct adapter_site {
    clora_node *node;
    char path[1024];
    clora__adapter *adapter;
} adapter_site;

typedef struct site_list {
    const char *name;
    adapter_site *sites;
    size_t count, capacity;
    clora_node **saved; /* modules_to_save */
    char (*saved_paths)[1024];
    size_t saved_count, saved_capacity;
    clora_status status;
} site_list;

static int collect_sites(clora_node *node, const char *path, void *user)
{
    site_list *list = user;
    if (node->trainable_module && node->kind != CLORA_NODE_LORA &&
        !(node->parent && node->parent->kind == CLORA_NODE_LORA)) {
        if (list->saved_count == list->saved_capacity) {
            size_t cap = list->saved_capacity ? 2 * list->saved_capacity : 8;
            clora_node **nodes = realloc(list->saved, cap * sizeof *nodes);
            if (nodes)
                list->saved = nodes;
            char(*paths)[1024] = realloc(list->saved_paths, cap * sizeof *paths);
            if (paths)
                list->saved_paths = paths;
            if (!nodes || !paths) {
                list->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing modules");
                return 1;
            }
            list->saved_capacity = cap;
        }
        list->saved[list->saved_count] = node;
        snprintf(list->saved_paths[list->saved_count++], 1024, "%s", path);
        return 0;
    }
    if (node->kind != CLORA_NODE_LORA)
        return 0;
    for (size_t i = 0; i < node->adapter_count; ++i)
        if (!strcmp(node->adapters[i].name, list->name)) {
            if (list->count == list->capacity) {
                size_t cap = list->capacity ? 2 * list->capacity : 16;
                adapter_site *grown = realloc(list->sites, cap * sizeof *grown);
                if (!grown) {
                    list->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing modules");
                    return 1;
                }
                list->sites = grown;
                list->capacity = cap;
            }
            adapter_site *site = &list->sites[list->count++];
            site->node = node;
            site->adapter = &node->adapters[i];
            snprintf(site->path, sizeof site->path, "%s", path);
        }
    return 0;
}

static void site_list_free(site_list *list)
{
    free(list->sites);
    free(list->saved);
    free(list->saved_paths);
}

/* PEFT's lora_alpha for one adapter: alpha, or alpha * r for the
 * original request's scale (PEFT divides by r). */
static double peft_alpha(const clora__adapter *ad)
{
    return ad->scale_mode == CLORA_SCALE_ALPHA ? (double)ad->alpha * (double)ad->rank
                                               : (double)ad->alpha;
}

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

static clora_status add_tensor(clora_safetensors_writer *writer, const char *key,
                               const clora__param *p)
{
    float *host = malloc((p->numel ? p->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", key);
    clora_status status = clora_buffer_download(p->value, 0, host, p->numel);
    if (status == CLORA_OK)
        status = clora_safetensors_writer_add(writer, key, CLORA_DTYPE_F32, p->ndim, p->shape, host);
    free(host);
    return status;
}

static json_t *adapter_config(const site_list *list)
{
    const clora__adapter *first = list->sites[0].adapter;
    json_t *j = json_object(), *targets = json_array(), *ranks = json_object(),
           *alphas = json_object(), *saved = NULL;
    if (!j || !targets || !ranks || !alphas) {
        json_decref(j);
        json_decref(targets);
        json_decref(ranks);
        json_decref(alphas);
        return NULL;
    }
    int bad = 0, all_in_out = 1;
    for (size_t i = 0; i < list->count; ++i) {
        const adapter_site *s = &list->sites[i];
        char key[2048];
        bad |= json_array_append_new(targets, json_string(s->path));
        escaped(s->path, key, sizeof key);
        if (s->adapter->rank != first->rank)
            bad |= json_object_set_new(ranks, key, json_integer((json_int_t)s->adapter->rank));
        if (peft_alpha(s->adapter) != peft_alpha(first))
            bad |= json_object_set_new(alphas, key, json_real(peft_alpha(s->adapter)));
        all_in_out &= s->node->children[0]->layout == CLORA_WEIGHT_IN_OUT;
    }
    if (list->saved_count > 0) {
        saved = json_array();
        bad |= !saved;
        for (size_t i = 0; i < list->saved_count && !bad; ++i)
            bad |= json_array_append_new(saved, json_string(list->saved_paths[i]));
    }
    bad |= json_object_set_new(j, "peft_type", json_string("LORA"));
    bad |= json_object_set_new(j, "task_type", json_null());
    bad |= json_object_set_new(j, "base_model_name_or_path", json_null());
    bad |= json_object_set_new(j, "r", json_integer((json_int_t)first->rank));
    bad |= json_object_set_new(j, "lora_alpha", json_real(peft_alpha(first)));
    bad |= json_object_set_new(j, "lora_dropout", json_real(first->dropout));
    /* Keys newer PEFT versions added are written only when they say
     * something: older versions refuse keys they do not know. */
    if (first->scale_mode == CLORA_SCALE_ALPHA_OVER_SQRT_R)
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
    bad |= json_object_set_new(j, "fan_in_fan_out", json_boolean(all_in_out));
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

clora_status clora_adapter_save(clora_model *model, const char *name, const char *dir)
{
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_adapter_save: %s is NULL",
                           model ? "dir" : "model");
    if (!name)
        name = clora_model_active_adapter(model);
    if (!name)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_adapter_save: no adapter is active; name the one to save");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    site_list list;
    memset(&list, 0, sizeof list);
    list.name = name;
    list.status = CLORA_OK;
    clora_model_visit(model, collect_sites, &list);
    if ((status = list.status)) {
        site_list_free(&list);
        return status;
    }
    if (list.count == 0) {
        site_list_free(&list);
        return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no adapter \"%s\"", name);
    }
    char weights_path[4096], config_path[4096];
    if ((status = clora__ensure_dir(dir)) ||
        (status = clora__join_path(weights_path, sizeof weights_path, dir,
                                   "adapter_model.safetensors")) ||
        (status = clora__join_path(config_path, sizeof config_path, dir, "adapter_config.json"))) {
        site_list_free(&list);
        return status;
    }
    clora_safetensors_writer *writer = NULL;
    status = clora_safetensors_writer_create(&writer);
    for (size_t i = 0; i < list.count && status == CLORA_OK; ++i) {
        char key[1300];
        snprintf(key, sizeof key, KEY_PREFIX "%s.lora_A.weight", list.sites[i].path);
        status = add_tensor(writer, key, list.sites[i].adapter->lora_a);
        snprintf(key, sizeof key, KEY_PREFIX "%s.lora_B.weight", list.sites[i].path);
        if (status == CLORA_OK)
            status = add_tensor(writer, key, list.sites[i].adapter->lora_b);
    }
    for (size_t i = 0; i < list.saved_count && status == CLORA_OK; ++i)
        for (size_t k = 0; k < list.saved[i]->param_count && status == CLORA_OK; ++k) {
            char key[1300];
            snprintf(key, sizeof key, KEY_PREFIX "%s.%s", list.saved_paths[i],
                     list.saved[i]->params[k]->name);
            status = add_tensor(writer, key, list.saved[i]->params[k]);
        }
    if (status == CLORA_OK)
        status = clora_safetensors_writer_metadata(writer, "format", "pt");
    json_t *config = status == CLORA_OK ? adapter_config(&list) : NULL;
    if (status == CLORA_OK && !config)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding adapter_config.json");
    if (status == CLORA_OK)
        status = clora__save_weights_and_config(weights_path, writer, config_path, config);
    json_decref(config);
    clora_safetensors_writer_destroy(writer);
    site_list_free(&list);
    return status;
}

/* ---- loading ----------------------------------------------------------------------- */

/* What adapter_config.json says, checked. */
typedef struct peft_config {
    size_t r;
    double alpha;
    int rslora;
    double dropout;
    json_t *targets;  /* array, string or NULL (borrowed from root) */
    json_t *excludes; /* array or NULL */
    json_t *rank_pattern, *alpha_pattern; /* objects or NULL */
    json_t *saved;    /* array or NULL */
} peft_config;

static clora_status parse_config(json_t *root, const char *path, peft_config *c)
{
    memset(c, 0, sizeof *c);
    const char *type = json_string_value(json_object_get(root, "peft_type"));
    if (!type)
        return clora__fail(CLORA_ERR_FORMAT, "%s: no \"peft_type\"", path);
    if (strcmp(type, "LORA") != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: peft_type \"%s\"; clora loads LORA", path,
                           type);
    json_t *r = json_object_get(root, "r");
    if (!json_is_integer(r) || json_integer_value(r) < 1 ||
        json_integer_value(r) > CLORA_MAX_RANK)
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"r\" must be an integer from 1 to %d", path,
                           CLORA_MAX_RANK);
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

/* The value the first matching pattern gives (PEFT's (.*\.)?(key)$ rule). */
static int pattern_value(json_t *map, const char *module, double *value)
{
    if (!map)
        return 0;
    const char *key;
    json_t *v;
    json_object_foreach(map, key, v) {
        size_t len = strlen(key) + 16;
        char *full = malloc(len);
        if (!full)
            return 0;
        snprintf(full, len, "^(.*\\.)?(%s)$", key);
        regex_t re;
        int ok = regcomp(&re, full, REG_EXTENDED | REG_NOSUB) == 0;
        free(full);
        if (!ok)
            continue;
        int hit = regexec(&re, module, 0, NULL, 0) == 0;
        regfree(&re);
        if (hit) {
            *value = json_number_value(v);
            return 1;
        }
    }
    return 0;
}

static int list_match(const char *path, const char *entry)
{
    size_t lp = strlen(path), le = strlen(entry);
    if (lp == le)
        return !strcmp(path, entry);
    return lp > le && path[lp - le - 1] == '.' && !strcmp(path + lp - le, entry);
}

/* Whether the config's target_modules select `path`. */
static int targeted(const peft_config *c, const char *path)
{
    if (!c->targets)
        return 0;
    int hit = 0;
    if (json_is_string(c->targets)) {
        const char *text = json_string_value(c->targets);
        size_t len = strlen(text) + 8;
        char *full = malloc(len);
        regex_t re;
        if (full) {
            snprintf(full, len, "^(%s)$", text);
            if (regcomp(&re, full, REG_EXTENDED | REG_NOSUB) == 0) {
                hit = regexec(&re, path, 0, NULL, 0) == 0;
                regfree(&re);
            }
            free(full);
        }
    } else {
        size_t i;
        json_t *entry;
        json_array_foreach(c->targets, i, entry) {
            if (json_is_string(entry) && list_match(path, json_string_value(entry)))
                hit = 1;
        }
    }
    if (hit && c->excludes) {
        size_t i;
        json_t *entry;
        json_array_foreach(c->excludes, i, entry) {
            if (json_is_string(entry) && list_match(path, json_string_value(entry)))
                hit = 0;
        }
    }
    return hit;
}

/* One module the adapter file gives LoRA weights for. */
typedef struct load_site {
    char path[1024];
    clora_node *node;
    float *a, *b; /* host copies */
    size_t rank;
    double alpha;
} load_site;

/* One parameter of a module to save. */
typedef struct load_saved {
    clora_node *node;
    clora__param *param;
    float *values;
} load_saved;

typedef struct load_plan {
    load_site *sites;
    size_t count;
    load_saved *saved;
    size_t saved_count;
} load_plan;

static void plan_free(load_plan *plan)
{
    for (size_t i = 0; i < plan->count; ++i) {
        free(plan->sites[i].a);
        free(plan->sites[i].b);
    }
    for (size_t i = 0; i < plan->saved_count; ++i)
        free(plan->saved[i].values);
    free(plan->sites);
    free(plan->saved);
}

static load_site *site_for(load_plan *plan, const char *module, size_t capacity)
{
    for (size_t i = 0; i < plan->count; ++i)
        if (!strcmp(plan->sites[i].path, module))
            return &plan->sites[i];
    if (plan->count == capacity)
        return NULL;
    load_site *site = &plan->sites[plan->count++];
    memset(site, 0, sizeof *site);
    snprintf(site->path, sizeof site->path, "%s", module);
    return site;
}

/* A float host copy of a tensor with exactly (d0, d1); names the key on error. */
static clora_status tensor_values(const char *file, const clora_tensor_view *view, size_t d0,
                                  size_t d1, float **out)
{
    if (!clora_dtype_is_float(view->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: tensor \"%s\" holds %s, not floats",
                           file, view->name, clora_dtype_name(view->dtype));
    if (view->ndim != 2 || view->shape[0] != d0 || view->shape[1] != d1) {
        char got[128] = "(";
        for (size_t d = 0; d < view->ndim; ++d)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "",
                     view->shape[d]);
        strncat(got, ")", sizeof got - strlen(got) - 1);
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has shape %s, the model needs (%zu, %zu)", file,
                           view->name, got, d0, d1);
    }
    *out = malloc((view->numel ? view->numel : 1) * sizeof **out);
    if (!*out)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", view->name);
    return clora_tensor_to_f32(view, *out);
}

static int suffix(const char *key, const char *end, size_t *module_len)
{
    size_t lk = strlen(key), le = strlen(end);
    if (lk <= le || strcmp(key + lk - le, end) != 0)
        return 0;
    *module_len = lk - le;
    return 1;
}

/* Reads every tensor into a plan, checking it against the model. */
static clora_status plan_load(clora_model *model, const peft_config *c,
                              const clora_safetensors *file, const char *path, load_plan *plan)
{
    size_t n = clora_safetensors_count(file);
    plan->sites = calloc(n + 1, sizeof *plan->sites);
    plan->saved = calloc(n + 1, sizeof *plan->saved);
    if (!plan->sites || !plan->saved)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    /* first the LoRA pairs ... */
    for (size_t t = 0; t < n; ++t) {
        clora_tensor_view view;
        clora_safetensors_get(file, t, &view);
        const char *key = view.name;
        if (!strncmp(key, KEY_PREFIX, strlen(KEY_PREFIX)))
            key += strlen(KEY_PREFIX);
        size_t len = 0;
        int is_a = suffix(key, ".lora_A.weight", &len), is_b = !is_a && suffix(key, ".lora_B.weight", &len);
        if (!is_a && !is_b) {
            /* ... or a parameter of a module to save */
            int saved = 0;
            size_t i;
            json_t *entry;
            if (c->saved)
                json_array_foreach(c->saved, i, entry) {
                    const char *dot = strrchr(key, '.');
                    if (!dot || !json_is_string(entry))
                        continue;
                    char module[1024];
                    snprintf(module, sizeof module, "%.*s", (int)(dot - key), key);
                    if (!list_match(module, json_string_value(entry)))
                        continue;
                    clora_node *node = NULL;
                    if (clora_model_find(model, module, &node) != CLORA_OK)
                        return clora__fail(CLORA_ERR_NOT_FOUND,
                                           "%s: tensor \"%s\" names module \"%s\", which the model "
                                           "lacks",
                                           path, view.name, module);
                    clora__param *p = clora__param_get(node, dot + 1);
                    if (!p)
                        return clora__fail(CLORA_ERR_NOT_FOUND,
                                           "%s: tensor \"%s\": module \"%s\" has no parameter "
                                           "\"%s\"",
                                           path, view.name, module, dot + 1);
                    load_saved *s = &plan->saved[plan->saved_count++];
                    s->node = node;
                    s->param = p;
                    clora_status status = tensor_values(
                        path, &view, p->shape[0], p->ndim > 1 ? p->shape[1] : 1, &s->values);
                    if (status != CLORA_OK && p->ndim == 1 && view.ndim == 1 &&
                        view.shape[0] == p->shape[0] && clora_dtype_is_float(view.dtype)) {
                        /* a 1-D parameter (a bias) */
                        free(s->values);
                        s->values = malloc(p->numel * sizeof *s->values);
                        status = s->values ? clora_tensor_to_f32(&view, s->values)
                                           : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading");
                    }
                    if (status != CLORA_OK)
                        return status;
                    saved = 1;
                    break;
                }
            if (!saved)
                return clora__fail(CLORA_ERR_FORMAT,
                                   "%s: unexpected tensor \"%s\" (neither lora_A/lora_B weight nor "
                                   "a module to save)",
                                   path, view.name);
            continue;
        }
        char module[1024];
        snprintf(module, sizeof module, "%.*s", (int)len, key);
        clora_node *node = NULL;
        if (clora_model_find(model, module, &node) != CLORA_OK)
            return clora__fail(CLORA_ERR_NOT_FOUND,
                               "%s: tensor \"%s\" is for module \"%s\", which the model lacks",
                               path, view.name, module);
        if (node->kind != CLORA_NODE_LINEAR && node->kind != CLORA_NODE_LORA)
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: tensor \"%s\" is for module \"%s\", which is %s, not Linear",
                               path, view.name, module, clora_node_kind_name(node->kind));
        load_site *site = site_for(plan, module, n);
        site->node = node;
        const clora_node *linear = clora__linear_of(node);
        double rank = (double)c->r;
        pattern_value(c->rank_pattern, module, &rank);
        site->rank = (size_t)rank;
        site->alpha = c->alpha;
        pattern_value(c->alpha_pattern, module, &site->alpha);
        float **dest = is_a ? &site->a : &site->b;
        if (*dest)
            return clora__fail(CLORA_ERR_FORMAT, "%s: two tensors for %s of module \"%s\"", path,
                               is_a ? "lora_A" : "lora_B", module);
        clora_status status =
            is_a ? tensor_values(path, &view, site->rank, linear->in_features, dest)
                 : tensor_values(path, &view, linear->out_features, site->rank, dest);
        if (status != CLORA_OK)
            return status;
    }
    for (size_t i = 0; i < plan->count; ++i)
        if (!plan->sites[i].a || !plan->sites[i].b)
            return clora__fail(CLORA_ERR_FORMAT, "%s: module \"%s\" has %s but no %s", path,
                               plan->sites[i].path, plan->sites[i].a ? "lora_A" : "lora_B",
                               plan->sites[i].a ? "lora_B" : "lora_A");
    if (plan->count == 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: the file holds no LoRA weights", path);
    return CLORA_OK;
}

/* Modules the config targets that the file has no weights for. */
typedef struct missing_walk {
    const peft_config *config;
    const load_plan *plan;
    char list[1024];
} missing_walk;

static int find_missing(clora_node *node, const char *path, void *user)
{
    missing_walk *walk = user;
    if ((node->kind != CLORA_NODE_LINEAR && node->kind != CLORA_NODE_LORA) ||
        (node->parent && node->parent->kind == CLORA_NODE_LORA) || !targeted(walk->config, path))
        return 0;
    for (size_t i = 0; i < walk->plan->count; ++i)
        if (walk->plan->sites[i].node == node)
            return 0;
    size_t used = strlen(walk->list);
    snprintf(walk->list + used, sizeof walk->list - used, "%s%s", used ? ", " : "", path);
    return 0;
}

clora_status clora_adapter_load(clora_model *model, const char *dir, const char *name)
{
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_adapter_load: %s is NULL",
                           model ? "dir" : "model");
    if (!name)
        name = "default";
    if (!*name || strchr(name, '.') || strchr(name, '/'))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_adapter_load: bad adapter name \"%s\"",
                           name);
    for (size_t i = 0; i < model->adapter_name_count; ++i)
        if (!strcmp(model->adapter_names[i], name))
            return clora__fail(CLORA_ERR_STATE,
                               "the model has an adapter \"%s\" already; delete it or load under "
                               "another name",
                               name);
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "clora_adapter_load: unmerge the merged adapter first");
    char config_path[4096], weights_path[4096];
    clora_status status;
    if ((status = clora__join_path(config_path, sizeof config_path, dir, "adapter_config.json")) ||
        (status = clora__join_path(weights_path, sizeof weights_path, dir,
                                   "adapter_model.safetensors")))
        return status;
    json_t *root = NULL;
    if ((status = clora__read_json(config_path, &root)))
        return status;
    peft_config config;
    clora_safetensors *file = NULL;
    load_plan plan;
    memset(&plan, 0, sizeof plan);
    status = parse_config(root, config_path, &config);
    if (status == CLORA_OK)
        status = clora_safetensors_open(&file, weights_path);
    if (status == CLORA_OK)
        status = plan_load(model, &config, file, weights_path, &plan);
    if (status == CLORA_OK) {
        missing_walk walk = {&config, &plan, ""};
        clora_model_visit(model, find_missing, &walk);
        if (walk.list[0])
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: adapter_config.json targets modules the weights do not "
                                 "cover: %s",
                                 weights_path, walk.list);
    }
    /* Everything checked: now change the model. */
    for (size_t i = 0; i < plan.count && status == CLORA_OK; ++i) {
        load_site *site = &plan.sites[i];
        if (site->node->kind == CLORA_NODE_LINEAR)
            status = clora__wrap_linear(site->node, &site->node);
        if (status == CLORA_OK)
            status = clora__lora_add_adapter(
                site->node, name, site->rank, (float)site->alpha,
                config.rslora ? CLORA_SCALE_ALPHA_OVER_SQRT_R : CLORA_SCALE_ALPHA_OVER_R,
                (float)config.dropout, CLORA_INIT_PEFT);
        if (status == CLORA_OK) {
            clora__adapter *ad = &site->node->adapters[site->node->adapter_count - 1];
            status = clora_buffer_upload(ad->lora_a->value, 0, site->a, ad->lora_a->numel);
            if (status == CLORA_OK)
                status = clora_buffer_upload(ad->lora_b->value, 0, site->b, ad->lora_b->numel);
        }
    }
    for (size_t i = 0; i < plan.saved_count && status == CLORA_OK; ++i) {
        plan.saved[i].node->trainable_module = 1;
        status = clora_buffer_upload(plan.saved[i].param->value, 0, plan.saved[i].values,
                                     plan.saved[i].param->numel);
    }
    if (status == CLORA_OK)
        status = clora__adapters_register(model, name);
    if (status == CLORA_OK) {
        model->active_adapter = (int)model->adapter_name_count - 1;
        clora__apply_adapter_trainability(model);
    }
    plan_free(&plan);
    clora_safetensors_close(file);
    json_decref(root);
    return status;
}
