/* fit.c — `clora train`'s run over a dataset: shuffled global batches in
 * micro-batches, evaluation, the best adapter, saves and resuming. */
#define _POSIX_C_SOURCE 200809L
#include "fit.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

static int join(char *out, size_t size, const char *dir, const char *name)
{
    if (snprintf(out, size, "%s/%s", dir, name) >= (int)size) {
        fprintf(stderr, "clora train: the path %s/%s is too long\n", dir, name);
        return 0;
    }
    return 1;
}

/* run.json: where the run stands beside its state (the best so far). */
static int save_run(const char *dir, size_t step, const fit_result *r)
{
    char path[4096];
    if (!join(path, sizeof path, dir, FIT_RUN_FILE))
        return 0;
    json_t *run = json_pack("{s:I, s:f, s:I}", "step", (json_int_t)step, "best_val_loss",
                            r->best_val_loss, "best_step", (json_int_t)r->best_step);
    char *text = run ? json_dumps(run, JSON_INDENT(2)) : NULL;
    json_decref(run);
    int ok = text && write_file_atomic("train", path, text, strlen(text));
    free(text);
    return ok;
}

/* The adapter and the run's state into `dir`, each file replaced whole.
 * --resume reads the state alone (it holds every trainable value), so it
 * goes last: killed before it, the folder resumes from the previous save,
 * whose steps then run again to the same bytes; run.json's best so far,
 * written before it, describes `best/` as it is on disk either way. */
static int save_checkpoint(clora_trainer *trainer, clora_model *model, const char *dir,
                           const fit_result *r)
{
    char path[4096];
    clora_status status = clora_adapter_save(model, NULL, dir);
    if (status != CLORA_OK) {
        cli_report("train", "saving the adapter", status);
        return 0;
    }
    if (!save_run(dir, clora_trainer_step_count(trainer), r) ||
        !join(path, sizeof path, dir, FIT_STATE_FILE))
        return 0;
    if ((status = clora_trainer_save_state(trainer, path))) {
        cli_report("train", "saving the run's state", status);
        return 0;
    }
    return 1;
}

/* Continues the run saved in dir: its state, and the best so far. */
static int resume_from(clora_trainer *trainer, const char *dir, fit_result *r)
{
    char path[4096];
    if (!join(path, sizeof path, dir, FIT_STATE_FILE))
        return 0;
    clora_status status = clora_trainer_load_state(trainer, path);
    if (status != CLORA_OK) {
        cli_report("train", "resuming", status);
        return 0;
    }
    if (!join(path, sizeof path, dir, FIT_RUN_FILE))
        return 0;
    json_t *run = json_load_file(path, 0, NULL);
    json_t *best = json_object_get(run, "best_val_loss");
    json_t *step = json_object_get(run, "best_step");
    if (json_is_number(best) && json_is_integer(step)) {
        r->best_val_loss = json_number_value(best);
        r->best_step = (size_t)json_integer_value(step);
    }
    json_decref(run);
    return 1;
}

/* Evaluates on val at `step`: prints, logs, and keeps the best adapter. */
static int validate(clora_model *model, const dataset *val, const fit_options *o, size_t step,
                    loss_log *log, fit_result *r, int tty)
{
    eval_result e;
    clora_status status = evaluate_run(model, val, o->eval_rows, o->cluster, &e);
    if (status != CLORA_OK) {
        cli_report("train", "evaluating on the validation data", status);
        return 0;
    }
    if (log)
        loss_log_add_eval(log, "val", step, (float)e.loss, e.accuracy);
    const int better = r->best_val_loss < 0.0 || e.loss < r->best_val_loss;
    printf("%s  step %zu: validation loss %.4f", tty ? "\r" : "", step, e.loss);
    if (e.accuracy >= 0.0)
        printf(", accuracy %.2f%%", 100.0 * e.accuracy);
    if (better && o->out) {
        char dir[4096];
        if (!join(dir, sizeof dir, o->out, "best"))
            return 0;
        mkdir(o->out, 0777); /* clora_adapter_save makes the last folder only */
        if ((status = clora_adapter_save(model, NULL, dir))) {
            printf("\n");
            cli_report("train", "saving the best adapter", status);
            return 0;
        }
        printf(" (best so far: saved to %s)", dir);
    }
    printf("%s\n", tty ? "   " : "");
    if (better) {
        r->best_val_loss = e.loss;
        r->best_step = step;
    }
    return 1;
}

