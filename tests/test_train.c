/* test_train.c — losses, AdamW and SGD against plain-C references of
 * PyTorch's formulas, gradient clipping, schedules, and the trainer:
 * it learns, never touches a frozen byte, and keeps no state for frozen
 * parameters. */
#include "support.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- losses ------------------------------------------------------------------------ */

static double ref_cross_entropy(float *d, const float *logits, const int32_t *labels, size_t rows,
                                size_t classes, int ignore)
{
    size_t valid = 0;
    for (size_t i = 0; i < rows; ++i)
        valid += labels[i] != ignore;
    double total = 0;
    for (size_t i = 0; i < rows; ++i) {
        const float *l = logits + i * classes;
        if (labels[i] == ignore) {
            for (size_t c = 0; c < classes; ++c)
                d[i * classes + c] = 0;
            continue;
        }
        double m = l[0], s = 0;
        for (size_t c = 1; c < classes; ++c)
            m = fmax(m, l[c]);
        for (size_t c = 0; c < classes; ++c)
            s += exp(l[c] - m);
        total += m + log(s) - l[labels[i]];
        for (size_t c = 0; c < classes; ++c)
            d[i * classes + c] =
                (float)((exp(l[c] - m) / s - (c == (size_t)labels[i] ? 1.0 : 0.0)) / (double)valid);
    }
    return valid ? total / (double)valid : 0.0;
}

static clora_buffer *labels_buffer(const int32_t *labels, size_t n)
{
    clora_buffer *b = NULL;
    CHECK_OK(clora_buffer_create_typed(&b, test_device, CLORA_DTYPE_I32, 1, &n));
    CHECK_OK(clora_buffer_upload_i32(b, 0, labels, n));
    return b;
}

static void cross_entropy_matches_reference(void **state)
{
    (void)state;
    /* 19 classes: two eight-wide steps of the kernel and a tail of three. */
    enum { N = 300, C = 19 };
    float *logits = test_alloc(N * C), *want = test_alloc(N * C);
    int32_t labels[N];
    uint64_t rng = 41;
    test_fill_uniform(logits, N * C, &rng, -6, 6);
    for (int i = 0; i < N; ++i)
        labels[i] = i % 11 == 0 ? -100 : (i * 5) % C;
    clora_buffer *bl = test_buffer_2d(N, C, logits), *bd = test_buffer_2d(N, C, NULL);
    clora_buffer *lab = labels_buffer(labels, N);
    float loss = 0;
    CHECK_OK(clora_cross_entropy(&loss, bd, bl, lab, -100));
    double want_loss = ref_cross_entropy(want, logits, labels, N, C, -100);
    assert_true(fabs(loss - want_loss) < 1e-5 * fabs(want_loss) + 1e-6);
    float *got = test_download(bd);
    test_assert_close("d_logits", got, want, N * C, 1e-7, 1e-4);
    /* without a gradient buffer and without reading the loss */
    CHECK_OK(clora_cross_entropy(NULL, NULL, bl, lab, -100));

    /* bad labels and shapes */
    labels[3] = C;
    CHECK_OK(clora_buffer_upload_i32(lab, 0, labels, N));
    CHECK_STATUS(clora_cross_entropy(&loss, bd, bl, lab, -100), CLORA_ERR_INVALID_ARGUMENT);
    test_expect_message("1 labels lie outside [0, 19)");
    clora_buffer *short_labels = labels_buffer(labels, N - 1);
    CHECK_STATUS(clora_cross_entropy(&loss, bd, bl, short_labels, -100), CLORA_ERR_SHAPE_MISMATCH);
    CHECK_STATUS(clora_cross_entropy(&loss, bd, bl, bl, -100), CLORA_ERR_DTYPE_MISMATCH);
    /* every row ignored: loss 0, gradient 0 */
    for (int i = 0; i < N; ++i)
        labels[i] = -1;
    CHECK_OK(clora_buffer_upload_i32(lab, 0, labels, N));
    CHECK_OK(clora_cross_entropy(&loss, bd, bl, lab, -1));
    assert_true(loss == 0.0f);
    free(got);
    got = test_download(bd);
    for (size_t i = 0; i < N * C; ++i)
        assert_true(got[i] == 0.0f);
    free(got);
    free(logits);
    free(want);
    clora_buffer_destroy(bl);
    clora_buffer_destroy(bd);
    clora_buffer_destroy(lab);
    clora_buffer_destroy(short_labels);
}

