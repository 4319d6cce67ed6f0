/* llama.c — Llama-family decoders (LlamaForCausalLM; Qwen2 and Mistral
 * share the tree): the composite node kinds (the trunk, a decoder layer,
 * the rotary grouped-query attention, the SwiGLU MLP), the builder, and how
 * Hugging Face folders describe and name them.
 *
 *   model.embed_tokens, model.layers.<i>.{input_layernorm,
 *       self_attn.{q_proj, k_proj, v_proj, o_proj}, post_attention_layernorm,
 *       mlp.{gate_proj, up_proj, down_proj}}, model.norm, lm_head
 *
 * B batch, T tokens, C features, H query heads, G key/value heads (H_kv),
 * D per head, I the MLP's width. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

/* ---- attention: q/k/v_proj -> rope -> attention (causal, grouped) -> o_proj ------------ */

typedef struct llama_attention_args {
    size_t features, heads, kv_heads, head_dim; /* C, H, G, D */
    float p;                                    /* dropout on the probabilities */
    clora__rope_config rope;
} llama_attention_args;

typedef struct attention_state {
    llama_attention_args args;
    clora__attention core;
    clora_buffer *inv_freq;    /* (D/2) rotary frequencies */
    float *freq_factors;       /* (D/2) or NULL: args.rope.freq_factors points here */
    clora_buffer *merged;      /* (B, T, H·D): the heads' context, o_proj's input */
    clora_buffer *d_q;         /* (B, T, H·D): q_proj's output gradient */
    clora_buffer *d_k, *d_v;   /* (B, T, G·D) */
    const clora_buffer *positions; /* of the last forward (borrowed) */
    /* generation: the session's cache (B, G, S, D), borrowed, and the new
     * tokens' heads */
    clora_buffer *cache_k, *cache_v;
    clora_buffer *new_kv; /* (B, G, T, D) */
} attention_state;

static clora_status attention_setup(clora_node *node, const void *args)
{
    const llama_attention_args *a = args;
    attention_state *s = CLORA__STATE(attention_state, node);
    if (a->features == 0 || a->heads == 0 || a->kv_heads == 0 || a->heads % a->kv_heads != 0 ||
        a->head_dim == 0 || a->head_dim % 2 != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "llama attention \"%s\": %zu query heads, %zu key/value heads of %zu "
                           "(the key/value heads must divide the query heads, the head size "
                           "must be even)",
                           node->name, a->heads, a->kv_heads, a->head_dim);
    if (!(a->p >= 0.0f && a->p < 1.0f))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "llama attention \"%s\": dropout %g is outside [0, 1)", node->name,
                           (double)a->p);
    if (!(a->rope.theta > 0.0f) || !isfinite(a->rope.theta))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "llama attention \"%s\": rope_theta %g",
                           node->name, (double)a->rope.theta);
    if (a->rope.scaling == CLORA__ROPE_LLAMA3 &&
        (!(a->rope.factor > 0.0) || !(a->rope.high_freq_factor > a->rope.low_freq_factor) ||
         !(a->rope.low_freq_factor > 0.0) || a->rope.original_max_positions == 0))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "llama attention \"%s\": llama3 rope scaling needs factor > 0, "
                           "0 < low_freq_factor < high_freq_factor and "
                           "original_max_position_embeddings",
                           node->name);
    for (size_t i = 0; a->rope.freq_factors && i < a->head_dim / 2; ++i)
        if (!(a->rope.freq_factors[i] > 0.0f) || !isfinite(a->rope.freq_factors[i]))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "llama attention \"%s\": rotary frequency factor %zu is %g",
                               node->name, i, (double)a->rope.freq_factors[i]);
    s->args = *a;
    const size_t half = a->head_dim / 2;
    float freq[512];
    if (half > sizeof freq / sizeof freq[0])
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "llama attention \"%s\": head size %zu",
                           node->name, a->head_dim);
    clora__rope_frequencies(freq, a->head_dim, &a->rope);
    /* kept for saving; the caller's array is only borrowed */
    if (a->rope.freq_factors) {
        if (!(s->freq_factors = clora__malloc(half * sizeof *s->freq_factors)))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "llama attention");
        memcpy(s->freq_factors, a->rope.freq_factors, half * sizeof *s->freq_factors);
        s->args.rope.freq_factors = s->freq_factors;
    }
    clora_status status =
        clora_buffer_create_1d(&s->inv_freq, node->model->device, half);
    if (status == CLORA_OK)
        status = clora_buffer_upload(s->inv_freq, 0, freq, half);
    return status;
}

/* The three input projections of x. */
static clora_status project_qkv(clora_node *node, const clora_buffer *x, const clora_buffer **q,
                                const clora_buffer **k, const clora_buffer **v)
{
    clora_status status = clora__node_forward(clora__child(node, "q_proj"), x, q);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "k_proj"), x, k);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "v_proj"), x, v);
    return status;
}

