/* model.c — the model tree: nodes and their kinds' dispatch, Sequential
 * (the kind every tree is made of), addressing, parameters, the parameter
 * registry with its trainable and gradient allocations, trainability, the
 * adapter-name registry, running, and the per-batch inputs. The other node
 * kinds are in files of their own (kinds.c lists them). */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* Arena slots start on 16-float (64-byte) boundaries. */
#define ARENA_ALIGN 16

/* ---- random numbers for initialisation ------------------------------------ */

static uint64_t next_u64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_uniform(uint64_t *state, float lo, float hi)
{
    return lo + (hi - lo) * (float)(next_u64(state) >> 40) * (1.0f / 16777216.0f);
}

static float rng_normal(uint64_t *state)
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

clora_status clora__node_new(clora_model *model, const char *name, const clora__node_kind *kind,
                             clora_node **out)
{
    clora_node *node = clora__calloc(1, sizeof *node);
    if (node && kind->state_size && !(node->state = clora__calloc(1, kind->state_size))) {
        free(node);
        node = NULL;
    }
    if (!node || !(node->name = clora__strdup(name ? name : ""))) {
        if (node)
            free(node->state);
        free(node);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a model node");
    }
    node->model = model;
    node->kind = kind;
    node->id = model->node_counter++;
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
    if (node->kind->release)
        node->kind->release(node);
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
    clora__node_release_activations(node);
    if (node->kind->finalize)
        node->kind->finalize(node);
    free(node->state);
    free(node->children);
    free(node->params);
    free(node->name);
    free(node);
}

/* Attaches child to parent after checking the name. */
static clora_status node_attach(clora_node *parent, clora_node *child)
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
        clora_node **grown = clora__realloc(parent->children, capacity * sizeof *grown);
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

void clora__node_remove_child(clora_node *parent, clora_node *child)
{
    for (size_t i = 0; i < parent->child_count; ++i)
        if (parent->children[i] == child) {
            memmove(parent->children + i, parent->children + i + 1,
                    (parent->child_count - i - 1) * sizeof *parent->children);
            parent->child_count--;
            clora__node_free(child);
            break;
        }
    clora__model_touch(parent->model);
}

clora_node *clora__child(const clora_node *node, const char *name)
{
    if (!node)
        return NULL;
    for (size_t i = 0; i < node->child_count; ++i)
        if (!strcmp(node->children[i]->name, name))
            return node->children[i];
    return NULL;
}

clora_node *clora__descendant(const clora_node *node, const char *path)
{
    char part[64];
    const clora_node *cur = node;
    while (cur && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = '\0';
        cur = clora__child(cur, part);
        path += n + (path[n] == '.');
    }
    return (clora_node *)cur;
}

clora_node *clora__linear_of(const clora_node *node)
{
    if (!node || !(node->kind->flags & CLORA__KIND_LINEAR))
        return NULL;
    return node->kind->base ? node->kind->base(node) : (clora_node *)node;
}

int clora__is_base_layer(const clora_node *node)
{
    const clora_node *parent = node->parent;
    return parent && parent->kind->base && parent->kind->base(parent) == node;
}

/* ---- running a node ------------------------------------------------------------- */

/* Whether node is a block that keeps only its input and output between
 * forward and backward. */
static int checkpointed(const clora_node *node)
{
    return (node->kind->flags & CLORA__KIND_CHECKPOINT) && node->model->checkpointing &&
           node->model->training;
}

/* Frees what the forwards under node kept for backward: every part's state
 * and output but `keep` (the block's output, which may be a part's). */
static void release_activations(clora_node *node, const clora_buffer *keep)
{
    if (node->kind->release)
        node->kind->release(node);
    if (node->owned_output && node->owned_output != keep) {
        /* freed, not pooled: the pool would keep the memory this saves */
        clora_buffer_destroy(node->owned_output);
        node->owned_output = NULL;
        node->output = NULL;
    }
    for (size_t i = 0; i < node->child_count; ++i)
        release_activations(node->children[i], keep);
}

clora_status clora__node_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    node->input = x;
    clora_status status = node->kind->validate ? node->kind->validate(node) : CLORA_OK;
    if (status == CLORA_OK)
        status = node->kind->forward(node, x, &node->output);
    if (status == CLORA_OK)
        *y = node->output;
    /* decided here, whatever the model's settings are at backward */
    node->recompute = status == CLORA_OK && checkpointed(node);
    if (node->recompute) /* backward computes them again */
        release_activations(node, node->output);
    return status;
}

