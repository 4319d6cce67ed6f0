/* lora_layer.c — the LoRA node kinds, as PEFT builds them: a Linear (its
 * child "base_layer") plus named adapters, each A (r, in) and B (out, r), of
 * which at most one runs and at most one is merged into the base weight:
 *     y = x · Wᵀ + b + s · drop(x) · Aᵀ · Bᵀ
 * A DoRA adapter also has a magnitude m (out) and computes as
 * clora/dora.h says. The same over an Embedding (PEFT's lora.Embedding),
 * A (r, V) and B (C, r), has its forward and backward in
 * lora_embedding.c. The products are ops/lora.c's and ops/dora.c's.
 * replace_linear_with_lora, the adapter names and trainability are in
 * adapter.c. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

typedef struct lora_state {
    clora__adapter *adapters;
    size_t adapter_count;
    int active;         /* index of the adapter forwards run, -1 for none */
    int merged;         /* index of the adapter merged into the base weight, -1 for none */
    clora_buffer *h;    /* (..., r): drop(x) · Aᵀ of the last forward */
    clora_buffer *t;    /* (..., out), DoRA: drop(x) · Wᵀ + s · h · Bᵀ of the last forward */
    clora_buffer *norm; /* (out), DoRA: ||W + s·B·A|| per output feature, of the last forward */
    float *merged_norm; /* (out), DoRA: the norm a merge divided by, which unmerge needs */
    uint64_t dropout_seed;
    size_t dropout_row0;
    float dropout_used; /* the dropout p the last forward applied */
} lora_state;

static clora_node *lora_base(const clora_node *node)
{
    return node->children[0];
}

static int on_embedding(const clora_node *node)
{
    return node->kind == &clora__lora_embedding_kind;
}

/* A (r, in) and B (out, r) of the node's adapters: a Linear's in and out
 * features, an Embedding's rows V and features C. */
static void adapter_dims(const clora_node *node, size_t *in, size_t *out)
{
    if (on_embedding(node)) {
        const clora_buffer *table = clora__param_value(lora_base(node), "weight");
        *in = table->shape[0];
        *out = table->shape[1];
        return;
    }
    clora__linear_dims_of(node, in, out, NULL);
}

/* How the base weight holds B · A: an Embedding's table (V, C) is it
 * transposed. */
static clora_weight_layout delta_layout(const clora_node *node)
{
    clora_weight_layout layout = CLORA_WEIGHT_IN_OUT;
    if (!on_embedding(node))
        clora__linear_dims_of(node, NULL, NULL, &layout);
    return layout;
}

/* The adapter this node's forward runs, or NULL for base-only. */
static clora__adapter *running_adapter(const clora_node *node)
{
    const lora_state *s = CLORA__STATE(lora_state, node);
    if (s->active < 0 || s->merged >= 0)
        return NULL;
    return &s->adapters[s->active];
}

/* The spec of the last forward: backward must regenerate the same mask,
 * even if training mode changed in between. */
static clora_lora_spec spec_of(const clora_node *node, const clora__adapter *ad)
{
    const lora_state *s = CLORA__STATE(lora_state, node);
    clora_lora_spec spec;
    spec.alpha = ad->alpha;
    spec.scale_mode = ad->scale_mode;
    spec.dropout = s->dropout_used;
    spec.dropout_seed = s->dropout_seed;
    spec.dropout_row0 = s->dropout_row0;
    clora__linear_dims_of(node, NULL, NULL, &spec.weight_layout);
    return spec;
}

