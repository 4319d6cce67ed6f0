/* rms_norm.c — the RMSNorm node kind (Llama's norms): over the last
 * dimension C, a weight (C) and no bias; ops/norm.c computes it. */
#include <math.h>

#include "nn/nn.h"

typedef struct rms_norm_state {
    size_t features;    /* C */
    float eps;
    clora_buffer *rstd; /* (N) of the last forward */
} rms_norm_state;

typedef struct rms_norm_args {
    size_t features;
    float eps;
} rms_norm_args;

static clora_status rms_norm_setup(clora_node *node, const void *args)
{
    const rms_norm_args *a = args;
    rms_norm_state *s = CLORA__STATE(rms_norm_state, node);
    if (a->features == 0 || !(a->eps > 0.0f) || !isfinite(a->eps))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "RMSNorm needs features >= 1 and eps > 0 (got %zu, %g)", a->features,
                           (double)a->eps);
    s->features = a->features;
    s->eps = a->eps;
    return clora__param_add(node, "weight", 1, &a->features, CLORA__INIT_ONE, 0.0f, NULL);
}

static clora_status rms_norm_forward(clora_node *node, const clora_buffer *x,
                                     const clora_buffer **y)
{
    rms_norm_state *s = CLORA__STATE(rms_norm_state, node);
    clora_status status = clora__node_require_float(node, x);
    if (status != CLORA_OK)
        return status;
    if (clora__cols(x) != s->features) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "rms_norm \"%s\" normalises %zu features; its input is %s", node->name,
                           s->features, clora_buffer_shape_string(x, got, sizeof got));
    }
    size_t rows = clora__rows(x);
    if ((status = clora__buffer_ensure_like(&node->owned_output, x)) ||
        (status = clora__buffer_ensure(&s->rstd, x->device, CLORA_DTYPE_F32, 1, &rows, NULL)))
        return status;
    *y = node->owned_output;
    return clora__rms_norm_forward(node->owned_output, s->rstd, x,
                                   clora__param_value(node, "weight"), s->eps);
}

static clora_status rms_norm_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                      const clora_buffer **dx)
{
    rms_norm_state *s = CLORA__STATE(rms_norm_state, node);
    clora_buffer *d_input = NULL;
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status == CLORA_OK)
        status = clora__rms_norm_backward(d_input, clora__param_grad(node, "weight"), dy,
                                          node->input, clora__param_value(node, "weight"),
                                          s->rstd);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static int rms_norm_save(const clora_node *node, json_t *j)
{
    const rms_norm_state *s = CLORA__STATE(rms_norm_state, node);
    return json_object_set_new(j, "features", json_integer((json_int_t)s->features)) ||
           json_object_set_new(j, "eps", json_real(s->eps));
}

static clora_status rms_norm_load(const clora__node_kind *kind, clora_node *parent,
                                  const char *name, json_t *j, const char *where,
                                  clora_node **out)
{
    (void)kind;
    json_t *eps = json_object_get(j, "eps");
    size_t features = 0;
    if (!clora__json_get_size(j, "features", &features) || !json_is_number(eps))
        return clora__fail(CLORA_ERR_FORMAT, "%s: rms_norm \"%s\" needs features and eps", where,
                           name);
    return clora_node_add_rms_norm(parent, name, features, (float)json_number_value(eps), out);
}

static void rms_norm_release(clora_node *node)
{
    rms_norm_state *s = CLORA__STATE(rms_norm_state, node);
    clora_buffer_destroy(s->rstd);
    s->rstd = NULL;
}

const clora__node_kind clora__rms_norm_kind = {
    .id = CLORA_NODE_RMS_NORM,
    .name = "rms_norm",
    .state_size = sizeof(rms_norm_state),
    .setup = rms_norm_setup,
    .forward = rms_norm_forward,
    .backward = rms_norm_backward,
    .save = rms_norm_save,
    .load = rms_norm_load,
    .release = rms_norm_release,
};

clora_status clora_node_add_rms_norm(clora_node *parent, const char *name, size_t features,
                                     float eps, clora_node **out)
{
    const rms_norm_args args = {features, eps};
    return clora__add_node("clora_node_add_rms_norm", parent, name, &clora__rms_norm_kind, &args,
                           out);
}
