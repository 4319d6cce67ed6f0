/* checkpoint.c — tensors by name: a weight file opened for reading
 * parameters out of it (each tensor's use tracked, so a loader can name
 * the ones it did not use), device buffers written into a safetensors
 * writer, and a weight file saved together with its JSON config. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/io.h"

struct clora__checkpoint {
    char *path;                /* the file, or the shards' index: for messages */
    size_t file_count;         /* 1, or the shards */
    clora_safetensors **files;
    char **used;               /* one flag per tensor of each file */
};

void clora__checkpoint_close(clora__checkpoint *ck)
{
    if (!ck)
        return;
    for (size_t f = 0; f < ck->file_count; ++f) {
        clora_safetensors_close(ck->files[f]);
        free(ck->used[f]);
    }
    free(ck->files);
    free(ck->used);
    free(ck->path);
    free(ck);
}

/* Room for `count` files. */
static clora_status checkpoint_new(clora__checkpoint **out, const char *path, size_t count)
{
    clora__checkpoint *ck = clora__calloc(1, sizeof *ck);
    if (ck && (ck->path = clora__strdup(path)) != NULL) {
        ck->files = clora__calloc(count, sizeof *ck->files);
        ck->used = clora__calloc(count, sizeof *ck->used);
    }
    if (!ck || !ck->path || !ck->files || !ck->used) {
        clora__checkpoint_close(ck);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    }
    *out = ck;
    return CLORA_OK;
}

/* Opens file `f` of the checkpoint. */
static clora_status open_file(clora__checkpoint *ck, size_t f, const char *path)
{
    clora_status status = clora_safetensors_open(&ck->files[f], path);
    if (status != CLORA_OK)
        return status;
    ck->file_count = f + 1;
    if (!(ck->used[f] = clora__calloc(clora_safetensors_count(ck->files[f]) + 1, 1)))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    return CLORA_OK;
}

/* The shard `name` names, by its index in `names` (added when new). */
static size_t shard_slot(const char **names, size_t *count, const char *name)
{
    for (size_t i = 0; i < *count; ++i)
        if (!strcmp(names[i], name))
            return i;
    names[*count] = name;
    return (*count)++;
}

/* A sharded checkpoint: <weights>.index.json's weight_map names, for each
 * tensor, the shard (a file beside the index) that holds it. Every shard
 * must hold exactly the tensors the index gives it. */
static clora_status open_shards(clora__checkpoint **out, const char *index_path, const char *dir)
{
    json_t *index = NULL;
    clora_status status = clora__read_json(index_path, &index);
    if (status != CLORA_OK)
        return status;
    json_t *map = json_object_get(index, "weight_map");
    const size_t entries = json_is_object(map) ? json_object_size(map) : 0;
    if (entries == 0) {
        json_decref(index);
        return clora__fail(CLORA_ERR_FORMAT, "%s: no \"weight_map\" of tensor names to shards",
                           index_path);
    }
    const char **names = clora__calloc(entries, sizeof *names);
    size_t count = 0;
    const char *tensor;
    json_t *value;
    if (!names)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", index_path);
    json_object_foreach(map, tensor, value)
    {
        const char *shard = json_string_value(value);
        if (status != CLORA_OK)
            break;
        if (!shard || !*shard || strchr(shard, '/') || strchr(shard, '\\') ||
            !strcmp(shard, "..") || !strcmp(shard, "."))
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: weight_map[\"%s\"] is not the name of a file beside the "
                                 "index",
                                 index_path, tensor);
        else
            shard_slot(names, &count, shard);
    }
    clora__checkpoint *ck = NULL;
    if (status == CLORA_OK)
        status = checkpoint_new(&ck, index_path, count);
    for (size_t f = 0; f < count && status == CLORA_OK; ++f) {
        char shard_path[4096];
        status = clora__join_path(shard_path, sizeof shard_path, dir, names[f]);
        if (status == CLORA_OK)
            status = open_file(ck, f, shard_path);
    }
    /* each tensor in the shard the index names, and no other */
    json_object_foreach(map, tensor, value)
    {
        if (status != CLORA_OK)
            break;
        size_t f = shard_slot(names, &count, json_string_value(value));
        clora_tensor_view view;
        if (clora_safetensors_find(ck->files[f], tensor, &view) != CLORA_OK)
            status = clora__fail(CLORA_ERR_FORMAT, "%s: tensor \"%s\" is not in %s, which the "
                                 "index names for it",
                                 index_path, tensor, names[f]);
    }
    for (size_t f = 0; f < count && status == CLORA_OK; ++f) {
        const size_t n = clora_safetensors_count(ck->files[f]);
        for (size_t t = 0; t < n && status == CLORA_OK; ++t) {
            clora_tensor_view view;
            const char *listed = NULL;
            if ((status = clora_safetensors_get(ck->files[f], t, &view)))
                break;
            listed = json_string_value(json_object_get(map, view.name));
            if (!listed || strcmp(listed, names[f]) != 0)
                status = clora__fail(CLORA_ERR_FORMAT,
                                     "%s: shard %s holds tensor \"%s\", which the index %s",
                                     index_path, names[f], view.name,
                                     listed ? "puts in another shard" : "does not list");
        }
    }
    free(names);
    json_decref(index);
    if (status != CLORA_OK) {
        clora__checkpoint_close(ck);
        return status;
    }
    *out = ck;
    return CLORA_OK;
}

