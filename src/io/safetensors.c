/* safetensors.c — the safetensors reader (for untrusted files) and writer.
 * Format facts and the rules enforced are listed in clora/safetensors.h. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

#define MAX_HEADER_SIZE 100000000ull

typedef struct entry {
    char *name;
    clora_dtype dtype;
    size_t ndim;
    size_t *shape;
    size_t numel;
    size_t begin, end; /* offsets into the data section */
} entry;

struct clora_safetensors {
    const unsigned char *bytes; /* the whole file */
    size_t size;
    int mapped;                 /* 1: munmap on close, 0: free */
    size_t header_size;
    const unsigned char *data;  /* bytes + 8 + header_size */
    entry *entries;             /* sorted by offset */
    size_t count;
    char **meta_keys, **meta_values;
    size_t meta_count;
};

static void free_entries(entry *entries, size_t count)
{
    for (size_t i = 0; i < count; ++i) {
        free(entries[i].name);
        free(entries[i].shape);
    }
    free(entries);
}

void clora_safetensors_close(clora_safetensors *file)
{
    if (!file)
        return;
    free_entries(file->entries, file->count);
    for (size_t i = 0; i < file->meta_count; ++i) {
        free(file->meta_keys[i]);
        free(file->meta_values[i]);
    }
    free(file->meta_keys);
    free(file->meta_values);
    if (file->mapped)
        munmap((void *)file->bytes, file->size);
    else
        free((void *)file->bytes);
    free(file);
}

/* A non-negative JSON integer that fits size_t. */
static int json_size(const json_t *value, size_t *out)
{
    if (!json_is_integer(value))
        return 0;
    json_int_t v = json_integer_value(value);
    if (v < 0 || (unsigned long long)v > SIZE_MAX)
        return 0;
    *out = (size_t)v;
    return 1;
}

static clora_status parse_metadata(clora_safetensors *file, json_t *object)
{
    if (!json_is_object(object))
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: __metadata__ is not an object");
    size_t n = json_object_size(object);
    file->meta_keys = clora__calloc(n ? n : 1, sizeof *file->meta_keys);
    file->meta_values = clora__calloc(n ? n : 1, sizeof *file->meta_values);
    if (!file->meta_keys || !file->meta_values)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: metadata");
    const char *key;
    json_t *value;
    json_object_foreach(object, key, value) {
        if (!json_is_string(value))
            return clora__fail(CLORA_ERR_FORMAT,
                               "safetensors: __metadata__ value of \"%s\" is not a string", key);
        size_t i = file->meta_count;
        file->meta_keys[i] = clora__strdup(key);
        file->meta_values[i] = clora__strdup(json_string_value(value));
        if (!file->meta_keys[i] || !file->meta_values[i]) {
            free(file->meta_keys[i]);
            free(file->meta_values[i]);
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: metadata");
        }
        file->meta_count++;
    }
    return CLORA_OK;
}

static clora_status parse_entry(entry *e, const char *name, json_t *value)
{
    e->name = clora__strdup(name);
    if (!e->name)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: tensor names");
    if (!json_is_object(value))
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: entry \"%s\" is not an object", name);
    json_t *dtype = json_object_get(value, "dtype");
    json_t *shape = json_object_get(value, "shape");
    json_t *offsets = json_object_get(value, "data_offsets");
    if (!json_is_string(dtype))
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: tensor \"%s\" has no dtype string", name);
    if (clora_dtype_from_name(json_string_value(dtype), &e->dtype) != CLORA_OK)
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: tensor \"%s\" has unknown dtype \"%s\"",
                           name, json_string_value(dtype));
    if (!json_is_array(shape))
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: tensor \"%s\" has no shape array", name);
    e->ndim = json_array_size(shape);
    e->shape = clora__calloc(e->ndim ? e->ndim : 1, sizeof *e->shape);
    if (!e->shape)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: shapes");
    e->numel = 1;
    for (size_t d = 0; d < e->ndim; ++d) {
        if (!json_size(json_array_get(shape, d), &e->shape[d]))
            return clora__fail(CLORA_ERR_FORMAT,
                               "safetensors: tensor \"%s\": shape entry %zu is not a "
                               "non-negative integer",
                               name, d);
        if (e->shape[d] != 0 && e->numel > SIZE_MAX / e->shape[d])
            return clora__fail(CLORA_ERR_FORMAT, "safetensors: tensor \"%s\": shape overflows",
                               name);
        e->numel *= e->shape[d];
    }
    if (!json_is_array(offsets) || json_array_size(offsets) != 2 ||
        !json_size(json_array_get(offsets, 0), &e->begin) ||
        !json_size(json_array_get(offsets, 1), &e->end))
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: tensor \"%s\": data_offsets is not two non-negative "
                           "integers",
                           name);
    return CLORA_OK;
}

