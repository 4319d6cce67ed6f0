/* bert.c — BERT (BertModel, as sentence-transformers' MiniLM): its
 * composite node kinds (the embeddings, a post-LN layer, bidirectional
 * self-attention), the builder, and how Hugging Face folders describe and
 * name it.
 *
 *   embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm,
 *   encoder.layer.<i>.attention.self.{query,key,value},
 *   encoder.layer.<i>.attention.output.{dense,LayerNorm},
 *   encoder.layer.<i>.intermediate.dense, encoder.layer.<i>.output.{dense,LayerNorm},
 *   then the head: pool (mean over the kept tokens), or pooler.dense with
 *   tanh on the first token (bert_heads.c); with labels "classifier" (after
 *   "dropout" with the pooler). BertForSequenceClassification has the
 *   trunk and its pooler under "bert.".
 *
 * B batch, T tokens, C features, H heads, D = C / H. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* ---- self-attention: query, key, value -> attention (padding mask) ------------------------ */

static const char *const projections[3] = {"query", "key", "value"};

typedef struct self_attention_state {
    clora__attention_args args; /* C features, H heads, dropout p on the probabilities */
    clora__attention core;
    clora_buffer *d_parts[3];   /* (B, T, C): dQ, dK, dV with the heads merged */
} self_attention_state;

static clora_status self_attention_setup(clora_node *node, const void *args)
{
    CLORA__STATE(self_attention_state, node)->args = *(const clora__attention_args *)args;
    return CLORA_OK;
}

static clora_status self_attention_forward(clora_node *node, const clora_buffer *x,
                                           const clora_buffer **y)
{
    self_attention_state *s = CLORA__STATE(self_attention_state, node);
    const size_t C = s->args.features, H = s->args.heads, D = C / H;
    size_t B = 0, T = 0;
    clora_status status = clora__batch_dims(node, x, C, &B, &T);
    if (status == CLORA_OK)
        status = clora__attention_prepare(&s->core, x->device, B, T, H, H, D);
    clora_buffer *parts[3] = {s->core.q, s->core.k, s->core.v};
    for (size_t i = 0; i < 3 && status == CLORA_OK; ++i) {
        const clora_buffer *projected = NULL;
        status = clora__node_forward(clora__child(node, projections[i]), x, &projected);
        if (status == CLORA_OK)
            status = clora__heads_split(parts[i], projected, C, 0, B, T, H, D);
    }
    const size_t shape[3] = {B, T, C};
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&node->owned_output, x->device, CLORA_DTYPE_F32, 3, shape,
                                      NULL);
    if (status == CLORA_OK)
        status = clora__attend(node, &s->args, &s->core, node->owned_output, 0);
    *y = node->owned_output;
    return status;
}

