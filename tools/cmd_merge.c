/* cmd_merge.c — `clora merge`: a model plus an adapter, saved as one model. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "training.h"

static const char merge_description[] =
    "Loads a model (a clora model folder, a Hugging Face folder or a GGUF\n"
    "file) and a PEFT LoRA adapter folder, merges the adapter into the\n"
    "weights (W += s*B*A) and saves the result as a clora model folder that\n"
    "runs without LoRA. The inputs are not modified; the output's files are\n"
    "written whole or not at all.\n"
    "\n"
    "A model whose weights are packed (a quantized GGUF file) cannot take a\n"
    "merge in place: --out-dtype f32 or f16 loads its weights as float32,\n"
    "merges there, and writes the weights as F32 or F16.\n";

static const char *const out_dtype_names[] = {"stored", "f32", "f16", NULL};

int cmd_merge(int argc, char **argv)
{
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *device = NULL;
    int out_dtype = 0;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "PATH",
                 "the model: a clora or Hugging Face folder, or a GGUF file"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--adapter", CLI_STRING, &adapter_dir, "DIR", "the PEFT adapter folder"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &out, "DIR", "where to save the merged model"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--out-dtype", CLI_CHOICE, &out_dtype, "TYPE",
                 "stored (weights as the model stores them; packed ones refuse the merge), "
                 "f32 or f16 (weights loaded as float32, merged, written as F32 or F16)"),
         .fallback = "stored", .choices = out_dtype_names},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    const cli_spec spec = {
        .command = "merge",
        .usage = "usage: clora merge --model PATH --adapter DIR --out DIR [--out-dtype TYPE] "
                 "[--device SEL]",
        .description = merge_description,
        .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    clora_device *dev = NULL;
    clora_model *model = NULL;
    int exit_code = 1;
    clora_status status = clora_device_open(&dev, device);
    if (status != CLORA_OK) {
        cli_report("merge", "opening the device", status);
        goto done;
    }
    clora_load_options load = clora_load_options_default();
    if (out_dtype > 0)
        load.base_dtype = CLORA_DTYPE_F32;
    if ((status = clora_model_load_with(&model, dev, model_dir, &load))) {
        cli_report("merge", "loading the model", status);
        goto done;
    }
    if ((status = clora_adapter_load(model, adapter_dir, NULL))) {
        cli_report("merge", "loading the adapter", status);
        goto done;
    }
    if ((status = clora_model_merge_adapter(model))) {
        cli_report("merge", "merging", status);
        goto done;
    }
    if ((status = clora_model_save_as(model, out,
                                      out_dtype == 2 ? CLORA_DTYPE_F16 : CLORA_DTYPE_F32))) {
        cli_report("merge", "saving the merged model", status);
        goto done;
    }
    clora_param_counts counts;
    clora_model_count_params(model, &counts);
    char n[32];
    printf("merged %s into %s: %s parameters saved to %s\n", adapter_dir, model_dir,
           with_commas(counts.total - counts.trainable, n, sizeof n), out);
    exit_code = 0;
done:
    clora_model_destroy(model);
    clora_device_destroy(dev);
    return exit_code;
}
