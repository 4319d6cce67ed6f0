/* vocab.c — what every tokenizer kind shares and builds on: growing
 * arrays, the vocabulary (token texts by id, a hash from text to id), and
 * the tokenizer object's per-token flags. */
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

/* ---- growing arrays --------------------------------------------------------------------- */

int clora__ids_push(clora__ids *a, int32_t id)
{
    if (a->n == a->cap) {
        size_t next = a->cap ? 2 * a->cap : 64;
        int32_t *grown = clora__realloc(a->v, next * sizeof *grown);
        if (!grown)
            return 0;
        a->v = grown;
        a->cap = next;
    }
    a->v[a->n++] = id;
    return 1;
}

int clora__bytes_append(clora__bytes *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t next = b->cap ? b->cap : 256;
        while (next < b->n + n + 1)
            next *= 2;
        char *grown = clora__realloc(b->v, next);
        if (!grown)
            return 0;
        b->v = grown;
        b->cap = next;
    }
    if (n)
        memcpy(b->v + b->n, s, n);
    b->n += n;
    b->v[b->n] = '\0';
    return 1;
}

/* ---- the vocabulary ----------------------------------------------------------------------- */

uint64_t clora__fnv1a(uint64_t hash, const void *s, size_t n)
{
    const unsigned char *p = s;
    for (size_t i = 0; i < n; ++i)
        hash = (hash ^ p[i]) * 0x100000001b3ull;
    return hash;
}

uint64_t clora__fnv1a_u32(uint64_t hash, uint32_t v)
{
    const unsigned char le[4] = {(unsigned char)v, (unsigned char)(v >> 8),
                                 (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    return clora__fnv1a(hash, le, sizeof le);
}

static uint64_t hash_bytes(const char *s, size_t n)
{
    return clora__fnv1a(CLORA__FNV1A_BASIS, s, n);
}

static int same_text(const clora__vocab *v, size_t id, const char *s, size_t n)
{
    return v->tokens[id] && v->lengths[id] == n && !memcmp(v->tokens[id], s, n);
}

int32_t clora__vocab_find(const clora__vocab *v, const char *s, size_t n)
{
    if (!v->slot_count)
        return -1;
    const size_t mask = v->slot_count - 1;
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        size_t id = v->slots[i];
        if (id == 0)
            return -1;
        if (same_text(v, id - 1, s, n))
            return (int32_t)(id - 1);
    }
}

/* Points the text's slot at id (a new slot if the text has none). */
static void hash_insert(clora__vocab *v, size_t id)
{
    const size_t mask = v->slot_count - 1;
    const char *s = v->tokens[id];
    const size_t n = v->lengths[id];
    for (size_t i = hash_bytes(s, n) & mask;; i = (i + 1) & mask) {
        size_t slot = v->slots[i];
        if (slot == 0) {
            v->slots[i] = id + 1;
            v->used++;
            return;
        }
        if (same_text(v, slot - 1, s, n)) {
            v->slots[i] = id + 1;
            return;
        }
    }
}

static clora_status rehash(clora__vocab *v, size_t slot_count)
{
    size_t *slots = clora__calloc(slot_count, sizeof *slots);
    if (!slots)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the vocabulary's hash");
    free(v->slots);
    v->slots = slots;
    v->slot_count = slot_count;
    v->used = 0;
    /* in id order, so that of equal texts the highest id stays: the last set */
    for (size_t id = 0; id < v->count; ++id)
        if (v->tokens[id])
            hash_insert(v, id);
    return CLORA_OK;
}

/* The table grows to the largest id, so a file's ids are bounded: far
 * above the largest vocabularies (256,000 tokens), far below what a
 * stranger's file could make clora allocate (16 bytes an id). */
#define MAX_TOKEN_ID ((1 << 22) - 1)

clora_status clora__vocab_set(clora__vocab *v, int32_t id, const char *text, size_t length)
{
    if (id < 0)
        return clora__fail(CLORA_ERR_FORMAT, "token id %d is negative", (int)id);
    if (id > MAX_TOKEN_ID)
        return clora__fail(CLORA_ERR_FORMAT,
                           "token id %d is above clora's limit of %d (the largest vocabularies "
                           "have some 256,000 tokens)",
                           (int)id, MAX_TOKEN_ID);
    const size_t at = (size_t)id;
    if (at >= v->capacity) {
        size_t next = v->capacity ? v->capacity : 1024;
        while (next <= at)
            next *= 2;
        char **tokens = clora__realloc(v->tokens, next * sizeof *tokens);
        if (tokens)
            v->tokens = tokens;
        size_t *lengths = tokens ? clora__realloc(v->lengths, next * sizeof *lengths) : NULL;
        if (!tokens || !lengths)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the vocabulary");
        v->lengths = lengths;
        memset(v->tokens + v->capacity, 0, (next - v->capacity) * sizeof *tokens);
        memset(v->lengths + v->capacity, 0, (next - v->capacity) * sizeof *lengths);
        v->capacity = next;
    }
    char *copy = clora__malloc(length + 1);
    if (!copy)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the vocabulary");
    memcpy(copy, text, length);
    copy[length] = '\0';
    int replaced = v->tokens[at] != NULL;
    free(v->tokens[at]);
    v->tokens[at] = copy;
    v->lengths[at] = length;
    if (at >= v->count)
        v->count = at + 1;
    if (replaced) /* the old text's slot may point here: start the hash afresh */
        return rehash(v, v->slot_count);
    if (2 * (v->used + 1) > v->slot_count) {
        clora_status status = rehash(v, v->slot_count ? 2 * v->slot_count : 1024);
        if (status != CLORA_OK)
            return status;
        return CLORA_OK; /* the rehash inserted id */
    }
    hash_insert(v, at);
    return CLORA_OK;
}

void clora__vocab_free(clora__vocab *v)
{
    for (size_t i = 0; i < v->count; ++i)
        free(v->tokens[i]);
    free(v->tokens);
    free(v->lengths);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

/* ---- the tokenizer ------------------------------------------------------------------------ */

clora_tokenizer *clora__tokenizer_new(void)
{
    clora_tokenizer *t = clora__calloc(1, sizeof *t);
    if (t)
        t->bos = t->eos = t->pad = t->unk = -1;
    return t;
}

clora_status clora__tokenizer_mark(clora_tokenizer *t, int32_t id, unsigned flags)
{
    if (id < 0 || (size_t)id >= t->vocab.count)
        return clora__fail(CLORA_ERR_FORMAT, "special token id %d is outside the vocabulary",
                           (int)id);
    if ((size_t)id >= t->flag_count) {
        unsigned char *grown = clora__realloc(t->flags, t->vocab.count);
        if (!grown)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the special tokens");
        memset(grown + t->flag_count, 0, t->vocab.count - t->flag_count);
        t->flags = grown;
        t->flag_count = t->vocab.count;
    }
    t->flags[id] |= (unsigned char)flags;
    return CLORA_OK;
}

