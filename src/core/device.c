/* device.c — device enumeration and choice, context/queue ownership,
 * device information, memory accounting and scratch memory. Programs,
 * kernels and launches are in program.c; CLBlast's parameters join at
 * open in ops/device_open.c. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* ---- enumeration -------------------------------------------------------- */

typedef struct device_entry {
    cl_platform_id platform;
    cl_device_id device;
} device_entry;

/* Every (platform, device) pair, in clora's list order. *entries is malloc'd
 * (NULL when there are none). */
static clora_status enumerate(device_entry **entries, size_t *count)
{
    *entries = NULL;
    *count = 0;
    cl_uint platform_count = 0;
    cl_int err = clGetPlatformIDs(0, NULL, &platform_count);
    if (err == -1001 /* CL_PLATFORM_NOT_FOUND_KHR: no ICD installed */ || platform_count == 0)
        return CLORA_OK;
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clGetPlatformIDs");

    cl_platform_id *platforms = clora__malloc(platform_count * sizeof *platforms);
    if (!platforms)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing OpenCL platforms");
    err = clGetPlatformIDs(platform_count, platforms, NULL);
    if (err != CL_SUCCESS) {
        free(platforms);
        return CLORA__FAIL_CL(err, "clGetPlatformIDs");
    }

    clora_status status = CLORA_OK;
    device_entry *list = NULL;
    size_t total = 0;
    for (cl_uint p = 0; p < platform_count && status == CLORA_OK; ++p) {
        cl_uint n = 0;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, 0, NULL, &n);
        if (err == CL_DEVICE_NOT_FOUND || n == 0)
            continue;
        if (err != CL_SUCCESS) {
            status = CLORA__FAIL_CL(err, "clGetDeviceIDs");
            break;
        }
        cl_device_id *ids = clora__malloc(n * sizeof *ids);
        device_entry *grown = clora__realloc(list, (total + n) * sizeof *list);
        if (!ids || !grown) {
            free(ids);
            if (grown)
                list = grown;
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing OpenCL devices");
            break;
        }
        list = grown;
        err = clGetDeviceIDs(platforms[p], CL_DEVICE_TYPE_ALL, n, ids, NULL);
        if (err != CL_SUCCESS) {
            free(ids);
            status = CLORA__FAIL_CL(err, "clGetDeviceIDs");
            break;
        }
        for (cl_uint d = 0; d < n; ++d)
            list[total++] = (device_entry){platforms[p], ids[d]};
        free(ids);
    }
    free(platforms);
    if (status != CLORA_OK) {
        free(list);
        return status;
    }
    *entries = list;
    *count = total;
    return CLORA_OK;
}

/* Copies a string property into dst (truncating, always terminated). */
static clora_status info_string(cl_device_id device, cl_device_info param, char *dst, size_t cap)
{
    size_t size = 0;
    cl_int err = clGetDeviceInfo(device, param, 0, NULL, &size);
    if (err != CL_SUCCESS)
        return CLORA__FAIL_CL(err, "clGetDeviceInfo");
    char *tmp = clora__malloc(size + 1);
    if (!tmp)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading device information");
    err = clGetDeviceInfo(device, param, size, tmp, NULL);
    if (err != CL_SUCCESS) {
        free(tmp);
        return CLORA__FAIL_CL(err, "clGetDeviceInfo");
    }
    tmp[size] = '\0';
    snprintf(dst, cap, "%s", tmp);
    free(tmp);
    return CLORA_OK;
}

static int has_extension(cl_device_id device, const char *extension)
{
    size_t size = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, 0, NULL, &size) != CL_SUCCESS)
        return 0;
    char *text = clora__malloc(size + 1);
    if (!text)
        return 0;
    int found = 0;
    if (clGetDeviceInfo(device, CL_DEVICE_EXTENSIONS, size, text, NULL) == CL_SUCCESS) {
        text[size] = '\0';
        size_t len = strlen(extension);
        for (const char *at = strstr(text, extension); at && !found; at = strstr(at + 1, extension))
            found = (at == text || at[-1] == ' ') && (at[len] == ' ' || at[len] == '\0');
    }
    free(text);
    return found;
}

