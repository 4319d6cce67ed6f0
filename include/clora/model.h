/* clora/model.h — a model as a tree of named nodes, run forward and
 * backward on one device.
 *
 * A model owns a tree: container nodes (Sequential) hold named children,
 * leaf nodes (Linear, LoRA, activations, LayerNorm, Embedding, Dropout) hold
 * parameters. Every node has a dotted path from the root — "blocks.0.fc1" —
 * and every parameter a full name — "blocks.0.fc1.weight" — the same names
 * PyTorch's state_dict() gives, so PEFT adapters find their modules.
 *
 * Shapes (N rows = all leading dimensions):
 *   Linear     (N, in) -> (N, out)      weight (out, in) [or (in, out)], bias (out)
 *   LoRA       a Linear (child "base_layer", as in PEFT) plus named adapters
 *              with lora_A.<name>.weight (r, in) and lora_B.<name>.weight (out, r)
 *   ReLU, GELU (erf), GELU (tanh), SiLU, Tanh, Dropout   (...) -> same shape
 *   LayerNorm  over the last dimension C: weight (C), bias (C)
 *   Embedding  int32 ids (...) -> (..., C): weight (num, C)
 *
 * Running: clora_model_forward() keeps what backward needs (each node's
 * input, output and saved statistics) in buffers sized for the batch shape
 * and re-sized when the shape changes; clora_model_backward() then adds
 * every trainable parameter's gradient into its gradient buffer. The input
 * buffer must stay unchanged between the two calls.
 *
 * Trainable parameters live in one device allocation, their gradients in a
 * second; frozen parameters get neither a gradient nor optimizer state.
 * Pointers to parameters and gradients (clora_param_info) stay valid until
 * the tree or any parameter's trainability changes.
 *
 * Thread-safety: as for the device it runs on.
 */
#ifndef CLORA_MODEL_H
#define CLORA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "clora/buffer.h"
#include "clora/device.h"
#include "clora/linear.h"
#include "clora/lora.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_model clora_model;
typedef struct clora_node clora_node;

typedef enum clora_node_kind {
    CLORA_NODE_SEQUENTIAL = 0,
    CLORA_NODE_LINEAR,
    CLORA_NODE_LORA,
    CLORA_NODE_RELU,
    CLORA_NODE_GELU,      /* 0.5·x·(1 + erf(x/√2)) */
    CLORA_NODE_GELU_TANH, /* PyTorch GELU(approximate="tanh") */
    CLORA_NODE_SILU,
    CLORA_NODE_TANH,
    CLORA_NODE_LAYER_NORM,
    CLORA_NODE_EMBEDDING,
    CLORA_NODE_DROPOUT,
    /* transformer parts (clora/transformer.h), each driving named children */
    CLORA_NODE_GPT2_MODEL,          /* wte, wpe, drop, h, ln_f */
    CLORA_NODE_GPT2_BLOCK,          /* ln_1, attn, ln_2, mlp, with residuals */
    CLORA_NODE_GPT2_ATTENTION,      /* c_attn, c_proj; causal */
    CLORA_NODE_BERT_EMBEDDINGS,     /* word/position/token_type embeddings, LayerNorm, dropout */
    CLORA_NODE_BERT_LAYER,          /* attention.{self,output}, intermediate, output; post-LN */
    CLORA_NODE_BERT_SELF_ATTENTION, /* query, key, value; bidirectional */
    CLORA_NODE_MEAN_POOL,           /* (B, T, C) -> (B, C) over unmasked tokens */
    CLORA_NODE_RMS_NORM,            /* x / sqrt(mean(x^2) + eps) * weight */
    CLORA_NODE_LLAMA_MODEL,         /* embed_tokens, layers, norm */
    CLORA_NODE_LLAMA_LAYER,         /* input_layernorm, self_attn, post_attention_layernorm, mlp */
    CLORA_NODE_LLAMA_ATTENTION,     /* q/k/v/o_proj; rotary, grouped-query, causal */
    CLORA_NODE_LLAMA_MLP,           /* down_proj(silu(gate_proj(x)) * up_proj(x)) */
    CLORA_NODE_LAST_TOKEN_POOL,     /* (B, T, C) -> (B, C) at each row's last unmasked token */
    CLORA_NODE_BERT_POOLER,         /* tanh(dense(x[:, 0])): (B, T, C) -> (B, C) */
    CLORA_NODE_KIND_COUNT
} clora_node_kind;

