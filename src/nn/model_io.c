/* model_io.c — clora's model folder: config.json (the tree) and
 * model.safetensors (every parameter by its full name). LoRA nodes are
 * written as their base Linear, so a saved model is always a plain model.
 *
 * config.json:
 *   {"format": "clora-model", "format_version": 1, "clora_version": "...",
 *    "model": {"kind": "sequential", "children": [
 *        {"name": "fc1", "kind": "linear", "in_features": 4, "out_features": 8,
 *         "bias": true, "weight_layout": "out_in"},
 *        {"name": "act", "kind": "gelu"},
 *        {"name": "norm", "kind": "layer_norm", "features": 8, "eps": 1e-05},
 *        {"name": "wte", "kind": "embedding", "num_embeddings": 50, "features": 8},
 *        {"name": "drop", "kind": "dropout", "p": 0.1}, ...]}}
 * Transformer parts (clora/transformer.h) carry their children like
 * sequential nodes; attention nodes add "features", "heads" and "p"; a
 * Linear that shares another node's weight (GPT-2's lm_head) is written as
 *   {"name": "lm_head", "kind": "linear", "tied_to": "transformer.wte"}
 * and its weight is stored once, under its owner.
 */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define MODEL_FORMAT "clora-model"
#define MODEL_FORMAT_VERSION 1

/* ---- saving ------------------------------------------------------------------ */

static json_t *node_json(const clora_node *node)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    int bad = 0;
    if (node->parent)
        bad |= json_object_set_new(j, "name", json_string(node->name));
    const clora_node *linear = clora__linear_of((clora_node *)node);
    const clora_node_kind kind = linear ? CLORA_NODE_LINEAR : node->kind;
    bad |= json_object_set_new(j, "kind", json_string(clora_node_kind_name(kind)));
    if (kind == CLORA_NODE_SEQUENTIAL || kind >= CLORA_NODE_GPT2_MODEL) {
        json_t *children = json_array();
        bad |= !children;
        for (size_t i = 0; i < node->child_count && !bad; ++i) {
            json_t *child = node_json(node->children[i]);
            bad |= !child || json_array_append_new(children, child);
        }
        bad |= json_object_set_new(j, "children", children);
    }
    switch (kind) {
    case CLORA_NODE_GPT2_ATTENTION:
    case CLORA_NODE_BERT_SELF_ATTENTION:
        bad |= json_object_set_new(j, "features", json_integer((json_int_t)node->features));
        bad |= json_object_set_new(j, "heads", json_integer((json_int_t)node->heads));
        bad |= json_object_set_new(j, "p", json_real(node->p));
        break;
    case CLORA_NODE_LINEAR:
        if (linear->tied) {
            char owner[4096];
            bad |= clora_node_path(linear->tied, owner, sizeof owner) != CLORA_OK;
            bad |= json_object_set_new(j, "tied_to", json_string(owner));
            break;
        }
        bad |= json_object_set_new(j, "in_features", json_integer((json_int_t)linear->in_features));
        bad |= json_object_set_new(j, "out_features",
                                   json_integer((json_int_t)linear->out_features));
        bad |= json_object_set_new(j, "bias",
                                   json_boolean(clora__param_get(linear, "bias") != NULL));
        bad |= json_object_set_new(
            j, "weight_layout",
            json_string(linear->layout == CLORA_WEIGHT_OUT_IN ? "out_in" : "in_out"));
        break;
    case CLORA_NODE_LAYER_NORM:
        bad |= json_object_set_new(j, "features", json_integer((json_int_t)node->features));
        bad |= json_object_set_new(j, "eps", json_real(node->eps));
        break;
    case CLORA_NODE_EMBEDDING:
        bad |= json_object_set_new(j, "num_embeddings",
                                   json_integer((json_int_t)node->num_embeddings));
        bad |= json_object_set_new(j, "features", json_integer((json_int_t)node->features));
        break;
    case CLORA_NODE_DROPOUT:
        bad |= json_object_set_new(j, "p", json_real(node->p));
        break;
    default:
        break;
    }
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* Adds a node's plain-model parameters to the writer (LoRA: its base). */
typedef struct save_walk {
    clora_safetensors_writer *writer;
    clora_status status;
} save_walk;

