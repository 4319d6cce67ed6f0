/* cmd_logits.c — `clora logits`: one forward pass of a model (with or
 * without an adapter) on one sequence, written as a safetensors file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"

static const char logits_description[] =
    "Runs the model on one sequence and writes its output to a safetensors file\n"
    "under the key \"logits\":\n"
    "  GPT-2 and Llama-family folders, GGUF files\n"
    "                  (T, vocab): the next-token logits at every position\n"
    "  BERT folders    (1, classes): class logits, when the model has a head\n"
    "                  (BertForSequenceClassification's own, the adapter's\n"
    "                  modules_to_save, or --classes); else (1, hidden): the\n"
    "                  mean-pooled embedding, or the pooler's output (tanh on\n"
    "                  [CLS]) for an adapter that adapts or saves the pooler\n"
    "  clora folders   the model's output for a (1, T) batch of ids\n";

int cmd_logits(int argc, char **argv)
{
    const char *adapter_name = NULL;
    const char *model_dir = NULL, *adapter = NULL, *tokens = NULL, *text = NULL, *types = NULL,
               *out = NULL, *device = NULL, *system = NULL;
    size_t classes = 0, seed = 0;
    int chat = 0, base_dtype = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "PATH",
                 "a Hugging Face GPT-2, BERT or Llama-family folder, a GGUF file, or a clora "
                 "model folder"),
         .flags = CLI_REQUIRED},
        BASE_DTYPE_OPTION(&base_dtype),
        {CLI_OPT("--adapter", CLI_STRING, &adapter, "DIR",
                 "a PEFT adapter folder to apply (default: none); one with sub-folders "
                 "holding named adapters loads them all")},
        {CLI_OPT("--adapter-name", CLI_STRING, &adapter_name, "NAME",
                 "with --adapter: the adapter to run (default: \"default\")")},
        {CLI_OPT("--tokens", CLI_STRING, &tokens, "IDS",
                 "the token ids, comma-separated: 15496,11,995")},
        {CLI_OPT("--prompt", CLI_STRING, &text, "TEXT",
                 "the text, through the model's tokenizer (BOS/EOS as its config says; BERT: "
                 "[CLS] text [SEP])")},
        {CLI_OPT("--chat", CLI_FLAG, &chat, NULL,
                 "put --prompt in the model's chat template as a user turn")},
        {CLI_OPT("--system", CLI_STRING, &system, "TEXT", "with --chat: a system turn first")},
        {CLI_OPT("--token-types", CLI_STRING, &types, "IDS",
                 "BERT: a token type per token (default: all 0)")},
        {CLI_OPT("--classes", CLI_SIZE, &classes, "K",
                 "BERT: add a K-way head (initialised from --seed) when the adapter brings none")},
        {CLI_OPT("--seed", CLI_SIZE, &seed, "S", "the head's initialisation"), .fallback = "0"},
        {CLI_OPT("--out", CLI_STRING, &out, "FILE", "where to write the logits"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    static const cli_exclusive exclusive[] = {{"--tokens", "--prompt", 1}, {NULL, NULL, 0}};
    const cli_spec spec = {.command = "logits",
                           .usage = "usage: clora logits --model PATH [--adapter DIR] (--tokens "
                                    "IDS | --prompt TEXT [--chat]) --out FILE",
                           .description = logits_description,
                           .options = options,
                           .exclusive = exclusive};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    if (adapter_name && !adapter) {
        fprintf(stderr, "clora logits: --adapter-name goes with --adapter\n");
        return 2;
    }
    int32_t *ids = NULL, *type_ids = NULL;
    size_t count = 0, type_count = 0;
    if ((chat || system) && !text) {
        fprintf(stderr, "clora logits: --chat and --system go with --prompt\n");
        return 2;
    }
    if (tokens && !parse_ids("logits", "--tokens", tokens, &ids, &count))
        return 2;
    if (types && !parse_ids("logits", "--token-types", types, &type_ids, &type_count)) {
        free(ids);
        return 2;
    }
    int exit_code = 1;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    clora_buffer *input = NULL, *type_buf = NULL;
    float *host = NULL;
    model_family family = FAMILY_CLORA;
    clora_status status = clora_device_open(&dev, device);
    if (status != CLORA_OK) {
        cli_report("logits", "opening the device", status);
        goto done;
    }
    if (text) {
        clora_tokenizer *tok = NULL;
        if (!open_tokenizer("logits", model_dir, &tok))
            goto done;
        const int ok = prompt_ids("logits", tok, text, chat, system, NULL, &ids, &count);
        clora_tokenizer_destroy(tok);
        if (!ok)
            goto done;
    }
    if (types && type_count != count) {
        fprintf(stderr, "clora logits: --token-types has %zu entries for %zu tokens\n",
                type_count, count);
        exit_code = 2;
        goto done;
    }
    if (!open_model("logits", dev, model_dir, adapter, adapter_name, classes, seed, base_dtype,
                    &model, &family))
        goto done;
    const size_t shape[2] = {1, count};
    const clora_buffer *y = NULL;
    if ((status = clora_buffer_create_typed(&input, dev, CLORA_DTYPE_I32, 2, shape)) ||
        (status = clora_buffer_upload_i32(input, 0, ids, count))) {
        cli_report("logits", "uploading the tokens", status);
        goto done;
    }
    if (type_ids && ((status = clora_buffer_create_typed(&type_buf, dev, CLORA_DTYPE_I32, 2,
                                                         shape)) ||
                     (status = clora_buffer_upload_i32(type_buf, 0, type_ids, count)) ||
                     (status = clora_model_set_token_types(model, type_buf)))) {
        cli_report("logits", "setting the token types", status);
        goto done;
    }
    if ((status = clora_model_forward(model, input, &y))) {
        cli_report("logits", "running the model", status);
        goto done;
    }
    size_t ndim = clora_buffer_ndim(y), dims[4], numel = 1;
    for (size_t d = 0; d < ndim; ++d)
        numel *= (dims[d] = clora_buffer_dim(y, d));
    if (ndim == 3 && dims[0] == 1) { /* (1, T, V) -> (T, V) */
        dims[0] = dims[1];
        dims[1] = dims[2];
        ndim = 2;
    }
    host = malloc(numel * sizeof *host);
    if (!host || (status = clora_buffer_download(y, 0, host, numel))) {
        cli_report("logits", "reading the output", host ? status : CLORA_ERR_OUT_OF_HOST_MEMORY);
        goto done;
    }
    clora_safetensors_writer *w = NULL;
    if ((status = clora_safetensors_writer_create(&w)) ||
        (status = clora_safetensors_writer_add(w, "logits", CLORA_DTYPE_F32, ndim, dims, host)) ||
        (status = clora_safetensors_writer_write(w, out))) {
        cli_report("logits", "writing the output", status);
        clora_safetensors_writer_destroy(w);
        goto done;
    }
    clora_safetensors_writer_destroy(w);
    printf("logits (");
    for (size_t d = 0; d < ndim; ++d)
        printf("%s%zu", d ? ", " : "", dims[d]);
    printf(") for %zu tokens written to %s\n", count, out);
    clora_node *head = NULL;
    const int classifier = (family == FAMILY_BERT &&
                            clora_model_find(model, "classifier", &head) == CLORA_OK) ||
                           clora_model_find(model, "score", &head) == CLORA_OK;
    const int decoder = !classifier && (family == FAMILY_GPT2 || family == FAMILY_LLAMA);
    if (decoder || classifier) { /* the five largest of the last row */
        const size_t width = dims[ndim - 1];
        const float *last = host + numel - width;
        char *taken = calloc(width, 1);
        printf("%s:", decoder ? "next token, top 5" : "classes, top 5");
        for (size_t k = 0; taken && k < 5 && k < width; ++k) {
            size_t best = width;
            for (size_t j = 0; j < width; ++j)
                if (!taken[j] && (best == width || last[j] > last[best]))
                    best = j;
            taken[best] = 1;
            printf(" %zu (%.4f)", best, (double)last[best]);
        }
        printf("\n");
        free(taken);
    }
    exit_code = 0;
done:
    free(host);
    free(ids);
    free(type_ids);
    clora_buffer_destroy(input);
    clora_buffer_destroy(type_buf);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    return exit_code;
}
