/* train.h — the train layer's private header: optimizers, schedules and
 * the trainer (clora/train.h) over the model's arenas (nn), with the
 * update kernels of ops. Nothing below train includes it. */
#ifndef CLORA_TRAIN_INTERNAL_H
#define CLORA_TRAIN_INTERNAL_H

#include "clora/train.h"
#include "nn/nn.h"

#endif /* CLORA_TRAIN_INTERNAL_H */
