/* The training loss of the recipe (train.loss, train.focal_gamma, train.class_weights):
 *   ce:     cross-entropy, torch.nn.functional.cross_entropy(logits, y, weight=w)
 *   focal:  -(1 - p_y)^gamma * log p_y per sample (Lin et al.), gamma 0 giving cross-entropy
 * With class weights w (balanced: w_c = n / (classes * n_c) over the training split, as scikit-learn's
 * compute_class_weight("balanced"); 0 for a class absent from it) both are the weighted mean
 * sum_i w_{y_i} l_i / sum_i w_{y_i}, torch's convention for weighted cross-entropy; without weights the
 * plain mean over the batch. */
#ifndef EMPD_TRAINER_LOSS_H
#define EMPD_TRAINER_LOSS_H

#include <stddef.h>

#include "dataset/manifest.h"
#include "models/torch_c.h"
#include "trainer/config.h"
#include "trainer/metrics.h"

typedef struct {
    int kind;       /* enum tr_loss */
    double gamma;
    int n_classes;
    int weighted;
    float weights[TR_MAX_CLASSES];
} tr_loss;

/* From the configuration and the training split's label histogram. One line in err when the
 * weights cannot be made (a label space the manifest has no histogram of, no labelled sample). */
int tr_loss_init(tr_loss *l, const tr_config *c, const ds_manifest *m, char *err, size_t errlen);
/* A scope op: the scalar loss of logits [N, C] against i64 targets [N] (on the logits' device). */
tc_tensor *tr_loss_forward(const tr_loss *l, tc_tensor *logits, tc_tensor *target);

#endif
