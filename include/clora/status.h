/* clora/status.h — status codes and error messages.
 *
 * Every fallible clora call returns a clora_status. CLORA_OK is 0; failures
 * are negative and fall into bands:
 *   -1 .. -19   the caller's mistake (bad argument, shape, rank, size)
 *   -20 .. -39  the device or runtime (OpenCL, CLBlast, kernel build, memory)
 *   -40 .. -59  files and formats
 * Next to the short status string, each failure leaves a detailed message on
 * the calling thread (OpenCL error name, CLBlast code, kernel build log,
 * file:line), read with clora_last_error(). The library never prints, exits
 * or aborts on its own.
 */
#ifndef CLORA_STATUS_H
#define CLORA_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, value, description): the single table the enum and its strings
 * are generated from. */
#define CLORA_STATUS_TABLE(X)                                                            \
    X(CLORA_OK, 0, "success")                                                            \
    X(CLORA_ERR_INVALID_ARGUMENT, -1, "invalid argument")                                \
    X(CLORA_ERR_NULL_ARGUMENT, -2, "a required argument is NULL")                        \
    X(CLORA_ERR_SHAPE_MISMATCH, -3, "tensor shapes do not match")                        \
    X(CLORA_ERR_INVALID_RANK, -4, "LoRA rank out of range")                              \
    X(CLORA_ERR_BUFFER_TOO_SMALL, -5, "buffer too small")                                \
    X(CLORA_ERR_DEVICE_MISMATCH, -6, "buffers belong to different devices")              \
    X(CLORA_ERR_NOT_FOUND, -7, "no such name")                                           \
    X(CLORA_ERR_DTYPE_MISMATCH, -8, "element type does not match")                       \
    X(CLORA_ERR_STATE, -9, "not allowed in the current state")                           \
    X(CLORA_ERR_DEVICE_NOT_FOUND, -20, "no OpenCL device matches")                       \
    X(CLORA_ERR_UNSUPPORTED, -21, "not supported by the device or by clora")            \
    X(CLORA_ERR_OUT_OF_HOST_MEMORY, -22, "out of host memory")                           \
    X(CLORA_ERR_OUT_OF_DEVICE_MEMORY, -23, "out of device memory")                       \
    X(CLORA_ERR_OPENCL, -24, "OpenCL call failed")                                       \
    X(CLORA_ERR_CLBLAST, -25, "CLBlast call failed")                                     \
    X(CLORA_ERR_KERNEL_BUILD, -26, "OpenCL kernel failed to build")                      \
    X(CLORA_ERR_NON_FINITE, -27, "a result would not be finite")                         \
    X(CLORA_ERR_IO, -40, "file input/output failed")                                     \
    X(CLORA_ERR_FORMAT, -41, "file content is malformed")

typedef enum clora_status {
#define CLORA_STATUS_ENUM_(name, value, text) name = value,
    CLORA_STATUS_TABLE(CLORA_STATUS_ENUM_)
#undef CLORA_STATUS_ENUM_
} clora_status;

/* The enumerator's name, e.g. "CLORA_ERR_SHAPE_MISMATCH"; "CLORA_ERR_UNKNOWN"
 * for a value outside the table. Static storage. */
const char *clora_status_name(clora_status status);

/* A short description, e.g. "tensor shapes do not match". Static storage. */
const char *clora_status_string(clora_status status);

/* The detailed message of the most recent failing clora call on this thread,
 * or "" if none failed yet. Successful calls leave it unchanged. Valid until
 * the next failing call on the same thread. */
const char *clora_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_STATUS_H */