static clora_status describe(const device_entry *entry, size_t index, clora_device_info *info)
{
    memset(info, 0, sizeof *info);
    info->index = index;

    size_t size = 0;
    char platform_name[sizeof info->platform_name] = "";
    cl_int err = clGetPlatformInfo(entry->platform, CL_PLATFORM_NAME, sizeof platform_name - 1,
                                   platform_name, &size);
    if (err != CL_SUCCESS && err != CL_INVALID_VALUE /* longer than our field */)
        return CLORA__FAIL_CL(err, "clGetPlatformInfo");
    snprintf(info->platform_name, sizeof info->platform_name, "%s", platform_name);

    clora_status status = CLORA_OK;
    if (status == CLORA_OK)
        status = info_string(entry->device, CL_DEVICE_NAME, info->name, sizeof info->name);
    if (status == CLORA_OK)
        status = info_string(entry->device, CL_DEVICE_VENDOR, info->vendor, sizeof info->vendor);
    if (status == CLORA_OK)
        status = info_string(entry->device, CL_DRIVER_VERSION, info->driver_version,
                             sizeof info->driver_version);
    if (status == CLORA_OK)
        status = info_string(entry->device, CL_DEVICE_VERSION, info->device_version,
                             sizeof info->device_version);
    if (status == CLORA_OK)
        status = info_string(entry->device, CL_DEVICE_OPENCL_C_VERSION, info->opencl_c_version,
                             sizeof info->opencl_c_version);
    if (status != CLORA_OK)
        return status;

    cl_device_type type = 0;
    cl_ulong global_mem = 0, local_mem = 0, max_alloc = 0;
    size_t max_wg = 0;
    cl_uint units = 0;
    cl_device_fp_config fp64_config = 0;
    if ((err = clGetDeviceInfo(entry->device, CL_DEVICE_TYPE, sizeof type, &type, NULL)) ||
        (err = clGetDeviceInfo(entry->device, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof global_mem,
                               &global_mem, NULL)) ||
        (err = clGetDeviceInfo(entry->device, CL_DEVICE_LOCAL_MEM_SIZE, sizeof local_mem,
                               &local_mem, NULL)) ||
        (err = clGetDeviceInfo(entry->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof max_alloc,
                               &max_alloc, NULL)) ||
        (err = clGetDeviceInfo(entry->device, CL_DEVICE_MAX_WORK_GROUP_SIZE, sizeof max_wg,
                               &max_wg, NULL)) ||
        (err = clGetDeviceInfo(entry->device, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof units, &units,
                               NULL)))
        return CLORA__FAIL_CL(err, "clGetDeviceInfo");
    /* Not every driver answers this query; treat a refusal as "no fp64". */
    if (clGetDeviceInfo(entry->device, CL_DEVICE_DOUBLE_FP_CONFIG, sizeof fp64_config,
                        &fp64_config, NULL) != CL_SUCCESS)
        fp64_config = 0;

    info->type = (type & CL_DEVICE_TYPE_GPU)           ? CLORA_DEVICE_GPU
                 : (type & CL_DEVICE_TYPE_CPU)         ? CLORA_DEVICE_CPU
                 : (type & CL_DEVICE_TYPE_ACCELERATOR) ? CLORA_DEVICE_ACCELERATOR
                                                       : CLORA_DEVICE_OTHER;
    info->global_mem_bytes = global_mem;
    info->local_mem_bytes = local_mem;
    info->max_alloc_bytes = max_alloc;
    info->max_work_group_size = max_wg;
    info->compute_units = units;
    info->fp16 = has_extension(entry->device, "cl_khr_fp16");
    info->fp64 = has_extension(entry->device, "cl_khr_fp64") || fp64_config != 0;
    return CLORA_OK;
}

clora_status clora_device_count(size_t *count)
{
    if (!count)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_count: count is NULL");
    device_entry *entries = NULL;
    clora_status status = enumerate(&entries, count);
    free(entries);
    return status;
}

