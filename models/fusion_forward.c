/* The forwards of the two fusion models (the structure is described in fusion.h). */
#include "models/fusion_internal.h"

#include <stdlib.h>

/* [B, U, Ht]: BERT on the valid utterance slots only; padding slots stay zero. */
static tc_tensor *utterance_text(const mf_model *m, const mf_inputs *in, const mf_slot_list *utt, int training,
                                 tc_generator *gen)
{
    int64_t b = tc_size(in->utt_tokens, 0), u = tc_size(in->utt_tokens, 1), l = tc_size(in->utt_tokens, 2);
    int64_t ht = m->cfg.bert.hidden;
    tc_tensor *idx = mf_slot_index(utt, tc_device_of(in->utt_tokens));
    tc_tensor *feats = NULL;
    if (utt->n) {
        tc_tensor *ids = tc_index_select(tc_reshape(in->utt_tokens, (int64_t[]){b * u, l}, 2), 0, idx);
        tc_tensor *mask = tc_index_select(tc_reshape(in->utt_mask, (int64_t[]){b * u, l}, 2), 0, idx);
        tc_scope *sc = tc_scope_begin();
        feats = ml_scope_end_keep(sc, mf_text_features(m, ids, mask, training, gen));
    }
    tc_tensor *flat = utt->n ? mf_scatter_slots(utt, idx, feats, NULL, ht)
                             : tc_zeros((int64_t[]){b * u, ht}, 2, TC_F32, tc_device_of(in->utt_mask));
    return tc_reshape(flat, (int64_t[]){b, u, ht}, 3);
}

/* [B, U, audio_out]: wav2vec2 + audio_mlp on the slots with audio, audio_missing elsewhere. A frozen
 * encoder runs in evaluation mode without recording gradients: a fixed feature extractor. */
static tc_tensor *utterance_audio(mf_model *m, const mf_inputs *in, int training, tc_generator *gen, int *rc)
{
    const mf_config *c = &m->cfg;
    int64_t b = tc_size(in->audio, 0), u = tc_size(in->audio, 1), s = tc_size(in->audio, 2);
    mf_slot_list slots;
    if ((*rc = mf_slots(tc_mul(in->audio_valid, in->utt_valid), &slots)) != TC_OK)
        return NULL;
    tc_tensor *idx = mf_slot_index(&slots, tc_device_of(in->audio)), *feats = NULL;
    if (slots.n) {
        int64_t *all = malloc((size_t)(b * u) * sizeof *all), *lengths = malloc((size_t)slots.n * sizeof *lengths);
        if (!all || !lengths || tc_copy_to_host(in->audio_len, all, (size_t)(b * u) * sizeof *all) != TC_OK) {
            free(all);
            free(lengths);
            mf_slots_free(&slots);
            *rc = TC_ENOMEM;
            return NULL;
        }
        for (int64_t i = 0; i < slots.n; i++)
            lengths[i] = all[slots.index[i]] < s ? all[slots.index[i]] : s;
        int frozen = c->audio_frozen, was = frozen ? tc_grad_enabled_set(0) : 0;
        /* The waveforms' copies and the encoder's scratch die with this scope. */
        tc_scope *sc = tc_scope_begin();
        tc_tensor *wave = tc_index_select(tc_reshape(in->audio, (int64_t[]){b * u, s}, 2), 0, idx);
        wave = w2v_normalize(wave, lengths, c->audio_norm);
        tc_tensor *frame_valid = NULL;
        tc_tensor *hidden = w2v_forward(&m->w2v, wave, lengths, training && !frozen, gen, &frame_valid);
        tc_tensor *pooled = ml_scope_end_keep(sc, w2v_pool(hidden, frame_valid));
        if (frozen)
            tc_grad_enabled_set(was);
        feats = ml_mlp_forward(&m->audio_mlp, pooled, training, gen);
        free(all);
        free(lengths);
    }
    tc_tensor *flat = mf_scatter_slots(&slots, idx, feats, m->missing, c->audio_out);
    mf_slots_free(&slots);
    return tc_reshape(flat, (int64_t[]){b, u, c->audio_out}, 3);
}

/* [B, U, Hv]: the video transformer on the slots with frames, video_missing elsewhere. */
static tc_tensor *utterance_video(mf_model *m, const mf_inputs *in, int training, tc_generator *gen, int *rc)
{
    int64_t b = tc_size(in->frames, 0), u = tc_size(in->frames, 1), hv = m->cfg.video.dim;
    mf_slot_list slots;
    if ((*rc = mf_slots(tc_mul(in->video_valid, in->utt_valid), &slots)) != TC_OK)
        return NULL;
    tc_tensor *idx = mf_slot_index(&slots, tc_device_of(in->frames)), *feats = NULL;
    if (slots.n) {
        int64_t shape[5] = {b * u, tc_size(in->frames, 2), tc_size(in->frames, 3), tc_size(in->frames, 4), 3};
        /* The clips' copy and the encoder's scratch die with this scope. */
        tc_scope *sc = tc_scope_begin();
        tc_tensor *clips = tc_index_select(tc_reshape(in->frames, shape, 5), 0, idx);
        feats = ml_scope_end_keep(sc, vv_forward(&m->video, clips, training, gen));
    }
    tc_tensor *flat = mf_scatter_slots(&slots, idx, feats, m->missing, hv);
    mf_slots_free(&slots);
    return tc_reshape(flat, (int64_t[]){b, u, hv}, 3);
}

