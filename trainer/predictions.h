/* Per-sample predictions of a split, for late fusion (empd fuse) and for anyone's own analysis:
 * RUNDIR/predictions/<split>.csv, written by rank 0 after training from the best checkpoint's weights.
 *
 * Format: CSV (RFC 4180, no quoting needed: ids and class names hold no commas), UTF-8, "\n" line ends.
 *   line 1    id,label,pred,p_<class 0>,...,p_<class K-1>
 *   a row     per sample of the split, in the split's order (manifest.json's conversation_ids):
 *     id      the conversation id
 *     label   the true class index 0..K-1, or -1 for an unlabelled sample
 *     pred    the predicted class (the largest logit; the lowest index on a tie), what the metrics count
 *     p_*     the softmax probabilities of the K classes, %.9g (they sum to 1 within float rounding)
 * Class names are the label space's (7: happy, surprised, angry, fear, sad, disgusted, contempt; 32: the
 * EmpatheticDialogues emotions in alphabetical order). Read it with Python's csv module or pandas. */
#ifndef EMPD_TRAINER_PREDICTIONS_H
#define EMPD_TRAINER_PREDICTIONS_H

#include <stddef.h>

#include "dataset/manifest.h"
#include "trainer/evaluate.h"

/* The names of a 7- or 32-class label space, NULL for another count. */
const char *const *tr_class_names(int n_classes);
/* Writes e's samples (tr_evaluate with samples) as path atomically; ids: the split's conversation ids. */
int tr_predictions_write(const char *path, const tr_eval *e, const ds_strv *ids, char *err, size_t errlen);

#endif
