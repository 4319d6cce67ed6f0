/* adapter_combine.c — a new adapter made of weighted existing ones, as
 * PEFT's add_weighted_adapter makes it, for the combinations that need no
 * decomposition:
 *
 *   cat:    A' = [w₁s₁A₁; w₂s₂A₂; …] (rows), B' = [B₁ B₂ …] (columns), so
 *           s'·B'A' = Σ wᵢsᵢBᵢAᵢ exactly; rank Σ rᵢ;
 *   linear: A' = Σ sign(wᵢ)·√|wᵢsᵢ|·Aᵢ, B' = Σ √|wᵢsᵢ|·Bᵢ (PEFT 0.7 on; its
 *           0.6 put wᵢsᵢ on A alone); every rank equal.
 *
 * The new adapter's scale is 1 (lora_alpha = r'), or √r' when the first
 * adapter uses rsLoRA, as PEFT copies the first adapter's config; its
 * dropout and bias mode are the first adapter's too. A layer that carries
 * only some of the adapters combines those (cat fills its first rows and
 * leaves the rest zero, as PEFT does). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

typedef struct combine {
    const char *const *names;
    const float *weights;
    size_t count;
    const char *new_name;
    clora_combination how;
    size_t rank;                /* the new adapter's */
    size_t *max_rank;           /* per source adapter, over the model */
    clora_scale_mode mode;      /* the first adapter's, where first found */
    float dropout;
    int found_first;
    size_t layers;              /* layers given the new adapter so far */
    clora_status status;
} combine;

/* First pass: every source adapter's largest rank, and the first one's
 * scale mode and dropout. */
static int survey(clora_node *node, const char *path, void *user)
{
    (void)path;
    combine *c = user;
    if (!clora__is_lora(node))
        return 0;
    if (clora__lora_find(node, c->new_name) >= 0) {
        c->status = clora__fail(CLORA_ERR_STATE, "the model has an adapter \"%s\" already",
                                c->new_name);
        return 1;
    }
    for (size_t i = 0; i < c->count; ++i) {
        const int k = clora__lora_find(node, c->names[i]);
        if (k < 0)
            continue;
        const clora__adapter *ad = clora__lora_adapter(node, (size_t)k);
        if (ad->magnitude) {
            c->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                    "adapter \"%s\" is a DoRA adapter; combinations take "
                                    "LoRA adapters",
                                    c->names[i]);
            return 1;
        }
        if (ad->rank > c->max_rank[i])
            c->max_rank[i] = ad->rank;
        if (i == 0 && !c->found_first) {
            c->found_first = 1;
            c->mode = ad->scale_mode == CLORA_SCALE_ALPHA_OVER_SQRT_R
                          ? CLORA_SCALE_ALPHA_OVER_SQRT_R
                          : CLORA_SCALE_ALPHA_OVER_R;
            c->dropout = ad->dropout;
        }
        if (c->how == CLORA_COMBINE_LINEAR && ad->rank != c->rank && c->rank) {
            c->status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                                    "combining linearly needs equal ranks; adapter \"%s\" has "
                                    "rank %zu at %s, another has %zu",
                                    c->names[i], ad->rank, path, c->rank);
            return 1;
        }
        if (c->how == CLORA_COMBINE_LINEAR)
            c->rank = ad->rank;
    }
    return 0;
}

