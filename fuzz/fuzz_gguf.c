/* fuzz_gguf.c — a GGUF file from a stranger: opened from memory, every
 * metadata value and array element read, every tensor of a type clora
 * reads dequantized; and the same bytes from a file as a tokenizer. */
#include <stdlib.h>
#include <string.h>

#include "clora/gguf.h"
#include "clora/tokenizer.h"
#include "fuzz.h"

#define MAX_ELEMENTS (1u << 20)

static void read_metadata(const clora_gguf *file)
{
    for (size_t i = 0; i < clora_gguf_metadata_count(file); ++i) {
        const char *key = clora_gguf_metadata_key(file, i);
        if (!key)
            continue;
        clora_gguf_find(file, key);
        uint64_t u;
        int64_t s;
        double f;
        int b;
        size_t length;
        clora_gguf_get_u64(file, key, &u);
        clora_gguf_get_i64(file, key, &s);
        clora_gguf_get_f64(file, key, &f);
        clora_gguf_get_bool(file, key, &b);
        clora_gguf_get_string(file, key, &length);
        clora_gguf_value_type type;
        if (clora_gguf_get_array(file, key, &type, &length))
            for (size_t k = 0; k < length && k < 4096; ++k) {
                size_t n;
                clora_gguf_array_u64(file, key, k, &u);
                clora_gguf_array_i64(file, key, k, &s);
                clora_gguf_array_f64(file, key, k, &f);
                clora_gguf_array_string(file, key, k, &n);
            }
    }
}

static void read_tensors(const clora_gguf *file)
{
    for (size_t i = 0; i < clora_gguf_tensor_count(file); ++i) {
        clora_gguf_tensor t;
        if (!clora_gguf_tensor_info(file, i, &t))
            continue;
        clora_gguf_find_tensor(file, t.name);
        if (t.elements > MAX_ELEMENTS || t.bytes > 4 * MAX_ELEMENTS)
            continue;
        float *values = malloc((size_t)(t.elements ? t.elements : 1) * sizeof *values);
        void *raw = malloc((size_t)(t.bytes ? t.bytes : 1));
        if (values && clora_gguf_type_supported(t.type))
            clora_gguf_read_f32(file, i, values);
        if (raw)
            clora_gguf_read_raw(file, i, raw);
        free(values);
        free(raw);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clora_gguf *file = NULL;
    if (clora_gguf_open_memory(&file, data, size, "fuzz.gguf") == CLORA_OK) {
        read_metadata(file);
        read_tensors(file);
    }
    clora_gguf_close(file);
    clora_tokenizer *tokenizer = NULL;
    if (clora_tokenizer_load_gguf(&tokenizer, fuzz_write(0, "fuzz.gguf", data, size)) ==
        CLORA_OK) {
        int32_t *ids = NULL;
        size_t count = 0;
        if (clora_tokenizer_encode_text(tokenizer, "Hello, world! 123 <|im_end|>", 1, &ids,
                                        &count) == CLORA_OK) {
            char *text = NULL;
            size_t length = 0;
            clora_tokenizer_decode(tokenizer, ids, count, &text, &length);
            free(text);
        }
        free(ids);
        clora_tokenizer_destroy(tokenizer);
    }
    return 0;
}
