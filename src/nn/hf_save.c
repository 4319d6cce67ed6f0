/* hf_save.c — a model loaded from a Hugging Face folder, written back as
 * one that transformers loads (clora/hf_save.h): the source checkpoint's
 * names, the model's values, transformers' shards. The source folder is
 * the map: each parameter goes under the name the architecture's loader
 * found it by, and what the loader skipped is copied. */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clora/hf_save.h"
#include "nn/nn.h"

#define WEIGHTS_NAME "model.safetensors"
#define INDEX_NAME "model.safetensors.index.json"

/* Files of a Hugging Face folder that travel with the model unchanged. */
static const char *const companion_files[] = {
    "generation_config.json", "tokenizer.json",     "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "vocab.json",
    "merges.txt",             "vocab.txt",          "tokenizer.model",
    "chat_template.json",     "chat_template.jinja"};
#define COMPANION_COUNT (sizeof companion_files / sizeof companion_files[0])

clora_hf_save_options clora_hf_save_options_default(void)
{
    clora_hf_save_options o;
    memset(&o, 0, sizeof o);
    o.dtype = CLORA_DTYPE_AS_STORED;
    o.max_shard_bytes = CLORA_HF_SHARD_BYTES;
    return o;
}

/* The config of a Hugging Face folder, or NULL (no message kept). */
static json_t *hf_config(const char *dir)
{
    char path[4096];
    json_t *config = NULL;
    if (clora__join_path(path, sizeof path, dir, "config.json") != CLORA_OK ||
        clora__read_json(path, &config) != CLORA_OK)
        return NULL;
    if (json_object_get(config, "format") || !json_is_string(json_object_get(config, "model_type"))) {
        json_decref(config);
        return NULL;
    }
    return config;
}

int clora_hf_folder_probe(const char *dir)
{
    if (!dir)
        return 0;
    char saved[1024];
    snprintf(saved, sizeof saved, "%s", clora_last_error()); /* a probe keeps the message */
    json_t *config = hf_config(dir);
    clora__fail(CLORA_OK, "%s", saved);
    json_decref(config);
    return config != NULL;
}

/* ---- the tensors to write ---------------------------------------------------------------- */

/* One tensor of the new checkpoint. */
typedef struct hf_tensor {
    char *name;                 /* the source checkpoint's */
    const clora__param *param;  /* the model's value; NULL: copied from `source` */
    clora_tensor_view source;   /* the source's tensor (its shape, and what is copied) */
    clora_dtype dtype;          /* as written */
    uint64_t bytes;
    size_t shard;
} hf_tensor;

typedef struct hf_plan {
    clora_model *model;
    const clora__hf_architecture *arch;
    clora__checkpoint *file;
    const char *weights_path; /* the source's, for messages */
    clora_dtype dtype;        /* the options' */
    hf_tensor *tensors;
    size_t count, capacity;
    size_t labels;            /* rows of a classifier head the source lacks (0: none) */
    clora_status status;
} hf_plan;

static void plan_free(hf_plan *plan)
{
    for (size_t i = 0; i < plan->count; ++i)
        free(plan->tensors[i].name);
    free(plan->tensors);
    clora__checkpoint_close(plan->file);
}

/* The dtype a tensor stored as `stored` is written as. */
static clora_dtype written_dtype(const hf_plan *plan, clora_dtype stored)
{
    if (!clora_dtype_is_float(stored))
        return stored; /* integer buffers stay as they are */
    return plan->dtype != CLORA_DTYPE_AS_STORED ? plan->dtype : stored;
}

static clora_status plan_add(hf_plan *plan, const char *name, const clora__param *param,
                             const clora_tensor_view *source)
{
    if (plan->count == plan->capacity) {
        const size_t capacity = plan->capacity ? 2 * plan->capacity : 64;
        hf_tensor *grown = clora__realloc(plan->tensors, capacity * sizeof *grown);
        if (!grown)
            return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
        plan->tensors = grown;
        plan->capacity = capacity;
    }
    hf_tensor *t = &plan->tensors[plan->count];
    memset(t, 0, sizeof *t);
    if (!(t->name = clora__strdup(name)))
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s", name);
    t->param = param;
    t->source = *source;
    t->dtype = written_dtype(plan, source->dtype);
    t->bytes = (uint64_t)source->numel * (clora_dtype_bits(t->dtype) / 8);
    plan->count++;
    return CLORA_OK;
}

