/* nn.h — what the nn layer's sources share and train uses: the model tree
 * (model.c), the node kinds as a table of operations (one file each, listed
 * in kinds.c), adapters, the architectures and the checkpoint loaders.
 *
 * A node kind is one `static const`-like clora__node_kind in the kind's own
 * file: its name, forward, backward, validation, JSON fields and parameter
 * setup; its per-node state is the kind's own struct behind node->state,
 * which only that file casts. Callers go through the table; nothing
 * switches on the kind. */
#ifndef CLORA_NN_H
#define CLORA_NN_H

#include <jansson.h>

#include "clora/adapter.h"
#include "clora/generate.h"
#include "clora/llama.h"
#include "clora/model.h"
#include "clora/transformer.h"
#include "io/io.h"
#include "ops/ops.h"

/* ---- parameters and nodes ------------------------------------------------------- */

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

typedef struct clora__node_kind clora__node_kind;

struct clora_node {
    clora_model *model;
    clora_node *parent;
    char *name;
    const clora__node_kind *kind;
    void *state; /* kind->state_size bytes, zeroed at creation; only the kind's file casts it */
    size_t id;   /* creation number, mixed into dropout seeds */

    clora_node **children;
    size_t child_count, child_capacity;
    clora__param **params;
    size_t param_count;
    int trainable_module; /* PEFT modules_to_save: kept trainable by apply_lora */
    clora_node *tied;     /* whose "weight" is this node's (GPT-2's lm_head: transformer.wte) */
    int new_head;         /* a head added for fine-tuning: its weights travel with adapters */

    /* the last forward */
    int recompute;              /* it kept only input and output: backward runs it again */
    const clora_buffer *input;  /* borrowed */
    const clora_buffer *output; /* what forward returned: owned_output or a pass-through */
    clora_buffer *owned_output;
    clora_buffer *d_input;      /* owned */
};

/* Flags of a kind. */
enum {
    CLORA__KIND_SEQUENTIAL = 1u << 0, /* callers add its children (clora_node_add_*) */
    CLORA__KIND_COMPOSITE = 1u << 1,  /* drives named children that clora's builders add */
    CLORA__KIND_LINEAR = 1u << 2,     /* computes as a Linear (its own or its base's weight) */
    CLORA__KIND_PACKABLE = 1u << 3,   /* its "weight" may be stored packed (frozen) */
    CLORA__KIND_CHECKPOINT = 1u << 4  /* a transformer block: recomputed in backward when the
                                       * model checkpoints (clora_model_set_checkpointing) */
};

struct clora__node_kind {
    clora_node_kind id; /* what clora_node_kind_of() reports */
    const char *name;   /* clora_node_kind_name(), and "kind" in a model's config.json */
    unsigned flags;     /* CLORA__KIND_* */
    int variant;        /* a member of a family sharing one file (activations: the function) */
    size_t state_size;  /* bytes of node->state */
    /* Fills the state and adds the parameters from the kind's own argument
     * struct, checking the arguments; NULL: nothing to set up. */
    clora_status (*setup)(clora_node *node, const void *args);
    /* *y is the output (owned by the node, or a pass-through). */
    clora_status (*forward)(clora_node *node, const clora_buffer *x, const clora_buffer **y);
    /* Adds into the parameters' gradients; *dx (borrowed) when need_dx. */
    clora_status (*backward)(clora_node *node, const clora_buffer *dy, int need_dx,
                             const clora_buffer **dx);
    /* Whether the node can run (the children it drives exist, with sizes
     * that agree); checked before every forward and after loading. NULL:
     * nothing to check. */
    clora_status (*validate)(const clora_node *node);
    /* The kind's own fields into a node's JSON object (config.json); 0 on
     * success. NULL: none. */
    int (*save)(const clora_node *node, json_t *j);
    /* A node of this kind from its JSON object, added under `parent`;
     * messages start with `where`. NULL: the kind never appears in files. */
    clora_status (*load)(const clora__node_kind *kind, clora_node *parent, const char *name,
                         json_t *j, const char *where, clora_node **out);
    /* The node that stands for this one in saved models and whose weight it
     * computes with (a LoRA node's base_layer); NULL: the node itself. */
    clora_node *(*base)(const clora_node *node);
    /* Frees the state's buffers of the last forward (after a structural
     * change, and before the node is freed); NULL: none. */
    void (*release)(clora_node *node);
    /* Recycles the gradients the state's backward made for its own use
     * (clora__buffer_recycle); called once the backward has returned, as
     * none of them is its dx; NULL: none. */
    void (*release_grads)(clora_node *node);
    /* Frees what else the state owns when the node is freed; NULL: nothing. */
    void (*finalize)(clora_node *node);
};