static clora_status lora_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    lora_state *s = CLORA__STATE(lora_state, node);
    const clora_node *base = lora_base(node);
    size_t out_features = 0;
    clora_weight_layout layout;
    clora__linear_dims_of(node, NULL, &out_features, &layout);
    clora_status status = clora__node_require_float(node, x);
    if (status == CLORA_OK)
        status = clora__node_output(node, x, out_features, 0);
    *y = node->owned_output;
    if (status != CLORA_OK)
        return status;
    const clora_buffer *w = clora__param_value(base, "weight");
    const clora_buffer *b = clora__param_value(base, "bias");
    clora__adapter *ad = running_adapter(node);
    if (!ad)
        return clora_linear_forward(node->owned_output, x, w, b, layout);
    size_t shape[CLORA_MAX_DIMS];
    memcpy(shape, x->shape, x->ndim * sizeof *shape);
    shape[x->ndim - 1] = ad->rank;
    status = clora__buffer_ensure(&s->h, x->device, CLORA_DTYPE_F32, x->ndim, shape, NULL);
    if (status != CLORA_OK)
        return status;
    s->dropout_seed = clora__node_seed(node, 0);
    s->dropout_row0 = clora__node_dropout_row0(node, x);
    s->dropout_used = node->model->training ? ad->dropout : 0.0f;
    const clora_lora_spec spec = spec_of(node, ad);
    if (!ad->magnitude)
        return clora_lora_forward(node->owned_output, s->h, x, w, b, ad->lora_a->value,
                                  ad->lora_b->value, &spec);
    const size_t norm_shape[1] = {out_features};
    if ((status = clora__buffer_ensure_like(&s->t, node->owned_output)) ||
        (status = clora__buffer_ensure(&s->norm, x->device, CLORA_DTYPE_F32, 1, norm_shape, NULL)))
        return status;
    return clora_dora_forward(node->owned_output, s->h, s->t, s->norm, x, w, b, ad->lora_a->value,
                              ad->lora_b->value, ad->magnitude->value, &spec);
}

static clora_status lora_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx)
{
    const lora_state *s = CLORA__STATE(lora_state, node);
    const clora_buffer *x = node->input;
    const clora_node *base = lora_base(node);
    const clora_buffer *w = clora__param_value(base, "weight");
    clora_buffer *dw = clora__param_grad(base, "weight"), *db = clora__param_grad(base, "bias");
    clora_buffer *d_input = NULL;
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status != CLORA_OK)
        return status;
    clora__adapter *ad = running_adapter(node);
    clora_buffer *d_rest = d_input; /* what the Linear backward still owes */
    if (ad) {
        clora_buffer *da = ad->lora_a->grad, *dbm = ad->lora_b->grad;
        clora_buffer *dm = ad->magnitude ? ad->magnitude->grad : NULL;
        const clora_lora_spec spec = spec_of(node, ad);
        if (ad->magnitude && (d_input || da || dbm || dm))
            status = clora_dora_backward(d_input, da, dbm, dm, dy, x, s->h, s->t, s->norm, w,
                                         ad->lora_a->value, ad->lora_b->value,
                                         ad->magnitude->value, &spec);
        else if (d_input || da || dbm)
            status = clora_lora_backward(d_input, da, dbm, dy, x, s->h, w, ad->lora_a->value,
                                         ad->lora_b->value, &spec);
        d_rest = NULL; /* done */
    }
    clora_weight_layout layout;
    clora__linear_dims_of(node, NULL, NULL, &layout);
    if (status == CLORA_OK && (d_rest || dw || db))
        status = clora_linear_backward(d_rest, dw, db, dy, x, w, layout);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static void lora_release(clora_node *node)
{
    lora_state *s = CLORA__STATE(lora_state, node);
    clora_buffer_destroy(s->h);
    clora_buffer_destroy(s->t);
    clora_buffer_destroy(s->norm);
    s->h = s->t = s->norm = NULL;
}

static void lora_finalize(clora_node *node)
{
    lora_state *s = CLORA__STATE(lora_state, node);
    for (size_t i = 0; i < s->adapter_count; ++i)
        free(s->adapters[i].name);
    free(s->adapters);
    free(s->merged_norm);
}

const clora__node_kind clora__lora_kind = {
    .id = CLORA_NODE_LORA,
    .name = "lora",
    .flags = CLORA__KIND_LINEAR,
    .state_size = sizeof(lora_state),
    .forward = lora_forward,
    .backward = lora_backward,
    .base = lora_base,
    .release = lora_release,
    .finalize = lora_finalize,
};

