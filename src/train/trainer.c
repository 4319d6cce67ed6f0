/* trainer.c — the training loop's step: zero the gradients, forward in
 * training mode, loss, backward (over one or more micro-batches), clip,
 * schedule, optimizer update. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

struct clora_trainer {
    clora_model *model;
    clora_train_config config;
    clora_optimizer *optimizer;
    clora_buffer *d_output;
    clora_buffer *weight; /* one float: the micro-batch's share of the step's loss */
    size_t steps;
    size_t pending; /* micro-batches accumulated since the last update */
    size_t step_examples; /* their examples */
    uint64_t step_forwards; /* the model's training forwards when the step began */
    float last_lr;
    clora_gradient_hook hook;
    void *hook_user;
};

/* A call that failed part way has left gradients (and maybe the dropout
 * masks' counter) in between: the step in progress is given up, and the
 * next accumulate starts it again from zeroed gradients and the masks it
 * first drew. Parameters and optimizer state change only in the update's
 * one kernel, which either ran or did not. */
static clora_status abandon_step(clora_trainer *t, clora_status status)
{
    t->pending = 0;
    t->model->forward_count = t->step_forwards;
    return status;
}

clora_train_config clora_train_config_default(void)
{
    clora_train_config c;
    memset(&c, 0, sizeof c);
    c.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
    c.schedule = CLORA_SCHEDULE_CONSTANT;
    c.loss = CLORA_LOSS_CROSS_ENTROPY;
    c.ignore_index = -100;
    return c;
}

clora_status clora_trainer_create(clora_trainer **out, clora_model *model,
                                  const clora_train_config *config)
{
    if (!out || !model || !config)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_create: NULL argument");
    *out = NULL;
    if (config->loss != CLORA_LOSS_CROSS_ENTROPY && config->loss != CLORA_LOSS_MSE)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_trainer_create: unknown loss %d",
                           (int)config->loss);
    if (config->schedule != CLORA_SCHEDULE_CONSTANT && config->schedule != CLORA_SCHEDULE_LINEAR &&
        config->schedule != CLORA_SCHEDULE_COSINE)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_trainer_create: unknown schedule %d",
                           (int)config->schedule);
    if (config->max_grad_norm < 0.0f || !isfinite(config->max_grad_norm))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_trainer_create: max_grad_norm %g must be >= 0 (0: off)",
                           (double)config->max_grad_norm);
    clora_trainer *t = clora__calloc(1, sizeof *t);
    if (!t)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a trainer");
    t->model = model;
    t->config = *config;
    clora_status status = clora_optimizer_create(&t->optimizer, model, &config->optimizer);
    if (status != CLORA_OK) {
        free(t);
        return status;
    }
    *out = t;
    return CLORA_OK;
}

void clora_trainer_destroy(clora_trainer *t)
{
    if (!t)
        return;
    clora_optimizer_destroy(t->optimizer);
    clora_buffer_destroy(t->d_output);
    clora_buffer_destroy(t->weight);
    free(t);
}

clora_status clora_trainer_accumulate(clora_trainer *t, const clora_buffer *input,
                                      const clora_buffer *target, float weight, float *loss)
{
    return clora_trainer_accumulate_at(t, input, target, weight,
                                       t && t->pending ? t->step_examples : 0, loss);
}

