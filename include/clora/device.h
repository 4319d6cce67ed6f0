/* clora/device.h — OpenCL devices: enumeration, choice, wrapping.
 *
 * clora numbers every device of every OpenCL platform in one list: platforms
 * in the order the ICD loader reports them, devices in each platform's order.
 * A device handle owns (or, when wrapped, borrows) one context and one
 * in-order command queue, and caches the programs clora builds for it.
 *
 * Environment, read when a device is opened or wrapped:
 *   CLORA_DEVICE      the default device for clora_device_open(NULL)
 *   CLORA_KERNEL_DIR  load kernel sources from <dir>/<family>.cl instead of
 *                     the copies embedded in the library (kernel development)
 *   CLORA_RANK_KERNEL "tiled" or "streaming": the rank-r kernel family
 *                     (default: streaming on CPUs, tiled elsewhere)
 *   CLORA_RANK_TILE   cap the tile edge of the tiled kernel (1, 2, 4, 8 or
 *                     16), to exercise on one device the paths that devices
 *                     with small work-group limits take
 *
 * Thread-safety: a clora_device and everything created on it may be used by
 * one thread at a time. Different devices may be used from different threads.
 *
 * Host memory on CPU devices: PoCL's buffers are the process's own heap.
 * glibc keeps the holes that buffers of changing sizes leave when freed,
 * so a training run's resident memory can grow by a gigabyte or more; the
 * clora command calls mallopt(M_MMAP_THRESHOLD, 1 << 20) first, so that
 * blocks of a MiB and up go back to the system when freed, and an
 * application that trains on such a device may do the same.
 */
#ifndef CLORA_DEVICE_H
#define CLORA_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#ifdef __APPLE__
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif

#include "clora/dtype.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct clora_device clora_device;

typedef enum clora_device_type {
    CLORA_DEVICE_GPU = 0,
    CLORA_DEVICE_CPU = 1,
    CLORA_DEVICE_ACCELERATOR = 2,
    CLORA_DEVICE_OTHER = 3
} clora_device_type;

/* Optional device features, as bit flags for clora_device_require(). */
typedef enum clora_feature {
    CLORA_FEATURE_FP16 = 1u << 0, /* cl_khr_fp16 */
    CLORA_FEATURE_FP64 = 1u << 1  /* cl_khr_fp64 */
} clora_feature;

typedef struct clora_device_info {
    size_t index;                /* position in clora's device list */
    clora_device_type type;
    char platform_name[128];
    char name[128];
    char vendor[128];
    char driver_version[64];
    char device_version[64];     /* e.g. "OpenCL 3.0 PoCL ..." */
    char opencl_c_version[64];   /* e.g. "OpenCL C 1.2 PoCL" */
    uint64_t global_mem_bytes;
    uint64_t local_mem_bytes;
    uint64_t max_alloc_bytes;    /* largest single buffer */
    size_t max_work_group_size;
    unsigned compute_units;
    int fp16;                    /* 1 if cl_khr_fp16 is reported */
    int fp64;                    /* 1 if cl_khr_fp64 is reported */
    char tuning[320];            /* open devices: where CLBlast's kernel parameters
                                    come from (see clora_device_set_tuning) */
} clora_device_info;

/* Number of OpenCL devices on all platforms; 0 (and CLORA_OK) when the ICD
 * loader finds no platform. */
clora_status clora_device_count(size_t *count);

/* Describes device `index` of the list without opening it.
 * CLORA_ERR_DEVICE_NOT_FOUND if index >= the device count. */
clora_status clora_device_describe(size_t index, clora_device_info *info);

/* Opens a device and creates a context and an in-order queue for it.
 * selector:
 *   NULL or ""   the CLORA_DEVICE environment variable if it is set and not
 *                empty, else the first GPU, else the first device of any type;
 *   "3"          (all digits) the device with that index;
 *   otherwise    the first device whose "platform / name / vendor" contains
 *                the selector, compared case-insensitively.
 * An explicit selector wins over CLORA_DEVICE. Nothing matching gives
 * CLORA_ERR_DEVICE_NOT_FOUND with the list of devices in the message.
 * Release with clora_device_destroy(). */
clora_status clora_device_open(clora_device **out, const char *selector);

/* Opens device `index` of the list (ignores CLORA_DEVICE). */
clora_status clora_device_open_index(clora_device **out, size_t index);

/* Uses an application's own context and queue: both are retained here and
 * released by clora_device_destroy(); clora creates no context or queue of
 * its own. The queue must belong to the context and be in-order (an
 * out-of-order queue gives CLORA_ERR_UNSUPPORTED). clora enqueues its work on
 * that queue, interleaved with the application's in submission order. */
clora_status clora_device_wrap(clora_device **out, cl_context context, cl_command_queue queue);

/* Waits for the queue, then releases everything the handle holds.
 * NULL is a no-op. */
void clora_device_destroy(clora_device *device);

/* Fills `info` for an open device. */
clora_status clora_device_get_info(const clora_device *device, clora_device_info *info);

/* CLORA_OK if the device has every feature in `features` (clora_feature
 * bits), else CLORA_ERR_UNSUPPORTED naming the missing ones. */
clora_status clora_device_require(const clora_device *device, unsigned features);

