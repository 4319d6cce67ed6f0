/* hf.c — Hugging Face model folders: config.json read into a GPT-2 or BERT
 * config, the model built with its Hugging Face module names, and
 * model.safetensors read into it by those names. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* ---- config.json ----------------------------------------------------------------------- */

typedef struct reader {
    json_t *json;
    const char *path;
    clora_status status;
} reader;

/* A positive integer field; `fallback` (0: required) when absent. */
static size_t get_count(reader *r, const char *key, size_t fallback)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK)
        return 0;
    if ((!v || json_is_null(v)) && fallback)
        return fallback;
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be a positive integer", r->path,
                                key);
        return 0;
    }
    return (size_t)json_integer_value(v);
}

static float get_float(reader *r, const char *key, float fallback)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK || !v || json_is_null(v))
        return fallback;
    if (!json_is_number(v)) {
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be a number", r->path, key);
        return fallback;
    }
    return (float)json_number_value(v);
}

/* Refuses a boolean option clora does not implement unless it has the
 * value clora computes with. */
static void require_bool(reader *r, const char *key, int supported)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK || !v || json_is_null(v))
        return;
    if (!json_is_boolean(v))
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be true or false", r->path, key);
    else if (json_is_true(v) != supported)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED, "%s: clora supports only \"%s\": %s",
                                r->path, key, supported ? "true" : "false");
}

static clora_node_kind get_activation(reader *r, const char *key, const char *fallback)
{
    json_t *v = json_object_get(r->json, key);
    const char *name = v ? json_string_value(v) : fallback;
    static const struct {
        const char *name;
        clora_node_kind kind;
    } known[] = {{"gelu", CLORA_NODE_GELU},           {"gelu_new", CLORA_NODE_GELU_TANH},
                 {"gelu_pytorch_tanh", CLORA_NODE_GELU_TANH}, {"relu", CLORA_NODE_RELU},
                 {"silu", CLORA_NODE_SILU},           {"swish", CLORA_NODE_SILU},
                 {"tanh", CLORA_NODE_TANH}};
    if (r->status != CLORA_OK)
        return CLORA_NODE_GELU;
    for (size_t i = 0; name && i < sizeof known / sizeof known[0]; ++i)
        if (!strcmp(name, known[i].name))
            return known[i].kind;
    r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                            "%s: \"%s\" is %s; clora knows gelu, gelu_new, gelu_pytorch_tanh, "
                            "relu, silu, swish and tanh",
                            r->path, key, name ? name : "not a string");
    return CLORA_NODE_GELU;
}

static clora_gpt2_config read_gpt2(reader *r)
{
    clora_gpt2_config c = clora_gpt2_config_default();
    c.vocab_size = get_count(r, "vocab_size", c.vocab_size);
    c.n_positions = get_count(r, "n_positions", c.n_positions);
    c.n_embd = get_count(r, "n_embd", c.n_embd);
    c.n_layer = get_count(r, "n_layer", c.n_layer);
    c.n_head = get_count(r, "n_head", c.n_head);
    c.n_inner = get_count(r, "n_inner", 4 * c.n_embd);
    c.activation = get_activation(r, "activation_function", "gelu_new");
    c.layer_norm_epsilon = get_float(r, "layer_norm_epsilon", c.layer_norm_epsilon);
    c.embd_pdrop = get_float(r, "embd_pdrop", c.embd_pdrop);
    c.attn_pdrop = get_float(r, "attn_pdrop", c.attn_pdrop);
    c.resid_pdrop = get_float(r, "resid_pdrop", c.resid_pdrop);
    c.initializer_range = get_float(r, "initializer_range", c.initializer_range);
    require_bool(r, "scale_attn_weights", 1);
    require_bool(r, "scale_attn_by_inverse_layer_idx", 0);
    require_bool(r, "add_cross_attention", 0);
    require_bool(r, "tie_word_embeddings", 1);
    return c;
}

static clora_bert_config read_bert(reader *r, size_t num_labels)
{
    clora_bert_config c = clora_bert_config_default();
    c.vocab_size = get_count(r, "vocab_size", c.vocab_size);
    c.hidden_size = get_count(r, "hidden_size", c.hidden_size);
    c.num_hidden_layers = get_count(r, "num_hidden_layers", c.num_hidden_layers);
    c.num_attention_heads = get_count(r, "num_attention_heads", c.num_attention_heads);
    c.intermediate_size = get_count(r, "intermediate_size", c.intermediate_size);
    c.max_position_embeddings = get_count(r, "max_position_embeddings", c.max_position_embeddings);
    c.type_vocab_size = get_count(r, "type_vocab_size", c.type_vocab_size);
    c.activation = get_activation(r, "hidden_act", "gelu");
    c.layer_norm_eps = get_float(r, "layer_norm_eps", c.layer_norm_eps);
    c.hidden_dropout_prob = get_float(r, "hidden_dropout_prob", c.hidden_dropout_prob);
    c.attention_probs_dropout_prob =
        get_float(r, "attention_probs_dropout_prob", c.attention_probs_dropout_prob);
    c.initializer_range = get_float(r, "initializer_range", c.initializer_range);
    c.num_labels = num_labels;
    require_bool(r, "is_decoder", 0);
    require_bool(r, "add_cross_attention", 0);
    const char *position = json_string_value(json_object_get(r->json, "position_embedding_type"));
    if (r->status == CLORA_OK && position && strcmp(position, "absolute") != 0)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: position_embedding_type \"%s\"; clora supports \"absolute\"",
                                r->path, position);
    return c;
}

