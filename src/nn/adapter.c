/* adapter.c — replace_linear_with_lora, the model's named adapters, which
 * one is active and trains, delete, merge and unmerge. A LoRA node's own
 * adapters are lora_layer.c's. */
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

clora_lora_config clora_lora_config_default(void)
{
    clora_lora_config config;
    memset(&config, 0, sizeof config);
    config.rank = 8;
    config.alpha = 8.0f;
    config.scale_mode = CLORA_SCALE_ALPHA_OVER_R;
    config.init = CLORA_INIT_PEFT;
    return config;
}

/* ---- the model's adapters ------------------------------------------------------ */

size_t clora_model_adapter_count(clora_model *model)
{
    return model ? model->adapter_name_count : 0;
}

const char *clora_model_adapter_name(clora_model *model, size_t index)
{
    return model && index < model->adapter_name_count ? model->adapter_names[index] : NULL;
}

const char *clora_model_active_adapter(clora_model *model)
{
    return model && model->active_adapter >= 0 ? model->adapter_names[model->active_adapter] : NULL;
}

/* ---- trainability ------------------------------------------------------------- */

/* Trainable: the active adapter's LoRA parameters, every parameter of a
 * module to save, and the biases the adapter's bias mode names (every
 * "bias" for CLORA_BIAS_ALL; those of the layers carrying the adapter for
 * CLORA_BIAS_LORA_ONLY). */
static void apply_trainability(clora_node *node, const char *active, int bias, int in_saved_module,
                               int in_target)
{
    int saved = in_saved_module || node->trainable_module;
    for (size_t i = 0; i < node->param_count; ++i)
        node->params[i]->trainable =
            saved || (!strcmp(node->params[i]->name, "bias") &&
                      (bias == CLORA_BIAS_ALL || (bias == CLORA_BIAS_LORA_ONLY && in_target)));
    int target = 0;
    if (clora__is_lora(node)) {
        clora__lora_activate(node, active);
        target = active && clora__lora_find(node, active) >= 0;
    }
    for (size_t i = 0; i < node->child_count; ++i)
        apply_trainability(node->children[i], active, bias, saved,
                           target && clora__is_base_layer(node->children[i]));
}

void clora__apply_adapter_trainability(clora_model *model)
{
    const int bias = model->active_adapter >= 0 ? model->adapter_bias[model->active_adapter] : 0;
    apply_trainability(model->root, clora_model_active_adapter(model), bias, 0, 0);
    clora__model_touch(model);
}

clora_status clora_model_set_adapter(clora_model *model, const char *name)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_set_adapter: model is NULL");
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_model_set_adapter: adapter \"%s\" is merged into the weights; "
                           "unmerge it first",
                           clora_model_active_adapter(model));
    int index = -1;
    if (name && (index = clora__adapter_index(model, name)) < 0)
        return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no adapter \"%s\"", name);
    model->active_adapter = index;
    clora__apply_adapter_trainability(model);
    return CLORA_OK;
}

/* ---- matching module paths --------------------------------------------------- */

typedef struct compiled {
    regex_t *patterns;
    size_t count;
} compiled;

static void compiled_free(compiled *c)
{
    for (size_t i = 0; i < c->count; ++i)
        regfree(&c->patterns[i]);
    free(c->patterns);
    c->patterns = NULL;
    c->count = 0;
}

/* Compiles each `text` as prefix + text + suffix (POSIX extended). */
static clora_status compile(compiled *c, const char *const *texts, size_t n, const char *prefix,
                            const char *suffix, const char *what)
{
    c->count = 0;
    c->patterns = clora__calloc(n ? n : 1, sizeof *c->patterns);
    if (!c->patterns)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "compiling %s", what);
    for (size_t i = 0; i < n; ++i) {
        size_t len = strlen(prefix) + strlen(texts[i]) + strlen(suffix) + 1;
        char *full = clora__malloc(len);
        if (!full) {
            compiled_free(c);
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "compiling %s", what);
        }
        snprintf(full, len, "%s%s%s", prefix, texts[i], suffix);
        int rc = regcomp(&c->patterns[i], full, REG_EXTENDED | REG_NOSUB);
        free(full);
        if (rc != 0) {
            char why[256];
            regerror(rc, &c->patterns[i], why, sizeof why);
            compiled_free(c);
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s \"%s\" is not a valid regex: %s",
                               what, texts[i], why);
        }
        c->count++;
    }
    return CLORA_OK;
}