/* q, k, v of x into the core's (B, H, T, D) heads, rotated. */
static clora_status attention_heads(clora_node *node, const clora_buffer *x, size_t B, size_t T)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const size_t H = s->args.heads, G = s->args.kv_heads, D = s->args.head_dim;
    const clora_buffer *q = NULL, *k = NULL, *v = NULL;
    clora_status status;
    if ((status = project_qkv(node, x, &q, &k, &v)) ||
        (status = clora__attention_prepare(&s->core, x->device, B, T, H, G, D)) ||
        (status = clora__heads_split(s->core.q, q, H * D, 0, B, T, H, D)) ||
        (status = clora__heads_split(s->core.k, k, G * D, 0, B, T, G, D)) ||
        (status = clora__heads_split(s->core.v, v, G * D, 0, B, T, G, D)))
        return status;
    /* the heads hold q, k and v now; backward needs the projections' inputs only */
    clora__node_drop_output(clora__child(node, "q_proj"));
    clora__node_drop_output(clora__child(node, "k_proj"));
    clora__node_drop_output(clora__child(node, "v_proj"));
    s->positions = node->model->batch_positions;
    if (!s->positions || s->positions->shape[0] != B || s->positions->shape[1] != T)
        return clora__fail(CLORA_ERR_STATE,
                           "llama attention \"%s\" runs inside a llama_model trunk, which sets "
                           "the positions",
                           node->name);
    if ((status = clora__rope(s->core.q, s->positions, s->inv_freq, 0)))
        return status;
    return clora__rope(s->core.k, s->positions, s->inv_freq, 0);
}

/* One generation step: the new tokens' keys and values, rotated, go into
 * the cache at each row's length; their queries attend over the cache. */
static clora_status attention_forward_cached(clora_node *node, const clora_buffer *x, size_t B,
                                             size_t T, const clora_buffer **y)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const clora__decode_step *step = node->model->decode;
    const size_t H = s->args.heads, G = s->args.kv_heads, D = s->args.head_dim;
    if (!s->cache_k || !s->cache_v || s->cache_k->shape[0] != B)
        return clora__fail(CLORA_ERR_STATE,
                           "llama attention \"%s\" has no key/value cache for %zu rows",
                           node->name, B);
    const clora_buffer *q = NULL, *k = NULL, *v = NULL;
    const size_t q_shape[4] = {B, H, T, D}, kv_shape[4] = {B, G, T, D}, m_shape[3] = {B, T, H * D};
    const clora_buffer *positions = node->model->batch_positions;
    clora_status status;
    if ((status = project_qkv(node, x, &q, &k, &v)) ||
        (status = clora__buffer_ensure(&s->core.q, x->device, CLORA_DTYPE_F32, 4, q_shape, NULL)) ||
        (status = clora__buffer_ensure(&s->new_kv, x->device, CLORA_DTYPE_F32, 4, kv_shape,
                                       NULL)) ||
        (status = clora__buffer_ensure(&s->merged, x->device, CLORA_DTYPE_F32, 3, m_shape,
                                       NULL)) ||
        (status = clora__heads_split(s->core.q, q, H * D, 0, B, T, H, D)) ||
        (status = clora__rope(s->core.q, positions, s->inv_freq, 0)) ||
        (status = clora__heads_split(s->new_kv, k, G * D, 0, B, T, G, D)) ||
        (status = clora__rope(s->new_kv, positions, s->inv_freq, 0)) ||
        (status = clora__cache_write(s->cache_k, s->new_kv, step->lengths, step->counts)) ||
        (status = clora__heads_split(s->new_kv, v, G * D, 0, B, T, G, D)) ||
        (status = clora__cache_write(s->cache_v, s->new_kv, step->lengths, step->counts)) ||
        (status = clora__cached_attention(s->merged, s->core.q, s->cache_k, s->cache_v,
                                          step->lengths)))
        return status;
    return clora__node_forward(clora__child(node, "o_proj"), s->merged, y);
}

void clora__llama_attach_cache(clora_node *attention, clora_buffer *keys, clora_buffer *values)
{
    attention_state *s = CLORA__STATE(attention_state, attention);
    s->cache_k = keys;
    s->cache_v = values;
}

void clora__llama_cache_dims(const clora_node *attention, size_t *kv_heads, size_t *head_dim)
{
    const attention_state *s = CLORA__STATE(attention_state, attention);
    *kv_heads = s->args.kv_heads;
    *head_dim = s->args.head_dim;
}

static clora_status attention_forward(clora_node *node, const clora_buffer *x,
                                      const clora_buffer **y)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const size_t C = s->args.features, H = s->args.heads, D = s->args.head_dim;
    size_t B = 0, T = 0;
    clora_status status = clora__batch_dims(node, x, C, &B, &T);
    if (status == CLORA_OK && node->model->decode)
        return attention_forward_cached(node, x, B, T, y);
    if (status == CLORA_OK)
        status = attention_heads(node, x, B, T);
    const size_t shape[3] = {B, T, H * D};
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->merged, x->device, CLORA_DTYPE_F32, 3, shape, NULL);
    const clora__attention_args core_args = {H * D, H, s->args.p};
    if (status == CLORA_OK)
        status = clora__attend(node, &core_args, &s->core, s->merged, 1);
    if (status == CLORA_OK)
        status = clora__node_forward(clora__child(node, "o_proj"), s->merged, y);
    return status;
}

