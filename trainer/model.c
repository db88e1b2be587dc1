#include "trainer/model.h"

#include <stdio.h>
#include <string.h>

#include "trainer/batch.h"

/* Metadata fields the text model reads, in record order; the chain-of-empathy ones leak the label and
 * stay out of it. NULL: an avatar ID, sized by model.avatar_ids. */
static const char *const text_meta_vocab[DS_META_FIRST_LEAKING] = {
    "age", "gender", "timbre", NULL, "age", "gender", "timbre", NULL, "topic",
};

static int vocab_rows(const ds_manifest *man, const char *name, int64_t *rows, char *err, size_t errlen)
{
    const ds_manifest_vocab *v = ds_manifest_find_vocab(man, name);
    if (!v) {
        snprintf(err, errlen, "the shards' manifest has no '%s' vocabulary", name);
        return -1;
    }
    *rows = v->items.n > 0 ? (int64_t)v->items.n : 1;
    return 0;
}

static bert_config text_encoder(const tr_config *c)
{
    return (bert_config){.vocab_size = c->model.vocab_size, .hidden = c->model.hidden, .layers = c->model.layers,
                         .heads = c->model.heads, .intermediate = c->model.intermediate,
                         .max_position = c->model.max_position, .type_vocab = 2, .layer_norm_eps = 1e-12,
                         .dropout = c->model.dropout, .attention_dropout = c->model.dropout,
                         .init_std = c->model.init_std};
}

static int build_text(tr_model *m, const tr_config *c, const ds_manifest *man, uint64_t seed, char *err, size_t errlen)
{
    tm_config mc = {.bert = text_encoder(c), .meta_fields = DS_META_FIRST_LEAKING, .meta_dim = c->model.meta_dim,
                    .num_classes = c->model.num_classes, .dropout = c->model.dropout};
    for (int i = 0; i < mc.meta_fields; i++) {
        mc.meta_sizes[i] = c->model.avatar_ids;
        if (text_meta_vocab[i] && vocab_rows(man, text_meta_vocab[i], &mc.meta_sizes[i], err, errlen))
            return -1;
    }
    if (tm_model_init(&m->text, &mc, seed) != TC_OK) {
        snprintf(err, errlen, "model: cannot build: %s", tc_last_error());
        return -1;
    }
    return 0;
}

static int fusion_config(mf_config *f, const tr_config *c, const ds_manifest *man, char *err, size_t errlen)
{
    *f = mf_config_seed(c->model.kind == TR_MODEL_AUDIO ? MF_AUDIO : MF_VIDEO);
    f->classes = c->model.num_classes;
    f->dropout = c->model.dropout;
    f->bert = text_encoder(c);
    if (*c->model.bert.config && bert_config_from_hf(&f->bert, c->model.bert.config, err, errlen))
        return -1;
    if (f->bert.vocab_size < man->vocab_size) {
        snprintf(err, errlen, "the text encoder's vocabulary (%lld) is smaller than the shards' tokenizer's (%d)",
                 (long long)f->bert.vocab_size, man->vocab_size);
        return -1;
    }
    f->bert_freeze_layers = (int)c->model.bert.freeze_layers;
    f->text_pool = (mf_text_pool)c->model.text_pool;
    w2v_config *a = &f->audio;
    a->hidden = c->model.audio.hidden;
    a->layers = (int)c->model.audio.layers;
    a->heads = c->model.audio.heads;
    a->intermediate = c->model.audio.intermediate;
    a->pos_conv_kernel = c->model.audio.pos_kernel;
    a->pos_conv_groups = c->model.audio.pos_groups;
    for (int i = 0; i < a->conv_layers; i++)
        a->conv_dim[i] = c->model.audio.conv_dim;
    a->hidden_dropout = a->attention_dropout = a->activation_dropout = a->feat_proj_dropout = c->model.audio.dropout;
    /* Skipping whole layers is for long pretraining; a config.json that asks for it still gets it. */
    a->layerdrop = 0;
    if (*c->model.audio.config && w2v_config_from_hf(a, c->model.audio.config, err, errlen))
        return -1;
    f->audio_frozen = (int)c->model.audio.frozen;
    f->audio_norm = c->model.audio.norm == 0 ? W2V_NORM_PEAK : c->model.audio.norm == 1 ? W2V_NORM_ZERO_MEAN
                                                                                       : W2V_NORM_NONE;
    vv_config *v = &f->video;
    v->image = man->media.frame_h;
    v->frames = DS_N_FRAMES;
    v->patch = c->model.video.patch;
    v->dim = c->model.video.dim;
    v->heads = c->model.video.heads;
    v->layers = (int)c->model.video.layers;
    v->ffn = c->model.video.ffn;
    v->dropout = c->model.video.dropout;
    v->attention = c->model.video.attention ? VV_ATTN_DIVIDED : VV_ATTN_JOINT;
    f->use_coe = (int)c->model.meta.use_coe;
    f->age_dim = c->model.meta.age_dim;
    f->gender_dim = c->model.meta.gender_dim;
    f->timbre_dim = c->model.meta.timbre_dim;
    f->avatar_dim = c->model.meta.avatar_dim;
    f->topic_dim = c->model.meta.topic_dim;
    f->coe_dim = c->model.meta.coe_dim;
    f->rows_avatar = c->model.avatar_ids;
    if (vocab_rows(man, "age", &f->rows_age, err, errlen) || vocab_rows(man, "gender", &f->rows_gender, err, errlen) ||
        vocab_rows(man, "timbre", &f->rows_timbre, err, errlen) || vocab_rows(man, "topic", &f->rows_topic, err, errlen))
        return -1;
    if (f->use_coe && (vocab_rows(man, "event_scenario", &f->rows_event, err, errlen) ||
                       vocab_rows(man, "emotion_cause", &f->rows_cause, err, errlen) ||
                       vocab_rows(man, "goal_to_response", &f->rows_goal, err, errlen)))
        return -1;
    f->lstm_hidden = c->model.fusion.lstm_hidden;
    f->lstm_layers = (int)c->model.fusion.lstm_layers;
    f->heads = c->model.fusion.heads;
    f->role_dim = c->model.fusion.role_dim;
    f->audio_hidden = c->model.fusion.audio_hidden;
    f->audio_out = c->model.fusion.audio_out;
    f->ctx_out = c->model.fusion.ctx_out;
    f->meta_time = c->model.fusion.meta_time;
    f->meta_hidden = c->model.fusion.meta_hidden;
    f->meta_out = c->model.fusion.meta_out;
    f->n_ctx = (int)c->model.fusion.n_ctx;
    memcpy(f->ctx_dims, c->model.fusion.ctx, sizeof c->model.fusion.ctx);
    if (c->model.fusion.n_head) {
        f->n_head = (int)c->model.fusion.n_head;
        memcpy(f->head_dims, c->model.fusion.head, sizeof c->model.fusion.head);
    }
    return 0;
}