/* ---- CLBlast kernel parameters ("tuning") ----------------------------------
 *
 * The frozen GEMMs run through CLBlast, whose speed depends on kernel
 * parameters tuned per device. Devices missing from CLBlast's database
 * (PoCL's CPU device among them) get generic parameters that can be several
 * times slower. Opening (or wrapping) a device applies, first match wins:
 *
 *   CLORA_TUNING=off      nothing: CLBlast's own parameters;
 *   CLORA_TUNING=FILE     that tuning file (an error if it cannot be used);
 *   the device's cache file, clora_device_tuning_path(), written by
 *                         `clora tune` (an error if it cannot be used);
 *   clora's shipped parameters for the kind of device (PoCL's CPU device),
 *                         skipped if this CLBlast does not take them.
 *
 * info.tuning names the choice. A tuning file is JSON:
 *   {"format": "clora-clblast-tuning", "version": 1,
 *    "kernels": {"Xgemm": {"GEMMK": 0, "MWG": 64, ...}, "XgemmDirect": {...},
 *                "Copy": {...}, "Pad": {...}, "Transpose": {...},
 *                "Padtranspose": {...}, "GemmRoutine": {"XGEMM_MIN_INDIRECT_SIZE": 384}},
 *    ...}
 * with every parameter of each kernel listed (CLBlast's names); other
 * members (device, command, timings) are informative. */

/* The cache file for this device: $CLORA_TUNING_DIR, else
 * $XDG_CACHE_HOME/clora, else $HOME/.cache/clora, then a file name made of
 * the platform, device and driver names. CLORA_ERR_NOT_FOUND when no folder
 * can be named (no HOME). */
clora_status clora_device_tuning_path(const clora_device *device, char *path, size_t size);

/* Re-chooses the parameters: source NULL makes the choice of open again,
 * "off" keeps CLBlast's own parameters, anything else is a tuning file. A
 * file sets the kernels it lists; the others keep what they have. CLBlast
 * keeps parameters per device for the life of the process and cannot go
 * back to its own, so "off" (and an open under CLORA_TUNING=off) fails with
 * CLORA_ERR_UNSUPPORTED once the process gave the device other parameters.
 * Finishes the queue first; CLBlast recompiles its kernels on next use, for
 * every device. On error the parameters in force stay (and info.tuning
 * with them), except kernels of the file that CLBlast took before it
 * refused another, for which it has no way back. */
clora_status clora_device_set_tuning(clora_device *device, const char *source);

/* Products with packed frozen weights (clora/buffer.h) run in one of two
 * ways: the weight dequantized band by band into a float32 tile, each band
 * a CLBlast SGEMM; or, for a few rows of x (decode's one token per
 * sequence), one kernel that multiplies the packed bytes as it reads them.
 * The fused kernel takes up to `rows` rows (at most 4; 0: never); the
 * default, 4, is what `clora bench` measured on the devices in the README,
 * and CLORA_PACKED_FUSED_ROWS sets it at open. */
clora_status clora_device_set_packed_fused_rows(clora_device *device, size_t rows);
size_t clora_device_packed_fused_rows(const clora_device *device);

/* Blocks until all work clora (or anyone) enqueued on the queue is done. */
clora_status clora_device_finish(clora_device *device);

/* Bytes of device memory clora holds now as scratch (temporaries of the
 * rank-r backward pass), kept between calls and grown on demand. */
size_t clora_device_scratch_bytes(const clora_device *device);

/* What device memory clora allocated on this device is for. Buffers an
 * application creates with clora_buffer_create() count as OTHER; models,
 * optimizers and ops tag their own. */
typedef enum clora_memory_category {
    CLORA_MEMORY_OTHER = 0,
    CLORA_MEMORY_FROZEN,      /* frozen parameters (base weights) */
    CLORA_MEMORY_TRAINABLE,   /* trainable parameters */
    CLORA_MEMORY_GRADIENTS,   /* gradients of trainable parameters */
    CLORA_MEMORY_OPTIMIZER,   /* optimizer state (AdamW moments, momentum) */
    CLORA_MEMORY_ACTIVATIONS, /* activations and their gradients kept for backward */
    CLORA_MEMORY_SCRATCH,     /* temporaries of single ops */
    CLORA_MEMORY_CATEGORY_COUNT
} clora_memory_category;

typedef struct clora_memory_report {
    uint64_t bytes[CLORA_MEMORY_CATEGORY_COUNT]; /* held now, by category */
    uint64_t total;                              /* held now, all categories */
    uint64_t peak;                               /* highest total so far */
    uint64_t peak_bytes[CLORA_MEMORY_CATEGORY_COUNT]; /* highest of each category */
    /* The frozen weights held now by how they are stored (F32, or packed:
     * F16, Q4_1, ...); they add up to bytes[CLORA_MEMORY_FROZEN]. */
    uint64_t frozen_bytes_by_dtype[CLORA_DTYPE_COUNT];
    /* Of the scratch, the float32 copy that packed weights are dequantized
     * into for a GEMM (one tile of one layer; see clora_linear_forward()). */
    uint64_t dequantize_scratch_bytes;
} clora_memory_report;

/* Device memory clora holds on this device now, by category. Views and
 * wrapped application buffers own no memory and do not count. */
clora_status clora_device_memory(const clora_device *device, clora_memory_report *report);

/* Starts the peaks of clora_device_memory() again from what is held now. */
clora_status clora_device_reset_memory_peak(clora_device *device);

/* "other", "frozen weights", "trainable parameters", "gradients",
 * "optimizer state", "activations", "scratch". */
const char *clora_memory_category_name(clora_memory_category category);

/* The underlying OpenCL objects, borrowed: valid while the device is open;
 * do not release them. */
cl_context clora_device_cl_context(const clora_device *device);
cl_command_queue clora_device_cl_queue(const clora_device *device);
cl_device_id clora_device_cl_device(const clora_device *device);

/* A short name for a device type: "GPU", "CPU", "accelerator", "other". */
const char *clora_device_type_name(clora_device_type type);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_DEVICE_H */
