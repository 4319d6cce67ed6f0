/* clora/loss.h — losses and their gradients, on device buffers: what a
 * training step differentiates (clora/train.h's trainer calls them; they
 * serve hand-written loops as well). Each sums deterministically: the same
 * inputs give the same bits.
 *
 * Thread-safety: as for the device the buffers are on.
 */
#ifndef CLORA_LOSS_H
#define CLORA_LOSS_H

#include "clora/buffer.h"
#include "clora/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Mean cross-entropy of logits (N, C) against int32 labels (N), skipping
 * rows whose label is ignore_index (PyTorch uses -100). d_logits (N, C),
 * if not NULL, receives the gradient of the mean. *loss (if loss is not
 * NULL) receives the value, which waits for the device; labels outside
 * [0, C) are then reported as CLORA_ERR_INVALID_ARGUMENT. With every row
 * ignored the loss and gradient are 0. */
clora_status clora_cross_entropy(float *loss, clora_buffer *d_logits, const clora_buffer *logits,
                                 const clora_buffer *labels, int ignore_index);

/* Mean squared error of pred against target (same shapes); d_pred as above. */
clora_status clora_mse(float *loss, clora_buffer *d_pred, const clora_buffer *pred,
                       const clora_buffer *target);

#ifdef __cplusplus
}
#endif

#endif /* CLORA_LOSS_H */