static clora_status attention_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                       const clora_buffer **dx)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    const size_t H = s->args.heads, G = s->args.kv_heads, D = s->args.head_dim;
    const size_t B = node->input->shape[0], T = node->input->shape[1];
    const clora_buffer *d = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "o_proj"), dy, 1, &d)) ||
        (status = clora__attention_backward(&s->core, d)) ||
        (status = clora__rope(s->core.dq, s->positions, s->inv_freq, 1)) ||
        (status = clora__rope(s->core.dk, s->positions, s->inv_freq, 1)))
        return status;
    const size_t q_shape[3] = {B, T, H * D}, kv_shape[3] = {B, T, G * D};
    if ((status = clora__buffer_ensure(&s->d_q, dy->device, CLORA_DTYPE_F32, 3, q_shape, NULL)) ||
        (status = clora__buffer_ensure(&s->d_k, dy->device, CLORA_DTYPE_F32, 3, kv_shape, NULL)) ||
        (status = clora__buffer_ensure(&s->d_v, dy->device, CLORA_DTYPE_F32, 3, kv_shape, NULL)) ||
        (status = clora__heads_merge(s->d_q, s->core.dq, H * D, 0, B, T, H, D)) ||
        (status = clora__heads_merge(s->d_k, s->core.dk, G * D, 0, B, T, G, D)) ||
        (status = clora__heads_merge(s->d_v, s->core.dv, G * D, 0, B, T, G, D)))
        return status;
    const clora_buffer *dq = NULL, *dk = NULL, *dv = NULL;
    if ((status = clora__node_backward(clora__child(node, "q_proj"), s->d_q, need_dx, &dq)) ||
        (status = clora__node_backward(clora__child(node, "k_proj"), s->d_k, need_dx, &dk)) ||
        (status = clora__node_backward(clora__child(node, "v_proj"), s->d_v, need_dx, &dv)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__buffer_ensure_like(&node->d_input, dq)) ||
        (status = clora__add(node->d_input, dq, dk)) ||
        (status = clora__add(node->d_input, node->d_input, dv)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

static const clora__part attention_parts[] = {
    {"q_proj", NULL}, {"k_proj", NULL}, {"v_proj", NULL}, {"o_proj", NULL}, {NULL, NULL}};

static clora_status attention_validate(const clora_node *node)
{
    const attention_state *s = CLORA__STATE(attention_state, node);
    const size_t C = s->args.features, D = s->args.head_dim;
    clora_status status = clora__check_parts(node, attention_parts);
    if (status == CLORA_OK)
        status = clora__check_projection(node, clora__child(node, "q_proj"), C, s->args.heads * D);
    if (status == CLORA_OK)
        status =
            clora__check_projection(node, clora__child(node, "k_proj"), C, s->args.kv_heads * D);
    if (status == CLORA_OK)
        status =
            clora__check_projection(node, clora__child(node, "v_proj"), C, s->args.kv_heads * D);
    size_t in = 0, out = 0;
    clora__linear_dims_of(clora__child(node, "o_proj"), &in, &out, NULL);
    if (status == CLORA_OK && (in != s->args.heads * D || out != C))
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                             "llama_attention \"%s\" has a %zu -> %zu o_proj; it needs %zu -> %zu",
                             node->name, in, out, s->args.heads * D, C);
    return status;
}

static int attention_save(const clora_node *node, json_t *j)
{
    const llama_attention_args *a = &CLORA__STATE(attention_state, node)->args;
    int failed = json_object_set_new(j, "features", json_integer((json_int_t)a->features)) ||
                 json_object_set_new(j, "heads", json_integer((json_int_t)a->heads)) ||
                 json_object_set_new(j, "kv_heads", json_integer((json_int_t)a->kv_heads)) ||
                 json_object_set_new(j, "head_dim", json_integer((json_int_t)a->head_dim)) ||
                 json_object_set_new(j, "p", json_real(a->p)) ||
                 json_object_set_new(j, "rope_theta", json_real(a->rope.theta));
    if (!failed && a->rope.freq_factors) {
        json_t *f = json_array();
        failed = !f;
        for (size_t i = 0; !failed && i < a->head_dim / 2; ++i)
            failed = json_array_append_new(f, json_real(a->rope.freq_factors[i]));
        failed = failed || json_object_set_new(j, "rope_freq_factors", f);
    }
    if (!failed && a->rope.scaling == CLORA__ROPE_LLAMA3) {
        json_t *r = json_object();
        failed = !r || json_object_set_new(r, "rope_type", json_string("llama3")) ||
                 json_object_set_new(r, "factor", json_real(a->rope.factor)) ||
                 json_object_set_new(r, "low_freq_factor", json_real(a->rope.low_freq_factor)) ||
                 json_object_set_new(r, "high_freq_factor", json_real(a->rope.high_freq_factor)) ||
                 json_object_set_new(
                     r, "original_max_position_embeddings",
                     json_integer((json_int_t)a->rope.original_max_positions)) ||
                 json_object_set_new(j, "rope_scaling", r);
    }
    return failed;
}

/* rope_scaling of a config (Hugging Face's or a saved node's): null, a
 * "default" one, or "llama3"; any other kind is refused by name. */
static clora_status read_rope_scaling(json_t *scaling, const char *where, clora__rope_config *rope)
{
    rope->scaling = CLORA__ROPE_DEFAULT;
    if (!scaling || json_is_null(scaling))
        return CLORA_OK;
    json_t *type = json_object_get(scaling, "rope_type");
    if (!type)
        type = json_object_get(scaling, "type");
    const char *name = json_string_value(type);
    if (name && !strcmp(name, "default"))
        return CLORA_OK;
    if (!name || strcmp(name, "llama3") != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: rope_scaling of type \"%s\"; clora computes \"llama3\" and "
                           "unscaled rotary embeddings",
                           where, name ? name : "(missing)");
    json_t *factor = json_object_get(scaling, "factor");
    json_t *low = json_object_get(scaling, "low_freq_factor");
    json_t *high = json_object_get(scaling, "high_freq_factor");
    size_t original = 0;
    if (!json_is_number(factor) || !json_is_number(low) || !json_is_number(high) ||
        !clora__json_get_size(scaling, "original_max_position_embeddings", &original))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: llama3 rope_scaling needs factor, low_freq_factor, "
                           "high_freq_factor and original_max_position_embeddings",
                           where);
    rope->scaling = CLORA__ROPE_LLAMA3;
    rope->factor = json_number_value(factor);
    rope->low_freq_factor = json_number_value(low);
    rope->high_freq_factor = json_number_value(high);
    rope->original_max_positions = original;
    return CLORA_OK;
}

