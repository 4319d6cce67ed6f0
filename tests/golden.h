/* golden.h — reading the PyTorch-generated reference data in tests/golden.
 *
 * Text format, written by tests/golden/make_golden.py:
 *     # comment
 *     case <name>
 *     param <key> <value>
 *     tensor <name> <ndim> <d0> ... <dn-1>
 *     <product(d) values, whitespace-separated, as C99 hex floats>
 *     end
 * Hex floats round-trip float32 exactly, and the files stay diffable.
 */
#ifndef CLORA_TESTS_GOLDEN_H
#define CLORA_TESTS_GOLDEN_H

#include <stddef.h>

#define GOLDEN_MAX_ITEMS 48

typedef struct golden_tensor {
    char name[64];
    size_t ndim;
    size_t shape[4];
    size_t numel;
    float *data;
} golden_tensor;

typedef struct golden_case {
    char name[64];
    size_t n_params;
    char keys[GOLDEN_MAX_ITEMS][64];
    char values[GOLDEN_MAX_ITEMS][128];
    size_t n_tensors;
    golden_tensor tensors[GOLDEN_MAX_ITEMS];
} golden_case;

typedef struct golden_file {
    size_t n_cases;
    golden_case *cases;
} golden_file;

/* Loads a file; fails the running test (with the line number) on any
 * syntax error. */
void golden_load(const char *path, golden_file *file);
void golden_free(golden_file *file);

/* Lookups that fail the test when the item is missing. */
const golden_case *golden_case_get(const golden_file *file, const char *name);
const golden_tensor *golden_tensor_get(const golden_case *c, const char *name);
const char *golden_param(const golden_case *c, const char *key);
double golden_param_number(const golden_case *c, const char *key);

#endif /* CLORA_TESTS_GOLDEN_H */