/* "sequential", "linear", "lora", "relu", "gelu", "gelu_tanh", "silu",
 * "tanh", "layer_norm", "embedding", "dropout", "gpt2_model", "gpt2_block",
 * "gpt2_attention", "bert_embeddings", "bert_layer", "bert_self_attention",
 * "mean_pool", "rms_norm", "llama_model", "llama_layer", "llama_attention",
 * "llama_mlp", "last_token_pool", "bert_pooler". */
const char *clora_node_kind_name(clora_node_kind kind);

/* ---- building ------------------------------------------------------------ */

/* An empty model (its root is an empty Sequential with path "").
 * `seed` drives parameter initialisation and dropout masks. */
clora_status clora_model_create(clora_model **out, clora_device *device, uint64_t seed);

/* Frees the tree, parameters, gradients and activations. NULL is a no-op. */
void clora_model_destroy(clora_model *model);

clora_node *clora_model_root(clora_model *model);
clora_device *clora_model_device(const clora_model *model);

/* Each adds a child called `name` (letters, digits, '_' or '-'; unique in
 * the parent) to a Sequential node and returns it through `out` (may be
 * NULL). Parameters start as PyTorch initialises them, from the model's
 * seed: Linear weight and bias ~ U(±1/√in); LayerNorm weight 1, bias 0;
 * Embedding ~ N(0, 1). */
clora_status clora_node_add_sequential(clora_node *parent, const char *name, clora_node **out);
clora_status clora_node_add_linear(clora_node *parent, const char *name, size_t in_features,
                                   size_t out_features, int bias, clora_node **out);
/* A Linear whose weight is stored (in, out), as GPT-2's Conv1D. */
clora_status clora_node_add_linear_in_out(clora_node *parent, const char *name, size_t in_features,
                                          size_t out_features, int bias, clora_node **out);
/* kind: RELU, GELU, GELU_TANH, SILU or TANH. */
clora_status clora_node_add_activation(clora_node *parent, const char *name, clora_node_kind kind,
                                       clora_node **out);
clora_status clora_node_add_layer_norm(clora_node *parent, const char *name, size_t features,
                                       float eps, clora_node **out);
/* RMSNorm: x / sqrt(mean(x^2) + eps) * weight (features), no bias. */
clora_status clora_node_add_rms_norm(clora_node *parent, const char *name, size_t features,
                                     float eps, clora_node **out);
clora_status clora_node_add_embedding(clora_node *parent, const char *name, size_t num_embeddings,
                                      size_t features, clora_node **out);
/* p in [0, 1): active only while the model is training. */
clora_status clora_node_add_dropout(clora_node *parent, const char *name, float p,
                                    clora_node **out);

/* Turns a GPT-2 or Llama-family language model into a sequence classifier,
 * as transformers' GPT2ForSequenceClassification and
 * LlamaForSequenceClassification are: lm_head is replaced by "pool" (each
 * row's hidden state at its last token the attention mask keeps; the last
 * token without a mask) and "score", a bias-free Linear (num_labels,
 * hidden) drawn from N(0, init_std^2) (0: 0.02) by `seed`. The output is
 * then (B, num_labels). "score" is a new head: it trains in full when
 * listed in modules_to_save, and its frozen weight is saved with an
 * adapter that puts LoRA on it (as base_layer.weight, which PEFT loads).
 * Call it before applying LoRA. */