/* The source tensor of parameter `name` (the architecture's loader finds
 * it by the same candidates), marked used; 0 when there is none. */
static int find_source(hf_plan *plan, const char *name, clora_tensor_view *view)
{
    const clora__weight_names *names = &plan->arch->names;
    char candidate[4300];
    for (size_t c = 0;; ++c) {
        if (!names->candidate) {
            if (c > 0)
                return 0;
            snprintf(candidate, sizeof candidate, "%s", name);
        } else if (!names->candidate(plan->model, name, c, candidate, sizeof candidate)) {
            return 0;
        }
        if (clora__checkpoint_find(plan->file, candidate, view))
            return 1;
    }
}

static int same_shape(const clora__param *p, const clora_tensor_view *view)
{
    if (p->ndim != view->ndim)
        return 0;
    for (size_t d = 0; d < p->ndim; ++d)
        if (p->shape[d] != view->shape[d])
            return 0;
    return 1;
}

/* Whether parameter `name`, which the source lacks, is a head the loader
 * reads back under its own name when the file holds it and initialises
 * when not (BERT's "classifier" over mean pooling or a BertModel's
 * pooler: a merge of clora's mean-pooling classifier). */
static int is_head(const hf_plan *plan, const char *name)
{
    const clora__weight_names *names = &plan->arch->names;
    return names->optional && names->optional(plan->model, name);
}

/* A head the source lacks, written under its own name, as the float
 * tensors before it are written (they are the model's parameters). */
static clora_status plan_head(hf_plan *plan, const char *name, const clora__param *p)
{
    clora_dtype dtype = plan->dtype != CLORA_DTYPE_AS_STORED ? plan->dtype : CLORA_DTYPE_F32;
    for (size_t i = 0; i < plan->count && plan->dtype == CLORA_DTYPE_AS_STORED; ++i)
        if (clora_dtype_is_float(plan->tensors[i].dtype)) {
            dtype = plan->tensors[i].dtype;
            break;
        }
    const clora_tensor_view view = {.name = name, .dtype = dtype, .ndim = p->ndim,
                                    .shape = p->shape, .numel = p->numel};
    clora_status status = plan_add(plan, name, p, &view);
    if (status == CLORA_OK && !strcmp(name, "classifier.weight"))
        plan->labels = p->shape[0];
    return status;
}

/* Each parameter of the plain model (a LoRA node's base under the node's
 * name, as clora_model_save writes it), under its source name. */
static int plan_params(clora_node *node, const char *path, void *user)
{
    hf_plan *plan = user;
    if (node->kind->base)
        return 0; /* the adapter's own parameters: merged into the base, or refused before */
    char module[4096];
    snprintf(module, sizeof module, "%s", path);
    if (clora__is_base_layer(node)) {
        char *dot = strrchr(module, '.');
        *(dot ? dot : module) = '\0';
    }
    for (size_t i = 0; i < node->param_count && plan->status == CLORA_OK; ++i) {
        const clora__param *p = node->params[i];
        char name[4300];
        snprintf(name, sizeof name, "%s%s%s", module, *module ? "." : "", p->name);
        clora_tensor_view view;
        const int found = find_source(plan, name, &view);
        if (!found && is_head(plan, name))
            plan->status = plan_head(plan, name, p);
        else if (!found)
            plan->status = clora__fail(
                CLORA_ERR_UNSUPPORTED,
                "saving a Hugging Face folder: the model's parameter %s has no tensor in %s, so "
                "its Hugging Face name is not known (a head added to the model?); save it as a "
                "clora folder instead",
                name, plan->weights_path);
        else if (!same_shape(p, &view))
            plan->status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                       "saving a Hugging Face folder: parameter %s has another "
                                       "shape than \"%s\" in %s",
                                       name, view.name, plan->weights_path);
        else
            plan->status = plan_add(plan, view.name, p, &view);
    }
    return plan->status != CLORA_OK;
}

