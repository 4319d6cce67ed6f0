/* fileio.c — whole-file reads, and writes that replace one file or a group
 * of files all at once, also when the process is killed part way. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clora/file.h"
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
    char *name = clora__malloc(len + 16);
    if (!name)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing %s", path);
    snprintf(name, len + 16, "%s.tmp.XXXXXX", path);
    int fd = clora__fault(CLORA__FAULT_FILE_OPEN) ? (errno = EACCES, -1) : mkstemp(name);
    if (fd < 0) {
        clora_status status =
            clora__fail(CLORA_ERR_IO, "cannot create a file beside %s: %s", path, strerror(errno));
        free(name);
        return status;
    }
    int failed = 0;
    for (size_t i = 0; i < count && !failed; ++i)
        failed = clora__fault(CLORA__FAULT_FILE_WRITE) ? (errno = ENOSPC, 1)
                                                        : write_all(fd, chunks[i].data,
                                                                    chunks[i].size) != 0;
    if (!failed)
        failed = clora__fault(CLORA__FAULT_FSYNC) ? (errno = EIO, 1) : fsync(fd) != 0;
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

/* ---- several files as one: a commit record ---------------------------------------
 *
 * A group of files in one folder is replaced in stages. Every new file is
 * written and flushed to a temporary NAME.tmp.XXXXXX beside its target, and
 * each existing target gets a second name NAME.bak.XXXXXX (a hard link).
 * A file the group removes has no temporary ("-" in the record), only its
 * backup. Then the commit record COMMIT_RECORD, "forward", is written
 * (through a temporary and a rename of its own) naming each temporary,
 * target and backup: from the moment it exists the save has happened. Then
 * each temporary is renamed over its target (each removed target unlinked),
 * the backups are removed, and so is the record. Should a rename fail, the
 * record is replaced by a "back" one and the backups are renamed over their
 * targets again.
 *
 * Killed before the record exists, a save leaves the old files (and stray
 * temporaries); killed after, it leaves a record that the next reader or
 * writer of the folder carries out (clora__finish_interrupted_save). Every
 * step of carrying out a record can be repeated, so the folder holds the
 * old group or the new one, never a mix. */

#define COMMIT_RECORD ".clora-commit"
#define COMMIT_MAGIC "clora-commit 1\n"
#define NO_BACKUP "-"
#define NO_TEMPORARY "-" /* the group removes the target */

static int do_rename(const char *from, const char *to)
{
    if (clora__fault(CLORA__FAULT_RENAME)) {
        errno = EIO;
        return -1;
    }
    return rename(from, to);
}

/* A removal of a group's target: a change of a name in the folder, as a
 * rename is, and made to fail or kill with the renames. */
static int do_remove(const char *path)
{
    if (clora__fault(CLORA__FAULT_RENAME)) {
        errno = EIO;
        return -1;
    }
    return unlink(path) != 0 && errno != ENOENT ? -1 : 0;
}

/* The name part of `path`. */
static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

static void sync_parent(const char *path)
{
    char dir[4096];
    parent_dir(path, dir, sizeof dir);
    sync_dir(dir);
}

static int exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

/* "NAME<kind>XXXXXX" with no folder part: a temporary or backup of NAME. */
static int is_companion(const char *name, const char *target, const char *kind)
{
    const size_t n = strlen(target), k = strlen(kind);
    return *target && !strchr(name, '/') && !strchr(target, '/') && strcmp(target, ".") &&
           strcmp(target, "..") && !strncmp(name, target, n) && !strncmp(name + n, kind, k) &&
           strlen(name + n + k) == 6;
}

/* One line of a record: the three names, checked. */
typedef struct record_line {
    /* backup NO_BACKUP: the target is new; temp NO_TEMPORARY: it is removed */
    const char *temp, *target, *backup;
} record_line;