/* The kinds (each defined in its own file). */
extern const clora__node_kind clora__sequential_kind; /* model.c */
extern const clora__node_kind clora__linear_kind;
extern const clora__node_kind clora__lora_kind, clora__lora_embedding_kind;
extern const clora__node_kind clora__relu_kind, clora__gelu_kind, clora__gelu_tanh_kind,
    clora__silu_kind, clora__tanh_kind;
extern const clora__node_kind clora__layer_norm_kind;
extern const clora__node_kind clora__embedding_kind;
extern const clora__node_kind clora__dropout_kind;
extern const clora__node_kind clora__mean_pool_kind, clora__last_token_pool_kind;
extern const clora__node_kind clora__rms_norm_kind;
extern const clora__node_kind clora__llama_model_kind, clora__llama_layer_kind,
    clora__llama_attention_kind, clora__llama_mlp_kind;
extern const clora__node_kind clora__gpt2_model_kind, clora__gpt2_block_kind,
    clora__gpt2_attention_kind;
extern const clora__node_kind clora__bert_embeddings_kind, clora__bert_layer_kind,
    clora__bert_self_attention_kind;
extern const clora__node_kind clora__bert_pooler_kind; /* bert_heads.c */

/* The registry (kinds.c): the kind called `name`, or NULL. */
const clora__node_kind *clora__kind_named(const char *name);

struct clora_model {
    clora_device *device;
    uint64_t seed;
    uint64_t init_rng; /* advanced by every parameter initialisation */
    clora_node *root;
    size_t node_counter;
    int training;
    uint64_t forward_count;
    /* The place in the whole batch of the next training forward's first
     * example (clora_trainer_accumulate_at): masks follow the whole batch. */
    size_t first_example;
    int checkpointing; /* clora_model_set_checkpointing */

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
    unsigned char *adapter_bias; /* per name: its clora_bias_mode */
    size_t adapter_name_count;
    int active_adapter;
    int merged; /* 1 while the active adapter is merged into the base weights */

    int building;  /* clora's builders and loaders are adding children to composite nodes */
    int skip_init; /* parameters start at zero: a checkpoint fills them next */
    /* While a loader builds (skip_init): how each frozen weight (the 2-D
     * "weight" of a Linear or an Embedding, by its full name) is stored;
     * a packed type makes it a frozen packed parameter. NULL: all F32. */
    clora_dtype (*storage)(const clora_model *model, const char *name, const size_t *shape,
                           void *user);
    void *storage_user;

    /* inputs beside the ids, set per batch (borrowed) */
    const clora_buffer *attention_mask; /* int32 (B, T) */
    const clora_buffer *token_types;    /* int32 (B, T) */
    const clora_buffer *positions;      /* int32 (B, T) rotary positions; NULL: 0..T-1 */
    /* what this forward's rotary attention uses: positions, or the
     * trunk's own 0..T-1 (set by the trunk) */
    const clora_buffer *batch_positions;

    /* while a generation session feeds tokens: each row's cache lengths
     * (attention parts then read and extend their key/value caches) */
    const struct clora__decode_step *decode;

