/* Evaluation of a split across the ranks: each rank predicts its slices (in order, no
 * shuffling), the confusion matrix and the loss sums are all-reduced, so every rank returns
 * the same metrics. COLLECTIVE: every rank calls it with the same split and arguments. */
#ifndef EMPD_TRAINER_EVALUATE_H
#define EMPD_TRAINER_EVALUATE_H

#include <stddef.h>

#include "comm/comm.h"
#include "dataset/loader.h"
#include "trainer/config.h"
#include "trainer/model.h"
#include "trainer/metrics.h"

typedef struct {
    tr_metrics metrics;  /* over the labelled samples */
    double loss;         /* mean cross-entropy over them: the sum over samples / their count */
    /* With samples asked for: every sample of the split once, in the split's order, on every rank. */
    int64_t n;
    int n_classes;
    int64_t *label;      /* [n] the true class, -1 when unlabelled */
    int *pred;           /* [n] the predicted class (the largest logit, the first on a tie) */
    float *probs;        /* [n * n_classes] softmax probabilities */
} tr_eval;

/* show_progress draws a bar (rank 0, tty). samples: also return every sample's probabilities. */
int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, int samples, tr_eval *out, char *err, size_t errlen);
void tr_eval_free(tr_eval *e);

#endif
