/* model.c — the model tree: building, addressing, the parameter registry,
 * the trainable and gradient allocations, trainability. Forward and
 * backward of each node kind are in nodes.c. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* Arena slots start on 16-float (64-byte) boundaries. */
#define ARENA_ALIGN 16

static const char *const kind_names[CLORA_NODE_KIND_COUNT] = {
    "sequential",      "linear",     "lora",           "relu",
    "gelu",            "gelu_tanh",  "silu",           "tanh",
    "layer_norm",      "embedding",  "dropout",        "gpt2_model",
    "gpt2_block",      "gpt2_attention", "bert_embeddings", "bert_layer",
    "bert_self_attention", "mean_pool",
};

const char *clora_node_kind_name(clora_node_kind kind)
{
    return (unsigned)kind < CLORA_NODE_KIND_COUNT ? kind_names[kind] : "?";
}

/* ---- random numbers for initialisation ------------------------------------ */

static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

float clora__rng_uniform(uint64_t *state, float lo, float hi)
{
    return lo + (hi - lo) * (float)(next_u64(state) >> 40) * (1.0f / 16777216.0f);
}

float clora__rng_normal(uint64_t *state)
{
    /* Box-Muller on two uniforms in (0, 1]. */
    double u1 = ((double)(next_u64(state) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(next_u64(state) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* ---- nodes -------------------------------------------------------------------- */

static int valid_name(const char *name)
{
    if (!name || !*name)
        return 0;
    for (const char *c = name; *c; ++c)
        if (!isalnum((unsigned char)*c) && *c != '_' && *c != '-')
            return 0;
    return 1;
}

clora_status clora__node_new(clora_model *model, const char *name, clora_node_kind kind,
                             clora_node **out)
{
    clora_node *node = calloc(1, sizeof *node);
    if (!node || !(node->name = strdup(name ? name : ""))) {
        free(node);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a model node");
    }
    node->model = model;
    node->kind = kind;
    node->id = model->node_counter++;
    node->active = -1;
    node->merged = -1;
    *out = node;
    return CLORA_OK;
}

static void param_free(clora__param *p)
{
    if (!p)
        return;
    if (p->value != p->own)
        clora_buffer_destroy(p->value);
    clora_buffer_destroy(p->own);
    clora_buffer_destroy(p->grad);
    free(p->name);
    free(p);
}

void clora__node_release_activations(clora_node *node)
{
    clora_buffer_destroy(node->owned_output);
    clora_buffer_destroy(node->d_input);
    node->owned_output = node->d_input = NULL;
    for (size_t i = 0; i < sizeof node->saved / sizeof node->saved[0]; ++i) {
        clora_buffer_destroy(node->saved[i]);
        node->saved[i] = NULL;
    }
    node->output = NULL;
    node->input = NULL;
}

void clora__node_free(clora_node *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->child_count; ++i)
        clora__node_free(node->children[i]);
    for (size_t i = 0; i < node->param_count; ++i)
        param_free(node->params[i]);
    for (size_t i = 0; i < node->adapter_count; ++i)
        free(node->adapters[i].name);
    clora__node_release_activations(node);
    free(node->adapters);
    free(node->children);
    free(node->params);
    free(node->name);
    free(node);
}

clora_status clora__node_attach(clora_node *parent, clora_node *child)
{
    if (!valid_name(child->name))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "node name \"%s\": use letters, digits, '_' or '-'", child->name);
    for (size_t i = 0; i < parent->child_count; ++i)
        if (!strcmp(parent->children[i]->name, child->name))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "a child named \"%s\" exists already",
                               child->name);
    if (parent->child_count == parent->child_capacity) {
        size_t capacity = parent->child_capacity ? 2 * parent->child_capacity : 4;
        clora_node **grown = realloc(parent->children, capacity * sizeof *grown);
        if (!grown)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "adding a child node");
        parent->children = grown;
        parent->child_capacity = capacity;
    }
    parent->children[parent->child_count++] = child;
    child->parent = parent;
    clora__model_touch(parent->model);
    return CLORA_OK;
}