static clora_status table_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    return clora__lora_embedding_run(node, running_adapter(node), x, y);
}

static clora_status table_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                   const clora_buffer **dx)
{
    return clora__lora_embedding_run_backward(node, running_adapter(node), dy, need_dx, dx);
}

/* Over an Embedding: the products are lora_embedding.c's. */
const clora__node_kind clora__lora_embedding_kind = {
    .id = CLORA_NODE_LORA,
    .name = "lora_embedding",
    .state_size = sizeof(lora_state),
    .forward = table_forward,
    .backward = table_backward,
    .base = lora_base,
    .finalize = lora_finalize,
};

int clora__is_lora(const clora_node *node)
{
    return node && (node->kind == &clora__lora_kind || node->kind == &clora__lora_embedding_kind);
}

/* ---- wrapping ------------------------------------------------------------------------ */

clora_status clora__wrap_linear(clora_node *linear, clora_node **out)
{
    clora_model *model = linear->model;
    clora_node *parent = linear->parent;
    clora_node *lora = NULL;
    const clora__node_kind *kind =
        linear->kind == &clora__embedding_kind ? &clora__lora_embedding_kind : &clora__lora_kind;
    clora_status status = clora__node_new(model, linear->name, kind, &lora);
    if (status != CLORA_OK)
        return status;
    lora->children = clora__malloc(sizeof *lora->children);
    char *base_name = clora__strdup("base_layer");
    if (!lora->children || !base_name) {
        free(base_name);
        clora__node_free(lora);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "wrapping %s", linear->name);
    }
    lora_state *s = CLORA__STATE(lora_state, lora);
    s->active = -1;
    s->merged = -1;
    lora->trainable_module = linear->trainable_module;
    clora__node_replace_child(parent, linear, lora);
    free(linear->name);
    linear->name = base_name;
    clora__node_release_activations(linear);
    lora->children[0] = linear;
    lora->child_count = lora->child_capacity = 1;
    linear->parent = lora;
    *out = lora;
    return CLORA_OK;
}

/* Turns a LoRA node without adapters back into its base Linear. */
static clora_status unwrap(clora_node *lora)
{
    clora_node *linear = lora->children[0];
    char *name = clora__strdup(lora->name);
    if (!name)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "unwrapping %s", lora->name);
    clora__node_replace_child(lora->parent, lora, linear);
    free(linear->name);
    linear->name = name;
    linear->trainable_module = lora->trainable_module;
    lora->child_count = 0;
    clora__node_free(lora);
    return CLORA_OK;
}

/* ---- adapters ------------------------------------------------------------------------- */

