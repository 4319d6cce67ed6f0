/* activation.c — the activation node kinds, (...) -> the same shape: ReLU,
 * GELU (erf), GELU (tanh), SiLU and Tanh, one kind each over the kernels
 * of ops/elementwise.c; the kind's variant is the function. */
#include "nn/nn.h"

static clora_status activation_forward(clora_node *node, const clora_buffer *x,
                                       const clora_buffer **y)
{
    clora_status status = clora__node_require_float(node, x);
    if (status == CLORA_OK)
        status = clora__buffer_ensure_like(&node->owned_output, x);
    if (status == CLORA_OK)
        status = clora__activation_forward(node->owned_output, x,
                                           (clora__activation)node->kind->variant);
    *y = node->owned_output;
    return status;
}

static clora_status activation_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    clora_buffer *d_input = NULL;
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status == CLORA_OK && d_input)
        status = clora__activation_backward(d_input, dy, node->input, node->output,
                                            (clora__activation)node->kind->variant);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static clora_status activation_load(const clora__node_kind *kind, clora_node *parent,
                                    const char *name, json_t *j, const char *where,
                                    clora_node **out)
{
    (void)j;
    (void)where;
    return clora_node_add_activation(parent, name, kind->id, out);
}

#define ACTIVATION_KIND(var, kind_id, kind_name, function) \
    const clora__node_kind var = {                         \
        .id = kind_id,                                     \
        .name = kind_name,                                 \
        .variant = function,                               \
        .forward = activation_forward,                     \
        .backward = activation_backward,                   \
        .load = activation_load,                           \
    };
ACTIVATION_KIND(clora__relu_kind, CLORA_NODE_RELU, "relu", CLORA__ACTIVATION_RELU)
ACTIVATION_KIND(clora__gelu_kind, CLORA_NODE_GELU, "gelu", CLORA__ACTIVATION_GELU)
ACTIVATION_KIND(clora__gelu_tanh_kind, CLORA_NODE_GELU_TANH, "gelu_tanh",
                CLORA__ACTIVATION_GELU_TANH)
ACTIVATION_KIND(clora__silu_kind, CLORA_NODE_SILU, "silu", CLORA__ACTIVATION_SILU)
ACTIVATION_KIND(clora__tanh_kind, CLORA_NODE_TANH, "tanh", CLORA__ACTIVATION_TANH)
#undef ACTIVATION_KIND

const clora__node_kind *clora__activation_kind(clora_node_kind id)
{
    static const clora__node_kind *const kinds[] = {&clora__relu_kind, &clora__gelu_kind,
                                                    &clora__gelu_tanh_kind, &clora__silu_kind,
                                                    &clora__tanh_kind};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; ++i)
        if (kinds[i]->id == id)
            return kinds[i];
    return NULL;
}

clora_status clora_node_add_activation(clora_node *parent, const char *name, clora_node_kind kind,
                                       clora_node **out)
{
    const clora__node_kind *activation = clora__activation_kind(kind);
    if (!activation)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_node_add_activation: kind %d is not an activation (relu, gelu, "
                           "gelu_tanh, silu or tanh)",
                           (int)kind);
    return clora__add_node("clora_node_add_activation", parent, name, activation, NULL, out);
}