void clora__node_replace_child(clora_node *parent, clora_node *old_child, clora_node *new_child)
{
    for (size_t i = 0; i < parent->child_count; ++i)
        if (parent->children[i] == old_child) {
            parent->children[i] = new_child;
            new_child->parent = parent;
            old_child->parent = NULL;
        }
    clora__model_touch(parent->model);
}

clora_node *clora__linear_of(clora_node *node)
{
    if (node->kind == CLORA_NODE_LORA)
        return node->children[0];
    return node->kind == CLORA_NODE_LINEAR ? node : NULL;
}

/* ---- parameters ---------------------------------------------------------------- */

/* Writes a parameter's values as `init` says, drawing from the model's
 * initialisation stream. */
static clora_status init_values(clora_model *model, clora__param *p, clora__init init, float bound)
{
    float *host = malloc((p->numel ? p->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "initialising %s", p->name);
    for (size_t i = 0; i < p->numel; ++i)
        host[i] = init == CLORA__INIT_ZERO       ? 0.0f
                  : init == CLORA__INIT_ONE      ? 1.0f
                  : init == CLORA__INIT_UNIFORM ? clora__rng_uniform(&model->init_rng, -bound, bound)
                                                : bound * clora__rng_normal(&model->init_rng);
    clora_status status = clora_buffer_upload(p->value, 0, host, p->numel);
    free(host);
    return status;
}

clora_status clora__param_add(clora_node *node, const char *name, size_t ndim, const size_t *shape,
                              clora__init init, float bound, clora__param **out)
{
    clora_model *model = node->model;
    clora__param *p = calloc(1, sizeof *p);
    clora__param **grown = realloc(node->params, (node->param_count + 1) * sizeof *grown);
    if (grown)
        node->params = grown;
    if (!p || !grown || !(p->name = strdup(name))) {
        free(p);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "adding parameter %s", name);
    }
    p->ndim = ndim;
    p->numel = 1;
    for (size_t d = 0; d < ndim; ++d) {
        p->shape[d] = shape[d];
        p->numel *= shape[d];
    }
    p->trainable = 1;
    clora_status status = clora__buffer_create(&p->own, model->device, CLORA_DTYPE_F32,
                                               CLORA_MEMORY_TRAINABLE, ndim, shape);
    p->value = p->own;
    /* new buffers are zero-filled: INIT_ZERO has nothing to write */
    if (status == CLORA_OK && !model->skip_init && init != CLORA__INIT_ZERO)
        status = init_values(model, p, init, bound);
    if (status != CLORA_OK) {
        param_free(p);
        return status;
    }
    node->params[node->param_count++] = p;
    clora__model_touch(model);
    if (out)
        *out = p;
    return CLORA_OK;
}

void clora__param_remove(clora_node *node, clora__param *param)
{
    for (size_t i = 0; i < node->param_count; ++i)
        if (node->params[i] == param) {
            memmove(&node->params[i], &node->params[i + 1],
                    (node->param_count - i - 1) * sizeof *node->params);
            node->param_count--;
            break;
        }
    param_free(param);
    clora__model_touch(node->model);
}

clora__param *clora__param_get(const clora_node *node, const char *name)
{
    if (node->tied && !strcmp(name, "weight"))
        return clora__param_get(node->tied, name);
    for (size_t i = 0; i < node->param_count; ++i)
        if (!strcmp(node->params[i]->name, name))
            return node->params[i];
    return NULL;
}

/* ---- the model ---------------------------------------------------------------- */

