#include "models/layers.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const char *join(char *buf, size_t n, const char *prefix, const char *leaf)
{
    snprintf(buf, n, "%s.%s", prefix, leaf);
    return buf;
}

/* ---- nn.Linear ---- */

int ml_linear_init(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias,
                   double std)
{
    char name[256];
    l->w = mp_normal(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){out, in}, 2, std);
    l->b = bias ? mp_constant(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){out}, 1, 0.0) : NULL;
    return ps->status;
}

/* kaiming_uniform_(a=sqrt(5)) reduces to U(+-1/sqrt(fan_in)); the bias uses the same bound. */
int ml_linear_init_default(ml_linear *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int bias)
{
    char name[256];
    double bound = in > 0 ? 1.0 / sqrt((double)in) : 0.0;
    l->w = mp_uniform(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){out, in}, 2, bound);
    l->b = bias ? mp_uniform(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){out}, 1, bound) : NULL;
    return ps->status;
}

tc_tensor *ml_linear_forward(const ml_linear *l, tc_tensor *x) { return tc_linear(x, l->w, l->b); }

/* ---- nn.Embedding ---- */

int ml_embedding_init(ml_embedding *l, mp_params *ps, const char *prefix, int64_t num, int64_t dim, double std)
{
    char name[256];
    l->w = mp_normal(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){num, dim}, 2, std);
    return ps->status;
}

tc_tensor *ml_embedding_forward(const ml_embedding *l, tc_tensor *ids) { return tc_embedding(l->w, ids); }

/* ---- Norms ---- */

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

int ml_group_norm_init(ml_group_norm *l, mp_params *ps, const char *prefix, int groups, int64_t channels,
                       double eps)
{
    char name[256];
    if (groups < 1 || channels % groups != 0)
        return TC_EINVAL;
    l->w = mp_constant(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){channels}, 1, 1.0);
    l->b = mp_constant(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){channels}, 1, 0.0);
    l->groups = groups;
    l->eps = eps;
    return ps->status;
}

tc_tensor *ml_group_norm_forward(const ml_group_norm *l, tc_tensor *x)
{
    return tc_group_norm(x, l->groups, l->w, l->b, l->eps);
}

int ml_batch_norm_init(ml_batch_norm *l, mp_params *ps, const char *prefix, int64_t channels, double eps,
                       double momentum)
{
    char name[256];
    l->w = mp_constant(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){channels}, 1, 1.0);
    l->b = mp_constant(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){channels}, 1, 0.0);
    l->running_mean = mp_buffer(ps, join(name, sizeof name, prefix, "running_mean"), (int64_t[]){channels}, 1, 0.0);
    l->running_var = mp_buffer(ps, join(name, sizeof name, prefix, "running_var"), (int64_t[]){channels}, 1, 1.0);
    l->eps = eps;
    l->momentum = momentum;
    return ps->status;
}

tc_tensor *ml_batch_norm_forward(const ml_batch_norm *l, tc_tensor *x, int training)
{
    return tc_batch_norm(x, l->w, l->b, l->running_mean, l->running_var, training, l->momentum, l->eps);
}

/* ---- Convolutions ---- */

int ml_conv1d_init(ml_conv1d *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int64_t kernel,
                   int64_t stride, int64_t padding, int64_t dilation, int64_t groups, int bias)
{
    char name[256];
    if (groups < 1 || in % groups != 0 || out % groups != 0 || kernel < 1)
        return TC_EINVAL;
    double bound = 1.0 / sqrt((double)(in / groups * kernel));
    l->w = mp_uniform(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){out, in / groups, kernel}, 3, bound);
    l->b = bias ? mp_uniform(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){out}, 1, bound) : NULL;
    l->stride = stride;
    l->padding = padding;
    l->dilation = dilation;
    l->groups = groups;
    return ps->status;
}

tc_tensor *ml_conv1d_forward(const ml_conv1d *l, tc_tensor *x)
{
    return tc_conv1d(x, l->w, l->b, l->stride, l->padding, l->dilation, l->groups);
}

