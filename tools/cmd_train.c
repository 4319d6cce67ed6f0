/* cmd_train.c — `clora train`: LoRA fine-tuning of a saved model on dataset
 * files, saving a PEFT adapter; classification (also on decoders, with a
 * new head), next-token training, regression. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "fit.h"
#include "models.h"
#include "options.h"
#include "training.h"

static const char train_description[] =
    "Applies LoRA to a model, trains only the adapter on a dataset, and saves it\n"
    "as a PEFT adapter folder (adapter_config.json + adapter_model.safetensors)\n"
    "with the run's state (training_state.safetensors, run.json) for --resume.\n"
    "The base model is not modified.\n"
    "\n"
    "A dataset is a safetensors file with \"inputs\" (F32 (N, features) or I32\n"
    "(N, T) token ids, with an optional I32 \"attention_mask\" and\n"
    "\"token_type_ids\") and either \"labels\" or \"targets\"; `clora tokenize`\n"
    "makes one from text and records its tokenizer, which must be the model's.\n"
    "The task follows from the labels (--task auto):\n"
    "  classify  I32 labels (N): a class per example, cross-entropy, accuracy.\n"
    "            BERT folders get \"classifier\"; GPT-2 and Llama-family decoders\n"
    "            get \"score\" on the last real token (as transformers'\n"
    "            *ForSequenceClassification): trained in full and saved with the\n"
    "            adapter (PEFT's modules_to_save), or with --lora-on-head frozen\n"
    "            at its random start with LoRA on it (the frozen weight is saved\n"
    "            too, as score.base_layer.weight, which PEFT loads).\n"
    "  lm        I32 labels (N, T): the next token at each position, -100 where\n"
    "            not scored (prompt tokens, padding); the loss is the mean over\n"
    "            every scored token of the batch, also across --grad-accum parts.\n"
    "  regression  F32 targets: mean squared error.\n"
    "Without --targets, LoRA goes where PEFT puts it by default: query and value\n"
    "for BERT, c_attn for GPT-2, q_proj and v_proj for Llama-family models;\n"
    "--targets all-linear takes every Linear but the output head.\n"
    "\n"
    "Batches are cut to their longest row. With --val the run evaluates every\n"
    "--eval-every steps and at the end, keeping the adapter of the lowest\n"
    "validation loss in OUT/best; --test is evaluated before and after only.\n"
    "--log writes the loss curve as CSV (phase,step,loss,lr,accuracy), which\n"
    "tools/plot_loss.py turns into a PNG where matplotlib is installed.\n"
    "\n"
    "On several processes (mpirun -np K clora train ..., clora built with MPI),\n"
    "each rank opens its own device (CLORA_DEVICE, else its machine's GPU of\n"
    "its local rank) and takes B/K examples of each batch; the gradients are\n"
    "summed over the ranks before each step, so K ranks, one process and\n"
    "--grad-accum K write the same adapter, dropout included. Rank 0 prints\n"
    "and writes; a rank that fails stops them all.\n";

typedef struct train_options {
    const char *model, *data, *out, *val, *eval, *test, *log, *json, *device, *resume;
    const char *save_initial;
    size_t rank, steps, epochs, batch, warmup, num_labels, grad_accum, eval_every, save_every;
    size_t stop_at, seed;
    float alpha, dropout, lr, weight_decay, momentum, clip;
    const char *targets, *target_regex, *exclude, *rank_pattern, *trainable, *adapter_name;
    const char *layers, *layers_pattern;
    int bias;
    int scale_mode, init, optimizer, schedule, task, lora_on_head, base_dtype, checkpointing;
    int weight_decay_set;
    int dora;
    int bert_head; /* a clora_bert_head */
} train_options;

/* Names in the order of clora_scale_mode, clora_init_mode,
 * clora_optimizer_kind, clora_schedule_kind and task_kind. */
