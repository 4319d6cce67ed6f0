/* bpe.c — byte-level BPE (clora/tokenizer.h): GPT-2's byte-to-character
 * table, merges by rank, the tokens matched whole in the text, encoding
 * and decoding.
 *
 * GPT-2's table gives each byte a printable character: the bytes '!'..'~',
 * 0xA1..0xAC and 0xAE..0xFF stand for themselves (as code points), the 68
 * others, in increasing order, for U+0100, U+0101, ... The vocabulary
 * and the merges are written in those characters. A piece of text becomes
 * one symbol per byte (the id of its character); the pair of neighbours
 * with the lowest merge rank (the leftmost of equal ranks) is merged into
 * its merged token until no neighbours have a merge. The pairs wait in a
 * heap; an entry whose symbols have changed since it was pushed is
 * dropped when it comes up. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "io/io.h"

#define TABLE_CHARS 324 /* the table's characters are below U+0144 */

typedef struct merge_slot {
    uint64_t key;   /* (left + 1) << 32 | right; 0 when empty */
    uint32_t rank;
    int32_t merged; /* the id of left + right */
} merge_slot;

typedef struct matched {
    int32_t id;
    unsigned char lstrip, rstrip;
} matched;

typedef struct bpe {
    clora__bpe_config config;
    int32_t byte_id[256];            /* the id of each byte's character; -1 when none */
    int16_t char_byte[TABLE_CHARS];  /* the byte a table character stands for; -1 */
    uint16_t byte_char[256];         /* the table character of each byte */
    merge_slot *merges;              /* open addressing over the pairs */
    size_t merge_slots, merge_count;
    matched *matched;                /* sorted by first byte, then longest first */
    size_t matched_count, matched_cap;
    size_t first[257];               /* matched[first[b], first[b + 1]) start with byte b */
} bpe;

static bpe *model_of(const clora_tokenizer *t)
{
    return (bpe *)t->model;
}

/* ---- the byte table ------------------------------------------------------------------------ */

static int stands_for_itself(unsigned b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

static void byte_table(bpe *m)
{
    unsigned next = 256;
    for (unsigned c = 0; c < TABLE_CHARS; ++c)
        m->char_byte[c] = -1;
    for (unsigned b = 0; b < 256; ++b) {
        m->byte_char[b] = (uint16_t)(stands_for_itself(b) ? b : next++);
        m->char_byte[m->byte_char[b]] = (int16_t)b;
    }
}

/* The table's characters of bytes s[0, n) in UTF-8 (two bytes at most
 * each) into dst; returns the length. */
static size_t to_table(const bpe *m, const unsigned char *s, size_t n, char *dst)
{
    size_t len = 0;
    for (size_t i = 0; i < n; ++i)
        len += (size_t)utf8proc_encode_char(m->byte_char[s[i]], (utf8proc_uint8_t *)dst + len);
    return len;
}

/* ---- merges ---------------------------------------------------------------------------------- */

static uint64_t pair_key(int32_t left, int32_t right)
{
    return ((uint64_t)(uint32_t)left + 1) << 32 | (uint32_t)right;
}

static size_t pair_slot(uint64_t key, size_t slots)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 17) & (slots - 1);
}

static const merge_slot *find_merge(const bpe *m, int32_t left, int32_t right)
{
    if (!m->merge_slots || left < 0 || right < 0)
        return NULL;
    const uint64_t key = pair_key(left, right);
    for (size_t i = pair_slot(key, m->merge_slots);; i = (i + 1) & (m->merge_slots - 1)) {
        if (m->merges[i].key == key)
            return &m->merges[i];
        if (m->merges[i].key == 0)
            return NULL;
    }
}

/* Inserts unless the pair is there: of repeated merges the first (lowest)
 * rank counts, as in llama.cpp. */
static void insert_merge(merge_slot *slots, size_t count, uint64_t key, uint32_t rank,
                         int32_t merged)
{
    for (size_t i = pair_slot(key, count);; i = (i + 1) & (count - 1)) {
        if (slots[i].key == key)
            return;
        if (slots[i].key == 0) {
            slots[i].key = key;
            slots[i].rank = rank;
            slots[i].merged = merged;
            return;
        }
    }
}

