/* tuning.c — which CLBlast kernel parameters a device uses: a tuning file
 * named by CLORA_TUNING, the device's cache file written by `clora tune`, or
 * the parameters clora ships for a kind of device (tuning/ *.json, embedded).
 * The rules are in clora/device.h; blas.c hands the numbers to CLBlast. */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ops/ops.h"
#include "core/kernels_embedded.h"

#define TUNING_FORMAT "clora-clblast-tuning"
#define TUNING_VERSION 1
#define MAX_PARAMETERS 32

/* The CLBlast kernels whose parameters a tuning file may set. */
static const char *const known_kernels[] = {"Xgemm",     "XgemmDirect",  "Copy",       "Pad",
                                            "Transpose", "Padtranspose", "GemmRoutine"};

/* ---- reading and checking a tuning file ------------------------------------ */

static int known_kernel(const char *name)
{
    for (size_t i = 0; i < sizeof known_kernels / sizeof known_kernels[0]; ++i)
        if (!strcmp(name, known_kernels[i]))
            return 1;
    return 0;
}

/* Parses and checks a tuning file's text; *kernels gets a new reference to
 * its "kernels" object and *root (if not NULL) to the whole document. */
static clora_status parse_tuning(const char *text, size_t size, const char *origin,
                                 json_t **kernels, json_t **root)
{
    *kernels = NULL;
    json_error_t error;
    json_t *doc = json_loadb(text, size, JSON_REJECT_DUPLICATES, &error);
    if (!doc)
        return clora__fail(CLORA_ERR_FORMAT, "%s: not JSON: %s (line %d)", origin, error.text,
                           error.line);
    clora_status status = CLORA_OK;
    json_t *format = json_object_get(doc, "format");
    json_t *version = json_object_get(doc, "version");
    json_t *table = json_object_get(doc, "kernels");
    if (!json_is_object(doc) || !json_is_string(format) ||
        strcmp(json_string_value(format), TUNING_FORMAT) != 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: not a tuning file (\"format\" must be \"%s\")",
                             origin, TUNING_FORMAT);
    else if (!json_is_integer(version) || json_integer_value(version) != TUNING_VERSION)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: \"version\" must be %d", origin,
                             TUNING_VERSION);
    else if (!json_is_object(table) || json_object_size(table) == 0)
        status = clora__fail(CLORA_ERR_FORMAT, "%s: \"kernels\" must be a non-empty object",
                             origin);
    const char *kernel;
    json_t *parameters;
    json_object_foreach(status == CLORA_OK ? table : NULL, kernel, parameters) {
        if (!known_kernel(kernel)) {
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: unknown CLBlast kernel \"%s\" (known: Xgemm, XgemmDirect, "
                                 "Copy, Pad, Transpose, Padtranspose, GemmRoutine)",
                                 origin, kernel);
            break;
        }
        if (!json_is_object(parameters) || json_object_size(parameters) == 0 ||
            json_object_size(parameters) > MAX_PARAMETERS) {
            status = clora__fail(CLORA_ERR_FORMAT,
                                 "%s: kernel %s: parameters must be an object of 1 to %d names",
                                 origin, kernel, MAX_PARAMETERS);
            break;
        }
        const char *name;
        json_t *value;
        json_object_foreach(parameters, name, value) {
            if (!json_is_integer(value) || json_integer_value(value) < 0 ||
                json_integer_value(value) > 1000000000) {
                status = clora__fail(CLORA_ERR_FORMAT,
                                     "%s: kernel %s: parameter %s must be an integer in "
                                     "[0, 1e9]",
                                     origin, kernel, name);
                break;
            }
        }
        if (status != CLORA_OK)
            break;
    }
    if (status == CLORA_OK) {
        *kernels = json_incref(table);
        if (root)
            *root = json_incref(doc);
    }
    json_decref(doc);
    return status;
}

static clora_status load_tuning_file(const char *path, json_t **kernels)
{
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(path, &text, &size);
    if (status == CLORA_OK)
        status = parse_tuning(text, size, path, kernels, NULL);
    free(text);
    return status;
}

/* ---- handing parameters to CLBlast ------------------------------------------ */

/* CLBlast keeps overridden parameters per device until the process ends: it
 * has no call that gives a kernel its own parameters back, and clearing its
 * cache drops compiled programs only. So clora remembers, per device, the
 * parameters in force for each kernel it has overridden. */
#define REGISTRY_SIZE 32
static struct {
    cl_device_id device;
    json_t *in_force; /* kernel name -> parameters; empty: CLBlast's own */
} registry[REGISTRY_SIZE];
static size_t registry_count;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