static clora_status parse_line(char **cursor, const char *record, record_line *out)
{
    char *line = *cursor, *end = strchr(line, '\n');
    char *tab1 = strchr(line, '\t'), *tab2 = tab1 ? strchr(tab1 + 1, '\t') : NULL;
    if (!end || !tab1 || !tab2 || tab2 > end)
        return clora__fail(CLORA_ERR_FORMAT, "%s: a line is not TEMPORARY<TAB>TARGET<TAB>BACKUP",
                           record);
    *end = *tab1 = *tab2 = '\0';
    *cursor = end + 1;
    out->temp = line;
    out->target = tab1 + 1;
    out->backup = tab2 + 1;
    const int removed = !strcmp(out->temp, NO_TEMPORARY);
    if ((!removed && !is_companion(out->temp, out->target, ".tmp.")) ||
        ((removed || strcmp(out->backup, NO_BACKUP)) &&
         !is_companion(out->backup, out->target, ".bak.")))
        return clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" and \"%s\" are not files of \"%s\"",
                           record, out->temp, out->backup, out->target);
    return CLORA_OK;
}

/* Carries out the record at `record` (its content `text`, which this
 * changes): "forward" renames the temporaries still there over their
 * targets; "back" puts each backup over its target again (or removes a
 * target that had none). Then the leftovers and the record go. */
static clora_status carry_out(const char *dir, const char *record, char *text)
{
    if (strncmp(text, COMMIT_MAGIC, strlen(COMMIT_MAGIC)) != 0)
        return clora__fail(CLORA_ERR_FORMAT, "%s is not a clora commit record", record);
    char *cursor = text + strlen(COMMIT_MAGIC);
    int forward;
    if (!strncmp(cursor, "forward\n", 8))
        forward = 1;
    else if (!strncmp(cursor, "back\n", 5))
        forward = 0;
    else
        return clora__fail(CLORA_ERR_FORMAT, "%s: neither forward nor back", record);
    cursor += forward ? 8 : 5;
    record_line lines[CLORA__COMMIT_MAX_FILES];
    size_t count = 0;
    clora_status status = CLORA_OK;
    while (*cursor && status == CLORA_OK) {
        if (count == CLORA__COMMIT_MAX_FILES)
            return clora__fail(CLORA_ERR_FORMAT, "%s: more than %d files", record,
                               CLORA__COMMIT_MAX_FILES);
        status = parse_line(&cursor, record, &lines[count++]);
    }
    char temp[4096], target[4096], backup[4096];
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        const int has_backup = strcmp(lines[i].backup, NO_BACKUP) != 0;
        const int removed = !strcmp(lines[i].temp, NO_TEMPORARY);
        if ((status = clora__join_path(temp, sizeof temp, dir, lines[i].temp)) ||
            (status = clora__join_path(target, sizeof target, dir, lines[i].target)) ||
            (status = clora__join_path(backup, sizeof backup, dir,
                                       has_backup ? lines[i].backup : lines[i].target)))
            break;
        const char *from = forward ? temp : backup;
        if (forward && removed) {
            if (exists(target) && do_remove(target) != 0)
                status = clora__fail(CLORA_ERR_IO, "%s: cannot remove %s: %s", dir,
                                     lines[i].target, strerror(errno));
        } else if (!forward && !has_backup) {
            if (unlink(target) != 0 && errno != ENOENT)
                status = clora__fail(CLORA_ERR_IO, "%s: cannot remove %s: %s", dir,
                                     lines[i].target, strerror(errno));
        } else if (exists(from) && do_rename(from, target) != 0) {
            status = clora__fail(CLORA_ERR_IO, "%s: cannot %s the save that %s records (%s): %s",
                                 dir, forward ? "finish" : "undo", COMMIT_RECORD, lines[i].target,
                                 strerror(errno));
        }
    }
    if (status != CLORA_OK)
        return status;
    sync_dir(dir);
    for (size_t i = 0; i < count; ++i) { /* what is left of the save */
        if (strcmp(lines[i].temp, NO_TEMPORARY) &&
            clora__join_path(temp, sizeof temp, dir, lines[i].temp) == CLORA_OK)
            unlink(temp);
        if (strcmp(lines[i].backup, NO_BACKUP) &&
            clora__join_path(backup, sizeof backup, dir, lines[i].backup) == CLORA_OK)
            unlink(backup);
    }
    if (unlink(record) != 0 && errno != ENOENT)
        status = clora__fail(CLORA_ERR_IO, "cannot remove %s: %s", record, strerror(errno));
    sync_dir(dir);
    return status;
}

static clora_status carry_out_file(const char *dir, const char *record)
{
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(record, &text, &size);
    if (status == CLORA_OK)
        status = carry_out(dir, record, text);
    free(text);
    return status;
}

