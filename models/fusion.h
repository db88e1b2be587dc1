/* The seed's two early-fusion models (../shared/avamerg.md), with every width configurable.
 *
 * Both read one conversation's last turn: up to U utterances (slots 0..k-1 valid, in order; the last
 * valid one is the response), the turn's context, and 12 metadata ids. Encoders are run only on the
 * utterance slots that hold their modality; a slot without audio (or video) carries a learned
 * "missing" vector instead of a silently zero feature, and padding slots are masked everywhere.
 *
 * Shared parts (parameter names in quotes; HF names below "bert.", "wav2vec2.", torch.nn names elsewhere):
 *   text      "bert.*": one BERT for utterances and context; per utterance the [CLS] last hidden state
 *             (text_pool MF_POOL_CLS, the seed's), the pooler output (MF_POOL_POOLER) or the masked
 *             mean of the tokens (MF_POOL_MEAN) -> [B, U, Ht]; the context the same way -> [B, Ht].
 *   metadata  embeddings "meta.age" (rows meta.age, width age_dim), "meta.gender", "meta.timbre",
 *             "meta.avatar" (IDs), "meta.topic", and with use_coe "meta.event", "meta.cause",
 *             "meta.goal" (the chain-of-empathy texts, which leak the label: off by default). Speaker
 *             and listener share the tables. Concatenated in record order: speaker age, gender,
 *             timbre, ID, listener age, gender, timbre, ID, topic[, event, cause, goal] -> [B, Dm]
 *             (Dm = 2*(age+gender+timbre+avatar dims) + topic_dim [+ 3*coe_dim]). An id outside its
 *             table reads as 0 (unknown).
 *   "meta_mlp" MLP Dm -> meta_hidden -> meta_out, ReLU + dropout after each layer.
 *   MLPs are ml_mlp (layers "<name>.0", "<name>.1", ...); LSTMs are bidirectional ml_lstm over the
 *   valid utterances (length = valid slots, at least 1); attentions are ml_mha with the padding slots
 *   masked as keys; "last valid position" takes slot k-1 (slot 0 when k = 0).
 *
 * AudioModel (MF_AUDIO):
 *   audio     "wav2vec2.*" on the utterances with audio: waveform -> normalise (audio_norm) -> encoder
 *             (frozen by default, run without gradients) -> mean over valid frames [Ha] ->
 *             "audio_mlp" Ha -> audio_hidden -> audio_out (ReLU + dropout after each layer);
 *             slots without audio get "audio_missing" [audio_out].
 *   per utterance x = [text Ht | audio audio_out | "role" embedding (3 roles, role_dim)]
 *   "lstm" (x -> 2*lstm_hidden, lstm_layers) -> "attn" (self-attention, heads) -> last valid position
 *   "ctx_proj" Linear Ht -> ctx_out on the context
 *   "head" MLP [ctx_out | 2*lstm_hidden | meta_out] -> head dims ... -> classes, ReLU + dropout between.
 *
 * VideoModel (MF_VIDEO):
 *   video     "video.*" (models/video_vit.h) on the utterances with frames -> [Hv]; slots without video
 *             get "video_missing" [Hv].
 *   "text_lstm" Ht -> 2*lstm_hidden, "text_attn" self-attention;
 *   "video_lstm" Hv -> 2*lstm_hidden, "video_attn" self-attention (keys: every valid utterance; one
 *             without frames is attended through video_missing, which says "no face here" rather than
 *             dropping the position the text and fusion streams keep);
 *   "meta_time" Linear Dm -> meta_time + ReLU, broadcast over the utterances;
 *   "fusion_lstm" [text | video | meta_time] -> 2*lstm_hidden, "fusion_attn" -> last valid position;
 *   "ctx_mlp" MLP Ht -> ctx dims... (ReLU + dropout after each layer);
 *   "meta_mlp" as above;
 *   fused f = [fusion 2*lstm_hidden | ctx_mlp out | meta_out];
 *   "cross_attn" (heads): query f, keys and values the utterances' [fusion_attn outputs | ctx_mlp out |
 *             meta_out] (padding slots masked); f = f + cross_attn(...);
 *   "head" MLP f -> head dims ... -> classes.
 *
 * Dropout everywhere is cfg.dropout (the encoders keep their own configs' dropouts). BERT's pooler is
 * frozen unless text_pool reads it. */
#ifndef EMPD_MODELS_FUSION_H
#define EMPD_MODELS_FUSION_H

#include "models/bert.h"
#include "models/layers.h"
#include "models/video_vit.h"
#include "models/wav2vec2.h"

