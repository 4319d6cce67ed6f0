/* text_data.h — the text files `clora tokenize` reads, parsed into
 * examples before any tokenizer sees them: LABEL<TAB>TEXT lines, CSV and
 * TSV with a header row (RFC 4180 quoting), and JSON Lines of texts,
 * prompts with completions, or chat conversations. */
#ifndef CLORA_TOOLS_TEXT_DATA_H
#define CLORA_TOOLS_TEXT_DATA_H

#include <jansson.h>
#include <stddef.h>

#include "clora/tokenizer.h"

typedef enum text_format { TEXT_LINES, TEXT_CSV, TEXT_TSV, TEXT_JSONL } text_format;

/* "lines", "csv", "tsv", "jsonl" in the order of text_format, then NULL. */
extern const char *const text_format_names[];

/* The format a file name's ending gives: .csv, .tsv, .jsonl (any case);
 * anything else is TEXT_LINES. */
text_format text_format_of(const char *path);

/* What the examples of a file are. One file holds one kind. */
typedef enum text_kind {
    TEXT_LABELLED, /* a label and a text: classification (lines, CSV, TSV) */
    TEXT_PLAIN,    /* {"text": ...}: a causal-LM text */
    TEXT_PROMPTED, /* {"prompt": ..., "completion" or "response": ...} */
    TEXT_CHAT      /* {"messages": [{"role": ..., "content": ...}, ...]} */
} text_kind;

/* "labelled text", "text", "prompt/completion", "messages". */
const char *text_kind_name(text_kind kind);

typedef struct text_example {
    size_t line;                  /* where it begins in the file, from 1 */
    const char *label;            /* TEXT_LABELLED */
    const char *text;             /* TEXT_LABELLED, TEXT_PLAIN; TEXT_PROMPTED: the prompt */
    const char *completion;       /* TEXT_PROMPTED */
    clora_chat_message *messages; /* TEXT_CHAT: message_count turns (owned) */
    size_t message_count;
} text_example;

/* The examples of a file; every string is NUL-terminated UTF-8 as the
 * file has it (not checked here) and lives as long as the text_data. */
typedef struct text_data {
    text_kind kind;
    text_example *examples;
    size_t count;
    char *text;      /* the file, cut up in place */
    json_t *objects; /* JSON Lines: the objects, which hold the strings */
    char error[512]; /* after a failure: "FILE line L, column C: what" */
} text_data;

/* Parses `size` bytes at `text` (malloc'd, with a NUL after them; taken:
 * text_data_free frees it, also after a failure) as `format`. `name`
 * names the file in messages. CSV and TSV take the text and the label from
 * the columns the header row names text_column and label_column. A UTF-8
 * byte-order mark at the start is skipped. Returns 0 with a one-line
 * message in data->error when the file is not what the format says or
 * holds no examples. */
int text_data_parse(text_data *data, char *text, size_t size, const char *name,
                    text_format format, const char *text_column, const char *label_column);

/* Reads the file at `path` and parses it as text_data_parse does. */
int text_data_read(text_data *data, const char *path, text_format format,
                   const char *text_column, const char *label_column);

void text_data_free(text_data *data);

#endif /* CLORA_TOOLS_TEXT_DATA_H */
