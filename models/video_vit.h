/* The video encoder: a TimeSformer-style transformer over the 8 frames of an utterance's clip.
 *
 * Frames (u8 RGB, as the loader's batch holds them) are scaled to [0, 1] and normalised with
 * ImageNet's mean and std, cut into patch x patch patches by a Conv2d(3, dim, patch, stride patch)
 * embedding, given learned spatial [P, dim] and temporal [F, dim] position embeddings, and run
 * through pre-norm transformer blocks; a final LayerNorm and the mean over all F * P tokens give
 * one vector per clip.
 *
 * Attention, per block:
 *   VV_ATTN_JOINT    one attention over all F * P tokens of a clip (what the seed trained); the
 *                    block is nn.TransformerEncoderLayer(dim, heads, ffn, dropout, "gelu",
 *                    batch_first=True, norm_first=True) exactly, names included.
 *   VV_ATTN_DIVIDED  TimeSformer's divided space-time attention: first over the F tokens of each
 *                    spatial position (".temporal_attn", ".norm_t"), then over the P tokens of each
 *                    frame (".self_attn", ".norm1"), then the feed-forward part; each pre-norm
 *                    with a residual.
 *
 * Parameter names below "<prefix>" (PyTorch's state_dict names, so a torch module loads them):
 *   patch_embed.{weight,bias}       [dim, 3, patch, patch], [dim]   nn.Conv2d default init
 *   pos_spatial [P, dim], pos_temporal [F, dim]                     N(0, 0.02)
 *   layers.<i>.temporal_attn.*, layers.<i>.norm_t.*                 divided only
 *   layers.<i>.self_attn.{in_proj_weight,in_proj_bias,out_proj.weight,out_proj.bias}
 *   layers.<i>.linear1.*, layers.<i>.linear2.*, layers.<i>.norm1.*, layers.<i>.norm2.*
 *   norm.{weight,bias}
 * with P = (image / patch)^2 and F = frames. */
#ifndef EMPD_MODELS_VIDEO_VIT_H
#define EMPD_MODELS_VIDEO_VIT_H

#include <stddef.h>

#include "models/layers.h"

#define VV_MAX_LAYERS 24

typedef enum { VV_ATTN_JOINT, VV_ATTN_DIVIDED } vv_attention;

typedef struct {
    int64_t image;          /* frame height and width in pixels; a multiple of patch */
    int64_t frames;         /* frames per clip (F) */
    int64_t patch;          /* patch side in pixels */
    int64_t dim, heads, layers, ffn;
    double dropout;         /* embeddings, attention weights, residual branches, feed-forward */
    double ln_eps;
    vv_attention attention;
} vv_config;

typedef struct {
    ml_layer_norm norm_t;   /* divided only */
    ml_mha temporal_attn;   /* divided only */
    ml_mha self_attn;
    ml_linear linear1, linear2;
    ml_layer_norm norm1, norm2;
} vv_block;

typedef struct {
    vv_config cfg;
    ml_conv2d patch_embed;
    tc_tensor *pos_spatial, *pos_temporal;
    vv_block block[VV_MAX_LAYERS];
    ml_layer_norm norm;
} vv_model;

/* The seed's encoder: 224 px, 8 frames, 32 px patches (49 per frame), dim 384, 6 heads, 4 layers,
 * ffn 1536, dropout 0.3, LayerNorm eps 1e-5, joint attention. */
vv_config vv_config_seed(void);

/* Registers every parameter in ps (creation order: patch_embed, pos_spatial, pos_temporal, the
 * blocks in order, norm). TC_EINVAL for a config out of range (layers outside 1..VV_MAX_LAYERS,
 * dim not divisible by heads, image not a multiple of patch, a size < 1, dropout outside [0, 1]);
 * otherwise the params' status. */
int vv_init(vv_model *m, mp_params *ps, const char *prefix, const vv_config *cfg);

/* TC_OK when frames has the shape the model takes, [N, frames, image, image, 3] with N >= 1;
 * otherwise TC_EINVAL and one line in err (when err_len > 0) naming the shape and what to change. */
int vv_check_frames(const vv_model *m, const tc_tensor *frames, char *err, size_t err_len);

/* u8 RGB [..., 3] -> f32 (x / 255 - mean) / std per channel, ImageNet's mean (0.485, 0.456, 0.406)
 * and std (0.229, 0.224, 0.225), channels still last. */
tc_tensor *vv_normalize_frames(tc_tensor *frames_u8);

/* frames u8 [N, F, H, W, 3] (any device: moved to the parameters' device before anything else) ->
 * [N, dim]: vv_forward_pixels of vv_normalize_frames(frames), with the normalisation folded into the
 * patch embedding so that no float copy of the frames is made. Frames of the wrong shape (see
 * vv_check_frames) record TC_EINVAL and its one-line message in the current scope and give NULL.
 * Dropout only when training, drawn from gen. */
tc_tensor *vv_forward(const vv_model *m, tc_tensor *frames_u8, int training, tc_generator *gen);

/* The same from already normalised f32 pixels [N, F, H, W, 3] on the parameters' device. */
tc_tensor *vv_forward_pixels(const vv_model *m, tc_tensor *pixels, int training, tc_generator *gen);

#endif
