/* weights.c — every parameter of a model filled from a weight file, by
 * name: the names a checkpoint format gives (clora__weight_names) tried in
 * turn, each tensor's shape checked, and no tensor left unused. */
#include <stdio.h>

#include "nn/nn.h"

clora_status clora__load_weights(clora_model *model, const char *path,
                                 const clora__weight_names *names)
{
    clora__checkpoint *file = NULL;
    /* the parameter list first: its failure is its own, not "no parameters" */
    size_t count = 0;
    clora_status status = clora_model_params(model, &count);
    if (status == CLORA_OK)
        status = clora__checkpoint_open(&file, path);
    if (status != CLORA_OK)
        return status;
    for (size_t i = 0; i < count && status == CLORA_OK; ++i) {
        clora_param_info info;
        clora_tensor_view view;
        if ((status = clora_model_param(model, i, &info)))
            break;
        char candidate[512];
        int found = 0;
        for (size_t c = 0; !found; ++c) {
            if (!names || !names->candidate) {
                if (c > 0)
                    break;
                snprintf(candidate, sizeof candidate, "%s", info.name);
            } else if (!names->candidate(model, info.name, c, candidate, sizeof candidate)) {
                break;
            }
            found = clora__checkpoint_find(file, candidate, &view);
        }
        if (!found) {
            if (names && names->optional && names->optional(model, info.name))
                continue; /* keeps its initial value */
            status = clora__fail(CLORA_ERR_FORMAT, "%s: no tensor for parameter %s", path,
                                 info.name);
            break;
        }
        status = clora__checkpoint_read(file, &view, info.name, info.value);
    }
    for (size_t t = 0; t < clora__checkpoint_count(file) && status == CLORA_OK; ++t) {
        const char *extra = clora__checkpoint_unused(file, t);
        if (!extra || (names && names->ignorable && names->ignorable(model, extra)))
            continue;
        status = clora__fail(CLORA_ERR_FORMAT,
                             "%s: tensor \"%s\" matches no parameter of the model", path, extra);
    }
    clora__checkpoint_close(file);
    return status;
}
