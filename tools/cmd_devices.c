/* cmd_devices.c — `clora devices`: every OpenCL device clora can see. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "options.h"

int cmd_devices(int argc, char **argv)
{
    const cli_option options[] = {CLI_END};
    const cli_spec spec = {
        .command = "devices",
        .usage = "usage: clora devices",
        .description =
            "Lists every OpenCL device with its index; `*` marks the one clora opens by\n"
            "default (CLORA_DEVICE if set, else the first GPU, else the first device).\n",
        .options = options};
    int parsed = cli_parse(&spec, argc, argv);
    if (parsed != CLI_RUN)
        return parsed;
    size_t count = 0;
    clora_status status = clora_device_count(&count);
    if (status != CLORA_OK) {
        cli_report("devices", "listing devices", status);
        return 1;
    }
    if (count == 0) {
        printf("No OpenCL devices found. Install an OpenCL driver (on Debian: apt-get install "
               "pocl-opencl-icd for the CPU).\n");
        return 1;
    }

    /* The default device, found the way clora_device_open(NULL) finds it. */
    size_t chosen = (size_t)-1;
    clora_device *dev = NULL;
    clora_status open_status = clora_device_open(&dev, NULL);
    if (open_status == CLORA_OK) {
        clora_device_info info;
        if (clora_device_get_info(dev, &info) == CLORA_OK)
            chosen = info.index;
        clora_device_destroy(dev);
    }

    printf("OpenCL devices (%zu):\n", count);
    for (size_t i = 0; i < count; ++i) {
        clora_device_info info;
        status = clora_device_describe(i, &info);
        if (status != CLORA_OK) {
            cli_report("devices", "reading device information", status);
            return 1;
        }
        printf("%c %zu  %-4s %s\n", i == chosen ? '*' : ' ', i, clora_device_type_name(info.type),
               info.name);
        printf("       platform %s, vendor %s, driver %s\n", info.platform_name, info.vendor,
               info.driver_version);
        printf("       %s, %s, %u compute units, max work-group %zu\n", info.device_version,
               info.opencl_c_version, info.compute_units, info.max_work_group_size);
        printf("       global memory %.1f GiB, local memory %.0f KiB, fp16 %s, fp64 %s\n",
               (double)info.global_mem_bytes / (1024.0 * 1024.0 * 1024.0),
               (double)info.local_mem_bytes / 1024.0, info.fp16 ? "yes" : "no",
               info.fp64 ? "yes" : "no");
    }
    if (open_status != CLORA_OK) {
        cli_report("devices", "opening the default device", open_status);
        return 1;
    }
    return 0;
}
