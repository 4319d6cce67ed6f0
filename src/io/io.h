/* io.h — what the io layer's sources share and nn calls: the file formats
 * (safetensors, GGUF and its block types, JSON configs, clora and Hugging
 * Face model folders, PEFT's adapter_config.json, tokenizer files) read,
 * checked and written. io
 * knows buffers and devices (core) for the tensors it moves, nothing of
 * models: nn places what io reads. */
#ifndef CLORA_IO_H
#define CLORA_IO_H

#include <jansson.h>

#include "clora/gguf.h"
#include "clora/safetensors.h"
#include "clora/tokenizer.h"
#include "core/core.h"

/* ---- safetensors (safetensors.c) ---------------------------------------------- */

/* The chunks of a safetensors file (length, header, tensors); free *chunks
 * and *header after use. */
clora_status clora__safetensors_chunks(const clora_safetensors_writer *writer,
                                       clora__chunk **chunks, size_t *count, char **header,
                                       unsigned char length[8]);

/* ---- JSON files (json.c) ---------------------------------------------------------- */

/* Reads a JSON object file (duplicate keys rejected); CLORA_ERR_IO or
 * CLORA_ERR_FORMAT naming the file. */
clora_status clora__read_json(const char *path, json_t **out);
/* The same with more jansson decoding flags (JSON_DECODE_INT_AS_REAL). */
clora_status clora__read_json_flags(const char *path, size_t flags, json_t **out);

/* Typed fields of a config object: the first failure is kept in `status`
 * (later calls then do nothing), its message naming `path` and the key. */
typedef struct clora__json_fields {
    json_t *json;
    const char *path;
    clora_status status;
} clora__json_fields;
/* A positive integer; `fallback` (0: required) when absent or null. */
size_t clora__json_count(clora__json_fields *fields, const char *key, size_t fallback);
/* A number; `fallback` when absent or null. */
float clora__json_float(clora__json_fields *fields, const char *key, float fallback);
/* Refuses a boolean option clora does not implement unless it has the
 * value clora computes with (`supported`). */
void clora__json_require_bool(clora__json_fields *fields, const char *key, int supported);
/* A non-negative integer field into *out; 0 when it is not one. */
int clora__json_get_size(json_t *object, const char *key, size_t *out);

/* ---- tensors by name (checkpoint.c) -------------------------------------------------- */

/* A weight file opened for reading parameters by name; every tensor found
 * is marked used, so that a loader can refuse the ones it did not use.
 * When `path` (model.safetensors) does not exist but path + ".index.json"
 * does, the checkpoint is the shards that index names (Hugging Face's
 * sharded folders), each checked to hold exactly the tensors listed for
 * it; tensors are read from the memory-mapped files one at a time. */
typedef struct clora__checkpoint clora__checkpoint;
clora_status clora__checkpoint_open(clora__checkpoint **out, const char *path);
void clora__checkpoint_close(clora__checkpoint *checkpoint); /* NULL: no-op */
/* 1 and the tensor in *view when the file has `name` (marked used), else 0. */
int clora__checkpoint_find(clora__checkpoint *checkpoint, const char *name,
                           clora_tensor_view *view);
/* Tensors in the file, and the name of tensor `index` while it is unused
 * (NULL once used). */
size_t clora__checkpoint_count(const clora__checkpoint *checkpoint);
/* The elements of all its tensors together. */
uint64_t clora__checkpoint_values(const clora__checkpoint *checkpoint);
const char *clora__checkpoint_unused(const clora__checkpoint *checkpoint, size_t index);
/* Checks a tensor against dst's shape (and that it holds floats), converts
 * it to float32 and uploads it; messages name the file and `param`. */
clora_status clora__checkpoint_read(const clora__checkpoint *checkpoint,
                                    const clora_tensor_view *view, const char *param,
                                    clora_buffer *dst);

/* Adds a float32 device buffer to a writer under `name` (its shape). */
clora_status clora__writer_add_buffer(clora_safetensors_writer *writer, const char *name,
                                      const clora_buffer *value);