static clora_status self_attention_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                            const clora_buffer **dx)
{
    self_attention_state *s = CLORA__STATE(self_attention_state, node);
    const size_t C = s->args.features, H = s->args.heads, D = C / H;
    const size_t B = node->input->shape[0], T = node->input->shape[1];
    const size_t shape[3] = {B, T, C};
    clora_status status = clora__attention_backward(&s->core, dy);
    const clora_buffer *heads[3] = {s->core.dq, s->core.dk, s->core.dv};
    const clora_buffer *parts[3] = {NULL, NULL, NULL};
    for (size_t i = 0; i < 3 && status == CLORA_OK; ++i) {
        status = clora__buffer_ensure(&s->d_parts[i], dy->device, CLORA_DTYPE_F32, 3, shape, NULL);
        if (status == CLORA_OK)
            status = clora__heads_merge(s->d_parts[i], heads[i], C, 0, B, T, H, D);
        if (status == CLORA_OK)
            status = clora__node_backward(clora__child(node, projections[i]), s->d_parts[i],
                                          need_dx, &parts[i]);
    }
    if (status != CLORA_OK || !need_dx)
        return status;
    if ((status = clora__buffer_ensure_like(&node->d_input, dy)) ||
        (status = clora__add(node->d_input, parts[0], parts[1])) ||
        (status = clora__add(node->d_input, node->d_input, parts[2])))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

static const clora__part self_attention_parts[] = {
    {"query", NULL}, {"key", NULL}, {"value", NULL}, {NULL, NULL}};

static clora_status self_attention_validate(const clora_node *node)
{
    const self_attention_state *s = CLORA__STATE(self_attention_state, node);
    clora_status status = clora__check_parts(node, self_attention_parts);
    if (status == CLORA_OK)
        status = clora__check_projection(node, clora__child(node, "query"), s->args.features,
                                         s->args.features);
    return status;
}

static int self_attention_save(const clora_node *node, json_t *j)
{
    return clora__attention_save(j, &CLORA__STATE(self_attention_state, node)->args);
}

static void self_attention_release_grads(clora_node *node)
{
    self_attention_state *s = CLORA__STATE(self_attention_state, node);
    clora__attention_release_grads(&s->core);
    for (int i = 0; i < 3; ++i)
        clora__buffer_recycle(&s->d_parts[i]);
}

static void self_attention_release(clora_node *node)
{
    self_attention_state *s = CLORA__STATE(self_attention_state, node);
    clora__attention_release(&s->core);
    for (int i = 0; i < 3; ++i) {
        clora_buffer_destroy(s->d_parts[i]);
        s->d_parts[i] = NULL;
    }
}

const clora__node_kind clora__bert_self_attention_kind = {
    .id = CLORA_NODE_BERT_SELF_ATTENTION,
    .name = "bert_self_attention",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(self_attention_state),
    .setup = self_attention_setup,
    .forward = self_attention_forward,
    .backward = self_attention_backward,
    .validate = self_attention_validate,
    .save = self_attention_save,
    .load = clora__attention_load,
    .release = self_attention_release,
    .release_grads = self_attention_release_grads,
};

/* ---- layers (post-LN) -----------------------------------------------------------------------
 *   a = LN(x + drop(dense(self(x)))); y = LN(a + drop(dense(act(dense(a))))) */

typedef struct layer_state {
    clora_buffer *attended; /* (B, T, C): x + drop(dense(self(x))) */
    clora_buffer *mixed;    /* (B, T, C): a + drop(dense(...)) */
    clora_buffer *da;       /* (B, T, C) */
} layer_state;

static clora_node *part(const clora_node *node, const char *path)
{
    return clora__descendant(node, path);
}

static clora_status layer_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    layer_state *s = CLORA__STATE(layer_state, node);
    const clora_buffer *h = NULL, *d = NULL, *a = NULL, *i = NULL;
    clora_status status;
    if ((status = clora__node_forward(part(node, "attention.self"), x, &h)) ||
        (status = clora__node_forward(part(node, "attention.output.dense"), h, &d)) ||
        (status = clora__node_forward(part(node, "attention.output.dropout"), d, &d)) ||
        (status = clora__buffer_ensure_like(&s->attended, x)) ||
        (status = clora__add(s->attended, d, x)) ||
        (status = clora__node_forward(part(node, "attention.output.LayerNorm"), s->attended, &a)) ||
        (status = clora__node_forward(part(node, "intermediate"), a, &i)) ||
        (status = clora__node_forward(part(node, "output.dense"), i, &d)) ||
        (status = clora__node_forward(part(node, "output.dropout"), d, &d)) ||
        (status = clora__buffer_ensure_like(&s->mixed, x)) || (status = clora__add(s->mixed, d, a)))
        return status;
    return clora__node_forward(part(node, "output.LayerNorm"), s->mixed, y);
}

