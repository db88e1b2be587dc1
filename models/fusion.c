/* The parts both fusion models share: configuration, parameters, the metadata embeddings, running an
 * encoder on the utterance slots that hold its modality, and picking the last valid position. The two
 * forwards are in fusion_forward.c. */
#include "models/fusion_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

mf_config mf_config_seed(mf_kind kind)
{
    mf_config c;
    memset(&c, 0, sizeof c);
    c.kind = kind;
    c.classes = 7;
    c.dropout = kind == MF_AUDIO ? 0.2 : 0.3;
    c.bert = (bert_config){.vocab_size = 30522, .hidden = 768, .layers = 12, .heads = 12, .intermediate = 3072,
                           .max_position = 512, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                           .attention_dropout = 0.1, .init_std = 0.02};
    c.bert_freeze_layers = 6;
    c.text_pool = MF_POOL_CLS;
    c.audio = w2v_config_base();
    c.audio_frozen = 1;
    c.audio_norm = W2V_NORM_PEAK;
    c.video = vv_config_seed();
    c.rows_age = 4, c.rows_gender = 2, c.rows_timbre = 3, c.rows_avatar = 100;
    c.rows_topic = c.rows_event = c.rows_cause = c.rows_goal = 1;
    c.age_dim = 16, c.gender_dim = 8, c.timbre_dim = 8, c.avatar_dim = 32, c.topic_dim = 32, c.coe_dim = 32;
    c.meta_hidden = 128, c.meta_out = 64;
    c.lstm_hidden = 256, c.lstm_layers = 2, c.heads = 8, c.role_dim = 16;
    c.audio_hidden = 512, c.audio_out = 256, c.ctx_out = 256;
    c.meta_time = 256;
    c.ctx_dims[0] = 512, c.ctx_dims[1] = 256, c.ctx_dims[2] = 128, c.n_ctx = 3;
    if (kind == MF_AUDIO) {
        c.head_dims[0] = 512, c.head_dims[1] = 256, c.n_head = 2;
    } else {
        c.head_dims[0] = 512, c.head_dims[1] = 256, c.head_dims[2] = 128, c.n_head = 3;
    }
    return c;
}

int64_t mf_meta_width(const mf_config *c)
{
    return 2 * (c->age_dim + c->gender_dim + c->timbre_dim + c->avatar_dim) + c->topic_dim +
           (c->use_coe ? 3 * c->coe_dim : 0);
}

static int init_meta(mf_model *m, mp_params *ps)
{
    const mf_config *c = &m->cfg;
    ml_embedding_init(&m->age, ps, "meta.age", c->rows_age, c->age_dim, 1.0);
    ml_embedding_init(&m->gender, ps, "meta.gender", c->rows_gender, c->gender_dim, 1.0);
    ml_embedding_init(&m->timbre, ps, "meta.timbre", c->rows_timbre, c->timbre_dim, 1.0);
    ml_embedding_init(&m->avatar, ps, "meta.avatar", c->rows_avatar, c->avatar_dim, 1.0);
    ml_embedding_init(&m->topic, ps, "meta.topic", c->rows_topic, c->topic_dim, 1.0);
    if (c->use_coe) {
        ml_embedding_init(&m->event, ps, "meta.event", c->rows_event, c->coe_dim, 1.0);
        ml_embedding_init(&m->cause, ps, "meta.cause", c->rows_cause, c->coe_dim, 1.0);
        ml_embedding_init(&m->goal, ps, "meta.goal", c->rows_goal, c->coe_dim, 1.0);
    }
    return ml_mlp_init(&m->meta_mlp, ps, "meta_mlp", (int64_t[]){mf_meta_width(c), c->meta_hidden, c->meta_out}, 3,
                       ML_ACT_RELU, c->dropout, 1);
}