/* Writes a safetensors file and its JSON config as one (both or neither). */
clora_status clora__save_weights_and_config(const char *weights_path,
                                            const clora_safetensors_writer *writer,
                                            const char *config_path, json_t *config);

/* ---- model folders (model_folder.c) --------------------------------------------------- */

typedef struct clora__model_folder {
    char config_path[4096];  /* <dir>/config.json */
    char weights_path[4096]; /* <dir>/model.safetensors */
    json_t *config;          /* config.json, owned */
    int hugging_face;        /* config.json is Hugging Face's (a "model_type", no "format") */
    json_t *tree;            /* clora folders: config.json's "model" (borrowed), unchecked */
} clora__model_folder;

/* The folder's file paths only (no reading). */
clora_status clora__model_folder_paths(const char *dir, clora__model_folder *folder);
/* Reads config.json; a clora folder must name clora's format and version. */
clora_status clora__model_folder_read(const char *dir, clora__model_folder *folder);
void clora__model_folder_free(clora__model_folder *folder);
/* Creates `dir` if needed and writes config.json (clora's format around
 * `tree`, borrowed) and model.safetensors, both or neither. */
clora_status clora__model_folder_write(const char *dir, const clora_safetensors_writer *weights,
                                       json_t *tree);

/* ---- PEFT adapter configs (peft.c) ---------------------------------------------------------- */

/* adapter_config.json, checked: a LORA adapter clora can load, of a rank
 * r from 1 to max_rank. */
typedef struct clora__peft_config {
    json_t *root;     /* the whole file, owned */
    size_t r;
    double alpha;
    int rslora;
    int dora;         /* use_dora: each LoRA module has a magnitude vector too */
    double dropout;
    json_t *targets;  /* array, string or NULL (borrowed from root) */
    json_t *excludes; /* array or NULL */
    json_t *rank_pattern, *alpha_pattern; /* objects or NULL */
    json_t *saved;    /* modules_to_save: array or NULL */
    json_t *layers;   /* layers_to_transform: integer, non-empty array or NULL */
    json_t *layers_pattern; /* string, array or NULL */
    int bias;         /* clora_bias_mode: 0 "none", 1 "lora_only", 2 "all" */
} clora__peft_config;

clora_status clora__peft_config_read(const char *path, size_t max_rank,
                                     clora__peft_config *config);
void clora__peft_config_free(clora__peft_config *config);
/* PEFT's list rule: `path` equals `entry` or ends with "." + entry. */
int clora__peft_list_match(const char *path, const char *entry);
/* Whether target_modules (minus exclude_modules and modules_to_save, with
 * layers_to_transform) select module `path`:
 * 1 or 0; -1, the failure set, when memory for the match runs out. */
int clora__peft_targets(const clora__peft_config *config, const char *path);
/* PEFT's layer index of module `path`: the number after the first
 * "<pattern>." (a POSIX extended regex, tried in order) that starts the
 * path or follows a dot and is followed by a dot; with no patterns, the
 * number after the first ".<segment>.". -1 for none; -2 when memory runs
 * out (the failure set). */
long clora__peft_layer_index(const char *path, const char *const *patterns, size_t count);
/* Whether layers_to_transform (with layers_pattern) keeps module `path`:
 * 1 when the config gives no layers; -1 when memory runs out. */
int clora__peft_layer_selected(const clora__peft_config *config, const char *path);
/* Whether modules_to_save lists module `module` or one above it (task
 * SEQ_CLS: also "classifier" and "score", which PEFT saves whatever the
 * list says). */
int clora__peft_saves(const clora__peft_config *config, const char *module);
/* r and lora_alpha for one module (either may be NULL), rank_pattern and
 * alpha_pattern applied; the failure set when memory for the match runs
 * out (never read as "no pattern matches"). */
clora_status clora__peft_module(const clora__peft_config *config, const char *module,
                                size_t *rank, double *alpha);

/* What a tensor of adapter_model.safetensors is, by its name (the
 * "base_model.model." prefix optional): *key is the name without the
 * prefix, and for a LoRA matrix *module_len the length of its module path
 * at the start of *key (also for a base parameter); anything else names a
 * parameter of a module to save ("<module>.<param>"). */
