/* An application built against an installed clora: checks that the header
 * and library versions agree and that a LoRA forward runs. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <clora/clora.h>

#define CHECK(call)                                                                     \
    do {                                                                                \
        clora_status s_ = (call);                                                       \
        if (s_ != CLORA_OK) {                                                           \
            fprintf(stderr, "%s: %s\n  %s\n", #call, clora_status_name(s_),             \
                    clora_last_error());                                                \
            return 1;                                                                   \
        }                                                                               \
    } while (0)

int main(void)
{
    if (strcmp(clora_version(), CLORA_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", CLORA_VERSION_STRING, clora_version());
        return 1;
    }
    clora_device *dev = NULL;
    CHECK(clora_device_open(&dev, NULL));
    clora_buffer *x, *w, *a, *b, *y;
    CHECK(clora_buffer_create_2d(&x, dev, 2, 3));
    CHECK(clora_buffer_create_2d(&w, dev, 4, 3));
    CHECK(clora_buffer_create_2d(&a, dev, 1, 3));
    CHECK(clora_buffer_create_2d(&b, dev, 4, 1));
    CHECK(clora_buffer_create_2d(&y, dev, 2, 4));
    CHECK(clora_buffer_fill(x, 1.0f));
    CHECK(clora_buffer_fill(w, 0.5f));
    CHECK(clora_buffer_fill(a, 1.0f));
    CHECK(clora_buffer_fill(b, 2.0f));
    clora_lora_spec spec = {1.0f, CLORA_SCALE_ALPHA, 0.0f, 0, CLORA_WEIGHT_OUT_IN, 0};
    CHECK(clora_lora_forward(y, NULL, x, w, NULL, a, b, &spec));
    float out[8];
    CHECK(clora_buffer_download(y, 0, out, 8));
    /* 3 * 0.5 + 1 * (3 * 1) * 2 = 7.5 */
    for (int i = 0; i < 8; ++i)
        if (fabsf(out[i] - 7.5f) > 1e-5f) {
            fprintf(stderr, "y[%d] = %g, expected 7.5\n", i, (double)out[i]);
            return 1;
        }
    clora_buffer *all[] = {x, w, a, b, y};
    for (int i = 0; i < 5; ++i)
        clora_buffer_destroy(all[i]);
    clora_device_destroy(dev);
    printf("consumer ok: clora %s\n", clora_version());
    return 0;
}
