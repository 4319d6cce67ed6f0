/* fuzz.c — the helpers of fuzz.h. */
#define _POSIX_C_SOURCE 200809L
#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

static void remove_dir(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz: cannot remove %s\n", dir);
}

const char *fuzz_dir(void)
{
    if (!dir[0]) {
        struct stat st;
        snprintf(dir, sizeof dir, "%s/clora-fuzz-XXXXXX",
                 stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp");
        if (!mkdtemp(dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(remove_dir);
    }
    return dir;
}

const char *fuzz_write(int slot, const char *name, const void *data, size_t size)
{
    static char paths[FUZZ_MAX_PARTS][128];
    char *path = paths[slot % FUZZ_MAX_PARTS];
    snprintf(path, sizeof paths[0], "%s/%s", fuzz_dir(), name);
    if (!data) {
        unlink(path);
        return path;
    }
    FILE *f = fopen(path, "wb");
    if (!f || (size && fwrite(data, 1, size, f) != size) || fclose(f) != 0) {
        perror(path);
        abort();
    }
    return path;
}

size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *sizes,
                  size_t max)
{
    const size_t sep = strlen(FUZZ_SEPARATOR);
    size_t count = 0, start = 0;
    for (size_t i = 0; count + 1 < max && i + sep <= size; ++i)
        if (!memcmp(data + i, FUZZ_SEPARATOR, sep)) {
            parts[count] = data + start;
            sizes[count++] = i - start;
            start = i + sep;
            i += sep - 1;
        }
    parts[count] = data + start;
    sizes[count++] = size - start;
    return count;
}
