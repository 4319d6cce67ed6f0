/* clora/train.h — optimizers, gradient clipping, learning-rate schedules
 * and a training loop, over a model's trainable parameters only; with the
 * losses of clora/loss.h.
 *
 * Optimizer state lives in one allocation the size of the trainable
 * parameters; frozen parameters get none. Updates follow PyTorch's
 * arithmetic (torch.optim.AdamW and SGD), so the same data and settings give
 * the same parameters within float32 rounding.
 */
#ifndef CLORA_TRAIN_H
#define CLORA_TRAIN_H

#include <stddef.h>

#include "clora/buffer.h"
#include "clora/loss.h"
#include "clora/model.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- optimizers ----------------------------------------------------------- */

typedef struct clora_optimizer clora_optimizer;

typedef enum clora_optimizer_kind {
    CLORA_OPTIMIZER_ADAMW = 0,
    CLORA_OPTIMIZER_SGD = 1
} clora_optimizer_kind;

typedef struct clora_optimizer_config {
    clora_optimizer_kind kind;
    float lr;
    float weight_decay; /* AdamW: decoupled; SGD: added to the gradient */
    float beta1, beta2, eps;          /* AdamW */
    float momentum, dampening;        /* SGD */
    int nesterov;                     /* SGD */
} clora_optimizer_config;

/* PyTorch's defaults: AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight
 * decay 0.01; SGD lr 1e-2 with momentum 0.9. */
clora_optimizer_config clora_optimizer_config_default(clora_optimizer_kind kind);

/* State for the model's current trainable parameters (zeros). If the set
 * of trainable parameters changes later, step() fails with CLORA_ERR_STATE:
 * create a new optimizer. */
clora_status clora_optimizer_create(clora_optimizer **out, clora_model *model,
                                    const clora_optimizer_config *config);
void clora_optimizer_destroy(clora_optimizer *optimizer);

/* One update of every trainable parameter from its gradient, at learning
 * rate `lr` (the schedule's value for this step). */
clora_status clora_optimizer_step(clora_optimizer *optimizer, float lr);
size_t clora_optimizer_steps(const clora_optimizer *optimizer);

/* Scales the gradients so their global L2 norm is at most max_norm
 * (torch.nn.utils.clip_grad_norm_). *norm, if not NULL, receives the norm
 * before clipping (waits for the device). */
clora_status clora_clip_grad_norm(clora_model *model, float max_norm, float *norm);

/* ---- schedules --------------------------------------------------------------- */

typedef enum clora_schedule_kind {
    CLORA_SCHEDULE_CONSTANT = 0,
    CLORA_SCHEDULE_LINEAR,  /* linear warm-up, then linear decay to 0 */
    CLORA_SCHEDULE_COSINE   /* linear warm-up, then half a cosine to 0 */
} clora_schedule_kind;

typedef struct clora_schedule {
    clora_schedule_kind kind;
    float base_lr;
    size_t warmup_steps;
    size_t total_steps;
} clora_schedule;

/* The learning rate of step `step` (0-based), as Hugging Face's
 * get_{linear,cosine}_schedule_with_warmup give it: step / warmup during
 * warm-up, then the decay over the remaining steps. */
float clora_schedule_lr(const clora_schedule *schedule, size_t step);

/* ---- the training loop ----------------------------------------------------- */

typedef struct clora_trainer clora_trainer;

typedef enum clora_loss_kind {
    CLORA_LOSS_CROSS_ENTROPY = 0, /* targets: int32 labels (N) */
    CLORA_LOSS_MSE = 1            /* targets: float32, the output's shape */
} clora_loss_kind;

typedef struct clora_train_config {
    clora_optimizer_config optimizer; /* optimizer.lr is the schedule's base */
    clora_schedule_kind schedule;
    size_t warmup_steps;
    size_t total_steps;     /* for the schedule's decay */
    float max_grad_norm;    /* 0: no clipping */
    clora_loss_kind loss;
    int ignore_index;       /* cross-entropy */
} clora_train_config;

/* AdamW defaults, constant schedule, no clipping, cross-entropy, -100. */
clora_train_config clora_train_config_default(void);

clora_status clora_trainer_create(clora_trainer **out, clora_model *model,
                                  const clora_train_config *config);
void clora_trainer_destroy(clora_trainer *trainer);

/* One step: zero the gradients, forward in training mode, loss, backward,
 * clip, update. *loss (may be NULL) receives the batch loss. */
clora_status clora_trainer_step(clora_trainer *trainer, const clora_buffer *input,
                                const clora_buffer *target, float *loss);

/* Gradient accumulation: a step over several micro-batches. Each
 * accumulate runs forward in training mode, the loss and backward of one
 * micro-batch, adding `weight` times its gradient to those gathered since
 * the last update (the first one zeroes them); update then clips, takes
 * the schedule's learning rate and the optimizer step. With weights that
 * are each micro-batch's share of the step's examples (or scored tokens),
 * the step is that of the whole batch. *loss (may be NULL): the
 * micro-batch's own mean loss, unweighted. step() is accumulate(weight 1)
 * then update().
 *
 * When any of the three fails (a device error, say), the step in progress
 * is given up: the parameters and the optimizer state are as before it,
 * and the next accumulate (or step) starts it again from its first
 * micro-batch, with the dropout masks it first drew, so a step retried
 * after a failure equals one that never failed. */
clora_status clora_trainer_accumulate(clora_trainer *trainer, const clora_buffer *input,
                                      const clora_buffer *target, float weight, float *loss);
clora_status clora_trainer_update(clora_trainer *trainer);

/* Dropout masks are keyed by the step and by each example's place in the
 * step's whole batch, so that a batch cut into micro-batches, or shared
 * among processes, draws the masks it draws whole (when every part holds
 * the same number of positions: cut every part's sequences to the whole
 * batch's longest). accumulate() places each micro-batch after the ones
 * before it in the step; accumulate_at() places it at first_example (a
 * process's share of a batch split across processes, say). */
clora_status clora_trainer_accumulate_at(clora_trainer *trainer, const clora_buffer *input,
                                         const clora_buffer *target, float weight,
                                         size_t first_example, float *loss);

/* Data parallelism: update() calls the hook first, with the gradients of
 * every trainable parameter in one contiguous float32 buffer (the
 * gradient arena, in clora_model_param() order of the trainable ones),
 * before it clips and steps. A hook that sums the buffer over processes
 * (MPI_Allreduce, say) makes each process take the step of the whole
 * batch: give each of its micro-batches the weight of its share of the
 * whole batch (examples, or scored tokens, over all processes). A hook
 * that fails gives up the step, as any failure of update() does. NULL
 * removes it. */
typedef clora_status (*clora_gradient_hook)(clora_buffer *gradients, void *user);
void clora_trainer_set_gradient_hook(clora_trainer *trainer, clora_gradient_hook hook,
                                     void *user);

/* A run's state, for continuing it bit for bit: every trainable value,
 * the optimizer's moments, the step count, the last learning rate and the
 * model's count of training forwards (dropout masks are keyed by it), in
 * one safetensors file. Load into a trainer over the same trainable
 * parameters (same model, LoRA targets, ranks and heads; checked by a hash
 * of their names and sizes) with the same optimizer kind; nothing changes
 * when the file is refused. */
clora_status clora_trainer_save_state(clora_trainer *trainer, const char *path);
clora_status clora_trainer_load_state(clora_trainer *trainer, const char *path);

size_t clora_trainer_step_count(const clora_trainer *trainer);
/* The learning rate the last step used. */
float clora_trainer_last_lr(const clora_trainer *trainer);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_TRAIN_H */
