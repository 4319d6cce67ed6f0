/* cmd_generate.c — `clora generate`: GPT-2 text continuation, token ids in
 * and out, greedy or top-k sampling, with or without an adapter. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"

static const char generate_description[] =
    "Continues a sequence of token ids with a GPT-2 model, one token at a time,\n"
    "and prints the whole sequence (prompt, then the new ids) comma-separated.\n"
    "Greedy by default: each new token is the one with the largest logit.\n";

/* The next token from the last position's logits: the best of the top k,
 * drawn with probabilities softmax(logit / temperature). */
static int32_t choose_token(const float *logits, size_t vocab, size_t k, float temperature,
                            uint64_t *rng, size_t *best)
{
    /* partial selection of the k largest */
    for (size_t i = 0; i < k; ++i) {
        size_t top = i;
        for (size_t j = i + 1; j < vocab; ++j)
            if (logits[best[j]] > logits[best[top]])
                top = j;
        size_t t = best[i];
        best[i] = best[top];
        best[top] = t;
    }
    if (k == 1)
        return (int32_t)best[0];
    double total = 0.0, p[256];
    for (size_t i = 0; i < k; ++i)
        total += p[i] = exp(((double)logits[best[i]] - (double)logits[best[0]]) / temperature);
    double u = (double)cli_uniform(rng, 0.0f, 1.0f) * total;
    for (size_t i = 0; i < k; ++i) {
        if (u < p[i])
            return (int32_t)best[i];
        u -= p[i];
    }
    return (int32_t)best[k - 1];
}

int cmd_generate(int argc, char **argv)
{
    const char *model_dir = NULL, *adapter = NULL, *tokens = NULL, *device = NULL;
    size_t max_new = 0, top_k = 0, seed = 0, eos = (size_t)-1;
    float temperature = 0.0f;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "DIR",
                 "a Hugging Face GPT-2 folder (or a clora folder of one)"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--adapter", CLI_STRING, &adapter, "DIR",
                 "a PEFT adapter folder to apply (default: none)")},
        {CLI_OPT("--tokens", CLI_STRING, &tokens, "IDS",
                 "the prompt's ids, comma-separated: 15496,11,995"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--max-new", CLI_SIZE, &max_new, "N",
                 "tokens to add; stops early at the model's longest sequence or at --eos"),
         .fallback = "20"},
        {CLI_OPT("--top-k", CLI_SIZE, &top_k, "K",
                 "sample among the K most likely tokens (1: greedy)"),
         .fallback = "1", .min = 1, .max = 256},
        {CLI_OPT("--temperature", CLI_FLOAT, &temperature, "T",
                 "divides the logits before sampling"),
         .fallback = "1", .flags = CLI_ABOVE_MIN, CLI_AT_LEAST(0)},
        {CLI_OPT("--eos", CLI_SIZE, &eos, "ID", "stop after this token (default: none)")},
        {CLI_OPT("--seed", CLI_SIZE, &seed, "S", "sampling seed"), .fallback = "0"},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    const cli_spec spec = {
        .command = "generate",
        .usage = "usage: clora generate --model DIR [--adapter DIR] --tokens IDS [options]",
        .description = generate_description,
        .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    int32_t *prompt = NULL;
    size_t count = 0;
    if (!parse_ids("generate", "--tokens", tokens, &prompt, &count))
        return 2;
    int exit_code = 1;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    clora_buffer *input = NULL;
    int32_t *seq = realloc(prompt, (count + max_new) * sizeof *seq);
    float *row = NULL;
    size_t *order = NULL;
    model_family family = FAMILY_CLORA;
    clora_status status = CLORA_OK;
    if (!seq) {
        free(prompt);
        fprintf(stderr, "clora generate: out of memory\n");
        return 1;
    }
    if ((status = clora_device_open(&dev, device))) {
        cli_report("generate", "opening the device", status);
        goto done;
    }
    if (!open_model("generate", dev, model_dir, adapter, 0, seed, &model, &family))
        goto done;
    if (family == FAMILY_BERT) {
        fprintf(stderr, "clora generate: %s is a BERT model; generation needs GPT-2\n", model_dir);
        goto done;
    }
    clora_param_info positions;
    if (clora_model_find_param(model, "transformer.wpe.weight", &positions) != CLORA_OK) {
        fprintf(stderr, "clora generate: %s is not a GPT-2 model (no transformer.wpe)\n",
                model_dir);
        goto done;
    }
    const size_t longest = clora_buffer_dim(positions.value, 0);
    if (count > longest) {
        fprintf(stderr, "clora generate: %zu prompt tokens; the model takes at most %zu\n", count,
                longest);
        goto done;
    }
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ seed;
    size_t length = count, vocab = 0;
    const char *stopped = "after --max-new tokens";
    double start = cli_seconds();
    for (size_t step = 0; step < max_new; ++step) {
        if (length == longest) {
            stopped = "at the model's longest sequence";
            break;
        }
        const size_t shape[2] = {1, length};
        const clora_buffer *y = NULL;
        clora_buffer_destroy(input);
        input = NULL;
        if ((status = clora_buffer_create_typed(&input, dev, CLORA_DTYPE_I32, 2, shape)) ||
            (status = clora_buffer_upload_i32(input, 0, seq, length)) ||
            (status = clora_model_forward(model, input, &y))) {
            cli_report("generate", "running the model", status);
            goto done;
        }
        if (clora_buffer_ndim(y) != 3) {
            fprintf(stderr, "clora generate: the model's output is not (1, T, vocab) logits\n");
            goto done;
        }
        if (!vocab) {
            vocab = clora_buffer_dim(y, 2);
            row = malloc(vocab * sizeof *row);
            order = malloc(vocab * sizeof *order);
            if (!row || !order) {
                fprintf(stderr, "clora generate: out of memory\n");
                goto done;
            }
        }
        if ((status = clora_buffer_download(y, (length - 1) * vocab, row, vocab))) {
            cli_report("generate", "reading the logits", status);
            goto done;
        }
        for (size_t j = 0; j < vocab; ++j)
            order[j] = j;
        const size_t k = top_k < vocab ? top_k : vocab;
        seq[length++] = choose_token(row, vocab, k, temperature, &rng, order);
        if ((size_t)seq[length - 1] == eos) {
            stopped = "at --eos";
            break;
        }
    }
    double seconds = cli_seconds() - start;
    for (size_t i = 0; i < length; ++i)
        printf("%s%d", i ? "," : "", (int)seq[i]);
    printf("\n");
    fprintf(stderr, "clora generate: %zu new tokens in %.2f s (%s)\n", length - count, seconds,
            stopped);
    exit_code = 0;
done:
    free(seq);
    free(row);
    free(order);
    clora_buffer_destroy(input);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    return exit_code;
}