clora_status clora_model_create(clora_model **out, clora_device *device, uint64_t seed)
{
    if (!out || !device)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create: %s is NULL",
                           out ? "device" : "out");
    *out = NULL;
    clora_model *model = calloc(1, sizeof *model);
    if (!model)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a model");
    model->device = device;
    model->seed = seed;
    model->init_rng = seed ^ 0x6a09e667f3bcc908ull;
    clora_status status = clora__node_new(model, "", CLORA_NODE_SEQUENTIAL, &model->root);
    if (status != CLORA_OK) {
        free(model);
        return status;
    }
    model->dirty = 1;
    model->active_adapter = -1;
    *out = model;
    return CLORA_OK;
}

static void free_registry(clora_model *model)
{
    for (size_t i = 0; i < model->param_count; ++i)
        free(model->param_names[i]);
    free(model->params);
    free(model->param_names);
    free(model->param_nodes);
    model->params = NULL;
    model->param_names = NULL;
    model->param_nodes = NULL;
    model->param_count = 0;
}

void clora_model_destroy(clora_model *model)
{
    if (!model)
        return;
    clora__node_free(model->root);
    free_registry(model);
    clora__adapters_free(model);
    clora_buffer_destroy(model->trainable_arena);
    clora_buffer_destroy(model->grad_arena);
    free(model);
}

clora_node *clora_model_root(clora_model *model)
{
    return model ? model->root : NULL;
}

clora_device *clora_model_device(const clora_model *model)
{
    return model ? model->device : NULL;
}

void clora__model_touch(clora_model *model)
{
    model->dirty = 1;
    model->has_forward = 0;
}

/* ---- building ------------------------------------------------------------------ */

static clora_status check_parent(const char *op, clora_node *parent)
{
    if (!parent)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: parent is NULL", op);
    /* transformer parts get their children from clora's own builders only */
    if (parent->kind != CLORA_NODE_SEQUENTIAL && !parent->model->building)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: children go into Sequential nodes, \"%s\" is %s", op, parent->name,
                           clora_node_kind_name(parent->kind));
    return CLORA_OK;
}

/* Creates, fills (via `setup`) and attaches a node; frees it on failure. */
typedef clora_status (*node_setup)(clora_node *node, const void *args);

static clora_status add_node(const char *op, clora_node *parent, const char *name,
                             clora_node_kind kind, node_setup setup, const void *args,
                             clora_node **out)
{
    clora_status status = check_parent(op, parent);
    if (status != CLORA_OK)
        return status;
    if (!name)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: name is NULL", op);
    clora_node *node = NULL;
    status = clora__node_new(parent->model, name, kind, &node);
    if (status == CLORA_OK && setup)
        status = setup(node, args);
    if (status == CLORA_OK)
        status = clora__node_attach(parent, node);
    if (status != CLORA_OK) {
        clora__node_free(node);
        return clora__fail_prefixed(status, "%s(\"%s\")", op, name);
    }
    if (out)
        *out = node;
    return CLORA_OK;
}

clora_status clora__add_composite(clora_node *parent, const char *name, clora_node_kind kind,
                                  clora_node **out)
{
    return add_node("clora__add_composite", parent, name, kind, NULL, NULL, out);
}

clora_status clora__param_reinit(clora_node *node, const char *name, clora__init init,
                                 float bound)
{
    clora__param *p = clora__param_get(node, name);
    if (!p)
        return clora__fail(CLORA_ERR_NOT_FOUND, "node %s has no parameter %s", node->name, name);
    return node->model->skip_init ? CLORA_OK : init_values(node->model, p, init, bound);
}

clora_status clora_node_add_sequential(clora_node *parent, const char *name, clora_node **out)
{
    return add_node("clora_node_add_sequential", parent, name, CLORA_NODE_SEQUENTIAL, NULL, NULL,
                    out);
}

typedef struct linear_args {
    size_t in, out;
    int bias;
    clora_weight_layout layout;
} linear_args;

