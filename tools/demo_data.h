/* demo_data.h — the demo's synthetic tasks (see demo_data.c). */
#ifndef CLORA_TOOLS_DEMO_DATA_H
#define CLORA_TOOLS_DEMO_DATA_H

#include <stdint.h>

#include "training.h"

#define DEMO_SIDE 8

/* `count` labelled images (inputs (count, 64), labels 0-9); turned: task B.
 * Returns 0 when out of memory. */
int demo_make_dataset(dataset *data, size_t count, int turned, uint64_t seed);

#endif /* CLORA_TOOLS_DEMO_DATA_H */