static clora_status attention_load(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out)
{
    llama_attention_args a;
    memset(&a, 0, sizeof a);
    json_t *p = json_object_get(j, "p"), *theta = json_object_get(j, "rope_theta");
    if (!clora__json_get_size(j, "features", &a.features) ||
        !clora__json_get_size(j, "heads", &a.heads) ||
        !clora__json_get_size(j, "kv_heads", &a.kv_heads) ||
        !clora__json_get_size(j, "head_dim", &a.head_dim) || !json_is_number(p) ||
        !json_is_number(theta))
        return clora__fail(CLORA_ERR_FORMAT,
                           "%s: %s \"%s\" needs features, heads, kv_heads, head_dim, p and "
                           "rope_theta",
                           where, kind->name, name);
    a.p = (float)json_number_value(p);
    a.rope.theta = (float)json_number_value(theta);
    clora_status status = read_rope_scaling(json_object_get(j, "rope_scaling"), where, &a.rope);
    json_t *factors = json_object_get(j, "rope_freq_factors");
    float stored[512];
    if (status == CLORA_OK && factors) {
        if (!json_is_array(factors) || json_array_size(factors) != a.head_dim / 2 ||
            a.head_dim / 2 > sizeof stored / sizeof stored[0])
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: %s \"%s\": rope_freq_factors must be head_dim / 2 numbers",
                               where, kind->name, name);
        for (size_t i = 0; i < a.head_dim / 2; ++i)
            stored[i] = (float)json_number_value(json_array_get(factors, i));
        a.rope.freq_factors = stored;
    }
    if (status == CLORA_OK)
        status = clora__add_node("clora__add_composite", parent, name, kind, &a, out);
    return status;
}

static void attention_release(clora_node *node)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    clora__attention_release(&s->core);
    clora_buffer_destroy(s->merged);
    clora_buffer_destroy(s->d_q);
    clora_buffer_destroy(s->d_k);
    clora_buffer_destroy(s->d_v);
    clora_buffer_destroy(s->new_kv);
    s->merged = s->d_q = s->d_k = s->d_v = s->new_kv = NULL;
    s->positions = NULL;
}

static void attention_release_grads(clora_node *node)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    clora__attention_release_grads(&s->core);
    clora__buffer_recycle(&s->d_q);
    clora__buffer_recycle(&s->d_k);
    clora__buffer_recycle(&s->d_v);
}

static void attention_finalize(clora_node *node)
{
    attention_state *s = CLORA__STATE(attention_state, node);
    clora_buffer_destroy(s->inv_freq);
    s->inv_freq = NULL;
    free(s->freq_factors);
    s->freq_factors = NULL;
}

const clora__node_kind clora__llama_attention_kind = {
    .id = CLORA_NODE_LLAMA_ATTENTION,
    .name = "llama_attention",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(attention_state),
    .setup = attention_setup,
    .forward = attention_forward,
    .backward = attention_backward,
    .validate = attention_validate,
    .save = attention_save,
    .load = attention_load,
    .release = attention_release,
    .release_grads = attention_release_grads,
    .finalize = attention_finalize,
};

/* ---- MLP: down_proj(silu(gate_proj(x)) * up_proj(x)) ------------------------------------ */

typedef struct mlp_state {
    const clora_buffer *g, *u; /* (B, T, I): gate_proj's and up_proj's outputs (borrowed) */
    clora_buffer *h;           /* (B, T, I): down_proj's input */
    clora_buffer *dg, *du;     /* (B, T, I) */
} mlp_state;

static clora_status mlp_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    mlp_state *s = CLORA__STATE(mlp_state, node);
    clora_status status;
    if ((status = clora__node_forward(clora__child(node, "gate_proj"), x, &s->g)) ||
        (status = clora__node_forward(clora__child(node, "up_proj"), x, &s->u)) ||
        (status = clora__buffer_ensure_like(&s->h, s->g)) ||
        (status = clora__swiglu_forward(s->h, s->g, s->u)))
        return status;
    return clora__node_forward(clora__child(node, "down_proj"), s->h, y);
}

static clora_status mlp_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                 const clora_buffer **dx)
{
    mlp_state *s = CLORA__STATE(mlp_state, node);
    const clora_buffer *dh = NULL, *dxg = NULL, *dxu = NULL;
    clora_status status;
    if ((status = clora__node_backward(clora__child(node, "down_proj"), dy, 1, &dh)) ||
        (status = clora__buffer_ensure_like(&s->dg, s->g)) ||
        (status = clora__buffer_ensure_like(&s->du, s->u)) ||
        (status = clora__swiglu_backward(s->dg, s->du, dh, s->g, s->u)) ||
        (status = clora__node_backward(clora__child(node, "gate_proj"), s->dg, need_dx, &dxg)) ||
        (status = clora__node_backward(clora__child(node, "up_proj"), s->du, need_dx, &dxu)))
        return status;
    if (!need_dx)
        return CLORA_OK;
    if ((status = clora__buffer_ensure_like(&node->d_input, dxg)) ||
        (status = clora__add(node->d_input, dxg, dxu)))
        return status;
    *dx = node->d_input;
    return CLORA_OK;
}