int ml_conv2d_init(ml_conv2d *l, mp_params *ps, const char *prefix, int64_t in, int64_t out, int64_t kernel,
                   int64_t stride, int bias)
{
    char name[256];
    if (kernel < 1 || stride < 1)
        return TC_EINVAL;
    double bound = 1.0 / sqrt((double)(in * kernel * kernel));
    l->w = mp_uniform(ps, join(name, sizeof name, prefix, "weight"), (int64_t[]){out, in, kernel, kernel}, 4, bound);
    l->b = bias ? mp_uniform(ps, join(name, sizeof name, prefix, "bias"), (int64_t[]){out}, 1, bound) : NULL;
    l->stride[0] = l->stride[1] = stride;
    l->padding[0] = l->padding[1] = 0;
    return ps->status;
}

tc_tensor *ml_conv2d_forward(const ml_conv2d *l, tc_tensor *x) { return tc_conv2d(x, l->w, l->b, l->stride, l->padding); }

/* ---- MLP ---- */

tc_tensor *ml_act_forward(ml_act act, tc_tensor *x)
{
    switch (act) {
    case ML_ACT_RELU: return tc_relu(x);
    case ML_ACT_GELU: return tc_gelu(x, TC_GELU_EXACT);
    case ML_ACT_GELU_TANH: return tc_gelu(x, TC_GELU_TANH);
    case ML_ACT_TANH: return tc_tanh(x);
    case ML_ACT_NONE: break;
    }
    return x;
}

int ml_mlp_init(ml_mlp *m, mp_params *ps, const char *prefix, const int64_t *dims, int n_dims, ml_act act,
                double dropout, int act_last)
{
    if (n_dims < 2 || n_dims - 1 > ML_MLP_MAX)
        return TC_EINVAL;
    m->n = n_dims - 1;
    m->act = act;
    m->dropout = dropout;
    m->act_last = act_last;
    for (int i = 0; i < m->n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%s.%d", prefix, i);
        ml_linear_init_default(&m->lin[i], ps, name, dims[i], dims[i + 1], 1);
    }
    return ps->status;
}

tc_tensor *ml_mlp_forward(const ml_mlp *m, tc_tensor *x, int training, tc_generator *gen)
{
    for (int i = 0; i < m->n; i++) {
        x = ml_linear_forward(&m->lin[i], x);
        if (i < m->n - 1 || m->act_last)
            x = tc_dropout(ml_act_forward(m->act, x), m->dropout, training, gen);
    }
    return x;
}

/* ---- Scaled dot-product attention ---- */

/* A large finite negative instead of -inf, so a row with nothing valid averages uniformly; -1e30
 * overflows f16, where masked_fill refuses it, so f16 gets its own lowest value. */
static double mask_score(const tc_tensor *scores) { return tc_dtype_of(scores) == TC_F16 ? -65504.0 : -1e30; }

/* [B, L, E] -> [B, heads, L, E/heads] */
static tc_tensor *split_heads(tc_tensor *x, int64_t heads)
{
    int64_t b = tc_size(x, 0), l = tc_size(x, 1), d = tc_size(x, 2) / heads;
    return tc_transpose(tc_reshape(x, (int64_t[]){b, l, heads, d}, 4), 1, 2);
}

/* Every attention in models/ comes through here, so this is the one place where libtorch >= 2.0's
 * fused scaled_dot_product_attention could go, keeping the uniform average of a row with nothing
 * valid. */
tc_tensor *ml_scaled_dot_product_attention(tc_tensor *q, tc_tensor *k, tc_tensor *v, int64_t heads,
                                           tc_tensor *key_valid, double p, int training, tc_generator *gen)
{
    int64_t b = tc_size(q, 0), lq = tc_size(q, 1), e = tc_size(q, 2), lk = tc_size(k, 1);
    /* torch scales q before the product; doing the same keeps the rounding close to its. */
    tc_tensor *qh = tc_mul_scalar(split_heads(q, heads), 1.0 / sqrt((double)(e / heads)));
    tc_tensor *scores = tc_matmul(qh, tc_transpose(split_heads(k, heads), -2, -1));
    if (key_valid) {
        tc_tensor *pad = tc_reshape(tc_lt_scalar(key_valid, 0.5), (int64_t[]){b, 1, 1, lk}, 4);
        scores = tc_masked_fill(scores, pad, mask_score(scores));
    }
    tc_tensor *probs = tc_dropout(tc_softmax(scores, -1), p, training, gen);
    tc_tensor *ctx = tc_transpose(tc_matmul(probs, split_heads(v, heads)), 1, 2);
    return tc_reshape(ctx, (int64_t[]){b, lq, e}, 3);
}

