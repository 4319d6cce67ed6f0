/* version.c — the linked library's version. */
#include "core/core.h"

const char *clora_version(void)
{
    return CLORA_VERSION_STRING;
}

unsigned clora_version_number(void)
{
    return CLORA_VERSION_NUMBER;
}