static int by_offsets(const void *a, const void *b)
{
    const entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* The checks of the reference reader, in its order: contiguous from 0,
 * sizes that match dtype and shape, nothing after the last tensor. */
static clora_status check_layout(const clora_safetensors *file)
{
    size_t start = 0;
    for (size_t i = 0; i < file->count; ++i) {
        const entry *e = &file->entries[i];
        if (e->begin != start || e->end < e->begin) {
            if (e->begin < start)
                return clora__fail(CLORA_ERR_FORMAT,
                                   "safetensors: tensor \"%s\" at [%zu, %zu) overlaps the one "
                                   "before it (which ends at %zu)",
                                   e->name, e->begin, e->end, start);
            if (e->end < e->begin)
                return clora__fail(CLORA_ERR_FORMAT,
                                   "safetensors: tensor \"%s\" ends (%zu) before it begins (%zu)",
                                   e->name, e->end, e->begin);
            return clora__fail(CLORA_ERR_FORMAT,
                               "safetensors: tensor \"%s\" begins at %zu, leaving a hole after "
                               "offset %zu",
                               e->name, e->begin, start);
        }
        size_t bits = clora_dtype_bits(e->dtype);
        if (e->numel > SIZE_MAX / bits)
            return clora__fail(CLORA_ERR_FORMAT, "safetensors: tensor \"%s\": size overflows",
                               e->name);
        size_t nbits = e->numel * bits;
        if (nbits % 8 != 0)
            return clora__fail(CLORA_ERR_FORMAT,
                               "safetensors: tensor \"%s\": %zu elements of %s are not a whole "
                               "number of bytes",
                               e->name, e->numel, clora_dtype_name(e->dtype));
        if (e->end - e->begin != nbits / 8)
            return clora__fail(CLORA_ERR_FORMAT,
                               "safetensors: tensor \"%s\": %zu elements of %s need %zu bytes, "
                               "data_offsets give %zu",
                               e->name, e->numel, clora_dtype_name(e->dtype), nbits / 8,
                               e->end - e->begin);
        start = e->end;
    }
    size_t available = file->size - 8 - file->header_size;
    if (start > available)
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: tensor data needs %zu bytes, the file holds %zu after "
                           "the header (truncated?)",
                           start, available);
    if (start < available)
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: %zu bytes follow the last tensor", available - start);
    return CLORA_OK;
}

/* Validates file->bytes / file->size and fills the rest of `file`. */
static clora_status parse(clora_safetensors *file)
{
    if (file->size < 8)
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: the file is %zu bytes; it needs at least 8", file->size);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i)
        n = (n << 8) | file->bytes[i];
    if (n > MAX_HEADER_SIZE)
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: header length %llu exceeds the limit of %llu bytes",
                           (unsigned long long)n, MAX_HEADER_SIZE);
    if (n > file->size - 8)
        return clora__fail(CLORA_ERR_FORMAT,
                           "safetensors: header length %llu passes the end of the %zu-byte file",
                           (unsigned long long)n, file->size);
    file->header_size = (size_t)n;
    file->data = file->bytes + 8 + n;

    json_error_t error;
    json_t *root = json_loadb((const char *)file->bytes + 8, (size_t)n, JSON_REJECT_DUPLICATES,
                              &error);
    if (!root)
        return clora__fail(CLORA_ERR_FORMAT, "safetensors: header is not valid JSON: %s (byte %d)",
                           error.text, error.position);
    clora_status status = CLORA_OK;
    if (!json_is_object(root)) {
        status = clora__fail(CLORA_ERR_FORMAT, "safetensors: header is not a JSON object");
        json_decref(root);
        return status;
    }
    size_t total = json_object_size(root);
    file->entries = clora__calloc(total ? total : 1, sizeof *file->entries);
    if (!file->entries) {
        json_decref(root);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: header");
    }
    const char *key;
    json_t *value;
    json_object_foreach(root, key, value) {
        if (!strcmp(key, "__metadata__"))
            status = parse_metadata(file, value);
        else
            status = parse_entry(&file->entries[file->count++], key, value);
        if (status != CLORA_OK)
            break;
    }
    json_decref(root);
    if (status != CLORA_OK)
        return status;
    qsort(file->entries, file->count, sizeof *file->entries, by_offsets);
    return check_layout(file);
}

