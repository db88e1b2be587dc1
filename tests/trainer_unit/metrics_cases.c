/* trainer/metrics.h against scikit-learn: ref_metrics.py prints labels and sklearn's metrics; the
 * test counts the confusion matrix and compares every number tr_metrics_compute gives. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/trainer_unit/trainer_unit_test.h"
#include "trainer/metrics.h"

#define METRICS_TOL 1e-12

static char *ref_text;

int metrics_setup(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s", EMPD_PYTHON, TU_METRICS_SCRIPT);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t len = 0, cap = 1 << 16, got;
    ref_text = malloc(cap);
    while (ref_text && (got = fread(ref_text + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) ref_text = realloc(ref_text, cap *= 2);
    }
    int rc = pclose(p);
    if (!ref_text || rc != 0) {
        fprintf(stderr, "reference script failed (%d): %s\n", rc, cmd);
        return -1;
    }
    ref_text[len] = 0;
    return 0;
}

int metrics_teardown(void **state) {
    (void)state;
    free(ref_text);
    ref_text = NULL;
    return 0;
}

/* The line after *cur starting with key (the word and a space); advances *cur past it. */
static char *next_line(char **cur, const char *key) {
    char *line = *cur, *nl = strchr(line, '\n');
    size_t kl = strlen(key);
    if (nl) *nl = 0;
    *cur = nl ? nl + 1 : line + strlen(line);
    assert_true(strncmp(line, key, kl) == 0 && line[kl] == ' ');
    return line + kl + 1;
}

static double worst;

static void check(const char *what, const char *name, int cls, double got, double want) {
    double d = fabs(got - want);
    if (d > worst) worst = d;
    if (!(d <= METRICS_TOL)) {
        fprintf(stderr, "%s: %s[%d] = %.17g, sklearn %.17g\n", name, what, cls, got, want);
        fail();
    }
}

static void check3(const char *line, const char *name, const char *what, double p, double r, double f) {
    char *end;
    double want_p = strtod(line, &end), want_r = strtod(end, &end), want_f = strtod(end, &end);
    char label[64];
    snprintf(label, sizeof label, "%s precision", what);
    check(label, name, -1, p, want_p);
    snprintf(label, sizeof label, "%s recall", what);
    check(label, name, -1, r, want_r);
    snprintf(label, sizeof label, "%s f1", what);
    check(label, name, -1, f, want_f);
}

void test_metrics_vs_sklearn(void **state) {
    (void)state;
    char *text = strdup(ref_text), *cur = text;
    int cases = 0, macro_differs = 0;
    worst = 0;
    while (*cur) {
        char name[64];
        int n, m;
        assert_int_equal(sscanf(next_line(&cur, "case"), "%63s %d %d", name, &n, &m), 3);
        assert_true(n >= 2 && n <= TR_MAX_CLASSES && m >= 1);
        int64_t *confusion = calloc((size_t)n * (size_t)n, sizeof *confusion);
        int *y = malloc((size_t)m * sizeof *y);
        char *p = next_line(&cur, "true");
        for (int i = 0; i < m; i++) y[i] = (int)strtol(p, &p, 10);
        p = next_line(&cur, "pred");
        for (int i = 0; i < m; i++) {
            int pred = (int)strtol(p, &p, 10);
            assert_true(y[i] >= 0 && y[i] < n && pred >= 0 && pred < n);
            confusion[y[i] * n + pred]++;
        }
        tr_metrics mt;
        memset(&mt, 0x5a, sizeof mt);
        tr_metrics_compute(confusion, n, &mt);
        assert_int_equal(mt.n_classes, n);
        assert_int_equal(mt.total, m);
        check("accuracy", name, -1, mt.accuracy, strtod(next_line(&cur, "accuracy"), NULL));
        for (int c = 0; c < n; c++) {
            int cls;
            double want_p, want_r, want_f;
            long long support;
            assert_int_equal(sscanf(next_line(&cur, "class"), "%d %lf %lf %lf %lld", &cls, &want_p, &want_r,
                                    &want_f, &support),
                             5);
            assert_int_equal(cls, c);
            check("precision", name, c, mt.precision[c], want_p);
            check("recall", name, c, mt.recall[c], want_r);
            check("f1", name, c, mt.f1[c], want_f);
            assert_int_equal(mt.support[c], support);
        }
        check3(next_line(&cur, "macro"), name, "macro", mt.macro_precision, mt.macro_recall, mt.macro_f1);
        check3(next_line(&cur, "weighted"), name, "weighted", mt.weighted_precision, mt.weighted_recall,
               mt.weighted_f1);
        /* sklearn's macro over labels=range(n) differs where a class is in neither y_true nor y_pred;
         * tr_metrics_compute documents sklearn's default (labels=None), so this is only counted. */
        double all_f = 0;
        assert_int_equal(sscanf(next_line(&cur, "macro_all"), "%*f %*f %lf", &all_f), 1);
        macro_differs += fabs(all_f - mt.macro_f1) > METRICS_TOL;
        free(confusion);
        free(y);
        cases++;
    }
    printf("metrics: %d cases, max |ours - sklearn| = %.3g; %d cases where macro over range(n) differs\n",
           cases, worst, macro_differs);
    assert_true(cases >= 20);
    assert_true(macro_differs > 0);
    free(text);

    /* No samples at all: defined as zeros, nothing divided by zero. */
    int64_t zero[4] = {0};
    tr_metrics mt;
    tr_metrics_compute(zero, 2, &mt);
    assert_int_equal(mt.total, 0);
    assert_true(mt.accuracy == 0 && mt.macro_f1 == 0 && mt.weighted_f1 == 0 && mt.precision[0] == 0);
}
