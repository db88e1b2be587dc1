#include "trainer/evaluate.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/prefetch.h"
#include "dataset/sampler.h"
#include "models/errors.h"
#include "trainer/batch.h"
#include "trainer/progress.h"

/* A kept row: index, label, pred, then the probabilities. */
#define ROW_HEAD 3

int tr_eval_acc_init(tr_eval_acc *a, int n_classes, size_t keep, char *err, size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->n_classes = n_classes;
    if (n_classes < 2 || n_classes > TR_MAX_CLASSES)
        return md_fail(err, errlen, "evaluate: %d classes (2..%d can be scored)", n_classes, TR_MAX_CLASSES);
    if (keep == 0)
        return 0;
    size_t width = ROW_HEAD + (size_t)n_classes;
    a->rows = keep <= SIZE_MAX / width / sizeof *a->rows ? malloc(keep * width * sizeof *a->rows) : NULL;
    if (!a->rows)
        return md_fail(err, errlen, "evaluate: out of memory for the probabilities of %zu samples", keep);
    a->cap = keep;
    return 0;
}

void tr_eval_acc_free(tr_eval_acc *a)
{
    free(a->rows);
    a->rows = NULL;
    a->cap = a->used = 0;
}

int tr_eval_acc_add(tr_eval_acc *a, const float *logits, const int64_t *labels, const int64_t *index, size_t rows,
                    char *err, size_t errlen)
{
    int nc = a->n_classes;
    size_t width = ROW_HEAD + (size_t)nc;
    if (a->cap && a->used + rows > a->cap)
        return md_fail(err, errlen, "evaluate: %zu samples scored where %zu were expected", a->used + rows, a->cap);
    for (size_t i = 0; i < rows; i++) {
        const float *z = logits + i * (size_t)nc;
        if (index[i] < 0)
            return md_fail(err, errlen, "evaluate: a sample with the negative index %lld", (long long)index[i]);
        if (labels[i] >= nc)
            return md_fail(err, errlen, "evaluate: sample %lld has label %lld, outside 0..%d", (long long)index[i],
                           (long long)labels[i], nc - 1);
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (z[c] > z[best])
                best = c;
        /* log-sum-exp around the largest logit: no overflow, and the probabilities sum to 1 in double. */
        double mx = z[best], sum = 0;
        for (int c = 0; c < nc; c++)
            sum += exp((double)z[c] - mx);
        if (a->cap) {
            double *row = a->rows + a->used++ * width;
            row[0] = (double)index[i];
            row[1] = labels[i] >= 0 ? (double)labels[i] : -1.0;
            row[2] = best;
            for (int c = 0; c < nc; c++)
                row[ROW_HEAD + c] = exp((double)z[c] - mx) / sum;
        }
        if (labels[i] < 0)
            continue;
        a->confusion[labels[i] * nc + best]++;
        a->loss_sum += mx + log(sum) - (double)z[labels[i]];
        a->labelled += 1;
    }
    return 0;
}

/* Places the gathered rows (max_rows per rank, unused ones with index -1) into out by index. The same
 * rows reach every rank, so every rank reaches the same verdict. */
static int place_rows(const double *all, int world, size_t max_rows, int nc, size_t n, tr_eval *out,
                      int *from, char *err, size_t errlen)
{
    size_t width = ROW_HEAD + (size_t)nc, seen = 0;
    for (size_t k = 0; k < (size_t)world * max_rows; k++) {
        const double *row = all + k * width;
        if (row[0] < 0)
            continue;
        int rank = (int)(k / max_rows);
        if (!(row[0] < (double)n))
            return md_fail(err, errlen, "evaluate: rank %d scored sample %.0f of a split of %zu", rank, row[0], n);
        size_t pos = (size_t)row[0];
        if (from[pos])
            return md_fail(err, errlen, "evaluate: sample %zu was scored twice (ranks %d and %d)", pos, from[pos] - 1,
                           rank);
        from[pos] = rank + 1;
        out->label[pos] = (int64_t)row[1];
        out->pred[pos] = (int)row[2];
        memcpy(out->probs + pos * (size_t)nc, row + ROW_HEAD, (size_t)nc * sizeof *out->probs);
        seen++;
    }
    if (seen != n) {
        size_t first = 0;
        while (from[first])
            first++;
        return md_fail(err, errlen, "evaluate: %zu of %zu samples were never scored (the first: sample %zu)", n - seen,
                       n, first);
    }
    return 0;
}

