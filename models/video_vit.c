#include "models/video_vit.h"

#include <stdio.h>

vv_config vv_config_seed(void)
{
    return (vv_config){.image = 224, .frames = 8, .patch = 32, .dim = 384, .heads = 6, .layers = 4,
                       .ffn = 1536, .dropout = 0.3, .ln_eps = 1e-5, .attention = VV_ATTN_JOINT};
}

static int config_valid(const vv_config *c)
{
    return c->layers >= 1 && c->layers <= VV_MAX_LAYERS && c->image >= 1 && c->frames >= 1 && c->patch >= 1 &&
           c->dim >= 1 && c->heads >= 1 && c->ffn >= 1 && c->dim % c->heads == 0 && c->image % c->patch == 0 &&
           c->dropout >= 0 && c->dropout <= 1 && c->ln_eps > 0 &&
           (c->attention == VV_ATTN_JOINT || c->attention == VV_ATTN_DIVIDED);
}

static int64_t patches_per_frame(const vv_config *c)
{
    return (c->image / c->patch) * (c->image / c->patch);
}

/* One layer's parameters in the order nn.TransformerEncoderLayer's state_dict lists them; the
 * divided blocks put their temporal part first, as it runs first. */
static void init_block(vv_block *b, mp_params *ps, const char *prefix, int i, const vv_config *c)
{
    char p[256];
    if (c->attention == VV_ATTN_DIVIDED) {
        snprintf(p, sizeof p, "%s.layers.%d.temporal_attn", prefix, i);
        ml_mha_init(&b->temporal_attn, ps, p, c->dim, c->heads, c->dropout);
        snprintf(p, sizeof p, "%s.layers.%d.norm_t", prefix, i);
        ml_layer_norm_init(&b->norm_t, ps, p, c->dim, c->ln_eps);
    }
    snprintf(p, sizeof p, "%s.layers.%d.self_attn", prefix, i);
    ml_mha_init(&b->self_attn, ps, p, c->dim, c->heads, c->dropout);
    snprintf(p, sizeof p, "%s.layers.%d.linear1", prefix, i);
    ml_linear_init_default(&b->linear1, ps, p, c->dim, c->ffn, 1);
    snprintf(p, sizeof p, "%s.layers.%d.linear2", prefix, i);
    ml_linear_init_default(&b->linear2, ps, p, c->ffn, c->dim, 1);
    snprintf(p, sizeof p, "%s.layers.%d.norm1", prefix, i);
    ml_layer_norm_init(&b->norm1, ps, p, c->dim, c->ln_eps);
    snprintf(p, sizeof p, "%s.layers.%d.norm2", prefix, i);
    ml_layer_norm_init(&b->norm2, ps, p, c->dim, c->ln_eps);
}

int vv_init(vv_model *m, mp_params *ps, const char *prefix, const vv_config *c)
{
    char p[256];
    if (!config_valid(c))
        return TC_EINVAL;
    m->cfg = *c;
    snprintf(p, sizeof p, "%s.patch_embed", prefix);
    ml_conv2d_init(&m->patch_embed, ps, p, 3, c->dim, c->patch, c->patch, 1);
    snprintf(p, sizeof p, "%s.pos_spatial", prefix);
    m->pos_spatial = mp_normal(ps, p, (int64_t[]){patches_per_frame(c), c->dim}, 2, 0.02);
    snprintf(p, sizeof p, "%s.pos_temporal", prefix);
    m->pos_temporal = mp_normal(ps, p, (int64_t[]){c->frames, c->dim}, 2, 0.02);
    for (int i = 0; i < c->layers; i++)
        init_block(&m->block[i], ps, prefix, i, c);
    snprintf(p, sizeof p, "%s.norm", prefix);
    return ml_layer_norm_init(&m->norm, ps, p, c->dim, c->ln_eps);
}

/* What is wrong with t as a clip batch, or NULL when nothing is; u8 tells whether t must be u8. */
static const char *frames_problem(const vv_config *c, const tc_tensor *t, int u8, char *buf, size_t len)
{
    if (!t)
        return "there are none (NULL)";
    if (tc_ndim(t) != 5)
        return "they are not 5-dimensional";
    int64_t h = tc_size(t, 2), w = tc_size(t, 3);
    if (u8 && tc_dtype_of(t) != TC_U8)
        return "they are not u8 RGB";
    if (tc_size(t, 0) < 1)
        return "the batch is empty";
    if (tc_size(t, 4) != 3)
        return "they do not have 3 channels last";
    if (h % c->patch || w % c->patch) {
        snprintf(buf, len, "%lldx%lld is not a multiple of the patch size %lld; resize the frames to %lldx%lld",
                 (long long)h, (long long)w, (long long)c->patch, (long long)c->image, (long long)c->image);
        return buf;
    }
    if (h != c->image || w != c->image) {
        if (h == w)
            snprintf(buf, len, "resize the frames to %lldx%lld or set the video model's image size to %lld",
                     (long long)c->image, (long long)c->image, (long long)h);
        else
            snprintf(buf, len, "resize the frames to %lldx%lld (the encoder takes square frames)", (long long)c->image,
                     (long long)c->image);
        return buf;
    }
    if (tc_size(t, 1) != c->frames) {
        snprintf(buf, len, "clips have %lld frames, the encoder's frames setting is %lld", (long long)tc_size(t, 1),
                 (long long)c->frames);
        return buf;
    }
    return NULL;
}

