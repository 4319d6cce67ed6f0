/* cmd_generate.c — `clora generate`: continues a prompt (text, a chat
 * turn, or token ids) with a GPT-2 or Llama-family model, with or without
 * an adapter; Llama-family models through a key/value-cache session,
 * GPT-2 by recomputing the sequence each step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"
#include "training.h"

static const char generate_description[] =
    "Continues a prompt with a GPT-2 or Llama-family model (a Hugging Face folder\n"
    "or a GGUF file), printing the new text as it is produced. The prompt is\n"
    "--prompt TEXT (BOS added as the tokenizer's config says), --prompt TEXT\n"
    "--chat (one user turn in the model's chat template, after --system when\n"
    "given), or --tokens IDS. Greedy by default; --temperature above 0 samples,\n"
    "restricted by --top-k and --top-p, from --seed. Generation stops after\n"
    "--max-new tokens, at --eos (default: the tokenizer's end-of-sequence token,\n"
    "and in chat the end-of-turn token), or at a GPT-2 model's longest sequence.\n"
    "Llama-family models keep each layer's keys and values on the device, so\n"
    "each new token runs one position through the model (--no-cache recomputes\n"
    "the whole sequence instead). At the end the prefill and decode speeds are\n"
    "printed to standard error.\n";

typedef struct generation {
    clora_model *model;
    clora_session *session; /* NULL: recompute every step */
    clora_device *device;
    size_t longest;         /* GPT-2's positions; 0: no limit */
    int32_t *seq;           /* prompt, then the new tokens */
    size_t length, vocab;
    float *logits;          /* (V) */
} generation;

/* The last position's logits of a forward over the whole sequence. */
static clora_status recompute(generation *g)
{
    const size_t shape[2] = {1, g->length};
    clora_buffer *input = NULL;
    const clora_buffer *y = NULL;
    clora_status status = clora_buffer_create_typed(&input, g->device, CLORA_DTYPE_I32, 2, shape);
    if (status == CLORA_OK)
        status = clora_buffer_upload_i32(input, 0, g->seq, g->length);
    if (status == CLORA_OK)
        status = clora_model_forward(g->model, input, &y);
    if (status == CLORA_OK && (clora_buffer_ndim(y) != 3 || clora_buffer_dim(y, 2) != g->vocab))
        status = CLORA_ERR_SHAPE_MISMATCH;
    if (status == CLORA_OK)
        status = clora_buffer_download(y, (g->length - 1) * g->vocab, g->logits, g->vocab);
    clora_buffer_destroy(input);
    return status;
}

/* Runs tokens [from, length) and leaves the next token's logits. */
static clora_status step(generation *g, size_t from)
{
    if (!g->session)
        return recompute(g);
    const size_t count = g->length - from;
    return clora_session_feed(g->session, g->seq + from, &count, count, g->logits);
}

/* Streams the generated text: the bytes decoded since the last call,
 * holding back an unfinished UTF-8 character. */
typedef struct text_stream {
    const clora_tokenizer *tokenizer; /* NULL: print ids */
    size_t printed;                   /* bytes already written */
} text_stream;

static void stream(text_stream *ts, const int32_t *ids, size_t count)
{
    if (!ts->tokenizer) {
        printf("%s%d", count > 1 ? "," : "", (int)ids[count - 1]);
        fflush(stdout);
        return;
    }
    char *text = NULL;
    size_t length = 0;
    if (clora_tokenizer_decode_flags(ts->tokenizer, ids, count, CLORA_DECODE_SKIP_SPECIAL, &text,
                                     &length) != CLORA_OK)
        return;
    size_t end = length; /* back over a trailing unfinished character */
    size_t start = end;
    while (start > 0 && start + 4 > end && ((unsigned char)text[start - 1] & 0xC0) == 0x80)
        --start;
    if (start > 0) {
        const unsigned char lead = (unsigned char)text[start - 1];
        const size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        if (end - (start - 1) < need)
            end = start - 1;
    }
    if (end > ts->printed) {
        fwrite(text + ts->printed, 1, end - ts->printed, stdout);
        fflush(stdout);
        ts->printed = end;
    }
    free(text);
}