static const clora__part mlp_parts[] = {
    {"gate_proj", NULL}, {"up_proj", NULL}, {"down_proj", NULL}, {NULL, NULL}};

static clora_status mlp_validate(const clora_node *node)
{
    clora_status status = clora__check_parts(node, mlp_parts);
    size_t gin = 0, gout = 0, uin = 0, uout = 0, din = 0, dout = 0;
    clora__linear_dims_of(clora__child(node, "gate_proj"), &gin, &gout, NULL);
    clora__linear_dims_of(clora__child(node, "up_proj"), &uin, &uout, NULL);
    clora__linear_dims_of(clora__child(node, "down_proj"), &din, &dout, NULL);
    if (status == CLORA_OK && (gin != uin || gout != uout || din != gout || dout != gin))
        status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                             "llama_mlp \"%s\": gate_proj %zu -> %zu, up_proj %zu -> %zu and "
                             "down_proj %zu -> %zu do not fit together",
                             node->name, gin, gout, uin, uout, din, dout);
    return status;
}

static void mlp_release_grads(clora_node *node)
{
    mlp_state *s = CLORA__STATE(mlp_state, node);
    clora__buffer_recycle(&s->dg);
    clora__buffer_recycle(&s->du);
}

static void mlp_release(clora_node *node)
{
    mlp_state *s = CLORA__STATE(mlp_state, node);
    clora_buffer_destroy(s->h);
    clora_buffer_destroy(s->dg);
    clora_buffer_destroy(s->du);
    s->h = s->dg = s->du = NULL;
    s->g = s->u = NULL;
}

const clora__node_kind clora__llama_mlp_kind = {
    .id = CLORA_NODE_LLAMA_MLP,
    .name = "llama_mlp",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(mlp_state),
    .forward = mlp_forward,
    .backward = mlp_backward,
    .validate = mlp_validate,
    .load = clora__load_composite,
    .release = mlp_release,
    .release_grads = mlp_release_grads,
};

/* ---- layers: h = x + self_attn(input_layernorm(x)); y = h + mlp(post_attention_layernorm(h)) */

static const clora__part layer_parts[] = {{"input_layernorm", &clora__rms_norm_kind},
                                          {"self_attn", &clora__llama_attention_kind},
                                          {"post_attention_layernorm", &clora__rms_norm_kind},
                                          {"mlp", &clora__llama_mlp_kind},
                                          {NULL, NULL}};

static clora_status layer_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y)
{
    return clora__residual_block_forward(node, layer_parts,
                                         CLORA__STATE(clora__residual_block, node), x, y);
}

static clora_status layer_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                   const clora_buffer **dx)
{
    return clora__residual_block_backward(node, layer_parts,
                                          CLORA__STATE(clora__residual_block, node), dy, need_dx,
                                          dx);
}

static clora_status layer_validate(const clora_node *node)
{
    return clora__check_parts(node, layer_parts);
}

static void layer_release(clora_node *node)
{
    clora__residual_block_release(CLORA__STATE(clora__residual_block, node));
}

const clora__node_kind clora__llama_layer_kind = {
    .id = CLORA_NODE_LLAMA_LAYER,
    .name = "llama_layer",
    .flags = CLORA__KIND_COMPOSITE | CLORA__KIND_CHECKPOINT,
    .state_size = sizeof(clora__residual_block),
    .forward = layer_forward,
    .backward = layer_backward,
    .validate = layer_validate,
    .load = clora__load_composite,
    .release = layer_release,
    .release_grads = clora__residual_block_release_grads,
};

/* ---- the trunk: embed_tokens -> layers -> norm ------------------------------------------- */

typedef struct trunk_state {
    clora_buffer *positions; /* int32 (B, T): 0..T-1, when the caller set none */
} trunk_state;

static clora_status trunk_forward(clora_node *node, const clora_buffer *ids,
                                  const clora_buffer **y)
{
    trunk_state *s = CLORA__STATE(trunk_state, node);
    clora_model *model = node->model;
    const clora_buffer *h = NULL;
    clora_status status = clora__check_ids(node, ids, (size_t)1 << 31);
    if (status != CLORA_OK)
        return status;
    const clora_buffer *positions = model->positions;
    if (positions && (positions->shape[0] != ids->shape[0] || positions->shape[1] != ids->shape[1]))
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "the positions are (%zu, %zu); the batch is (%zu, %zu) tokens",
                           positions->shape[0], positions->shape[1], ids->shape[0],
                           ids->shape[1]);
    if (!positions) {
        if ((status = clora__position_ids(&s->positions, ids)))
            return status;
        positions = s->positions;
    }
    model->batch_positions = positions;
    if ((status = clora__node_forward(clora__child(node, "embed_tokens"), ids, &h)) ||
        (status = clora__node_forward(clora__child(node, "layers"), h, &h)))
        return status;
    return clora__node_forward(clora__child(node, "norm"), h, y);
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
    if ((status = clora__node_backward(clora__child(node, "norm"), dy, 1, &d)) ||
        (status = clora__node_backward(clora__child(node, "layers"), d, 1, &d)))
        return status;
    return clora__node_backward(clora__child(node, "embed_tokens"), d, 0, &unused);
}

static const clora__part trunk_parts[] = {{"embed_tokens", &clora__embedding_kind},
                                          {"layers", &clora__sequential_kind},
                                          {"norm", &clora__rms_norm_kind},
                                          {NULL, NULL}};

static clora_status trunk_validate(const clora_node *node)
{
    return clora__check_parts(node, trunk_parts);
}

