/* models/fusion.h against the same two models built from torch.nn and torchaudio modules
 * (ref_fusion.py): tiny configurations of the audio and the video model, perturbed weights exchanged
 * by their names (the reference loads them with load_state_dict(strict=True), so every name and
 * shape has to match), a batch with different numbers of valid utterances and slots without audio
 * or video; logits and the gradient of every trainable parameter. Then what needs no reference:
 * nothing behind a mask or in a padding slot reaches the logits, a slot without its medium reads the
 * learned missing vector, and configurations that do not fit are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/fusion.h"
#include "tests/models/models_test.h"

#define FUSION_TOL 1e-4
#define B 3
#define U 4
#define L 6
#define C 8
#define S 400
#define CLASSES 7

/* Valid utterances per sample, and which slots hold audio or video (a padding slot that claims a
 * medium must be ignored all the same). */
static const int n_valid[B] = {4, 2, 1};
static const int has_medium[B][U] = {{1, 0, 1, 1}, {0, 1, 0, 1}, {0, 0, 0, 0}};

static mf_config tiny_config(mf_kind kind)
{
    mf_config c = mf_config_seed(kind);
    c.bert = (bert_config){.vocab_size = 40, .hidden = 16, .layers = 2, .heads = 2, .intermediate = 32,
                           .max_position = 12, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                           .attention_dropout = 0.1, .init_std = 0.02};
    c.bert_freeze_layers = 1;
    c.audio.conv_layers = 3;
    static const int64_t kernel[] = {10, 3, 2}, stride[] = {5, 2, 2};
    for (int i = 0; i < 3; i++) {
        c.audio.conv_dim[i] = 16;
        c.audio.conv_kernel[i] = kernel[i];
        c.audio.conv_stride[i] = stride[i];
    }
    c.audio.hidden = 32, c.audio.layers = 2, c.audio.heads = 4, c.audio.intermediate = 64;
    c.audio.pos_conv_kernel = 16, c.audio.pos_conv_groups = 4;
    c.audio_frozen = 0;
    c.audio_norm = W2V_NORM_ZERO_MEAN;
    c.video = (vv_config){.image = 64, .frames = 4, .patch = 32, .dim = 32, .heads = 4, .layers = 1, .ffn = 64,
                          .dropout = 0.3, .ln_eps = 1e-5, .attention = VV_ATTN_JOINT};
    c.rows_avatar = 5, c.rows_topic = 3, c.rows_event = c.rows_cause = c.rows_goal = 3;
    c.age_dim = 3, c.gender_dim = 2, c.timbre_dim = 2, c.avatar_dim = 3, c.topic_dim = 4, c.coe_dim = 2;
    c.meta_hidden = 8, c.meta_out = 6;
    c.lstm_hidden = 8, c.heads = 2, c.role_dim = 4, c.lstm_layers = 2;
    c.audio_hidden = 12, c.audio_out = 10, c.ctx_out = 6;
    c.meta_time = 6;
    c.ctx_dims[0] = 12, c.ctx_dims[1] = 8, c.n_ctx = 2; /* fused = 16 + 8 + 6 = 30, 2 heads */
    c.head_dims[0] = 12, c.n_head = 1;
    return c;
}

/* ---- The configuration as ref_fusion.py reads it ------------------------------------------- */

typedef struct {
    char *p;
    size_t left;
} json_buf;

static void put(json_buf *j, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(j->p, j->left, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < j->left);
    j->p += n, j->left -= (size_t)n;
}

static void put_list(json_buf *j, const char *key, const int64_t *v, int n)
{
    put(j, "\"%s\": [", key);
    for (int i = 0; i < n; i++)
        put(j, "%s%lld", i ? ", " : "", (long long)v[i]);
    put(j, "]");
}