/* 1 when `tensor` names the weight of a Linear that the model ties to
 * another node's (saved once, under its owner, as transformers saves). */
typedef struct tied_walk {
    hf_plan *plan;
    const char *tensor;
    int found;
} tied_walk;

static int find_tied(clora_node *node, const char *path, void *user)
{
    tied_walk *walk = user;
    if (!node->tied)
        return 0;
    char name[4300], candidate[4300];
    snprintf(name, sizeof name, "%s.weight", path);
    const clora__weight_names *names = &walk->plan->arch->names;
    for (size_t c = 0; !walk->found; ++c) {
        if (!names->candidate) {
            if (c > 0)
                break;
            snprintf(candidate, sizeof candidate, "%s", name);
        } else if (!names->candidate(walk->plan->model, name, c, candidate, sizeof candidate)) {
            break;
        }
        walk->found = !strcmp(candidate, walk->tensor);
    }
    return walk->found;
}

/* The source tensors no parameter took: copied, but for tied weights. */
static clora_status plan_copies(hf_plan *plan)
{
    const size_t count = clora__checkpoint_count(plan->file);
    for (size_t t = 0; t < count; ++t) {
        const char *name = clora__checkpoint_unused(plan->file, t);
        if (!name)
            continue;
        tied_walk walk = {plan, name, 0};
        clora_model_visit(plan->model, find_tied, &walk);
        if (walk.found)
            continue;
        char copy[4300];
        snprintf(copy, sizeof copy, "%s", name); /* find marks it used */
        clora_tensor_view view;
        if (!clora__checkpoint_find(plan->file, copy, &view))
            return clora__fail(CLORA_ERR_FORMAT, "%s: tensor %s vanished", plan->weights_path,
                               copy);
        if (clora_dtype_bits(view.dtype) % 8 || !clora_dtype_bits(view.dtype))
            return clora__fail(CLORA_ERR_UNSUPPORTED, "%s: tensor %s is %s, which clora cannot copy",
                               plan->weights_path, copy, clora_dtype_name(view.dtype));
        clora_status status = plan_add(plan, copy, NULL, &view);
        if (status != CLORA_OK)
            return status;
    }
    return CLORA_OK;
}

/* ---- transformers' order ---------------------------------------------------------------------- */

/* clora's trees hold a block's parts in the order they compute; the
 * shards follow the order in which transformers' modules register their
 * parameters (its state_dict), which puts these parts of each block after
 * the others. */
typedef struct registration_order {
    const char *model_type;
    const char *blocks;     /* "<...>.layers.<i>." names a block */
    const char *late[3];    /* its parts that come last, in this order */
} registration_order;

static const registration_order registration_orders[] = {
    {"llama", ".layers.", {"input_layernorm.", "post_attention_layernorm.", NULL}},
    {"qwen2", ".layers.", {"input_layernorm.", "post_attention_layernorm.", NULL}},
    {"mistral", ".layers.", {"input_layernorm.", "post_attention_layernorm.", NULL}}};

/* The length of name's block prefix ("model.layers.3."), 0 if none. */
static size_t block_prefix(const char *name, const char *blocks)
{
    const char *at = strstr(name, blocks);
    if (!at)
        return 0;
    const char *p = at + strlen(blocks);
    const char *digits = p;
    while (*p >= '0' && *p <= '9')
        ++p;
    return p > digits && *p == '.' ? (size_t)(p + 1 - name) : 0;
}

typedef struct order_key {
    size_t group, late, index;
} order_key;

static int key_less(const order_key *a, const order_key *b)
{
    if (a->group != b->group)
        return a->group < b->group;
    if (a->late != b->late)
        return a->late < b->late;
    return a->index < b->index;
}

/* Reorders plan->tensors as transformers registers them (a stable
 * insertion sort: a few hundred tensors). */