static void mse_matches_reference(void **state)
{
    (void)state;
    enum { N = 5000 };
    float *p = test_alloc(N), *t = test_alloc(N), *want = test_alloc(N);
    uint64_t rng = 43;
    test_fill_uniform(p, N, &rng, -2, 2);
    test_fill_uniform(t, N, &rng, -2, 2);
    double total = 0;
    for (int i = 0; i < N; ++i) {
        total += (double)(p[i] - t[i]) * (p[i] - t[i]);
        want[i] = 2.0f * (p[i] - t[i]) / N;
    }
    clora_buffer *bp = test_buffer_2d(50, 100, p), *bt = test_buffer_2d(50, 100, t);
    clora_buffer *bd = test_buffer_2d(50, 100, NULL);
    float loss;
    CHECK_OK(clora_mse(&loss, bd, bp, bt));
    assert_true(fabs(loss - total / N) < 1e-5 * total / N);
    float *got = test_download(bd);
    test_assert_close("d_pred", got, want, N, 1e-8, 1e-5);
    clora_buffer *wrong = test_buffer_1d(7, NULL);
    CHECK_STATUS(clora_mse(&loss, NULL, bp, wrong), CLORA_ERR_SHAPE_MISMATCH);
    free(p);
    free(t);
    free(want);
    free(got);
    clora_buffer_destroy(bp);
    clora_buffer_destroy(bt);
    clora_buffer_destroy(bd);
    clora_buffer_destroy(wrong);
}

/* ---- optimizers -------------------------------------------------------------------- */

/* A model with two trainable tensors (a Linear's weight and bias) whose
 * gradients the test sets directly. */
static clora_model *param_model(void)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 50));
    CHECK_OK(clora_node_add_linear(clora_model_root(model), "fc", 9, 7, 1, NULL));
    return model;
}

static void set_grads(clora_model *model, uint64_t seed, float *w_grad, float *b_grad)
{
    clora_param_info w, b;
    CHECK_OK(clora_model_find_param(model, "fc.weight", &w));
    CHECK_OK(clora_model_find_param(model, "fc.bias", &b));
    test_fill_uniform(w_grad, 63, &seed, -1, 1);
    test_fill_uniform(b_grad, 7, &seed, -1, 1);
    CHECK_OK(clora_buffer_upload(w.grad, 0, w_grad, 63));
    CHECK_OK(clora_buffer_upload(b.grad, 0, b_grad, 7));
}

static void ref_adamw(float *p, const float *g, double *m, double *v, size_t n, int t, double lr,
                      double b1, double b2, double eps, double wd)
{
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    for (size_t i = 0; i < n; ++i) {
        double pi = p[i] * (1 - lr * wd);
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
        pi -= (lr / bc1) * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
        p[i] = (float)pi;
    }
}

static void adamw_matches_pytorch_formula(void **state)
{
    (void)state;
    clora_model *model = param_model();
    clora_optimizer_config cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
    cfg.weight_decay = 0.1f;
    clora_optimizer *opt = NULL;
    CHECK_OK(clora_optimizer_create(&opt, model, &cfg));
    clora_param_info w, b;
    CHECK_OK(clora_model_find_param(model, "fc.weight", &w));
    CHECK_OK(clora_model_find_param(model, "fc.bias", &b));
    float *pw = test_download(w.value), *pb = test_download(b.value);
    double mw[63] = {0}, vw[63] = {0}, mb[7] = {0}, vb[7] = {0};
    for (int t = 1; t <= 4; ++t) {
        float gw[63], gb[7];
        set_grads(model, (uint64_t)t, gw, gb);
        const float lr = 0.01f * (float)t;
        CHECK_OK(clora_optimizer_step(opt, lr));
        ref_adamw(pw, gw, mw, vw, 63, t, lr, 0.9, 0.999, 1e-8, 0.1);
        ref_adamw(pb, gb, mb, vb, 7, t, lr, 0.9, 0.999, 1e-8, 0.1);
    }
    assert_int_equal(clora_optimizer_steps(opt), 4);
    float *gotw = test_download(w.value), *gotb = test_download(b.value);
    test_assert_close("AdamW weight", gotw, pw, 63, 1e-6, 1e-5);
    test_assert_close("AdamW bias", gotb, pb, 7, 1e-6, 1e-5);
    clora_memory_report report;
    CHECK_OK(clora_device_memory(test_device, &report));
    assert_true(report.bytes[CLORA_MEMORY_OPTIMIZER] >= 2 * 70 * sizeof(float));
    free(pw);
    free(pb);
    free(gotw);
    free(gotb);
    clora_optimizer_destroy(opt);
    clora_model_destroy(model);
}

static void sgd_momentum_nesterov_weight_decay(void **state)
{
    (void)state;
    const int nesterov[2] = {0, 1};
    for (int k = 0; k < 2; ++k) {
        clora_model *model = param_model();
        clora_optimizer_config cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
        cfg.weight_decay = 0.05f;
        cfg.nesterov = nesterov[k];
        clora_optimizer *opt = NULL;
        CHECK_OK(clora_optimizer_create(&opt, model, &cfg));
        clora_param_info w;
        CHECK_OK(clora_model_find_param(model, "fc.weight", &w));
        float *p = test_download(w.value);
        double buf[63] = {0};
        for (int t = 0; t < 3; ++t) {
            float gw[63], gb[7];
            set_grads(model, 100 + (uint64_t)t, gw, gb);
            CHECK_OK(clora_optimizer_step(opt, 0.1f));
            for (int i = 0; i < 63; ++i) {
                double g = gw[i] + 0.05 * p[i];
                buf[i] = t == 0 ? g : 0.9 * buf[i] + g;
                double step = nesterov[k] ? g + 0.9 * buf[i] : buf[i];
                p[i] = (float)(p[i] - 0.1 * step);
            }
        }
        float *got = test_download(w.value);
        test_assert_close(nesterov[k] ? "SGD Nesterov" : "SGD momentum", got, p, 63, 1e-6, 1e-5);
        free(p);
        free(got);
        clora_optimizer_destroy(opt);
        clora_model_destroy(model);
    }
}