static clora_status grow_merges(bpe *m)
{
    size_t count = m->merge_slots ? 2 * m->merge_slots : 1024;
    merge_slot *slots = clora__calloc(count, sizeof *slots);
    if (!slots)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the merges");
    for (size_t i = 0; i < m->merge_slots; ++i)
        if (m->merges[i].key)
            insert_merge(slots, count, m->merges[i].key, m->merges[i].rank, m->merges[i].merged);
    free(m->merges);
    m->merges = slots;
    m->merge_slots = count;
    return CLORA_OK;
}

clora_status clora__bpe_add_merge(clora_tokenizer *t, const char *left, size_t left_length,
                                  const char *right, size_t right_length, const char *where)
{
    bpe *m = model_of(t);
    int32_t a = clora__vocab_find(&t->vocab, left, left_length);
    int32_t b = clora__vocab_find(&t->vocab, right, right_length);
    char *joined = clora__malloc(left_length + right_length + 1);
    if (!joined)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the merges");
    memcpy(joined, left, left_length);
    memcpy(joined + left_length, right, right_length);
    int32_t merged = clora__vocab_find(&t->vocab, joined, left_length + right_length);
    free(joined);
    if (a < 0 || b < 0 || merged < 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s: merge \"%.*s %.*s\" (rank %zu): %s", where,
                           (int)left_length, left, (int)right_length, right, m->merge_count,
                           a < 0 || b < 0 ? "a side is not in the vocabulary"
                                          : "the merged token is not in the vocabulary");
    if (2 * (m->merge_count + 1) > m->merge_slots) {
        clora_status status = grow_merges(m);
        if (status != CLORA_OK)
            return status;
    }
    insert_merge(m->merges, m->merge_slots, pair_key(a, b), (uint32_t)m->merge_count, merged);
    m->merge_count++;
    return CLORA_OK;
}

clora_status clora__bpe_add_merge_line(clora_tokenizer *t, const char *line, size_t length,
                                       const char *where)
{
    /* the first space splits: "Ġ t" is Ġ and t. A side is never empty. */
    const char *space = length > 1 ? memchr(line + 1, ' ', length - 1) : NULL;
    if (!space || space + 1 == line + length)
        return clora__fail(CLORA_ERR_FORMAT, "%s: merge \"%.*s\" is not \"left right\"", where,
                           (int)length, line);
    return clora__bpe_add_merge(t, line, (size_t)(space - line), space + 1,
                                (size_t)(line + length - space - 1), where);
}

/* ---- tokens matched whole -------------------------------------------------------------------- */

clora_status clora__bpe_add_matched(clora_tokenizer *t, int32_t id, int special, int lstrip,
                                    int rstrip)
{
    bpe *m = model_of(t);
    if (id < 0 || (size_t)id >= t->vocab.count || !t->vocab.tokens[id])
        return clora__fail(CLORA_ERR_FORMAT, "added token id %d has no text", (int)id);
    if (t->vocab.lengths[id] == 0)
        return clora__fail(CLORA_ERR_FORMAT, "added token id %d is empty", (int)id);
    clora_status status =
        clora__tokenizer_mark(t, id, CLORA__TOKEN_MATCHED | (special ? CLORA__TOKEN_SPECIAL : 0));
    if (status != CLORA_OK)
        return status;
    for (size_t i = 0; i < m->matched_count; ++i)
        if (m->matched[i].id == id) {
            m->matched[i].lstrip = (unsigned char)(m->matched[i].lstrip || lstrip);
            m->matched[i].rstrip = (unsigned char)(m->matched[i].rstrip || rstrip);
            return CLORA_OK;
        }
    if (m->matched_count == m->matched_cap) {
        size_t next = m->matched_cap ? 2 * m->matched_cap : 32;
        matched *grown = clora__realloc(m->matched, next * sizeof *grown);
        if (!grown)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the added tokens");
        m->matched = grown;
        m->matched_cap = next;
    }
    m->matched[m->matched_count].id = id;
    m->matched[m->matched_count].lstrip = (unsigned char)(lstrip != 0);
    m->matched[m->matched_count].rstrip = (unsigned char)(rstrip != 0);
    m->matched_count++;
    return CLORA_OK;
}