static clora_status layer_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                   const clora_buffer **dx)
{
    layer_state *s = CLORA__STATE(layer_state, node);
    const clora_buffer *dr2 = NULL, *d = NULL, *di = NULL, *dr1 = NULL, *ds = NULL, *dself = NULL;
    clora_status status;
    /* da = dr2 + intermediate'(dense'(drop'(dr2))) */
    if ((status = clora__node_backward(part(node, "output.LayerNorm"), dy, 1, &dr2)) ||
        (status = clora__node_backward(part(node, "output.dropout"), dr2, 1, &d)) ||
        (status = clora__node_backward(part(node, "output.dense"), d, 1, &d)) ||
        (status = clora__node_backward(part(node, "intermediate"), d, 1, &di)) ||
        (status = clora__buffer_ensure_like(&s->da, dy)) || (status = clora__add(s->da, dr2, di)))
        return status;
    /* dx = dr1 + self'(dense'(drop'(dr1))), dr1 = LN'(da) */
    if ((status = clora__node_backward(part(node, "attention.output.LayerNorm"), s->da, 1, &dr1)) ||
        (status = clora__node_backward(part(node, "attention.output.dropout"), dr1, 1, &d)) ||
        (status = clora__node_backward(part(node, "attention.output.dense"), d, 1, &ds)) ||
        (status = clora__node_backward(part(node, "attention.self"), ds, need_dx, &dself)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__buffer_ensure_like(&node->d_input, dy)) ||
        (status = clora__add(node->d_input, dr1, dself)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

static const clora__part layer_parts[] = {
    {"attention.self", &clora__bert_self_attention_kind},
    {"attention.output.dense", NULL},
    {"attention.output.LayerNorm", &clora__layer_norm_kind},
    {"attention.output.dropout", &clora__dropout_kind},
    {"intermediate", &clora__sequential_kind},
    {"output.dense", NULL},
    {"output.LayerNorm", &clora__layer_norm_kind},
    {"output.dropout", &clora__dropout_kind},
    {NULL, NULL}};

static clora_status layer_validate(const clora_node *node)
{
    return clora__check_parts(node, layer_parts);
}

static void layer_release_grads(clora_node *node)
{
    clora__buffer_recycle(&CLORA__STATE(layer_state, node)->da);
}

static void layer_release(clora_node *node)
{
    layer_state *s = CLORA__STATE(layer_state, node);
    clora_buffer_destroy(s->attended);
    clora_buffer_destroy(s->mixed);
    clora_buffer_destroy(s->da);
    s->attended = s->mixed = s->da = NULL;
}

const clora__node_kind clora__bert_layer_kind = {
    .id = CLORA_NODE_BERT_LAYER,
    .name = "bert_layer",
    .flags = CLORA__KIND_COMPOSITE | CLORA__KIND_CHECKPOINT,
    .state_size = sizeof(layer_state),
    .forward = layer_forward,
    .backward = layer_backward,
    .validate = layer_validate,
    .load = clora__load_composite,
    .release = layer_release,
    .release_grads = layer_release_grads,
};

/* ---- embeddings: word + position + token type -> LayerNorm -> dropout ----------------------- */

typedef struct embeddings_state {
    clora_buffer *positions; /* int32 (B, T): 0..T-1 */
    clora_buffer *no_types;  /* int32 (B, T) zeros, while no token types are set */
    clora_buffer *sum;       /* (B, T, C) */
} embeddings_state;

static clora_status embeddings_forward(clora_node *node, const clora_buffer *ids,
                                       const clora_buffer **y)
{
    embeddings_state *s = CLORA__STATE(embeddings_state, node);
    clora_node *position = clora__child(node, "position_embeddings");
    const clora_buffer *types = node->model->token_types, *w = NULL, *p = NULL, *t = NULL,
                       *n = NULL;
    clora_status status = clora__check_ids(node, ids, clora__embedding_rows(position));
    if (status == CLORA_OK)
        status = clora__position_ids(&s->positions, ids);
    if (status == CLORA_OK && types &&
        (types->shape[0] != ids->shape[0] || types->shape[1] != ids->shape[1]))
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                             "the token types are (%zu, %zu); the ids are (%zu, %zu)",
                             types->shape[0], types->shape[1], ids->shape[0], ids->shape[1]);
    if (status == CLORA_OK && !types) { /* all zero: a zero-filled buffer of the ids' shape */
        status = clora__buffer_ensure(&s->no_types, ids->device, CLORA_DTYPE_I32, 2, ids->shape,
                                      NULL);
        types = s->no_types;
    }
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "word_embeddings"), ids, &w);
    if (status == CLORA_OK)
        status = clora__node_forward(position, s->positions, &p);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "token_type_embeddings"), types, &t);
    if (status == CLORA_OK)
        status = clora__buffer_ensure_like(&s->sum, w);
    if (status == CLORA_OK)
        status = clora__add(s->sum, w, p);
    if (status == CLORA_OK)
        status = clora__add(s->sum, s->sum, t);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "LayerNorm"), s->sum, &n);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "dropout"), n, y);
    return status;
}