static void bad_optimizer_settings(void **state)
{
    (void)state;
    clora_model *model = param_model();
    clora_optimizer *opt = NULL;
    clora_optimizer_config cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
    cfg.beta1 = 1.0f;
    CHECK_STATUS(clora_optimizer_create(&opt, model, &cfg), CLORA_ERR_INVALID_ARGUMENT);
    cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
    cfg.nesterov = 1;
    cfg.dampening = 0.5f;
    CHECK_STATUS(clora_optimizer_create(&opt, model, &cfg), CLORA_ERR_INVALID_ARGUMENT);
    cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
    cfg.lr = NAN;
    CHECK_STATUS(clora_optimizer_create(&opt, model, &cfg), CLORA_ERR_INVALID_ARGUMENT);
    /* the trainable set changes under an optimizer */
    cfg = clora_optimizer_config_default(CLORA_OPTIMIZER_ADAMW);
    CHECK_OK(clora_optimizer_create(&opt, model, &cfg));
    CHECK_OK(clora_model_set_trainable(model, "fc.bias", 0));
    CHECK_STATUS(clora_optimizer_step(opt, 0.1f), CLORA_ERR_STATE);
    test_expect_message("create a new optimizer");
    CHECK_STATUS(clora_optimizer_step(NULL, 0.1f), CLORA_ERR_NULL_ARGUMENT);
    clora_optimizer_destroy(opt);
    clora_model_destroy(model);
}

static void clipping_scales_to_the_max_norm(void **state)
{
    (void)state;
    clora_model *model = param_model();
    float gw[63], gb[7];
    set_grads(model, 7, gw, gb);
    double sum = 0;
    for (int i = 0; i < 63; ++i)
        sum += (double)gw[i] * gw[i];
    for (int i = 0; i < 7; ++i)
        sum += (double)gb[i] * gb[i];
    const double norm = sqrt(sum);
    float got_norm = 0;
    CHECK_OK(clora_clip_grad_norm(model, 10.0f, &got_norm)); /* above the norm: unchanged */
    assert_true(fabs(got_norm - norm) < 1e-5 * norm);
    clora_param_info w;
    CHECK_OK(clora_model_find_param(model, "fc.weight", &w));
    float *same = test_download(w.grad);
    test_assert_identical("unclipped gradient", same, gw, 63);
    CHECK_OK(clora_clip_grad_norm(model, 0.5f, &got_norm));
    float *clipped = test_download(w.grad), want[63];
    for (int i = 0; i < 63; ++i)
        want[i] = (float)(gw[i] * 0.5 / (norm + 1e-6));
    test_assert_close("clipped gradient", clipped, want, 63, 1e-7, 1e-5);
    CHECK_OK(clora_clip_grad_norm(model, 0.5f, &got_norm));
    assert_true(fabs(got_norm - 0.5) < 1e-5);
    CHECK_STATUS(clora_clip_grad_norm(model, 0.0f, NULL), CLORA_ERR_INVALID_ARGUMENT);
    free(same);
    free(clipped);
    clora_model_destroy(model);
}

static void schedules_with_warmup(void **state)
{
    (void)state;
    clora_schedule s = {CLORA_SCHEDULE_COSINE, 1.0f, 10, 110};
    assert_true(clora_schedule_lr(&s, 0) == 0.0f);
    assert_true(fabsf(clora_schedule_lr(&s, 5) - 0.5f) < 1e-7f);
    assert_true(fabsf(clora_schedule_lr(&s, 10) - 1.0f) < 1e-7f);
    assert_true(fabsf(clora_schedule_lr(&s, 60) - 0.5f) < 1e-6f);
    assert_true(fabsf(clora_schedule_lr(&s, 110)) < 1e-7f);
    s.kind = CLORA_SCHEDULE_LINEAR;
    assert_true(fabsf(clora_schedule_lr(&s, 60) - 0.5f) < 1e-6f);
    assert_true(clora_schedule_lr(&s, 200) == 0.0f);
    s.kind = CLORA_SCHEDULE_CONSTANT;
    assert_true(fabsf(clora_schedule_lr(&s, 3) - 0.3f) < 1e-6f);
    assert_true(clora_schedule_lr(&s, 500) == 1.0f);
    clora_schedule none = {CLORA_SCHEDULE_COSINE, 2.0f, 0, 4};
    assert_true(clora_schedule_lr(&none, 0) == 2.0f);
}

