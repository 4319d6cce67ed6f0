/* bench_peft.c — `clora bench`'s measurements of PEFT's LoRA variants
 * against plain LoRA, each pair timed alternating in one run:
 *
 *   dora_layer_step          a DoRA layer step (forward; dx, dA, dB, dm) on
 *                            one Linear, against the LoRA layer step (forward;
 *                            dx, dA, dB) on the same shape and weights
 *   dora_gpt2_step           a training step of a GPT-2-shaped model with
 *                            DoRA on c_attn, against LoRA on c_attn
 *   embedding_lora_gpt2_step the same model with LoRA on wte (its 50257-row
 *                            token table) and c_attn, against c_attn alone
 *
 * The models are made at random weights from one seed, so the two sides of
 * a ratio differ only in their adapters. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "cli.h"

/* ---- one layer ------------------------------------------------------------------ */

typedef struct dora_layer {
    clora_lora_spec spec;
    clora_buffer *x, *w, *bias, *a, *b, *m, *y, *h, *t, *norm, *dy, *dx, *da, *db, *dm;
} dora_layer;

static void dora_layer_free(dora_layer *l)
{
    clora_buffer *all[] = {l->x, l->w,    l->bias, l->a,  l->b,  l->m,  l->y, l->h,
                           l->t, l->norm, l->dy,   l->dx, l->da, l->db, l->dm};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; ++i)
        clora_buffer_destroy(all[i]);
    memset(l, 0, sizeof *l);
}

/* W is (out, in) or, for GPT-2's Conv1D layout, (in, out). */
static clora_status dora_layer_create(dora_layer *l, clora_device *dev, size_t n, size_t in,
                                      size_t out, size_t r, clora_weight_layout layout)
{
    memset(l, 0, sizeof *l);
    l->spec = (clora_lora_spec){16.0f, CLORA_SCALE_ALPHA_OVER_R, 0.0f, 1, layout, 0};
    uint64_t rng = 7;
    const float bound = 1.0f / sqrtf((float)in);
    const int out_in = layout == CLORA_WEIGHT_OUT_IN;
    clora_status status;
    if ((status = bench_random_buffer(&l->x, dev, n, in, 1.0f, &rng, NULL)) ||
        (status = bench_random_buffer(&l->w, dev, out_in ? out : in, out_in ? in : out, bound,
                                      &rng, NULL)) ||
        (status = bench_random_buffer(&l->bias, dev, out, 0, bound, &rng, NULL)) ||
        (status = bench_random_buffer(&l->a, dev, r, in, bound, &rng, NULL)) ||
        (status = bench_random_buffer(&l->b, dev, out, r, 0.01f, &rng, NULL)) ||
        (status = bench_random_buffer(&l->dy, dev, n, out, 1e-3f, &rng, NULL)) ||
        (status = clora_buffer_create_1d(&l->m, dev, out)) ||
        (status = clora_buffer_create_2d(&l->y, dev, n, out)) ||
        (status = clora_buffer_create_2d(&l->h, dev, n, r)) ||
        (status = clora_buffer_create_2d(&l->t, dev, n, out)) ||
        (status = clora_buffer_create_1d(&l->norm, dev, out)) ||
        (status = clora_buffer_create_2d(&l->dx, dev, n, in)) ||
        (status = clora_buffer_create_2d(&l->da, dev, r, in)) ||
        (status = clora_buffer_create_2d(&l->db, dev, out, r)) ||
        (status = clora_buffer_create_1d(&l->dm, dev, out)))
        return status;
    /* m starts at ||W|| per output feature, as a new DoRA adapter does */
    return clora_dora_weight_norm(l->m, l->w, NULL, NULL, &l->spec);
}

static clora_status run_dora_layer(void *p)
{
    dora_layer *l = p;
    clora_status status = clora_dora_forward(l->y, l->h, l->t, l->norm, l->x, l->w, l->bias,
                                             l->a, l->b, l->m, &l->spec);
    if (status == CLORA_OK)
        status = clora_dora_backward(l->dx, l->da, l->db, l->dm, l->dy, l->x, l->h, l->t,
                                     l->norm, l->w, l->a, l->b, l->m, &l->spec);
    return status;
}

static clora_status run_lora_layer(void *p)
{
    dora_layer *l = p;
    clora_status status =
        clora_lora_forward(l->y, l->h, l->x, l->w, l->bias, l->a, l->b, &l->spec);
    if (status == CLORA_OK)
        status = clora_lora_backward(l->dx, l->da, l->db, l->dy, l->x, l->h, l->w, l->a, l->b,
                                     &l->spec);
    return status;
}

typedef struct dora_shape {
    size_t n, in, out, r;
    clora_weight_layout layout;
} dora_shape;

static const dora_shape full_shapes[] = {
    {512, 768, 768, 8, CLORA_WEIGHT_OUT_IN},   {512, 768, 768, 8, CLORA_WEIGHT_IN_OUT},
    {512, 768, 3072, 16, CLORA_WEIGHT_OUT_IN}, {512, 3072, 768, 16, CLORA_WEIGHT_OUT_IN},
    {2048, 768, 768, 16, CLORA_WEIGHT_OUT_IN},
};
static const dora_shape quick_shapes[] = {{512, 768, 768, 8, CLORA_WEIGHT_OUT_IN}};

