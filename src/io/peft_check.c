/* peft_check.c — a PEFT adapter folder checked on its own, before any model
 * is involved: adapter_config.json as peft.c reads it, then every tensor of
 * adapter_model.safetensors. LoRA matrices come in pairs, A (r, in) and
 * B (out, r) (an Embedding's: lora_embedding_A (r, num_embeddings) and
 * lora_embedding_B (embedding_dim, r)), 2-D, of a floating dtype, not empty,
 * with the rank the config gives their module (rank_pattern applied); every
 * other tensor belongs to a module modules_to_save lists. clora info and the adapter loader share
 * these rules; what depends on a model (the module exists, is a Linear of
 * these sizes) is the loader's. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

#define KEY_PREFIX "base_model.model."

/* One module's LoRA pair, as found so far. */
typedef struct pair {
    char module[512];
    const clora_tensor_view *a, *b;
    clora_tensor_view a_view, b_view;
    int table; /* lora_embedding_A/B (an Embedding's) rather than lora_A/B */
} pair;

clora__peft_key_kind clora__peft_key(const char *name, const char **key, size_t *module_len)
{
    static const char a[] = ".lora_A.weight", b[] = ".lora_B.weight";
    if (!strncmp(name, KEY_PREFIX, strlen(KEY_PREFIX)))
        name += strlen(KEY_PREFIX);
    *key = name;
    const size_t n = strlen(name), m = sizeof a - 1; /* both suffixes are m long */
    *module_len = n > m ? n - m : 0;
    if (n > m && !strcmp(name + n - m, a))
        return CLORA__PEFT_LORA_A;
    if (n > m && !strcmp(name + n - m, b))
        return CLORA__PEFT_LORA_B;
    static const char ea[] = ".lora_embedding_A", eb[] = ".lora_embedding_B";
    const size_t e = sizeof ea - 1; /* both e long */
    *module_len = n > e ? n - e : 0;
    if (n > e && !strcmp(name + n - e, ea))
        return CLORA__PEFT_EMBEDDING_A;
    if (n > e && !strcmp(name + n - e, eb))
        return CLORA__PEFT_EMBEDDING_B;
    static const char *const base[2] = {".base_layer.weight", ".base_layer.bias"};
    for (int k = 0; k < 2; ++k) {
        const size_t len = strlen(base[k]);
        if (n > len && !strcmp(name + n - len, base[k])) {
            *module_len = n - len;
            return CLORA__PEFT_BASE;
        }
    }
    *module_len = 0;
    return CLORA__PEFT_SAVED;
}

/* "(3, 4)" */
static void shape_text(const clora_tensor_view *v, char *out, size_t size)
{
    size_t used = (size_t)snprintf(out, size, "(");
    for (size_t d = 0; d < v->ndim && used < size; ++d)
        used += (size_t)snprintf(out + used, size - used, "%s%zu", d ? ", " : "", v->shape[d]);
    if (used < size)
        snprintf(out + used, size - used, ")");
}

/* A tensor's dtype and size, whatever it is for. */
static clora_status check_values(const char *path, const clora_tensor_view *v)
{
    if (!clora_dtype_is_float(v->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: tensor \"%s\" holds %s, not floats",
                           path, v->name, clora_dtype_name(v->dtype));
    if (v->numel == 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: tensor \"%s\" is empty", path, v->name);
    return CLORA_OK;
}

/* One LoRA matrix: 2-D, and the module's rank where the rank goes. */
static clora_status check_matrix(const char *path, const clora__peft_config *c,
                                 const char *module, const clora_tensor_view *v, int is_a,
                                 int table)
{
    const char *what = table ? (is_a ? "lora_embedding_A" : "lora_embedding_B")
                             : (is_a ? "lora_A" : "lora_B");
    const char *dims = table ? (is_a ? "r, num_embeddings" : "embedding_dim, r")
                             : (is_a ? "r, in" : "out, r");
    clora_status status = check_values(path, v);
    if (status != CLORA_OK)
        return status;
    char got[96];
    shape_text(v, got, sizeof got);
    size_t rank = 0;
    if ((status = clora__peft_module(c, module, &rank, NULL)) != CLORA_OK)
        return status;
    if (v->ndim != 2)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has shape %s; %s is 2-D (%s)", path, v->name, got,
                           what, dims);
    if ((is_a ? v->shape[0] : v->shape[1]) != rank)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has shape %s; module \"%s\" has rank %zu in "
                           "adapter_config.json, so %s must be (%s)",
                           path, v->name, got, module, rank, what, dims);
    return CLORA_OK;
}

static pair *pair_for(pair *pairs, size_t *count, const char *module, size_t len)
{
    for (size_t i = 0; i < *count; ++i)
        if (strlen(pairs[i].module) == len && !strncmp(pairs[i].module, module, len))
            return &pairs[i];
    pair *p = &pairs[(*count)++];
    memset(p, 0, sizeof *p);
    snprintf(p->module, sizeof p->module, "%.*s", (int)len, module);
    return p;
}

