/* gpt2.c — GPT-2 (GPT2LMHeadModel): its composite node kinds (the trunk, a
 * block, the causal attention), the builder, and how Hugging Face folders
 * describe and name it.
 *
 *   transformer.wte, transformer.wpe, transformer.drop,
 *   transformer.h.<i>.{ln_1, attn.{c_attn, c_proj, resid_dropout}, ln_2,
 *                      mlp.{c_fc, act, c_proj, dropout}},
 *   transformer.ln_f, lm_head (its weight is transformer.wte's)
 *
 * c_attn, c_proj and c_fc store their weights (in, out) as Conv1D does.
 * B batch, T tokens, C features, H heads, D = C / H. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

/* ---- attention: c_attn -> attention (causal) -> c_proj -> resid_dropout ---------------- */

typedef struct attention_state {
    clora__attention_args args; /* C features, H heads, dropout p on the probabilities */
    clora__attention core;
    clora_buffer *merged;   /* (B, T, C): the heads' context, c_proj's input */
    clora_buffer *d_qkv;    /* (B, T, 3C): c_attn's output gradient */
} attention_state;

static clora_status attention_setup(clora_node *node, const void *args)
{
    CLORA__STATE(attention_state, node)->args = *(const clora__attention_args *)args;
    return CLORA_OK;
}

static clora_status attention_forward(clora_node *node, const clora_buffer *x,
                                      const clora_buffer **y)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const size_t C = s->args.features, H = s->args.heads, D = C / H;
    size_t B = 0, T = 0;
    const clora_buffer *qkv = NULL, *proj = NULL;
    clora_status status = clora__batch_dims(node, x, C, &B, &T);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "c_attn"), x, &qkv);
    if (status == CLORA_OK)
        status = clora__attention_prepare(&s->core, x->device, B, T, H, H, D);
    clora_buffer *parts[3] = {s->core.q, s->core.k, s->core.v};
    for (size_t i = 0; i < 3 && status == CLORA_OK; ++i)
        status = clora__heads_split(parts[i], qkv, 3 * C, i * C, B, T, H, D);
    const size_t shape[3] = {B, T, C};
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->merged, x->device, CLORA_DTYPE_F32, 3, shape, NULL);
    if (status == CLORA_OK)
        status = clora__attend(node, &s->args, &s->core, s->merged, 1);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "c_proj"), s->merged, &proj);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "resid_dropout"), proj, y);
    return status;
}

static clora_status attention_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                       const clora_buffer **dx)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const size_t C = s->args.features, H = s->args.heads, D = C / H;
    const size_t B = node->input->shape[0], T = node->input->shape[1];
    const clora_buffer *d = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "resid_dropout"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "c_proj"), d, 1, &d)) ||
        (status = clora__attention_backward(&s->core, d)))
        return status;
    const size_t qkv_shape[3] = {B, T, 3 * C};
    if ((status = clora__buffer_ensure(&s->d_qkv, dy->device, CLORA_DTYPE_F32, 3, qkv_shape,
                                       NULL)))
        return status;
    const clora_buffer *parts[3] = {s->core.dq, s->core.dk, s->core.dv};
    for (size_t i = 0; i < 3 && status == CLORA_OK; ++i)
        status = clora__heads_merge(s->d_qkv, parts[i], 3 * C, i * C, B, T, H, D);
    if (status == CLORA_OK)
        status = clora__node_backward(clora__child(node, "c_attn"), s->d_qkv, need_dx, dx);
    return status;
}

static const clora__part attention_parts[] = {{"c_attn", NULL},
                                              {"c_proj", NULL},
                                              {"resid_dropout", &clora__dropout_kind},
                                              {NULL, NULL}};

static clora_status attention_validate(const clora_node *node)
{
    const attention_state *s = CLORA__STATE(attention_state, node);
    clora_status status = clora__check_parts(node, attention_parts);
    if (status == CLORA_OK)
        status = clora__check_projection(node, clora__child(node, "c_attn"), s->args.features,
                                         3 * s->args.features);
    return status;
}

static int attention_save(const clora_node *node, json_t *j)
{
    return clora__attention_save(j, &CLORA__STATE(attention_state, node)->args);
}

