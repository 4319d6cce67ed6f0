/* cmd_train.c — `clora train`: LoRA fine-tuning of a saved model on a
 * dataset file, saving a PEFT adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"
#include "training.h"

static const char train_description[] =
    "Applies LoRA to a model, trains only the adapter on a dataset, and saves it\n"
    "as a PEFT adapter folder (adapter_config.json + adapter_model.safetensors).\n"
    "The base model is not modified.\n"
    "\n"
    "A dataset is a safetensors file with \"inputs\" (F32 (N, features) or I32\n"
    "(N, T) token ids, with an optional I32 \"attention_mask\" and\n"
    "\"token_type_ids\") and either \"labels\" (I32 (N), or (N, T) with -100 for\n"
    "tokens not scored: classification, trained with cross-entropy, reported as\n"
    "accuracy) or \"targets\" (F32 (N, ...): regression, mean squared error).\n"
    "`clora tokenize` makes one from text; `clora demo` writes examples.\n"
    "\n"
    "Hugging Face BERT folders get a classification head (\"classifier\", trained in\n"
    "full and saved with the adapter, as PEFT's SEQ_CLS task does) sized by the\n"
    "labels; without --targets, LoRA goes where PEFT puts it by default: query and\n"
    "value for BERT, c_attn for GPT-2, q_proj and v_proj for Llama-family models.\n";

typedef struct train_options {
    const char *model, *data, *out, *eval, *log, *device;
    size_t rank, steps, epochs, batch, warmup, num_labels;
    float alpha, dropout, lr, weight_decay, momentum, clip;
    const char *targets, *target_regex, *exclude, *rank_pattern, *trainable, *adapter_name;
    int scale_mode, init, optimizer, schedule;
    size_t seed;
    int weight_decay_set;
} train_options;

/* Names in the order of clora_scale_mode, clora_init_mode,
 * clora_optimizer_kind and clora_schedule_kind. */