static const char *const scale_names[] = {"seed", "peft", "rslora", NULL};
static const char *const init_names[] = {"peft", "seed", "gaussian", NULL};
static const char *const optimizer_names[] = {"adamw", "sgd", NULL};
static const char *const schedule_names[] = {"constant", "linear", "cosine", NULL};
/* In the order of clora_bert_head. */
static const char *const bert_head_names[] = {"auto", "mean", "pooler", NULL};
static const char *const task_names[] = {"auto", "classify", "lm", "regression", NULL};
static const char *const bias_names[] = {"none", "lora_only", "all", NULL}; /* clora_bias_mode */
typedef enum task_kind { TASK_AUTO, TASK_CLASSIFY, TASK_LM, TASK_REGRESSION } task_kind;

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse(int argc, char **argv, train_options *o)
{
    const cli_option options[] = {
        CLI_SECTION("required:"),
        {CLI_OPT("--model", CLI_STRING, &o->model, "PATH",
                 "a clora model folder, a Hugging Face GPT-2/BERT/Llama-family folder or a "
                 "GGUF file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--data", CLI_STRING, &o->data, "FILE", "training data"), .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &o->out, "DIR",
                 "where to save the adapter and the run (created if needed)"),
         .flags = CLI_REQUIRED},
        CLI_SECTION("base model:"),
        BASE_DTYPE_OPTION(&o->base_dtype),
        CLI_SECTION("task:"),
        {CLI_OPT("--task", CLI_CHOICE, &o->task, "KIND",
                 "auto (from the labels), classify, lm or regression"),
         .fallback = "auto", .choices = task_names},
        {CLI_OPT("--num-labels", CLI_SIZE, &o->num_labels, "K",
                 "classes of a new head (default: from the labels)")},
        {CLI_OPT("--lora-on-head", CLI_FLAG, &o->lora_on_head, NULL,
                 "decoders: LoRA on the new head instead of training it in full")},
        {CLI_OPT("--bert-head", CLI_CHOICE, &o->bert_head, "HEAD",
                 "BERT: auto (the checkpoint's: BertForSequenceClassification's pooler and "
                 "classifier, else mean pooling), mean, or pooler (tanh(pooler.dense) on "
                 "[CLS], a BertModel that kept its pooler)"),
         .fallback = "auto", .choices = bert_head_names},
        CLI_SECTION("LoRA:"),
        {CLI_OPT("--rank", CLI_SIZE, &o->rank, "R", "rank r, 1..256"), .fallback = "8"},
        {CLI_OPT("--alpha", CLI_FLOAT, &o->alpha, "A", "alpha"), .fallback = "16"},
        {CLI_OPT("--scale-mode", CLI_CHOICE, &o->scale_mode, "MODE",
                 "peft (alpha/r), seed (alpha) or rslora (alpha/sqrt(r))"),
         .fallback = "peft", .choices = scale_names},
        {CLI_OPT("--dropout", CLI_FLOAT, &o->dropout, "P", "dropout on the LoRA branch"),
         .fallback = "0"},
        {CLI_OPT("--init", CLI_CHOICE, &o->init, "MODE", "peft, seed or gaussian"),
         .fallback = "peft", .choices = init_names},
        {CLI_OPT("--dora", CLI_FLAG, &o->dora, NULL,
                 "DoRA (PEFT's use_dora): also train a magnitude per output feature of each "
                 "adapted weight (F32, F16 or BF16 base weights)")},
        {CLI_OPT("--targets", CLI_STRING, &o->targets, "A,B",
                 "modules to adapt, PEFT's rule, or all-linear (default: every Linear of "
                 "clora models; PEFT's defaults for Hugging Face models); an Embedding "
                 "(wte, embed_tokens) gets PEFT's embedding LoRA")},
        {CLI_OPT("--target-regex", CLI_STRING, &o->target_regex, "RE",
                 "or a regex over the whole module path")},
        {CLI_OPT("--exclude", CLI_STRING, &o->exclude, "A,B", "modules to leave alone")},
        {CLI_OPT("--rank-pattern", CLI_STRING, &o->rank_pattern, "P=R,..",
                 "per-module ranks (regex=rank)")},
        {CLI_OPT("--layers", CLI_STRING, &o->layers, "I,J",
                 "only these layer indices of the --targets matches (PEFT's "
                 "layers_to_transform)")},
        {CLI_OPT("--layers-pattern", CLI_STRING, &o->layers_pattern, "P,Q",
                 "with --layers: the name before the index (regexes; default: any)")},
        {CLI_OPT("--bias", CLI_CHOICE, &o->bias, "MODE",
                 "biases that train and travel with the adapter: none, lora_only (the "
                 "adapted layers') or all"),
         .fallback = "none", .choices = bias_names},
        {CLI_OPT("--trainable", CLI_STRING, &o->trainable, "A,B",
                 "modules that train in full and are saved with the adapter")},
        {CLI_OPT("--adapter-name", CLI_STRING, &o->adapter_name, "NAME", "the adapter's name"),
         .fallback = "default"},
        CLI_SECTION("training:"),
        {CLI_OPT("--steps", CLI_SIZE, &o->steps, "N", "optimizer steps (default: one epoch)"),
         CLI_AT_LEAST(1)},
        {CLI_OPT("--epochs", CLI_SIZE, &o->epochs, "E", "or passes over the data"),
         CLI_AT_LEAST(1)},
        {CLI_OPT("--batch-size", CLI_SIZE, &o->batch, "B",
                 "examples per optimizer step; an epoch's last partial batch is skipped"),
         .fallback = "32", CLI_AT_LEAST(1)},
        {CLI_OPT("--grad-accum", CLI_SIZE, &o->grad_accum, "K",
                 "split each batch into K micro-batches (less memory, the same step, "
                 "dropout included); K divides B (with MPI: ranks x K divides B)"),
         .fallback = "1", CLI_AT_LEAST(1)},
        {CLI_OPT("--checkpointing", CLI_FLAG, &o->checkpointing, NULL,
                 "gradient checkpointing: each transformer block keeps only its input and "
                 "is computed again in backward (less activation memory, about 1.3x the "
                 "step time, the same result)")},
        {CLI_OPT("--lr", CLI_FLOAT, &o->lr, "LR", "learning rate"), .fallback = "1e-3",
         CLI_AT_LEAST(0)},
        {CLI_OPT("--optimizer", CLI_CHOICE, &o->optimizer, "NAME", "adamw or sgd"),
         .fallback = "adamw", .choices = optimizer_names},
        {CLI_OPT("--weight-decay", CLI_FLOAT, &o->weight_decay, "W",
                 "weight decay (default 0.01 for AdamW, 0 for SGD)"),
         .given = &o->weight_decay_set, CLI_AT_LEAST(0)},
        {CLI_OPT("--momentum", CLI_FLOAT, &o->momentum, "M", "SGD momentum"), .fallback = "0.9",
         CLI_AT_LEAST(0)},
        {CLI_OPT("--schedule", CLI_CHOICE, &o->schedule, "NAME",
                 "constant, linear or cosine, after --warmup"),
         .fallback = "constant", .choices = schedule_names},
        {CLI_OPT("--warmup", CLI_SIZE, &o->warmup, "N", "linear warm-up steps"), .fallback = "0"},
        {CLI_OPT("--clip", CLI_FLOAT, &o->clip, "NORM",
                 "clip gradients to this global norm (default: off)"),
         CLI_AT_LEAST(0)},
        {CLI_OPT("--seed", CLI_SIZE, &o->seed, "S",
                 "shuffling, initialisation of LoRA and a new head, dropout"),
         .fallback = "0"},
        CLI_SECTION("evaluation and saving:"),
        {CLI_OPT("--val", CLI_STRING, &o->val, "FILE", "validation data")},
        {CLI_OPT("--eval", CLI_STRING, &o->eval, "FILE", "the same as --val")},
        {CLI_OPT("--test", CLI_STRING, &o->test, "FILE", "test data, evaluated before and after")},
        {CLI_OPT("--eval-every", CLI_SIZE, &o->eval_every, "N",
                 "evaluate on --val every N steps (default: at the end only)")},
        {CLI_OPT("--save-initial", CLI_STRING, &o->save_initial, "DIR",
                 "save the adapter as initialised, before the first step (to start "
                 "another framework from the same draws)")},
        {CLI_OPT("--save-every", CLI_SIZE, &o->save_every, "N",
                 "save the adapter and the run's state every N steps")},
        {CLI_OPT("--stop-at", CLI_SIZE, &o->stop_at, "N",
                 "stop after step N of the run (the schedule still spans all steps); "
                 "--resume OUT continues")},
        {CLI_OPT("--resume", CLI_STRING, &o->resume, "DIR",
                 "continue the run saved in DIR (same options), bit for bit")},
        {CLI_OPT("--log", CLI_STRING, &o->log, "FILE", "write the loss curve as CSV")},
        {CLI_OPT("--json", CLI_STRING, &o->json, "FILE", "write the results as JSON")},
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL", "device index or name part")},
        CLI_END};
    static const cli_exclusive exclusive[] = {
        {"--steps", "--epochs", 0}, {"--val", "--eval", 0},
        {"--save-initial", "--resume", 0}, {NULL, NULL, 0}};
    const cli_spec spec = {.command = "train",
                           .usage = "usage: clora train --model PATH --data FILE --out DIR "
                                    "[options]",
                           .description = train_description,
                           .options = options,
                           .exclusive = exclusive};
    return cli_parse(&spec, argc, argv);
}