int vv_check_frames(const vv_model *m, const tc_tensor *frames, char *err, size_t err_len)
{
    const vv_config *c = &m->cfg;
    char why[160];
    const char *problem = frames_problem(c, frames, 1, why, sizeof why);
    if (!problem)
        return TC_OK;
    if (err_len > 0) {
        char shape[128] = "";
        for (int d = 0, k = 0; frames && d < tc_ndim(frames) && k < (int)sizeof shape; d++)
            k += snprintf(shape + k, sizeof shape - (size_t)k, "%s%lld", d ? ", " : "", (long long)tc_size(frames, d));
        snprintf(err, err_len, "video: frames [%s] do not fit the encoder's [N, %lld, %lld, %lld, 3] u8: %s", shape,
                 (long long)c->frames, (long long)c->image, (long long)c->image, problem);
    }
    return TC_EINVAL;
}

/* (x / 255 - mean) / std as one multiply and one add per channel: scale [3] and shift [3] on dev. */
static void imagenet_affine(tc_device dev, tc_tensor **scale, tc_tensor **shift)
{
    static const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    float s[3], t[3];
    for (int i = 0; i < 3; i++) {
        s[i] = (float)(1.0 / (255.0 * std[i]));
        t[i] = (float)(-mean[i] / std[i]);
    }
    *scale = tc_to_device(tc_from_data(s, (int64_t[]){3}, 1, TC_F32), dev);
    *shift = tc_to_device(tc_from_data(t, (int64_t[]){3}, 1, TC_F32), dev);
}

tc_tensor *vv_normalize_frames(tc_tensor *frames_u8)
{
    tc_tensor *s, *t;
    imagenet_affine(tc_device_of(frames_u8), &s, &t);
    return tc_add(tc_mul(tc_to_dtype(frames_u8, TC_F32), s), t);
}

/* Each patch's pixels in (row, column, channel) order, one copy in x's dtype: [N, F, H, W, 3] ->
 * [N, F, P, patch * patch * 3]. */
static tc_tensor *patch_rows(const vv_config *c, tc_tensor *x)
{
    int64_t n = tc_size(x, 0), f = c->frames, g = c->image / c->patch, k = c->patch;
    x = tc_reshape(x, (int64_t[]){n, f, g, k, g, k, 3}, 7);
    return tc_reshape(tc_permute(x, (int64_t[]){0, 1, 2, 4, 3, 5, 6}, 7), (int64_t[]){n, f, g * g, k * k * 3}, 4);
}

/* The patch kernel permuted to the rows' order: [dim, patch * patch, 3]. */
static tc_tensor *patch_kernel(const vv_model *m)
{
    const vv_config *c = &m->cfg;
    tc_tensor *w = tc_permute(m->patch_embed.w, (int64_t[]){0, 2, 3, 1}, 4);
    return tc_reshape(w, (int64_t[]){c->dim, c->patch * c->patch, 3}, 3);
}

/* Conv2d(3, dim, patch, stride patch) over channel-last pixels as one matrix product of the patch rows
 * with the permuted kernel: a GEMM instead of a convolution. [N, F, H, W, 3] -> [N, F, P, dim]. */
static tc_tensor *embed_patches(const vv_model *m, tc_tensor *pixels)
{
    int64_t dim = m->cfg.dim, rows = m->cfg.patch * m->cfg.patch * 3;
    return tc_linear(patch_rows(&m->cfg, pixels), tc_reshape(patch_kernel(m), (int64_t[]){dim, rows}, 2),
                     m->patch_embed.b);
}

/* The same from the frames' bytes, with the ImageNet normalisation folded into the kernel and bias
 * (w.(s x + t) + b = (w s).x + (w.t + b)): the patches are gathered as bytes and converted once, so no
 * normalised copy of the frames is ever made (a quarter of the memory traffic). */
static tc_tensor *embed_patches_u8(const vv_model *m, tc_tensor *frames_u8)
{
    int64_t dim = m->cfg.dim, rows = m->cfg.patch * m->cfg.patch * 3;
    tc_tensor *s, *t, *w = patch_kernel(m);
    imagenet_affine(tc_device_of(m->pos_spatial), &s, &t);
    tc_tensor *b = tc_add(m->patch_embed.b, tc_sum(tc_sum(tc_mul(w, t), 2, 0), 1, 0));
    tc_tensor *x = tc_to_dtype(patch_rows(&m->cfg, frames_u8), TC_F32);
    return tc_linear(x, tc_reshape(tc_mul(w, s), (int64_t[]){dim, rows}, 2), b);
}