static void config_json(const mf_config *c, char *out, size_t len)
{
    static const char *const pools[] = {"cls", "pooler", "mean"}, *const norms[] = {"none", "zero_mean", "peak"};
    json_buf j = {out, len};
    const bert_config *b = &c->bert;
    put(&j, "{\"kind\": \"%s\", \"classes\": %lld, \"dropout\": %.17g, ", c->kind == MF_AUDIO ? "audio" : "video",
        (long long)c->classes, c->dropout);
    put(&j,
        "\"bert\": {\"vocab_size\": %lld, \"hidden_size\": %lld, \"num_hidden_layers\": %lld, "
        "\"num_attention_heads\": %lld, \"intermediate_size\": %lld, \"max_position_embeddings\": %lld, "
        "\"type_vocab_size\": %lld, \"layer_norm_eps\": %.17g, \"hidden_act\": \"%s\", "
        "\"hidden_dropout_prob\": %.17g, \"attention_probs_dropout_prob\": %.17g}, ",
        (long long)b->vocab_size, (long long)b->hidden, (long long)b->layers, (long long)b->heads,
        (long long)b->intermediate, (long long)b->max_position, (long long)b->type_vocab, b->layer_norm_eps,
        b->hidden_act == BERT_ACT_RELU ? "relu" : b->hidden_act == BERT_ACT_GELU_TANH ? "gelu_new" : "gelu",
        b->dropout, b->attention_dropout);
    put(&j, "\"bert_freeze_layers\": %d, \"text_pool\": \"%s\", ", c->bert_freeze_layers, pools[c->text_pool]);
    if (c->kind == MF_AUDIO) {
        const w2v_config *a = &c->audio;
        put(&j, "\"audio\": {");
        put_list(&j, "conv_dim", a->conv_dim, a->conv_layers);
        put(&j, ", ");
        put_list(&j, "conv_kernel", a->conv_kernel, a->conv_layers);
        put(&j, ", ");
        put_list(&j, "conv_stride", a->conv_stride, a->conv_layers);
        put(&j,
            ", \"conv_bias\": %s, \"feat_extract_norm\": \"%s\", \"hidden_size\": %lld, \"num_hidden_layers\": %d, "
            "\"num_attention_heads\": %lld, \"intermediate_size\": %lld, \"num_conv_pos_embeddings\": %lld, "
            "\"num_conv_pos_embedding_groups\": %lld, \"do_stable_layer_norm\": %s, \"layer_norm_eps\": %.17g, "
            "\"hidden_dropout\": %.17g, \"attention_dropout\": %.17g, \"activation_dropout\": %.17g, "
            "\"feat_proj_dropout\": %.17g, \"layerdrop\": %.17g}, ",
            a->conv_bias ? "true" : "false", a->extract_norm == W2V_EXTRACT_LAYER ? "layer" : "group",
            (long long)a->hidden, a->layers, (long long)a->heads, (long long)a->intermediate,
            (long long)a->pos_conv_kernel, (long long)a->pos_conv_groups, a->stable_layer_norm ? "true" : "false",
            a->layer_norm_eps, a->hidden_dropout, a->attention_dropout, a->activation_dropout, a->feat_proj_dropout,
            a->layerdrop);
        put(&j, "\"audio_frozen\": %d, \"audio_norm\": \"%s\", \"audio_hidden\": %lld, \"audio_out\": %lld, ",
            c->audio_frozen, norms[c->audio_norm], (long long)c->audio_hidden, (long long)c->audio_out);
        put(&j, "\"ctx_out\": %lld, ", (long long)c->ctx_out);
    } else {
        const vv_config *v = &c->video;
        put(&j,
            "\"video\": {\"image\": %lld, \"frames\": %lld, \"patch\": %lld, \"dim\": %lld, \"heads\": %lld, "
            "\"layers\": %lld, \"ffn\": %lld, \"dropout\": %.17g, \"ln_eps\": %.17g, \"attention\": \"%s\"}, ",
            (long long)v->image, (long long)v->frames, (long long)v->patch, (long long)v->dim, (long long)v->heads,
            (long long)v->layers, (long long)v->ffn, v->dropout, v->ln_eps,
            v->attention == VV_ATTN_DIVIDED ? "divided" : "joint");
        put(&j, "\"meta_time\": %lld, ", (long long)c->meta_time);
        put_list(&j, "ctx_dims", c->ctx_dims, c->n_ctx);
        put(&j, ", ");
    }
    put(&j,
        "\"use_coe\": %s, \"rows_age\": %lld, \"rows_gender\": %lld, \"rows_timbre\": %lld, \"rows_avatar\": %lld, "
        "\"rows_topic\": %lld, \"rows_event\": %lld, \"rows_cause\": %lld, \"rows_goal\": %lld, ",
        c->use_coe ? "true" : "false", (long long)c->rows_age, (long long)c->rows_gender, (long long)c->rows_timbre,
        (long long)c->rows_avatar, (long long)c->rows_topic, (long long)c->rows_event, (long long)c->rows_cause,
        (long long)c->rows_goal);
    put(&j,
        "\"age_dim\": %lld, \"gender_dim\": %lld, \"timbre_dim\": %lld, \"avatar_dim\": %lld, \"topic_dim\": %lld, "
        "\"coe_dim\": %lld, \"meta_hidden\": %lld, \"meta_out\": %lld, \"lstm_hidden\": %lld, \"heads\": %lld, "
        "\"role_dim\": %lld, \"lstm_layers\": %d, ",
        (long long)c->age_dim, (long long)c->gender_dim, (long long)c->timbre_dim, (long long)c->avatar_dim,
        (long long)c->topic_dim, (long long)c->coe_dim, (long long)c->meta_hidden, (long long)c->meta_out,
        (long long)c->lstm_hidden, (long long)c->heads, (long long)c->role_dim, c->lstm_layers);
    put_list(&j, "head_dims", c->head_dims, c->n_head);
    put(&j, "}");
}

