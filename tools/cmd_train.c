/* cmd_train.c — `clora train`: LoRA fine-tuning of a saved model on a
 * dataset file, saving a PEFT adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "training.h"

static const char train_usage[] =
    "usage: clora train --model DIR --data FILE --out DIR [options]\n"
    "\n"
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
    "value for BERT, c_attn for GPT-2.\n"
    "\n"
    "required:\n"
    "  --model DIR          a clora model folder or a Hugging Face GPT-2/BERT folder\n"
    "  --data FILE          training data\n"
    "  --out DIR            where to save the adapter (created if needed)\n"
    "LoRA:\n"
    "  --rank R             rank r, 1..256 (default 8)\n"
    "  --alpha A            alpha (default 16)\n"
    "  --scale-mode MODE    peft (alpha/r, default), seed (alpha), rslora (alpha/sqrt(r))\n"
    "  --dropout P          dropout on the LoRA branch (default 0)\n"
    "  --init MODE          peft (default), seed, gaussian\n"
    "  --targets A,B        modules to adapt, PEFT's rule (default: every Linear;\n"
    "                       PEFT's defaults for GPT-2 and BERT)\n"
    "  --target-regex RE    or a regex over the whole module path\n"
    "  --exclude A,B        modules to leave alone\n"
    "  --rank-pattern P=R,.. per-module ranks (regex=rank)\n"
    "  --trainable A,B      modules that train in full and are saved with the adapter\n"
    "  --adapter-name NAME  (default \"default\")\n"
    "training:\n"
    "  --steps N            optimizer steps (default: one epoch)\n"
    "  --epochs E           or passes over the data\n"
    "  --batch-size B       (default 32; the last partial batch of an epoch is skipped)\n"
    "  --lr LR              learning rate (default 1e-3)\n"
    "  --optimizer NAME     adamw (default) or sgd\n"
    "  --weight-decay W     (default 0.01 for AdamW, 0 for SGD)\n"
    "  --momentum M         SGD momentum (default 0.9)\n"
    "  --schedule NAME      constant (default), linear or cosine, after --warmup\n"
    "  --warmup N           linear warm-up steps (default 0)\n"
    "  --clip NORM          clip gradients to this global norm (default: off)\n"
    "  --seed S             shuffling, initialisation and dropout (default 0)\n"
    "other:\n"
    "  --num-labels K       BERT: classes of the new head (default: from the labels)\n"
    "  --eval FILE          evaluation data (default: the training data)\n"
    "  --log FILE           write the loss curve as CSV\n"
    "  --device SEL         device index or name part\n";

typedef struct train_options {
    const char *model, *data, *out, *eval, *log, *device;
    size_t rank, steps, epochs, batch, warmup, num_labels;
    float alpha, dropout, lr, weight_decay, momentum, clip;
    const char *scale_mode, *init, *targets, *target_regex, *exclude, *rank_pattern, *trainable,
        *adapter_name, *optimizer, *schedule;
    size_t seed;
    int weight_decay_set;
} train_options;

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

static int parse(int argc, char **argv, train_options *o)
{
    for (int i = 1; i < argc; ++i) {
        int r = 0;
        if (cli_flag(argv, i, "--help") || cli_flag(argv, i, "-h")) {
            fputs(train_usage, stdout);
            return 0;
        }
        if ((r = cli_option_string(argc, argv, &i, "--model", &o->model)) ||
            (r = cli_option_string(argc, argv, &i, "--data", &o->data)) ||
            (r = cli_option_string(argc, argv, &i, "--out", &o->out)) ||
            (r = cli_option_string(argc, argv, &i, "--eval", &o->eval)) ||
            (r = cli_option_string(argc, argv, &i, "--log", &o->log)) ||
            (r = cli_option_string(argc, argv, &i, "--device", &o->device)) ||
            (r = cli_option_size(argc, argv, &i, "--rank", &o->rank)) ||
            (r = cli_option_float(argc, argv, &i, "--alpha", &o->alpha)) ||
            (r = cli_option_string(argc, argv, &i, "--scale-mode", &o->scale_mode)) ||
            (r = cli_option_float(argc, argv, &i, "--dropout", &o->dropout)) ||
            (r = cli_option_string(argc, argv, &i, "--init", &o->init)) ||
            (r = cli_option_string(argc, argv, &i, "--targets", &o->targets)) ||
            (r = cli_option_string(argc, argv, &i, "--target-regex", &o->target_regex)) ||
            (r = cli_option_string(argc, argv, &i, "--exclude", &o->exclude)) ||
            (r = cli_option_string(argc, argv, &i, "--rank-pattern", &o->rank_pattern)) ||
            (r = cli_option_string(argc, argv, &i, "--trainable", &o->trainable)) ||
            (r = cli_option_string(argc, argv, &i, "--adapter-name", &o->adapter_name)) ||
            (r = cli_option_size(argc, argv, &i, "--steps", &o->steps)) ||
            (r = cli_option_size(argc, argv, &i, "--epochs", &o->epochs)) ||
            (r = cli_option_size(argc, argv, &i, "--batch-size", &o->batch)) ||
            (r = cli_option_float(argc, argv, &i, "--lr", &o->lr)) ||
            (r = cli_option_string(argc, argv, &i, "--optimizer", &o->optimizer)) ||
            (r = cli_option_float(argc, argv, &i, "--momentum", &o->momentum)) ||
            (r = cli_option_string(argc, argv, &i, "--schedule", &o->schedule)) ||
            (r = cli_option_size(argc, argv, &i, "--warmup", &o->warmup)) ||
            (r = cli_option_float(argc, argv, &i, "--clip", &o->clip)) ||
            (r = cli_option_size(argc, argv, &i, "--num-labels", &o->num_labels)) ||
            (r = cli_option_size(argc, argv, &i, "--seed", &o->seed))) {
            if (r < 0)
                return -1;
            continue;
        }
        if ((r = cli_option_float(argc, argv, &i, "--weight-decay", &o->weight_decay))) {
            if (r < 0)
                return -1;
            o->weight_decay_set = 1;
            continue;
        }
        fprintf(stderr, "clora train: unknown option \"%s\" (see --help)\n", argv[i]);
        return -1;
    }
    if (!o->model || !o->data || !o->out) {
        fprintf(stderr, "clora train: --model, --data and --out are required (see --help)\n");
        return -1;
    }
    if (o->steps && o->epochs) {
        fprintf(stderr, "clora train: give --steps or --epochs, not both\n");
        return -1;
    }
    if (o->batch == 0) {
        fprintf(stderr, "clora train: --batch-size must be at least 1\n");
        return -1;
    }
    return 1;
}

/* Maps a name to an enum value from a table; prints an error when absent. */
static int choose(const char *option, const char *value, const char *const *names, int count,
                  int *out)
{
    for (int i = 0; i < count; ++i)
        if (!strcmp(value, names[i])) {
            *out = i;
            return 1;
        }
    fprintf(stderr, "clora train: %s \"%s\" is not one of", option, value);
    for (int i = 0; i < count; ++i)
        fprintf(stderr, " %s", names[i]);
    fprintf(stderr, "\n");
    return 0;
}

