/* text_data.c — the text files of `clora tokenize` (text_data.h): lines,
 * CSV and TSV cut up in place in the file's buffer, JSON Lines through
 * jansson. */
#include "text_data.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const text_format_names[] = {"lines", "csv", "tsv", "jsonl", NULL};

static int ends_with(const char *path, const char *ending)
{
    const size_t n = strlen(path), m = strlen(ending);
    if (n < m)
        return 0;
    for (size_t i = 0; i < m; ++i)
        if (tolower((unsigned char)path[n - m + i]) != ending[i])
            return 0;
    return 1;
}

text_format text_format_of(const char *path)
{
    return ends_with(path, ".csv")     ? TEXT_CSV
           : ends_with(path, ".tsv")   ? TEXT_TSV
           : ends_with(path, ".jsonl") ? TEXT_JSONL
                                       : TEXT_LINES;
}

const char *text_kind_name(text_kind kind)
{
    static const char *const names[] = {"labelled text", "text", "prompt/completion",
                                        "messages"};
    return names[kind];
}

#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static int fail(text_data *d, const char *format, ...)
{
    va_list args;
    va_start(args, format);
    vsnprintf(d->error, sizeof d->error, format, args);
    va_end(args);
    return 0;
}

/* A new example at the end (zeroed); NULL when out of memory. */
static text_example *add_example(text_data *d, size_t line, size_t *capacity)
{
    if (d->count == *capacity) {
        size_t next = *capacity ? 2 * *capacity : 64;
        text_example *grown = realloc(d->examples, next * sizeof *grown);
        if (!grown) {
            fail(d, "out of memory");
            return NULL;
        }
        d->examples = grown;
        *capacity = next;
    }
    text_example *e = &d->examples[d->count++];
    memset(e, 0, sizeof *e);
    e->line = line;
    return e;
}

/* ---- LABEL<TAB>TEXT lines ---------------------------------------------------------------- */

static int parse_lines(text_data *d, char *p, const char *name)
{
    size_t capacity = 0;
    for (size_t number = 1; *p; ++number) {
        char *end = strchr(p, '\n');
        char *next = end ? end + 1 : p + strlen(p);
        if (end)
            *end = '\0';
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = '\0';
        if (len > 0) {
            char *tab = strchr(p, '\t');
            if (!tab || tab == p)
                return fail(d, "%s line %zu is not LABEL<TAB>TEXT", name, number);
            *tab = '\0';
            text_example *e = add_example(d, number, &capacity);
            if (!e)
                return 0;
            e->label = p;
            e->text = tab + 1;
        }
        p = next;
    }
    return d->count ? 1 : fail(d, "%s has no LABEL<TAB>TEXT lines", name);
}

/* ---- CSV and TSV ------------------------------------------------------------------------- */

typedef struct csv_reader {
    char *p;           /* the next byte to read */
    char separator;
    size_t line;       /* the line p is on, from 1 */
    const char *name;
    char **header;     /* the column names, once read */
    size_t columns;
    char **fields;     /* the record being read: pointers into the text */
    size_t count, capacity;
} csv_reader;

/* "column 2 (\"text\")": a field by its number, and its name once the
 * header is known. */
static const char *column_name(const csv_reader *r, size_t index, char *out, size_t size)
{
    if (r->header && index < r->columns)
        snprintf(out, size, "column %zu (\"%s\")", index + 1, r->header[index]);
    else
        snprintf(out, size, "column %zu", index + 1);
    return out;
}

static int ends_record(const char *p)
{
    return *p == '\0' || *p == '\n' || (p[0] == '\r' && p[1] == '\n');
}

static int push_field(csv_reader *r, text_data *d, char *field)
{
    if (r->count == r->capacity) {
        size_t next = r->capacity ? 2 * r->capacity : 16;
        char **grown = realloc(r->fields, next * sizeof *grown);
        if (!grown)
            return fail(d, "out of memory");
        r->fields = grown;
        r->capacity = next;
    }
    r->fields[r->count++] = field;
    return 1;
}

/* One field from r->p, unquoted in place and NUL-terminated; r->p is left
 * on what ended it (a separator, a line end or the end of the text),
 * whose byte goes into *stop. */
