/* clora/tokenizer.h — tokenizers: BERT's WordPiece and byte-level BPE
 * (GPT-2, SmolLM, Llama 3, Qwen2), one type for both; and the chat
 * templates models ship.
 *
 * WordPiece, as Hugging Face's BertTokenizer computes it. Text (UTF-8)
 * goes through the basic tokenizer: control characters dropped, whitespace
 * unified, spaces put around CJK ideographs, NFC normalisation, splitting
 * on whitespace; then per word lower-casing and accent stripping (NFD,
 * combining marks dropped) where configured, and splitting off every
 * punctuation character. Each piece is then split greedily into the
 * longest vocabulary entries, continuations prefixed with "##"; a word
 * with no such split, or longer than 100 characters, becomes [UNK]. The
 * special tokens ([CLS], [SEP], [PAD], [MASK], [UNK]) written literally in
 * the text stay whole. Lower-casing is Python's str.lower() applied to one
 * character at a time, as BertTokenizer does it (U+0130 becomes two
 * characters; a capital sigma always becomes σ). Hugging Face's fast
 * (Rust) tokenizer differs from BertTokenizer in rare cases; clora follows
 * BertTokenizer.
 *
 * Byte-level BPE, as Hugging Face's tokenizers and llama.cpp compute it.
 * Special tokens (added tokens, GGUF control and user-defined tokens)
 * written in the text are matched first, the longest at the leftmost
 * place, and stay whole. The rest is split into pieces by the model's
 * pre-tokenizer pattern (GPT-2's, Llama 3's or Qwen2's, optionally after
 * isolating every digit, as SmolLM does), each piece's bytes are written
 * as GPT-2's byte-to-character table gives them, and merges are applied
 * lowest rank first (the leftmost of equal ranks first); with
 * ignore_merges (Llama 3) a piece that is a whole vocabulary entry is that
 * entry. Decoding maps the characters back to bytes, so text → ids → text
 * gives back the same bytes for any valid UTF-8 without U+0000 (the
 * encoding functions take NUL-terminated text), but for the bytes whose
 * characters the vocabulary lacks: those have no id and are left out, as
 * both references leave them out (SmolLM2's vocabulary lacks a few control
 * bytes, such as 0x04).
 *
 * Unicode data (categories, case mapping, normalisation) comes from
 * utf8proc. A tokenizer is immutable once loaded: any number of threads
 * may use one at the same time.
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

/* A tokenizer from a model folder, from the first of these it has:
 *   tokenizer.json with a BPE model, a ByteLevel decoder and one of the
 *     pre-tokenizers clora knows: ByteLevel (GPT-2's pattern); a Sequence
 *     of Digits (individual_digits) and ByteLevel (SmolLM's); a Sequence
 *     of Split (GPT-2's, Llama 3's or Qwen2's pattern, exactly as those
 *     models write it) and ByteLevel without a pattern of its own.
 *     Normalizer null or NFC; added_tokens matched in the text;
 *     ignore_merges kept; BOS / EOS from a TemplateProcessing
 *     post-processor. A tokenizer.json of another model (BERT's
 *     WordPiece) defers to vocab.txt;
 *   vocab.json + merges.txt (GPT-2's files; "<|endoftext|>" is special);
 *   vocab.txt: WordPiece with the options of tokenizer_config.json
 *     (do_lower_case, strip_accents, tokenize_chinese_chars).
 * Then tokenizer_config.json, where it exists, gives bos_token, eos_token,
 * pad_token, add_bos_token, add_eos_token, add_prefix_space, chat_template,
 * model_max_length and added_tokens_decoder. Anything clora would tokenize differently (another
 * pattern, normalizer, decoder, model option) is CLORA_ERR_UNSUPPORTED
 * naming it; a folder without these files is CLORA_ERR_IO. */
clora_status clora_tokenizer_load(clora_tokenizer **out, const char *dir);

void clora_tokenizer_destroy(clora_tokenizer *tokenizer);

