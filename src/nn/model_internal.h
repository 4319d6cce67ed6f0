/* model_internal.h — the model tree's private structures, shared by
 * model.c (tree, parameters, memory), nodes.c (forward/backward of each
 * kind), adapter.c (LoRA), train.c and the file formats. */
#ifndef CLORA_MODEL_INTERNAL_H
#define CLORA_MODEL_INTERNAL_H

#include <jansson.h>

#include "clora/adapter.h"
#include "clora/model.h"
#include "clora/safetensors.h"
#include "clora/train.h"
#include "clora/transformer.h"
#include "internal.h"

/* A parameter tensor of a node. */
typedef struct clora__param {
    char *name;                /* within its node: "weight", "lora_A.default.weight" */
    size_t ndim;
    size_t shape[2];
    size_t numel;
    int trainable;
    clora_buffer *own;         /* its own allocation, while not in the arena */
    clora_buffer *value;       /* own, or a view into the trainable arena */
    clora_buffer *grad;        /* a view into the gradient arena, or NULL */
} clora__param;

/* One named LoRA adapter of a LoRA node. */
typedef struct clora__adapter {
    char *name;
    size_t rank;
    float alpha;
    clora_scale_mode scale_mode;
    float dropout;
    clora__param *lora_a; /* (r, in), also in node->params */
    clora__param *lora_b; /* (out, r) */
} clora__adapter;

struct clora_node {
    clora_model *model;
    clora_node *parent;
    char *name;
    clora_node_kind kind;
    size_t id; /* creation number, mixed into dropout seeds */

    clora_node **children;
    size_t child_count, child_capacity;
    clora__param **params;
    size_t param_count;

    /* Linear (and a LoRA node's base_layer): weight, optional bias */
    size_t in_features, out_features;
    clora_weight_layout layout;
    clora_node *tied; /* a Linear whose "weight" is this node's (tied embeddings) */
    /* LayerNorm: C and eps; Embedding: num rows and C; Dropout: p */
    size_t features, num_embeddings;
    float eps, p;
    /* attention: features, heads, causal; p is the attention-probability dropout */
    size_t heads;
    int causal;
    /* LoRA: base_layer is children[0] */
    clora__adapter *adapters;
    size_t adapter_count;
    int active;  /* index of the active adapter, -1 for none */
    int merged;  /* index of the adapter merged into the base weight, -1 for none */
    int trainable_module; /* PEFT modules_to_save: kept trainable by apply_lora */

    /* state of the last forward */
    const clora_buffer *input;  /* borrowed */
    const clora_buffer *output; /* what forward returned: owned_output or a pass-through */
    clora_buffer *owned_output;
    clora_buffer *d_input;      /* owned */
    clora_buffer *saved[16];    /* kept for backward and per-shape temporaries; the
                                   slots each kind uses are named where it uses them */
    uint64_t dropout_seed;
    float dropout_used; /* LoRA: the dropout p the last forward applied */
};

struct clora_model {
    clora_device *device;
    uint64_t seed;
    uint64_t init_rng; /* advanced by every parameter initialisation */
    clora_node *root;
    size_t node_counter;
    int training;
    uint64_t forward_count;

    /* the flattened parameter list, rebuilt when `dirty` */
    int dirty;
    size_t param_count;
    clora__param **params;
    char **param_names;
    clora_node **param_nodes;
    /* trainable parameters and their gradients, one allocation each */
    clora_buffer *trainable_arena;
    clora_buffer *grad_arena;
    size_t arena_numel;
    uint64_t generation; /* changes whenever the arena layout does */

    /* adapter names in order of creation; the active one or -1 */
    char **adapter_names;
    size_t adapter_name_count;
    int active_adapter;
    int merged; /* 1 while the active adapter is merged into the base weights */

    int building; /* clora's transformer builders are adding children */
    int skip_init; /* parameters start at zero: a checkpoint fills them next */

    /* inputs beside the ids, set per batch (borrowed) */
    const clora_buffer *attention_mask; /* int32 (B, T) */
    const clora_buffer *token_types;    /* int32 (B, T) */

    int has_forward; /* a forward ran since the last structural change */
    const clora_buffer *last_output;
};