static clora_status finish(clora_safetensors **out, clora_safetensors *file)
{
    clora_status status = parse(file);
    if (status != CLORA_OK) {
        clora_safetensors_close(file);
        return status;
    }
    *out = file;
    return CLORA_OK;
}

clora_status clora_safetensors_parse(clora_safetensors **out, const void *bytes, size_t size)
{
    if (!out || (!bytes && size > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_parse: %s is NULL",
                           out ? "bytes" : "out");
    *out = NULL;
    clora_safetensors *file = clora__calloc(1, sizeof *file);
    unsigned char *copy = clora__malloc(size ? size : 1);
    if (!file || !copy) {
        free(file);
        free(copy);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: %zu bytes", size);
    }
    if (size)
        memcpy(copy, bytes, size);
    file->bytes = copy;
    file->size = size;
    return finish(out, file);
}

clora_status clora_safetensors_open(clora_safetensors **out, const char *path)
{
    if (!out || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_open: %s is NULL",
                           out ? "path" : "out");
    *out = NULL;
    int fd = clora__fault(CLORA__FAULT_FILE_OPEN) ? (errno = EACCES, -1) : open(path, O_RDONLY);
    if (fd < 0)
        return clora__fail(CLORA_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return clora__fail(CLORA_ERR_IO, "%s is not a regular file", path);
    }
    clora_safetensors *file = clora__calloc(1, sizeof *file);
    if (!file) {
        close(fd);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "opening %s", path);
    }
    file->size = (size_t)st.st_size;
    if (file->size == 0) {
        file->bytes = clora__malloc(1);
    } else {
        void *map = mmap(NULL, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map != MAP_FAILED) {
            file->bytes = map;
            file->mapped = 1;
        }
    }
    close(fd);
    if (!file->bytes) {
        free(file);
        return clora__fail(CLORA_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    }
    clora_status status = finish(out, file);
    return status == CLORA_OK ? CLORA_OK : clora__fail_prefixed(status, "%s", path);
}

size_t clora_safetensors_count(const clora_safetensors *file)
{
    return file ? file->count : 0;
}

static void fill_view(const clora_safetensors *file, const entry *e, clora_tensor_view *view)
{
    view->name = e->name;
    view->dtype = e->dtype;
    view->ndim = e->ndim;
    view->shape = e->ndim ? e->shape : NULL;
    view->numel = e->numel;
    view->data = file->data + e->begin;
    view->nbytes = e->end - e->begin;
}

clora_status clora_safetensors_get(const clora_safetensors *file, size_t index,
                                   clora_tensor_view *view)
{
    if (!file || !view)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_get: %s is NULL",
                           file ? "view" : "file");
    if (index >= file->count)
        return clora__fail(CLORA_ERR_NOT_FOUND, "safetensors: no tensor %zu (the file has %zu)",
                           index, file->count);
    fill_view(file, &file->entries[index], view);
    return CLORA_OK;
}

