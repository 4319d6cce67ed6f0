/* fuzz_model_folder.c — a model folder from a stranger, through
 * clora_model_check(): the loader itself on a dry device, so every
 * architecture's config.json reader (GPT-2, BERT, Llama, Qwen2, Mistral),
 * clora's own tree and the weights' names and shapes, with no OpenCL. The
 * parts are config.json and model.safetensors; with a third part, that is
 * model.safetensors.index.json and the second part its one shard. */
#include "clora/clora.h"
#include "fuzz.h"

#define SHARD "model-00001-of-00001.safetensors"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[3];
    size_t sizes[3];
    const size_t n = fuzz_split(data, size, parts, sizes, 3);
    fuzz_write(0, "config.json", parts[0], sizes[0]);
    if (n > 2) {
        fuzz_write(1, "model.safetensors", NULL, 0);
        fuzz_write(2, SHARD, parts[1], sizes[1]);
        fuzz_write(3, "model.safetensors.index.json", parts[2], sizes[2]);
    } else {
        fuzz_write(1, "model.safetensors", n > 1 ? parts[1] : NULL, n > 1 ? sizes[1] : 0);
        fuzz_write(2, SHARD, NULL, 0);
        fuzz_write(3, "model.safetensors.index.json", NULL, 0);
    }
    clora_model_check(fuzz_dir());
    return 0;
}
