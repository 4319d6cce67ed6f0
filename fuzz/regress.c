/* regress.c — a fuzz target as a plain program: runs every file named on
 * the command line (a folder: every file in it) through
 * LLVMFuzzerTestOneInput once. With the corpus and the crashers found so
 * far, a test that a sanitized build turns into a check of each. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 0;
    }
    size_t cap = 1 << 16, n = 0;
    unsigned char *data = malloc(cap);
    for (size_t got; data && (got = fread(data + n, 1, cap - n, f)) > 0;) {
        n += got;
        if (n == cap) {
            unsigned char *grown = realloc(data, cap *= 2);
            if (!grown)
                free(data);
            data = grown;
        }
    }
    fclose(f);
    if (!data) {
        fprintf(stderr, "%s: out of memory\n", path);
        return 0;
    }
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 1;
}

static int compare(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
    size_t runs = 0;
    for (int i = 1; i < argc; ++i) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (!run_file(argv[i]))
                return 1;
            ++runs;
            continue;
        }
        DIR *d = opendir(argv[i]);
        char *names[4096];
        size_t count = 0;
        for (struct dirent *e; d && (e = readdir(d)) && count < 4096;)
            if (e->d_name[0] != '.')
                names[count++] = strdup(e->d_name);
        if (d)
            closedir(d);
        qsort(names, count, sizeof *names, compare);
        for (size_t k = 0; k < count; ++k) {
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], names[k]);
            if (!run_file(path))
                return 1;
            ++runs;
            free(names[k]);
        }
    }
    printf("%zu inputs run\n", runs);
    return runs ? 0 : 1;
}
