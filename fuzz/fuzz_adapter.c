/* fuzz_adapter.c — a PEFT adapter folder from a stranger: adapter_config.json,
 * adapter_model.safetensors and, when the input has a third part, a commit
 * record (.clora-commit) of an interrupted save, through the one checker
 * that clora info and the loader share. */
#include "clora/adapter.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *parts[3];
    size_t sizes[3];
    const size_t n = fuzz_split(data, size, parts, sizes, 3);
    fuzz_write(0, "adapter_config.json", parts[0], sizes[0]);
    if (n > 1)
        fuzz_write(1, "adapter_model.safetensors", parts[1], sizes[1]);
    else
        fuzz_write(1, "adapter_model.safetensors", NULL, 0);
    if (n > 2)
        fuzz_write(2, ".clora-commit", parts[2], sizes[2]);
    else
        fuzz_write(2, ".clora-commit", NULL, 0);
    clora_adapter_check(fuzz_dir());
    fuzz_write(2, ".clora-commit", NULL, 0);
    return 0;
}
