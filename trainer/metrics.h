/* Classification metrics from a confusion matrix, scikit-learn's definitions with zero_division=0
 * (a ratio whose denominator is 0 counts as 0).
 *
 * Which scikit-learn calls the figures equal (y_true, y_pred: the labelled samples):
 *   accuracy                    accuracy_score(y_true, y_pred)
 *   precision/recall/f1/support precision_recall_fscore_support(y_true, y_pred, labels=range(K),
 *                               zero_division=0)  (every class, support 0 included)
 *   macro_*, weighted_*         precision_recall_fscore_support(y_true, y_pred, average="macro" or
 *                               "weighted", zero_division=0) WITHOUT labels=: the macro mean runs over the
 *                               classes present in y_true or y_pred, as the seed's
 *                               classification_report(y_true, y_pred) did (a class neither in the truth
 *                               nor predicted is left out instead of counting as 0)
 *   macro_all_*                 the same with labels=range(K): every class in the mean, absent ones as 0
 *   confusion                   confusion_matrix(y_true, y_pred, labels=range(K))
 * The weighted means weigh by support, so weighted_recall equals accuracy (to rounding). With no labelled sample at
 * all every figure is 0. */
#ifndef EMPD_TRAINER_METRICS_H
#define EMPD_TRAINER_METRICS_H

#include <stdint.h>
#include <stdio.h>

#define TR_MAX_CLASSES 32

typedef struct {
    int n_classes;
    int64_t confusion[TR_MAX_CLASSES * TR_MAX_CLASSES]; /* [true * n_classes + predicted] */
    int64_t total;        /* labelled samples */
    int n_present;        /* classes in y_true or y_pred: the macro means' divisor */
    double accuracy;
    double precision[TR_MAX_CLASSES], recall[TR_MAX_CLASSES], f1[TR_MAX_CLASSES];
    int64_t support[TR_MAX_CLASSES];
    double macro_precision, macro_recall, macro_f1;
    double weighted_precision, weighted_recall, weighted_f1;
    double macro_all_precision, macro_all_recall, macro_all_f1;
} tr_metrics;

/* confusion[true * n + predicted] counts (kept in out->confusion); 1 <= n <= TR_MAX_CLASSES. */
void tr_metrics_compute(const int64_t *confusion, int n_classes, tr_metrics *out);

/* The metrics as JSON object members for a metrics.jsonl record, without the braces, so the caller
 * adds its own ("event", "step", "split", "loss"):
 *   "accuracy", "macro_precision", "macro_recall", "macro_f1", "weighted_precision", "weighted_recall",
 *   "weighted_f1", "macro_all_precision", "macro_all_recall", "macro_all_f1": numbers;
 *   "samples": the labelled samples; "classes_present": the macro means' divisor;
 *   "per_class": [{"name", "precision", "recall", "f1", "support"}] for every class, in class order;
 *   "confusion": [[...]] rows = true class, columns = predicted class.
 * Reals are printed %.17g (they read back to the same double). names: n_classes class names (JSON-escaped
 * here), or NULL for the class indices as names. The caller frees the string; NULL when out of memory. */
char *tr_metrics_json(const tr_metrics *m, const char *const *names);

/* scikit-learn's classification_report(y_true, y_pred, target_names=..., digits=4) as text, byte for
 * byte: a row per class present in y_true or y_pred (the classes the macro average runs over), then
 * accuracy, macro avg and weighted avg. names as for tr_metrics_json. */
void tr_metrics_report(FILE *f, const tr_metrics *m, const char *const *names);

#endif