static clora_status registration_sort(hf_plan *plan, const char *model_type)
{
    const registration_order *order = NULL;
    for (size_t i = 0; i < sizeof registration_orders / sizeof registration_orders[0]; ++i)
        if (!strcmp(registration_orders[i].model_type, model_type))
            order = &registration_orders[i];
    if (!order || plan->count < 2)
        return CLORA_OK;
    order_key *keys = clora__malloc(plan->count * sizeof *keys);
    if (!keys)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving a Hugging Face folder");
    for (size_t i = 0; i < plan->count; ++i) {
        const char *name = plan->tensors[i].name;
        const size_t len = block_prefix(name, order->blocks);
        keys[i] = (order_key){i, 0, i};
        for (size_t j = 0; len && j < i; ++j) /* the block's first tensor */
            if (!strncmp(plan->tensors[j].name, name, len) &&
                block_prefix(plan->tensors[j].name, order->blocks) == len) {
                keys[i].group = j;
                break;
            }
        for (size_t k = 0; len && k < 3 && order->late[k]; ++k)
            if (clora__starts_with(name + len, order->late[k]))
                keys[i].late = k + 1;
    }
    for (size_t i = 1; i < plan->count; ++i)
        for (size_t j = i; j > 0 && key_less(&keys[j], &keys[j - 1]); --j) {
            const order_key k = keys[j];
            keys[j] = keys[j - 1];
            keys[j - 1] = k;
            const hf_tensor t = plan->tensors[j];
            plan->tensors[j] = plan->tensors[j - 1];
            plan->tensors[j - 1] = t;
        }
    free(keys);
    return CLORA_OK;
}

/* ---- shards: transformers' split ------------------------------------------------------------ */

/* Assigns each tensor its shard as huggingface_hub's split (transformers
 * 4.49) does: a tensor over the limit is a shard of its own at once; the
 * others fill the open shard, which is closed (numbered) when the next
 * would pass the limit. Returns the shard count. */
static size_t assign_shards(hf_plan *plan, uint64_t limit)
{
    size_t shards = 0, open_first = 0, open_count = 0;
    uint64_t open_bytes = 0;
    for (size_t i = 0; i < plan->count; ++i) {
        hf_tensor *t = &plan->tensors[i];
        if (t->bytes > limit) {
            t->shard = shards++;
            continue;
        }
        if (open_count && open_bytes + t->bytes > limit) {
            for (size_t k = open_first; k < i; ++k)
                if (plan->tensors[k].bytes <= limit)
                    plan->tensors[k].shard = shards;
            ++shards;
            open_count = 0;
            open_bytes = 0;
        }
        if (!open_count)
            open_first = i;
        ++open_count;
        open_bytes += t->bytes;
    }
    if (open_count) {
        for (size_t k = open_first; k < plan->count; ++k)
            if (plan->tensors[k].bytes <= limit)
                plan->tensors[k].shard = shards;
        ++shards;
    }
    return shards ? shards : 1;
}

/* ---- values ------------------------------------------------------------------------------- */

/* Adds tensor t to the writer in its written dtype. */
static clora_status add_tensor(clora_safetensors_writer *writer, const hf_tensor *t)
{
    const clora_tensor_view *v = &t->source;
    if (!t->param && t->dtype == v->dtype) /* a copy as it was */
        return clora_safetensors_writer_add(writer, t->name, v->dtype, v->ndim, v->shape,
                                            v->data);
    const size_t n = v->numel;
    float *host = clora__malloc((n ? n : 1) * sizeof *host);
    void *out = t->dtype == CLORA_DTYPE_F32 ? (void *)host : clora__malloc(n ? 8 * n : 1);
    clora_status status = host && out ? CLORA_OK
                                      : clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving %s",
                                                    t->name);
    if (status == CLORA_OK)
        status = t->param ? clora__download_values(t->param->value, host)
                          : clora_tensor_to_f32(v, host);
    for (size_t i = 0; i < n && status == CLORA_OK; ++i)
        if (!isfinite(host[i]) || (t->dtype == CLORA_DTYPE_F16 && fabsf(host[i]) > 65504.0f))
            status = clora__fail(CLORA_ERR_NON_FINITE,
                                 "%s: value %zu (%g) is beyond what %s holds", t->name, i,
                                 (double)host[i], clora_dtype_name(t->dtype));
    if (status == CLORA_OK) {
        if (t->dtype == CLORA_DTYPE_F64)
            for (size_t i = n; i-- > 0;)
                ((double *)out)[i] = host[i];
        else if (t->dtype != CLORA_DTYPE_F32)
            clora__quantize(t->dtype, host, n, out);
        status = clora_safetensors_writer_add(writer, t->name, t->dtype, v->ndim, v->shape, out);
    }
    if (out != host)
        free(out);
    free(host);
    return status;
}

