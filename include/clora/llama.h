/* clora/llama.h — Llama-family decoders (Llama 2 and 3.x, Qwen2.x, SmolLM2,
 * Mistral without a sliding window), built from hyper-parameters or loaded
 * from Hugging Face folders.
 *
 * Module paths are Hugging Face's (LlamaForCausalLM), so PEFT targets
 * select the same layers; input int32 ids (B, T), output logits (B, T, V):
 *
 *   model.embed_tokens,
 *   model.layers.<i>.input_layernorm,
 *   model.layers.<i>.self_attn.{q_proj, k_proj, v_proj, o_proj},
 *   model.layers.<i>.post_attention_layernorm,
 *   model.layers.<i>.mlp.{gate_proj, up_proj, down_proj},
 *   model.norm, lm_head (its weight is model.embed_tokens' when tied)
 *
 * Each layer: h = x + o_proj(attention(rope(q), rope(k), v)) of
 * input_layernorm(x), then y = h + down_proj(silu(gate_proj(n)) *
 * up_proj(n)) with n = post_attention_layernorm(h). The norms are RMSNorm;
 * rotary embeddings in Hugging Face's rotate-half layout at the positions
 * 0..T-1 (or those of clora_model_set_positions()); attention is causal,
 * honours the attention mask (clora_model_set_attention_mask()), and its
 * H query heads share H_kv key/value heads in groups of H / H_kv.
 */
#ifndef CLORA_LLAMA_H
#define CLORA_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "clora/buffer.h"
#include "clora/device.h"
#include "clora/model.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum clora_rope_scaling {
    CLORA_ROPE_SCALING_NONE = 0,
    CLORA_ROPE_SCALING_LLAMA3 = 1 /* rope_scaling {"rope_type": "llama3"} */
} clora_rope_scaling;

typedef struct clora_llama_config {
    size_t vocab_size;              /* V */
    size_t hidden_size;             /* C */
    size_t intermediate_size;       /* the MLP's width */
    size_t num_hidden_layers;
    size_t num_attention_heads;     /* H */
    size_t num_key_value_heads;     /* H_kv, divides H; 0: H */
    size_t head_dim;                /* D; 0: C / H */
    float rms_norm_eps;
    float rope_theta;
    clora_rope_scaling rope_scaling;
    float rope_factor, rope_low_freq_factor, rope_high_freq_factor; /* llama3 */
    size_t rope_original_max_position_embeddings;                 /* llama3 */
    int qkv_bias;                   /* q, k and v projections have biases (Qwen2) */
    int o_bias;                     /* o_proj has one (Llama's attention_bias sets both) */
    int mlp_bias;
    int tie_word_embeddings;        /* lm_head uses model.embed_tokens' weight */
    float attention_dropout;        /* on the attention probabilities, while training */
    float initializer_range;        /* std of the initial weights */
    /* (head_dim / 2) divisors of the rotary frequencies, as GGUF files of
     * Llama 3.1 and later carry them (rope_freqs); NULL: none. Borrowed:
     * read while the model is created. */
    const float *rope_freq_factors;
} clora_llama_config;

/* SmolLM2-135M's sizes: 49152, 576, 1536, 30 layers, 9 heads, 3 key/value
 * heads, head_dim 64, eps 1e-5, theta 100000, no scaling, no biases, tied,
 * no dropout, 0.041666. */
clora_llama_config clora_llama_config_default(void);

/* A new model, initialised as Hugging Face does: weights ~
 * N(0, initializer_range^2), biases 0, norms 1. */
clora_status clora_model_create_llama(clora_model **out, clora_device *device,
                                      const clora_llama_config *config, uint64_t seed);

/* Loads a GGUF file of architecture "llama" or "qwen2" (tensors F32, F16,
 * BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K or Q6_K; the 2-D weights stay packed
 * in their own types on the device, frozen: see clora_load_options in
 * clora/adapter.h to load them as float32 or another type) into
 * the tree above, with Hugging Face's names and row order, so that PEFT
 * adapters of the Hugging Face model apply unchanged. Every tensor must
 * be used and every parameter found, with its shape. Llama 3.1's rope
 * scaling comes from the file's rope_freqs tensor; other rope scalings are
 * refused by name.
 * clora_model_load() reads these files too. */
clora_status clora_model_load_gguf(clora_model **out, clora_device *device, const char *path);

/* Checks a GGUF file as clora_model_load_gguf() would, with no device and
 * without reading tensor data: the architecture, the hyper-parameters, and
 * every tensor against the model they describe (present, of its shape, of
 * a type clora reads, none left over). The loader runs the same checks
 * before it allocates anything; loading also refuses NaN and infinite
 * values, which only reading the data can find. */
clora_status clora_model_check_gguf(const char *path);

/* The rotary positions for the following forwards (borrowed: must stay
 * valid through backward): int32 (B, T) of the batch's shape. NULL: each
 * row's tokens are at 0..T-1. */
clora_status clora_model_set_positions(clora_model *model, const clora_buffer *positions);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_LLAMA_H */
