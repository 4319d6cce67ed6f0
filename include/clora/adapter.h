/* clora/adapter.h — turning Linear layers into LoRA layers, named adapters,
 * merging, and the PEFT adapter and clora model file formats.
 *
 * clora_replace_linear_with_lora() walks a subtree as the original
 * request's replace_linear_with_lora(model, rank, alpha) does and wraps
 * every matching Linear in a LoRA node whose child "base_layer" is the
 * original Linear, as PEFT names it. A LoRA node can hold several named
 * adapters; the model runs the active one (or none: base-only output), and
 * only the active adapter trains.
 *
 * Adapters are saved as PEFT LoRA adapter folders: adapter_config.json and
 * adapter_model.safetensors with keys
 *     base_model.model.<module path>.lora_A.weight   (r, in)
 *     base_model.model.<module path>.lora_B.weight   (out, r)
 * plus base_model.model.<module path>.<param> for modules_to_save. A model
 * folder is config.json (the tree) and model.safetensors (every parameter by
 * full name, LoRA nodes saved as their base Linear).
 */
#ifndef CLORA_ADAPTER_H
#define CLORA_ADAPTER_H

#include <stddef.h>
#include <stdint.h>

#include "clora/lora.h"
#include "clora/model.h"
#include "clora/status.h"
#include "clora/transformer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How lora_A starts (lora_B always starts at zero, so a new adapter changes
 * nothing until it trains). */
typedef enum clora_init_mode {
    CLORA_INIT_PEFT = 0, /* A ~ U(±1/√in): kaiming_uniform(a=√5) on PEFT's (r, in) */
    CLORA_INIT_SEED,     /* A ~ U(±1/√r): the request's LoRALayer, A_seed (in, r) */
    CLORA_INIT_GAUSSIAN  /* A ~ N(0, (1/r)²), PEFT's init_lora_weights="gaussian" */
} clora_init_mode;

/* Which biases train with an adapter (PEFT's "bias"): none, those of the
 * layers that carry it, or every parameter named "bias" in the model. A
 * trained bias is the base layer's own: it stays changed when the adapter
 * is disabled or deleted, as in PEFT, and travels in the adapter file. */
typedef enum clora_bias_mode {
    CLORA_BIAS_NONE = 0,
    CLORA_BIAS_LORA_ONLY,
    CLORA_BIAS_ALL
} clora_bias_mode;

/* A regular expression and the value it assigns (rank or alpha). */
typedef struct clora_pattern_value {
    const char *pattern;
    float value;
} clora_pattern_value;

typedef struct clora_lora_config {
    const char *adapter_name; /* NULL: "default" */
    size_t rank;              /* 1 <= r <= CLORA_MAX_RANK */
    float alpha;
    clora_scale_mode scale_mode;
    float dropout;            /* on the LoRA branch while training */
    clora_init_mode init;
    /* Which Linear layers (module paths relative to the model root):
     *  - neither list nor regex: every Linear (the request's behaviour);
     *  - target_modules: a path matches if it equals an entry or ends with
     *    "." + entry (PEFT's list rule); an entry matching nothing is an error;
     *  - target_regex: a POSIX extended regex that must match the whole path.
     * exclude_modules removes paths by the same list rule. */
    const char *const *target_modules;
    size_t target_module_count;
    const char *target_regex;
    const char *const *exclude_modules;
    size_t exclude_module_count;
    /* Per-module rank and alpha: the first pattern P for which the path
     * matches (.*\.)?(P)$ wins (PEFT's rule); other modules use rank/alpha. */
    const clora_pattern_value *rank_pattern;
    size_t rank_pattern_count;
    const clora_pattern_value *alpha_pattern;
    size_t alpha_pattern_count;
    /* Modules that stay trainable and are saved in full with the adapter
     * (a new classification head, say); list rule as for targets. */
    const char *const *modules_to_save;
    size_t modules_to_save_count;
    clora_bias_mode bias;
    /* PEFT's layers_to_transform: a target found by the list rule's suffix
     * match (not a path listed whole) is kept only when its layer index is
     * one of these. The index is the number after the first "<P>." that
     * starts the path or follows a dot, for a layers_pattern entry P (each
     * a POSIX extended regex, tried in order); with no patterns, the number
     * after the first ".<segment>.". With no target list it filters every
     * Linear (as PEFT's "all-linear" does); not with target_regex. */
    const size_t *layers_to_transform;
    size_t layers_to_transform_count;
    const char *const *layers_pattern;
    size_t layers_pattern_count;
    /* DoRA (PEFT's use_dora): each adapted weight becomes m ⊙ (W + s·B·A)
     * / ||W + s·B·A|| per output feature, with the magnitude m (out)
     * trained beside A and B and starting at ||W|| (clora/dora.h). The
     * base weights must be F32, F16 or BF16. */
    int use_dora;
} clora_lora_config;

