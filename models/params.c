#include "models/params.h"

#include <stdlib.h>
#include <string.h>

int mp_params_init(mp_params *ps, uint64_t seed)
{
    memset(ps, 0, sizeof *ps);
    ps->scope = tc_scope_new();
    ps->gen = tc_generator_new(seed, (tc_device){TC_CPU, 0});
    if (!ps->scope || !ps->gen) {
        mp_params_free(ps);
        return TC_ENOMEM;
    }
    return TC_OK;
}

void mp_params_free(mp_params *ps)
{
    for (int i = 0; i < ps->n; i++)
        free(ps->v[i].name);
    free(ps->v);
    if (ps->scope)
        tc_scope_free(ps->scope);
    if (ps->gen)
        tc_generator_free(ps->gen);
    memset(ps, 0, sizeof *ps);
}

enum init_kind { INIT_NORMAL, INIT_UNIFORM, INIT_CONSTANT, INIT_BUFFER };

static tc_tensor *param_new(mp_params *ps, const char *name, const int64_t *shape, int ndim,
                            enum init_kind kind, double a)
{
    if (ps->status != TC_OK)
        return NULL;
    if (ps->n == ps->cap) {
        int cap = ps->cap ? 2 * ps->cap : 64;
        mp_param *v = realloc(ps->v, (size_t)cap * sizeof *v);
        if (!v) {
            ps->status = TC_ENOMEM;
            return NULL;
        }
        ps->v = v;
        ps->cap = cap;
    }
    int rc = tc_scope_enter(ps->scope);
    if (rc != TC_OK) {
        ps->status = rc;
        return NULL;
    }
    tc_tensor *t = kind == INIT_NORMAL    ? tc_randn(shape, ndim, 0.0, a, ps->gen)
                   : kind == INIT_UNIFORM ? tc_rand_uniform(shape, ndim, -a, a, ps->gen)
                                          : tc_full(shape, ndim, a, TC_F32, (tc_device){TC_CPU, 0});
    if (t)
        rc = tc_set_requires_grad(t, kind != INIT_BUFFER);
    int status = tc_scope_status(ps->scope);
    tc_scope_leave(ps->scope);
    char *copy = strdup(name);
    if (!t || rc != TC_OK || status != TC_OK || !copy) {
        free(copy);
        ps->status = status != TC_OK ? status : rc != TC_OK ? rc : TC_ENOMEM;
        return NULL;
    }
    ps->v[ps->n++] = (mp_param){copy, t, kind == INIT_BUFFER};
    return t;
}

tc_tensor *mp_normal(mp_params *ps, const char *name, const int64_t *shape, int ndim, double std)
{
    return param_new(ps, name, shape, ndim, INIT_NORMAL, std);
}

tc_tensor *mp_uniform(mp_params *ps, const char *name, const int64_t *shape, int ndim, double bound)
{
    return param_new(ps, name, shape, ndim, INIT_UNIFORM, bound);
}

tc_tensor *mp_constant(mp_params *ps, const char *name, const int64_t *shape, int ndim, double value)
{
    return param_new(ps, name, shape, ndim, INIT_CONSTANT, value);
}

tc_tensor *mp_buffer(mp_params *ps, const char *name, const int64_t *shape, int ndim, double value)
{
    return param_new(ps, name, shape, ndim, INIT_BUFFER, value);
}

int mp_set_trainable(mp_params *ps, const char *prefix, int on)
{
    size_t len = strlen(prefix);
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        if (!ps->v[i].buffer && !strncmp(ps->v[i].name, prefix, len)) {
            tc_set_requires_grad(ps->v[i].t, on);
            n++;
        }
    return n;
}

int mp_trainable(const mp_param *p) { return !p->buffer && tc_requires_grad(p->t); }

const mp_param *mp_find(const mp_params *ps, const char *name)
{
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->v[i].name, name))
            return &ps->v[i];
    return NULL;
}

size_t mp_numel(const mp_params *ps)
{
    size_t n = 0;
    for (int i = 0; i < ps->n; i++)
        n += (size_t)tc_numel(ps->v[i].t);
    return n;
}