static clora_status setup_linear(clora_node *node, const void *args)
{
    const linear_args *a = args;
    if (a->in == 0 || a->out == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "features must be at least 1 (got %zu, %zu)",
                           a->in, a->out);
    node->in_features = a->in;
    node->out_features = a->out;
    node->layout = a->layout;
    const float bound = 1.0f / sqrtf((float)a->in);
    const size_t shape[2] = {a->layout == CLORA_WEIGHT_OUT_IN ? a->out : a->in,
                             a->layout == CLORA_WEIGHT_OUT_IN ? a->in : a->out};
    clora_status status =
        clora__param_add(node, "weight", 2, shape, CLORA__INIT_UNIFORM, bound, NULL);
    if (status == CLORA_OK && a->bias)
        status = clora__param_add(node, "bias", 1, &a->out, CLORA__INIT_UNIFORM, bound, NULL);
    return status;
}

clora_status clora_node_add_linear(clora_node *parent, const char *name, size_t in_features,
                                   size_t out_features, int bias, clora_node **out)
{
    const linear_args args = {in_features, out_features, bias, CLORA_WEIGHT_OUT_IN};
    return add_node("clora_node_add_linear", parent, name, CLORA_NODE_LINEAR, setup_linear, &args,
                    out);
}

clora_status clora_node_add_linear_in_out(clora_node *parent, const char *name, size_t in_features,
                                          size_t out_features, int bias, clora_node **out)
{
    const linear_args args = {in_features, out_features, bias, CLORA_WEIGHT_IN_OUT};
    return add_node("clora_node_add_linear_in_out", parent, name, CLORA_NODE_LINEAR, setup_linear,
                    &args, out);
}

static clora_status setup_tied_linear(clora_node *node, const void *args)
{
    clora_node *owner = (clora_node *)args;
    const clora__param *w = clora__param_get(owner, "weight");
    if (!w || w->ndim != 2)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "\"%s\" has no 2-D weight to share",
                           owner->name);
    node->out_features = w->shape[0];
    node->in_features = w->shape[1];
    node->layout = CLORA_WEIGHT_OUT_IN;
    node->tied = owner;
    return CLORA_OK;
}

clora_status clora__add_tied_linear(clora_node *parent, const char *name, clora_node *owner,
                                    clora_node **out)
{
    return add_node("clora__add_tied_linear", parent, name, CLORA_NODE_LINEAR, setup_tied_linear,
                    owner, out);
}

clora_status clora_node_add_activation(clora_node *parent, const char *name, clora_node_kind kind,
                                       clora_node **out)
{
    if (kind != CLORA_NODE_RELU && kind != CLORA_NODE_GELU && kind != CLORA_NODE_GELU_TANH &&
        kind != CLORA_NODE_SILU && kind != CLORA_NODE_TANH)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_node_add_activation: %s is not an activation",
                           clora_node_kind_name(kind));
    return add_node("clora_node_add_activation", parent, name, kind, NULL, NULL, out);
}

typedef struct norm_args {
    size_t features;
    float eps;
} norm_args;

static clora_status setup_layer_norm(clora_node *node, const void *args)
{
    const norm_args *a = args;
    if (a->features == 0 || !(a->eps > 0.0f) || !isfinite(a->eps))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "LayerNorm needs features >= 1 and eps > 0 (got %zu, %g)", a->features,
                           (double)a->eps);
    node->features = a->features;
    node->eps = a->eps;
    clora_status status =
        clora__param_add(node, "weight", 1, &a->features, CLORA__INIT_ONE, 0.0f, NULL);
    if (status == CLORA_OK)
        status = clora__param_add(node, "bias", 1, &a->features, CLORA__INIT_ZERO, 0.0f, NULL);
    return status;
}

clora_status clora_node_add_layer_norm(clora_node *parent, const char *name, size_t features,
                                       float eps, clora_node **out)
{
    const norm_args args = {features, eps};
    return add_node("clora_node_add_layer_norm", parent, name, CLORA_NODE_LAYER_NORM,
                    setup_layer_norm, &args, out);
}

typedef struct embedding_args {
    size_t num, features;
} embedding_args;

