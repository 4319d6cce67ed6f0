/* gguf.c — the GGUF reader, for untrusted files. The format and the rules
 * enforced are listed in clora/gguf.h, the tensor types' blocks in
 * io/io.h. Opening reads the header, the metadata and the tensor infos
 * through a small buffer (nothing is allocated before the file is known to
 * hold what a count or length promises); tensor data is read on request. */
#define _FILE_OFFSET_BITS 64
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io.h"

#define HEADER_BYTES 24u
#define DEFAULT_ALIGNMENT 32u
#define MAX_ARRAY_DEPTH 8
/* The fewest bytes a metadata entry takes (key length, type, a one-byte
 * value) and a tensor info (name length, dimension count, one dimension,
 * type, offset): what a count is checked against. */
#define MIN_ENTRY_BYTES 13u
#define MIN_TENSOR_INFO_BYTES 32u
#define MIN_ARRAY_BYTES 12u /* element type and count */
/* ggml counts elements and bytes in int64. */
#define MAX_COUNT ((uint64_t)INT64_MAX)
#define READ_BUFFER_BYTES 65536u
#define STAGING_BYTES (1u << 20) /* tensor bytes dequantized at a time */

typedef struct value value;
struct value {
    clora_gguf_value_type type;
    union {
        unsigned char scalar[8]; /* a number or bool as stored (little-endian) */
        struct {
            char *bytes; /* followed by a NUL */
            uint64_t length;
        } string;
        struct {
            clora_gguf_value_type type;
            uint64_t count;
            unsigned char *numbers; /* numbers and bools: count × size, as stored */
            char *strings;          /* strings: each followed by a NUL ... */
            uint64_t *starts;       /* ... string i at strings + starts[i], count + 1 of them */
            value *arrays;          /* arrays: count of them */
        } array;
    } as;
};

typedef struct entry {
    char *key;
    uint64_t offset;       /* of the entry (its key) in the file */
    uint64_t value_offset; /* of its value */
    value value;
} entry;

typedef struct tensor {
    clora_gguf_tensor info; /* info.name owned */
    const clora__quant_type *type;
    uint64_t info_offset;   /* of its info in the file */
    uint64_t offset_at;     /* of the info's offset field */
    uint64_t relative;      /* its offset in the data section */
} tensor;

struct clora_gguf {
    char *name; /* the path, or what stands for it, in messages */
    int fd;     /* -1 for a file in memory */
    const unsigned char *memory;
    uint64_t size;
    uint32_t version;
    uint64_t alignment;
    uint64_t data_offset;
    entry *entries;
    size_t entry_count;
    tensor *tensors;
    size_t tensor_count;
    struct named *keys;  /* the entries' keys, sorted */
    struct named *names; /* the tensors' names, sorted */
};

/* A key or tensor name in a sorted list: for lookups, and to find the
 * names that appear twice. */
typedef struct named {
    const char *name;
    size_t index;    /* of its entry or tensor */
    uint64_t offset; /* where it stands in the file */
} named;

/* ---- values --------------------------------------------------------------------- */

/* Bytes of a number or bool; 0 for strings, arrays and unknown types. */
static size_t scalar_size(uint32_t type)
{
    switch (type) {
    case CLORA_GGUF_UINT8:
    case CLORA_GGUF_INT8:
    case CLORA_GGUF_BOOL:
        return 1;
    case CLORA_GGUF_UINT16:
    case CLORA_GGUF_INT16:
        return 2;
    case CLORA_GGUF_UINT32:
    case CLORA_GGUF_INT32:
    case CLORA_GGUF_FLOAT32:
        return 4;
    case CLORA_GGUF_UINT64:
    case CLORA_GGUF_INT64:
    case CLORA_GGUF_FLOAT64:
        return 8;
    default:
        return 0;
    }
}

/* The fewest bytes an element of `type` takes in a file; 0 if unknown. */
static uint64_t min_size(uint32_t type)
{
    if (type == CLORA_GGUF_STRING)
        return 8;
    if (type == CLORA_GGUF_ARRAY)
        return MIN_ARRAY_BYTES;
    return scalar_size(type);
}

const char *clora_gguf_value_type_name(clora_gguf_value_type type)
{
    static const char *const names[] = {"uint8", "int8",  "uint16", "int16",  "uint32",
                                        "int32", "float32", "bool", "string", "array",
                                        "uint64", "int64", "float64"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "unknown";
}

static void free_value(value *v)
{
    if (v->type == CLORA_GGUF_STRING) {
        free(v->as.string.bytes);
    } else if (v->type == CLORA_GGUF_ARRAY) {
        free(v->as.array.numbers);
        free(v->as.array.strings);
        free(v->as.array.starts);
        if (v->as.array.arrays)
            for (uint64_t i = 0; i < v->as.array.count; ++i)
                free_value(&v->as.array.arrays[i]);
        free(v->as.array.arrays);
    }
}

/* A number as read from its little-endian bytes. */
typedef struct number {
    enum { UNSIGNED, SIGNED, FLOATING } kind;
    uint64_t u;
    int64_t i;
    double f;
} number;

static uint64_t le_bits(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t b = n; b-- > 0;)
        v = (v << 8) | p[b];
    return v;
}

/* The two's-complement value of the low `bits` bits of v. */
static int64_t to_signed(uint64_t v, unsigned bits)
{
    const uint64_t sign = (uint64_t)1 << (bits - 1);
    if (!(v & sign))
        return (int64_t)v;
    const uint64_t magnitude = ~v & ((sign << 1) - 1); /* |value| - 1 */
    return -(int64_t)magnitude - 1;
}