/* Recycles the gradients of node and its subtree, but `keep`. */
static void release_grads(clora_node *node, const clora_buffer *keep)
{
    if (node->d_input && node->d_input != keep)
        clora__buffer_recycle(&node->d_input);
    if (node->kind->release_grads)
        node->kind->release_grads(node);
    for (size_t i = 0; i < node->child_count; ++i)
        release_grads(node->children[i], keep);
}

/* Once a node's backward has returned, the gradients its parts passed each
 * other are spent: only its dx lives on (which may be a part's, passed
 * through), so a backward pass holds one layer's gradients at a time. */
clora_status clora__node_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx)
{
    *dx = NULL;
    const int again = node->recompute;
    const clora_buffer *y = NULL;
    /* the block's forward again, from its kept input: the same step, seeds
     * and places, so the same activations, dropout masks included */
    clora_status status = again ? node->kind->forward(node, node->input, &y) : CLORA_OK;
    if (again && status == CLORA_OK)
        node->output = y;
    if (status == CLORA_OK)
        status = node->kind->backward(node, dy, need_dx, dx);
    if (status != CLORA_OK)
        return status;
    if (node->kind->release_grads)
        node->kind->release_grads(node);
    for (size_t i = 0; i < node->child_count; ++i)
        release_grads(node->children[i], *dx);
    if (again)
        release_activations(node, node->output);
    return CLORA_OK;
}

clora_status clora__node_require_float(const clora_node *node, const clora_buffer *x)
{
    if (x->dtype != CLORA_DTYPE_F32)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s node \"%s\": its input holds %s, not F32",
                           node->kind->name, node->name, clora_dtype_name(x->dtype));
    if (x->numel == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s node \"%s\": its input is empty",
                           node->kind->name, node->name);
    return CLORA_OK;
}

clora_status clora__node_output(clora_node *node, const clora_buffer *x, size_t last, int append)
{
    size_t shape[CLORA_MAX_DIMS];
    memcpy(shape, x->shape, x->ndim * sizeof *shape);
    size_t ndim = x->ndim;
    if (append)
        shape[ndim++] = last;
    else
        shape[ndim - 1] = last;
    return clora__buffer_ensure(&node->owned_output, x->device, CLORA_DTYPE_F32, ndim, shape, NULL);
}

clora_status clora__node_d_input(clora_node *node, int need_dx, clora_buffer **d_input)
{
    *d_input = NULL;
    if (!need_dx)
        return CLORA_OK;
    clora_status status = clora__buffer_ensure_like(&node->d_input, node->input);
    if (status == CLORA_OK)
        *d_input = node->d_input;
    return status;
}

void clora__node_drop_output(clora_node *node)
{
    if (!(node->kind->flags & CLORA__KIND_LINEAR) || node->output != node->owned_output)
        return;
    clora__buffer_recycle(&node->owned_output);
    node->output = NULL;
}