clora_status clora__lora_add_adapter(clora_node *lora, const char *name, size_t rank, float alpha,
                                     clora_scale_mode scale_mode, float dropout,
                                     clora_init_mode init, clora__adapter **out)
{
    lora_state *s = CLORA__STATE(lora_state, lora);
    size_t in = 0, features = 0;
    adapter_dims(lora, &in, &features);
    const int table = on_embedding(lora);
    char a_name[256], b_name[256];
    snprintf(a_name, sizeof a_name, table ? "lora_embedding_A.%s" : "lora_A.%s.weight", name);
    snprintf(b_name, sizeof b_name, table ? "lora_embedding_B.%s" : "lora_B.%s.weight", name);
    const size_t a_shape[2] = {rank, in}, b_shape[2] = {features, rank};
    clora__init a_init = init == CLORA_INIT_GAUSSIAN ? CLORA__INIT_NORMAL : CLORA__INIT_UNIFORM;
    float bound = init == CLORA_INIT_PEFT   ? 1.0f / sqrtf((float)in)
                  : init == CLORA_INIT_SEED ? 1.0f / sqrtf((float)rank)
                                            : 1.0f / (float)rank;
    /* PEFT's lora.Embedding, whatever the init: A = 0, B ~ N(0, 1) */
    clora__init b_init = table ? CLORA__INIT_NORMAL : CLORA__INIT_ZERO;
    if (table)
        a_init = CLORA__INIT_ZERO;
    clora__adapter *grown = clora__realloc(s->adapters, (s->adapter_count + 1) * sizeof *grown);
    if (!grown)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "adding adapter %s", name);
    s->adapters = grown;
    clora__adapter *ad = &s->adapters[s->adapter_count];
    memset(ad, 0, sizeof *ad);
    if (!(ad->name = clora__strdup(name)))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "adding adapter %s", name);
    clora_status status = clora__param_add(lora, a_name, 2, a_shape, a_init, bound, &ad->lora_a);
    if (status == CLORA_OK)
        status = clora__param_add(lora, b_name, 2, b_shape, b_init, 1.0f, &ad->lora_b);
    if (status != CLORA_OK) {
        if (ad->lora_a)
            clora__param_remove(lora, ad->lora_a);
        free(ad->name);
        return status;
    }
    ad->rank = rank;
    ad->alpha = alpha;
    ad->scale_mode = scale_mode;
    ad->dropout = dropout;
    s->adapter_count++;
    if (out)
        *out = ad;
    return CLORA_OK;
}

clora_status clora__dora_check_base(const clora_node *linear)
{
    const clora_node *base = clora__linear_of(linear);
    const clora_buffer *w = base ? clora__param_value(base, "weight") : NULL;
    if (w && w->dtype != CLORA_DTYPE_F32 && w->dtype != CLORA_DTYPE_F16 &&
        w->dtype != CLORA_DTYPE_BF16)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: DoRA needs the norms of the base weight's rows, and its weight "
                           "is stored %s; load the model with F32, F16 or BF16 weights for "
                           "DoRA (load option base_dtype; clora train --base-dtype f32, f16 "
                           "or bf16)",
                           linear->name, clora_dtype_name(w->dtype));
    return CLORA_OK;
}

clora_status clora__lora_add_magnitude(clora_node *lora, clora__adapter *ad, clora__param **out)
{
    size_t features = 0;
    clora_weight_layout layout;
    clora__linear_dims_of(lora, NULL, &features, &layout);
    const clora_buffer *w = clora__param_value(lora_base(lora), "weight");
    clora_status status = clora__dora_check_base(lora);
    if (status != CLORA_OK)
        return status;
    char name[256];
    snprintf(name, sizeof name, "lora_magnitude_vector.%s.weight", ad->name);
    const size_t shape[1] = {features};
    clora__param *m = NULL;
    status = clora__param_add(lora, name, 1, shape, CLORA__INIT_ZERO, 0.0f, &m);
    if (status != CLORA_OK)
        return status;
    clora_lora_spec spec = spec_of(lora, ad);
    spec.weight_layout = layout;
    status = clora_dora_weight_norm(m->value, w, ad->lora_a->value, ad->lora_b->value, &spec);
    if (status != CLORA_OK) {
        clora__param_remove(lora, m);
        return status;
    }
    ad->magnitude = m;
    if (out)
        *out = m;
    return CLORA_OK;
}

size_t clora__lora_adapter_count(const clora_node *lora)
{
    return CLORA__STATE(lora_state, lora)->adapter_count;
}

clora__adapter *clora__lora_adapter(const clora_node *lora, size_t index)
{
    return &CLORA__STATE(lora_state, lora)->adapters[index];
}

int clora__lora_find(const clora_node *lora, const char *name)
{
    const lora_state *s = CLORA__STATE(lora_state, lora);
    for (size_t i = 0; i < s->adapter_count; ++i)
        if (!strcmp(s->adapters[i].name, name))
            return (int)i;
    return -1;
}