clora_status clora_safetensors_find(const clora_safetensors *file, const char *name,
                                    clora_tensor_view *view)
{
    if (!file || !name || !view)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_find: an argument is NULL");
    for (size_t i = 0; i < file->count; ++i)
        if (!strcmp(file->entries[i].name, name)) {
            fill_view(file, &file->entries[i], view);
            return CLORA_OK;
        }
    return clora__fail(CLORA_ERR_NOT_FOUND, "safetensors: no tensor named \"%s\"", name);
}

size_t clora_safetensors_metadata_count(const clora_safetensors *file)
{
    return file ? file->meta_count : 0;
}

clora_status clora_safetensors_metadata_at(const clora_safetensors *file, size_t index,
                                           const char **key, const char **value)
{
    if (!file || !key || !value)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_metadata_at: NULL argument");
    if (index >= file->meta_count)
        return clora__fail(CLORA_ERR_NOT_FOUND, "safetensors: no metadata entry %zu", index);
    *key = file->meta_keys[index];
    *value = file->meta_values[index];
    return CLORA_OK;
}

const char *clora_safetensors_metadata(const clora_safetensors *file, const char *key)
{
    if (!file || !key)
        return NULL;
    for (size_t i = 0; i < file->meta_count; ++i)
        if (!strcmp(file->meta_keys[i], key))
            return file->meta_values[i];
    return NULL;
}

size_t clora_safetensors_header_size(const clora_safetensors *file)
{
    return file ? file->header_size : 0;
}

size_t clora_safetensors_file_size(const clora_safetensors *file)
{
    return file ? file->size : 0;
}

/* ---- conversion ------------------------------------------------------------ */

static float f32_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