int cmd_generate(int argc, char **argv)
{
    const char *adapter_name = NULL;
    const char *model_dir = NULL, *adapter = NULL, *tokens = NULL, *prompt = NULL,
               *system = NULL, *device = NULL;
    size_t max_new = 0, top_k = 0, seed = 0, eos = (size_t)-1;
    float temperature = 0.0f, top_p = 1.0f;
    int chat = 0, print_ids = 0, no_cache = 0, base_dtype = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "PATH",
                 "a GPT-2 or Llama-family Hugging Face folder, or a GGUF file"),
         .flags = CLI_REQUIRED},
        BASE_DTYPE_OPTION(&base_dtype),
        {CLI_OPT("--adapter", CLI_STRING, &adapter, "DIR",
                 "a PEFT adapter folder to apply (default: none); one with sub-folders "
                 "holding named adapters loads them all")},
        {CLI_OPT("--adapter-name", CLI_STRING, &adapter_name, "NAME",
                 "with --adapter: the adapter to run (default: \"default\")")},
        {CLI_OPT("--prompt", CLI_STRING, &prompt, "TEXT", "the prompt as text")},
        {CLI_OPT("--chat", CLI_FLAG, &chat, NULL,
                 "put --prompt in the model's chat template as a user turn")},
        {CLI_OPT("--system", CLI_STRING, &system, "TEXT",
                 "with --chat: a system turn first (default: the template's own)")},
        {CLI_OPT("--tokens", CLI_STRING, &tokens, "IDS",
                 "the prompt's ids, comma-separated: 1,9690,198")},
        {CLI_OPT("--max-new", CLI_SIZE, &max_new, "N", "tokens to add at most"),
         .fallback = "128", CLI_AT_LEAST(1)},
        {CLI_OPT("--temperature", CLI_FLOAT, &temperature, "T",
                 "divides the logits before sampling; 0: greedy"),
         .fallback = "0", CLI_AT_LEAST(0)},
        {CLI_OPT("--top-k", CLI_SIZE, &top_k, "K",
                 "sample among the K most likely tokens (0: all)"),
         .fallback = "0"},
        {CLI_OPT("--top-p", CLI_FLOAT, &top_p, "P",
                 "then among the most likely whose probabilities reach P"),
         .fallback = "1", .flags = CLI_ABOVE_MIN, .min = 0, .max = 1},
        {CLI_OPT("--seed", CLI_SIZE, &seed, "S", "sampling seed"), .fallback = "0"},
        {CLI_OPT("--eos", CLI_SIZE, &eos, "ID",
                 "stop after this token (default: the tokenizer's end-of-sequence)")},
        {CLI_OPT("--print-ids", CLI_FLAG, &print_ids, NULL,
                 "print the generated ids as one comma-separated line at the end")},
        {CLI_OPT("--no-cache", CLI_FLAG, &no_cache, NULL,
                 "recompute the whole sequence for every token (for comparison)")},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    static const cli_exclusive exclusive[] = {{"--prompt", "--tokens", 1}, {NULL, NULL, 0}};
    const cli_spec spec = {
        .command = "generate",
        .usage = "usage: clora generate --model PATH (--prompt TEXT [--chat] | --tokens IDS) "
                 "[options]",
        .description = generate_description,
        .options = options,
        .exclusive = exclusive};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    if (adapter_name && !adapter) {
        fprintf(stderr, "clora generate: --adapter-name goes with --adapter\n");
        return 2;
    }
    if ((chat || system) && !prompt) {
        fprintf(stderr, "clora generate: --chat and --system go with --prompt\n");
        return 2;
    }
    if (system && !chat) {
        fprintf(stderr, "clora generate: --system needs --chat\n");
        return 2;
    }

    int exit_code = 1;
    generation g;
    memset(&g, 0, sizeof g);
    clora_tokenizer *tok = NULL;
    model_family family = FAMILY_CLORA;
    size_t count = 0;
    clora_status status = CLORA_OK;
    /* the tokenizer: needed for text prompts, used for text output when there */
    if (prompt && !open_tokenizer("generate", model_dir, &tok))
        return 1;
    if (!prompt && !find_tokenizer(model_dir, &tok))
        tok = NULL; /* ids in, ids out */
    if (!prompt_ids("generate", tok, prompt, chat, system, tokens, &g.seq, &count))
        goto done;
    if ((status = clora_device_open(&g.device, device))) {
        cli_report("generate", "opening the device", status);
        goto done;
    }
    if (!open_model("generate", g.device, model_dir, adapter, adapter_name, 0, seed, base_dtype,
                    &g.model, &family))
        goto done;
    if (family != FAMILY_GPT2 && family != FAMILY_LLAMA) {
        fprintf(stderr,
                "clora generate: %s is not a GPT-2 or Llama-family language model; generation "
                "needs one\n",
                model_dir);
        goto done;
    }
    clora_param_info info;
    if (family == FAMILY_GPT2 &&
        clora_model_find_param(g.model, "transformer.wpe.weight", &info) == CLORA_OK)
        g.longest = clora_buffer_dim(info.value, 0);
    if (g.longest && count > g.longest) {
        fprintf(stderr, "clora generate: %zu prompt tokens; the model takes at most %zu\n", count,
                g.longest);
        goto done;
    }
    int32_t *grown = realloc(g.seq, (count + max_new) * sizeof *grown);
    if (!grown) {
        fprintf(stderr, "clora generate: out of memory\n");
        goto done;
    }
    g.seq = grown;
    g.length = count;
    clora_node *score = NULL;
    if (clora_model_find(g.model, "score", &score) == CLORA_OK) {
        fprintf(stderr, "clora generate: with this adapter the model is a sequence classifier "
                        "(head \"score\"): it classifies (clora logits), it does not generate\n");
        goto done;
    }
    if (family == FAMILY_LLAMA && !no_cache) {
        if ((status = clora_session_create(&g.session, g.model, 1, count + max_new))) {
            cli_report("generate", "making the key/value cache", status);
            goto done;
        }
        g.vocab = clora_session_vocab_size(g.session);
    } else {
        clora_node *head = NULL;
        if (clora_model_find(g.model, "lm_head", &head) != CLORA_OK) {
            fprintf(stderr, "clora generate: the model has no lm_head\n");
            goto done;
        }
        g.vocab = clora_node_out_features(head);
    }
    if (!(g.logits = malloc(g.vocab * sizeof *g.logits))) {
        fprintf(stderr, "clora generate: out of memory\n");
        goto done;
    }
    for (size_t i = 0; i < count; ++i)
        if (g.seq[i] < 0 || (size_t)g.seq[i] >= g.vocab) {
            fprintf(stderr, "clora generate: token id %d is outside the vocabulary [0, %zu)\n",
                    (int)g.seq[i], g.vocab);
            goto done;
        }
    /* stop tokens: --eos, or the tokenizer's EOS and (in chat) end of turn */
    int32_t stops[3] = {-1, -1, -1};
    if (eos != (size_t)-1) {
        stops[0] = (int32_t)eos;
    } else if (tok) {
        stops[0] = clora_tokenizer_eos(tok);
        stops[1] = clora_tokenizer_token_id(tok, "<|im_end|>");
        stops[2] = clora_tokenizer_token_id(tok, "<|eot_id|>");
    }

    const clora_sampling sampling = {temperature, top_k, top_p};
    uint64_t rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)seed;
    text_stream ts = {tok, 0};
    const char *stopped = "after --max-new tokens";
    double start = cli_seconds(), prefill = 0.0;
    if ((status = step(&g, 0))) {
        cli_report("generate", "running the prompt", status);
        goto done;
    }
    prefill = cli_seconds() - start;
    start = cli_seconds();
    size_t made = 0, decoded = 0;
    while (made < max_new) {
        const int32_t next = clora_sample(g.logits, g.vocab, &sampling, &rng);
        g.seq[g.length++] = next;
        ++made;
        if (next == stops[0] || next == stops[1] || next == stops[2]) {
            stopped = "at the end-of-sequence token";
            break;
        }
        stream(&ts, g.seq + count, made);
        if (made == max_new)
            break;
        if (g.longest && g.length == g.longest) {
            stopped = "at the model's longest sequence";
            break;
        }
        if ((status = step(&g, g.length - 1))) {
            cli_report("generate", "running the model", status);
            goto done;
        }
        ++decoded;
    }
    const double decode = cli_seconds() - start;
    printf("\n");
    fflush(stdout);
    if (print_ids) {
        for (size_t i = count; i < g.length; ++i)
            printf("%s%d", i > count ? "," : "", (int)g.seq[i]);
        printf("\n");
        fflush(stdout);
    }
    fprintf(stderr,
            "clora generate: %zu new tokens (%s); prefill %zu tokens in %.3f s (%.1f tokens/s), "
            "decode %zu tokens in %.3f s (%.1f tokens/s)%s\n",
            made, stopped, count, prefill, prefill > 0 ? (double)count / prefill : 0.0, decoded,
            decode, decode > 0 ? (double)decoded / decode : 0.0,
            g.session ? "" : ", recomputing each step");
    print_memory(stderr, g.device, "clora generate: ");
    exit_code = 0;
done:
    free(g.seq);
    free(g.logits);
    clora_session_destroy(g.session);
    clora_model_destroy(g.model);
    clora_device_destroy(g.device);
    clora_tokenizer_destroy(tok);
    return exit_code;
}
