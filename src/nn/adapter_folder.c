/* adapter_folder.c — folders holding several named adapters, as PEFT's
 * save_pretrained writes them: the adapter "default" in the folder itself,
 * every other one in a sub-folder named after it. Each is an ordinary
 * adapter folder (adapter_io.c reads and writes it). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "nn/nn.h"

/* 1 when `dir` holds an adapter_config.json. */
static int holds_adapter(const char *dir)
{
    char path[4096];
    struct stat st;
    return clora__join_path(path, sizeof path, dir, "adapter_config.json") == CLORA_OK &&
           stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sub-folders of `dir` that hold an adapter, sorted (names owned);
 * none when `dir` cannot be listed (loading it says why). */
static clora_status adapter_subfolders(const char *dir, char ***names, size_t *count)
{
    *names = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d)
        return CLORA_OK;
    clora_status status = CLORA_OK;
    size_t capacity = 0;
    for (struct dirent *e; status == CLORA_OK && (e = readdir(d));) {
        char path[4096];
        if (e->d_name[0] == '.' || strchr(e->d_name, '.') ||
            clora__join_path(path, sizeof path, dir, e->d_name) != CLORA_OK ||
            !holds_adapter(path))
            continue;
        if (*count == capacity) {
            capacity = capacity ? 2 * capacity : 8;
            char **grown = clora__realloc(*names, capacity * sizeof *grown);
            if (!grown) {
                status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing %s", dir);
                break;
            }
            *names = grown;
        }
        if (!((*names)[*count] = clora__strdup(e->d_name)))
            status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "listing %s", dir);
        else
            ++*count;
    }
    closedir(d);
    if (status == CLORA_OK && *count > 1)
        qsort(*names, *count, sizeof **names, by_name);
    return status;
}

static void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; ++i)
        free(names[i]);
    free(names);
}

clora_status clora_adapter_load_all(clora_model *model, const char *dir, size_t *loaded)
{
    if (loaded)
        *loaded = 0;
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_adapter_load_all: %s is NULL",
                           model ? "dir" : "model");
    clora_status status = clora__finish_interrupted_save(dir);
    char **names = NULL;
    size_t count = 0;
    if (status == CLORA_OK)
        status = adapter_subfolders(dir, &names, &count);
    if (status == CLORA_OK && count == 0) { /* one adapter: the folder's own */
        status = clora_adapter_load(model, dir, "default");
        if (status == CLORA_OK && loaded)
            *loaded = 1;
        return status;
    }
    const int root = holds_adapter(dir);
    size_t done = 0;
    const char *before = clora_model_active_adapter(model);
    if (status == CLORA_OK && root && (status = clora_adapter_load(model, dir, "default")) ==
                                          CLORA_OK)
        ++done;
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        char path[4096];
        if ((status = clora__join_path(path, sizeof path, dir, names[i])) == CLORA_OK &&
            (status = clora_adapter_load(model, path, names[i])) == CLORA_OK)
            ++done;
        else
            status = clora__fail_prefixed(status, "adapter \"%s\"", names[i]);
    }
    if (status != CLORA_OK) { /* all or none; deleting and switching keep the message */
        if (root && done > 0)
            clora_model_delete_adapter(model, "default");
        for (size_t i = 0; i + (root ? 1 : 0) < done; ++i)
            clora_model_delete_adapter(model, names[i]);
        clora_model_set_adapter(model, before);
    } else {
        /* as PEFT: "default" runs; the others wait for set_adapter */
        clora_model_set_adapter(model, root ? "default" : names[0]);
        if (loaded)
            *loaded = done;
    }
    free_names(names, count);
    return status;
}

clora_status clora_adapter_save_all(clora_model *model, const char *dir)
{
    if (!model || !dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_adapter_save_all: %s is NULL",
                           model ? "dir" : "model");
    const size_t count = clora_model_adapter_count(model);
    if (count == 0)
        return clora__fail(CLORA_ERR_STATE, "clora_adapter_save_all: the model has no adapter");
    clora_status status = clora__ensure_dir(dir);
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        const char *name = clora_model_adapter_name(model, i);
        char path[4096];
        if (!strcmp(name, "default"))
            status = clora_adapter_save(model, name, dir);
        else if ((status = clora__join_path(path, sizeof path, dir, name)) == CLORA_OK)
            status = clora_adapter_save(model, name, path);
    }
    return status;
}