#define MF_MAX_DIMS 6
#define MF_META_FIELDS 12

typedef enum { MF_AUDIO, MF_VIDEO } mf_kind;
typedef enum { MF_POOL_CLS, MF_POOL_POOLER, MF_POOL_MEAN } mf_text_pool;

typedef struct {
    mf_kind kind;
    int64_t classes;
    double dropout;
    bert_config bert;
    int bert_freeze_layers;        /* 0: nothing frozen; k > 0: embeddings and the first k layers; -1: all of BERT */
    mf_text_pool text_pool;
    w2v_config audio;              /* MF_AUDIO */
    int audio_frozen;              /* the seed's: 1 */
    w2v_norm audio_norm;
    vv_config video;               /* MF_VIDEO */
    /* metadata */
    int use_coe;
    int64_t rows_age, rows_gender, rows_timbre, rows_avatar, rows_topic, rows_event, rows_cause, rows_goal;
    int64_t age_dim, gender_dim, timbre_dim, avatar_dim, topic_dim, coe_dim;
    int64_t meta_hidden, meta_out;
    /* sequence part */
    int64_t lstm_hidden, heads, role_dim;
    int lstm_layers;
    int64_t audio_hidden, audio_out;            /* MF_AUDIO: audio_mlp */
    int64_t ctx_out;                            /* MF_AUDIO: ctx_proj */
    int64_t meta_time;                          /* MF_VIDEO */
    int64_t ctx_dims[MF_MAX_DIMS];              /* MF_VIDEO: ctx_mlp widths after Ht, n_ctx of them */
    int n_ctx;
    int64_t head_dims[MF_MAX_DIMS];             /* hidden widths of "head" before the classes */
    int n_head;
} mf_config;

/* The seed's widths for kind (bert-base, wav2vec2-base / the seed's video transformer, 7 classes);
 * metadata table sizes are the seed's (age 4, gender 2, timbre 3, avatar 100, topic/coe 1) until the
 * caller sets them from the shards' vocabularies. */
mf_config mf_config_seed(mf_kind kind);

/* Inputs, each on the model's device; the media of the other model may be NULL. */
typedef struct {
    tc_tensor *utt_tokens;  /* i64 [B, U, L] */
    tc_tensor *utt_mask;    /* f32 [B, U, L] */
    tc_tensor *utt_valid;   /* f32 [B, U] */
    tc_tensor *utt_role;    /* i64 [B, U] (0 speaker, 1 listener, 2 response) */
    tc_tensor *ctx_tokens;  /* i64 [B, C] */
    tc_tensor *ctx_mask;    /* f32 [B, C] */
    tc_tensor *meta;        /* i64 [B, MF_META_FIELDS], enum ds_meta_slot order */
    tc_tensor *audio;       /* i16 [B, U, S]       (MF_AUDIO) */
    tc_tensor *audio_len;   /* i64 [B, U] samples  (MF_AUDIO) */
    tc_tensor *audio_valid; /* f32 [B, U]          (MF_AUDIO) */
    tc_tensor *frames;      /* u8 [B, U, F, H, W, 3] (MF_VIDEO) */
    tc_tensor *video_valid; /* f32 [B, U]          (MF_VIDEO) */
} mf_inputs;

typedef struct {
    mf_config cfg;
    mp_params params;
    bert_model bert;
    w2v_model w2v;
    vv_model video;
    ml_embedding age, gender, timbre, avatar, topic, event, cause, goal;
    ml_mlp meta_mlp, head;
    tc_tensor *missing;                 /* audio_missing or video_missing */
    /* MF_AUDIO */
    ml_mlp audio_mlp;
    ml_embedding role;
    ml_lstm lstm;
    ml_mha attn;
    ml_linear ctx_proj;
    /* MF_VIDEO */
    ml_lstm text_lstm, video_lstm, fusion_lstm;
    ml_mha text_attn, video_attn, fusion_attn, cross_attn;
    ml_linear meta_time;
    ml_mlp ctx_mlp;
} mf_model;

/* Registers every parameter (seeded) and applies the freezing the config asks for. TC_EINVAL for a
 * config that does not fit together (a width not divisible by the heads, too many layers). */
int mf_model_init(mf_model *m, const mf_config *cfg, uint64_t seed);
void mf_model_free(mf_model *m);
/* Logits [B, classes]; gen drives dropout (NULL: torch's default generator). */
tc_tensor *mf_model_forward(mf_model *m, const mf_inputs *in, int training, tc_generator *gen);
/* Width of the concatenated metadata embeddings (Dm above). */
int64_t mf_meta_width(const mf_config *cfg);

#endif