/* Second pass: the new adapter on every layer that carries a source. */
static int build(clora_node *node, const char *path, void *user)
{
    combine *c = user;
    if (!clora__is_lora(node))
        return 0;
    size_t in = 0, out = 0; /* A (r, in), B (out, r): a Linear's or an Embedding's */
    for (size_t i = 0; i < c->count && !in; ++i) {
        const int k = clora__lora_find(node, c->names[i]);
        if (k >= 0) {
            const clora__adapter *ad = clora__lora_adapter(node, (size_t)k);
            in = ad->lora_a->shape[1];
            out = ad->lora_b->shape[0];
        }
    }
    if (!in)
        return 0;
    const size_t r = c->rank;
    float *a = clora__calloc(r * in, sizeof *a), *b = clora__calloc(out * r, sizeof *b);
    float *src_a = NULL, *src_b = NULL;
    clora_status status = a && b ? CLORA_OK
                                 : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "combining %s", path);
    size_t row = 0; /* cat: the next free row of A' (column of B') */
    for (size_t i = 0; i < c->count && status == CLORA_OK; ++i) {
        const int k = clora__lora_find(node, c->names[i]);
        if (k < 0)
            continue;
        const clora__adapter *ad = clora__lora_adapter(node, (size_t)k);
        const size_t ri = ad->rank;
        free(src_a);
        free(src_b);
        src_a = clora__malloc(ri * in * sizeof *src_a);
        src_b = clora__malloc(out * ri * sizeof *src_b);
        if (!src_a || !src_b) {
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "combining %s", path);
            break;
        }
        if ((status = clora_buffer_download(ad->lora_a->value, 0, src_a, ri * in)) ||
            (status = clora_buffer_download(ad->lora_b->value, 0, src_b, out * ri)))
            break;
        const double ws = (double)c->weights[i] *
                          (double)clora_lora_scale(ad->scale_mode, ad->alpha, ad->rank);
        if (c->how == CLORA_COMBINE_CAT) {
            for (size_t j = 0; j < ri * in; ++j)
                a[row * in + j] = (float)(ws * src_a[j]);
            for (size_t o = 0; o < out; ++o)
                for (size_t j = 0; j < ri; ++j)
                    b[o * r + row + j] = src_b[o * ri + j];
            row += ri;
        } else {
            const double root = sqrt(fabs(ws)), sign = ws >= 0.0 ? 1.0 : -1.0;
            for (size_t j = 0; j < r * in; ++j)
                a[j] = (float)(a[j] + sign * root * src_a[j]);
            for (size_t j = 0; j < out * r; ++j)
                b[j] = (float)(b[j] + root * src_b[j]);
        }
    }
    clora__adapter *made = NULL;
    if (status == CLORA_OK)
        status = clora__lora_add_adapter(node, c->new_name, r, (float)r, c->mode, c->dropout,
                                         CLORA_INIT_PEFT, &made);
    if (status == CLORA_OK) {
        ++c->layers;
        if ((status = clora_buffer_upload(made->lora_a->value, 0, a, r * in)) == CLORA_OK)
            status = clora_buffer_upload(made->lora_b->value, 0, b, out * r);
    }
    free(a);
    free(b);
    free(src_a);
    free(src_b);
    c->status = status;
    return status != CLORA_OK;
}

static int remove_new(clora_node *node, const char *path, void *user)
{
    (void)path;
    const char *name = user;
    if (clora__is_lora(node) && clora__lora_find(node, name) >= 0)
        clora__lora_remove(node, (size_t)clora__lora_find(node, name));
    return 0;
}

clora_status clora_model_add_weighted_adapter(clora_model *model, const char *const *names,
                                              const float *weights, size_t count,
                                              const char *new_name, clora_combination how)
{
    static const char op[] = "clora_model_add_weighted_adapter";
    if (!model || !names || !weights || !new_name)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: NULL argument", op);
    if (count == 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: no adapters to combine", op);
    if (how != CLORA_COMBINE_LINEAR && how != CLORA_COMBINE_CAT)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown combination %d", op, (int)how);
    if (!*new_name || strchr(new_name, '.') || strchr(new_name, '/'))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: bad adapter name \"%s\"", op,
                           new_name);
    if (clora__adapter_index(model, new_name) >= 0)
        return clora__fail(CLORA_ERR_STATE, "%s: the model has an adapter \"%s\" already", op,
                           new_name);
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "%s: unmerge the merged adapter first", op);
    for (size_t i = 0; i < count; ++i) {
        if (!names[i] || clora__adapter_index(model, names[i]) < 0)
            return clora__fail(CLORA_ERR_NOT_FOUND, "%s: the model has no adapter \"%s\"", op,
                               names[i] ? names[i] : "(NULL)");
        if (!isfinite(weights[i]))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: the weight of \"%s\" is not finite",
                               op, names[i]);
        for (size_t j = 0; j < i; ++j)
            if (!strcmp(names[i], names[j]))
                return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: adapter \"%s\" is listed twice",
                                   op, names[i]);
    }
    combine c;
    memset(&c, 0, sizeof c);
    c.names = names;
    c.weights = weights;
    c.count = count;
    c.new_name = new_name;
    c.how = count == 1 ? CLORA_COMBINE_LINEAR : how; /* one adapter: PEFT's rule */
    c.status = CLORA_OK;
    c.max_rank = clora__calloc(count, sizeof *c.max_rank);
    if (!c.max_rank)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s", op);
    clora_model_visit(model, survey, &c);
    if (c.status == CLORA_OK && c.how == CLORA_COMBINE_CAT)
        for (size_t i = 0; i < count; ++i)
            c.rank += c.max_rank[i];
    if (c.status == CLORA_OK && c.rank > CLORA_MAX_RANK)
        c.status = clora__fail(CLORA_ERR_INVALID_RANK, "%s: the combined rank %zu is above %d", op,
                               c.rank, CLORA_MAX_RANK);
    if (c.status == CLORA_OK)
        clora_model_visit(model, build, &c);
    if (c.status == CLORA_OK)
        c.status = clora__adapters_register(model, new_name);
    if (c.status == CLORA_OK) {
        const int first = clora__adapter_index(model, names[0]);
        model->adapter_bias[clora__adapter_index(model, new_name)] = model->adapter_bias[first];
        clora__apply_adapter_trainability(model); /* the new one stays inactive */
    } else if (c.layers > 0) {
        clora_model_visit(model, remove_new, (void *)new_name);
    }
    free(c.max_rank);
    return c.status;
}
