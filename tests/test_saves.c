/* test_saves.c — saves that replace a group of files (an adapter's config
 * and tensors, a model's) as one: a process killed at any rename, or a
 * rename that fails, leaves the old group or the new one, never a mix, and
 * no leftovers once the folder has been read again; a single file written
 * with clora_file_write_atomic() is the old one after any failure. Files
 * only: no device. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clora/file.h"
#include "core/core.h"

static char work[64];

static int setup(void **state)
{
    (void)state;
    snprintf(work, sizeof work, "/tmp/clora-saves-XXXXXX");
    return mkdtemp(work) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", work);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the renames, counted: the k-th one kills the process or fails ---------------------- */

static long crash_at;

static void crash(clora__fault_kind kind, long hit)
{
    (void)kind;
    if (hit == crash_at)
        raise(SIGKILL);
}

/* Counts renames: the crash-th kills the process, the fail-th fails (0: none). */
static void count_renames(long crash_, long fail)
{
    crash_at = crash_;
    clora__fault_plan_set(1u << CLORA__FAULT_RENAME, fail, crash_ ? crash : NULL);
}

static void no_faults(void)
{
    clora__fault_plan_set(0, 0, NULL);
}

/* ---- a folder of three files -------------------------------------------------------------- */

static const char *const names[3] = {"adapter_model.safetensors", "adapter_config.json",
                                     "extra.txt"};

/* The content of file i in generation g ("old" 1, "new" 2); sizes differ so
 * a mix of halves cannot pass for either. */
static void content(int g, int i, char *out, size_t size)
{
    snprintf(out, size, "generation %d of %s%s\n", g, names[i],
             g == 2 ? ", which is longer than before" : "");
}

static void save(const char *dir, int g, size_t count)
{
    char paths[3][256], texts[3][128];
    clora__chunk chunks[3];
    clora__file files[3];
    for (size_t i = 0; i < count; ++i) {
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        content(g, (int)i, texts[i], sizeof texts[i]);
        chunks[i] = (clora__chunk){texts[i], strlen(texts[i])};
        files[i] = (clora__file){paths[i], &chunks[i], 1};
    }
    assert_int_equal(clora__write_files_atomic(files, count), CLORA_OK);
}

/* The generation every file holds (1 or 2), 0 for a mix or a file that is
 * missing or holds something else. */
static int generation(const char *dir, size_t count)
{
    int seen = -1;
    for (size_t i = 0; i < count; ++i) {
        char path[256], want[128], got[256] = "";
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f)
            return 0;
        size_t n = fread(got, 1, sizeof got - 1, f);
        fclose(f);
        got[n] = '\0';
        int g = 0;
        for (int c = 1; c <= 2 && !g; ++c) {
            content(c, (int)i, want, sizeof want);
            if (!strcmp(got, want))
                g = c;
        }
        if (!g || (seen > 0 && g != seen))
            return 0;
        seen = g;
    }
    return seen;
}

/* Entries of dir beside the files themselves. */
static int leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        int known = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
        for (int i = 0; i < 3; ++i)
            known |= !strcmp(e->d_name, names[i]);
        if (!known) {
            print_message("left over: %s/%s\n", dir, e->d_name);
            ++n;
        }
    }
    closedir(d);
    return n;
}

static const char *fresh_dir(const char *name, int k)
{
    static char dir[128];
    snprintf(dir, sizeof dir, "%s/%s-%d", work, name, k);
    assert_int_equal(mkdir(dir, 0777), 0);
    return dir;
}

/* Saves generation 2 over 1 in a child that is killed at its k-th rename;
 * returns whether it was (0: the save finished first). */
