/* cmd_tokenize.c — `clora tokenize`: labelled text lines into a dataset
 * file for `clora train`, with a BERT model folder's WordPiece tokenizer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "training.h"

static const char tokenize_description[] =
    "Turns a text file of LABEL<TAB>TEXT lines (UTF-8; empty lines skipped) into a\n"
    "dataset for `clora train`. Each text becomes [CLS] tokens [SEP] through the\n"
    "WordPiece tokenizer of the model folder (vocab.txt, tokenizer_config.json),\n"
    "cut to --max-length tokens and padded to the longest example in the file.\n"
    "\n"
    "The file holds \"inputs\" I32 (N, T), \"attention_mask\" I32 (N, T), \"labels\"\n"
    "I32 (N), and the label names in order (a JSON list) in its metadata under\n"
    "\"label_names\".\n";

typedef struct names {
    char **v;
    size_t n;
} names;

static int name_index(const names *l, const char *name)
{
    for (size_t i = 0; i < l->n; ++i)
        if (!strcmp(l->v[i], name))
            return (int)i;
    return -1;
}

static int add_name(names *l, const char *name, size_t len)
{
    char **grown = realloc(l->v, (l->n + 1) * sizeof *grown);
    if (!grown)
        return 0;
    l->v = grown;
    if (!(l->v[l->n] = malloc(len + 1)))
        return 0;
    memcpy(l->v[l->n], name, len);
    l->v[l->n++][len] = '\0';
    return 1;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The lines of a file, split in place: label and text per line. */
typedef struct line {
    size_t number;
    char *label, *text;
} line;

