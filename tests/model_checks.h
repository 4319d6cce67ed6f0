/* model_checks.h — checks the model tests share: golden tensors as device
 * inputs and expected outputs, and finite differences through a whole
 * model with LoRA on some of its Linears. */
#ifndef CLORA_TESTS_MODEL_CHECKS_H
#define CLORA_TESTS_MODEL_CHECKS_H

#include "golden.h"
#include "support.h"

/* An int32 device buffer from a golden tensor of whole numbers. */
clora_buffer *test_golden_ints(const golden_tensor *t);
/* y against a golden tensor (same element count). */
void test_expect_golden(const char *what, const clora_buffer *y, const golden_tensor *want,
                        double atol, double rtol);
/* Every "d:<param>" tensor of the case against that parameter's gradient;
 * returns how many were compared. */
size_t test_expect_golden_grads(clora_model *model, const golden_case *c, double atol,
                                double rtol);

/* Draws every lora_B of the model from U(-0.5, 0.5) with *rng, so that the
 * adapters change the output (PEFT starts B at zero). */
void test_randomise_lora_b(clora_model *model, uint64_t *rng);

/* Makes every parameter trainable, puts LoRA (rank 2, dropout 0.25, B
 * drawn non-zero) on `targets` (*replaced: how many), trains with the
 * attention mask `mask` (may be NULL), and compares backward of
 * L = sum(G * logits) with central differences at three elements of every
 * parameter tensor, the forward counter pinned so that each forward draws
 * the same dropout masks. Returns the number of elements compared. */
size_t test_finite_differences(clora_model *model, const clora_buffer *ids,
                               const clora_buffer *mask, const char *const *targets,
                               size_t target_count, size_t *replaced);

#endif /* CLORA_TESTS_MODEL_CHECKS_H */
