/* The loader's host batch as the model's input tensors (no copies), and its labels. */
#ifndef EMPD_TRAINER_BATCH_H
#define EMPD_TRAINER_BATCH_H

#include "dataset/loader.h"
#include "models/text_model.h"

/* Tensors in the current scope over b's buffers; meta keeps the fields before the
 * label-leaking ones. */
tm_inputs tr_batch_inputs(const ds_batch *b);
/* b's labels for a num_classes model (7 or 32); unlabeled rows (-1) become torch's ignore index. */
int64_t *tr_batch_labels(ds_batch *b, int64_t num_classes);

#endif