int fit(clora_trainer *trainer, clora_model *model, const dataset *train, const dataset *val,
        const fit_options *o, loss_log *log, fit_result *r)
{
    memset(r, 0, sizeof *r);
    r->best_val_loss = -1.0;
    const size_t rank = o->cluster ? (size_t)o->cluster->rank : 0;
    const size_t ranks = o->cluster ? (size_t)o->cluster->size : 1;
    const size_t share = o->batch / ranks; /* this rank's examples of each batch */
    const size_t micro = share / o->grad_accum;
    const size_t per_epoch = train->count / o->batch;
    const size_t stop = o->stop_at && o->stop_at < o->steps ? o->stop_at : o->steps;
    if (o->resume && !resume_from(trainer, o->resume, r))
        return 0;
    const size_t first = clora_trainer_step_count(trainer);
    r->first_step = first;
    if (first > stop) {
        fprintf(stderr, "clora train: %s is at step %zu, past the run's %zu steps\n", o->resume,
                first, stop);
        return 0;
    }
    size_t *order = malloc(train->count * sizeof *order);
    batch b;
    clora_status status = order ? batch_create(&b, model, train, micro)
                                : CLORA_ERR_OUT_OF_HOST_MEMORY;
    if (status != CLORA_OK) {
        free(order);
        cli_report("train", "setting up the batches", status);
        return 0;
    }
    uint64_t rng = shuffle_seed(o->seed);
    for (size_t step = 0; step < first; ++step) /* the orders the run has used */
        if (step % per_epoch == 0)
            shuffle_order(order, train->count, &rng);
    const int tokens = train->input_dtype == CLORA_DTYPE_I32;
    const int per_token = train->labels && train->label_width > 1;
    const size_t todo = stop - first, untimed = todo / 10 < 10 ? todo / 10 : 10;
    double timed_from = cli_seconds();
    size_t timed_tokens = 0;
    progress bar;
    progress_start(&bar, "training", stop);
    bar.first = first;
    int ok = 1;
    float loss = 0.0f;
    for (size_t step = first; step < stop && ok; ++step) {
        if (step - first == untimed) {
            clora_device_finish(clora_model_device(model));
            timed_from = cli_seconds();
            timed_tokens = 0;
        }
        const size_t slot = step % per_epoch;
        if (slot == 0)
            shuffle_order(order, train->count, &rng);
        const size_t base = slot * o->batch;
        const size_t scored = per_token ? batch_scored(train, order, base, o->batch) : 0;
        /* this step's loss and real tokens, over every rank */
        double step_sums[2] = {0.0, 0.0};
        for (size_t k = 0; k < o->grad_accum && status == CLORA_OK; ++k) {
            const size_t place = rank * share + k * micro; /* in the whole batch */
            const size_t at = base + place;
            /* each micro-batch's share of the whole batch's loss */
            const float weight = per_token ? (scored ? (float)batch_scored(train, order, at,
                                                                            micro) /
                                                           (float)scored
                                                     : 0.0f)
                                           : 1.0f / (float)(o->grad_accum * ranks);
            float part = 0.0f;
            /* every part holds the whole batch's positions: its masks are the
             * whole batch's (clora_trainer_accumulate_at) */
            status = batch_fill_cut(&b, train, order, at, base, o->batch);
            if (status == CLORA_OK)
                status = clora_trainer_accumulate_at(trainer, b.input, b.target, weight, place,
                                                     &part);
            step_sums[0] += (double)weight * part;
            if (tokens)
                step_sums[1] += (double)batch_tokens(train, order, at, micro, NULL);
        }
        if (status == CLORA_OK)
            status = clora_trainer_update(trainer); /* the hook sums the gradients */
        if (status == CLORA_OK && ranks > 1 && !cluster_sum(o->cluster, step_sums, 2))
            status = CLORA_ERR_STATE;
        loss = (float)step_sums[0];
        bar.tokens += (size_t)step_sums[1];
        timed_tokens += (size_t)step_sums[1];
        if (status != CLORA_OK) {
            if (bar.tty)
                printf("\n");
            cli_report("train", "training", status);
            ok = 0;
            break;
        }
        const size_t done = step + 1;
        if (log)
            loss_log_add(log, "train", done, loss, clora_trainer_last_lr(trainer));
        progress_update(&bar, done, loss);
        if (val && o->eval_every && done % o->eval_every == 0 && done < stop)
            ok = validate(model, val, o, done, log, r, bar.tty);
        if (ok && o->out && o->save_every && done % o->save_every == 0 && done < stop)
            ok = save_checkpoint(trainer, model, o->out, r);
    }
    if (ok) {
        clora_device_finish(clora_model_device(model));
        const double seconds = cli_seconds() - timed_from;
        const size_t timed = todo - untimed;
        r->step_seconds = timed ? seconds / (double)timed : 0.0;
        r->tokens_per_second = tokens && seconds > 0 ? (double)timed_tokens / seconds : 0.0;
        r->last_loss = loss;
        r->steps_done = stop;
        if (todo)
            progress_finish(&bar, stop, loss);
        if (val)
            ok = validate(model, val, o, stop, log, r, 0);
        if (ok && o->out)
            ok = save_checkpoint(trainer, model, o->out, r);
    }
    batch_destroy(&b);
    free(order);
    return ok;
}