clora_status clora__bpe_prefix_space(clora_tokenizer *t, int on, const char *where)
{
    bpe *m = model_of(t);
    if (on && m->config.after_split)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: add_prefix_space with a pre-tokenizer that splits first; clora "
                           "adds the space to the text, not to each piece",
                           where);
    m->config.add_prefix_space = on != 0;
    return CLORA_OK;
}

clora_status clora__bpe_finish(clora_tokenizer *t)
{
    bpe *m = model_of(t);
    for (unsigned b = 0; b < 256; ++b) {
        char s[4];
        unsigned char byte = (unsigned char)b;
        size_t n = to_table(m, &byte, 1, s);
        m->byte_id[b] = clora__vocab_find(&t->vocab, s, n);
    }
    /* by first byte, longest first (insertion sort: a few hundred tokens) */
    for (size_t i = 1; i < m->matched_count; ++i) {
        matched x = m->matched[i];
        size_t j = i;
        const clora__vocab *v = &t->vocab;
        for (; j > 0; --j) {
            const matched *y = &m->matched[j - 1];
            unsigned char fx = (unsigned char)v->tokens[x.id][0];
            unsigned char fy = (unsigned char)v->tokens[y->id][0];
            int before = fx < fy || (fx == fy && (v->lengths[x.id] > v->lengths[y->id] ||
                                                  (v->lengths[x.id] == v->lengths[y->id] &&
                                                   x.id < y->id)));
            if (!before)
                break;
            m->matched[j] = *y;
        }
        m->matched[j] = x;
    }
    size_t k = 0;
    for (unsigned b = 0; b <= 256; ++b) {
        while (k < m->matched_count && (unsigned char)t->vocab.tokens[m->matched[k].id][0] < b)
            ++k;
        m->first[b] = b == 256 ? m->matched_count : k;
    }
    return CLORA_OK;
}

/* ---- encoding -------------------------------------------------------------------------------- */

/* Scratch space of one encoding call, grown as needed. */
typedef struct scratch {
    int32_t *cps;   /* code points of a stretch of text */
    size_t *offset; /* the byte offset of each, and one past the end */
    size_t *ends;   /* the pieces' ends */
    size_t cp_cap;
    int32_t *id;    /* symbols: id (-2 once merged away), neighbours */
    int32_t *prev, *next;
    struct entry {
        uint32_t rank;
        int32_t left, right, left_id, right_id;
    } *heap;
    size_t heap_n, sym_cap, heap_cap;
    char *text;     /* a piece in table characters (ignore_merges) */
    size_t text_cap;
} scratch;

static void scratch_free(scratch *s)
{
    free(s->cps);
    free(s->offset);
    free(s->ends);
    free(s->id);
    free(s->prev);
    free(s->next);
    free(s->heap);
    free(s->text);
}

/* A capacity of at least `need`, doubling from `cap`. */
static size_t capacity_for(size_t cap, size_t need)
{
    size_t next = cap ? cap : 64;
    while (next < need)
        next *= 2;
    return next;
}

/* p reallocated to n elements of `size` bytes into *out; 0 (and p kept)
 * when out of memory. */
static int resize(void *p, size_t n, size_t size, void **out)
{
    void *grown = clora__realloc(p, n * size);
    if (grown)
        *out = grown;
    return grown != NULL;
}

/* Room for n symbols. */
static int grow_symbols(scratch *s, size_t n)
{
    if (n <= s->sym_cap)
        return 1;
    const size_t cap = capacity_for(s->sym_cap, n);
    void *id = s->id, *prev = s->prev, *next = s->next;
    int ok = resize(id, cap, sizeof *s->id, &id);
    s->id = id;
    ok = ok && resize(prev, cap, sizeof *s->prev, &prev);
    s->prev = prev;
    ok = ok && resize(next, cap, sizeof *s->next, &next);
    s->next = next;
    if (ok)
        s->sym_cap = cap;
    return ok;
}