static clora_status setup_embedding(clora_node *node, const void *args)
{
    const embedding_args *a = args;
    if (a->num == 0 || a->features == 0 || a->num > (size_t)INT32_MAX)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "Embedding needs 1 <= num <= 2^31-1 and features >= 1 (got %zu, %zu)",
                           a->num, a->features);
    node->num_embeddings = a->num;
    node->features = a->features;
    const size_t shape[2] = {a->num, a->features};
    return clora__param_add(node, "weight", 2, shape, CLORA__INIT_NORMAL, 1.0f, NULL);
}

clora_status clora_node_add_embedding(clora_node *parent, const char *name, size_t num_embeddings,
                                      size_t features, clora_node **out)
{
    const embedding_args args = {num_embeddings, features};
    return add_node("clora_node_add_embedding", parent, name, CLORA_NODE_EMBEDDING,
                    setup_embedding, &args, out);
}

static clora_status setup_dropout(clora_node *node, const void *args)
{
    const float p = *(const float *)args;
    if (!(p >= 0.0f && p < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "dropout p = %g; it must be in [0, 1)",
                           (double)p);
    node->p = p;
    return CLORA_OK;
}

clora_status clora_node_add_dropout(clora_node *parent, const char *name, float p,
                                    clora_node **out)
{
    return add_node("clora_node_add_dropout", parent, name, CLORA_NODE_DROPOUT, setup_dropout, &p,
                    out);
}

/* ---- addressing ------------------------------------------------------------------ */

static clora_node *child_named(const clora_node *node, const char *name, size_t len)
{
    for (size_t i = 0; i < node->child_count; ++i)
        if (strlen(node->children[i]->name) == len && !strncmp(node->children[i]->name, name, len))
            return node->children[i];
    return NULL;
}

/* The node at `path` below `from`, walking into LoRA nodes' base_layer. */
static clora_node *find_path(clora_node *from, const char *path, size_t *failed_at)
{
    clora_node *node = from;
    const char *part = path;
    while (*part) {
        const char *dot = strchr(part, '.');
        size_t len = dot ? (size_t)(dot - part) : strlen(part);
        clora_node *next = child_named(node, part, len);
        if (!next) {
            *failed_at = (size_t)(part - path);
            return NULL;
        }
        node = next;
        if (!dot)
            break;
        part = dot + 1;
    }
    return node;
}

clora_status clora_model_find(clora_model *model, const char *path, clora_node **out)
{
    if (!model || !path || !out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_find: NULL argument");
    size_t failed_at = 0;
    clora_node *node = find_path(model->root, path, &failed_at);
    if (!node)
        return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no module \"%s\" (no \"%s\")", path,
                           path + failed_at);
    *out = node;
    return CLORA_OK;
}

const char *clora_node_name(const clora_node *node)
{
    return node ? node->name : "";
}

clora_node_kind clora_node_kind_of(const clora_node *node)
{
    return node ? node->kind : CLORA_NODE_KIND_COUNT;
}

clora_node *clora_node_parent(const clora_node *node)
{
    return node ? node->parent : NULL;
}

size_t clora_node_child_count(const clora_node *node)
{
    return node ? node->child_count : 0;
}

clora_node *clora_node_child(const clora_node *node, size_t index)
{
    return node && index < node->child_count ? node->children[index] : NULL;
}

size_t clora_node_in_features(const clora_node *node)
{
    clora_node *linear = node ? clora__linear_of((clora_node *)node) : NULL;
    return linear ? linear->in_features : 0;
}

size_t clora_node_out_features(const clora_node *node)
{
    clora_node *linear = node ? clora__linear_of((clora_node *)node) : NULL;
    return linear ? linear->out_features : 0;
}

clora_status clora_node_path(const clora_node *node, char *out, size_t size)
{
    if (!node || !out || size == 0)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_node_path: NULL argument");
    const clora_node *chain[256];
    size_t depth = 0;
    for (const clora_node *n = node; n && n->parent; n = n->parent) {
        if (depth == sizeof chain / sizeof chain[0])
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_node_path: tree too deep");
        chain[depth++] = n;
    }
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = depth; i-- > 0;) {
        int n = snprintf(out + used, size - used, "%s%s", used ? "." : "", chain[i]->name);
        if (n < 0 || (size_t)n >= size - used)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_node_path: path too long");
        used += (size_t)n;
    }
    return CLORA_OK;
}

