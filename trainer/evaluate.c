#include "trainer/evaluate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int tr_evaluate(comm_group *g, ds_loader *l, tm_model *m, const tr_config *cfg, const char *split,
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
    size_t *idx = malloc(bs * sizeof *idx);
    float *logits = malloc(bs * (size_t)nc * sizeof *logits);
    ds_batch b = {0};
    int rc = 0;
    if (!idx || !logits || ds_batch_alloc(&b, (int)bs, DS_MAX_UTT, (int)cfg->model.utt_tokens, 2, err, errlen)) {
        snprintf(err, errlen, "evaluate %s: out of memory for a batch of %zu", split, bs);
        rc = -1;
    }
    size_t real, done = 0;
    tr_progress bar;
    tr_progress_begin(&bar, show_progress, split, "samples", 0, (int64_t)n);
    while (rc == 0 && ds_sampler_next(&s, idx, &real) == DS_SAMPLER_OK) {
        if (ds_loader_fill(l, split, idx, (int)bs, &b, err, errlen)) {
            rc = -1;
            break;
        }
        tc_scope *sc = tc_scope_begin();
        int was = tc_grad_enabled_set(0);
        tm_inputs in = tr_batch_inputs(&b);
        tc_tensor *z = tm_model_forward(m, &in, 0, NULL);
        int cp = z ? tc_copy_to_host(z, logits, bs * (size_t)nc * sizeof *logits) : TC_EINVAL;
        tc_grad_enabled_set(was);
        if (tc_scope_end(sc) != TC_OK || cp != TC_OK) {
            snprintf(err, errlen, "evaluate %s: forward failed: %s", split, tc_last_error());
            rc = -1;
            break;
        }
        score(logits, tr_batch_labels(&b, nc), real, nc, conf, sums);
        done += bs * (size_t)world;
        tr_progress_update(&bar, (int64_t)(done < n ? done : n), NULL);
    }
    tr_progress_end(&bar);
    if (rc == 0 && world > 1)
        rc = comm_allreduce(g, conf, (size_t)nc * (size_t)nc, COMM_I64, COMM_SUM, err, errlen) ||
             comm_allreduce(g, sums, 2, COMM_F64, COMM_SUM, err, errlen);
    ds_batch_free(&b);
    ds_sampler_free(&s);
    free(idx);
    free(logits);
    if (rc == 0) {
        tr_metrics_compute(conf, nc, out);
        *mean_loss = sums[1] > 0 ? sums[0] / sums[1] : 0;
    }
    return rc;
}