static int read_lines(const char *path, char **storage, line **lines, size_t *count)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "clora tokenize: cannot open %s\n", path);
        return 0;
    }
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
    int failed = ferror(f);
    fclose(f);
    if (!text || failed) {
        fprintf(stderr, "clora tokenize: cannot read %s\n", path);
        free(text);
        return 0;
    }
    text[size] = '\0';
    size_t n = 1;
    for (size_t i = 0; i < size; ++i)
        n += text[i] == '\n';
    *lines = calloc(n, sizeof **lines);
    if (!*lines) {
        free(text);
        return 0;
    }
    *count = 0;
    size_t number = 0;
    for (char *p = text; *p || p == text;) {
        char *end = strchr(p, '\n');
        if (end)
            *end = '\0';
        ++number;
        size_t len = strlen(p);
        if (len > 0 && p[len - 1] == '\r')
            p[--len] = '\0';
        if (len > 0) {
            char *tab = strchr(p, '\t');
            if (!tab || tab == p) {
                fprintf(stderr, "clora tokenize: %s line %zu is not LABEL<TAB>TEXT\n", path,
                        number);
                free(text);
                free(*lines);
                *lines = NULL;
                return 0;
            }
            *tab = '\0';
            (*lines)[*count].number = number;
            (*lines)[*count].label = p;
            (*lines)[(*count)++].text = tab + 1;
        }
        if (!end)
            break;
        p = end + 1;
    }
    *storage = text;
    return 1;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *model_dir = NULL, *input = NULL, *out = NULL, *label_list = NULL;
    size_t max_length = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "DIR", "the model folder with vocab.txt"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--input", CLI_STRING, &input, "FILE", "the text lines"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &out, "FILE", "the dataset to write"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--max-length", CLI_SIZE, &max_length, "L",
                 "tokens per example at most, [CLS] and [SEP] included (at most the "
                 "tokenizer's model_max_length)"),
         .fallback = "128", CLI_AT_LEAST(2)},
        {CLI_OPT("--labels", CLI_STRING, &label_list, "A,B,...",
                 "the label names in class order (default: the names in the file, sorted); a "
                 "line with another label is an error")},
        CLI_END};
    const cli_spec spec = {.command = "tokenize",
                           .usage = "usage: clora tokenize --model DIR --input FILE --out FILE "
                                    "[options]",
                           .description = tokenize_description,
                           .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    int exit_code = 1;
    clora_tokenizer *tok = NULL;
    char *storage = NULL, *json = NULL;
    line *lines = NULL;
    size_t count = 0;
    names labels = {NULL, 0};
    int32_t *ids = NULL, *mask = NULL;
    size_t *lengths = NULL, *per_label = NULL;
    dataset data;
    memset(&data, 0, sizeof data);
    clora_status status = clora_tokenizer_load(&tok, model_dir);
    if (status != CLORA_OK) {
        cli_report("tokenize", "loading the tokenizer", status);
        goto done;
    }
    if (clora_tokenizer_max_length(tok) && max_length > clora_tokenizer_max_length(tok))
        max_length = clora_tokenizer_max_length(tok);
    if (!read_lines(input, &storage, &lines, &count))
        goto done;
    if (count == 0) {
        fprintf(stderr, "clora tokenize: %s has no LABEL<TAB>TEXT lines\n", input);
        goto done;
    }
    /* the label names: as given, or the sorted set in the file */
    for (const char *p = label_list; p && *p;) {
        size_t len = strcspn(p, ",");
        if (len && !add_name(&labels, p, len))
            goto done;
        p += len + (p[len] == ',');
    }
    for (size_t i = 0; !label_list && i < count; ++i)
        if (name_index(&labels, lines[i].label) < 0 &&
            !add_name(&labels, lines[i].label, strlen(lines[i].label)))
            goto done;
    if (!label_list)
        qsort(labels.v, labels.n, sizeof *labels.v, compare_names);

    ids = malloc(count * max_length * sizeof *ids);
    mask = malloc(count * max_length * sizeof *mask);
    lengths = malloc(count * sizeof *lengths);
    per_label = calloc(labels.n + 1, sizeof *per_label);
    data.labels = malloc(count * sizeof *data.labels);
    if (!ids || !mask || !lengths || !per_label || !data.labels) {
        fprintf(stderr, "clora tokenize: out of memory\n");
        goto done;
    }
    size_t longest = 0, truncated = 0, tokens = 0;
    for (size_t i = 0; i < count; ++i) {
        int label = name_index(&labels, lines[i].label);
        if (label < 0) {
            fprintf(stderr, "clora tokenize: %s line %zu: label \"%s\" is not in --labels\n",
                    input, lines[i].number, lines[i].label);
            goto done;
        }
        int cut = 0;
        status = clora_tokenizer_encode(tok, lines[i].text, max_length, ids + i * max_length,
                                        mask + i * max_length, &lengths[i], &cut);
        if (status != CLORA_OK) {
            fprintf(stderr, "clora tokenize: %s line %zu: %s\n", input, lines[i].number,
                    clora_last_error());
            goto done;
        }
        data.labels[i] = label;
        per_label[label]++;
        truncated += cut != 0;
        tokens += lengths[i];
        longest = lengths[i] > longest ? lengths[i] : longest;
    }
    /* pad to the longest example only: (N, longest) */
    for (size_t i = 0; i < count; ++i) {
        memmove(ids + i * longest, ids + i * max_length, longest * sizeof *ids);
        memmove(mask + i * longest, mask + i * max_length, longest * sizeof *mask);
    }
    json_t *list = json_array();
    for (size_t k = 0; list && k < labels.n; ++k) {
        json_t *name = json_string(labels.v[k]); /* NULL unless UTF-8 */
        if (!name) {
            fprintf(stderr, "clora tokenize: label \"%s\" is not valid UTF-8\n", labels.v[k]);
            json_decref(list);
            goto done;
        }
        json_array_append_new(list, name);
    }
    json = list ? json_dumps(list, JSON_COMPACT) : NULL;
    json_decref(list);
    if (!json) {
        fprintf(stderr, "clora tokenize: out of memory\n");
        goto done;
    }
    data.count = count;
    data.input_dtype = CLORA_DTYPE_I32;
    data.input_ndim = 1;
    data.input_shape[0] = longest;
    data.input_width = longest;
    data.inputs = ids;
    data.attention_mask = mask;
    data.label_width = 1;
    data.label_names = json;
    ids = mask = NULL;
    json = NULL;
    if (!dataset_save(out, &data))
        goto done;
    printf("%zu examples from %s -> %s\n", count, input, out);
    printf("  tokens per example: %.1f on average, %zu at most (the padded length); "
           "%zu cut to --max-length %zu\n",
           (double)tokens / (double)count, longest, truncated, max_length);
    printf("  labels:");
    for (size_t k = 0; k < labels.n; ++k)
        printf(" %zu=%s (%zu)", k, labels.v[k], per_label[k]);
    printf("\n");
    exit_code = 0;
done:
    dataset_free(&data);
    for (size_t k = 0; k < labels.n; ++k)
        free(labels.v[k]);
    free(labels.v);
    free(ids);
    free(mask);
    free(json);
    free(lengths);
    free(per_label);
    free(lines);
    free(storage);
    clora_tokenizer_destroy(tok);
    return exit_code;
}