/* ---- model.c ---------------------------------------------------------------- */

/* Rebuilds the parameter list and arenas if the tree or trainability
 * changed. Called by everything that runs or lists parameters. */
clora_status clora__model_refresh(clora_model *model);
/* Marks the parameter list stale (tree or trainability changed). */
void clora__model_touch(clora_model *model);

/* A new node (not yet attached). */
clora_status clora__node_new(clora_model *model, const char *name, clora_node_kind kind,
                             clora_node **out);
/* Attaches child to parent (a Sequential) after checking the name. */
clora_status clora__node_attach(clora_node *parent, clora_node *child);
/* Frees a detached node and everything below it. */
void clora__node_free(clora_node *node);
/* Adds a parameter to a node, initialised by `init`. */
typedef enum clora__init {
    CLORA__INIT_ZERO,
    CLORA__INIT_ONE,
    CLORA__INIT_UNIFORM, /* U(-bound, bound) */
    CLORA__INIT_NORMAL   /* N(0, bound^2) */
} clora__init;
clora_status clora__param_add(clora_node *node, const char *name, size_t ndim, const size_t *shape,
                              clora__init init, float bound, clora__param **out);
/* Re-draws a parameter's values (clora's builders: Hugging Face's init). */
clora_status clora__param_reinit(clora_node *node, const char *name, clora__init init,
                                 float bound);
/* Adds a bias-free Linear (out, in) whose weight is `owner`'s "weight"
 * (out, in): GPT-2's lm_head on wte. */
clora_status clora__add_tied_linear(clora_node *parent, const char *name, clora_node *owner,
                                    clora_node **out);
/* Adds a transformer part (no parameters of its own) under `parent`. */
clora_status clora__add_composite(clora_node *parent, const char *name, clora_node_kind kind,
                                  clora_node **out);
/* Removes and frees a node's parameter. */
void clora__param_remove(clora_node *node, clora__param *param);
/* The parameter called `name` in a node (a tied Linear's "weight" is its
 * owner's), or NULL. */
clora__param *clora__param_get(const clora_node *node, const char *name);
/* Replaces a Sequential child in place (same position and name). */
void clora__node_replace_child(clora_node *parent, clora_node *old_child, clora_node *new_child);
/* The Linear a node computes with: itself, or a LoRA node's base_layer. */
clora_node *clora__linear_of(clora_node *node);

/* Host random numbers from a 64-bit state. */
float clora__rng_uniform(uint64_t *state, float lo, float hi);
float clora__rng_normal(uint64_t *state);

/* ---- adapter.c ---------------------------------------------------------------- */

/* Frees the model's adapter-name registry. */
void clora__adapters_free(clora_model *model);
/* Adds `name` to the registry unless present. */
clora_status clora__adapters_register(clora_model *model, const char *name);
/* Applies PEFT's trainability: only the active adapter's LoRA parameters
 * and modules_to_save train. */
void clora__apply_adapter_trainability(clora_model *model);
/* Wraps `linear` (a Linear node in the tree) in a new LoRA node. */
clora_status clora__wrap_linear(clora_node *linear, clora_node **lora);
/* Adds adapter `name` with rank and alpha to a LoRA node (A initialised by
 * `init`, B zero). */
clora_status clora__lora_add_adapter(clora_node *lora, const char *name, size_t rank, float alpha,
                                     clora_scale_mode scale_mode, float dropout,
                                     clora_init_mode init);

/* ---- model_io.c ---------------------------------------------------------------- */

/* Reads a JSON object file (duplicate keys rejected); CLORA_ERR_IO or
 * CLORA_ERR_FORMAT naming the file. */
clora_status clora__read_json(const char *path, json_t **out);
/* The same with more jansson decoding flags (JSON_DECODE_INT_AS_REAL). */
clora_status clora__read_json_flags(const char *path, size_t flags, json_t **out);
/* Checks a file tensor against a parameter (shape, float dtype), converts it
 * to float32 and uploads it into dst. */
clora_status clora__load_tensor(const char *path, const clora_tensor_view *view,
                                const char *param, clora_buffer *dst);
