/* training.h — what `clora train` and `clora demo` share: datasets in
 * safetensors files, batches, evaluation, the progress line, the loss log,
 * and the parameter and memory reports. */
#ifndef CLORA_TOOLS_TRAINING_H
#define CLORA_TOOLS_TRAINING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "clora/clora.h"
#include "cluster.h"

/* A dataset file (safetensors) holds:
 *   "inputs"          F32 (N, ...) features, or I32 (N, T) token ids
 *   "labels"          I32 (N) class indices, or (N, T) a class per token
 *                     (-100: not scored) — classification (cross-entropy), or
 *   "targets"         F32 (N, ...) — regression (mean squared error);
 * with token ids, optionally
 *   "attention_mask"  I32 (N, T), 0 for padding
 *   "token_type_ids"  I32 (N, T), BERT's segments
 * and in the metadata "label_names", a JSON list of the class names;
 * `clora tokenize` adds "tokenizer", the fingerprint of the tokenizer that
 * made the ids (clora_tokenizer_fingerprint), and "task", "classify" or
 * "causal_lm". */
typedef struct dataset {
    size_t count;             /* N */
    clora_dtype input_dtype;  /* F32 or I32 */
    size_t input_ndim;        /* dimensions of one example */
    size_t input_shape[3];
    size_t input_width;       /* elements of one example */
    void *inputs;             /* count * input_width */
    int32_t *attention_mask;  /* count * input_width, or NULL */
    int32_t *token_types;     /* count * input_width, or NULL */
    int32_t *labels;          /* classification, or NULL */
    size_t label_width;       /* 1, or T for a label per token */
    float *targets;           /* regression, or NULL */
    size_t target_width;
    char *label_names;        /* JSON list, or NULL */
    char *tokenizer;          /* the ids' tokenizer fingerprint, or NULL */
    char *task;               /* "classify", "causal_lm", or NULL */
} dataset;

/* Loads and checks a dataset file; prints a one-line error ("clora COMMAND:
 * ...") and returns 0 on failure. */
int dataset_load(const char *command, const char *path, dataset *data);
void dataset_free(dataset *data);
/* Writes a dataset file (atomically); returns 0 after printing an error. */
int dataset_save(const char *command, const char *path, const dataset *data);
/* Whether the ids of a dataset (at data_path) can go into the model at
 * model_path: 1 when the dataset records no tokenizer, the model has no
 * tokenizer clora reads, or their fingerprints agree; else prints one line
 * saying which tokenizer to make it with and returns 0. */
int dataset_check_tokenizer(const char *command, const dataset *data, const char *data_path,
                            const char *model_path);

/* Device buffers for one batch of `rows` examples, for `model`. Token
 * batches with an attention mask are cut to their longest row (`width`
 * tokens; the columns after it hold only padding). */
typedef struct batch {
    size_t rows, width;
    clora_model *model;
    clora_buffer *input, *target, *mask, *types;
} batch;

clora_status batch_create(batch *b, clora_model *model, const dataset *data, size_t rows);
/* Frees the buffers (and takes the mask and token types off the model). */
void batch_destroy(batch *b);
/* Fills the batch with examples order[first .. first + rows) (order NULL:
 * first ..) and sets its attention mask and token types on the model. */
clora_status batch_fill(batch *b, const dataset *data, const size_t *order, size_t first);
/* The same, cut to the longest row of the span order[cut_first ..
 * cut_first + cut_rows) that holds them (a whole batch, of which this is a
 * part: every part then has the whole batch's positions). */
clora_status batch_fill_cut(batch *b, const dataset *data, const size_t *order, size_t first,
                            size_t cut_first, size_t cut_rows);
/* The real (unmasked) tokens of those rows; *longest (may be NULL): the
 * longest row's length up to its last real token. */
size_t batch_tokens(const dataset *data, const size_t *order, size_t first, size_t rows,
                    size_t *longest);

/* The labels other than -100 of rows order[first ..] (order NULL:
 * first ..): what a token-level loss averages over. */
size_t batch_scored(const dataset *data, const size_t *order, size_t first, size_t rows);