static clora_status embeddings_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                        const clora_buffer **dx)
{
    (void)dx;
    if (need_dx)
        return clora__fail(CLORA_ERR_STATE, "%s \"%s\" cannot pass a gradient to integer ids",
                           node->kind->name, node->name);
    const clora_buffer *d = NULL, *unused = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "dropout"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "LayerNorm"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "word_embeddings"), d, 0, &unused)) ||
        (status = clora__node_backward(clora__child(node, "position_embeddings"), d, 0, &unused)))
        return status;
    return clora__node_backward(clora__child(node, "token_type_embeddings"), d, 0, &unused);
}

static const clora__part embeddings_parts[] = {
    {"word_embeddings", &clora__embedding_kind},
    {"position_embeddings", &clora__embedding_kind},
    {"token_type_embeddings", &clora__embedding_kind},
    {"LayerNorm", &clora__layer_norm_kind},
    {"dropout", &clora__dropout_kind},
    {NULL, NULL}};

static clora_status embeddings_validate(const clora_node *node)
{
    return clora__check_parts(node, embeddings_parts);
}

static void embeddings_release(clora_node *node)
{
    embeddings_state *s = CLORA__STATE(embeddings_state, node);
    clora_buffer_destroy(s->positions);
    clora_buffer_destroy(s->no_types);
    clora_buffer_destroy(s->sum);
    s->positions = s->no_types = s->sum = NULL;
}

const clora__node_kind clora__bert_embeddings_kind = {
    .id = CLORA_NODE_BERT_EMBEDDINGS,
    .name = "bert_embeddings",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(embeddings_state),
    .forward = embeddings_forward,
    .backward = embeddings_backward,
    .validate = embeddings_validate,
    .load = clora__load_composite,
    .release = embeddings_release,
};

/* ---- building ------------------------------------------------------------------------------- */

clora_bert_config clora_bert_config_default(void)
{
    clora_bert_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 30522;
    c.hidden_size = 384;
    c.num_hidden_layers = 6;
    c.num_attention_heads = 12;
    c.intermediate_size = 1536;
    c.max_position_embeddings = 512;
    c.type_vocab_size = 2;
    c.activation = CLORA_NODE_GELU;
    c.layer_norm_eps = 1e-12f;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1f;
    c.initializer_range = 0.02f;
    c.num_labels = 0;
    c.head = CLORA_BERT_HEAD_MEAN;
    c.classifier_dropout = -1.0f;
    return c;
}