/* ---- the trainer ---------------------------------------------------------------------------- */

static uint64_t checksum(const float *v, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    const unsigned char *p = (const unsigned char *)v;
    for (size_t i = 0; i < n * sizeof *v; ++i)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

/* Sum of checksums of every frozen parameter. */
static uint64_t frozen_checksum(clora_model *model)
{
    uint64_t total = 0;
    for (size_t i = 0; i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        if (info.trainable)
            continue;
        float *v = test_download(info.value);
        total += checksum(v, clora_buffer_numel(info.value)) * (i + 1);
        free(v);
    }
    return total;
}

static void trainer_learns_and_leaves_frozen_bytes_alone(void **state)
{
    (void)state;
    /* y = class of the largest of 4 inputs */
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 60));
    clora_node *root = clora_model_root(model);
    CHECK_OK(clora_node_add_linear(root, "fc1", 4, 32, 1, NULL));
    CHECK_OK(clora_node_add_layer_norm(root, "norm", 32, 1e-5f, NULL));
    CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_dropout(root, "drop", 0.1f, NULL));
    CHECK_OK(clora_node_add_linear(root, "head", 32, 4, 1, NULL));
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 4;
    lora.alpha = 8;
    lora.dropout = 0.1f;
    CHECK_OK(clora_replace_linear_with_lora(root, &lora, NULL));
    const uint64_t frozen_before = frozen_checksum(model);
    clora_memory_report memory;
    CHECK_OK(clora_device_memory(test_device, &memory));
    const uint64_t optimizer_before = memory.bytes[CLORA_MEMORY_OPTIMIZER];

    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 0.05f;
    cfg.schedule = CLORA_SCHEDULE_COSINE;
    cfg.warmup_steps = 5;
    cfg.total_steps = 150;
    cfg.max_grad_norm = 1.0f;
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    CHECK_OK(clora_device_memory(test_device, &memory));
    clora_param_counts counts;
    CHECK_OK(clora_model_count_params(model, &counts));
    /* AdamW keeps two moments for trainable parameters only */
    assert_true(memory.bytes[CLORA_MEMORY_OPTIMIZER] - optimizer_before <=
                2 * (counts.trainable + 8 * 16) * sizeof(float));

    enum { B = 64 };
    float x[B * 4];
    int32_t y[B];
    clora_buffer *bx = test_buffer_2d(B, 4, NULL);
    clora_buffer *by = labels_buffer(y, B);
    uint64_t rng = 61;
    float first = 0, last = 0;
    for (size_t step = 0; step < 150; ++step) {
        test_fill_uniform(x, B * 4, &rng, -1, 1);
        for (int i = 0; i < B; ++i) {
            int best = 0;
            for (int c = 1; c < 4; ++c)
                if (x[i * 4 + c] > x[i * 4 + best])
                    best = c;
            y[i] = best;
        }
        CHECK_OK(clora_buffer_upload(bx, 0, x, B * 4));
        CHECK_OK(clora_buffer_upload_i32(by, 0, y, B));
        float loss;
        CHECK_OK(clora_trainer_step(trainer, bx, by, &loss));
        if (step == 0)
            first = loss;
        last = loss;
    }
    assert_int_equal(clora_trainer_step_count(trainer), 150);
    assert_true(last < 0.6f * first);
    assert_false(clora_model_training(model)); /* eval again after each step */
    assert_int_equal(frozen_checksum(model), frozen_before);
    clora_trainer_destroy(trainer);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_model_destroy(model);
}

static void trainer_with_mse_and_bad_targets(void **state)
{
    (void)state;
    clora_model *model = param_model();
    clora_train_config cfg = clora_train_config_default();
    cfg.loss = CLORA_LOSS_MSE;
    cfg.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    clora_buffer *x = test_buffer_2d(8, 9, NULL), *t = test_buffer_2d(8, 7, NULL);
    CHECK_OK(clora_buffer_fill(x, 0.5f));
    CHECK_OK(clora_buffer_fill(t, 1.0f));
    float first, loss;
    CHECK_OK(clora_trainer_step(trainer, x, t, &first));
    for (int i = 0; i < 20; ++i)
        CHECK_OK(clora_trainer_step(trainer, x, t, &loss));
    assert_true(loss < 0.1f * first);
    clora_buffer *wrong = test_buffer_2d(8, 3, NULL);
    CHECK_STATUS(clora_trainer_step(trainer, x, wrong, &loss), CLORA_ERR_SHAPE_MISMATCH);
    clora_train_config bad = cfg;
    bad.max_grad_norm = -1;
    clora_trainer *other = NULL;
    CHECK_STATUS(clora_trainer_create(&other, model, &bad), CLORA_ERR_INVALID_ARGUMENT);
    clora_trainer_destroy(trainer);
    clora_buffer_destroy(x);
    clora_buffer_destroy(t);
    clora_buffer_destroy(wrong);
    clora_model_destroy(model);
}