clora_status clora_device_describe(size_t index, clora_device_info *info)
{
    if (!info)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_describe: info is NULL");
    device_entry *entries = NULL;
    size_t count = 0;
    clora_status status = enumerate(&entries, &count);
    if (status == CLORA_OK && index >= count)
        status = clora__fail(CLORA_ERR_DEVICE_NOT_FOUND,
                             "no OpenCL device with index %zu (found %zu)", index, count);
    if (status == CLORA_OK)
        status = describe(&entries[index], index, info);
    free(entries);
    return status;
}

/* ---- choosing a device -------------------------------------------------- */

static int contains_ignore_case(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (; *haystack; ++haystack) {
        size_t i = 0;
        while (i < n && haystack[i] &&
               tolower((unsigned char)haystack[i]) == tolower((unsigned char)needle[i]))
            ++i;
        if (i == n)
            return 1;
    }
    return n == 0;
}

static int all_digits(const char *text)
{
    if (!*text)
        return 0;
    for (; *text; ++text)
        if (!isdigit((unsigned char)*text))
            return 0;
    return 1;
}

/* Records "<headline>; devices found: 0: name (platform), ..." as the
 * message of CLORA_ERR_DEVICE_NOT_FOUND. */
static clora_status not_found(const char *headline, const device_entry *entries, size_t count)
{
    char list[2048] = "";
    size_t used = 0;
    for (size_t i = 0; i < count && used < sizeof list; ++i) {
        clora_device_info info;
        if (describe(&entries[i], i, &info) != CLORA_OK)
            snprintf(info.name, sizeof info.name, "(unreadable)");
        int n = snprintf(list + used, sizeof list - used, "%s%zu: %s (%s)", i ? ", " : "", i,
                         info.name, info.platform_name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    return clora__fail(CLORA_ERR_DEVICE_NOT_FOUND, "%s; devices found: %s", headline,
                       count ? list : "none (is an OpenCL driver / ICD installed?)");
}

/* Picks an entry for `selector` (already resolved against CLORA_DEVICE);
 * `origin` names where the selector came from, for the message. */
static clora_status select_entry(const device_entry *entries, size_t count, const char *selector,
                                 const char *origin, size_t *chosen)
{
    char headline[512];
    if (!selector) {
        for (size_t i = 0; i < count; ++i) {
            cl_device_type type = 0;
            if (clGetDeviceInfo(entries[i].device, CL_DEVICE_TYPE, sizeof type, &type, NULL) ==
                    CL_SUCCESS &&
                (type & CL_DEVICE_TYPE_GPU)) {
                *chosen = i;
                return CLORA_OK;
            }
        }
        if (count > 0) {
            *chosen = 0;
            return CLORA_OK;
        }
        return not_found("no OpenCL device found", entries, count);
    }
    if (all_digits(selector)) {
        errno = 0;
        unsigned long long index = strtoull(selector, NULL, 10);
        if (errno == 0 && index < count) {
            *chosen = (size_t)index;
            return CLORA_OK;
        }
        snprintf(headline, sizeof headline, "%s \"%s\": no device with that index", origin,
                 selector);
        return not_found(headline, entries, count);
    }
    for (size_t i = 0; i < count; ++i) {
        clora_device_info info;
        clora_status status = describe(&entries[i], i, &info);
        if (status != CLORA_OK)
            return status;
        char haystack[sizeof info.platform_name + sizeof info.name + sizeof info.vendor + 8];
        snprintf(haystack, sizeof haystack, "%s / %s / %s", info.platform_name, info.name,
                 info.vendor);
        if (contains_ignore_case(haystack, selector)) {
            *chosen = i;
            return CLORA_OK;
        }
    }
    snprintf(headline, sizeof headline, "%s \"%s\" matches no device name, platform or vendor",
             origin, selector);
    return not_found(headline, entries, count);
}

/* ---- opening and closing ------------------------------------------------- */

/* Parses "OpenCL <major>.<minor> ..." and compares with 1.2. */
static int version_at_least_1_2(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    if (strncmp(text, prefix, n) != 0)
        return 0;
    int major = 0, minor = 0;
    if (sscanf(text + n, "%d.%d", &major, &minor) != 2)
        return 0;
    return major > 1 || (major == 1 && minor >= 2);
}

/* The largest power-of-two tile edge whose square fits the device's
 * work-group limits (the rank-r kernels use tile x tile work-groups). */
static size_t choose_rank_tile(cl_device_id device, size_t max_work_group)
{
    size_t item_sizes[3] = {1, 1, 1};
    if (clGetDeviceInfo(device, CL_DEVICE_MAX_WORK_ITEM_SIZES, sizeof item_sizes, item_sizes,
                        NULL) != CL_SUCCESS)
        item_sizes[0] = item_sizes[1] = 1;
    size_t tile = 16;
    while (tile > 1 && (tile * tile > max_work_group || tile > item_sizes[0] || tile > item_sizes[1]))
        tile /= 2;
    return tile;
}

/* Fills the parts of a device handle common to open and wrap. */
static clora_status finish_setup(clora_device *dev, size_t index)
{
    device_entry entry = {dev->platform, dev->device};
    clora_status status = describe(&entry, index, &dev->info);
    if (status != CLORA_OK)
        return status;
    if (!version_at_least_1_2(dev->info.device_version, "OpenCL ") ||
        !version_at_least_1_2(dev->info.opencl_c_version, "OpenCL C "))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "device \"%s\" reports \"%s\" / \"%s\"; clora needs OpenCL 1.2 and "
                           "OpenCL C 1.2",
                           dev->info.name, dev->info.device_version, dev->info.opencl_c_version);
    dev->rank_tile = choose_rank_tile(dev->device, dev->info.max_work_group_size);
    dev->dequantize_tile = CLORA__DEQUANTIZE_TILE;
    /* CPUs run the streaming rank-r kernel: it needs no barriers, which
     * CPU runtimes execute slowly; everything else runs the tiled one.
     * CLORA_RANK_KERNEL picks one explicitly (tests cover both anywhere). */
    dev->rank_kernel =
        dev->info.type == CLORA_DEVICE_CPU ? CLORA__RANK_STREAMING : CLORA__RANK_TILED;
    const char *kind = getenv("CLORA_RANK_KERNEL");
    if (kind && *kind) {
        if (!strcmp(kind, "tiled"))
            dev->rank_kernel = CLORA__RANK_TILED;
        else if (!strcmp(kind, "streaming"))
            dev->rank_kernel = CLORA__RANK_STREAMING;
        else
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "CLORA_RANK_KERNEL=\"%s\": expected \"tiled\" or \"streaming\"",
                               kind);
    }
    /* CLORA_RANK_TILE caps the tile: it lets one device exercise the paths
     * that devices with small work-group limits take. */
    const char *cap = getenv("CLORA_RANK_TILE");
    if (cap && *cap) {
        char *end = NULL;
        unsigned long tile = strtoul(cap, &end, 10);
        if (*end != '\0' || tile == 0 || tile > 16 || (tile & (tile - 1)) != 0)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "CLORA_RANK_TILE=\"%s\": expected 1, 2, 4, 8 or 16", cap);
        if (tile < dev->rank_tile)
            dev->rank_tile = tile;
    }
    return CLORA_OK;
}

