/* clora/transformer.h — GPT-2 and BERT models, built from hyper-parameters or
 * loaded from Hugging Face checkpoints.
 *
 * Module paths are Hugging Face's, so PEFT targets select the same layers:
 *
 *   GPT-2 (GPT2LMHeadModel), input int32 ids (B, T), output logits (B, T, V):
 *     transformer.wte, transformer.wpe, transformer.drop,
 *     transformer.h.<i>.ln_1, transformer.h.<i>.attn.c_attn, ....attn.c_proj,
 *     transformer.h.<i>.ln_2, transformer.h.<i>.mlp.c_fc, ....mlp.act, ....mlp.c_proj,
 *     transformer.ln_f, lm_head (its weight is transformer.wte's)
 *   c_attn, c_proj and c_fc store their weights (in, out) as Conv1D does.
 *
 *   BERT (BertModel, as sentence-transformers' MiniLM), input int32 ids (B, T):
 *     embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm,
 *     encoder.layer.<i>.attention.self.{query,key,value},
 *     encoder.layer.<i>.attention.output.{dense,LayerNorm},
 *     encoder.layer.<i>.intermediate.dense, encoder.layer.<i>.output.{dense,LayerNorm},
 *   then the head (clora_bert_head): "pool", the mean over the tokens the
 *   attention mask keeps, or "pooler" (pooler.dense, pooler.activation:
 *   tanh(dense(h[:, 0])), transformers' BertPooler on [CLS]), giving (B, C)
 *   embeddings, and with num_labels > 0 "classifier", a Linear to
 *   (B, num_labels) logits (after "dropout" with the pooler).
 *
 *   BertForSequenceClassification: the same modules under "bert." (as
 *   transformers names them, so PEFT's keys are clora's):
 *     bert.embeddings..., bert.encoder..., bert.pooler.dense, dropout, classifier
 *
 * Attention: causal for GPT-2, bidirectional for BERT; both honour the
 * attention mask set with clora_model_set_attention_mask() (int32 (B, T),
 * 1 for tokens to attend to, 0 for padding). BERT's token types come from
 * clora_model_set_token_types() (int32 (B, T)), 0 when none is set.
 */
#ifndef CLORA_TRANSFORMER_H
#define CLORA_TRANSFORMER_H

#include <stddef.h>
#include <stdint.h>

#include "clora/buffer.h"
#include "clora/device.h"
#include "clora/model.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_gpt2_config {
    size_t vocab_size;   /* V */
    size_t n_positions;  /* longest sequence */
    size_t n_embd;       /* C */
    size_t n_layer;
    size_t n_head;       /* divides n_embd */
    size_t n_inner;      /* the MLP's width; 0: 4 * n_embd */
    clora_node_kind activation; /* GELU_TANH ("gelu_new"), GELU, RELU, SILU or TANH */
    float layer_norm_epsilon;
    float embd_pdrop;    /* dropout after the embeddings */
    float attn_pdrop;    /* on the attention probabilities */
    float resid_pdrop;   /* after each attention and MLP output */
    float initializer_range; /* std of the initial weights */
} clora_gpt2_config;

/* How a BERT model turns its hidden states (B, T, C) into (B, C). */
typedef enum clora_bert_head {
    /* clora_bert_config: MEAN. Loading: the checkpoint's own,
     * SEQUENCE_CLASSIFIER for a BertForSequenceClassification folder
     * (config.json's architectures), else MEAN. */
    CLORA_BERT_HEAD_AUTO = 0,
    CLORA_BERT_HEAD_MEAN,   /* "pool": the mean over kept tokens (sentence-transformers) */
    CLORA_BERT_HEAD_POOLER, /* "pooler": tanh(pooler.dense(h[:, 0])); loading: the
                             * checkpoint's pooler (a BertModel that kept it) */
    /* BertForSequenceClassification: "bert" (embeddings, encoder, pooler),
     * "dropout" (classifier_dropout), "classifier"; num_labels > 0 */
    CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER
} clora_bert_head;

typedef struct clora_bert_config {
    size_t vocab_size;
    size_t hidden_size;             /* C */
    size_t num_hidden_layers;
    size_t num_attention_heads;     /* divides hidden_size */
    size_t intermediate_size;
    size_t max_position_embeddings;
    size_t type_vocab_size;
    clora_node_kind activation;     /* GELU ("gelu"), GELU_TANH, RELU, SILU or TANH */
    float layer_norm_eps;
    float hidden_dropout_prob;      /* after embeddings, attention output and MLP */
    float attention_probs_dropout_prob;
    float initializer_range;        /* std of the initial weights */
    size_t num_labels;              /* 0: the output is the pooled (B, C) embedding */
    clora_bert_head head;           /* AUTO: MEAN */
    float classifier_dropout;       /* the pooler head's dropout before "classifier";
                                     * < 0: hidden_dropout_prob (transformers' None) */
} clora_bert_config;

/* GPT-2's sizes: 50257, 1024, 768, 12, 12, 0, GELU_TANH, 1e-5, 0.1 (each
 * dropout), 0.02. */
clora_gpt2_config clora_gpt2_config_default(void);
/* all-MiniLM-L6-v2's sizes: 30522, 384, 6, 12, 1536, 512, 2, GELU, 1e-12,
 * 0.1 (each dropout), 0.02, no labels, mean pooling, classifier_dropout -1. */
clora_bert_config clora_bert_config_default(void);

/* New models, initialised as Hugging Face does: weights ~ N(0, initializer_range^2)
 * (GPT-2's c_proj weights scaled by 1/sqrt(2 * n_layer)), biases 0,
 * LayerNorms 1 and 0. */
clora_status clora_model_create_gpt2(clora_model **out, clora_device *device,
                                     const clora_gpt2_config *config, uint64_t seed);
clora_status clora_model_create_bert(clora_model **out, clora_device *device,
                                     const clora_bert_config *config, uint64_t seed);

/* Loads a Hugging Face model folder (config.json + model.safetensors; F32,
 * F16 or BF16 converted to float32) of model_type "gpt2" (GPT2LMHeadModel or
 * GPT2Model weights) or "bert" (BertModel, or BertFor* with its "bert."
 * prefix). A BertForSequenceClassification folder runs with its own head
 * (CLORA_BERT_HEAD_SEQUENCE_CLASSIFIER; num_labels 0 or its id2label's
 * count); other BERT folders with mean pooling (clora_load_options picks
 * another head), where num_labels > 0 adds the "classifier" head, taken from
 * the file when it holds one (its shape must then match), else initialised
 * from `seed` as Hugging Face does. A BertModel file with a "classifier" at
 * the top (what clora_model_save_hf writes for a model with that head) has
 * it with num_labels 0 too. `seed` also drives dropout masks. Every other
 * parameter must be in the file with the right shape; tensors clora has no
 * use for (GPT-2's attn.bias masks, position_ids, BERT's pooler under mean
 * pooling and pre-training heads) are skipped, any other extra tensor is an
 * error.
 * clora_model_load() reads these folders too (num_labels 0, seed 0). */
clora_status clora_model_load_hf(clora_model **out, clora_device *device, const char *dir,
                                 size_t num_labels, uint64_t seed);

/* The attention mask for the following forwards (borrowed: must stay valid
 * through backward): int32 (B, T), 0 marks padding. NULL: attend to all. */
clora_status clora_model_set_attention_mask(clora_model *model, const clora_buffer *mask);

/* BERT token types for the following forwards (borrowed), int32 (B, T);
 * NULL: all 0. */
clora_status clora_model_set_token_types(clora_model *model, const clora_buffer *types);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_TRANSFORMER_H */
