/* train.c — losses, optimizers, gradient clipping, schedules, the trainer.
 * Kernels: cl/loss.cl, cl/optim.cl, cl/reduce.cl. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define SUM_CHUNK 4096

/* ---- deterministic sums ------------------------------------------------------- */

clora_status clora__sum(clora_device *dev, cl_mem out, size_t out_offset, const clora_buffer *x,
                        int square, float scale)
{
    size_t parts = (x->numel + SUM_CHUNK - 1) / SUM_CHUNK;
    if (parts == 0)
        parts = 1;
    cl_mem partials;
    clora__args a;
    clora_status status = clora__device_scratch(dev, parts * sizeof(float), &partials);
    if (status == CLORA_OK && x->numel > 0) {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_SUM_PARTIALS)))
            return status;
        clora__arg_mem(&a, partials);
        clora__arg_buffer(&a, x);
        clora__arg_uint(&a, x->numel);
        clora__arg_uint(&a, SUM_CHUNK);
        clora__arg_uint(&a, square != 0);
        const size_t global[1] = {parts}, local[1] = {1};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_SUM_FINISH);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, out);
    clora__arg_uint(&a, out_offset);
    clora__arg_mem(&a, partials);
    clora__arg_uint(&a, x->numel > 0 ? parts : 0);
    clora__arg_float(&a, scale);
    clora__arg_uint(&a, 0);
    const size_t one[1] = {1};
    return clora__args_launch(&a, 1, one, one);
}

/* ---- losses ------------------------------------------------------------------------ */

/* A temporary float buffer of n elements, counted as scratch. */
static clora_status temporary(clora_device *dev, size_t n, clora_buffer **out)
{
    return clora__buffer_create(out, dev, CLORA_DTYPE_F32, CLORA_MEMORY_SCRATCH, 1, &n);
}

clora_status clora_cross_entropy(float *loss, clora_buffer *d_logits, const clora_buffer *logits,
                                 const clora_buffer *labels, int ignore_index)
{
    static const char op[] = "clora_cross_entropy";
    clora_status status = clora__check_nonempty(op, "logits", logits);
    if (status == CLORA_OK && !labels)
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: labels is NULL", op);
    if (status == CLORA_OK)
        status = clora__check_dtype(op, "labels", labels, CLORA_DTYPE_I32);
    if (status == CLORA_OK)
        status = clora__check_same_device(op, "labels", labels, logits->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_logits", d_logits, logits->device);
    if (status != CLORA_OK)
        return status;
    const size_t rows = clora__rows(logits), classes = clora__cols(logits);
    if (labels->numel != rows) {
        char a[64], b[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: labels %s hold %zu entries; logits %s have %zu rows", op,
                           clora_buffer_shape_string(labels, a, sizeof a), labels->numel,
                           clora_buffer_shape_string(logits, b, sizeof b), rows);
    }
    if (d_logits && (d_logits->numel != logits->numel || clora__cols(d_logits) != classes))
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: d_logits must have the logits' shape",
                           op);
    if (d_logits && clora__overlap(d_logits, logits))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: d_logits overlaps logits", op);
    clora_device *dev = logits->device;
    /* stats: {1/valid, invalid, valid, loss}; row_loss: (N) */
    clora_buffer *stats = NULL, *row_loss = NULL;
    status = temporary(dev, 4, &stats);
    if (status == CLORA_OK)
        status = temporary(dev, rows, &row_loss);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_CROSS_ENTROPY_COUNT);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, stats->mem);
        clora__arg_buffer(&a, labels);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, classes);
        clora__arg_int(&a, ignore_index);
        const size_t one[1] = {1};
        status = clora__args_launch(&a, 1, one, one);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_CROSS_ENTROPY_ROWS);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, d_logits ? d_logits->mem : logits->mem); /* unused without grad */
        clora__arg_uint(&a, d_logits ? d_logits->offset : 0);
        clora__arg_uint(&a, d_logits != NULL);
        clora__arg_mem(&a, row_loss->mem);
        clora__arg_buffer(&a, logits);
        clora__arg_buffer(&a, labels);
        clora__arg_mem(&a, stats->mem);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, classes);
        clora__arg_int(&a, ignore_index);
        const size_t global[1] = {rows}, local[1] = {64};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__sum(dev, stats->mem, 3, row_loss, 0, 1.0f);
    float host[4];
    if (status == CLORA_OK && loss)
        status = clora_buffer_download(stats, 0, host, 4);
    clora_buffer_destroy(row_loss);
    clora_buffer_destroy(stats);
    if (status != CLORA_OK || !loss)
        return status;
    if (host[1] > 0.0f)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: %.0f labels lie outside [0, %zu) (and are not the ignore index "
                           "%d)",
                           op, (double)host[1], classes, ignore_index);
    *loss = host[3];
    return CLORA_OK;
}