static int init_head(mf_model *m, mp_params *ps, int64_t in)
{
    const mf_config *c = &m->cfg;
    int64_t dims[MF_MAX_DIMS + 2];
    dims[0] = in;
    for (int i = 0; i < c->n_head; i++)
        dims[1 + i] = c->head_dims[i];
    dims[1 + c->n_head] = c->classes;
    return ml_mlp_init(&m->head, ps, "head", dims, c->n_head + 2, ML_ACT_RELU, c->dropout, 0);
}

static int init_audio(mf_model *m, mp_params *ps)
{
    const mf_config *c = &m->cfg;
    int64_t ht = c->bert.hidden, seq = 2 * c->lstm_hidden;
    int rc = w2v_init(&m->w2v, ps, "wav2vec2", &c->audio);
    if (rc != TC_OK)
        return rc;
    ml_mlp_init(&m->audio_mlp, ps, "audio_mlp", (int64_t[]){c->audio.hidden, c->audio_hidden, c->audio_out}, 3,
                ML_ACT_RELU, c->dropout, 1);
    m->missing = mp_normal(ps, "audio_missing", (int64_t[]){c->audio_out}, 1, 0.02);
    ml_embedding_init(&m->role, ps, "role", 3, c->role_dim, 1.0);
    if ((rc = ml_lstm_init(&m->lstm, ps, "lstm", ht + c->audio_out + c->role_dim, c->lstm_hidden, c->lstm_layers, 1,
                           c->dropout)) != TC_OK ||
        (rc = ml_mha_init(&m->attn, ps, "attn", seq, c->heads, c->dropout)) != TC_OK)
        return rc;
    ml_linear_init_default(&m->ctx_proj, ps, "ctx_proj", ht, c->ctx_out, 1);
    if ((rc = init_meta(m, ps)) != TC_OK)
        return rc;
    return init_head(m, ps, c->ctx_out + seq + c->meta_out);
}

static int init_video(mf_model *m, mp_params *ps)
{
    const mf_config *c = &m->cfg;
    int64_t ht = c->bert.hidden, hv = c->video.dim, seq = 2 * c->lstm_hidden;
    int rc = vv_init(&m->video, ps, "video", &c->video);
    if (rc != TC_OK)
        return rc;
    m->missing = mp_normal(ps, "video_missing", (int64_t[]){hv}, 1, 0.02);
    int64_t fused = seq + (c->n_ctx ? c->ctx_dims[c->n_ctx - 1] : ht) + c->meta_out;
    if ((rc = ml_lstm_init(&m->text_lstm, ps, "text_lstm", ht, c->lstm_hidden, c->lstm_layers, 1, c->dropout)) ||
        (rc = ml_mha_init(&m->text_attn, ps, "text_attn", seq, c->heads, c->dropout)) ||
        (rc = ml_lstm_init(&m->video_lstm, ps, "video_lstm", hv, c->lstm_hidden, c->lstm_layers, 1, c->dropout)) ||
        (rc = ml_mha_init(&m->video_attn, ps, "video_attn", seq, c->heads, c->dropout)))
        return rc;
    ml_linear_init_default(&m->meta_time, ps, "meta_time", mf_meta_width(c), c->meta_time, 1);
    if ((rc = ml_lstm_init(&m->fusion_lstm, ps, "fusion_lstm", 2 * seq + c->meta_time, c->lstm_hidden,
                           c->lstm_layers, 1, c->dropout)) ||
        (rc = ml_mha_init(&m->fusion_attn, ps, "fusion_attn", seq, c->heads, c->dropout)))
        return rc;
    int64_t dims[MF_MAX_DIMS + 1];
    dims[0] = ht;
    for (int i = 0; i < c->n_ctx; i++)
        dims[1 + i] = c->ctx_dims[i];
    if (c->n_ctx && (rc = ml_mlp_init(&m->ctx_mlp, ps, "ctx_mlp", dims, c->n_ctx + 1, ML_ACT_RELU, c->dropout, 1)))
        return rc;
    if ((rc = init_meta(m, ps)) || (rc = ml_mha_init(&m->cross_attn, ps, "cross_attn", fused, c->heads, c->dropout)))
        return rc;
    return init_head(m, ps, fused);
}

