/* The loader's host batches for the model: their shape, their memory, and their arrays as the model's
 * input tensors (no copies), and their labels. */
#ifndef EMPD_TRAINER_BATCH_H
#define EMPD_TRAINER_BATCH_H

#include "dataset/loader.h"
#include "models/fusion.h"
#include "models/text_model.h"
#include "trainer/config.h"

/* Where batch memory comes from for a model on dev: page-locked host memory for CUDA (copies to the
 * device overlap compute), NULL (the loader's aligned malloc) otherwise. */
const ds_allocator *tr_batch_allocator(tc_device dev);
/* Tensors in the current scope over b's buffers: token ids as int64 (the loader's uint16 ids read
 * exactly, 0..65535), masks as float; meta keeps the fields before the label-leaking ones. */
tm_inputs tr_batch_inputs(const ds_batch *b);
/* The same for the fusion models: every array the batch holds (media it lacks stay NULL); waveforms
 * as int16 and frames as uint8, converted inside the model. */
mf_inputs tr_batch_fusion_inputs(const ds_batch *b);
/* b's labels for a num_classes model (7 or 32); unlabeled rows (-1) become torch's ignore index. */
int64_t *tr_batch_labels(ds_batch *b, int64_t num_classes);

#endif