static void attention_release_grads(clora_node *node)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    clora__attention_release_grads(&s->core);
    clora__buffer_recycle(&s->d_qkv);
}

static void attention_release(clora_node *node)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    clora__attention_release(&s->core);
    clora_buffer_destroy(s->merged);
    clora_buffer_destroy(s->d_qkv);
    s->merged = s->d_qkv = NULL;
}

const clora__node_kind clora__gpt2_attention_kind = {
    .id = CLORA_NODE_GPT2_ATTENTION,
    .name = "gpt2_attention",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(attention_state),
    .setup = attention_setup,
    .forward = attention_forward,
    .backward = attention_backward,
    .validate = attention_validate,
    .save = attention_save,
    .load = clora__attention_load,
    .release = attention_release,
    .release_grads = attention_release_grads,
};

/* ---- blocks: h = x + attn(ln_1(x)); y = h + mlp(ln_2(h)) --------------------------------- */

static const clora__part block_parts[] = {{"ln_1", &clora__layer_norm_kind},
                                          {"attn", &clora__gpt2_attention_kind},
                                          {"ln_2", &clora__layer_norm_kind},
                                          {"mlp", &clora__sequential_kind},
                                          {NULL, NULL}};

static clora_status block_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    return clora__residual_block_forward(node, block_parts,
                                         CLORA__STATE(clora__residual_block, node), x, y);
}

static clora_status block_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                   const clora_buffer **dx)
{
    return clora__residual_block_backward(node, block_parts,
                                          CLORA__STATE(clora__residual_block, node), dy, need_dx,
                                          dx);
}

static clora_status block_validate(const clora_node *node)
{
    return clora__check_parts(node, block_parts);
}

static void block_release(clora_node *node)
{
    clora__residual_block_release(CLORA__STATE(clora__residual_block, node));
}

const clora__node_kind clora__gpt2_block_kind = {
    .id = CLORA_NODE_GPT2_BLOCK,
    .name = "gpt2_block",
    .flags = CLORA__KIND_COMPOSITE | CLORA__KIND_CHECKPOINT,
    .state_size = sizeof(clora__residual_block),
    .forward = block_forward,
    .backward = block_backward,
    .validate = block_validate,
    .load = clora__load_composite,
    .release = block_release,
    .release_grads = clora__residual_block_release_grads,
};

/* ---- the trunk: wte + wpe -> drop -> h -> ln_f ------------------------------------------- */

typedef struct trunk_state {
    clora_buffer *positions; /* int32 (B, T): 0..T-1 */
    clora_buffer *sum;       /* (B, T, C): wte + wpe */
} trunk_state;

static clora_status trunk_forward(clora_node *node, const clora_buffer *ids,
                                  const clora_buffer **y)
{
    trunk_state *s = CLORA__STATE(trunk_state, node);
    const clora_buffer *e = NULL, *p = NULL, *h = NULL;
    clora_node *wpe = clora__child(node, "wpe");
    clora_status status;
    if ((status = clora__check_ids(node, ids, clora__embedding_rows(wpe))) ||
        (status = clora__position_ids(&s->positions, ids)) ||
        (status = clora__node_forward(clora__child(node, "wte"), ids, &e)) ||
        (status = clora__node_forward(wpe, s->positions, &p)) ||
        (status = clora__buffer_ensure_like(&s->sum, e)) || (status = clora__add(s->sum, e, p)) ||
        (status = clora__node_forward(clora__child(node, "drop"), s->sum, &h)) ||
        (status = clora__node_forward(clora__child(node, "h"), h, &h)))
        return status;
    return clora__node_forward(clora__child(node, "ln_f"), h, y);
}

static clora_status trunk_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                   const clora_buffer **dx)
{
    (void)dx;
    if (need_dx)
        return clora__fail(CLORA_ERR_STATE, "%s \"%s\" cannot pass a gradient to integer ids",
                           node->kind->name, node->name);
    const clora_buffer *d = NULL, *unused = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "ln_f"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "h"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "drop"), d, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "wte"), d, 0, &unused)))
        return status;
    return clora__node_backward(clora__child(node, "wpe"), d, 0, &unused);
}