clora_status clora__finish_interrupted_save(const char *dir)
{
    char record[4096];
    clora_status status = clora__join_path(record, sizeof record, dir, COMMIT_RECORD);
    if (status != CLORA_OK || !exists(record))
        return status; /* nothing interrupted */
    return carry_out_file(dir, record);
}

/* One file: its temporary renamed over it. */
static clora_status replace_one(const char *path, const char *temp)
{
    if (do_rename(temp, path) != 0) {
        clora_status status =
            clora__fail(CLORA_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        unlink(temp);
        return status;
    }
    sync_parent(path);
    return CLORA_OK;
}

/* The record, written and flushed: its direction and each name's temporary
 * (NULL: removed), target and backup; *written gets its text (free() it). */
static clora_status write_record(const char *record, const char *direction,
                                 const char *const *paths, char *const *temps,
                                 char *const *backups, size_t count, char **written)
{
    size_t size = strlen(COMMIT_MAGIC) + strlen(direction) + 2;
    for (size_t i = 0; i < count; ++i)
        size += (temps[i] ? strlen(base_name(temps[i])) : 1) + strlen(base_name(paths[i])) +
                (backups[i] ? strlen(base_name(backups[i])) : 1) + 3;
    char *text = clora__malloc(size);
    if (!text)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing %s", record);
    size_t used = (size_t)snprintf(text, size, "%s%s\n", COMMIT_MAGIC, direction);
    for (size_t i = 0; i < count; ++i)
        used += (size_t)snprintf(text + used, size - used, "%s\t%s\t%s\n",
                                 temps[i] ? base_name(temps[i]) : NO_TEMPORARY,
                                 base_name(paths[i]),
                                 backups[i] ? base_name(backups[i]) : NO_BACKUP);
    const clora__chunk chunk = {text, used};
    char *temp = NULL;
    clora_status status = write_temporary(record, &chunk, 1, &temp);
    if (status == CLORA_OK)
        status = replace_one(record, temp);
    free(temp);
    if (status == CLORA_OK)
        *written = text;
    else
        free(text);
    return status;
}

/* A second name for the existing `target` (a hard link NAME.bak.XXXXXX,
 * derived from its temporary when it has one); NULL in *backup when there
 * is no target. */
static clora_status link_backup(const char *target, const char *temp, char **backup)
{
    *backup = NULL;
    if (!exists(target))
        return CLORA_OK;
    const size_t len = strlen(target);
    char *name = clora__malloc(len + 16);
    if (!name)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "writing %s", target);
    int made = 1;
    if (temp) {
        strcpy(name, temp);
        memcpy(name + len, ".bak.", 5);
    } else { /* a removed file: a fresh name, freed for the link */
        snprintf(name, len + 16, "%s.bak.XXXXXX", target);
        const int fd = mkstemp(name);
        made = fd >= 0 && close(fd) == 0 && unlink(name) == 0;
    }
    if (!made || link(target, name) != 0) {
        clora_status status = clora__fail(CLORA_ERR_IO, "cannot keep %s while replacing it: %s",
                                          target, strerror(errno));
        free(name);
        return status;
    }
    *backup = name;
    return CLORA_OK;
}

/* Removes what interrupted saves of these names left before their commit
 * point: temporaries and backups of each and of the record. Only the one
 * process saving into the folder may do this. */
static void sweep(const char *dir, const char *const *paths, size_t count)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d));) {
        int stale = is_companion(e->d_name, COMMIT_RECORD, ".tmp.");
        for (size_t i = 0; i < count && !stale; ++i)
            stale = is_companion(e->d_name, base_name(paths[i]), ".tmp.") ||
                    is_companion(e->d_name, base_name(paths[i]), ".bak.");
        char path[4096];
        if (stale && clora__join_path(path, sizeof path, dir, e->d_name) == CLORA_OK)
            unlink(path);
    }
    closedir(d);
}

/* The group after its commit point (the record, whose text is `text`):
 * the renames and removals; on failure, undone. */