/* 0 when `type` is not a number or bool. */
static int decode_number(uint32_t type, const unsigned char *p, number *n)
{
    size_t size = scalar_size(type);
    if (!size)
        return 0;
    uint64_t bits = le_bits(p, size);
    switch (type) {
    case CLORA_GGUF_INT8:
    case CLORA_GGUF_INT16:
    case CLORA_GGUF_INT32:
    case CLORA_GGUF_INT64:
        n->kind = SIGNED;
        n->i = to_signed(bits, (unsigned)(8 * size));
        n->f = (double)n->i;
        return 1;
    case CLORA_GGUF_FLOAT32: {
        uint32_t b32 = (uint32_t)bits;
        float f;
        memcpy(&f, &b32, sizeof f);
        n->kind = FLOATING;
        n->f = f;
        return 1;
    }
    case CLORA_GGUF_FLOAT64:
        n->kind = FLOATING;
        memcpy(&n->f, &bits, sizeof n->f);
        return 1;
    default: /* unsigned integers and bools */
        n->kind = UNSIGNED;
        n->u = bits;
        n->f = (double)bits;
        return 1;
    }
}

static int number_u64(const number *n, uint64_t *out)
{
    if (n->kind == UNSIGNED || (n->kind == SIGNED && n->i >= 0)) {
        *out = n->kind == UNSIGNED ? n->u : (uint64_t)n->i;
        return 1;
    }
    return 0;
}

static int number_i64(const number *n, int64_t *out)
{
    if (n->kind == SIGNED || (n->kind == UNSIGNED && n->u <= MAX_COUNT)) {
        *out = n->kind == SIGNED ? n->i : (int64_t)n->u;
        return 1;
    }
    return 0;
}

/* ---- reading the file -------------------------------------------------------------- */

/* Reads n bytes at `offset`, which the caller has checked lie in the file;
 * CLORA_ERR_IO if they cannot be read (the file changed since it was
 * opened). */
static clora_status read_at(const clora_gguf *file, uint64_t offset, void *dst, uint64_t n)
{
    if (file->fd < 0) {
        memcpy(dst, file->memory + offset, (size_t)n);
        return CLORA_OK;
    }
    unsigned char *p = dst;
    while (n > 0) {
        size_t want = n > (uint64_t)SSIZE_MAX ? (size_t)SSIZE_MAX : (size_t)n;
        ssize_t got = pread(file->fd, p, want, (off_t)offset);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return clora__fail(CLORA_ERR_IO, "%s: cannot read %llu bytes at byte %llu: %s",
                               file->name, (unsigned long long)n, (unsigned long long)offset,
                               strerror(errno));
        if (got == 0)
            return clora__fail(CLORA_ERR_IO,
                               "%s: the file ends before byte %llu (was it changed after it was "
                               "opened?)",
                               file->name, (unsigned long long)(offset + n));
        p += got;
        offset += (uint64_t)got;
        n -= (uint64_t)got;
    }
    return CLORA_OK;
}

/* Where the parse is: the file, the next byte, a read buffer, and what is
 * being read (the start of every message). */
typedef struct parser {
    clora_gguf *file;
    uint64_t pos;
    /* Bytes that what follows the value being read (later entries, array
     * elements and tensor infos) needs at the least: an array's length is
     * checked against what is left besides, so that nested arrays cannot
     * each claim the rest of the file. */
    uint64_t reserved;
    uint64_t buffer_start;
    size_t buffer_length;
    char what[160];
    unsigned char buffer[READ_BUFFER_BYTES];
} parser;

/* A name as messages show it: at most 80 bytes, control bytes as '?'. */
static void printable(char *out, size_t size, const char *name)
{
    size_t n = 0;
    for (; name[n] && n < 80 && n + 4 < size; ++n)
        out[n] = (unsigned char)name[n] < 0x20 || name[n] == 0x7f ? '?' : name[n];
    if (name[n] && n + 4 < size) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
}

/* What is being read: "<prefix> \"<name>\"" or "<prefix> <index>". */
static void set_what_name(parser *p, const char *prefix, const char *name)
{
    char shown[96];
    printable(shown, sizeof shown, name);
    snprintf(p->what, sizeof p->what, "%s \"%s\"", prefix, shown);
}

static void set_what_index(parser *p, const char *prefix, size_t index)
{
    snprintf(p->what, sizeof p->what, "%s %zu", prefix, index);
}

/* A CLORA_ERR_FORMAT message "<file>: <what is being read>: <text>". */
static clora_status fail_at(const parser *p, const char *fmt, ...) CLORA__PRINTF(2, 3);
static clora_status fail_at(const parser *p, const char *fmt, ...)
{
    char text[512];
    va_list args;
    va_start(args, fmt);
    vsnprintf(text, sizeof text, fmt, args);
    va_end(args);
    return clora__fail(CLORA_ERR_FORMAT, "%s: %s: %s", p->file->name, p->what, text);
}

static uint64_t bytes_left(const parser *p)
{
    return p->file->size - p->pos;
}

/* Copies the next n bytes, known to lie in the file, and moves past them. */
static clora_status copy_next(parser *p, void *dst, uint64_t n)
{
    clora_gguf *file = p->file;
    unsigned char *out = dst;
    if (file->fd < 0) {
        memcpy(out, file->memory + p->pos, (size_t)n);
        p->pos += n;
        return CLORA_OK;
    }
    while (n > 0) {
        if (p->pos >= p->buffer_start && p->pos < p->buffer_start + p->buffer_length) {
            size_t at = (size_t)(p->pos - p->buffer_start);
            size_t k = p->buffer_length - at;
            if ((uint64_t)k > n)
                k = (size_t)n;
            memcpy(out, p->buffer + at, k);
            out += k;
            p->pos += k;
            n -= k;
        } else if (n >= sizeof p->buffer) {
            clora_status status = read_at(file, p->pos, out, n);
            p->pos += n;
            return status;
        } else {
            uint64_t left = bytes_left(p);
            size_t want = left < sizeof p->buffer ? (size_t)left : sizeof p->buffer;
            clora_status status = read_at(file, p->pos, p->buffer, want);
            if (status != CLORA_OK)
                return status;
            p->buffer_start = p->pos;
            p->buffer_length = want;
        }
    }
    return CLORA_OK;
}