clora_status clora_tensor_to_f32(const clora_tensor_view *view, float *dst)
{
    if (!view || (!dst && view->numel > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_tensor_to_f32: NULL argument");
    const unsigned char *p = view->data;
    size_t n = view->numel;
    switch (view->dtype) {
    case CLORA_DTYPE_F32:
        for (size_t i = 0; i < n; ++i, p += 4)
            dst[i] = f32_from_bits((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                                   (uint32_t)p[3] << 24);
        return CLORA_OK;
    case CLORA_DTYPE_F16:
        for (size_t i = 0; i < n; ++i, p += 2)
            dst[i] = clora__f16_to_f32((uint16_t)(p[0] | p[1] << 8));
        return CLORA_OK;
    case CLORA_DTYPE_BF16:
        for (size_t i = 0; i < n; ++i, p += 2)
            dst[i] = f32_from_bits(((uint32_t)p[0] | (uint32_t)p[1] << 8) << 16);
        return CLORA_OK;
    case CLORA_DTYPE_F64:
        for (size_t i = 0; i < n; ++i, p += 8) {
            uint64_t bits = 0;
            for (int b = 7; b >= 0; --b)
                bits = (bits << 8) | p[b];
            double d;
            memcpy(&d, &bits, sizeof d);
            dst[i] = (float)d;
        }
        return CLORA_OK;
    default:
        return clora__fail(CLORA_ERR_DTYPE_MISMATCH,
                           "tensor \"%s\" holds %s; only F32, F16, BF16 and F64 convert to float",
                           view->name ? view->name : "", clora_dtype_name(view->dtype));
    }
}

/* ---- writing ------------------------------------------------------------- */

struct clora_safetensors_writer {
    entry *entries;
    void **data; /* copies, one per entry */
    size_t count, capacity;
    json_t *metadata;
};

clora_status clora_safetensors_writer_create(clora_safetensors_writer **out)
{
    if (!out)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_writer_create: out is NULL");
    *out = clora__calloc(1, sizeof **out);
    if (!*out)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors writer");
    (*out)->metadata = json_object();
    if (!(*out)->metadata) {
        free(*out);
        *out = NULL;
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors writer");
    }
    return CLORA_OK;
}

void clora_safetensors_writer_destroy(clora_safetensors_writer *writer)
{
    if (!writer)
        return;
    for (size_t i = 0; i < writer->count; ++i)
        free(writer->data[i]);
    free(writer->data);
    free_entries(writer->entries, writer->count);
    json_decref(writer->metadata);
    free(writer);
}

clora_status clora_safetensors_writer_add(clora_safetensors_writer *writer, const char *name,
                                          clora_dtype dtype, size_t ndim, const size_t *shape,
                                          const void *data)
{
    static const char op[] = "clora_safetensors_writer_add";
    if (!writer || !name || (ndim > 0 && !shape))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: NULL argument", op);
    if (!*name || !strcmp(name, "__metadata__"))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: \"%s\" cannot name a tensor", op, name);
    if ((unsigned)dtype >= CLORA_DTYPE_COUNT)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: unknown dtype %d", op, (int)dtype);
    if (!clora_dtype_bits(dtype))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: %s is not a safetensors dtype", op,
                           clora_dtype_name(dtype));
    for (size_t i = 0; i < writer->count; ++i)
        if (!strcmp(writer->entries[i].name, name))
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: a tensor named \"%s\" exists", op,
                               name);
    size_t numel = 1;
    for (size_t d = 0; d < ndim; ++d) {
        if (shape[d] != 0 && numel > SIZE_MAX / 64 / shape[d])
            return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: shape of \"%s\" overflows", op,
                               name);
        numel *= shape[d];
    }
    size_t nbits = numel * clora_dtype_bits(dtype);
    if (nbits % 8 != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: \"%s\" is not a whole number of bytes", op, name);
    size_t nbytes = nbits / 8;
    if (nbytes > 0 && !data)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: data of \"%s\" is NULL", op, name);
    if (writer->count == writer->capacity) {
        size_t capacity = writer->capacity ? 2 * writer->capacity : 16;
        entry *entries = clora__realloc(writer->entries, capacity * sizeof *entries);
        if (entries)
            writer->entries = entries;
        void **datas = clora__realloc(writer->data, capacity * sizeof *datas);
        if (datas)
            writer->data = datas;
        if (!entries || !datas)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s", op);
        writer->capacity = capacity;
    }
    entry e = {0};
    e.name = clora__strdup(name);
    e.shape = clora__malloc((ndim ? ndim : 1) * sizeof *e.shape);
    void *copy = clora__malloc(nbytes ? nbytes : 1);
    if (!e.name || !e.shape || !copy) {
        free(e.name);
        free(e.shape);
        free(copy);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: %zu bytes", op, nbytes);
    }
    if (ndim)
        memcpy(e.shape, shape, ndim * sizeof *shape);
    if (nbytes)
        memcpy(copy, data, nbytes);
    e.dtype = dtype;
    e.ndim = ndim;
    e.numel = numel;
    e.end = nbytes; /* size until layout */
    writer->entries[writer->count] = e;
    writer->data[writer->count] = copy;
    writer->count++;
    return CLORA_OK;
}

clora_status clora_safetensors_writer_metadata(clora_safetensors_writer *writer, const char *key,
                                               const char *value)
{
    if (!writer || !key || !value)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_writer_metadata: NULL");
    if (json_object_set_new(writer->metadata, key, json_string(value)) != 0)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_safetensors_writer_metadata: key or value is not UTF-8");
    return CLORA_OK;
}