static clora_status open_entry(clora_device **out, const device_entry *entry, size_t index)
{
    clora_device *dev = clora__calloc(1, sizeof *dev);
    if (!dev)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a device handle");
    dev->platform = entry->platform;
    dev->device = entry->device;

    cl_int err = CL_SUCCESS;
    cl_context_properties props[] = {CL_CONTEXT_PLATFORM, (cl_context_properties)entry->platform,
                                     0};
    dev->context = clCreateContext(props, 1, &entry->device, NULL, NULL, &err);
    clora_status status = CLORA_OK;
    if (err != CL_SUCCESS) {
        status = CLORA__FAIL_CL(err, "clCreateContext");
    } else {
        /* CLORA_QUEUE_PROFILING=1: event timestamps for the runtime's
         * profilers and tracers (PoCL's POCL_TRACING, for one). */
        const char *profiling = getenv("CLORA_QUEUE_PROFILING");
        const cl_command_queue_properties properties =
            profiling && strcmp(profiling, "1") == 0 ? CL_QUEUE_PROFILING_ENABLE : 0;
        dev->queue = clCreateCommandQueue(dev->context, entry->device, properties, &err);
        if (err != CL_SUCCESS)
            status = CLORA__FAIL_CL(err, "clCreateCommandQueue");
    }
    if (status == CLORA_OK)
        status = finish_setup(dev, index);
    if (status != CLORA_OK) {
        clora_device_destroy(dev);
        return status;
    }
    *out = dev;
    return CLORA_OK;
}

