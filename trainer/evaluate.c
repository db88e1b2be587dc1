#include "trainer/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/prefetch.h"
#include "dataset/sampler.h"
#include "trainer/batch.h"
#include "trainer/progress.h"

/* One rank's samples of a split, as rows of (position in the split, label, prediction, probabilities...) in
 * doubles, so that one all-gather brings them together (unused rows hold position -1). */
typedef struct {
    double *rows;
    size_t cap, used;
    int width;
} sample_rows;

/* Adds rows [0, real) of logits to the confusion matrix and the loss sums; with keep, also their
 * softmax probabilities at positions first, first + 1, ... of the split. */
static void score(const float *logits, const int64_t *y, size_t real, int nc, int64_t *conf, double *sums,
                  sample_rows *keep, size_t first)
{
    for (size_t i = 0; i < real; i++) {
        const float *z = logits + i * (size_t)nc;
        int best = 0;
        for (int c = 1; c < nc; c++)
            if (z[c] > z[best])
                best = c;
        double mx = z[best], lse = 0;
        for (int c = 0; c < nc; c++)
            lse += exp((double)z[c] - mx);
        if (keep && keep->used < keep->cap) {
            double *row = keep->rows + keep->used++ * (size_t)keep->width;
            row[0] = (double)(first + i);
            row[1] = y[i] >= 0 && y[i] < nc ? (double)y[i] : -1.0;
            row[2] = best;
            for (int c = 0; c < nc; c++)
                row[3 + c] = exp((double)z[c] - mx) / lse;
        }
        if (y[i] < 0 || y[i] >= nc)
            continue;
        conf[y[i] * nc + best]++;
        sums[0] += mx + log(lse) - z[y[i]];
        sums[1] += 1;
    }
}

/* Every rank's rows into out, by position. */
static int gather_samples(comm_group *g, const sample_rows *mine, size_t n, int nc, tr_eval *out, char *err,
                          size_t errlen)
{
    int world = comm_size(g);
    size_t bytes = mine->cap * (size_t)mine->width * sizeof(double);
    double *all = malloc(bytes * (size_t)world + 1);
    out->label = malloc((n ? n : 1) * sizeof *out->label);
    out->pred = malloc((n ? n : 1) * sizeof *out->pred);
    out->probs = malloc((n ? n : 1) * (size_t)nc * sizeof *out->probs);
    int rc = all && out->label && out->pred && out->probs ? 0 : -1;
    if (rc)
        snprintf(err, errlen, "evaluate: out of memory for the probabilities of %zu samples", n);
    /* Every rank joins the gather, even after a local failure, so none waits alone. */
    if (comm_allgather(g, mine->rows, all, bytes, rc ? NULL : err, rc ? 0 : errlen))
        rc = -1;
    size_t seen = 0;
    for (size_t k = 0; rc == 0 && k < mine->cap * (size_t)world; k++) {
        const double *row = all + k * (size_t)mine->width;
        if (row[0] < 0)
            continue;
        size_t pos = (size_t)row[0];
        out->label[pos] = (int64_t)row[1];
        out->pred[pos] = (int)row[2];
        for (int c = 0; c < nc; c++)
            out->probs[pos * (size_t)nc + (size_t)c] = (float)row[3 + c];
        seen++;
    }
    if (rc == 0 && seen != n) {
        snprintf(err, errlen, "evaluate: gathered %zu samples of %zu", seen, n);
        rc = -1;
    }
    free(all);
    out->n = (int64_t)n;
    out->n_classes = nc;
    return rc;
}

int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, int samples, tr_eval *out, char *err, size_t errlen)
{
    size_t n = ds_loader_count(l, split);
    int nc = (int)cfg->model.num_classes, world = comm_size(g), rank = comm_rank(g);
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES] = {0};
    double sums[3] = {0, 0, 0}; /* loss sum, labeled samples, ranks that failed */
    memset(out, 0, sizeof *out);
    if (n == 0) {
        out->n_classes = nc;
        tr_metrics_compute(conf, nc, &out->metrics);
        return 0;
    }
    size_t bs = (size_t)cfg->train.batch_size;
    ds_sampler s;
    if (ds_sampler_init(&s, n, world, rank, bs, 0, 0, err, errlen))
        return -1;
    ds_prefetch_opts po = {.threads = (int)cfg->data.loader_threads,
                           .depth = (int)cfg->data.prefetch_depth,
                           .shape = tr_model_batch_shape(cfg, ds_loader_manifest(l)),
                           .allocator = tr_batch_allocator(tc_device_of(tr_model_params(m)->v[0].t))};
    ds_prefetch *pf = NULL;
    float *logits = malloc(bs * (size_t)nc * sizeof *logits);
    sample_rows keep = {.cap = ds_sampler_steps_per_epoch(&s) * bs, .width = 3 + nc};
    keep.rows = samples ? malloc(keep.cap * (size_t)keep.width * sizeof *keep.rows + 1) : NULL;
    for (size_t k = 0; keep.rows && k < keep.cap; k++)
        keep.rows[k * (size_t)keep.width] = -1;
    int rc = 0;
    if (!logits || (samples && !keep.rows)) {
        snprintf(err, errlen, "evaluate %s: out of memory for a batch of %zu", split, bs);
        rc = -1;
    } else if (ds_prefetch_open(l, split, &s, &po, &pf, err, errlen)) {
        rc = -1;
    }
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
        if (tc_scope_end(sc) != TC_OK || cp != TC_OK) {
            snprintf(err, errlen, "evaluate %s: forward failed: %s", split, tc_last_error());
            rc = -1;
        } else {
            /* The identity order: this rank's rows of the step start at done + rank * bs. */
            score(logits, tr_batch_labels(it.batch, nc), it.n_real, nc, conf, sums, samples ? &keep : NULL,
                  done + (size_t)rank * bs);
        }
        ds_prefetch_release(pf, &it);
        done += bs * (size_t)world;
        tr_progress_update(&bar, (int64_t)(done < n ? done : n), NULL);
    }
    rc = rc == DS_PREFETCH_END ? 0 : -1;
    tr_progress_end(&bar);
    ds_prefetch_close(pf);
    ds_sampler_free(&s);
    free(logits);
    /* Every rank reduces, a failed one too (sums[2] tells the others), so none waits alone. */
    sums[2] = rc ? 1 : 0;
    char *e = rc ? NULL : err;
    size_t el = rc ? 0 : errlen;
    if (world > 1 && (comm_allreduce(g, conf, (size_t)nc * (size_t)nc, COMM_I64, COMM_SUM, e, el) ||
                      comm_allreduce(g, sums, 3, COMM_F64, COMM_SUM, e, el)))
        rc = -1;
    if (rc == 0 && sums[2] > 0) {
        snprintf(err, errlen, "evaluate %s: another rank failed (its own line says why)", split);
        rc = -1;
    }
    if (rc == 0 && samples)
        rc = gather_samples(g, &keep, n, nc, out, err, errlen);
    free(keep.rows);
    if (rc == 0) {
        tr_metrics_compute(conf, nc, &out->metrics);
        out->loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
    } else {
        tr_eval_free(out);
    }
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
