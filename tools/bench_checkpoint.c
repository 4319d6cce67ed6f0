/* bench_checkpoint.c — `clora bench`'s measurement of gradient
 * checkpointing: a LoRA training step on GPT-2 small's shapes (and, with
 * --llama, on that model) with clora_model_set_checkpointing off and on,
 * timed alternating in one run; and the working memory of each: the peak
 * of everything the step holds beyond the parameters, gradients and
 * optimizer state (activations, and the scratch and recycled buffers they
 * pass through). */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "training.h"

typedef struct step_case {
    clora_model *model;
    clora_trainer *trainer;
    clora_buffer *input, *target;
    int checkpointing;
} step_case;

static clora_status run_step(void *p)
{
    step_case *s = p;
    clora_status status = clora_model_set_checkpointing(s->model, s->checkpointing);
    return status == CLORA_OK ? clora_trainer_step(s->trainer, s->input, s->target, NULL)
                              : status;
}

/* The step's working memory: its peak beyond what the parameters, their
 * gradients and the optimizer hold; and the peak of what the nodes keep
 * for backward (the activations category alone). */
static clora_status working_peak(bench *b, step_case *s, uint64_t *out, uint64_t *activations)
{
    /* a step first: what the other case's step left in the nodes goes */
    clora_status status = run_step(s);
    if (status == CLORA_OK)
        status = clora_device_finish(b->dev);
    if (status == CLORA_OK)
        status = clora_device_reset_memory_peak(b->dev);
    if (status == CLORA_OK)
        status = run_step(s);
    if (status == CLORA_OK)
        status = clora_device_finish(b->dev);
    clora_memory_report r;
    if (status == CLORA_OK)
        status = clora_device_memory(b->dev, &r);
    if (status == CLORA_OK) {
        const uint64_t kept = r.bytes[CLORA_MEMORY_FROZEN] + r.bytes[CLORA_MEMORY_TRAINABLE] +
                              r.bytes[CLORA_MEMORY_GRADIENTS] + r.bytes[CLORA_MEMORY_OPTIMIZER] +
                              r.bytes[CLORA_MEMORY_OTHER];
        *out = r.peak > kept ? r.peak - kept : 0;
        *activations = r.peak_bytes[CLORA_MEMORY_ACTIVATIONS];
    }
    return status;
}

/* One model's step without and with checkpointing (LoRA already on it). */
static clora_status measure(bench *b, clora_model *model, clora_buffer *input,
                            clora_buffer *target, const char *shape, size_t reps)
{
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 1e-4f;
    step_case plain = {model, NULL, input, target, 0}, kept = plain;
    kept.checkpointing = 1;
    clora_status status = clora_model_set_training(model, 1);
    if (status == CLORA_OK)
        status = clora_trainer_create(&plain.trainer, model, &cfg);
    kept.trainer = plain.trainer;
    uint64_t plain_bytes = 0, kept_bytes = 0, plain_act = 0, kept_act = 0;
    if (status == CLORA_OK)
        status = working_peak(b, &plain, &plain_bytes, &plain_act);
    if (status == CLORA_OK)
        status = working_peak(b, &kept, &kept_bytes, &kept_act);
    bench_fn fns[2] = {run_step, run_step};
    void *ctx[2] = {&plain, &kept};
    double ms[2] = {0, 0};
    if (status == CLORA_OK)
        status = bench_measure(b, 2, fns, ctx, reps, ms);
    clora_trainer_destroy(plain.trainer);
    if (status != CLORA_OK)
        return status;
    char a[32], c[32], d[32], e[32];
    if (!b->o.json)
        printf("  %s: activations %s without checkpointing, %s with (%.2fx less); working "
               "memory %s and %s (%.2fx less)\n",
               shape, human_bytes((double)plain_act, a, sizeof a),
               human_bytes((double)kept_act, c, sizeof c),
               kept_act ? (double)plain_act / (double)kept_act : 0.0,
               human_bytes((double)plain_bytes, d, sizeof d),
               human_bytes((double)kept_bytes, e, sizeof e),
               kept_bytes ? (double)plain_bytes / (double)kept_bytes : 0.0);
    json_t *extra = json_pack("{s:I, s:I, s:I, s:I}", "activation_bytes", (json_int_t)kept_act,
                              "plain_activation_bytes", (json_int_t)plain_act, "working_bytes",
                              (json_int_t)kept_bytes, "plain_working_bytes",
                              (json_int_t)plain_bytes);
    bench_report(b, "checkpointing_step", shape, ms[1], "plain_step", ms[0], "time", extra);
    return CLORA_OK;
}

/* LoRA r = 8 on the attention projections named. */
static clora_status adapt(clora_model *model, const char *const *targets, size_t count)
{
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 8;
    lora.alpha = 16;
    lora.target_modules = targets;
    lora.target_module_count = count;
    return clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL);
}

void bench_checkpointing(bench *b)
{
    /* GPT-2 small's shapes (12 x 768, 50257 tokens) at random weights */
    const size_t seq = b->o.quick ? 64 : 256;
    clora_gpt2_config cfg = clora_gpt2_config_default();
    if (b->o.quick)
        cfg.n_layer = 2;
    clora_model *model = NULL;
    clora_buffer *input = NULL, *target = NULL;
    static const char *const gpt2_targets[] = {"c_attn"};
    clora_status status = clora_model_create_gpt2(&model, b->dev, &cfg, 1);
    if (status == CLORA_OK)
        status = adapt(model, gpt2_targets, 1);
    if (status == CLORA_OK)
        status = bench_tokens(b->dev, 1, seq, cfg.vocab_size, 23, &input, &target);
    char shape[96];
    snprintf(shape, sizeof shape, "GPT-2 %zux%zu B=1 T=%zu r=8", cfg.n_layer, cfg.n_embd, seq);
    if (status == CLORA_OK)
        status = measure(b, model, input, target, shape, b->o.quick ? 1 : 3);
    if (status != CLORA_OK)
        bench_fail(b, "checkpointing on GPT-2's shapes", status);
    clora_buffer_destroy(input);
    clora_buffer_destroy(target);
    clora_model_destroy(model);
    if (b->failed || !b->o.llama)
        return;
    /* the Llama-family model, as packed_train_step trains it: B = 4, T = 64 */
    model = NULL;
    input = target = NULL;
    static const char *const llama_targets[] = {"q_proj", "v_proj"};
    clora_load_options load = clora_load_options_default();
    load.base_dtype = CLORA_DTYPE_F32;
    status = clora_model_load_with(&model, b->dev, b->o.llama, &load);
    size_t vocab = 0;
    if (status == CLORA_OK) {
        clora_param_info info;
        status = clora_model_find_param(model, "model.embed_tokens.weight", &info);
        if (status == CLORA_OK)
            vocab = clora_buffer_dim(info.value, 0);
    }
    if (status == CLORA_OK)
        status = adapt(model, llama_targets, 2);
    if (status == CLORA_OK)
        status = bench_tokens(b->dev, 4, 64, vocab, 23, &input, &target);
    if (status == CLORA_OK)
        status = measure(b, model, input, target, "Llama (--llama) B=4 T=64 r=8",
                         b->o.quick ? 1 : 3);
    if (status != CLORA_OK)
        bench_fail(b, "checkpointing on the --llama model", status);
    clora_buffer_destroy(input);
    clora_buffer_destroy(target);
    clora_model_destroy(model);
}