/* A growable list of module names (borrowed strings). */
typedef struct name_list {
    const char **v;
    size_t n;
} name_list;

static int list_add(name_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; ++i)
        if (!strcmp(l->v[i], name))
            return 1;
    const char **grown = realloc(l->v, (l->n + 2) * sizeof *grown);
    if (!grown)
        return 0;
    l->v = grown;
    l->v[l->n++] = name;
    l->v[l->n] = NULL;
    return 1;
}

/* Splits "a,b,c" into the list; the words live in *storage (free it). */
static int split_list(const char *text, name_list *l, char **storage)
{
    *storage = NULL;
    if (!text)
        return 1;
    if (!(*storage = malloc(strlen(text) + 1)))
        return 0;
    strcpy(*storage, text);
    for (char *part = strtok(*storage, ","); part; part = strtok(NULL, ","))
        if (*part && !list_add(l, part))
            return 0;
    return 1;
}

/* The classes of a classification dataset: 1 + its largest label. */
static size_t classes_of(const dataset *d)
{
    size_t classes = 0;
    for (size_t i = 0; d->labels && d->label_width == 1 && i < d->count; ++i)
        if (d->labels[i] >= 0 && (size_t)d->labels[i] + 1 > classes)
            classes = (size_t)d->labels[i] + 1;
    return classes;
}