/* Room for n code points, their offsets and one more. */
static int grow_text(scratch *s, size_t n)
{
    if (n + 1 <= s->cp_cap)
        return 1;
    const size_t cap = capacity_for(s->cp_cap, n + 1);
    void *cps = s->cps, *offset = s->offset, *ends = s->ends;
    int ok = resize(cps, cap, sizeof *s->cps, &cps);
    s->cps = cps;
    ok = ok && resize(offset, cap, sizeof *s->offset, &offset);
    s->offset = offset;
    ok = ok && resize(ends, cap, sizeof *s->ends, &ends);
    s->ends = ends;
    if (ok)
        s->cp_cap = cap;
    return ok;
}

static int heap_before(const struct entry *a, const struct entry *b)
{
    return a->rank < b->rank || (a->rank == b->rank && a->left < b->left);
}

static int heap_push(scratch *s, struct entry e)
{
    if (s->heap_n == s->heap_cap) {
        const size_t cap = capacity_for(s->heap_cap, s->heap_n + 1);
        void *heap = s->heap;
        if (!resize(heap, cap, sizeof *s->heap, &heap))
            return 0;
        s->heap = heap;
        s->heap_cap = cap;
    }
    size_t i = s->heap_n++;
    while (i > 0 && heap_before(&e, &s->heap[(i - 1) / 2])) {
        s->heap[i] = s->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    s->heap[i] = e;
    return 1;
}

static struct entry heap_pop(scratch *s)
{
    struct entry top = s->heap[0], last = s->heap[--s->heap_n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= s->heap_n)
            break;
        if (c + 1 < s->heap_n && heap_before(&s->heap[c + 1], &s->heap[c]))
            ++c;
        if (!heap_before(&s->heap[c], &last))
            break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (s->heap_n)
        s->heap[i] = last;
    return top;
}

/* Queues the merge of symbols left and right, if they have one. */
static int try_pair(const bpe *m, scratch *s, int32_t left, int32_t right)
{
    if (left < 0 || right < 0)
        return 1;
    const merge_slot *merge = find_merge(m, s->id[left], s->id[right]);
    if (!merge)
        return 1;
    struct entry e = {merge->rank, left, right, s->id[left], s->id[right]};
    return heap_push(s, e);
}

/* The ids of one piece's bytes. */
static clora_status encode_piece(const clora_tokenizer *t, scratch *s, const unsigned char *b,
                                 size_t n, clora__ids *out)
{
    const bpe *m = model_of(t);
    if (n == 0)
        return CLORA_OK;
    if (m->config.ignore_merges && n > 1) {
        if (2 * n > s->text_cap) {
            const size_t cap = capacity_for(s->text_cap, 2 * n);
            void *text = s->text;
            if (!resize(text, cap, 1, &text))
                return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
            s->text = text;
            s->text_cap = cap;
        }
        int32_t whole = clora__vocab_find(&t->vocab, s->text, to_table(m, b, n, s->text));
        if (whole >= 0)
            return clora__ids_push(out, whole)
                       ? CLORA_OK
                       : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    }
    if (!grow_symbols(s, n))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    for (size_t i = 0; i < n; ++i) {
        s->id[i] = m->byte_id[b[i]];
        s->prev[i] = (int32_t)i - 1;
        s->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; ++i)
        if (!try_pair(m, s, (int32_t)i, (int32_t)i + 1))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    while (s->heap_n) {
        struct entry e = heap_pop(s);
        if (s->id[e.left] != e.left_id || s->next[e.left] != e.right ||
            s->id[e.right] != e.right_id)
            continue; /* stale: a side has merged since */
        const merge_slot *merge = find_merge(m, e.left_id, e.right_id);
        s->id[e.left] = merge->merged;
        s->id[e.right] = -2;
        s->next[e.left] = s->next[e.right];
        if (s->next[e.right] >= 0)
            s->prev[s->next[e.right]] = e.left;
        if (!try_pair(m, s, s->prev[e.left], e.left) ||
            !try_pair(m, s, e.left, s->next[e.left]))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    }
    /* a byte whose character is not in the vocabulary has no id: it is
     * left out, as both references do without an unknown token */
    for (int32_t i = 0; i >= 0; i = s->next[i])
        if (s->id[i] >= 0 && !clora__ids_push(out, s->id[i]))
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    return CLORA_OK;
}

/* A stretch of text between matched tokens: normalised, pre-tokenized,
 * each piece merged. */
static clora_status encode_plain(const clora_tokenizer *t, scratch *s, const char *text, size_t n,
                                 clora__ids *out)
{
    const bpe *m = model_of(t);
    if (n == 0)
        return CLORA_OK;
    utf8proc_uint8_t *normalised = NULL;
    char *prefixed = NULL;
    clora_status status = CLORA_OK;
    if (m->config.nfc) {
        utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n,
                                            &normalised, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (len < 0)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "normalising: %s",
                               utf8proc_errmsg(len));
        text = (const char *)normalised;
        n = (size_t)len;
    }
    if (m->config.add_prefix_space && text[0] != ' ') {
        if (!(prefixed = clora__malloc(n + 1))) {
            free(normalised);
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
        }
        prefixed[0] = ' ';
        memcpy(prefixed + 1, text, n);
        text = prefixed;
        n += 1;
    }
    if (!grow_text(s, n))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
    size_t count = 0;
    for (size_t i = 0; status == CLORA_OK && i < n; ++count) {
        utf8proc_int32_t c;
        utf8proc_ssize_t k =
            utf8proc_iterate((const utf8proc_uint8_t *)text + i, (utf8proc_ssize_t)(n - i), &c);
        if (k <= 0) { /* checked before; normalising keeps it valid */
            status = clora__fail(CLORA_ERR_INVALID_ARGUMENT, "the text is not valid UTF-8");
            break;
        }
        s->cps[count] = c;
        s->offset[count] = i;
        i += (size_t)k;
    }
    if (status == CLORA_OK) {
        s->offset[count] = n;
        size_t pieces = clora__pretokenize(m->config.pattern, m->config.split_digits, s->cps,
                                           count, s->ends);
        for (size_t p = 0, start = 0; status == CLORA_OK && p < pieces; ++p) {
            size_t from = s->offset[start], to = s->offset[s->ends[p]];
            status = encode_piece(t, s, (const unsigned char *)text + from, to - from, out);
            start = s->ends[p];
        }
    }
    free(prefixed);
    free(normalised);
    return status;
}