/* ---- A batch in host memory ------------------------------------------------------------------ */

typedef struct {
    int64_t tokens[B * U * L], role[B * U], ctx[B * C], meta[B * MF_META_FIELDS], audio_len[B * U];
    float mask[B * U * L], valid[B * U], ctx_mask[B * C], audio_valid[B * U], video_valid[B * U], w[B * CLASSES];
    int16_t audio[B * U * S];
    uint8_t *frames;
    int64_t frame_shape[6], clip_bytes;
} host_batch;

static uint32_t draw(uint64_t *x)
{
    *x = *x * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*x >> 33);
}

static host_batch *batch_new(const mf_config *c, uint64_t seed)
{
    host_batch *h = calloc(1, sizeof *h);
    assert_non_null(h);
    uint64_t x = seed;
    static const int ctx_len[B] = {C, 5, 2};
    for (int b = 0; b < B; b++)
        for (int u = 0; u < U; u++) {
            int i = b * U + u, valid = u < n_valid[b], tok_len = 1 + (int)(draw(&x) % L);
            h->valid[i] = (float)valid;
            h->role[i] = valid ? (u == n_valid[b] - 1 ? 2 : (int64_t)(draw(&x) % 2)) : 0;
            h->audio_valid[i] = h->video_valid[i] = (float)has_medium[b][u];
            h->audio_len[i] = 150 + (int64_t)(draw(&x) % (S - 150 + 1));
            for (int t = 0; t < L; t++) {
                h->tokens[i * L + t] = 1 + (int64_t)(draw(&x) % 39);
                h->mask[i * L + t] = (float)(valid && t < tok_len);
            }
            for (int s = 0; s < S; s++)
                h->audio[i * S + s] = (int16_t)((int)(draw(&x) % 40001) - 20000);
        }
    for (int i = 0; i < B * C; i++) {
        h->ctx[i] = 1 + (int64_t)(draw(&x) % 39);
        h->ctx_mask[i] = (float)(i % C < ctx_len[i / C]);
    }
    /* Ids past a table (speaker ID 7 of 5 rows) and below it (gender -1) read as 0. */
    for (int i = 0; i < B * MF_META_FIELDS; i++)
        h->meta[i] = (int64_t)(draw(&x) % 3);
    h->meta[3] = 7;
    h->meta[MF_META_FIELDS + 1] = -1;
    for (int i = 0; i < B * CLASSES; i++)
        h->w[i] = (float)((int)(draw(&x) % 2001) - 1000) / 1000.0f;
    int64_t f = c->video.frames, side = c->video.image;
    int64_t shape[6] = {B, U, f, side, side, 3};
    memcpy(h->frame_shape, shape, sizeof shape);
    h->clip_bytes = f * side * side * 3;
    h->frames = malloc((size_t)(B * U * h->clip_bytes));
    assert_non_null(h->frames);
    for (int64_t i = 0; i < B * U * h->clip_bytes; i++)
        h->frames[i] = (uint8_t)(draw(&x) >> 8);
    return h;
}

