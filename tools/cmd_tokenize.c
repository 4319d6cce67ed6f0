/* cmd_tokenize.c — `clora tokenize`: a text file (labelled lines, CSV,
 * TSV or JSON Lines) through any tokenizer clora reads into a dataset
 * file for `clora train`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"
#include "text_data.h"
#include "token_data.h"
#include "training.h"

static const char tokenize_description[] =
    "Turns a text file into a dataset for `clora train`, through the tokenizer of\n"
    "--model: a model folder (tokenizer.json, vocab.json + merges.txt, or\n"
    "vocab.txt) or a GGUF file. The file is one of (--format, else by its ending):\n"
    "\n"
    "  lines  LABEL<TAB>TEXT lines (UTF-8; empty lines skipped): any other ending\n"
    "  csv    .csv: a header row, then an example a row; the text and the label\n"
    "         from the columns --text-column and --label-column name; RFC 4180\n"
    "         quoting (a quoted field may hold separators, line breaks, and \"\"\n"
    "         for a quote)\n"
    "  tsv    .tsv: the same with tabs between the fields\n"
    "  jsonl  .jsonl: one JSON object a line, all of one kind:\n"
    "           {\"text\": ...}: a text for causal-LM training, every token scored\n"
    "           {\"prompt\": ..., \"completion\": ...} (or \"response\"): prompt and\n"
    "             completion, then EOS so that the model learns to stop; only the\n"
    "             completion and EOS scored\n"
    "           {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}: a conversation\n"
    "             in the model's chat template (ChatML or Llama 3); each assistant\n"
    "             message's content and end-of-turn marker scored\n"
    "         --train-on-prompt scores every token instead.\n"
    "\n"
    "Labelled text is classification: each text becomes [CLS] text [SEP] through\n"
    "WordPiece, or the text with BOS / EOS as a BPE tokenizer's config says, and\n"
    "\"labels\" I32 (N) holds class indices; the label names (a JSON list, in\n"
    "class order) go into the metadata under \"label_names\".\n"
    "\n"
    "JSON Lines are causal-LM data: \"labels\" I32 (N, T) is already shifted for\n"
    "next-token prediction, labels[i][t] = inputs[i][t + 1] where token t + 1 is\n"
    "scored, else -100 (the last position always). An example with no scored\n"
    "token left after the cut to --max-length is dropped (and counted).\n"
    "\n"
    "Examples are cut to --max-length tokens and padded to the longest in the\n"
    "file: \"inputs\" and \"attention_mask\" I32 (N, T); padding has the tokenizer's\n"
    "padding id (else EOS, else 0), mask 0 and label -100. The metadata records\n"
    "\"task\" (classify or causal_lm) and \"tokenizer\", the tokenizer's\n"
    "fingerprint: `clora train` refuses the dataset for a model whose tokenizer\n"
    "has another one.\n";

typedef struct tokenize_options {
    const char *model, *input, *out, *label_list, *text_column, *label_column;
    size_t max_length;
    int format, format_given, text_column_given, label_column_given, train_on_prompt;
} tokenize_options;

static int parse(int argc, char **argv, tokenize_options *o)
{
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &o->model, "PATH",
                 "a model folder or GGUF file with a tokenizer"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--input", CLI_STRING, &o->input, "FILE", "the text file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &o->out, "FILE", "the dataset to write"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--format", CLI_CHOICE, &o->format, "NAME",
                 "lines, csv, tsv or jsonl (default: by the file's ending)"),
         .choices = text_format_names, .given = &o->format_given},
        {CLI_OPT("--text-column", CLI_STRING, &o->text_column, "NAME",
                 "CSV and TSV: the column of the text"),
         .fallback = "text", .given = &o->text_column_given},
        {CLI_OPT("--label-column", CLI_STRING, &o->label_column, "NAME",
                 "CSV and TSV: the column of the label"),
         .fallback = "label", .given = &o->label_column_given},
        {CLI_OPT("--labels", CLI_STRING, &o->label_list, "A,B,...",
                 "labelled text: the label names in class order (default: the names in the "
                 "file, sorted); an example with another label is an error")},
        {CLI_OPT("--train-on-prompt", CLI_FLAG, &o->train_on_prompt, NULL,
                 "JSON Lines: score every token, the prompt's and the user's too")},
        {CLI_OPT("--max-length", CLI_SIZE, &o->max_length, "L",
                 "tokens per example at most, BOS and EOS included (at most the tokenizer's "
                 "model_max_length)"),
         .fallback = "512", CLI_AT_LEAST(2)},
        CLI_END};
    const cli_spec spec = {.command = "tokenize",
                           .usage = "usage: clora tokenize --model PATH --input FILE --out FILE "
                                    "[options]",
                           .description = tokenize_description,
                           .options = options};
    return cli_parse(&spec, argc, argv);
}

/* Options that go with other data than the file holds. */
static int check_options(const tokenize_options *o, text_format format, const text_data *text)
{
    const char *problem = NULL;
    if ((o->text_column_given || o->label_column_given) && format != TEXT_CSV &&
        format != TEXT_TSV)
        problem = o->text_column_given ? "--text-column goes with --format csv or tsv"
                                       : "--label-column goes with --format csv or tsv";
    else if (o->label_list && text->kind != TEXT_LABELLED)
        problem = "--labels goes with labelled text (lines, csv, tsv)";
    else if (o->train_on_prompt && text->kind == TEXT_LABELLED)
        problem = "--train-on-prompt goes with JSON Lines";
    if (problem)
        fprintf(stderr, "clora tokenize: %s; %s holds %s (--format %s)\n", problem, o->input,
                text_kind_name(text->kind), text_format_names[format]);
    return problem == NULL;
}