static clora_status build(clora_model *model, const void *config)
{
    const clora_bert_config *c = config;
    const size_t C = c->hidden_size, I = c->intermediate_size;
    const float std = c->initializer_range, eps = c->layer_norm_eps, p = c->hidden_dropout_prob;
    clora_node *emb = NULL, *enc = NULL, *layers = NULL, *word = NULL, *trunk = model->root;
    clora_status status = CLORA_OK;
    if (c->head == CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER)
        status = clora_node_add_sequential(model->root, "bert", &trunk);
    if (status ||
        (status = clora__add_composite(trunk, "embeddings", &clora__bert_embeddings_kind,
                                       &emb)) ||
        (status = clora__hf_embedding(emb, "word_embeddings", c->vocab_size, C, std, &word)) ||
        (status = clora__hf_embedding(emb, "position_embeddings", c->max_position_embeddings, C,
                                      std, NULL)) ||
        (status = clora__hf_embedding(emb, "token_type_embeddings", c->type_vocab_size, C, std,
                                      NULL)) ||
        (status = clora_node_add_layer_norm(emb, "LayerNorm", C, eps, NULL)) ||
        (status = clora_node_add_dropout(emb, "dropout", p, NULL)) ||
        (status = clora_node_add_sequential(trunk, "encoder", &enc)) ||
        (status = clora_node_add_sequential(enc, "layer", &layers)))
        return status;
    clora__embedding_set_padding(word, 0); /* BertConfig's pad_token_id */
    if (!model->skip_init) { /* the padding token's row (id 0) starts at zero, as in BERT */
        float *zero = clora__calloc(C, sizeof *zero);
        if (!zero)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "initialising BERT");
        status = clora_buffer_upload(clora__param_value(word, "weight"), 0, zero, C);
        free(zero);
    }
    for (size_t i = 0; i < c->num_hidden_layers && status == CLORA_OK; ++i) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        clora_node *layer = NULL, *att = NULL, *self = NULL, *out = NULL, *mid = NULL, *o = NULL;
        if ((status = clora__add_composite(layers, name, &clora__bert_layer_kind, &layer)) ||
            (status = clora_node_add_sequential(layer, "attention", &att)) ||
            (status = clora__add_attention(att, "self", &clora__bert_self_attention_kind, C,
                                           c->num_attention_heads,
                                           c->attention_probs_dropout_prob, &self)) ||
            (status = clora__hf_linear(self, "query", C, C, 0, std, NULL)) ||
            (status = clora__hf_linear(self, "key", C, C, 0, std, NULL)) ||
            (status = clora__hf_linear(self, "value", C, C, 0, std, NULL)) ||
            (status = clora_node_add_sequential(att, "output", &out)) ||
            (status = clora__hf_linear(out, "dense", C, C, 0, std, NULL)) ||
            (status = clora_node_add_layer_norm(out, "LayerNorm", C, eps, NULL)) ||
            (status = clora_node_add_dropout(out, "dropout", p, NULL)) ||
            (status = clora_node_add_sequential(layer, "intermediate", &mid)) ||
            (status = clora__hf_linear(mid, "dense", C, I, 0, std, NULL)) ||
            (status = clora_node_add_activation(mid, "intermediate_act_fn", c->activation, NULL)) ||
            (status = clora_node_add_sequential(layer, "output", &o)) ||
            (status = clora__hf_linear(o, "dense", I, C, 0, std, NULL)) ||
            (status = clora_node_add_layer_norm(o, "LayerNorm", C, eps, NULL)))
            break;
        status = clora_node_add_dropout(o, "dropout", p, NULL);
    }
    const int mean = c->head == CLORA_BERT_HEAD_AUTO || c->head == CLORA_BERT_HEAD_MEAN;
    if (status == CLORA_OK)
        status = mean ? clora__add_composite(model->root, "pool", &clora__mean_pool_kind, NULL)
                      : clora__bert_add_pooler(trunk, C, std);
    if (status == CLORA_OK && !mean && c->num_labels > 0) /* as BertForSequenceClassification */
        status = clora_node_add_dropout(model->root, "dropout",
                                        c->classifier_dropout < 0.0f ? p : c->classifier_dropout,
                                        NULL);
    if (status == CLORA_OK && c->num_labels > 0)
        status = clora__hf_linear(model->root, "classifier", C, c->num_labels, 0, std, NULL);
    return status;
}

/* clora_model_create_bert; skip_init leaves every parameter at zero for a
 * checkpoint to fill. */
static clora_status create(clora_model **out, clora_device *device, const clora_bert_config *c,
                           uint64_t seed, int skip_init)
{
    if (!out || !device || !c)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create_bert: NULL argument");
    *out = NULL;
    const size_t sizes[6] = {c->vocab_size,        c->hidden_size,          c->num_attention_heads,
                             c->intermediate_size, c->max_position_embeddings, c->type_vocab_size};
    static const char *const names[6] = {"vocab_size",        "hidden_size",
                                         "num_attention_heads", "intermediate_size",
                                         "max_position_embeddings", "type_vocab_size"};
    clora_status status = clora__check_sizes("BERT", sizes, names, 6);
    if (status == CLORA_OK) {
        const float drops[3] = {c->hidden_dropout_prob, c->attention_probs_dropout_prob,
                                c->classifier_dropout < 0.0f ? 0.0f : c->classifier_dropout};
        status = clora__check_common("BERT", c->hidden_size, c->num_attention_heads,
                                     c->activation, c->layer_norm_eps, drops, 3,
                                     c->initializer_range);
    }
    if (status == CLORA_OK && (unsigned)c->head > CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER)
        status = clora__fail(CLORA_ERR_INVALID_ARGUMENT, "BERT: head %d is not a clora_bert_head",
                             (int)c->head);
    if (status == CLORA_OK && c->head == CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER && !c->num_labels)
        status = clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                             "BERT: the sequence classifier head needs num_labels > 0");
    if (status != CLORA_OK)
        return status;
    return clora__create_with(out, device, seed, skip_init, build, c);
}

clora_status clora_model_create_bert(clora_model **out, clora_device *device,
                                     const clora_bert_config *config, uint64_t seed)
{
    return create(out, device, config, seed, 0);
}