    int has_forward; /* a forward ran since the last structural change */
    const clora_buffer *last_output;
};

/* ---- the tree (model.c) ------------------------------------------------------------ */

/* Rebuilds the parameter list and arenas if the tree or trainability
 * changed. Called by everything that runs or lists parameters. */
clora_status clora__model_refresh(clora_model *model);
/* Marks the parameter list stale (tree or trainability changed). */
void clora__model_touch(clora_model *model);

/* A new node of `kind` (not yet attached, not set up). */
clora_status clora__node_new(clora_model *model, const char *name, const clora__node_kind *kind,
                             clora_node **out);
/* Creates a node of `kind` under `parent`, runs kind->setup(node, args)
 * and attaches it; frees it on failure (the message prefixed with `op`
 * and the name). Children go into Sequential nodes, and into composite
 * ones while model->building. */
clora_status clora__add_node(const char *op, clora_node *parent, const char *name,
                             const clora__node_kind *kind, const void *args, clora_node **out);
/* Frees a detached node and everything below it. */
void clora__node_free(clora_node *node);
/* Drops a node's buffers of the last forward (after a structural change). */
void clora__node_release_activations(clora_node *node);
/* Replaces a child in place (same position and name). */
void clora__node_replace_child(clora_node *parent, clora_node *old_child, clora_node *new_child);
/* Detaches a child and frees it. */
void clora__node_remove_child(clora_node *parent, clora_node *child);
/* The child called `name`, or NULL. */
clora_node *clora__child(const clora_node *node, const char *name);
/* The node at dotted `path` below `node`, or NULL. */
clora_node *clora__descendant(const clora_node *node, const char *path);
/* The node's kind's state. */
#define CLORA__STATE(type, node) ((type *)(node)->state)

/* The Linear a node computes with: itself, a LoRA node's base_layer, or
 * NULL when the node is no Linear. */
clora_node *clora__linear_of(const clora_node *node);
/* 1 for a node that another stands for: a LoRA node's base_layer. */
int clora__is_base_layer(const clora_node *node);

/* Forward and backward of one node through its kind (forward checks
 * kind->validate first). need_dx: whether the layer below wants the input
 * gradient; *dx is borrowed. */
clora_status clora__node_forward(clora_node *node, const clora_buffer *x, const clora_buffer **y);
clora_status clora__node_backward(clora_node *node, const clora_buffer *dy, int need_dx,
                                  const clora_buffer **dx);

/* Helpers of the kinds' forward and backward: */
/* An error unless x holds float32 and is not empty. */
clora_status clora__node_require_float(const clora_node *node, const clora_buffer *x);
/* node->owned_output as a float32 buffer of x's shape with the last
 * dimension `last` (appended instead when `append`). */
clora_status clora__node_output(clora_node *node, const clora_buffer *x, size_t last, int append);
/* *d_input: NULL unless need_dx, else node->d_input shaped like the input. */
clora_status clora__node_d_input(clora_node *node, int need_dx, clora_buffer **d_input);
/* Recycles a Linear part's output (a Linear's backward reads its input
 * only) once the composite that ran it has copied what it needs; a later
 * forward makes it anew. Other kinds keep theirs. */
void clora__node_drop_output(clora_node *node);
/* A seed for one node's masks in one training forward; `salt` tells masks
 * of the same node apart. */
uint64_t clora__node_seed(const clora_node *node, uint64_t salt);
/* The whole batch's row of the first row of x for a mask over x's rows
 * (all but the last dimension, x's first the examples): first_example
 * times the rows of one example. */
size_t clora__node_dropout_row0(const clora_node *node, const clora_buffer *x);

/* ---- parameters (model.c) ----------------------------------------------------------- */

