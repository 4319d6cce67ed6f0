/* models.h — how the `clora` commands open models: clora model folders,
 * Hugging Face GPT-2, BERT and Llama-family folders and GGUF files, with an
 * optional adapter; their tokenizers; and the token-id lists they take on
 * the command line. */
#ifndef CLORA_TOOLS_MODELS_H
#define CLORA_TOOLS_MODELS_H

#include <stddef.h>
#include <stdint.h>

#include "clora/clora.h"

typedef enum model_family {
    FAMILY_CLORA, /* a clora model folder */
    FAMILY_GPT2,  /* a Hugging Face GPT-2 folder: ids in, (B, T, V) logits out */
    FAMILY_BERT,  /* a Hugging Face BERT folder: ids in, pooled (B, C) or (B, classes) out */
    FAMILY_LLAMA  /* a Llama-family folder (llama, qwen2, mistral) or GGUF file: as GPT-2 */
} model_family;

/* The family of a model folder, from its config.json; FAMILY_CLORA when it
 * is not a Hugging Face folder (clora_model_load reports the rest). */
model_family model_family_of(const char *dir);

/* The rows of the head an adapter folder carries: BERT's "classifier"
 * (modules_to_save), a decoder's "score" (in full, or its base_layer under
 * LoRA), or 0. */
size_t adapter_classes(const char *adapter_dir);

/* The classes of a BertForSequenceClassification folder's own classifier
 * (config.json's id2label), or 0 for any other folder. */
size_t bert_sequence_labels(const char *dir);

/* --base-dtype, one option table row for every command that loads a
 * model's weights: how frozen weights are stored on the device. */
extern const char *const base_dtype_choices[]; /* "stored", "f32", "f16", ... */
#define BASE_DTYPE_OPTION(dest)                                                               \
    {CLI_OPT("--base-dtype", CLI_CHOICE, (dest), "TYPE",                                   \
             "how frozen weights are stored on the device: stored (as the file stores "    \
             "them: a GGUF file's own types, safetensors as f32), f32, or packed on load " \
             "as f16, bf16, q8_0, q4_0 or q4_1 (packed weights stay frozen)"),             \
     .choices = base_dtype_choices, .fallback = "stored"}
/* The dtype a --base-dtype choice stands for (CLORA_DTYPE_AS_STORED for
 * "stored"). */
clora_dtype base_dtype_of(int choice);

/* Opens `dir` on the device, frozen weights stored as `base_dtype` (a
 * --base-dtype choice). BERT folders get a classification head of
 * `classes` labels (0: the adapter's, if it carries one, else none; a
 * BertForSequenceClassification folder keeps its own classifier, which
 * `classes` must not exceed), and the pooler head when the adapter adapts
 * or saves the pooler;
 * decoders get a sequence classifier when the adapter carries one;
 * `seed` initialises a new head and drives dropout. Then loads `adapter`
 * (may be NULL) as "default", or, when it has sub-folders holding adapters
 * (PEFT's layout for several), every adapter in it, and makes
 * `adapter_name` (may be NULL: "default") the active one. Prints a
 * one-line error for `command` and returns 0 on failure. */
int open_model(const char *command, clora_device *device, const char *dir, const char *adapter,
               const char *adapter_name, size_t classes, uint64_t seed, int base_dtype,
               clora_model **out, model_family *family);

/* open_model() with a BERT head (AUTO: as open_model chooses it). */
int open_model_with_head(const char *command, clora_device *device, const char *dir,
                         const char *adapter, const char *adapter_name, size_t classes,
                         uint64_t seed, int base_dtype,
                         clora_bert_head bert_head, clora_model **out, model_family *family);

/* The tokenizer of `path`: a GGUF file (by its ending or its magic) or a
 * model folder. Prints a one-line error for `command` and returns 0 on
 * failure. */
int open_tokenizer(const char *command, const char *path, clora_tokenizer **out);

/* The same without a message: 0 when `path` has no tokenizer clora reads. */
int find_tokenizer(const char *path, clora_tokenizer **out);

/* "1,2,3" into a new array of ids (free() it); prints an error naming
 * `option` and returns 0 when the list is empty or malformed. */
int parse_ids(const char *command, const char *option, const char *text, int32_t **ids,
              size_t *count);

/* A prompt's ids: --tokens parsed, or --prompt through the tokenizer:
 * with `chat`, one user turn (after a system turn when `system` is not
 * NULL) in the model's chat template, ready for the assistant; else the
 * text with BOS/EOS as the tokenizer's config says (WordPiece: [CLS] text
 * [SEP], cut to the longest encoding). New array in *ids (free() it);
 * prints an error for `command` and returns 0 on failure. */
int prompt_ids(const char *command, const clora_tokenizer *tok, const char *prompt, int chat,
               const char *system, const char *tokens, int32_t **ids, size_t *count);

#endif /* CLORA_TOOLS_MODELS_H */
