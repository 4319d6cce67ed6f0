/* program.c — the per-device cache of clora's OpenCL programs (cl/, embedded
 * at build time or read from CLORA_KERNEL_DIR) and their kernels, built on
 * first use, and kernel launches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "core/kernels_embedded.h"

static const char *const program_files[CLORA__PROGRAM_COUNT] = {
#define PROGRAM_FILE_(id, file) file,
    CLORA__PROGRAM_TABLE(PROGRAM_FILE_)
#undef PROGRAM_FILE_
};

static const struct {
    clora__program_id program;
    const char *name;
} kernel_table[CLORA__KERNEL_COUNT] = {
#define KERNEL_ROW_(id, program, name) {CLORA__PROGRAM_##program, name},
    CLORA__KERNEL_TABLE(KERNEL_ROW_)
#undef KERNEL_ROW_
};

/* The source of program `file`: from $CLORA_KERNEL_DIR/<file>.cl when that
 * variable is set (for kernel development), else the embedded copy.
 * *owned is set when the caller must free the text. */
static clora_status program_source(const char *file, const char **text, char **owned,
                                   char *origin, size_t origin_size)
{
    *owned = NULL;
    const char *dir = getenv("CLORA_KERNEL_DIR");
    if (dir && *dir) {
        snprintf(origin, origin_size, "%s/%s.cl", dir, file);
        FILE *f = fopen(origin, "rb");
        if (!f)
            return clora__fail(CLORA_ERR_IO, "cannot open kernel source %s (CLORA_KERNEL_DIR): %s",
                               origin, strerror(errno));
        char *buf = NULL;
        long size = -1;
        if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
            (buf = clora__malloc((size_t)size + 1)) != NULL &&
            fread(buf, 1, (size_t)size, f) == (size_t)size) {
            buf[size] = '\0';
            fclose(f);
            *owned = buf;
            *text = buf;
            return CLORA_OK;
        }
        free(buf);
        fclose(f);
        return clora__fail(CLORA_ERR_IO, "cannot read kernel source %s", origin);
    }
    for (const clora__embedded_kernel *k = clora__embedded_kernels; k->name; ++k)
        if (strcmp(k->name, file) == 0) {
            snprintf(origin, origin_size, "embedded %s.cl", file);
            *text = k->source;
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_IO, "no embedded kernel source named %s.cl", file);
}

/* Build options: the language version and each program's compile-time
 * constants. */
static void program_options(const clora_device *dev, clora__program_id id, size_t tile, char *out,
                            size_t size)
{
    int n = snprintf(out, size, "-cl-std=CL1.2");
    if (id == CLORA__PROGRAM_LORA && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n,
                 " -D TILE=%zu -D DROP_X=%uu -D DROP_Y=%uu -D DROP_C=%uu -D ADD_BIAS=%uu"
                 " -D ACCUMULATE=%uu -D PARTIAL=%uu -D ROWS=%d",
                 tile, (unsigned)CLORA__GEMM_DROP_X, (unsigned)CLORA__GEMM_DROP_Y,
                 (unsigned)CLORA__GEMM_DROP_C, (unsigned)CLORA__GEMM_BIAS,
                 (unsigned)CLORA__GEMM_ACCUMULATE, (unsigned)CLORA__GEMM_PARTIAL,
                 CLORA__ROWS_PER_ITEM);
    if (id == CLORA__PROGRAM_DEQUANT && n > 0 && (size_t)n < size)
        snprintf(out + n, size - (size_t)n, " -D LANES=%d",
                 dev->info.type == CLORA_DEVICE_CPU ? CLORA__PACKED_LANES_CPU
                                                    : CLORA__PACKED_LANES_GPU);
}

