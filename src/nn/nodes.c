/* nodes.c — forward and backward of each node kind. Linear and LoRA nodes
 * call the ops of linear.c and lora.c; the others run the kernels of
 * cl/activation.cl, cl/norm.cl and cl/embedding.cl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* ---- activation buffers ------------------------------------------------------ */

/* Makes *buf a buffer of `dtype` and `shape`, reusing it when both are
 * unchanged (the common case: the same batch shape every step). *created
 * (may be NULL) tells whether it is a new, zero-filled buffer: callers that
 * fill a buffer once must ask this, not compare the handle's address with
 * the old one, which the allocator may hand out again. */
static clora_status ensure_typed(clora_buffer **buf, clora_device *device, clora_dtype dtype,
                                 size_t ndim, const size_t *shape, int *created)
{
    if (created)
        *created = 0;
    if (*buf && (*buf)->dtype == dtype && (*buf)->ndim == ndim &&
        !memcmp((*buf)->shape, shape, ndim * sizeof *shape))
        return CLORA_OK;
    clora_buffer_destroy(*buf);
    *buf = NULL;
    clora_status status =
        clora__buffer_create(buf, device, dtype, CLORA_MEMORY_ACTIVATIONS, ndim, shape);
    if (status == CLORA_OK && created)
        *created = 1;
    return status;
}

clora_status clora__ensure(clora_buffer **buf, clora_device *device, size_t ndim,
                           const size_t *shape)
{
    return ensure_typed(buf, device, CLORA_DTYPE_F32, ndim, shape, NULL);
}

clora_status clora__ensure_i32(clora_buffer **buf, clora_device *device, size_t ndim,
                               const size_t *shape, int *created)
{
    return ensure_typed(buf, device, CLORA_DTYPE_I32, ndim, shape, created);
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

/* x's shape with the last dimension replaced by `last` (or appended). */
static void shape_with_last(const clora_buffer *x, size_t last, int append, size_t *ndim,
                            size_t *shape)
{
    memcpy(shape, x->shape, x->ndim * sizeof *shape);
    if (append) {
        shape[x->ndim] = last;
        *ndim = x->ndim + 1;
    } else {
        shape[x->ndim - 1] = last;
        *ndim = x->ndim;
    }
}

static clora_status ensure_like(clora_buffer **buf, const clora_buffer *like)
{
    return clora__ensure(buf, like->device, like->ndim, like->shape);
}

/* The value / gradient of parameter `name`, or NULL. */
static clora_buffer *value_of(const clora_node *node, const char *name)
{
    clora__param *p = clora__param_get(node, name);
    return p ? p->value : NULL;
}

static clora_buffer *grad_of(const clora_node *node, const char *name)
{
    clora__param *p = clora__param_get(node, name);
    return p ? p->grad : NULL;
}

uint64_t clora__node_seed(const clora_node *node, uint64_t salt)
{
    uint64_t z = node->model->seed ^ (node->model->forward_count * 0x9e3779b97f4a7c15ull) ^
                 ((uint64_t)node->id * 0xc2b2ae3d27d4eb4full) ^ (salt * 0x165667b19e3779f9ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static clora_status require_float_input(const clora_node *node, const clora_buffer *x)
{
    if (x->dtype != CLORA_DTYPE_F32)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s node \"%s\": its input holds %s, not F32",
                           clora_node_kind_name(node->kind), node->name,
                           clora_dtype_name(x->dtype));
    if (x->numel == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s node \"%s\": its input is empty",
                           clora_node_kind_name(node->kind), node->name);
    return CLORA_OK;
}

/* ---- elementwise kernels ----------------------------------------------------------- */

static unsigned activation_code(clora_node_kind kind)
{
    switch (kind) {
    case CLORA_NODE_RELU:
        return 0;
    case CLORA_NODE_GELU:
        return 1;
    case CLORA_NODE_GELU_TANH:
        return 2;
    case CLORA_NODE_SILU:
        return 3;
    default:
        return 4; /* tanh */
    }
}

static clora_status activation_forward(clora_node *node, const clora_buffer *x, clora_buffer *y)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ACTIVATION_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, x);
    clora__arg_uint(&a, x->numel);
    clora__arg_uint(&a, activation_code(node->kind));
    const size_t global[1] = {(x->numel + 7) / 8}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

static clora_status activation_backward(clora_node *node, clora_buffer *dx, const clora_buffer *dy)
{
    const clora_buffer *x = node->input, *y = node->output;
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ACTIVATION_BACKWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, dx);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, y);
    clora__arg_uint(&a, x->numel);
    clora__arg_uint(&a, activation_code(node->kind));
    const size_t global[1] = {(x->numel + 7) / 8}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__dropout(clora_buffer *out, const clora_buffer *in, uint64_t seed, float p)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, in->device, CLORA__KERNEL_DROPOUT_APPLY);
    if (status != CLORA_OK)
        return status;
    size_t rows = clora__rows(in), cols = clora__cols(in);
    clora__arg_buffer(&a, out);
    clora__arg_buffer(&a, in);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    clora__arg_uint(&a, (cl_uint)(seed & 0xffffffffu));
    clora__arg_uint(&a, (cl_uint)(seed >> 32));
    clora__arg_uint(&a, (cl_uint)floor((double)p * 16777216.0));
    clora__arg_float(&a, 1.0f / (1.0f - p));
    const size_t global[2] = {cols, rows}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