static clora_status commit(const char *dir, const char *record, char *text,
                           const char *const *paths, char *const *temps, char *const *backups,
                           size_t count)
{
    clora_status status = CLORA_OK;
    for (size_t i = 0; i < count && status == CLORA_OK; ++i)
        if (temps[i] ? do_rename(temps[i], paths[i]) != 0 : do_remove(paths[i]) != 0)
            status = clora__fail(CLORA_ERR_IO, "cannot %s %s: %s", temps[i] ? "write" : "remove",
                                 paths[i], strerror(errno));
    if (status == CLORA_OK)
        return carry_out(dir, record, text); /* removes the backups and the record */
    /* the message is the failed step's; undoing it must not replace it */
    char message[1024];
    snprintf(message, sizeof message, "%s", clora_last_error());
    char *back = NULL;
    if (write_record(record, "back", paths, temps, backups, count, &back) == CLORA_OK)
        carry_out(dir, record, back);
    free(back);
    return clora__fail(status, "%s", message);
}

clora_status clora__write_files_atomic(const clora__file *files, size_t count)
{
    return clora__replace_files_atomic(files, count, NULL, 0);
}

clora_status clora__replace_files_atomic(const clora__file *files, size_t count,
                                         const char *const *removed, size_t removed_count)
{
    if (count + removed_count > CLORA__COMMIT_MAX_FILES || count + removed_count < count)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "more than %d files in one save",
                           CLORA__COMMIT_MAX_FILES);
    /* every name, then the group: the removals of files that exist */
    const char *names[CLORA__COMMIT_MAX_FILES], *paths[CLORA__COMMIT_MAX_FILES];
    const size_t all = count + removed_count;
    for (size_t i = 0; i < all; ++i)
        names[i] = i < count ? files[i].path : removed[i - count];
    char dir[4096] = ".", other[4096];
    for (size_t i = 0; i < all; ++i) {
        if (!names[i] || !*base_name(names[i]))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "cannot write a file with no name");
        parent_dir(names[i], i ? other : dir, sizeof dir);
        if (i && strcmp(dir, other) != 0)
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                               "%s and %s are in different folders: they cannot be saved as one",
                               names[0], names[i]);
    }
    clora_status status = all > 1 ? clora__finish_interrupted_save(dir) : CLORA_OK;
    if (status == CLORA_OK)
        sweep(dir, names, all);
    size_t n = 0;
    for (size_t i = 0; i < all; ++i)
        if (i < count || exists(names[i])) /* a removal of nothing is no step */
            paths[n++] = names[i];
    char *temps[CLORA__COMMIT_MAX_FILES] = {NULL}, *backups[CLORA__COMMIT_MAX_FILES] = {NULL};
    for (size_t i = 0; i < count && status == CLORA_OK; ++i)
        status = write_temporary(files[i].path, files[i].chunks, files[i].chunk_count, &temps[i]);
    char record[4096];
    if (status == CLORA_OK && count == 1 && n == 1) {
        status = replace_one(files[0].path, temps[0]);
        free(temps[0]);
        return status;
    }
    for (size_t i = 0; i < n && status == CLORA_OK; ++i)
        status = link_backup(paths[i], temps[i], &backups[i]);
    if (status == CLORA_OK)
        status = clora__join_path(record, sizeof record, dir, COMMIT_RECORD);
    char *text = NULL;
    if (status == CLORA_OK)
        status = write_record(record, "forward", paths, temps, backups, n, &text);
    if (status == CLORA_OK) {
        status = commit(dir, record, text, paths, temps, backups, n);
        free(text);
    } else { /* before the commit point: the old files stay */
        for (size_t i = 0; i < n; ++i) {
            if (temps[i])
                unlink(temps[i]);
            if (backups[i])
                unlink(backups[i]);
        }
    }
    for (size_t i = 0; i < n; ++i) {
        free(temps[i]);
        free(backups[i]);
    }
    return status;
}

clora_status clora__write_file_atomic(const char *path, const clora__chunk *chunks, size_t count)
{
    const clora__file file = {path, chunks, count};
    return clora__write_files_atomic(&file, 1);
}

clora_status clora_file_write_atomic(const char *path, const void *data, size_t size)
{
    if (!path || (!data && size))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_file_write_atomic: NULL argument");
    const clora__chunk chunk = {data, size};
    return clora__write_file_atomic(path, &chunk, 1);
}

clora_status clora__read_file(const char *path, char **out, size_t *size)
{
    *out = NULL;
    *size = 0;
    FILE *f = clora__fault(CLORA__FAULT_FILE_OPEN) ? (errno = EACCES, NULL) : fopen(path, "rb");
    if (!f)
        return clora__fail(CLORA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return clora__fail(CLORA_ERR_IO, "%s is not a regular file", path);
    }
    char *buf = clora__malloc((size_t)st.st_size + 1);
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