static clora_status build_program(clora_device *dev, clora__program_id id, size_t tile,
                                  cl_program *out)
{
    const char *file = program_files[id];
    const char *text = NULL;
    char *owned = NULL;
    char origin[1024];
    clora_status status = program_source(file, &text, &owned, origin, sizeof origin);
    if (status != CLORA_OK)
        return status;

    /* Every program starts with common.cl's helpers. */
    const char *common = NULL;
    char *common_owned = NULL;
    char common_origin[1024];
    status = program_source("common", &common, &common_owned, common_origin, sizeof common_origin);
    if (status != CLORA_OK) {
        free(owned);
        return status;
    }
    const char *sources[2] = {common, text};
    cl_int err;
    cl_program program = clCreateProgramWithSource(dev->context, 2, sources, NULL, &err);
    free(owned);
    free(common_owned);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clCreateProgramWithSource");

    char options[512];
    program_options(dev, id, tile, options, sizeof options);
    err = clora__fault(CLORA__FAULT_BUILD)
              ? CL_BUILD_PROGRAM_FAILURE
              : clBuildProgram(program, 1, &dev->device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        size_t log_size = 0;
        char *log = NULL;
        if (clGetProgramBuildInfo(program, dev->device, CL_PROGRAM_BUILD_LOG, 0, NULL,
                                  &log_size) == CL_SUCCESS &&
            (log = clora__malloc(log_size + 1)) != NULL &&
            clGetProgramBuildInfo(program, dev->device, CL_PROGRAM_BUILD_LOG, log_size, log,
                                  NULL) == CL_SUCCESS)
            log[log_size] = '\0';
        else if (log)
            log[0] = '\0';
        status = clora__fail(CLORA_ERR_KERNEL_BUILD,
                             "building %s for \"%s\" failed: %s (%d), options \"%s\"; build log:\n%s",
                             origin, dev->info.name, clora__cl_error_name(err), (int)err, options,
                             log ? log : "(unavailable)");
        free(log);
        clReleaseProgram(program);
        return status;
    }
    *out = program;
    return CLORA_OK;
}

/* Builds program `id` (and creates its kernels) once per device. For the
 * rank-r program, a kernel that cannot run tile x tile work-items (register
 * pressure on some GPUs) triggers a rebuild with a smaller tile. */
static clora_status ensure_program(clora_device *dev, clora__program_id id)
{
    if (dev->programs[id])
        return CLORA_OK;
    if (dev->dry)
        return clora__fail(CLORA_ERR_STATE, "a dry device runs no kernels (%s.cl)",
                           program_files[id]);
    for (;;) {
        cl_program program = NULL;
        clora_status status = build_program(dev, id, dev->rank_tile, &program);
        if (status != CLORA_OK)
            return status;
        cl_kernel kernels[CLORA__KERNEL_COUNT] = {0};
        size_t groups[CLORA__KERNEL_COUNT] = {0};
        for (size_t k = 0; k < CLORA__KERNEL_COUNT && status == CLORA_OK; ++k) {
            if (kernel_table[k].program != id)
                continue;
            cl_int err;
            kernels[k] = clCreateKernel(program, kernel_table[k].name, &err);
            if (err != CL_SUCCESS) {
                status = clora__fail(CLORA_ERR_KERNEL_BUILD,
                                     "kernel %s missing from %s.cl: %s (%d)", kernel_table[k].name,
                                     program_files[id], clora__cl_error_name(err), (int)err);
                break;
            }
            err = clGetKernelWorkGroupInfo(kernels[k], dev->device, CL_KERNEL_WORK_GROUP_SIZE,
                                           sizeof groups[k], &groups[k], NULL);
            if (err != CL_SUCCESS)
                status = CLORA__FAIL_CL(err, "clGetKernelWorkGroupInfo");
        }
        int shrink = status == CLORA_OK && id == CLORA__PROGRAM_LORA && dev->rank_tile > 1 &&
                     groups[CLORA__KERNEL_LORA_GEMM] < dev->rank_tile * dev->rank_tile;
        if (status != CLORA_OK || shrink) {
            for (size_t k = 0; k < CLORA__KERNEL_COUNT; ++k)
                if (kernels[k])
                    clReleaseKernel(kernels[k]);
            clReleaseProgram(program);
            if (status != CLORA_OK)
                return status;
            dev->rank_tile /= 2;
            continue;
        }
        dev->programs[id] = program;
        for (size_t k = 0; k < CLORA__KERNEL_COUNT; ++k)
            if (kernels[k]) {
                dev->kernels[k] = kernels[k];
                dev->kernel_max_group[k] = groups[k];
            }
        return CLORA_OK;
    }
}