/* The longest matched token at text[i] (of n), or NULL. */
static const matched *match_at(const clora_tokenizer *t, const char *text, size_t i, size_t n)
{
    const bpe *m = model_of(t);
    const unsigned char b = (unsigned char)text[i];
    for (size_t k = m->first[b]; k < m->first[b + 1]; ++k) {
        size_t len = t->vocab.lengths[m->matched[k].id];
        if (len <= n - i && !memcmp(text + i, t->vocab.tokens[m->matched[k].id], len))
            return &m->matched[k];
    }
    return NULL;
}

/* The length of the UTF-8 White_Space character at s (of n bytes), or 0. */
static size_t space_at(const char *s, size_t n)
{
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &c);
    int space = k > 0 && ((c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 ||
                          c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 ||
                          c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000);
    return space ? (size_t)k : 0;
}

static clora_status tokenize(const clora_tokenizer *t, const char *text, size_t n, clora__ids *out)
{
    scratch s;
    memset(&s, 0, sizeof s);
    clora_status status = CLORA_OK;
    size_t start = 0;
    for (size_t i = 0; i < n && status == CLORA_OK;) {
        const matched *found = model_of(t)->matched_count ? match_at(t, text, i, n) : NULL;
        if (!found) {
            ++i;
            continue;
        }
        size_t stretch_end = i;
        if (found->lstrip) /* the whitespace before goes with the token */
            while (stretch_end > start) {
                size_t back = stretch_end - 1;
                while (back > start && ((unsigned char)text[back] & 0xC0) == 0x80)
                    --back;
                if (!space_at(text + back, stretch_end - back))
                    break;
                stretch_end = back;
            }
        status = encode_plain(t, &s, text + start, stretch_end - start, out);
        if (status == CLORA_OK && !clora__ids_push(out, found->id))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "tokenizing");
        i += t->vocab.lengths[found->id];
        for (size_t k; found->rstrip && (k = space_at(text + i, n - i)) > 0;)
            i += k;
        start = i;
    }
    if (status == CLORA_OK)
        status = encode_plain(t, &s, text + start, n - start, out);
    scratch_free(&s);
    return status;
}