/* Every rank's rows into out by index. The ranks' counts differ (the padding of the last step is not
 * kept), so the largest count comes first and every rank sends that many rows, its unused ones marked
 * -1: one all-gather of equal sizes carries them all. Every rank takes part in every collective here
 * whatever happens locally, and the local failures are agreed on before the gather. */
static int gather_rows(comm_group *g, tr_eval_acc *a, size_t n, tr_eval *out, char *err, size_t errlen)
{
    int world = comm_size(g), nc = a->n_classes;
    size_t width = ROW_HEAD + (size_t)nc;
    int64_t most = (int64_t)a->used;
    int rc = comm_allreduce(g, &most, 1, COMM_I64, COMM_MAX, err, errlen) ? -1 : 0;
    size_t max_rows = (size_t)most, bytes = max_rows * width * sizeof(double);
    if (rc == 0 && max_rows > (size_t)INT_MAX / width / sizeof(double))
        rc = md_fail(err, errlen, "evaluate: %zu samples of %d classes per rank are too many to gather", max_rows, nc);
    double *all = NULL;
    int *from = NULL;
    if (rc == 0) {
        double *grown = max_rows > a->cap ? realloc(a->rows, bytes) : a->rows;
        if (grown) {
            a->rows = grown;
            a->cap = max_rows > a->cap ? max_rows : a->cap;
            for (size_t k = a->used; k < max_rows; k++) {
                memset(a->rows + k * width, 0, width * sizeof *a->rows);
                a->rows[k * width] = -1;
            }
        }
        size_t nn = n ? n : 1;
        all = malloc(bytes * (size_t)world + 1);
        from = calloc(nn, sizeof *from);
        out->label = malloc(nn * sizeof *out->label);
        out->pred = malloc(nn * sizeof *out->pred);
        out->probs = malloc(nn * (size_t)nc * sizeof *out->probs);
        if (!grown || !all || !from || !out->label || !out->pred || !out->probs)
            rc = md_fail(err, errlen, "evaluate: out of memory for the probabilities of %zu samples", n);
    }
    double bad = rc ? 1 : 0;
    if (comm_allreduce(g, &bad, 1, COMM_F64, COMM_MAX, rc ? NULL : err, rc ? 0 : errlen))
        rc = -1;
    else if (rc == 0 && bad > 0)
        rc = md_fail(err, errlen, "evaluate: another rank failed to gather the probabilities (its own line says why)");
    if (rc == 0 && comm_allgather(g, a->rows, all, bytes, err, errlen))
        rc = -1;
    if (rc == 0)
        rc = place_rows(all, world, max_rows, nc, n, out, from, err, errlen);
    free(all);
    free(from);
    out->n = (int64_t)n;
    return rc;
}

int tr_eval_acc_finish(comm_group *g, tr_eval_acc *a, int failed, size_t n, tr_eval *out, char *err, size_t errlen)
{
    int nc = a->n_classes;
    memset(out, 0, sizeof *out);
    out->n_classes = nc;
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES];
    memcpy(conf, a->confusion, sizeof conf);
    double sums[3] = {a->loss_sum, a->labelled, failed ? 1 : 0};
    int rc = failed ? -1 : 0;
    char *e = failed ? NULL : err;
    size_t el = failed ? 0 : errlen;
    if (nc >= 2 && nc <= TR_MAX_CLASSES &&
        (comm_allreduce(g, conf, (size_t)nc * (size_t)nc, COMM_I64, COMM_SUM, e, el) ||
         comm_allreduce(g, sums, 3, COMM_F64, COMM_SUM, e, el)))
        rc = -1;
    if (rc == 0 && sums[2] > 0)
        rc = md_fail(err, errlen, "evaluate: another rank failed (its own line says why)");
    if (rc == 0 && a->cap)
        rc = gather_rows(g, a, n, out, err, errlen);
    if (rc) {
        tr_eval_free(out);
        return -1;
    }
    tr_metrics_compute(conf, nc, &out->metrics);
    out->loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
    return 0;
}

