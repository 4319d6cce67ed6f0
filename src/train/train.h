/* train.h — the train layer's private header: optimizers, schedules and
 * the trainer (clora/train.h) over the model's arenas (nn), with the
 * update kernels of ops. Nothing below train includes it. */
#ifndef CLORA_TRAIN_INTERNAL_H
#define CLORA_TRAIN_INTERNAL_H

#include "clora/train.h"
#include "nn/nn.h"

/* The optimizer's moment buffers (NULL where it keeps none: SGD without
 * momentum has no m, and only AdamW has v) and its kind. */
void clora__optimizer_state(clora_optimizer *optimizer, clora_buffer **m, clora_buffer **v,
                            clora_optimizer_kind *kind);
/* Sets the step count the next update continues from (bias corrections,
 * SGD's first step). */
void clora__optimizer_set_steps(clora_optimizer *optimizer, size_t steps);

/* The trainer's optimizer and model; sets its step count and last learning
 * rate (the state of a saved run). */
clora_optimizer *clora__trainer_optimizer(clora_trainer *trainer);
clora_model *clora__trainer_model(clora_trainer *trainer);
void clora__trainer_restore(clora_trainer *trainer, size_t steps, float last_lr);

#endif /* CLORA_TRAIN_INTERNAL_H */
