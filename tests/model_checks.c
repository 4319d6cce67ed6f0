/* model_checks.c — see model_checks.h. Reaches into nn/nn.h to pin the
 * forward counter. */
#include "model_checks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

clora_buffer *test_golden_ints(const golden_tensor *t)
{
    int32_t *host = calloc(t->numel, sizeof *host);
    assert_non_null(host);
    for (size_t i = 0; i < t->numel; ++i)
        host[i] = (int32_t)t->data[i];
    clora_buffer *buf = NULL;
    CHECK_OK(clora_buffer_create_typed(&buf, test_device, CLORA_DTYPE_I32, t->ndim, t->shape));
    CHECK_OK(clora_buffer_upload_i32(buf, 0, host, t->numel));
    free(host);
    return buf;
}

void test_expect_golden(const char *what, const clora_buffer *y, const golden_tensor *want,
                        double atol, double rtol)
{
    assert_int_equal(y->numel, want->numel);
    float *got = test_download(y);
    test_assert_close(what, got, want->data, want->numel, atol, rtol);
    free(got);
}

size_t test_expect_golden_grads(clora_model *model, const golden_case *c, double atol,
                                double rtol)
{
    size_t compared = 0;
    for (size_t i = 0; i < c->n_tensors; ++i) {
        const golden_tensor *t = &c->tensors[i];
        if (strncmp(t->name, "d:", 2) != 0)
            continue;
        clora_param_info info;
        CHECK_OK(clora_model_find_param(model, t->name + 2, &info));
        assert_non_null(info.grad);
        test_expect_golden(t->name, info.grad, t, atol, rtol);
        ++compared;
    }
    return compared;
}

void test_randomise_lora_b(clora_model *model, uint64_t *rng)
{
    const size_t count = clora_model_param_count(model);
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        if (strstr(info.name, "lora_B")) {
            float *v = test_alloc(info.value->numel);
            test_fill_uniform(v, info.value->numel, rng, -0.5f, 0.5f);
            CHECK_OK(clora_buffer_upload(info.value, 0, v, info.value->numel));
            free(v);
        }
    }
}

/* L = sum(G * y) in double, the forward counter pinned so that training
 * mode draws the same masks every time. */
static double fd_loss(clora_model *model, const clora_buffer *ids, const float *g,
                      const clora_buffer **out)
{
    model->forward_count = 41;
    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    float *host = test_download(y);
    double total = 0.0;
    for (size_t i = 0; i < y->numel; ++i)
        total += (double)g[i] * (double)host[i];
    free(host);
    if (out)
        *out = y;
    return total;
}

size_t test_finite_differences(clora_model *model, const clora_buffer *ids,
                               const clora_buffer *mask, const char *const *targets,
                               size_t target_count, size_t *replaced)
{
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 2;
    lora.alpha = 4.0f;
    lora.dropout = 0.25f;
    lora.target_modules = targets;
    lora.target_module_count = target_count;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, replaced));
    CHECK_OK(clora_model_set_trainable(model, "", 1));
    uint64_t rng = 99;
    size_t count = clora_model_param_count(model);
    test_randomise_lora_b(model, &rng);
    CHECK_OK(clora_model_set_attention_mask(model, mask));
    CHECK_OK(clora_model_set_training(model, 1));

    const clora_buffer *y = NULL;
    CHECK_OK(clora_model_forward(model, ids, &y));
    float *g = test_alloc(y->numel);
    test_fill_uniform(g, y->numel, &rng, -1.0f, 1.0f);
    fd_loss(model, ids, g, &y);
    clora_buffer *dy = test_buffer(y->ndim, y->shape, g);
    CHECK_OK(clora_model_zero_grad(model));
    CHECK_OK(clora_model_backward(model, dy));

    const float eps = 1e-2f;
    size_t checked = 0;
    for (size_t i = 0; i < count; ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        assert_non_null(info.grad);
        float *value = test_download(info.value), *grad = test_download(info.grad);
        for (int probe = 0; probe < 3; ++probe) {
            float u;
            test_fill_uniform(&u, 1, &rng, 0.0f, (float)info.value->numel);
            size_t k = (size_t)u < info.value->numel ? (size_t)u : info.value->numel - 1;
            float v = value[k] + eps;
            CHECK_OK(clora_buffer_upload(info.value, k, &v, 1));
            double up = fd_loss(model, ids, g, NULL);
            v = value[k] - eps;
            CHECK_OK(clora_buffer_upload(info.value, k, &v, 1));
            double down = fd_loss(model, ids, g, NULL);
            CHECK_OK(clora_buffer_upload(info.value, k, &value[k], 1));
            double numeric = (up - down) / (2.0 * (double)eps);
            if (fabs(numeric - (double)grad[k]) > 2e-3 + 2e-2 * fabs(numeric))
                fail_msg("%s[%zu]: %.6g by backward, %.6g by finite differences", info.name, k,
                         (double)grad[k], numeric);
            ++checked;
        }
        free(value);
        free(grad);
    }
    free(g);
    clora_buffer_destroy(dy);
    return checked;
}
