/* A Wav2Vec2 speech encoder with Hugging Face Wav2Vec2Model's structure, parameter names and
 * forward semantics (facebook/wav2vec2-base and the other "wav2vec2" checkpoints):
 *
 *   wave [N, S] -> conv feature encoder (conv0 -> GroupNorm -> act, then conv -> act; or, with
 *   feat_extract_norm "layer", conv -> LayerNorm over channels -> act everywhere) -> [N, T, C]
 *   -> feature projection (LayerNorm, Linear, dropout) -> padded frames zeroed
 *   -> + positional convolution (grouped, weight-normalised, padding K/2, last frame dropped when K
 *   is even, act) -> encoder LayerNorm -> dropout -> post-LN transformer layers
 *   (do_stable_layer_norm: pre-LN layers and the encoder LayerNorm at the end) -> [N, T, hidden].
 *
 * Padding, as HF does it when given an attention mask: the conv stack sees the zero-padded wave
 * whole (so GroupNorm statistics include the padding, as in HF and torchaudio), the valid frame
 * counts follow HF's _get_feat_extract_output_lengths (clamped at 0, as torchaudio does), padded
 * frames are zeroed before the positional convolution, and attention never looks at a padded key.
 * Outputs at padded frames are computed (HF returns them too) but mean nothing; w2v_pool skips them.
 *
 * Training-mode differences from HF: SpecAugment (mask_time_prob, masked_spec_embed) is not applied;
 * dropout and LayerDrop draw from the generator given to w2v_forward. LayerDrop skips whole layers, so
 * in a step where it fires, that layer's parameters get no gradient (set layerdrop 0 where every rank
 * must produce every gradient).
 *
 * Parameter names below "<prefix>." are HF's ("feature_extractor.conv_layers.0.conv.weight",
 * "encoder.pos_conv_embed.conv.weight_g", "encoder.layers.3.attention.q_proj.bias", ...), so
 * checkpoints read and write HF's layout; w2v_load_hf reads a model.safetensors. */
#ifndef EMPD_MODELS_WAV2VEC2_H
#define EMPD_MODELS_WAV2VEC2_H

#include <stddef.h>
#include <stdint.h>

#include "models/hf_import.h"
#include "models/layers.h"

#define W2V_MAX_CONV 16
#define W2V_MAX_LAYERS 48

typedef enum { W2V_EXTRACT_GROUP, W2V_EXTRACT_LAYER } w2v_extract_norm;

/* HF Wav2Vec2Config's fields that shape the encoder (HF's names in comments). */
typedef struct {
    int conv_layers;                       /* len(conv_dim) */
    int64_t conv_dim[W2V_MAX_CONV];        /* conv_dim */
    int64_t conv_kernel[W2V_MAX_CONV];     /* conv_kernel */
    int64_t conv_stride[W2V_MAX_CONV];     /* conv_stride */
    int conv_bias;                         /* conv_bias */
    w2v_extract_norm extract_norm;         /* feat_extract_norm: "group" or "layer" */
    ml_act extract_act;                    /* feat_extract_activation (also the positional conv's) */
    int64_t hidden;                        /* hidden_size */
    int layers;                            /* num_hidden_layers */
    int64_t heads;                         /* num_attention_heads */
    int64_t intermediate;                  /* intermediate_size */
    ml_act hidden_act;                     /* hidden_act */
    int64_t pos_conv_kernel;               /* num_conv_pos_embeddings */
    int64_t pos_conv_groups;               /* num_conv_pos_embedding_groups */
    int stable_layer_norm;                 /* do_stable_layer_norm */
    double layer_norm_eps;                 /* layer_norm_eps */
    double hidden_dropout;                 /* hidden_dropout */
    double attention_dropout;              /* attention_dropout */
    double activation_dropout;             /* activation_dropout */
    double feat_proj_dropout;              /* feat_proj_dropout */
    double layerdrop;                      /* layerdrop */
    double init_std;                       /* initializer_range */
} w2v_config;

/* facebook/wav2vec2-base: 7 convs of 512 ([10,3,3,3,3,2,2] / [5,2,2,2,2,2,2], no bias, group norm),
 * 12 post-LN layers of 768 with 12 heads and 3072 GELU, positional conv 128 wide in 16 groups. */
w2v_config w2v_config_base(void);

/* Reads a HF config.json at path. Absent fields take Wav2Vec2Config's defaults. Refused, with one
 * line naming path and the field: a model_type other than "wav2vec2", wrong types or ranges,
 * conv_dim/conv_kernel/conv_stride of different lengths, an unknown activation, add_adapter,
 * hidden_size not divisible by the heads or the positional conv's groups. Returns 0 or -1. */
