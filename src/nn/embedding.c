/* embedding.c — the Embedding node kind: int32 ids (...) -> (..., C), a
 * table weight (num, C); ops/embedding.c looks up and scatters. */
#include "nn/nn.h"

typedef struct embedding_state {
    size_t num_embeddings, features;
    int padding; /* PyTorch's padding_idx: the row that gets no gradient; -1: none */
} embedding_state;

typedef struct embedding_args {
    size_t num, features;
} embedding_args;

static clora_status embedding_setup(clora_node *node, const void *args)
{
    const embedding_args *a = args;
    embedding_state *s = CLORA__STATE(embedding_state, node);
    if (a->num == 0 || a->features == 0 || a->num > (size_t)INT32_MAX)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "Embedding needs 1 <= num <= 2^31-1 and features >= 1 (got %zu, %zu)",
                           a->num, a->features);
    s->num_embeddings = a->num;
    s->features = a->features;
    s->padding = -1;
    const size_t shape[2] = {a->num, a->features};
    return clora__param_add(node, "weight", 2, shape, CLORA__INIT_NORMAL, 1.0f, NULL);
}

clora_status clora__embedding_lookup(clora_node *node, const clora_node *embedding,
                                    const clora_buffer *x, const clora_buffer **y)
{
    const embedding_state *s = CLORA__STATE(embedding_state, embedding);
    if (x->dtype != CLORA_DTYPE_I32 || x->numel == 0)
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "embedding \"%s\" takes a non-empty int32 buffer of ids, not %s",
                           node->name, clora_dtype_name(x->dtype));
    if (x->ndim >= CLORA_MAX_DIMS)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "embedding \"%s\": ids of %zu dimensions give an output of more "
                           "than %d",
                           node->name, x->ndim, CLORA_MAX_DIMS);
    clora_status status = clora__node_output(node, x, s->features, 1);
    *y = node->owned_output;
    if (status == CLORA_OK)
        status = clora__embedding_forward(node->owned_output,
                                          clora__param_value(embedding, "weight"), x, node->name);
    return status;
}

static clora_status embedding_forward(clora_node *node, const clora_buffer *x,
                                      const clora_buffer **y)
{
    return clora__embedding_lookup(node, node, x, y);
}

static clora_status embedding_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                       const clora_buffer **dx)
{
    (void)dx;
    if (need_dx)
        return clora__fail(CLORA_ERR_STATE,
                           "embedding \"%s\" cannot pass a gradient to integer ids", node->name);
    clora_buffer *dw = clora__param_grad(node, "weight");
    return dw ? clora__embedding_backward(dw, dy, node->input) : CLORA_OK;
}

static int embedding_save(const clora_node *node, json_t *j)
{
    const embedding_state *s = CLORA__STATE(embedding_state, node);
    return json_object_set_new(j, "num_embeddings", json_integer((json_int_t)s->num_embeddings)) ||
           json_object_set_new(j, "features", json_integer((json_int_t)s->features)) ||
           (s->padding >= 0 && json_object_set_new(j, "padding_idx", json_integer(s->padding)));
}

static clora_status embedding_load(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out)
{
    (void)kind;
    size_t num = 0, features = 0;
    if (!clora__json_get_size(j, "num_embeddings", &num) ||
        !clora__json_get_size(j, "features", &features))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: embedding \"%s\" needs num_embeddings and features", where, name);
    json_t *padding = json_object_get(j, "padding_idx");
    if (padding && (!json_is_integer(padding) || json_integer_value(padding) < 0 ||
                    (size_t)json_integer_value(padding) >= num))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: embedding \"%s\": padding_idx must be a row of the table", where,
                           name);
    clora_status status = clora_node_add_embedding(parent, name, num, features, out);
    if (status == CLORA_OK && padding)
        clora__embedding_set_padding(*out, (int)json_integer_value(padding));
    return status;
}

const clora__node_kind clora__embedding_kind = {
    .id = CLORA_NODE_EMBEDDING,
    .name = "embedding",
    .flags = CLORA__KIND_PACKABLE,
    .state_size = sizeof(embedding_state),
    .setup = embedding_setup,
    .forward = embedding_forward,
    .backward = embedding_backward,
    .save = embedding_save,
    .load = embedding_load,
};

clora_status clora_node_add_embedding(clora_node *parent, const char *name, size_t num_embeddings,
                                      size_t features, clora_node **out)
{
    const embedding_args args = {num_embeddings, features};
    return clora__add_node("clora_node_add_embedding", parent, name, &clora__embedding_kind,
                           &args, out);
}

/* The Embedding a node is or stands for. */
static const clora_node *table_of(const clora_node *node)
{
    return node->kind->base ? node->kind->base(node) : node;
}

size_t clora__embedding_rows(const clora_node *embedding)
{
    return CLORA__STATE(embedding_state, table_of(embedding))->num_embeddings;
}

int clora__embedding_padding(const clora_node *embedding)
{
    return CLORA__STATE(embedding_state, table_of(embedding))->padding;
}

void clora__embedding_set_padding(clora_node *embedding, int padding)
{
    CLORA__STATE(embedding_state, embedding)->padding = padding;
}

int clora__is_embedding(const clora_node *node)
{
    return node && table_of(node)->kind == &clora__embedding_kind;
}