/* ---- the folder ------------------------------------------------------------------------------ */

/* Everything the save writes, owned until the files are in place. */
typedef struct hf_output {
    size_t shards;
    clora_safetensors_writer **writers;
    clora__chunk **chunks;
    size_t *chunk_counts;
    char **headers;
    unsigned char (*lengths)[8];
    char (*paths)[4096];        /* shards, then the index, config.json and companions */
    char *texts[COMPANION_COUNT + 2]; /* index, config, companions (NULL: none) */
    clora__chunk text_chunks[COMPANION_COUNT + 2];
    clora__file files[CLORA__COMMIT_MAX_FILES];
    size_t file_count;
    char removed[CLORA__COMMIT_MAX_FILES][4096];
    const char *removed_names[CLORA__COMMIT_MAX_FILES];
    size_t removed_count;
} hf_output;

static void output_free(hf_output *o)
{
    for (size_t s = 0; s < o->shards; ++s) {
        if (o->writers)
            clora_safetensors_writer_destroy(o->writers[s]);
        if (o->chunks)
            free(o->chunks[s]);
        if (o->headers)
            free(o->headers[s]);
    }
    free(o->writers);
    free(o->chunks);
    free(o->chunk_counts);
    free(o->headers);
    free(o->lengths);
    free(o->paths);
    for (size_t i = 0; i < COMPANION_COUNT + 2; ++i)
        free(o->texts[i]);
}

static const char *dtype_torch_name(clora_dtype dtype)
{
    return dtype == CLORA_DTYPE_F16    ? "float16"
           : dtype == CLORA_DTYPE_BF16 ? "bfloat16"
           : dtype == CLORA_DTYPE_F64  ? "float64"
                                       : "float32";
}

/* id2label and label2id for a classifier head of `labels` rows the source
 * lacks, named as transformers names labels it was not given ("LABEL_0"),
 * unless the config already has that many; num_labels too when it is there. */
static int set_labels(json_t *config, size_t labels)
{
    const json_t *names = json_object_get(config, "id2label");
    const json_t *count = json_object_get(config, "num_labels");
    if (json_is_object(names) ? json_object_size(names) == labels
                              : json_is_integer(count) && (size_t)json_integer_value(count) == labels)
        return 0;
    json_t *id2label = json_object(), *label2id = json_object();
    int bad = !id2label || !label2id;
    for (size_t i = 0; i < labels && !bad; ++i) {
        char id[24], name[32];
        snprintf(id, sizeof id, "%zu", i);
        snprintf(name, sizeof name, "LABEL_%zu", i);
        bad = json_object_set_new(id2label, id, json_string(name)) ||
              json_object_set_new(label2id, name, json_integer((json_int_t)i));
    }
    if (!bad)
        bad = json_object_set(config, "id2label", id2label) ||
              json_object_set(config, "label2id", label2id) ||
              (count && json_object_set_new(config, "num_labels", json_integer((json_int_t)labels)));
    json_decref(id2label);
    json_decref(label2id);
    return bad;
}

/* The source config with torch_dtype saying what the floats are written as
 * (kept when they differ among themselves), as transformers dumps it. */