static clora_status check_tensors(const char *path, const clora__peft_config *c,
                                  const clora_safetensors *file)
{
    const size_t n = clora_safetensors_count(file);
    pair *pairs = clora__calloc(n + 1, sizeof *pairs);
    if (!pairs)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "checking %s", path);
    size_t count = 0;
    clora_status status = CLORA_OK;
    for (size_t t = 0; t < n && status == CLORA_OK; ++t) {
        clora_tensor_view v;
        clora_safetensors_get(file, t, &v);
        const char *key = NULL;
        size_t len = 0;
        const clora__peft_key_kind kind = clora__peft_key(v.name, &key, &len);
        const int is_a = kind == CLORA__PEFT_LORA_A || kind == CLORA__PEFT_EMBEDDING_A;
        const int table = kind == CLORA__PEFT_EMBEDDING_A || kind == CLORA__PEFT_EMBEDDING_B;
        if (kind == CLORA__PEFT_SAVED) { /* a parameter of a module to save */
            const char *dot = strrchr(key, '.');
            char module[512];
            snprintf(module, sizeof module, "%.*s", dot ? (int)(dot - key) : 0, key);
            if (!dot || !clora__peft_saves(c, module))
                status = clora__fail(CLORA_ERR_FORMAT,
                                     "%s: unexpected tensor \"%s\" (neither lora_A/lora_B weight "
                                     "nor a module to save)",
                                     path, v.name);
            else
                status = check_values(path, &v);
            continue;
        }
        if (kind == CLORA__PEFT_BASE) { /* a target's own parameter */
            char module[512];
            snprintf(module, sizeof module, "%.*s", (int)len, key);
            const int selected = len < sizeof module ? clora__peft_targets(c, module) : 0;
            if (selected < 0)
                status = CLORA_ERR_OUT_OF_HOST_MEMORY;
            else if (!selected)
                status = clora__fail(CLORA_ERR_FORMAT,
                                     "%s: tensor \"%s\" is a base parameter of a module "
                                     "target_modules does not select",
                                     path, v.name);
            else
                status = check_values(path, &v);
            continue;
        }
        if (len >= sizeof pairs[0].module) {
            status = clora__fail(CLORA_ERR_FORMAT, "%s: tensor name \"%.80s...\" is too long",
                                 path, v.name);
            break;
        }
        pair *p = pair_for(pairs, &count, key, len);
        if ((p->a || p->b) && p->table != table) {
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: module \"%s\" has both lora_A/lora_B and "
                                 "lora_embedding_A/lora_embedding_B tensors",
                                 path, p->module);
            break;
        }
        p->table = table;
        if (is_a ? p->a != NULL : p->b != NULL) {
            status = clora__fail(CLORA_ERR_FORMAT, "%s: two tensors for %s of module \"%s\"",
                                 path, is_a ? "lora_A" : "lora_B", p->module);
            break;
        }
        if (is_a) {
            p->a_view = v;
            p->a = &p->a_view;
        } else {
            p->b_view = v;
            p->b = &p->b_view;
        }
        status = check_matrix(path, c, p->module, &v, is_a, table);
    }
    for (size_t i = 0; i < count && status == CLORA_OK; ++i)
        if (!pairs[i].a || !pairs[i].b)
            status = clora__fail(CLORA_ERR_FORMAT, "%s: module \"%s\" has %s%s but no %s%s",
                                 path, pairs[i].module,
                                 pairs[i].table ? "lora_embedding_" : "lora_",
                                 pairs[i].a ? "A" : "B",
                                 pairs[i].table ? "lora_embedding_" : "lora_",
                                 pairs[i].a ? "B" : "A");
    if (status == CLORA_OK && count == 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: the file holds no LoRA weights", path);
    free(pairs);
    return status;
}

clora_status clora__peft_check(const char *dir, size_t max_rank, clora__peft_config *config,
                               clora_safetensors **weights)
{
    char config_path[4096], weights_path[4096];
    clora__peft_config own;
    clora__peft_config *c = config ? config : &own;
    memset(c, 0, sizeof *c);
    clora_status status;
    if ((status = clora__finish_interrupted_save(dir)) ||
        (status = clora__join_path(config_path, sizeof config_path, dir, "adapter_config.json")) ||
        (status = clora__join_path(weights_path, sizeof weights_path, dir,
                                   "adapter_model.safetensors")))
        return status;
    if ((status = clora__peft_config_read(config_path, max_rank, c)))
        return status;
    clora_safetensors *file = NULL;
    status = clora_safetensors_open(&file, weights_path);
    if (status == CLORA_OK)
        status = check_tensors(weights_path, c, file);
    if (status != CLORA_OK || !weights)
        clora_safetensors_close(file);
    else
        *weights = file;
    if (status != CLORA_OK || !config)
        clora__peft_config_free(c);
    return status;
}