/* ---- Hugging Face folders ------------------------------------------------------------------ */

/* Whether config.json's architectures name `name`. */
static int has_architecture(const json_t *config, const char *name)
{
    const json_t *list = json_object_get(config, "architectures");
    size_t i;
    const json_t *entry;
    json_array_foreach(list, i, entry) {
        if (json_is_string(entry) && !strcmp(json_string_value(entry), name))
            return 1;
    }
    return 0;
}

/* The labels of a BertForSequenceClassification config: id2label's count
 * (transformers writes it, not num_labels), or num_labels. */
static size_t config_labels(clora__json_fields *r)
{
    const json_t *labels = json_object_get(r->json, "id2label");
    if (json_is_object(labels) && json_object_size(labels) > 0)
        return json_object_size(labels);
    return clora__json_count(r, "num_labels", 2);
}

/* What heads the checkpoint holds: BERT's pooler (at the top or under
 * "bert."), and the rows of a classifier at the top (0: none). */
static clora_status checkpoint_heads(const clora__model_folder *folder, int *pooler,
                                     size_t *classifier)
{
    clora__checkpoint *file = NULL;
    clora_status status = clora__checkpoint_open(&file, folder->weights_path);
    if (status != CLORA_OK)
        return status;
    clora_tensor_view view;
    *pooler = clora__checkpoint_find(file, "pooler.dense.weight", &view) ||
              clora__checkpoint_find(file, "bert.pooler.dense.weight", &view);
    *classifier = clora__checkpoint_find(file, "classifier.weight", &view) && view.ndim == 2
                      ? view.shape[0]
                      : 0;
    clora__checkpoint_close(file);
    return CLORA_OK;
}

/* The labels of a top-level classifier the checkpoint holds (a merge of
 * clora's mean-pooling head saves one beside a BertModel's tensors): the
 * model takes it when no labels were asked for, and refuses other counts. */
static clora_status checkpoint_labels(clora_bert_config *c, const clora__model_folder *folder,
                                      size_t rows)
{
    if (rows && c->num_labels && c->num_labels != rows)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: the checkpoint's classifier has %zu labels; %zu were asked for",
                           folder->weights_path, rows, c->num_labels);
    if (rows)
        c->num_labels = rows;
    return CLORA_OK;
}

/* The head the request and the checkpoint agree on, into c (labels too). */
static clora_status choose_head(clora_bert_config *c, clora__json_fields *r,
                                const clora__model_folder *folder,
                                const clora_load_options *options)
{
    const int sequence = has_architecture(r->json, "BertForSequenceClassification");
    const clora_bert_head asked = options->bert_head;
    c->num_labels = options->num_labels;
    if (sequence && asked == CLORA_BERT_HEAD_MEAN) {
        c->head = CLORA_BERT_HEAD_MEAN;
        return CLORA_OK;
    }
    if (sequence) {
        const size_t labels = config_labels(r);
        if (r->status != CLORA_OK)
            return r->status;
        if (options->num_labels && options->num_labels != labels)
            return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                               "%s: the checkpoint's classifier has %zu labels (id2label); %zu "
                               "were asked for",
                               r->path, labels, options->num_labels);
        c->head = CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER;
        c->num_labels = labels;
        json_t *drop = json_object_get(r->json, "classifier_dropout");
        if (drop && !json_is_null(drop))
            c->classifier_dropout = clora__json_float(r, "classifier_dropout", 0.0f);
        return r->status;
    }
    if (asked == CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: the sequence classifier head was asked for; the checkpoint is "
                           "not a BertForSequenceClassification (architectures)",
                           r->path);
    int pooler = 0;
    size_t rows = 0;
    clora_status status = checkpoint_heads(folder, &pooler, &rows);
    if (status == CLORA_OK)
        status = checkpoint_labels(c, folder, rows);
    if (status != CLORA_OK || asked != CLORA_BERT_HEAD_POOLER) {
        c->head = CLORA_BERT_HEAD_MEAN;
        return status;
    }
    if (!pooler)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: the pooler head was asked for, but the checkpoint has no pooler "
                           "(pooler.dense.weight): it runs with mean pooling",
                           folder->weights_path);
    c->head = CLORA_BERT_HEAD_POOLER;
    return CLORA_OK;
}

