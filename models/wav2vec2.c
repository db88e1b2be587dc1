/* wav2vec2.h's model half: parameters, forward, input normalisation, freezing and import. */
#include "models/wav2vec2.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPU ((tc_device){TC_CPU, 0})

static int config_ok(const w2v_config *c)
{
    if (c->conv_layers < 1 || c->conv_layers > W2V_MAX_CONV || c->layers < 0 || c->layers > W2V_MAX_LAYERS ||
        c->hidden < 1 || c->heads < 1 || c->hidden % c->heads || c->intermediate < 1 || c->pos_conv_kernel < 1 ||
        c->pos_conv_groups < 1 || c->hidden % c->pos_conv_groups)
        return 0;
    for (int i = 0; i < c->conv_layers; i++)
        if (c->conv_dim[i] < 1 || c->conv_kernel[i] < 1 || c->conv_stride[i] < 1)
            return 0;
    return 1;
}

/* weight_g = ||weight_v|| over every dimension but the last: what torch's weight_norm(dim=2) sets
 * when it splits a weight, so the initial weight is weight_v itself. */
static int init_weight_g(tc_tensor *g, tc_tensor *v)
{
    if (!g || !v)
        return TC_OK;
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    tc_tensor *norm = tc_sqrt(tc_sum(tc_sum(tc_mul(v, v), 0, 1), 1, 1));
    int rc = norm ? tc_copy_(g, norm) : TC_OK;
    tc_grad_enabled_set(was);
    int st = tc_scope_end(s);
    return rc != TC_OK ? rc : st;
}

static void init_feature_encoder(w2v_model *m, mp_params *ps, const char *prefix)
{
    const w2v_config *c = &m->cfg;
    char p[320];
    int64_t in = 1;
    for (int i = 0; i < c->conv_layers; i++) {
        w2v_conv_layer *l = &m->conv[i];
        int64_t out = c->conv_dim[i], k = c->conv_kernel[i];
        double fan_in = (double)(in * k);
        snprintf(p, sizeof p, "%s.feature_extractor.conv_layers.%d.conv.weight", prefix, i);
        l->conv.w = mp_normal(ps, p, (int64_t[]){out, in, k}, 3, sqrt(2.0 / fan_in));
        if (c->conv_bias) {
            snprintf(p, sizeof p, "%s.feature_extractor.conv_layers.%d.conv.bias", prefix, i);
            l->conv.b = mp_uniform(ps, p, (int64_t[]){out}, 1, sqrt(1.0 / fan_in));
        }
        l->conv.stride = c->conv_stride[i];
        l->conv.padding = 0;
        l->conv.dilation = 1;
        l->conv.groups = 1;
        /* torch.nn's default eps: HF builds these norms without the config's layer_norm_eps. */
        snprintf(p, sizeof p, "%s.feature_extractor.conv_layers.%d.layer_norm", prefix, i);
        if (c->extract_norm == W2V_EXTRACT_LAYER)
            ml_layer_norm_init(&l->layer_norm, ps, p, out, 1e-5);
        else if (i == 0)
            ml_group_norm_init(&l->group_norm, ps, p, (int)out, out, 1e-5);
        in = out;
    }
    int64_t feat = c->conv_dim[c->conv_layers - 1];
    snprintf(p, sizeof p, "%s.feature_projection.layer_norm", prefix);
    ml_layer_norm_init(&m->proj_ln, ps, p, feat, c->layer_norm_eps);
    double bound = sqrt(1.0 / (double)feat);
    snprintf(p, sizeof p, "%s.feature_projection.projection.weight", prefix);
    m->proj.w = mp_uniform(ps, p, (int64_t[]){c->hidden, feat}, 2, bound);
    snprintf(p, sizeof p, "%s.feature_projection.projection.bias", prefix);
    m->proj.b = mp_uniform(ps, p, (int64_t[]){c->hidden}, 1, bound);
}