static clora_status config_text(json_t *source, const hf_plan *plan, char **out)
{
    json_t *config = json_deep_copy(source);
    int uniform = 1, any = 0;
    clora_dtype dtype = CLORA_DTYPE_F32;
    for (size_t i = 0; i < plan->count; ++i) {
        if (!clora_dtype_is_float(plan->tensors[i].dtype))
            continue;
        uniform &= !any || plan->tensors[i].dtype == dtype;
        dtype = plan->tensors[i].dtype;
        any = 1;
    }
    int bad = !config;
    if (!bad && any && uniform)
        bad = json_object_set_new(config, "torch_dtype", json_string(dtype_torch_name(dtype)));
    if (!bad && plan->labels)
        bad = set_labels(config, plan->labels);
    /* numbers with the fewest digits that read back as the same values
     * (0.1, not 0.10000000000000001), as Python writes them */
    char *text = NULL;
    for (int digits = 15; !bad && !text && digits <= 17; ++digits) {
        text = json_dumps(config, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(digits));
        json_t *back = text && digits < 17 ? json_loads(text, 0, NULL) : NULL;
        if (text && digits < 17 && !json_equal(back, config)) {
            free(text);
            text = NULL;
        }
        json_decref(back);
        bad = !text && digits == 17;
    }
    json_decref(config);
    if (!text)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding config.json");
    *out = text;
    return CLORA_OK;
}

/* model.safetensors.index.json: total_size and each tensor's shard. */
static clora_status index_text(const hf_plan *plan, const hf_output *o, char **out)
{
    json_t *root = json_object(), *metadata = json_object(), *map = json_object();
    uint64_t total = 0;
    int bad = !root || !metadata || !map;
    for (size_t i = 0; i < plan->count && !bad; ++i) {
        total += plan->tensors[i].bytes;
        const char *file = strrchr(o->paths[plan->tensors[i].shard], '/');
        bad = json_object_set_new(map, plan->tensors[i].name,
                                  json_string(file ? file + 1 : o->paths[plan->tensors[i].shard]));
    }
    bad = bad || json_object_set_new(metadata, "total_size", json_integer((json_int_t)total));
    bad = bad || json_object_set(root, "metadata", metadata) ||
          json_object_set(root, "weight_map", map);
    char *text = bad ? NULL : json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    json_decref(metadata);
    json_decref(map);
    if (!text)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding %s", INDEX_NAME);
    *out = text;
    return CLORA_OK;
}

/* text + "\n" as one file of the group. */
static clora_status add_text(hf_output *o, size_t slot, const char *path, char *text)
{
    const size_t len = strlen(text);
    char *with_newline = clora__realloc(text, len + 2);
    if (!with_newline) {
        free(text);
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "encoding %s", path);
    }
    memcpy(with_newline + len, "\n", 2);
    o->texts[slot] = with_newline;
    o->text_chunks[slot] = (clora__chunk){with_newline, len + 1};
    o->files[o->file_count++] = (clora__file){path, &o->text_chunks[slot], 1};
    return CLORA_OK;
}

/* A "model-DDDDD-of-DDDDD.safetensors" name. */
static int is_shard_name(const char *name)
{
    unsigned a, b;
    int end = 0;
    return strlen(name) == strlen("model-00001-of-00002.safetensors") &&
           sscanf(name, "model-%5u-of-%5u.safetensors%n", &a, &b, &end) == 2 &&
           (size_t)end == strlen(name);
}

/* Weight files of an earlier save in out_dir that this one does not write. */
static clora_status find_stale(const char *out_dir, hf_output *o)
{
    DIR *d = opendir(out_dir);
    if (!d)
        return CLORA_OK; /* a new folder */
    clora_status status = CLORA_OK;
    for (struct dirent *e; (e = readdir(d)) && status == CLORA_OK;) {
        const char *name = e->d_name;
        int stale = o->shards > 1 ? !strcmp(name, WEIGHTS_NAME) : !strcmp(name, INDEX_NAME);
        if (!stale && is_shard_name(name)) {
            stale = 1;
            for (size_t s = 0; s < o->shards && o->shards > 1 && stale; ++s)
                stale = strcmp(strrchr(o->paths[s], '/') + 1, name) != 0;
        }
        if (!stale)
            continue;
        if (o->removed_count == CLORA__COMMIT_MAX_FILES)
            status = clora__fail(CLORA_ERR_UNSUPPORTED,
                                 "%s holds more than %d shards of an earlier save", out_dir,
                                 CLORA__COMMIT_MAX_FILES);
        else if ((status = clora__join_path(o->removed[o->removed_count], 4096, out_dir, name)) ==
                 CLORA_OK) {
            o->removed_names[o->removed_count] = o->removed[o->removed_count];
            ++o->removed_count;
        }
    }
    closedir(d);
    return status;
}

