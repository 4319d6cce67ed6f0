/* kinds.c — the registry of node kinds: every kind clora has, for reading
 * a saved model's "kind" names and for clora_node_kind_name(). A new kind
 * is a file of its own (its clora__node_kind) and one entry here. */
#include <string.h>

#include "nn/nn.h"

static const clora__node_kind *const registry[] = {
    &clora__sequential_kind,
    &clora__linear_kind,
    &clora__lora_kind,
    &clora__relu_kind,
    &clora__gelu_kind,
    &clora__gelu_tanh_kind,
    &clora__silu_kind,
    &clora__tanh_kind,
    &clora__layer_norm_kind,
    &clora__embedding_kind,
    &clora__dropout_kind,
    &clora__gpt2_model_kind,
    &clora__gpt2_block_kind,
    &clora__gpt2_attention_kind,
    &clora__bert_embeddings_kind,
    &clora__bert_layer_kind,
    &clora__bert_self_attention_kind,
    &clora__mean_pool_kind,
    &clora__rms_norm_kind,
    &clora__llama_model_kind,
    &clora__llama_layer_kind,
    &clora__llama_attention_kind,
    &clora__llama_mlp_kind,
    &clora__last_token_pool_kind,
    &clora__bert_pooler_kind,
};

const clora__node_kind *clora__kind_named(const char *name)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; ++i)
        if (!strcmp(registry[i]->name, name))
            return registry[i];
    return NULL;
}

const char *clora_node_kind_name(clora_node_kind kind)
{
    for (size_t i = 0; i < sizeof registry / sizeof registry[0]; ++i)
        if (registry[i]->id == kind)
            return registry[i]->name;
    return "?";
}