static void trunk_release(clora_node *node)
{
    trunk_state *s = CLORA__STATE(trunk_state, node);
    clora_buffer_destroy(s->positions);
    s->positions = NULL;
    if (node->model->batch_positions && !node->model->positions)
        node->model->batch_positions = NULL;
}

const clora__node_kind clora__llama_model_kind = {
    .id = CLORA_NODE_LLAMA_MODEL,
    .name = "llama_model",
    .flags = CLORA__KIND_COMPOSITE,
    .state_size = sizeof(trunk_state),
    .forward = trunk_forward,
    .backward = trunk_backward,
    .validate = trunk_validate,
    .load = clora__load_composite,
    .release = trunk_release,
};

/* ---- building ---------------------------------------------------------------------------- */

clora_llama_config clora_llama_config_default(void)
{
    clora_llama_config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 49152;
    c.hidden_size = 576;
    c.intermediate_size = 1536;
    c.num_hidden_layers = 30;
    c.num_attention_heads = 9;
    c.num_key_value_heads = 3;
    c.head_dim = 64;
    c.rms_norm_eps = 1e-5f;
    c.rope_theta = 100000.0f;
    c.tie_word_embeddings = 1;
    c.initializer_range = 0.041666666666666664f;
    return c;
}

/* A Linear (out, in) with an optional bias, weights ~ N(0, std^2). */
static clora_status projection(clora_node *parent, const char *name, size_t in, size_t out,
                               int bias, float std)
{
    clora_node *n = NULL;
    clora_status status = clora_node_add_linear(parent, name, in, out, bias, &n);
    if (status == CLORA_OK)
        status = clora__param_reinit(n, "weight", CLORA__INIT_NORMAL, std);
    if (status == CLORA_OK && bias)
        status = clora__param_reinit(n, "bias", CLORA__INIT_ZERO, 0.0f);
    return status;
}

static size_t kv_heads_of(const clora_llama_config *c)
{
    return c->num_key_value_heads ? c->num_key_value_heads : c->num_attention_heads;
}

static size_t head_dim_of(const clora_llama_config *c)
{
    return c->head_dim ? c->head_dim : c->hidden_size / c->num_attention_heads;
}

static clora_status build_layer(clora_node *layers, size_t index, const clora_llama_config *c)
{
    const size_t C = c->hidden_size, H = c->num_attention_heads, G = kv_heads_of(c);
    const size_t D = head_dim_of(c), I = c->intermediate_size;
    const float std = c->initializer_range, eps = c->rms_norm_eps;
    llama_attention_args a;
    memset(&a, 0, sizeof a);
    a.features = C;
    a.heads = H;
    a.kv_heads = G;
    a.head_dim = D;
    a.p = c->attention_dropout;
    a.rope.theta = c->rope_theta;
    a.rope.freq_factors = c->rope_freq_factors;
    if (c->rope_scaling == CLORA_ROPE_SCALING_LLAMA3) {
        a.rope.scaling = CLORA__ROPE_LLAMA3;
        a.rope.factor = c->rope_factor;
        a.rope.low_freq_factor = c->rope_low_freq_factor;
        a.rope.high_freq_factor = c->rope_high_freq_factor;
        a.rope.original_max_positions = c->rope_original_max_position_embeddings;
    }
    char name[24];
    snprintf(name, sizeof name, "%zu", index);
    clora_node *layer = NULL, *attn = NULL, *mlp = NULL;
    clora_status status;
    if ((status = clora__add_composite(layers, name, &clora__llama_layer_kind, &layer)) ||
        (status = clora_node_add_rms_norm(layer, "input_layernorm", C, eps, NULL)) ||
        (status = clora__add_node("clora_model_create_llama", layer, "self_attn",
                                  &clora__llama_attention_kind, &a, &attn)) ||
        (status = projection(attn, "q_proj", C, H * D, c->qkv_bias, std)) ||
        (status = projection(attn, "k_proj", C, G * D, c->qkv_bias, std)) ||
        (status = projection(attn, "v_proj", C, G * D, c->qkv_bias, std)) ||
        (status = projection(attn, "o_proj", H * D, C, c->o_bias, std)) ||
        (status = clora_node_add_rms_norm(layer, "post_attention_layernorm", C, eps, NULL)) ||
        (status = clora__add_composite(layer, "mlp", &clora__llama_mlp_kind, &mlp)) ||
        (status = projection(mlp, "gate_proj", C, I, c->mlp_bias, std)) ||
        (status = projection(mlp, "up_proj", C, I, c->mlp_bias, std)))
        return status;
    return projection(mlp, "down_proj", I, C, c->mlp_bias, std);
}

static clora_status build(clora_model *model, const void *config)
{
    const clora_llama_config *c = config;
    clora_node *trunk = NULL, *embed = NULL, *layers = NULL;
    clora_status status =
        clora__add_composite(model->root, "model", &clora__llama_model_kind, &trunk);
    if (status == CLORA_OK)
        status = clora__hf_embedding(trunk, "embed_tokens", c->vocab_size, c->hidden_size,
                                     c->initializer_range, &embed);
    if (status == CLORA_OK)
        status = clora_node_add_sequential(trunk, "layers", &layers);
    for (size_t i = 0; i < c->num_hidden_layers && status == CLORA_OK; ++i)
        status = build_layer(layers, i, c);
    if (status == CLORA_OK)
        status = clora_node_add_rms_norm(trunk, "norm", c->hidden_size, c->rms_norm_eps, NULL);
    if (status != CLORA_OK)
        return status;
    if (c->tie_word_embeddings)
        return clora__add_tied_linear(model->root, "lm_head", embed, NULL);
    return projection(model->root, "lm_head", c->hidden_size, c->vocab_size, 0,
                      c->initializer_range);
}

