/* dtype.c — element type names, sizes and blocks. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "core/core.h"

static const struct {
    const char *name;
    size_t bits;   /* per element; 0 for block types */
    size_t block;  /* weights per block */
    size_t bytes;  /* per block; 0 below a byte */
} dtypes[CLORA_DTYPE_COUNT] = {
#define DTYPE_ROW_(id, name, bits) {name, bits, 1, (bits) % 8 ? 0 : (bits) / 8},
    CLORA_DTYPE_TABLE(DTYPE_ROW_)
#undef DTYPE_ROW_
#define DTYPE_BLOCK_ROW_(id, name, block, bytes) {name, 0, block, bytes},
    CLORA_DTYPE_BLOCK_TABLE(DTYPE_BLOCK_ROW_)
#undef DTYPE_BLOCK_ROW_
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
        if (dtypes[i].bits && !strcmp(dtypes[i].name, name)) {
            *dtype = (clora_dtype)i;
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_FORMAT, "unknown dtype \"%s\"", name);
}

clora_status clora_dtype_parse(const char *name, clora_dtype *dtype)
{
    if (!name || !dtype)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_dtype_parse: %s is NULL",
                           name ? "dtype" : "name");
    for (int i = 0; i < CLORA_DTYPE_COUNT; ++i)
        if (!strcasecmp(dtypes[i].name, name)) {
            *dtype = (clora_dtype)i;
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_FORMAT, "unknown dtype \"%s\"", name);
}

size_t clora_dtype_block_size(clora_dtype dtype)
{
    return (unsigned)dtype < CLORA_DTYPE_COUNT ? dtypes[dtype].block : 0;
}

size_t clora_dtype_block_bytes(clora_dtype dtype)
{
    return (unsigned)dtype < CLORA_DTYPE_COUNT ? dtypes[dtype].bytes : 0;
}

size_t clora_dtype_bytes(clora_dtype dtype, size_t n)
{
    const size_t block = clora_dtype_block_size(dtype), bytes = clora_dtype_block_bytes(dtype);
    if (!block || !bytes || n % block)
        return 0;
    const size_t blocks = n / block;
    return blocks > SIZE_MAX / bytes ? 0 : blocks * bytes;
}

int clora_dtype_is_packed(clora_dtype dtype)
{
    return dtype == CLORA_DTYPE_F16 || dtype == CLORA_DTYPE_BF16 ||
           ((unsigned)dtype < CLORA_DTYPE_COUNT && dtypes[dtype].block > 1);
}

int clora_dtype_can_quantize(clora_dtype dtype)
{
    return dtype == CLORA_DTYPE_F16 || dtype == CLORA_DTYPE_BF16 || dtype == CLORA_DTYPE_Q8_0 ||
           dtype == CLORA_DTYPE_Q4_0 || dtype == CLORA_DTYPE_Q4_1;
}

int clora_dtype_is_float(clora_dtype dtype)
{
    return dtype == CLORA_DTYPE_F32 || dtype == CLORA_DTYPE_F16 || dtype == CLORA_DTYPE_BF16 ||
           dtype == CLORA_DTYPE_F64;
}