typedef enum clora__init {
    CLORA__INIT_ZERO,
    CLORA__INIT_ONE,
    CLORA__INIT_UNIFORM, /* U(-bound, bound) */
    CLORA__INIT_NORMAL   /* N(0, bound^2) */
} clora__init;
/* Adds a parameter to a node, initialised by `init` from the model's seed. */
clora_status clora__param_add(clora_node *node, const char *name, size_t ndim, const size_t *shape,
                              clora__init init, float bound, clora__param **out);
/* Re-draws a parameter's values (clora's builders: Hugging Face's init). */
clora_status clora__param_reinit(clora_node *node, const char *name, clora__init init,
                                 float bound);
/* The message and status for a packed parameter asked to train. */
clora_status clora__packed_trainable_error(const char *name, clora_dtype dtype);
/* CLORA_OK unless a parameter below `node` is packed (that error then). */
clora_status clora__check_unpacked(const clora_node *node);
/* Removes and frees a node's parameter. */
void clora__param_remove(clora_node *node, clora__param *param);
/* The parameter called `name` in a node (a tied Linear's "weight" is its
 * owner's), or NULL; its value and gradient buffers, or NULL. */
clora__param *clora__param_get(const clora_node *node, const char *name);
clora_buffer *clora__param_value(const clora_node *node, const char *name);
clora_buffer *clora__param_grad(const clora_node *node, const char *name);

/* ---- adapter names (model.c) ---------------------------------------------------------- */

/* The index of adapter `name` in the model's registry, or -1. */
int clora__adapter_index(const clora_model *model, const char *name);
/* Adds `name` to the registry unless present. */
clora_status clora__adapters_register(clora_model *model, const char *name);

/* ---- Linear and LoRA nodes (linear.c, lora_layer.c) -------------------------------------- */

/* A Linear's sizes and weight layout (a LoRA node: its base's). */
void clora__linear_dims_of(const clora_node *linear, size_t *in, size_t *out,
                           clora_weight_layout *layout);
/* Adds a bias-free Linear (out, in) whose weight is `owner`'s "weight"
 * (out, in): GPT-2's lm_head on wte. */
clora_status clora__add_tied_linear(clora_node *parent, const char *name, clora_node *owner,
                                    clora_node **out);

/* One named LoRA adapter of a LoRA node. */
typedef struct clora__adapter {
    char *name;
    size_t rank;
    float alpha;
    clora_scale_mode scale_mode;
    float dropout;
    clora__param *lora_a; /* (r, in), also in node->params */
    clora__param *lora_b; /* (out, r) */
    clora__param *magnitude; /* (out): DoRA's m (PEFT's lora_magnitude_vector); NULL: LoRA */
} clora__adapter;

/* 1 for a LoRA node (over a Linear or an Embedding). */
int clora__is_lora(const clora_node *node);
/* Wraps `linear` (a Linear or an Embedding node in the tree) in a new LoRA
 * node (clora__lora_embedding_kind over an Embedding: PEFT's
 * lora.Embedding, its adapters' A (r, V) and B (C, r) named
 * "lora_embedding_A.<name>" and "lora_embedding_B.<name>", A = 0 and
 * B ~ N(0, 1) as PEFT starts them). */
clora_status clora__wrap_linear(clora_node *linear, clora_node **lora);
/* The forward and backward of a LoRA node over an Embedding with the
 * adapter that runs (NULL: base only), for lora_layer.c's kind
 * (lora_embedding.c): y = E[ids] + s · B · A[:, ids], no dropout (PEFT
 * applies none there). */
clora_status clora__lora_embedding_run(clora_node *node, const clora__adapter *ad,
                                       const clora_buffer *x, const clora_buffer **y);
clora_status clora__lora_embedding_run_backward(clora_node *node, const clora__adapter *ad,
                                                const clora_buffer *dy, int need_dx,
                                                const clora_buffer **dx);
/* Adds adapter `name` with rank and alpha to a LoRA node (A initialised by
 * `init`, B zero); *out (may be NULL) gets it. */