static clora_status build_from_hf(clora_model **out, clora_device *device,
                                  clora__json_fields *r, const clora__model_folder *folder,
                                  const clora_load_options *options)
{
    clora_bert_config c = clora_bert_config_default();
    c.vocab_size = clora__json_count(r, "vocab_size", c.vocab_size);
    c.hidden_size = clora__json_count(r, "hidden_size", c.hidden_size);
    c.num_hidden_layers = clora__json_count(r, "num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = clora__json_count(r, "num_attention_heads", c.num_attention_heads);
    c.intermediate_size = clora__json_count(r, "intermediate_size", c.intermediate_size);
    c.max_position_embeddings =
        clora__json_count(r, "max_position_embeddings", c.max_position_embeddings);
    c.type_vocab_size = clora__json_count(r, "type_vocab_size", c.type_vocab_size);
    c.activation = clora__hf_activation(r, "hidden_act", "gelu");
    c.layer_norm_eps = clora__json_float(r, "layer_norm_eps", c.layer_norm_eps);
    c.hidden_dropout_prob = clora__json_float(r, "hidden_dropout_prob", c.hidden_dropout_prob);
    c.attention_probs_dropout_prob =
        clora__json_float(r, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
    c.initializer_range = clora__json_float(r, "initializer_range", c.initializer_range);
    clora__json_require_bool(r, "is_decoder", 0);
    clora__json_require_bool(r, "add_cross_attention", 0);
    const char *position = json_string_value(json_object_get(r->json, "position_embedding_type"));
    if (r->status == CLORA_OK && position && strcmp(position, "absolute") != 0)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: position_embedding_type \"%s\"; clora supports \"absolute\"",
                                r->path, position);
    if (r->status != CLORA_OK)
        return r->status;
    clora_status status = choose_head(&c, r, folder, options);
    if (status != CLORA_OK)
        return status;
    status = create(out, device, &c, options->seed, 1);
    if (status == CLORA_OK) /* under "bert." as BertForSequenceClassification has it, or not */
        clora__hf_padding(*out, r,
                          clora__descendant((*out)->root, "bert.embeddings.word_embeddings")
                              ? "bert.embeddings.word_embeddings"
                              : "embeddings.word_embeddings",
                          0);
    if (status == CLORA_OK && c.num_labels > 0 && c.head != CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER) {
        /* a head the file may lack */
        status = clora__param_reinit(clora__child((*out)->root, "classifier"), "weight",
                                     CLORA__INIT_NORMAL, c.initializer_range);
        if (status != CLORA_OK) {
            clora_model_destroy(*out);
            *out = NULL;
        }
    }
    return status;
}

/* The model's own names ("bert.x" under BertForSequenceClassification's
 * head); for the other heads "x" is "x" (BertModel) or "bert.x" (BertFor*),
 * and the head is "classifier.*". */
static int candidate(const clora_model *model, const char *param, size_t index, char *out,
                     size_t size)
{
    if (index == 0)
        return snprintf(out, size, "%s", param) < (int)size;
    return index == 1 && !clora__child(model->root, "bert") &&
           strcmp(param, "classifier.weight") && strcmp(param, "classifier.bias") &&
           snprintf(out, size, "bert.%s", param) < (int)size;
}

/* A classifier the file lacks keeps its initialisation, unless it is the
 * sequence classifier's own. */
static int optional(const clora_model *model, const char *param)
{
    return !clora__child(model->root, "bert") && clora__starts_with(param, "classifier.");
}

/* position_ids buffers, the pooler (when the model has none: mean pooling)
 * and the pre-training heads clora has no use for; a classifier when the
 * model has none. */
static int ignorable(const clora_model *model, const char *tensor)
{
    return clora__ends_with(tensor, "position_ids") || clora__starts_with(tensor, "pooler.") ||
           clora__starts_with(tensor, "bert.pooler.") || clora__starts_with(tensor, "cls.") ||
           (!clora__child(model->root, "classifier") && clora__starts_with(tensor, "classifier."));
}

const clora__hf_architecture clora__bert_hf = {
    .model_type = "bert",
    .build_from = build_from_hf,
    .names = {.candidate = candidate, .optional = optional, .ignorable = ignorable},
};