int w2v_init(w2v_model *m, mp_params *ps, const char *prefix, const w2v_config *cfg)
{
    if (!config_ok(cfg) || strlen(prefix) >= sizeof m->prefix)
        return TC_EINVAL;
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    strcpy(m->prefix, prefix);
    const w2v_config *c = &m->cfg;
    char p[320];
    init_feature_encoder(m, ps, prefix);

    int64_t h = c->hidden, k = c->pos_conv_kernel;
    snprintf(p, sizeof p, "%s.encoder.pos_conv_embed.conv.bias", prefix);
    m->pos_b = mp_constant(ps, p, (int64_t[]){h}, 1, 0.0);
    snprintf(p, sizeof p, "%s.encoder.pos_conv_embed.conv.weight_g", prefix);
    m->pos_g = mp_constant(ps, p, (int64_t[]){1, 1, k}, 3, 1.0);
    snprintf(p, sizeof p, "%s.encoder.pos_conv_embed.conv.weight_v", prefix);
    m->pos_v = mp_normal(ps, p, (int64_t[]){h, h / c->pos_conv_groups, k}, 3, 2.0 * sqrt(1.0 / (double)(k * h)));
    int rc = init_weight_g(m->pos_g, m->pos_v);
    if (rc != TC_OK)
        return rc;
    snprintf(p, sizeof p, "%s.encoder.layer_norm", prefix);
    ml_layer_norm_init(&m->enc_ln, ps, p, h, c->layer_norm_eps);

    for (int i = 0; i < c->layers; i++) {
        w2v_layer *l = &m->layer[i];
        /* HF's attention makes k, v, q, out in this order: the state_dict's order. */
        const struct {
            ml_linear *lin;
            const char *leaf;
            int64_t in, out;
        } lins[] = {
            {&l->k, "attention.k_proj", h, h},
            {&l->v, "attention.v_proj", h, h},
            {&l->q, "attention.q_proj", h, h},
            {&l->out, "attention.out_proj", h, h},
            {&l->inter, "feed_forward.intermediate_dense", h, c->intermediate},
            {&l->output, "feed_forward.output_dense", c->intermediate, h},
        };
        for (size_t j = 0; j < sizeof lins / sizeof lins[0]; j++) {
            if (j == 4) {
                snprintf(p, sizeof p, "%s.encoder.layers.%d.layer_norm", prefix, i);
                ml_layer_norm_init(&l->attn_ln, ps, p, h, c->layer_norm_eps);
            }
            snprintf(p, sizeof p, "%s.encoder.layers.%d.%s", prefix, i, lins[j].leaf);
            ml_linear_init(lins[j].lin, ps, p, lins[j].in, lins[j].out, 1, c->init_std);
        }
        snprintf(p, sizeof p, "%s.encoder.layers.%d.final_layer_norm", prefix, i);
        ml_layer_norm_init(&l->final_ln, ps, p, h, c->layer_norm_eps);
    }
    return ps->status;
}

/* f32 [n, t]: 1 where index < len[i]. */
static tc_tensor *prefix_mask(const int64_t *len, int64_t n, int64_t t, tc_device dev)
{
    tc_tensor *col = tc_to_device(tc_from_data(len, (int64_t[]){n, 1}, 2, TC_I64), dev);
    return tc_to_dtype(tc_gt_scalar(tc_sub(col, tc_arange(t, TC_I64, dev)), 0.0), TC_F32);
}

/* The valid samples (frames = 0) or frames (frames = 1) of a batch of n waves of s samples. */
static tc_tensor *valid_mask(const w2v_config *c, const int64_t *lengths, int64_t n, int64_t s, int64_t t,
                             int frames, tc_device dev)
{
    int64_t *len = malloc((size_t)(n > 0 ? n : 1) * sizeof *len);
    if (!len)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        int64_t l = !lengths ? s : lengths[i] < 0 ? 0 : lengths[i] > s ? s : lengths[i];
        len[i] = frames ? w2v_frames(c, l) : l;
    }
    tc_tensor *mask = prefix_mask(len, n, t, dev);
    free(len);
    return mask;
}

