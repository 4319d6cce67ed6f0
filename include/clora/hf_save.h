/* clora/hf_save.h — a model loaded from a Hugging Face folder, saved as one.
 *
 * clora_model_save() writes clora's own folder (its tree as config.json),
 * which transformers cannot load. clora_model_save_hf() writes what
 * transformers' save_pretrained() writes for the same weights, so that
 * from_pretrained() loads it: the source folder's own config.json (its
 * torch_dtype set to what is written), the source checkpoint's tensor
 * names, model.safetensors with metadata {"format": "pt"}, sharded as
 * transformers shards (below), and the source's tokenizer files and
 * generation_config.json copied.
 *
 * Which tensors: every tensor of the source checkpoint, under its own
 * name, and a BERT "classifier" head the source lacks (num_labels on a
 * BertModel: clora's mean-pooling classifier), as "classifier.weight" and
 * "classifier.bias" beside the BertModel's tensors, with config.json's
 * id2label and label2id for its rows; clora_model_load reads it back with
 * that head, and transformers loads it into a BertModel subclass with a
 * `classifier` Linear. A tensor that is one of the model's parameters is written with
 * the model's value (a merged adapter included); one that clora reads
 * but has no parameter for (BERT's pooler, older checkpoints' rotary
 * frequencies and attention masks) is copied from the source; a weight
 * the model ties to another (GPT-2's lm_head, and Llama's when
 * tie_word_embeddings is true) is left out, as transformers leaves it.
 *
 * Sharding (transformers 4.35 and 4.49 save_pretrained, max_shard_size
 * "5GB" = 5·10⁹ bytes): tensors in the model's parameter order, then the
 * copied ones; a tensor larger than the limit is a shard of its own, the
 * others fill a shard until the next would pass the limit. One shard is
 * model.safetensors; n > 1 are model-0000i-of-0000n.safetensors with
 * model.safetensors.index.json ({"metadata": {"total_size": bytes},
 * "weight_map": {tensor: file}}). Weight files of an earlier save in the
 * folder that this one does not write (a model.safetensors where shards
 * now go, shards of another count, an index) are removed with it.
 *
 * Every file is replaced as one group, as clora_model_save() replaces
 * its two: a failure leaves the folder as it was (a folder this call
 * created is removed again), a process killed part way leaves the old
 * group or a commit record that the next clora reader completes
 * (clora_folder_finish_save()). One process at a time may save into a
 * folder.
 */
#ifndef CLORA_HF_SAVE_H
#define CLORA_HF_SAVE_H

#include <stdint.h>

#include "clora/adapter.h"
#include "clora/model.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* transformers' default max_shard_size, "5GB". */
#define CLORA_HF_SHARD_BYTES 5000000000ull

typedef struct clora_hf_save_options {
    /* How floating tensors are written: CLORA_DTYPE_AS_STORED (each as the
     * source checkpoint stores it), or F32, F16 or BF16 (all of them,
     * rounded to nearest even; F16 refuses values beyond 65504). Integer
     * tensors are copied as they are. */
    clora_dtype dtype;
    /* The most bytes of tensors in one shard (0: CLORA_HF_SHARD_BYTES). */
    uint64_t max_shard_bytes;
} clora_hf_save_options;

/* dtype CLORA_DTYPE_AS_STORED, max_shard_bytes CLORA_HF_SHARD_BYTES. */
clora_hf_save_options clora_hf_save_options_default(void);

/* 1 when `dir` is a Hugging Face model folder (config.json with a
 * "model_type" and no clora "format"), else 0. */
int clora_hf_folder_probe(const char *dir);

/* Saves `model`, loaded from the Hugging Face folder `source_dir`, as a
 * Hugging Face folder `out_dir` (created if needed; not `source_dir`).
 * Refused, writing nothing, with a message naming the cause:
 *   CLORA_ERR_STATE    the model runs an adapter that is not merged
 *                      (a Hugging Face folder holds no adapter; merge it
 *                      or disable adapters first);
 *   CLORA_ERR_FORMAT   source_dir is not a Hugging Face folder of an
 *                      architecture clora loads;
 *   CLORA_ERR_UNSUPPORTED  a parameter of the model has no tensor of its
 *                      name and shape in the source (a head added since,
 *                      clora_model_add_classifier on GPT-2 or Llama):
 *                      transformers would name it by another class, which
 *                      the source config does not say, so save such a
 *                      model with clora_model_save();
 *   CLORA_ERR_INVALID_ARGUMENT  options out of range, or out_dir is
 *                      source_dir.
 * options NULL: the defaults. The model is not changed. */
clora_status clora_model_save_hf(clora_model *model, const char *source_dir, const char *out_dir,
                                 const clora_hf_save_options *options);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_HF_SAVE_H */
