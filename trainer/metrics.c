#include "trainer/metrics.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

void tr_metrics_compute(const int64_t *confusion, int n, tr_metrics *m)
{
    memset(m, 0, sizeof *m);
    m->n_classes = n;
    memcpy(m->confusion, confusion, (size_t)n * (size_t)n * sizeof *confusion);
    int64_t correct = 0, predicted[TR_MAX_CLASSES] = {0};
    for (int c = 0; c < n; c++) {
        int64_t tp = confusion[c * n + c];
        for (int k = 0; k < n; k++) {
            predicted[c] += confusion[k * n + c];
            m->support[c] += confusion[c * n + k];
        }
        correct += tp;
        m->total += m->support[c];
        m->precision[c] = predicted[c] ? (double)tp / (double)predicted[c] : 0.0;
        m->recall[c] = m->support[c] ? (double)tp / (double)m->support[c] : 0.0;
        /* sklearn's order of operations, so that the figures agree to the last bit where they can. */
        double s = m->precision[c] + m->recall[c];
        m->f1[c] = s > 0 ? 2.0 * m->precision[c] * m->recall[c] / s : 0.0;
    }
    if (m->total == 0)
        return;
    m->accuracy = (double)correct / (double)m->total;
    for (int c = 0; c < n; c++) {
        m->macro_all_precision += m->precision[c];
        m->macro_all_recall += m->recall[c];
        m->macro_all_f1 += m->f1[c];
        if (m->support[c] == 0 && predicted[c] == 0)
            continue;
        m->n_present++;
        m->macro_precision += m->precision[c];
        m->macro_recall += m->recall[c];
        m->macro_f1 += m->f1[c];
        m->weighted_precision += m->precision[c] * (double)m->support[c];
        m->weighted_recall += m->recall[c] * (double)m->support[c];
        m->weighted_f1 += m->f1[c] * (double)m->support[c];
    }
    m->macro_precision /= m->n_present;
    m->macro_recall /= m->n_present;
    m->macro_f1 /= m->n_present;
    m->macro_all_precision /= n;
    m->macro_all_recall /= n;
    m->macro_all_f1 /= n;
    m->weighted_precision /= (double)m->total;
    m->weighted_recall /= (double)m->total;
    m->weighted_f1 /= (double)m->total;
}

/* Class c's name: names[c], or its index written into buf when there are no names. */
static const char *name_of(const char *const *names, int c, char buf[16])
{
    if (names && names[c])
        return names[c];
    snprintf(buf, 16, "%d", c);
    return buf;
}

/* A growing text; after a failed allocation s is NULL and every later call does nothing. */
typedef struct {
    char *s;
    size_t len, cap;
} text;

static void add(text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(text *t, const char *fmt, ...)
{
    while (t->s) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->s + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            free(t->s);
            t->s = NULL;
        } else if ((size_t)n < t->cap - t->len) {
            t->len += (size_t)n;
            return;
        } else {
            char *grown = realloc(t->s, t->cap * 2 + (size_t)n);
            if (!grown)
                free(t->s);
            t->s = grown;
            t->cap = t->cap * 2 + (size_t)n;
        }
    }
}

/* s as a JSON string, quotes included. */
static void add_json_string(text *t, const char *s)
{
    add(t, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            add(t, "\\%c", *p);
        else if (*p < 0x20)
            add(t, "\\u%04x", *p);
        else
            add(t, "%c", *p);
    }
    add(t, "\"");
}

char *tr_metrics_json(const tr_metrics *m, const char *const *names)
{
    text t = {.s = malloc(1024), .cap = 1024};
    add(&t,
        "\"accuracy\":%.17g,\"macro_precision\":%.17g,\"macro_recall\":%.17g,\"macro_f1\":%.17g,"
        "\"weighted_precision\":%.17g,\"weighted_recall\":%.17g,\"weighted_f1\":%.17g,"
        "\"macro_all_precision\":%.17g,\"macro_all_recall\":%.17g,\"macro_all_f1\":%.17g,"
        "\"samples\":%lld,\"classes_present\":%d,\"per_class\":[",
        m->accuracy, m->macro_precision, m->macro_recall, m->macro_f1, m->weighted_precision, m->weighted_recall,
        m->weighted_f1, m->macro_all_precision, m->macro_all_recall, m->macro_all_f1, (long long)m->total,
        m->n_present);
    for (int c = 0; c < m->n_classes; c++) {
        char buf[16];
        add(&t, "%s{\"name\":", c ? "," : "");
        add_json_string(&t, name_of(names, c, buf));
        add(&t, ",\"precision\":%.17g,\"recall\":%.17g,\"f1\":%.17g,\"support\":%lld}", m->precision[c],
            m->recall[c], m->f1[c], (long long)m->support[c]);
    }
    add(&t, "],\"confusion\":[");
    for (int r = 0; r < m->n_classes; r++) {
        add(&t, "%s[", r ? "," : "");
        for (int p = 0; p < m->n_classes; p++)
            add(&t, "%s%lld", p ? "," : "", (long long)m->confusion[r * m->n_classes + p]);
        add(&t, "]");
    }
    add(&t, "]");
    return t.s;
}

/* Class c is in y_true or y_pred. */
static int is_present(const tr_metrics *m, int c)
{
    for (int k = 0; k < m->n_classes; k++)
        if (m->confusion[c * m->n_classes + k] || m->confusion[k * m->n_classes + c])
            return 1;
    return 0;
}

/* The layout is sklearn's (sklearn/metrics/_classification.py, classification_report): names right-aligned
 * in a column as wide as the longest name or "weighted avg", then " " and " %9" fields. */
void tr_metrics_report(FILE *f, const tr_metrics *m, const char *const *names)
{
    enum { DIGITS = 4 };
    int w = (int)strlen("weighted avg");
    for (int c = 0; c < m->n_classes; c++) {
        char buf[16];
        int len = (int)strlen(name_of(names, c, buf));
        if (is_present(m, c) && len > w)
            w = len;
    }
    fprintf(f, "%*s  %9s %9s %9s %9s\n\n", w, "", "precision", "recall", "f1-score", "support");
    for (int c = 0; c < m->n_classes; c++) {
        if (!is_present(m, c))
            continue;
        char buf[16];
        fprintf(f, "%*s  %9.*f %9.*f %9.*f %9lld\n", w, name_of(names, c, buf), DIGITS, m->precision[c], DIGITS,
                m->recall[c], DIGITS, m->f1[c], (long long)m->support[c]);
    }
    fprintf(f, "\n%*s  %9s %9s %9.*f %9lld\n", w, "accuracy", "", "", DIGITS, m->accuracy, (long long)m->total);
    fprintf(f, "%*s  %9.*f %9.*f %9.*f %9lld\n", w, "macro avg", DIGITS, m->macro_precision, DIGITS, m->macro_recall,
            DIGITS, m->macro_f1, (long long)m->total);
    fprintf(f, "%*s  %9.*f %9.*f %9.*f %9lld\n", w, "weighted avg", DIGITS, m->weighted_precision, DIGITS,
            m->weighted_recall, DIGITS, m->weighted_f1, (long long)m->total);
}
