/* session.c — generation sessions (clora/generate.h): per-layer key/value
 * caches for a Llama-family model, fed a few tokens per row at a time.
 *
 * A feed runs the trunk on the new tokens only (ids (B, T) with each row's
 * positions lengths[b] + t), with model->decode telling the attention parts
 * to write their keys and values into the cache and attend over it; then
 * each row's last new hidden state goes through lm_head alone. */
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

struct clora_session {
    clora_model *model;
    clora_node *trunk, *lm_head;
    size_t rows, capacity, vocab, features;
    size_t layer_count;
    clora_node **attention;  /* each layer's self_attn */
    clora_buffer **keys;     /* per layer (B, G, S, D) */
    clora_buffer **values;
    size_t *lengths;         /* (B) tokens per row */
    /* the step's inputs, sized for the last width */
    clora_buffer *ids, *positions; /* int32 (B, T) */
    clora_buffer *d_lengths, *d_counts; /* int32 (B) */
    clora_buffer *last;      /* (B, 1, C) */
    float *host_logits;      /* (B, V) */
};

void clora_session_destroy(clora_session *s)
{
    if (!s)
        return;
    for (size_t l = 0; l < s->layer_count; ++l) {
        if (s->attention && s->attention[l])
            clora__llama_attach_cache(s->attention[l], NULL, NULL);
        if (s->keys)
            clora_buffer_destroy(s->keys[l]);
        if (s->values)
            clora_buffer_destroy(s->values[l]);
    }
    clora_buffer *own[] = {s->ids, s->positions, s->d_lengths, s->d_counts, s->last};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; ++i)
        clora_buffer_destroy(own[i]);
    free(s->attention);
    free(s->keys);
    free(s->values);
    free(s->lengths);
    free(s->host_logits);
    free(s);
}

/* The trunk, lm_head and attention parts of a Llama-family tree. */
static clora_status find_parts(clora_session *s)
{
    clora_node *root = clora_model_root(s->model);
    s->trunk = clora__child(root, "model");
    s->lm_head = clora__child(root, "lm_head");
    clora_node *layers = s->trunk ? clora__child(s->trunk, "layers") : NULL;
    if (!s->trunk || s->trunk->kind != &clora__llama_model_kind || !layers || !s->lm_head ||
        !clora__linear_of(s->lm_head))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "clora_session_create: the model is not a Llama-family language "
                           "model (model, lm_head); sessions cache Llama attention");
    s->layer_count = layers->child_count;
    s->attention = clora__calloc(s->layer_count ? s->layer_count : 1, sizeof *s->attention);
    s->keys = clora__calloc(s->layer_count ? s->layer_count : 1, sizeof *s->keys);
    s->values = clora__calloc(s->layer_count ? s->layer_count : 1, sizeof *s->values);
    if (!s->attention || !s->keys || !s->values)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_session_create");
    for (size_t l = 0; l < s->layer_count; ++l) {
        clora_node *attn = clora__child(layers->children[l], "self_attn");
        if (!attn || attn->kind != &clora__llama_attention_kind)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "clora_session_create: layer %zu has no llama attention", l);
        s->attention[l] = attn;
    }
    clora__linear_dims_of(s->lm_head, &s->features, &s->vocab, NULL);
    return CLORA_OK;
}

clora_status clora_session_create(clora_session **out, clora_model *model, size_t rows,
                                  size_t capacity)
{
    if (!out || !model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_session_create: NULL argument");
    *out = NULL;
    if (rows == 0 || capacity == 0 || rows > (1u << 20) || capacity > (1u << 24))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_session_create: %zu rows of %zu tokens (each 1 .. 2^20 rows, "
                           "2^24 tokens)",
                           rows, capacity);
    clora_session *s = clora__calloc(1, sizeof *s);
    if (!s)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_session_create");
    s->model = model;
    s->rows = rows;
    s->capacity = capacity;
    clora_status status = find_parts(s);
    if (status == CLORA_OK && (!(s->lengths = clora__calloc(rows, sizeof *s->lengths)) ||
                               !(s->host_logits = clora__malloc(rows * s->vocab * sizeof(float)))))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_session_create");
    for (size_t l = 0; l < s->layer_count && status == CLORA_OK; ++l) {
        size_t G = 0, D = 0;
        clora__llama_cache_dims(s->attention[l], &G, &D);
        const size_t shape[4] = {rows, G, capacity, D};
        if ((status = clora_buffer_create(&s->keys[l], model->device, 4, shape)) ||
            (status = clora_buffer_create(&s->values[l], model->device, 4, shape)))
            break;
        clora__buffer_set_category(s->keys[l], CLORA_MEMORY_ACTIVATIONS);
        clora__buffer_set_category(s->values[l], CLORA_MEMORY_ACTIVATIONS);
        clora__llama_attach_cache(s->attention[l], s->keys[l], s->values[l]);
    }
    const size_t last_shape[3] = {rows, 1, s->features};
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->d_lengths, model->device, CLORA_DTYPE_I32, 1, &rows,
                                      NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->d_counts, model->device, CLORA_DTYPE_I32, 1, &rows,
                                      NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->last, model->device, CLORA_DTYPE_F32, 3, last_shape,
                                      NULL);
    if (status != CLORA_OK) {
        clora_session_destroy(s);
        return status;
    }
    *out = s;
    return CLORA_OK;
}