clora_status clora_mse(float *loss, clora_buffer *d_pred, const clora_buffer *pred,
                       const clora_buffer *target)
{
    static const char op[] = "clora_mse";
    clora_status status = clora__check_nonempty(op, "pred", pred);
    if (status == CLORA_OK)
        status = clora__check_present(op, "target", target);
    if (status == CLORA_OK)
        status = clora__check_float(op, "target", target, pred->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_pred", d_pred, pred->device);
    if (status != CLORA_OK)
        return status;
    if (target->numel != pred->numel || (d_pred && d_pred->numel != pred->numel)) {
        char a[64], b[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: pred %s and target %s differ in size",
                           op, clora_buffer_shape_string(pred, a, sizeof a),
                           clora_buffer_shape_string(target, b, sizeof b));
    }
    clora_device *dev = pred->device;
    clora_buffer *sq = NULL, *out = NULL;
    status = temporary(dev, pred->numel, &sq);
    if (status == CLORA_OK)
        status = temporary(dev, 1, &out);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_MSE_ELEMENTS);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, d_pred ? d_pred->mem : sq->mem);
        clora__arg_uint(&a, d_pred ? d_pred->offset : 0);
        clora__arg_uint(&a, d_pred != NULL);
        clora__arg_mem(&a, sq->mem);
        clora__arg_buffer(&a, pred);
        clora__arg_buffer(&a, target);
        clora__arg_uint(&a, pred->numel);
        clora__arg_float(&a, 1.0f / (float)pred->numel);
        const size_t global[1] = {pred->numel}, local[1] = {64};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__sum(dev, out->mem, 0, sq, 0, 1.0f);
    if (status == CLORA_OK && loss)
        status = clora_buffer_download(out, 0, loss, 1);
    clora_buffer_destroy(sq);
    clora_buffer_destroy(out);
    return status;
}

/* ---- optimizers ------------------------------------------------------------------------ */

struct clora_optimizer {
    clora_model *model;
    clora_optimizer_config config;
    uint64_t generation; /* the model's arena layout this state belongs to */
    clora_buffer *m, *v; /* AdamW moments, or SGD momentum in m */
    size_t steps;
};

clora_optimizer_config clora_optimizer_config_default(clora_optimizer_kind kind)
{
    clora_optimizer_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    if (kind == CLORA_OPTIMIZER_SGD) {
        c.lr = 1e-2f;
        c.momentum = 0.9f;
    } else {
        c.lr = 1e-3f;
        c.weight_decay = 0.01f;
        c.beta1 = 0.9f;
        c.beta2 = 0.999f;
        c.eps = 1e-8f;
    }
    return c;
}