clora_status clora__checkpoint_open(clora__checkpoint **out, const char *path)
{
    *out = NULL;
    /* model.safetensors, or model.safetensors.index.json and its shards */
    char index_path[4096];
    const int n = snprintf(index_path, sizeof index_path, "%s.index.json", path);
    FILE *probe = fopen(path, "rb");
    if (probe)
        fclose(probe);
    else if (n > 0 && (size_t)n < sizeof index_path && (probe = fopen(index_path, "rb")) != NULL) {
        fclose(probe);
        char dir[4096];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash)
            *slash = '\0';
        else
            snprintf(dir, sizeof dir, ".");
        return open_shards(out, index_path, dir);
    }
    clora__checkpoint *ck = NULL;
    clora_status status = checkpoint_new(&ck, path, 1);
    if (status == CLORA_OK && (status = open_file(ck, 0, path)) != CLORA_OK) {
        clora__checkpoint_close(ck);
        ck = NULL;
    }
    *out = ck;
    return status;
}

int clora__checkpoint_find(clora__checkpoint *ck, const char *name, clora_tensor_view *view)
{
    for (size_t f = 0; f < ck->file_count; ++f) {
        const size_t count = clora_safetensors_count(ck->files[f]);
        for (size_t t = 0; t < count; ++t)
            if (clora_safetensors_get(ck->files[f], t, view) == CLORA_OK &&
                !strcmp(view->name, name)) {
                ck->used[f][t] = 1;
                return 1;
            }
    }
    return 0;
}

size_t clora__checkpoint_count(const clora__checkpoint *ck)
{
    size_t total = 0;
    for (size_t f = 0; f < ck->file_count; ++f)
        total += clora_safetensors_count(ck->files[f]);
    return total;
}

uint64_t clora__checkpoint_values(const clora__checkpoint *ck)
{
    uint64_t total = 0;
    for (size_t f = 0; f < ck->file_count; ++f)
        for (size_t i = 0; i < clora_safetensors_count(ck->files[f]); ++i) {
            clora_tensor_view v;
            if (clora_safetensors_get(ck->files[f], i, &v) == CLORA_OK)
                total += v.numel;
        }
    return total;
}

const char *clora__checkpoint_unused(const clora__checkpoint *ck, size_t index)
{
    for (size_t f = 0; f < ck->file_count; ++f) {
        const size_t count = clora_safetensors_count(ck->files[f]);
        if (index >= count) {
            index -= count;
            continue;
        }
        clora_tensor_view view;
        if (ck->used[f][index] || clora_safetensors_get(ck->files[f], index, &view) != CLORA_OK)
            return NULL;
        return view.name;
    }
    return NULL;
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
    if (dst->device->dry) /* a check: the values are read when loaded */
        return CLORA_OK;
    float *host = clora__malloc((view->numel ? view->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", param);
    clora_status status = clora_tensor_to_f32(view, host);
    if (status == CLORA_OK)
        status = clora__check_finite(ck->path, view->name, host, view->numel);
    if (status == CLORA_OK && clora_dtype_is_packed(dst->dtype)) {
        char what[512];
        snprintf(what, sizeof what, "%s: tensor \"%s\" as %s", ck->path, view->name,
                 clora_dtype_name(dst->dtype));
        status = clora__upload_values(dst, host, what);
    } else if (status == CLORA_OK) {
        status = clora_buffer_upload(dst, 0, host, view->numel);
    }
    free(host);
    return status;
}

clora_status clora__writer_add_buffer(clora_safetensors_writer *writer, const char *name,
                                      const clora_buffer *value)
{
    /* F16 and BF16 weights are safetensors types: their bytes as they are */
    if (value->dtype == CLORA_DTYPE_F16 || value->dtype == CLORA_DTYPE_BF16) {
        const size_t bytes = clora_buffer_bytes(value);
        void *raw = clora__malloc(bytes ? bytes : 1);
        if (!raw)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
        clora_status status = clora_buffer_download_bytes(value, 0, raw, bytes);
        if (status == CLORA_OK)
            status = clora_safetensors_writer_add(writer, name, value->dtype, value->ndim,
                                                  value->shape, raw);
        free(raw);
        return status;
    }
    /* block types as the float32 values they stand for */
    float *host = clora__malloc((value->numel ? value->numel : 1) * sizeof *host);
    if (!host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
    clora_status status = clora__download_values(value, host);
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
