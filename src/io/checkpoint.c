/* checkpoint.c — tensors by name: a weight file opened for reading
 * parameters out of it (each tensor's use tracked, so a loader can name
 * the ones it did not use), device buffers written into a safetensors
 * writer, and a weight file saved together with its JSON config. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

struct clora__checkpoint {
    char *path;
    clora_safetensors *file;
    char *used; /* one flag per tensor */
};

clora_status clora__checkpoint_open(clora__checkpoint **out, const char *path)
{
    *out = NULL;
    clora__checkpoint *ck = calloc(1, sizeof *ck);
    if (!ck || !(ck->path = strdup(path))) {
        free(ck);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    }
    clora_status status = clora_safetensors_open(&ck->file, path);
    if (status == CLORA_OK && !(ck->used = calloc(clora_safetensors_count(ck->file) + 1, 1)))
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    if (status != CLORA_OK) {
        clora__checkpoint_close(ck);
        return status;
    }
    *out = ck;
    return CLORA_OK;
}

void clora__checkpoint_close(clora__checkpoint *ck)
{
    if (!ck)
        return;
    clora_safetensors_close(ck->file);
    free(ck->used);
    free(ck->path);
    free(ck);
}

int clora__checkpoint_find(clora__checkpoint *ck, const char *name, clora_tensor_view *view)
{
    const size_t count = clora_safetensors_count(ck->file);
    for (size_t t = 0; t < count; ++t)
        if (clora_safetensors_get(ck->file, t, view) == CLORA_OK && !strcmp(view->name, name)) {
            ck->used[t] = 1;
            return 1;
        }
    return 0;
}

size_t clora__checkpoint_count(const clora__checkpoint *ck)
{
    return clora_safetensors_count(ck->file);
}

const char *clora__checkpoint_unused(const clora__checkpoint *ck, size_t index)
{
    clora_tensor_view view;
    if (ck->used[index] || clora_safetensors_get(ck->file, index, &view) != CLORA_OK)
        return NULL;
    return view.name;
}

clora_status clora__checkpoint_read(const clora__checkpoint *ck, const clora_tensor_view *view,
                                    const char *param, clora_buffer *dst)
{
    int same = view->ndim == dst->ndim;
    for (size_t d = 0; same && d < view->ndim; ++d)
        same = view->shape[d] == dst->shape[d];
    if (!same) {
        char want[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: tensor \"%s\" has %zu dimensions / %zu elements; parameter %s "
                           "is %s",
                           ck->path, view->name, view->ndim, view->numel, param,
                           clora_buffer_shape_string(dst, want, sizeof want));
    }
    if (!clora_dtype_is_float(view->dtype))
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH, "%s: tensor \"%s\" holds %s, not floats",
                           ck->path, view->name, clora_dtype_name(view->dtype));
    float *host = malloc((view->numel ? view->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", param);
    clora_status status = clora_tensor_to_f32(view, host);
    if (status == CLORA_OK)
        status = clora_buffer_upload(dst, 0, host, view->numel);
    free(host);
    return status;
}

clora_status clora__writer_add_buffer(clora_safetensors_writer *writer, const char *name,
                                      const clora_buffer *value)
{
    float *host = malloc((value->numel ? value->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
    clora_status status = clora_buffer_download(value, 0, host, value->numel);
    if (status == CLORA_OK)
        status = clora_safetensors_writer_add(writer, name, CLORA_DTYPE_F32, value->ndim,
                                              value->shape, host);
    free(host);
    return status;
}

clora_status clora__save_weights_and_config(const char *weights_path,
                                            const clora_safetensors_writer *writer,
                                            const char *config_path, json_t *config)
{
    char *text = json_dumps(config, JSON_INDENT(2));
    if (!text)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding %s", config_path);
    clora__chunk *chunks = NULL;
    size_t count = 0;
    char *header = NULL;
    unsigned char length[8];
    clora_status status = clora__safetensors_chunks(writer, &chunks, &count, &header, length);
    if (status == CLORA_OK) {
        const clora__chunk config_chunks[2] = {{text, strlen(text)}, {"\n", 1}};
        const clora__file files[2] = {{weights_path, chunks, count},
                                      {config_path, config_chunks, 2}};
        status = clora__write_files_atomic(files, 2);
    }
    free(chunks);
    free(header);
    free(text);
    return status;
}