typedef enum clora__peft_key_kind {
    CLORA__PEFT_SAVED = 0, /* <module>.<param> */
    CLORA__PEFT_LORA_A,    /* <module>.lora_A.weight */
    CLORA__PEFT_LORA_B,    /* <module>.lora_B.weight */
    CLORA__PEFT_BASE,      /* <module>.base_layer.{weight,bias}: a LoRA target's own
                            * parameter the adapter carries (a new head's weight) */
    CLORA__PEFT_MAGNITUDE, /* <module>.lora_magnitude_vector (out), DoRA's m (PEFT 0.21
                            * saves it so; ".weight" after it is read too) */
    CLORA__PEFT_EMBEDDING_A, /* <module>.lora_embedding_A (r, num_embeddings), no suffix */
    CLORA__PEFT_EMBEDDING_B  /* <module>.lora_embedding_B (embedding_dim, r) */
} clora__peft_key_kind;
clora__peft_key_kind clora__peft_key(const char *name, const char **key, size_t *module_len);

/* A PEFT adapter folder checked on its own (peft_check.c): the config as
 * clora__peft_config_read reads it, then every tensor of
 * adapter_model.safetensors (pairs of 2-D floating A (r, in) and B
 * (out, r) with the module's rank, and with use_dora a 1-D magnitude
 * (out) beside each, or parameters of modules_to_save). When
 * the folder passes, the config goes into *config and the open weights
 * into *weights (each may be NULL; the caller frees and closes them). */
clora_status clora__peft_check(const char *dir, size_t max_rank, clora__peft_config *config,
                               clora_safetensors **weights);

/* What an adapter clora saves tells adapter_config.json. */
typedef struct clora__peft_site {
    const char *path; /* module path */
    size_t rank;
    double alpha;     /* PEFT's lora_alpha */
} clora__peft_site;
typedef struct clora__peft_save {
    const clora__peft_site *sites; /* count >= 1; the first gives r and lora_alpha */
    size_t count;
    double dropout;
    int rslora;
    int fan_in_fan_out;            /* every site's base stores its weight (in, out) */
    const char *const *saved;      /* modules_to_save */
    size_t saved_count;
    int bias;                      /* clora_bias_mode, as clora__peft_config's */
    int dora;                      /* DoRA adapters: use_dora */
} clora__peft_save;
/* The adapter_config.json object (NULL when out of memory). */
json_t *clora__peft_config_json(const clora__peft_save *save);

/* ---- GGUF tensor types (gguf_types.c) ------------------------------------------------ */

/* The tensor types a GGUF file may hold: their sizes, and the clora dtype
 * each is stored as (the layouts are described in core/core.h). A tensor
 * is a sequence of blocks along dims[0], the fastest varying dimension.
 * Types clora knows but cannot read (Q5_0, Q5_1, Q8_1, Q2_K, Q3_K, Q8_K)
 * have their sizes only. */
typedef struct clora__quant_type {
    uint32_t id;        /* the file's number for it (clora_gguf_tensor_type) */
    const char *name;   /* "Q4_K" */
    size_t block;       /* weights per block */
    size_t bytes;       /* bytes per block */
    int readable;       /* clora dequantizes it */
    clora_dtype dtype;  /* readable: the same bytes as a clora dtype */
} clora__quant_type;

/* The type numbered `id` in a file, or NULL when clora does not know it. */
const clora__quant_type *clora__quant_find(uint32_t id);
/* Dequantizes n weights (a whole number of blocks) of a readable type from
 * `src` (n / block · bytes bytes) to float32. */
void clora__quant_dequantize(float *dst, const void *src, const clora__quant_type *type, size_t n);

/* ---- tokenizers ------------------------------------------------------------------------------
 * vocab.c           what the kinds share: growing arrays, the vocabulary, token flags
 * tokenizer.c       the front, above the kinds: loading by folder contents,
 *                   tokenizer_config.json, BOS/EOS, the public calls
 * wordpiece.c       BERT's WordPiece and vocab.txt
 * bpe.c             byte-level BPE: the byte table, merges by rank, special tokens, decoding
 * pretokenize.c     the pre-tokenizer patterns, by hand on utf8proc's categories
 * tokenizer_hf.c    tokenizer.json, vocab.json + merges.txt
 * tokenizer_gguf.c  a GGUF file's tokenizer.ggml.* metadata
 * chat_template.c   chat templates recognised and applied */