static int visit(clora_node *node, char *path, size_t size, clora_node_visitor fn, void *user)
{
    int stop = fn(node, path, user);
    if (stop)
        return stop;
    size_t len = strlen(path);
    for (size_t i = 0; i < node->child_count; ++i) {
        snprintf(path + len, size - len, "%s%s", len ? "." : "", node->children[i]->name);
        stop = visit(node->children[i], path, size, fn, user);
        path[len] = '\0';
        if (stop)
            return stop;
    }
    return 0;
}

int clora_model_visit(clora_model *model, clora_node_visitor fn, void *user)
{
    if (!model || !fn)
        return 0;
    char path[4096] = "";
    return visit(model->root, path, sizeof path, fn, user);
}

/* ---- the parameter registry and arenas ---------------------------------------------- */

typedef struct registry_walk {
    clora_model *model;
    size_t count;
    clora_status status;
} registry_walk;

static int collect_params(clora_node *node, const char *path, void *user)
{
    registry_walk *walk = user;
    clora_model *model = walk->model;
    for (size_t i = 0; i < node->param_count; ++i) {
        size_t k = walk->count++;
        size_t len = strlen(path) + strlen(node->params[i]->name) + 2;
        char *name = malloc(len);
        if (!name) {
            walk->status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "naming parameters");
            return 1;
        }
        snprintf(name, len, "%s%s%s", path, *path ? "." : "", node->params[i]->name);
        model->params[k] = node->params[i];
        model->param_names[k] = name;
        model->param_nodes[k] = node;
    }
    return 0;
}

static int count_params(clora_node *node, const char *path, void *user)
{
    (void)path;
    *(size_t *)user += node->param_count;
    return 0;
}