static clora_status check_optimizer_config(const clora_optimizer_config *c)
{
    static const char op[] = "clora_optimizer_create";
    if (c->kind != CLORA_OPTIMIZER_ADAMW && c->kind != CLORA_OPTIMIZER_SGD)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown optimizer kind %d", op,
                           (int)c->kind);
    if (!(c->lr >= 0.0f) || !isfinite(c->lr))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: lr %g must be finite and >= 0", op,
                           (double)c->lr);
    if (!(c->weight_decay >= 0.0f) || !isfinite(c->weight_decay))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: weight_decay %g must be >= 0", op,
                           (double)c->weight_decay);
    if (c->kind == CLORA_OPTIMIZER_ADAMW &&
        (!(c->beta1 >= 0.0f && c->beta1 < 1.0f) || !(c->beta2 >= 0.0f && c->beta2 < 1.0f) ||
         !(c->eps > 0.0f)))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: AdamW needs 0 <= beta1, beta2 < 1 and eps > 0 (got %g, %g, %g)", op,
                           (double)c->beta1, (double)c->beta2, (double)c->eps);
    if (c->kind == CLORA_OPTIMIZER_SGD &&
        (!(c->momentum >= 0.0f) || !(c->dampening >= 0.0f && c->dampening <= 1.0f) ||
         (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: SGD needs momentum >= 0, 0 <= dampening <= 1, and Nesterov "
                           "needs momentum > 0 with dampening 0",
                           op);
    return CLORA_OK;
}

clora_status clora_optimizer_create(clora_optimizer **out, clora_model *model,
                                    const clora_optimizer_config *config)
{
    if (!out || !model || !config)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_optimizer_create: NULL argument");
    *out = NULL;
    clora_status status = check_optimizer_config(config);
    if (status == CLORA_OK)
        status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    clora_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating an optimizer");
    opt->model = model;
    opt->config = *config;
    opt->generation = model->generation;
    size_t n = model->arena_numel;
    int needs_m = n > 0 && (config->kind == CLORA_OPTIMIZER_ADAMW || config->momentum != 0.0f);
    int needs_v = n > 0 && config->kind == CLORA_OPTIMIZER_ADAMW;
    if (needs_m)
        status = clora__buffer_create(&opt->m, model->device, CLORA_DTYPE_F32,
                                      CLORA_MEMORY_OPTIMIZER, 1, &n);
    if (status == CLORA_OK && needs_v)
        status = clora__buffer_create(&opt->v, model->device, CLORA_DTYPE_F32,
                                      CLORA_MEMORY_OPTIMIZER, 1, &n);
    if (status != CLORA_OK) {
        clora_optimizer_destroy(opt);
        return status;
    }
    *out = opt;
    return CLORA_OK;
}

void clora_optimizer_destroy(clora_optimizer *opt)
{
    if (!opt)
        return;
    clora_buffer_destroy(opt->m);
    clora_buffer_destroy(opt->v);
    free(opt);
}

size_t clora_optimizer_steps(const clora_optimizer *opt)
{
    return opt ? opt->steps : 0;
}

clora_status clora_optimizer_step(clora_optimizer *opt, float lr)
{
    if (!opt)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_optimizer_step: optimizer is NULL");
    clora_model *model = opt->model;
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    if (model->generation != opt->generation)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_optimizer_step: the model's trainable parameters changed since "
                           "the optimizer was created; create a new optimizer");
    if (!(lr >= 0.0f) || !isfinite(lr))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "clora_optimizer_step: lr %g", (double)lr);
    size_t n = model->arena_numel;
    if (n == 0) {
        opt->steps++;
        return CLORA_OK;
    }
    clora_device *dev = model->device;
    const clora_optimizer_config *c = &opt->config;
    const size_t global[1] = {n}, local[1] = {64};
    clora__args a;
    if (c->kind == CLORA_OPTIMIZER_ADAMW) {
        const size_t t = opt->steps + 1;
        const double bc1 = 1.0 - pow((double)c->beta1, (double)t);
        const double bc2 = 1.0 - pow((double)c->beta2, (double)t);
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_ADAMW_STEP)))
            return status;
        clora__arg_mem(&a, model->trainable_arena->mem);
        clora__arg_mem(&a, model->grad_arena->mem);
        clora__arg_mem(&a, opt->m->mem);
        clora__arg_mem(&a, opt->v->mem);
        clora__arg_uint(&a, n);
        clora__arg_float(&a, lr);
        clora__arg_float(&a, c->beta1);
        clora__arg_float(&a, c->beta2);
        clora__arg_float(&a, c->eps);
        clora__arg_float(&a, c->weight_decay);
        clora__arg_float(&a, (float)bc1);
        clora__arg_float(&a, (float)sqrt(bc2));
        status = clora__args_launch(&a, 1, global, local);
    } else {
        if ((status = clora__args_begin(&a, dev, CLORA__KERNEL_SGD_STEP)))
            return status;
        clora__arg_mem(&a, model->trainable_arena->mem);
        clora__arg_mem(&a, model->grad_arena->mem);
        clora__arg_mem(&a, opt->m ? opt->m->mem : model->grad_arena->mem);
        clora__arg_uint(&a, n);
        clora__arg_float(&a, lr);
        clora__arg_float(&a, c->momentum);
        clora__arg_float(&a, c->dampening);
        clora__arg_float(&a, c->weight_decay);
        clora__arg_uint(&a, c->nesterov != 0);
        clora__arg_uint(&a, opt->steps == 0);
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        opt->steps++;
    return status;
}