static int killed_save(const char *dir, size_t count, int k)
{
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        count_renames(k, 0);
        save(dir, 2, count);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    if (WIFEXITED(status)) {
        assert_int_equal(WEXITSTATUS(status), 0);
        return 0;
    }
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    return 1;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void a_group_save_replaces_every_file(void **state)
{
    (void)state;
    no_faults();
    const char *dir = fresh_dir("plain", 0);
    save(dir, 1, 3);
    assert_int_equal(generation(dir, 3), 1);
    save(dir, 2, 3);
    assert_int_equal(generation(dir, 3), 2);
    assert_int_equal(leftovers(dir), 0);
}

/* A kill at every rename of a save, and then at every rename of the
 * recovery too: each time the folder reads as one generation. */
static void a_save_killed_at_any_rename_leaves_old_or_new(void **state)
{
    (void)state;
    int saw_old = 0, saw_new = 0;
    for (size_t count = 2; count <= 3; ++count) {
        for (int k = 1;; ++k) {
            const char *dir = fresh_dir(count == 2 ? "kill2" : "kill3", k);
            no_faults();
            save(dir, 1, count);
            if (!killed_save(dir, count, k))
                break; /* past the save's last rename */
            /* a reader opens the folder, and is killed at each of its renames in turn */
            for (int r = 1;; ++r) {
                fflush(NULL);
                pid_t child = fork();
                assert_true(child >= 0);
                if (child == 0) {
                    count_renames(r, 0);
                    _exit(clora__finish_interrupted_save(dir) == CLORA_OK ? 0 : 1);
                }
                int status = 0;
                assert_int_equal(waitpid(child, &status, 0), child);
                if (WIFEXITED(status)) {
                    assert_int_equal(WEXITSTATUS(status), 0);
                    break;
                }
            }
            no_faults();
            assert_int_equal(clora__finish_interrupted_save(dir), CLORA_OK);
            const int g = generation(dir, count);
            if (g != 1 && g != 2)
                fail_msg("killed at rename %d of a %zu-file save: a mix", k, count);
            saw_old |= g == 1;
            saw_new |= g == 2;
            if (g == 2) /* the record's work is done, and nothing of it left */
                assert_int_equal(leftovers(dir), 0);
            /* the next save takes the folder as usual, and sweeps what a save
             * killed before its commit point left */
            save(dir, 1, count);
            assert_int_equal(generation(dir, count), 1);
            assert_int_equal(leftovers(dir), 0);
        }
    }
    /* killed before the commit point, and after it */
    assert_true(saw_old);
    assert_true(saw_new);
}

/* A rename that fails (not a kill) at any point: an error, the old files,
 * nothing left over. */
static void a_failed_rename_puts_the_old_files_back(void **state)
{
    (void)state;
    for (int k = 1;; ++k) {
        const char *dir = fresh_dir("fail", k);
        no_faults();
        save(dir, 1, 3);
        count_renames(0, k);
        char paths[3][256], texts[3][128];
        clora__chunk chunks[3];
        clora__file files[3];
        for (int i = 0; i < 3; ++i) {
            snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
            content(2, i, texts[i], sizeof texts[i]);
            chunks[i] = (clora__chunk){texts[i], strlen(texts[i])};
            files[i] = (clora__file){paths[i], &chunks[i], 1};
        }
        const clora_status status = clora__write_files_atomic(files, 3);
        const int reached = clora__faults.hits >= k;
        no_faults();
        if (!reached) {
            assert_int_equal(status, CLORA_OK); /* fewer renames than k */
            assert_int_equal(generation(dir, 3), 2);
            break;
        }
        assert_int_equal(status, CLORA_ERR_IO);
        assert_non_null(strstr(clora_last_error(), "Input/output error"));
        assert_int_equal(generation(dir, 3), 1);
        assert_int_equal(leftovers(dir), 0);
        assert_int_equal(k < 10, 1); /* the sweep ends */
    }
}

/* The first save into a folder: killed after the commit point, the reader
 * completes it; killed before, there are no files (and no leftovers but the
 * stray temporaries of a save that never happened). */
static void a_first_save_killed_leaves_nothing_or_everything(void **state)
{
    (void)state;
    for (int k = 1;; ++k) {
        const char *dir = fresh_dir("first", k);
        if (!killed_save(dir, 2, k))
            break;
        no_faults();
        assert_int_equal(clora__finish_interrupted_save(dir), CLORA_OK);
        const int g = generation(dir, 2);
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[0]);
        struct stat st;
        if (g == 0) /* before the commit point: neither file */
            for (int i = 0; i < 2; ++i) {
                snprintf(path, sizeof path, "%s/%s", dir, names[i]);
                assert_int_not_equal(stat(path, &st), 0);
            }
        else
            assert_int_equal(g, 2);
    }
}

