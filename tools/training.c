/* training.c — datasets, batches, evaluation, progress and reports for the
 * `clora` command. */
#define _POSIX_C_SOURCE 200809L
#include "training.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "models.h"

/* ---- datasets ------------------------------------------------------------------ */

static int fail_dataset(const char *command, const char *path, const char *what)
{
    fprintf(stderr, "clora %s: dataset %s: %s\n", command, path, what);
    return 0;
}

/* Fails unless every one of n values (rows of `width`) is finite. */
static int check_finite(const char *command, const char *path, const char *name, const float *v,
                        size_t n, size_t width)
{
    for (size_t i = 0; i < n; ++i)
        if (!isfinite(v[i])) {
            char why[160];
            snprintf(why, sizeof why, "\"%s\" holds %s in example %zu (element %zu)", name,
                     isnan(v[i]) ? "NaN" : "an infinity", i / width, i % width);
            return fail_dataset(command, path, why);
        }
    return 1;
}

/* Class labels are >= 0; per-token labels may also be -100 (not scored). */
static int check_labels(const char *command, const char *path, const int32_t *labels, size_t n,
                        size_t width)
{
    for (size_t i = 0; i < n; ++i)
        if (labels[i] < 0 && !(width > 1 && labels[i] == -100)) {
            char why[160];
            snprintf(why, sizeof why, "\"labels\" holds %d in example %zu; labels are class "
                     "indices from 0%s", (int)labels[i], i / width,
                     width > 1 ? " (or -100 for a token not scored)" : "");
            return fail_dataset(command, path, why);
        }
    return 1;
}