static int read_field(csv_reader *r, text_data *d, char *stop)
{
    char *field = r->p, *write = r->p, *read = r->p;
    char where[160];
    if (*read == '"') {
        const size_t opened = r->line;
        for (++read;;) {
            if (*read == '\0')
                return fail(d, "%s line %zu, %s: the quote that opens this field is never closed",
                            r->name, opened, column_name(r, r->count, where, sizeof where));
            if (*read == '"' && read[1] == '"') {
                *write++ = '"';
                read += 2;
            } else if (*read == '"') {
                ++read;
                break;
            } else {
                r->line += *read == '\n';
                *write++ = *read++;
            }
        }
        if (*read != r->separator && !ends_record(read))
            return fail(d,
                        "%s line %zu, %s: text after the closing quote (a quote inside a "
                        "quoted field is written twice: \"\")",
                        r->name, r->line, column_name(r, r->count, where, sizeof where));
    } else {
        while (*read != r->separator && !ends_record(read))
            ++read;
        write = read;
    }
    *stop = *read;
    *write = '\0'; /* at or before read: *stop keeps what was there */
    r->p = read;
    return push_field(r, d, field);
}

/* The next record's fields into r->fields; *line is where it begins.
 * Returns 1 for a record, 0 at the end of the text, -1 after a failure.
 * Lines holding nothing are skipped. */
static int read_record(csv_reader *r, text_data *d, size_t *line)
{
    while (*r->p == '\n' || (r->p[0] == '\r' && r->p[1] == '\n')) {
        r->p += *r->p == '\r' ? 2 : 1;
        r->line++;
    }
    if (*r->p == '\0')
        return 0;
    *line = r->line;
    r->count = 0;
    char stop = 0;
    do {
        if (!read_field(r, d, &stop))
            return -1;
        r->p += stop == r->separator;
    } while (stop == r->separator);
    if (stop) { /* "\n" or "\r\n" */
        r->p += stop == '\r' ? 2 : 1;
        r->line++;
    }
    return 1;
}

/* The index of the column named `name`; fails unless there is one only. */
static int find_column(csv_reader *r, text_data *d, const char *name, const char *option,
                       size_t *index)
{
    size_t found = 0;
    for (size_t i = 0; i < r->columns; ++i)
        if (!strcmp(r->header[i], name)) {
            if (found++)
                return fail(d, "%s line 1: the header names column \"%s\" twice", r->name, name);
            *index = i;
        }
    if (found)
        return 1;
    char list[256] = "";
    for (size_t i = 0, at = 0; i < r->columns && at < sizeof list; ++i)
        at += (size_t)snprintf(list + at, sizeof list - at, "%s\"%s\"", i ? ", " : "",
                               r->header[i]);
    return fail(d, "%s line 1: no column \"%s\" (%s) in the header, which has %s%s", r->name,
                name, option, list,
                r->separator == '\t' ? "; LABEL<TAB>TEXT lines without a header are "
                                       "--format lines"
                                     : "");
}

static int parse_table(text_data *d, char *p, const char *name, char separator,
                       const char *text_column, const char *label_column)
{
    csv_reader r = {p, separator, 1, name, NULL, 0, NULL, 0, 0};
    size_t line = 0, text_at = 0, label_at = 0, capacity = 0;
    int got = read_record(&r, d, &line), ok = got > 0;
    if (got == 0)
        ok = fail(d, "%s is empty (a %s file begins with a header row)", name,
                  separator == ',' ? "CSV" : "TSV");
    if (ok) {
        r.columns = r.count;
        r.header = r.fields;
        r.fields = NULL;
        r.count = r.capacity = 0;
        ok = find_column(&r, d, text_column, "--text-column", &text_at) &&
             find_column(&r, d, label_column, "--label-column", &label_at);
    }
    while (ok && (got = read_record(&r, d, &line)) > 0) {
        char where[160];
        text_example *e = NULL;
        if (r.count != r.columns)
            ok = fail(d, "%s line %zu: %zu field%s where the header has %zu", name, line, r.count,
                      r.count == 1 ? "" : "s", r.columns);
        else if (!*r.fields[label_at])
            ok = fail(d, "%s line %zu, %s: the label is empty", name, line,
                      column_name(&r, label_at, where, sizeof where));
        else if (!(e = add_example(d, line, &capacity)))
            ok = 0;
        if (ok) {
            e->label = r.fields[label_at];
            e->text = r.fields[text_at];
        }
    }
    if (ok && got < 0)
        ok = 0;
    if (ok && !d->count)
        ok = fail(d, "%s has a header row and no rows after it", name);
    free(r.header);
    free(r.fields);
    return ok;
}

