/* fuzz.h — what clora's fuzz targets share. Each target is one
 * LLVMFuzzerTestOneInput over bytes from a stranger; built with libFuzzer
 * (make fuzz) it explores, built with regress.c it replays a corpus (the
 * committed seeds and every crasher found) as a test. Inputs that stand for
 * several files hold them one after another, separated by FUZZ_SEPARATOR. */
#ifndef CLORA_FUZZ_H
#define CLORA_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_SEPARATOR "\n=====\n"
#define FUZZ_MAX_PARTS 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A folder of this process's own for the files a target writes (in
 * /dev/shm where it exists), made once. */
const char *fuzz_dir(void);

/* Writes `size` bytes as fuzz_dir()/name and returns the path (static
 * storage, one per name slot 0..3); removes the file when data is NULL. */
const char *fuzz_write(int slot, const char *name, const void *data, size_t size);

/* Cuts data at each FUZZ_SEPARATOR into at most `max` parts; returns the
 * count. The last part runs to the end. */
size_t fuzz_split(const uint8_t *data, size_t size, const uint8_t **parts, size_t *sizes,
                  size_t max);

#endif
