#include "trainer/optim.h"

#include <stdlib.h>
#include <string.h>

int tr_adamw_init(tr_adamw *o, const mp_params *ps)
{
    memset(o, 0, sizeof *o);
    o->scope = tc_scope_new();
    o->exp_avg = calloc((size_t)ps->n + 1, sizeof *o->exp_avg);
    o->exp_avg_sq = calloc((size_t)ps->n + 1, sizeof *o->exp_avg_sq);
    if (!o->scope || !o->exp_avg || !o->exp_avg_sq) {
        tr_adamw_free(o);
        return TC_ENOMEM;
    }
    o->n = ps->n;
    tc_scope_enter(o->scope);
    for (int i = 0; i < ps->n; i++) {
        /* Frozen parameters and buffers never step: no moments (a frozen encoder costs no optimizer memory). */
        if (!mp_trainable(&ps->v[i]))
            continue;
        tc_tensor *p = ps->v[i].t;
        int64_t shape[TC_MAX_DIMS];
        int nd = tc_ndim(p);
        for (int d = 0; d < nd; d++)
            shape[d] = tc_size(p, d);
        o->exp_avg[i] = tc_zeros(shape, nd, tc_dtype_of(p), tc_device_of(p));
        o->exp_avg_sq[i] = tc_zeros(shape, nd, tc_dtype_of(p), tc_device_of(p));
    }
    int rc = tc_scope_status(o->scope);
    tc_scope_leave(o->scope);
    if (rc != TC_OK)
        tr_adamw_free(o);
    return rc;
}

void tr_adamw_free(tr_adamw *o)
{
    if (o->scope)
        tc_scope_free(o->scope);
    free(o->exp_avg);
    free(o->exp_avg_sq);
    free(o->lr_scale);
    memset(o, 0, sizeof *o);
}

int tr_adamw_step(tr_adamw *o, const mp_params *ps, const tr_config *cfg, double lr)
{
    o->step++;
    tc_scope *s = tc_scope_begin();
    int rc = TC_OK;
    for (int i = 0; rc == TC_OK && i < ps->n; i++) {
        tc_tensor *g = o->exp_avg[i] ? tc_grad(ps->v[i].t) : NULL;
        if (!g)
            continue;
        double lr_i = o->lr_scale ? lr * o->lr_scale[i] : lr;
        rc = tc_adamw_step(ps->v[i].t, g, o->exp_avg[i], o->exp_avg_sq[i], o->step, lr_i, cfg->train.beta1,
                           cfg->train.beta2, cfg->train.eps, cfg->train.weight_decay);
    }
    int end = tc_scope_end(s);
    return rc != TC_OK ? rc : end;
}

int tr_adamw_set_group(tr_adamw *o, const mp_params *ps, const char *prefixes, double scale)
{
    if (!o->lr_scale && !(o->lr_scale = malloc(((size_t)ps->n + 1) * sizeof *o->lr_scale)))
        return TC_ENOMEM;
    for (int i = 0; i < ps->n; i++) {
        const char *p = prefixes;
        int member = 0;
        while (!member && *p) {
            size_t len = strcspn(p, ",");
            member = len && !strncmp(ps->v[i].name, p, len);
            p += len + (p[len] == ',');
        }
        o->lr_scale[i] = member ? (float)scale : 1.0f;
    }
    return TC_OK;
}

double tr_lr_at(const tr_config *cfg, int64_t step)
{
    double peak = cfg->train.lr;
    int64_t warm = cfg->train.warmup_steps, decay = cfg->train.decay_steps;
    if (warm > 0 && step <= warm)
        return peak * (double)step / (double)warm;
    if (decay > warm && step > warm) {
        double left = (double)(decay - step) / (double)(decay - warm);
        return left > 0 ? peak * left : 0.0;
    }
    return peak;
}