/* Index of the first pattern matching `path`, or -1. */
static int first_match(const compiled *c, const char *path)
{
    for (size_t i = 0; i < c->count; ++i)
        if (regexec(&c->patterns[i], path, 0, NULL, 0) == 0)
            return (int)i;
    return -1;
}

/* ---- replace_linear_with_lora ------------------------------------------------------- */

typedef struct selection {
    const clora_lora_config *config;
    const clora_node *root; /* only nodes at or below it */
    compiled target_regex, rank_patterns, alpha_patterns;
    char *target_hit, *save_hit; /* per list entry: matched something */
    clora_node **nodes;          /* layers to receive the adapter */
    size_t *ranks;
    float *alphas;
    size_t count, capacity;
    clora_node **saved;          /* modules_to_save matches */
    size_t saved_count, saved_capacity;
    clora_status status;
} selection;

static int push(void ***list, size_t *count, size_t *capacity, void *item)
{
    if (*count == *capacity) {
        size_t cap = *capacity ? 2 * *capacity : 16;
        void **grown = clora__realloc(*list, cap * sizeof *grown);
        if (!grown)
            return 0;
        *list = grown;
        *capacity = cap;
    }
    (*list)[(*count)++] = item;
    return 1;
}

static int within(const clora_node *node, const clora_node *root)
{
    for (; node; node = node->parent)
        if (node == root)
            return 1;
    return 0;
}

static int select_layers(clora_node *node, const char *path, void *user)
{
    selection *sel = user;
    const clora_lora_config *cfg = sel->config;
    if (!within(node, sel->root))
        return 0;
    for (size_t i = 0; i < cfg->modules_to_save_count; ++i)
        if (*path && clora__peft_list_match(path, cfg->modules_to_save[i])) {
            sel->save_hit[i] = 1;
            if (!push((void ***)&sel->saved, &sel->saved_count, &sel->saved_capacity, node)) {
                sel->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "selecting modules");
                return 1;
            }
        }
    if (clora__is_base_layer(node))
        return 0; /* a base_layer: its LoRA node is the module */
    int matched = 0, listed = 0, whole = 0;
    if (cfg->target_module_count > 0) {
        for (size_t i = 0; i < cfg->target_module_count; ++i)
            if (*path && clora__peft_list_match(path, cfg->target_modules[i])) {
                sel->target_hit[i] = 1;
                listed = matched = 1;
                whole |= !strcmp(path, cfg->target_modules[i]);
            }
    } else if (cfg->target_regex) {
        matched = listed = first_match(&sel->target_regex, path) >= 0;
        whole = 1;
    } else {
        matched = clora__linear_of(node) != NULL;
    }
    if (matched && !whole && cfg->layers_to_transform_count > 0) {
        const long index =
            clora__peft_layer_index(path, cfg->layers_pattern, cfg->layers_pattern_count);
        if (index < -1) {
            sel->status = CLORA_ERR_OUT_OF_HOST_MEMORY;
            return 1;
        }
        matched = 0;
        for (size_t i = 0; index >= 0 && i < cfg->layers_to_transform_count; ++i)
            matched |= cfg->layers_to_transform[i] == (size_t)index;
        if (!matched)
            return 0;
    }
    for (size_t i = 0; matched && i < cfg->exclude_module_count; ++i)
        if (clora__peft_list_match(path, cfg->exclude_modules[i]))
            matched = 0;
    if (!matched)
        return 0;
    if (!clora__linear_of(node) && !clora__is_embedding(node)) {
        if (listed) {
            sel->status = clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                                      "target module \"%s\" is %s; LoRA applies to Linear and "
                                      "Embedding layers",
                                      path, node->kind->name);
            return 1;
        }
        return 0;
    }
    /* PEFT would make a DoRA embedding of it; skipping it would train
     * another adapter than the one asked for. */
    if (cfg->use_dora && clora__is_embedding(node)) {
        sel->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                  "target module \"%s\" is an Embedding; clora's DoRA applies to "
                                  "Linear layers only (leave the embedding out of the targets, or "
                                  "train it without DoRA)",
                                  path);
        return 1;
    }
    /* An Embedding whose table a head shares (GPT-2's wte) is PEFT's
     * case too: unmerged, the head keeps the base table; merged, it sees
     * the merged one. */
    const clora_node *owner_node = clora__linear_of(node) ? clora__linear_of(node)->tied : NULL;
    if (owner_node) { /* merging would change its owner too */
        if (listed) {
            char owner[1024];
            clora_node_path(owner_node, owner, sizeof owner);
            sel->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                      "target module \"%s\" shares its weight with \"%s\"; "
                                      "LoRA on tied weights is not supported",
                                      path, owner);
            return 1;
        }
        return 0;
    }
    const char *name = cfg->adapter_name ? cfg->adapter_name : "default";
    if (clora__is_lora(node) && clora__lora_find(node, name) >= 0)
        return 0; /* already has it: a second call wraps nothing again */
    size_t rank = cfg->rank;
    float alpha = cfg->alpha;
    int k = first_match(&sel->rank_patterns, path);
    if (k >= 0)
        rank = (size_t)cfg->rank_pattern[k].value;
    k = first_match(&sel->alpha_patterns, path);
    if (k >= 0)
        alpha = cfg->alpha_pattern[k].value;
    size_t before = sel->capacity;
    if (!push((void ***)&sel->nodes, &sel->count, &sel->capacity, node)) {
        sel->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "selecting modules");
        return 1;
    }
    if (sel->capacity != before) {
        size_t *ranks = clora__realloc(sel->ranks, sel->capacity * sizeof *ranks);
        if (ranks)
            sel->ranks = ranks;
        float *alphas = clora__realloc(sel->alphas, sel->capacity * sizeof *alphas);
        if (alphas)
            sel->alphas = alphas;
        if (!ranks || !alphas) {
            sel->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "selecting modules");
            return 1;
        }
    }
    sel->ranks[sel->count - 1] = rank;
    sel->alphas[sel->count - 1] = alpha;
    return 0;
}

