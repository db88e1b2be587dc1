#include "trainer/loss.h"

#include <stdio.h>
#include <string.h>

#include "models/errors.h"

int tr_loss_init(tr_loss *l, const tr_config *c, const ds_manifest *m, char *err, size_t errlen)
{
    memset(l, 0, sizeof *l);
    l->kind = (int)c->train.loss;
    l->gamma = c->train.focal_gamma;
    l->n_classes = (int)c->model.num_classes;
    if (c->train.class_weights == TR_WEIGHTS_NONE)
        return 0;
    const ds_manifest_split *train = ds_manifest_find_split(m, "train");
    const int64_t *hist = !train ? NULL
                          : l->n_classes == 7 ? train->label7_hist
                          : l->n_classes == 32 ? train->label32_hist : NULL;
    if (!hist)
        return md_fail(err, errlen, "train.class_weights=balanced: the shards' manifest has no training label "
                       "histogram of %d classes (7 or 32)", l->n_classes);
    int64_t n = 0;
    for (int k = 0; k < l->n_classes; k++)
        n += hist[k];
    if (n == 0)
        return md_fail(err, errlen, "train.class_weights=balanced: the training split has no labelled sample");
    for (int k = 0; k < l->n_classes; k++)
        l->weights[k] = hist[k] ? (float)((double)n / ((double)l->n_classes * (double)hist[k])) : 0.0f;
    l->weighted = 1;
    return 0;
}

tc_tensor *tr_loss_forward(const tr_loss *l, tc_tensor *logits, tc_tensor *target)
{
    tc_tensor *w = NULL;
    if (l->weighted && logits)
        w = tc_to_device(tc_from_blob((void *)l->weights, (int64_t[]){l->n_classes}, 1, TC_F32), tc_device_of(logits));
    if (l->kind == TR_LOSS_CE)
        return tc_cross_entropy(logits, target, w);
    int64_t col[2] = {tc_size(target, 0), 1};
    tc_tensor *logp_y = tc_squeeze(tc_gather(tc_log_softmax(logits, 1), 1, tc_reshape(target, col, 2)), 1);
    tc_tensor *focus = tc_pow(tc_add_scalar(tc_neg(tc_exp(logp_y)), 1.0), l->gamma);
    tc_tensor *per_sample = tc_neg(tc_mul(focus, logp_y));
    if (!w)
        return tc_mean_all(per_sample);
    tc_tensor *wy = tc_index_select(w, 0, target);
    return tc_div(tc_sum_all(tc_mul(wy, per_sample)), tc_sum_all(wy));
}
