/* Classification metrics from a confusion matrix, scikit-learn's definitions with
 * zero_division=0: accuracy, per-class precision/recall/F1/support, their macro and
 * support-weighted averages. */
#ifndef EMPD_TRAINER_METRICS_H
#define EMPD_TRAINER_METRICS_H

#include <stdint.h>

#define TR_MAX_CLASSES 32

typedef struct {
    int n_classes;
    int64_t total;
    double accuracy;
    double precision[TR_MAX_CLASSES], recall[TR_MAX_CLASSES], f1[TR_MAX_CLASSES];
    int64_t support[TR_MAX_CLASSES];
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
} tr_metrics;

/* confusion[true * n + predicted] counts. */
void tr_metrics_compute(const int64_t *confusion, int n_classes, tr_metrics *out);

#endif