void clora__lora_activate(clora_node *lora, const char *name)
{
    lora_state *s = CLORA__STATE(lora_state, lora);
    s->active = name ? clora__lora_find(lora, name) : -1;
    if (s->active >= 0) {
        s->adapters[s->active].lora_a->trainable = 1;
        s->adapters[s->active].lora_b->trainable = 1;
        if (s->adapters[s->active].magnitude)
            s->adapters[s->active].magnitude->trainable = 1;
    }
}

clora_status clora__lora_remove(clora_node *lora, size_t index)
{
    lora_state *s = CLORA__STATE(lora_state, lora);
    clora__adapter *ad = &s->adapters[index];
    clora__param_remove(lora, ad->lora_a);
    clora__param_remove(lora, ad->lora_b);
    if (ad->magnitude)
        clora__param_remove(lora, ad->magnitude);
    free(ad->name);
    memmove(ad, ad + 1, (s->adapter_count - index - 1) * sizeof *ad);
    s->adapter_count--;
    s->active = -1;
    clora__node_release_activations(lora);
    return s->adapter_count == 0 ? unwrap(lora) : CLORA_OK;
}

clora_status clora__lora_unwrap_empty(clora_node *lora)
{
    return CLORA__STATE(lora_state, lora)->adapter_count == 0 ? unwrap(lora) : CLORA_OK;
}

/* ---- merging ---------------------------------------------------------------------------- */

/* A DoRA adapter's merge, W ← c ⊙ (W + s·B·A) with c = m / ||W + s·B·A||
 * per output feature (keeping that norm for the unmerge, as PEFT does), or
 * its unmerge, W ← W / c − s·B·A with the kept norm; `host` holds W's
 * values on entry and receives the new ones. */
static clora_status dora_merge(clora_node *node, clora__adapter *ad, int sign, float *host,
                               float scale)
{
    lora_state *s = CLORA__STATE(lora_state, node);
    size_t in = 0, out = 0;
    clora_weight_layout layout;
    clora__linear_dims_of(node, &in, &out, &layout);
    clora_buffer *w = clora__param_value(lora_base(node), "weight");
    float *c = clora__malloc(2 * out * sizeof *c), *norm = c ? c + out : NULL;
    float *kept = sign > 0 && !s->merged_norm ? clora__malloc(out * sizeof *kept) : s->merged_norm;
    clora_buffer *device_norm = NULL;
    clora_status status = c && kept ? CLORA_OK
                                    : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY,
                                                  "merging into %s", node->name);
    s->merged_norm = kept;
    if (status == CLORA_OK)
        status = clora_buffer_download(ad->magnitude->value, 0, c, out);
    if (status == CLORA_OK && sign > 0) { /* the norm of W + s·B·A, W now holding it */
        const size_t shape[1] = {out};
        clora_lora_spec spec = spec_of(node, ad);
        if ((status = clora__lora_add_delta(w, layout, ad->lora_a->value, ad->lora_b->value,
                                            scale)) == CLORA_OK &&
            (status = clora__buffer_ensure(&device_norm, w->device, CLORA_DTYPE_F32, 1, shape,
                                           NULL)) == CLORA_OK &&
            (status = clora_dora_weight_norm(device_norm, w, NULL, NULL, &spec)) == CLORA_OK &&
            (status = clora_buffer_download(device_norm, 0, norm, out)) == CLORA_OK)
            status = clora_buffer_download(w, 0, host, w->numel);
        clora__buffer_recycle(&device_norm);
    }
    if (status == CLORA_OK) {
        if (sign > 0)
            memcpy(kept, norm, out * sizeof *norm);
        for (size_t j = 0; j < out; ++j)
            c[j] = sign > 0 ? c[j] / kept[j] : kept[j] / c[j]; /* the factor to apply */
        for (size_t k = 0; k < w->numel; ++k)
            host[k] *= c[layout == CLORA_WEIGHT_OUT_IN ? k / in : k % out];
        status = clora_buffer_upload(w, 0, host, w->numel);
    }
    if (status == CLORA_OK && sign < 0)
        status = clora__lora_add_delta(w, layout, ad->lora_a->value, ad->lora_b->value, -scale);
    free(c);
    return status;
}