static int any_overridden(cl_device_id device)
{
    for (size_t i = 0; i < registry_count; ++i)
        if (registry[i].device == device)
            return json_object_size(registry[i].in_force) > 0;
    return 0;
}

static clora_status override_kernel(cl_device_id device, const char *kernel, json_t *parameters)
{
    const char *names[MAX_PARAMETERS];
    size_t values[MAX_PARAMETERS], count = 0;
    const char *name;
    json_t *value;
    json_object_foreach(parameters, name, value) {
        names[count] = name;
        values[count++] = (size_t)json_integer_value(value);
    }
    return clora__clblast_override(device, kernel, count, names, values);
}

/* Puts `kernels` in force on `device` (kernels it does not list keep what
 * they have). If CLBlast refuses one kernel's parameters, the kernels this
 * call changed get their previous parameters back where they had clora's,
 * and keep the new ones otherwise (CLBlast cannot undo those), which
 * in_force records. Called locked. */
static clora_status put_in_force(cl_device_id device, json_t *kernels)
{
    size_t slot = registry_count;
    for (size_t i = 0; i < registry_count; ++i)
        if (registry[i].device == device)
            slot = i;
    if (slot == registry_count) {
        if (registry_count == REGISTRY_SIZE)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "more than %d OpenCL devices in one process", REGISTRY_SIZE);
        registry[slot].device = device;
        registry[slot].in_force = json_object();
        ++registry_count;
    }
    json_t *in_force = registry[slot].in_force;

    const char *kernel;
    json_t *parameters;
    int changes = 0;
    json_object_foreach(kernels, kernel, parameters) {
        json_t *now = json_object_get(in_force, kernel);
        changes += !now || !json_equal(now, parameters);
    }
    if (!changes)
        return CLORA_OK;
    /* Programs CLBlast compiled with the old parameters must go (for every
     * device: CLBlast cannot drop one device's); they recompile on use. */
    clora__clblast_clear_cache();

    json_t *applied = json_array();
    clora_status status = CLORA_OK;
    json_object_foreach(kernels, kernel, parameters) {
        status = override_kernel(device, kernel, parameters);
        if (status != CLORA_OK)
            break;
        json_array_append_new(applied, json_string(kernel));
    }
    size_t i;
    json_t *name;
    json_array_foreach(applied, i, name) {
        const char *k = json_string_value(name);
        json_t *old = json_object_get(in_force, k);
        if (status != CLORA_OK && old)
            override_kernel(device, k, old); /* accepted before */
        else
            json_object_set(in_force, k, json_object_get(kernels, k));
    }
    json_decref(applied);
    return status;
}

/* ---- choosing the parameters ------------------------------------------------- */

static void sanitize_into(char *out, size_t size, size_t *at, const char *text)
{
    int last_underscore = *at > 0 && out[*at - 1] == '_';
    for (const char *p = text; *p && *at + 1 < size; ++p) {
        char c = *p;
        int keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '.' || c == '-';
        if (!keep) {
            if (last_underscore)
                continue;
            c = '_';
        }
        out[(*at)++] = c;
        last_underscore = c == '_';
    }
    out[*at] = '\0';
}

clora_status clora_device_tuning_path(const clora_device *dev, char *path, size_t size)
{
    if (!dev || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_tuning_path: %s is NULL",
                           dev ? "path" : "device");
    char dir[1024];
    const char *env = getenv("CLORA_TUNING_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (env && *env)
        n = snprintf(dir, sizeof dir, "%s", env);
    else if (xdg && *xdg)
        n = snprintf(dir, sizeof dir, "%s/clora", xdg);
    else if (home && *home)
        n = snprintf(dir, sizeof dir, "%s/.cache/clora", home);
    else
        return clora__fail(CLORA_ERR_NOT_FOUND,
                           "no folder for tuning files: set CLORA_TUNING_DIR or HOME");
    if (n < 0 || (size_t)n >= sizeof dir)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "tuning folder name too long");

    char name[400] = "tuning-";
    size_t at = strlen(name);
    sanitize_into(name, sizeof name - 8, &at, dev->info.platform_name);
    sanitize_into(name, sizeof name - 8, &at, "-");
    sanitize_into(name, sizeof name - 8, &at, dev->info.name);
    sanitize_into(name, sizeof name - 8, &at, "-");
    sanitize_into(name, sizeof name - 8, &at, dev->info.driver_version);
    strcat(name, ".json");
    return clora__join_path(path, size, dir, name);
}

/* The shipped file for this kind of device, if any: each names the platform
 * (a substring of its name) and device type it was tuned on. */
