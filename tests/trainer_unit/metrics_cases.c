/* trainer/metrics.h against scikit-learn: ref_metrics.py prints labels and sklearn's figures; the test
 * counts the confusion matrix and compares every number tr_metrics_compute gives, the text of
 * tr_metrics_report with sklearn's classification_report, and hands tr_metrics_json's records back to
 * ref_metrics.py, which parses them with Python's json module and compares them with sklearn again. */
#define _GNU_SOURCE
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

/* The whole output of a shell command, NUL-terminated; NULL when it fails. */
static char *run_command(const char *cmd) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t len = 0, cap = 1 << 16, got;
    char *text = malloc(cap);
    while (text && (got = fread(text + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (cap - len < 2) text = realloc(text, cap *= 2);
    }
    int rc = pclose(p);
    if (!text || rc != 0) {
        fprintf(stderr, "failed (%d): %s\n%.*s", rc, cmd, text ? (int)len : 0, text ? text : "");
        free(text);
        return NULL;
    }
    text[len] = 0;
    return text;
}

int metrics_setup(void **state) {
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s", EMPD_PYTHON, TU_METRICS_SCRIPT);
    ref_text = run_command(cmd);
    return ref_text ? 0 : -1;
}

int metrics_teardown(void **state) {
    (void)state;
    free(ref_text);
    ref_text = NULL;
    return 0;
}

/* The line at *cur, which must start with key (the word and a space, or the word alone); advances
 * *cur past it. */
static char *next_line(char **cur, const char *key) {
    char *line = *cur, *nl = strchr(line, '\n');
    size_t kl = strlen(key);
    if (nl) *nl = 0;
    *cur = nl ? nl + 1 : line + strlen(line);
    if (!(strncmp(line, key, kl) == 0 && (line[kl] == ' ' || line[kl] == 0))) {
        fprintf(stderr, "reference: \"%s\" where \"%s\" was expected\n", line, key);
        fail();
    }
    return line + kl + (line[kl] == ' ');
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

/* tr_metrics_report's text equals the reference's K lines at *cur. */
static void check_report(char **cur, const char *name, const tr_metrics *mt, const char *const *names) {
    int lines = atoi(next_line(cur, "report"));
    char *want = *cur;
    for (int i = 0; i < lines; i++) {
        char *nl = strchr(*cur, '\n');
        *cur = nl ? nl + 1 : *cur + strlen(*cur);
    }
    /* sklearn's text ends in a newline, which its split() left as the last, empty line. */
    size_t want_len = (size_t)(*cur - want) - (**cur || (*cur)[-1] == '\n' ? 1 : 0);
    char *got = NULL;
    size_t got_len = 0;
    FILE *f = open_memstream(&got, &got_len);
    assert_non_null(f);
    tr_metrics_report(f, mt, names);
    fclose(f);
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        fprintf(stderr, "%s: report\n%s\nis not sklearn's\n%.*s\n", name, got, (int)want_len, want);
        fail();
    }
    free(got);
}

void test_metrics_vs_sklearn(void **state) {
    (void)state;
    char *text = strdup(ref_text), *cur = text, dir[64], json_path[128], cmd[1024];
    assert_int_equal(tf_make_temp_dir(dir, "test_trainer_unit"), 0);
    snprintf(json_path, sizeof json_path, "%s/metrics.jsonl", dir);
    FILE *json = fopen(json_path, "w");
    assert_non_null(json);
    int cases = 0, macro_differs = 0;
    worst = 0;
    while (*cur) {
        char name[64];
        int n, m;
        assert_int_equal(sscanf(next_line(&cur, "case"), "%63s %d %d", name, &n, &m), 3);
        assert_true(n >= 2 && n <= TR_MAX_CLASSES && m >= 1);
        char *names_line = next_line(&cur, "names"), *names[TR_MAX_CLASSES], *save = NULL;
        for (int c = 0; c < n; c++) {
            names[c] = strtok_r(c ? NULL : names_line, " ", &save);
            assert_non_null(names[c]);
        }
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
        check3(next_line(&cur, "macro_all"), name, "macro_all", mt.macro_all_precision, mt.macro_all_recall,
               mt.macro_all_f1);
        macro_differs += fabs(mt.macro_all_f1 - mt.macro_f1) > METRICS_TOL;
        p = next_line(&cur, "confusion");
        for (int k = 0; k < n * n; k++) {
            long long want = strtoll(p, &p, 10);
            if (mt.confusion[k] != want) {
                fprintf(stderr, "%s: confusion[%d][%d] = %lld, sklearn %lld\n", name, k / n, k % n,
                        (long long)mt.confusion[k], want);
                fail();
            }
        }
        check_report(&cur, name, &mt, (const char *const *)names);
        char *record = tr_metrics_json(&mt, (const char *const *)names);
        assert_non_null(record);
        fprintf(json, "%s\t{%s}\n", name, record);
        free(record);
        free(confusion);
        free(y);
        cases++;
    }
    assert_int_equal(fclose(json), 0);
    printf("metrics: %d cases, max |ours - sklearn| = %.3g; %d cases where the macro mean over range(n) differs; "
           "reports equal classification_report's text\n",
           cases, worst, macro_differs);
    assert_true(cases >= 28);
    assert_true(macro_differs > 0);
    snprintf(cmd, sizeof cmd, "%s %s --check-json %s", EMPD_PYTHON, TU_METRICS_SCRIPT, json_path);
    char *verdict = run_command(cmd);
    assert_non_null(verdict);
    printf("metrics: tr_metrics_json read by Python's json module: %s", verdict);
    free(verdict);
    tf_remove_tree(dir);
    free(text);
}

/* No labelled sample at all: every figure 0, nothing divided by zero; no names: the indices. */
void test_metrics_empty_and_unnamed(void **state) {
    (void)state;
    int64_t zero[4] = {0};
    tr_metrics mt;
    tr_metrics_compute(zero, 2, &mt);
    assert_int_equal(mt.total, 0);
    assert_int_equal(mt.n_present, 0);
    assert_true(mt.accuracy == 0 && mt.macro_f1 == 0 && mt.weighted_f1 == 0 && mt.macro_all_f1 == 0 &&
                mt.precision[0] == 0);
    int64_t two[4] = {3, 1, 0, 2};
    tr_metrics_compute(two, 2, &mt);
    char *json = tr_metrics_json(&mt, NULL);
    assert_non_null(json);
    assert_non_null(strstr(json, "{\"name\":\"0\",\"precision\":1,\"recall\":0.75,"));
    assert_non_null(strstr(json, "\"confusion\":[[3,1],[0,2]]"));
    free(json);
}
