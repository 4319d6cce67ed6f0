/* hf.c — Hugging Face model folders: config.json's model_type picks an
 * architecture (each in its own file, with its builder and its checkpoint's
 * names), which builds the model; model.safetensors then fills it. A new
 * architecture is one entry in the table below. */
#include <stdio.h>
#include <string.h>

#include "nn/nn.h"

static const clora__hf_architecture *const architectures[] = {
    &clora__gpt2_hf, &clora__bert_hf, &clora__llama_hf, &clora__qwen2_hf, &clora__mistral_hf};
#define ARCHITECTURE_COUNT (sizeof architectures / sizeof architectures[0])

/* "\"gpt2\" and \"bert\"": the model types clora loads, for messages. */
static void known_types(char *out, size_t size)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < ARCHITECTURE_COUNT && used < size; ++i) {
        const char *sep = i == 0 ? "" : i + 1 == ARCHITECTURE_COUNT ? " and " : ", ";
        int n = snprintf(out + used, size - used, "%s\"%s\"", sep, architectures[i]->model_type);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

const clora__hf_architecture *clora__hf_architecture_of(const char *model_type)
{
    for (size_t i = 0; model_type && i < ARCHITECTURE_COUNT; ++i)
        if (!strcmp(model_type, architectures[i]->model_type))
            return architectures[i];
    return NULL;
}

clora_status clora__model_from_hf(clora_model **out, clora_device *device,
                                  const clora__model_folder *folder, size_t num_labels,
                                  uint64_t seed, clora_dtype base_dtype)
{
    clora_load_options options;
    memset(&options, 0, sizeof options); /* the head as the checkpoint has it */
    options.num_labels = num_labels;
    options.seed = seed;
    options.base_dtype = base_dtype;
    return clora__model_from_hf_with(out, device, folder, &options);
}

clora_status clora__model_from_hf_with(clora_model **out, clora_device *device,
                                       const clora__model_folder *folder,
                                       const clora_load_options *options)
{
    const size_t num_labels = options->num_labels;
    const uint64_t seed = options->seed;
    clora_dtype base_dtype = options->base_dtype;
    const char *type = json_string_value(json_object_get(folder->config, "model_type"));
    const clora__hf_architecture *arch = clora__hf_architecture_of(type);
    if (!arch) {
        char known[256];
        known_types(known, sizeof known);
        return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: model_type \"%s\"; clora loads %s",
                           folder->config_path, type ? type : "(missing)", known);
    }
    clora__json_fields fields = {folder->config, folder->config_path, CLORA_OK};
    clora_model *model = NULL;
    const clora__storage packed = {clora__storage_uniform, &base_dtype};
    clora__storage_set(clora_dtype_is_packed(base_dtype) ? &packed : NULL);
    clora_status status =
        arch->build_from ? arch->build_from(&model, device, &fields, folder, options)
                         : arch->build(&model, device, &fields, num_labels, seed);
    clora__storage_set(NULL);
    if (status == CLORA_OK)
        status = clora__load_weights(model, folder->weights_path, &arch->names);
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}

clora_status clora_model_load_hf(clora_model **out, clora_device *device, const char *dir,
                                 size_t num_labels, uint64_t seed)
{
    if (!out || !device || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_load_hf: NULL argument");
    *out = NULL;
    clora__model_folder folder;
    clora_status status = clora__model_folder_paths(dir, &folder);
    if (status == CLORA_OK)
        status = clora__finish_interrupted_save(dir);
    if (status == CLORA_OK)
        status = clora__read_json(folder.config_path, &folder.config);
    if (status != CLORA_OK)
        return status;
    status = clora__model_from_hf(out, device, &folder, num_labels, seed, CLORA_DTYPE_F32);
    clora__model_folder_free(&folder);
    return status;
}