/* ---- weight names ---------------------------------------------------------------------- */

typedef struct naming {
    int gpt2;
    int labels; /* the model has a classifier */
} naming;

static int starts_with(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* GPT-2: "transformer.x" is "transformer.x" (GPT2LMHeadModel) or "x"
 * (GPT2Model). BERT: "x" is "x" (BertModel) or "bert.x" (BertFor*). */
static int candidate(const char *param, size_t index, char *out, size_t size, void *user)
{
    const naming *n = user;
    if (index == 0)
        return snprintf(out, size, "%s", param) < (int)size;
    if (index > 1)
        return 0;
    if (n->gpt2)
        return starts_with(param, "transformer.") &&
               snprintf(out, size, "%s", param + strlen("transformer.")) < (int)size;
    return strcmp(param, "classifier.weight") && strcmp(param, "classifier.bias") &&
           snprintf(out, size, "bert.%s", param) < (int)size;
}

static int optional(const char *param, void *user)
{
    (void)user;
    return starts_with(param, "classifier.");
}

static int ignorable(const char *tensor, void *user)
{
    const naming *n = user;
    if (n->gpt2)
        return ends_with(tensor, ".attn.bias") || ends_with(tensor, ".attn.masked_bias") ||
               !strcmp(tensor, "lm_head.weight");
    return ends_with(tensor, "position_ids") || starts_with(tensor, "pooler.") ||
           starts_with(tensor, "bert.pooler.") || starts_with(tensor, "cls.") ||
           (!n->labels && starts_with(tensor, "classifier."));
}

/* ---- loading --------------------------------------------------------------------------- */

clora_status clora__model_from_hf(clora_model **out, clora_device *device, json_t *json,
                                  const char *config_path, const char *weights_path,
                                  size_t num_labels, uint64_t seed)
{
    clora_status status;
    reader r = {json, config_path, CLORA_OK};
    const char *type = json_string_value(json_object_get(json, "model_type"));
    clora_model *model = NULL;
    naming names = {0, num_labels > 0};
    if (type && !strcmp(type, "gpt2")) {
        names.gpt2 = 1;
        if (num_labels > 0)
            r.status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                   "%s: GPT-2 models here are language models; num_labels must "
                                   "be 0",
                                   config_path);
        clora_gpt2_config c = read_gpt2(&r);
        if ((status = r.status) == CLORA_OK)
            status = clora__create_gpt2(&model, device, &c, seed, 1);
    } else if (type && !strcmp(type, "bert")) {
        clora_bert_config c = read_bert(&r, num_labels);
        if ((status = r.status) == CLORA_OK)
            status = clora__create_bert(&model, device, &c, seed, 1);
        if (status == CLORA_OK && num_labels > 0) { /* a head the file may lack */
            clora_node *head = NULL;
            clora_model_find(model, "classifier", &head);
            status = clora__param_reinit(head, "weight", CLORA__INIT_NORMAL, c.initializer_range);
        }
    } else {
        status = clora__fail(CLORA_ERR_UNSUPPORTED,
                             "%s: model_type \"%s\"; clora loads \"gpt2\" and \"bert\"",
                             config_path, type ? type : "(missing)");
    }
    if (status == CLORA_OK) {
        const clora__weight_names rules = {candidate, optional, ignorable, &names};
        status = clora__load_weights(model, weights_path, &rules);
    }
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}

clora_status clora_model_load_hf(clora_model **out, clora_device *device, const char *dir,
                                 size_t num_labels, uint64_t seed)
{
    if (!out || !device || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_load_hf: NULL argument");
    *out = NULL;
    char config_path[4096], weights_path[4096];
    clora_status status;
    if ((status = clora__join_path(config_path, sizeof config_path, dir, "config.json")) ||
        (status = clora__join_path(weights_path, sizeof weights_path, dir, "model.safetensors")))
        return status;
    json_t *json = NULL;
    if ((status = clora__read_json(config_path, &json)))
        return status;
    status = clora__model_from_hf(out, device, json, config_path, weights_path, num_labels, seed);
    json_decref(json);
    return status;
}
