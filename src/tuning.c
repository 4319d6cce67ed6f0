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

#include "internal.h"
#include "kernels_embedded.h"

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

static clora_status apply_kernels(cl_device_id device, json_t *kernels)
{
    const char *kernel;
    json_t *parameters;
    json_object_foreach(kernels, kernel, parameters) {
        const char *names[MAX_PARAMETERS];
        size_t values[MAX_PARAMETERS], count = 0;
        const char *name;
        json_t *value;
        json_object_foreach(parameters, name, value) {
            names[count] = name;
            values[count++] = (size_t)json_integer_value(value);
        }
        clora_status status = clora__clblast_override(device, kernel, count, names, values);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

/* CLBlast's parameter choices are process-wide, keyed by device; clearing
 * them (to change a device's parameters after its kernels were compiled)
 * drops every device's, so clora remembers what it applied to each. */
#define REGISTRY_SIZE 32
static struct {
    cl_device_id device;
    json_t *kernels; /* NULL: CLBlast's own parameters */
} registry[REGISTRY_SIZE];
static size_t registry_count;
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;

/* Applies `kernels` (NULL: none) to `device`, clearing CLBlast's caches
 * first when the device had other parameters before. Called locked. */
static clora_status set_device_kernels(cl_device_id device, json_t *kernels, int force_clear)
{
    size_t slot = registry_count;
    for (size_t i = 0; i < registry_count; ++i)
        if (registry[i].device == device)
            slot = i;
    const int seen = slot < registry_count;
    const int same = seen && ((!kernels && !registry[slot].kernels) ||
                              (kernels && registry[slot].kernels &&
                               json_equal(kernels, registry[slot].kernels)));
    if (same && !force_clear)
        return CLORA_OK;
    if (!seen) {
        if (registry_count == REGISTRY_SIZE)
            return clora__fail(CLORA_ERR_UNSUPPORTED,
                               "more than %d OpenCL devices in one process", REGISTRY_SIZE);
        registry[slot].device = device;
        registry[slot].kernels = NULL;
        ++registry_count;
    }
    json_decref(registry[slot].kernels);
    registry[slot].kernels = NULL;

    clora_status status = CLORA_OK;
    if (seen || force_clear) {
        /* Kernels compiled with the old parameters must go; CLBlast can only
         * drop everything, so the other devices get theirs back. */
        clora__clblast_clear_cache();
        for (size_t i = 0; i < registry_count && status == CLORA_OK; ++i)
            if (i != slot && registry[i].kernels)
                status = apply_kernels(registry[i].device, registry[i].kernels);
    }
    if (status == CLORA_OK && kernels) {
        status = apply_kernels(device, kernels);
        if (status == CLORA_OK) {
            registry[slot].kernels = json_incref(kernels);
        } else {
            /* Half-applied parameters: back to CLBlast's own. */
            clora__clblast_clear_cache();
            for (size_t i = 0; i < registry_count; ++i)
                if (i != slot && registry[i].kernels)
                    apply_kernels(registry[i].device, registry[i].kernels);
        }
    }
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

/* Chooses and applies; source as for clora_device_set_tuning. */
static clora_status choose(clora_device *dev, const char *source, int force_clear)
{
    char *note = dev->info.tuning;
    const size_t note_size = sizeof dev->info.tuning;
    const char *env = getenv("CLORA_TUNING");
    const char *origin = "CLORA_TUNING";
    if (!source && env && *env)
        source = env;
    else if (source)
        origin = "tuning file";

    json_t *kernels = NULL;
    clora_status status = CLORA_OK;
    if (source && !strcmp(source, "off")) {
        snprintf(note, note_size, "CLBlast's own parameters (%s=off)",
                 source == env ? "CLORA_TUNING" : "tuning");
    } else if (source) {
        status = load_tuning_file(source, &kernels);
        if (status == CLORA_OK)
            snprintf(note, note_size, "%s %s", origin, source);
    } else {
        char path[1500];
        if (clora_device_tuning_path(dev, path, sizeof path) == CLORA_OK && file_exists(path)) {
            status = load_tuning_file(path, &kernels);
            if (status == CLORA_OK)
                snprintf(note, note_size, "cache file %.300s", path);
            else
                clora__fail_prefixed(status, "the device's tuning cache file (rerun `clora tune`, "
                                             "delete it, or set CLORA_TUNING=off)");
        } else {
            const clora__embedded_kernel *shipped = shipped_for(dev, &kernels);
            if (shipped) {
                pthread_mutex_lock(&registry_lock);
                status = set_device_kernels(dev->device, kernels, force_clear);
                pthread_mutex_unlock(&registry_lock);
                json_decref(kernels);
                if (status == CLORA_OK) {
                    snprintf(note, note_size, "clora's shipped parameters (tuning/%s.json)",
                             shipped->name);
                    return CLORA_OK;
                }
                /* Made for another CLBlast version: not the caller's mistake. */
                kernels = NULL;
                snprintf(note, note_size,
                         "CLBlast's own parameters (this CLBlast refused clora's shipped "
                         "tuning/%s.json)",
                         shipped->name);
            } else {
                snprintf(note, note_size, "CLBlast's own parameters (no tuning for this device)");
            }
        }
    }
    if (status == CLORA_OK) {
        pthread_mutex_lock(&registry_lock);
        status = set_device_kernels(dev->device, kernels, force_clear);
        pthread_mutex_unlock(&registry_lock);
    }
    json_decref(kernels);
    if (status != CLORA_OK) {
        snprintf(note, note_size, "CLBlast's own parameters (tuning failed)");
        pthread_mutex_lock(&registry_lock);
        set_device_kernels(dev->device, NULL, 0);
        pthread_mutex_unlock(&registry_lock);
    }
    return status;
}

clora_status clora__tuning_open(clora_device *dev)
{
    return choose(dev, NULL, 0);
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
    return choose(dev, source, 1);
}