/* x + dropout(attn(norm(x))) over the sequences of x [B, L, dim]. */
static tc_tensor *attention_branch(const ml_mha *attn, const ml_layer_norm *norm, tc_tensor *x, double p,
                                   int training, tc_generator *gen)
{
    tc_tensor *h = ml_layer_norm_forward(norm, x);
    return tc_dropout(ml_mha_forward(attn, h, h, h, NULL, training, gen), p, training, gen);
}

/* dropout(linear2(dropout(gelu(linear1(norm2(x)))))) */
static tc_tensor *feed_forward(const vv_block *b, tc_tensor *x, double p, int training, tc_generator *gen)
{
    tc_tensor *h = tc_gelu(ml_linear_forward(&b->linear1, ml_layer_norm_forward(&b->norm2, x)), TC_GELU_EXACT);
    h = ml_linear_forward(&b->linear2, tc_dropout(h, p, training, gen));
    return tc_dropout(h, p, training, gen);
}

/* x [N, F*P, dim]: nn.TransformerEncoderLayer with norm_first=True. */
static tc_tensor *joint_block(const vv_block *b, tc_tensor *x, double p, int training, tc_generator *gen)
{
    x = tc_add(x, attention_branch(&b->self_attn, &b->norm1, x, p, training, gen));
    return tc_add(x, feed_forward(b, x, p, training, gen));
}

/* x [N, F, P, dim]: attention over time at each spatial position, then over space in each frame. */
static tc_tensor *divided_block(const vv_block *b, tc_tensor *x, double p, int training, tc_generator *gen)
{
    int64_t n = tc_size(x, 0), f = tc_size(x, 1), np = tc_size(x, 2), d = tc_size(x, 3);
    tc_tensor *h = ml_layer_norm_forward(&b->norm_t, x);
    h = tc_reshape(tc_permute(h, (int64_t[]){0, 2, 1, 3}, 4), (int64_t[]){n * np, f, d}, 3);
    h = tc_dropout(ml_mha_forward(&b->temporal_attn, h, h, h, NULL, training, gen), p, training, gen);
    /* Back to frame-major order through a view: the residual add makes the one copy. */
    x = tc_add(x, tc_permute(tc_reshape(h, (int64_t[]){n, np, f, d}, 4), (int64_t[]){0, 2, 1, 3}, 4));
    x = tc_reshape(x, (int64_t[]){n * f, np, d}, 3);
    x = tc_add(x, attention_branch(&b->self_attn, &b->norm1, x, p, training, gen));
    x = tc_add(x, feed_forward(b, x, p, training, gen));
    return tc_reshape(x, (int64_t[]){n, f, np, d}, 4);
}

/* Position embeddings, dropout, the blocks, the final norm and the mean over tokens [N, F, P, dim] -> [N, dim]. */
static tc_tensor *encode(const vv_model *m, tc_tensor *x, int training, tc_generator *gen)
{
    const vv_config *c = &m->cfg;
    int64_t n = tc_size(x, 0), np = patches_per_frame(c);
    x = tc_add(tc_add(x, m->pos_spatial), tc_reshape(m->pos_temporal, (int64_t[]){c->frames, 1, c->dim}, 3));
    x = tc_dropout(x, c->dropout, training, gen);
    if (c->attention == VV_ATTN_JOINT) {
        x = tc_reshape(x, (int64_t[]){n, c->frames * np, c->dim}, 3);
        for (int i = 0; i < c->layers; i++) {
            tc_scope *s = tc_scope_begin();
            x = ml_scope_end_keep(s, joint_block(&m->block[i], x, c->dropout, training, gen));
        }
    } else {
        for (int i = 0; i < c->layers; i++) {
            tc_scope *s = tc_scope_begin();
            x = ml_scope_end_keep(s, divided_block(&m->block[i], x, c->dropout, training, gen));
        }
        x = tc_reshape(x, (int64_t[]){n, c->frames * np, c->dim}, 3);
    }
    return tc_mean(ml_layer_norm_forward(&m->norm, x), 1, 0);
}

tc_tensor *vv_forward_pixels(const vv_model *m, tc_tensor *pixels, int training, tc_generator *gen)
{
    char why[160];
    if (pixels && frames_problem(&m->cfg, pixels, 0, why, sizeof why))
        return tc_scope_fail(TC_EINVAL, "%s", why);
    return encode(m, embed_patches(m, pixels), training, gen);
}

tc_tensor *vv_forward(const vv_model *m, tc_tensor *frames_u8, int training, tc_generator *gen)
{
    char why[256];
    if (frames_u8 && vv_check_frames(m, frames_u8, why, sizeof why) != TC_OK)
        return tc_scope_fail(TC_EINVAL, "%s", why);
    /* Moved while still u8: a quarter of the bytes of the float pixels. */
    tc_tensor *x = tc_to_device(frames_u8, tc_device_of(m->pos_spatial));
    return encode(m, embed_patches_u8(m, x), training, gen);
}