static int save_params(clora_node *node, const char *path, void *user)
{
    save_walk *walk = user;
    if (node->kind == CLORA_NODE_LORA)
        return 0; /* its LoRA parameters are not part of the model; the base follows */
    char module[4096];
    snprintf(module, sizeof module, "%s", path);
    if (node->parent && node->parent->kind == CLORA_NODE_LORA) {
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
        float *host = malloc((p->numel ? p->numel : 1) * sizeof *host);
        if (!host) {
            walk->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
            return 1;
        }
        walk->status = clora_buffer_download(p->value, 0, host, p->numel);
        if (walk->status == CLORA_OK)
            walk->status = clora_safetensors_writer_add(walk->writer, name, CLORA_DTYPE_F32,
                                                        p->ndim, p->shape, host);
        free(host);
        if (walk->status != CLORA_OK)
            return 1;
    }
    return 0;
}

clora_status clora__save_weights_and_config(const char *weights_path,
                                            const clora_safetensors_writer *writer,
                                            const char *config_path, json_t *config)
{
    char *text = json_dumps(config, JSON_INDENT(2));
    if (!text)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding %s", config_path);
    clora__chunk *chunks = NULL;
    size_t count = 0;
    char *header = NULL;
    unsigned char length[8];
    clora_status status = clora__safetensors_chunks(writer, &chunks, &count, &header, length);
    if (status == CLORA_OK) {
        const clora__chunk config_chunks[2] = {{text, strlen(text)}, {"\n", 1}};
        const clora__file files[2] = {{weights_path, chunks, count},
                                      {config_path, config_chunks, 2}};
        status = clora__write_files_atomic(files, 2);
    }
    free(chunks);
    free(header);
    free(text);
    return status;
}

clora_status clora_model_save(clora_model *model, const char *dir)
{
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_save: %s is NULL",
                           model ? "dir" : "model");
    clora_status status = clora__model_refresh(model);
    if (status == CLORA_OK)
        status = clora__ensure_dir(dir);
    if (status != CLORA_OK)
        return status;
    char weights_path[4096], config_path[4096];
    if ((status = clora__join_path(weights_path, sizeof weights_path, dir, "model.safetensors")) ||
        (status = clora__join_path(config_path, sizeof config_path, dir, "config.json")))
        return status;

    clora_safetensors_writer *writer = NULL;
    if ((status = clora_safetensors_writer_create(&writer)))
        return status;
    save_walk walk = {writer, CLORA_OK};
    clora_model_visit(model, save_params, &walk);
    status = walk.status;
    if (status == CLORA_OK)
        status = clora_safetensors_writer_metadata(writer, "format", "pt");
    json_t *root = NULL, *tree = NULL;
    if (status == CLORA_OK) {
        root = json_object();
        tree = node_json(model->root);
        if (!root || !tree || json_object_set_new(root, "format", json_string(MODEL_FORMAT)) ||
            json_object_set_new(root, "format_version", json_integer(MODEL_FORMAT_VERSION)) ||
            json_object_set_new(root, "clora_version", json_string(CLORA_VERSION_STRING)) ||
            json_object_set_new(root, "model", tree))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding the model's config");
        tree = NULL;
    }
    if (status == CLORA_OK)
        status = clora__save_weights_and_config(weights_path, writer, config_path, root);
    json_decref(root);
    json_decref(tree);
    clora_safetensors_writer_destroy(writer);
    return status;
}

/* ---- loading -------------------------------------------------------------------- */

clora_status clora__read_json(const char *path, json_t **out)
{
    return clora__read_json_flags(path, 0, out);
}

