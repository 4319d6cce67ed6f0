/* fault.c — fault injection for tests: the points where clora meets the
 * OpenCL runtime, CLBlast or the file system count their calls, and the
 * plan in clora__faults makes one chosen call fail as that call can fail
 * in the field; host allocations count through the wrappers at the end.
 * With no plan (fail_at 0 and no hook) a point costs one comparison. Not thread-safe: a test sets the plan, then runs one thread. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

clora__fault_plan clora__faults = {0, 0, 0, NULL};

int clora__fault(clora__fault_kind kind)
{
    clora__fault_plan *p = &clora__faults;
    if ((p->fail_at == 0 && !p->on_hit) || !(p->kinds & (1u << kind)))
        return 0;
    const long hit = ++p->hits;
    if (p->on_hit)
        p->on_hit(kind, hit);
    return hit == p->fail_at;
}

void clora__fault_plan_set(unsigned kinds, long fail_at, void (*on_hit)(clora__fault_kind, long))
{
    clora__faults.kinds = kinds;
    clora__faults.fail_at = fail_at;
    clora__faults.hits = 0;
    clora__faults.on_hit = on_hit;
}

void *clora__malloc(size_t bytes)
{
    return clora__fault(CLORA__FAULT_HOST_ALLOC) ? NULL : malloc(bytes);
}

void *clora__calloc(size_t count, size_t bytes)
{
    return clora__fault(CLORA__FAULT_HOST_ALLOC) ? NULL : calloc(count, bytes);
}

void *clora__realloc(void *p, size_t bytes)
{
    return clora__fault(CLORA__FAULT_HOST_ALLOC) ? NULL : realloc(p, bytes);
}

char *clora__strdup(const char *s)
{
    return clora__fault(CLORA__FAULT_HOST_ALLOC) ? NULL : strdup(s);
}
