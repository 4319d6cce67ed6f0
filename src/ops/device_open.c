/* device_open.c — clora_device_open, _open_index and _wrap: a device as
 * core opens it (context, queue, rank-r kernel choice), then CLBlast's
 * kernel parameters for it (tuning.c), so that every GEMM on the device
 * runs with them. */
#include "ops/ops.h"

/* Applies the tuning to a device core just opened (status CLORA_OK), or
 * passes core's failure on; a device whose tuning fails is closed. */
static clora_status tuned(clora_device **out, clora_status status)
{
    if (status != CLORA_OK)
        return status;
    status = clora__tuning_open(*out);
    if (status == CLORA_OK)
        status = clora__packed_choose(*out);
    if (status != CLORA_OK) {
        clora_device_destroy(*out);
        *out = NULL;
    }
    return status;
}

clora_status clora_device_open(clora_device **out, const char *selector)
{
    return tuned(out, clora__device_open(out, selector));
}

clora_status clora_device_open_index(clora_device **out, size_t index)
{
    return tuned(out, clora__device_open_index(out, index));
}

clora_status clora_device_wrap(clora_device **out, cl_context context, cl_command_queue queue)
{
    return tuned(out, clora__device_wrap(out, context, queue));
}