clora_status clora__device_open(clora_device **out, const char *selector)
{
    if (!out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_open: out is NULL");
    *out = NULL;
    const char *origin = "device selector";
    if (!selector || !*selector) {
        const char *env = getenv("CLORA_DEVICE");
        selector = (env && *env) ? env : NULL;
        origin = "CLORA_DEVICE";
    }
    device_entry *entries = NULL;
    size_t count = 0;
    clora_status status = enumerate(&entries, &count);
    size_t chosen = 0;
    if (status == CLORA_OK)
        status = select_entry(entries, count, selector, origin, &chosen);
    if (status == CLORA_OK)
        status = open_entry(out, &entries[chosen], chosen);
    free(entries);
    return status;
}

clora_status clora__device_open_index(clora_device **out, size_t index)
{
    if (!out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_open_index: out is NULL");
    *out = NULL;
    device_entry *entries = NULL;
    size_t count = 0;
    clora_status status = enumerate(&entries, &count);
    if (status == CLORA_OK && index >= count) {
        char headline[96];
        snprintf(headline, sizeof headline, "no device with index %zu", index);
        status = not_found(headline, entries, count);
    }
    if (status == CLORA_OK)
        status = open_entry(out, &entries[index], index);
    free(entries);
    return status;
}

clora_status clora__device_wrap(clora_device **out, cl_context context, cl_command_queue queue)
{
    if (!out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_wrap: out is NULL");
    *out = NULL;
    if (!context || !queue)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_wrap: %s is NULL",
                           context ? "queue" : "context");

    cl_context queue_context = NULL;
    cl_device_id device = NULL;
    cl_command_queue_properties properties = 0;
    cl_int err;
    if ((err = clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof queue_context, &queue_context,
                                     NULL)) ||
        (err = clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof device, &device, NULL)) ||
        (err = clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof properties, &properties,
                                     NULL)))
        return CLORA__FAIL_CL(err, "clGetCommandQueueInfo");
    if (queue_context != context)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_device_wrap: the queue belongs to a different context");
    if (properties & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "clora_device_wrap: the queue is out-of-order; clora relies on "
                           "in-order execution");

    cl_platform_id platform = NULL;
    if ((err = clGetDeviceInfo(device, CL_DEVICE_PLATFORM, sizeof platform, &platform, NULL)))
        return CLORA__FAIL_CL(err, "clGetDeviceInfo");

    /* The device's place in clora's list, for info.index; SIZE_MAX if the
     * application reached a device the ICD loader does not list. */
    device_entry *entries = NULL;
    size_t count = 0, index = SIZE_MAX;
    if (enumerate(&entries, &count) == CLORA_OK)
        for (size_t i = 0; i < count; ++i)
            if (entries[i].device == device)
                index = i;
    free(entries);

    clora_device *dev = clora__calloc(1, sizeof *dev);
    if (!dev)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a device handle");
    dev->platform = platform;
    dev->device = device;
    dev->context = context;
    dev->queue = queue;
    clRetainContext(context);
    clRetainCommandQueue(queue);
    clora_status status = finish_setup(dev, index);
    if (status != CLORA_OK) {
        clora_device_destroy(dev);
        return status;
    }
    *out = dev;
    return CLORA_OK;
}

clora_status clora__device_open_dry(clora_device **out, uint64_t budget)
{
    *out = NULL;
    clora_device *dev = clora__calloc(1, sizeof *dev);
    if (!dev)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "allocating a device handle");
    dev->dry = 1;
    dev->dry_budget = budget;
    snprintf(dev->info.name, sizeof dev->info.name, "dry (checks only)");
    dev->info.max_alloc_bytes = UINT64_MAX;
    dev->info.global_mem_bytes = UINT64_MAX;
    *out = dev;
    return CLORA_OK;
}