/* The next n bytes (`field` names them in the message if the file ends). */
static clora_status take(parser *p, void *dst, uint64_t n, const char *field)
{
    if (n > bytes_left(p))
        return fail_at(p, "%s (%llu bytes at byte %llu) passes the end of the %llu-byte file",
                       field, (unsigned long long)n, (unsigned long long)p->pos,
                       (unsigned long long)p->file->size);
    return copy_next(p, dst, n);
}

static clora_status take_u32(parser *p, uint32_t *out, const char *field)
{
    unsigned char b[4];
    clora_status status = take(p, b, 4, field);
    *out = (uint32_t)le_bits(b, 4);
    return status;
}

static clora_status take_u64(parser *p, uint64_t *out, const char *field)
{
    unsigned char b[8];
    clora_status status = take(p, b, 8, field);
    *out = le_bits(b, 8);
    return status;
}

/* A length-prefixed string into a new NUL-terminated buffer; keys and
 * names (allow_nul 0) may not hold a NUL themselves. */
static clora_status take_string(parser *p, char **out, uint64_t *length, const char *field,
                                int allow_nul)
{
    uint64_t at = p->pos, n;
    clora_status status = take_u64(p, &n, field);
    if (status != CLORA_OK)
        return status;
    if (n > bytes_left(p) || n >= SIZE_MAX)
        return fail_at(p,
                       "%s length %llu at byte %llu passes the end of the %llu-byte file "
                       "(%llu bytes are left)",
                       field, (unsigned long long)n, (unsigned long long)at,
                       (unsigned long long)p->file->size, (unsigned long long)bytes_left(p));
    char *s = clora__malloc((size_t)n + 1);
    if (!s)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: %s: %llu bytes", p->file->name,
                           p->what, (unsigned long long)n);
    status = copy_next(p, s, n);
    s[n] = '\0';
    *out = s;
    if (length)
        *length = n;
    if (status == CLORA_OK && !allow_nul && memchr(s, '\0', (size_t)n))
        return fail_at(p, "%s at byte %llu holds a NUL byte", field,
                       (unsigned long long)(at + 8));
    return status;
}

/* ---- metadata values --------------------------------------------------------------- */

static clora_status take_bool_check(parser *p, const unsigned char *bytes, uint64_t count,
                                    uint64_t at)
{
    for (uint64_t i = 0; i < count; ++i)
        if (bytes[i] > 1)
            return fail_at(p, "bool %u at byte %llu is neither 0 nor 1", bytes[i],
                           (unsigned long long)(at + i));
    return CLORA_OK;
}

/* malloc of count × size bytes (at least one), NULL when that overflows. */
static void *alloc_array(uint64_t count, size_t size)
{
    if (count > SIZE_MAX / size)
        return NULL;
    return clora__malloc(count ? (size_t)count * size : 1);
}

static clora_status out_of_memory(const parser *p)
{
    return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: %s", p->file->name, p->what);
}

static clora_status take_array(parser *p, value *out, int depth);

/* The strings of an array: lengths first checked, then one buffer grown
 * as they come (it never holds more than the file's bytes). */
static clora_status take_strings(parser *p, value *out)
{
    const uint64_t count = out->as.array.count;
    out->as.array.starts = alloc_array(count + 1, sizeof *out->as.array.starts);
    if (!out->as.array.starts)
        return out_of_memory(p);
    size_t used = 0, capacity = 0;
    for (uint64_t i = 0; i < count; ++i) {
        uint64_t at = p->pos, n;
        clora_status status = take_u64(p, &n, "a string's length");
        if (status != CLORA_OK)
            return status;
        if (n > bytes_left(p))
            return fail_at(p,
                           "string %llu of the array: length %llu at byte %llu passes the end "
                           "of the %llu-byte file (%llu bytes are left)",
                           (unsigned long long)i, (unsigned long long)n, (unsigned long long)at,
                           (unsigned long long)p->file->size, (unsigned long long)bytes_left(p));
        if (used + n + 1 > capacity) {
            /* n + 1 <= bytes left + 1, so this stays within twice the file */
            size_t grown = capacity ? capacity : 64;
            while (grown < used + n + 1)
                grown *= 2;
            char *bigger = clora__realloc(out->as.array.strings, grown);
            if (!bigger)
                return out_of_memory(p);
            out->as.array.strings = bigger;
            capacity = grown;
        }
        out->as.array.starts[i] = used;
        status = copy_next(p, out->as.array.strings + used, n);
        if (status != CLORA_OK)
            return status;
        used += (size_t)n;
        out->as.array.strings[used++] = '\0';
    }
    out->as.array.starts[count] = used;
    return CLORA_OK;
}

/* The value of `type` at the parser: a scalar, string or array. */
static clora_status take_value(parser *p, uint32_t type, value *out, int depth)
{
    out->type = (clora_gguf_value_type)type;
    if (type == CLORA_GGUF_STRING)
        return take_string(p, &out->as.string.bytes, &out->as.string.length, "the string", 1);
    if (type == CLORA_GGUF_ARRAY)
        return take_array(p, out, depth);
    uint64_t at = p->pos;
    clora_status status = take(p, out->as.scalar, scalar_size(type), "the value");
    if (status == CLORA_OK && type == CLORA_GGUF_BOOL)
        status = take_bool_check(p, out->as.scalar, 1, at);
    return status;
}

