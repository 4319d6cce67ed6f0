/* gguf_model.c — Llama-family models from GGUF files (architectures
 * "llama" and "qwen2"): the hyper-parameters from the <arch>.* metadata,
 * the tensors, one at a time, placed under Hugging
 * Face's names, so that PEFT adapters trained on the Hugging Face model
 * apply unchanged. Weights stay in the file's types by default (packed on
 * the device, byte for byte), or load as float32 or another packed type
 * (clora_load_options):
 *
 *   token_embd            model.embed_tokens
 *   blk.N.attn_norm       model.layers.N.input_layernorm
 *   blk.N.attn_q/k/v      model.layers.N.self_attn.q_proj/k_proj/v_proj
 *   blk.N.attn_output     model.layers.N.self_attn.o_proj
 *   blk.N.ffn_norm        model.layers.N.post_attention_layernorm
 *   blk.N.ffn_gate/up/down  model.layers.N.mlp.gate_proj/up_proj/down_proj
 *   output_norm           model.norm
 *   output                lm_head (absent: tied to token_embd)
 *   rope_freqs            divisors of the rotary frequencies (Llama 3.1's scaling)
 *
 * llama.cpp's converter reorders the rows of the Q and K projections of
 * "llama" files for its own rotary layout: within each head of D rows, Hugging
 * Face's row s·D/2 + i is the file's row 2i + s. Loading undoes that.
 * "qwen2" files keep Hugging Face's order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn.h"

typedef struct gguf_source {
    const clora_gguf *file;
    const char *path;
    const char *arch; /* "llama" or "qwen2" */
    int permuted;     /* Q and K rows in llama.cpp's rotary order */
    size_t heads, kv_heads, head_dim;
    float freq_factors[512]; /* rope_freqs.weight, when the file has it */
} gguf_source;

/* <arch>.<key> as an unsigned integer; `fallback` (0: required) when absent. */
static clora_status arch_count(const gguf_source *src, const char *key, uint64_t fallback,
                               size_t *out)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", src->arch, key);
    uint64_t v = 0;
    if (clora_gguf_get_u64(src->file, full, &v) && v > 0 && v < ((uint64_t)1 << 31)) {
        *out = (size_t)v;
        return CLORA_OK;
    }
    if (clora_gguf_find(src->file, full) < 0 && fallback) {
        *out = (size_t)fallback;
        return CLORA_OK;
    }
    return clora__fail(CLORA_ERR_FORMAT, "%s: %s %s", src->path, full,
                       clora_gguf_find(src->file, full) < 0 ? "is missing"
                                                             : "is not a positive integer");
}

static clora_status arch_float(const gguf_source *src, const char *key, double fallback,
                               float *out)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", src->arch, key);
    double v = fallback;
    if (clora_gguf_find(src->file, full) >= 0 && !clora_gguf_get_f64(src->file, full, &v))
        return clora__fail(CLORA_ERR_FORMAT, "%s: %s is not a number", src->path, full);
    *out = (float)v;
    return CLORA_OK;
}

/* The GGUF name of a model parameter ("" when none), by Hugging Face's. */
static int gguf_name(const char *param, char *out, size_t size)
{
    static const struct {
        const char *hf, *gguf;
    } parts[] = {
        {"input_layernorm.weight", "attn_norm.weight"},
        {"self_attn.q_proj.weight", "attn_q.weight"},
        {"self_attn.q_proj.bias", "attn_q.bias"},
        {"self_attn.k_proj.weight", "attn_k.weight"},
        {"self_attn.k_proj.bias", "attn_k.bias"},
        {"self_attn.v_proj.weight", "attn_v.weight"},
        {"self_attn.v_proj.bias", "attn_v.bias"},
        {"self_attn.o_proj.weight", "attn_output.weight"},
        {"self_attn.o_proj.bias", "attn_output.bias"},
        {"post_attention_layernorm.weight", "ffn_norm.weight"},
        {"mlp.gate_proj.weight", "ffn_gate.weight"},
        {"mlp.gate_proj.bias", "ffn_gate.bias"},
        {"mlp.up_proj.weight", "ffn_up.weight"},
        {"mlp.up_proj.bias", "ffn_up.bias"},
        {"mlp.down_proj.weight", "ffn_down.weight"},
        {"mlp.down_proj.bias", "ffn_down.bias"},
    };
    if (!strcmp(param, "model.embed_tokens.weight"))
        return snprintf(out, size, "token_embd.weight") < (int)size;
    if (!strcmp(param, "model.norm.weight"))
        return snprintf(out, size, "output_norm.weight") < (int)size;
    if (!strcmp(param, "lm_head.weight"))
        return snprintf(out, size, "output.weight") < (int)size;
    unsigned layer = 0;
    int used = 0;
    if (sscanf(param, "model.layers.%u.%n", &layer, &used) != 1 || used == 0)
        return 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; ++i)
        if (!strcmp(param + used, parts[i].hf))
            return snprintf(out, size, "blk.%u.%s", layer, parts[i].gguf) < (int)size;
    return 0;
}

