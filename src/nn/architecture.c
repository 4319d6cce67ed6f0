/* architecture.c — what GPT-2, BERT and the next architectures share:
 * composite parts and the check of the children they drive, Hugging Face's
 * initialisation, config checks, the builders' permissions, the batch's
 * shape, mask and position ids, and Hugging Face's activation names. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* ---- composite parts ---------------------------------------------------------------- */

clora_status clora__check_parts(const clora_node *node, const clora__part *parts)
{
    for (const clora__part *p = parts; p->path; ++p) {
        const clora_node *n = clora__descendant(node, p->path);
        /* a LoRA node stands for its base (an Embedding part may carry LoRA) */
        const clora_node *shown = n && n->kind->base ? n->kind->base(n) : n;
        int ok = n && (p->kind ? shown->kind == p->kind : clora__linear_of(n) != NULL);
        if (!ok)
            return clora__fail(CLORA_ERR_STATE, "%s \"%s\" needs a %s \"%s\"%s", node->kind->name,
                               node->name, p->kind ? p->kind->name : "linear", p->path,
                               n ? " of that kind" : "");
    }
    return CLORA_OK;
}

void clora__hf_padding(clora_model *model, clora__json_fields *config, const char *path,
                       int fallback)
{
    clora_node *table = clora__descendant(model->root, path);
    json_t *pad = json_object_get(config->json, "pad_token_id");
    int padding = fallback;
    if (json_is_integer(pad))
        padding = json_integer_value(pad) >= 0 &&
                          (size_t)json_integer_value(pad) < clora__embedding_rows(table)
                      ? (int)json_integer_value(pad)
                      : -1; /* PyTorch refuses it; transformers' models never index it */
    clora__embedding_set_padding(table, padding);
}

clora_status clora__add_composite(clora_node *parent, const char *name,
                                  const clora__node_kind *kind, clora_node **out)
{
    return clora__add_node("clora__add_composite", parent, name, kind, NULL, out);
}

clora_status clora__load_composite(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out)
{
    (void)j;
    (void)where;
    return clora__add_composite(parent, name, kind, out);
}

/* ---- Hugging Face's initialisation -------------------------------------------------------- */

clora_status clora__hf_linear(clora_node *parent, const char *name, size_t in, size_t out,
                              int in_out, float std, clora_node **node)
{
    clora_node *n = NULL;
    clora_status status = in_out ? clora_node_add_linear_in_out(parent, name, in, out, 1, &n)
                                 : clora_node_add_linear(parent, name, in, out, 1, &n);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "weight", CLORA__INIT_NORMAL, std);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "bias", CLORA__INIT_ZERO, 0.0f);
    if (status == CLORA_OK && node)
        *node = n;
    return status;
}

clora_status clora__hf_embedding(clora_node *parent, const char *name, size_t rows, size_t cols,
                                 float std, clora_node **node)
{
    clora_node *n = NULL;
    clora_status status = clora_node_add_embedding(parent, name, rows, cols, &n);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "weight", CLORA__INIT_NORMAL, std);
    if (status == CLORA_OK && node)
        *node = n;
    return status;
}

/* ---- configs ------------------------------------------------------------------------------- */

clora_status clora__check_sizes(const char *what, const size_t *sizes, const char *const *names,
                                size_t n)
{
    for (size_t i = 0; i < n; ++i)
        if (sizes[i] == 0 || sizes[i] > (size_t)INT32_MAX)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s config: %s is %zu", what, names[i],
                               sizes[i]);
    return CLORA_OK;
}

clora_status clora__check_common(const char *what, size_t C, size_t heads, clora_node_kind act,
                                 float eps, const float *drops, size_t n_drops, float std)
{
    int drops_ok = 1;
    for (size_t i = 0; i < n_drops; ++i)
        drops_ok &= drops[i] >= 0.0f && drops[i] < 1.0f;
    if (C % heads != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s config: %zu features do not split into %zu heads", what, C, heads);
    if (!clora__activation_kind(act))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s config: kind %d is not an activation (relu, gelu, gelu_tanh, silu "
                           "or tanh)",
                           what, (int)act);
    if (!(eps > 0.0f) || !isfinite(eps) || !drops_ok || !(std >= 0.0f) || !isfinite(std))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s config: needs eps > 0, dropouts in [0, 1) and initializer_range "
                           ">= 0 (got eps %g, initializer_range %g)",
                           what, (double)eps, (double)std);
    return CLORA_OK;
}

static _Thread_local clora__storage pending_storage;

void clora__storage_set(const clora__storage *plan)
{
    if (plan)
        pending_storage = *plan;
    else
        memset(&pending_storage, 0, sizeof pending_storage);
}

clora_dtype clora__storage_uniform(const clora_model *model, const char *name, const size_t *shape,
                                   void *user)
{
    (void)model;
    const clora_dtype dtype = *(const clora_dtype *)user;
    if (!strcmp(name, "classifier.weight") || !strcmp(name, "score.weight"))
        return CLORA_DTYPE_F32; /* sequence-classification heads train */
    return clora_dtype_bytes(dtype, shape[1]) ? dtype : CLORA_DTYPE_F32;
}

