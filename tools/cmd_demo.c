/* cmd_demo.c — `clora demo`, the main job: pre-train a small model fully on
 * task A, freeze it, apply LoRA, fine-tune only the adapter on task B, and
 * show that the base is untouched, the adapter is small, and merging gives
 * the same outputs. Everything is generated here; nothing is downloaded. */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "demo_data.h"
#include "options.h"
#include "training.h"

static const char demo_description[] =
    "The main job, end to end on the default device, with no downloads:\n"
    "  1. build a small classifier of 8x8 digit images (fc1 -> GELU -> fc2 ->\n"
    "     LayerNorm -> GELU -> head) and pre-train all of it on task A (upright\n"
    "     digits);\n"
    "  2. freeze it and apply LoRA to its Linear layers;\n"
    "  3. fine-tune only the adapter on task B (the digits turned a quarter turn);\n"
    "  4. report trainable parameters, accuracy on B before and after, accuracy on\n"
    "     A with the adapter disabled (the base is untouched), adapter size next\n"
    "     to the model's, merged-vs-unmerged difference, time per step, memory;\n"
    "  5. save the base model, the adapter, task B's data and the loss curves.\n"
    "Deterministic for a given --seed on a given device.\n";

typedef struct demo_options {
    const char *out, *device;
    size_t seed, rank, steps_a, steps_b, hidden;
    float alpha;
} demo_options;

/* Reads the command line into o: CLI_RUN, or the exit status after --help
 * or an error (cli_parse). */
static int parse(int argc, char **argv, demo_options *o)
{
    const cli_option options[] = {
        {CLI_OPT("--out", CLI_STRING, &o->out, "DIR", "where to save, in this folder"),
         .fallback = "clora-demo"},
        {CLI_OPT("--seed", CLI_SIZE, &o->seed, "S", "initialisation, data and dropout"),
         .fallback = "1"},
        {CLI_OPT("--rank", CLI_SIZE, &o->rank, "R", "LoRA rank"), .fallback = "4"},
        {CLI_OPT("--alpha", CLI_FLOAT, &o->alpha, "A", "LoRA alpha"), .fallback = "16"},
        {CLI_OPT("--steps-a", CLI_SIZE, &o->steps_a, "N", "pre-training steps on task A"),
         .fallback = "500", CLI_AT_LEAST(1)},
        {CLI_OPT("--steps-b", CLI_SIZE, &o->steps_b, "N", "LoRA fine-tuning steps on task B"),
         .fallback = "500", CLI_AT_LEAST(1)},
        {CLI_OPT("--hidden", CLI_SIZE, &o->hidden, "H", "hidden width"), .fallback = "256",
         CLI_AT_LEAST(1)},
        {CLI_OPT("--device", CLI_STRING, &o->device, "SEL", "device index or name part")},
        CLI_END};
    const cli_spec spec = {.command = "demo",
                           .usage = "usage: clora demo [options]",
                           .description = demo_description,
                           .options = options};
    return cli_parse(&spec, argc, argv);
}

/* A hash of the bytes of every base parameter (all but LoRA's A and B),
 * to show that fine-tuning never wrote one. */
static clora_status frozen_checksum(clora_model *model, uint64_t *out)
{
    uint64_t h = 1469598103934665603ull;
    size_t count = 0;
    clora_status status = clora_model_params(model, &count);
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        clora_param_info info;
        if ((status = clora_model_param(model, i, &info)) != CLORA_OK)
            return status;
        if (strstr(info.name, ".lora_A.") || strstr(info.name, ".lora_B."))
            continue;
        size_t n = clora_buffer_numel(info.value);
        float *v = malloc(n * sizeof *v);
        if (!v)
            return CLORA_ERR_OUT_OF_HOST_MEMORY;
        status = clora_buffer_download(info.value, 0, v, n);
        const unsigned char *p = (const unsigned char *)v;
        for (size_t k = 0; k < n * sizeof *v && status == CLORA_OK; ++k)
            h = (h ^ p[k]) * 1099511628211ull;
        free(v);
        if (status != CLORA_OK)
            return status;
    }
    *out = h;
    return status;
}