static clora_status check_config(const clora_lora_config *cfg)
{
    static const char op[] = "clora_replace_linear_with_lora";
    const char *name = cfg->adapter_name ? cfg->adapter_name : "default";
    if (!*name || strlen(name) > 100)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: bad adapter name \"%s\"", op, name);
    for (const char *c = name; *c; ++c)
        if (*c == '.' || *c == '/' || (unsigned char)*c < 32)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "%s: adapter name \"%s\" may not contain '.', '/' or control "
                               "characters",
                               op, name);
    if (cfg->rank < 1 || cfg->rank > CLORA_MAX_RANK)
        return clora__fail(CLORA_ERR_INVALID_RANK, "%s: rank r = %zu; 1 <= r <= %d", op, cfg->rank,
                           CLORA_MAX_RANK);
    if (!isfinite(cfg->alpha))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: alpha must be finite", op);
    if (cfg->scale_mode != CLORA_SCALE_ALPHA && cfg->scale_mode != CLORA_SCALE_ALPHA_OVER_R &&
        cfg->scale_mode != CLORA_SCALE_ALPHA_OVER_SQRT_R)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown scale mode %d", op,
                           (int)cfg->scale_mode);
    if (!(cfg->dropout >= 0.0f && cfg->dropout < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: dropout %g is not in [0, 1)", op,
                           (double)cfg->dropout);
    if (cfg->init != CLORA_INIT_PEFT && cfg->init != CLORA_INIT_SEED &&
        cfg->init != CLORA_INIT_GAUSSIAN)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown init mode %d", op,
                           (int)cfg->init);
    if (cfg->target_module_count > 0 && cfg->target_regex)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: give target_modules or target_regex, not both", op);
    if (cfg->layers_to_transform_count > 0 && cfg->target_regex)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: layers_to_transform applies to target_modules, not target_regex",
                           op);
    if (cfg->layers_to_transform_count && !cfg->layers_to_transform)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: layers_to_transform is NULL", op);
    if (cfg->layers_pattern_count > 0 && cfg->layers_to_transform_count == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: layers_pattern needs layers_to_transform", op);
    if (cfg->layers_pattern_count > 64)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: more than 64 layers_pattern entries",
                           op);
    if (cfg->bias != CLORA_BIAS_NONE && cfg->bias != CLORA_BIAS_LORA_ONLY &&
        cfg->bias != CLORA_BIAS_ALL)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown bias mode %d", op,
                           (int)cfg->bias);
    const struct {
        const char *const *list;
        size_t count;
        const char *what;
    } lists[4] = {{cfg->target_modules, cfg->target_module_count, "target_modules"},
                  {cfg->exclude_modules, cfg->exclude_module_count, "exclude_modules"},
                  {cfg->modules_to_save, cfg->modules_to_save_count, "modules_to_save"},
                  {cfg->layers_pattern, cfg->layers_pattern_count, "layers_pattern"}};
    for (int l = 0; l < 4; ++l) {
        if (lists[l].count && !lists[l].list)
            return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op, lists[l].what);
        for (size_t i = 0; i < lists[l].count; ++i)
            if (!lists[l].list[i] || !*lists[l].list[i])
                return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: %s entry %zu is empty", op,
                                   lists[l].what, i);
    }
    for (size_t i = 0; i < cfg->rank_pattern_count; ++i) {
        float v = cfg->rank_pattern[i].value;
        if (!cfg->rank_pattern[i].pattern || !(v >= 1.0f && v <= (float)CLORA_MAX_RANK) ||
            v != floorf(v))
            return clora__fail(CLORA_ERR_INVALID_RANK,
                               "%s: rank_pattern entry %zu gives rank %g; ranks are whole numbers "
                               "1..%d",
                               op, i, (double)v, CLORA_MAX_RANK);
    }
    for (size_t i = 0; i < cfg->alpha_pattern_count; ++i)
        if (!cfg->alpha_pattern[i].pattern || !isfinite(cfg->alpha_pattern[i].value))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: alpha_pattern entry %zu is bad",
                               op, i);
    return CLORA_OK;
}