int cmd_train(int argc, char **argv)
{
    train_options o = {0};
    o.rank = 8;
    o.alpha = 16;
    o.batch = 32;
    o.lr = 1e-3f;
    o.momentum = 0.9f;
    o.scale_mode = "peft";
    o.init = "peft";
    o.optimizer = "adamw";
    o.schedule = "constant";
    int parsed = parse(argc, argv, &o);
    if (parsed <= 0)
        return parsed == 0 ? 0 : 2;

    static const char *const scale_names[] = {"seed", "peft", "rslora"};
    static const char *const init_names[] = {"peft", "seed", "gaussian"};
    static const char *const optimizer_names[] = {"adamw", "sgd"};
    static const char *const schedule_names[] = {"constant", "linear", "cosine"};
    int scale = 0, init = 0, optimizer = 0, schedule = 0;
    if (!choose("--scale-mode", o.scale_mode, scale_names, 3, &scale) ||
        !choose("--init", o.init, init_names, 3, &init) ||
        !choose("--optimizer", o.optimizer, optimizer_names, 2, &optimizer) ||
        !choose("--schedule", o.schedule, schedule_names, 3, &schedule))
        return 2;

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
        free(targets);
        targets = malloc(2 * sizeof *targets);
        if (!targets)
            goto done;
        n_targets = family == FAMILY_BERT ? 2 : 1;
        memcpy(targets, family == FAMILY_BERT ? bert_targets : gpt2_targets,
               n_targets * sizeof *targets);
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
    lora.scale_mode = (clora_scale_mode)scale;
    lora.dropout = o.dropout;
    lora.init = (clora_init_mode)init;
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
    cfg.optimizer = clora_optimizer_config_default((clora_optimizer_kind)optimizer);
    cfg.optimizer.lr = o.lr;
    if (optimizer == CLORA_OPTIMIZER_SGD)
        cfg.optimizer.momentum = o.momentum;
    if (o.weight_decay_set)
        cfg.optimizer.weight_decay = o.weight_decay;
    cfg.schedule = (clora_schedule_kind)schedule;
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
