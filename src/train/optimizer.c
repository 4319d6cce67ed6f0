/* optimizer.c — AdamW and SGD over a model's trainable arena (one update
 * of the whole allocation per step; ops/optim.c's kernels), and clipping
 * the gradient arena to a global norm. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "train/train.h"

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
    clora_optimizer *opt = clora__calloc(1, sizeof *opt);
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

void clora__optimizer_state(clora_optimizer *opt, clora_buffer **m, clora_buffer **v,
                            clora_optimizer_kind *kind)
{
    *m = opt->m;
    *v = opt->v;
    *kind = opt->config.kind;
}

void clora__optimizer_set_steps(clora_optimizer *opt, size_t steps)
{
    opt->steps = steps;
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
    const clora_optimizer_config *c = &opt->config;
    if (c->kind == CLORA_OPTIMIZER_ADAMW) {
        const size_t t = opt->steps + 1;
        const double bc1 = 1.0 - pow((double)c->beta1, (double)t);
        const double bc2 = 1.0 - pow((double)c->beta2, (double)t);
        const clora__adamw_args args = {c->beta1,        c->beta2,   c->eps,
                                        c->weight_decay, (float)bc1, (float)sqrt(bc2)};
        status = clora__adamw_update(&args, model->trainable_arena, model->grad_arena, opt->m,
                                     opt->v, lr);
    } else {
        const clora__sgd_args args = {c->momentum, c->dampening, c->weight_decay,
                                      c->nesterov != 0, opt->steps == 0};
        status = clora__sgd_update(&args, model->trainable_arena, model->grad_arena, opt->m, lr);
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
    return clora__clip_by_norm(model->grad_arena, max_norm, norm);
}