int dataset_load(const char *command, const char *path, dataset *data)
{
    memset(data, 0, sizeof *data);
    clora_safetensors *file = NULL;
    clora_status status = clora_safetensors_open(&file, path);
    if (status != CLORA_OK) {
        fprintf(stderr, "clora %s: %s\n", command, clora_last_error());
        return 0;
    }
    clora_tensor_view inputs, labels, targets, mask, types;
    int has_labels = clora_safetensors_find(file, "labels", &labels) == CLORA_OK;
    int has_targets = clora_safetensors_find(file, "targets", &targets) == CLORA_OK;
    int has_mask = clora_safetensors_find(file, "attention_mask", &mask) == CLORA_OK;
    int has_types = clora_safetensors_find(file, "token_type_ids", &types) == CLORA_OK;
    int ok = 1;
    char why[256];
    if (clora_safetensors_find(file, "inputs", &inputs) != CLORA_OK) {
        ok = fail_dataset(command, path, "no tensor named \"inputs\"");
    } else if (inputs.ndim < 2 || inputs.ndim > 4 || inputs.numel == 0) {
        ok = fail_dataset(command, path,
                          "\"inputs\" must be (N, ...) with 2 to 4 dimensions, not empty");
    } else if (inputs.dtype != CLORA_DTYPE_F32 && inputs.dtype != CLORA_DTYPE_I32 &&
               !clora_dtype_is_float(inputs.dtype)) {
        snprintf(why, sizeof why, "\"inputs\" holds %s; use F32 features or I32 token ids",
                 clora_dtype_name(inputs.dtype));
        ok = fail_dataset(command, path, why);
    } else if (has_labels == has_targets) {
        ok = fail_dataset(command, path,
                          "needs either \"labels\" (I32, classification) or \"targets\" "
                          "(F32, regression)");
    } else if (has_labels &&
               (labels.dtype != CLORA_DTYPE_I32 || labels.shape[0] != inputs.shape[0] ||
                (labels.ndim != 1 &&
                 (labels.ndim != 2 || inputs.ndim != 2 || labels.shape[1] != inputs.shape[1])))) {
        ok = fail_dataset(command, path, "\"labels\" must be I32 (N), or (N, T) for (N, T) inputs");
    } else if ((has_mask || has_types) && inputs.dtype != CLORA_DTYPE_I32) {
        ok = fail_dataset(command, path,
                          "\"attention_mask\" and \"token_type_ids\" go with I32 token ids");
    } else if ((has_mask && (mask.dtype != CLORA_DTYPE_I32 || mask.numel != inputs.numel ||
                             mask.ndim != inputs.ndim)) ||
               (has_types && (types.dtype != CLORA_DTYPE_I32 || types.numel != inputs.numel ||
                              types.ndim != inputs.ndim))) {
        ok = fail_dataset(command, path,
                          "\"attention_mask\" and \"token_type_ids\" must be I32 of the "
                          "shape of \"inputs\"");
    } else if (has_targets && (!clora_dtype_is_float(targets.dtype) || targets.ndim < 1 ||
                               targets.shape[0] != inputs.shape[0])) {
        ok = fail_dataset(command, path,
                          "\"targets\" must be float (N, ...) with N as in \"inputs\"");
    }
    if (ok) {
        data->count = inputs.shape[0];
        data->input_dtype = inputs.dtype == CLORA_DTYPE_I32 ? CLORA_DTYPE_I32 : CLORA_DTYPE_F32;
        data->input_ndim = inputs.ndim - 1;
        for (size_t d = 1; d < inputs.ndim; ++d)
            data->input_shape[d - 1] = inputs.shape[d];
        data->input_width = inputs.numel / data->count;
        data->inputs = malloc(inputs.numel * 4);
        if (!data->inputs) {
            ok = fail_dataset(command, path, "out of memory");
        } else if (data->input_dtype == CLORA_DTYPE_I32) {
            memcpy(data->inputs, inputs.data, inputs.numel * 4);
        } else if (clora_tensor_to_f32(&inputs, data->inputs) != CLORA_OK) {
            ok = fail_dataset(command, path, clora_last_error());
        } else {
            ok = check_finite(command, path, "inputs", data->inputs, inputs.numel,
                              data->input_width);
        }
    }
    if (ok && has_labels) {
        data->label_width = labels.numel / data->count;
        data->labels = malloc(labels.numel * sizeof *data->labels);
        if (!data->labels)
            ok = fail_dataset(command, path, "out of memory");
        else
            memcpy(data->labels, labels.data, labels.numel * sizeof *data->labels);
        ok = ok && check_labels(command, path, data->labels, labels.numel, data->label_width);
    }
    int32_t **extras[2] = {&data->attention_mask, &data->token_types};
    const clora_tensor_view *views[2] = {&mask, &types};
    const int present[2] = {has_mask, has_types};
    for (int k = 0; k < 2 && ok; ++k) {
        if (!present[k])
            continue;
        *extras[k] = malloc(inputs.numel * sizeof **extras[k]);
        if (!*extras[k])
            ok = fail_dataset(command, path, "out of memory");
        else
            memcpy(*extras[k], views[k]->data, inputs.numel * sizeof **extras[k]);
    }
    const char *const keys[3] = {"label_names", "tokenizer", "task"};
    char **values[3] = {&data->label_names, &data->tokenizer, &data->task};
    for (int k = 0; k < 3 && ok; ++k) {
        const char *value = clora_safetensors_metadata(file, keys[k]);
        if (value && !(*values[k] = strdup(value)))
            ok = fail_dataset(command, path, "out of memory");
    }
    if (ok && has_targets) {
        data->target_width = targets.numel / data->count;
        data->targets = malloc(targets.numel * sizeof *data->targets);
        if (!data->targets || clora_tensor_to_f32(&targets, data->targets) != CLORA_OK)
            ok = fail_dataset(command, path, "cannot read \"targets\"");
        else
            ok = check_finite(command, path, "targets", data->targets, targets.numel,
                              data->target_width);
    }
    clora_safetensors_close(file);
    if (!ok)
        dataset_free(data);
    return ok;
}

void dataset_free(dataset *data)
{
    free(data->inputs);
    free(data->attention_mask);
    free(data->token_types);
    free(data->label_names);
    free(data->tokenizer);
    free(data->task);
    free(data->labels);
    free(data->targets);
    memset(data, 0, sizeof *data);
}