clora_status clora__read_json_flags(const char *path, size_t flags, json_t **out)
{
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(path, &text, &size);
    if (status != CLORA_OK)
        return status;
    json_error_t error;
    *out = json_loadb(text, size, JSON_REJECT_DUPLICATES | flags, &error);
    free(text);
    if (!*out)
        return clora__fail(CLORA_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                           error.text, error.line, error.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return clora__fail(CLORA_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    }
    return CLORA_OK;
}

/* A non-negative integer field. */
static int get_size(json_t *object, const char *key, size_t *out)
{
    json_t *v = json_object_get(object, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (size_t)json_integer_value(v);
    return 1;
}

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
    const char *kind = json_string_value(json_object_get(j, "kind"));
    if (!name || !kind)
        return clora__fail(CLORA_ERR_FORMAT, "%s: a node lacks \"name\" or \"kind\"", where);
    size_t a = 0, b = 0;
    clora_node *node = NULL;
    clora_status status;
    if (!strcmp(kind, "sequential")) {
        status = clora_node_add_sequential(parent, name, &node);
        if (status == CLORA_OK)
            status = build_children(node, json_object_get(j, "children"), where);
        return status;
    }
    for (int k = CLORA_NODE_GPT2_MODEL; k < CLORA_NODE_KIND_COUNT; ++k) {
        if (strcmp(kind, clora_node_kind_name((clora_node_kind)k)) != 0)
            continue;
        if (k == CLORA_NODE_GPT2_ATTENTION || k == CLORA_NODE_BERT_SELF_ATTENTION) {
            json_t *p = json_object_get(j, "p");
            if (!get_size(j, "features", &a) || !get_size(j, "heads", &b) || !json_is_number(p))
                return clora__fail(CLORA_ERR_FORMAT, "%s: %s \"%s\" needs features, heads and p",
                                   where, kind, name);
            status = clora__add_attention(parent, name, (clora_node_kind)k, a, b,
                                          (float)json_number_value(p), &node);
        } else {
            status = clora__add_composite(parent, name, (clora_node_kind)k, &node);
        }
        if (status == CLORA_OK)
            status = build_children(node, json_object_get(j, "children"), where);
        if (status == CLORA_OK)
            status = clora__transformer_validate(node);
        return status == CLORA_OK ? status : clora__fail_prefixed(status, "%s", where);
    }
    if (!strcmp(kind, "linear") && json_object_get(j, "tied_to")) {
        const char *owner_path = json_string_value(json_object_get(j, "tied_to"));
        clora_node *owner = NULL;
        if (!owner_path || clora_model_find(parent->model, owner_path, &owner) != CLORA_OK)
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: linear \"%s\" is tied to \"%s\", which comes nowhere before it",
                               where, name, owner_path ? owner_path : "(not a string)");
        return clora__add_tied_linear(parent, name, owner, NULL);
    }
    if (!strcmp(kind, "linear")) {
        const char *layout = json_string_value(json_object_get(j, "weight_layout"));
        json_t *bias = json_object_get(j, "bias");
        if (!get_size(j, "in_features", &a) || !get_size(j, "out_features", &b) ||
            !json_is_boolean(bias) || !layout ||
            (strcmp(layout, "out_in") && strcmp(layout, "in_out")))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: linear \"%s\" needs in_features, out_features, bias and "
                               "weight_layout (\"out_in\" or \"in_out\")",
                               where, name);
        return !strcmp(layout, "out_in")
                   ? clora_node_add_linear(parent, name, a, b, json_is_true(bias), NULL)
                   : clora_node_add_linear_in_out(parent, name, a, b, json_is_true(bias), NULL);
    }
    if (!strcmp(kind, "layer_norm")) {
        json_t *eps = json_object_get(j, "eps");
        if (!get_size(j, "features", &a) || !json_is_number(eps))
            return clora__fail(CLORA_ERR_FORMAT, "%s: layer_norm \"%s\" needs features and eps",
                               where, name);
        return clora_node_add_layer_norm(parent, name, a, (float)json_number_value(eps), NULL);
    }
    if (!strcmp(kind, "embedding")) {
        if (!get_size(j, "num_embeddings", &a) || !get_size(j, "features", &b))
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: embedding \"%s\" needs num_embeddings and features", where,
                               name);
        return clora_node_add_embedding(parent, name, a, b, NULL);
    }
    if (!strcmp(kind, "dropout")) {
        json_t *p = json_object_get(j, "p");
        if (!json_is_number(p))
            return clora__fail(CLORA_ERR_FORMAT, "%s: dropout \"%s\" needs p", where, name);
        return clora_node_add_dropout(parent, name, (float)json_number_value(p), NULL);
    }
    for (int k = 0; k < CLORA_NODE_KIND_COUNT; ++k)
        if (!strcmp(kind, clora_node_kind_name((clora_node_kind)k)) &&
            (k == CLORA_NODE_RELU || k == CLORA_NODE_GELU || k == CLORA_NODE_GELU_TANH ||
             k == CLORA_NODE_SILU || k == CLORA_NODE_TANH))
            return clora_node_add_activation(parent, name, (clora_node_kind)k, NULL);
    return clora__fail(CLORA_ERR_FORMAT, "%s: node \"%s\" has unknown kind \"%s\"", where, name,
                       kind);
}