/* Growing arrays; the push and append calls return 0 when out of memory. */
typedef struct clora__ids {
    int32_t *v;
    size_t n, cap;
} clora__ids;
typedef struct clora__bytes {
    char *v; /* kept NUL-terminated once anything was appended */
    size_t n, cap;
} clora__bytes;
int clora__ids_push(clora__ids *ids, int32_t id);
int clora__bytes_append(clora__bytes *bytes, const char *s, size_t n);

/* 64-bit FNV-1a: `hash` (CLORA__FNV1A_BASIS to begin) with bytes s[0, n)
 * folded in. The vocabulary's hash and the tokenizer's fingerprint. */
#define CLORA__FNV1A_BASIS 0xcbf29ce484222325ull
uint64_t clora__fnv1a(uint64_t hash, const void *s, size_t n);
/* The same over v as 4 bytes, little-endian. */
uint64_t clora__fnv1a_u32(uint64_t hash, uint32_t v);

/* Token texts by id and a hash from text to id. Ids run from 0 to count - 1;
 * an id may have no text (a hole in a tokenizer.json vocabulary). */
typedef struct clora__vocab {
    char **tokens;  /* by id; NUL-terminated, NULL for a hole */
    size_t *lengths; /* by id */
    size_t count, capacity;
    size_t *slots; /* open addressing: id + 1, 0 when empty */
    size_t slot_count, used;
} clora__vocab;
/* Gives id the text (the text's earlier id, if any, loses its hash entry:
 * the last one set wins, as a dictionary built in order would have it). */
clora_status clora__vocab_set(clora__vocab *vocab, int32_t id, const char *text, size_t length);
int32_t clora__vocab_find(const clora__vocab *vocab, const char *text, size_t length);
void clora__vocab_free(clora__vocab *vocab);

/* What a tokenizer model (a kind) does; one table per kind, in its file. */
typedef struct clora__tokenizer_ops {
    clora_tokenizer_kind kind;
    /* Appends the ids of text[0, length) (valid UTF-8, checked), no BOS/EOS. */
    clora_status (*tokenize)(const clora_tokenizer *tokenizer, const char *text, size_t length,
                             clora__ids *out);
    /* Appends the text of ids, each already checked to have a token. */
    clora_status (*decode)(const clora_tokenizer *tokenizer, const int32_t *ids, size_t count,
                           unsigned flags, clora__bytes *out);
    /* Folds what the kind adds to the vocabulary (BPE: the merges) into
     * the FNV-1a hash of clora_tokenizer_fingerprint; NULL: nothing. */
    clora_status (*fingerprint)(const clora_tokenizer *tokenizer, uint64_t *hash);
    void (*destroy)(void *model);
} clora__tokenizer_ops;

struct clora_tokenizer {
    const clora__tokenizer_ops *ops;
    void *model;             /* the kind's own state, cast only in its file */
    clora__vocab vocab;
    unsigned char *flags;    /* by id: CLORA__TOKEN_* (ids past flag_count: none) */
    size_t flag_count;
    int32_t bos, eos, pad, unk; /* -1: none */
    int add_bos, add_eos;
    size_t max_length;       /* 0: no limit */
    char *chat_template;     /* NULL: none */
};

/* An empty tokenizer (ids -1, no model) to fill; NULL when out of memory. */
clora_tokenizer *clora__tokenizer_new(void);
enum {
    CLORA__TOKEN_SPECIAL = 1u << 0, /* left out by CLORA_DECODE_SKIP_SPECIAL */
    CLORA__TOKEN_MATCHED = 1u << 1  /* matched whole in the text, decoded as its text */
};
/* Adds flags to id's (the flags grow to the vocabulary's size). */
clora_status clora__tokenizer_mark(clora_tokenizer *tokenizer, int32_t id, unsigned flags);

