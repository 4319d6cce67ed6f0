/* cmd_merge.c — `clora merge`: a model plus an adapter, saved as one model. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "options.h"
#include "training.h"

static const char merge_description[] =
    "Loads a clora model folder and a PEFT LoRA adapter folder, merges the\n"
    "adapter into the weights (W += s*B*A) and saves the result as a model\n"
    "folder that runs without LoRA. The inputs are not modified; the output's\n"
    "files are written whole or not at all.\n";

int cmd_merge(int argc, char **argv)
{
    const char *model_dir = NULL, *adapter_dir = NULL, *out = NULL, *device = NULL;
    const cli_option options[] = {
        {CLI_OPT("--model", CLI_STRING, &model_dir, "DIR", "the model folder"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--adapter", CLI_STRING, &adapter_dir, "DIR", "the PEFT adapter folder"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--out", CLI_STRING, &out, "DIR", "where to save the merged model"),
         .flags = CLI_REQUIRED},
        {CLI_OPT("--device", CLI_STRING, &device, "SEL", "device index or name part")},
        CLI_END};
    const cli_spec spec = {
        .command = "merge",
        .usage = "usage: clora merge --model DIR --adapter DIR --out DIR [--device SEL]",
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
    if ((status = clora_model_load(&model, dev, model_dir))) {
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
    if ((status = clora_model_save(model, out))) {
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
