/* clora/tokenizer.h — BERT's WordPiece tokenizer, as Hugging Face's
 * BertTokenizer computes it.
 *
 * Text (UTF-8) goes through the basic tokenizer: control characters
 * dropped, whitespace unified, spaces put around CJK ideographs, NFC
 * normalisation, splitting on whitespace; then per word lower-casing and
 * accent stripping (NFD, combining marks dropped) where configured, and
 * splitting off every punctuation character. Each piece is then split
 * greedily into the longest vocabulary entries, continuations prefixed with
 * "##"; a word with no such split, or longer than 100 characters, becomes
 * [UNK]. The special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) written
 * literally in the text stay whole.
 *
 * Unicode data (categories, case mapping, normalisation) comes from
 * utf8proc. Lower-casing is Python's str.lower() applied to one character
 * at a time, as BertTokenizer does it (U+0130 becomes two characters; a
 * capital sigma always becomes σ). Hugging Face's fast (Rust) tokenizer
 * differs from BertTokenizer in rare cases; clora follows BertTokenizer.
 */
#ifndef CLORA_TOKENIZER_H
#define CLORA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_tokenizer clora_tokenizer;

typedef struct clora_wordpiece_options {
    int lower_case;             /* do_lower_case */
    int strip_accents;          /* -1: as lower_case (Hugging Face's null), 0 or 1 */
    int tokenize_chinese_chars; /* spaces around CJK ideographs */
    size_t model_max_length;    /* the longest encoding; 0: no limit */
} clora_wordpiece_options;

/* Uncased BERT's: lower-casing on, accents as lower_case, CJK on, 512. */
clora_wordpiece_options clora_wordpiece_options_default(void);

/* A tokenizer from a vocab.txt (one token per line; its line number is its
 * id). The file must hold [UNK], [CLS], [SEP] and [PAD]. */
clora_status clora_tokenizer_load_vocab(clora_tokenizer **out, const char *vocab_path,
                                        const clora_wordpiece_options *options);

/* A tokenizer from a model folder: vocab.txt, with the options of
 * tokenizer_config.json (do_lower_case, strip_accents,
 * tokenize_chinese_chars, model_max_length) where it exists. */
clora_status clora_tokenizer_load(clora_tokenizer **out, const char *dir);

void clora_tokenizer_destroy(clora_tokenizer *tokenizer);

size_t clora_tokenizer_vocab_size(const clora_tokenizer *tokenizer);
/* The id of a vocabulary entry, or -1. */
int32_t clora_tokenizer_token_id(const clora_tokenizer *tokenizer, const char *token);
/* The text of an id, or NULL when out of range. */
const char *clora_tokenizer_token(const clora_tokenizer *tokenizer, int32_t id);
/* The longest encoding tokenizer_config.json allows (0: no limit). */
size_t clora_tokenizer_max_length(const clora_tokenizer *tokenizer);

/* The word-piece ids of `text` (no special tokens added) in a new array
 * *ids of *count entries (free() it; NULL when empty).
 * CLORA_ERR_INVALID_ARGUMENT if the text is not valid UTF-8. */
clora_status clora_tokenizer_tokenize(const clora_tokenizer *tokenizer, const char *text,
                                      int32_t **ids, size_t *count);

/* [CLS] text [SEP], the text's tokens cut so that the whole fits
 * max_length (>= 2), then [PAD] up to max_length: ids and attention mask
 * (1 for tokens, 0 for padding) of max_length entries each (mask may be
 * NULL). *length (may be NULL) receives the tokens before padding,
 * *truncated (may be NULL) whether tokens were cut. */
clora_status clora_tokenizer_encode(const clora_tokenizer *tokenizer, const char *text,
                                    size_t max_length, int32_t *ids, int32_t *mask,
                                    size_t *length, int *truncated);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_TOKENIZER_H */