static const clora__part trunk_parts[] = {{"wte", &clora__embedding_kind},
                                          {"wpe", &clora__embedding_kind},
                                          {"drop", &clora__dropout_kind},
                                          {"h", &clora__sequential_kind},
                                          {"ln_f", &clora__layer_norm_kind},
                                          {NULL, NULL}};

static clora_status trunk_validate(const clora_node *node)
{
    return clora__check_parts(node, trunk_parts);
}

static void trunk_release(clora_node *node)
{
    trunk_state *s = CLORA__STATE(trunk_state, node);
    clora_buffer_destroy(s->positions);
    clora_buffer_destroy(s->sum);
    s->positions = s->sum = NULL;
}

const clora__node_kind clora__gpt2_model_kind = {
    .id = CLORA_NODE_GPT2_MODEL,
    .name = "gpt2_model",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(trunk_state),
    .forward = trunk_forward,
    .backward = trunk_backward,
    .validate = trunk_validate,
    .load = clora__load_composite,
    .release = trunk_release,
};

/* ---- building ---------------------------------------------------------------------------- */

clora_gpt2_config clora_gpt2_config_default(void)
{
    clora_gpt2_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 50257;
    c.n_positions = 1024;
    c.n_embd = 768;
    c.n_layer = 12;
    c.n_head = 12;
    c.n_inner = 0;
    c.activation = CLORA_NODE_GELU_TANH;
    c.layer_norm_epsilon = 1e-5f;
    c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.1f;
    c.initializer_range = 0.02f;
    return c;
}