static void write_record(const char *dir, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/.clora-commit", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* A record that names files outside the folder, or is not one, is refused
 * by name and touches nothing. */
static void bad_commit_records_are_refused(void **state)
{
    (void)state;
    no_faults();
    static const char *const records[] = {
        "not a record\n",
        "clora-commit 1\nsideways\n",
        "clora-commit 1\nforward\nno tabs here\n",
        "clora-commit 1\nforward\n../x.tmp.abcdef\t../x\t-\n",
        "clora-commit 1\nforward\nother.tmp.abcdef\tadapter_config.json\t-\n",
        "clora-commit 1\nforward\nadapter_config.json.tmp.abc\tadapter_config.json\t-\n",
        "clora-commit 1\nback\nadapter_config.json.tmp.abcdef\tadapter_config.json\tetc\n",
        "clora-commit 1\nforward\nadapter_config.json.tmp.abcdef\tadapter_config.json",
    };
    for (size_t i = 0; i < sizeof records / sizeof records[0]; ++i) {
        const char *dir = fresh_dir("record", (int)i);
        save(dir, 1, 2);
        write_record(dir, records[i]);
        assert_int_equal(clora__finish_interrupted_save(dir), CLORA_ERR_FORMAT);
        assert_non_null(strstr(clora_last_error(), ".clora-commit"));
        assert_int_equal(generation(dir, 2), 1);
    }
}

/* Files of different folders cannot be one save. */
/* The public single-file write: every failing step leaves the old file. */
static void a_single_file_write_keeps_the_old_file_on_any_failure(void **state)
{
    (void)state;
    char path[128], text[64];
    snprintf(path, sizeof path, "%s/single.txt", work);
    assert_int_equal(clora_file_write_atomic(path, "old", 3), CLORA_OK);
    const unsigned kinds = (1u << CLORA__FAULT_FILE_OPEN) | (1u << CLORA__FAULT_FILE_WRITE) |
                           (1u << CLORA__FAULT_FSYNC) | (1u << CLORA__FAULT_RENAME) |
                           (1u << CLORA__FAULT_HOST_ALLOC);
    long failures = 0;
    for (long k = 1;; ++k) {
        clora__fault_plan_set(kinds, k, NULL);
        const clora_status status = clora_file_write_atomic(path, "new text", 8);
        const int met = clora__faults.hits >= k;
        no_faults();
        FILE *f = fopen(path, "rb");
        assert_non_null(f);
        const size_t n = fread(text, 1, sizeof text, f);
        fclose(f);
        if (!met) {
            assert_int_equal(status, CLORA_OK);
            assert_int_equal(n, 8);
            assert_memory_equal(text, "new text", 8);
            break;
        }
        ++failures;
        assert_int_not_equal(status, CLORA_OK);
        assert_int_equal(n, 3);
        assert_memory_equal(text, "old", 3);
        DIR *d = opendir(work);
        for (struct dirent *e; (e = readdir(d));)
            if (strstr(e->d_name, "single.txt") && strcmp(e->d_name, "single.txt"))
                fail_msg("fault %ld left %s behind", k, e->d_name);
        closedir(d);
    }
    assert_true(failures >= 4);
    assert_int_equal(clora_file_write_atomic(NULL, "x", 1), CLORA_ERR_NULL_ARGUMENT);
}

static void a_group_lies_in_one_folder(void **state)
{
    (void)state;
    const char *dir = fresh_dir("two", 0);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", work);
    const clora__chunk chunk = {"x", 1};
    const clora__file files[2] = {{a, &chunk, 1}, {b, &chunk, 1}};
    assert_int_equal(clora__write_files_atomic(files, 2), CLORA_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(clora_last_error(), "different folders"));
    assert_int_equal(leftovers(dir), 0);
}

/* ---- a group that also removes a file ------------------------------------------------------ */

/* Generation 1: names[0] and names[2]; generation 2: names[0] and names[1]
 * with names[2] removed (as a save that shards a model.safetensors away). */
static void save_removing(const char *dir, int g)
{
    char paths[3][256], texts[3][128];
    clora__chunk chunks[2];
    clora__file files[2];
    const int keep[2] = {0, g == 1 ? 2 : 1};
    for (int i = 0; i < 3; ++i)
        snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
    for (int k = 0; k < 2; ++k) {
        content(g, keep[k], texts[k], sizeof texts[k]);
        chunks[k] = (clora__chunk){texts[k], strlen(texts[k])};
        files[k] = (clora__file){paths[keep[k]], &chunks[k], 1};
    }
    const char *removed[1] = {paths[g == 1 ? 1 : 2]};
    assert_int_equal(clora__replace_files_atomic(files, 2, removed, 1), CLORA_OK);
}

/* 1 or 2 when the folder holds exactly that generation of save_removing,
 * 0 otherwise. */
static int removing_generation(const char *dir)
{
    for (int g = 1; g <= 2; ++g) {
        const int present = g == 1 ? 2 : 1, absent = g == 1 ? 1 : 2;
        char path[256], want[128], got[256] = "";
        int ok = 1;
        for (int k = 0; k < 2 && ok; ++k) {
            const int i = k == 0 ? 0 : present;
            snprintf(path, sizeof path, "%s/%s", dir, names[i]);
            FILE *f = fopen(path, "rb");
            if (!f) {
                ok = 0;
                break;
            }
            const size_t n = fread(got, 1, sizeof got - 1, f);
            fclose(f);
            got[n] = '\0';
            content(g, i, want, sizeof want);
            ok = !strcmp(got, want);
        }
        snprintf(path, sizeof path, "%s/%s", dir, names[absent]);
        struct stat st;
        if (ok && stat(path, &st) != 0)
            return g;
    }
    return 0;
}

/* Killed at every rename and removal of a save that replaces two files
 * and removes a third, and of the recovery after it; or failing there:
 * the folder holds one generation, nothing left over. */
static void a_save_that_removes_a_file_is_one_step(void **state)
{
    (void)state;
    int saw_old = 0, saw_new = 0;
    for (int k = 1;; ++k) {
        const char *dir = fresh_dir("remove", k);
        no_faults();
        save_removing(dir, 1);
        fflush(NULL);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
            count_renames(k, 0);
            save_removing(dir, 2);
            _exit(0);
        }
        int status = 0;
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_int_equal(clora__finish_interrupted_save(dir), CLORA_OK);
        const int g = removing_generation(dir);
        if (g != 1 && g != 2)
            fail_msg("killed at step %d of a save that removes a file: a mix", k);
        saw_old |= g == 1;
        saw_new |= g == 2;
        if (g == 2) /* the record's work is done, and nothing of it left */
            assert_int_equal(leftovers(dir), 0);
        const int finished = WIFEXITED(status);
        /* the next save sweeps what one killed before its commit point left */
        save_removing(dir, 1);
        assert_int_equal(removing_generation(dir), 1);
        assert_int_equal(leftovers(dir), 0);
        if (finished)
            break; /* past the save's last step */
    }
    assert_true(saw_old);
    assert_true(saw_new);
    for (int k = 1;; ++k) { /* a step that fails: the old generation */
        const char *dir = fresh_dir("remove-fail", k);
        no_faults();
        save_removing(dir, 1);
        count_renames(0, k);
        char paths[2][256], text[128];
        snprintf(paths[0], sizeof paths[0], "%s/%s", dir, names[0]);
        snprintf(paths[1], sizeof paths[1], "%s/%s", dir, names[2]);
        content(2, 0, text, sizeof text);
        const clora__chunk chunk = {text, strlen(text)};
        const clora__file file = {paths[0], &chunk, 1};
        const char *removed[1] = {paths[1]};
        const clora_status status = clora__replace_files_atomic(&file, 1, removed, 1);
        const int reached = clora__faults.hits >= k;
        no_faults();
        if (!reached) {
            assert_int_equal(status, CLORA_OK);
            break;
        }
        assert_int_equal(status, CLORA_ERR_IO);
        if (removing_generation(dir) != 1)
            fail_msg("step %d failed: not the old files (%s)", k, clora_last_error());
        assert_int_equal(leftovers(dir), 0);
        assert_true(k < 10);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_group_save_replaces_every_file),
        cmocka_unit_test(a_save_killed_at_any_rename_leaves_old_or_new),
        cmocka_unit_test(a_failed_rename_puts_the_old_files_back),
        cmocka_unit_test(a_first_save_killed_leaves_nothing_or_everything),
        cmocka_unit_test(bad_commit_records_are_refused),
        cmocka_unit_test(a_group_lies_in_one_folder),
        cmocka_unit_test(a_save_that_removes_a_file_is_one_step),
        cmocka_unit_test(a_single_file_write_keeps_the_old_file_on_any_failure),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