/* An array's element type, length and elements. */
static clora_status take_array(parser *p, value *out, int depth)
{
    out->type = CLORA_GGUF_ARRAY;
    uint64_t at = p->pos;
    if (depth >= MAX_ARRAY_DEPTH)
        return fail_at(p, "an array at byte %llu is nested %d deep; clora reads up to %d",
                       (unsigned long long)at, depth + 1, MAX_ARRAY_DEPTH);
    uint32_t element;
    clora_status status = take_u32(p, &element, "the array's element type");
    if (status != CLORA_OK)
        return status;
    if (!min_size(element))
        return fail_at(p, "unknown array element type %u at byte %llu", element,
                       (unsigned long long)at);
    out->as.array.type = (clora_gguf_value_type)element;
    uint64_t count;
    status = take_u64(p, &count, "the array's length");
    if (status != CLORA_OK)
        return status;
    const uint64_t available = bytes_left(p) > p->reserved ? bytes_left(p) - p->reserved : 0;
    if (count > available / min_size(element))
        return fail_at(p,
                       "an array of %llu %s elements (length at byte %llu) needs at least "
                       "%llu bytes each, more than the %llu bytes the file has left for it",
                       (unsigned long long)count, clora_gguf_value_type_name(element),
                       (unsigned long long)(at + 4), (unsigned long long)min_size(element),
                       (unsigned long long)available);
    if (element == CLORA_GGUF_STRING) {
        out->as.array.count = count;
        return take_strings(p, out);
    }
    if (element == CLORA_GGUF_ARRAY) {
        out->as.array.arrays = clora__calloc(count ? (size_t)count : 1, sizeof *out->as.array.arrays);
        if (!out->as.array.arrays)
            return out_of_memory(p);
        out->as.array.count = count;
        const uint64_t reserved = p->reserved;
        for (uint64_t i = 0; i < count && status == CLORA_OK; ++i) {
            p->reserved = reserved + (count - i - 1) * MIN_ARRAY_BYTES; /* its later siblings */
            status = take_array(p, &out->as.array.arrays[i], depth + 1);
        }
        p->reserved = reserved;
        return status;
    }
    const size_t size = scalar_size(element);
    out->as.array.count = count;
    out->as.array.numbers = alloc_array(count, size);
    if (!out->as.array.numbers)
        return out_of_memory(p);
    uint64_t first = p->pos;
    status = copy_next(p, out->as.array.numbers, count * size);
    if (status == CLORA_OK && element == CLORA_GGUF_BOOL)
        status = take_bool_check(p, out->as.array.numbers, count, first);
    return status;
}

/* ---- header, metadata, tensor infos ---------------------------------------------------- */

static clora_status parse_header(parser *p, uint64_t *tensor_count, uint64_t *entry_count)
{
    clora_gguf *file = p->file;
    snprintf(p->what, sizeof p->what, "GGUF header");
    if (file->size < 4)
        return fail_at(p, "the file is %llu bytes, not even the 4-byte magic \"GGUF\"",
                       (unsigned long long)file->size);
    unsigned char header[HEADER_BYTES], *magic = header;
    clora_status status = take(p, magic, 4, "the magic");
    if (status != CLORA_OK)
        return status;
    if (memcmp(magic, "GGUF", 4) != 0)
        return fail_at(p,
                       "the magic at byte 0 is %02x %02x %02x %02x, not \"GGUF\": not a GGUF "
                       "file",
                       magic[0], magic[1], magic[2], magic[3]);
    if (file->size < HEADER_BYTES)
        return fail_at(p, "the file is %llu bytes, shorter than the %u-byte header",
                       (unsigned long long)file->size, HEADER_BYTES);
    if ((status = take(p, header + 4, HEADER_BYTES - 4, "the header")) != CLORA_OK)
        return status;
    const uint32_t version = (uint32_t)le_bits(header + 4, 4);
    const uint32_t swapped = (version >> 24) | ((version >> 8) & 0xff00u) |
                             ((version << 8) & 0xff0000u) | (version << 24);
    if (version == 1)
        return fail_at(p,
                       "version 1 at byte 4 (GGUF's first, with 32-bit counts) is not read; "
                       "clora reads versions 2 and 3");
    if (version != 2 && version != 3 && swapped >= 1 && swapped <= 3)
        return fail_at(p,
                       "version %u at byte 4 is version %u byte-swapped: a big-endian file; "
                       "clora reads little-endian files only",
                       version, swapped);
    if (version != 2 && version != 3)
        return fail_at(p, "version %u at byte 4: clora reads versions 2 and 3", version);
    file->version = version;
    *tensor_count = le_bits(header + 8, 8);
    *entry_count = le_bits(header + 16, 8);
    uint64_t left = bytes_left(p);
    if (*tensor_count > left / MIN_TENSOR_INFO_BYTES)
        return fail_at(p,
                       "%llu tensors (the count at byte 8) need at least %u bytes of info each, "
                       "more than the %llu bytes after the header",
                       (unsigned long long)*tensor_count, MIN_TENSOR_INFO_BYTES,
                       (unsigned long long)left);
    if (*entry_count > left / MIN_ENTRY_BYTES)
        return fail_at(p,
                       "%llu metadata entries (the count at byte 16) need at least %u bytes "
                       "each, more than the %llu bytes after the header",
                       (unsigned long long)*entry_count, MIN_ENTRY_BYTES,
                       (unsigned long long)left);
    return CLORA_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const named *)a)->name, ((const named *)b)->name);
}

/* Sorts n names (filled in by the caller) and refuses one that appears
 * twice; `kind` says what they are in the message. */
static clora_status sort_names(parser *p, named *list, size_t n, const char *kind)
{
    qsort(list, n, sizeof *list, by_name);
    for (size_t k = 1; k < n; ++k)
        if (!strcmp(list[k - 1].name, list[k].name)) {
            char shown[96];
            printable(shown, sizeof shown, list[k].name);
            const int in_order = list[k - 1].offset < list[k].offset;
            const uint64_t first = in_order ? list[k - 1].offset : list[k].offset;
            const uint64_t second = in_order ? list[k].offset : list[k - 1].offset;
            return fail_at(p, "the %s \"%s\" appears twice, at bytes %llu and %llu", kind, shown,
                           (unsigned long long)first, (unsigned long long)second);
        }
    return CLORA_OK;
}

