/* token_data.c — text examples through a tokenizer into a dataset
 * (token_data.h). */
#include "token_data.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int out_of_memory(void)
{
    fprintf(stderr, "clora tokenize: out of memory\n");
    return 0;
}

void token_report_free(token_report *report)
{
    for (size_t k = 0; k < report->label_count; ++k)
        free(report->labels[k]);
    free(report->labels);
    free(report->per_label);
    memset(report, 0, sizeof *report);
}

/* ---- classification ---------------------------------------------------------------------- */

static int label_index(const token_report *r, const char *name)
{
    for (size_t i = 0; i < r->label_count; ++i)
        if (!strcmp(r->labels[i], name))
            return (int)i;
    return -1;
}

static int add_label(token_report *r, const char *name, size_t len)
{
    char **grown = realloc(r->labels, (r->label_count + 1) * sizeof *grown);
    if (!grown)
        return out_of_memory();
    r->labels = grown;
    if (!(r->labels[r->label_count] = malloc(len + 1)))
        return out_of_memory();
    memcpy(r->labels[r->label_count], name, len);
    r->labels[r->label_count++][len] = '\0';
    return 1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The class names: label_list's, or the sorted set of the file's. */
static int class_names(const text_data *text, const char *label_list, token_report *r)
{
    for (const char *p = label_list; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len && !add_label(r, p, len))
            return 0;
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; !label_list && i < text->count; ++i)
        if (label_index(r, text->examples[i].label) < 0 &&
            !add_label(r, text->examples[i].label, strlen(text->examples[i].label)))
            return 0;
    if (!label_list)
        qsort(r->labels, r->label_count, sizeof *r->labels, compare_names);
    return 1;
}

/* The class names as a JSON list (new text), NULL after a message. */
static char *names_json(const token_report *r)
{
    json_t *list = json_array();
    for (size_t k = 0; list && k < r->label_count; ++k) {
        json_t *name = json_string(r->labels[k]); /* NULL unless UTF-8 */
        if (!name) {
            fprintf(stderr, "clora tokenize: label \"%s\" is not valid UTF-8\n", r->labels[k]);
            json_decref(list);
            return NULL;
        }
        json_array_append_new(list, name);
    }
    char *json = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (list && !json)
        out_of_memory();
    return json;
}

/* One example's tokens and (causal LM) which of them are scored. */
typedef struct sequence {
    int32_t *ids;
    unsigned char *scored;
    size_t length, capacity;
    int dropped;
} sequence;

static void free_sequences(sequence *seqs, size_t count)
{
    for (size_t i = 0; seqs && i < count; ++i) {
        free(seqs[i].ids);
        free(seqs[i].scored);
    }
    free(seqs);
}

/* What padding holds: the padding id, else EOS, else 0. */
static int32_t pad_id(const clora_tokenizer *tok)
{
    return clora_tokenizer_pad(tok) >= 0   ? clora_tokenizer_pad(tok)
           : clora_tokenizer_eos(tok) >= 0 ? clora_tokenizer_eos(tok)
                                           : 0;
}

/* The `kept` sequences not dropped as "inputs" and "attention_mask", I32
 * (kept, width) each, into data: tokens, then padding with mask 0. */
static int set_tokens(dataset *data, const sequence *seqs, size_t count, size_t kept,
                      size_t width, int32_t pad)
{
    int32_t *ids = malloc(kept * width * sizeof *ids);
    int32_t *mask = malloc(kept * width * sizeof *mask);
    if (!ids || !mask) {
        free(ids);
        free(mask);
        return out_of_memory();
    }
    size_t row = 0;
    for (size_t i = 0; i < count; ++i) {
        if (seqs[i].dropped)
            continue;
        for (size_t t = 0; t < width; ++t) {
            ids[row * width + t] = t < seqs[i].length ? seqs[i].ids[t] : pad;
            mask[row * width + t] = t < seqs[i].length;
        }
        ++row;
    }
    data->count = kept;
    data->input_dtype = CLORA_DTYPE_I32;
    data->input_ndim = 1;
    data->input_shape[0] = width;
    data->input_width = width;
    data->inputs = ids;
    data->attention_mask = mask;
    return 1;
}

