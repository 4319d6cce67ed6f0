/* optim.c — launchers of cl/optim.cl: one AdamW or SGD update over a whole
 * parameter arena and its gradient arena (n elements each), and clipping
 * a gradient arena to a global L2 norm. */
#include "ops/ops.h"

clora_status clora__adamw_update(const clora__adamw_args *args, clora_buffer *params,
                                 clora_buffer *grads, clora_buffer *m, clora_buffer *v, float lr)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, params->device, CLORA__KERNEL_ADAMW_STEP);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, params->mem);
    clora__arg_mem(&a, grads->mem);
    clora__arg_mem(&a, m->mem);
    clora__arg_mem(&a, v->mem);
    clora__arg_uint(&a, params->numel);
    clora__arg_float(&a, lr);
    clora__arg_float(&a, args->beta1);
    clora__arg_float(&a, args->beta2);
    clora__arg_float(&a, args->eps);
    clora__arg_float(&a, args->weight_decay);
    clora__arg_float(&a, args->bias_correction1);
    clora__arg_float(&a, args->sqrt_bias_correction2);
    const size_t global[1] = {params->numel}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__sgd_update(const clora__sgd_args *args, clora_buffer *params,
                               clora_buffer *grads, clora_buffer *momentum, float lr)
{
    clora__args a;
    clora_status status = clora__args_begin(&a, params->device, CLORA__KERNEL_SGD_STEP);
    if (status != CLORA_OK)
        return status;
    clora__arg_mem(&a, params->mem);
    clora__arg_mem(&a, grads->mem);
    clora__arg_mem(&a, momentum ? momentum->mem : grads->mem); /* unused without momentum */
    clora__arg_uint(&a, params->numel);
    clora__arg_float(&a, lr);
    clora__arg_float(&a, args->momentum);
    clora__arg_float(&a, args->dampening);
    clora__arg_float(&a, args->weight_decay);
    clora__arg_uint(&a, args->nesterov != 0);
    clora__arg_uint(&a, args->first_step != 0);
    const size_t global[1] = {params->numel}, local[1] = {64};
    return clora__args_launch(&a, 1, global, local);
}

clora_status clora__clip_by_norm(clora_buffer *grads, float max_norm, float *norm)
{
    clora_device *dev = grads->device;
    clora_buffer *state = NULL; /* {sum of squares, norm, coefficient} */
    clora_status status = clora__buffer_temporary(&state, dev, 3);
    if (status != CLORA_OK)
        return status;
    status = clora__sum(dev, state->mem, 0, grads, 1, 1.0f);
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
        status = clora__scale_by(grads, state, 2);
    if (status == CLORA_OK && norm)
        status = clora_buffer_download(state, 1, norm, 1);
    clora_buffer_destroy(state);
    return status;
}
