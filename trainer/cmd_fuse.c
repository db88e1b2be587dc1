/* empd fuse: late fusion of trained runs' val and test predictions (method in trainer/fuse.h).
 *
 * Every fitted method is scored on val out-of-fold (fit on the other folds, applied to the held-out one),
 * so the methods compete on samples none of them was fit on; the chosen one is then fit on all of val and
 * applied to test, which is only reported. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "models/errors.h"
#include "trainer/checkpoint.h"
#include "trainer/commands.h"
#include "trainer/fuse.h"
#include "trainer/fusion_file.h"
#include "trainer/metrics.h"
#include "trainer/predictions.h"
#include "trainer/report.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: empd fuse --out DIR [--select METRIC] [--folds K] RUN RUN...\n\n"
               "  RUN             a training run folder (its predictions/val.csv and test.csv), 2 to %d of them\n"
               "  --out DIR       where fusion.json, predictions/{val,test}.csv and the report go (created)\n"
               "  --select METRIC what chooses the method on val: accuracy (default), macro_f1, weighted_f1\n"
               "                  or nll\n"
               "  --folds K       stratified folds of val for out-of-fold scores and stacking's C (5)\n",
            TR_FUSE_MAX_MODELS);
}

static const double stacking_cs[] = {0.01, 0.1, 1, 10, 100};

typedef struct {
    const char *name;
    tr_predictions split[2]; /* val, test */
} run_in;

/* Scores of one set of probabilities against labels (unlabelled rows skipped). */
typedef struct {
    tr_metrics m;
    double nll;
} score;

static void score_probs(const double *probs, const int64_t *y, size_t n, int k, score *s)
{
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES] = {0};
    double nll = 0;
    size_t labelled = 0;
    for (size_t i = 0; i < n; i++) {
        if (y[i] < 0)
            continue;
        const double *p = probs + i * (size_t)k;
        int best = 0;
        for (int c = 1; c < k; c++)
            best = p[c] > p[best] ? c : best;
        conf[y[i] * k + best]++;
        nll -= log(fmax(p[y[i]], 1e-300));
        labelled++;
    }
    tr_metrics_compute(conf, k, &s->m);
    s->nll = labelled ? nll / (double)labelled : 0;
}

static double select_value(const score *s, const char *metric)
{
    if (!strcmp(metric, "nll"))
        return -s->nll;
    if (!strcmp(metric, "macro_f1"))
        return s->m.macro_f1;
    if (!strcmp(metric, "weighted_f1"))
        return s->m.weighted_f1;
    return s->m.accuracy;
}

typedef struct {
    const char *id;
    int64_t row;
} id_row;

static int cmp_id(const void *a, const void *b) { return strcmp(((const id_row *)a)->id, ((const id_row *)b)->id); }

/* Rows of run r's split in the order of run 0's ids: order[i] = run r's row of run 0's sample i. */
static int align(const tr_predictions *base, const tr_predictions *p, const char *what, int64_t *order, char *err,
                 size_t errlen)
{
    if (p->n != base->n)
        return md_fail(err, errlen, "%s: %lld samples, but the first run's has %lld", what, (long long)p->n,
                       (long long)base->n);
    id_row *a = malloc((size_t)(base->n + 1) * sizeof *a), *b = malloc((size_t)(base->n + 1) * sizeof *b);
    if (!a || !b) {
        free(a);
        free(b);
        return md_fail(err, errlen, "%s: out of memory", what);
    }
    for (int64_t i = 0; i < base->n; i++) {
        a[i] = (id_row){base->ids[i], i};
        b[i] = (id_row){p->ids[i], i};
    }
    qsort(a, (size_t)base->n, sizeof *a, cmp_id);
    qsort(b, (size_t)base->n, sizeof *b, cmp_id);
    int rc = 0;
    for (int64_t i = 0; i < base->n && !rc; i++) {
        int c = strcmp(a[i].id, b[i].id);
        if (c)
            rc = md_fail(err, errlen, "%s: sample id '%s' %s", what, c < 0 ? a[i].id : b[i].id,
                         c < 0 ? "of the first run is missing here" : "is not in the first run's");
        else if (base->label[a[i].row] != p->label[b[i].row])
            rc = md_fail(err, errlen, "%s: sample '%s' has label %lld, the first run's %lld", what, b[i].id,
                         (long long)p->label[b[i].row], (long long)base->label[a[i].row]);
        order[a[i].row] = b[i].row;
    }
    free(a);
    free(b);
    return rc;
}