static clora_status build(clora_model *model, const void *config)
{
    const clora_gpt2_config *c = config;
    const size_t C = c->n_embd, inner = c->n_inner ? c->n_inner : 4 * C;
    const float std = c->initializer_range, proj_std = std / sqrtf(2.0f * (float)c->n_layer);
    const float eps = c->layer_norm_epsilon, p = c->resid_pdrop;
    clora_node *tr = NULL, *wte = NULL, *h = NULL;
    clora_status status =
        clora__add_composite(model->root, "transformer", &clora__gpt2_model_kind, &tr);
    if (status == CLORA_OK)
        status = clora__hf_embedding(tr, "wte", c->vocab_size, C, std, &wte);
    if (status == CLORA_OK)
        status = clora__hf_embedding(tr, "wpe", c->n_positions, C, std, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_dropout(tr, "drop", c->embd_pdrop, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_sequential(tr, "h", &h);
    for (size_t i = 0; i < c->n_layer && status == CLORA_OK; ++i) {
        char name[24];
        snprintf(name, sizeof name, "%zu", i);
        clora_node *block = NULL, *attn = NULL, *mlp = NULL;
        if ((status = clora__add_composite(h, name, &clora__gpt2_block_kind, &block)) ||
            (status = clora_node_add_layer_norm(block, "ln_1", C, eps, NULL)) ||
            (status = clora__add_attention(block, "attn", &clora__gpt2_attention_kind, C,
                                           c->n_head, c->attn_pdrop, &attn)) ||
            (status = clora__hf_linear(attn, "c_attn", C, 3 * C, 1, std, NULL)) ||
            (status = clora__hf_linear(attn, "c_proj", C, C, 1, proj_std, NULL)) ||
            (status = clora_node_add_dropout(attn, "resid_dropout", p, NULL)) ||
            (status = clora_node_add_layer_norm(block, "ln_2", C, eps, NULL)) ||
            (status = clora_node_add_sequential(block, "mlp", &mlp)) ||
            (status = clora__hf_linear(mlp, "c_fc", C, inner, 1, std, NULL)) ||
            (status = clora_node_add_activation(mlp, "act", c->activation, NULL)) ||
            (status = clora__hf_linear(mlp, "c_proj", inner, C, 1, proj_std, NULL)))
            break;
        status = clora_node_add_dropout(mlp, "dropout", p, NULL);
    }
    if (status == CLORA_OK)
        status = clora_node_add_layer_norm(tr, "ln_f", C, eps, NULL);
    if (status == CLORA_OK)
        status = clora__add_tied_linear(model->root, "lm_head", wte, NULL);
    return status;
}

/* clora_model_create_gpt2; skip_init leaves every parameter at zero for a
 * checkpoint to fill. */
static clora_status create(clora_model **out, clora_device *device, const clora_gpt2_config *c,
                           uint64_t seed, int skip_init)
{
    if (!out || !device || !c)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create_gpt2: NULL argument");
    *out = NULL;
    const size_t sizes[4] = {c->vocab_size, c->n_positions, c->n_embd, c->n_head};
    static const char *const names[4] = {"vocab_size", "n_positions", "n_embd", "n_head"};
    clora_status status = clora__check_sizes("GPT-2", sizes, names, 4);
    if (status == CLORA_OK) {
        const float drops[3] = {c->embd_pdrop, c->attn_pdrop, c->resid_pdrop};
        status = clora__check_common("GPT-2", c->n_embd, c->n_head, c->activation,
                                     c->layer_norm_epsilon, drops, 3, c->initializer_range);
    }
    if (status != CLORA_OK)
        return status;
    return clora__create_with(out, device, seed, skip_init, build, c);
}

clora_status clora_model_create_gpt2(clora_model **out, clora_device *device,
                                     const clora_gpt2_config *config, uint64_t seed)
{
    return create(out, device, config, seed, 0);
}

/* ---- Hugging Face folders ------------------------------------------------------------------ */

static clora_status build_from_hf(clora_model **out, clora_device *device,
                                  clora__json_fields *r, size_t num_labels, uint64_t seed)
{
    if (num_labels > 0)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: GPT-2 models here are language models; num_labels must be 0",
                                r->path);
    clora_gpt2_config c = clora_gpt2_config_default();
    c.vocab_size = clora__json_count(r, "vocab_size", c.vocab_size);
    c.n_positions = clora__json_count(r, "n_positions", c.n_positions);
    c.n_embd = clora__json_count(r, "n_embd", c.n_embd);
    c.n_layer = clora__json_count(r, "n_layer", c.n_layer);
    c.n_head = clora__json_count(r, "n_head", c.n_head);
    c.n_inner = clora__json_count(r, "n_inner", 4 * c.n_embd);
    c.activation = clora__hf_activation(r, "activation_function", "gelu_new");
    c.layer_norm_epsilon = clora__json_float(r, "layer_norm_epsilon", c.layer_norm_epsilon);
    c.embd_pdrop = clora__json_float(r, "embd_pdrop", c.embd_pdrop);
    c.attn_pdrop = clora__json_float(r, "attn_pdrop", c.attn_pdrop);
    c.resid_pdrop = clora__json_float(r, "resid_pdrop", c.resid_pdrop);
    c.initializer_range = clora__json_float(r, "initializer_range", c.initializer_range);
    clora__json_require_bool(r, "scale_attn_weights", 1);
    clora__json_require_bool(r, "scale_attn_by_inverse_layer_idx", 0);
    clora__json_require_bool(r, "add_cross_attention", 0);
    clora__json_require_bool(r, "tie_word_embeddings", 1);
    if (r->status != CLORA_OK)
        return r->status;
    return create(out, device, &c, seed, 1);
}

/* "transformer.x" is "transformer.x" (GPT2LMHeadModel) or "x" (GPT2Model). */
static int candidate(const clora_model *model, const char *param, size_t index, char *out,
                     size_t size)
{
    (void)model;
    if (index == 0)
        return snprintf(out, size, "%s", param) < (int)size;
    return index == 1 && clora__starts_with(param, "transformer.") &&
           snprintf(out, size, "%s", param + strlen("transformer.")) < (int)size;
}

/* The causal masks GPT-2 checkpoints carry, and lm_head, which is wte. */
static int ignorable(const clora_model *model, const char *tensor)
{
    (void)model;
    return clora__ends_with(tensor, ".attn.bias") ||
           clora__ends_with(tensor, ".attn.masked_bias") || !strcmp(tensor, "lm_head.weight");
}

const clora__hf_architecture clora__gpt2_hf = {
    .model_type = "gpt2",
    .build = build_from_hf,
    .names = {.candidate = candidate, .ignorable = ignorable},
};