int dataset_save(const char *command, const char *path, const dataset *data)
{
    clora_safetensors_writer *w = NULL;
    clora_status status = clora_safetensors_writer_create(&w);
    size_t shape[4] = {data->count};
    for (size_t d = 0; d < data->input_ndim; ++d)
        shape[d + 1] = data->input_shape[d];
    if (status == CLORA_OK)
        status = clora_safetensors_writer_add(w, "inputs", data->input_dtype, data->input_ndim + 1,
                                              shape, data->inputs);
    if (status == CLORA_OK && data->attention_mask)
        status = clora_safetensors_writer_add(w, "attention_mask", CLORA_DTYPE_I32,
                                              data->input_ndim + 1, shape, data->attention_mask);
    if (status == CLORA_OK && data->token_types)
        status = clora_safetensors_writer_add(w, "token_type_ids", CLORA_DTYPE_I32,
                                              data->input_ndim + 1, shape, data->token_types);
    const size_t lshape[2] = {data->count, data->label_width};
    if (status == CLORA_OK && data->labels)
        status = clora_safetensors_writer_add(w, "labels", CLORA_DTYPE_I32,
                                              data->label_width > 1 ? 2 : 1, lshape, data->labels);
    if (status == CLORA_OK && data->label_names)
        status = clora_safetensors_writer_metadata(w, "label_names", data->label_names);
    if (status == CLORA_OK && data->tokenizer)
        status = clora_safetensors_writer_metadata(w, "tokenizer", data->tokenizer);
    if (status == CLORA_OK && data->task)
        status = clora_safetensors_writer_metadata(w, "task", data->task);
    const size_t tshape[2] = {data->count, data->target_width};
    if (status == CLORA_OK && data->targets)
        status = clora_safetensors_writer_add(w, "targets", CLORA_DTYPE_F32, 2, tshape,
                                              data->targets);
    if (status == CLORA_OK)
        status = clora_safetensors_writer_write(w, path);
    clora_safetensors_writer_destroy(w);
    if (status != CLORA_OK) {
        fprintf(stderr, "clora %s: writing %s: %s\n", command, path, clora_last_error());
        return 0;
    }
    return 1;
}

int dataset_check_tokenizer(const char *command, const dataset *data, const char *data_path,
                            const char *model_path)
{
    clora_tokenizer *tok = NULL;
    if (!data->tokenizer || !find_tokenizer(model_path, &tok))
        return 1;
    char fingerprint[17];
    const int same = clora_tokenizer_fingerprint(tok, fingerprint) != CLORA_OK ||
                     !strcmp(fingerprint, data->tokenizer);
    clora_tokenizer_destroy(tok);
    if (!same)
        fprintf(stderr,
                "clora %s: dataset %s was made with another tokenizer (fingerprint %s) than "
                "model %s's (%s); run clora tokenize with --model %s\n",
                command, data_path, data->tokenizer, model_path, fingerprint, model_path);
    return same;
}

/* ---- batches ----------------------------------------------------------------------- */

/* Device buffers of b->rows examples, b->width tokens each (token data; the
 * whole example otherwise). */
static clora_status batch_buffers(batch *b, const dataset *data)
{
    clora_device *device = clora_model_device(b->model);
    const size_t rows = b->rows;
    size_t shape[4] = {rows};
    for (size_t d = 0; d < data->input_ndim; ++d)
        shape[d + 1] = data->input_shape[d];
    if (data->input_dtype == CLORA_DTYPE_I32 && data->input_ndim == 1)
        shape[1] = b->width;
    clora_status status = clora_buffer_create_typed(&b->input, device, data->input_dtype,
                                                    data->input_ndim + 1, shape);
    const size_t tshape[2] = {rows, data->target_width};
    const size_t lshape[2] = {rows, data->label_width > 1 ? b->width : 1};
    if (status == CLORA_OK)
        status = data->labels ? clora_buffer_create_typed(&b->target, device, CLORA_DTYPE_I32,
                                                          data->label_width > 1 ? 2 : 1, lshape)
                              : clora_buffer_create(&b->target, device, 2, tshape);
    if (status == CLORA_OK && data->attention_mask)
        status = clora_buffer_create_typed(&b->mask, device, CLORA_DTYPE_I32,
                                           data->input_ndim + 1, shape);
    if (status == CLORA_OK && data->token_types)
        status = clora_buffer_create_typed(&b->types, device, CLORA_DTYPE_I32,
                                           data->input_ndim + 1, shape);
    return status;
}