/* ---- nn.MultiheadAttention ---- */

int ml_mha_init(ml_mha *a, mp_params *ps, const char *prefix, int64_t embed, int64_t heads, double dropout)
{
    char name[256];
    if (heads < 1 || embed % heads != 0)
        return TC_EINVAL;
    /* xavier_uniform_ on [3E, E]: fan_in E, fan_out 3E. */
    double bound = sqrt(6.0 / (double)(embed + 3 * embed));
    a->in_w = mp_uniform(ps, join(name, sizeof name, prefix, "in_proj_weight"), (int64_t[]){3 * embed, embed}, 2, bound);
    a->in_b = mp_constant(ps, join(name, sizeof name, prefix, "in_proj_bias"), (int64_t[]){3 * embed}, 1, 0.0);
    ml_linear_init_default(&a->out, ps, join(name, sizeof name, prefix, "out_proj"), embed, embed, 0);
    a->out.b = mp_constant(ps, join(name, sizeof name, prefix, "out_proj.bias"), (int64_t[]){embed}, 1, 0.0);
    a->embed = embed;
    a->heads = heads;
    a->dropout = dropout;
    return ps->status;
}

tc_tensor *ml_mha_forward(const ml_mha *a, tc_tensor *q, tc_tensor *k, tc_tensor *v, tc_tensor *key_valid,
                          int training, tc_generator *gen)
{
    int64_t e = a->embed;
    tc_tensor *qp, *kp, *vp;
    if (q == k && k == v) {
        tc_tensor *qkv = tc_linear(q, a->in_w, a->in_b);
        qp = tc_narrow(qkv, 2, 0, e);
        kp = tc_narrow(qkv, 2, e, e);
        vp = tc_narrow(qkv, 2, 2 * e, e);
    } else {
        qp = tc_linear(q, tc_narrow(a->in_w, 0, 0, e), tc_narrow(a->in_b, 0, 0, e));
        kp = tc_linear(k, tc_narrow(a->in_w, 0, e, e), tc_narrow(a->in_b, 0, e, e));
        vp = tc_linear(v, tc_narrow(a->in_w, 0, 2 * e, e), tc_narrow(a->in_b, 0, 2 * e, e));
    }
    tc_tensor *ctx = ml_scaled_dot_product_attention(qp, kp, vp, a->heads, key_valid, a->dropout, training, gen);
    return ml_linear_forward(&a->out, ctx);
}

/* ---- nn.LSTM ---- */

int ml_lstm_init(ml_lstm *l, mp_params *ps, const char *prefix, int64_t input, int64_t hidden, int layers,
                 int bidirectional, double dropout)
{
    if (layers < 1 || layers > ML_LSTM_MAX_LAYERS || hidden < 1 || input < 1)
        return TC_EINVAL;
    int dirs = bidirectional ? 2 : 1;
    double bound = 1.0 / sqrt((double)hidden);
    l->layers = layers;
    l->bidirectional = bidirectional != 0;
    l->input = input;
    l->hidden = hidden;
    l->dropout = dropout;
    for (int k = 0; k < layers; k++)
        for (int d = 0; d < dirs; d++) {
            int64_t in = k == 0 ? input : dirs * hidden;
            const char *sfx = d ? "_reverse" : "";
            char name[256];
            tc_tensor **p = &l->p[(k * dirs + d) * 4];
            snprintf(name, sizeof name, "%s.weight_ih_l%d%s", prefix, k, sfx);
            p[0] = mp_uniform(ps, name, (int64_t[]){4 * hidden, in}, 2, bound);
            snprintf(name, sizeof name, "%s.weight_hh_l%d%s", prefix, k, sfx);
            p[1] = mp_uniform(ps, name, (int64_t[]){4 * hidden, hidden}, 2, bound);
            snprintf(name, sizeof name, "%s.bias_ih_l%d%s", prefix, k, sfx);
            p[2] = mp_uniform(ps, name, (int64_t[]){4 * hidden}, 1, bound);
            snprintf(name, sizeof name, "%s.bias_hh_l%d%s", prefix, k, sfx);
            p[3] = mp_uniform(ps, name, (int64_t[]){4 * hidden}, 1, bound);
        }
    return ps->status;
}

