/* bert_heads.c — BERT's own pooler head and which head an adapter was made
 * for.
 *
 * "bert_pooler" is transformers' BertPooler: the hidden state of each row's
 * first token ([CLS]) through pooler.dense and tanh, whatever the attention
 * mask says. The first token is taken by the last-token pooling kernels
 * with a mask that keeps only t = 0, so no kernel is new here.
 *
 * An adapter's keys say which head it was made for: under "bert." for
 * BertForSequenceClassification (the pooler, then classifier), "pooler."
 * for a BertModel run through its pooler, "classifier" without either for
 * clora's mean-pooling classifier. clora__bert_adapter_check refuses an
 * adapter whose head is not the model's, naming both.
 *
 * B batch, T tokens, C features. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* ---- the pooler: (B, T, C) -> tanh(dense(x[:, 0])) (B, C) ------------------------------------ */

typedef struct pooler_state {
    clora_buffer *first; /* int32 (B, T): 1 at t = 0, else 0 */
    clora_buffer *token; /* (B, C): x[:, 0] */
} pooler_state;

/* The mask that keeps only each row's first token, for x's (B, T). */
static clora_status first_token_mask(pooler_state *s, const clora_buffer *x, size_t B, size_t T)
{
    const size_t shape[2] = {B, T};
    int created = 0;
    clora_status status =
        clora__buffer_ensure(&s->first, x->device, CLORA_DTYPE_I32, 2, shape, &created);
    if (status != CLORA_OK || !created)
        return status;
    int32_t *host = clora__calloc(B * T, sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the pooler's first-token mask");
    for (size_t b = 0; b < B; ++b)
        host[b * T] = 1;
    status = clora_buffer_upload_i32(s->first, 0, host, B * T);
    free(host);
    return status;
}

static clora_status pooler_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    pooler_state *s = CLORA__STATE(pooler_state, node);
    const size_t C = x->ndim == 3 ? x->shape[2] : 0;
    size_t B = 0, T = 0;
    const clora_buffer *d = NULL;
    clora_status status = clora__batch_dims(node, x, C, &B, &T);
    const size_t shape[2] = {B, C};
    if (status == CLORA_OK)
        status = first_token_mask(s, x, B, T);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->token, x->device, CLORA_DTYPE_F32, 2, shape, NULL);
    if (status == CLORA_OK)
        status = clora__last_token_pool_forward(s->token, x, s->first);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "dense"), s->token, &d);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "activation"), d, y);
    return status;
}

static clora_status pooler_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                    const clora_buffer **dx)
{
    pooler_state *s = CLORA__STATE(pooler_state, node);
    const clora_buffer *d = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "activation"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "dense"), d, need_dx, &d)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__buffer_ensure_like(&node->d_input, node->input)) ||
        (status = clora__last_token_pool_backward(node->d_input, d, s->first)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

static const clora__part pooler_parts[] = {
    {"dense", NULL}, {"activation", &clora__tanh_kind}, {NULL, NULL}};

static clora_status pooler_validate(const clora_node *node)
{
    clora_status status = clora__check_parts(node, pooler_parts);
    size_t in = 0, out = 0;
    if (status == CLORA_OK)
        clora__linear_dims_of(clora__child(node, "dense"), &in, &out, NULL);
    if (status == CLORA_OK && in != out)
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                             "bert_pooler \"%s\": dense maps %zu features to %zu; the pooler "
                             "keeps the hidden size",
                             node->name, in, out);
    return status;
}

static void pooler_release(clora_node *node)
{
    pooler_state *s = CLORA__STATE(pooler_state, node);
    clora_buffer_destroy(s->first);
    clora_buffer_destroy(s->token);
    s->first = s->token = NULL;
}

const clora__node_kind clora__bert_pooler_kind = {
    .id = CLORA_NODE_BERT_POOLER,
    .name = "bert_pooler",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(pooler_state),
    .forward = pooler_forward,
    .backward = pooler_backward,
    .validate = pooler_validate,
    .load = clora__load_composite,
    .release = pooler_release,
};

