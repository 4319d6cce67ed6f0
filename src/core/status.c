/* status.c — status strings, the per-thread error message, OpenCL error names. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/core.h"

/* Long enough for a kernel build log of a few dozen lines; longer logs are
 * cut with a marker. */
#define MESSAGE_CAPACITY 16384

static _Thread_local char last_message[MESSAGE_CAPACITY];

const char *clora_status_name(clora_status status)
{
    switch (status) {
#define STATUS_NAME_(name, value, text) \
    case name:                          \
        return #name;
        CLORA_STATUS_TABLE(STATUS_NAME_)
#undef STATUS_NAME_
    }
    return "CLORA_ERR_UNKNOWN";
}

const char *clora_status_string(clora_status status)
{
    switch (status) {
#define STATUS_TEXT_(name, value, text) \
    case name:                          \
        return text;
        CLORA_STATUS_TABLE(STATUS_TEXT_)
#undef STATUS_TEXT_
    }
    return "unknown status";
}

const char *clora_last_error(void)
{
    return last_message;
}

clora_status clora__fail(clora_status status, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    int written = vsnprintf(last_message, sizeof last_message, fmt, args);
    va_end(args);
    if (written >= (int)sizeof last_message) {
        static const char marker[] = "\n... (message truncated)";
        memcpy(last_message + sizeof last_message - sizeof marker, marker, sizeof marker);
    }
    return status;
}

clora_status clora__fail_prefixed(clora_status status, const char *fmt, ...)
{
    char previous[MESSAGE_CAPACITY];
    memcpy(previous, last_message, sizeof previous);
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(last_message, sizeof last_message, fmt, args);
    va_end(args);
    if (n >= 0 && (size_t)n + 2 < sizeof last_message) {
        /* append ": " + previous, cut to fit */
        size_t at = (size_t)n, room = sizeof last_message - at - 1;
        size_t len = strnlen(previous, sizeof previous);
        memcpy(last_message + at, ": ", 2);
        at += 2;
        room -= 2;
        if (len > room)
            len = room;
        memcpy(last_message + at, previous, len);
        last_message[at + len] = '\0';
    }
    return status;
}

/* X(name) for the error codes of OpenCL 1.2 and the ICD loader. */
#define CL_ERROR_TABLE(X)                                                     \
    X(CL_SUCCESS) X(CL_DEVICE_NOT_FOUND) X(CL_DEVICE_NOT_AVAILABLE)           \
    X(CL_COMPILER_NOT_AVAILABLE) X(CL_MEM_OBJECT_ALLOCATION_FAILURE)          \
    X(CL_OUT_OF_RESOURCES) X(CL_OUT_OF_HOST_MEMORY)                           \
    X(CL_PROFILING_INFO_NOT_AVAILABLE) X(CL_MEM_COPY_OVERLAP)                 \
    X(CL_IMAGE_FORMAT_MISMATCH) X(CL_IMAGE_FORMAT_NOT_SUPPORTED)              \
    X(CL_BUILD_PROGRAM_FAILURE) X(CL_MAP_FAILURE)                             \
    X(CL_MISALIGNED_SUB_BUFFER_OFFSET)                                        \
    X(CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)                           \
    X(CL_COMPILE_PROGRAM_FAILURE) X(CL_LINKER_NOT_AVAILABLE)                  \
    X(CL_LINK_PROGRAM_FAILURE) X(CL_DEVICE_PARTITION_FAILED)                  \
    X(CL_KERNEL_ARG_INFO_NOT_AVAILABLE) X(CL_INVALID_VALUE)                   \
    X(CL_INVALID_DEVICE_TYPE) X(CL_INVALID_PLATFORM) X(CL_INVALID_DEVICE)     \
    X(CL_INVALID_CONTEXT) X(CL_INVALID_QUEUE_PROPERTIES)                      \
    X(CL_INVALID_COMMAND_QUEUE) X(CL_INVALID_HOST_PTR)                        \
    X(CL_INVALID_MEM_OBJECT) X(CL_INVALID_IMAGE_FORMAT_DESCRIPTOR)            \
    X(CL_INVALID_IMAGE_SIZE) X(CL_INVALID_SAMPLER) X(CL_INVALID_BINARY)       \
    X(CL_INVALID_BUILD_OPTIONS) X(CL_INVALID_PROGRAM)                         \
    X(CL_INVALID_PROGRAM_EXECUTABLE) X(CL_INVALID_KERNEL_NAME)                \
    X(CL_INVALID_KERNEL_DEFINITION) X(CL_INVALID_KERNEL)                      \
    X(CL_INVALID_ARG_INDEX) X(CL_INVALID_ARG_VALUE) X(CL_INVALID_ARG_SIZE)    \
    X(CL_INVALID_KERNEL_ARGS) X(CL_INVALID_WORK_DIMENSION)                    \
    X(CL_INVALID_WORK_GROUP_SIZE) X(CL_INVALID_WORK_ITEM_SIZE)                \
    X(CL_INVALID_GLOBAL_OFFSET) X(CL_INVALID_EVENT_WAIT_LIST)                 \
    X(CL_INVALID_EVENT) X(CL_INVALID_OPERATION) X(CL_INVALID_GL_OBJECT)       \
    X(CL_INVALID_BUFFER_SIZE) X(CL_INVALID_MIP_LEVEL)                         \
    X(CL_INVALID_GLOBAL_WORK_SIZE) X(CL_INVALID_PROPERTY)                     \
    X(CL_INVALID_IMAGE_DESCRIPTOR) X(CL_INVALID_COMPILER_OPTIONS)             \
    X(CL_INVALID_LINKER_OPTIONS) X(CL_INVALID_DEVICE_PARTITION_COUNT)

const char *clora__cl_error_name(cl_int err)
{
    switch (err) {
#define CL_ERROR_NAME_(name) \
    case name:               \
        return #name;
        CL_ERROR_TABLE(CL_ERROR_NAME_)
#undef CL_ERROR_NAME_
    case -1001:
        return "CL_PLATFORM_NOT_FOUND_KHR";
    default:
        return "unknown OpenCL error";
    }
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

clora_status clora__fail_cl(cl_int err, const char *call, const char *file, int line)
{
    clora_status status = CLORA_ERR_OPENCL;
    if (err == CL_OUT_OF_HOST_MEMORY)
        status = CLORA_ERR_OUT_OF_HOST_MEMORY;
    else if (err == CL_MEM_OBJECT_ALLOCATION_FAILURE)
        status = CLORA_ERR_OUT_OF_DEVICE_MEMORY;
    return clora__fail(status, "%s failed: %s (%d) [%s:%d]", call, clora__cl_error_name(err),
                       (int)err, base_name(file), line);
}