static const clora__embedded_kernel *shipped_for(const clora_device *dev, json_t **kernels)
{
    *kernels = NULL;
    for (const clora__embedded_kernel *f = clora__embedded_tuning; f->name; ++f) {
        json_t *root = NULL, *table = NULL;
        char origin[96];
        snprintf(origin, sizeof origin, "shipped tuning/%s.json", f->name);
        if (parse_tuning(f->source, f->size, origin, &table, &root) != CLORA_OK)
            continue; /* cannot happen for a file the test suite checks */
        json_t *match = json_object_get(root, "match");
        const char *platform = json_string_value(json_object_get(match, "platform"));
        const char *type = json_string_value(json_object_get(match, "type"));
        const char *want_type = dev->info.type == CLORA_DEVICE_CPU   ? "CPU"
                                : dev->info.type == CLORA_DEVICE_GPU ? "GPU"
                                                                     : "other";
        int fits = platform && type && strstr(dev->info.platform_name, platform) &&
                   !strcmp(type, want_type);
        json_decref(root);
        if (fits) {
            *kernels = table;
            return f;
        }
        json_decref(table);
    }
    return NULL;
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Chooses and applies; source as for clora_device_set_tuning. On failure
 * the note keeps what was in force before, with the failure. */
static clora_status choose(clora_device *dev, const char *source)
{
    char note[sizeof dev->info.tuning];
    const char *env = getenv("CLORA_TUNING");
    const char *origin = "tuning file";
    if (!source && env && *env) {
        source = env;
        origin = "CLORA_TUNING";
    }

    json_t *kernels = NULL;
    const clora__embedded_kernel *shipped = NULL;
    clora_status status = CLORA_OK;
    if (source && !strcmp(source, "off")) {
        snprintf(note, sizeof note, "CLBlast's own parameters (%s=off)",
                 source == env ? "CLORA_TUNING" : "tuning");
    } else if (source) {
        status = load_tuning_file(source, &kernels);
        snprintf(note, sizeof note, "%s %.280s", origin, source);
    } else {
        char path[1500];
        if (clora_device_tuning_path(dev, path, sizeof path) == CLORA_OK && file_exists(path)) {
            status = load_tuning_file(path, &kernels);
            if (status != CLORA_OK)
                clora__fail_prefixed(status, "the device's tuning cache file (rerun `clora tune`, "
                                             "delete it, or set CLORA_TUNING=off)");
            snprintf(note, sizeof note, "cache file %.300s", path);
        } else if ((shipped = shipped_for(dev, &kernels)) != NULL) {
            snprintf(note, sizeof note, "clora's shipped parameters (tuning/%s.json)",
                     shipped->name);
        } else {
            snprintf(note, sizeof note, "CLBlast's own parameters (no tuning for this device)");
        }
    }

    pthread_mutex_lock(&registry_lock);
    if (status == CLORA_OK && kernels) {
        status = put_in_force(dev->device, kernels);
        if (status != CLORA_OK && shipped) {
            /* Made for another CLBlast version: not the caller's mistake.
             * Kernels CLBlast took before refusing one stay in force. */
            if (any_overridden(dev->device))
                snprintf(note, sizeof note,
                         "clora's shipped parameters in part (this CLBlast refused some of "
                         "tuning/%s.json)",
                         shipped->name);
            else
                snprintf(note, sizeof note,
                         "CLBlast's own parameters (this CLBlast refused clora's shipped "
                         "tuning/%s.json)",
                         shipped->name);
            status = CLORA_OK;
        }
    } else if (status == CLORA_OK && any_overridden(dev->device)) {
        status = clora__fail(CLORA_ERR_UNSUPPORTED,
                             "this process already gave CLBlast other parameters for device "
                             "\"%s\", and CLBlast cannot go back to its own; set "
                             "CLORA_TUNING=off before the first device is opened",
                             dev->info.name);
    }
    pthread_mutex_unlock(&registry_lock);
    json_decref(kernels);
    if (status == CLORA_OK)
        snprintf(dev->info.tuning, sizeof dev->info.tuning, "%s", note);
    return status;
}

clora_status clora__tuning_open(clora_device *dev)
{
    return choose(dev, NULL);
}

clora_status clora_device_set_tuning(clora_device *dev, const char *source)
{
    if (!dev)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_device_set_tuning: device is NULL");
    if (source && !*source)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_device_set_tuning: source is empty (NULL, \"off\" or a file)");
    clora_status status = clora_device_finish(dev);
    if (status != CLORA_OK)
        return status;
    return choose(dev, source);
}