uint64_t clora__node_seed(const clora_node *node, uint64_t salt)
{
    uint64_t z = node->model->seed ^ (node->model->forward_count * 0x9e3779b97f4a7c15ull) ^
                 ((uint64_t)node->id * 0xc2b2ae3d27d4eb4full) ^ (salt * 0x165667b19e3779f9ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

size_t clora__node_dropout_row0(const clora_node *node, const clora_buffer *x)
{
    const size_t batch = x->ndim >= 2 ? x->shape[0] : 1;
    return batch ? node->model->first_example * (clora__rows(x) / batch) : 0;
}

/* ---- building ------------------------------------------------------------------ */

static clora_status check_parent(const char *op, clora_node *parent)
{
    if (!parent)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: parent is NULL", op);
    /* composite parts get their children from clora's own builders only */
    if (!(parent->kind->flags & CLORA__KIND_SEQUENTIAL) &&
        !((parent->kind->flags & CLORA__KIND_COMPOSITE) && parent->model->building))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: children go into Sequential nodes, \"%s\" is %s", op, parent->name,
                           parent->kind->name);
    return CLORA_OK;
}

clora_status clora__add_node(const char *op, clora_node *parent, const char *name,
                             const clora__node_kind *kind, const void *args, clora_node **out)
{
    clora_status status = check_parent(op, parent);
    if (status != CLORA_OK)
        return status;
    if (!name)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: name is NULL", op);
    clora_node *node = NULL;
    status = clora__node_new(parent->model, name, kind, &node);
    if (status == CLORA_OK)
        node->parent = parent; /* for its path while it sets up; attached below */
    if (status == CLORA_OK && kind->setup)
        status = kind->setup(node, args);
    if (status == CLORA_OK)
        status = node_attach(parent, node);
    if (status != CLORA_OK) {
        clora__node_free(node);
        return clora__fail_prefixed(status, "%s(\"%s\")", op, name);
    }
    if (out)
        *out = node;
    return CLORA_OK;
}

/* ---- Sequential ------------------------------------------------------------------ */

static clora_status sequential_forward(clora_node *node, const clora_buffer *x,
                                       const clora_buffer **y)
{
    const clora_buffer *cur = x;
    clora_status status = CLORA_OK;
    for (size_t i = 0; i < node->child_count && status == CLORA_OK; ++i)
        status = clora__node_forward(node->children[i], cur, &cur);
    *y = cur;
    return status;
}

static clora_status sequential_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    const clora_buffer *cur = dy;
    clora_status status = CLORA_OK;
    for (size_t i = node->child_count; i-- > 0 && status == CLORA_OK;) {
        status = clora__node_backward(node->children[i], cur, i > 0 || need_dx, &cur);
        /* the later part's gradient was this part's dy: spent */
        if (status == CLORA_OK && i + 1 < node->child_count)
            release_grads(node->children[i + 1], cur);
    }
    *dx = need_dx ? cur : NULL;
    return status;
}

static clora_status sequential_load(const clora__node_kind *kind, clora_node *parent,
                                    const char *name, json_t *j, const char *where,
                                    clora_node **out)
{
    (void)kind;
    (void)j;
    (void)where;
    return clora_node_add_sequential(parent, name, out);
}

const clora__node_kind clora__sequential_kind = {
    .id = CLORA_NODE_SEQUENTIAL,
    .name = "sequential",
    .flags = CLORA__KIND_SEQUENTIAL,
    .forward = sequential_forward,
    .backward = sequential_backward,
    .load = sequential_load,
};

clora_status clora_node_add_sequential(clora_node *parent, const char *name, clora_node **out)
{
    return clora__add_node("clora_node_add_sequential", parent, name, &clora__sequential_kind,
                           NULL, out);
}

/* ---- parameters ---------------------------------------------------------------- */

/* Writes a parameter's values as `init` says, drawing from the model's
 * initialisation stream. */
