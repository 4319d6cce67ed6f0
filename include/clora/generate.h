/* clora/generate.h — text generation with a key/value cache, and sampling.
 *
 * A session holds, for each attention layer of a Llama-family model, the
 * rotated keys and values of every token fed so far, on the device, for
 * `rows` sequences of up to `capacity` tokens each. Feeding tokens runs
 * only the new ones through the model: the prompt in one pass (prefill),
 * then one token per step, each costing one row through every Linear and
 * attention over the row's cache, and only each row's last position goes
 * through lm_head. Rows keep their own lengths, so sequences of different
 * lengths share one batch. An adapter active on the model applies to the
 * new tokens unmerged, as in a full forward.
 *
 * The model runs in evaluation mode (no dropout) and must not change
 * (adapters added, removed, merged or switched) while a session is open:
 * reset the session after such a change. Not thread-safe.
 */
#ifndef CLORA_GENERATE_H
#define CLORA_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "clora/model.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_session clora_session;

/* A session over `model` (borrowed, must outlive it; a model built by
 * clora_model_create_llama or loaded from a Llama-family folder or GGUF
 * file) for `rows` sequences of up to `capacity` tokens. The caches take
 * rows * capacity * 2 * layers * kv_heads * head_dim floats of device
 * memory. */
clora_status clora_session_create(clora_session **out, clora_model *model, size_t rows,
                                  size_t capacity);
void clora_session_destroy(clora_session *session); /* NULL: no-op */

size_t clora_session_rows(const clora_session *session);
size_t clora_session_capacity(const clora_session *session);
/* Tokens row `row` holds (0 for a row out of range). */
size_t clora_session_length(const clora_session *session, size_t row);
/* Every row back to empty. */
void clora_session_reset(clora_session *session);
/* The vocabulary size V of the model's logits. */
size_t clora_session_vocab_size(const clora_session *session);

/* Appends counts[r] tokens to each row r, read from ids + r * width
 * (width >= every count; counts of 0 leave a row as it is), runs them, and
 * writes each row's logits after its last new token into logits + r * V
 * (rows with a count of 0 are not written). CLORA_ERR_INVALID_ARGUMENT
 * when a row would pass the capacity or an id is outside the vocabulary;
 * the session is then unchanged. */
clora_status clora_session_feed(clora_session *session, const int32_t *ids,
                                const size_t *counts, size_t width, float *logits);

/* ---- sampling ---------------------------------------------------------------------- */

typedef struct clora_sampling {
    float temperature; /* divides the logits; 0: greedy (the largest logit) */
    size_t top_k;      /* sample among the k most likely; 0: all */
    float top_p;       /* then among the most likely whose probabilities reach p; 1: all */
} clora_sampling;

/* Greedy: temperature 0, top_k 0, top_p 1. */
clora_sampling clora_sampling_greedy(void);

/* The next token from V logits: greedy, or drawn (with probabilities
 * softmax(logits / temperature) restricted to top_k, then to the smallest
 * set of most likely tokens whose probabilities sum to at least top_p)
 * using and advancing *rng, so the same seed gives the same tokens. Ties
 * go to the smaller id. -1 for a NULL or empty input. */
int32_t clora_sample(const float *logits, size_t vocab, const clora_sampling *sampling,
                     uint64_t *rng);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_GENERATE_H */