clora_status clora_clip_grad_norm(clora_model *model, float max_norm, float *norm)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_clip_grad_norm: model is NULL");
    if (!(max_norm > 0.0f) || !isfinite(max_norm))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_clip_grad_norm: max_norm %g must be finite and > 0",
                           (double)max_norm);
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    if (!model->grad_arena) {
        if (norm)
            *norm = 0.0f;
        return CLORA_OK;
    }
    clora_device *dev = model->device;
    clora_buffer *state = NULL; /* {sum of squares, norm, coefficient} */
    if ((status = temporary(dev, 3, &state)))
        return status;
    status = clora__sum(dev, state->mem, 0, model->grad_arena, 1, 1.0f);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_CLIP_COEFFICIENT);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, state->mem);
        clora__arg_float(&a, max_norm);
        const size_t one[1] = {1};
        status = clora__args_launch(&a, 1, one, one);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_SCALE_BY);
    if (status == CLORA_OK) {
        clora__arg_buffer(&a, model->grad_arena);
        clora__arg_uint(&a, model->grad_arena->numel);
        clora__arg_mem(&a, state->mem);
        clora__arg_uint(&a, 2);
        const size_t global[1] = {model->grad_arena->numel}, local[1] = {64};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK && norm)
        status = clora_buffer_download(state, 1, norm, 1);
    clora_buffer_destroy(state);
    return status;
}

/* ---- schedules ---------------------------------------------------------------------------- */

float clora_schedule_lr(const clora_schedule *s, size_t step)
{
    if (!s)
        return 0.0f;
    const double base = s->base_lr;
    if (step < s->warmup_steps)
        return (float)(base * (double)step / (double)s->warmup_steps);
    const size_t decay = s->total_steps > s->warmup_steps ? s->total_steps - s->warmup_steps : 1;
    const double progress = (double)(step - s->warmup_steps) / (double)decay;
    switch (s->kind) {
    case CLORA_SCHEDULE_LINEAR: {
        double remaining = s->total_steps > step ? (double)(s->total_steps - step) : 0.0;
        return (float)(base * fmax(0.0, remaining / (double)decay));
    }
    case CLORA_SCHEDULE_COSINE:
        return (float)(base * fmax(0.0, 0.5 * (1.0 + cos(3.14159265358979323846 * progress))));
    case CLORA_SCHEDULE_CONSTANT:
        break;
    }
    return (float)base;
}

/* ---- the trainer ------------------------------------------------------------------------------ */

struct clora_trainer {
    clora_model *model;
    clora_train_config config;
    clora_optimizer *optimizer;
    clora_buffer *d_output;
    size_t steps;
    float last_lr;
};

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
    clora_trainer *t = calloc(1, sizeof *t);
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
    free(t);
}

clora_status clora_trainer_step(clora_trainer *t, const clora_buffer *input,
                                const clora_buffer *target, float *loss)
{
    if (!t || !input || !target)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_trainer_step: NULL argument");
    clora_model *model = t->model;
    const int was_training = model->training;
    model->training = 1;
    const clora_buffer *output = NULL;
    clora_status status = clora_model_zero_grad(model);
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
    if (status == CLORA_OK)
        status = clora_model_backward(model, t->d_output);
    if (status == CLORA_OK && t->config.max_grad_norm > 0.0f)
        status = clora_clip_grad_norm(model, t->config.max_grad_norm, NULL);
    const clora_schedule schedule = {t->config.schedule, t->config.optimizer.lr,
                                     t->config.warmup_steps, t->config.total_steps};
    const float lr = clora_schedule_lr(&schedule, t->steps);
    if (status == CLORA_OK)
        status = clora_optimizer_step(t->optimizer, lr);
    model->training = was_training;
    if (status != CLORA_OK)
        return status;
    t->last_lr = lr;
    t->steps++;
    if (loss)
        *loss = value;
    return CLORA_OK;
}

size_t clora_trainer_step_count(const clora_trainer *t)
{
    return t ? t->steps : 0;
}

float clora_trainer_last_lr(const clora_trainer *t)
{
    return t ? t->last_lr : 0.0f;
}