static host_batch *batch_copy(const host_batch *h)
{
    host_batch *c = malloc(sizeof *c);
    assert_non_null(c);
    *c = *h;
    c->frames = malloc((size_t)(B * U * h->clip_bytes));
    assert_non_null(c->frames);
    memcpy(c->frames, h->frames, (size_t)(B * U * h->clip_bytes));
    return c;
}

static void batch_free(host_batch *h)
{
    free(h->frames);
    free(h);
}

#define N_INPUTS 12

typedef struct {
    mf_inputs in;
    const char *names[N_INPUTS + 1];
    tc_tensor *t[N_INPUTS + 1];
    int n;
} batch_tensors;

static tc_tensor *add_input(batch_tensors *bt, const char *name, const void *data, const int64_t *shape, int ndim,
                            tc_dtype dtype)
{
    tc_tensor *t = tc_from_data(data, shape, ndim, dtype);
    assert_non_null(t);
    bt->names[bt->n] = name;
    bt->t[bt->n++] = t;
    return t;
}

/* The batch as tensors in the current scope, plus input.w, named for the reference. */
static void batch_tensors_of(batch_tensors *bt, const host_batch *h, mf_kind kind)
{
    memset(bt, 0, sizeof *bt);
    const int64_t bul[] = {B, U, L}, bu[] = {B, U}, bc[] = {B, C}, bm[] = {B, MF_META_FIELDS}, bus[] = {B, U, S};
    mf_inputs *in = &bt->in;
    in->utt_tokens = add_input(bt, "input.utt_tokens", h->tokens, bul, 3, TC_I64);
    in->utt_mask = add_input(bt, "input.utt_mask", h->mask, bul, 3, TC_F32);
    in->utt_valid = add_input(bt, "input.utt_valid", h->valid, bu, 2, TC_F32);
    in->utt_role = add_input(bt, "input.utt_role", h->role, bu, 2, TC_I64);
    in->ctx_tokens = add_input(bt, "input.ctx_tokens", h->ctx, bc, 2, TC_I64);
    in->ctx_mask = add_input(bt, "input.ctx_mask", h->ctx_mask, bc, 2, TC_F32);
    in->meta = add_input(bt, "input.meta", h->meta, bm, 2, TC_I64);
    if (kind == MF_AUDIO) {
        in->audio = add_input(bt, "input.audio", h->audio, bus, 3, TC_I16);
        in->audio_len = add_input(bt, "input.audio_len", h->audio_len, bu, 2, TC_I64);
        in->audio_valid = add_input(bt, "input.audio_valid", h->audio_valid, bu, 2, TC_F32);
    } else {
        in->frames = add_input(bt, "input.frames", h->frames, h->frame_shape, 6, TC_U8);
        in->video_valid = add_input(bt, "input.video_valid", h->video_valid, bu, 2, TC_F32);
    }
    add_input(bt, "input.w", h->w, (const int64_t[]){B, CLASSES}, 2, TC_F32);
}

/* ---- Against the reference ------------------------------------------------------------------ */

/* Gradients whose exact value is 0 (a shift shared by every key leaves softmax unchanged). */
static const char *const key_bias[] = {"attention.self.key.bias", "attention.k_proj.bias", NULL};