static void batch_release(batch *b)
{
    if (b->model && b->mask)
        clora_model_set_attention_mask(b->model, NULL);
    if (b->model && b->types)
        clora_model_set_token_types(b->model, NULL);
    clora_buffer_destroy(b->input);
    clora_buffer_destroy(b->target);
    clora_buffer_destroy(b->mask);
    clora_buffer_destroy(b->types);
    b->input = b->target = b->mask = b->types = NULL;
}

clora_status batch_create(batch *b, clora_model *model, const dataset *data, size_t rows)
{
    memset(b, 0, sizeof *b);
    b->rows = rows;
    b->model = model;
    b->width = data->input_width;
    clora_status status = batch_buffers(b, data);
    if (status != CLORA_OK)
        batch_destroy(b);
    return status;
}

void batch_destroy(batch *b)
{
    batch_release(b);
    memset(b, 0, sizeof *b);
}

/* Uploads columns [0, cols) of rows order[first ..] of a (count, width)
 * int32 table. */
static clora_status upload_rows_i32(clora_buffer *dst, const int32_t *table, size_t width,
                                    size_t cols, const size_t *order, size_t first, size_t rows)
{
    int32_t *host = malloc(rows * cols * sizeof *host);
    if (!host)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; i < rows; ++i) {
        size_t k = order ? order[first + i] : first + i;
        memcpy(host + i * cols, table + k * width, cols * sizeof *host);
    }
    clora_status status = clora_buffer_upload_i32(dst, 0, host, rows * cols);
    free(host);
    return status;
}

size_t batch_tokens(const dataset *data, const size_t *order, size_t first, size_t rows,
                    size_t *longest)
{
    size_t tokens = 0, most = 0;
    for (size_t i = 0; i < rows; ++i) {
        const size_t k = order ? order[first + i] : first + i;
        size_t length = data->input_width;
        if (data->attention_mask) {
            const int32_t *m = data->attention_mask + k * data->input_width;
            length = 0;
            for (size_t t = 0; t < data->input_width; ++t)
                if (m[t]) {
                    length = t + 1;
                    tokens++;
                }
        } else {
            tokens += length;
        }
        most = length > most ? length : most;
    }
    if (longest)
        *longest = most ? most : 1;
    return tokens;
}

clora_status batch_fill(batch *b, const dataset *data, const size_t *order, size_t first)
{
    return batch_fill_cut(b, data, order, first, first, b->rows);
}

clora_status batch_fill_cut(batch *b, const dataset *data, const size_t *order, size_t first,
                            size_t cut_first, size_t cut_rows)
{
    const size_t w = data->input_width, tw = data->target_width;
    const int tokens = data->input_dtype == CLORA_DTYPE_I32 && data->input_ndim == 1;
    size_t cols = w;
    if (tokens && data->attention_mask) { /* cut after the longest row: the rest is padding */
        batch_tokens(data, order, cut_first, cut_rows, &cols);
        cols = (cols + 7) / 8 * 8; /* in steps of 8: fewer shapes to allocate for */
        cols = cols < w ? cols : w;
    }
    clora_status status = CLORA_OK;
    if (tokens && cols != b->width) {
        batch_release(b);
        b->width = cols;
        if ((status = batch_buffers(b, data)))
            return status;
    }
    float *target = data->targets ? malloc(b->rows * tw * sizeof *target) : NULL;
    if (data->targets && !target)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; target && i < b->rows; ++i) {
        size_t k = order ? order[first + i] : first + i;
        memcpy(target + i * tw, data->targets + k * tw, tw * sizeof *target);
    }
    if (data->input_dtype == CLORA_DTYPE_I32) {
        status = upload_rows_i32(b->input, data->inputs, w, cols, order, first, b->rows);
    } else {
        float *in = malloc(b->rows * w * sizeof *in);
        status = in ? CLORA_OK : CLORA_ERR_OUT_OF_HOST_MEMORY;
        for (size_t i = 0; in && i < b->rows; ++i) {
            size_t k = order ? order[first + i] : first + i;
            memcpy(in + i * w, (const float *)data->inputs + k * w, w * sizeof *in);
        }
        if (status == CLORA_OK)
            status = clora_buffer_upload(b->input, 0, in, b->rows * w);
        free(in);
    }
    const size_t lw = data->label_width;
    if (status == CLORA_OK)
        status = data->labels ? upload_rows_i32(b->target, data->labels, lw, lw > 1 ? cols : 1,
                                                order, first, b->rows)
                              : clora_buffer_upload(b->target, 0, target, b->rows * tw);
    if (status == CLORA_OK && b->mask &&
        (status = upload_rows_i32(b->mask, data->attention_mask, w, cols, order, first,
                                  b->rows)) == CLORA_OK)
        status = clora_model_set_attention_mask(b->model, b->mask);
    if (status == CLORA_OK && b->types &&
        (status = upload_rows_i32(b->types, data->token_types, w, cols, order, first, b->rows)) ==
            CLORA_OK)
        status = clora_model_set_token_types(b->model, b->types);
    free(target);
    return status;
}