clora_status clora__load_options_check(const char *op, const clora_load_options *options)
{
    const clora_dtype d = options->base_dtype;
    if ((unsigned)options->bert_head > CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: bert_head %d is not a clora_bert_head",
                           op, (int)options->bert_head);
    if (d == CLORA_DTYPE_AS_STORED || d == CLORA_DTYPE_F32 || clora_dtype_can_quantize(d))
        return CLORA_OK;
    return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                       "%s: base_dtype %s; frozen weights load as stored, as F32, or packed on "
                       "load as F16, BF16, Q8_0, Q4_0 or Q4_1 (%s)",
                       op, clora_dtype_name(d),
                       clora_dtype_is_packed(d) ? "K-quant tensors come from GGUF files as they "
                                                  "are stored"
                                                : "not a packed type");
}

clora_status clora__create_with(clora_model **out, clora_device *device, uint64_t seed,
                                int skip_init, clora_status (*build)(clora_model *, const void *),
                                const void *config)
{
    clora_model *model = NULL;
    clora_status status = clora_model_create(&model, device, seed);
    if (status != CLORA_OK)
        return status;
    model->building = 1;
    model->skip_init = skip_init;
    model->storage = pending_storage.fn;
    model->storage_user = pending_storage.user;
    status = build(model, config);
    model->building = 0;
    model->skip_init = 0;
    model->storage = NULL;
    model->storage_user = NULL;
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}

clora_node_kind clora__hf_activation(clora__json_fields *fields, const char *key,
                                     const char *fallback)
{
    json_t *v = json_object_get(fields->json, key);
    const char *name = v ? json_string_value(v) : fallback;
    static const struct {
        const char *name;
        clora_node_kind kind;
    } known[] = {{"gelu", CLORA_NODE_GELU},           {"gelu_new", CLORA_NODE_GELU_TANH},
                 {"gelu_pytorch_tanh", CLORA_NODE_GELU_TANH}, {"relu", CLORA_NODE_RELU},
                 {"silu", CLORA_NODE_SILU},           {"swish", CLORA_NODE_SILU},
                 {"tanh", CLORA_NODE_TANH}};
    if (fields->status != CLORA_OK)
        return CLORA_NODE_GELU;
    for (size_t i = 0; name && i < sizeof known / sizeof known[0]; ++i)
        if (!strcmp(name, known[i].name))
            return known[i].kind;
    fields->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                 "%s: \"%s\" is %s; clora knows gelu, gelu_new, gelu_pytorch_tanh, "
                                 "relu, silu, swish and tanh",
                                 fields->path, key, name ? name : "not a string");
    return CLORA_NODE_GELU;
}

/* ---- checkpoint names ------------------------------------------------------------------------ */

int clora__starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

int clora__ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* ---- the batch ------------------------------------------------------------------------------ */

clora_status clora__batch_mask(const clora_node *node, size_t B, size_t T,
                               const clora_buffer **mask)
{
    *mask = node->model->attention_mask;
    if (*mask && ((*mask)->shape[0] != B || (*mask)->shape[1] != T))
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "the attention mask is (%zu, %zu); the batch is (%zu, %zu) tokens",
                           (*mask)->shape[0], (*mask)->shape[1], B, T);
    return CLORA_OK;
}

clora_status clora__batch_dims(const clora_node *node, const clora_buffer *x, size_t C, size_t *B,
                               size_t *T)
{
    if (x->ndim != 3 || x->shape[2] != C || x->dtype != CLORA_DTYPE_F32) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s \"%s\" takes float32 (B, T, %zu) activations, not %s %s",
                           node->kind->name, node->name, C, clora_dtype_name(x->dtype),
                           clora_buffer_shape_string(x, got, sizeof got));
    }
    *B = x->shape[0];
    *T = x->shape[1];
    return CLORA_OK;
}

clora_status clora__check_ids(const clora_node *node, const clora_buffer *ids, size_t positions)
{
    if (ids->dtype != CLORA_DTYPE_I32 || ids->ndim != 2 || ids->numel == 0) {
        char got[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s \"%s\" takes int32 token ids (B, T), not %s %s", node->kind->name,
                           node->name, clora_dtype_name(ids->dtype),
                           clora_buffer_shape_string(ids, got, sizeof got));
    }
    if (ids->shape[1] > positions)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%zu tokens per sequence; the model has positions for %zu",
                           ids->shape[1], positions);
    return CLORA_OK;
}

clora_status clora__position_ids(clora_buffer **positions, const clora_buffer *ids)
{
    int created = 0;
    clora_status status =
        clora__buffer_ensure(positions, ids->device, CLORA_DTYPE_I32, 2, ids->shape, &created);
    if (status != CLORA_OK || !created)
        return status;
    int32_t *host = clora__malloc(ids->numel * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "position ids");
    for (size_t i = 0; i < ids->numel; ++i)
        host[i] = (int32_t)(i % ids->shape[1]);
    status = clora_buffer_upload_i32(*positions, 0, host, ids->numel);
    free(host);
    return status;
}