/* One split's aligned probabilities of every run: probs[m][i * k + c] in run 0's sample order. */
typedef struct {
    size_t n;
    double *probs[TR_FUSE_MAX_MODELS];
    int64_t *y;
} split_data;

static int gather(run_in *runs, int nr, int s, split_data *out, char *err, size_t errlen)
{
    const tr_predictions *base = &runs[0].split[s];
    const int k = base->n_classes;
    memset(out, 0, sizeof *out);
    out->n = (size_t)base->n;
    int64_t *order = malloc((out->n + 1) * sizeof *order);
    out->y = malloc((out->n + 1) * sizeof *out->y);
    if (!order || !out->y) {
        free(order);
        return md_fail(err, errlen, "fuse: out of memory for %zu samples", out->n);
    }
    memcpy(out->y, base->label, out->n * sizeof *out->y);
    int rc = 0;
    for (int r = 0; r < nr && !rc; r++) {
        const tr_predictions *p = &runs[r].split[s];
        char what[600];
        snprintf(what, sizeof what, "%s/predictions/%s.csv", runs[r].name, s ? "test" : "val");
        if (p->n_classes != k) {
            rc = md_fail(err, errlen, "%s: %d classes, but the first run's have %d", what, p->n_classes, k);
            break;
        }
        for (int c = 0; c < k && !rc; c++)
            if (strcmp(p->class_names[c], base->class_names[c]))
                rc = md_fail(err, errlen, "%s: class %d is '%s', the first run's '%s'", what, c, p->class_names[c],
                             base->class_names[c]);
        if (rc || (rc = align(base, p, what, order, err, errlen)))
            break;
        out->probs[r] = malloc((out->n * (size_t)k + 1) * sizeof(double));
        if (!out->probs[r]) {
            rc = md_fail(err, errlen, "fuse: out of memory for %zu samples", out->n);
            break;
        }
        for (size_t i = 0; i < out->n; i++)
            memcpy(out->probs[r] + i * k, p->probs + (size_t)order[i] * k, (size_t)k * sizeof(double));
    }
    free(order);
    return rc;
}

static void split_free(split_data *d)
{
    for (int m = 0; m < TR_FUSE_MAX_MODELS; m++)
        free(d->probs[m]);
    free(d->y);
}

static void apply_rows(const tr_fusion *f, tr_fuse_method m, const split_data *d, int nr, int k, size_t i,
                       double *out)
{
    const double *p[TR_FUSE_MAX_MODELS];
    for (int r = 0; r < nr; r++)
        p[r] = d->probs[r] + i * (size_t)k;
    tr_fuse_apply(f, m, p, out);
}

/* Out-of-fold val probabilities of method m: fit on the other folds, applied to each held-out fold. */
static int out_of_fold(const tr_fuse_data *val, const split_data *vd, tr_fuse_method m, int folds, double *out)
{
    const int k = val->k;
    int *fold = malloc((val->n + 1) * sizeof *fold);
    size_t *rows = malloc((val->n + 1) * sizeof *rows);
    int rc = fold && rows ? 0 : -1;
    if (!rc)
        tr_fuse_folds(val->y, val->n, k, folds, fold);
    for (int f = 0; f < folds && !rc; f++) {
        size_t nrows = 0;
        for (size_t i = 0; i < val->n; i++)
            if (fold[i] != f)
                rows[nrows++] = i;
        if (nrows == val->n)
            continue;
        tr_fusion fit;
        rc = tr_fuse_fit(val, rows, nrows, m, stacking_cs, (int)(sizeof stacking_cs / sizeof stacking_cs[0]), folds,
                         &fit);
        for (size_t i = 0; i < val->n && !rc; i++)
            if (fold[i] == f)
                apply_rows(&fit, m, vd, val->n_models, k, i, out + i * k);
        tr_fuse_free(&fit);
    }
    free(fold);
    free(rows);
    return rc;
}

/* A tr_eval of probabilities, for tr_predictions_write. */
static int write_predictions(const char *path, const split_data *d, const tr_predictions *base, const double *probs,
                             int k, char *err, size_t errlen)
{
    tr_eval e = {0};
    e.n = (int64_t)d->n;
    e.n_classes = k;
    e.label = d->y;
    e.probs = (double *)probs;
    e.pred = malloc((d->n + 1) * sizeof *e.pred);
    if (!e.pred)
        return md_fail(err, errlen, "%s: out of memory", path);
    for (size_t i = 0; i < d->n; i++) {
        int best = 0;
        for (int c = 1; c < k; c++)
            best = probs[i * k + c] > probs[i * k + best] ? c : best;
        e.pred[i] = best;
    }
    ds_strv ids = {.v = base->ids, .n = (size_t)base->n};
    int rc = tr_predictions_write(path, &e, &ids, err, errlen);
    free(e.pred);
    return rc;
}

