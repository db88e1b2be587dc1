#include "models/layers.h"

#include <stdio.h>

static const char *join(char *buf, size_t n, const char *prefix, const char *leaf)
{
    snprintf(buf, n, "%s.%s", prefix, leaf);
    return buf;
}

int ml_linear_init(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias,
                   double std)
{
    char name[256];
    l->w = mp_normal(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){out, in}, 2, std);
    l->b = bias ? mp_constant(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){out}, 1, 0.0) : NULL;
    return ps->status;
}

tc_tensor *ml_linear_forward(const ml_linear *l, tc_tensor *x) { return tc_linear(x, l->w, l->b); }

int ml_layer_norm_init(ml_layer_norm *l, mp_params *ps, const char *prefix, int64_t dim, double eps)
{
    char name[256];
    l->w = mp_constant(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){dim}, 1, 1.0);
    l->b = mp_constant(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){dim}, 1, 0.0);
    l->eps = eps;
    return ps->status;
}

tc_tensor *ml_layer_norm_forward(const ml_layer_norm *l, tc_tensor *x)
{
    return tc_layer_norm(x, l->w, l->b, l->eps);
}

int ml_embedding_init(ml_embedding *l, mp_params *ps, const char *prefix, int64_t num, int64_t dim, double std)
{
    char name[256];
    l->w = mp_normal(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){num, dim}, 2, std);
    return ps->status;
}

tc_tensor *ml_embedding_forward(const ml_embedding *l, tc_tensor *ids) { return tc_embedding(l->w, ids); }