/* BiLSTM over the valid utterances, then self-attention with the padding slots masked. */
static tc_tensor *sequence(const ml_lstm *lstm, const ml_mha *attn, tc_tensor *x, const int64_t *lengths,
                           tc_tensor *valid, int training, tc_generator *gen)
{
    tc_tensor *h = ml_lstm_forward(lstm, x, lengths, training, gen);
    return ml_mha_forward(attn, h, h, h, valid, training, gen);
}

static tc_tensor *broadcast_time(tc_tensor *x, int64_t u)
{
    int64_t b = tc_size(x, 0), d = tc_size(x, 1);
    return tc_expand(tc_unsqueeze(x, 1), (int64_t[]){b, u, d}, 3);
}

static tc_tensor *audio_forward(mf_model *m, const mf_inputs *in, const mf_slot_list *utt, const int64_t *lengths,
                                int training, tc_generator *gen, int *rc)
{
    tc_tensor *text = utterance_text(m, in, utt, training, gen);
    tc_tensor *audio = utterance_audio(m, in, training, gen, rc);
    if (*rc != TC_OK)
        return NULL;
    tc_tensor *roles = mf_embed_ids(&m->role, in->utt_role);
    tc_tensor *x = tc_cat((tc_tensor *[]){text, audio, roles}, 3, 2);
    tc_tensor *dialogue = mf_last_valid(sequence(&m->lstm, &m->attn, x, lengths, in->utt_valid, training, gen), lengths);
    tc_tensor *ctx = ml_linear_forward(&m->ctx_proj, mf_text_features(m, in->ctx_tokens, in->ctx_mask, training, gen));
    tc_tensor *meta = ml_mlp_forward(&m->meta_mlp, mf_meta_features(m, in->meta), training, gen);
    return ml_mlp_forward(&m->head, tc_cat((tc_tensor *[]){ctx, dialogue, meta}, 3, 1), training, gen);
}

static tc_tensor *video_forward(mf_model *m, const mf_inputs *in, const mf_slot_list *utt, const int64_t *lengths,
                                int training, tc_generator *gen, int *rc)
{
    const mf_config *c = &m->cfg;
    int64_t u = tc_size(in->utt_valid, 1);
    tc_tensor *text = utterance_text(m, in, utt, training, gen);
    tc_tensor *video = utterance_video(m, in, training, gen, rc);
    if (*rc != TC_OK)
        return NULL;
    tc_tensor *t = sequence(&m->text_lstm, &m->text_attn, text, lengths, in->utt_valid, training, gen);
    tc_tensor *v = sequence(&m->video_lstm, &m->video_attn, video, lengths, in->utt_valid, training, gen);
    tc_tensor *meta_in = mf_meta_features(m, in->meta);
    tc_tensor *mt = broadcast_time(tc_relu(ml_linear_forward(&m->meta_time, meta_in)), u);
    tc_tensor *steps = sequence(&m->fusion_lstm, &m->fusion_attn, tc_cat((tc_tensor *[]){t, v, mt}, 3, 2), lengths,
                                in->utt_valid, training, gen);
    tc_tensor *ctx = mf_text_features(m, in->ctx_tokens, in->ctx_mask, training, gen);
    if (c->n_ctx)
        ctx = ml_mlp_forward(&m->ctx_mlp, ctx, training, gen);
    tc_tensor *meta = ml_mlp_forward(&m->meta_mlp, meta_in, training, gen);
    tc_tensor *fused = tc_cat((tc_tensor *[]){mf_last_valid(steps, lengths), ctx, meta}, 3, 1);
    tc_tensor *tokens = tc_cat((tc_tensor *[]){steps, broadcast_time(ctx, u), broadcast_time(meta, u)}, 3, 2);
    tc_tensor *q = tc_unsqueeze(fused, 1);
    tc_tensor *cross = tc_squeeze(ml_mha_forward(&m->cross_attn, q, tokens, tokens, in->utt_valid, training, gen), 1);
    return ml_mlp_forward(&m->head, tc_add(fused, cross), training, gen);
}

tc_tensor *mf_model_forward(mf_model *m, const mf_inputs *in, int training, tc_generator *gen)
{
    int64_t b = tc_size(in->utt_valid, 0);
    mf_slot_list utt = {0};
    int64_t *lengths = malloc((size_t)(b > 0 ? b : 1) * sizeof *lengths);
    int rc = lengths ? mf_slots(in->utt_valid, &utt) : TC_ENOMEM;
    if (rc == TC_OK)
        rc = ml_valid_lengths(in->utt_valid, lengths, b);
    tc_tensor *logits = NULL;
    if (rc == TC_OK)
        logits = m->cfg.kind == MF_AUDIO ? audio_forward(m, in, &utt, lengths, training, gen, &rc)
                                         : video_forward(m, in, &utt, lengths, training, gen, &rc);
    mf_slots_free(&utt);
    free(lengths);
    /* A failure outside an op (host memory) still has to reach the scope. */
    return rc == TC_OK ? logits : tc_scope_fail(rc, "fusion model: %s", rc == TC_ENOMEM ? "out of host memory" : tc_last_error());
}