clora_status clora__lora_add_adapter(clora_node *lora, const char *name, size_t rank, float alpha,
                                     clora_scale_mode scale_mode, float dropout,
                                     clora_init_mode init, clora__adapter **out);
/* Makes adapter `ad` of a LoRA node a DoRA adapter: adds its magnitude
 * "lora_magnitude_vector.<name>.weight" (out) = ||W + s·B·A|| per output
 * feature, as PEFT initialises it (so the adapter changes nothing until it
 * trains); *out (may be NULL) gets the parameter. Refuses a base weight
 * stored block-quantized. */
clora_status clora__lora_add_magnitude(clora_node *lora, clora__adapter *ad, clora__param **out);
/* CLORA_OK when the Linear (or LoRA node) `linear` can take a DoRA
 * adapter: its weight is F32, F16 or BF16. */
clora_status clora__dora_check_base(const clora_node *linear);
/* A LoRA node's adapters, and the index of adapter `name` (-1: none). */
size_t clora__lora_adapter_count(const clora_node *lora);
clora__adapter *clora__lora_adapter(const clora_node *lora, size_t index);
int clora__lora_find(const clora_node *lora, const char *name);
/* Runs adapter `name` (NULL or absent: none) in forwards from now on; its
 * A and B become trainable. */
void clora__lora_activate(clora_node *lora, const char *name);
/* Removes adapter `index`; a LoRA node left without adapters turns back
 * into its base Linear (the node is freed). */
clora_status clora__lora_remove(clora_node *lora, size_t index);
/* Turns a LoRA node that holds no adapter back into its base Linear (the
 * node is freed); does nothing to one that holds adapters. */
clora_status clora__lora_unwrap_empty(clora_node *lora);
/* What one layer's merge or unmerge changed, to take it back exactly. */
typedef struct clora__merge_undo {
    clora_node *lora;
    float *weight; /* the base weight before (NULL: the layer did not change) */
    int merged;    /* which adapter was merged before (-1: none) */
} clora__merge_undo;
/* Merges (sign +1: the active adapter, unless one is merged) or unmerges
 * (sign -1: the merged one, if any) into the base weight, keeping the
 * weight as it was in *undo. A merge that would leave a NaN or an infinity
 * in the weight, or that fails, restores it itself and fails. */
clora_status clora__lora_merge(clora_node *lora, int sign, clora__merge_undo *undo);
/* Puts the layer back as *undo says and frees it (undo_free alone: keeps
 * the change). */
clora_status clora__lora_merge_undo(clora__merge_undo *undo);
void clora__lora_merge_undo_free(clora__merge_undo *undo);

/* Applies PEFT's trainability (adapter.c): only the active adapter's LoRA
 * parameters and modules_to_save train. */
void clora__apply_adapter_trainability(clora_model *model);

/* ---- node kinds other files build with ------------------------------------------------- */

/* The activation kind of a public kind value (RELU, GELU, GELU_TANH, SILU,
 * TANH), or NULL (activation.c). */
const clora__node_kind *clora__activation_kind(clora_node_kind id);
/* An Embedding's number of rows (embedding.c; a LoRA node over one: its
 * base's). */
size_t clora__embedding_rows(const clora_node *embedding);
/* The row PyTorch's padding_idx names, whose weight gets no gradient (-1:
 * none), and its setter (Hugging Face builders: pad_token_id). */
int clora__embedding_padding(const clora_node *embedding);
void clora__embedding_set_padding(clora_node *embedding, int padding);
/* 1 for an Embedding node, or a LoRA node over one. */
int clora__is_embedding(const clora_node *node);
/* The lookup of an Embedding's forward: node->owned_output (..., C) =
 * rows of `embedding`'s table picked by the int32 ids x, checked
 * (`node` is the Embedding itself or a LoRA node over it). */