/* Adds sign·s·B·A of adapter `index` to the base weight (DoRA: merges or
 * unmerges as dora_merge says), whose values before are in `before`; on
 * any failure the weight is put back. */
static clora_status merge_adapter(clora_node *node, int index, int sign, const float *before)
{
    lora_state *s = CLORA__STATE(lora_state, node);
    clora__adapter *ad = &s->adapters[index];
    const clora_weight_layout layout = delta_layout(node);
    clora_buffer *w = clora__param_value(lora_base(node), "weight");
    float *after = sign > 0 ? clora__malloc(w->numel * sizeof *after) : NULL;
    if (sign > 0 && !after)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "merging into %s", node->name);
    const float scale = clora_lora_scale(ad->scale_mode, ad->alpha, ad->rank);
    clora_status status = CLORA_OK;
    if (ad->magnitude) {
        float *host = after ? after : clora__malloc((w->numel ? w->numel : 1) * sizeof *host);
        if (!host)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "unmerging %s", node->name);
        if (sign < 0)
            memcpy(host, before, w->numel * sizeof *host);
        status = dora_merge(node, ad, sign, host, scale);
        if (host != after)
            free(host);
    } else {
        status = clora__lora_add_delta(w, layout, ad->lora_a->value, ad->lora_b->value,
                                       (float)sign * scale);
        if (status == CLORA_OK && sign > 0)
            status = clora_buffer_download(w, 0, after, w->numel);
    }
    for (size_t i = 0; status == CLORA_OK && sign > 0 && i < w->numel; ++i)
        if (!isfinite(after[i]))
            status = clora__fail(CLORA_ERR_NON_FINITE,
                                 "merging adapter \"%s\" into \"%s\" would make weight "
                                 "element %zu %s; the weights are unchanged",
                                 ad->name, node->name, i, isnan(after[i]) ? "NaN" : "infinite");
    free(after);
    /* put back what a failure may have changed (the failure's message stays) */
    if (status != CLORA_OK && clora_buffer_upload(w, 0, before, w->numel) != CLORA_OK)
        return clora__fail(CLORA_ERR_STATE,
                           "merging into %s failed, and so did restoring its weight; the model "
                           "is no longer usable",
                           node->name);
    return status;
}

clora_status clora__lora_merge(clora_node *lora, int sign, clora__merge_undo *undo)
{
    lora_state *s = CLORA__STATE(lora_state, lora);
    *undo = (clora__merge_undo){lora, NULL, s->merged};
    int index = sign > 0 ? (s->merged < 0 ? s->active : -1) : s->merged;
    if (index < 0)
        return CLORA_OK;
    clora_buffer *w = clora__param_value(lora_base(lora), "weight");
    float *before = clora__malloc((w->numel ? w->numel : 1) * sizeof *before);
    if (!before)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "merging into %s", lora->name);
    clora_status status = clora_buffer_download(w, 0, before, w->numel);
    if (status == CLORA_OK)
        status = merge_adapter(lora, index, sign, before);
    if (status != CLORA_OK) {
        free(before);
        return status;
    }
    undo->weight = before;
    s->merged = sign > 0 ? index : -1;
    return CLORA_OK;
}

clora_status clora__lora_merge_undo(clora__merge_undo *undo)
{
    clora_status status = CLORA_OK;
    if (undo->weight) {
        clora_buffer *w = clora__param_value(lora_base(undo->lora), "weight");
        status = clora_buffer_upload(w, 0, undo->weight, w->numel);
        if (status == CLORA_OK)
            CLORA__STATE(lora_state, undo->lora)->merged = undo->merged;
    }
    clora__lora_merge_undo_free(undo);
    return status;
}

void clora__lora_merge_undo_free(clora__merge_undo *undo)
{
    free(undo->weight);
    undo->weight = NULL;
}
