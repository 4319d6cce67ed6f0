/* schedule.c — learning-rate schedules: constant, or linear warm-up then a
 * linear or half-cosine decay, as Hugging Face's schedulers give them. */
#include <math.h>

#include "train/train.h"

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