uint64_t shuffle_seed(uint64_t seed)
{
    return 0x5eedull ^ (seed * 0x9e3779b97f4a7c15ull);
}

void shuffle_order(size_t *order, size_t count, uint64_t *rng)
{
    for (size_t i = 0; i < count; ++i)
        order[i] = i;
    for (size_t i = count - 1; count && i > 0; --i) {
        size_t j = (size_t)cli_uniform(rng, 0.0f, (float)(i + 1));
        j = j > i ? i : j;
        size_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

size_t batch_scored(const dataset *data, const size_t *order, size_t first, size_t rows)
{
    size_t n = 0;
    for (size_t i = 0; i < rows; ++i) {
        const size_t k = order ? order[first + i] : first + i;
        const int32_t *l = data->labels + k * data->label_width;
        for (size_t t = 0; t < data->label_width; ++t)
            n += l[t] != -100;
    }
    return n;
}

clora_status train_loop(clora_trainer *trainer, const dataset *data, batch *b, size_t steps,
                        uint64_t seed, const char *label, loss_log *log, const char *phase,
                        float *last_loss, double *step_seconds)
{
    const size_t untimed = steps / 10 < 10 ? steps / 10 : 10;
    double timed_from = cli_seconds();
    const size_t per_epoch = data->count / b->rows;
    size_t *order = malloc(data->count * sizeof *order);
    if (!order)
        return CLORA_ERR_OUT_OF_HOST_MEMORY;
    uint64_t rng = shuffle_seed(seed);
    progress bar;
    progress_start(&bar, label, steps);
    float loss = 0.0f;
    clora_status status = CLORA_OK;
    for (size_t step = 0; step < steps && status == CLORA_OK; ++step) {
        if (step == untimed) {
            clora_device_finish(clora_buffer_device(b->input));
            timed_from = cli_seconds();
        }
        const size_t slot = step % per_epoch;
        if (slot == 0) /* a new epoch */
            shuffle_order(order, data->count, &rng);
        status = batch_fill(b, data, order, slot * b->rows);
        if (status == CLORA_OK)
            status = clora_trainer_step(trainer, b->input, b->target, &loss);
        if (status == CLORA_OK) {
            if (log)
                loss_log_add(log, phase, step + 1, loss, clora_trainer_last_lr(trainer));
            progress_update(&bar, step + 1, loss);
        }
    }
    free(order);
    if (status != CLORA_OK) {
        if (bar.tty)
            printf("\n");
        return status;
    }
    clora_device_finish(clora_buffer_device(b->input));
    if (step_seconds)
        *step_seconds = (cli_seconds() - timed_from) / (double)(steps - untimed);
    progress_finish(&bar, steps, loss);
    if (last_loss)
        *last_loss = loss;
    return CLORA_OK;
}

/* (length, index) pairs, longest first, then by index. */
static int compare_keyed(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    return x[0] != y[0] ? (x[0] < y[0]) - (x[0] > y[0]) : (x[1] > y[1]) - (x[1] < y[1]);
}

clora_status evaluate_run(clora_model *model, const dataset *data, size_t batch_rows,
                          cluster *group, eval_result *result)
{
    const size_t rank = group ? (size_t)group->rank : 0, ranks = group ? (size_t)group->size : 1;
    memset(result, 0, sizeof *result);
    const int was_training = clora_model_training(model);
    clora_model_set_training(model, 0);
    size_t rows = batch_rows < data->count ? batch_rows : data->count;
    batch b;
    clora_status status = batch_create(&b, model, data, rows);
    double correct = 0.0, loss_sum = 0.0;
    size_t scored = 0;
    float *logits = NULL;
    const int per_token = data->labels && data->label_width > 1;
    /* examples of similar lengths together: less padding (the order does not
     * change what is counted); longest first, so that the first batch sizes
     * the layers' buffers and the shorter ones after it reuse their memory */
    size_t *order = malloc(data->count * sizeof *order);
    if (status == CLORA_OK && !order)
        status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    for (size_t i = 0; order && i < data->count; ++i)
        order[i] = i;
    if (order && data->attention_mask && data->input_dtype == CLORA_DTYPE_I32) {
        size_t(*keyed)[2] = malloc(data->count * sizeof *keyed); /* (length, index) */
        for (size_t i = 0; keyed && i < data->count; ++i) {
            batch_tokens(data, NULL, i, 1, &keyed[i][0]);
            keyed[i][1] = i;
        }
        if (keyed)
            qsort(keyed, data->count, sizeof *keyed, compare_keyed);
        for (size_t i = 0; keyed && i < data->count; ++i)
            order[i] = keyed[i][1];
        free(keyed);
    }
    for (size_t first = rank * rows; status == CLORA_OK && first < data->count;
         first += ranks * rows) {
        size_t n = data->count - first < rows ? data->count - first : rows;
        if (n != b.rows) { /* the last, shorter batch */
            batch_destroy(&b);
            if ((status = batch_create(&b, model, data, n)))
                break;
        }
        const clora_buffer *out = NULL;
        if ((status = batch_fill(&b, data, order, first)) ||
            (status = clora_model_forward(model, b.input, &out)))
            break;
        if (per_token) { /* next tokens: the loss on the device, weighted by scored tokens */
            const size_t count = batch_scored(data, order, first, n);
            float loss = 0.0f;
            if ((status = clora_cross_entropy(&loss, NULL, out, b.target, -100)))
                break;
            loss_sum += (double)loss * (double)count;
            scored += count;
        } else if (data->labels) { /* one class per example: loss and accuracy on the host */
            const size_t classes = clora_buffer_dim(out, clora_buffer_ndim(out) - 1);
            if (clora_buffer_numel(out) != n * classes) {
                status = CLORA_ERR_SHAPE_MISMATCH;
                break;
            }
            float *grown = realloc(logits, n * classes * sizeof *logits);
            if (!grown) {
                status = CLORA_ERR_OUT_OF_HOST_MEMORY;
                break;
            }
            logits = grown;
            if ((status = clora_buffer_download(out, 0, logits, n * classes)))
                break;
            for (size_t i = 0; i < n; ++i) {
                const int32_t label = data->labels[order[first + i]];
                if (label == -100)
                    continue;
                const float *row = logits + i * classes;
                size_t best = 0;
                for (size_t c = 1; c < classes; ++c)
                    if (row[c] > row[best])
                        best = c;
                double sum = 0.0;
                for (size_t c = 0; c < classes; ++c)
                    sum += exp((double)row[c] - (double)row[best]);
                if (label >= 0 && (size_t)label < classes)
                    loss_sum += log(sum) - ((double)row[label] - (double)row[best]);
                correct += (int32_t)best == label;
                ++scored;
            }
        } else {
            float loss = 0;
            if ((status = clora_mse(&loss, NULL, out, b.target)))
                break;
            loss_sum += loss * (double)n;
            scored += n;
        }
    }
    free(logits);
    free(order);
    batch_destroy(&b);
    clora_model_set_training(model, was_training);
    double sums[3] = {loss_sum, correct, (double)scored};
    if (status == CLORA_OK && ranks > 1 && !cluster_sum(group, sums, 3))
        status = CLORA_ERR_STATE;
    if (status == CLORA_OK && sums[2] > 0) {
        result->loss = sums[0] / sums[2];
        result->accuracy = data->labels && !per_token ? sums[1] / sums[2] : -1.0;
        result->scored = (size_t)sums[2];
    }
    return status;
}

clora_status evaluate(clora_model *model, const dataset *data, size_t batch_rows, double *result)
{
    eval_result r;
    clora_status status = evaluate_run(model, data, batch_rows, NULL, &r);
    if (status == CLORA_OK)
        *result = data->labels ? r.accuracy : r.loss;
    return status;
}

/* ---- progress and loss log ------------------------------------------------------------- */

void progress_start(progress *p, const char *label, size_t total)
{
    p->label = label;
    p->total = total;
    p->start = cli_seconds();
    p->last_print = 0;
    p->first = 0;
    p->tokens = 0;
    p->tty = isatty(fileno(stdout));
}

static void progress_line(const progress *p, size_t step, float loss, int final)
{
    double elapsed = cli_seconds() - p->start;
    const size_t done = step - p->first;
    double rate = elapsed > 0 ? (double)done / elapsed : 0.0;
    double eta = rate > 0 ? (double)(p->total - step) / rate : 0.0;
    char tokens[48] = "";
    if (p->tokens && elapsed > 0)
        snprintf(tokens, sizeof tokens, "  %.0f tokens/s", (double)p->tokens / elapsed);
    printf("%s  %s  step %zu/%zu  loss %.4f  %.2f steps/s%s  %s %.0fs%s", p->tty ? "\r" : "",
           p->label, step, p->total, (double)loss, rate, tokens, final ? "took" : "ETA",
           final ? elapsed : eta, p->tty && !final ? "   " : "\n");
    fflush(stdout);
}

void progress_update(progress *p, size_t step, float loss)
{
    double now = cli_seconds();
    int due = p->tty ? now - p->last_print > 0.1
                     : (p->total >= 10 && step % (p->total / 10) == 0 && step < p->total) ||
                           (p->total < 10 && step < p->total);
    if (!due)
        return;
    p->last_print = now;
    progress_line(p, step, loss, 0);
}

void progress_finish(progress *p, size_t steps, float loss)
{
    progress_line(p, steps, loss, 1);
}

int loss_log_add_eval(loss_log *log, const char *phase, size_t step, float loss,
                      double accuracy)
{
    if (log->count == log->capacity) {
        size_t cap = log->capacity ? 2 * log->capacity : 256;
        loss_row *rows = realloc(log->rows, cap * sizeof *rows);
        if (!rows)
            return 0;
        log->rows = rows;
        log->capacity = cap;
    }
    loss_row *row = &log->rows[log->count++];
    snprintf(row->phase, sizeof row->phase, "%s", phase);
    row->step = step;
    row->loss = loss;
    row->lr = 0.0f;
    row->accuracy = accuracy;
    return 1;
}

int loss_log_add(loss_log *log, const char *phase, size_t step, float loss, float lr)
{
    if (!loss_log_add_eval(log, phase, step, loss, -1.0))
        return 0;
    log->rows[log->count - 1].lr = lr;
    return 1;
}

int loss_log_write(const char *command, const loss_log *log, const char *path)
{
    size_t cap = 64 + log->count * 96, used = 0;
    char *text = malloc(cap);
    if (!text)
        return 0;
    used += (size_t)snprintf(text, cap, "phase,step,loss,lr,accuracy\n");
    for (size_t i = 0; i < log->count; ++i) {
        const loss_row *r = &log->rows[i];
        char accuracy[32] = "";
        if (r->accuracy >= 0.0)
            snprintf(accuracy, sizeof accuracy, "%.6g", r->accuracy);
        used += (size_t)snprintf(text + used, cap - used, "%s,%zu,%.6g,%.6g,%s\n", r->phase,
                                 r->step, (double)r->loss, (double)r->lr, accuracy);
    }
    int ok = write_file_atomic(command, path, text, used);
    free(text);
    return ok;
}

void loss_log_free(loss_log *log)
{
    free(log->rows);
    memset(log, 0, sizeof *log);
}

/* ---- formatting and reports -------------------------------------------------------------- */

const char *with_commas(size_t n, char *out, size_t size)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%zu", n);
    size_t used = 0;
    for (int i = 0; i < len && used + 2 < size; ++i) {
        if (i > 0 && (len - i) % 3 == 0)
            out[used++] = ',';
        out[used++] = digits[i];
    }
    out[used] = '\0';
    return out;
}

const char *human_bytes(double bytes, char *out, size_t size)
{
    const char *units[] = {"B", "KiB", "MiB", "GiB"};
    int u = 0;
    while (bytes >= 1024.0 && u < 3) {
        bytes /= 1024.0;
        ++u;
    }
    snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
    return out;
}

void print_parameter_counts(FILE *out, clora_model *model, const char *indent)
{
    clora_param_counts counts;
    if (clora_model_count_params(model, &counts) != CLORA_OK)
        return;
    char a[32], b[32];
    fprintf(out, "%sTotal trainable LoRA parameters: %s (frozen: %s)\n", indent,
            with_commas(counts.trainable, a, sizeof a), with_commas(counts.frozen, b, sizeof b));
    fprintf(out, "%strainable params: %s || all params: %s || trainable%%: %.4f\n", indent,
            with_commas(counts.trainable, a, sizeof a), with_commas(counts.total, b, sizeof b),
            counts.total ? 100.0 * (double)counts.trainable / (double)counts.total : 0.0);
}

void print_memory(FILE *out, clora_device *device, const char *indent)
{
    clora_memory_report report;
    if (clora_device_memory(device, &report) != CLORA_OK)
        return;
    char text[32];
    fprintf(out, "%sdevice memory:", indent);
    for (int c = CLORA_MEMORY_FROZEN; c < CLORA_MEMORY_CATEGORY_COUNT; ++c)
        fprintf(out, "%s %s %s", c == CLORA_MEMORY_FROZEN ? "" : ",",
                clora_memory_category_name((clora_memory_category)c),
                human_bytes((double)report.bytes[c], text, sizeof text));
    fprintf(out, " (peak %s)\n", human_bytes((double)report.peak, text, sizeof text));
    /* frozen weights by storage type, when any is packed */
    if (report.frozen_bytes_by_dtype[CLORA_DTYPE_F32] == report.bytes[CLORA_MEMORY_FROZEN])
        return;
    fprintf(out, "%sfrozen weights by type:", indent);
    int first = 1;
    for (int d = 0; d < CLORA_DTYPE_COUNT; ++d)
        if (report.frozen_bytes_by_dtype[d]) {
            fprintf(out, "%s %s %s", first ? "" : ",", clora_dtype_name((clora_dtype)d),
                    human_bytes((double)report.frozen_bytes_by_dtype[d], text, sizeof text));
            first = 0;
        }
    if (report.dequantize_scratch_bytes)
        fprintf(out, "; dequantize tile %s",
                human_bytes((double)report.dequantize_scratch_bytes, text, sizeof text));
    fputc('\n', out);
}

int write_file_atomic(const char *command, const char *path, const void *data, size_t size)
{
    if (clora_file_write_atomic(path, data, size) == CLORA_OK)
        return 1;
    fprintf(stderr, "clora %s: %s\n", command, clora_last_error());
    return 0;
}

/* Fails, with one line of error, unless `path` (given with `option`) can be
 * written later: the folder it goes in exists and is writable, and `path`,
 * if there, is a folder when `folder` and no folder otherwise. */
int output_writable(const char *command, const char *option, const char *path, int folder)
{
    if (!path)
        return 1;
    struct stat st;
    if (stat(path, &st) == 0 && (S_ISDIR(st.st_mode) != 0) != folder) {
        fprintf(stderr, "clora %s: %s %s is %s\n", command, option, path,
                folder ? "not a folder" : "a folder");
        return 0;
    }
    char *copy = strdup(path);
    if (!copy) {
        fprintf(stderr, "clora %s: out of memory\n", command);
        return 0;
    }
    const char *parent = dirname(copy), *why = NULL;
    if (stat(parent, &st) != 0)
        why = strerror(errno);
    else if (!S_ISDIR(st.st_mode))
        why = "not a folder";
    else if (access(parent, W_OK) != 0)
        why = strerror(errno);
    if (why)
        fprintf(stderr, "clora %s: %s %s: cannot write in %s: %s\n", command, option, path,
                parent, why);
    free(copy);
    return why == NULL;
}