int tokenize_labelled(const clora_tokenizer *tok, const text_data *text, const char *path,
                      size_t max_length, const char *label_list, dataset *data,
                      token_report *report)
{
    memset(report, 0, sizeof *report);
    const size_t count = text->count;
    report->examples = count;
    if (!class_names(text, label_list, report))
        return 0;
    sequence *seqs = calloc(count, sizeof *seqs);
    int32_t *row = malloc(max_length * sizeof *row);
    int32_t *labels = malloc(count * sizeof *labels);
    report->per_label = calloc(report->label_count + 1, sizeof *report->per_label);
    char *names = NULL;
    int ok = seqs && row && labels && report->per_label ? 1 : out_of_memory();
    for (size_t i = 0; ok && i < count; ++i) {
        const text_example *e = &text->examples[i];
        const int label = label_index(report, e->label);
        size_t length = 0;
        int cut = 0;
        if (label < 0) {
            fprintf(stderr, "clora tokenize: %s line %zu: label \"%s\" is not in --labels\n",
                    path, e->line, e->label);
            ok = 0;
        } else if (clora_tokenizer_encode(tok, e->text, max_length, row, NULL, &length, &cut) !=
                   CLORA_OK) {
            fprintf(stderr, "clora tokenize: %s line %zu: %s\n", path, e->line,
                    clora_last_error());
            ok = 0;
        } else if (length && !(seqs[i].ids = malloc(length * sizeof *row))) {
            ok = out_of_memory();
        } else {
            if (length)
                memcpy(seqs[i].ids, row, length * sizeof *row);
            seqs[i].length = length;
            labels[i] = label;
            report->per_label[label]++;
            report->cut += cut != 0;
            report->tokens += length;
            report->longest = length > report->longest ? length : report->longest;
        }
    }
    report->kept = count;
    if (ok && report->longest == 0) {
        fprintf(stderr, "clora tokenize: %s: every text is empty, and the tokenizer adds no "
                        "BOS or EOS\n",
                path);
        ok = 0;
    }
    ok = ok && (names = names_json(report)) != NULL &&
         set_tokens(data, seqs, count, count, report->longest, pad_id(tok));
    free_sequences(seqs, count);
    free(row);
    if (!ok) {
        free(labels);
        free(names);
        return 0;
    }
    data->labels = labels;
    data->label_width = 1;
    data->label_names = names;
    return 1;
}

/* ---- causal LM ---------------------------------------------------------------------------- */

/* Tokenizing one example: where it is in the file, for messages. */
typedef struct encoder {
    const clora_tokenizer *tok;
    const char *path;
    const text_example *example;
    int train_on_prompt;
    sequence *s;
} encoder;

static int push_token(encoder *c, int32_t id, int scored)
{
    sequence *s = c->s;
    if (s->length == s->capacity) {
        size_t next = s->capacity ? 2 * s->capacity : 64;
        int32_t *ids = realloc(s->ids, next * sizeof *ids);
        if (ids)
            s->ids = ids;
        unsigned char *flags = ids ? realloc(s->scored, next) : NULL;
        if (!flags)
            return out_of_memory();
        s->scored = flags;
        s->capacity = next;
    }
    s->ids[s->length] = id;
    s->scored[s->length++] = (unsigned char)(scored || c->train_on_prompt);
    return 1;
}

/* The tokens of `text` (with BOS / EOS where add_special), scored or not;
 * with `turn`, an assistant's turn: scored up to its first special token,
 * the end-of-turn marker, and no further. */
static int push_text(encoder *c, const char *text, int add_special, int scored, int turn)
{
    int32_t *ids = NULL;
    size_t n = 0;
    if (clora_tokenizer_encode_text(c->tok, text, add_special, &ids, &n) != CLORA_OK) {
        fprintf(stderr, "clora tokenize: %s line %zu: %s\n", c->path, c->example->line,
                clora_last_error());
        return 0;
    }
    int ok = 1;
    for (size_t i = 0; ok && i < n; ++i) {
        ok = push_token(c, ids[i], scored);
        if (turn && clora_tokenizer_is_special(c->tok, ids[i]))
            scored = 0;
    }
    free(ids);
    return ok;
}

/* The first `count` messages in the chat template, with the assistant's
 * header after them when `prompt`. */
static int render(encoder *c, size_t count, int prompt, char **text)
{
    if (clora_tokenizer_apply_chat(c->tok, c->example->messages, count, prompt, text) ==
        CLORA_OK)
        return 1;
    fprintf(stderr, "clora tokenize: %s line %zu: formatting the conversation: %s\n", c->path,
            c->example->line, clora_last_error());
    return 0;
}

/* Pushes what `longer` adds to `shorter`; fails unless it begins with it. */
static int push_added(encoder *c, const char *shorter, const char *longer, size_t message,
                      int turn)
{
    const size_t n = strlen(shorter);
    if (strncmp(shorter, longer, n)) {
        fprintf(stderr,
                "clora tokenize: %s line %zu: the chat template does not write the "
                "conversation message by message (at message %zu), so the assistant's tokens "
                "cannot be told apart\n",
                c->path, c->example->line, message + 1);
        return 0;
    }
    return push_text(c, longer + n, 0, turn, turn);
}

/* The conversation rendered one message more at a time: each step's new
 * text is tokenized on its own, as generation sees it (a prompt ending in
 * the assistant's header, then the reply), and an assistant message's
 * text after its header is scored. */
