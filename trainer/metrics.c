#include "trainer/metrics.h"

#include <string.h>

void tr_metrics_compute(const int64_t *confusion, int n, tr_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->n_classes = n;
    int64_t correct = 0;
    for (int c = 0; c < n; c++) {
        int64_t tp = confusion[c * n + c], predicted = 0, actual = 0;
        for (int k = 0; k < n; k++) {
            predicted += confusion[k * n + c];
            actual += confusion[c * n + k];
        }
        correct += tp;
        m->total += actual;
        m->support[c] = actual;
        m->precision[c] = predicted ? (double)tp / (double)predicted : 0.0;
        m->recall[c] = actual ? (double)tp / (double)actual : 0.0;
        double s = m->precision[c] + m->recall[c];
        m->f1[c] = s > 0 ? 2.0 * m->precision[c] * m->recall[c] / s : 0.0;
    }
    if (m->total == 0)
        return;
    m->accuracy = (double)correct / (double)m->total;
    /* sklearn's macro average runs over the labels present in y_true or y_pred. */
    int present = 0;
    for (int c = 0; c < n; c++) {
        int64_t predicted = 0;
        for (int k = 0; k < n; k++)
            predicted += confusion[k * n + c];
        if (m->support[c] == 0 && predicted == 0)
            continue;
        present++;
        m->macro_precision += m->precision[c];
        m->macro_recall += m->recall[c];
        m->macro_f1 += m->f1[c];
        double w = (double)m->support[c] / (double)m->total;
        m->weighted_precision += w * m->precision[c];
        m->weighted_recall += w * m->recall[c];
        m->weighted_f1 += w * m->f1[c];
    }
    if (present) {
        m->macro_precision /= present;
        m->macro_recall /= present;
        m->macro_f1 /= present;
    }
}
