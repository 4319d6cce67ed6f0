/* cmd_merge.c — `clora merge`: a model plus an adapter, saved as one model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "models.h"
#include "options.h"
#include "training.h"

static const char merge_description[] =
    "Loads a model (a clora model folder, a Hugging Face folder or a GGUF\n"
    "file) and a PEFT LoRA adapter folder, merges the adapter into the\n"
    "weights (W += s*B*A) and saves the result as a model that runs without\n"
    "LoRA. The inputs are not modified; the output's files are written whole\n"
    "or not at all.\n"
    "\n"
    "What is written follows the model:\n"
    "  a Hugging Face folder gives a Hugging Face folder that transformers'\n"
    "    from_pretrained loads: the model's own config.json (torch_dtype set\n"
    "    to what is written), its tensor names, model.safetensors (sharded\n"
    "    past 5 GB with model.safetensors.index.json, as transformers\n"
    "    shards), and its tokenizer files and generation_config.json;\n"
    "  a clora folder gives a clora folder;\n"
    "  a GGUF file gives a clora folder (clora loads it; transformers and\n"
    "    llama.cpp do not).\n"
    "\n"
    "A model whose weights are packed (a quantized GGUF file) cannot take a\n"
    "merge in place: --out-dtype f32, f16 or bf16 loads its weights as\n"
    "float32, merges there, and writes the weights as that type.\n"
    "\n"
    "An adapter folder with sub-folders holding named adapters (as PEFT saves\n"
    "several) loads them all: --adapter-name picks the one to merge, and\n"
    "--combine A:0.7,B:0.3 merges a weighted combination of named ones, as\n"
    "PEFT's add_weighted_adapter makes it (--combination cat: exact, rank the\n"
    "sum of theirs; linear: their common rank, an approximation).\n"
    "--adapter-out saves the adapter merged (a combination, say) as a PEFT\n"
    "adapter folder instead of, or beside, the merged model.\n";

static const char *const combination_names[] = {"linear", "cat", NULL}; /* clora_combination */

/* "A:0.7,B:0.3" into names and weights (names point into `text`, changed). */
static int parse_combine(char *text, const char **names, float *weights, size_t max,
                         size_t *count)
{
    *count = 0;
    for (char *item = strtok(text, ","); item; item = strtok(NULL, ",")) {
        char *colon = strrchr(item, ':'), *end = NULL;
        if (*count == max || !colon || colon == item ||
            (weights[*count] = strtof(colon + 1, &end), end == colon + 1 || *end)) {
            fprintf(stderr, "clora merge: --combine entry \"%s\" is not NAME:WEIGHT\n", item);
            return 0;
        }
        *colon = '\0';
        names[(*count)++] = item;
    }
    if (*count == 0)
        fprintf(stderr, "clora merge: --combine names no adapter\n");
    return *count > 0;
}

static const char *const out_dtype_names[] = {"stored", "f32", "f16", "bf16", NULL};
static const clora_dtype out_dtypes[] = {CLORA_DTYPE_AS_STORED, CLORA_DTYPE_F32, CLORA_DTYPE_F16,
                                         CLORA_DTYPE_BF16};