static size_t aligned(size_t n)
{
    return (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
}

/* Lays the trainable parameters out in one new allocation (values copied
 * over), gives each a gradient view, and moves frozen ones to their own
 * allocations. */
static clora_status rebuild_arenas(clora_model *model)
{
    size_t total = 0;
    for (size_t i = 0; i < model->param_count; ++i)
        if (model->params[i]->trainable)
            total += aligned(model->params[i]->numel);

    clora_buffer *arena = NULL, *grads = NULL;
    clora_status status = CLORA_OK;
    if (total > 0) {
        status = clora__buffer_create(&arena, model->device, CLORA_DTYPE_F32,
                                      CLORA_MEMORY_TRAINABLE, 1, &total);
        if (status == CLORA_OK)
            status = clora__buffer_create(&grads, model->device, CLORA_DTYPE_F32,
                                          CLORA_MEMORY_GRADIENTS, 1, &total);
    }
    size_t n = model->param_count;
    clora_buffer **values = calloc(n ? n : 1, sizeof *values);
    clora_buffer **views = calloc(n ? n : 1, sizeof *views);
    clora_buffer **owns = calloc(n ? n : 1, sizeof *owns);
    if (status == CLORA_OK && (!values || !views || !owns))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "laying out parameters");

    /* First enqueue every copy into the new places ... */
    size_t offset = 0;
    for (size_t i = 0; i < n && status == CLORA_OK; ++i) {
        clora__param *p = model->params[i];
        if (p->trainable) {
            status = clora_buffer_view(&values[i], arena, offset, p->ndim, p->shape);
            if (status == CLORA_OK)
                status = clora_buffer_view(&views[i], grads, offset, p->ndim, p->shape);
            if (status == CLORA_OK && p->numel)
                status = clora_buffer_copy(values[i], p->value);
            offset += aligned(p->numel);
        } else if (!p->own) {
            status = clora__buffer_create(&owns[i], model->device, CLORA_DTYPE_F32,
                                          CLORA_MEMORY_FROZEN, p->ndim, p->shape);
            if (status == CLORA_OK && p->numel)
                status = clora_buffer_copy(owns[i], p->value);
        }
    }
    if (status != CLORA_OK) {
        for (size_t i = 0; i < n && values; ++i) {
            clora_buffer_destroy(values[i]);
            clora_buffer_destroy(views[i]);
            clora_buffer_destroy(owns[i]);
        }
        free(values);
        free(views);
        free(owns);
        clora_buffer_destroy(arena);
        clora_buffer_destroy(grads);
        return status;
    }
    /* ... then switch over and release the old places (the in-order queue
     * runs the copies before any later use, and OpenCL keeps released
     * buffers alive until enqueued work on them is done). */
    for (size_t i = 0; i < n; ++i) {
        clora__param *p = model->params[i];
        clora_buffer_destroy(p->grad);
        p->grad = NULL;
        if (p->trainable) {
            if (p->value != p->own)
                clora_buffer_destroy(p->value);
            clora_buffer_destroy(p->own);
            p->own = NULL;
            p->value = values[i];
            p->grad = views[i];
        } else {
            if (!p->own) {
                clora_buffer_destroy(p->value);
                p->own = owns[i];
            }
            clora__buffer_set_category(p->own, CLORA_MEMORY_FROZEN);
            p->value = p->own;
        }
    }
    free(values);
    free(views);
    free(owns);
    clora_buffer_destroy(model->trainable_arena);
    clora_buffer_destroy(model->grad_arena);
    model->trainable_arena = arena;
    model->grad_arena = grads;
    model->arena_numel = total;
    model->generation++;
    return CLORA_OK;
}

clora_status clora__model_refresh(clora_model *model)
{
    if (!model->dirty)
        return CLORA_OK;
    free_registry(model);
    size_t count = 0;
    clora_model_visit(model, count_params, &count);
    model->params = calloc(count ? count : 1, sizeof *model->params);
    model->param_names = calloc(count ? count : 1, sizeof *model->param_names);
    model->param_nodes = calloc(count ? count : 1, sizeof *model->param_nodes);
    if (!model->params || !model->param_names || !model->param_nodes) {
        free_registry(model);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing parameters");
    }
    registry_walk walk = {model, 0, CLORA_OK};
    clora_model_visit(model, collect_params, &walk);
    model->param_count = walk.count;
    if (walk.status != CLORA_OK) {
        free_registry(model);
        return walk.status;
    }
    clora_status status = rebuild_arenas(model);
    if (status != CLORA_OK)
        return status;
    model->dirty = 0;
    return CLORA_OK;
}

size_t clora_model_param_count(clora_model *model)
{
    if (!model || clora__model_refresh(model) != CLORA_OK)
        return 0;
    return model->param_count;
}

static void fill_info(clora_model *model, size_t i, clora_param_info *info)
{
    info->name = model->param_names[i];
    info->node = model->param_nodes[i];
    info->value = model->params[i]->value;
    info->grad = model->params[i]->grad;
    info->trainable = model->params[i]->trainable;
}

clora_status clora_model_param(clora_model *model, size_t index, clora_param_info *info)
{
    if (!model || !info)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_param: NULL argument");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    if (index >= model->param_count)
        return clora__fail(CLORA_ERR_NOT_FOUND, "the model has %zu parameters, not %zu",
                           model->param_count, index + 1);
    fill_info(model, index, info);
    return CLORA_OK;
}

