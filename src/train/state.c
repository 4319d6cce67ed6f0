/* state.c — a training run's state in one safetensors file, so that a run
 * continues bit for bit where it stopped: every trainable value (the
 * trainable arena), the optimizer's moments, the step count, the last
 * learning rate and the model's count of training forwards (which keys
 * dropout masks). A layout hash over the trainable parameters' names and
 * sizes guards against resuming into another set of parameters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clora/safetensors.h"
#include "train/train.h"

#define STATE_FORMAT "clora-training-state-1"

/* FNV-1a (64-bit) over "name:numel\n" of every trainable parameter in
 * arena order. */
static uint64_t layout_hash(clora_model *model)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const size_t count = model->param_count; /* refreshed by the caller */
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info;
        if (clora_model_param(model, i, &info) != CLORA_OK || !info.trainable)
            continue;
        char line[1200];
        snprintf(line, sizeof line, "%s:%zu\n", info.name, clora_buffer_numel(info.value));
        for (const char *p = line; *p; ++p)
            h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    }
    return h;
}

static const char *kind_name(clora_optimizer_kind kind)
{
    return kind == CLORA_OPTIMIZER_SGD ? "sgd" : "adamw";
}

clora_status clora_trainer_save_state(clora_trainer *trainer, const char *path)
{
    if (!trainer || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_save_state: NULL argument");
    clora_model *model = clora__trainer_model(trainer);
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    const size_t n = model->arena_numel;
    clora_buffer *m = NULL, *v = NULL;
    clora_optimizer_kind kind;
    clora__optimizer_state(clora__trainer_optimizer(trainer), &m, &v, &kind);
    float *host[3] = {NULL, NULL, NULL};
    const clora_buffer *buffers[3] = {model->trainable_arena, m, v};
    static const char *const names[3] = {"parameters", "optimizer.m", "optimizer.v"};
    clora_safetensors_writer *writer = NULL;
    status = clora_safetensors_writer_create(&writer);
    for (int k = 0; k < 3 && status == CLORA_OK; ++k) {
        if (!buffers[k] || n == 0)
            continue;
        if (!(host[k] = clora__malloc(n * sizeof *host[k])))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving the training state");
        if (status == CLORA_OK)
            status = clora_buffer_download(buffers[k], 0, host[k], n);
        if (status == CLORA_OK)
            status = clora_safetensors_writer_add(writer, names[k], CLORA_DTYPE_F32, 1, &n,
                                                  host[k]);
    }
    char text[64];
    const char *keys[6] = {"format", "optimizer", "steps", "forward_count", "last_lr", "layout"};
    for (int k = 0; k < 6 && status == CLORA_OK; ++k) {
        switch (k) {
        case 0: snprintf(text, sizeof text, "%s", STATE_FORMAT); break;
        case 1: snprintf(text, sizeof text, "%s", kind_name(kind)); break;
        case 2: snprintf(text, sizeof text, "%zu", clora_trainer_step_count(trainer)); break;
        case 3: snprintf(text, sizeof text, "%" PRIu64, model->forward_count); break;
        case 4: snprintf(text, sizeof text, "%a", (double)clora_trainer_last_lr(trainer)); break;
        default: snprintf(text, sizeof text, "%016" PRIx64, layout_hash(model)); break;
        }
        status = clora_safetensors_writer_metadata(writer, keys[k], text);
    }
    if (status == CLORA_OK)
        status = clora_safetensors_writer_write(writer, path);
    clora_safetensors_writer_destroy(writer);
    for (int k = 0; k < 3; ++k)
        free(host[k]);
    return status;
}

/* An unsigned number of the metadata, or fails naming the key. */
static clora_status metadata_number(const clora_safetensors *file, const char *path,
                                    const char *key, uint64_t *out)
{
    const char *text = clora_safetensors_metadata(file, key);
    char *end = NULL;
    if (text && *text >= '0' && *text <= '9') {
        *out = strtoull(text, &end, 10);
        if (!*end)
            return CLORA_OK;
    }
    return clora__fail(CLORA_ERR_FORMAT, "%s: metadata \"%s\" is %s, not a count", path, key,
                       text ? text : "missing");
}

clora_status clora_trainer_load_state(clora_trainer *trainer, const char *path)
{
    if (!trainer || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_load_state: NULL argument");
    clora_model *model = clora__trainer_model(trainer);
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    clora_safetensors *file = NULL;
    if ((status = clora_safetensors_open(&file, path)))
        return status;
    const size_t n = model->arena_numel;
    clora_buffer *m = NULL, *v = NULL;
    clora_optimizer_kind kind;
    clora__optimizer_state(clora__trainer_optimizer(trainer), &m, &v, &kind);
    const char *format = clora_safetensors_metadata(file, "format");
    const char *optimizer = clora_safetensors_metadata(file, "optimizer");
    const char *layout = clora_safetensors_metadata(file, "layout");
    const char *lr_text = clora_safetensors_metadata(file, "last_lr");
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, layout_hash(model));
    uint64_t steps = 0, forwards = 0;
    if (!format || strcmp(format, STATE_FORMAT) != 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s is not a clora training state (format %s)",
                             path, format ? format : "missing");
    else if (!optimizer || strcmp(optimizer, kind_name(kind)) != 0)
        status = clora__fail(CLORA_ERR_STATE,
                             "%s was saved by the %s optimizer; this run uses %s", path,
                             optimizer ? optimizer : "?", kind_name(kind));
    else if (!layout || strcmp(layout, want) != 0)
        status = clora__fail(CLORA_ERR_STATE,
                             "%s was saved for other trainable parameters (layout %s, this run "
                             "%s): resume with the same model, targets, rank and head",
                             path, layout ? layout : "missing", want);
    else if (!lr_text)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: metadata \"last_lr\" is missing", path);
    if (status == CLORA_OK && (status = metadata_number(file, path, "steps", &steps)) == CLORA_OK)
        status = metadata_number(file, path, "forward_count", &forwards);
    float *host = status == CLORA_OK && n ? clora__malloc(n * sizeof *host) : NULL;
    if (status == CLORA_OK && n && !host)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    /* check every tensor before changing anything */
    clora_buffer *buffers[3] = {model->trainable_arena, m, v};
    static const char *const names[3] = {"parameters", "optimizer.m", "optimizer.v"};
    clora_tensor_view views[3];
    for (int k = 0; k < 3 && status == CLORA_OK && n; ++k) {
        if (!buffers[k])
            continue;
        if (clora_safetensors_find(file, names[k], &views[k]) != CLORA_OK)
            status = clora__fail(CLORA_ERR_FORMAT, "%s has no tensor \"%s\"", path, names[k]);
        else if (views[k].dtype != CLORA_DTYPE_F32 || views[k].numel != n)
            status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                                 "%s: \"%s\" must be F32 with %zu values", path, names[k], n);
    }
    /* the values now, to put back if an upload fails part of the way */
    float *kept = status == CLORA_OK && n ? clora__malloc(3 * n * sizeof *kept) : NULL;
    if (status == CLORA_OK && n && !kept)
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", path);
    for (int k = 0; k < 3 && status == CLORA_OK && n; ++k)
        if (buffers[k])
            status = clora_buffer_download(buffers[k], 0, kept + (size_t)k * n, n);
    int changed = -1; /* the last buffer an upload was made to */
    for (int k = 0; k < 3 && status == CLORA_OK && n; ++k)
        if (buffers[k] && (status = clora_tensor_to_f32(&views[k], host)) == CLORA_OK) {
            changed = k;
            status = clora_buffer_upload(buffers[k], 0, host, n);
        }
    for (int k = 0; status != CLORA_OK && k <= changed; ++k)
        if (buffers[k] && clora_buffer_upload(buffers[k], 0, kept + (size_t)k * n, n) != CLORA_OK)
            status = clora__fail(CLORA_ERR_STATE,
                                 "loading %s failed, and so did putting the run back: the "
                                 "trainer is no longer usable",
                                 path);
    free(kept);
    if (status == CLORA_OK) {
        clora__trainer_restore(trainer, (size_t)steps, (float)strtod(lr_text, NULL));
        clora__optimizer_set_steps(clora__trainer_optimizer(trainer), (size_t)steps);
        model->forward_count = forwards;
    }
    free(host);
    clora_safetensors_close(file);
    return status;
}