static clora_status device_kernel(clora_device *dev, clora__kernel_id id, cl_kernel *out)
{
    clora_status status = ensure_program(dev, kernel_table[id].program);
    if (status != CLORA_OK)
        return status;
    *out = dev->kernels[id];
    return CLORA_OK;
}

static clora_status device_launch(clora_device *dev, clora__kernel_id id, cl_uint dims,
                                  const size_t *global, const size_t *local)
{
    size_t group[3] = {1, 1, 1}, rounded[3];
    size_t total = 1;
    for (cl_uint d = 0; d < dims; ++d)
        total *= group[d] = local[d];
    size_t limit = dev->kernel_max_group[id] ? dev->kernel_max_group[id] : 1;
    if (limit > dev->info.max_work_group_size)
        limit = dev->info.max_work_group_size;
    while (total > limit) {
        cl_uint widest = 0;
        for (cl_uint d = 1; d < dims; ++d)
            if (group[d] > group[widest])
                widest = d;
        total /= group[widest];
        group[widest] /= 2;
        total *= group[widest];
    }
    for (cl_uint d = 0; d < dims; ++d)
        rounded[d] = (global[d] + group[d] - 1) / group[d] * group[d];
    cl_int err = clora__fault(CLORA__FAULT_LAUNCH)
                     ? CL_OUT_OF_RESOURCES
                     : clEnqueueNDRangeKernel(dev->queue, dev->kernels[id], dims, NULL, rounded,
                                              group, 0, NULL, NULL);
    if (err != CL_SUCCESS) {
        char call[128];
        snprintf(call, sizeof call, "clEnqueueNDRangeKernel(%s)", kernel_table[id].name);
        return CLORA__FAIL_CL(err, call);
    }
    return CLORA_OK;
}

clora_status clora__args_begin(clora__args *args, clora_device *dev, clora__kernel_id id)
{
    args->device = dev;
    args->id = id;
    args->kernel = NULL;
    args->index = 0;
    args->err = CL_SUCCESS;
    return device_kernel(dev, id, &args->kernel);
}

clora_status clora__args_launch(const clora__args *args, cl_uint dims, const size_t *global,
                                const size_t *local)
{
    if (args->err != CL_SUCCESS) {
        char call[128];
        snprintf(call, sizeof call, "clSetKernelArg(%s)", kernel_table[args->id].name);
        return CLORA__FAIL_CL(args->err, call);
    }
    return device_launch(args->device, args->id, dims, global, local);
}

void clora__arg_int(clora__args *args, int value)
{
    cl_int v = value;
    if (args->err == CL_SUCCESS)
        args->err = clSetKernelArg(args->kernel, args->index, sizeof v, &v);
    args->index++;
}

void clora__arg_mem(clora__args *args, cl_mem mem)
{
    if (args->err == CL_SUCCESS)
        args->err = clSetKernelArg(args->kernel, args->index, sizeof mem, &mem);
    args->index++;
}

void clora__arg_buffer(clora__args *args, const clora_buffer *buffer)
{
    clora__arg_mem(args, buffer->mem);
    clora__arg_uint(args, buffer->offset);
}

void clora__arg_uint(clora__args *args, size_t value)
{
    cl_uint v = (cl_uint)value;
    if (args->err == CL_SUCCESS)
        args->err = clSetKernelArg(args->kernel, args->index, sizeof v, &v);
    args->index++;
}

void clora__arg_float(clora__args *args, float value)
{
    if (args->err == CL_SUCCESS)
        args->err = clSetKernelArg(args->kernel, args->index, sizeof value, &value);
    args->index++;
}