clora_status clora__load_tensor(const char *path, const clora_tensor_view *view,
                                const char *param, clora_buffer *dst)
{
    int same = view->ndim == dst->ndim;
    for (size_t d = 0; same && d < view->ndim; ++d)
        same = view->shape[d] == dst->shape[d];
    if (!same) {
        char want[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has %zu dimensions / %zu elements; parameter %s "
                           "is %s",
                           path, view->name, view->ndim, view->numel, param,
                           clora_buffer_shape_string(dst, want, sizeof want));
    }
    if (!clora_dtype_is_float(view->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: tensor \"%s\" holds %s, not floats",
                           path, view->name, clora_dtype_name(view->dtype));
    float *host = malloc((view->numel ? view->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", param);
    clora_status status = clora_tensor_to_f32(view, host);
    if (status == CLORA_OK)
        status = clora_buffer_upload(dst, 0, host, view->numel);
    free(host);
    return status;
}

clora_status clora__load_weights(clora_model *model, const char *path,
                                 const clora__weight_names *names)
{
    clora_safetensors *file = NULL;
    clora_status status = clora_safetensors_open(&file, path);
    if (status != CLORA_OK)
        return status;
    const size_t tensors = clora_safetensors_count(file);
    size_t count = clora_model_param_count(model);
    char *used = calloc(tensors + 1, 1);
    if (!used) {
        clora_safetensors_close(file);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    }
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        clora_param_info info;
        clora_tensor_view view;
        if ((status = clora_model_param(model, i, &info)))
            break;
        char candidate[512];
        int found = 0;
        for (size_t c = 0; !found; ++c) {
            if (!names) {
                if (c > 0)
                    break;
                snprintf(candidate, sizeof candidate, "%s", info.name);
            } else if (!names->candidate(info.name, c, candidate, sizeof candidate, names->user)) {
                break;
            }
            found = clora_safetensors_find(file, candidate, &view) == CLORA_OK;
        }
        if (!found) {
            if (names && names->optional && names->optional(info.name, names->user))
                continue; /* keeps its initial value */
            status = clora__fail(CLORA_ERR_FORMAT, "%s: no tensor for parameter %s", path,
                                 info.name);
            break;
        }
        for (size_t t = 0; t < tensors; ++t) {
            clora_tensor_view other;
            if (clora_safetensors_get(file, t, &other) == CLORA_OK && other.name == view.name)
                used[t] = 1;
        }
        status = clora__load_tensor(path, &view, info.name, info.value);
    }
    for (size_t t = 0; t < tensors && status == CLORA_OK; ++t) {
        clora_tensor_view extra;
        if (used[t] || clora_safetensors_get(file, t, &extra) != CLORA_OK)
            continue;
        if (names && names->ignorable && names->ignorable(extra.name, names->user))
            continue;
        status = clora__fail(CLORA_ERR_FORMAT, "%s: tensor \"%s\" matches no parameter of the model",
                             path, extra.name);
    }
    free(used);
    clora_safetensors_close(file);
    return status;
}

clora_status clora_model_load(clora_model **out, clora_device *device, const char *dir)
{
    if (!out || !device || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_load: NULL argument");
    *out = NULL;
    char config_path[4096], weights_path[4096];
    clora_status status;
    if ((status = clora__join_path(config_path, sizeof config_path, dir, "config.json")) ||
        (status = clora__join_path(weights_path, sizeof weights_path, dir, "model.safetensors")))
        return status;
    json_t *root = NULL;
    if ((status = clora__read_json(config_path, &root)))
        return status;
    const char *format = json_string_value(json_object_get(root, "format"));
    if (!format && json_is_string(json_object_get(root, "model_type"))) {
        /* a Hugging Face model folder */
        status = clora__model_from_hf(out, device, root, config_path, weights_path, 0, 0);
        json_decref(root);
        return status;
    }
    json_t *version = json_object_get(root, "format_version");
    json_t *tree = json_object_get(root, "model");
    if (!format || strcmp(format, MODEL_FORMAT) != 0) {
        json_decref(root);
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: not a clora model config (\"format\" is not \"%s\")", config_path,
                           MODEL_FORMAT);
    }
    if (!json_is_integer(version) || json_integer_value(version) != MODEL_FORMAT_VERSION) {
        json_decref(root);
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: format_version %s; this clora reads %d",
                           config_path, json_is_integer(version) ? "other" : "missing",
                           MODEL_FORMAT_VERSION);
    }
    clora_model *model = NULL;
    status = clora_model_create(&model, device, 0);
    if (status == CLORA_OK && (!json_is_object(tree) ||
                               !json_is_string(json_object_get(tree, "kind")) ||
                               strcmp(json_string_value(json_object_get(tree, "kind")),
                                      "sequential")))
        status = clora__fail(CLORA_ERR_FORMAT, "%s: \"model\" must be a sequential node",
                             config_path);
    if (status == CLORA_OK) {
        model->building = 1; /* transformer parts get their children from the file */
        status = build_children(model->root, json_object_get(tree, "children"), config_path);
        model->building = 0;
    }
    json_decref(root);
    if (status == CLORA_OK && model->root->child_count == 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: the model has no layers", config_path);
    if (status == CLORA_OK)
        status = clora__load_weights(model, weights_path, NULL);
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}