void clora_device_destroy(clora_device *dev)
{
    if (!dev)
        return;
    if (dev->queue)
        clFinish(dev->queue);
    for (size_t i = 0; i < CLORA__KERNEL_COUNT; ++i)
        if (dev->kernels[i])
            clReleaseKernel(dev->kernels[i]);
    for (size_t i = 0; i < CLORA__PROGRAM_COUNT; ++i)
        if (dev->programs[i])
            clReleaseProgram(dev->programs[i]);
    if (dev->scratch)
        clReleaseMemObject(dev->scratch);
    if (dev->gemm_temp)
        clReleaseMemObject(dev->gemm_temp);
    if (dev->dequantized)
        clReleaseMemObject(dev->dequantized);
    clora__device_pool_clear(dev);
    if (dev->queue)
        clReleaseCommandQueue(dev->queue);
    if (dev->context)
        clReleaseContext(dev->context);
    free(dev);
}

/* ---- queries --------------------------------------------------------------- */

clora_status clora_device_get_info(const clora_device *dev, clora_device_info *info)
{
    if (!dev || !info)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_get_info: %s is NULL",
                           dev ? "info" : "device");
    *info = dev->info;
    return CLORA_OK;
}

clora_status clora_device_require(const clora_device *dev, unsigned features)
{
    if (!dev)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_require: device is NULL");
    const unsigned known = CLORA_FEATURE_FP16 | CLORA_FEATURE_FP64;
    if (features & ~known)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_device_require: unknown feature bits 0x%x", features & ~known);
    char missing[64] = "";
    if ((features & CLORA_FEATURE_FP16) && !dev->info.fp16)
        strcat(missing, " cl_khr_fp16");
    if ((features & CLORA_FEATURE_FP64) && !dev->info.fp64)
        strcat(missing, " cl_khr_fp64");
    if (missing[0])
        return clora__fail(CLORA_ERR_UNSUPPORTED, "device \"%s\" lacks:%s", dev->info.name,
                           missing);
    return CLORA_OK;
}

clora_status clora_device_finish(clora_device *dev)
{
    if (!dev)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_finish: device is NULL");
    cl_int err = clFinish(dev->queue);
    return err == CL_SUCCESS ? CLORA_OK : CLORA__FAIL_CL(err, "clFinish");
}

size_t clora_device_scratch_bytes(const clora_device *dev)
{
    return dev ? dev->scratch_bytes : 0;
}

void clora__device_account(clora_device *dev, clora_memory_category category, int64_t bytes)
{
    dev->memory[category] = (uint64_t)((int64_t)dev->memory[category] + bytes);
    if (dev->memory[category] > dev->memory_category_peak[category])
        dev->memory_category_peak[category] = dev->memory[category];
    uint64_t total = 0;
    for (int c = 0; c < CLORA_MEMORY_CATEGORY_COUNT; ++c)
        total += dev->memory[c];
    if (total > dev->memory_peak)
        dev->memory_peak = total;
}

clora_status clora_device_memory(const clora_device *dev, clora_memory_report *report)
{
    if (!dev || !report)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_memory: %s is NULL",
                           dev ? "report" : "device");
    memset(report, 0, sizeof *report);
    for (int c = 0; c < CLORA_MEMORY_CATEGORY_COUNT; ++c) {
        report->bytes[c] = dev->memory[c];
        report->peak_bytes[c] = dev->memory_category_peak[c];
        report->total += dev->memory[c];
    }
    report->peak = dev->memory_peak;
    memcpy(report->frozen_bytes_by_dtype, dev->frozen_by_dtype, sizeof dev->frozen_by_dtype);
    report->dequantize_scratch_bytes = dev->dequantized_bytes;
    return CLORA_OK;
}

clora_status clora_device_reset_memory_peak(clora_device *dev)
{
    if (!dev)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_reset_memory_peak: device is NULL");
    dev->memory_peak = 0;
    for (int c = 0; c < CLORA_MEMORY_CATEGORY_COUNT; ++c) {
        dev->memory_category_peak[c] = dev->memory[c];
        dev->memory_peak += dev->memory[c];
    }
    return CLORA_OK;
}