size_t clora_session_rows(const clora_session *s)
{
    return s ? s->rows : 0;
}

size_t clora_session_capacity(const clora_session *s)
{
    return s ? s->capacity : 0;
}

size_t clora_session_vocab_size(const clora_session *s)
{
    return s ? s->vocab : 0;
}

size_t clora_session_length(const clora_session *s, size_t row)
{
    return s && row < s->rows ? s->lengths[row] : 0;
}

void clora_session_reset(clora_session *s)
{
    if (s)
        memset(s->lengths, 0, s->rows * sizeof *s->lengths);
}

/* The step's ids, positions, lengths and counts onto the device. */
static clora_status upload_step(clora_session *s, const int32_t *ids, const size_t *counts,
                                size_t width)
{
    const size_t B = s->rows, shape[2] = {B, width};
    int32_t *host = clora__malloc((2 * B * width + 2 * B) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "clora_session_feed");
    int32_t *pos = host + B * width, *len = pos + B * width, *cnt = len + B;
    for (size_t b = 0; b < B; ++b) {
        for (size_t t = 0; t < width; ++t) {
            host[b * width + t] = t < counts[b] ? ids[b * width + t] : 0;
            pos[b * width + t] = (int32_t)(s->lengths[b] + t);
        }
        len[b] = (int32_t)s->lengths[b];
        cnt[b] = (int32_t)counts[b];
    }
    clora_status status =
        clora__buffer_ensure(&s->ids, s->model->device, CLORA_DTYPE_I32, 2, shape, NULL);
    if (status == CLORA_OK)
        status = clora__buffer_ensure(&s->positions, s->model->device, CLORA_DTYPE_I32, 2, shape,
                                      NULL);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(s->ids, 0, host, B * width);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(s->positions, 0, pos, B * width);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(s->d_lengths, 0, len, B);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(s->d_counts, 0, cnt, B);
    free(host);
    return status;
}

clora_status clora_session_feed(clora_session *s, const int32_t *ids, const size_t *counts,
                                size_t width, float *logits)
{
    if (!s || !ids || !counts || !logits)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_session_feed: NULL argument");
    clora_model *model = s->model;
    if (model->training)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_session_feed: the model is training; generation runs in "
                           "evaluation mode (clora_model_set_training(model, 0))");
    size_t fed = 0;
    for (size_t b = 0; b < s->rows; ++b) {
        if (counts[b] > width)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "clora_session_feed: row %zu has %zu tokens in a width of %zu", b,
                               counts[b], width);
        if (s->lengths[b] + counts[b] > s->capacity)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "clora_session_feed: row %zu would hold %zu tokens; the session "
                               "holds %zu per row",
                               b, s->lengths[b] + counts[b], s->capacity);
        for (size_t t = 0; t < counts[b]; ++t)
            if (ids[b * width + t] < 0 || (size_t)ids[b * width + t] >= s->vocab)
                return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                                   "clora_session_feed: token id %d (row %zu) is outside [0, %zu)",
                                   (int)ids[b * width + t], b, s->vocab);
        fed += counts[b];
    }
    if (fed == 0)
        return CLORA_OK;
    clora_status status = clora__model_refresh(model);
    if (status == CLORA_OK)
        status = upload_step(s, ids, counts, width);
    if (status != CLORA_OK)
        return status;
    const clora__decode_step step = {s->d_lengths, s->d_counts};
    const clora_buffer *saved_positions = model->positions, *saved_mask = model->attention_mask;
    model->positions = s->positions;
    model->attention_mask = NULL;
    model->decode = &step;
    const clora_buffer *h = NULL, *y = NULL;
    status = clora__node_forward(s->trunk, s->ids, &h);
    if (status == CLORA_OK)
        status = clora__last_rows(s->last, h, s->d_counts);
    if (status == CLORA_OK)
        status = clora__node_forward(s->lm_head, s->last, &y);
    model->decode = NULL;
    model->positions = saved_positions;
    model->attention_mask = saved_mask;
    model->has_forward = 0; /* nothing a backward could follow */
    if (status == CLORA_OK)
        status = clora_buffer_download(y, 0, s->host_logits, s->rows * s->vocab);
    if (status != CLORA_OK)
        return status;
    for (size_t b = 0; b < s->rows; ++b) {
        if (counts[b] == 0)
            continue;
        memcpy(logits + b * s->vocab, s->host_logits + b * s->vocab, s->vocab * sizeof *logits);
        s->lengths[b] += counts[b];
    }
    return CLORA_OK;
}
