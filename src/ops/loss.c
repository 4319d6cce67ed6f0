/* loss.c — the losses of clora/loss.h and their gradients: cl/loss.cl per
 * row or element, then the deterministic sum of reduce.c. */
#include "ops/ops.h"

clora_status clora_cross_entropy(float *loss, clora_buffer *d_logits, const clora_buffer *logits,
                                 const clora_buffer *labels, int ignore_index)
{
    static const char op[] = "clora_cross_entropy";
    clora_status status = clora__check_nonempty(op, "logits", logits);
    if (status == CLORA_OK && !labels)
        status = clora__fail(CLORA_ERR_NULL_ARGUMENT, "%s: labels is NULL", op);
    if (status == CLORA_OK)
        status = clora__check_dtype(op, "labels", labels, CLORA_DTYPE_I32);
    if (status == CLORA_OK)
        status = clora__check_same_device(op, "labels", labels, logits->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_logits", d_logits, logits->device);
    if (status != CLORA_OK)
        return status;
    const size_t rows = clora__rows(logits), classes = clora__cols(logits);
    if (labels->numel != rows) {
        char a[64], b[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH,
                           "%s: labels %s hold %zu entries; logits %s have %zu rows", op,
                           clora_buffer_shape_string(labels, a, sizeof a), labels->numel,
                           clora_buffer_shape_string(logits, b, sizeof b), rows);
    }
    if (d_logits && (d_logits->numel != logits->numel || clora__cols(d_logits) != classes))
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: d_logits must have the logits' shape",
                           op);
    if (d_logits && clora__overlap(d_logits, logits))
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT, "%s: d_logits overlaps logits", op);
    clora_device *dev = logits->device;
    /* stats: {1/valid, invalid, valid, loss}; row_loss: (N) */
    clora_buffer *stats = NULL, *row_loss = NULL;
    status = clora__buffer_temporary(&stats, dev, 4);
    if (status == CLORA_OK)
        status = clora__buffer_temporary(&row_loss, dev, rows);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_CROSS_ENTROPY_COUNT);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, stats->mem);
        clora__arg_buffer(&a, labels);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, classes);
        clora__arg_int(&a, ignore_index);
        const size_t one[1] = {1};
        status = clora__args_launch(&a, 1, one, one);
    }
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_CROSS_ENTROPY_ROWS);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, d_logits ? d_logits->mem : logits->mem); /* unused without grad */
        clora__arg_uint(&a, d_logits ? d_logits->offset : 0);
        clora__arg_uint(&a, d_logits != NULL);
        clora__arg_mem(&a, row_loss->mem);
        clora__arg_buffer(&a, logits);
        clora__arg_buffer(&a, labels);
        clora__arg_mem(&a, stats->mem);
        clora__arg_uint(&a, rows);
        clora__arg_uint(&a, classes);
        clora__arg_int(&a, ignore_index);
        const size_t global[1] = {rows}, local[1] = {64};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__sum(dev, stats->mem, 3, row_loss, 0, 1.0f);
    float host[4];
    if (status == CLORA_OK && loss)
        status = clora_buffer_download(stats, 0, host, 4);
    clora_buffer_destroy(row_loss);
    clora_buffer_destroy(stats);
    if (status != CLORA_OK || !loss)
        return status;
    if (host[1] > 0.0f)
        return clora__fail(CLORA_ERR_INVALID_ARGUMENT,
                           "%s: %.0f labels lie outside [0, %zu) (and are not the ignore index "
                           "%d)",
                           op, (double)host[1], classes, ignore_index);
    *loss = host[3];
    return CLORA_OK;
}

clora_status clora_mse(float *loss, clora_buffer *d_pred, const clora_buffer *pred,
                       const clora_buffer *target)
{
    static const char op[] = "clora_mse";
    clora_status status = clora__check_nonempty(op, "pred", pred);
    if (status == CLORA_OK)
        status = clora__check_present(op, "target", target);
    if (status == CLORA_OK)
        status = clora__check_float(op, "target", target, pred->device);
    if (status == CLORA_OK)
        status = clora__check_float(op, "d_pred", d_pred, pred->device);
    if (status != CLORA_OK)
        return status;
    if (target->numel != pred->numel || (d_pred && d_pred->numel != pred->numel)) {
        char a[64], b[64];
        return clora__fail(CLORA_ERR_SHAPE_MISMATCH, "%s: pred %s and target %s differ in size",
                           op, clora_buffer_shape_string(pred, a, sizeof a),
                           clora_buffer_shape_string(target, b, sizeof b));
    }
    clora_device *dev = pred->device;
    clora_buffer *sq = NULL, *out = NULL;
    status = clora__buffer_temporary(&sq, dev, pred->numel);
    if (status == CLORA_OK)
        status = clora__buffer_temporary(&out, dev, 1);
    clora__args a;
    if (status == CLORA_OK)
        status = clora__args_begin(&a, dev, CLORA__KERNEL_MSE_ELEMENTS);
    if (status == CLORA_OK) {
        clora__arg_mem(&a, d_pred ? d_pred->mem : sq->mem);
        clora__arg_uint(&a, d_pred ? d_pred->offset : 0);
        clora__arg_uint(&a, d_pred != NULL);
        clora__arg_mem(&a, sq->mem);
        clora__arg_buffer(&a, pred);
        clora__arg_buffer(&a, target);
        clora__arg_uint(&a, pred->numel);
        clora__arg_float(&a, 1.0f / (float)pred->numel);
        const size_t global[1] = {pred->numel}, local[1] = {64};
        status = clora__args_launch(&a, 1, global, local);
    }
    if (status == CLORA_OK)
        status = clora__sum(dev, out->mem, 0, sq, 0, 1.0f);
    if (status == CLORA_OK && loss)
        status = clora_buffer_download(out, 0, loss, 1);
    clora_buffer_destroy(sq);
    clora_buffer_destroy(out);
    return status;
}