/* Rows of a Q or K projection (and its bias) back in Hugging Face's order,
 * on rows of `row_bytes` bytes (packed rows move whole). */
static clora_status unpermute_bytes(unsigned char *data, size_t heads, size_t D, size_t row_bytes)
{
    unsigned char *copy = clora__malloc(heads * D * row_bytes);
    if (!copy)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "reordering rows");
    memcpy(copy, data, heads * D * row_bytes);
    const size_t half = D / 2;
    for (size_t h = 0; h < heads; ++h)
        for (size_t s = 0; s < 2; ++s)
            for (size_t i = 0; i < half; ++i)
                memcpy(data + (h * D + s * half + i) * row_bytes,
                       copy + (h * D + 2 * i + s) * row_bytes, row_bytes);
    free(copy);
    return CLORA_OK;
}

/* Packed rows checked finite a row at a time (no float32 copy of the
 * whole tensor). */
static clora_status check_packed_finite(const gguf_source *src, const char *tensor,
                                        clora_dtype dtype, const unsigned char *bytes,
                                        size_t rows, size_t cols)
{
    float *row = clora__malloc(cols * sizeof *row);
    if (!row)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "checking %s", tensor);
    const size_t row_bytes = clora_dtype_bytes(dtype, cols);
    clora_status status = CLORA_OK;
    for (size_t r = 0; r < rows && status == CLORA_OK; ++r) {
        clora__dequantize(dtype, bytes + r * row_bytes, cols, row);
        status = clora__check_finite(src->path, tensor, row, cols);
    }
    free(row);
    return status;
}

/* Tensor `index` (check_source has checked its shape and type against
 * the parameter) checked finite, Q and K rows reordered, and uploaded: its
 * bytes as they are when the parameter is stored in the tensor's type,
 * else its values as float32 (quantized again for another packed type). */
static clora_status read_param(const gguf_source *src, long index, const clora_param_info *info,
                               const char *tensor)
{
    clora_gguf_tensor t;
    clora_gguf_tensor_info(src->file, (size_t)index, &t);
    const clora__quant_type *type = clora__quant_find(t.type);
    const clora_dtype stored = clora_buffer_dtype(info->value);
    const int raw = clora_dtype_is_packed(stored) && type && type->dtype == stored;
    float *host = raw ? NULL : clora__malloc((size_t)t.elements * sizeof *host);
    unsigned char *bytes = raw ? clora__malloc((size_t)t.bytes) : NULL;
    if (raw ? !bytes : !host)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "loading %s", tensor);
    /* values per row: of a weight, or one (a bias's rows are its values) */
    const size_t cols = t.ndim == 2 ? (size_t)t.dims[0] : 1;
    clora_status status = raw ? clora_gguf_read_raw(src->file, (size_t)index, bytes)
                              : clora_gguf_read_f32(src->file, (size_t)index, host);
    if (status == CLORA_OK && raw)
        status = check_packed_finite(src, tensor, stored, bytes, (size_t)t.elements / cols, cols);
    else if (status == CLORA_OK)
        status = clora__check_finite(src->path, tensor, host, (size_t)t.elements);
    const int is_q = strstr(info->name, ".q_proj.") != NULL;
    const int is_k = strstr(info->name, ".k_proj.") != NULL;
    if (status == CLORA_OK && src->permuted && (is_q || is_k)) {
        const size_t heads = is_q ? src->heads : src->kv_heads;
        status = raw ? unpermute_bytes(bytes, heads, src->head_dim, clora_dtype_bytes(stored, cols))
                     : unpermute_bytes((unsigned char *)host, heads, src->head_dim,
                                       cols * sizeof *host);
    }
    if (status == CLORA_OK && raw)
        status = clora_buffer_upload_bytes(info->value, 0, bytes, (size_t)t.bytes);
    else if (status == CLORA_OK)
        status = clora__upload_values(info->value, host, tensor);
    free(bytes);
    free(host);
    return status;
}