clora_status clora__embedding_lookup(clora_node *node, const clora_node *embedding,
                                    const clora_buffer *x, const clora_buffer **y);

/* ---- what the architectures share (architecture.c) ------------------------------------- */

/* One child a composite node drives: its dotted path below the node and
 * its kind (NULL: a Linear or LoRA node). */
typedef struct clora__part {
    const char *path;
    const clora__node_kind *kind;
} clora__part;
/* Checks that the parts (ended by a NULL path) exist with their kinds. */
clora_status clora__check_parts(const clora_node *node, const clora__part *parts);
/* Sets the padding row (PyTorch's padding_idx) of the Embedding at `path`
 * below the root from a Hugging Face config's pad_token_id (absent:
 * fallback; out of range or null: none), as transformers builds the
 * table with padding_idx = config.pad_token_id. */
void clora__hf_padding(clora_model *model, clora__json_fields *config, const char *path,
                       int fallback);
/* Adds a composite node (no parameters, no state arguments). */
clora_status clora__add_composite(clora_node *parent, const char *name,
                                  const clora__node_kind *kind, clora_node **out);
/* The load of composite kinds without fields of their own. */
clora_status clora__load_composite(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out);
/* A Linear with a bias (in_out: its weight stored (in, out)) and an
 * Embedding, with Hugging Face's init: weights ~ N(0, std^2), biases 0. */
clora_status clora__hf_linear(clora_node *parent, const char *name, size_t in, size_t out,
                              int in_out, float std, clora_node **node);
clora_status clora__hf_embedding(clora_node *parent, const char *name, size_t rows, size_t cols,
                                 float std, clora_node **node);
/* Checks a config's sizes (each 1 .. 2^31-1) and its shared fields. */
clora_status clora__check_sizes(const char *what, const size_t *sizes, const char *const *names,
                                size_t n);
clora_status clora__check_common(const char *what, size_t C, size_t heads, clora_node_kind act,
                                 float eps, const float *drops, size_t n_drops, float std);
/* Creates a model and runs `build` on it with the builders' permissions;
 * skip_init leaves parameters at zero (a checkpoint fills them next). */
clora_status clora__create_with(clora_model **out, clora_device *device, uint64_t seed,
                                int skip_init, clora_status (*build)(clora_model *, const void *),
                                const void *config);
/* Batch size and length of a float32 (B, T, C) activation. */
clora_status clora__batch_dims(const clora_node *node, const clora_buffer *x, size_t C, size_t *B,
                               size_t *T);
/* The model's attention mask for a (B, T) batch, checked; NULL when none. */
clora_status clora__batch_mask(const clora_node *node, size_t B, size_t T,
                               const clora_buffer **mask);
/* ids (B, T) int32, checked against the longest sequence `positions`. */
clora_status clora__check_ids(const clora_node *node, const clora_buffer *ids, size_t positions);
/* *positions as the (B, T) ids 0..T-1, written whenever the buffer is made
 * for a new shape. */
clora_status clora__position_ids(clora_buffer **positions, const clora_buffer *ids);
/* The fields of an attention part: C features in H heads, dropout p on the
 * attention probabilities (the setup arguments of both attention kinds). */
typedef struct clora__attention_args {
    size_t features, heads;
    float p;
} clora__attention_args;
/* Adds an attention part of `kind` after checking its fields. */
clora_status clora__add_attention(clora_node *parent, const char *name,
                                  const clora__node_kind *kind, size_t features, size_t heads,
                                  float p, clora_node **out);
/* Runs the attention core of a part whose q, k, v are filled (after
 * clora__attention_prepare): the model's attention mask, causal or not,
 * and the part's probability dropout while the model trains. */
clora_status clora__attend(clora_node *node, const clora__attention_args *args,
                           clora__attention *core, clora_buffer *merged, int causal);
/* Checks that an attention part's input projection maps in -> out. */
clora_status clora__check_projection(const clora_node *node, const clora_node *projection,
                                     size_t in, size_t out);