/* Shards, index, config and companions, built in memory. */
static clora_status build_output(hf_plan *plan, json_t *config, const char *source_dir,
                                 const char *out_dir, uint64_t limit, hf_output *o)
{
    o->shards = assign_shards(plan, limit);
    const size_t files = o->shards + (o->shards > 1) + 1 + COMPANION_COUNT;
    if (files > CLORA__COMMIT_MAX_FILES)
        return clora__fail(CLORA_ERR_UNSUPPORTED,
                           "saving a Hugging Face folder: %zu shards of at most %llu bytes are "
                           "more files than one save writes (%d); allow larger shards",
                           o->shards, (unsigned long long)limit, CLORA__COMMIT_MAX_FILES);
    o->writers = clora__calloc(o->shards, sizeof *o->writers);
    o->chunks = clora__calloc(o->shards, sizeof *o->chunks);
    o->chunk_counts = clora__calloc(o->shards, sizeof *o->chunk_counts);
    o->headers = clora__calloc(o->shards, sizeof *o->headers);
    o->lengths = clora__calloc(o->shards, sizeof *o->lengths);
    o->paths = clora__calloc(o->shards + 2 + COMPANION_COUNT, sizeof *o->paths);
    if (!o->writers || !o->chunks || !o->chunk_counts || !o->headers || !o->lengths || !o->paths)
        return clora__fail(CLORA_ERR_OUT_OF_HOST_MEMORY, "saving a Hugging Face folder");
    clora_status status = CLORA_OK;
    for (size_t s = 0; s < o->shards && status == CLORA_OK; ++s) {
        char name[64];
        if (o->shards == 1)
            snprintf(name, sizeof name, WEIGHTS_NAME);
        else
            snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, o->shards);
        if ((status = clora__join_path(o->paths[s], sizeof o->paths[s], out_dir, name)) ||
            (status = clora_safetensors_writer_create(&o->writers[s])))
            break;
        status = clora_safetensors_writer_metadata(o->writers[s], "format", "pt");
    }
    for (size_t i = 0; i < plan->count && status == CLORA_OK; ++i)
        status = add_tensor(o->writers[plan->tensors[i].shard], &plan->tensors[i]);
    for (size_t s = 0; s < o->shards && status == CLORA_OK; ++s) {
        status = clora__safetensors_chunks(o->writers[s], &o->chunks[s], &o->chunk_counts[s],
                                           &o->headers[s], o->lengths[s]);
        if (status == CLORA_OK)
            o->files[o->file_count++] =
                (clora__file){o->paths[s], o->chunks[s], o->chunk_counts[s]};
    }
    char *text = NULL;
    char *index_path = o->paths[o->shards], *config_path = o->paths[o->shards + 1];
    if (status == CLORA_OK && o->shards > 1 &&
        (status = clora__join_path(index_path, 4096, out_dir, INDEX_NAME)) == CLORA_OK &&
        (status = index_text(plan, o, &text)) == CLORA_OK)
        status = add_text(o, 0, index_path, text);
    if (status == CLORA_OK &&
        (status = clora__join_path(config_path, 4096, out_dir, "config.json")) == CLORA_OK &&
        (status = config_text(config, plan, &text)) == CLORA_OK)
        status = add_text(o, 1, config_path, text);
    for (size_t c = 0; c < COMPANION_COUNT && status == CLORA_OK; ++c) {
        char from[4096];
        char *to = o->paths[o->shards + 2 + c];
        struct stat st;
        if ((status = clora__join_path(from, sizeof from, source_dir, companion_files[c])) ||
            stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        size_t size = 0;
        if ((status = clora__join_path(to, 4096, out_dir, companion_files[c])) ||
            (status = clora__read_file(from, &o->texts[c + 2], &size)))
            break;
        o->text_chunks[c + 2] = (clora__chunk){o->texts[c + 2], size};
        o->files[o->file_count++] = (clora__file){to, &o->text_chunks[c + 2], 1};
    }
    if (status == CLORA_OK)
        status = clora__finish_interrupted_save(out_dir);
    if (status == CLORA_OK)
        status = find_stale(out_dir, o);
    if (status == CLORA_OK && o->file_count + o->removed_count > CLORA__COMMIT_MAX_FILES)
        status = clora__fail(CLORA_ERR_UNSUPPORTED,
                             "saving a Hugging Face folder: %zu files to write and %zu to "
                             "remove are more than one save holds (%d)",
                             o->file_count, o->removed_count, CLORA__COMMIT_MAX_FILES);
    return status;
}

