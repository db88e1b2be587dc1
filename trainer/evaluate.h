/* Evaluation of a split across the ranks: each rank predicts its slices (in order, no
 * shuffling), the confusion matrix and the loss sums are all-reduced, so every rank returns
 * the same metrics. COLLECTIVE: every rank calls it with the same split. */
#ifndef EMPD_TRAINER_EVALUATE_H
#define EMPD_TRAINER_EVALUATE_H

#include <stddef.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "trainer/config.h"
#include "trainer/model.h"
#include "trainer/metrics.h"

/* mean_loss: cross-entropy over the labeled samples. show_progress draws a bar (rank 0, tty). */
int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, tr_metrics *out, double *mean_loss, char *err, size_t errlen);

#endif