clora_status clora__add(clora_buffer *out, const clora_buffer *a, const clora_buffer *b)
{
    clora__args args;
    clora_status status = clora__args_begin(&args, out->device, CLORA__KERNEL_ADD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&args, out);
    clora__arg_buffer(&args, a);
    clora__arg_buffer(&args, b);
    clora__arg_uint(&args, out->numel);
    const size_t global[1] = {(out->numel + 7) / 8}, local[1] = {64}; /* eight per work-item */
    return clora__args_launch(&args, 1, global, local);
}

/* ---- LayerNorm --------------------------------------------------------------------- */

static clora_status layer_norm_forward(clora_node *node, const clora_buffer *x, clora_buffer *y)
{
    const clora_buffer *w = value_of(node, "weight"), *b = value_of(node, "bias");
    size_t rows = clora__rows(x);
    clora__args a;
    clora_status status = clora__ensure(&node->saved[0], x->device, 1, &rows);
    if (status == CLORA_OK)
        status = clora__ensure(&node->saved[1], x->device, 1, &rows);
    if (status == CLORA_OK)
        status = clora__args_begin(&a, x->device, CLORA__KERNEL_LAYER_NORM_FORWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_mem(&a, node->saved[0]->mem);
    clora__arg_mem(&a, node->saved[1]->mem);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, w);
    clora__arg_buffer(&a, b);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, node->features);
    clora__arg_float(&a, node->eps);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

static clora_status layer_norm_backward(clora_node *node, const clora_buffer *dy, clora_buffer *dx)
{
    const clora_buffer *x = node->input, *w = value_of(node, "weight");
    clora_buffer *dw = grad_of(node, "weight"), *db = grad_of(node, "bias");
    size_t rows = clora__rows(x), cols = node->features;
    clora_device *dev = x->device;
    clora__args a;
    clora_status status;
    if (dw || db) {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LAYER_NORM_PARAM_GRADS)))
            return status;
        clora__arg_mem(&a, dw ? dw->mem : dy->mem);
        clora__arg_uint(&a, dw ? dw->offset : 0);
        clora__arg_mem(&a, db ? db->mem : dy->mem);
        clora__arg_uint(&a, db ? db->offset : 0);
        clora__arg_uint(&a, dw != NULL);
        clora__arg_uint(&a, db != NULL);
        clora__arg_buffer(&a, dy);
        clora__arg_buffer(&a, x);
        clora__arg_mem(&a, node->saved[0]->mem);
        clora__arg_mem(&a, node->saved[1]->mem);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, cols);
        const size_t global[1] = {cols}, local[1] = {64};
        if ((status = clora__args_launch(&a, 1, global, local)))
            return status;
    }
    if (!dx)
        return CLORA_OK;
    if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_LAYER_NORM_BACKWARD)))
        return status;
    clora__arg_buffer(&a, dx);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, w);
    clora__arg_mem(&a, node->saved[0]->mem);
    clora__arg_mem(&a, node->saved[1]->mem);
    clora__arg_uint(&a, rows);
    clora__arg_uint(&a, cols);
    const size_t global[1] = {rows}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

/* ---- Embedding -------------------------------------------------------------------------- */

static clora_status embedding_forward(clora_node *node, const clora_buffer *ids, clora_buffer *y)
{
    /* Ids come from outside; check their range before they index a table. */
    int32_t *host = malloc((ids->numel ? ids->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "checking embedding ids");
    clora_status status = clora_buffer_download_i32(ids, 0, host, ids->numel);
    for (size_t i = 0; i < ids->numel && status == CLORA_OK; ++i)
        if (host[i] < 0 || (size_t)host[i] >= node->num_embeddings)
            status = clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                                 "embedding \"%s\": id %d at position %zu is outside [0, %zu)",
                                 node->name, (int)host[i], i, node->num_embeddings);
    free(host);
    if (status != CLORA_OK)
        return status;
    const clora_buffer *w = value_of(node, "weight");
    clora__args a;
    if ((status = clora__args_begin(&a, ids->device, CLORA__KERNEL_EMBEDDING_FORWARD)))
        return status;
    clora__arg_buffer(&a, y);
    clora__arg_buffer(&a, w);
    clora__arg_buffer(&a, ids);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, node->features);
    const size_t global[2] = {node->features, ids->numel}, local[2] = {16, 4};
    return clora__args_launch(&a, 2, global, local);
}