/* The task a dataset holds data for. */
static task_kind task_of(const dataset *d)
{
    return !d->labels ? TASK_REGRESSION : d->label_width == 1 ? TASK_CLASSIFY : TASK_LM;
}

/* Loads a dataset beside the training data: the same kind and tokenizer. */
static int load_other(const char *path, const char *model, const dataset *train, dataset *d)
{
    if (!path)
        return 1;
    if (!dataset_load("train", path, d) || !dataset_check_tokenizer("train", d, path, model))
        return 0;
    if (task_of(d) != task_of(train) || d->input_dtype != train->input_dtype ||
        (train->input_dtype != CLORA_DTYPE_I32 && d->input_width != train->input_width)) {
        fprintf(stderr, "clora train: %s holds other data than the training file (inputs or "
                        "labels of another kind)\n",
                path);
        return 0;
    }
    return 1;
}

typedef struct scores {
    eval_result train, val, test;
} scores;

/* Evaluates on each dataset given; prints one line. */
static int evaluate_all(clora_model *model, const dataset *sets[3], size_t rows, cluster *group,
                        const char *when, scores *s)
{
    static const char *const names[3] = {"train", "validation", "test"};
    eval_result *results[3] = {&s->train, &s->val, &s->test};
    printf("  %s:", when);
    for (int k = 0; k < 3; ++k) {
        results[k]->accuracy = results[k]->loss = -1.0;
        if (!sets[k])
            continue;
        clora_status status = evaluate_run(model, sets[k], rows, group, results[k]);
        if (status != CLORA_OK) {
            printf("\n");
            cli_report("train", "evaluating", status);
            return 0;
        }
        if (results[k]->accuracy >= 0.0)
            printf("%s %s accuracy %.2f%% (loss %.4f)", k ? "," : "", names[k],
                   100.0 * results[k]->accuracy, results[k]->loss);
        else
            printf("%s %s loss %.4f", k ? "," : "", names[k], results[k]->loss);
    }
    printf("\n");
    return 1;
}

static json_t *scores_json(const scores *s, int accuracy)
{
    const eval_result *r[3] = {&s->train, &s->val, &s->test};
    static const char *const keys[3] = {"train", "val", "test"};
    json_t *o = json_object();
    for (int k = 0; k < 3; ++k) {
        const double v = accuracy ? r[k]->accuracy : r[k]->loss;
        json_object_set_new(o, keys[k], v >= 0.0 ? json_real(v) : json_null());
    }
    return o;
}

static int write_json(const char *path, clora_model *model, clora_device *dev, const scores *pre,
                      const scores *post, const fit_result *fr, double seconds)
{
    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    clora_memory_report memory;
    clora_device_memory(dev, &memory);
    json_t *o = json_object();
    json_object_set_new(o, "trainable_params", json_integer((json_int_t)counts.trainable));
    json_object_set_new(o, "total_params", json_integer((json_int_t)counts.total));
    json_t *acc = json_object(), *loss = json_object();
    json_object_set_new(acc, "before", scores_json(pre, 1));
    json_object_set_new(acc, "after", scores_json(post, 1));
    json_object_set_new(loss, "before", scores_json(pre, 0));
    json_object_set_new(loss, "after", scores_json(post, 0));
    json_object_set_new(o, "accuracy", acc);
    json_object_set_new(o, "loss", loss);
    json_object_set_new(o, "steps", json_integer((json_int_t)fr->steps_done));
    json_object_set_new(o, "first_step", json_integer((json_int_t)fr->first_step));
    json_object_set_new(o, "ms_per_step", json_real(fr->step_seconds * 1e3));
    json_object_set_new(o, "tokens_per_s", json_real(fr->tokens_per_second));
    json_object_set_new(o, "peak_device_bytes", json_integer((json_int_t)memory.peak));
    json_object_set_new(o, "best_step", json_integer((json_int_t)fr->best_step));
    json_object_set_new(o, "best_val_loss",
                        fr->best_val_loss >= 0.0 ? json_real(fr->best_val_loss) : json_null());
    json_object_set_new(o, "seconds", json_real(seconds));
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    int ok = text && write_file_atomic("train", path, text, strlen(text));
    free(text);
    return ok;
}

