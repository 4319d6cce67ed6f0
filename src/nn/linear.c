/* linear.c — the Linear node kind: y (N, out) = x (N, in) · Wᵀ + b, its
 * weight stored (out, in) or, as GPT-2's Conv1D, (in, out); and the tied
 * Linear whose weight is another node's (GPT-2's lm_head on wte). The
 * products are ops/linear.c's. */
#include <math.h>
#include <string.h>

#include "nn/nn.h"

typedef struct linear_state {
    size_t in_features, out_features;
    clora_weight_layout layout;
} linear_state;

typedef struct linear_args {
    size_t in, out;
    int bias;
    clora_weight_layout layout;
    clora_node *owner; /* tied: the node whose weight this one uses */
} linear_args;

static clora_status linear_setup(clora_node *node, const void *args)
{
    const linear_args *a = args;
    linear_state *s = CLORA__STATE(linear_state, node);
    if (a->owner) {
        const clora__param *w = clora__param_get(a->owner, "weight");
        if (!w || w->ndim != 2)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "\"%s\" has no 2-D weight to share",
                               a->owner->name);
        s->out_features = w->shape[0];
        s->in_features = w->shape[1];
        s->layout = CLORA_WEIGHT_OUT_IN;
        node->tied = a->owner;
        return CLORA_OK;
    }
    if (a->in == 0 || a->out == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "features must be at least 1 (got %zu, %zu)",
                           a->in, a->out);
    s->in_features = a->in;
    s->out_features = a->out;
    s->layout = a->layout;
    const float bound = 1.0f / sqrtf((float)a->in);
    const size_t shape[2] = {a->layout == CLORA_WEIGHT_OUT_IN ? a->out : a->in,
                             a->layout == CLORA_WEIGHT_OUT_IN ? a->in : a->out};
    clora_status status =
        clora__param_add(node, "weight", 2, shape, CLORA__INIT_UNIFORM, bound, NULL);
    if (status == CLORA_OK && a->bias)
        status = clora__param_add(node, "bias", 1, &a->out, CLORA__INIT_UNIFORM, bound, NULL);
    return status;
}

static clora_status linear_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    const linear_state *s = CLORA__STATE(linear_state, node);
    clora_status status = clora__node_require_float(node, x);
    if (status == CLORA_OK)
        status = clora__node_output(node, x, s->out_features, 0);
    if (status == CLORA_OK)
        status = clora_linear_forward(node->owned_output, x, clora__param_value(node, "weight"),
                                      clora__param_value(node, "bias"), s->layout);
    *y = node->owned_output;
    return status;
}

static clora_status linear_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                    const clora_buffer **dx)
{
    const linear_state *s = CLORA__STATE(linear_state, node);
    clora_buffer *d_input = NULL;
    clora_buffer *dw = clora__param_grad(node, "weight"), *db = clora__param_grad(node, "bias");
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status == CLORA_OK && (d_input || dw || db))
        status = clora_linear_backward(d_input, dw, db, dy, node->input,
                                       clora__param_value(node, "weight"), s->layout);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static int linear_save(const clora_node *node, json_t *j)
{
    const linear_state *s = CLORA__STATE(linear_state, node);
    if (node->tied) {
        char owner[4096];
        /* an owner that carries LoRA is saved under its LoRA node's name */
        const clora_node *named =
            clora__is_base_layer(node->tied) ? node->tied->parent : node->tied;
        return clora_node_path(named, owner, sizeof owner) != CLORA_OK ||
               json_object_set_new(j, "tied_to", json_string(owner));
    }
    int bad = json_object_set_new(j, "in_features", json_integer((json_int_t)s->in_features));
    bad |= json_object_set_new(j, "out_features", json_integer((json_int_t)s->out_features));
    bad |= json_object_set_new(j, "bias", json_boolean(clora__param_get(node, "bias") != NULL));
    bad |= json_object_set_new(
        j, "weight_layout", json_string(s->layout == CLORA_WEIGHT_OUT_IN ? "out_in" : "in_out"));
    return bad;
}