/* The epochs' example orders: the generator for a run's seed, and a new
 * order drawn from it (Fisher-Yates over 0 .. count-1). */
uint64_t shuffle_seed(uint64_t seed);
void shuffle_order(size_t *order, size_t count, uint64_t *rng);

/* What a pass over a dataset in eval mode measured. */
typedef struct eval_result {
    double loss;     /* mean cross-entropy over the scored labels, or mean squared error */
    double accuracy; /* a class per example: the fraction whose largest logit is the label;
                      * -1 for next-token data (the logits are not read back) */
    size_t scored;   /* labels other than -100, or examples */
} eval_result;

/* The pass; with a cluster of several ranks (may be NULL), each rank takes
 * every size-th batch and the sums are added over the ranks. */
clora_status evaluate_run(clora_model *model, const dataset *data, size_t batch_rows,
                          cluster *group, eval_result *result);
/* Classification: the accuracy above; regression: the mean squared error. */
clora_status evaluate(clora_model *model, const dataset *data, size_t batch_rows, double *result);

/* The live progress line: "  <label>  step 120/400  loss 0.1234  52.30 steps/s
 * 812 tokens/s  ETA 5s" (tokens when `tokens` counts them), rewritten in
 * place on a terminal, printed every tenth of the run otherwise. A run
 * continued from step `first` counts its rate from there. */
typedef struct progress {
    const char *label;
    size_t total, first;
    size_t tokens; /* real tokens trained on so far, or 0 */
    double start, last_print;
    int tty;
} progress;

void progress_start(progress *p, const char *label, size_t total);
void progress_update(progress *p, size_t step, float loss);
void progress_finish(progress *p, size_t steps, float loss);

/* The loss curve, written as CSV (phase,step,loss,lr,accuracy; the
 * accuracy of evaluation rows, empty elsewhere). */
typedef struct loss_row {
    char phase[16];
    size_t step;
    float loss, lr;
    double accuracy; /* < 0: none */
} loss_row;

typedef struct loss_log {
    loss_row *rows;
    size_t count, capacity;
} loss_log;

int loss_log_add(loss_log *log, const char *phase, size_t step, float loss, float lr);
/* An evaluation row: loss and accuracy (< 0: none) at a step. */
int loss_log_add_eval(loss_log *log, const char *phase, size_t step, float loss,
                      double accuracy);
int loss_log_write(const char *command, const loss_log *log, const char *path);
void loss_log_free(loss_log *log);

/* Runs `steps` trainer steps over shuffled batches of b->rows examples
 * (reshuffled every epoch from `seed`; an epoch's last partial batch is
 * skipped), with a progress line and the loss of each step in `log` under
 * `phase`. *last_loss gets the final batch loss; *step_seconds (may be
 * NULL) the mean time of a step after the first tenth of the run (at most
 * 10 steps), which leaves out kernel compilation on first use. */
clora_status train_loop(clora_trainer *trainer, const dataset *data, batch *b, size_t steps,
                        uint64_t seed, const char *label, loss_log *log, const char *phase,
                        float *last_loss, double *step_seconds);

/* "12,345" */
const char *with_commas(size_t n, char *out, size_t size);
/* "12.3 KiB" */
const char *human_bytes(double bytes, char *out, size_t size);

/* Prints the parameter counts the way the original request's text reports
 * them, plus PEFT's one-line summary. */
void print_parameter_counts(FILE *out, clora_model *model, const char *indent);
/* Prints device memory by category. */
void print_memory(FILE *out, clora_device *device, const char *indent);

/* 1 when `path` (given with `option`, may be NULL) can be written: the
 * folder it goes in exists and is writable, and `path`, if there, is a
 * folder when `folder` and no folder otherwise; else 0, with one line of
 * error ("clora COMMAND: ..."). Commands check their outputs before their
 * work, so that a run does not end by failing to write its results. */
int output_writable(const char *command, const char *option, const char *path, int folder);

/* clora_file_write_atomic(), its failure printed ("clora COMMAND: ..."): 1
 * when written. */
int write_file_atomic(const char *command, const char *path, const void *data, size_t size);

#endif /* CLORA_TOOLS_TRAINING_H */