/* ---- micro-batches and saved runs --------------------------------------------------------- */

/* A small classifier with LoRA of rank r (dropout p) for the checks below. */
static clora_model *lora_model(size_t rank, float p)
{
    clora_model *model = NULL;
    CHECK_OK(clora_model_create(&model, test_device, 70));
    clora_node *root = clora_model_root(model);
    CHECK_OK(clora_node_add_linear(root, "fc1", 6, 16, 1, NULL));
    CHECK_OK(clora_node_add_activation(root, "act", CLORA_NODE_GELU, NULL));
    CHECK_OK(clora_node_add_linear(root, "head", 16, 3, 1, NULL));
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = rank;
    lora.alpha = 6;
    lora.dropout = p;
    CHECK_OK(clora_replace_linear_with_lora(root, &lora, NULL));
    return model;
}

/* Every trainable value, in parameter order (*n of them). */
static float *trainable_values(clora_model *model, size_t *n)
{
    clora_param_counts counts;
    CHECK_OK(clora_model_count_params(model, &counts));
    float *values = test_alloc(counts.trainable);
    *n = 0;
    for (size_t i = 0; i < clora_model_param_count(model); ++i) {
        clora_param_info info;
        CHECK_OK(clora_model_param(model, i, &info));
        if (!info.trainable)
            continue;
        float *v = test_download(info.value);
        memcpy(values + *n, v, clora_buffer_numel(info.value) * sizeof *v);
        *n += clora_buffer_numel(info.value);
        free(v);
    }
    return values;
}

/* The batch of step `step`: B rows of x (B, 6), labels (B). */
static void step_batch(size_t step, float *x, int32_t *y, size_t rows)
{
    uint64_t rng = 1000 + step;
    test_fill_uniform(x, rows * 6, &rng, -1, 1);
    for (size_t i = 0; i < rows; ++i)
        y[i] = x[i * 6] > x[i * 6 + 1] ? 0 : x[i * 6 + 2] > 0 ? 1 : 2;
}

/* Trainable values after `steps` AdamW steps of 8 rows, each in `parts`
 * micro-batches weighted 1 / parts. */
static float *train_in_parts(size_t steps, size_t parts, size_t *n)
{
    clora_model *model = lora_model(3, 0.0f);
    CHECK_OK(clora_model_set_trainable(model, "", 1)); /* the base as well: more to compare */
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 0.01f;
    cfg.max_grad_norm = 0.5f;
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    enum { B = 8 };
    const size_t rows = B / parts;
    float x[B * 6];
    int32_t y[B];
    clora_buffer *bx = test_buffer_2d(rows, 6, NULL), *by = labels_buffer(y, rows);
    for (size_t step = 0; step < steps; ++step) {
        step_batch(step, x, y, B);
        for (size_t k = 0; k < parts; ++k) {
            CHECK_OK(clora_buffer_upload(bx, 0, x + k * rows * 6, rows * 6));
            CHECK_OK(clora_buffer_upload_i32(by, 0, y + k * rows, rows));
            CHECK_OK(clora_trainer_accumulate(trainer, bx, by, 1.0f / (float)parts, NULL));
        }
        CHECK_OK(clora_trainer_update(trainer));
    }
    assert_int_equal(clora_trainer_step_count(trainer), steps);
    assert_int_equal(clora_trainer_update(trainer), CLORA_ERR_STATE); /* nothing accumulated */
    CHECK_OK(clora_model_set_training(model, 0));
    float *values = trainable_values(model, n);
    clora_trainer_destroy(trainer);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_model_destroy(model);
    return values;
}

/* Two or four weighted micro-batches make the step of the whole batch
 * (dropout: the check below). */
static void micro_batches_make_the_whole_step(void **state)
{
    (void)state;
    size_t n1 = 0, n2 = 0, n4 = 0;
    float *whole = train_in_parts(6, 1, &n1);
    float *halves = train_in_parts(6, 2, &n2);
    float *quarters = train_in_parts(6, 4, &n4);
    assert_int_equal(n1, n2);
    assert_int_equal(n1, n4);
    test_assert_close("2 micro-batches", halves, whole, n1, 1e-5, 1e-4);
    test_assert_close("4 micro-batches", quarters, whole, n1, 1e-5, 1e-4);
    free(whole);
    free(halves);
    free(quarters);
}

/* ---- masks across parts: dropout in every place it acts ------------------------------------ */

enum { GB = 4, GT = 6, GV = 17 };

/* How the steps' batches are cut: `parts` micro-batches, taken in reverse
 * order at their places (accumulate_at) when `reversed`, all at place 0
 * when `unplaced` (what a split that ignored places would draw). */
typedef struct split {
    size_t parts;
    int reversed, unplaced;
} split;

enum { ARCH_GPT2, ARCH_LLAMA, ARCH_BERT };

/* A tiny model of each architecture, dropout in every place it has one,
 * with LoRA (dropout too) on every Linear and everything trainable. */