/* ---- JSON Lines -------------------------------------------------------------------------- */

static const char example_shapes[] =
    "an example is {\"text\": ...}, {\"prompt\": ..., \"completion\": ...}, {\"prompt\": ..., "
    "\"response\": ...} or {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}";

/* The conversation of "messages" into e. */
static int read_messages(text_data *d, json_t *messages, const char *name, text_example *e)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return fail(d, "%s line %zu: \"messages\" must be a list of messages, not empty", name,
                    e->line);
    e->message_count = json_array_size(messages);
    e->messages = calloc(e->message_count, sizeof *e->messages);
    if (!e->messages)
        return fail(d, "out of memory");
    size_t i;
    json_t *message;
    json_array_foreach(messages, i, message)
    {
        const char *role = json_string_value(json_object_get(message, "role"));
        const char *content = json_string_value(json_object_get(message, "content"));
        if (!json_is_object(message) || !role || !content)
            return fail(d,
                        "%s line %zu: message %zu must be {\"role\": ..., \"content\": ...} with "
                        "two strings",
                        name, e->line, i + 1);
        if (json_object_size(message) != 2) {
            const char *key;
            json_t *value;
            json_object_foreach(message, key, value)
            {
                if (strcmp(key, "role") && strcmp(key, "content"))
                    return fail(d,
                                "%s line %zu: message %zu has key \"%s\"; a message is "
                                "{\"role\": ..., \"content\": ...}",
                                name, e->line, i + 1, key);
            }
        }
        e->messages[i].role = role;
        e->messages[i].content = content;
    }
    return 1;
}

/* Whether `key` belongs in an example of `kind`. */
static int key_of(text_kind kind, const char *key)
{
    switch (kind) {
    case TEXT_PLAIN:
        return !strcmp(key, "text");
    case TEXT_PROMPTED:
        return !strcmp(key, "prompt") || !strcmp(key, "completion") || !strcmp(key, "response");
    case TEXT_CHAT:
        return !strcmp(key, "messages");
    default:
        return 0;
    }
}

/* One line's object as an example; *first is the line of the file's first
 * example, whose kind every other must have. */
static int json_example(text_data *d, json_t *o, const char *name, size_t line,
                        size_t *capacity, size_t *first)
{
    json_t *text = json_object_get(o, "text"), *prompt = json_object_get(o, "prompt");
    json_t *messages = json_object_get(o, "messages");
    json_t *completion = json_object_get(o, "completion");
    json_t *response = json_object_get(o, "response");
    if (!text && !prompt && !messages)
        return fail(d, "%s line %zu: no \"text\", \"prompt\" or \"messages\"; %s", name, line,
                    example_shapes);
    if ((text != NULL) + (prompt != NULL) + (messages != NULL) > 1)
        return fail(d, "%s line %zu: \"%s\" and \"%s\" in one example; %s", name, line,
                    text ? "text" : "prompt", messages ? "messages" : "prompt", example_shapes);
    const text_kind kind = messages ? TEXT_CHAT : prompt ? TEXT_PROMPTED : TEXT_PLAIN;
    const char *key;
    json_t *value;
    json_object_foreach(o, key, value)
    {
        if (!key_of(kind, key))
            return fail(d, "%s line %zu: unknown key \"%s\" in a %s example; %s", name, line, key,
                        text_kind_name(kind), example_shapes);
    }
    if (kind == TEXT_PROMPTED && (completion != NULL) == (response != NULL))
        return fail(d, "%s line %zu: a \"prompt\" goes with a \"completion\" or a \"response\" "
                       "(one of them)",
                    name, line);
    if (d->count && kind != d->kind)
        return fail(d, "%s line %zu: a %s example in a file of %s examples (line %zu); one file "
                       "holds one kind",
                    name, line, text_kind_name(kind), text_kind_name(d->kind), *first);
    json_t *answer = completion ? completion : response;
    if ((text && !json_is_string(text)) || (prompt && !json_is_string(prompt)) ||
        (answer && !json_is_string(answer)))
        return fail(d, "%s line %zu: \"%s\" must be a string", name, line,
                    text && !json_is_string(text)       ? "text"
                    : prompt && !json_is_string(prompt) ? "prompt"
                    : completion                        ? "completion"
                                                        : "response");
    text_example *e = add_example(d, line, capacity);
    if (!e)
        return 0;
    if (d->count == 1) {
        d->kind = kind;
        *first = line;
    }
    e->text = json_string_value(text ? text : prompt);
    e->completion = json_string_value(answer);
    return kind != TEXT_CHAT || read_messages(d, messages, name, e);
}

