/* golden.c — parser for the golden data format described in golden.h. */
#include "golden.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void read_values(FILE *f, const char *path, golden_tensor *t)
{
    t->data = calloc(t->numel ? t->numel : 1, sizeof *t->data);
    if (!t->data)
        fail_msg("%s: out of memory for tensor %s", path, t->name);
    char word[64];
    for (size_t i = 0; i < t->numel; ++i) {
        if (fscanf(f, "%63s", word) != 1)
            fail_msg("%s: tensor %s ends after %zu of %zu values", path, t->name, i, t->numel);
        char *end = NULL;
        t->data[i] = strtof(word, &end);
        if (end == word || *end != '\0')
            fail_msg("%s: tensor %s value %zu is not a number: %s", path, t->name, i, word);
    }
}

void golden_load(const char *path, golden_file *file)
{
    memset(file, 0, sizeof *file);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot open golden data %s", path);
    golden_case *current = NULL;
    char word[128];
    while (fscanf(f, "%127s", word) == 1) {
        if (word[0] == '#') {
            int ch;
            while ((ch = fgetc(f)) != EOF && ch != '\n')
                ;
        } else if (!strcmp(word, "case")) {
            golden_case *grown = realloc(file->cases, (file->n_cases + 1) * sizeof *grown);
            if (!grown)
                fail_msg("%s: out of memory", path);
            file->cases = grown;
            current = &file->cases[file->n_cases++];
            memset(current, 0, sizeof *current);
            if (fscanf(f, "%63s", current->name) != 1)
                fail_msg("%s: case without a name", path);
        } else if (!strcmp(word, "param")) {
            if (!current || current->n_params == GOLDEN_MAX_ITEMS)
                fail_msg("%s: param outside a case or too many params", path);
            size_t i = current->n_params++;
            if (fscanf(f, "%63s %127s", current->keys[i], current->values[i]) != 2)
                fail_msg("%s: malformed param in case %s", path, current->name);
        } else if (!strcmp(word, "tensor")) {
            if (!current || current->n_tensors == GOLDEN_MAX_ITEMS)
                fail_msg("%s: tensor outside a case or too many tensors", path);
            golden_tensor *t = &current->tensors[current->n_tensors++];
            if (fscanf(f, "%63s %zu", t->name, &t->ndim) != 2 || t->ndim > 4)
                fail_msg("%s: malformed tensor header in case %s", path, current->name);
            t->numel = 1;
            for (size_t d = 0; d < t->ndim; ++d) {
                if (fscanf(f, "%zu", &t->shape[d]) != 1)
                    fail_msg("%s: malformed shape of %s", path, t->name);
                t->numel *= t->shape[d];
            }
            read_values(f, path, t);
        } else if (!strcmp(word, "end")) {
            current = NULL;
        } else {
            fail_msg("%s: unexpected word \"%s\"", path, word);
        }
    }
    fclose(f);
}

void golden_free(golden_file *file)
{
    for (size_t c = 0; c < file->n_cases; ++c)
        for (size_t t = 0; t < file->cases[c].n_tensors; ++t)
            free(file->cases[c].tensors[t].data);
    free(file->cases);
    memset(file, 0, sizeof *file);
}

const golden_case *golden_case_get(const golden_file *file, const char *name)
{
    for (size_t c = 0; c < file->n_cases; ++c)
        if (!strcmp(file->cases[c].name, name))
            return &file->cases[c];
    fail_msg("golden case %s not found", name);
    return NULL;
}

const golden_tensor *golden_tensor_get(const golden_case *c, const char *name)
{
    for (size_t t = 0; t < c->n_tensors; ++t)
        if (!strcmp(c->tensors[t].name, name))
            return &c->tensors[t];
    fail_msg("golden case %s has no tensor %s", c->name, name);
    return NULL;
}

const char *golden_param(const golden_case *c, const char *key)
{
    for (size_t i = 0; i < c->n_params; ++i)
        if (!strcmp(c->keys[i], key))
            return c->values[i];
    fail_msg("golden case %s has no param %s", c->name, key);
    return NULL;
}

double golden_param_number(const golden_case *c, const char *key)
{
    const char *text = golden_param(c, key);
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end != '\0')
        fail_msg("golden case %s: param %s is not a number: %s", c->name, key, text);
    return v;
}