static int same_folder(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

clora_status clora_model_save_hf(clora_model *model, const char *source_dir, const char *out_dir,
                                 const clora_hf_save_options *options)
{
    if (!model || !source_dir || !out_dir)
        return clora__fail(CLORA_ERR_NULL_ARGUMENT, "clora_model_save_hf: NULL argument");
    const clora_hf_save_options o = options ? *options : clora_hf_save_options_default();
    const uint64_t limit = o.max_shard_bytes ? o.max_shard_bytes : CLORA_HF_SHARD_BYTES;
    if (o.dtype != CLORA_DTYPE_AS_STORED && o.dtype != CLORA_DTYPE_F32 &&
        o.dtype != CLORA_DTYPE_F16 && o.dtype != CLORA_DTYPE_BF16)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_model_save_hf: dtype %s; as stored, F32, F16 or BF16",
                           clora_dtype_name(o.dtype));
    if (same_folder(source_dir, out_dir))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "clora_model_save_hf: %s is the source folder; save elsewhere",
                           out_dir);
    if (model->active_adapter >= 0 && !model->merged)
        return clora__fail(CLORA_ERR_STATE,
                           "saving a Hugging Face folder: the model runs adapter \"%s\", which is "
                           "not merged, and the folder holds no adapter; merge it "
                           "(clora_model_merge_adapter) or disable adapters first",
                           model->adapter_names[model->active_adapter]);
    clora_status status = clora__model_refresh(model);
    if (status != CLORA_OK)
        return status;
    clora__model_folder folder;
    if ((status = clora__model_folder_paths(source_dir, &folder)) ||
        (status = clora__finish_interrupted_save(source_dir)) ||
        (status = clora__read_json(folder.config_path, &folder.config)))
        return status;
    const char *type = json_string_value(json_object_get(folder.config, "model_type"));
    hf_plan plan = {model, clora__hf_architecture_of(type), NULL, folder.weights_path, o.dtype,
                    NULL, 0, 0, 0, CLORA_OK};
    if (json_object_get(folder.config, "format") || !plan.arch)
        status = clora__fail(CLORA_ERR_FORMAT,
                             "%s: not a Hugging Face model folder of an architecture clora "
                             "loads (model_type %s%s%s)",
                             source_dir, type ? "\"" : "", type ? type : "missing",
                             type ? "\"" : "");
    if (status == CLORA_OK)
        status = clora__checkpoint_open(&plan.file, folder.weights_path);
    if (status == CLORA_OK) {
        clora_model_visit(model, plan_params, &plan);
        status = plan.status;
    }
    if (status == CLORA_OK)
        status = plan_copies(&plan);
    if (status == CLORA_OK)
        status = registration_sort(&plan, type);
    struct stat st;
    const int existed = stat(out_dir, &st) == 0;
    hf_output out;
    memset(&out, 0, sizeof out);
    if (status == CLORA_OK)
        status = clora__ensure_dir(out_dir);
    if (status == CLORA_OK)
        status = build_output(&plan, folder.config, source_dir, out_dir, limit, &out);
    if (status == CLORA_OK)
        status = clora__replace_files_atomic(out.files, out.file_count, out.removed_names,
                                             out.removed_count);
    if (status != CLORA_OK && !existed)
        rmdir(out_dir); /* only when nothing is in it */
    output_free(&out);
    plan_free(&plan);
    clora__model_folder_free(&folder);
    return status;
}
