/* adapter_io.c — PEFT LoRA adapter folders: adapter_config.json (read and
 * written by io/peft.c) and adapter_model.safetensors, saved from and
 * loaded into a model.
 *
 * Keys: base_model.model.<module path>.lora_A.weight (r, in) and
 * .lora_B.weight (out, r), the "base_model.model." prefix optional on load;
 * an Embedding's .lora_embedding_A (r, num_embeddings) and .lora_embedding_B
 * (embedding_dim, r), without ".weight" (PEFT 0.6 and 0.21 alike);
 * modules_to_save as base_model.model.<module path>.<param>; a target's own
 * parameters as <module path>.base_layer.<param> (saved for a new head that
 * gets LoRA, whose frozen random weight the adapter needs; loaded into the
 * base Linear, as PEFT loads them).
 *
 * Scales: PEFT multiplies by lora_alpha / r (use_rslora: / sqrt(r)). An
 * adapter trained with the original request's scale (alpha itself) is saved
 * with lora_alpha = alpha * r, which PEFT then applies as alpha: the same
 * outputs, in PEFT's terms.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

#define KEY_PREFIX "base_model.model."

/* ---- saving -------------------------------------------------------------------- */
/* A DoRA adapter's magnitude goes under <module>.lora_magnitude_vector, as
 * PEFT 0.21 saves it, with use_dora in adapter_config.json. */

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
    if (node->trainable_module && !clora__is_lora(node) && !clora__is_base_layer(node)) {
        if (list->saved_count == list->saved_capacity) {
            size_t cap = list->saved_capacity ? 2 * list->saved_capacity : 8;
            clora_node **nodes = clora__realloc(list->saved, cap * sizeof *nodes);
            if (nodes)
                list->saved = nodes;
            char(*paths)[1024] = clora__realloc(list->saved_paths, cap * sizeof *paths);
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
    if (!clora__is_lora(node))
        return 0;
    for (size_t i = 0; i < clora__lora_adapter_count(node); ++i)
        if (!strcmp(clora__lora_adapter(node, i)->name, list->name)) {
            if (list->count == list->capacity) {
                size_t cap = list->capacity ? 2 * list->capacity : 16;
                adapter_site *grown = clora__realloc(list->sites, cap * sizeof *grown);
                if (!grown) {
                    list->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing modules");
                    return 1;
                }
                list->sites = grown;
                list->capacity = cap;
            }
            adapter_site *site = &list->sites[list->count++];
            site->node = node;
            site->adapter = clora__lora_adapter(node, i);
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

/* Every parameter of a module to save and of the modules below it (a
 * composite such as BERT's pooler holds its parameters in its children),
 * under its full name, as PEFT saves the module's copy. */
static clora_status save_module(clora_model *model, clora_safetensors_writer *writer,
                                const char *path)
{
    const size_t len = strlen(path);
    size_t count = 0;
    clora_status status = clora_model_params(model, &count);
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        clora_param_info info;
        if ((status = clora_model_param(model, i, &info)))
            break;
        if (strncmp(info.name, path, len) != 0 || info.name[len] != '.' ||
            clora__is_lora(info.node) || clora__is_base_layer(info.node))
            continue;
        char key[1300];
        snprintf(key, sizeof key, KEY_PREFIX "%s", info.name);
        status = clora__writer_add_buffer(writer, key, info.value);
    }
    return status;
}

/* PEFT's lora_alpha for one adapter: alpha, or alpha * r for the
 * original request's scale (PEFT divides by r). */
static double peft_alpha(const clora__adapter *ad)
{
    return ad->scale_mode == CLORA_SCALE_ALPHA ? (double)ad->alpha * (double)ad->rank
                                               : (double)ad->alpha;
}

/* adapter_config.json for the sites (io/peft.c writes it). */
static json_t *adapter_config(const site_list *list, int bias)
{
    clora__peft_site *sites = clora__calloc(list->count, sizeof *sites);
    const char **saved = clora__calloc(list->saved_count + 1, sizeof *saved);
    json_t *config = NULL;
    if (sites && saved) {
        const clora__adapter *first = list->sites[0].adapter;
        clora__peft_save save = {sites, list->count, first->dropout,
                                 first->scale_mode == CLORA_SCALE_ALPHA_OVER_SQRT_R, 1, saved,
                                 list->saved_count, bias, 0};
        int linear_sites = 0;
        for (size_t i = 0; i < list->count; ++i) {
            sites[i].path = list->sites[i].path;
            sites[i].rank = list->sites[i].adapter->rank;
            sites[i].alpha = peft_alpha(list->sites[i].adapter);
            if (clora__is_embedding(list->sites[i].node))
                continue; /* PEFT's lora.Embedding ignores fan_in_fan_out */
            clora_weight_layout layout;
            clora__linear_dims_of(list->sites[i].node, NULL, NULL, &layout);
            save.fan_in_fan_out &= layout == CLORA_WEIGHT_IN_OUT;
            linear_sites = 1;
        }
        save.fan_in_fan_out &= linear_sites;
        for (size_t i = 0; i < list->saved_count; ++i)
            saved[i] = list->saved_paths[i];
        save.dora = first->magnitude != NULL;
        config = clora__peft_config_json(&save);
    }
    free(sites);
    free(saved);
    return config;
}

/* The biases an adapter's bias mode trains, as PEFT saves them: those of
 * the layers carrying the adapter (lora_only) or every "bias" (all), a
 * carrier's under both of PEFT's names for it, "<path>.base_layer.bias"
 * (PEFT 0.7 on) and "<path>.bias" (before; each version ignores the other's). */
typedef struct bias_walk {
    const site_list *list;
    clora_safetensors_writer *writer;
    int mode;
    clora_status status;
} bias_walk;

static int write_bias(clora_node *node, const char *path, void *user)
{
    bias_walk *walk = user;
    const clora__param *bias = clora__param_get(node, "bias");
    if (!bias || node->trainable_module)
        return 0; /* a module to save is saved whole */
    const int base = clora__is_base_layer(node);
    const size_t module_len = base ? strlen(path) - strlen(".base_layer") : strlen(path);
    int carrier = 0;
    for (size_t i = 0; base && i < walk->list->count; ++i)
        carrier |= walk->list->sites[i].node == node->parent;
    if (walk->mode == CLORA_BIAS_LORA_ONLY && !carrier)
        return 0;
    char key[1300];
    if (base && !clora__linear_of(node->parent)->new_head) { /* a new head's is saved already */
        snprintf(key, sizeof key, KEY_PREFIX "%s.bias", path);
        walk->status = clora__writer_add_buffer(walk->writer, key, bias->value);
    }
    snprintf(key, sizeof key, KEY_PREFIX "%.*s.bias", (int)module_len, path);
    if (walk->status == CLORA_OK)
        walk->status = clora__writer_add_buffer(walk->writer, key, bias->value);
    return walk->status != CLORA_OK;
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
        const int table = clora__is_embedding(list.sites[i].node);
        snprintf(key, sizeof key, KEY_PREFIX "%s.%s", list.sites[i].path,
                 table ? "lora_embedding_A" : "lora_A.weight");
        status = clora__writer_add_buffer(writer, key, list.sites[i].adapter->lora_a->value);
        snprintf(key, sizeof key, KEY_PREFIX "%s.%s", list.sites[i].path,
                 table ? "lora_embedding_B" : "lora_B.weight");
        if (status == CLORA_OK)
            status = clora__writer_add_buffer(writer, key, list.sites[i].adapter->lora_b->value);
        snprintf(key, sizeof key, KEY_PREFIX "%s.lora_magnitude_vector", list.sites[i].path);
        if (status == CLORA_OK && list.sites[i].adapter->magnitude)
            status = clora__writer_add_buffer(writer, key,
                                              list.sites[i].adapter->magnitude->value);
        const clora_node *base = list.sites[i].node->kind->base(list.sites[i].node);
        for (size_t k = 0; base->new_head && k < base->param_count && status == CLORA_OK; ++k) {
            snprintf(key, sizeof key, KEY_PREFIX "%s.base_layer.%s", list.sites[i].path,
                     base->params[k]->name);
            status = clora__writer_add_buffer(writer, key, base->params[k]->value);
        }
    }
    for (size_t i = 0; i < list.saved_count && status == CLORA_OK; ++i)
        status = save_module(model, writer, list.saved_paths[i]);
    if (status == CLORA_OK)
        status = clora_safetensors_writer_metadata(writer, "format", "pt");
    const int bias = model->adapter_bias[clora__adapter_index(model, name)];
    if (status == CLORA_OK && bias != CLORA_BIAS_NONE) {
        bias_walk walk = {&list, writer, bias, CLORA_OK};
        clora_model_visit(model, write_bias, &walk);
        status = walk.status;
    }
    json_t *config = status == CLORA_OK ? adapter_config(&list, bias) : NULL;
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

/* One module the adapter file gives LoRA weights for. */
typedef struct load_site {
    char path[1024];
    clora_node *node;
    float *a, *b, *m; /* host copies; m: DoRA's magnitude, else NULL */
    size_t rank;
    double alpha;
} load_site;

/* One parameter of a module to save, or a target's base parameter. */
typedef struct load_saved {
    clora_node *node;
    clora__param *param;
    float *values;
    int base; /* a LoRA target's own parameter: stays frozen */
    float *previous; /* its values before the load, while loading */
    int was_trainable_module;
} load_saved;

typedef struct load_plan {
    load_site *sites;
    size_t count;
    load_saved *saved;
    size_t saved_count;
} load_plan;

/* A module-to-save parameter takes the file's values; its own are kept in
 * `previous` for undo_load. */
static clora_status save_param(load_saved *saved)
{
    const size_t n = saved->param->value->numel;
    float *previous = clora__malloc((n ? n : 1) * sizeof *previous);
    if (!previous)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", saved->node->name);
    saved->was_trainable_module = saved->node->trainable_module;
    clora_status status = clora_buffer_download(saved->param->value, 0, previous, n);
    if (status != CLORA_OK) {
        free(previous);
        return status;
    }
    saved->previous = previous;
    status = clora_buffer_upload(saved->param->value, 0, saved->values, n);
    if (status == CLORA_OK)
        saved->node->trainable_module |= !saved->base;
    return status;
}

/* Takes back what a load that failed part way changed: the adapter from
 * the first `sites` sites (unwrapping the layers it wrapped), the values of
 * the first `saved` parameters (and of the one it failed in). */
static void undo_load(load_plan *plan, const char *name, size_t sites, size_t saved)
{
    for (size_t i = 0; i < saved && i < plan->saved_count; ++i) {
        load_saved *s = &plan->saved[i];
        if (!s->previous)
            continue; /* failed before it changed anything */
        clora_buffer_upload(s->param->value, 0, s->previous, s->param->value->numel);
        s->node->trainable_module = s->was_trainable_module;
    }
    for (size_t i = 0; i < sites && i < plan->count; ++i) {
        clora_node *node = plan->sites[i].node;
        if (!clora__is_lora(node))
            continue; /* its wrapping failed */
        const int k = clora__lora_find(node, name);
        if (k >= 0)
            clora__lora_remove(node, (size_t)k);
        else
            clora__lora_unwrap_empty(node);
    }
}

static void plan_free(load_plan *plan)
{
    for (size_t i = 0; i < plan->count; ++i) {
        free(plan->sites[i].a);
        free(plan->sites[i].b);
        free(plan->sites[i].m);
    }
    for (size_t i = 0; i < plan->saved_count; ++i) {
        free(plan->saved[i].values);
        free(plan->saved[i].previous);
    }
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

/* A float host copy of a tensor with exactly (d0, d1), or (d0) when d1 is
 * 0; names the key on error. */
static clora_status tensor_values(const char *file, const clora_tensor_view *view, size_t d0,
                                  size_t d1, float **out)
{
    if (!clora_dtype_is_float(view->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: tensor \"%s\" holds %s, not floats",
                           file, view->name, clora_dtype_name(view->dtype));
    if (!d1 && (view->ndim != 1 || view->shape[0] != d0)) {
        char got[128];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has %s values, the model needs (%zu)", file,
                           view->name,
                           view->ndim == 1 ? (snprintf(got, sizeof got, "%zu", view->numel), got)
                                           : "not 1-D",
                           d0);
    }
    if (d1 && (view->ndim != 2 || view->shape[0] != d0 || view->shape[1] != d1)) {
        char got[128] = "(";
        for (size_t d = 0; d < view->ndim; ++d)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%zu", d ? ", " : "",
                     view->shape[d]);
        strncat(got, ")", sizeof got - strlen(got) - 1);
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has shape %s, the model needs (%zu, %zu)", file,
                           view->name, got, d0, d1);
    }
    *out = clora__malloc((view->numel ? view->numel : 1) * sizeof **out);
    if (!*out)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", view->name);
    clora_status status = clora_tensor_to_f32(view, *out);
    return status == CLORA_OK ? clora__check_finite(file, view->name, *out, view->numel) : status;
}

/* What a tensor other than a LoRA matrix is for. */
typedef enum saved_role {
    SAVED_MODULE, /* <module>.<param> of a module modules_to_save lists */
    SAVED_BASE,   /* <target>.base_layer.<param>: a target's own parameter */
    SAVED_BIAS    /* <module>.bias the config's "bias" trains */
} saved_role;

/* A tensor that is not a LoRA matrix, read into the plan after checking
 * it against the model's parameter. The same parameter given twice (PEFT's
 * old and new names for a target's bias) must have the same values. */
static clora_status plan_saved(clora_model *model, const clora_tensor_view *view, const char *key,
                               size_t base_len, saved_role role, const char *path,
                               load_plan *plan)
{
    /* clora__peft_check saw that the module is one to save, a target, or
     * one whose bias the config saves */
    const char *dot = strrchr(key, '.');
    const size_t len = role == SAVED_BASE ? base_len : (size_t)(dot - key);
    char module[1024];
    snprintf(module, sizeof module, "%.*s", (int)len, key);
    static const char *const copies[2] = {".original_module", ".modules_to_save"};
    for (int k = 0; role != SAVED_BASE && k < 2; ++k)
        if (len > strlen(copies[k]) && !strcmp(module + len - strlen(copies[k]), copies[k]))
            return CLORA_OK; /* bias "all" in PEFT also lists a module to save's two copies'
                              * biases: the one before training, and the trained one that
                              * "<module>.bias" holds too */
    clora_node *node = NULL;
    if (clora_model_find(model, module, &node) != CLORA_OK)
        return clora__fail(CLORA_ERR_NOT_FOUND,
                           "%s: tensor \"%s\" names module \"%s\", which the model lacks", path,
                           view->name, module);
    if (role == SAVED_BASE && clora__is_embedding(node)) /* PEFT 0.21 saves embed_tokens' table */
        node = node->kind->base ? node->kind->base(node) : node;
    else if (role == SAVED_BASE && (!(node = clora__linear_of(node)) || node->tied))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: tensor \"%s\": module \"%s\" is not a Linear or Embedding with "
                           "weights of its own",
                           path, view->name, module);
    if (role == SAVED_BIAS && clora__linear_of(node))
        node = clora__linear_of(node);
    clora__param *p = clora__param_get(node, dot + 1);
    if (!p)
        return clora__fail(CLORA_ERR_NOT_FOUND,
                           "%s: tensor \"%s\": module \"%s\" has no parameter \"%s\"", path,
                           view->name, module, dot + 1);
    if (clora_dtype_is_packed(p->value->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "%s: tensor \"%s\" replaces the weight of \"%s\", which is stored "
                           "packed (%s); load the model unpacked (base_dtype F32) for this adapter",
                           path, view->name, module, clora_dtype_name(p->value->dtype));
    load_saved *s = &plan->saved[plan->saved_count++];
    s->node = node;
    s->param = p;
    s->base = role != SAVED_MODULE;
    clora_status status =
        tensor_values(path, view, p->shape[0], p->ndim > 1 ? p->shape[1] : 1, &s->values);
    if (status != CLORA_OK && p->ndim == 1 && view->ndim == 1 && view->shape[0] == p->shape[0] &&
        clora_dtype_is_float(view->dtype)) { /* a 1-D parameter (a bias) */
        free(s->values);
        s->values = clora__malloc(p->numel * sizeof *s->values);
        status = s->values ? clora_tensor_to_f32(view, s->values)
                           : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading");
        if (status == CLORA_OK)
            status = clora__check_finite(path, view->name, s->values, p->numel);
    }
    for (size_t i = 0; status == CLORA_OK && i + 1 < plan->saved_count; ++i)
        if (plan->saved[i].param == p) {
            if (memcmp(plan->saved[i].values, s->values, p->numel * sizeof *s->values))
                status = clora__fail(CLORA_ERR_FORMAT,
                                     "%s: tensor \"%s\" gives %s of module \"%s\" other values "
                                     "than an earlier tensor does",
                                     path, view->name, p->name, module);
            free(s->values);
            s->values = NULL;
            plan->saved_count--;
            break;
        }
    return status;
}

/* Reads every tensor of a file clora__peft_check passed into a plan,
 * checking it against the model. */
static clora_status plan_load(clora_model *model, const clora__peft_config *c,
                              const clora_safetensors *file, const char *path, load_plan *plan)
{
    size_t n = clora_safetensors_count(file);
    plan->sites = clora__calloc(n + 1, sizeof *plan->sites);
    plan->saved = clora__calloc(n + 1, sizeof *plan->saved);
    if (!plan->sites || !plan->saved)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    /* first the LoRA pairs ... */
    for (size_t t = 0; t < n; ++t) {
        clora_tensor_view view;
        clora_safetensors_get(file, t, &view);
        const char *key = NULL;
        size_t len = 0;
        const clora__peft_key_kind kind = clora__peft_key(view.name, &key, &len);
        const int is_a = kind == CLORA__PEFT_LORA_A || kind == CLORA__PEFT_EMBEDDING_A;
        const int table = kind == CLORA__PEFT_EMBEDDING_A || kind == CLORA__PEFT_EMBEDDING_B;
        if (kind == CLORA__PEFT_SAVED || kind == CLORA__PEFT_BASE) { /* ... or another */
            saved_role role = kind == CLORA__PEFT_BASE ? SAVED_BASE : SAVED_MODULE;
            if (role == SAVED_MODULE) {
                char module[1024];
                snprintf(module, sizeof module, "%.*s", (int)(strrchr(key, '.') - key), key);
                if (!clora__peft_saves(c, module))
                    role = SAVED_BIAS;
            }
            clora_status status = plan_saved(model, &view, key, len, role, path, plan);
            if (status != CLORA_OK)
                return status;
            continue;
        }
        char module[1024];
        snprintf(module, sizeof module, "%.*s", (int)len, key);
        clora_node *node = NULL;
        if (clora_model_find(model, module, &node) != CLORA_OK)
            return clora__fail(CLORA_ERR_NOT_FOUND,
                               "%s: tensor \"%s\" is for module \"%s\", which the model lacks",
                               path, view.name, module);
        if (table ? !clora__is_embedding(node) : !clora__linear_of(node))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: tensor \"%s\" is for module \"%s\", which is %s, not %s",
                               path, view.name, module, node->kind->name,
                               table ? "Embedding" : "Linear");
        load_site *site = site_for(plan, module, n);
        site->node = node;
        size_t in = 0, features = 0;
        if (table) { /* A (r, num_embeddings), B (embedding_dim, r) */
            const clora_buffer *w = clora__param_value(node->kind->base ? node->kind->base(node)
                                                                         : node,
                                                       "weight");
            in = w->shape[0];
            features = w->shape[1];
        } else {
            clora__linear_dims_of(node, &in, &features, NULL);
        }
        clora_status status = clora__peft_module(c, module, &site->rank, &site->alpha);
        if (status != CLORA_OK)
            return status;
        if (kind == CLORA__PEFT_MAGNITUDE) {
            if ((status = clora__dora_check_base(node)) != CLORA_OK)
                return status;
            status = tensor_values(path, &view, features, 0, &site->m);
            if (status != CLORA_OK)
                return status;
            continue;
        }
        float **dest = is_a ? &site->a : &site->b;
        status = is_a ? tensor_values(path, &view, site->rank, in, dest)
                      : tensor_values(path, &view, features, site->rank, dest);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK; /* pairs complete, one of each, at least one: clora__peft_check's rules */
}

/* Modules the config targets that the file has no weights for. */
typedef struct missing_walk {
    const clora__peft_config *config;
    const load_plan *plan;
    char list[1024];
    int failed; /* memory for a match ran out (the failure is set) */
} missing_walk;

static int find_missing(clora_node *node, const char *path, void *user)
{
    missing_walk *walk = user;
    if ((!clora__linear_of(node) && !clora__is_embedding(node)) || clora__is_base_layer(node))
        return 0;
    const int targeted = clora__peft_targets(walk->config, path);
    if (targeted < 0)
        walk->failed = 1;
    if (targeted <= 0)
        return targeted < 0;
    for (size_t i = 0; i < walk->plan->count; ++i)
        if (walk->plan->sites[i].node == node)
            return 0;
    size_t used = strlen(walk->list);
    snprintf(walk->list + used, sizeof walk->list - used, "%s%s", used ? ", " : "", path);
    return 0;
}

clora_status clora_adapter_check(const char *dir)
{
    if (!dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_adapter_check: dir is NULL");
    return clora__peft_check(dir, CLORA_MAX_RANK, NULL, NULL);
}

clora_status clora_folder_finish_save(const char *dir)
{
    if (!dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_folder_finish_save: dir is NULL");
    return clora__finish_interrupted_save(dir);
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
    if (clora__adapter_index(model, name) >= 0)
            return clora__fail(CLORA_ERR_STATE,
                               "the model has an adapter \"%s\" already; delete it or load under "
                               "another name",
                               name);
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "clora_adapter_load: unmerge the merged adapter first");
    char weights_path[4096]; /* for messages */
    clora_status status =
        clora__join_path(weights_path, sizeof weights_path, dir, "adapter_model.safetensors");
    if (status != CLORA_OK)
        return status;
    clora__peft_config config;
    clora_safetensors *file = NULL;
    if ((status = clora__peft_check(dir, CLORA_MAX_RANK, &config, &file)))
        return status;
    load_plan plan;
    memset(&plan, 0, sizeof plan);
    status = clora__bert_adapter_check(model, file, weights_path);
    if (status == CLORA_OK)
        status = plan_load(model, &config, file, weights_path, &plan);
    if (status == CLORA_OK) {
        missing_walk walk = {&config, &plan, "", 0};
        clora_model_visit(model, find_missing, &walk);
        if (walk.failed)
            status = CLORA_ERR_OUT_OF_HOST_MEMORY;
        else if (walk.list[0])
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: adapter_config.json targets modules the weights do not "
                                 "cover: %s",
                                 weights_path, walk.list);
    }
    /* Everything checked: now change the model. */
    size_t sites_done = 0, saved_done = 0;
    for (; sites_done < plan.count && status == CLORA_OK; ++sites_done) {
        load_site *site = &plan.sites[sites_done];
        clora__adapter *ad = NULL;
        if (!clora__is_lora(site->node))
            status = clora__wrap_linear(site->node, &site->node);
        if (status == CLORA_OK)
            status = clora__lora_add_adapter(
                site->node, name, site->rank, (float)site->alpha,
                config.rslora ? CLORA_SCALE_ALPHA_OVER_SQRT_R : CLORA_SCALE_ALPHA_OVER_R,
                (float)config.dropout, CLORA_INIT_PEFT, &ad);
        if (status == CLORA_OK) {
            status = clora_buffer_upload(ad->lora_a->value, 0, site->a, ad->lora_a->numel);
            if (status == CLORA_OK)
                status = clora_buffer_upload(ad->lora_b->value, 0, site->b, ad->lora_b->numel);
        }
        clora__param *m = NULL;
        if (status == CLORA_OK && site->m && (status = clora__lora_add_magnitude(site->node, ad,
                                                                                  &m)) == CLORA_OK)
            status = clora_buffer_upload(m->value, 0, site->m, m->numel);
    }
    for (; saved_done < plan.saved_count && status == CLORA_OK; ++saved_done)
        status = save_param(&plan.saved[saved_done]);
    if (status == CLORA_OK)
        status = clora__adapters_register(model, name);
    if (status == CLORA_OK) {
        model->active_adapter = (int)model->adapter_name_count - 1;
        model->adapter_bias[model->active_adapter] = (unsigned char)config.bias;
        clora__apply_adapter_trainability(model);
    } else {
        undo_load(&plan, name, sites_done, saved_done);
    }
    plan_free(&plan);
    clora_safetensors_close(file);
    clora__peft_config_free(&config);
    return status;
}
