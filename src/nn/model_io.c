/* model_io.c — clora's model folder (io/model_folder.c) from and into a
 * model: config.json holds the tree, each node written by its kind's save
 * and read back by its load (kinds.c finds the kind by name), and
 * model.safetensors every parameter by its full name. LoRA nodes are
 * written as their base Linear, so a saved model is always a plain model.
 *
 * config.json's "model":
 *   {"kind": "sequential", "children": [
 *        {"name": "fc1", "kind": "linear", "in_features": 4, "out_features": 8,
 *         "bias": true, "weight_layout": "out_in"},
 *        {"name": "act", "kind": "gelu"},
 *        {"name": "norm", "kind": "layer_norm", "features": 8, "eps": 1e-05},
 *        {"name": "wte", "kind": "embedding", "num_embeddings": 50, "features": 8},
 *        {"name": "drop", "kind": "dropout", "p": 0.1}, ...]}
 * Composite parts (clora/transformer.h) carry their children like
 * sequential nodes; attention parts add "features", "heads" and "p"; a
 * Linear that shares another node's weight (GPT-2's lm_head) is written as
 *   {"name": "lm_head", "kind": "linear", "tied_to": "transformer.wte"}
 * and its weight is stored once, under its owner.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* ---- saving ------------------------------------------------------------------ */

static json_t *node_json(const clora_node *node)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    /* the node that stands for this one (a LoRA node: its base Linear) */
    const clora_node *shown = node->kind->base ? node->kind->base(node) : node;
    const clora__node_kind *kind = shown->kind;
    int bad = 0;
    if (node->parent)
        bad |= json_object_set_new(j, "name", json_string(node->name));
    bad |= json_object_set_new(j, "kind", json_string(kind->name));
    if (kind->flags & (CLORA__KIND_SEQUENTIAL | CLORA__KIND_COMPOSITE)) {
        json_t *children = json_array();
        bad |= !children;
        for (size_t i = 0; i < shown->child_count && !bad; ++i) {
            json_t *child = node_json(shown->children[i]);
            bad |= !child || json_array_append_new(children, child);
        }
        bad |= json_object_set_new(j, "children", children);
    }
    if (!bad && kind->save)
        bad |= kind->save(shown, j);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Adds a node's plain-model parameters to the writer (LoRA: its base's). */
typedef struct save_walk {
    clora_safetensors_writer *writer;
    clora_dtype weights; /* how 2-D Linear and Embedding weights are written */
    clora_status status;
} save_walk;

/* A frozen weight as F16 or BF16 (its values rounded as the reference
 * quantizer rounds them). */
static clora_status add_rounded(clora_safetensors_writer *writer, const char *name,
                                const clora_buffer *value, clora_dtype dtype)
{
    const size_t n = clora_buffer_numel(value);
    float *host = clora__malloc((n ? n : 1) * sizeof *host);
    void *half = clora__malloc(n ? 2 * n : 1);
    clora_status status = host && half ? clora__download_values(value, host)
                                       : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s",
                                                     name);
    for (size_t i = 0; i < n && status == CLORA_OK; ++i)
        if (fabsf(host[i]) > 65504.0f && dtype == CLORA_DTYPE_F16)
            status = clora__fail(CLORA_ERR_NON_FINITE,
                                 "%s: value %zu (%g) is beyond what F16 holds; save as F32",
                                 name, i, (double)host[i]);
    if (status == CLORA_OK) {
        clora__quantize(dtype, host, n, half);
        status = clora_safetensors_writer_add(writer, name, dtype, value->ndim, value->shape, half);
    }
    free(host);
    free(half);
    return status;
}