/* The index of `name` in a sorted list, or -1. */
static long find_named(const named *list, size_t n, const char *name)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(list[mid].name, name);
        if (c == 0)
            return (long)list[mid].index;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static clora_status parse_metadata(parser *p, uint64_t count, uint64_t tensor_count)
{
    clora_gguf *file = p->file;
    file->entries = clora__calloc(count ? (size_t)count : 1, sizeof *file->entries);
    if (!file->entries)
        return out_of_memory(p);
    for (size_t i = 0; i < count; ++i) {
        entry *e = &file->entries[i];
        file->entry_count = i + 1;
        e->offset = p->pos;
        /* both counts were checked against the file's size: no overflow */
        p->reserved = (count - i - 1) * MIN_ENTRY_BYTES + tensor_count * MIN_TENSOR_INFO_BYTES;
        set_what_index(p, "metadata entry", i);
        clora_status status = take_string(p, &e->key, NULL, "the key", 0);
        if (status != CLORA_OK)
            return status;
        set_what_name(p, "metadata", e->key);
        uint32_t type;
        uint64_t at = p->pos;
        status = take_u32(p, &type, "the value type");
        if (status != CLORA_OK)
            return status;
        if (!min_size(type))
            return fail_at(p, "unknown value type %u at byte %llu", type, (unsigned long long)at);
        e->value_offset = p->pos;
        status = take_value(p, type, &e->value, 0);
        if (status != CLORA_OK)
            return status;
    }
    snprintf(p->what, sizeof p->what, "metadata");
    file->keys = alloc_array(file->entry_count, sizeof *file->keys);
    if (!file->keys)
        return out_of_memory(p);
    for (size_t i = 0; i < file->entry_count; ++i)
        file->keys[i] = (named){file->entries[i].key, i, file->entries[i].offset};
    return sort_names(p, file->keys, file->entry_count, "key");
}

static const entry *find_entry(const clora_gguf *file, const char *key)
{
    long i = find_named(file->keys, file->entry_count, key);
    return i >= 0 ? &file->entries[i] : NULL;
}

static clora_status parse_alignment(parser *p)
{
    clora_gguf *file = p->file;
    file->alignment = DEFAULT_ALIGNMENT;
    const entry *e = find_entry(file, "general.alignment");
    if (!e)
        return CLORA_OK;
    snprintf(p->what, sizeof p->what, "metadata \"general.alignment\"");
    if (e->value.type != CLORA_GGUF_UINT32)
        return fail_at(p, "the value at byte %llu is a %s; GGUF requires a uint32",
                       (unsigned long long)e->value_offset,
                       clora_gguf_value_type_name(e->value.type));
    uint64_t alignment = le_bits(e->value.as.scalar, 4);
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        return fail_at(p, "the alignment %llu at byte %llu is not a power of two",
                       (unsigned long long)alignment, (unsigned long long)e->value_offset);
    file->alignment = alignment;
    return CLORA_OK;
}

static clora_status parse_tensor_info(parser *p, tensor *t, size_t index)
{
    t->info_offset = p->pos;
    set_what_index(p, "tensor info", index);
    char *name = NULL;
    clora_status status = take_string(p, &name, NULL, "the name", 0);
    t->info.name = name;
    if (status != CLORA_OK)
        return status;
    set_what_name(p, "tensor", name);
    uint32_t ndim;
    uint64_t at = p->pos;
    if ((status = take_u32(p, &ndim, "the dimension count")) != CLORA_OK)
        return status;
    if (ndim < 1 || ndim > 4)
        return fail_at(p, "%u dimensions (at byte %llu); GGUF tensors have 1 to 4", ndim,
                       (unsigned long long)at);
    t->info.ndim = ndim;
    const uint64_t dims_at = p->pos;
    int has_zero = 0;
    for (uint32_t d = 0; d < ndim; ++d) {
        at = p->pos;
        if ((status = take_u64(p, &t->info.dims[d], "a dimension")) != CLORA_OK)
            return status;
        if (t->info.dims[d] > MAX_COUNT)
            return fail_at(p, "dimension %u is %llu (at byte %llu), more than 2^63 - 1", d,
                           (unsigned long long)t->info.dims[d], (unsigned long long)at);
        has_zero |= t->info.dims[d] == 0;
    }
    uint64_t elements = 1;
    for (uint32_t d = 0; d < ndim && !has_zero; ++d) {
        if (elements > MAX_COUNT / t->info.dims[d])
            return fail_at(p,
                           "its dimensions (at byte %llu) multiply to more than 2^63 - 1 "
                           "elements",
                           (unsigned long long)dims_at);
        elements *= t->info.dims[d];
    }
    t->info.elements = has_zero ? 0 : elements;
    uint32_t type;
    at = p->pos;
    if ((status = take_u32(p, &type, "the tensor type")) != CLORA_OK)
        return status;
    t->type = clora__quant_find(type);
    if (!t->type)
        return fail_at(p, "unknown tensor type %u at byte %llu", type, (unsigned long long)at);
    t->info.type = (clora_gguf_tensor_type)type;
    if (t->info.dims[0] % t->type->block != 0)
        return fail_at(p,
                       "its first dimension, %llu, is not a whole number of %s blocks of %zu "
                       "(type at byte %llu)",
                       (unsigned long long)t->info.dims[0], t->type->name, t->type->block,
                       (unsigned long long)at);
    uint64_t blocks = t->info.elements / t->type->block;
    if (blocks > MAX_COUNT / t->type->bytes)
        return fail_at(p, "its %llu elements of %s take more than 2^63 - 1 bytes",
                       (unsigned long long)t->info.elements, t->type->name);
    t->info.bytes = blocks * t->type->bytes;
    t->offset_at = p->pos;
    return take_u64(p, &t->relative, "the data offset");
}