static int encode_chat(encoder *c)
{
    char *done = NULL;
    int ok = render(c, 0, 0, &done) && push_text(c, done, 0, 0, 0);
    for (size_t i = 0; ok && i < c->example->message_count; ++i) {
        const int assistant = !strcmp(c->example->messages[i].role, "assistant");
        char *head = NULL, *next = NULL;
        if (assistant)
            ok = render(c, i, 1, &head) && push_added(c, done, head, i, 0);
        ok = ok && render(c, i + 1, 0, &next) &&
             push_added(c, head ? head : done, next, i, assistant);
        free(done);
        free(head);
        done = next;
    }
    free(done);
    return ok;
}

static int encode_example(encoder *c, text_kind kind)
{
    const text_example *e = c->example;
    if (kind == TEXT_CHAT)
        return encode_chat(c);
    if (kind == TEXT_PLAIN)
        return push_text(c, e->text, 1, 1, 0);
    const int32_t eos = clora_tokenizer_eos(c->tok);
    return (!clora_tokenizer_adds_bos(c->tok) || push_token(c, clora_tokenizer_bos(c->tok), 0)) &&
           push_text(c, e->text, 0, 0, 0) && push_text(c, e->completion, 0, 1, 0) &&
           (eos < 0 || push_token(c, eos, 1));
}

/* Whether a tokenizer can write the file's conversations; says why not. */
static int check_chat_template(const clora_tokenizer *tok, const char *path)
{
    const char *chat_template = clora_tokenizer_chat_template(tok);
    if (!chat_template) {
        fprintf(stderr,
                "clora tokenize: %s holds \"messages\", and the tokenizer ships no chat "
                "template to write them with\n",
                path);
        return 0;
    }
    if (clora_chat_template_recognize(chat_template, NULL) != CLORA_OK) {
        fprintf(stderr,
                "clora tokenize: %s holds \"messages\", and the tokenizer's chat template is "
                "none of those clora writes (ChatML, Llama 3)\n",
                path);
        return 0;
    }
    return 1;
}

/* Whether a token after the first is scored within the first `length`. */
static int has_target(const sequence *s, size_t length)
{
    for (size_t t = 1; t < length; ++t)
        if (s->scored[t])
            return 1;
    return 0;
}

/* The sequences cut to max_length, those without a target dropped, into
 * (N, T) arrays. */
static int pack(sequence *seqs, size_t count, size_t max_length, int32_t pad, dataset *data,
                token_report *report)
{
    for (size_t i = 0; i < count; ++i) {
        sequence *s = &seqs[i];
        report->cut += s->length > max_length;
        s->length = s->length < max_length ? s->length : max_length;
        s->dropped = !has_target(s, s->length);
        report->dropped += s->dropped;
        if (s->dropped)
            continue;
        report->kept++;
        report->tokens += s->length;
        report->longest = s->length > report->longest ? s->length : report->longest;
    }
    const size_t n = report->kept, width = report->longest;
    if (n == 0) {
        fprintf(stderr,
                "clora tokenize: no example has a scored token left after the cut to "
                "--max-length %zu\n",
                max_length);
        return 0;
    }
    int32_t *labels = malloc(n * width * sizeof *labels);
    if (!labels)
        return out_of_memory();
    if (!set_tokens(data, seqs, count, n, width, pad)) {
        free(labels);
        return 0;
    }
    size_t row = 0;
    for (size_t i = 0; i < count; ++i) {
        const sequence *s = &seqs[i];
        if (s->dropped)
            continue;
        for (size_t t = 0; t < width; ++t) {
            int32_t *label = &labels[row * width + t];
            *label = t + 1 < s->length && s->scored[t + 1] ? s->ids[t + 1] : -100;
            report->scored += *label != -100;
        }
        ++row;
    }
    data->labels = labels;
    data->label_width = width;
    return 1;
}

int tokenize_causal(const clora_tokenizer *tok, const text_data *text, const char *path,
                    size_t max_length, int train_on_prompt, dataset *data,
                    token_report *report)
{
    memset(report, 0, sizeof *report);
    report->examples = text->count;
    if (text->kind == TEXT_CHAT && !check_chat_template(tok, path))
        return 0;
    sequence *seqs = calloc(text->count, sizeof *seqs);
    int ok = seqs ? 1 : out_of_memory();
    for (size_t i = 0; ok && i < text->count; ++i) {
        encoder c = {tok, path, &text->examples[i], train_on_prompt, &seqs[i]};
        ok = encode_example(&c, text->kind);
    }
    ok = ok && pack(seqs, text->count, max_length, pad_id(tok), data, report);
    free_sequences(seqs, text->count);
    return ok;
}