clora_status clora__llama_config_check(const clora_llama_config *c)
{
    const size_t sizes[5] = {c->vocab_size, c->hidden_size, c->intermediate_size,
                             c->num_hidden_layers, c->num_attention_heads};
    static const char *const names[5] = {"vocab_size", "hidden_size", "intermediate_size",
                                         "num_hidden_layers", "num_attention_heads"};
    clora_status status = clora__check_sizes("Llama", sizes, names, 5);
    if (status != CLORA_OK)
        return status;
    const size_t H = c->num_attention_heads, G = kv_heads_of(c);
    if (!c->head_dim && c->hidden_size % H != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "Llama: hidden_size %zu does not split into %zu heads (set head_dim)",
                           c->hidden_size, H);
    if (G > H || H % G != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "Llama: num_key_value_heads %zu must divide num_attention_heads %zu", G,
                           H);
    if (head_dim_of(c) % 2 != 0 || head_dim_of(c) > 1024)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "Llama: head_dim %zu must be even and at most 1024", head_dim_of(c));
    const float drops[1] = {c->attention_dropout};
    return clora__check_common("Llama", H * head_dim_of(c), H, CLORA_NODE_SILU, c->rms_norm_eps,
                               drops, 1, c->initializer_range);
}

/* One parameter of the plan: its name from parts, and its shape. */
static int plan_param(clora__param_visitor visit, void *user, const char *prefix,
                      const char *name, size_t rows, size_t cols)
{
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const size_t shape[2] = {rows, cols};
    return visit(full, cols ? 2 : 1, shape, user);
}

/* A projection's weight (out, in) and, with a bias, its bias (out). */
static int plan_projection(clora__param_visitor visit, void *user, const char *prefix,
                           const char *name, size_t in, size_t out, int bias)
{
    char w[96], b[96];
    snprintf(w, sizeof w, "%s.weight", name);
    snprintf(b, sizeof b, "%s.bias", name);
    return plan_param(visit, user, prefix, w, out, in) &&
           (!bias || plan_param(visit, user, prefix, b, out, 0));
}

void clora__llama_params(const clora_llama_config *c, clora__param_visitor visit, void *user)
{
    const size_t C = c->hidden_size, H = c->num_attention_heads, G = kv_heads_of(c);
    const size_t D = head_dim_of(c), I = c->intermediate_size, V = c->vocab_size;
    if (!plan_param(visit, user, "", "model.embed_tokens.weight", V, C))
        return;
    for (size_t i = 0; i < c->num_hidden_layers; ++i) {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "model.layers.%zu.", i);
        if (!plan_param(visit, user, prefix, "input_layernorm.weight", C, 0) ||
            !plan_projection(visit, user, prefix, "self_attn.q_proj", C, H * D, c->qkv_bias) ||
            !plan_projection(visit, user, prefix, "self_attn.k_proj", C, G * D, c->qkv_bias) ||
            !plan_projection(visit, user, prefix, "self_attn.v_proj", C, G * D, c->qkv_bias) ||
            !plan_projection(visit, user, prefix, "self_attn.o_proj", H * D, C, c->o_bias) ||
            !plan_param(visit, user, prefix, "post_attention_layernorm.weight", C, 0) ||
            !plan_projection(visit, user, prefix, "mlp.gate_proj", C, I, c->mlp_bias) ||
            !plan_projection(visit, user, prefix, "mlp.up_proj", C, I, c->mlp_bias) ||
            !plan_projection(visit, user, prefix, "mlp.down_proj", I, C, c->mlp_bias))
            return;
    }
    if (plan_param(visit, user, "", "model.norm.weight", C, 0) && !c->tie_word_embeddings)
        plan_param(visit, user, "", "lm_head.weight", V, C);
}

clora_status clora__llama_create(clora_model **out, clora_device *device,
                                 const clora_llama_config *c, uint64_t seed, int skip_init)
{
    if (!out || !device || !c)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_create_llama: NULL argument");
    *out = NULL;
    clora_status status = clora__llama_config_check(c);
    if (status != CLORA_OK)
        return status;
    return clora__create_with(out, device, seed, skip_init, build, c);
}

clora_status clora_model_create_llama(clora_model **out, clora_device *device,
                                      const clora_llama_config *config, uint64_t seed)
{
    return clora__llama_create(out, device, config, seed, 0);
}

/* ---- Hugging Face folders ------------------------------------------------------------------ */

/* A boolean field, `fallback` when absent or null. */
static int json_flag(clora__json_fields *r, const char *key, int fallback)
{
    json_t *v = json_object_get(r->json, key);
    if (!v || json_is_null(v))
        return fallback;
    if (!json_is_boolean(v)) {
        if (r->status == CLORA_OK)
            r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be true or false",
                                    r->path, key);
        return fallback;
    }
    return json_is_true(v);
}