int cmd_train(int argc, char **argv)
{
    train_options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;
    const double started = cli_seconds();
    if (o.eval)
        o.val = o.eval;
    cluster group;
    if (!cluster_start(&group, &argc, &argv))
        return 1;
    /* rank 0 alone prints and writes; every rank reports its own failure */
    if (group.rank != 0 && !freopen("/dev/null", "w", stdout)) {
        cluster_fail(&group, "cannot silence its output", 1);
        return 1;
    }

    name_list targets = {0}, exclude = {0}, trainable = {0}, rank_items = {0}, layer_items = {0},
              layer_patterns = {0};
    char *s_targets = NULL, *s_exclude = NULL, *s_trainable = NULL, *s_ranks = NULL,
         *s_layers = NULL, *s_patterns = NULL;
    size_t *layers = NULL;
    int exit_code = 2;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    clora_trainer *trainer = NULL;
    dataset train = {0}, val = {0}, test = {0};
    loss_log log = {0};
    clora_pattern_value *ranks = NULL;
    clora_status status;
    if (!split_list(o.targets, &targets, &s_targets) ||
        !split_list(o.exclude, &exclude, &s_exclude) ||
        !split_list(o.trainable, &trainable, &s_trainable) ||
        !split_list(o.rank_pattern, &rank_items, &s_ranks) ||
        !split_list(o.layers, &layer_items, &s_layers) ||
        !split_list(o.layers_pattern, &layer_patterns, &s_patterns) ||
        !(layers = calloc(layer_items.n + 1, sizeof *layers)) ||
        !(ranks = calloc(rank_items.n + 1, sizeof *ranks))) {
        fprintf(stderr, "clora train: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < rank_items.n; ++i) {
        char *eq = strrchr((char *)rank_items.v[i], '=');
        char *end = NULL;
        if (!eq || eq == rank_items.v[i] || !*(eq + 1) ||
            (ranks[i].value = strtof(eq + 1, &end), *end)) {
            fprintf(stderr, "clora train: --rank-pattern entry \"%s\" is not REGEX=RANK\n",
                    rank_items.v[i]);
            goto done;
        }
        *eq = '\0';
        ranks[i].pattern = rank_items.v[i];
    }
    for (size_t i = 0; i < layer_items.n; ++i) {
        char *end = NULL;
        const char *item = layer_items.v[i];
        unsigned long long v = strtoull(item, &end, 10);
        if (!*item || *item < '0' || *item > '9' || *end || v > 1000000) {
            fprintf(stderr, "clora train: --layers entry \"%s\" is not a layer index\n", item);
            goto done;
        }
        layers[i] = (size_t)v;
    }
    if (o.layers && !layer_items.n) {
        fprintf(stderr, "clora train: --layers gives no layer index\n");
        goto done;
    }
    if (o.layers_pattern && !o.layers) {
        fprintf(stderr, "clora train: --layers-pattern needs --layers\n");
        goto done;
    }
    if (o.layers && o.target_regex) {
        fprintf(stderr, "clora train: --layers applies to --targets, not --target-regex\n");
        goto done;
    }
    const int all_linear = targets.n == 1 && !strcmp(targets.v[0], "all-linear");
    if (all_linear)
        targets.n = 0;
    if (o.batch % o.grad_accum != 0) {
        fprintf(stderr, "clora train: --grad-accum %zu does not divide --batch-size %zu\n",
                o.grad_accum, o.batch);
        goto done;
    }
    const size_t parts = o.grad_accum * (size_t)group.size; /* of every batch */
    if (o.batch % parts != 0) {
        fprintf(stderr,
                "clora train: --batch-size %zu does not split into %d ranks x %zu "
                "micro-batches\n",
                o.batch, group.size, o.grad_accum);
        goto done;
    }
    if (group.rank != 0) /* rank 0 writes the run's files */
        o.log = o.json = o.save_initial = NULL;

    exit_code = 1;
    if (!output_writable("train", "--out", group.rank == 0 ? o.out : NULL, 1) ||
        !output_writable("train", "--log", o.log, 0) ||
        !output_writable("train", "--json", o.json, 0) ||
        !output_writable("train", "--save-initial", o.save_initial, 1))
        goto done;
    char chosen[32];
    status = clora_device_open(&dev, o.device ? o.device : cluster_device(&group, chosen,
                                                                          sizeof chosen));
    if (status != CLORA_OK) {
        cli_report("train", "opening the device", status);
        goto done;
    }
    if (!dataset_load("train", o.data, &train) ||
        !dataset_check_tokenizer("train", &train, o.data, o.model) ||
        !load_other(o.val, o.model, &train, &val) || !load_other(o.test, o.model, &train, &test))
        goto done;
    task_kind task = (task_kind)o.task;
    if (task == TASK_AUTO) {
        task = task_of(&train);
    } else if (task != task_of(&train)) {
        static const char *const needs[] = {"", "I32 labels (N), a class per example",
                                            "I32 labels (N, T), a token per position",
                                            "F32 targets"};
        fprintf(stderr, "clora train: --task %s needs %s; %s holds %s\n", task_names[task],
                needs[task], o.data, needs[task_of(&train)]);
        goto done;
    }
    if (o.batch > train.count) { /* the whole file in each step */
        o.batch = train.count - train.count % parts;
        if (o.batch == 0) {
            fprintf(stderr, "clora train: %s has %zu examples, fewer than the %zu parts of a "
                            "batch (ranks x --grad-accum)\n",
                    o.data, train.count, parts);
            goto done;
        }
    }
    const model_family family = model_family_of(o.model);
    const int decoder = family == FAMILY_GPT2 || family == FAMILY_LLAMA;
    size_t classes = 0;
    if (task == TASK_CLASSIFY && family != FAMILY_CLORA) {
        const dataset *sets[3] = {&train, &val, &test};
        for (int k = 0; k < 3; ++k)
            classes = classes_of(sets[k]) > classes ? classes_of(sets[k]) : classes;
        if (o.num_labels && o.num_labels < classes) {
            fprintf(stderr, "clora train: --num-labels %zu, but the data has label %zu\n",
                    o.num_labels, classes - 1);
            goto done;
        }
        classes = o.num_labels ? o.num_labels : classes;
    }
    if (task == TASK_LM && !decoder && family != FAMILY_CLORA) {
        fprintf(stderr, "clora train: %s is a BERT model; next-token data needs a decoder "
                        "(GPT-2 or Llama family)\n",
                o.model);
        goto done;
    }
    if (o.lora_on_head && !(decoder && task == TASK_CLASSIFY)) {
        fprintf(stderr, "clora train: --lora-on-head is for the new head of a decoder "
                        "(--task classify on GPT-2 or Llama-family models)\n");
        goto done;
    }
    model_family opened;
    if (!open_model_with_head("train", dev, o.model, NULL, NULL,
                              family == FAMILY_BERT ? classes : 0, o.seed, o.base_dtype,
                              (clora_bert_head)o.bert_head, &model, &opened))
        goto done;
    const char *head = NULL; /* the output module, kept out of all-linear */
    int own_head = 0;        /* the checkpoint's: frozen unless --trainable lists it */
    if (decoder && task == TASK_CLASSIFY) {
        if ((status = clora_model_add_classifier(model, classes, 0.0f, o.seed))) {
            cli_report("train", "adding the classification head", status);
            goto done;
        }
        head = "score";
    } else if (family == FAMILY_BERT && classes > 0) {
        head = "classifier";
        /* BertForSequenceClassification's own head trains when --trainable lists it */
        own_head = bert_sequence_labels(o.model) > 0;
    } else if (decoder) {
        head = "lm_head";
    }
    if (!all_linear && family != FAMILY_CLORA && !targets.n && !o.target_regex) {
        /* PEFT's defaults */
        const char *const defaults[3][2] = {{"query", "value"}, {"c_attn", NULL},
                                            {"q_proj", "v_proj"}};
        const int f = family == FAMILY_BERT ? 0 : family == FAMILY_GPT2 ? 1 : 2;
        for (int k = 0; k < 2; ++k)
            if (defaults[f][k] && !list_add(&targets, defaults[f][k]))
                goto done;
    }
    if (all_linear && head && !o.lora_on_head && !list_add(&exclude, head))
        goto done;
    if (o.lora_on_head && targets.n && !list_add(&targets, head))
        goto done;
    if (head && task == TASK_CLASSIFY && !o.lora_on_head && !own_head &&
        !list_add(&trainable, head))
        goto done;

    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    char a[32];
    clora_device_info info;
    clora_device_get_info(dev, &info);
    static const char *const task_text[] = {"", "classification", "next-token prediction",
                                            "regression (mean squared error)"};
    printf("clora train on %s\n", info.name);
    if (group.size > 1)
        printf("  data parallel: %d ranks (this is rank 0), each taking %zu examples of each "
               "batch\n",
               group.size, o.batch / (size_t)group.size);
    printf("  model %s: %s parameters; data %s: %zu examples; %s\n", o.model,
           with_commas(counts.total, a, sizeof a), o.data, train.count, task_text[task]);
    if (classes > 0 && head)
        printf("  classification head \"%s\"%s: %zu classes%s%s\n", head,
               own_head ? " (the checkpoint's)" : "", own_head ? bert_sequence_labels(o.model)
                                                              : classes,
               train.label_names ? " " : "", train.label_names ? train.label_names : "");
    printf("  Total trainable parameters before: %s\n", with_commas(counts.trainable, a, sizeof a));

    clora_lora_config lora = clora_lora_config_default();
    lora.adapter_name = o.adapter_name;
    lora.rank = o.rank;
    lora.alpha = o.alpha;
    lora.use_dora = o.dora;
    lora.scale_mode = (clora_scale_mode)o.scale_mode;
    lora.dropout = o.dropout;
    lora.init = (clora_init_mode)o.init;
    lora.target_modules = targets.v;
    lora.target_module_count = targets.n;
    lora.target_regex = o.target_regex;
    lora.exclude_modules = exclude.v;
    lora.exclude_module_count = exclude.n;
    lora.rank_pattern = ranks;
    lora.rank_pattern_count = rank_items.n;
    lora.modules_to_save = trainable.v;
    lora.modules_to_save_count = trainable.n;
    lora.bias = (clora_bias_mode)o.bias;
    lora.layers_to_transform = layers;
    lora.layers_to_transform_count = layer_items.n;
    lora.layers_pattern = layer_patterns.v;
    lora.layers_pattern_count = layer_patterns.n;
    size_t replaced = 0;
    if ((status = clora_replace_linear_with_lora(clora_model_root(model), &lora, &replaced))) {
        cli_report("train", "applying LoRA", status);
        goto done;
    }
    if (replaced == 0) {
        fprintf(stderr, "clora train: no Linear or Embedding layer matched; nothing to train\n");
        goto done;
    }
    printf("  LoRA r=%zu alpha=%g (scale %g) on %zu layers (", o.rank, (double)o.alpha,
           (double)clora_lora_scale(lora.scale_mode, o.alpha, o.rank), replaced);
    for (size_t i = 0; i < targets.n; ++i)
        printf("%s%s", i ? ", " : "", targets.v[i]);
    printf("%s)\n", targets.n ? ""
                    : o.target_regex ? o.target_regex
                    : exclude.n      ? "every Linear but the excluded"
                                     : "every Linear");
    if (trainable.n) {
        printf("  trained in full and saved with the adapter:");
        for (size_t i = 0; i < trainable.n; ++i)
            printf(" %s", trainable.v[i]);
        printf("\n");
    }
    print_parameter_counts(stdout, model, "  ");
    if (o.save_initial) {
        if ((status = clora_adapter_save(model, NULL, o.save_initial))) {
            cli_report("train", "saving the initial adapter", status);
            goto done;
        }
        printf("  initial adapter saved to %s\n", o.save_initial);
    }

    /* token batches hold every layer's activations: evaluate in smaller ones;
     * next-token logits (rows, T, vocabulary) in few rows */
    const size_t eval_rows = task == TASK_LM ? 4 : train.input_dtype == CLORA_DTYPE_I32 ? 8 : 256;
    const dataset *sets[3] = {&train, o.val ? &val : NULL, o.test ? &test : NULL};
    scores pre, post;
    const eval_result none = {-1.0, -1.0, 0};
    pre.train = pre.val = pre.test = none;
    if (!o.resume && !evaluate_all(model, sets, eval_rows, &group, "before training", &pre))
        goto done;

    const size_t per_epoch = train.count / o.batch;
    const size_t steps = o.steps ? o.steps : (o.epochs ? o.epochs : 1) * per_epoch;
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer = clora_optimizer_config_default((clora_optimizer_kind)o.optimizer);
    cfg.optimizer.lr = o.lr;
    if (o.optimizer == CLORA_OPTIMIZER_SGD)
        cfg.optimizer.momentum = o.momentum;
    if (o.weight_decay_set)
        cfg.optimizer.weight_decay = o.weight_decay;
    cfg.schedule = (clora_schedule_kind)o.schedule;
    cfg.warmup_steps = o.warmup;
    cfg.total_steps = steps;
    cfg.max_grad_norm = o.clip;
    cfg.loss = task == TASK_REGRESSION ? CLORA_LOSS_MSE : CLORA_LOSS_CROSS_ENTROPY;
    if ((status = clora_trainer_create(&trainer, model, &cfg))) {
        cli_report("train", "setting up training", status);
        goto done;
    }
    if (group.size > 1) /* every rank takes the whole batch's step */
        clora_trainer_set_gradient_hook(trainer, cluster_gradient_hook, &group);
    if (o.checkpointing && (status = clora_model_set_checkpointing(model, 1))) {
        cli_report("train", "turning on checkpointing", status);
        goto done;
    }
    printf("  %zu steps of %zu examples", steps, o.batch);
    if (o.grad_accum > 1)
        printf(" (in %zu micro-batches)", o.grad_accum);
    if (o.checkpointing)
        printf(", gradient checkpointing");
    printf(", %.2f epochs\n", (double)steps / (double)per_epoch);
    fit_options fo = {steps,        o.stop_at, o.batch,
                      o.grad_accum, o.eval_every, o.save_every,
                      eval_rows,    o.seed,    group.rank == 0 ? o.out : NULL,
                      o.resume,     &group};
    fit_result fr;
    if (!fit(trainer, model, &train, o.val ? &val : NULL, &fo, &log, &fr))
        goto done;
    if (o.resume)
        printf("  continued %s from step %zu\n", o.resume, fr.first_step);
    if (!evaluate_all(model, sets, eval_rows, &group, "after training", &post))
        goto done;
    if (o.log && !loss_log_write("train", &log, o.log))
        goto done;
    const eval_result *seen_pre = o.val ? &pre.val : &pre.train;
    const eval_result *seen = o.val ? &post.val : &post.train;
    if (task == TASK_CLASSIFY && !o.resume)
        printf("  accuracy: %.2f%% -> %.2f%% (%s)\n", 100.0 * seen_pre->accuracy,
               100.0 * seen->accuracy, o.val ? "validation" : "training data");
    else if (task != TASK_CLASSIFY && !o.resume)
        printf("  %s: %.6g -> %.6g\n", task == TASK_LM ? "loss" : "mean squared error",
               seen_pre->loss, seen->loss);
    if (fr.step_seconds > 0) {
        printf("  %.2f ms per step, %.1f examples/s", fr.step_seconds * 1e3,
               (double)o.batch / fr.step_seconds);
        if (fr.tokens_per_second > 0)
            printf(", %.0f tokens/s", fr.tokens_per_second);
        printf("\n");
    }
    print_memory(stdout, dev, "  ");
    if (group.size > 1 && fr.steps_done > fr.first_step)
        printf("  gradients summed over %d ranks: %.1f KiB per step\n", group.size,
               group.reduced_bytes / (double)(fr.steps_done - fr.first_step) / 1024.0);
    if (fr.best_val_loss >= 0.0)
        printf("  lowest validation loss %.4f at step %zu (adapter in %s/best)\n",
               fr.best_val_loss, fr.best_step, o.out);
    printf("  adapter saved to %s%s%s\n", o.out, o.log ? ", loss curve to " : "",
           o.log ? o.log : "");
    if (o.json && !write_json(o.json, model, dev, &pre, &post, &fr, cli_seconds() - started))
        goto done;
    exit_code = 0;

done:
    loss_log_free(&log);
    clora_trainer_destroy(trainer);
    dataset_free(&train);
    dataset_free(&val);
    dataset_free(&test);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    free(targets.v);
    free(exclude.v);
    free(trainable.v);
    free(rank_items.v);
    free(layer_items.v);
    free(layer_patterns.v);
    free(layers);
    free(s_layers);
    free(s_patterns);
    free(ranks);
    free(s_targets);
    free(s_exclude);
    free(s_trainable);
    free(s_ranks);
    if (exit_code != 0)
        cluster_fail(&group, "its error is above", exit_code);
    cluster_stop(&group);
    return exit_code;
}
