/* classifier.c — sequence classification on a decoder (GPT-2, Llama), as
 * transformers' GPT2ForSequenceClassification and
 * LlamaForSequenceClassification compute it: the trunk's hidden state of
 * each row's last kept token through "score", a bias-free Linear
 * (hidden -> labels). It replaces lm_head:
 *
 *   transformer | model  (the trunk, unchanged)
 *   pool                 last_token_pool: (B, T, C) -> (B, C)
 *   score                Linear (labels, C)
 */
#include "nn/nn.h"

/* Seeds the head's own initialisation, apart from the model's stream. */
#define HEAD_SEED_SALT 0x5c07e5c07e5c07e5ull

clora_status clora_model_add_classifier(clora_model *model, size_t num_labels, float init_std,
                                        uint64_t seed)
{
    if (!model)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_add_classifier: model is NULL");
    if (num_labels == 0 || num_labels > 65536)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_model_add_classifier: num_labels %zu must be 1..65536",
                           num_labels);
    if (!(init_std >= 0.0f) || init_std > 1e3f)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_model_add_classifier: init_std %g must be >= 0 (0: 0.02)",
                           (double)init_std);
    clora_node *root = model->root;
    clora_node *trunk = root->child_count ? root->children[0] : NULL;
    clora_node *lm_head = clora__child(root, "lm_head");
    if (!trunk || (trunk->kind != &clora__gpt2_model_kind &&
                   trunk->kind != &clora__llama_model_kind))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "clora_model_add_classifier: the model is not a GPT-2 or Llama-family "
                           "decoder");
    if (clora__child(root, "score"))
        return clora__fail(CLORA_ERR_STATE, "clora_model_add_classifier: the model has a "
                                            "classifier (\"score\") already");
    if (!lm_head || root->child_count != 2 || root->children[1] != lm_head ||
        lm_head->kind != &clora__linear_kind)
        return clora__fail(CLORA_ERR_STATE,
                           "clora_model_add_classifier: the decoder must end in its plain "
                           "lm_head (add the classifier before applying LoRA)");
    if (model->merged)
        return clora__fail(CLORA_ERR_STATE, "clora_model_add_classifier: unmerge first");
    size_t hidden = 0;
    clora__linear_dims_of(lm_head, &hidden, NULL, NULL);
    clora__node_remove_child(root, lm_head);
    clora_node *score = NULL;
    clora_status status = clora__add_composite(root, "pool", &clora__last_token_pool_kind, NULL);
    if (status == CLORA_OK)
        status = clora_node_add_linear(root, "score", hidden, num_labels, 0, &score);
    if (status == CLORA_OK) { /* N(0, std^2), as transformers initialises a new Linear */
        const uint64_t stream = model->init_rng;
        const int skip = model->skip_init;
        model->init_rng = seed ^ HEAD_SEED_SALT;
        model->skip_init = 0;
        status = clora__param_reinit(score, "weight", CLORA__INIT_NORMAL,
                                     init_std > 0.0f ? init_std : 0.02f);
        model->init_rng = stream;
        model->skip_init = skip;
    }
    if (status != CLORA_OK)
        return clora__fail_prefixed(status, "clora_model_add_classifier");
    score->new_head = 1;
    return CLORA_OK;
}