size_t clora_tokenizer_vocab_size(const clora_tokenizer *tokenizer);
/* The id of a vocabulary entry, or -1. */
int32_t clora_tokenizer_token_id(const clora_tokenizer *tokenizer, const char *token);
/* The text of an id, or NULL when out of range. */
const char *clora_tokenizer_token(const clora_tokenizer *tokenizer, int32_t id);
/* The longest encoding tokenizer_config.json allows (0: no limit). */
size_t clora_tokenizer_max_length(const clora_tokenizer *tokenizer);

/* The ids of `text` (no special tokens added): clora_tokenizer_encode_text
 * without add_special. */
clora_status clora_tokenizer_tokenize(const clora_tokenizer *tokenizer, const char *text,
                                      int32_t **ids, size_t *count);

/* A fixed-length encoding: BOS, the text's tokens, EOS (WordPiece: [CLS]
 * text [SEP]; BPE: BOS and EOS where the tokenizer adds them), the text's
 * tokens cut so that the whole fits max_length (which must leave room for
 * BOS and EOS), then padding up to max_length: ids and attention mask (1
 * for tokens, 0 for padding) of max_length entries each (mask may be
 * NULL). *length (may be NULL) receives the tokens before padding,
 * *truncated (may be NULL) whether tokens were cut. A tokenizer without a
 * padding id pads with EOS, or with 0 when it has neither. */
clora_status clora_tokenizer_encode(const clora_tokenizer *tokenizer, const char *text,
                                    size_t max_length, int32_t *ids, int32_t *mask,
                                    size_t *length, int *truncated);

/* ---- byte-level BPE and the common interface ------------------------------------- */

typedef enum clora_tokenizer_kind {
    CLORA_TOKENIZER_WORDPIECE = 0,
    CLORA_TOKENIZER_BPE = 1 /* byte-level BPE */
} clora_tokenizer_kind;

/* A byte-level BPE tokenizer from a GGUF file's tokenizer.ggml.* metadata:
 * model "gpt2"; tokens, merges ("left right"), token_type (control and
 * user-defined tokens are special and matched in the text), the bos, eos,
 * padding and unknown ids, add_bos_token, add_eos_token,
 * tokenizer.chat_template, and tokenizer.ggml.pre, one of: "gpt-2" (also
 * "gpt2"), "smollm" and "starcoder" (digits one by one, then GPT-2's
 * pattern), "llama-bpe" (also "llama3", "llama-v3": Llama 3's pattern,
 * ignore_merges, BOS added unless the file says otherwise), "qwen2".
 * Others are refused by name (CLORA_ERR_UNSUPPORTED). */
clora_status clora_tokenizer_load_gguf(clora_tokenizer **out, const char *path);

clora_tokenizer_kind clora_tokenizer_get_kind(const clora_tokenizer *tokenizer);

/* Special ids, -1 when the tokenizer has none. WordPiece: [CLS] is the
 * BOS, [SEP] the EOS, [PAD] the padding. */
int32_t clora_tokenizer_bos(const clora_tokenizer *tokenizer);
int32_t clora_tokenizer_eos(const clora_tokenizer *tokenizer);
int32_t clora_tokenizer_pad(const clora_tokenizer *tokenizer);
/* Whether encoding with add_special puts BOS first / EOS last (WordPiece:
 * both). */
int clora_tokenizer_adds_bos(const clora_tokenizer *tokenizer);
int clora_tokenizer_adds_eos(const clora_tokenizer *tokenizer);
/* Whether id is a special token (added, control or user-defined; for
 * WordPiece the bracketed five); 0 when out of range. */
int clora_tokenizer_is_special(const clora_tokenizer *tokenizer, int32_t id);
/* The chat template the model ships (Jinja text), or NULL. Borrowed: valid
 * while the tokenizer lives. */
const char *clora_tokenizer_chat_template(const clora_tokenizer *tokenizer);