static clora_model *tiny_of(int arch)
{
    clora_model *model = NULL;
    if (arch == ARCH_GPT2) {
        clora_gpt2_config c = clora_gpt2_config_default();
        c.vocab_size = GV, c.n_positions = GT, c.n_embd = 8, c.n_layer = 3, c.n_head = 2;
        c.n_inner = 16;
        c.embd_pdrop = c.attn_pdrop = c.resid_pdrop = 0.25f;
        CHECK_OK(clora_model_create_gpt2(&model, test_device, &c, 5));
    } else if (arch == ARCH_LLAMA) {
        clora_llama_config c = clora_llama_config_default();
        c.vocab_size = GV, c.hidden_size = 8, c.intermediate_size = 12, c.num_hidden_layers = 3;
        c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 4;
        c.attention_dropout = 0.2f;
        CHECK_OK(clora_model_create_llama(&model, test_device, &c, 5));
    } else {
        clora_bert_config c = clora_bert_config_default();
        c.vocab_size = GV, c.hidden_size = 8, c.num_hidden_layers = 3, c.num_attention_heads = 2;
        c.intermediate_size = 16, c.max_position_embeddings = GT, c.num_labels = 3;
        c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.25f;
        CHECK_OK(clora_model_create_bert(&model, test_device, &c, 5));
    }
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 2;
    lora.dropout = 0.3f;
    CHECK_OK(clora_replace_linear_with_lora(clora_model_root(model), &lora, NULL));
    CHECK_OK(clora_model_set_trainable(model, "", 1));
    return model;
}

/* SGD at lr 0.5: AdamW would blow up rounding noise in near-zero
 * gradients, where the checks below compare runs. */
static clora_trainer *sgd_trainer(clora_model *model)
{
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
    cfg.optimizer.lr = 0.5f;
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    return trainer;
}

/* GB sequences of GT random tokens from `seed`, and their targets: the next
 * token, or a class of three per token (BERT's labels take the first GB). */
static void step_tokens(uint64_t seed, int classes, int32_t ids[GB * GT], int32_t next[GB * GT])
{
    const size_t flat = GB * GT;
    for (size_t i = 0; i < flat; ++i) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((seed >> 33) % GV);
    }
    for (size_t i = 0; i < flat; ++i)
        next[i] = classes ? ids[i] % 3 : ids[(i + 1) % flat];
}

/* Trainable values of the tiny GPT-2 (dropout after the embeddings, on
 * the attention probabilities, after each residual branch and on LoRA's
 * input) after three steps of GB sequences of GT tokens. */