static void print_report(const tokenize_options *o, const text_data *text,
                         const token_report *r, const char *fingerprint)
{
    printf("%zu examples from %s -> %s\n", r->kept, o->input, o->out);
    printf("  tokens per example: %.1f on average, %zu at most (the padded length); "
           "%zu cut to --max-length %zu\n",
           (double)r->tokens / (double)r->kept, r->longest, r->cut, o->max_length);
    if (text->kind == TEXT_LABELLED) {
        printf("  labels:");
        for (size_t k = 0; k < r->label_count; ++k)
            printf(" %zu=%s (%zu)", k, r->labels[k], r->per_label[k]);
        printf("\n");
    } else {
        printf("  %s: %zu of the %zu tokens are targets (labels other than -100, shifted "
               "for next-token prediction)%s\n",
               text_kind_name(text->kind), r->scored, r->tokens,
               o->train_on_prompt ? "; --train-on-prompt" : "");
        if (r->dropped)
            printf("  dropped %zu of %zu examples: no scored token left after the cut to "
                   "--max-length %zu\n",
                   r->dropped, r->examples, o->max_length);
    }
    printf("  task %s, tokenizer %s\n", text->kind == TEXT_LABELLED ? "classify" : "causal_lm",
           fingerprint);
}

int cmd_tokenize(int argc, char **argv)
{
    tokenize_options o = {0};
    int parsed = parse(argc, argv, &o);
    if (parsed != CLI_RUN)
        return parsed;
    const text_format format = o.format_given ? (text_format)o.format : text_format_of(o.input);
    int exit_code = 1;
    clora_tokenizer *tok = NULL;
    text_data text;
    token_report report;
    dataset data;
    memset(&text, 0, sizeof text);
    memset(&report, 0, sizeof report);
    memset(&data, 0, sizeof data);
    char fingerprint[17];
    if (!open_tokenizer("tokenize", o.model, &tok))
        goto done;
    clora_status status = clora_tokenizer_fingerprint(tok, fingerprint);
    if (status != CLORA_OK) {
        cli_report("tokenize", "fingerprinting the tokenizer", status);
        goto done;
    }
    if (clora_tokenizer_max_length(tok) && o.max_length > clora_tokenizer_max_length(tok))
        o.max_length = clora_tokenizer_max_length(tok);
    if (!text_data_read(&text, o.input, format, o.text_column, o.label_column)) {
        fprintf(stderr, "clora tokenize: %s\n", text.error);
        goto done;
    }
    if (!check_options(&o, format, &text))
        goto done;
    const int classify = text.kind == TEXT_LABELLED;
    if (!(classify ? tokenize_labelled(tok, &text, o.input, o.max_length, o.label_list, &data,
                                       &report)
                   : tokenize_causal(tok, &text, o.input, o.max_length, o.train_on_prompt, &data,
                                     &report)))
        goto done;
    data.tokenizer = malloc(sizeof fingerprint);
    data.task = malloc(sizeof "causal_lm");
    if (!data.tokenizer || !data.task) {
        fprintf(stderr, "clora tokenize: out of memory\n");
        goto done;
    }
    memcpy(data.tokenizer, fingerprint, sizeof fingerprint);
    strcpy(data.task, classify ? "classify" : "causal_lm");
    if (!dataset_save("tokenize", o.out, &data))
        goto done;
    print_report(&o, &text, &report, fingerprint);
    exit_code = 0;
done:
    dataset_free(&data);
    token_report_free(&report);
    text_data_free(&text);
    clora_tokenizer_destroy(tok);
    return exit_code;
}