/* The ways a fusion config can fail to fit, each named by its fields (mf_model_init only says
 * TC_EINVAL). */
static int fusion_fits(const mf_config *f, const tr_config *c, char *err, size_t errlen)
{
    const char *bert_src = *c->model.bert.config ? c->model.bert.config : "model.max_position";
    int64_t seq = 2 * f->lstm_hidden;
    if (f->bert_freeze_layers > f->bert.layers)
        snprintf(err, errlen, "model.bert.freeze_layers (%d) exceeds the text encoder's %lld layers", f->bert_freeze_layers,
                 (long long)f->bert.layers);
    else if (c->model.utt_tokens > f->bert.max_position || c->model.ctx_tokens > f->bert.max_position)
        snprintf(err, errlen, "model.utt_tokens (%lld) and model.ctx_tokens (%lld) must not exceed the text encoder's %lld positions (%s)",
                 (long long)c->model.utt_tokens, (long long)c->model.ctx_tokens, (long long)f->bert.max_position, bert_src);
    else if (f->kind == MF_AUDIO && (f->audio.hidden % f->audio.heads || f->audio.hidden % f->audio.pos_conv_groups))
        snprintf(err, errlen, "the audio encoder's width (%lld) must divide by its heads (%lld) and positional groups (%lld)",
                 (long long)f->audio.hidden, (long long)f->audio.heads, (long long)f->audio.pos_conv_groups);
    else if (f->kind == MF_VIDEO && f->video.dim % f->video.heads)
        snprintf(err, errlen, "model.video.dim (%lld) must divide by model.video.heads (%lld)", (long long)f->video.dim,
                 (long long)f->video.heads);
    else if (seq % f->heads)
        snprintf(err, errlen, "model.fusion.heads (%lld) must divide 2 x model.fusion.lstm_hidden (%lld)", (long long)f->heads,
                 (long long)seq);
    else if (f->kind == MF_VIDEO &&
             (seq + (f->n_ctx ? f->ctx_dims[f->n_ctx - 1] : f->bert.hidden) + f->meta_out) % f->heads)
        snprintf(err, errlen, "model.fusion.heads (%lld) must divide the cross-modal width: 2 x lstm_hidden + the last "
                 "model.fusion.ctx width + model.fusion.meta_out (%lld)", (long long)f->heads,
                 (long long)(seq + (f->n_ctx ? f->ctx_dims[f->n_ctx - 1] : f->bert.hidden) + f->meta_out));
    else
        return 0;
    return -1;
}