/* WordPiece (wordpiece.c): the model of a vocab.txt. */
clora_status clora__wordpiece_init(clora_tokenizer *tokenizer, const char *vocab_path,
                                   const clora_wordpiece_options *options);
/* The WordPiece options of a tokenizer_config.json (already read). */
clora_status clora__wordpiece_config(json_t *config, const char *path,
                                     clora_wordpiece_options *options);

/* Pre-tokenizer patterns (pretokenize.c). */
typedef enum clora__pattern {
    CLORA__PATTERN_GPT2,   /* contractions, ?\p{L}+, ?\p{N}+, ?other+, spaces */
    CLORA__PATTERN_LLAMA3, /* any-case contractions, letters after one sign, \p{N}{1,3}, ... */
    CLORA__PATTERN_QWEN2   /* Llama 3's with \p{N} one at a time */
} clora__pattern;
/* The pattern a tokenizer.json Split regex is (its exact text); 0 when unknown. */
int clora__pattern_from_regex(const char *regex, clora__pattern *out);
const char *clora__pattern_name(clora__pattern pattern);
/* Splits code points cps[0, n) into pieces as the pattern matches them
 * (with split_digits, every \p{N} character first becomes a piece of its
 * own and the pattern runs between them). Writes the end of each piece to
 * ends (room for n) and returns the count. */
size_t clora__pretokenize(clora__pattern pattern, int split_digits, const int32_t *cps, size_t n,
                          size_t *ends);

/* Byte-level BPE (bpe.c). Build: create, set the vocabulary in the
 * tokenizer, add merges in rank order, mark the special tokens to match,
 * then finish. */
typedef struct clora__bpe_config {
    clora__pattern pattern;
    int split_digits;     /* SmolLM: every digit a piece of its own first */
    int ignore_merges;    /* a piece that is a vocabulary entry stays whole */
    int add_prefix_space; /* ByteLevel's: a space before text that does not start with one */
    int nfc;              /* the NFC normalizer */
    int after_split;      /* ByteLevel runs on the pieces of a Split or Digits */
} clora__bpe_config;
clora_status clora__bpe_init(clora_tokenizer *tokenizer, const clora__bpe_config *config);
/* Merge of rank `rank` (0 first); refused (CLORA_ERR_FORMAT, with `where`)
 * when a side or the merged text is not in the vocabulary. */
clora_status clora__bpe_add_merge(clora_tokenizer *tokenizer, const char *left, size_t left_length,
                                  const char *right, size_t right_length, const char *where);
/* A merge written "left right" (one space between). */
clora_status clora__bpe_add_merge_line(clora_tokenizer *tokenizer, const char *line,
                                       size_t length, const char *where);
/* A token matched whole in the text before pre-tokenizing; marked special
 * too unless `special` is 0 (Hugging Face's non-special added tokens).
 * lstrip / rstrip: the whitespace before / after a match goes with it. */
clora_status clora__bpe_add_matched(clora_tokenizer *tokenizer, int32_t id, int special,
                                    int lstrip, int rstrip);
/* tokenizer_config.json's add_prefix_space (transformers sets ByteLevel's
 * to it); refused where it would go before each piece of a Split. */
clora_status clora__bpe_prefix_space(clora_tokenizer *tokenizer, int on, const char *where);
/* After the vocabulary, merges and matched tokens are in. */
clora_status clora__bpe_finish(clora_tokenizer *tokenizer);

/* A GGUF file's tokenizer (tokenizer_gguf.c) into a new tokenizer. */
clora_status clora__gguf_tokenizer(clora_tokenizer *tokenizer, const clora_gguf *file,
                                   const char *path);

/* Hugging Face files (tokenizer_hf.c) into a new tokenizer's model. */
clora_status clora__hf_tokenizer_json(clora_tokenizer *tokenizer, const char *path, json_t *root);
clora_status clora__hf_vocab_merges(clora_tokenizer *tokenizer, const char *vocab_path,
                                    const char *merges_path);


#endif /* CLORA_IO_H */