static int config_fits(const mf_config *c)
{
    if (c->classes < 2 || c->lstm_hidden < 1 || c->lstm_layers < 1 || c->heads < 1 || c->n_head < 0 ||
        c->n_head > MF_MAX_DIMS || c->n_ctx < 0 || c->n_ctx > MF_MAX_DIMS || c->dropout < 0 || c->dropout >= 1)
        return 0;
    if ((2 * c->lstm_hidden) % c->heads)
        return 0;
    if (c->kind == MF_VIDEO) {
        int64_t fused = 2 * c->lstm_hidden + (c->n_ctx ? c->ctx_dims[c->n_ctx - 1] : c->bert.hidden) + c->meta_out;
        if (fused % c->heads)
            return 0;
    }
    return c->kind == MF_AUDIO || c->kind == MF_VIDEO;
}

int mf_model_init(mf_model *m, const mf_config *cfg, uint64_t seed)
{
    memset(m, 0, sizeof *m);
    if (!config_fits(cfg))
        return TC_EINVAL;
    m->cfg = *cfg;
    int rc = mp_params_init(&m->params, seed);
    if (rc != TC_OK)
        return rc;
    rc = bert_init(&m->bert, &m->params, "bert", &cfg->bert);
    if (rc == TC_OK)
        rc = cfg->kind == MF_AUDIO ? init_audio(m, &m->params) : init_video(m, &m->params);
    if (rc == TC_OK)
        rc = m->params.status;
    if (rc == TC_OK && cfg->bert_freeze_layers)
        rc = bert_freeze(&m->bert, &m->params, cfg->bert_freeze_layers);
    /* An unread pooler would still be decayed by AdamW every step (its gradient is a zero tensor, not
     * none): it stays as loaded, and is exported as it came. */
    if (rc == TC_OK && cfg->text_pool != MF_POOL_POOLER)
        mp_set_trainable(&m->params, "bert.pooler.", 0);
    if (rc == TC_OK && cfg->kind == MF_AUDIO && cfg->audio_frozen)
        rc = w2v_freeze(&m->w2v, &m->params, 1);
    if (rc != TC_OK)
        mp_params_free(&m->params);
    return rc;
}

void mf_model_free(mf_model *m) { mp_params_free(&m->params); }

/* ---- Helpers of the forwards (fusion_internal.h) ---- */

int mf_slots(tc_tensor *mask, mf_slot_list *out)
{
    memset(out, 0, sizeof *out);
    if (!mask)
        return TC_EINVAL;
    int64_t n = tc_numel(mask);
    float *host = malloc((size_t)(n > 0 ? n : 1) * sizeof *host);
    out->index = malloc((size_t)(n > 0 ? n : 1) * sizeof *out->index);
    int rc = host && out->index ? tc_copy_to_host(mask, host, (size_t)n * sizeof *host) : TC_ENOMEM;
    if (rc != TC_OK) {
        free(host);
        free(out->index);
        out->index = NULL;
        return rc;
    }
    for (int64_t i = 0; i < n; i++)
        if (host[i] > 0.5f)
            out->index[out->n++] = i;
    out->total = n;
    free(host);
    return TC_OK;
}

void mf_slots_free(mf_slot_list *s)
{
    free(s->index);
    s->index = NULL;
}

tc_tensor *mf_slot_index(const mf_slot_list *s, tc_device dev)
{
    return tc_to_device(tc_from_data(s->index, (int64_t[]){s->n}, 1, TC_I64), dev);
}

