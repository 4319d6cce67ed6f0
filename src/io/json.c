/* json.c — JSON files as clora reads them (jansson, duplicate keys
 * rejected, the top level an object), and typed fields with messages that
 * name the file and the key. */
#include <jansson.h>
#include <stdlib.h>

#include "io/io.h"

clora_status clora__read_json(const char *path, json_t **out)
{
    return clora__read_json_flags(path, 0, out);
}

clora_status clora__read_json_flags(const char *path, size_t flags, json_t **out)
{
    char *text = NULL;
    size_t size = 0;
    clora_status status = clora__read_file(path, &text, &size);
    if (status != CLORA_OK)
        return status;
    json_error_t error;
    *out = json_loadb(text, size, JSON_REJECT_DUPLICATES | flags, &error);
    free(text);
    if (!*out)
        return clora__fail(CLORA_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path,
                           error.text, error.line, error.column);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        return clora__fail(CLORA_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    }
    return CLORA_OK;
}

size_t clora__json_count(clora__json_fields *r, const char *key, size_t fallback)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK)
        return 0;
    if ((!v || json_is_null(v)) && fallback)
        return fallback;
    if (!json_is_integer(v) || json_integer_value(v) <= 0) {
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be a positive integer", r->path,
                                key);
        return 0;
    }
    return (size_t)json_integer_value(v);
}

float clora__json_float(clora__json_fields *r, const char *key, float fallback)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK || !v || json_is_null(v))
        return fallback;
    if (!json_is_number(v)) {
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be a number", r->path, key);
        return fallback;
    }
    return (float)json_number_value(v);
}

void clora__json_require_bool(clora__json_fields *r, const char *key, int supported)
{
    json_t *v = json_object_get(r->json, key);
    if (r->status != CLORA_OK || !v || json_is_null(v))
        return;
    if (!json_is_boolean(v))
        r->status = clora__fail(CLORA_ERR_FORMAT, "%s: \"%s\" must be true or false", r->path, key);
    else if (json_is_true(v) != supported)
        r->status = clora__fail(CLORA_ERR_UNSUPPORTED, "%s: clora supports only \"%s\": %s",
                                r->path, key, supported ? "true" : "false");
}

int clora__json_get_size(json_t *object, const char *key, size_t *out)
{
    json_t *v = json_object_get(object, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return 0;
    *out = (size_t)json_integer_value(v);
    return 1;
}
