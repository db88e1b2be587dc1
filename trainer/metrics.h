/* Classification metrics from a confusion matrix, scikit-learn's definitions with
 * zero_division=0: accuracy, per-class precision/recall/F1/support, their macro and
 * support-weighted averages. */
#ifndef EMPD_TRAINER_METRICS_H
#define EMPD_TRAINER_METRICS_H

#include <stdint.h>
#include <stdio.h>

#define TR_MAX_CLASSES 32

typedef struct {
    int n_classes;
    int64_t confusion[TR_MAX_CLASSES * TR_MAX_CLASSES]; /* [true * n_classes + predicted] */
    int64_t total;
    double accuracy;
    double precision[TR_MAX_CLASSES], recall[TR_MAX_CLASSES], f1[TR_MAX_CLASSES];
    int64_t support[TR_MAX_CLASSES];
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
} tr_metrics;

/* confusion[true * n + predicted] counts (kept in out->confusion). */
void tr_metrics_compute(const int64_t *confusion, int n_classes, tr_metrics *out);
/* The metrics as JSON members for a metrics.jsonl record (no braces): accuracy, macro and weighted
 * precision/recall/F1, "per_class" [{name, precision, recall, f1, support}] and "confusion" (rows:
 * true class, columns: predicted), every real with 17 digits. names: n_classes class names. Caller
 * frees; NULL when out of memory. */
char *tr_metrics_json(const tr_metrics *m, const char *const *names);
/* scikit-learn's classification_report as text, one line per class, then accuracy and the averages. */
void tr_metrics_report(FILE *f, const tr_metrics *m, const char *const *names);

#endif