const char *clora_memory_category_name(clora_memory_category category)
{
    switch (category) {
    case CLORA_MEMORY_OTHER:
        return "other";
    case CLORA_MEMORY_FROZEN:
        return "frozen weights";
    case CLORA_MEMORY_TRAINABLE:
        return "trainable parameters";
    case CLORA_MEMORY_GRADIENTS:
        return "gradients";
    case CLORA_MEMORY_OPTIMIZER:
        return "optimizer state";
    case CLORA_MEMORY_ACTIVATIONS:
        return "activations";
    case CLORA_MEMORY_SCRATCH:
        return "scratch";
    case CLORA_MEMORY_CATEGORY_COUNT:
        break;
    }
    return "?";
}

cl_context clora_device_cl_context(const clora_device *dev)
{
    return dev ? dev->context : NULL;
}

cl_command_queue clora_device_cl_queue(const clora_device *dev)
{
    return dev ? dev->queue : NULL;
}

cl_device_id clora_device_cl_device(const clora_device *dev)
{
    return dev ? dev->device : NULL;
}

const char *clora_device_type_name(clora_device_type type)
{
    switch (type) {
    case CLORA_DEVICE_GPU:
        return "GPU";
    case CLORA_DEVICE_CPU:
        return "CPU";
    case CLORA_DEVICE_ACCELERATOR:
        return "accelerator";
    case CLORA_DEVICE_OTHER:
        break;
    }
    return "other";
}

/* ---- scratch ---------------------------------------------------------------- */

void clora__device_pool_clear(clora_device *dev)
{
    for (size_t i = 0; i < dev->pool_count; ++i) {
        clora__device_account(dev, CLORA_MEMORY_SCRATCH,
                              -(int64_t)(dev->pool[i].capacity * sizeof(float)));
        clReleaseMemObject(dev->pool[i].mem);
    }
    dev->pool_count = 0;
}

/* Grows *mem (of *held bytes) to at least `bytes`, counted as scratch. */
static clora_status grow(clora_device *dev, cl_mem *mem, size_t *held, size_t bytes,
                         const char *what)
{
    if (bytes == 0)
        bytes = sizeof(float);
    if (bytes > *held) {
        if (bytes > dev->info.max_alloc_bytes)
            return clora__fail(CLORA_ERR_OUT_OF_DEVICE_MEMORY,
                               "%s of %zu bytes exceeds the device's largest allocation "
                               "(%llu bytes)",
                               what, bytes, (unsigned long long)dev->info.max_alloc_bytes);
        cl_int err;
        cl_mem grown = clora__fault(CLORA__FAULT_DEVICE_ALLOC)
                           ? (err = CL_MEM_OBJECT_ALLOCATION_FAILURE, NULL)
                           : clCreateBuffer(dev->context, CL_MEM_READ_WRITE, bytes, NULL, &err);
        if (err != CL_SUCCESS)
            return CLORA__FAIL_CL(err, "clCreateBuffer");
        /* Commands already enqueued keep the old buffer alive until they finish. */
        if (*mem)
            clReleaseMemObject(*mem);
        clora__device_account(dev, CLORA_MEMORY_SCRATCH, (int64_t)bytes - (int64_t)*held);
        *mem = grown;
        *held = bytes;
    }
    return CLORA_OK;
}

clora_status clora__device_scratch(clora_device *dev, size_t bytes, cl_mem *out)
{
    clora_status status = grow(dev, &dev->scratch, &dev->scratch_bytes, bytes, "scratch");
    *out = dev->scratch;
    return status;
}

clora_status clora__device_dequantized(clora_device *dev, size_t bytes, cl_mem *out)
{
    clora_status status = grow(dev, &dev->dequantized, &dev->dequantized_bytes, bytes,
                               "the dequantized weight tile");
    *out = dev->dequantized;
    return status;
}

void clora__device_set_dequantize_tile(clora_device *dev, size_t floats)
{
    dev->dequantize_tile = floats ? floats : CLORA__DEQUANTIZE_TILE;
}

clora_status clora__device_gemm_temp(clora_device *dev, size_t bytes, cl_mem *out)
{
    clora_status status =
        grow(dev, &dev->gemm_temp, &dev->gemm_temp_bytes, bytes, "GEMM temporary memory");
    *out = dev->gemm_temp;
    return status;
}
