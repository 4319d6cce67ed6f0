/* fit.h — `clora train`'s run: optimizer steps over shuffled batches of a
 * dataset, each in one or more micro-batches; evaluation on a validation
 * set every so many steps, keeping the best adapter; saves of the adapter
 * and the run's state that `--resume` continues from bit for bit. */
#ifndef CLORA_TOOLS_FIT_H
#define CLORA_TOOLS_FIT_H

#include "training.h"

typedef struct fit_options {
    size_t steps;       /* optimizer steps of the whole run (the schedule's length) */
    size_t stop_at;     /* stop after this step; 0: steps */
    size_t batch;       /* examples per optimizer step */
    size_t grad_accum;  /* micro-batches per step; divides batch */
    size_t eval_every;  /* evaluate on val every this many steps; 0: not during the run */
    size_t save_every;  /* save the adapter and state to out every this many steps; 0: never
                         * during the run */
    size_t eval_rows;   /* examples per evaluation batch */
    uint64_t seed;      /* shuffling */
    const char *out;    /* the adapter folder; the best one goes to out/best */
    const char *resume; /* a folder a run saved (adapter, training_state.safetensors,
                         * run.json) to continue from, or NULL */
    cluster *cluster;   /* the ranks sharing each batch (NULL: this process alone); batch
                         * is the whole batch, split as size x grad_accum parts */
} fit_options;

typedef struct fit_result {
    size_t first_step;        /* where this run started (> 0 when resumed) */
    size_t steps_done;        /* the step count at the end */
    float last_loss;
    double step_seconds;      /* mean per step after the first tenth (at most 10 steps) */
    double tokens_per_second; /* real tokens, over the same steps; 0 without token data */
    double best_val_loss;     /* -1: no validation */
    size_t best_step;
} fit_result;

/* The optimizer steps from where the trainer stands (0, or a resumed
 * run's) to stop_at, with the progress line and each step's loss in `log`
 * ("train" rows; "val" rows with the accuracy when evaluating). Prints a
 * one-line error and returns 0 on failure. */
int fit(clora_trainer *trainer, clora_model *model, const dataset *train, const dataset *val,
        const fit_options *options, loss_log *log, fit_result *result);

/* The file names a run saves into its folder. */
#define FIT_STATE_FILE "training_state.safetensors"
#define FIT_RUN_FILE "run.json"

#endif /* CLORA_TOOLS_FIT_H */