clora_status clora_trainer_accumulate_at(clora_trainer *t, const clora_buffer *input,
                                         const clora_buffer *target, float weight,
                                         size_t first_example, float *loss)
{
    if (!t || !input || !target)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_accumulate: NULL argument");
    if (!(weight >= 0.0f) || !isfinite(weight))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_trainer_accumulate: weight %g must be finite and >= 0",
                           (double)weight);
    clora_model *model = t->model;
    const int was_training = model->training;
    model->training = 1;
    const clora_buffer *output = NULL;
    if (t->pending == 0) {
        t->step_forwards = model->forward_count;
        t->step_examples = 0;
    }
    clora_status status = t->pending ? CLORA_OK : clora_model_zero_grad(model);
    /* every part of a step draws the masks of the whole batch: the step's
     * one training forward, at this part's place in it */
    model->forward_count = t->step_forwards;
    model->first_example = first_example;
    if (status == CLORA_OK)
        status = clora_model_forward(model, input, &output);
    if (status == CLORA_OK && (!t->d_output || t->d_output->ndim != output->ndim ||
                               memcmp(t->d_output->shape, output->shape,
                                      output->ndim * sizeof *output->shape))) {
        clora_buffer_destroy(t->d_output);
        t->d_output = NULL;
        status = clora__buffer_create(&t->d_output, model->device, CLORA_DTYPE_F32,
                                      CLORA_MEMORY_ACTIVATIONS, output->ndim, output->shape);
    }
    float value = 0.0f;
    if (status == CLORA_OK)
        status = t->config.loss == CLORA_LOSS_CROSS_ENTROPY
                     ? clora_cross_entropy(&value, t->d_output, output, target,
                                           t->config.ignore_index)
                     : clora_mse(&value, t->d_output, output, target);
    if (status == CLORA_OK && weight != 1.0f) { /* d_output *= weight */
        const size_t one = 1;
        if (!t->weight)
            status = clora__buffer_create(&t->weight, model->device, CLORA_DTYPE_F32,
                                          CLORA_MEMORY_SCRATCH, 1, &one);
        if (status == CLORA_OK)
            status = clora_buffer_upload(t->weight, 0, &weight, 1);
        if (status == CLORA_OK)
            status = clora__scale_by(t->d_output, t->weight, 0);
    }
    if (status == CLORA_OK)
        status = clora_model_backward(model, t->d_output);
    model->training = was_training;
    model->first_example = 0;
    if (status != CLORA_OK)
        return abandon_step(t, status);
    t->pending++;
    t->step_examples = first_example + (input->ndim ? input->shape[0] : 1);
    if (loss)
        *loss = value;
    return CLORA_OK;
}

clora_status clora_trainer_update(clora_trainer *t)
{
    if (!t)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_update: trainer is NULL");
    if (t->pending == 0)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_trainer_update: no micro-batch since the last update "
                           "(clora_trainer_accumulate first)");
    clora_status status = CLORA_OK;
    if (t->hook && t->model->grad_arena)
        status = t->hook(t->model->grad_arena, t->hook_user);
    if (status == CLORA_OK && t->config.max_grad_norm > 0.0f)
        status = clora_clip_grad_norm(t->model, t->config.max_grad_norm, NULL);
    const clora_schedule schedule = {t->config.schedule, t->config.optimizer.lr,
                                     t->config.warmup_steps, t->config.total_steps};
    const float lr = clora_schedule_lr(&schedule, t->steps);
    if (status == CLORA_OK)
        status = clora_optimizer_step(t->optimizer, lr);
    if (status != CLORA_OK)
        return abandon_step(t, status);
    t->pending = 0;
    t->last_lr = lr;
    t->steps++;
    return CLORA_OK;
}

clora_status clora_trainer_step(clora_trainer *t, const clora_buffer *input,
                                const clora_buffer *target, float *loss)
{
    if (t && t->pending)
        return clora__fail(CLORA_ERR_STATE, "clora_trainer_step: %zu accumulated micro-batches "
                                            "wait for clora_trainer_update",
                           t->pending);
    clora_status status = clora_trainer_accumulate(t, input, target, 1.0f, loss);
    return status == CLORA_OK ? clora_trainer_update(t) : status;
}

void clora_trainer_set_gradient_hook(clora_trainer *t, clora_gradient_hook hook, void *user)
{
    if (!t)
        return;
    t->hook = hook;
    t->hook_user = user;
}

size_t clora_trainer_step_count(const clora_trainer *t)
{
    return t ? t->steps : 0;
}

float clora_trainer_last_lr(const clora_trainer *t)
{
    return t ? t->last_lr : 0.0f;
}

clora_optimizer *clora__trainer_optimizer(clora_trainer *t)
{
    return t->optimizer;
}

clora_model *clora__trainer_model(clora_trainer *t)
{
    return t->model;
}

void clora__trainer_restore(clora_trainer *t, size_t steps, float last_lr)
{
    t->steps = steps;
    t->last_lr = last_lr;
    t->pending = 0;
}