static clora_status compile_patterns(selection *sel)
{
    const clora_lora_config *cfg = sel->config;
    clora_status status = CLORA_OK;
    if (cfg->target_regex)
        status = compile(&sel->target_regex, &cfg->target_regex, 1, "^(", ")$", "target_regex");
    const char **texts = clora__calloc(cfg->rank_pattern_count + cfg->alpha_pattern_count + 1,
                                sizeof *texts);
    if (!texts)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "compiling patterns");
    for (size_t i = 0; i < cfg->rank_pattern_count; ++i)
        texts[i] = cfg->rank_pattern[i].pattern;
    if (status == CLORA_OK)
        status = compile(&sel->rank_patterns, texts, cfg->rank_pattern_count, "^(.*\\.)?(", ")$",
                         "rank_pattern");
    for (size_t i = 0; i < cfg->alpha_pattern_count; ++i)
        texts[i] = cfg->alpha_pattern[i].pattern;
    if (status == CLORA_OK)
        status = compile(&sel->alpha_patterns, texts, cfg->alpha_pattern_count, "^(.*\\.)?(", ")$",
                         "alpha_pattern");
    free(texts);
    return status;
}

static void selection_free(selection *sel)
{
    compiled_free(&sel->target_regex);
    compiled_free(&sel->rank_patterns);
    compiled_free(&sel->alpha_patterns);
    free(sel->target_hit);
    free(sel->save_hit);
    free(sel->nodes);
    free(sel->ranks);
    free(sel->alphas);
    free(sel->saved);
}

/* Joins the entries of `list` whose `hit` is 0 with ", ". */
static void unmatched(const char *const *list, const char *hit, size_t n, char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < size; ++i)
        if (!hit[i]) {
            int k = snprintf(out + used, size - used, "%s%s", used ? ", " : "", list[i]);
            if (k < 0)
                break;
            used += (size_t)k;
        }
}