/* How a checkpoint names a model's parameters (NULL: by their own names). */
typedef struct clora__weight_names {
    /* The index-th name to try for parameter `param` into out; 0 when
     * there is none left. */
    int (*candidate)(const char *param, size_t index, char *out, size_t size, void *user);
    /* Parameters that may be missing (they keep their initial values). */
    int (*optional)(const char *param, void *user);
    /* File tensors that are not parameters and need no check. */
    int (*ignorable)(const char *tensor, void *user);
    void *user;
} clora__weight_names;
/* Fills every parameter from a safetensors file: each found (unless
 * optional) with the right shape, no file tensor left over (unless
 * ignorable). */
clora_status clora__load_weights(clora_model *model, const char *path,
                                 const clora__weight_names *names);
/* Writes a safetensors file and its JSON config as one (both or neither). */
clora_status clora__save_weights_and_config(const char *weights_path,
                                            const clora_safetensors_writer *writer,
                                            const char *config_path, json_t *config);

/* ---- nodes.c ---------------------------------------------------------------- */

clora_status clora__node_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y);
/* need_dx: whether the layer below wants d_input. *dx is borrowed. */
clora_status clora__node_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx);
/* Drops a node's saved activations (after a structural change). */
void clora__node_release_activations(clora_node *node);

/* Helpers nodes.c shares with transformer.c: */
/* *buf as a float32 activation of `shape`, kept when the shape is unchanged. */
clora_status clora__ensure(clora_buffer **buf, clora_device *device, size_t ndim,
                           const size_t *shape);
/* *buf as an int32 buffer of `shape`, kept when the shape is unchanged;
 * *created (may be NULL) is 1 when it was made anew (zero-filled). */
clora_status clora__ensure_i32(clora_buffer **buf, clora_device *device, size_t ndim,
                               const size_t *shape, int *created);
/* out = a + b elementwise (same number of elements). */
clora_status clora__add(clora_buffer *out, const clora_buffer *a, const clora_buffer *b);
/* out = in * mask(seed) / (1 - p), keyed (row, col) over in's (rows, cols). */
clora_status clora__dropout(clora_buffer *out, const clora_buffer *in, uint64_t seed, float p);
/* A seed for one node's masks in one training forward; `salt` tells masks
 * of the same node apart. */
uint64_t clora__node_seed(const clora_node *node, uint64_t salt);
/* The child called `name`, or NULL. */
clora_node *clora__child(const clora_node *node, const char *name);

/* ---- transformer.c ---------------------------------------------------------------- */

clora_status clora__transformer_forward(clora_node *node, const clora_buffer *x,
                                        const clora_buffer **y);
clora_status clora__transformer_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                         const clora_buffer **dx);
/* Adds an attention node (GPT2_ATTENTION: causal, or BERT_SELF_ATTENTION)
 * of `features` split into `heads`, attention-probability dropout p; its
 * children come next (model->building). */
clora_status clora__add_attention(clora_node *parent, const char *name, clora_node_kind kind,
                                  size_t features, size_t heads, float p, clora_node **out);
/* clora_model_create_gpt2/bert; skip_init leaves every parameter at zero
 * for a checkpoint to fill. */
clora_status clora__create_gpt2(clora_model **out, clora_device *device,
                                const clora_gpt2_config *config, uint64_t seed, int skip_init);
clora_status clora__create_bert(clora_model **out, clora_device *device,
                                const clora_bert_config *config, uint64_t seed, int skip_init);
/* clora_model_load_hf() on an already parsed config.json (hf.c); also what
 * clora_model_load() does with a Hugging Face folder. */
clora_status clora__model_from_hf(clora_model **out, clora_device *device, json_t *config,
                                  const char *config_path, const char *weights_path,
                                  size_t num_labels, uint64_t seed);
/* Whether a transformer part has the children its forward drives. */
clora_status clora__transformer_validate(const clora_node *node);

/* ---- reduce helpers (train.c) ---------------------------------------------------- */

/* out[out_offset] = scale * sum of x (or of its squares), deterministically. */
clora_status clora__sum(clora_device *device, cl_mem out, size_t out_offset, const clora_buffer *x,
                        int square, float scale);

#endif /* CLORA_MODEL_INTERNAL_H */