static clora_status init_values(clora_model *model, clora__param *p, clora__init init, float bound)
{
    float *host = clora__malloc((p->numel ? p->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "initialising %s", p->name);
    for (size_t i = 0; i < p->numel; ++i)
        host[i] = init == CLORA__INIT_ZERO       ? 0.0f
                  : init == CLORA__INIT_ONE      ? 1.0f
                  : init == CLORA__INIT_UNIFORM ? rng_uniform(&model->init_rng, -bound, bound)
                                                : bound * rng_normal(&model->init_rng);
    clora_status status = clora_buffer_upload(p->value, 0, host, p->numel);
    free(host);
    return status;
}

/* How a new parameter is stored: F32 unless a loader's storage hook packs
 * it (the weights of Linear and Embedding nodes that a file fills; heads
 * drawn while a loader builds, with skip_init off, stay F32). */
static clora_status storage_of(clora_node *node, const char *name, size_t ndim,
                               const size_t *shape, clora_dtype *dtype)
{
    clora_model *model = node->model;
    *dtype = CLORA_DTYPE_F32;
    const int weight = ndim == 2 && !strcmp(name, "weight") &&
                       (node->kind->flags & CLORA__KIND_PACKABLE);
    if (!model->storage || !weight || !model->skip_init)
        return CLORA_OK;
    char path[4096];
    clora_status status = clora_node_path(node, path, sizeof path - 8);
    if (status != CLORA_OK)
        return status;
    strcat(path, *path ? ".weight" : "weight");
    *dtype = model->storage(model, path, shape, model->storage_user);
    return CLORA_OK;
}

clora_status clora__param_add(clora_node *node, const char *name, size_t ndim, const size_t *shape,
                              clora__init init, float bound, clora__param **out)
{
    clora_model *model = node->model;
    clora__param *p = clora__calloc(1, sizeof *p);
    clora__param **grown = clora__realloc(node->params, (node->param_count + 1) * sizeof *grown);
    if (grown)
        node->params = grown;
    if (!p || !grown || !(p->name = clora__strdup(name))) {
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
    clora_dtype dtype = CLORA_DTYPE_F32;
    clora_status status = storage_of(node, name, ndim, shape, &dtype);
    if (status == CLORA_OK && clora_dtype_is_packed(dtype)) {
        p->trainable = 0; /* packed weights stay frozen */
        status = clora__buffer_create_packed(&p->own, model->device, dtype, CLORA_MEMORY_FROZEN,
                                             shape[0], shape[1]);
    } else if (status == CLORA_OK) {
        status = clora__buffer_create(&p->own, model->device, CLORA_DTYPE_F32,
                                      CLORA_MEMORY_TRAINABLE, ndim, shape);
    }
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

clora_buffer *clora__param_value(const clora_node *node, const char *name)
{
    clora__param *p = clora__param_get(node, name);
    return p ? p->value : NULL;
}

clora_buffer *clora__param_grad(const clora_node *node, const char *name)
{
    clora__param *p = clora__param_get(node, name);
    return p ? p->grad : NULL;
}

clora_status clora__param_reinit(clora_node *node, const char *name, clora__init init,
                                 float bound)
{
    clora__param *p = clora__param_get(node, name);
    if (!p)
        return clora__fail(CLORA_ERR_NOT_FOUND, "node %s has no parameter %s", node->name, name);
    return node->model->skip_init ? CLORA_OK : init_values(node->model, p, init, bound);
}

/* ---- the model ---------------------------------------------------------------- */

clora_status clora_model_create(clora_model **out, clora_device *device, uint64_t seed)
{
    if (!out || !device)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create: %s is NULL",
                           out ? "device" : "out");
    *out = NULL;
    clora_model *model = clora__calloc(1, sizeof *model);
    if (!model)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a model");
    model->device = device;
    model->seed = seed;
    model->init_rng = seed ^ 0x6a09e667f3bcc908ull;
    clora_status status = clora__node_new(model, "", &clora__sequential_kind, &model->root);
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
    for (size_t i = 0; i < model->adapter_name_count; ++i)
        free(model->adapter_names[i]);
    free(model->adapter_names);
    free(model->adapter_bias);
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
    return node ? node->kind->id : CLORA_NODE_KIND_COUNT;
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
        char *name = clora__malloc(len);
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
    for (size_t i = 0; i < model->param_count; ++i)
        if (model->params[i]->trainable && clora_dtype_is_packed(model->params[i]->value->dtype))
            return clora__packed_trainable_error(model->param_names[i],
                                                 model->params[i]->value->dtype);
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
    clora_buffer **values = clora__calloc(n ? n : 1, sizeof *values);
    clora_buffer **views = clora__calloc(n ? n : 1, sizeof *views);
    clora_buffer **owns = clora__calloc(n ? n : 1, sizeof *owns);
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
        for (size_t i = 0; i < n; ++i) {
            clora_buffer_destroy(values ? values[i] : NULL);
            clora_buffer_destroy(views ? views[i] : NULL);
            clora_buffer_destroy(owns ? owns[i] : NULL);
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
    model->params = clora__calloc(count ? count : 1, sizeof *model->params);
    model->param_names = clora__calloc(count ? count : 1, sizeof *model->param_names);
    model->param_nodes = clora__calloc(count ? count : 1, sizeof *model->param_nodes);
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
    size_t count = 0;
    return clora_model_params(model, &count) == CLORA_OK ? count : 0;
}

clora_status clora_model_params(clora_model *model, size_t *count)
{
    if (!model || !count)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_params: NULL argument");
    *count = 0;
    clora_status status = clora__model_refresh(model);
    if (status == CLORA_OK)
        *count = model->param_count;
    return status;
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

clora_status clora__packed_trainable_error(const char *name, clora_dtype dtype)
{
    return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                       "parameter %s is stored packed (%s) and cannot train; packed weights stay "
                       "frozen (load the model with --base-dtype f32 to train it)",
                       name, clora_dtype_name(dtype));
}

/* The first packed parameter below `node` (into *name), or NULL. */
static const clora__param *packed_below(const clora_node *node, char *name, size_t size)
{
    for (size_t i = 0; i < node->param_count; ++i)
        if (clora_dtype_is_packed(node->params[i]->value->dtype)) {
            char path[4096];
            if (clora_node_path(node, path, sizeof path) != CLORA_OK)
                path[0] = '\0';
            snprintf(name, size, "%s%s%s", path, *path ? "." : "", node->params[i]->name);
            return node->params[i];
        }
    for (size_t i = 0; i < node->child_count; ++i) {
        const clora__param *p = packed_below(node->children[i], name, size);
        if (p)
            return p;
    }
    return NULL;
}

clora_status clora__check_unpacked(const clora_node *node)
{
    char name[4096];
    const clora__param *p = packed_below(node, name, sizeof name);
    return p ? clora__packed_trainable_error(name, p->value->dtype) : CLORA_OK;
}

clora_status clora_model_set_trainable(clora_model *model, const char *path, int trainable)
{
    if (!model || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_set_trainable: NULL argument");
    size_t failed_at = 0;
    clora_node *node = find_path(model->root, path, &failed_at);
    clora_status status;
    if (node && trainable && (status = clora__check_unpacked(node)) != CLORA_OK)
        return status;
    if (node) {
        set_subtree_trainable(node, trainable != 0);
        clora__model_touch(model);
        return CLORA_OK;
    }
    /* A full parameter name ("fc1.lora_A.default.weight"). */
    status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    for (size_t i = 0; i < model->param_count; ++i)
        if (!strcmp(model->param_names[i], path)) {
            if (trainable && clora_dtype_is_packed(model->params[i]->value->dtype))
                return clora__packed_trainable_error(path, model->params[i]->value->dtype);
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

clora_status clora_model_set_checkpointing(clora_model *model, int on)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_set_checkpointing: model is NULL");
    model->checkpointing = on != 0;
    return CLORA_OK;
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

/* ---- adapter names ------------------------------------------------------------------ */

int clora__adapter_index(const clora_model *model, const char *name)
{
    for (size_t i = 0; i < model->adapter_name_count; ++i)
        if (!strcmp(model->adapter_names[i], name))
            return (int)i;
    return -1;
}

clora_status clora__adapters_register(clora_model *model, const char *name)
{
    if (clora__adapter_index(model, name) >= 0)
        return CLORA_OK;
    unsigned char *bias = clora__realloc(model->adapter_bias, model->adapter_name_count + 1);
    if (!bias)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "registering adapter %s", name);
    model->adapter_bias = bias;
    bias[model->adapter_name_count] = CLORA_BIAS_NONE;
    char **grown =
        clora__realloc(model->adapter_names, (model->adapter_name_count + 1) * sizeof *grown);
    if (!grown)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "registering adapter %s", name);
    model->adapter_names = grown;
    if (!(grown[model->adapter_name_count] = clora__strdup(name)))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "registering adapter %s", name);
    model->adapter_name_count++;
    return CLORA_OK;
}

/* ---- per-batch inputs ----------------------------------------------------------------- */

static clora_status set_batch_input(clora_model *model, const clora_buffer *buf, const char *op,
                                    const clora_buffer **slot)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: model is NULL", op);
    if (buf && (buf->dtype != CLORA_DTYPE_I32 || buf->ndim != 2)) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: needs int32 (B, T), not %s %s", op,
                           clora_dtype_name(buf->dtype),
                           clora_buffer_shape_string(buf, got, sizeof got));
    }
    if (buf && buf->device != model->device)
        return clora__fail(CLORA_ERR_DEVICE_MISMATCH, "%s: the buffer is on another device", op);
    *slot = buf;
    model->has_forward = 0; /* a backward must follow a forward with these inputs */
    return CLORA_OK;
}

clora_status clora_model_set_attention_mask(clora_model *model, const clora_buffer *mask)
{
    return set_batch_input(model, mask, "clora_model_set_attention_mask",
                           model ? &model->attention_mask : NULL);
}

clora_status clora_model_set_positions(clora_model *model, const clora_buffer *positions)
{
    return set_batch_input(model, positions, "clora_model_set_positions",
                           model ? &model->positions : NULL);
}

clora_status clora_model_set_token_types(clora_model *model, const clora_buffer *types)
{
    return set_batch_input(model, types, "clora_model_set_token_types",
                           model ? &model->token_types : NULL);
}