static int save_params(clora_node *node, const char *path, void *user)
{
    save_walk *walk = user;
    if (node->kind->base)
        return 0; /* its own parameters (LoRA's) are not part of the model; the base follows */
    char module[4096];
    snprintf(module, sizeof module, "%s", path);
    if (clora__is_base_layer(node)) {
        /* a base_layer is saved under its LoRA node's name */
        char *dot = strrchr(module, '.');
        if (dot)
            *dot = '\0';
        else
            module[0] = '\0';
    }
    for (size_t i = 0; i < node->param_count; ++i) {
        const clora__param *p = node->params[i];
        char name[4300];
        snprintf(name, sizeof name, "%s%s%s", module, *module ? "." : "", p->name);
        const int weight = (node->kind->flags & CLORA__KIND_PACKABLE) && p->ndim == 2 &&
                           !strcmp(p->name, "weight");
        walk->status = weight && walk->weights != CLORA_DTYPE_F32
                           ? add_rounded(walk->writer, name, p->value, walk->weights)
                           : clora__writer_add_buffer(walk->writer, name, p->value);
        if (walk->status != CLORA_OK)
            return 1;
    }
    return 0;
}

clora_status clora_model_save(clora_model *model, const char *dir)
{
    return clora_model_save_as(model, dir, CLORA_DTYPE_F32);
}

clora_status clora_model_save_as(clora_model *model, const char *dir, clora_dtype weights)
{
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_save: %s is NULL",
                           model ? "dir" : "model");
    if (weights != CLORA_DTYPE_F32 && weights != CLORA_DTYPE_F16 && weights != CLORA_DTYPE_BF16)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_model_save_as: weights as %s; F32, F16 or BF16",
                           clora_dtype_name(weights));
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    clora_safetensors_writer *writer = NULL;
    if ((status = clora_safetensors_writer_create(&writer)))
        return status;
    save_walk walk = {writer, weights, CLORA_OK};
    clora_model_visit(model, save_params, &walk);
    status = walk.status;
    if (status == CLORA_OK)
        status = clora_safetensors_writer_metadata(writer, "format", "pt");
    json_t *tree = NULL;
    if (status == CLORA_OK && !(tree = node_json(model->root)))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding the model's config");
    if (status == CLORA_OK)
        status = clora__model_folder_write(dir, writer, tree);
    json_decref(tree);
    clora_safetensors_writer_destroy(writer);
    return status;
}

/* ---- loading -------------------------------------------------------------------- */

static clora_status build_node(clora_node *parent, json_t *j, const char *where);