int w2v_config_from_hf(w2v_config *c, const char *path, char *err, size_t errlen);

/* c as HF's config.json text (Wav2Vec2Model), which w2v_config_from_hf reads back to c; malloc'd, NULL
 * when out of memory. */
char *w2v_config_to_hf(const w2v_config *c);

/* Frames the conv stack makes from samples (HF's _get_feat_extract_output_lengths, at least 0). */
int64_t w2v_frames(const w2v_config *c, int64_t samples);

typedef struct {
    ml_conv1d conv;
    ml_group_norm group_norm;  /* layer 0 of a "group" stack */
    ml_layer_norm layer_norm;  /* every layer of a "layer" stack */
} w2v_conv_layer;

typedef struct {
    ml_linear q, k, v, out, inter, output;
    ml_layer_norm attn_ln, final_ln;
} w2v_layer;

typedef struct {
    w2v_config cfg;
    char prefix[128];
    w2v_conv_layer conv[W2V_MAX_CONV];
    ml_layer_norm proj_ln;
    ml_linear proj;
    tc_tensor *pos_b, *pos_g, *pos_v;  /* pos_g [1, 1, K], pos_v [H, H / groups, K] */
    ml_layer_norm enc_ln;
    w2v_layer layer[W2V_MAX_LAYERS];
} w2v_model;

/* Registers every parameter under "<prefix>." in HF's state_dict order, initialised as HF's
 * _init_weights does (Kaiming-normal convs, N(0, initializer_range) linears, U(+-1/sqrt(in)) for the
 * feature projection, N(0, 2/sqrt(K * hidden)) for the positional conv with weight_g = ||weight_v||).
 * Returns TC_OK, TC_EINVAL for a config out of range, or the params' first error. */
int w2v_init(w2v_model *m, mp_params *ps, const char *prefix, const w2v_config *cfg);

/* wave f32 [N, S] on the model's device; lengths: N host counts of valid samples (NULL: all S;
 * each clamped into 0..S). Returns the last hidden states [N, T, hidden], T = w2v_frames(S), and,
 * when frame_valid is not NULL, the valid frames as f32 [N, T] (1 valid, 0 padding). training turns
 * on dropout and LayerDrop, drawn from gen (NULL: torch's default generator). An op in the cairo
 * sense: errors land in the current scope. */
tc_tensor *w2v_forward(const w2v_model *m, tc_tensor *wave, const int64_t *lengths, int training,
                       tc_generator *gen, tc_tensor **frame_valid);

/* Mean of hidden [N, T, H] over the valid frames -> [N, H] (zeros for a sample with none);
 * frame_valid NULL: over all frames. */
tc_tensor *w2v_pool(tc_tensor *hidden, tc_tensor *frame_valid);

typedef enum {
    W2V_NORM_NONE,      /* as given */
    W2V_NORM_ZERO_MEAN, /* HF Wav2Vec2FeatureExtractor do_normalize: (x - mean) / sqrt(var + 1e-7)
                           over the valid samples (var with ddof 0) */
    W2V_NORM_PEAK       /* x / max|x| over the valid samples; silence stays 0 */
} w2v_norm;

/* The encoder's input from a padded batch of waves, i16 (scaled by 1/32768 first) or f32 [N, S]:
 * f32 [N, S] normalised per sample over its first lengths[i] samples (NULL: all S); with ZERO_MEAN
 * and PEAK the padding comes out 0. */
tc_tensor *w2v_normalize(tc_tensor *wave, const int64_t *lengths, w2v_norm mode);

/* Freezes (on = 1) or unfreezes (on = 0) every parameter of m (mp_set_trainable on "<prefix>."): a
 * frozen encoder takes no gradient and no optimizer step. TC_OK, or TC_EINVAL when ps holds none of
 * m's parameters. */
int w2v_freeze(const w2v_model *m, mp_params *ps, int on);

/* Loads a HF wav2vec2 model.safetensors (Wav2Vec2Model, ...ForPreTraining or ...ForCTC exports: names
 * with or without "wav2vec2.", weight norm as weight_g/weight_v or parametrizations.weight.original0/1)
 * into m's parameters. Pretraining and head parts (quantizer, project_q, project_hid,
 * masked_spec_embed, lm_head, dropout_features) are skipped and counted in rep (may be NULL); anything
 * else missing, unexpected or misshapen fails with one line in err naming the tensor, and leaves the
 * parameters as they were. Returns 0 or -1. */
int w2v_load_hf(const w2v_model *m, mp_params *ps, const char *path, hf_import_report *rep, char *err,
                size_t errlen);

#endif