/* rank 8, alpha 8, alpha / r, no dropout, PEFT init, every Linear. */
clora_lora_config clora_lora_config_default(void);

/* Wraps every matching Linear under `root` in a LoRA node (or adds the
 * adapter to an existing LoRA node), initialises lora_A from the model's
 * seed and lora_B at zero, makes the new adapter the active one, and
 * freezes every other parameter of the model except modules_to_save.
 * *replaced (may be NULL) counts the layers that received the adapter; a
 * layer that already has an adapter of that name is left alone, so a
 * second call with the same config returns 0. */
clora_status clora_replace_linear_with_lora(clora_node *root, const clora_lora_config *config,
                                            size_t *replaced);

/* ---- named adapters ------------------------------------------------------- */

/* Adapter names present anywhere in the model, in order of creation. */
size_t clora_model_adapter_count(clora_model *model);
const char *clora_model_adapter_name(clora_model *model, size_t index);

/* Makes `name` the active adapter on every LoRA node that has it (those
 * without it run base-only) and the only trainable LoRA parameters; NULL
 * disables all adapters: base-only output. */
clora_status clora_model_set_adapter(clora_model *model, const char *name);
/* The active adapter's name, or NULL while disabled. */
const char *clora_model_active_adapter(clora_model *model);

/* Removes an adapter everywhere; a LoRA node left without adapters turns
 * back into its base Linear. Deleting the active adapter disables adapters. */
clora_status clora_model_delete_adapter(clora_model *model, const char *name);

/* How clora_model_add_weighted_adapter() combines adapters (PEFT's
 * combination_type "linear" and "cat"). */
typedef enum clora_combination {
    CLORA_COMBINE_LINEAR = 0, /* A' = Σ sign(wᵢ)√|wᵢsᵢ|·Aᵢ, B' = Σ √|wᵢsᵢ|·Bᵢ; equal ranks */
    CLORA_COMBINE_CAT         /* A', B' the wᵢsᵢAᵢ and Bᵢ side by side: s'B'A' = Σ wᵢsᵢBᵢAᵢ */
} clora_combination;

/* Adds adapter `new_name`, made of adapters names[0..count) with weights
 * (sᵢ each one's own scale), on every layer that carries one of them, as
 * PEFT's add_weighted_adapter makes it: rank Σ rᵢ for cat (its largest per
 * adapter), the common rank for linear; scale 1 (√r' if the first adapter
 * uses rsLoRA), the first adapter's dropout and bias mode. PEFT before 0.7
 * computed linear otherwise (A' = Σ wᵢsᵢAᵢ, B' = Σ Bᵢ). A single adapter is
 * combined linearly. The new adapter is not made active (as in PEFT); on
 * failure the model is unchanged. */
clora_status clora_model_add_weighted_adapter(clora_model *model, const char *const *names,
                                              const float *weights, size_t count,
                                              const char *new_name, clora_combination how);

/* Merges the active adapter into the base weights (W += s·B·A, transposed
 * for (in, out) weights); the model then runs base-only and gives the same
 * output. CLORA_ERR_NON_FINITE, with the weights unchanged, if any merged
 * weight would be NaN or infinite; any other failure also leaves every
 * weight as it was, bit for bit. To make that so, a merge (and an unmerge)
 * holds a host copy of each weight it changes, as float32, until it has
 * changed them all. */
clora_status clora_model_merge_adapter(clora_model *model);
/* Subtracts a merged adapter again (W -= s·B·A). */
clora_status clora_model_unmerge_adapter(clora_model *model);

/* ---- files ----------------------------------------------------------------- */

/* Saves adapter `name` (NULL: the active one) as a PEFT adapter folder,
 * creating it if needed. Its two files are replaced as one: each is written
 * and flushed to a temporary, a commit record (DIR/.clora-commit) naming
 * them is written, and they are renamed into place. A failed save leaves
 * the previous adapter; a process killed part way leaves the previous one
 * or a record that completes the new one when the folder is next read.
 * One process at a time may save into a folder. */
clora_status clora_adapter_save(clora_model *model, const char *name, const char *dir);

/* Completes a save into `dir` (an adapter or model folder) that a killed
 * process left after its commit point; CLORA_OK when there is none. Every
 * clora loader and checker calls it first; a program that reads clora's
 * folders itself calls it before it reads. */
clora_status clora_folder_finish_save(const char *dir);

/* Checks a PEFT adapter folder on its own, with no model: adapter_config.json
 * (a JSON object; peft_type LORA; r an integer from 1 to CLORA_MAX_RANK;
 * lora_alpha a number; target_modules a string or a list of strings;
 * rank_pattern of ranks and alpha_pattern of numbers; the options clora
 * does not compute refused by name) and adapter_model.safetensors (lora_A
 * and lora_B in pairs, 2-D, of a floating dtype, not empty, A (r, in) and
 * B (out, r) with the rank the config gives their module; any other tensor
 * a parameter of a module modules_to_save lists). CLORA_OK, or the first
 * violation's status with a message naming the key or tensor.
 * clora_adapter_load() runs the same checks first. */