static clora_status linear_load(const clora__node_kind *kind, clora_node *parent,
                                const char *name, json_t *j, const char *where, clora_node **out)
{
    (void)kind;
    if (json_object_get(j, "tied_to")) {
        const char *owner_path = json_string_value(json_object_get(j, "tied_to"));
        clora_node *owner = NULL;
        if (!owner_path || clora_model_find(parent->model, owner_path, &owner) != CLORA_OK)
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: linear \"%s\" is tied to \"%s\", which comes nowhere before it",
                               where, name, owner_path ? owner_path : "(not a string)");
        return clora__add_tied_linear(parent, name, owner, out);
    }
    const char *layout = json_string_value(json_object_get(j, "weight_layout"));
    json_t *bias = json_object_get(j, "bias");
    size_t in = 0, features = 0;
    if (!clora__json_get_size(j, "in_features", &in) ||
        !clora__json_get_size(j, "out_features", &features) || !json_is_boolean(bias) ||
        !layout || (strcmp(layout, "out_in") && strcmp(layout, "in_out")))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: linear \"%s\" needs in_features, out_features, bias and "
                           "weight_layout (\"out_in\" or \"in_out\")",
                           where, name);
    return !strcmp(layout, "out_in")
               ? clora_node_add_linear(parent, name, in, features, json_is_true(bias), out)
               : clora_node_add_linear_in_out(parent, name, in, features, json_is_true(bias), out);
}

const clora__node_kind clora__linear_kind = {
    .id = CLORA_NODE_LINEAR,
    .name = "linear",
    .flags = CLORA__KIND_LINEAR | CLORA__KIND_PACKABLE,
    .state_size = sizeof(linear_state),
    .setup = linear_setup,
    .forward = linear_forward,
    .backward = linear_backward,
    .save = linear_save,
    .load = linear_load,
};

clora_status clora_node_add_linear(clora_node *parent, const char *name, size_t in_features,
                                   size_t out_features, int bias, clora_node **out)
{
    const linear_args args = {in_features, out_features, bias, CLORA_WEIGHT_OUT_IN, NULL};
    return clora__add_node("clora_node_add_linear", parent, name, &clora__linear_kind, &args, out);
}

clora_status clora_node_add_linear_in_out(clora_node *parent, const char *name, size_t in_features,
                                          size_t out_features, int bias, clora_node **out)
{
    const linear_args args = {in_features, out_features, bias, CLORA_WEIGHT_IN_OUT, NULL};
    return clora__add_node("clora_node_add_linear_in_out", parent, name, &clora__linear_kind,
                           &args, out);
}

clora_status clora__add_tied_linear(clora_node *parent, const char *name, clora_node *owner,
                                    clora_node **out)
{
    const linear_args args = {0, 0, 0, CLORA_WEIGHT_OUT_IN, owner};
    return clora__add_node("clora__add_tied_linear", parent, name, &clora__linear_kind, &args,
                           out);
}

void clora__linear_dims_of(const clora_node *node, size_t *in, size_t *out,
                           clora_weight_layout *layout)
{
    const clora_node *linear = clora__linear_of(node);
    const linear_state *s = linear ? CLORA__STATE(linear_state, linear) : NULL;
    if (in)
        *in = s ? s->in_features : 0;
    if (out)
        *out = s ? s->out_features : 0;
    if (layout)
        *layout = s ? s->layout : CLORA_WEIGHT_OUT_IN;
}

size_t clora_node_in_features(const clora_node *node)
{
    size_t in = 0;
    clora__linear_dims_of(node, &in, NULL, NULL);
    return in;
}

size_t clora_node_out_features(const clora_node *node)
{
    size_t out = 0;
    clora__linear_dims_of(node, NULL, &out, NULL);
    return out;
}