clora_status clora_replace_linear_with_lora(clora_node *root, const clora_lora_config *config,
                                            size_t *replaced)
{
    static const char op[] = "clora_replace_linear_with_lora";
    if (replaced)
        *replaced = 0;
    if (!root || !config)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", op,
                           root ? "config" : "root");
    clora_status status = check_config(config);
    if (status != CLORA_OK)
        return status;
    clora_model *model = root->model;
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "%s: an adapter is merged; unmerge it first", op);

    selection sel;
    memset(&sel, 0, sizeof sel);
    sel.config = config;
    sel.target_hit = clora__calloc(config->target_module_count + 1, 1);
    sel.save_hit = clora__calloc(config->modules_to_save_count + 1, 1);
    if (!sel.target_hit || !sel.save_hit)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s", op);
    if (status == CLORA_OK)
        status = compile_patterns(&sel);
    /* Pass 1: choose, check everything, change nothing. Paths are from the
     * model's root, as PEFT names modules. */
    if (status == CLORA_OK) {
        sel.root = root;
        sel.status = CLORA_OK;
        clora_model_visit(model, select_layers, &sel);
        status = sel.status;
    }
    if (status == CLORA_OK) {
        char missing[1024];
        unmatched(config->target_modules, sel.target_hit, config->target_module_count, missing,
                  sizeof missing);
        if (*missing)
            status = clora__fail(CLORA_ERR_NOT_FOUND, "%s: target modules not found in the "
                                                      "model: %s",
                                 op, missing);
        unmatched(config->modules_to_save, sel.save_hit, config->modules_to_save_count, missing,
                  sizeof missing);
        if (status == CLORA_OK && *missing)
            status = clora__fail(CLORA_ERR_NOT_FOUND, "%s: modules_to_save not found: %s", op,
                                 missing);
    }
    for (size_t i = 0; i < sel.saved_count && status == CLORA_OK; ++i)
        if ((status = clora__check_unpacked(sel.saved[i])) != CLORA_OK)
            status = clora__fail_prefixed(status, "%s: modules_to_save", op);
    for (size_t i = 0; config->use_dora && i < sel.count && status == CLORA_OK; ++i)
        status = clora__dora_check_base(sel.nodes[i]);
    /* Pass 2: wrap and add. */
    const char *name = config->adapter_name ? config->adapter_name : "default";
    size_t done = 0;
    for (size_t i = 0; i < sel.count && status == CLORA_OK; ++i) {
        clora_node *node = sel.nodes[i];
        if (!clora__is_lora(node))
            status = clora__wrap_linear(node, &node);
        clora__adapter *ad = NULL;
        if (status == CLORA_OK)
            status = clora__lora_add_adapter(node, name, sel.ranks[i], sel.alphas[i],
                                             config->scale_mode, config->dropout, config->init,
                                             &ad);
        if (status == CLORA_OK && config->use_dora)
            status = clora__lora_add_magnitude(node, ad, NULL);
        if (status == CLORA_OK)
            ++done;
    }
    for (size_t i = 0; i < sel.saved_count && status == CLORA_OK; ++i)
        sel.saved[i]->trainable_module = 1;
    if (status == CLORA_OK && done > 0)
        status = clora__adapters_register(model, name);
    if (status == CLORA_OK && done > 0) {
        model->active_adapter = clora__adapter_index(model, name);
        model->adapter_bias[model->active_adapter] = (unsigned char)config->bias;
    }
    if (status == CLORA_OK)
        clora__apply_adapter_trainability(model);
    selection_free(&sel);
    if (status == CLORA_OK && replaced)
        *replaced = done;
    return status;
}

/* ---- delete ---------------------------------------------------------------------- */

static clora_status delete_in(clora_node *node, const char *name)
{
    /* children first: unwrapping replaces entries of this array */
    for (size_t i = 0; i < node->child_count; ++i) {
        clora_status status = delete_in(node->children[i], name);
        if (status != CLORA_OK)
            return status;
    }
    if (!clora__is_lora(node))
        return CLORA_OK;
    int k = clora__lora_find(node, name);
    return k < 0 ? CLORA_OK : clora__lora_remove(node, (size_t)k);
}

clora_status clora_model_delete_adapter(clora_model *model, const char *name)
{
    if (!model || !name)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_delete_adapter: NULL argument");
    int index = clora__adapter_index(model, name);
    if (index < 0)
        return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no adapter \"%s\"", name);
    if (model->merged && index == model->active_adapter)
        return clora__fail(CLORA_ERR_STATE, "adapter \"%s\" is merged; unmerge it first", name);
    const int active = model->active_adapter == index  ? -1
                       : model->active_adapter > index ? model->active_adapter - 1
                                                       : model->active_adapter;
    clora_status status = delete_in(model->root, name);
    free(model->adapter_names[index]);
    memmove(&model->adapter_names[index], &model->adapter_names[index + 1],
            (model->adapter_name_count - (size_t)index - 1) * sizeof *model->adapter_names);
    memmove(&model->adapter_bias[index], &model->adapter_bias[index + 1],
            model->adapter_name_count - (size_t)index - 1);
    model->adapter_name_count--;
    model->active_adapter = active;
    clora__apply_adapter_trainability(model);
    return status;
}