clora_status clora_model_find_param(clora_model *model, const char *name, clora_param_info *info)
{
    if (!model || !name || !info)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_find_param: NULL argument");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    for (size_t i = 0; i < model->param_count; ++i)
        if (!strcmp(model->param_names[i], name)) {
            fill_info(model, i, info);
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no parameter \"%s\"", name);
}

static void set_subtree_trainable(clora_node *node, int trainable)
{
    for (size_t i = 0; i < node->param_count; ++i)
        node->params[i]->trainable = trainable;
    for (size_t i = 0; i < node->child_count; ++i)
        set_subtree_trainable(node->children[i], trainable);
}

clora_status clora_model_set_trainable(clora_model *model, const char *path, int trainable)
{
    if (!model || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_set_trainable: NULL argument");
    size_t failed_at = 0;
    clora_node *node = find_path(model->root, path, &failed_at);
    if (node) {
        set_subtree_trainable(node, trainable != 0);
        clora__model_touch(model);
        return CLORA_OK;
    }
    /* A full parameter name ("fc1.lora_A.default.weight"). */
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    for (size_t i = 0; i < model->param_count; ++i)
        if (!strcmp(model->param_names[i], path)) {
            model->params[i]->trainable = trainable != 0;
            clora__model_touch(model);
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_NOT_FOUND, "the model has no module or parameter \"%s\"", path);
}

clora_status clora_model_count_params(clora_model *model, clora_param_counts *counts)
{
    if (!model || !counts)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_count_params: NULL argument");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    memset(counts, 0, sizeof *counts);
    for (size_t i = 0; i < model->param_count; ++i) {
        counts->total += model->params[i]->numel;
        if (model->params[i]->trainable)
            counts->trainable += model->params[i]->numel;
    }
    counts->frozen = counts->total - counts->trainable;
    return CLORA_OK;
}

/* ---- running ------------------------------------------------------------------------ */

clora_status clora_model_set_training(clora_model *model, int training)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_set_training: model is NULL");
    model->training = training != 0;
    return CLORA_OK;
}

int clora_model_training(const clora_model *model)
{
    return model ? model->training : 0;
}

clora_status clora_model_forward(clora_model *model, const clora_buffer *input,
                                 const clora_buffer **output)
{
    if (!model || !input || !output)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_forward: %s is NULL",
                           !model ? "model" : !input ? "input" : "output");
    if (input->device != model->device)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH,
                           "clora_model_forward: the input is on another device than the model");
    if (model->root->child_count == 0)
        return clora__fail(CLORA_ERR_STATE, "clora_model_forward: the model is empty");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    if (model->training)
        model->forward_count++;
    model->has_forward = 0;
    status = clora__node_forward(model->root, input, &model->last_output);
    if (status != CLORA_OK)
        return status;
    model->has_forward = 1;
    *output = model->last_output;
    return CLORA_OK;
}

clora_status clora_model_backward(clora_model *model, const clora_buffer *d_output)
{
    if (!model || !d_output)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_backward: %s is NULL",
                           model ? "d_output" : "model");
    if (!model->has_forward || model->dirty)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_model_backward: run clora_model_forward first (the model "
                           "changed since, or never ran)");
    const clora_buffer *out = model->last_output;
    if (d_output->dtype != CLORA_DTYPE_F32 || d_output->ndim != out->ndim ||
        memcmp(d_output->shape, out->shape, out->ndim * sizeof *out->shape) != 0) {
        char got[64], want[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "clora_model_backward: d_output is %s %s, the output was F32 %s",
                           clora_dtype_name(d_output->dtype),
                           clora_buffer_shape_string(d_output, got, sizeof got),
                           clora_buffer_shape_string(out, want, sizeof want));
    }
    const clora_buffer *dx = NULL;
    return clora__node_backward(model->root, d_output, 0, &dx);
}

clora_status clora_model_zero_grad(clora_model *model)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_zero_grad: model is NULL");
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK || !model->grad_arena)
        return status;
    return clora_buffer_fill(model->grad_arena, 0.0f);
}