/* The storage plan of a GGUF file: each frozen weight in its tensor's own
 * type (base_dtype CLORA_DTYPE_AS_STORED), or as base_dtype where its rows
 * are whole blocks of it. */
typedef struct gguf_storage {
    const gguf_source *src;
    clora_dtype base_dtype;
} gguf_storage;

static clora_dtype storage_of(const clora_model *model, const char *name, const size_t *shape,
                              void *user)
{
    const gguf_storage *plan = user;
    if (plan->base_dtype != CLORA_DTYPE_AS_STORED)
        return clora__storage_uniform(model, name, shape, (void *)&plan->base_dtype);
    char tensor[256];
    clora_gguf_tensor t;
    const long index = gguf_name(name, tensor, sizeof tensor)
                           ? clora_gguf_find_tensor(plan->src->file, tensor)
                           : -1;
    if (index < 0 || !clora_gguf_tensor_info(plan->src->file, (size_t)index, &t))
        return CLORA_DTYPE_F32;
    const clora__quant_type *type = clora__quant_find(t.type);
    return type && type->readable && clora_dtype_is_packed(type->dtype) ? type->dtype
                                                                         : CLORA_DTYPE_F32;
}

/* The model's hyper-parameters from the metadata. */
static clora_status read_config(gguf_source *src, clora_llama_config *c)
{
    *c = clora_llama_config_default();
    size_t rope_dims = 0, key_length = 0, value_length = 0;
    clora_status status;
    if ((status = arch_count(src, "embedding_length", 0, &c->hidden_size)) ||
        (status = arch_count(src, "block_count", 0, &c->num_hidden_layers)) ||
        (status = arch_count(src, "feed_forward_length", 0, &c->intermediate_size)) ||
        (status = arch_count(src, "attention.head_count", 0, &c->num_attention_heads)) ||
        (status = arch_count(src, "attention.head_count_kv", c->num_attention_heads,
                             &c->num_key_value_heads)) ||
        (status = arch_float(src, "attention.layer_norm_rms_epsilon", 1e-5, &c->rms_norm_eps)) ||
        (status = arch_float(src, "rope.freq_base", 10000.0, &c->rope_theta)))
        return status;
    const size_t natural = c->hidden_size / c->num_attention_heads;
    if ((status = arch_count(src, "attention.key_length", natural, &key_length)) ||
        (status = arch_count(src, "attention.value_length", key_length, &value_length)) ||
        (status = arch_count(src, "rope.dimension_count", key_length, &rope_dims)))
        return status;
    if (key_length != value_length || rope_dims != key_length)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: keys of %zu, values of %zu and rotary dimensions %zu; clora's "
                           "attention rotates whole heads of one size",
                           src->path, key_length, value_length, rope_dims);
    c->head_dim = key_length;
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", src->arch);
    const char *scaling = clora_gguf_get_string(src->file, key, NULL);
    if (scaling && strcmp(scaling, "none") != 0)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: rope scaling \"%s\"; clora computes unscaled rotary embeddings "
                           "from GGUF files",
                           src->path, scaling);
    const long freqs = clora_gguf_find_tensor(src->file, "rope_freqs.weight");
    if (freqs >= 0) { /* Llama 3.1's rope scaling, as divisors of each frequency */
        clora_gguf_tensor t;
        clora_gguf_tensor_info(src->file, (size_t)freqs, &t);
        if (t.ndim != 1 || t.elements != c->head_dim / 2 || t.elements > 512)
            return clora__fail(CLORA_ERR_FORMAT,
                               "%s: tensor \"rope_freqs.weight\" has %llu values; heads of %zu "
                               "need %zu",
                               src->path, (unsigned long long)t.elements, c->head_dim,
                               c->head_dim / 2);
        if ((status = clora_gguf_read_f32(src->file, (size_t)freqs, src->freq_factors)))
            return status;
        c->rope_freq_factors = src->freq_factors;
    }
    const long embed = clora_gguf_find_tensor(src->file, "token_embd.weight");
    clora_gguf_tensor t;
    if (embed < 0 || !clora_gguf_tensor_info(src->file, (size_t)embed, &t) || t.ndim != 2)
        return clora__fail(CLORA_ERR_FORMAT, "%s: no 2-D tensor \"token_embd.weight\"", src->path);
    c->vocab_size = (size_t)t.dims[1];
    c->tie_word_embeddings = clora_gguf_find_tensor(src->file, "output.weight") < 0;
    c->qkv_bias = clora_gguf_find_tensor(src->file, "blk.0.attn_q.bias") >= 0;
    c->o_bias = clora_gguf_find_tensor(src->file, "blk.0.attn_output.bias") >= 0;
    c->mlp_bias = clora_gguf_find_tensor(src->file, "blk.0.ffn_up.bias") >= 0;
    src->heads = c->num_attention_heads;
    src->kv_heads = c->num_key_value_heads;
    src->head_dim = c->head_dim;
    return CLORA_OK;
}