static clora_status embedding_backward(clora_node *node, const clora_buffer *dy)
{
    clora_buffer *dw = grad_of(node, "weight");
    if (!dw)
        return CLORA_OK;
    const clora_buffer *ids = node->input;
    clora__args a;
    clora_status status = clora__args_begin(&a, ids->device, CLORA__KERNEL_EMBEDDING_BACKWARD);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, dw);
    clora__arg_buffer(&a, dy);
    clora__arg_buffer(&a, ids);
    clora__arg_uint(&a, ids->numel);
    clora__arg_uint(&a, node->features);
    const size_t global[1] = {node->features}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

/* ---- Linear and LoRA --------------------------------------------------------------------- */

/* The LoRA adapter this node's forward runs, or NULL for base-only. */
static clora__adapter *running_adapter(const clora_node *node)
{
    if (node->kind != CLORA_NODE_LORA || node->active < 0 || node->merged >= 0)
        return NULL;
    return &node->adapters[node->active];
}

/* The spec of the last forward: backward must regenerate the same mask,
 * even if training mode changed in between. */
static clora_lora_spec spec_of(const clora_node *node, const clora__adapter *ad,
                               const clora_node *base)
{
    clora_lora_spec spec;
    spec.alpha = ad->alpha;
    spec.scale_mode = ad->scale_mode;
    spec.dropout = node->dropout_used;
    spec.dropout_seed = node->dropout_seed;
    spec.weight_layout = base->layout;
    return spec;
}

static clora_status linear_like_forward(clora_node *node, const clora_buffer *x, clora_buffer *y)
{
    clora_node *base = clora__linear_of(node);
    const clora_buffer *w = value_of(base, "weight"), *b = value_of(base, "bias");
    clora__adapter *ad = running_adapter(node);
    if (!ad)
        return clora_linear_forward(y, x, w, b, base->layout);
    size_t ndim, shape[CLORA_MAX_DIMS];
    shape_with_last(x, ad->rank, 0, &ndim, shape);
    clora_status status = clora__ensure(&node->saved[0], x->device, ndim, shape);
    if (status != CLORA_OK)
        return status;
    node->dropout_seed = clora__node_seed(node, 0);
    node->dropout_used = node->model->training ? ad->dropout : 0.0f;
    const clora_lora_spec spec = spec_of(node, ad, base);
    return clora_lora_forward(y, node->saved[0], x, w, b, ad->lora_a->value, ad->lora_b->value,
                              &spec);
}

static clora_status linear_like_backward(clora_node *node, const clora_buffer *dy, clora_buffer *dx)
{
    const clora_buffer *x = node->input;
    clora_node *base = clora__linear_of(node);
    const clora_buffer *w = value_of(base, "weight");
    clora_buffer *dw = grad_of(base, "weight"), *db = grad_of(base, "bias");
    clora__adapter *ad = running_adapter(node);
    clora_status status = CLORA_OK;
    if (ad) {
        clora_buffer *da = ad->lora_a->grad, *dbm = ad->lora_b->grad;
        const clora_lora_spec spec = spec_of(node, ad, base);
        if (dx || da || dbm)
            status = clora_lora_backward(dx, da, dbm, dy, x, node->saved[0], w, ad->lora_a->value,
                                         ad->lora_b->value, &spec);
        dx = NULL; /* done */
    }
    if (status == CLORA_OK && (dx || dw || db))
        status = clora_linear_backward(dx, dw, db, dy, x, w, base->layout);
    return status;
}

/* ---- dispatch -------------------------------------------------------------------------- */