static int by_offset(const void *a, const void *b)
{
    const tensor *x = *(const tensor *const *)a, *y = *(const tensor *const *)b;
    if (x->relative != y->relative)
        return x->relative < y->relative ? -1 : 1;
    return (x->info.bytes > y->info.bytes) - (x->info.bytes < y->info.bytes);
}

/* Every tensor aligned, inside the file, apart from the others. */
static clora_status check_layout(parser *p)
{
    clora_gguf *file = p->file;
    const uint64_t data = file->data_offset;
    const uint64_t available = file->size - data;
    for (size_t i = 0; i < file->tensor_count; ++i) {
        tensor *t = &file->tensors[i];
        set_what_name(p, "tensor", t->info.name);
        if (t->relative % file->alignment != 0)
            return fail_at(p, "its data offset %llu (at byte %llu) is not a multiple of the "
                              "alignment, %llu",
                           (unsigned long long)t->relative, (unsigned long long)t->offset_at,
                           (unsigned long long)file->alignment);
        if (t->relative > available || t->info.bytes > available - t->relative)
            return fail_at(p,
                           "its %llu bytes at data offset %llu (at byte %llu; the data section "
                           "starts at byte %llu) pass the end of the %llu-byte file",
                           (unsigned long long)t->info.bytes, (unsigned long long)t->relative,
                           (unsigned long long)t->offset_at, (unsigned long long)data,
                           (unsigned long long)file->size);
        t->info.offset = data + t->relative;
    }
    const tensor **order = alloc_array(file->tensor_count, sizeof *order);
    if (!order)
        return out_of_memory(p);
    for (size_t i = 0; i < file->tensor_count; ++i)
        order[i] = &file->tensors[i];
    qsort(order, file->tensor_count, sizeof *order, by_offset);
    const tensor *last = NULL; /* the non-empty tensor that ends furthest */
    clora_status status = CLORA_OK;
    for (size_t k = 0; k < file->tensor_count && status == CLORA_OK; ++k) {
        const tensor *t = order[k];
        if (t->info.bytes == 0)
            continue;
        if (last && t->relative < last->relative + last->info.bytes) {
            char a[96], b[96];
            printable(a, sizeof a, last->info.name);
            printable(b, sizeof b, t->info.name);
            snprintf(p->what, sizeof p->what, "tensor data");
            status = fail_at(p,
                             "tensor \"%s\" (data bytes %llu to %llu, offset at byte %llu) "
                             "overlaps tensor \"%s\" (%llu to %llu, offset at byte %llu)",
                             b, (unsigned long long)t->relative,
                             (unsigned long long)(t->relative + t->info.bytes),
                             (unsigned long long)t->offset_at, a,
                             (unsigned long long)last->relative,
                             (unsigned long long)(last->relative + last->info.bytes),
                             (unsigned long long)last->offset_at);
        }
        if (!last || t->relative + t->info.bytes > last->relative + last->info.bytes)
            last = t;
    }
    free((void *)order);
    return status;
}

static clora_status parse_tensors(parser *p, uint64_t count)
{
    clora_gguf *file = p->file;
    snprintf(p->what, sizeof p->what, "tensor infos");
    if (count > bytes_left(p) / MIN_TENSOR_INFO_BYTES)
        return fail_at(p,
                       "%llu tensors (the count at byte 8) need at least %u bytes of info each, "
                       "more than the %llu bytes left after the metadata (at byte %llu)",
                       (unsigned long long)count, MIN_TENSOR_INFO_BYTES,
                       (unsigned long long)bytes_left(p), (unsigned long long)p->pos);
    file->tensors = clora__calloc(count ? (size_t)count : 1, sizeof *file->tensors);
    if (!file->tensors)
        return out_of_memory(p);
    for (size_t i = 0; i < count; ++i) {
        file->tensor_count = i + 1;
        clora_status status = parse_tensor_info(p, &file->tensors[i], i);
        if (status != CLORA_OK)
            return status;
    }
    snprintf(p->what, sizeof p->what, "tensor infos");
    file->names = alloc_array(file->tensor_count, sizeof *file->names);
    if (!file->names)
        return out_of_memory(p);
    for (size_t i = 0; i < file->tensor_count; ++i)
        file->names[i] = (named){file->tensors[i].info.name, i, file->tensors[i].info_offset};
    clora_status status = sort_names(p, file->names, file->tensor_count, "tensor name");
    if (status != CLORA_OK)
        return status;
    /* The data section starts at the next multiple of the alignment. */
    const uint64_t end = p->pos, alignment = file->alignment;
    file->data_offset = end % alignment ? end + (alignment - end % alignment) : end;
    if (file->tensor_count > 0 && file->data_offset > file->size) {
        snprintf(p->what, sizeof p->what, "data section");
        return fail_at(p,
                       "it would start at byte %llu (the tensor infos end at byte %llu, "
                       "aligned to %llu), past the end of the %llu-byte file",
                       (unsigned long long)file->data_offset, (unsigned long long)end,
                       (unsigned long long)alignment, (unsigned long long)file->size);
    }
    if (file->data_offset > file->size)
        file->data_offset = file->size;
    return check_layout(p);
}

static clora_status parse(clora_gguf *file)
{
    parser *p = clora__malloc(sizeof *p);
    if (!p)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: opening", file->name);
    p->file = file;
    p->pos = 0;
    p->reserved = 0;
    p->buffer_start = 0;
    p->buffer_length = 0;
    uint64_t tensor_count = 0, entry_count = 0;
    clora_status status = parse_header(p, &tensor_count, &entry_count);
    if (status == CLORA_OK)
        status = parse_metadata(p, entry_count, tensor_count);
    if (status == CLORA_OK)
        status = parse_alignment(p);
    if (status == CLORA_OK)
        status = parse_tensors(p, tensor_count);
    free(p);
    return status;
}