/* Every parameter from its tensor; check_source has matched the two sets. */
static clora_status load_tensors(clora_model *model, const gguf_source *src)
{
    size_t count = 0;
    clora_status status = clora_model_params(model, &count);
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        clora_param_info info;
        char name[256];
        if ((status = clora_model_param(model, i, &info)))
            break;
        if (!gguf_name(info.name, name, sizeof name)) {
            status = clora__fail(CLORA_ERR_STATE, "%s: parameter %s has no GGUF name", src->path,
                                 info.name);
            break;
        }
        const long index = clora_gguf_find_tensor(src->file, name);
        if (index < 0) {
            status = clora__fail(CLORA_ERR_FORMAT, "%s: no tensor \"%s\" for parameter %s",
                                 src->path, name, info.name);
            break;
        }
        status = read_param(src, index, &info, name);
    }
    return status;
}

/* The file against the model its metadata describes, before anything is
 * built: each planned parameter's tensor present, of its shape and of a
 * type clora reads; every tensor used. */
typedef struct plan_check {
    const gguf_source *src;
    char *used;
    clora_status status;
} plan_check;

static int check_planned(const char *name, size_t ndim, const size_t *shape, void *user)
{
    plan_check *p = user;
    const gguf_source *src = p->src;
    char tensor[256];
    if (!gguf_name(name, tensor, sizeof tensor)) {
        p->status = clora__fail(CLORA_ERR_STATE, "%s: parameter %s has no GGUF name", src->path,
                                name);
        return 0;
    }
    const long index = clora_gguf_find_tensor(src->file, tensor);
    clora_gguf_tensor t;
    if (index < 0 || !clora_gguf_tensor_info(src->file, (size_t)index, &t)) {
        p->status = clora__fail(CLORA_ERR_FORMAT, "%s: no tensor \"%s\" for parameter %s",
                                src->path, tensor, name);
        return 0;
    }
    p->used[index] = 1;
    int same = t.ndim == ndim;
    for (size_t d = 0; same && d < ndim; ++d)
        same = t.dims[ndim - 1 - d] == shape[d];
    if (!same) {
        char want[64] = "(";
        for (size_t d = 0; d < ndim; ++d)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%zu", d ? ", " : "",
                     shape[d]);
        strncat(want, ")", sizeof want - strlen(want) - 1);
        p->status = clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                                "%s: tensor \"%s\" has %zu dimensions / %llu elements; parameter "
                                "%s is %s",
                                src->path, tensor, t.ndim, (unsigned long long)t.elements, name,
                                want);
        return 0;
    }
    if (!clora_gguf_type_supported(t.type)) {
        p->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                "%s: tensor \"%s\" is stored as %s, which clora does not read",
                                src->path, tensor, clora_gguf_tensor_type_name(t.type));
        return 0;
    }
    return 1;
}