int cmd_fuse(int argc, char **argv)
{
    const char *out = NULL, *select = "accuracy";
    int folds = 5;
    static const struct option opts[] = {{"out", required_argument, 0, 'o'}, {"select", required_argument, 0, 's'},
                                         {"folds", required_argument, 0, 'k'}, {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'o': out = optarg; break;
        case 's': select = optarg; break;
        case 'k':
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || *end || v < 2 || v > 100) {
                fprintf(stderr, "empd fuse: --folds '%s' is not a whole number in 2..100\n", optarg);
                return 2;
            }
            folds = (int)v;
            break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    const int nr = argc - optind;
    if (!out || nr < 2 || nr > TR_FUSE_MAX_MODELS) {
        if (out)
            fprintf(stderr, "empd fuse: %d runs given; fusion takes 2 to %d\n", nr, TR_FUSE_MAX_MODELS);
        usage(stderr);
        return 2;
    }
    if (strcmp(select, "accuracy") && strcmp(select, "macro_f1") && strcmp(select, "weighted_f1") &&
        strcmp(select, "nll")) {
        fprintf(stderr, "empd fuse: --select '%s' is not accuracy, macro_f1, weighted_f1 or nll\n", select);
        return 2;
    }

    char err[1024];
    run_in runs[TR_FUSE_MAX_MODELS] = {0};
    split_data data[2] = {0};
    double *probs[2][TR_FUSE_METHODS] = {{0}};
    tr_fusion chosen_fit = {0};
    int rc = 1, have_fit = 0;
    for (int r = 0; r < nr; r++) {
        runs[r].name = argv[optind + r];
        for (int s = 0; s < 2; s++) {
            char path[4200];
            snprintf(path, sizeof path, "%s/predictions/%s.csv", runs[r].name, s ? "test" : "val");
            if (tr_predictions_read(path, &runs[r].split[s], err, sizeof err)) {
                fprintf(stderr, "empd fuse: %s\n", err);
                goto done;
            }
        }
        for (int64_t i = 0; i < runs[r].split[0].n; i++)
            if (runs[r].split[0].label[i] < 0) {
                fprintf(stderr, "empd fuse: %s/predictions/val.csv: sample '%s' has no label; fusion is fit on "
                                "labelled val samples\n", runs[r].name, runs[r].split[0].ids[i]);
                goto done;
            }
    }
    for (int s = 0; s < 2; s++)
        if (gather(runs, nr, s, &data[s], err, sizeof err)) {
            fprintf(stderr, "empd fuse: %s\n", err);
            goto done;
        }
    const int k = runs[0].split[0].n_classes;
    if (data[0].n < (size_t)folds) {
        fprintf(stderr, "empd fuse: %s/predictions/val.csv: %zu samples, fewer than the %d folds\n", runs[0].name,
                data[0].n, folds);
        goto done;
    }
    tr_fuse_data val = {nr, k, data[0].n, (const double *const *)data[0].probs, data[0].y};

    /* Scores: each run alone, then each method (val out-of-fold; test from the fit on all of val). */
    score single[TR_FUSE_MAX_MODELS][2], method[TR_FUSE_METHODS][2];
    for (int r = 0; r < nr; r++)
        for (int s = 0; s < 2; s++)
            score_probs(data[s].probs[r], data[s].y, data[s].n, k, &single[r][s]);
    tr_fusion fits[TR_FUSE_METHODS] = {{0}};
    int best = 0;
    for (int m = 0; m < TR_FUSE_METHODS; m++) {
        for (int s = 0; s < 2; s++)
            probs[s][m] = malloc((data[s].n * (size_t)k + 1) * sizeof(double));
        if (!probs[0][m] || !probs[1][m] || out_of_fold(&val, &data[0], m, folds, probs[0][m]) ||
            tr_fuse_fit(&val, NULL, 0, m, stacking_cs, (int)(sizeof stacking_cs / sizeof stacking_cs[0]), folds,
                        &fits[m])) {
            fprintf(stderr, "empd fuse: out of memory fitting %s\n", tr_fuse_method_name(m));
            for (int j = 0; j < m; j++)
                tr_fuse_free(&fits[j]);
            goto done;
        }
        for (size_t i = 0; i < data[1].n; i++)
            apply_rows(&fits[m], m, &data[1], nr, k, i, probs[1][m] + i * k);
        for (int s = 0; s < 2; s++)
            score_probs(probs[s][m], data[s].y, data[s].n, k, &method[m][s]);
        if (select_value(&method[m][0], select) > select_value(&method[best][0], select))
            best = m;
    }
    /* fusion.json holds every method's parameters (predict may apply any); `method` is the chosen one. */
    chosen_fit = fits[TR_FUSE_STACKING];
    for (int r = 0; r < nr; r++) {
        chosen_fit.temperature[r] = fits[TR_FUSE_WEIGHTED].temperature[r];
        chosen_fit.weight[r] = fits[TR_FUSE_WEIGHTED].weight[r];
    }
    have_fit = 1;
    tr_fuse_free(&fits[TR_FUSE_WEIGHTED]);
    tr_fuse_free(&fits[TR_FUSE_AVERAGE]);

    if (mkdir(out, 0777) && errno != EEXIST) {
        fprintf(stderr, "empd fuse: cannot create %s: %s\n", out, strerror(errno));
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/predictions", out);
    if (mkdir(path, 0777) && errno != EEXIST) {
        fprintf(stderr, "empd fuse: cannot create %s: %s\n", path, strerror(errno));
        goto done;
    }
    tr_fusion_info info = {.method = (tr_fuse_method)best, .select = select, .folds = folds, .n_runs = nr,
                           .class_names = (const char *const *)runs[0].split[0].class_names};
    for (int r = 0; r < nr; r++)
        info.runs[r] = runs[r].name;
    for (int m = 0; m < TR_FUSE_METHODS; m++)
        for (int s = 0; s < 2; s++) {
            info.method_metrics[m][s] = method[m][s].m;
            info.method_nll[m][s] = method[m][s].nll;
        }
    for (int r = 0; r < nr; r++)
        for (int s = 0; s < 2; s++) {
            info.run_metrics[r][s] = single[r][s].m;
            info.run_nll[r][s] = single[r][s].nll;
        }
    info.n[0] = data[0].n;
    info.n[1] = data[1].n;
    snprintf(path, sizeof path, "%s/fusion.json", out);
    if (tr_fusion_write(path, &chosen_fit, &info, err, sizeof err)) {
        fprintf(stderr, "empd fuse: %s\n", err);
        goto done;
    }
    for (int s = 0; s < 2; s++) {
        snprintf(path, sizeof path, "%s/predictions/%s.csv", out, s ? "test" : "val");
        if (write_predictions(path, &data[s], &runs[0].split[s], probs[s][best], k, err, sizeof err)) {
            fprintf(stderr, "empd fuse: %s\n", err);
            goto done;
        }
    }

    printf("fuse: %d runs, %zu val and %zu test samples, %d classes; methods scored on val out of %d folds, "
           "chosen by %s: %s\n",
           nr, data[0].n, data[1].n, k, folds, select, tr_fuse_method_name(best));
    printf("%-28s %8s %8s %8s | %8s %8s %8s %8s\n", "model", "val_acc", "val_mF1", "val_nll", "test_acc", "test_mF1",
           "test_wF1", "test_nll");
    for (int r = 0; r < nr + TR_FUSE_METHODS; r++) {
        const score *sc = r < nr ? single[r] : method[r - nr];
        char name[40];
        if (r < nr) {
            const char *slash = strrchr(runs[r].name, '/');
            snprintf(name, sizeof name, "%s", slash && slash[1] ? slash + 1 : runs[r].name);
        } else {
            snprintf(name, sizeof name, "fusion: %s%s", tr_fuse_method_name(r - nr), r - nr == best ? " *" : "");
        }
        printf("%-28s %8.4f %8.4f %8.4f | %8.4f %8.4f %8.4f %8.4f\n", name, sc[0].m.accuracy, sc[0].m.macro_f1,
               sc[0].nll, sc[1].m.accuracy, sc[1].m.macro_f1, sc[1].m.weighted_f1, sc[1].nll);
    }
    printf("fuse: wrote %s/fusion.json and %s/predictions/{val,test}.csv\n", out, out);
    if (tr_report_fusion(out, err, sizeof err)) {
        fprintf(stderr, "empd fuse: %s\n", err);
        goto done;
    }
    printf("fuse: report in %s/report.html\n", out);
    rc = 0;
done:
    if (have_fit)
        tr_fuse_free(&chosen_fit);
    for (int s = 0; s < 2; s++) {
        split_free(&data[s]);
        for (int m = 0; m < TR_FUSE_METHODS; m++)
            free(probs[s][m]);
    }
    for (int r = 0; r < nr; r++)
        for (int s = 0; s < 2; s++)
            tr_predictions_free(&runs[r].split[s]);
    return rc;
}