/* ---- opening and closing ------------------------------------------------------------- */

void clora_gguf_close(clora_gguf *file)
{
    if (!file)
        return;
    for (size_t i = 0; i < file->entry_count; ++i) {
        free(file->entries[i].key);
        free_value(&file->entries[i].value);
    }
    free(file->entries);
    free(file->keys);
    for (size_t i = 0; i < file->tensor_count; ++i)
        free((char *)file->tensors[i].info.name);
    free(file->tensors);
    free(file->names);
    if (file->fd >= 0)
        close(file->fd);
    free(file->name);
    free(file);
}

static clora_gguf *new_file(const char *name)
{
    clora_gguf *file = clora__calloc(1, sizeof *file);
    if (!file)
        return NULL;
    file->fd = -1;
    file->alignment = DEFAULT_ALIGNMENT;
    file->name = clora__strdup(name);
    if (!file->name) {
        free(file);
        return NULL;
    }
    return file;
}

static clora_status finish(clora_gguf **out, clora_gguf *file)
{
    clora_status status = parse(file);
    if (status != CLORA_OK) {
        clora_gguf_close(file);
        return status;
    }
    *out = file;
    return CLORA_OK;
}

clora_status clora_gguf_open(clora_gguf **out, const char *path)
{
    if (!out || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_gguf_open: %s is NULL",
                           out ? "path" : "out");
    *out = NULL;
    clora_gguf *file = new_file(path);
    if (!file)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "opening %s", path);
    file->fd = clora__fault(CLORA__FAULT_FILE_OPEN) ? (errno = EACCES, -1) : open(path, O_RDONLY);
    if (file->fd < 0) {
        clora_status status = clora__fail(CLORA_ERR_IO, "cannot open %s: %s", path,
                                          strerror(errno));
        clora_gguf_close(file);
        return status;
    }
    struct stat st;
    if (fstat(file->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        clora_gguf_close(file);
        return clora__fail(CLORA_ERR_IO, "%s is not a regular file", path);
    }
    file->size = (uint64_t)st.st_size;
    return finish(out, file);
}

clora_status clora_gguf_open_memory(clora_gguf **out, const void *bytes, size_t size,
                                    const char *name)
{
    if (!out || (!bytes && size > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_gguf_open_memory: %s is NULL",
                           out ? "bytes" : "out");
    *out = NULL;
    clora_gguf *file = new_file(name ? name : "GGUF data in memory");
    if (!file)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "opening GGUF data in memory");
    static const unsigned char nothing[1] = {0};
    file->memory = bytes ? bytes : nothing;
    file->size = size;
    return finish(out, file);
}

uint32_t clora_gguf_version(const clora_gguf *file)
{
    return file ? file->version : 0;
}

size_t clora_gguf_alignment(const clora_gguf *file)
{
    return file ? (size_t)file->alignment : DEFAULT_ALIGNMENT;
}

uint64_t clora_gguf_file_size(const clora_gguf *file)
{
    return file ? file->size : 0;
}

uint64_t clora_gguf_data_offset(const clora_gguf *file)
{
    return file ? file->data_offset : 0;
}

/* ---- metadata ------------------------------------------------------------------------ */

size_t clora_gguf_metadata_count(const clora_gguf *file)
{
    return file ? file->entry_count : 0;
}

const char *clora_gguf_metadata_key(const clora_gguf *file, size_t index)
{
    return file && index < file->entry_count ? file->entries[index].key : NULL;
}

long clora_gguf_find(const clora_gguf *file, const char *key)
{
    if (!file || !key)
        return -1;
    const entry *e = find_entry(file, key);
    return e ? (long)(e - file->entries) : -1;
}

clora_gguf_value_type clora_gguf_metadata_type(const clora_gguf *file, size_t index)
{
    /* out of range: one past the last type, whose name is "unknown" */
    return file && index < file->entry_count ? file->entries[index].value.type
                                             : (clora_gguf_value_type)(CLORA_GGUF_FLOAT64 + 1);
}

static const value *find_value(const clora_gguf *file, const char *key)
{
    const entry *e = file && key ? find_entry(file, key) : NULL;
    return e ? &e->value : NULL;
}

static int scalar_number(const clora_gguf *file, const char *key, number *n)
{
    const value *v = find_value(file, key);
    return v && decode_number(v->type, v->as.scalar, n);
}

int clora_gguf_get_u64(const clora_gguf *file, const char *key, uint64_t *out)
{
    number n;
    return out && scalar_number(file, key, &n) && number_u64(&n, out);
}

int clora_gguf_get_i64(const clora_gguf *file, const char *key, int64_t *out)
{
    number n;
    return out && scalar_number(file, key, &n) && number_i64(&n, out);
}

int clora_gguf_get_f64(const clora_gguf *file, const char *key, double *out)
{
    number n;
    if (!out || !scalar_number(file, key, &n))
        return 0;
    *out = n.f;
    return 1;
}

int clora_gguf_get_bool(const clora_gguf *file, const char *key, int *out)
{
    number n;
    uint64_t u;
    if (!out || !scalar_number(file, key, &n) || n.kind == FLOATING || !number_u64(&n, &u) ||
        u > 1)
        return 0;
    *out = (int)u;
    return 1;
}

const char *clora_gguf_get_string(const clora_gguf *file, const char *key, size_t *length)
{
    const value *v = find_value(file, key);
    if (!v || v->type != CLORA_GGUF_STRING)
        return NULL;
    if (length)
        *length = (size_t)v->as.string.length;
    return v->as.string.bytes;
}

