/* test_adapter_check.c — PEFT adapter folders checked on their own
 * (clora_adapter_check): a good folder passes, and each inconsistency of
 * the config or the tensors is refused with its own message. No model and
 * no device are involved. */
#include "support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "base_model.model."

typedef struct tensor_spec {
    const char *name;
    clora_dtype dtype;
    size_t ndim;
    size_t shape[3];
} tensor_spec;

/* A folder with `config` as adapter_config.json and the tensors (zeros). */
static void write_adapter(char *dir, const char *config, const tensor_spec *tensors, size_t count)
{
    test_temp_dir(dir, "adapter");
    char path[256];
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(config, f);
    fclose(f);
    clora_safetensors_writer *w = NULL;
    CHECK_OK(clora_safetensors_writer_create(&w));
    static const float zeros[64] = {0};
    for (size_t i = 0; i < count; ++i)
        CHECK_OK(clora_safetensors_writer_add(w, tensors[i].name, tensors[i].dtype,
                                              tensors[i].ndim, tensors[i].shape, zeros));
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    CHECK_OK(clora_safetensors_writer_write(w, path));
    clora_safetensors_writer_destroy(w);
}

static const char good_config[] =
    "{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": 4, \"target_modules\": [\"q\", \"v\"],"
    " \"rank_pattern\": {\"v\": 3}, \"modules_to_save\": [\"head\"]}";

static const tensor_spec good_tensors[] = {
    {PREFIX "layer.q.lora_A.weight", CLORA_DTYPE_F32, 2, {2, 5}},
    {PREFIX "layer.q.lora_B.weight", CLORA_DTYPE_F32, 2, {4, 2}},
    {PREFIX "layer.v.lora_A.weight", CLORA_DTYPE_F16, 2, {3, 5}},
    {PREFIX "layer.v.lora_B.weight", CLORA_DTYPE_BF16, 2, {4, 3}},
    {PREFIX "head.weight", CLORA_DTYPE_F32, 2, {2, 4}},
    {PREFIX "head.bias", CLORA_DTYPE_F32, 1, {2}},
};

static void expect_refused(const char *config, const tensor_spec *tensors, size_t count,
                           clora_status want, const char *message)
{
    char dir[64];
    write_adapter(dir, config, tensors, count);
    CHECK_STATUS(clora_adapter_check(dir), want);
    test_expect_message(message);
    test_remove_dir(dir);
}

static void a_good_adapter_passes(void **state)
{
    (void)state;
    char dir[64];
    write_adapter(dir, good_config, good_tensors, 6);
    CHECK_OK(clora_adapter_check(dir));
    test_remove_dir(dir);
    CHECK_STATUS(clora_adapter_check("/nonexistent/clora-adapter"), CLORA_ERR_IO);
    CHECK_STATUS(clora_adapter_check(NULL), CLORA_ERR_NULL_ARGUMENT);
}

static void config_errors(void **state)
{
    (void)state;
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 4}", good_tensors, 6,
                   CLORA_ERR_FORMAT, "\"r\" must be an integer from 1 to 256");
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 2.5}", good_tensors, 6, CLORA_ERR_FORMAT,
                   "\"r\" must be an integer");
    expect_refused("{\"peft_type\": \"IA3\", \"r\": 2}", good_tensors, 6, CLORA_ERR_UNSUPPORTED,
                   "peft_type \"IA3\"");
    expect_refused("{\"r\": 2}", good_tensors, 6, CLORA_ERR_FORMAT, "no \"peft_type\"");
    expect_refused("[1, 2]", good_tensors, 6, CLORA_ERR_FORMAT, "adapter_config.json");
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 2, \"lora_alpha\": \"big\"}", good_tensors,
                   6, CLORA_ERR_FORMAT, "\"lora_alpha\" must be a number");
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"q\", 7]}",
                   good_tensors, 6, CLORA_ERR_FORMAT, "\"target_modules\" entry 1 is not a string");
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 2, \"rank_pattern\": {\"v\": 2.5}}",
                   good_tensors, 6, CLORA_ERR_FORMAT,
                   "rank_pattern value of \"v\" must be an integer");
    expect_refused("{\"peft_type\": \"LORA\", \"r\": 2, \"alpha_pattern\": {\"v\": \"x\"}}",
                   good_tensors, 6, CLORA_ERR_FORMAT, "alpha_pattern value of \"v\"");
}

static void tensor_errors(void **state)
{
    (void)state;
    tensor_spec t[6];
    /* B missing for v */
    memcpy(t, good_tensors, sizeof t);
    expect_refused(good_config, t, 3, CLORA_ERR_FORMAT,
                   "module \"layer.v\" has lora_A but no lora_B");
    /* the rank the config gives v is 3 (rank_pattern), not 2 */
    memcpy(t, good_tensors, sizeof t);
    t[2].shape[0] = 2;
    expect_refused(good_config, t, 6, CLORA_ERR_SHAPE_MISMATCH, "module \"layer.v\" has rank 3");
    memcpy(t, good_tensors, sizeof t);
    t[1].shape[1] = 3;
    expect_refused(good_config, t, 6, CLORA_ERR_SHAPE_MISMATCH, "so lora_B must be (out, r)");
    /* 3-D, integers, empty */
    memcpy(t, good_tensors, sizeof t);
    t[0].ndim = 3;
    t[0].shape[2] = 1;
    expect_refused(good_config, t, 6, CLORA_ERR_SHAPE_MISMATCH, "lora_A is 2-D");
    memcpy(t, good_tensors, sizeof t);
    t[1].dtype = CLORA_DTYPE_I32;
    expect_refused(good_config, t, 6, CLORA_ERR_DTYPE_MISMATCH, "holds I32, not floats");
    memcpy(t, good_tensors, sizeof t);
    t[0].shape[1] = 0;
    expect_refused(good_config, t, 6, CLORA_ERR_FORMAT, "is empty");
    /* a tensor of a module modules_to_save does not list */
    memcpy(t, good_tensors, sizeof t);
    t[4].name = PREFIX "other.weight";
    expect_refused(good_config, t, 6, CLORA_ERR_FORMAT, "unexpected tensor");
    /* the same matrix twice, with and without the prefix */
    memcpy(t, good_tensors, sizeof t);
    t[5].name = "layer.q.lora_A.weight";
    t[5].ndim = 2;
    t[5].shape[0] = 2;
    t[5].shape[1] = 5;
    expect_refused(good_config, t, 6, CLORA_ERR_FORMAT, "two tensors for lora_A");
    /* no LoRA at all */
    expect_refused(good_config, good_tensors + 4, 2, CLORA_ERR_FORMAT, "no LoRA weights");
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_good_adapter_passes),
        cmocka_unit_test(config_errors),
        cmocka_unit_test(tensor_errors),
    };
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