static clora_status build_children(clora_node *node, json_t *children, const char *where)
{
    if (!json_is_array(children))
        return clora__fail(CLORA_ERR_FORMAT, "%s: a sequential node needs a \"children\" array",
                           where);
    size_t i;
    json_t *child;
    json_array_foreach(children, i, child) {
        clora_status status = build_node(node, child, where);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

static clora_status build_node(clora_node *parent, json_t *j, const char *where)
{
    if (!json_is_object(j))
        return clora__fail(CLORA_ERR_FORMAT, "%s: a node is not a JSON object", where);
    const char *name = json_string_value(json_object_get(j, "name"));
    const char *kind_name = json_string_value(json_object_get(j, "kind"));
    if (!name || !kind_name)
        return clora__fail(CLORA_ERR_FORMAT, "%s: a node lacks \"name\" or \"kind\"", where);
    const clora__node_kind *kind = clora__kind_named(kind_name);
    if (!kind || !kind->load)
        return clora__fail(CLORA_ERR_FORMAT, "%s: node \"%s\" has unknown kind \"%s\"", where,
                           name, kind_name);
    clora_node *node = NULL;
    clora_status status = kind->load(kind, parent, name, j, where, &node);
    if (!(kind->flags & (CLORA__KIND_SEQUENTIAL | CLORA__KIND_COMPOSITE)))
        return status;
    if (status == CLORA_OK)
        status = build_children(node, json_object_get(j, "children"), where);
    if (!(kind->flags & CLORA__KIND_COMPOSITE))
        return status;
    /* a composite part: its children must be the ones it drives */
    if (status == CLORA_OK && kind->validate)
        status = kind->validate(node);
    return status == CLORA_OK ? status : clora__fail_prefixed(status, "%s", where);
}

clora_load_options clora_load_options_default(void)
{
    clora_load_options o;
    memset(&o, 0, sizeof o);
    o.base_dtype = CLORA_DTYPE_AS_STORED;
    return o;
}

clora_status clora_model_load(clora_model **out, clora_device *device, const char *dir)
{
    return clora_model_load_with(out, device, dir, NULL);
}

clora_status clora_model_load_with(clora_model **out, clora_device *device, const char *dir,
                                   const clora_load_options *options)
{
    if (!out || !device || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_load: NULL argument");
    *out = NULL;
    const clora_load_options o = options ? *options : clora_load_options_default();
    clora_status status = clora__load_options_check("clora_model_load_with", &o);
    if (status != CLORA_OK)
        return status;
    if (clora_gguf_probe(dir))
        return clora__model_load_gguf(out, device, dir, o.base_dtype);
    clora__model_folder folder;
    status = clora__model_folder_read(dir, &folder);
    if (status != CLORA_OK)
        return status;
    if (folder.hugging_face) {
        status = clora__model_from_hf_with(out, device, &folder, &o);
        clora__model_folder_free(&folder);
        return status;
    }
    json_t *tree = folder.tree;
    clora_model *model = NULL;
    status = clora_model_create(&model, device, o.seed);
    if (status == CLORA_OK && (!json_is_object(tree) ||
                               !json_is_string(json_object_get(tree, "kind")) ||
                               strcmp(json_string_value(json_object_get(tree, "kind")),
                                      clora__sequential_kind.name)))
        status = clora__fail(CLORA_ERR_FORMAT, "%s: \"model\" must be a sequential node",
                             folder.config_path);
    clora_dtype base_dtype = o.base_dtype;
    if (status == CLORA_OK) {
        model->building = 1; /* composite parts get their children from the file */
        model->skip_init = 1; /* every parameter comes from the file */
        if (clora_dtype_is_packed(base_dtype)) {
            model->storage = clora__storage_uniform;
            model->storage_user = &base_dtype;
        }
        status = build_children(model->root, json_object_get(tree, "children"),
                                folder.config_path);
        model->building = 0;
        model->skip_init = 0;
        model->storage = NULL;
        model->storage_user = NULL;
    }
    if (status == CLORA_OK && model->root->child_count == 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: the model has no layers", folder.config_path);
    if (status == CLORA_OK)
        status = clora__load_weights(model, folder.weights_path, NULL);
    clora__model_folder_free(&folder);
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}

/* The most bytes the check lets the model's buffers take: every parameter
 * comes from a tensor of the files, and a load holds it three times as
 * float32 (its own buffer, then the trainable and gradient arenas, each
 * tensor padded to 16 floats), with a little more for what a model holds
 * besides. A config whose sizes ask for more cannot be filled from its
 * files; refusing it as soon as its buffers outgrow them keeps a small
 * file from building a huge model. */
#define CHECK_SLACK_BYTES (1u << 20)

static uint64_t check_budget(const char *dir)
{
    clora__model_folder folder;
    clora__checkpoint *file = NULL;
    uint64_t values = 0, tensors = 0;
    if (clora__model_folder_paths(dir, &folder) == CLORA_OK &&
        clora__checkpoint_open(&file, folder.weights_path) == CLORA_OK) {
        values = clora__checkpoint_values(file);
        tensors = clora__checkpoint_count(file);
    }
    clora__checkpoint_close(file); /* a file that does not open: the load says why */
    return 3 * sizeof(float) * (values + 16 * tensors) + CHECK_SLACK_BYTES;
}

/* The loader itself, on a device that holds nothing: it builds the model
 * the files describe and matches every tensor to it, reading no values. */
clora_status clora_model_check(const char *path)
{
    if (!path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_check: path is NULL");
    if (clora_gguf_probe(path))
        return clora_model_check_gguf(path);
    /* as the load does first: a save a killed process left is completed */
    clora_status status = clora__finish_interrupted_save(path);
    if (status != CLORA_OK)
        return status;
    const uint64_t budget = check_budget(path);
    clora_device *dry = NULL;
    status = clora__device_open_dry(&dry, budget);
    clora_model *model = NULL;
    if (status == CLORA_OK)
        status = clora_model_load(&model, dry, path);
    clora_model_destroy(model);
    clora_device_destroy(dry);
    if (status == CLORA_ERR_OUT_OF_DEVICE_MEMORY)
        status = clora__fail(CLORA_ERR_FORMAT,
                             "%s: the model its config describes needs more than %llu bytes, "
                             "more than its weight files can fill",
                             path, (unsigned long long)budget);
    return status;
}
