/* kernels_embedded.h — the OpenCL sources of cl/ and the tuning files of
 * tuning/, compiled into the library by cmake/embed_kernels.cmake. */
#ifndef CLORA_CORE_KERNELS_EMBEDDED_H
#define CLORA_CORE_KERNELS_EMBEDDED_H

#include <stddef.h>

typedef struct clora__embedded_kernel {
    const char *name;   /* file name without .cl; NULL ends the table */
    const char *source; /* NUL-terminated */
    size_t size;        /* bytes, without the NUL */
} clora__embedded_kernel;

extern const clora__embedded_kernel clora__embedded_kernels[];
/* The same for tuning/NAME.json: CLBlast parameters clora ships. */
extern const clora__embedded_kernel clora__embedded_tuning[];

#endif /* CLORA_CORE_KERNELS_EMBEDDED_H */