int clora_gguf_get_array(const clora_gguf *file, const char *key,
                         clora_gguf_value_type *element_type, size_t *length)
{
    const value *v = find_value(file, key);
    if (!v || v->type != CLORA_GGUF_ARRAY)
        return 0;
    if (element_type)
        *element_type = v->as.array.type;
    if (length)
        *length = (size_t)v->as.array.count;
    return 1;
}

static int array_number(const clora_gguf *file, const char *key, size_t i, number *n)
{
    const value *v = find_value(file, key);
    if (!v || v->type != CLORA_GGUF_ARRAY || !v->as.array.numbers || i >= v->as.array.count)
        return 0;
    const size_t size = scalar_size(v->as.array.type);
    return decode_number(v->as.array.type, v->as.array.numbers + i * size, n);
}

int clora_gguf_array_u64(const clora_gguf *file, const char *key, size_t i, uint64_t *out)
{
    number n;
    return out && array_number(file, key, i, &n) && number_u64(&n, out);
}

int clora_gguf_array_i64(const clora_gguf *file, const char *key, size_t i, int64_t *out)
{
    number n;
    return out && array_number(file, key, i, &n) && number_i64(&n, out);
}

int clora_gguf_array_f64(const clora_gguf *file, const char *key, size_t i, double *out)
{
    number n;
    if (!out || !array_number(file, key, i, &n))
        return 0;
    *out = n.f;
    return 1;
}

const char *clora_gguf_array_string(const clora_gguf *file, const char *key, size_t i,
                                    size_t *length)
{
    const value *v = find_value(file, key);
    if (!v || v->type != CLORA_GGUF_ARRAY || v->as.array.type != CLORA_GGUF_STRING ||
        i >= v->as.array.count)
        return NULL;
    const uint64_t *starts = v->as.array.starts;
    if (length)
        *length = (size_t)(starts[i + 1] - starts[i] - 1);
    return v->as.array.strings + starts[i];
}

/* ---- tensors ------------------------------------------------------------------------- */

size_t clora_gguf_tensor_count(const clora_gguf *file)
{
    return file ? file->tensor_count : 0;
}

int clora_gguf_tensor_info(const clora_gguf *file, size_t index, clora_gguf_tensor *out)
{
    if (!file || !out || index >= file->tensor_count)
        return 0;
    *out = file->tensors[index].info;
    return 1;
}

long clora_gguf_find_tensor(const clora_gguf *file, const char *name)
{
    return file && name ? find_named(file->names, file->tensor_count, name) : -1;
}

const char *clora_gguf_tensor_type_name(clora_gguf_tensor_type type)
{
    const clora__quant_type *q = clora__quant_find((uint32_t)type);
    return q ? q->name : "unknown";
}

int clora_gguf_type_supported(clora_gguf_tensor_type type)
{
    const clora__quant_type *q = clora__quant_find((uint32_t)type);
    return q && q->readable;
}

/* The tensor `index` of a call named `call`, after the argument checks. */
static clora_status tensor_at(const clora_gguf *file, size_t index, const void *dst,
                              const char *call, const tensor **out)
{
    if (!file || (!dst && index < file->tensor_count && file->tensors[index].info.bytes > 0))
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: %s is NULL", call,
                           file ? "dst" : "file");
    if (index >= file->tensor_count)
        return clora__fail(CLORA_ERR_NOT_FOUND, "%s: no tensor %zu (the file has %zu)",
                           file->name, index, file->tensor_count);
    *out = &file->tensors[index];
    return CLORA_OK;
}

clora_status clora_gguf_read_raw(const clora_gguf *file, size_t index, void *dst)
{
    const tensor *t = NULL;
    clora_status status = tensor_at(file, index, dst, "clora_gguf_read_raw", &t);
    if (status != CLORA_OK)
        return status;
    if (t->info.bytes > SIZE_MAX)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: tensor \"%s\": %llu bytes",
                           file->name, t->info.name, (unsigned long long)t->info.bytes);
    return read_at(file, t->info.offset, dst, t->info.bytes);
}

clora_status clora_gguf_read_f32(const clora_gguf *file, size_t index, float *dst)
{
    const tensor *t = NULL;
    clora_status status = tensor_at(file, index, dst, "clora_gguf_read_f32", &t);
    if (status != CLORA_OK)
        return status;
    const clora__quant_type *type = t->type;
    if (!type->readable)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: tensor \"%s\" is %s, which clora cannot dequantize (it reads "
                           "F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q4_K, Q5_K and Q6_K)",
                           file->name, t->info.name, type->name);
    if (t->info.elements > SIZE_MAX / sizeof(float))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: tensor \"%s\": %llu elements",
                           file->name, t->info.name, (unsigned long long)t->info.elements);
    const uint64_t blocks = t->info.elements / type->block;
    if (file->fd < 0) {
        clora__quant_dequantize(dst, file->memory + t->info.offset, type, (size_t)t->info.elements);
        return CLORA_OK;
    }
    /* A bounded staging buffer, whole blocks at a time. */
    uint64_t per_chunk = STAGING_BYTES / type->bytes;
    if (per_chunk > blocks)
        per_chunk = blocks;
    unsigned char *staging = clora__malloc(per_chunk ? (size_t)(per_chunk * type->bytes) : 1);
    if (!staging)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "%s: tensor \"%s\"", file->name,
                           t->info.name);
    for (uint64_t done = 0; done < blocks && status == CLORA_OK; done += per_chunk) {
        const uint64_t n = blocks - done < per_chunk ? blocks - done : per_chunk;
        status = read_at(file, t->info.offset + done * type->bytes, staging, n * type->bytes);
        if (status == CLORA_OK)
            clora__quant_dequantize(dst + done * type->block, staging, type,
                                    (size_t)(n * type->block));
    }
    free(staging);
    return status;
}

int clora_gguf_probe(const char *path)
{
    struct stat st;
    if (!path || stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    const size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf"))
        return 1;
    char magic[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    const size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    return got == 4 && !memcmp(magic, "GGUF", 4);
}
