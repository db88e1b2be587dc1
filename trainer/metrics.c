#include "trainer/metrics.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void tr_metrics_compute(const int64_t *confusion, int n, tr_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->n_classes = n;
    memcpy(m->confusion, confusion, (size_t)n * (size_t)n * sizeof *confusion);
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

/* Appends printf-formatted text to a growing buffer; on failure the buffer is freed and NULL. */
static char *append(char *buf, size_t *len, size_t *cap, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static char *append(char *buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = buf ? vsnprintf(buf + *len, *cap - *len, fmt, ap) : -1;
        va_end(ap);
        if (n >= 0 && (size_t)n < *cap - *len) {
            *len += (size_t)n;
            return buf;
        }
        size_t want = *cap * 2 + (n > 0 ? (size_t)n : 0) + 256;
        char *grown = realloc(buf, want);
        if (!grown) {
            free(buf);
            return NULL;
        }
        if (!buf)
            grown[0] = 0;
        buf = grown;
        *cap = want;
    }
}

char *tr_metrics_json(const tr_metrics *m, const char *const *names)
{
    size_t len = 0, cap = 0;
    char *s = append(NULL, &len, &cap,
                     "\"accuracy\":%.17g,\"macro_precision\":%.17g,\"macro_recall\":%.17g,\"macro_f1\":%.17g,"
                     "\"weighted_precision\":%.17g,\"weighted_recall\":%.17g,\"weighted_f1\":%.17g,\"samples\":%lld,"
                     "\"per_class\":[",
                     m->accuracy, m->macro_precision, m->macro_recall, m->macro_f1, m->weighted_precision,
                     m->weighted_recall, m->weighted_f1, (long long)m->total);
    for (int c = 0; s && c < m->n_classes; c++)
        s = append(s, &len, &cap, "%s{\"name\":\"%s\",\"precision\":%.17g,\"recall\":%.17g,\"f1\":%.17g,\"support\":%lld}",
                   c ? "," : "", names[c], m->precision[c], m->recall[c], m->f1[c], (long long)m->support[c]);
    s = s ? append(s, &len, &cap, "],\"confusion\":[") : NULL;
    for (int t = 0; s && t < m->n_classes; t++) {
        s = append(s, &len, &cap, "%s[", t ? "," : "");
        for (int p = 0; s && p < m->n_classes; p++)
            s = append(s, &len, &cap, "%s%lld", p ? "," : "", (long long)m->confusion[t * m->n_classes + p]);
        s = s ? append(s, &len, &cap, "]") : NULL;
    }
    return s ? append(s, &len, &cap, "]") : NULL;
}

void tr_metrics_report(FILE *f, const tr_metrics *m, const char *const *names)
{
    int w = 12;
    for (int c = 0; c < m->n_classes; c++)
        if ((int)strlen(names[c]) > w)
            w = (int)strlen(names[c]);
    fprintf(f, "%*s %9s %9s %9s %9s\n", w, "", "precision", "recall", "f1-score", "support");
    for (int c = 0; c < m->n_classes; c++)
        fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", w, names[c], m->precision[c], m->recall[c], m->f1[c],
                (long long)m->support[c]);
    fprintf(f, "%*s %9s %9s %9.4f %9lld\n", w, "accuracy", "", "", m->accuracy, (long long)m->total);
    fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", w, "macro avg", m->macro_precision, m->macro_recall, m->macro_f1,
            (long long)m->total);
    fprintf(f, "%*s %9.4f %9.4f %9.4f %9lld\n", w, "weighted avg", m->weighted_precision, m->weighted_recall,
            m->weighted_f1, (long long)m->total);
}