/* An attention part's fields in config.json (save: 0 on success). */
int clora__attention_save(json_t *j, const clora__attention_args *args);
clora_status clora__attention_load(const clora__node_kind *kind, clora_node *parent,
                                   const char *name, json_t *j, const char *where,
                                   clora_node **out);
/* The pre-norm residual block of GPT-2 and Llama, over the children its
 * kind's parts table names first: {norm_1, attention, norm_2, mlp}:
 *     h = x + attention(norm_1(x)),  y = h + mlp(norm_2(h))
 * The block kind's state is the struct. */
typedef struct clora__residual_block {
    clora_buffer *h;  /* (B, T, C) */
    clora_buffer *dh; /* (B, T, C) */
} clora__residual_block;
clora_status clora__residual_block_forward(clora_node *node, const clora__part *parts,
                                           clora__residual_block *s, const clora_buffer *x,
                                           const clora_buffer **y);
clora_status clora__residual_block_backward(clora_node *node, const clora__part *parts,
                                            clora__residual_block *s, const clora_buffer *dy,
                                            int need_dx, const clora_buffer **dx);
void clora__residual_block_release(clora__residual_block *s);
void clora__residual_block_release_grads(clora_node *node);
/* Tests on tensor names, for the rules of checkpoint names. */
int clora__starts_with(const char *s, const char *prefix);
int clora__ends_with(const char *s, const char *suffix);
/* The kind of the public activation names of Hugging Face configs
 * ("gelu", "gelu_new", ...), failing into fields->status. */
clora_node_kind clora__hf_activation(clora__json_fields *fields, const char *key,
                                     const char *fallback);

/* ---- generation (session.c; the attention kinds that cache) ------------------------------ */

/* One step of a generation session, as the attention parts see it. */
typedef struct clora__decode_step {
    const clora_buffer *lengths; /* int32 (B): tokens each row held before this step */
    const clora_buffer *counts;  /* int32 (B): tokens each row gets now */
} clora__decode_step;

/* A Llama attention part's cache: keys and values (B, G, S, D), borrowed
 * (NULL detaches). While model->decode is set, its forward writes the new
 * rotated keys and values there and attends over the cache. */
void clora__llama_attach_cache(clora_node *attention, clora_buffer *keys, clora_buffer *values);
/* The key/value heads G and head size D of a Llama attention part. */
void clora__llama_cache_dims(const clora_node *attention, size_t *kv_heads, size_t *head_dim);

/* ---- how loaders store frozen weights (architecture.c) --------------------------------- */

/* A storage plan: model->storage and its user pointer. */
typedef struct clora__storage {
    clora_dtype (*fn)(const clora_model *model, const char *name, const size_t *shape,
                      void *user);
    void *user;
} clora__storage;
/* The plan the next model built on this thread by clora__create_with takes
 * for its build (NULL: none); loaders set it around the build and clear it. */
void clora__storage_set(const clora__storage *plan);
/* A plan that stores every frozen weight as *(clora_dtype *)user where its
 * rows are whole blocks of that type, else as F32; the sequence
 * classification heads ("classifier", "score") stay F32. */
clora_dtype clora__storage_uniform(const clora_model *model, const char *name,
                                   const size_t *shape, void *user);
/* Checks options->base_dtype: CLORA_DTYPE_AS_STORED, F32, or a type clora
 * quantizes to. */
clora_status clora__load_options_check(const char *op, const clora_load_options *options);

/* ---- loading weights (weights.c) ------------------------------------------------------------- */

