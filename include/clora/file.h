/* clora/file.h — files written as clora writes its own.
 *
 * Every file clora saves goes to a temporary beside it, is flushed and
 * fsynced, and is renamed over the old one, the folder fsynced after: a
 * failure or a crash leaves the old file or the new one, never a part.
 * Programs that write files next to clora's (a run log, a config) can do
 * the same with one call.
 */
#ifndef CLORA_FILE_H
#define CLORA_FILE_H

#include <stddef.h>

#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Writes `size` bytes to `path` that way. */
clora_status clora_file_write_atomic(const char *path, const void *data, size_t size);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_FILE_H */
