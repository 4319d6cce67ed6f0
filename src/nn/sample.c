/* sample.c — choosing the next token from logits (clora/generate.h):
 * greedy, or drawn with temperature, top-k and top-p from a seeded
 * generator, on the host. */
#include <math.h>
#include <stdlib.h>

#include "nn/nn.h"

clora_sampling clora_sampling_greedy(void)
{
    clora_sampling s = {0.0f, 0, 1.0f};
    return s;
}

typedef struct candidate {
    float logit;
    int32_t id;
} candidate;

/* Larger logits first; equal ones by smaller id. */
static int before(const candidate *a, const candidate *b)
{
    return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int compare(const void *pa, const void *pb)
{
    const candidate *a = pa, *b = pb;
    return before(a, b) ? -1 : before(b, a) ? 1 : 0;
}

/* splitmix64: the generator's next value in [0, 1). */
static double next_uniform(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* Moves the k best of c[0..n) to the front, sorted (k <= n): a min-heap of
 * the best seen, O(n log k). */
static void select_best(candidate *c, size_t n, size_t k)
{
    /* heap over c[0..k): its root is the worst kept */
    for (size_t i = 1; i <= n; ++i) {
        size_t at;
        if (i <= k) {
            at = i - 1; /* sift up */
            while (at > 0 && before(&c[(at - 1) / 2], &c[at])) {
                candidate t = c[at];
                c[at] = c[(at - 1) / 2];
                c[(at - 1) / 2] = t;
                at = (at - 1) / 2;
            }
            continue;
        }
        if (!before(&c[i - 1], &c[0]))
            continue;
        c[0] = c[i - 1];
        for (at = 0;;) { /* sift down */
            size_t l = 2 * at + 1, r = l + 1, worst = at;
            if (l < k && before(&c[worst], &c[l]))
                worst = l;
            if (r < k && before(&c[worst], &c[r]))
                worst = r;
            if (worst == at)
                break;
            candidate t = c[at];
            c[at] = c[worst];
            c[worst] = t;
            at = worst;
        }
    }
    qsort(c, k, sizeof *c, compare);
}

int32_t clora_sample(const float *logits, size_t vocab, const clora_sampling *sampling,
                     uint64_t *rng)
{
    if (!logits || vocab == 0)
        return -1;
    const int greedy = !sampling || !(sampling->temperature > 0.0f) || sampling->top_k == 1 ||
                       !rng;
    if (greedy) {
        size_t best = 0;
        for (size_t i = 1; i < vocab; ++i)
            if (logits[i] > logits[best])
                best = i;
        return (int32_t)best;
    }
    candidate *c = clora__malloc(vocab * sizeof *c);
    if (!c)
        return -1;
    for (size_t i = 0; i < vocab; ++i) {
        c[i].logit = logits[i];
        c[i].id = (int32_t)i;
    }
    const size_t k = sampling->top_k > 0 && sampling->top_k < vocab ? sampling->top_k : vocab;
    if (k < vocab)
        select_best(c, vocab, k);
    else
        qsort(c, vocab, sizeof *c, compare);
    /* softmax(logit / T) over the k, then the top-p prefix */
    double *p = clora__malloc(k * sizeof *p), total = 0.0;
    if (!p) {
        free(c);
        return -1;
    }
    for (size_t i = 0; i < k; ++i)
        total += p[i] = exp(((double)c[i].logit - (double)c[0].logit) / sampling->temperature);
    size_t kept = k;
    if (sampling->top_p < 1.0f) {
        double sum = 0.0;
        for (kept = 0; kept < k;) {
            sum += p[kept++] / total;
            if (sum >= (double)sampling->top_p)
                break;
        }
        total = 0.0;
        for (size_t i = 0; i < kept; ++i)
            total += p[i];
    }
    double u = next_uniform(rng) * total;
    int32_t chosen = c[kept - 1].id;
    for (size_t i = 0; i < kept; ++i) {
        if (u < p[i]) {
            chosen = c[i].id;
            break;
        }
        u -= p[i];
    }
    free(p);
    free(c);
    return chosen;
}