/* How a checkpoint names a model's parameters (NULL: by their own names). */
typedef struct clora__weight_names {
    /* The index-th name to try for parameter `param` into out; 0 when
     * there is none left. */
    int (*candidate)(const clora_model *model, const char *param, size_t index, char *out,
                     size_t size);
    /* Parameters that may be missing (they keep their initial values). */
    int (*optional)(const clora_model *model, const char *param);
    /* File tensors that are not parameters and need no check. */
    int (*ignorable)(const clora_model *model, const char *tensor);
} clora__weight_names;
/* Fills every parameter from a safetensors file: each found (unless
 * optional) with the right shape, no file tensor left over (unless
 * ignorable). */
clora_status clora__load_weights(clora_model *model, const char *path,
                                 const clora__weight_names *names);

/* ---- Hugging Face folders (hf.c, and each architecture's file) --------------------------- */

/* An architecture Hugging Face folders hold, by config.json's model_type. */
typedef struct clora__hf_architecture {
    const char *model_type;
    /* A model of the config's sizes, every parameter at zero for the
     * checkpoint to fill (a head the file may lack, num_labels > 0,
     * initialised from `seed`); failures go into config->status. */
    clora_status (*build)(clora_model **out, clora_device *device, clora__json_fields *config,
                          size_t num_labels, uint64_t seed);
    /* How its model.safetensors names the parameters. */
    clora__weight_names names;
    /* When set, builds in place of `build` from the whole request: the
     * folder (to look at its tensors' names) and the load options. */
    clora_status (*build_from)(clora_model **out, clora_device *device,
                               clora__json_fields *config, const clora__model_folder *folder,
                               const clora_load_options *options);
} clora__hf_architecture;
extern const clora__hf_architecture clora__gpt2_hf; /* gpt2.c */
extern const clora__hf_architecture clora__bert_hf; /* bert.c */
extern const clora__hf_architecture clora__llama_hf, clora__qwen2_hf,
    clora__mistral_hf; /* llama.c */
/* The architecture of a config.json's model_type (NULL: none clora loads). */
const clora__hf_architecture *clora__hf_architecture_of(const char *model_type);

/* The checks clora__llama_create makes of a config before it builds. */
clora_status clora__llama_config_check(const clora_llama_config *c);
/* Calls visit with the name and shape of every parameter the model of
 * config c has, in the order of clora_model_param, until it returns 0
 * (for checking a file against the model before building it). */
typedef int (*clora__param_visitor)(const char *name, size_t ndim, const size_t *shape,
                                    void *user);
void clora__llama_params(const clora_llama_config *c, clora__param_visitor visit, void *user);
clora_status clora__llama_create(clora_model **out, clora_device *device,
                                 const clora_llama_config *config, uint64_t seed, int skip_init);

/* clora_model_load_hf() on a folder io has read; also what
 * clora_model_load() does with a Hugging Face folder. Frozen weights are
 * packed as base_dtype when it is a packed type (F32 and
 * CLORA_DTYPE_AS_STORED: float32). */
clora_status clora__model_from_hf(clora_model **out, clora_device *device,
                                  const clora__model_folder *folder, size_t num_labels,
                                  uint64_t seed, clora_dtype base_dtype);
/* The same with every load option (num_labels, seed, base_dtype, bert_head). */
clora_status clora__model_from_hf_with(clora_model **out, clora_device *device,
                                       const clora__model_folder *folder,
                                       const clora_load_options *options);

/* ---- BERT's heads (bert_heads.c) ------------------------------------------------------- */

/* Adds "pooler" (bert_pooler: dense (C, C) with Hugging Face's init, tanh)
 * under `parent`. */
clora_status clora__bert_add_pooler(clora_node *parent, size_t C, float std);
/* Whether an adapter file's keys were saved from the head this model runs
 * with (OK for models that are not BERT); the error names both heads. */
clora_status clora__bert_adapter_check(const clora_model *model, const clora_safetensors *file,
                                       const char *path);

/* clora_model_load_gguf() with a base_dtype (clora_load_options). */
clora_status clora__model_load_gguf(clora_model **out, clora_device *device, const char *path,
                                    clora_dtype base_dtype);

#endif /* CLORA_NN_H */