/* The fields LlamaConfig, Qwen2Config and MistralConfig share. */
static clora_llama_config read_config(clora__json_fields *r, const char *what)
{
    clora_llama_config c = clora_llama_config_default();
    c.vocab_size = clora__json_count(r, "vocab_size", 32000);
    c.hidden_size = clora__json_count(r, "hidden_size", 4096);
    c.intermediate_size = clora__json_count(r, "intermediate_size", 11008);
    c.num_hidden_layers = clora__json_count(r, "num_hidden_layers", 32);
    c.num_attention_heads = clora__json_count(r, "num_attention_heads", 32);
    c.num_key_value_heads = clora__json_count(r, "num_key_value_heads", c.num_attention_heads);
    const size_t heads = c.num_attention_heads ? c.num_attention_heads : 1; /* 0 after a failure */
    c.head_dim = clora__json_count(r, "head_dim", c.hidden_size / heads);
    c.rms_norm_eps = clora__json_float(r, "rms_norm_eps", 1e-6f);
    c.rope_theta = clora__json_float(r, "rope_theta", 10000.0f);
    c.attention_dropout = clora__json_float(r, "attention_dropout", 0.0f);
    c.initializer_range = clora__json_float(r, "initializer_range", 0.02f);
    c.tie_word_embeddings = json_flag(r, "tie_word_embeddings", 0);
    c.qkv_bias = c.o_bias = json_flag(r, "attention_bias", 0);
    c.mlp_bias = json_flag(r, "mlp_bias", 0);
    json_t *act = json_object_get(r->json, "hidden_act");
    if (r->status == CLORA_OK && act && (!json_is_string(act) ||
                                         strcmp(json_string_value(act), "silu") != 0))
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: hidden_act \"%s\"; %s models here use \"silu\"", r->path,
                                json_is_string(act) ? json_string_value(act) : "?", what);
    clora__rope_config rope;
    memset(&rope, 0, sizeof rope);
    if (r->status == CLORA_OK)
        r->status = read_rope_scaling(json_object_get(r->json, "rope_scaling"), r->path, &rope);
    if (rope.scaling == CLORA__ROPE_LLAMA3) {
        c.rope_scaling = CLORA_ROPE_SCALING_LLAMA3;
        c.rope_factor = (float)rope.factor;
        c.rope_low_freq_factor = (float)rope.low_freq_factor;
        c.rope_high_freq_factor = (float)rope.high_freq_factor;
        c.rope_original_max_position_embeddings = rope.original_max_positions;
    }
    return c;
}

static clora_status build_checked(clora_model **out, clora_device *device, clora__json_fields *r,
                                  size_t num_labels, uint64_t seed, const clora_llama_config *c,
                                  const char *what)
{
    (void)seed;
    if (r->status == CLORA_OK && num_labels > 0)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: %s models here are language models; num_labels must be 0",
                                r->path, what);
    if (r->status != CLORA_OK)
        return r->status;
    clora_status status = clora__llama_create(out, device, c, seed, 1);
    if (status == CLORA_OK)
        clora__hf_padding(*out, r, "model.embed_tokens", -1);
    return status;
}

static clora_status build_llama(clora_model **out, clora_device *device, clora__json_fields *r,
                                size_t num_labels, uint64_t seed)
{
    clora_llama_config c = read_config(r, "Llama");
    return build_checked(out, device, r, num_labels, seed, &c, "Llama");
}

/* Qwen2: q, k and v have biases, o_proj none; sliding windows are refused. */
static clora_status build_qwen2(clora_model **out, clora_device *device, clora__json_fields *r,
                                size_t num_labels, uint64_t seed)
{
    clora_llama_config c = read_config(r, "Qwen2");
    c.qkv_bias = 1;
    c.o_bias = 0;
    c.mlp_bias = 0;
    if (r->status == CLORA_OK && json_flag(r, "use_sliding_window", 0))
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: use_sliding_window is true; clora's attention sees every "
                                "earlier token (no sliding window)",
                                r->path);
    return build_checked(out, device, r, num_labels, seed, &c, "Qwen2");
}

/* Mistral: Llama's tree without biases, loaded only without a sliding window. */
static clora_status build_mistral(clora_model **out, clora_device *device, clora__json_fields *r,
                                  size_t num_labels, uint64_t seed)
{
    clora_llama_config c = read_config(r, "Mistral");
    c.qkv_bias = c.o_bias = c.mlp_bias = 0;
    json_t *window = json_object_get(r->json, "sliding_window");
    if (r->status == CLORA_OK && window && !json_is_null(window))
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: sliding_window is set; clora's attention sees every earlier "
                                "token (no sliding window)",
                                r->path);
    return build_checked(out, device, r, num_labels, seed, &c, "Mistral");
}

/* "model.x" is "model.x" (LlamaForCausalLM) or "x" (LlamaModel). */
static int candidate(const clora_model *model, const char *param, size_t index, char *out,
                     size_t size)
{
    (void)model;
    if (index == 0)
        return snprintf(out, size, "%s", param) < (int)size;
    return index == 1 && clora__starts_with(param, "model.") &&
           snprintf(out, size, "%s", param + strlen("model.")) < (int)size;
}

/* Older checkpoints carry the rotary frequencies; a tied lm_head may be
 * saved beside the embedding it shares. */
static int ignorable(const clora_model *model, const char *tensor)
{
    clora_node *lm_head = clora__child(model->root, "lm_head");
    return clora__ends_with(tensor, ".rotary_emb.inv_freq") ||
           (lm_head && lm_head->tied && !strcmp(tensor, "lm_head.weight"));
}

const clora__hf_architecture clora__llama_hf = {
    .model_type = "llama",
    .build = build_llama,
    .names = {.candidate = candidate, .ignorable = ignorable},
};

const clora__hf_architecture clora__qwen2_hf = {
    .model_type = "qwen2",
    .build = build_qwen2,
    .names = {.candidate = candidate, .ignorable = ignorable},
};

const clora__hf_architecture clora__mistral_hf = {
    .model_type = "mistral",
    .build = build_mistral,
    .names = {.candidate = candidate, .ignorable = ignorable},
};