static int load_weights(tr_model *m, const tr_config *c, char *err, size_t errlen)
{
    if (*c->model.bert.weights &&
        bert_load_hf(&m->fusion.bert, &m->fusion.params, c->model.bert.weights, &m->bert_import, err, errlen))
        return -1;
    if (c->model.kind == TR_MODEL_AUDIO && *c->model.audio.weights &&
        w2v_load_hf(&m->fusion.w2v, &m->fusion.params, c->model.audio.weights, &m->audio_import, err, errlen))
        return -1;
    return 0;
}

int tr_model_build(tr_model *m, const tr_config *c, const ds_manifest *man, uint64_t seed, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    m->kind = (int)c->model.kind;
    if (m->kind == TR_MODEL_TEXT)
        return build_text(m, c, man, seed, err, errlen);
    if (m->kind == TR_MODEL_AUDIO && !man->media.audio) {
        snprintf(err, errlen, "the audio model needs waveforms, and these shards hold none (sharded with --media video or none)");
        return -1;
    }
    if (m->kind == TR_MODEL_VIDEO && !man->media.video) {
        snprintf(err, errlen, "the video model needs frames, and these shards hold none (sharded with --media audio or none)");
        return -1;
    }
    if (m->kind == TR_MODEL_VIDEO && (man->media.frame_h != man->media.frame_w || man->media.frame_h % c->model.video.patch)) {
        snprintf(err, errlen, "the video model reads square frames whose side model.video.patch (%lld) divides; the shards hold %dx%d",
                 (long long)c->model.video.patch, man->media.frame_w, man->media.frame_h);
        return -1;
    }
    mf_config f;
    if (fusion_config(&f, c, man, err, errlen) || fusion_fits(&f, c, err, errlen))
        return -1;
    int rc = mf_model_init(&m->fusion, &f, seed);
    if (rc != TC_OK) {
        snprintf(err, errlen, "model: cannot build the %s model: %s", m->kind == TR_MODEL_AUDIO ? "audio" : "video",
                 rc == TC_EINVAL ? "the configuration does not fit together" : tc_last_error());
        return -1;
    }
    if (load_weights(m, c, err, errlen)) {
        mf_model_free(&m->fusion);
        return -1;
    }
    return 0;
}

void tr_model_free(tr_model *m)
{
    if (m->kind == TR_MODEL_TEXT)
        tm_model_free(&m->text);
    else
        mf_model_free(&m->fusion);
}

mp_params *tr_model_params(tr_model *m) { return m->kind == TR_MODEL_TEXT ? &m->text.params : &m->fusion.params; }

ds_batch_shape tr_model_batch_shape(const tr_config *c, const ds_manifest *man)
{
    ds_batch_shape s = {.B = (int)c->train.batch_size, .U = DS_MAX_UTT, .L = (int)c->model.utt_tokens,
                        .C = (int)c->model.ctx_tokens, .mods = DS_MOD_TEXT};
    if (c->model.kind == TR_MODEL_TEXT) {
        s.C = 2; /* the text model reads no context: the smallest the loader takes */
    } else if (c->model.kind == TR_MODEL_AUDIO) {
        s.mods |= DS_MOD_AUDIO;
        s.S = (int)(c->model.audio.seconds * DS_AUDIO_RATE + 0.5);
    } else {
        s.mods |= DS_MOD_VIDEO;
        s.H = man ? man->media.frame_h : 0;
        s.W = man ? man->media.frame_w : 0;
    }
    return s;
}

/* The batch's tensors onto the model's device (from page-locked memory, so the copies are
 * asynchronous); on the CPU they stay views of the batch. */
static void to_device(tc_tensor **const *fields, int n, tc_device dev)
{
    for (int i = 0; dev.type != TC_CPU && i < n; i++)
        if (*fields[i])
            *fields[i] = tc_to_device(*fields[i], dev);
}

tc_tensor *tr_model_forward(tr_model *m, const ds_batch *b, int training, tc_generator *gen)
{
    tc_device dev = tc_device_of(tr_model_params(m)->v[0].t);
    if (m->kind == TR_MODEL_TEXT) {
        tm_inputs in = tr_batch_inputs(b);
        to_device((tc_tensor **const[]){&in.utt_tokens, &in.utt_mask, &in.utt_valid, &in.meta}, 4, dev);
        return tm_model_forward(&m->text, &in, training, gen);
    }
    mf_inputs in = tr_batch_fusion_inputs(b);
    to_device((tc_tensor **const[]){&in.utt_tokens, &in.utt_mask, &in.utt_valid, &in.utt_role, &in.ctx_tokens,
                                    &in.ctx_mask, &in.meta, &in.audio, &in.audio_len, &in.audio_valid, &in.frames,
                                    &in.video_valid},
              12, dev);
    return mf_model_forward(&m->fusion, &in, training, gen);
}