static void compare_with_reference(const char *label, const mf_config *cfg, uint64_t seed)
{
    mf_model m;
    assert_int_equal(mf_model_init(&m, cfg, seed), TC_OK);
    tm_perturb(&m.params, seed + 1, 0.1);
    host_batch *h = batch_new(cfg, seed + 2);

    tc_scope *s = tc_scope_begin();
    batch_tensors bt;
    batch_tensors_of(&bt, h, cfg->kind);
    for (int i = 0; i < m.params.n; i++)
        if (mp_trainable(&m.params.v[i]))
            assert_int_equal(tc_zero_grad(m.params.v[i].t), TC_OK);
    tc_tensor *logits = mf_model_forward(&m, &bt.in, 0, NULL);
    tc_tensor *loss = tc_sum_all(tc_mul(logits, bt.t[bt.n - 1]));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(loss), TC_OK);

    char json[4096];
    config_json(cfg, json, sizeof json);
    const char *const meta[] = {"config", json};
    tm_ref r;
    tm_ref_run(&r, "ref_fusion.py", cfg->kind == MF_AUDIO ? "audio" : "video", &m.params, bt.names, bt.t, bt.n, meta,
               1);
    tm_check(label, logits, &r, "logits", FUSION_TOL);
    tm_check_grads(label, &m.params, &r, FUSION_TOL, key_bias);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    batch_free(h);
    mf_model_free(&m);
}

static int trainable(const mf_model *m, const char *name)
{
    const mp_param *p = mp_find(&m->params, name);
    if (!p)
        fail_msg("no parameter %s", name);
    return mp_trainable(p);
}

/* A trainable encoder (its gradients compared too), BERT's embeddings and first layer frozen. */
static void test_fusion_audio_vs_torch(void **state)
{
    (void)state;
    mf_config c = tiny_config(MF_AUDIO);
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 11), TC_OK);
    static const char *const names[] = {
        "bert.embeddings.word_embeddings.weight", "bert.encoder.layer.1.attention.self.key.bias",
        "bert.pooler.dense.weight", "wav2vec2.feature_extractor.conv_layers.0.layer_norm.weight",
        "wav2vec2.feature_projection.projection.weight", "wav2vec2.encoder.pos_conv_embed.conv.weight_g",
        "wav2vec2.encoder.pos_conv_embed.conv.weight_v", "wav2vec2.encoder.layers.1.final_layer_norm.bias",
        "audio_mlp.1.weight", "audio_missing", "role.weight", "lstm.weight_hh_l1_reverse", "attn.in_proj_weight",
        "attn.out_proj.bias", "ctx_proj.weight", "meta.avatar.weight", "meta_mlp.1.bias", "head.1.weight"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(mp_find(&m.params, names[i]));
    assert_null(mp_find(&m.params, "meta.event.weight")); /* use_coe off */
    assert_false(trainable(&m, "bert.embeddings.LayerNorm.weight"));
    assert_false(trainable(&m, "bert.encoder.layer.0.output.dense.weight"));
    assert_true(trainable(&m, "bert.encoder.layer.1.output.dense.weight"));
    assert_true(trainable(&m, "wav2vec2.encoder.pos_conv_embed.conv.weight_g"));
    mf_model_free(&m);
    compare_with_reference("fusion audio", &c, 11);
}

/* The seed's choices: a frozen encoder, peak normalisation, the pooler output, the chain-of-empathy
 * fields, all of BERT frozen. */
static void test_fusion_audio_seed_options_vs_torch(void **state)
{
    (void)state;
    mf_config c = tiny_config(MF_AUDIO);
    c.audio_frozen = 1, c.audio_norm = W2V_NORM_PEAK, c.text_pool = MF_POOL_POOLER, c.use_coe = 1;
    c.bert_freeze_layers = -1, c.lstm_layers = 1, c.n_head = 2, c.head_dims[1] = 9;
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 12), TC_OK);
    assert_non_null(mp_find(&m.params, "meta.goal.weight"));
    assert_false(trainable(&m, "wav2vec2.encoder.layers.0.attention.q_proj.weight"));
    assert_false(trainable(&m, "bert.pooler.dense.bias"));
    assert_true(trainable(&m, "audio_mlp.0.weight"));
    mf_model_free(&m);
    compare_with_reference("fusion audio seed", &c, 12);
}