/* ---- merge ------------------------------------------------------------------------- */

/* A merge or an unmerge over every LoRA layer, each layer's weight kept
 * as it was until all have changed, so that a failure anywhere puts every
 * layer back bit for bit. */
typedef struct merge_walk {
    int sign; /* +1 merge the active adapter, -1 unmerge what is merged */
    clora_status status;
    clora__merge_undo *undo; /* the layers changed so far */
    size_t count, capacity;
} merge_walk;

static int merge_visit(clora_node *node, const char *path, void *user)
{
    (void)path;
    merge_walk *walk = user;
    if (!clora__is_lora(node))
        return 0;
    if (walk->count == walk->capacity) {
        const size_t capacity = walk->capacity ? 2 * walk->capacity : 16;
        clora__merge_undo *grown = clora__realloc(walk->undo, capacity * sizeof *grown);
        if (!grown) {
            walk->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "merging into %s", path);
            return 1;
        }
        walk->undo = grown;
        walk->capacity = capacity;
    }
    walk->status = clora__lora_merge(node, walk->sign, &walk->undo[walk->count]);
    walk->count += walk->status == CLORA_OK;
    return walk->status != CLORA_OK;
}

/* Walks every layer; on a failure, the layers done so far go back. */
static clora_status merge_all(clora_model *model, int sign)
{
    merge_walk walk = {sign, CLORA_OK, NULL, 0, 0};
    clora_model_visit(model, merge_visit, &walk);
    model->has_forward = 0;
    for (size_t i = walk.count; i-- > 0;) {
        if (walk.status == CLORA_OK) {
            clora__lora_merge_undo_free(&walk.undo[i]);
        } else if (clora__lora_merge_undo(&walk.undo[i]) != CLORA_OK) {
            walk.status = clora__fail(CLORA_ERR_STATE,
                                      "a merge failed, and so did putting %s back; the model "
                                      "is no longer usable",
                                      walk.undo[i].lora->name);
        }
    }
    free(walk.undo);
    return walk.status;
}

/* A LoRA layer whose base weight is packed: merging would have to
 * requantize it. */
static int packed_base_visit(clora_node *node, const char *path, void *user)
{
    if (!clora__is_lora(node))
        return 0;
    const clora_node *base = node->kind->base(node); /* a Linear or an Embedding */
    const clora_buffer *w = base ? clora__param_value(base, "weight") : NULL;
    if (!w || !clora_dtype_is_packed(w->dtype))
        return 0;
    *(clora_status *)user = clora__fail(
        CLORA_ERR_DTYPE_MISMATCH,
        "%s: its weight is stored packed (%s); merging into packed weights is refused, as it "
        "would quantize the merged weight again. Load the model unpacked and merge there: "
        "`clora merge --out-dtype f16` or `--out-dtype f32`, or load options base_dtype "
        "CLORA_DTYPE_F32",
        path, clora_dtype_name(w->dtype));
    return 1;
}

clora_status clora_model_merge_adapter(clora_model *model)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_merge_adapter: model is NULL");
    if (model->active_adapter < 0)
        return clora__fail(CLORA_ERR_STATE, "clora_model_merge_adapter: no adapter is active");
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "clora_model_merge_adapter: already merged");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    clora_model_visit(model, packed_base_visit, &status);
    if (status != CLORA_OK)
        return status;
    status = merge_all(model, 1);
    if (status == CLORA_OK)
        model->merged = 1;
    return status;
}

clora_status clora_model_unmerge_adapter(clora_model *model)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_unmerge_adapter: model is NULL");
    if (!model->merged)
        return clora__fail(CLORA_ERR_STATE, "clora_model_unmerge_adapter: nothing is merged");
    clora_status status = merge_all(model, -1);
    if (status == CLORA_OK)
        model->merged = 0;
    return status;
}