static float *gpt2_in_parts(split sp, size_t *n)
{
    clora_model *model = tiny_of(ARCH_GPT2);
    clora_trainer *trainer = sgd_trainer(model);
    const size_t rows = GB / sp.parts;
    int32_t ids[GB * GT], next[GB * GT];
    const size_t shape[2] = {rows, GT}, flat = rows * GT;
    clora_buffer *bx = NULL, *by = NULL;
    CHECK_OK(clora_buffer_create_typed(&bx, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_create_typed(&by, test_device, CLORA_DTYPE_I32, 1, &flat));
    for (size_t step = 0; step < 3; ++step) {
        step_tokens(77 + step, 0, ids, next);
        for (size_t j = 0; j < sp.parts; ++j) {
            const size_t k = sp.reversed ? sp.parts - 1 - j : j;
            CHECK_OK(clora_buffer_upload_i32(bx, 0, ids + k * flat, flat));
            CHECK_OK(clora_buffer_upload_i32(by, 0, next + k * flat, flat));
            const float weight = 1.0f / (float)sp.parts;
            if (sp.reversed || sp.unplaced)
                CHECK_OK(clora_trainer_accumulate_at(trainer, bx, by, weight,
                                                     sp.unplaced ? 0 : k * rows, NULL));
            else
                CHECK_OK(clora_trainer_accumulate(trainer, bx, by, weight, NULL));
        }
        CHECK_OK(clora_trainer_update(trainer));
    }
    float *values = trainable_values(model, n);
    clora_trainer_destroy(trainer);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_model_destroy(model);
    return values;
}

/* Dropout on: a step in two or four micro-batches, in order or taken in
 * reverse at their places, draws the whole batch's masks and makes its
 * step; placed all at 0, the masks differ and so does the result. */
static void micro_batches_draw_the_whole_batch_masks(void **state)
{
    (void)state;
    size_t n = 0, m = 0;
    float *whole = gpt2_in_parts((split){1, 0, 0}, &n);
    const split same[3] = {{2, 0, 0}, {4, 0, 0}, {2, 1, 0}};
    for (int i = 0; i < 3; ++i) {
        float *parts = gpt2_in_parts(same[i], &m);
        assert_int_equal(m, n);
        test_assert_close(i == 0 ? "2 micro-batches" : i == 1 ? "4 micro-batches"
                                                            : "2 micro-batches, reversed",
                          parts, whole, n, 1e-5, 1e-4);
        free(parts);
    }
    float *unplaced = gpt2_in_parts((split){2, 0, 1}, &m);
    double most = 0.0;
    for (size_t i = 0; i < n; ++i)
        most = fabs(unplaced[i] - whole[i]) > most ? fabs(unplaced[i] - whole[i]) : most;
    print_message("placed all at 0: %g apart at most\n", most);
    if (most < 1e-3)
        fail_msg("micro-batches all placed at 0 drew the whole batch's masks (%g apart)", most);
    free(unplaced);
    free(whole);
}

/* ---- gradient checkpointing --------------------------------------------------------------- */

/* Trainable values after three SGD steps on GB sequences (next tokens, or
 * a class per sequence for BERT), and the step's peak device memory. */
static float *trained_checkpointing(int arch, int checkpointing, size_t *n, uint64_t *peak)
{
    clora_model *model = tiny_of(arch);
    CHECK_OK(clora_model_set_checkpointing(model, checkpointing));
    clora_trainer *trainer = sgd_trainer(model);
    const size_t shape[2] = {GB, GT}, flat = GB * GT;
    const size_t labels = arch == ARCH_BERT ? GB : flat;
    clora_buffer *bx = NULL, *by = NULL;
    CHECK_OK(clora_buffer_create_typed(&bx, test_device, CLORA_DTYPE_I32, 2, shape));
    CHECK_OK(clora_buffer_create_typed(&by, test_device, CLORA_DTYPE_I32, 1, &labels));
    int32_t ids[GB * GT], next[GB * GT];
    CHECK_OK(clora_device_reset_memory_peak(test_device));
    for (size_t step = 0; step < 3; ++step) {
        step_tokens(91 + step, arch == ARCH_BERT, ids, next);
        CHECK_OK(clora_buffer_upload_i32(bx, 0, ids, flat));
        CHECK_OK(clora_buffer_upload_i32(by, 0, next, labels));
        CHECK_OK(clora_trainer_step(trainer, bx, by, NULL));
    }
    clora_memory_report report;
    CHECK_OK(clora_device_memory(test_device, &report));
    *peak = report.peak;
    float *values = trainable_values(model, n);
    clora_trainer_destroy(trainer);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    clora_model_destroy(model);
    return values;
}

/* With checkpointing, blocks recompute their activations in backward: the
 * same masks and the same arithmetic, so the same bytes, on every
 * architecture, dropout on. */
static void checkpointing_gives_the_same_step(void **state)
{
    (void)state;
    static const char *const names[3] = {"GPT-2", "Llama", "BERT"};
    for (int arch = 0; arch < 3; ++arch) {
        size_t n = 0, m = 0;
        uint64_t peak = 0, peak_checkpointed = 0;
        float *plain = trained_checkpointing(arch, 0, &n, &peak);
        float *checkpointed = trained_checkpointing(arch, 1, &m, &peak_checkpointed);
        assert_int_equal(n, m);
        test_assert_identical(names[arch], checkpointed, plain, n);
        print_message("%s: peak device memory %llu bytes, %llu with checkpointing\n", names[arch],
                      (unsigned long long)peak, (unsigned long long)peak_checkpointed);
        free(plain);
        free(checkpointed);
    }
}

/* Checkpointing is decided at forward: turned off (or training mode left)
 * before backward, the backward still recomputes what the forward freed,
 * and gives the gradients of a run without it. */
static void checkpointing_is_decided_at_forward(void **state)
{
    (void)state;
    const size_t shape[2] = {GB, GT}, flat = GB * GT;
    int32_t ids[GB * GT];
    for (size_t i = 0; i < flat; ++i)
        ids[i] = (int32_t)((i * 7 + 3) % GV);
    float *grads[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    for (int kept = 0; kept < 2; ++kept) {
        clora_model *model = tiny_of(ARCH_GPT2);
        CHECK_OK(clora_model_set_training(model, 1));
        CHECK_OK(clora_model_set_checkpointing(model, kept));
        clora_buffer *bx = NULL, *dy = NULL;
        CHECK_OK(clora_buffer_create_typed(&bx, test_device, CLORA_DTYPE_I32, 2, shape));
        CHECK_OK(clora_buffer_upload_i32(bx, 0, ids, flat));
        const clora_buffer *out = NULL;
        CHECK_OK(clora_model_zero_grad(model));
        CHECK_OK(clora_model_forward(model, bx, &out));
        const size_t outs = clora_buffer_numel(out);
        float *ones = test_alloc(outs);
        for (size_t i = 0; i < outs; ++i)
            ones[i] = (float)(i % 5) * 0.1f - 0.2f;
        dy = test_buffer(clora_buffer_ndim(out), (size_t[]){GB, GT, GV}, ones);
        free(ones);
        CHECK_OK(clora_model_set_checkpointing(model, 0)); /* after the forward */
        CHECK_OK(clora_model_backward(model, dy));
        size_t count = 0;
        CHECK_OK(clora_model_params(model, &count));
        clora_param_counts counts;
        CHECK_OK(clora_model_count_params(model, &counts));
        grads[kept] = test_alloc(counts.trainable); /* everything trains: every grad */
        for (size_t i = 0; i < count; ++i) {
            clora_param_info info;
            CHECK_OK(clora_model_param(model, i, &info));
            float *g = test_download(info.grad);
            memcpy(grads[kept] + n[kept], g, clora_buffer_numel(info.grad) * sizeof *g);
            n[kept] += clora_buffer_numel(info.grad);
            free(g);
        }
        clora_buffer_destroy(bx);
        clora_buffer_destroy(dy);
        clora_model_destroy(model);
    }
    assert_int_equal(n[0], n[1]);
    test_assert_identical("gradients", grads[1], grads[0], n[0]);
    free(grads[0]);
    free(grads[1]);
}

/* 6 steps straight, or 3, saved, and 3 more in a new model and trainer:
 * the same bytes, dropout on. A state for other parameters is refused. */
static void saved_state_continues_bit_for_bit(void **state)
{
    (void)state;
    char dir[64], path[128];
    test_temp_dir(dir, "train-state");
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    enum { B = 8, STEPS = 6 };
    float x[B * 6];
    int32_t y[B];
    clora_buffer *bx = test_buffer_2d(B, 6, NULL), *by = labels_buffer(y, B);
    float *results[2] = {NULL, NULL};
    size_t n = 0;
    for (int resumed = 0; resumed < 2; ++resumed) {
        clora_model *model = lora_model(3, 0.2f);
        clora_train_config cfg = clora_train_config_default();
        cfg.optimizer.lr = 0.02f;
        cfg.schedule = CLORA_SCHEDULE_LINEAR;
        cfg.total_steps = STEPS;
        clora_trainer *trainer = NULL;
        CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
        for (size_t step = 0; step < STEPS; ++step) {
            if (resumed && step == STEPS / 2) { /* stop, and continue in a new process */
                CHECK_OK(clora_trainer_save_state(trainer, path));
                clora_trainer_destroy(trainer);
                clora_model_destroy(model);
                model = lora_model(3, 0.2f);
                CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
                CHECK_OK(clora_trainer_load_state(trainer, path));
                assert_int_equal(clora_trainer_step_count(trainer), STEPS / 2);
            }
            step_batch(step, x, y, B);
            CHECK_OK(clora_buffer_upload(bx, 0, x, B * 6));
            CHECK_OK(clora_buffer_upload_i32(by, 0, y, B));
            CHECK_OK(clora_trainer_step(trainer, bx, by, NULL));
        }
        results[resumed] = trainable_values(model, &n);
        clora_trainer_destroy(trainer);
        clora_model_destroy(model);
    }
    assert_memory_equal(results[0], results[1], n * sizeof(float));

    /* another rank: refused, by name */
    clora_model *model = lora_model(2, 0.2f);
    clora_train_config cfg = clora_train_config_default();
    clora_trainer *trainer = NULL;
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    assert_int_equal(clora_trainer_load_state(trainer, path), CLORA_ERR_STATE);
    assert_non_null(strstr(clora_last_error(), "other trainable parameters"));
    clora_trainer_destroy(trainer);
    cfg.optimizer = clora_optimizer_config_default(CLORA_OPTIMIZER_SGD);
    clora_model_destroy(model);
    model = lora_model(3, 0.2f);
    CHECK_OK(clora_trainer_create(&trainer, model, &cfg));
    assert_int_equal(clora_trainer_load_state(trainer, path), CLORA_ERR_STATE);
    assert_non_null(strstr(clora_last_error(), "adamw"));
    clora_trainer_destroy(trainer);
    clora_model_destroy(model);
    free(results[0]);
    free(results[1]);
    clora_buffer_destroy(bx);
    clora_buffer_destroy(by);
    test_remove_dir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cross_entropy_matches_reference),
        cmocka_unit_test(mse_matches_reference),
        cmocka_unit_test(adamw_matches_pytorch_formula),
        cmocka_unit_test(sgd_momentum_nesterov_weight_decay),
        cmocka_unit_test(bad_optimizer_settings),
        cmocka_unit_test(clipping_scales_to_the_max_norm),
        cmocka_unit_test(schedules_with_warmup),
        cmocka_unit_test(trainer_learns_and_leaves_frozen_bytes_alone),
        cmocka_unit_test(trainer_with_mse_and_bad_targets),
        cmocka_unit_test(micro_batches_make_the_whole_step),
        cmocka_unit_test(micro_batches_draw_the_whole_batch_masks),
        cmocka_unit_test(checkpointing_gives_the_same_step),
        cmocka_unit_test(checkpointing_is_decided_at_forward),
        cmocka_unit_test(saved_state_continues_bit_for_bit),
    };
    return cmocka_run_group_tests(tests, test_open_device, test_close_device);
}