clora_status clora__node_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    node->input = x;
    clora_status status = CLORA_OK;
    size_t ndim, shape[CLORA_MAX_DIMS];
    switch (node->kind) {
    case CLORA_NODE_SEQUENTIAL: {
        const clora_buffer *cur = x;
        for (size_t i = 0; i < node->child_count && status == CLORA_OK; ++i)
            status = clora__node_forward(node->children[i], cur, &cur);
        node->output = cur;
        break;
    }
    case CLORA_NODE_LINEAR:
    case CLORA_NODE_LORA:
        if ((status = require_float_input(node, x)))
            break;
        shape_with_last(x, clora__linear_of(node)->out_features, 0, &ndim, shape);
        if ((status = clora__ensure(&node->owned_output, x->device, ndim, shape)))
            break;
        status = linear_like_forward(node, x, node->owned_output);
        node->output = node->owned_output;
        break;
    case CLORA_NODE_RELU:
    case CLORA_NODE_GELU:
    case CLORA_NODE_GELU_TANH:
    case CLORA_NODE_SILU:
    case CLORA_NODE_TANH:
        if ((status = require_float_input(node, x)) || (status = ensure_like(&node->owned_output, x)))
            break;
        status = activation_forward(node, x, node->owned_output);
        node->output = node->owned_output;
        break;
    case CLORA_NODE_LAYER_NORM:
        if ((status = require_float_input(node, x)))
            break;
        if (clora__cols(x) != node->features) {
            char got[64];
            status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                                 "layer_norm \"%s\" normalises %zu features; its input is %s",
                                 node->name, node->features,
                                 clora_buffer_shape_string(x, got, sizeof got));
            break;
        }
        if ((status = ensure_like(&node->owned_output, x)))
            break;
        status = layer_norm_forward(node, x, node->owned_output);
        node->output = node->owned_output;
        break;
    case CLORA_NODE_EMBEDDING:
        if (x->dtype != CLORA_DTYPE_I32 || x->numel == 0) {
            status = clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                                 "embedding \"%s\" takes a non-empty int32 buffer of ids, not %s",
                                 node->name, clora_dtype_name(x->dtype));
            break;
        }
        if (x->ndim >= CLORA_MAX_DIMS) {
            status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                                 "embedding \"%s\": ids of %zu dimensions give an output of more "
                                 "than %d",
                                 node->name, x->ndim, CLORA_MAX_DIMS);
            break;
        }
        shape_with_last(x, node->features, 1, &ndim, shape);
        if ((status = clora__ensure(&node->owned_output, x->device, ndim, shape)))
            break;
        status = embedding_forward(node, x, node->owned_output);
        node->output = node->owned_output;
        break;
    case CLORA_NODE_DROPOUT:
        if ((status = require_float_input(node, x)))
            break;
        if (node->model->training && node->p > 0.0f) {
            node->dropout_seed = clora__node_seed(node, 0);
            if ((status = ensure_like(&node->owned_output, x)))
                break;
            status = clora__dropout(node->owned_output, x, node->dropout_seed, node->p);
            node->output = node->owned_output;
        } else {
            node->output = x; /* identity: pass the input through */
        }
        break;
    default:
        return clora__transformer_forward(node, x, y);
    }
    if (status == CLORA_OK)
        *y = node->output;
    return status;
}

clora_status clora__node_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx)
{
    *dx = NULL;
    if (node->kind >= CLORA_NODE_GPT2_MODEL)
        return clora__transformer_backward(node, dy, need_dx, dx);
    clora_status status = CLORA_OK;
    clora_buffer *d_input = NULL;
    if (need_dx && node->kind != CLORA_NODE_SEQUENTIAL && node->kind != CLORA_NODE_EMBEDDING) {
        if ((status = ensure_like(&node->d_input, node->input)))
            return status;
        d_input = node->d_input;
    }
    switch (node->kind) {
    case CLORA_NODE_SEQUENTIAL: {
        const clora_buffer *cur = dy;
        for (size_t i = node->child_count; i-- > 0 && status == CLORA_OK;)
            status = clora__node_backward(node->children[i], cur, i > 0 || need_dx, &cur);
        *dx = need_dx ? cur : NULL;
        return status;
    }
    case CLORA_NODE_LINEAR:
    case CLORA_NODE_LORA:
        status = linear_like_backward(node, dy, d_input);
        break;
    case CLORA_NODE_RELU:
    case CLORA_NODE_GELU:
    case CLORA_NODE_GELU_TANH:
    case CLORA_NODE_SILU:
    case CLORA_NODE_TANH:
        if (d_input)
            status = activation_backward(node, d_input, dy);
        break;
    case CLORA_NODE_LAYER_NORM:
        status = layer_norm_backward(node, dy, d_input);
        break;
    case CLORA_NODE_EMBEDDING:
        if (need_dx)
            return clora__fail(CLORA_ERR_STATE,
                               "embedding \"%s\" cannot pass a gradient to integer ids",
                               node->name);
        return embedding_backward(node, dy);
    case CLORA_NODE_DROPOUT:
        if (node->output == node->input) { /* identity */
            *dx = need_dx ? dy : NULL;
            return CLORA_OK;
        }
        if (d_input)
            status = clora__dropout(d_input, dy, node->dropout_seed, node->p);
        break;
    default:
        return clora__fail(CLORA_ERR_STATE, "node \"%s\" has an unknown kind", node->name);
    }
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}