/* ---- decoding -------------------------------------------------------------------------------- */

static clora_status decode_ids(const clora_tokenizer *t, const int32_t *ids, size_t count,
                               unsigned flags, clora__bytes *out)
{
    const bpe *m = model_of(t);
    for (size_t i = 0; i < count; ++i) {
        const int32_t id = ids[i];
        const unsigned f = (size_t)id < t->flag_count ? t->flags[id] : 0;
        const char *token = t->vocab.tokens[id];
        const size_t n = t->vocab.lengths[id];
        if ((flags & CLORA_DECODE_SKIP_SPECIAL) && (f & CLORA__TOKEN_SPECIAL))
            continue;
        /* table characters back to bytes; a token with another character
         * (a matched token, or a vocabulary entry outside the table) is
         * its own text */
        const size_t before = out->n;
        int raw = (f & CLORA__TOKEN_MATCHED) != 0;
        for (size_t j = 0; !raw && j < n;) {
            utf8proc_int32_t c;
            utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)token + j,
                                                  (utf8proc_ssize_t)(n - j), &c);
            if (k <= 0 || c >= TABLE_CHARS || m->char_byte[c] < 0) {
                raw = 1;
                break;
            }
            const char byte = (char)m->char_byte[c];
            if (!clora__bytes_append(out, &byte, 1))
                return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "decoding");
            j += (size_t)k;
        }
        if (raw) {
            out->n = before;
            if (!clora__bytes_append(out, token, n))
                return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "decoding");
        }
    }
    return CLORA_OK;
}

/* The merges in rank order, each as its left and right ids (4 bytes,
 * little-endian, each); a pair given again at a later rank never applies
 * and is left out. */
static clora_status fingerprint(const clora_tokenizer *t, uint64_t *hash)
{
    const bpe *m = model_of(t);
    if (!m->merge_count)
        return CLORA_OK;
    uint64_t *by_rank = clora__calloc(m->merge_count, sizeof *by_rank); /* pair keys; 0: none */
    if (!by_rank)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the tokenizer's fingerprint");
    for (size_t i = 0; i < m->merge_slots; ++i)
        if (m->merges[i].key)
            by_rank[m->merges[i].rank] = m->merges[i].key;
    for (size_t r = 0; r < m->merge_count; ++r) {
        if (!by_rank[r])
            continue;
        *hash = clora__fnv1a_u32(*hash, (uint32_t)((by_rank[r] >> 32) - 1));
        *hash = clora__fnv1a_u32(*hash, (uint32_t)by_rank[r]);
    }
    free(by_rank);
    return CLORA_OK;
}

static void destroy(void *model)
{
    bpe *m = model;
    free(m->merges);
    free(m->matched);
    free(m);
}

static const clora__tokenizer_ops bpe_ops = {
    .kind = CLORA_TOKENIZER_BPE,
    .tokenize = tokenize,
    .decode = decode_ids,
    .fingerprint = fingerprint,
    .destroy = destroy,
};

clora_status clora__bpe_init(clora_tokenizer *t, const clora__bpe_config *config)
{
    bpe *m = clora__calloc(1, sizeof *m);
    if (!m)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "the BPE model");
    m->config = *config;
    byte_table(m);
    for (unsigned b = 0; b < 256; ++b)
        m->byte_id[b] = -1;
    t->ops = &bpe_ops;
    t->model = m;
    return CLORA_OK;
}
