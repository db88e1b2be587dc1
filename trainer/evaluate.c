#include "trainer/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/prefetch.h"
#include "dataset/sampler.h"
#include "trainer/batch.h"
#include "trainer/progress.h"

/* Adds rows [0, real) of logits to the confusion matrix and the loss sums. */
static void score(const float *logits, const int64_t *y, size_t real, int nc, int64_t *conf, double *sums)
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
        if (y[i] < 0 || y[i] >= nc)
            continue;
        conf[y[i] * nc + best]++;
        sums[0] += mx + log(lse) - z[y[i]];
        sums[1] += 1;
    }
}

int tr_evaluate(comm_group *g, ds_loader *l, tr_model *m, const tr_config *cfg, const char *split,
                int show_progress, tr_metrics *out, double *mean_loss, char *err, size_t errlen)
{
    size_t n = ds_loader_count(l, split);
    int nc = (int)cfg->model.num_classes, world = comm_size(g);
    int64_t conf[TR_MAX_CLASSES * TR_MAX_CLASSES] = {0};
    double sums[2] = {0, 0}; /* loss sum, labeled samples */
    memset(out, 0, sizeof *out);
    *mean_loss = 0;
    if (n == 0)
        return 0;
    size_t bs = (size_t)cfg->train.batch_size;
    ds_sampler s;
    if (ds_sampler_init(&s, n, world, comm_rank(g), bs, 0, 0, err, errlen))
        return -1;
    ds_prefetch_opts po = {.threads = (int)cfg->data.loader_threads,
                           .depth = (int)cfg->data.prefetch_depth,
                           .shape = tr_model_batch_shape(cfg, ds_loader_manifest(l)),
                           .allocator = tr_batch_allocator(tc_device_of(tr_model_params(m)->v[0].t))};
    ds_prefetch *pf = NULL;
    float *logits = malloc(bs * (size_t)nc * sizeof *logits);
    int rc = 0;
    if (!logits) {
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
            score(logits, tr_batch_labels(it.batch, nc), it.n_real, nc, conf, sums);
        }
        ds_prefetch_release(pf, &it);
        done += bs * (size_t)world;
        tr_progress_update(&bar, (int64_t)(done < n ? done : n), NULL);
    }
    rc = rc == DS_PREFETCH_END ? 0 : -1;
    tr_progress_end(&bar);
    if (rc == 0 && world > 1)
        rc = comm_allreduce(g, conf, (size_t)nc * (size_t)nc, COMM_I64, COMM_SUM, err, errlen) ||
             comm_allreduce(g, sums, 2, COMM_F64, COMM_SUM, err, errlen);
    ds_prefetch_close(pf);
    ds_sampler_free(&s);
    free(logits);
    if (rc == 0) {
        tr_metrics_compute(conf, nc, out);
        *mean_loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
    }
    return rc;
}