/* Layout order: larger dtypes first (keeps tensors aligned), then name. */
static int by_layout(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a;
    const entry *y = *(const entry *const *)b;
    size_t bx = clora_dtype_bits(x->dtype), by = clora_dtype_bits(y->dtype);
    if (bx != by)
        return bx > by ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The header JSON (padded) and the layout order of the tensors. */
static clora_status build_header(const clora_safetensors_writer *writer, char **header,
                                 size_t *header_size, const entry **order)
{
    for (size_t i = 0; i < writer->count; ++i)
        order[i] = &writer->entries[i];
    qsort(order, writer->count, sizeof *order, by_layout);

    json_t *root = json_object();
    if (!root)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors header");
    int bad = 0;
    if (json_object_size(writer->metadata) > 0)
        bad |= json_object_set(root, "__metadata__", writer->metadata);
    size_t offset = 0;
    for (size_t k = 0; k < writer->count && !bad; ++k) {
        const entry *e = order[k];
        json_t *shape = json_array();
        json_t *offsets = json_array();
        json_t *item = json_object();
        bad |= !shape || !offsets || !item;
        for (size_t d = 0; d < e->ndim && !bad; ++d)
            bad |= json_array_append_new(shape, json_integer((json_int_t)e->shape[d]));
        if (!bad) {
            bad |= json_array_append_new(offsets, json_integer((json_int_t)offset));
            bad |= json_array_append_new(offsets, json_integer((json_int_t)(offset + e->end)));
            bad |= json_object_set_new(item, "dtype", json_string(clora_dtype_name(e->dtype)));
            bad |= json_object_set_new(item, "shape", shape);
            bad |= json_object_set_new(item, "data_offsets", offsets);
            bad |= json_object_set_new(root, e->name, item);
        } else {
            json_decref(shape);
            json_decref(offsets);
            json_decref(item);
        }
        offset += e->end;
    }
    char *text = bad ? NULL : json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!text)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "safetensors: cannot encode the header (names must be UTF-8)");
    size_t len = strlen(text);
    size_t padded = (len + 8 + 7) / 8 * 8 - 8; /* 8 + header is a multiple of 8 */
    char *out = clora__malloc(padded ? padded : 1);
    if (!out) {
        free(text);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors header");
    }
    memcpy(out, text, len);
    memset(out + len, ' ', padded - len);
    free(text);
    *header = out;
    *header_size = padded;
    return CLORA_OK;
}

/* The file as chunks: length, header, tensors in layout order. */
clora_status clora__safetensors_chunks(const clora_safetensors_writer *writer,
                                       clora__chunk **chunks, size_t *count, char **header,
                                       unsigned char length[8])
{
    const entry **order = clora__malloc((writer->count ? writer->count : 1) * sizeof *order);
    clora__chunk *list = clora__malloc((writer->count + 2) * sizeof *list);
    if (!order || !list) {
        free(order);
        free(list);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors writer");
    }
    size_t header_size = 0;
    clora_status status = build_header(writer, header, &header_size, order);
    if (status != CLORA_OK) {
        free(order);
        free(list);
        return status;
    }
    for (int i = 0; i < 8; ++i)
        length[i] = (unsigned char)((uint64_t)header_size >> (8 * i));
    list[0] = (clora__chunk){length, 8};
    list[1] = (clora__chunk){*header, header_size};
    for (size_t k = 0; k < writer->count; ++k)
        list[k + 2] = (clora__chunk){writer->data[order[k] - writer->entries], order[k]->end};
    free(order);
    *chunks = list;
    *count = writer->count + 2;
    return CLORA_OK;
}

clora_status clora_safetensors_writer_serialize(const clora_safetensors_writer *writer,
                                                void **bytes, size_t *size)
{
    if (!writer || !bytes || !size)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_writer_serialize: NULL");
    clora__chunk *chunks = NULL;
    size_t count = 0;
    char *header = NULL;
    unsigned char length[8];
    clora_status status = clora__safetensors_chunks(writer, &chunks, &count, &header, length);
    if (status != CLORA_OK)
        return status;
    size_t total = 0;
    for (size_t i = 0; i < count; ++i)
        total += chunks[i].size;
    unsigned char *out = clora__malloc(total ? total : 1);
    if (!out) {
        status = clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "safetensors: %zu bytes", total);
    } else {
        size_t at = 0;
        for (size_t i = 0; i < count; ++i) {
            memcpy(out + at, chunks[i].data, chunks[i].size);
            at += chunks[i].size;
        }
        *bytes = out;
        *size = total;
    }
    free(chunks);
    free(header);
    return status;
}

clora_status clora_safetensors_writer_write(const clora_safetensors_writer *writer,
                                            const char *path)
{
    if (!writer || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_safetensors_writer_write: NULL");
    clora__chunk *chunks = NULL;
    size_t count = 0;
    char *header = NULL;
    unsigned char length[8];
    clora_status status = clora__safetensors_chunks(writer, &chunks, &count, &header, length);
    if (status != CLORA_OK)
        return status;
    status = clora__write_file_atomic(path, chunks, count);
    free(chunks);
    free(header);
    return status;
}