int cmd_merge(int argc, char **argv)
{
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *device = NULL;
    const char *adapter_name = NULL, *combine = NULL, *adapter_out = NULL;
    int out_dtype = 0, combination = 1, shard_given = 0;
    size_t shard_bytes = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "PATH",
                 "the model: a clora or Hugging Face folder, or a GGUF file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--adapter", CLI_STRING, &adapter_dir, "DIR", "the PEFT adapter folder"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--adapter-name", CLI_STRING, &adapter_name, "NAME",
                 "the named adapter of the folder to merge (default: \"default\")")},
        {CLI_OPT("--combine", CLI_STRING, &combine, "A:W,B:W",
                 "merge a weighted combination of named adapters instead")},
        {CLI_OPT("--combination", CLI_CHOICE, &combination, "KIND",
                 "with --combine: cat or linear"),
         .fallback = "cat", .choices = combination_names},
        {CLI_OPT("--out", CLI_STRING, &out, "DIR", "where to save the merged model")},
        {CLI_OPT("--adapter-out", CLI_STRING, &adapter_out, "DIR",
                 "save the adapter to be merged as a PEFT adapter folder")},
        {CLI_OPT("--out-dtype", CLI_CHOICE, &out_dtype, "TYPE",
                 "stored (a Hugging Face folder: each tensor as its checkpoint stores it; "
                 "otherwise F32, and packed weights refuse the merge), f32, f16 or bf16 "
                 "(weights loaded as float32, merged, written as that type; a Hugging Face "
                 "folder: every float tensor)"),
         .fallback = "stored", .choices = out_dtype_names},
        {CLI_OPT("--max-shard-size", CLI_SIZE, &shard_bytes, "BYTES",
                 "a Hugging Face output: the most bytes of tensors in one shard "
                 "(transformers' max_shard_size; 5000000000 is its \"5GB\")"),
         .fallback = "5000000000", CLI_AT_LEAST(1), .given = &shard_given},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    const cli_spec spec = {
        .command = "merge",
        .usage = "usage: clora merge --model PATH --adapter DIR [--adapter-name NAME | --combine "
                 "A:W,B:W] (--out DIR | --adapter-out DIR) [--out-dtype TYPE] "
                 "[--max-shard-size BYTES]",
        .description = merge_description,
        .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    if (!out && !adapter_out) {
        fprintf(stderr, "clora merge: give --out, --adapter-out or both\n");
        return 2;
    }
    if (adapter_name && combine) {
        fprintf(stderr, "clora merge: --adapter-name and --combine exclude each other\n");
        return 2;
    }
    const int hugging_face = clora_hf_folder_probe(model_dir);
    if (shard_given && !hugging_face) {
        fprintf(stderr, "clora merge: --max-shard-size: %s is not a Hugging Face folder; its "
                        "merge is one clora model.safetensors\n", model_dir);
        return 2;
    }
    const char *names[64];
    float weights[64];
    size_t combined = 0;
    char *combine_text = combine ? malloc(strlen(combine) + 1) : NULL;
    if (combine_text)
        memcpy(combine_text, combine, strlen(combine) + 1);
    if (combine && (!combine_text || !parse_combine(combine_text, names, weights, 64, &combined))) {
        free(combine_text);
        return 2;
    }
    clora_device *dev = NULL;
    clora_model *model = NULL;
    int exit_code = 1;
    clora_status status = clora_device_open(&dev, device);
    if (status != CLORA_OK) {
        cli_report("merge", "opening the device", status);
        goto done;
    }
    /* with the head the adapter was made for (a BERT classifier or pooler),
     * weights as float32 when they are to be written as another type */
    model_family family;
    if (!open_model("merge", dev, model_dir, adapter_dir, NULL, 0, 0, out_dtype > 0 ? 1 : 0,
                    &model, &family))
        goto done;
    if (combine &&
        ((status = clora_model_add_weighted_adapter(model, names, weights, combined, "combined",
                                                    (clora_combination)combination)) ||
         (status = clora_model_set_adapter(model, "combined")))) {
        cli_report("merge", "combining the adapters", status);
        goto done;
    }
    if (adapter_name && (status = clora_model_set_adapter(model, adapter_name))) {
        cli_report("merge", "choosing the adapter", status);
        goto done;
    }
    if (adapter_out) {
        if ((status = clora_adapter_save(model, NULL, adapter_out))) {
            cli_report("merge", "saving the adapter", status);
            goto done;
        }
        printf("saved adapter \"%s\" to %s\n", clora_model_active_adapter(model), adapter_out);
    }
    if (!out) {
        exit_code = 0;
        goto done;
    }
    if ((status = clora_model_merge_adapter(model))) {
        cli_report("merge", "merging", status);
        goto done;
    }
    if (hugging_face) {
        clora_hf_save_options save = clora_hf_save_options_default();
        save.dtype = out_dtypes[out_dtype];
        save.max_shard_bytes = shard_bytes;
        status = clora_model_save_hf(model, model_dir, out, &save);
    } else {
        status = clora_model_save_as(model, out, out_dtype ? out_dtypes[out_dtype]
                                                           : CLORA_DTYPE_F32);
    }
    if (status) {
        cli_report("merge", "saving the merged model", status);
        goto done;
    }
    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    char n[32];
    printf("merged %s into %s: %s parameters saved to %s (%s folder)\n", adapter_dir, model_dir,
           with_commas(counts.total - counts.trainable, n, sizeof n), out,
           hugging_face ? "a Hugging Face" : "a clora");
    exit_code = 0;
done:
    free(combine_text);
    clora_model_destroy(model);
    clora_device_destroy(dev);
    return exit_code;
}