clora_status clora_model_add_classifier(clora_model *model, size_t num_labels, float init_std,
                                        uint64_t seed);

/* ---- addressing ----------------------------------------------------------- */

/* The node at a dotted path ("" is the root); CLORA_ERR_NOT_FOUND names the
 * first missing part. */
clora_status clora_model_find(clora_model *model, const char *path, clora_node **out);

const char *clora_node_name(const clora_node *node); /* "" for the root */
clora_node_kind clora_node_kind_of(const clora_node *node);
clora_node *clora_node_parent(const clora_node *node); /* NULL for the root */
size_t clora_node_child_count(const clora_node *node);
clora_node *clora_node_child(const clora_node *node, size_t index);
/* The node's dotted path into out (always terminated). */
clora_status clora_node_path(const clora_node *node, char *out, size_t size);

/* Linear / LoRA: features and weight layout. */
size_t clora_node_in_features(const clora_node *node);
size_t clora_node_out_features(const clora_node *node);

/* Calls visit(node, path, user) for every node, depth first, parents
 * before children; a non-zero return stops the walk and is returned. */
typedef int (*clora_node_visitor)(clora_node *node, const char *path, void *user);
int clora_model_visit(clora_model *model, clora_node_visitor visit, void *user);

/* ---- parameters ------------------------------------------------------------ */

typedef struct clora_param_info {
    const char *name;    /* full dotted name; valid until the tree changes */
    clora_node *node;    /* the node that owns it */
    clora_buffer *value; /* borrowed */
    clora_buffer *grad;  /* borrowed; NULL while frozen */
    int trainable;
} clora_param_info;

/* Number of parameter tensors, in depth-first order; 0 also when the list
 * cannot be built (out of memory: clora_last_error() says so), which
 * clora_model_params() tells apart. */
size_t clora_model_param_count(clora_model *model);
/* The same count into *count, with the failure as a status. */
clora_status clora_model_params(clora_model *model, size_t *count);
clora_status clora_model_param(clora_model *model, size_t index, clora_param_info *info);
clora_status clora_model_find_param(clora_model *model, const char *name, clora_param_info *info);

/* Makes every parameter at or below `path` trainable or frozen ("" for the
 * whole model; a full parameter name for one tensor). */
clora_status clora_model_set_trainable(clora_model *model, const char *path, int trainable);

/* Element counts over all parameters (total = trainable + frozen). */
typedef struct clora_param_counts {
    size_t total, trainable, frozen;
} clora_param_counts;
clora_status clora_model_count_params(clora_model *model, clora_param_counts *counts);

/* ---- running -------------------------------------------------------------- */

/* Training mode turns dropout (Dropout nodes and LoRA dropout) on; each
 * forward in training mode draws new masks. Models start in eval mode. */
clora_status clora_model_set_training(clora_model *model, int training);
int clora_model_training(const clora_model *model);

/* Gradient checkpointing: while training, each transformer block (GPT-2,
 * BERT and Llama-family layers) keeps only its input and output between
 * forward and backward, and backward runs the block's forward again before
 * its own: activation memory of one block instead of all, for a second
 * forward of each block. The recomputation draws the same dropout masks,
 * so gradients are those of a run without it. Off by default. */
clora_status clora_model_set_checkpointing(clora_model *model, int on);

/* Runs the tree on `input` (float32 (..., in), or int32 ids when the first
 * node is an Embedding). *output is borrowed: valid until the next forward. */
clora_status clora_model_forward(clora_model *model, const clora_buffer *input,
                                 const clora_buffer **output);

/* Backward of the last forward given d_output (same shape as the output):
 * adds into every trainable parameter's gradient. */
clora_status clora_model_backward(clora_model *model, const clora_buffer *d_output);

/* Sets every gradient to zero (one fill of the gradient allocation). */
clora_status clora_model_zero_grad(clora_model *model);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_MODEL_H */
