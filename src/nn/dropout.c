/* dropout.c — the Dropout node kind: (...) -> the same shape, each element
 * kept with probability 1 - p and scaled by 1 / (1 - p) while the model
 * trains, the identity otherwise. The mask is a function of (seed, row,
 * column), the row the whole batch's, so backward regenerates it. */
#include "nn/nn.h"

typedef struct dropout_state {
    float p;
    uint64_t seed; /* of the last training forward's mask */
    size_t row0;   /* its first row's row in the whole batch */
} dropout_state;

static clora_status dropout_setup(clora_node *node, const void *args)
{
    const float p = *(const float *)args;
    if (!(p >= 0.0f && p < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "dropout p = %g; it must be in [0, 1)",
                           (double)p);
    CLORA__STATE(dropout_state, node)->p = p;
    return CLORA_OK;
}

static clora_status dropout_forward(clora_node *node, const clora_buffer *x,
                                    const clora_buffer **y)
{
    dropout_state *s = CLORA__STATE(dropout_state, node);
    clora_status status = clora__node_require_float(node, x);
    if (status != CLORA_OK)
        return status;
    if (!node->model->training || s->p == 0.0f) {
        *y = x; /* identity: pass the input through */
        return CLORA_OK;
    }
    s->seed = clora__node_seed(node, 0);
    s->row0 = clora__node_dropout_row0(node, x);
    status = clora__buffer_ensure_like(&node->owned_output, x);
    if (status == CLORA_OK)
        status = clora__dropout(node->owned_output, x, s->seed, s->p, s->row0);
    *y = node->owned_output;
    return status;
}

static clora_status dropout_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                     const clora_buffer **dx)
{
    const dropout_state *s = CLORA__STATE(dropout_state, node);
    if (node->output == node->input) { /* identity */
        *dx = need_dx ? dy : NULL;
        return CLORA_OK;
    }
    clora_buffer *d_input = NULL;
    clora_status status = clora__node_d_input(node, need_dx, &d_input);
    if (status == CLORA_OK && d_input)
        status = clora__dropout(d_input, dy, s->seed, s->p, s->row0);
    if (status == CLORA_OK)
        *dx = d_input;
    return status;
}

static int dropout_save(const clora_node *node, json_t *j)
{
    return json_object_set_new(j, "p", json_real(CLORA__STATE(dropout_state, node)->p));
}

static clora_status dropout_load(const clora__node_kind *kind, clora_node *parent,
                                 const char *name, json_t *j, const char *where, clora_node **out)
{
    (void)kind;
    json_t *p = json_object_get(j, "p");
    if (!json_is_number(p))
        return clora__fail(CLORA_ERR_FORMAT, "%s: dropout \"%s\" needs p", where, name);
    return clora_node_add_dropout(parent, name, (float)json_number_value(p), out);
}

const clora__node_kind clora__dropout_kind = {
    .id = CLORA_NODE_DROPOUT,
    .name = "dropout",
    .state_size = sizeof(dropout_state),
    .setup = dropout_setup,
    .forward = dropout_forward,
    .backward = dropout_backward,
    .save = dropout_save,
    .load = dropout_load,
};

clora_status clora_node_add_dropout(clora_node *parent, const char *name, float p,
                                    clora_node **out)
{
    return clora__add_node("clora_node_add_dropout", parent, name, &clora__dropout_kind, &p, out);
}
