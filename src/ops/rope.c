/* rope.c — rotary position embeddings (cl/rope.cl): the frequencies of a
 * head size, with the llama3 rescaling, and the in-place rotation of the
 * query and key heads by each token's position. */
#include <math.h>

#include "ops/ops.h"

void clora__rope_frequencies(float *inv_freq, size_t D, const clora__rope_config *config)
{
    const double pi = 3.14159265358979323846;
    for (size_t i = 0; i < D / 2; ++i) {
        /* PyTorch's float32: 1 / theta^(2i / D) */
        const float exponent = (float)(2 * i) / (float)D;
        float f = (float)(1.0 / pow((double)config->theta, (double)exponent));
        if (config->scaling == CLORA__ROPE_LLAMA3) {
            /* Long wavelengths slow down by `factor`, short ones stay, the
             * band between is interpolated. */
            const double old_len = (double)config->original_max_positions;
            const double low_wavelen = old_len / config->low_freq_factor;
            const double high_wavelen = old_len / config->high_freq_factor;
            const double wavelen = 2.0 * pi / (double)f;
            double scaled = wavelen > low_wavelen ? (double)f / config->factor : (double)f;
            if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
                const double smooth = (old_len / wavelen - config->low_freq_factor) /
                                      (config->high_freq_factor - config->low_freq_factor);
                scaled = (1.0 - smooth) * scaled / config->factor + smooth * scaled;
            }
            f = (float)scaled;
        }
        if (config->freq_factors)
            f /= config->freq_factors[i];
        inv_freq[i] = f;
    }
}

clora_status clora__rope(clora_buffer *x, const clora_buffer *positions,
                         const clora_buffer *inv_freq, int inverse)
{
    const size_t B = x->shape[0], H = x->shape[1], T = x->shape[2], D = x->shape[3];
    clora__args a;
    clora_status status = clora__args_begin(&a, x->device, CLORA__KERNEL_ROPE);
    if (status != CLORA_OK)
        return status;
    clora__arg_buffer(&a, x);
    clora__arg_buffer(&a, positions);
    clora__arg_buffer(&a, inv_freq);
    clora__arg_uint(&a, B);
    clora__arg_uint(&a, T);
    clora__arg_uint(&a, H);
    clora__arg_uint(&a, D);
    clora__arg_uint(&a, inverse != 0);
    const size_t half = D / 2;
    const size_t global[3] = {half, T, B * H}, local[3] = {half < 32 ? half : 32, 1, 1};
    return clora__args_launch(&a, 3, global, local);
}