/* ---- attention parts ------------------------------------------------------------------- */

clora_status clora__add_attention(clora_node *parent, const char *name,
                                  const clora__node_kind *kind, size_t features, size_t heads,
                                  float p, clora_node **out)
{
    if (heads == 0 || features == 0 || features % heads != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "attention \"%s\": %zu features do not split into %zu heads", name,
                           features, heads);
    if (!(p >= 0.0f && p < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "attention \"%s\": dropout %g is outside [0, 1)", name, (double)p);
    const clora__attention_args args = {features, heads, p};
    return clora__add_node("clora__add_composite", parent, name, kind, &args, out);
}

clora_status clora__attend(clora_node *node, const clora__attention_args *args,
                           clora__attention *core, clora_buffer *merged, int causal)
{
    const clora_buffer *mask = NULL;
    clora_status status = clora__batch_mask(node, core->B, core->T, &mask);
    if (status != CLORA_OK)
        return status;
    const float p = node->model->training ? args->p : 0.0f;
    return clora__attention_forward(core, merged, mask, causal, p,
                                    p > 0.0f ? clora__node_seed(node, 1) : 0,
                                    node->model->first_example);
}

clora_status clora__check_projection(const clora_node *node, const clora_node *projection,
                                     size_t in, size_t out)
{
    size_t got_in = 0, got_out = 0;
    clora__linear_dims_of(projection, &got_in, &got_out, NULL);
    if (got_in != in || got_out != out)
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s \"%s\" of %zu features has a %zu -> %zu input projection",
                           node->kind->name, node->name, in, got_in, got_out);
    return CLORA_OK;
}

int clora__attention_save(json_t *j, const clora__attention_args *args)
{
    return json_object_set_new(j, "features", json_integer((json_int_t)args->features)) ||
           json_object_set_new(j, "heads", json_integer((json_int_t)args->heads)) ||
           json_object_set_new(j, "p", json_real(args->p));
}

clora_status clora__attention_load(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out)
{
    json_t *p = json_object_get(j, "p");
    size_t features = 0, heads = 0;
    (void)where; /* model_io.c puts it in front of a composite part's failures */
    if (!clora__json_get_size(j, "features", &features) ||
        !clora__json_get_size(j, "heads", &heads) || !json_is_number(p))
        return clora__fail(CLORA_ERR_FORMAT, "%s \"%s\" needs features, heads and p", kind->name,
                           name);
    return clora__add_attention(parent, name, kind, features, heads, (float)json_number_value(p),
                                out);
}

/* ---- pre-norm residual blocks ---------------------------------------------------------- */

clora_status clora__residual_block_forward(clora_node *node, const clora__part *parts,
                                           clora__residual_block *s, const clora_buffer *x,
                                           const clora_buffer **y)
{
    const clora_buffer *t = NULL, *a = NULL, *m = NULL;
    clora_status status;
    if ((status = clora__node_forward(clora__child(node, parts[0].path), x, &t)) ||
        (status = clora__node_forward(clora__child(node, parts[1].path), t, &a)) ||
        (status = clora__buffer_ensure_like(&s->h, x)) || (status = clora__add(s->h, x, a)) ||
        (status = clora__node_forward(clora__child(node, parts[2].path), s->h, &t)) ||
        (status = clora__node_forward(clora__child(node, parts[3].path), t, &m)) ||
        (status = clora__buffer_ensure_like(&node->owned_output, x)) ||
        (status = clora__add(node->owned_output, s->h, m)))
        return status;
    *y = node->owned_output;
    return CLORA_OK;
}

clora_status clora__residual_block_backward(clora_node *node, const clora__part *parts,
                                            clora__residual_block *s, const clora_buffer *dy,
                                            int need_dx, const clora_buffer **dx)
{
    const clora_buffer *d = NULL, *e = NULL;
    clora_status status;
    /* dh = dy + norm_2'(mlp'(dy)) */
    if ((status = clora__node_backward(clora__child(node, parts[3].path), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, parts[2].path), d, 1, &e)) ||
        (status = clora__buffer_ensure_like(&s->dh, dy)) || (status = clora__add(s->dh, dy, e)))
        return status;
    /* dx = dh + norm_1'(attention'(dh)) */
    if ((status = clora__node_backward(clora__child(node, parts[1].path), s->dh, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, parts[0].path), d, need_dx, &e)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__buffer_ensure_like(&node->d_input, dy)) ||
        (status = clora__add(node->d_input, s->dh, e)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

void clora__residual_block_release_grads(clora_node *node)
{
    clora__buffer_recycle(&CLORA__STATE(clora__residual_block, node)->dh);
}

void clora__residual_block_release(clora__residual_block *s)
{
    clora_buffer_destroy(s->h);
    clora_buffer_destroy(s->dh);
    s->h = s->dh = NULL;
}
