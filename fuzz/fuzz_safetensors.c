/* fuzz_safetensors.c — a safetensors file from a stranger: parsed, every
 * tensor converted to float32, every metadata entry read; and the same
 * bytes as a model folder's weights through the checkpoint reader, with a
 * shard index (model.safetensors.index.json) when the input holds two
 * parts. */
#include <stdlib.h>
#include <string.h>

#include "clora/safetensors.h"
#include "fuzz.h"
#include "io/io.h"

#define MAX_ELEMENTS (1u << 20)

static void read_all(const clora_safetensors *file)
{
    for (size_t i = 0; i < clora_safetensors_count(file); ++i) {
        clora_tensor_view v;
        if (clora_safetensors_get(file, i, &v) != CLORA_OK || v.numel > MAX_ELEMENTS)
            continue;
        float *values = malloc((v.numel ? v.numel : 1) * sizeof *values);
        if (values && clora_dtype_is_float(v.dtype))
            clora_tensor_to_f32(&v, values);
        free(values);
        clora_tensor_view found;
        clora_safetensors_find(file, v.name, &found);
    }
    for (size_t i = 0; i < clora_safetensors_metadata_count(file); ++i) {
        const char *key, *value;
        clora_safetensors_metadata_at(file, i, &key, &value);
        clora_safetensors_metadata(file, key);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[2];
    size_t sizes[2];
    const size_t n = fuzz_split(data, size, parts, sizes, 2);
    clora_safetensors *file = NULL;
    if (clora_safetensors_parse(&file, data, size) == CLORA_OK)
        read_all(file);
    clora_safetensors_close(file);

    /* a folder: model.safetensors, or an index naming one shard */
    char shard[256];
    if (n == 1) {
        fuzz_write(0, "model.safetensors", data, size);
        fuzz_write(1, "model.safetensors.index.json", NULL, 0);
    } else {
        fuzz_write(0, "model.safetensors", NULL, 0);
        fuzz_write(1, "model.safetensors.index.json", parts[0], sizes[0]);
        fuzz_write(2, "model-00001-of-00001.safetensors", parts[1], sizes[1]);
    }
    clora__join_path(shard, sizeof shard, fuzz_dir(), "model.safetensors");
    clora__checkpoint *ck = NULL;
    if (clora__checkpoint_open(&ck, shard) == CLORA_OK) {
        for (size_t t = 0; t < clora__checkpoint_count(ck); ++t)
            clora__checkpoint_unused(ck, t);
        clora__checkpoint_close(ck);
    }
    return 0;
}
