/* model_folder.c — the two kinds of model folder clora reads: its own
 * (config.json with "format": "clora-model" and the tree under "model",
 * model.safetensors with every parameter by its full name) and Hugging
 * Face's (config.json with a "model_type", model.safetensors). Here the
 * folder's files are found, read and checked; nn builds the model. */
#include <jansson.h>
#include <string.h>

#include "io/io.h"

#define MODEL_FORMAT "clora-model"
#define MODEL_FORMAT_VERSION 1

clora_status clora__model_folder_paths(const char *dir, clora__model_folder *folder)
{
    memset(folder, 0, sizeof *folder);
    clora_status status = clora__join_path(folder->config_path, sizeof folder->config_path, dir,
                                           "config.json");
    if (status == CLORA_OK)
        status = clora__join_path(folder->weights_path, sizeof folder->weights_path, dir,
                                  "model.safetensors");
    return status;
}

clora_status clora__model_folder_read(const char *dir, clora__model_folder *folder)
{
    clora_status status = clora__model_folder_paths(dir, folder);
    if (status == CLORA_OK)
        status = clora__finish_interrupted_save(dir);
    if (status == CLORA_OK)
        status = clora__read_json(folder->config_path, &folder->config);
    if (status != CLORA_OK)
        return status;
    json_t *root = folder->config;
    const char *format = json_string_value(json_object_get(root, "format"));
    if (!format && json_is_string(json_object_get(root, "model_type"))) {
        folder->hugging_face = 1;
        return CLORA_OK;
    }
    json_t *version = json_object_get(root, "format_version");
    if (!format || strcmp(format, MODEL_FORMAT) != 0)
        status = clora__fail(CLORA_ERR_FORMAT,
                             "%s: not a clora model config (\"format\" is not \"%s\")",
                             folder->config_path, MODEL_FORMAT);
    else if (!json_is_integer(version) || json_integer_value(version) != MODEL_FORMAT_VERSION)
        status = clora__fail(CLORA_ERR_UNSUPPORTED, "%s: format_version %s; this clora reads %d",
                             folder->config_path, json_is_integer(version) ? "other" : "missing",
                             MODEL_FORMAT_VERSION);
    if (status != CLORA_OK) {
        clora__model_folder_free(folder);
        return status;
    }
    folder->tree = json_object_get(root, "model");
    return CLORA_OK;
}

void clora__model_folder_free(clora__model_folder *folder)
{
    json_decref(folder->config);
    folder->config = NULL;
    folder->tree = NULL;
}

clora_status clora__model_folder_write(const char *dir, const clora_safetensors_writer *weights,
                                       json_t *tree)
{
    clora__model_folder folder;
    clora_status status = clora__ensure_dir(dir);
    if (status == CLORA_OK)
        status = clora__model_folder_paths(dir, &folder);
    json_t *root = status == CLORA_OK ? json_object() : NULL;
    if (status == CLORA_OK &&
        (!root || json_object_set_new(root, "format", json_string(MODEL_FORMAT)) ||
         json_object_set_new(root, "format_version", json_integer(MODEL_FORMAT_VERSION)) ||
         json_object_set_new(root, "clora_version", json_string(CLORA_VERSION_STRING)) ||
         json_object_set(root, "model", tree)))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding the model's config");
    if (status == CLORA_OK)
        status = clora__save_weights_and_config(folder.weights_path, weights, folder.config_path,
                                                root);
    json_decref(root);
    return status;
}