static int parse_jsonl(text_data *d, char *p, const char *name)
{
    if (!(d->objects = json_array()))
        return fail(d, "out of memory");
    size_t capacity = 0, first = 0;
    for (size_t number = 1; *p; ++number) {
        char *end = strchr(p, '\n');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        char *next = end ? end + 1 : p + len;
        if (strspn(p, " \t\r") < len) {
            json_error_t error;
            json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &error);
            if (!o)
                return fail(d, "%s line %zu, column %d: not JSON: %s", name, number,
                            error.column, error.text);
            if (json_array_append_new(d->objects, o) != 0)
                return fail(d, "out of memory");
            if (!json_is_object(o))
                return fail(d, "%s line %zu: not a JSON object; %s", name, number,
                            example_shapes);
            if (!json_example(d, o, name, number, &capacity, &first))
                return 0;
        }
        p = next;
    }
    return d->count ? 1 : fail(d, "%s has no examples (one JSON object a line)", name);
}

/* ---- the file ---------------------------------------------------------------------------- */

int text_data_parse(text_data *data, char *text, size_t size, const char *name,
                    text_format format, const char *text_column, const char *label_column)
{
    memset(data, 0, sizeof *data);
    data->text = text;
    const char *nul = memchr(text, '\0', size);
    if (nul) {
        size_t line = 1;
        for (const char *p = text; p < nul; ++p)
            line += *p == '\n';
        return fail(data, "%s line %zu holds a NUL byte: not a text file", name, line);
    }
    char *start = text;
    if (size >= 3 && !memcmp(text, "\xEF\xBB\xBF", 3))
        start += 3; /* the byte-order mark */
    switch (format) {
    case TEXT_CSV:
        return parse_table(data, start, name, ',', text_column, label_column);
    case TEXT_TSV:
        return parse_table(data, start, name, '\t', text_column, label_column);
    case TEXT_JSONL:
        return parse_jsonl(data, start, name);
    default:
        data->kind = TEXT_LABELLED;
        return parse_lines(data, start, name);
    }
}

int text_data_read(text_data *data, const char *path, text_format format,
                   const char *text_column, const char *label_column)
{
    memset(data, 0, sizeof *data);
    FILE *f = fopen(path, "rb");
    if (!f)
        return fail(data, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, size = 0;
    char *text = malloc(cap + 1);
    for (size_t got; text && (got = fread(text + size, 1, cap - size, f)) > 0;) {
        size += got;
        if (size == cap) {
            char *grown = realloc(text, 2 * cap + 1);
            if (!grown) {
                free(text);
                text = NULL;
                break;
            }
            text = grown;
            cap *= 2;
        }
    }
    const int failed = ferror(f);
    fclose(f);
    if (!text || failed) {
        free(text);
        return fail(data, "cannot read %s", path);
    }
    text[size] = '\0';
    return text_data_parse(data, text, size, path, format, text_column, label_column);
}

void text_data_free(text_data *data)
{
    for (size_t i = 0; i < data->count; ++i)
        free(data->examples[i].messages);
    free(data->examples);
    free(data->text);
    json_decref(data->objects);
    memset(data, 0, sizeof *data);
}