/* One layer at a time, so the dropout between layers draws from gen (a checkpoint can hold its state)
 * rather than from torch's global generator; the math is nn.LSTM's. */
tc_tensor *ml_lstm_forward(const ml_lstm *l, tc_tensor *x, const int64_t *lengths, int training, tc_generator *gen)
{
    int64_t b = tc_size(x, 0), t = tc_size(x, 1);
    int per_layer = (l->bidirectional ? 2 : 1) * 4;
    if (b < 1 || t < 1)
        return tc_lstm(x, lengths, l->p, 1, l->bidirectional, l->hidden, 0.0, training);
    int64_t stack[64], *lens = b <= 64 ? stack : malloc((size_t)b * sizeof *lens);
    if (!lens)
        return tc_lstm(NULL, NULL, l->p, 0, 0, 0, 0, 0);
    for (int64_t i = 0; i < b; i++)
        lens[i] = !lengths ? t : lengths[i] < 1 ? 1 : lengths[i] > t ? t : lengths[i];
    for (int k = 0; k < l->layers; k++) {
        if (k > 0)
            x = tc_dropout(x, l->dropout, training, gen);
        x = tc_lstm(x, lens, l->p + k * per_layer, 1, l->bidirectional, l->hidden, 0.0, training);
    }
    if (lens != stack)
        free(lens);
    return x;
}

/* ---- Attention pooling ---- */

int ml_attn_pool_init(ml_attn_pool *p, mp_params *ps, const char *prefix, int64_t embed)
{
    char name[256];
    return ml_linear_init_default(&p->score, ps, join(name, sizeof name, prefix, "score"), embed, 1, 1);
}

tc_tensor *ml_attn_pool_forward(const ml_attn_pool *p, tc_tensor *x, tc_tensor *valid)
{
    tc_tensor *scores = tc_squeeze(ml_linear_forward(&p->score, x), 2);
    scores = tc_masked_fill(scores, tc_lt_scalar(valid, 0.5), mask_score(scores));
    /* The product with valid zeroes the uniform weights of a row with no valid position. */
    tc_tensor *w = tc_mul(tc_softmax(scores, 1), valid);
    return tc_sum(tc_mul(x, tc_unsqueeze(w, 2)), 1, 0);
}

/* ---- Scopes per layer ---- */

tc_tensor *ml_scope_end_keep(tc_scope *s, tc_tensor *y)
{
    if (y && tc_scope_status(s) == TC_OK)
        y = tc_keep(y);
    int rc = tc_scope_end(s);
    return rc == TC_OK ? y : tc_scope_fail(rc, "%s", tc_last_error());
}

/* ---- Masks ---- */

tc_tensor *ml_masked_mean(tc_tensor *x, tc_tensor *valid)
{
    tc_tensor *count = tc_clamp(tc_sum(valid, 1, 1), 1.0, INFINITY);
    return tc_div(tc_sum(tc_mul(x, tc_unsqueeze(valid, 2)), 1, 0), count);
}

int ml_valid_lengths(const tc_tensor *valid, int64_t *lengths, int64_t batch)
{
    if (!valid || tc_ndim(valid) != 2 || tc_size(valid, 0) != batch)
        return TC_EINVAL;
    int64_t t = tc_size(valid, 1);
    float *host = malloc((size_t)(batch * t > 0 ? batch * t : 1) * sizeof *host);
    if (!host)
        return TC_ENOMEM;
    int rc = tc_copy_to_host(valid, host, (size_t)(batch * t) * sizeof *host);
    for (int64_t i = 0; rc == TC_OK && i < batch; i++) {
        lengths[i] = 0;
        for (int64_t j = 0; j < t; j++)
            if (host[i * t + j] > 0.5f)
                lengths[i] = j + 1;
    }
    free(host);
    return rc;
}
