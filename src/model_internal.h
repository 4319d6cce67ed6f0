/* model_internal.h — the model tree's private structures, shared by
 * model.c (tree, parameters, memory), nodes.c (forward/backward of each
 * kind), adapter.c (LoRA), train.c and the file formats. */
#ifndef CLORA_MODEL_INTERNAL_H
#define CLORA_MODEL_INTERNAL_H

#include <jansson.h>

#include "clora/adapter.h"
#include "clora/model.h"
#include "clora/train.h"
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
    /* LayerNorm: C and eps; Embedding: num rows and C; Dropout: p */
    size_t features, num_embeddings;
    float eps, p;
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
    clora_buffer *saved[2];     /* LayerNorm mean, rstd; LoRA h */
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
/* Removes and frees a node's parameter. */
void clora__param_remove(clora_node *node, clora__param *param);
/* The parameter called `name` in a node, or NULL. */
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

/* ---- reduce helpers (train.c) ---------------------------------------------------- */

/* out[out_offset] = scale * sum of x (or of its squares), deterministically. */
clora_status clora__sum(clora_device *device, cl_mem out, size_t out_offset, const clora_buffer *x,
                        int square, float scale);

#endif /* CLORA_MODEL_INTERNAL_H */