tc_tensor *mf_scatter_slots(const mf_slot_list *s, tc_tensor *idx, tc_tensor *feats, tc_tensor *fill, int64_t dim)
{
    tc_tensor *base = fill ? tc_contiguous(tc_expand(tc_reshape(fill, (int64_t[]){1, dim}, 2), (int64_t[]){s->total, dim}, 2))
                           : tc_zeros((int64_t[]){s->total, dim}, 2, TC_F32, tc_device_of(feats ? feats : fill));
    return s->n ? tc_index_copy(base, 0, idx, feats) : base;
}

tc_tensor *mf_embed_ids(const ml_embedding *e, tc_tensor *ids)
{
    int64_t rows = tc_size(e->w, 0);
    tc_tensor *bad = tc_add(tc_to_dtype(tc_lt_scalar(ids, 0), TC_I64), tc_to_dtype(tc_gt_scalar(ids, (double)(rows - 1)), TC_I64));
    return ml_embedding_forward(e, tc_masked_fill(ids, bad, 0));
}

tc_tensor *mf_meta_features(const mf_model *m, tc_tensor *meta)
{
    const ml_embedding *f[MF_META_FIELDS] = {&m->age, &m->gender, &m->timbre, &m->avatar, &m->age,   &m->gender,
                                             &m->timbre, &m->avatar, &m->topic, &m->event, &m->cause, &m->goal};
    tc_tensor *parts[MF_META_FIELDS];
    int n = m->cfg.use_coe ? MF_META_FIELDS : 9;
    for (int i = 0; i < n; i++)
        parts[i] = mf_embed_ids(f[i], tc_select(meta, 1, i));
    return tc_cat(parts, n, 1);
}

/* The longest row of a prefix mask [N, L] (at least 1); L when it cannot be read. */
static int64_t longest_row(tc_tensor *mask)
{
    int64_t n = tc_size(mask, 0), l = tc_size(mask, 1), best = 1;
    float *len = malloc((size_t)(n > 0 ? n : 1) * sizeof *len);
    if (!len || tc_copy_to_host(tc_sum(mask, 1, 0), len, (size_t)n * sizeof *len) != TC_OK) {
        free(len);
        return l;
    }
    for (int64_t i = 0; i < n; i++)
        if ((int64_t)len[i] > best)
            best = (int64_t)len[i];
    free(len);
    return best < l ? best : l;
}

tc_tensor *mf_text_features(const mf_model *m, tc_tensor *ids, tc_tensor *mask, int training, tc_generator *gen)
{
    /* Rows are padded to the batch's token budget; the encoder reads only up to the longest real row.
     * Padding is masked out of every attention, so the features are the same, at a fraction of the
     * cost when utterances are shorter than the budget (most are). */
    int64_t keep = longest_row(mask);
    if (keep < tc_size(ids, 1)) {
        ids = tc_narrow(ids, 1, 0, keep);
        mask = tc_narrow(mask, 1, 0, keep);
    }
    tc_tensor *hidden = bert_forward(&m->bert, ids, mask, training, gen);
    switch (m->cfg.text_pool) {
    case MF_POOL_POOLER: return bert_pool(&m->bert, hidden);
    case MF_POOL_MEAN: return ml_masked_mean(hidden, mask);
    case MF_POOL_CLS: break;
    }
    return tc_select(hidden, 1, 0);
}

tc_tensor *mf_last_valid(tc_tensor *x, const int64_t *lengths)
{
    int64_t b = tc_size(x, 0), d = tc_size(x, 2);
    int64_t stack[64], *last = b <= 64 ? stack : malloc((size_t)b * sizeof *last);
    if (!last)
        return tc_gather(x, 1, NULL);
    for (int64_t i = 0; i < b; i++)
        last[i] = lengths[i] > 0 ? lengths[i] - 1 : 0;
    tc_tensor *idx = tc_to_device(tc_from_data(last, (int64_t[]){b, 1, 1}, 3, TC_I64), tc_device_of(x));
    if (last != stack)
        free(last);
    return tc_squeeze(tc_gather(x, 1, tc_expand(idx, (int64_t[]){b, 1, d}, 3)), 1);
}