/* The logits of the first `rows` examples (freed by the caller). */
static float *logits_of(clora_model *model, const dataset *data, size_t rows, clora_status *status)
{
    batch b;
    float *out = NULL;
    *status = batch_create(&b, model, data, rows);
    const clora_buffer *y = NULL;
    if (*status == CLORA_OK)
        *status = batch_fill(&b, data, NULL, 0);
    if (*status == CLORA_OK)
        *status = clora_model_forward(model, b.input, &y);
    if (*status == CLORA_OK && (out = malloc(rows * 10 * sizeof *out)))
        *status = clora_buffer_download(y, 0, out, rows * 10);
    batch_destroy(&b);
    return out;
}

static double file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (double)st.st_size : 0.0;
}

int cmd_demo(int argc, char **argv)
{
    demo_options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;

    int exit_code = 1;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    clora_trainer *trainer = NULL;
    dataset a_train = {0}, a_eval = {0}, b_train = {0}, b_eval = {0};
    batch b = {0};
    loss_log log = {0};
    float *unmerged = NULL, *merged = NULL;
    const size_t rows = 64;
    char text[4][64];
    /* before the training, not after it */
    if (!output_writable("demo", "--out", o.out, 1))
        return 1;
    clora_status status = clora_device_open(&dev, o.device);
    if (status != CLORA_OK) {
        cli_report("demo", "opening the device", status);
        goto done;
    }
    clora_device_info info;
    clora_device_get_info(dev, &info);
    printf("clora demo: LoRA fine-tuning on %s (%s)\n\n", info.name, info.platform_name);

    if (!demo_make_dataset(&a_train, 8192, 0, o.seed * 4 + 1) ||
        !demo_make_dataset(&a_eval, 2000, 0, o.seed * 4 + 2) ||
        !demo_make_dataset(&b_train, 4096, 1, o.seed * 4 + 3) ||
        !demo_make_dataset(&b_eval, 2000, 1, o.seed * 4 + 4)) {
        fprintf(stderr, "clora demo: out of memory\n");
        goto done;
    }

    /* ---- 1. the base model, trained in full on task A ---- */
    const size_t h = o.hidden;
    if ((status = clora_model_create(&model, dev, o.seed))) {
        cli_report("demo", "creating the model", status);
        goto done;
    }
    clora_node *root = clora_model_root(model);
    if ((status = clora_node_add_linear(root, "fc1", 64, h, 1, NULL)) ||
        (status = clora_node_add_activation(root, "act1", CLORA_NODE_GELU, NULL)) ||
        (status = clora_node_add_linear(root, "fc2", h, h, 1, NULL)) ||
        (status = clora_node_add_layer_norm(root, "norm", h, 1e-5f, NULL)) ||
        (status = clora_node_add_activation(root, "act2", CLORA_NODE_GELU, NULL)) ||
        (status = clora_node_add_linear(root, "head", h, 10, 1, NULL))) {
        cli_report("demo", "building the model", status);
        goto done;
    }
    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    const size_t total_params = counts.total;
    printf("[1/5] Base model: fc1 64->%zu, GELU, fc2 %zu->%zu, LayerNorm, GELU, head %zu->10: "
           "%s parameters\n",
           h, h, h, h, with_commas(total_params, text[0], sizeof text[0]));
    printf("      Task A: 8x8 digits, upright (%zu training, %zu test images)\n", a_train.count,
           a_eval.count);
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 3e-3f;
    cfg.schedule = CLORA_SCHEDULE_COSINE;
    cfg.warmup_steps = o.steps_a / 20;
    cfg.total_steps = o.steps_a;
    float loss = 0;
    double acc_a = 0, acc_b_before = 0, acc_b_after = 0, acc_a_disabled = 0;
    if ((status = clora_trainer_create(&trainer, model, &cfg)) ||
        (status = batch_create(&b, model, &a_train, rows))) {
        cli_report("demo", "setting up pre-training", status);
        goto done;
    }
    double full_step = 0, lora_step = 0;
    if ((status = train_loop(trainer, &a_train, &b, o.steps_a, o.seed, "pre-training (all weights)",
                             &log, "pretrain_a", &loss, &full_step))) {
        cli_report("demo", "pre-training", status);
        goto done;
    }
    clora_trainer_destroy(trainer);
    trainer = NULL;
    if ((status = evaluate(model, &a_eval, 500, &acc_a))) {
        cli_report("demo", "evaluating", status);
        goto done;
    }
    printf("      task A accuracy: %.1f%%\n\n", 100.0 * acc_a);

    /* ---- 2. freeze, apply LoRA ---- */
    printf("[2/5] Freezing the base and applying LoRA (r = %zu, alpha = %g, scale alpha/r) to "
           "every Linear\n",
           o.rank, (double)o.alpha);
    clora_model_count_params(model, &counts);
    printf("      Total trainable parameters before: %s\n",
           with_commas(counts.trainable, text[0], sizeof text[0]));
    clora_model_set_trainable(model, "", 0);
    clora_model_count_params(model, &counts);
    printf("      Total trainable parameters after: %s\n",
           with_commas(counts.trainable, text[0], sizeof text[0]));
    clora_lora_config lora = clora_lora_config_default();
    lora.adapter_name = "task_b";
    lora.rank = o.rank;
    lora.alpha = o.alpha;
    size_t replaced = 0;
    if ((status = clora_replace_linear_with_lora(root, &lora, &replaced))) {
        cli_report("demo", "applying LoRA", status);
        goto done;
    }
    print_parameter_counts(stdout, model, "      ");
    uint64_t frozen_before = 0, frozen_after = 1;
    if ((status = frozen_checksum(model, &frozen_before)) ||
        (status = evaluate(model, &b_eval, 500, &acc_b_before))) {
        cli_report("demo", "evaluating", status);
        goto done;
    }
    printf("      task B (digits turned a quarter turn) accuracy before fine-tuning: %.1f%%\n\n",
           100.0 * acc_b_before);

    /* ---- 3. fine-tune only the adapter on task B ---- */
    printf("[3/5] Fine-tuning the LoRA adapter on task B (%zu training images)\n", b_train.count);
    cfg.optimizer.lr = 1e-2f;
    cfg.warmup_steps = o.steps_b / 20;
    cfg.total_steps = o.steps_b;
    if ((status = clora_trainer_create(&trainer, model, &cfg))) {
        cli_report("demo", "setting up fine-tuning", status);
        goto done;
    }
    if ((status = train_loop(trainer, &b_train, &b, o.steps_b, o.seed + 1,
                             "fine-tuning (LoRA only)", &log, "lora_b", &loss, &lora_step))) {
        cli_report("demo", "fine-tuning", status);
        goto done;
    }
    if ((status = evaluate(model, &b_eval, 500, &acc_b_after))) {
        cli_report("demo", "evaluating", status);
        goto done;
    }
    printf("      task B accuracy after fine-tuning: %.1f%%\n\n", 100.0 * acc_b_after);

    /* ---- 4. checks: base untouched, merge equivalence ---- */
    printf("[4/5] Checking the base and the merge\n");
    if ((status = clora_model_set_adapter(model, NULL)) ||
        (status = evaluate(model, &a_eval, 500, &acc_a_disabled)) ||
        (status = frozen_checksum(model, &frozen_after)) ||
        (status = clora_model_set_adapter(model, "task_b"))) {
        cli_report("demo", "checking the base", status);
        goto done;
    }
    unmerged = logits_of(model, &b_eval, 256, &status);
    if (status == CLORA_OK)
        status = clora_model_merge_adapter(model);
    if (status == CLORA_OK)
        merged = logits_of(model, &b_eval, 256, &status);
    if (status == CLORA_OK)
        status = clora_model_unmerge_adapter(model);
    if (status != CLORA_OK || !unmerged || !merged) {
        cli_report("demo", "merging", status);
        goto done;
    }
    double max_diff = 0;
    for (size_t i = 0; i < 256 * 10; ++i)
        max_diff = fmax(max_diff, fabs((double)merged[i] - (double)unmerged[i]));
    printf("      adapter disabled: task A accuracy %.1f%%, frozen weights %s\n",
           100.0 * acc_a_disabled,
           frozen_after == frozen_before ? "bit-identical to before fine-tuning" : "CHANGED");
    printf("      merged vs unmerged logits: max |difference| %.2g\n\n", max_diff);

    /* ---- 5. save ---- */
    char base_dir[4096], adapter_dir[4096], csv[4096], b_train_path[4096], b_eval_path[4096];
    snprintf(base_dir, sizeof base_dir, "%s/base", o.out);
    snprintf(adapter_dir, sizeof adapter_dir, "%s/adapter", o.out);
    snprintf(csv, sizeof csv, "%s/loss.csv", o.out);
    snprintf(b_train_path, sizeof b_train_path, "%s/task_b_train.safetensors", o.out);
    snprintf(b_eval_path, sizeof b_eval_path, "%s/task_b_eval.safetensors", o.out);
    mkdir(o.out, 0777);
    if ((status = clora_model_save(model, base_dir)) ||
        (status = clora_adapter_save(model, "task_b", adapter_dir))) {
        cli_report("demo", "saving", status);
        goto done;
    }
    if (!loss_log_write("demo", &log, csv) || !dataset_save("demo", b_train_path, &b_train) ||
        !dataset_save("demo", b_eval_path, &b_eval))
        goto done;
    char path[4200];
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", adapter_dir);
    const double adapter_bytes = file_size(path);
    snprintf(path, sizeof path, "%s/model.safetensors", base_dir);
    const double model_bytes = file_size(path);

    clora_model_count_params(model, &counts);
    printf("[5/5] Results (seed %zu)\n", o.seed);
    printf("      trainable / total parameters   %s / %s (%.2f%%)\n",
           with_commas(counts.trainable, text[0], sizeof text[0]),
           with_commas(counts.total, text[1], sizeof text[1]),
           100.0 * (double)counts.trainable / (double)counts.total);
    printf("      task B accuracy                %.1f%% -> %.1f%%\n", 100.0 * acc_b_before,
           100.0 * acc_b_after);
    printf("      task A accuracy, adapter off   %.1f%% -> %.1f%% (%s)\n", 100.0 * acc_a,
           100.0 * acc_a_disabled,
           frozen_after == frozen_before ? "the base is intact" : "the base CHANGED");
    printf("      adapter file                   %s, full model %s (%.1f%%)\n",
           human_bytes(adapter_bytes, text[0], sizeof text[0]),
           human_bytes(model_bytes, text[1], sizeof text[1]),
           model_bytes > 0 ? 100.0 * adapter_bytes / model_bytes : 0.0);
    printf("      merged vs unmerged max |diff|  %.2g\n", max_diff);
    printf("      time per step                  %.2f ms LoRA, %.2f ms full training (%.2fx)\n",
           lora_step * 1e3, full_step * 1e3, lora_step / full_step);
    print_memory(stdout, dev, "      ");
    printf("\nSaved in %s/: base/ (the model), adapter/ (a PEFT adapter), loss.csv,\n"
           "task_b_train.safetensors and task_b_eval.safetensors. Try next:\n"
           "  clora info %s\n"
           "  clora merge --model %s --adapter %s --out %s/merged\n"
           "  clora train --model %s --data %s --eval %s --out %s/adapter2 --lr 0.01 --epochs 3\n",
           o.out, adapter_dir, base_dir, adapter_dir, o.out, base_dir, b_train_path, b_eval_path,
           o.out);
    exit_code = frozen_after == frozen_before && max_diff < 1e-3 ? 0 : 1;

done:
    free(unmerged);
    free(merged);
    loss_log_free(&log);
    batch_destroy(&b);
    clora_trainer_destroy(trainer);
    dataset_free(&a_train);
    dataset_free(&a_eval);
    dataset_free(&b_train);
    dataset_free(&b_eval);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    return exit_code;
}
