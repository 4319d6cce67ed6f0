/* dtype.c — element type names and sizes. */
#include <string.h>

#include "core/core.h"

static const struct {
    const char *name;
    size_t bits;
} dtypes[CLORA_DTYPE_COUNT] = {
#define DTYPE_ROW_(id, name, bits) {name, bits},
    CLORA_DTYPE_TABLE(DTYPE_ROW_)
#undef DTYPE_ROW_
};

const char *clora_dtype_name(clora_dtype dtype)
{
    return (unsigned)dtype < CLORA_DTYPE_COUNT ? dtypes[dtype].name : "?";
}

size_t clora_dtype_bits(clora_dtype dtype)
{
    return (unsigned)dtype < CLORA_DTYPE_COUNT ? dtypes[dtype].bits : 0;
}

clora_status clora_dtype_from_name(const char *name, clora_dtype *dtype)
{
    if (!name || !dtype)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_dtype_from_name: %s is NULL",
                           name ? "dtype" : "name");
    for (int i = 0; i < CLORA_DTYPE_COUNT; ++i)
        if (!strcmp(dtypes[i].name, name)) {
            *dtype = (clora_dtype)i;
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_FORMAT, "unknown dtype \"%s\"", name);
}

int clora_dtype_is_float(clora_dtype dtype)
{
    return dtype == CLORA_DTYPE_F32 || dtype == CLORA_DTYPE_F16 || dtype == CLORA_DTYPE_BF16 ||
           dtype == CLORA_DTYPE_F64;
}