static void test_fusion_video_vs_torch(void **state)
{
    (void)state;
    mf_config c = tiny_config(MF_VIDEO);
    c.text_pool = MF_POOL_MEAN, c.bert_freeze_layers = 0, c.lstm_layers = 1;
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 13), TC_OK);
    static const char *const names[] = {
        "bert.embeddings.word_embeddings.weight", "video.patch_embed.weight", "video.pos_temporal",
        "video.layers.0.self_attn.in_proj_weight", "video.norm.bias", "video_missing", "text_lstm.weight_ih_l0",
        "text_attn.in_proj_bias", "video_lstm.bias_hh_l0_reverse", "video_attn.out_proj.weight", "meta_time.weight",
        "fusion_lstm.weight_ih_l0_reverse", "fusion_attn.in_proj_weight", "ctx_mlp.1.weight", "meta.topic.weight",
        "meta_mlp.0.weight", "cross_attn.in_proj_weight", "head.1.bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_non_null(mp_find(&m.params, names[i]));
    assert_true(trainable(&m, "bert.embeddings.word_embeddings.weight"));
    mf_model_free(&m);
    compare_with_reference("fusion video", &c, 13);
}

/* ---- Masks and missing media ---------------------------------------------------------------- */

static void logits_of(mf_model *m, const host_batch *h, float *out)
{
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    batch_tensors bt;
    batch_tensors_of(&bt, h, m->cfg.kind);
    tc_tensor *logits = mf_model_forward(m, &bt.in, 0, NULL);
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_copy_to_host(logits, out, sizeof(float) * B * CLASSES), TC_OK);
    tc_grad_enabled_set(was);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static double change(const float *a, const float *b)
{
    double diff = 0, scale = 0;
    for (int i = 0; i < B * CLASSES; i++) {
        double d = a[i] > b[i] ? a[i] - b[i] : b[i] - a[i];
        diff = d > diff ? d : diff;
        scale = a[i] > scale ? a[i] : -a[i] > scale ? -a[i] : scale;
    }
    return diff / scale;
}

/* Everything the masks hide is overwritten: tokens past each utterance's and the context's mask,
 * padding slots (tokens, roles, media), samples past audio_len, and the media of slots without
 * them (waveforms, lengths, frames). */
static void scribble_hidden(host_batch *h)
{
    for (int i = 0; i < B * U; i++) {
        int present = h->valid[i] > 0 && h->audio_valid[i] > 0;
        for (int t = 0; t < L; t++)
            if (h->mask[i * L + t] == 0)
                h->tokens[i * L + t] = 39 - t;
        if (h->valid[i] == 0)
            h->role[i] = 1;
        for (int s = present ? (int)h->audio_len[i] : 0; s < S; s++)
            h->audio[i * S + s] = (int16_t)(s * 97 % 30001 - 15000);
        if (!present)
            h->audio_len[i] = 1 + i;
        if (!(h->valid[i] > 0 && h->video_valid[i] > 0))
            memset(h->frames + i * h->clip_bytes, 200, (size_t)h->clip_bytes);
    }
    for (int i = 0; i < B * C; i++)
        if (h->ctx_mask[i] == 0)
            h->ctx[i] = 3;
}

static void check_masks(mf_kind kind)
{
    mf_config c = tiny_config(kind);
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 21), TC_OK);
    tm_perturb(&m.params, 22, 0.1);
    host_batch *h = batch_new(&c, 23);
    float base[B * CLASSES], got[B * CLASSES];
    logits_of(&m, h, base);

    host_batch *hidden = batch_copy(h);
    scribble_hidden(hidden);
    logits_of(&m, hidden, got);
    printf("fusion %s: hidden inputs changed the logits by %.3g\n", kind == MF_AUDIO ? "audio" : "video",
           change(base, got));
    assert_true(change(base, got) <= 1e-6);

    /* The same batch with the medium in one more valid slot (sample 0, slot 1) does change them. */
    host_batch *more = batch_copy(h);
    (kind == MF_AUDIO ? more->audio_valid : more->video_valid)[1] = 1;
    logits_of(&m, more, got);
    assert_true(change(base, got) > 1e-4);
    /* And so do samples and pixels the model reads (sample 0, slot 0). */
    host_batch *seen = batch_copy(h);
    for (int i = 0; i < 100; i++) {
        seen->audio[i] = (int16_t)(seen->audio[i] ^ 0x4000);
        seen->frames[i] = (uint8_t)(seen->frames[i] ^ 0x80);
    }
    logits_of(&m, seen, got);
    assert_true(change(base, got) > 1e-7);
    batch_free(seen);
    batch_free(more);
    batch_free(hidden);
    batch_free(h);
    mf_model_free(&m);
}