/* The architecture, the config, and the tensors against the plan. */
static clora_status check_source(gguf_source *src, clora_llama_config *config)
{
    src->arch = clora_gguf_get_string(src->file, "general.architecture", NULL);
    if (!src->arch || (strcmp(src->arch, "llama") != 0 && strcmp(src->arch, "qwen2") != 0))
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "%s: general.architecture \"%s\"; clora loads \"llama\" and \"qwen2\" "
                           "GGUF files",
                           src->path, src->arch ? src->arch : "(missing)");
    src->permuted = !strcmp(src->arch, "llama");
    clora_status status = read_config(src, config);
    if (status == CLORA_OK)
        status = clora__llama_config_check(config);
    if (status != CLORA_OK)
        return status;
    const size_t tensors = clora_gguf_tensor_count(src->file);
    plan_check p = {src, clora__calloc(tensors ? tensors : 1, 1), CLORA_OK};
    if (!p.used)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "checking %s", src->path);
    const long freqs = clora_gguf_find_tensor(src->file, "rope_freqs.weight");
    if (freqs >= 0)
        p.used[freqs] = 1; /* read into the config */
    clora__llama_params(config, check_planned, &p);
    for (size_t t = 0; t < tensors && p.status == CLORA_OK; ++t) {
        clora_gguf_tensor info;
        clora_gguf_tensor_info(src->file, t, &info);
        if (!p.used[t])
            p.status = clora__fail(CLORA_ERR_FORMAT,
                                   "%s: tensor \"%s\" matches no parameter of the model",
                                   src->path, info.name);
    }
    free(p.used);
    return p.status;
}

/* Opens `path` and checks it (check_source); the file stays open in
 * *file only when the check passes. */
static clora_status open_checked(const char *path, clora_gguf **file, gguf_source *src,
                                 clora_llama_config *config)
{
    clora_status status = clora_gguf_open(file, path);
    if (status != CLORA_OK)
        return status;
    memset(src, 0, sizeof *src);
    src->file = *file;
    src->path = path;
    if ((status = check_source(src, config)) != CLORA_OK) {
        clora_gguf_close(*file);
        *file = NULL;
    }
    return status;
}

clora_status clora_model_check_gguf(const char *path)
{
    if (!path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_check_gguf: path is NULL");
    clora_gguf *file = NULL;
    gguf_source src;
    clora_llama_config config;
    clora_status status = open_checked(path, &file, &src, &config);
    clora_gguf_close(file);
    return status;
}

clora_status clora_model_load_gguf(clora_model **out, clora_device *device, const char *path)
{
    return clora__model_load_gguf(out, device, path, CLORA_DTYPE_AS_STORED);
}

clora_status clora__model_load_gguf(clora_model **out, clora_device *device, const char *path,
                                    clora_dtype base_dtype)
{
    if (!out || !device || !path)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_load_gguf: NULL argument");
    *out = NULL;
    clora_gguf *file = NULL;
    gguf_source src;
    clora_llama_config config;
    clora_model *model = NULL;
    /* checked before anything is allocated */
    clora_status status = open_checked(path, &file, &src, &config);
    gguf_storage plan = {&src, base_dtype};
    const clora__storage storage = {storage_of, &plan};
    if (status == CLORA_OK) {
        clora__storage_set(&storage);
        status = clora__llama_create(&model, device, &config, 0, 1);
        clora__storage_set(NULL);
    }
    if (status == CLORA_OK)
        status = load_tensors(model, &src);
    clora_gguf_close(file);
    if (status != CLORA_OK) {
        clora_model_destroy(model);
        return status;
    }
    *out = model;
    return CLORA_OK;
}
