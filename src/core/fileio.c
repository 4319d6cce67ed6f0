/* fileio.c — whole-file reads and atomic writes. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

/* The folder part of `path` ("." when there is none), for fsync. */
static void parent_dir(const char *path, char *out, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, size, ".");
    else if (slash == path)
        snprintf(out, size, "/");
    else
        snprintf(out, size, "%.*s", (int)(slash - path), path);
}

static int write_all(int fd, const void *data, size_t size)
{
    const char *p = data;
    while (size > 0) {
        ssize_t n = write(fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        size -= (size_t)n;
    }
    return 0;
}

/* Writes one file's chunks to a new temporary beside `path`; *temp gets its
 * malloc'd name. */
static clora_status write_temporary(const char *path, const clora__chunk *chunks, size_t count,
                                    char **temp)
{
    size_t len = strlen(path);
    char *name = malloc(len + 16);
    if (!name)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing %s", path);
    snprintf(name, len + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(name);
    if (fd < 0) {
        clora_status status =
            clora__fail(CLORA_ERR_IO, "cannot create a file beside %s: %s", path, strerror(errno));
        free(name);
        return status;
    }
    int failed = 0;
    for (size_t i = 0; i < count && !failed; ++i)
        failed = write_all(fd, chunks[i].data, chunks[i].size) != 0;
    if (!failed)
        failed = fsync(fd) != 0;
    int saved_errno = errno;
    if (close(fd) != 0 && !failed) {
        failed = 1;
        saved_errno = errno;
    }
    if (failed) {
        unlink(name);
        free(name);
        return clora__fail(CLORA_ERR_IO, "cannot write %s: %s", path, strerror(saved_errno));
    }
    /* mkstemp creates 0600; give the file the usual permissions. */
    mode_t mask = umask(0);
    umask(mask);
    chmod(name, 0666 & ~mask);
    *temp = name;
    return CLORA_OK;
}

static void sync_parent(const char *path)
{
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

clora_status clora__write_files_atomic(const clora__file *files, size_t count)
{
    char **temps = calloc(count ? count : 1, sizeof *temps);
    char **backups = calloc(count ? count : 1, sizeof *backups);
    if (!temps || !backups) {
        free(temps);
        free(backups);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing files");
    }
    clora_status status = CLORA_OK;
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        if (!files[i].path || !*files[i].path)
            status = clora__fail(CLORA_ERR_INVALID_ARGUMENT, "cannot write a file with no path");
        else
            status = write_temporary(files[i].path, files[i].chunks, files[i].chunk_count,
                                     &temps[i]);
    }
    /* Keep a hard link to each file being replaced, so that a rename that
     * fails part way can put the earlier ones back. */
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        size_t len = strlen(files[i].path) + 16;
        backups[i] = malloc(len);
        if (!backups[i]) {
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing %s", files[i].path);
            break;
        }
        snprintf(backups[i], len, "%s.bak.%d", files[i].path, (int)getpid());
        unlink(backups[i]);
        if (link(files[i].path, backups[i]) != 0) {
            free(backups[i]); /* nothing to keep (new file), or no hard links here */
            backups[i] = NULL;
        }
    }
    size_t renamed = 0;
    for (; renamed < count && status == CLORA_OK; ++renamed)
        if (rename(temps[renamed], files[renamed].path) != 0) {
            status = clora__fail(CLORA_ERR_IO, "cannot write %s: %s", files[renamed].path,
                                 strerror(errno));
            break;
        }
    if (status != CLORA_OK)
        for (size_t i = 0; i < renamed; ++i) {
            if (backups[i])
                rename(backups[i], files[i].path);
            else
                unlink(files[i].path);
        }
    for (size_t i = 0; i < count; ++i) {
        if (temps[i] && status != CLORA_OK)
            unlink(temps[i]); /* the ones not renamed yet */
        if (backups[i])
            unlink(backups[i]);
        free(temps[i]);
        free(backups[i]);
    }
    free(temps);
    free(backups);
    if (status == CLORA_OK)
        for (size_t i = 0; i < count; ++i)
            sync_parent(files[i].path);
    return status;
}

clora_status clora__write_file_atomic(const char *path, const clora__chunk *chunks, size_t count)
{
    const clora__file file = {path, chunks, count};
    return clora__write_files_atomic(&file, 1);
}

clora_status clora__read_file(const char *path, char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return clora__fail(CLORA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return clora__fail(CLORA_ERR_IO, "%s is not a regular file", path);
    }
    char *buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reading %s (%lld bytes)", path,
                           (long long)st.st_size);
    }
    size_t n = fread(buf, 1, (size_t)st.st_size, f);
    int bad = ferror(f) || n != (size_t)st.st_size;
    fclose(f);
    if (bad) {
        free(buf);
        return clora__fail(CLORA_ERR_IO, "cannot read %s", path);
    }
    buf[n] = '\0';
    *out = buf;
    *size = n;
    return CLORA_OK;
}

clora_status clora__join_path(char *out, size_t size, const char *dir, const char *name)
{
    int n = snprintf(out, size, "%s%s%s", dir, (*dir && dir[strlen(dir) - 1] != '/') ? "/" : "",
                     name);
    if (n < 0 || (size_t)n >= size)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "path too long: %s/%s", dir, name);
    return CLORA_OK;
}

clora_status clora__ensure_dir(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode))
            return CLORA_OK;
        return clora__fail(CLORA_ERR_IO, "%s exists and is not a folder", path);
    }
    if (mkdir(path, 0777) != 0 && errno != EEXIST)
        return clora__fail(CLORA_ERR_IO, "cannot create folder %s: %s", path, strerror(errno));
    return CLORA_OK;
}