static void test_fusion_masked_inputs_change_nothing(void **state)
{
    (void)state;
    check_masks(MF_AUDIO);
    check_masks(MF_VIDEO);
}

/* Slots without the medium read the learned missing vector, and only they: moving it changes the
 * logits of a batch with absent media, and nothing when every valid slot has its medium. */
static void check_missing(mf_kind kind)
{
    mf_config c = tiny_config(kind);
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 31), TC_OK);
    tm_perturb(&m.params, 32, 0.1);
    host_batch *gaps = batch_new(&c, 33);
    host_batch *full = batch_copy(gaps);
    for (int i = 0; i < B * U; i++)
        (kind == MF_AUDIO ? full->audio_valid : full->video_valid)[i] = full->valid[i];
    float gaps0[B * CLASSES], full0[B * CLASSES], got[B * CLASSES];
    logits_of(&m, gaps, gaps0);
    logits_of(&m, full, full0);

    const mp_param *p = mp_find(&m.params, kind == MF_AUDIO ? "audio_missing" : "video_missing");
    assert_non_null(p);
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    assert_int_equal(tc_copy_(p->t, tc_add_scalar(p->t, 0.5)), TC_OK);
    tc_grad_enabled_set(was);
    assert_int_equal(tc_scope_end(s), TC_OK);

    logits_of(&m, full, got);
    assert_true(change(full0, got) <= 1e-6);
    logits_of(&m, gaps, got);
    assert_true(change(gaps0, got) > 1e-4);
    batch_free(full);
    batch_free(gaps);
    mf_model_free(&m);
}

static void test_fusion_missing_media(void **state)
{
    (void)state;
    check_missing(MF_AUDIO);
    check_missing(MF_VIDEO);
}

/* ---- Configurations that do not fit ---------------------------------------------------------- */

static void refused(mf_config c)
{
    mf_model m;
    assert_int_equal(mf_model_init(&m, &c, 1), TC_EINVAL);
}

static void test_fusion_config_errors(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        mf_config c = tiny_config(k ? MF_VIDEO : MF_AUDIO);
        c.heads = 3; /* 2 * lstm_hidden = 16 */
        refused(c);
        c = tiny_config(k ? MF_VIDEO : MF_AUDIO);
        c.bert.heads = 3; /* hidden 16 */
        refused(c);
        c = tiny_config(k ? MF_VIDEO : MF_AUDIO);
        c.n_head = MF_MAX_DIMS + 1;
        refused(c);
        c = tiny_config(k ? MF_VIDEO : MF_AUDIO);
        c.bert.layers = BERT_MAX_LAYERS + 1;
        refused(c);
    }
    mf_config c = tiny_config(MF_VIDEO);
    c.heads = 4; /* divides 16 but not the fused 16 + 8 + 6 = 30 */
    refused(c);
    c = tiny_config(MF_VIDEO);
    c.video.heads = 5; /* dim 32 */
    refused(c);
    c = tiny_config(MF_AUDIO);
    c.audio.heads = 5; /* hidden 32 */
    refused(c);
    c = tiny_config(MF_AUDIO);
    c.bert_freeze_layers = 3; /* BERT has 2 layers */
    refused(c);
}

int tm_fusion_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fusion_audio_vs_torch),
        cmocka_unit_test(test_fusion_audio_seed_options_vs_torch),
        cmocka_unit_test(test_fusion_video_vs_torch),
        cmocka_unit_test(test_fusion_masked_inputs_change_nothing),
        cmocka_unit_test(test_fusion_missing_media),
        cmocka_unit_test(test_fusion_config_errors),
    };
    return cmocka_run_group_tests_name("fusion", tests, NULL, NULL);
}