static void bench_dora_layers(bench *b)
{
    const dora_shape *shapes = b->o.quick ? quick_shapes : full_shapes;
    const size_t count =
        b->o.quick ? 1 : sizeof full_shapes / sizeof full_shapes[0];
    for (size_t i = 0; i < count && !b->failed; ++i) {
        const dora_shape *s = &shapes[i];
        char shape[96];
        snprintf(shape, sizeof shape, "N=%zu in=%zu out=%zu r=%zu W(%s)", s->n, s->in, s->out,
                 s->r, s->layout == CLORA_WEIGHT_OUT_IN ? "out,in" : "in,out");
        dora_layer l;
        clora_status status = dora_layer_create(&l, b->dev, s->n, s->in, s->out, s->r, s->layout);
        bench_fn fns[2] = {run_dora_layer, run_lora_layer};
        void *ctx[2] = {&l, &l};
        double ms[2];
        if (status == CLORA_OK)
            status = bench_measure(b, 2, fns, ctx, b->o.reps, ms);
        if (status == CLORA_OK)
            bench_report(b, "dora_layer_step", shape, ms[0], "lora_layer_step", ms[1], "time",
                         NULL);
        else
            bench_fail(b, shape, status);
        dora_layer_free(&l);
    }
}

/* ---- a GPT-2-shaped model ---------------------------------------------------------- */

typedef struct adapted_model {
    clora_model *model;
    bench_step step;
} adapted_model;

/* GPT-2 at random weights (the same for every call) with an adapter of
 * rank 8 on `targets`, DoRA or not, ready to train. */
static clora_status adapted_gpt2(adapted_model *m, bench *b, const clora_gpt2_config *gpt2,
                                 const char *const *targets, size_t target_count, int dora)
{
    clora_status status = clora_model_create_gpt2(&m->model, b->dev, gpt2, 1);
    clora_lora_config lora = clora_lora_config_default();
    lora.rank = 8;
    lora.alpha = 16;
    lora.target_modules = targets;
    lora.target_module_count = target_count;
    lora.use_dora = dora;
    if (status == CLORA_OK)
        status = clora_replace_linear_with_lora(clora_model_root(m->model), &lora, NULL);
    if (status == CLORA_OK)
        status = clora_model_set_training(m->model, 1);
    clora_train_config cfg = clora_train_config_default();
    cfg.optimizer.lr = 1e-4f;
    if (status == CLORA_OK)
        status = clora_trainer_create(&m->step.trainer, m->model, &cfg);
    return status;
}

static void adapted_free(adapted_model *m)
{
    clora_trainer_destroy(m->step.trainer);
    clora_model_destroy(m->model);
}

static void bench_gpt2_variants(bench *b)
{
    const int dora = bench_wanted(b, "dora_gpt2_step");
    const int embedding = bench_wanted(b, "embedding_lora_gpt2_step");
    const size_t seq = b->o.quick ? 64 : 256;
    clora_gpt2_config gpt2 = clora_gpt2_config_default();
    if (b->o.quick)
        gpt2.n_layer = 2;
    static const char *const attention[] = {"c_attn"};
    static const char *const with_wte[] = {"wte", "c_attn"};
    adapted_model cases[3];
    memset(cases, 0, sizeof cases);
    clora_buffer *input = NULL, *target = NULL;
    clora_status status = bench_tokens(b->dev, 1, seq, gpt2.vocab_size, 29, &input, &target);
    size_t count = 0;
    bench_fn fns[3];
    void *ctx[3];
    /* LoRA on c_attn first: both ratios' baseline */
    if (status == CLORA_OK)
        status = adapted_gpt2(&cases[count], b, &gpt2, attention, 1, 0);
    ++count;
    if (dora && status == CLORA_OK)
        status = adapted_gpt2(&cases[count++], b, &gpt2, attention, 1, 1);
    if (embedding && status == CLORA_OK)
        status = adapted_gpt2(&cases[count++], b, &gpt2, with_wte, 2, 0);
    for (size_t i = 0; i < count; ++i) {
        cases[i].step.input = input;
        cases[i].step.target = target;
        fns[i] = bench_run_step;
        ctx[i] = &cases[i].step;
    }
    double ms[3] = {0, 0, 0};
    if (status == CLORA_OK)
        status = bench_measure(b, count, fns, ctx, b->o.quick ? 1 : 3, ms);
    char shape[96];
    snprintf(shape, sizeof shape, "GPT-2 %zux%zu B=1 T=%zu r=8", gpt2.n_layer, gpt2.n_embd, seq);
    if (status == CLORA_OK) {
        size_t k = 1;
        if (dora)
            bench_report(b, "dora_gpt2_step", shape, ms[k++], "lora_step", ms[0], "time", NULL);
        if (embedding)
            bench_report(b, "embedding_lora_gpt2_step", shape, ms[k], "lora_step", ms[0], "time",
                         NULL);
    } else {
        bench_fail(b, "GPT-2's steps with DoRA and with LoRA on wte", status);
    }
    for (size_t i = 0; i < 3; ++i)
        adapted_free(&cases[i]);
    clora_buffer_destroy(input);
    clora_buffer_destroy(target);
}

void bench_peft_variants(bench *b)
{
    if (bench_wanted(b, "dora_layer_step"))
        bench_dora_layers(b);
    if (!b->failed && (bench_wanted(b, "dora_gpt2_step") ||
                       bench_wanted(b, "embedding_lora_gpt2_step")))
        bench_gpt2_variants(b);
}