static const char *const scale_names[] = {"seed", "peft", "rslora", NULL};
static const char *const init_names[] = {"peft", "seed", "gaussian", NULL};
static const char *const optimizer_names[] = {"adamw", "sgd", NULL};
static const char *const schedule_names[] = {"constant", "linear", "cosine", NULL};

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse(int argc, char **argv, train_options *o)
{
    const cli_option options[] = {
        CLI_SECTION("required:"),
        {CLI_OPT("--model", CLI_STRING, &o->model, "DIR",
                 "a clora model folder or a Hugging Face GPT-2/BERT folder"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--data", CLI_STRING, &o->data, "FILE", "training data"), .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &o->out, "DIR",
                 "where to save the adapter (created if needed)"),
         .flags = CLI_REQUIRED},
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
        {CLI_OPT("--targets", CLI_STRING, &o->targets, "A,B",
                 "modules to adapt, PEFT's rule (default: every Linear; PEFT's defaults for "
                 "GPT-2 and BERT)")},
        {CLI_OPT("--target-regex", CLI_STRING, &o->target_regex, "RE",
                 "or a regex over the whole module path")},
        {CLI_OPT("--exclude", CLI_STRING, &o->exclude, "A,B", "modules to leave alone")},
        {CLI_OPT("--rank-pattern", CLI_STRING, &o->rank_pattern, "P=R,..",
                 "per-module ranks (regex=rank)")},
        {CLI_OPT("--trainable", CLI_STRING, &o->trainable, "A,B",
                 "modules that train in full and are saved with the adapter")},
        {CLI_OPT("--adapter-name", CLI_STRING, &o->adapter_name, "NAME", "the adapter's name"),
         .fallback = "default"},
        CLI_SECTION("training:"),
        {CLI_OPT("--steps", CLI_SIZE, &o->steps, "N", "optimizer steps (default: one epoch)")},
        {CLI_OPT("--epochs", CLI_SIZE, &o->epochs, "E", "or passes over the data")},
        {CLI_OPT("--batch-size", CLI_SIZE, &o->batch, "B",
                 "examples per step; the last partial batch of an epoch is skipped"),
         .fallback = "32", CLI_AT_LEAST(1)},
        {CLI_OPT("--lr", CLI_FLOAT, &o->lr, "LR", "learning rate"), .fallback = "1e-3"},
        {CLI_OPT("--optimizer", CLI_CHOICE, &o->optimizer, "NAME", "adamw or sgd"),
         .fallback = "adamw", .choices = optimizer_names},
        {CLI_OPT("--weight-decay", CLI_FLOAT, &o->weight_decay, "W",
                 "weight decay (default 0.01 for AdamW, 0 for SGD)"),
         .given = &o->weight_decay_set},
        {CLI_OPT("--momentum", CLI_FLOAT, &o->momentum, "M", "SGD momentum"), .fallback = "0.9"},
        {CLI_OPT("--schedule", CLI_CHOICE, &o->schedule, "NAME",
                 "constant, linear or cosine, after --warmup"),
         .fallback = "constant", .choices = schedule_names},
        {CLI_OPT("--warmup", CLI_SIZE, &o->warmup, "N", "linear warm-up steps"), .fallback = "0"},
        {CLI_OPT("--clip", CLI_FLOAT, &o->clip, "NORM",
                 "clip gradients to this global norm (default: off)")},
        {CLI_OPT("--seed", CLI_SIZE, &o->seed, "S", "shuffling, initialisation and dropout"),
         .fallback = "0"},
        CLI_SECTION("other:"),
        {CLI_OPT("--num-labels", CLI_SIZE, &o->num_labels, "K",
                 "BERT: classes of the new head (default: from the labels)")},
        {CLI_OPT("--eval", CLI_STRING, &o->eval, "FILE",
                 "evaluation data (default: the training data)")},
        {CLI_OPT("--log", CLI_STRING, &o->log, "FILE", "write the loss curve as CSV")},
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL", "device index or name part")},
        CLI_END};
    static const cli_exclusive exclusive[] = {{"--steps", "--epochs", 0}, {NULL, NULL, 0}};
    const cli_spec spec = {.command = "train",
                           .usage = "usage: clora train --model DIR --data FILE --out DIR "
                                    "[options]",
                           .description = train_description,
                           .options = options,
                           .exclusive = exclusive};
    return cli_parse(&spec, argc, argv);
}

/* Splits "a,b,c" into a NULL-terminated array (free the array and text). */
static const char **split_list(const char *text, size_t *count, char **storage)
{
    *count = 0;
    *storage = NULL;
    if (!text)
        return NULL;
    char *copy = malloc(strlen(text) + 1);
    const char **items = calloc(strlen(text) + 2, sizeof *items);
    if (!copy || !items) {
        free(copy);
        free(items);
        return NULL;
    }
    strcpy(copy, text);
    for (char *part = strtok(copy, ","); part; part = strtok(NULL, ","))
        if (*part)
            items[(*count)++] = part;
    *storage = copy;
    return items;
}

