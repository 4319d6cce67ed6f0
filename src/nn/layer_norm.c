/* layer_norm.c — the LayerNorm node kind: over the last dimension C,
 * weight (C) and bias (C); ops/norm.c computes it. */
#include <math.h>

#include "nn/nn.h"

typedef struct layer_norm_state {
    size_t features;    /* C */
    float eps;
    clora_buffer *mean; /* (N) of the last forward */
    clora_buffer *rstd; /* (N) */
} layer_norm_state;

typedef struct layer_norm_args {
    size_t features;
    float eps;
} layer_norm_args;

static clora_status layer_norm_setup(clora_node *node, const void *args)
{
    const layer_norm_args *a = args;
    layer_norm_state *s = CLORA__STATE(layer_norm_state, node);
    if (a->features == 0 || !(a->eps > 0.0f) || !isfinite(a->eps))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "LayerNorm needs features >= 1 and eps > 0 (got %zu, %g)", a->features,
                           (double)a->eps);
    s->features = a->features;
    s->eps = a->eps;
    clora_status status =
        clora__param_add(node, "weight", 1, &a->features, CLORA__INIT_ONE, 0.0f, NULL);
    if (status == CLORA_OK)
        status = clora__param_add(node, "bias", 1, &a->features, CLORA__INIT_ZERO, 0.0f, NULL);
    return status;
}

static clora_status layer_norm_forward(clora_node *node, const clora_buffer *x,
                                       const clora_buffer **y)
{
    layer_norm_state *s = CLORA__STATE(layer_norm_state, node);
    clora_status status = clora__node_require_float(node, x);
    if (status != CLORA_OK)
        return status;
    if (clora__cols(x) != s->features) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "layer_norm \"%s\" normalises %zu features; its input is %s",
                           node->name, s->features, clora_buffer_shape_string(x, got, sizeof got));
    }
    size_t rows = clora__rows(x);
    if ((status = clora__buffer_ensure_like(&node->owned_output, x)) ||
        (status = clora__buffer_ensure(&s->mean, x->device, CLORA_DTYPE_F32, 1, &rows, NULL)) ||
        (status = clora__buffer_ensure(&s->rstd, x->device, CLORA_DTYPE_F32, 1, &rows, NULL)))
        return status;
    *y = node->owned_output;
    return clora__layer_norm_forward(node->owned_output, s->mean, s->rstd, x,
                                     clora__param_value(node, "weight"),
                                     clora__param_value(node, "bias"), s->eps);
}

static clora_status layer_norm_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    layer_norm_state *s = CLORA__STATE(layer_norm_state, node);
    clora_buffer *d_input = NULL;
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status == CLORA_OK)
        status = clora__layer_norm_backward(d_input, clora__param_grad(node, "weight"),
                                            clora__param_grad(node, "bias"), dy, node->input,
                                            clora__param_value(node, "weight"), s->mean, s->rstd);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static int layer_norm_save(const clora_node *node, json_t *j)
{
    const layer_norm_state *s = CLORA__STATE(layer_norm_state, node);
    return json_object_set_new(j, "features", json_integer((json_int_t)s->features)) ||
           json_object_set_new(j, "eps", json_real(s->eps));
}

static clora_status layer_norm_load(const clora__node_kind *kind, clora_node *parent,
                                    const char *name, json_t *j, const char *where,
                                    clora_node **out)
{
    (void)kind;
    json_t *eps = json_object_get(j, "eps");
    size_t features = 0;
    if (!clora__json_get_size(j, "features", &features) || !json_is_number(eps))
        return clora__fail(CLORA_ERR_FORMAT, "%s: layer_norm \"%s\" needs features and eps",
                           where, name);
    return clora_node_add_layer_norm(parent, name, features, (float)json_number_value(eps), out);
}

static void layer_norm_release(clora_node *node)
{
    layer_norm_state *s = CLORA__STATE(layer_norm_state, node);
    clora_buffer_destroy(s->mean);
    clora_buffer_destroy(s->rstd);
    s->mean = s->rstd = NULL;
}

const clora__node_kind clora__layer_norm_kind = {
    .id = CLORA_NODE_LAYER_NORM,
    .name = "layer_norm",
    .state_size = sizeof(layer_norm_state),
    .setup = layer_norm_setup,
    .forward = layer_norm_forward,
    .backward = layer_norm_backward,
    .save = layer_norm_save,
    .load = layer_norm_load,
    .release = layer_norm_release,
};

clora_status clora_node_add_layer_norm(clora_node *parent, const char *name, size_t features,
                                       float eps, clora_node **out)
{
    const layer_norm_args args = {features, eps};
    return clora__add_node("clora_node_add_layer_norm", parent, name, &clora__layer_norm_kind,
                           &args, out);
}