/* libtorch 1.13's float32 exact-GELU backward on the CPU is wrong when the gradient arriving at the
 * activation has other strides than its input (a transpose after it), so every activation here runs
 * on a contiguous tensor laid out as its consumer reads it: [N, C, T] between convs, [N, T, C] after
 * the last one. */
static tc_tensor *feature_encoder(const w2v_model *m, tc_tensor *wave)
{
    const w2v_config *c = &m->cfg;
    tc_tensor *x = tc_unsqueeze(wave, 1);
    for (int i = 0; i < c->conv_layers; i++) {
        const w2v_conv_layer *l = &m->conv[i];
        int last = i == c->conv_layers - 1;
        x = ml_conv1d_forward(&l->conv, x);
        if (c->extract_norm == W2V_EXTRACT_LAYER) {
            x = ml_layer_norm_forward(&l->layer_norm, tc_transpose(x, 1, 2));
            if (!last)
                x = tc_contiguous(tc_transpose(x, 1, 2));
        } else {
            if (i == 0)
                x = ml_group_norm_forward(&l->group_norm, x);
            if (last)
                x = tc_contiguous(tc_transpose(x, 1, 2));
        }
        x = ml_act_forward(c->extract_act, x);
    }
    return x;
}

/* key_valid [N, T]: the valid frames, or NULL when none is padding. */
static tc_tensor *self_attention(const w2v_layer *l, const w2v_config *c, tc_tensor *x, tc_tensor *key_valid,
                                 int training, tc_generator *gen)
{
    tc_tensor *q = ml_linear_forward(&l->q, x), *k = ml_linear_forward(&l->k, x), *v = ml_linear_forward(&l->v, x);
    tc_tensor *ctx = ml_scaled_dot_product_attention(q, k, v, c->heads, key_valid, c->attention_dropout, training, gen);
    return ml_linear_forward(&l->out, ctx);
}

static tc_tensor *feed_forward(const w2v_layer *l, const w2v_config *c, tc_tensor *x, int training,
                               tc_generator *gen)
{
    tc_tensor *h = ml_act_forward(c->hidden_act, ml_linear_forward(&l->inter, x));
    h = tc_dropout(h, c->activation_dropout, training, gen);
    return tc_dropout(ml_linear_forward(&l->output, h), c->hidden_dropout, training, gen);
}

static tc_tensor *layer_forward(const w2v_layer *l, const w2v_config *c, tc_tensor *x, tc_tensor *key_valid,
                                int training, tc_generator *gen)
{
    if (c->stable_layer_norm) {
        tc_tensor *a = self_attention(l, c, ml_layer_norm_forward(&l->attn_ln, x), key_valid, training, gen);
        x = tc_add(x, tc_dropout(a, c->hidden_dropout, training, gen));
        return tc_add(x, feed_forward(l, c, ml_layer_norm_forward(&l->final_ln, x), training, gen));
    }
    tc_tensor *a = self_attention(l, c, x, key_valid, training, gen);
    x = ml_layer_norm_forward(&l->attn_ln, tc_add(x, tc_dropout(a, c->hidden_dropout, training, gen)));
    return ml_layer_norm_forward(&l->final_ln, tc_add(x, feed_forward(l, c, x, training, gen)));
}