/* What the token ids of this tokenizer mean, as 16 lower-case hex digits
 * and a NUL in out: the 64-bit FNV-1a hash (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3) of these bytes in order: the
 * kind (clora_tokenizer_kind, one byte); for every id from 0, its token's
 * length in bytes (4 bytes, little-endian; 0xFFFFFFFF for an id without a
 * token) and its bytes; for byte-level BPE then every merge in rank order
 * as the ids of its left and right token (4 bytes, little-endian, each;
 * a pair given again at a later rank never applies and is left out).
 * Tokenizers with the same fingerprint give the same ids the same tokens
 * (the pre-tokenizer and the special-token settings are not in it).
 * Datasets record it so that training can refuse ids made by another
 * tokenizer. CLORA_ERR_OUT_OF_HOST_MEMORY is possible (BPE). */
clora_status clora_tokenizer_fingerprint(const clora_tokenizer *tokenizer, char out[17]);

/* The ids of `text` in a new array *ids of *count entries (free() it; NULL
 * when empty). Special tokens written in the text are matched; with
 * add_special, BOS and EOS are added as the tokenizer's configuration says
 * (WordPiece: [CLS] ... [SEP]). Nothing is cut to max_length.
 * CLORA_ERR_INVALID_ARGUMENT if the text is not valid UTF-8 (the message
 * names the byte). */
clora_status clora_tokenizer_encode_text(const clora_tokenizer *tokenizer, const char *text,
                                         int add_special, int32_t **ids, size_t *count);

/* The text of `count` ids in a new buffer *text of *length bytes, followed
 * by a NUL (free() it). Byte-level BPE gives the exact bytes (a part of a
 * sequence may end inside a UTF-8 character); special tokens give their
 * text. WordPiece joins the tokens with spaces, continuations ("##")
 * without. CLORA_ERR_INVALID_ARGUMENT for an id outside the vocabulary. */
clora_status clora_tokenizer_decode(const clora_tokenizer *tokenizer, const int32_t *ids,
                                    size_t count, char **text, size_t *length);

/* The same, leaving out special tokens (BOS, EOS, control tokens) when
 * CLORA_DECODE_SKIP_SPECIAL is in flags. */
enum { CLORA_DECODE_SKIP_SPECIAL = 1u << 0 };
clora_status clora_tokenizer_decode_flags(const clora_tokenizer *tokenizer, const int32_t *ids,
                                          size_t count, unsigned flags, char **text,
                                          size_t *length);

/* ---- chat templates ---------------------------------------------------------------- */

/* One turn of a conversation; role is "system", "user", "assistant"... */
typedef struct clora_chat_message {
    const char *role;
    const char *content;
} clora_chat_message;

typedef enum clora_chat_format {
    CLORA_CHAT_CHATML = 0, /* <|im_start|>role\ncontent<|im_end|>\n (SmolLM2, Qwen2) */
    CLORA_CHAT_LLAMA3 = 1  /* BOS <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|> */
} clora_chat_format;

/* Recognises a chat template as one of the formats clora writes by the
 * text that decides its output (layout of the template and its whitespace
 * control aside): plain ChatML, ChatML with a default system message when
 * the conversation has none (SmolLM2's, Qwen2's), and Llama 3's (content
 * trimmed, BOS first). Anything else, or NULL, is CLORA_ERR_UNSUPPORTED,
 * with a message that says to format the prompt yourself. *format may be
 * NULL. */
clora_status clora_chat_template_recognize(const char *chat_template, clora_chat_format *format);

/* The prompt text the template gives for `count` messages (count may be
 * 0), followed by the assistant's header when add_generation_prompt: what
 * Hugging Face's apply_chat_template renders (Jinja, trim_blocks and
 * lstrip_blocks). bos_token is the text the template writes for BOS
 * (Llama 3's; may be NULL for the others). Encode the result without
 * add_special: the template writes BOS itself where it wants one. *text is
 * new (free() it). */
clora_status clora_chat_apply(const char *chat_template, const char *bos_token,
                              const clora_chat_message *messages, size_t count,
                              int add_generation_prompt, char **text);

/* clora_chat_apply with the tokenizer's chat template and BOS text;
 * CLORA_ERR_NOT_FOUND when the model ships no template. */
clora_status clora_tokenizer_apply_chat(const clora_tokenizer *tokenizer,
                                        const clora_chat_message *messages, size_t count,
                                        int add_generation_prompt, char **text);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_TOKENIZER_H */
