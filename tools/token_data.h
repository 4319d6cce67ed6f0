/* token_data.h — the examples of a text file (text_data.h) through a
 * tokenizer into a dataset for `clora train` (training.h): classification
 * with one label per text, or causal-LM data with the labels shifted for
 * next-token prediction and only the scored tokens labelled. */
#ifndef CLORA_TOOLS_TOKEN_DATA_H
#define CLORA_TOOLS_TOKEN_DATA_H

#include <stddef.h>

#include "clora/clora.h"
#include "text_data.h"
#include "training.h"

/* What the tokenizing did, for the report. */
typedef struct token_report {
    size_t examples;   /* in the file */
    size_t kept;       /* in the dataset (N) */
    size_t cut;        /* cut to max_length */
    size_t dropped;    /* causal LM: no scored token left after the cut */
    size_t tokens;     /* of the kept examples, before padding */
    size_t longest;    /* the padded length (T) */
    size_t scored;     /* causal LM: labels other than -100 */
    char **labels;     /* classification: the label names by class (label_count) */
    size_t label_count;
    size_t *per_label; /* examples of each class */
} token_report;

void token_report_free(token_report *report);

/* TEXT_LABELLED examples into "inputs" and "attention_mask" I32 (N, T)
 * and "labels" I32 (N): each text as clora_tokenizer_encode makes it
 * (WordPiece: [CLS] text [SEP]; BPE: with BOS / EOS as the tokenizer's
 * config says), cut to max_length tokens and padded to the longest. The
 * classes are the names of label_list ("A,B,..."; a label not in it is an
 * error) in its order, else the labels of the file, sorted; their JSON
 * list goes into data->label_names. `path` names the file in messages.
 * Prints a one-line error and returns 0 on failure. */
int tokenize_labelled(const clora_tokenizer *tok, const text_data *text, const char *path,
                      size_t max_length, const char *label_list, dataset *data,
                      token_report *report);

/* TEXT_PLAIN, TEXT_PROMPTED and TEXT_CHAT examples into "inputs",
 * "attention_mask" and "labels", all I32 (N, T):
 *   text: the text with BOS / EOS as the tokenizer's config says, every
 *     token scored;
 *   prompt/completion: BOS where the tokenizer adds one, the prompt's
 *     tokens, the completion's, then EOS (where the tokenizer has one) so
 *     that the model learns to stop; the completion and EOS scored;
 *   messages: the conversation in the tokenizer's chat template (one that
 *     clora_chat_template_recognize knows), each assistant message's
 *     content and its end-of-turn marker scored.
 * With train_on_prompt every token is scored. Each example is cut to
 * max_length tokens; one with no scored token left after its first is
 * dropped. labels[i][t] is ids[i][t + 1] where token t + 1 is scored, else
 * -100 (so the last position always is); padding has the tokenizer's
 * padding id (else EOS, else 0), mask 0 and label -100. Prints a one-line
 * error and returns 0 on failure. */
int tokenize_causal(const clora_tokenizer *tok, const text_data *text, const char *path,
                    size_t max_length, int train_on_prompt, dataset *data,
                    token_report *report);

#endif /* CLORA_TOOLS_TOKEN_DATA_H */