tc_tensor *w2v_forward(const w2v_model *m, tc_tensor *wave, const int64_t *lengths, int training,
                       tc_generator *gen, tc_tensor **frame_valid)
{
    const w2v_config *c = &m->cfg;
    if (frame_valid)
        *frame_valid = NULL;
    tc_tensor *x = feature_encoder(m, wave);
    if (!x)
        return NULL;
    int64_t n = tc_size(x, 0), t = tc_size(x, 1);
    tc_tensor *valid = valid_mask(c, lengths, n, tc_size(wave, 1), t, 1, tc_device_of(wave));
    x = ml_linear_forward(&m->proj, ml_layer_norm_forward(&m->proj_ln, x));
    x = tc_mul(tc_dropout(x, c->feat_proj_dropout, training, gen), tc_unsqueeze(valid, 2));

    int64_t k = c->pos_conv_kernel;
    tc_tensor *pos = tc_conv1d(tc_transpose(x, 1, 2), tc_weight_norm(m->pos_v, m->pos_g, 2), m->pos_b, 1, k / 2, 1,
                               c->pos_conv_groups);
    if (k % 2 == 0)
        pos = tc_narrow(pos, 2, 0, t);
    /* Activated in [N, T, H], contiguous: see feature_encoder. */
    x = tc_add(x, ml_act_forward(c->extract_act, tc_contiguous(tc_transpose(pos, 1, 2))));
    if (!c->stable_layer_norm)
        x = ml_layer_norm_forward(&m->enc_ln, x);
    x = tc_dropout(x, c->hidden_dropout, training, gen);

    /* Padded keys get exactly 0 weight, as under HF's float-min additive mask. */
    tc_tensor *key_valid = lengths ? valid : NULL;
    for (int i = 0; i < c->layers; i++) {
        /* LayerDrop: HF skips a whole layer in training with probability layerdrop. */
        if (training && c->layerdrop > 0 &&
            tc_item(tc_rand_uniform((int64_t[]){1}, 1, 0.0, 1.0, gen)) < c->layerdrop)
            continue;
        tc_scope *s = tc_scope_begin();
        x = ml_scope_end_keep(s, layer_forward(&m->layer[i], c, x, key_valid, training, gen));
    }
    if (c->stable_layer_norm)
        x = ml_layer_norm_forward(&m->enc_ln, x);
    if (frame_valid)
        *frame_valid = valid;
    return x;
}

tc_tensor *w2v_pool(tc_tensor *hidden, tc_tensor *frame_valid)
{
    return frame_valid ? ml_masked_mean(hidden, frame_valid) : tc_mean(hidden, 1, 0);
}

tc_tensor *w2v_normalize(tc_tensor *wave, const int64_t *lengths, w2v_norm mode)
{
    tc_tensor *x = tc_dtype_of(wave) == TC_I16 ? tc_mul_scalar(tc_to_dtype(wave, TC_F32), 1.0 / 32768.0)
                                                : tc_to_dtype(wave, TC_F32);
    if (mode == W2V_NORM_NONE || !x)
        return x;
    int64_t n = tc_size(x, 0), s = tc_size(x, 1);
    tc_device dev = tc_device_of(x);
    tc_tensor *valid = valid_mask(NULL, lengths, n, s, s, 0, dev);
    tc_tensor *xm = tc_mul(x, valid);
    if (mode == W2V_NORM_PEAK) {
        tc_tensor *peak = tc_max(tc_abs(xm), 1, 1);
        tc_tensor *one = tc_ones((int64_t[]){n, 1}, 2, TC_F32, dev);
        return tc_div(xm, tc_where(tc_gt_scalar(peak, 0.0), peak, one));
    }
    tc_tensor *count = tc_clamp(tc_sum(valid, 1, 1), 1.0, INFINITY);
    tc_tensor *centred = tc_mul(tc_sub(x, tc_div(tc_sum(xm, 1, 1), count)), valid);
    tc_tensor *var = tc_div(tc_sum(tc_mul(centred, centred), 1, 1), count);
    return tc_mul(centred, tc_rsqrt(tc_add_scalar(var, 1e-7)));
}

int w2v_freeze(const w2v_model *m, mp_params *ps, int on)
{
    char p[sizeof m->prefix + 1];
    snprintf(p, sizeof p, "%s.", m->prefix);
    return mp_set_trainable(ps, p, !on) > 0 ? TC_OK : TC_EINVAL;
}

int w2v_load_hf(const w2v_model *m, mp_params *ps, const char *path, hf_import_report *rep, char *err,
                size_t errlen)
{
    hf_import_rules rules = {
        .prefix = m->prefix,
        .file_prefix = "wav2vec2.",
        .ignore = {"quantizer.", "project_q.", "project_hid.", "masked_spec_embed", "lm_head.", "dropout_features",
                   NULL},
    };
    hf_import_report local;
    return hf_import(ps, path, &rules, rep ? rep : &local, err, errlen);
}