int cmd_train(int argc, char **argv)
{
    train_options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;

    /* Lists and patterns from the command line. */
    size_t n_targets = 0, n_exclude = 0, n_trainable = 0, n_ranks = 0;
    char *s_targets = NULL, *s_exclude = NULL, *s_trainable = NULL, *s_ranks = NULL;
    const char **targets = split_list(o.targets, &n_targets, &s_targets);
    const char **exclude = split_list(o.exclude, &n_exclude, &s_exclude);
    const char **trainable = split_list(o.trainable, &n_trainable, &s_trainable);
    const char **rank_items = split_list(o.rank_pattern, &n_ranks, &s_ranks);
    clora_pattern_value *ranks = calloc(n_ranks + 1, sizeof *ranks);
    int exit_code = 2;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    clora_trainer *trainer = NULL;
    dataset train = {0}, eval = {0};
    batch b = {0};
    loss_log log = {0};
    clora_status status;
    for (size_t i = 0; i < n_ranks; ++i) {
        char *eq = strrchr((char *)rank_items[i], '=');
        char *end = NULL;
        if (!eq || eq == rank_items[i] || !*(eq + 1) || (ranks[i].value = strtof(eq + 1, &end), *end)) {
            fprintf(stderr, "clora train: --rank-pattern entry \"%s\" is not REGEX=RANK\n",
                    rank_items[i]);
            goto done;
        }
        *eq = '\0';
        ranks[i].pattern = rank_items[i];
    }

    exit_code = 1;
    status = clora_device_open(&dev, o.device);
    if (status != CLORA_OK) {
        cli_report("train", "opening the device", status);
        goto done;
    }
    if (!dataset_load(o.data, &train) || (o.eval && !dataset_load(o.eval, &eval)))
        goto done;
    if (!dataset_check_tokenizer(&train, o.data, o.model) ||
        (o.eval && !dataset_check_tokenizer(&eval, o.eval, o.model)))
        goto done;
    const model_family family = model_family_of(o.model);
    size_t classes = o.num_labels;
    if (family == FAMILY_BERT && train.labels && train.label_width == 1 && !classes)
        for (size_t i = 0; i < train.count; ++i)
            if (train.labels[i] >= 0 && (size_t)train.labels[i] + 1 > classes)
                classes = (size_t)train.labels[i] + 1;
    model_family opened;
    if (!open_model("train", dev, o.model, NULL, classes, o.seed, &model, &opened))
        goto done;
    if (family != FAMILY_CLORA && !o.targets && !o.target_regex) { /* PEFT's defaults */
        static const char *const bert_targets[] = {"query", "value"};
        static const char *const gpt2_targets[] = {"c_attn"};
        static const char *const llama_targets[] = {"q_proj", "v_proj"};
        free(targets);
        targets = malloc(2 * sizeof *targets);
        if (!targets)
            goto done;
        const char *const *defaults = family == FAMILY_BERT    ? bert_targets
                                      : family == FAMILY_LLAMA ? llama_targets
                                                               : gpt2_targets;
        n_targets = family == FAMILY_GPT2 ? 1 : 2;
        memcpy(targets, defaults, n_targets * sizeof *targets);
    }
    if (family == FAMILY_BERT && classes > 0) { /* the new head trains and is saved */
        int listed = 0;
        for (size_t i = 0; i < n_trainable; ++i)
            listed |= !strcmp(trainable[i], "classifier");
        const char **grown = listed ? trainable : realloc(trainable, (n_trainable + 2) * sizeof *grown);
        if (!grown)
            goto done;
        trainable = grown;
        if (!listed)
            trainable[n_trainable++] = "classifier";
    }
    const dataset *eval_data = o.eval ? &eval : &train;
    if (train.labels == NULL) {
        printf("regression data (targets): training with mean squared error\n");
    }
    size_t rows = o.batch < train.count ? o.batch : train.count;
    size_t per_epoch = train.count / rows;
    size_t steps = o.steps ? o.steps : (o.epochs ? o.epochs : 1) * per_epoch;

    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    char a[32];
    clora_device_info info;
    clora_device_get_info(dev, &info);
    printf("clora train on %s\n", info.name);
    printf("  model %s: %s parameters; data %s: %zu examples\n", o.model,
           with_commas(counts.total, a, sizeof a), o.data, train.count);
    if (family == FAMILY_BERT && classes > 0)
        printf("  classification head: %zu classes%s%s\n", classes,
               train.label_names ? " " : "", train.label_names ? train.label_names : "");
    printf("  Total trainable parameters before: %s\n", with_commas(counts.trainable, a, sizeof a));

    clora_lora_config lora = clora_lora_config_default();
    lora.adapter_name = o.adapter_name;
    lora.rank = o.rank;
    lora.alpha = o.alpha;
    lora.scale_mode = (clora_scale_mode)o.scale_mode;
    lora.dropout = o.dropout;
    lora.init = (clora_init_mode)o.init;
    lora.target_modules = targets;
    lora.target_module_count = n_targets;
    lora.target_regex = o.target_regex;
    lora.exclude_modules = exclude;
    lora.exclude_module_count = n_exclude;
    lora.rank_pattern = ranks;
    lora.rank_pattern_count = n_ranks;
    lora.modules_to_save = trainable;
    lora.modules_to_save_count = n_trainable;
    size_t replaced = 0;
    if ((status = clora_replace_linear_with_lora(clora_model_root(model), &lora, &replaced))) {
        cli_report("train", "applying LoRA", status);
        goto done;
    }
    if (replaced == 0) {
        fprintf(stderr, "clora train: no Linear layer matched; nothing to train\n");
        goto done;
    }
    printf("  LoRA r=%zu alpha=%g (scale %g) on %zu layers (", o.rank, (double)o.alpha,
           (double)clora_lora_scale(lora.scale_mode, o.alpha, o.rank), replaced);
    for (size_t i = 0; i < n_targets; ++i)
        printf("%s%s", i ? ", " : "", targets[i]);
    printf("%s)\n", n_targets ? "" : o.target_regex ? o.target_regex : "every Linear");
    if (n_trainable) {
        printf("  trained in full and saved with the adapter:");
        for (size_t i = 0; i < n_trainable; ++i)
            printf(" %s", trainable[i]);
        printf("\n");
    }
    print_parameter_counts(stdout, model, "  ");

    double before = 0, after = 0;
    /* token batches hold every layer's activations: evaluate in smaller ones */
    const size_t eval_rows = train.input_dtype == CLORA_DTYPE_I32 ? 32 : 256;
    if ((status = evaluate(model, eval_data, eval_rows, &before))) {
        cli_report("train", "evaluating the model on the data", status);
        goto done;
    }
    const char *metric = train.labels ? "accuracy" : "mean squared error";
    if (train.labels)
        printf("  %s before training: %.2f%%\n", metric, 100.0 * before);
    else
        printf("  %s before training: %.6g\n", metric, before);

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
    cfg.loss = train.labels ? CLORA_LOSS_CROSS_ENTROPY : CLORA_LOSS_MSE;
    if ((status = clora_trainer_create(&trainer, model, &cfg)) ||
        (status = batch_create(&b, model, &train, rows))) {
        cli_report("train", "setting up training", status);
        goto done;
    }
    float loss = 0;
    double per_step = 0;
    if ((status = train_loop(trainer, &train, &b, steps, o.seed, "training", &log, "train", &loss,
                             &per_step))) {
        cli_report("train", "training", status);
        goto done;
    }
    if ((status = evaluate(model, eval_data, eval_rows, &after))) {
        cli_report("train", "evaluating", status);
        goto done;
    }
    if ((status = clora_adapter_save(model, NULL, o.out))) {
        cli_report("train", "saving the adapter", status);
        goto done;
    }
    if (o.log && !loss_log_write(&log, o.log))
        goto done;
    if (train.labels)
        printf("  %s: %.2f%% -> %.2f%%\n", metric, 100.0 * before, 100.0 * after);
    else
        printf("  %s: %.6g -> %.6g\n", metric, before, after);
    printf("  %.2f ms per step, %.0f examples/s", per_step * 1e3, (double)rows / per_step);
    if (train.input_dtype == CLORA_DTYPE_I32) {
        size_t tokens = 0; /* real tokens per batch on average: masks count */
        for (size_t i = 0; i < train.count * train.input_width; ++i)
            tokens += train.attention_mask ? train.attention_mask[i] != 0 : 1;
        printf(", %.0f tokens/s (%.1f tokens per example, padded to %zu)",
               (double)tokens / (double)train.count * (double)rows / per_step,
               (double)tokens / (double)train.count, train.input_width);
    }
    printf("\n");
    print_memory(stdout, dev, "  ");
    printf("  adapter saved to %s%s%s\n", o.out, o.log ? ", loss curve to " : "",
           o.log ? o.log : "");
    exit_code = 0;

done:
    loss_log_free(&log);
    batch_destroy(&b);
    clora_trainer_destroy(trainer);
    dataset_free(&train);
    dataset_free(&eval);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    free(targets);
    free(exclude);
    free(trainable);
    free(rank_items);
    free(ranks);
    free(s_targets);
    free(s_exclude);
    free(s_trainable);
    free(s_ranks);
    return exit_code;
}