clora_status clora_adapter_check(const char *dir);

/* Loads a PEFT adapter folder as adapter `name` (NULL: "default"), wrapping
 * the layers it targets, and makes it active. Every tensor is checked
 * against the model: keys naming missing modules, modules the config
 * targets without tensors, wrong shapes and non-float dtypes are errors that
 * name them, and nothing changes in the model on error. */
clora_status clora_adapter_load(clora_model *model, const char *dir, const char *name);

/* Loads every adapter of a folder laid out as PEFT's save_pretrained lays
 * out several: "default" from `dir` itself (when it holds
 * adapter_config.json) and each sub-folder holding one under its own name,
 * in name order. All or none: on failure, the ones loaded are deleted
 * again. Then "default" (else the first) is active. *loaded (may be NULL)
 * counts them. */
clora_status clora_adapter_load_all(clora_model *model, const char *dir, size_t *loaded);

/* Saves every adapter of the model into `dir` as PEFT does: "default" in
 * `dir` itself, each other one in dir/<name>/ (each as clora_adapter_save()
 * saves one). */
clora_status clora_adapter_save_all(clora_model *model, const char *dir);

/* Saves the model (config.json + model.safetensors, replaced as one as
 * clora_adapter_save() does), LoRA nodes as their base Linear (with a
 * merged adapter included). */
clora_status clora_model_save(clora_model *model, const char *dir);

/* clora_model_save() with the frozen weights (every Linear's and
 * Embedding's 2-D weight) written as `weights`: F32 (as clora_model_save),
 * F16 or BF16 (rounded to nearest even; F16 refuses values beyond 65504).
 * Packed weights are written as the values they stand for. */
clora_status clora_model_save_as(clora_model *model, const char *dir, clora_dtype weights);

/* Loads a model folder written by clora_model_save(), a Hugging Face
 * folder (clora_model_load_hf() without labels) or a GGUF file
 * (clora_model_load_gguf()), frozen weights as the file stores them. */
clora_status clora_model_load(clora_model **out, clora_device *device, const char *dir);

/* base_dtype: store frozen weights as the file stores them. */
#define CLORA_DTYPE_AS_STORED CLORA_DTYPE_COUNT

/* How clora_model_load_with() loads a model. */
typedef struct clora_load_options {
    /* How the frozen weights (every Linear's and Embedding's 2-D weight)
     * are stored on the device:
     *   CLORA_DTYPE_AS_STORED (the default): as the file stores them: a
     *     GGUF file's tensors in their own types (F16, BF16, Q8_0, Q4_0,
     *     Q4_1, Q4_K, Q5_K, Q6_K), safetensors weights as F32;
     *   CLORA_DTYPE_F32: all float32 (GGUF's packed tensors dequantized);
     *   F16, BF16, Q8_0, Q4_0 or Q4_1: packed on load (quantized as
     *     clora_reference_quantize() does), each weight whose rows are
     *     whole blocks of the type; the others stay F32.
     * Packed weights stay frozen: making them trainable is refused, and so
     * is merging an adapter into them. Norms, biases and heads stay F32. */
    clora_dtype base_dtype;
    /* Hugging Face BERT folders: the classifier head's classes, as
     * clora_model_load_hf() takes them (0: none). */
    size_t num_labels;
    /* Initialises a head the file lacks, and drives dropout masks. */
    uint64_t seed;
    /* Hugging Face BERT folders: the head (AUTO: the checkpoint's own;
     * POOLER needs the checkpoint's pooler; MEAN on a
     * BertForSequenceClassification folder: its modules without "bert.",
     * mean pooling, its classifier when num_labels > 0, as clora loaded it
     * before it had the pooler head). */
    clora_bert_head bert_head;
} clora_load_options;

/* base_dtype CLORA_DTYPE_AS_STORED, no labels, seed 0. */
clora_load_options clora_load_options_default(void);

/* clora_model_load() with options (NULL: the defaults). */
clora_status clora_model_load_with(clora_model **out, clora_device *device, const char *path,
                                   const clora_load_options *options);

/* Checks a model folder or GGUF file as clora_model_load() would load it,
 * with no device and without reading the weights' values: the config, the
 * architecture and its sizes, and every tensor's name, shape and type
 * against the model they describe (clora_model_check_gguf() for GGUF
 * files). CLORA_OK when clora_model_load() would refuse nothing but
 * values (NaN or infinities are found when the weights are read). */
clora_status clora_model_check(const char *path);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_ADAPTER_H */