clora_status clora__bert_add_pooler(clora_node *parent, size_t C, float std)
{
    clora_node *pooler = NULL;
    clora_status status;
    if ((status = clora__add_composite(parent, "pooler", &clora__bert_pooler_kind, &pooler)) ||
        (status = clora__hf_linear(pooler, "dense", C, C, 0, std, NULL)))
        return status;
    return clora_node_add_activation(pooler, "activation", CLORA_NODE_TANH, NULL);
}

/* ---- which head an adapter was made for -------------------------------------------------- */

typedef enum head_layout {
    LAYOUT_NONE,       /* says nothing about the head */
    LAYOUT_MEAN,       /* modules at the top, mean pooling ("classifier" without a pooler) */
    LAYOUT_POOLER,     /* modules at the top, the pooler head */
    LAYOUT_SEQUENCE    /* BertForSequenceClassification: modules under "bert." */
} head_layout;

static const char *layout_text(head_layout layout)
{
    switch (layout) {
    case LAYOUT_SEQUENCE:
        return "BertForSequenceClassification's head (modules under \"bert.\", the pooler with "
               "tanh on [CLS], then classifier)";
    case LAYOUT_POOLER:
        return "BertModel's pooler head (modules at the top, pooler.dense with tanh on [CLS])";
    case LAYOUT_NONE:
        return "a BertModel (modules at the top, not under \"bert.\")";
    default:
        return "mean pooling (modules at the top, the mean over kept tokens)";
    }
}

/* The model's layout, or LAYOUT_NONE when it is not a BERT model. */
static head_layout model_layout(const clora_model *model)
{
    const clora_node *root = model->root, *bert = clora__child(root, "bert");
    const clora_node *emb = clora__child(bert ? bert : root, "embeddings");
    if (!emb || emb->kind->id != CLORA_NODE_BERT_EMBEDDINGS)
        return LAYOUT_NONE;
    if (bert)
        return LAYOUT_SEQUENCE;
    return clora__child(root, "pooler") ? LAYOUT_POOLER : LAYOUT_MEAN;
}

/* The layout an adapter's keys were saved from; *example gets a key that
 * shows it. */
static head_layout adapter_layout(const clora_safetensors *file, const char **example)
{
    int top = 0, pooler = 0, classifier = 0;
    const char *top_key = NULL, *pooler_key = NULL;
    for (size_t t = 0; t < clora_safetensors_count(file); ++t) {
        clora_tensor_view view;
        clora_safetensors_get(file, t, &view);
        const char *key = NULL;
        size_t len = 0;
        clora__peft_key(view.name, &key, &len);
        if (clora__starts_with(key, "bert.")) {
            *example = view.name;
            return LAYOUT_SEQUENCE;
        }
        if (clora__starts_with(key, "pooler.") && !pooler++)
            pooler_key = view.name;
        if ((clora__starts_with(key, "encoder.") || clora__starts_with(key, "embeddings.")) &&
            !top++)
            top_key = view.name;
        classifier |= clora__starts_with(key, "classifier.");
    }
    *example = pooler ? pooler_key : top_key;
    return pooler ? LAYOUT_POOLER : top && classifier ? LAYOUT_MEAN : LAYOUT_NONE;
}

clora_status clora__bert_adapter_check(const clora_model *model, const clora_safetensors *file,
                                       const char *path)
{
    const head_layout has = model_layout(model);
    if (has == LAYOUT_NONE)
        return CLORA_OK;
    const char *example = NULL;
    const head_layout wants = adapter_layout(file, &example);
    /* top-level keys without a pooler or classifier fit either top-level
     * head, and a classifier without the pooler's tensors the pooler head
     * too (clora saves such an adapter from a BertModel run through its
     * pooler, query and value adapted) */
    const int fits = wants == has ||
                     (wants == LAYOUT_NONE && (has != LAYOUT_SEQUENCE || !example)) ||
                     (wants == LAYOUT_MEAN && has == LAYOUT_POOLER);
    if (fits)
        return CLORA_OK;
    return clora__fail(CLORA_ERR_FORMAT,
                       "%s: the adapter (tensor \"%s\") was made for %s; the model runs with %s%s",
                       path, example, layout_text(wants), layout_text(has),
                       wants == LAYOUT_POOLER && has == LAYOUT_MEAN
                           ? " (load a checkpoint that has its pooler with the pooler head: "
                             "clora_load_options.bert_head CLORA_BERT_HEAD_POOLER)"
                           : "");
}