/* This rank's share of split into a (its own errors in err). */
static int score_split(ds_loader *l, tr_model *m, const tr_config *cfg, const char *split, ds_sampler *s,
                       int show_progress, tr_eval_acc *a, char *err, size_t errlen)
{
    size_t n = s->n, bs = s->batch, world = (size_t)s->world;
    int nc = a->n_classes;
    ds_prefetch_opts po = {.threads = (int)cfg->data.loader_threads,
                           .depth = (int)cfg->data.prefetch_depth,
                           .shape = tr_model_batch_shape(cfg, ds_loader_manifest(l)),
                           .allocator = tr_batch_allocator(tc_device_of(tr_model_params(m)->v[0].t))};
    float *logits = malloc(bs * (size_t)nc * sizeof *logits);
    if (!logits)
        return md_fail(err, errlen, "evaluate %s: out of memory for a batch of %zu", split, bs);
    ds_prefetch *pf = NULL;
    int rc = ds_prefetch_open(l, split, s, &po, &pf, err, errlen) ? -1 : 0;
    size_t done = 0;
    tr_progress bar;
    tr_progress_begin(&bar, show_progress, split, "samples", 0, (int64_t)n);
    ds_prefetch_item it;
    while (rc == 0 && (rc = ds_prefetch_next(pf, &it, err, errlen)) == 0) {
        tc_scope *sc = tc_scope_begin();
        int was = tc_grad_enabled_set(0);
        tc_tensor *z = tr_model_forward(m, it.batch, 0, NULL);
        int cp = z ? tc_copy_to_host(z, logits, bs * (size_t)nc * sizeof *logits) : TC_EINVAL;
        tc_grad_enabled_set(was);
        if (tc_scope_end(sc) != TC_OK || cp != TC_OK)
            rc = md_fail(err, errlen, "evaluate %s: forward failed: %s", split, tc_last_error());
        else
            rc = tr_eval_acc_add(a, logits, tr_batch_labels(it.batch, nc), it.batch->sample_index, it.n_real, err,
                                 errlen);
        ds_prefetch_release(pf, &it);
        done += bs * world;
        tr_progress_update(&bar, (int64_t)(done < n ? done : n), NULL);
    }
    tr_progress_end(&bar);
    ds_prefetch_close(pf);
    free(logits);
    return rc == DS_PREFETCH_END ? 0 : -1;
}

int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, int samples, tr_eval *out, char *err, size_t errlen)
{
    size_t n = ds_loader_count(l, split), bs = (size_t)cfg->train.batch_size;
    int nc = (int)cfg->model.num_classes;
    ds_sampler s;
    memset(&s, 0, sizeof s);
    tr_eval_acc a;
    int rc = tr_eval_acc_init(&a, nc, 0, err, errlen);
    if (rc == 0 && n > 0) {
        rc = ds_sampler_init(&s, n, comm_size(g), comm_rank(g), bs, 0, 0, err, errlen) ? -1 : 0;
        /* The sampler's real rows of this rank: ceil(n / G) steps of bs rows, minus the padding. */
        if (rc == 0 && samples)
            rc = tr_eval_acc_init(&a, nc, ds_sampler_steps_per_epoch(&s) * bs, err, errlen);
        if (rc == 0)
            rc = score_split(l, m, cfg, split, &s, show_progress, &a, err, errlen);
    }
    ds_sampler_free(&s);
    rc = tr_eval_acc_finish(g, &a, rc != 0, n, out, err, errlen);
    tr_eval_acc_free(&a);
    return rc;
}

void tr_eval_free(tr_eval *e)
{
    free(e->label);
    free(e->pred);
    free(e->probs);
    e->label = NULL;
    e->pred = NULL;
    e->probs = NULL;
    e->n = 0;
}
