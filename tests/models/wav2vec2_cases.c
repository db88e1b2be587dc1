/* models/wav2vec2.h against references nobody here wrote (ref_wav2vec2.py):
 *   - HF Wav2Vec2Model's forward assembled from torch.nn modules (nn.Conv1d, nn.GroupNorm, weight_norm,
 *     nn.MultiheadAttention with a key padding mask, ...) on the same weights: last hidden states,
 *     the pooled vector and every parameter's gradient, on a padded batch;
 *   - torchaudio.models.wav2vec2_model, torchaudio's own implementation, with HF's names mapped to its
 *     own: group-norm/post-LN and layer-norm/pre-LN ("stable") variants, with gradients;
 *   - numpy for the input normalisations and HF's frame-count formula;
 * and config.json parsing, freezing, dropout/LayerDrop, and the import of HF-named checkpoints. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/wav2vec2.h"
#include "tests/models/models_test.h"

#define CPU ((tc_device){TC_CPU, 0})
#define W2V_TOL 1e-4
#define N 3
#define S 1600

/* Small enough to run in a second, with every path of the base model: four convs, an even
 * positional kernel (the dropped last frame), grouped positional conv, two layers. */
static const char tiny_json[] =
    "{\"model_type\": \"wav2vec2\", \"conv_dim\": [16, 16, 16, 16], \"conv_kernel\": [10, 3, 3, 2],"
    " \"conv_stride\": [5, 2, 2, 2], \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"intermediate_size\": 48, \"num_conv_pos_embeddings\": 16, \"num_conv_pos_embedding_groups\": 4,"
    " \"layer_norm_eps\": 1e-5}";

/* wav2vec2-large-lv60's variant: LayerNorm in every conv, conv bias, pre-LN layers; an odd kernel. */
static const char stable_json[] =
    "{\"model_type\": \"wav2vec2\", \"conv_dim\": [16, 24, 24], \"conv_kernel\": [10, 3, 3],"
    " \"conv_stride\": [5, 2, 2], \"conv_bias\": true, \"feat_extract_norm\": \"layer\","
    " \"do_stable_layer_norm\": true, \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
    " \"intermediate_size\": 40, \"num_conv_pos_embeddings\": 15, \"num_conv_pos_embedding_groups\": 2}";

static const int64_t lengths[N] = {S, 1000, 523};

static void parse_config(const char *json, w2v_config *c) {
    char dir[64], path[128], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "w2v_config"), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    tf_write_text(path, json);
    if (w2v_config_from_hf(c, path, err, sizeof err) != 0) fail_msg("%s", err);
    tf_remove_tree(dir);
}

static void make_model(const char *json, uint64_t seed, w2v_config *c, mp_params *ps, w2v_model *m) {
    parse_config(json, c);
    assert_int_equal(mp_params_init(ps, seed), TC_OK);
    assert_int_equal(w2v_init(m, ps, "wav2vec2", c), TC_OK);
}

/* A padded batch: n waves of s samples, the first lengths[i] of row i real. */
typedef struct {
    int n;
    int64_t s;
    const int64_t *lengths;
} w2v_batch;

static const w2v_batch tiny_batch = {N, S, lengths};

/* Forward and backward of loss = sum(pooled * w_pool) + sum(hidden * valid * w) on batch b with c's
 * model, its parameters moved by N(0, perturb) noise, then the same in the reference MODE (given
 * json as its config when not NULL); outputs on valid frames, pooled, frame counts, gradients. */
static void compare_model(const char *mode, const w2v_config *c, const char *json, const w2v_batch *b,
                          double perturb, int check_padded) {
    mp_params ps;
    w2v_model m;
    assert_int_equal(mp_params_init(&ps, 11), TC_OK);
    assert_int_equal(w2v_init(&m, &ps, "wav2vec2", c), TC_OK);
    tm_perturb(&ps, 12, perturb);

    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(13, CPU);
    int64_t t = w2v_frames(c, b->s);
    tc_tensor *in[] = {
        tc_randn((const int64_t[]){b->n, b->s}, 2, 0, 1, g),
        tc_from_data(b->lengths, (const int64_t[]){b->n}, 1, TC_I64),
        tc_randn((const int64_t[]){b->n, t, c->hidden}, 3, 0, 1, g),
        tc_randn((const int64_t[]){b->n, c->hidden}, 2, 0, 1, g),
    };
    tc_generator_free(g);
    for (int i = 0; i < ps.n; i++) assert_int_equal(tc_zero_grad(ps.v[i].t), TC_OK);
    tc_tensor *valid = NULL;
    tc_tensor *hidden = w2v_forward(&m, in[0], b->lengths, 0, NULL, &valid);
    tc_tensor *pooled = w2v_pool(hidden, valid);
    tc_tensor *hidden_valid = tc_mul(hidden, tc_unsqueeze(valid, 2));
    tc_tensor *loss = tc_add(tc_sum_all(tc_mul(pooled, in[3])), tc_sum_all(tc_mul(hidden_valid, in[2])));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_size(hidden, 1), t);
    assert_int_equal(tc_backward(loss), TC_OK);

    static const char *const names[] = {"input.wave", "input.lengths", "input.w", "input.w_pool"};
    const char *meta[] = {"config", json};
    tm_ref r;
    tm_ref_run(&r, "ref_wav2vec2.py", mode, &ps, names, in, 4, meta, json ? 1 : 0);
    const st_tensor *frames = st_find(r.out, "frames");
    assert_non_null(frames);
    for (int i = 0; i < b->n; i++)
        assert_int_equal(((const int64_t *)frames->data)[i], w2v_frames(c, b->lengths[i]));
    tm_check(mode, valid, &r, "valid", 0);
    tm_check(mode, hidden_valid, &r, "hidden_valid", W2V_TOL);
    if (check_padded) tm_check(mode, hidden, &r, "hidden", W2V_TOL);
    tm_check(mode, pooled, &r, "pooled", W2V_TOL);
    /* The key bias's exact gradient is 0 (softmax ignores a shift shared by every key). */
    static const char *const noise[] = {"attention.k_proj.bias", NULL};
    tm_check_grads(mode, &ps, &r, W2V_TOL, noise);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
}

static void compare_with(const char *mode, const char *json, int check_padded) {
    w2v_config c;
    parse_config(json, &c);
    compare_model(mode, &c, json, &tiny_batch, 0.1, check_padded);
}

static void test_w2v_vs_torch_nn(void **state) {
    (void)state;
    /* HF computes the padded frames too (zeroed before the positional conv, never attended to);
     * ours follow the same arithmetic, so they are compared as well. */
    compare_with("nn", tiny_json, 1);
}

static void test_w2v_vs_torchaudio(void **state) {
    (void)state;
    compare_with("torchaudio", tiny_json, 1);
    compare_with("torchaudio", stable_json, 1);
}

/* wav2vec2-base's architecture against torchaudio.models.wav2vec2_base() itself, on 0.2 s and
 * 0.125 s of audio in one padded batch. The noise is about the layers' own init scale, so twelve
 * layers see activations like a real model's. */
static void test_w2v_base_vs_torchaudio(void **state) {
    (void)state;
    static const int64_t base_lengths[] = {3200, 2000};
    const w2v_batch b = {2, 3200, base_lengths};
    const w2v_config c = w2v_config_base();
    compare_model("torchaudio-base", &c, NULL, &b, 0.02, 1);
}

static void test_w2v_names_and_shapes(void **state) {
    (void)state;
    w2v_config c;
    mp_params ps;
    w2v_model m;
    make_model(tiny_json, 1, &c, &ps, &m);
    /* 4 conv weights + GroupNorm 2 + projection 4 + positional conv 3 + encoder LN 2 + 16 per layer. */
    assert_int_equal(ps.n, 4 + 2 + 4 + 3 + 2 + 16 * 2);
    assert_string_equal(ps.v[0].name, "wav2vec2.feature_extractor.conv_layers.0.conv.weight");
    assert_string_equal(ps.v[1].name, "wav2vec2.feature_extractor.conv_layers.0.layer_norm.weight");
    assert_string_equal(ps.v[ps.n - 1].name, "wav2vec2.encoder.layers.1.final_layer_norm.bias");
    const mp_param *v = mp_find(&ps, "wav2vec2.encoder.pos_conv_embed.conv.weight_v");
    const mp_param *g = mp_find(&ps, "wav2vec2.encoder.pos_conv_embed.conv.weight_g");
    assert_non_null(v);
    assert_non_null(g);
    assert_int_equal(tc_size(v->t, 0), 32);
    assert_int_equal(tc_size(v->t, 1), 8);
    assert_int_equal(tc_size(v->t, 2), 16);
    assert_int_equal(tc_ndim(g->t), 3);
    assert_int_equal(tc_size(g->t, 2), 16);
    /* weight_norm's split: the initial weight is weight_v itself, so weight_g = ||weight_v||. */
    tc_scope *s = tc_scope_begin();
    tc_tensor *norm = tc_sqrt(tc_sum(tc_sum(tc_mul(v->t, v->t), 0, 1), 1, 1));
    tc_tensor *diff = tc_max(tc_reshape(tc_abs(tc_sub(norm, g->t)), (const int64_t[]){16}, 1), 0, 0);
    assert_true(tc_item(diff) < 1e-5);
    assert_int_equal(tc_scope_end(s), TC_OK);
    assert_non_null(mp_find(&ps, "wav2vec2.encoder.layers.0.attention.q_proj.bias"));
    assert_null(mp_find(&ps, "wav2vec2.feature_extractor.conv_layers.1.layer_norm.weight"));
    mp_params_free(&ps);

    /* The layer variant: a LayerNorm and a bias in every conv. */
    make_model(stable_json, 1, &c, &ps, &m);
    assert_non_null(mp_find(&ps, "wav2vec2.feature_extractor.conv_layers.2.layer_norm.bias"));
    assert_non_null(mp_find(&ps, "wav2vec2.feature_extractor.conv_layers.2.conv.bias"));
    mp_params_free(&ps);
}

/* facebook/wav2vec2-base's config.json as published (pretraining fields included). */
static const char base_json[] =
    "{\"activation_dropout\": 0.0, \"apply_spec_augment\": true, \"architectures\": [\"Wav2Vec2ForPreTraining\"],"
    " \"attention_dropout\": 0.1, \"bos_token_id\": 1, \"codevector_dim\": 256, \"contrastive_logits_temperature\": 0.1,"
    " \"conv_bias\": false, \"conv_dim\": [512, 512, 512, 512, 512, 512, 512],"
    " \"conv_kernel\": [10, 3, 3, 3, 3, 2, 2], \"conv_stride\": [5, 2, 2, 2, 2, 2, 2],"
    " \"ctc_loss_reduction\": \"sum\", \"ctc_zero_infinity\": false, \"diversity_loss_weight\": 0.1,"
    " \"do_stable_layer_norm\": false, \"eos_token_id\": 2, \"feat_extract_activation\": \"gelu\","
    " \"feat_extract_norm\": \"group\", \"feat_proj_dropout\": 0.1, \"feat_quantizer_dropout\": 0.0,"
    " \"final_dropout\": 0.0, \"freeze_feat_extract_train\": true, \"gradient_checkpointing\": true,"
    " \"hidden_act\": \"gelu\", \"hidden_dropout\": 0.1, \"hidden_size\": 768, \"initializer_range\": 0.02,"
    " \"intermediate_size\": 3072, \"layer_norm_eps\": 1e-05, \"layerdrop\": 0.05, \"mask_time_prob\": 0.05,"
    " \"model_type\": \"wav2vec2\", \"num_attention_heads\": 12, \"num_codevector_groups\": 2,"
    " \"num_codevectors_per_group\": 320, \"num_conv_pos_embedding_groups\": 16, \"num_conv_pos_embeddings\": 128,"
    " \"num_feat_extract_layers\": 7, \"num_hidden_layers\": 12, \"num_negatives\": 100, \"pad_token_id\": 0,"
    " \"proj_codevector_dim\": 256, \"transformers_version\": \"4.7.0.dev0\", \"vocab_size\": 32}";

static void assert_config_equal(const w2v_config *a, const w2v_config *b) {
    assert_int_equal(a->conv_layers, b->conv_layers);
    for (int i = 0; i < a->conv_layers; i++) {
        assert_int_equal(a->conv_dim[i], b->conv_dim[i]);
        assert_int_equal(a->conv_kernel[i], b->conv_kernel[i]);
        assert_int_equal(a->conv_stride[i], b->conv_stride[i]);
    }
    assert_int_equal(a->conv_bias, b->conv_bias);
    assert_int_equal(a->extract_norm, b->extract_norm);
    assert_int_equal(a->extract_act, b->extract_act);
    assert_int_equal(a->hidden, b->hidden);
    assert_int_equal(a->layers, b->layers);
    assert_int_equal(a->heads, b->heads);
    assert_int_equal(a->intermediate, b->intermediate);
    assert_int_equal(a->hidden_act, b->hidden_act);
    assert_int_equal(a->pos_conv_kernel, b->pos_conv_kernel);
    assert_int_equal(a->pos_conv_groups, b->pos_conv_groups);
    assert_int_equal(a->stable_layer_norm, b->stable_layer_norm);
    assert_true(a->layer_norm_eps == b->layer_norm_eps && a->init_std == b->init_std);
    assert_true(a->hidden_dropout == b->hidden_dropout && a->attention_dropout == b->attention_dropout);
    assert_true(a->activation_dropout == b->activation_dropout && a->feat_proj_dropout == b->feat_proj_dropout);
    assert_true(a->layerdrop == b->layerdrop);
}

static void test_w2v_config(void **state) {
    (void)state;
    w2v_config c, base = w2v_config_base();
    parse_config(base_json, &c);
    assert_config_equal(&c, &base);
    /* Absent fields are Wav2Vec2Config's defaults, which differ from the base checkpoint's dropouts. */
    parse_config("{}", &c);
    assert_int_equal(c.hidden, 768);
    assert_int_equal(c.conv_layers, 7);
    assert_true(c.feat_proj_dropout == 0.0 && c.activation_dropout == 0.1 && c.layerdrop == 0.1);
    parse_config(stable_json, &c);
    assert_int_equal(c.extract_norm, W2V_EXTRACT_LAYER);
    assert_true(c.stable_layer_norm && c.conv_bias);
    assert_int_equal(c.conv_layers, 3);
    parse_config("{\"hidden_act\": \"gelu_new\", \"feat_extract_activation\": \"relu\"}", &c);
    assert_int_equal(c.hidden_act, ML_ACT_GELU_TANH);
    assert_int_equal(c.extract_act, ML_ACT_RELU);

    static const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"conv_dim\": [512, 512]}", "conv_dim"},
        {"{\"conv_kernel\": [10, 0, 3, 3, 3, 2, 2]}", "conv_kernel"},
        {"{\"hidden_act\": \"swish\"}", "hidden_act"},
        {"{\"num_attention_heads\": 7}", "num_attention_heads"},
        {"{\"num_conv_pos_embedding_groups\": 5}", "num_conv_pos_embedding_groups"},
        {"{\"model_type\": \"hubert\"}", "model_type"},
        {"{\"feat_extract_norm\": \"batch\"}", "feat_extract_norm"},
        {"{\"hidden_dropout\": 1.5}", "hidden_dropout"},
        {"{\"hidden_size\": 76.5}", "hidden_size"},
        {"{\"conv_bias\": 1}", "conv_bias"},
        {"{\"add_adapter\": true}", "add_adapter"},
        {"{\"num_feat_extract_layers\": 6}", "num_feat_extract_layers"},
        {"{\"hidden_size\": 768,", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
    };
    char dir[64], path[128], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "w2v_config"), 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tf_write_text(path, bad[i].json);
        c = base;
        err[0] = 0;
        assert_int_equal(w2v_config_from_hf(&c, path, err, sizeof err), -1);
        printf("config: %s\n", err);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, bad[i].field));
        assert_int_equal(c.hidden, base.hidden); /* left as it was */
    }
    tf_remove_tree(dir);
    assert_int_equal(w2v_config_from_hf(&c, path, err, sizeof err), -1);
    assert_non_null(strstr(err, path));
}

/* Normalisation of int16 and f32 batches against numpy (HF's zero_mean_unit_var_norm, the seed's
 * peak scaling); HF's frame-count formula for wav2vec2-base against w2v_frames. */
static void test_w2v_normalize_and_frames(void **state) {
    (void)state;
    enum { NN = 5, SS = 800 };
    static const int64_t len[NN] = {SS, 523, 0, 400, 1};
    static const int64_t frame_len[] = {0, 1, 399, 400, 401, 404, 405, 719, 720, 16000, 12345, 80000};
    enum { NF = sizeof frame_len / sizeof frame_len[0] };
    int16_t *pcm = malloc(NN * SS * sizeof *pcm);
    float *f = malloc(NN * SS * sizeof *f);
    uint64_t x = 7;
    for (int i = 0; i < NN * SS; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        /* Row 3 is silence; every row's padding holds noise that must not count. */
        int silent = i / SS == 3 && i % SS < len[3];
        pcm[i] = silent ? 0 : (int16_t)((int64_t)(x >> 33) % 40001 - 20000 + (i / SS == 1 ? 3000 : 0));
        f[i] = (float)pcm[i] / 32768.0f;
    }
    tc_scope *s = tc_scope_begin();
    tc_tensor *in[] = {
        tc_from_data(pcm, (const int64_t[]){NN, SS}, 2, TC_I16),
        tc_from_data(len, (const int64_t[]){NN}, 1, TC_I64),
        tc_from_data(frame_len, (const int64_t[]){NF}, 1, TC_I64),
    };
    tc_tensor *wf = tc_from_data(f, (const int64_t[]){NN, SS}, 2, TC_F32);
    static const char *const names[] = {"input.wave", "input.lengths", "input.frame_lengths"};
    tm_ref r;
    tm_ref_run(&r, "ref_wav2vec2.py", "norm", NULL, names, in, 3, NULL, 0);
    tm_check("norm i16", w2v_normalize(in[0], len, W2V_NORM_ZERO_MEAN), &r, "norm.zero_mean", W2V_TOL);
    tm_check("norm i16", w2v_normalize(in[0], len, W2V_NORM_PEAK), &r, "norm.peak", W2V_TOL);
    tm_check("norm f32", w2v_normalize(wf, len, W2V_NORM_ZERO_MEAN), &r, "norm.zero_mean", W2V_TOL);
    tm_check("norm f32", w2v_normalize(wf, len, W2V_NORM_PEAK), &r, "norm.peak", W2V_TOL);
    /* NONE only scales int16. */
    tc_tensor *none = w2v_normalize(in[0], len, W2V_NORM_NONE);
    assert_int_equal(tc_dtype_of(none), TC_F32);
    assert_true(tc_item(tc_max(tc_reshape(tc_abs(tc_sub(none, wf)), (const int64_t[]){NN * SS}, 1), 0, 0)) == 0);
    /* Without lengths every sample counts. */
    tc_tensor *all = w2v_normalize(wf, NULL, W2V_NORM_PEAK);
    assert_true(fabs(tc_item(tc_max(tc_reshape(tc_abs(all), (const int64_t[]){NN * SS}, 1), 0, 0)) - 1.0) < 1e-6);
    assert_int_equal(tc_scope_status(s), TC_OK);

    const st_tensor *frames = st_find(r.out, "frames.base");
    assert_non_null(frames);
    w2v_config base = w2v_config_base();
    for (int i = 0; i < NF; i++) {
        printf("frames: %lld samples -> %lld\n", (long long)frame_len[i], (long long)w2v_frames(&base, frame_len[i]));
        assert_int_equal(w2v_frames(&base, frame_len[i]), ((const int64_t *)frames->data)[i]);
    }
    assert_int_equal(w2v_frames(&base, 16000), 49);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    free(pcm);
    free(f);
}

static int same_params(const mp_params *a, const mp_params *b) {
    if (a->n != b->n) return 0;
    int same = 1;
    for (int i = 0; i < a->n && same; i++) {
        float *x = tm_host_f32(a->v[i].t), *y = tm_host_f32(b->v[i].t);
        same = !strcmp(a->v[i].name, b->v[i].name) && tc_numel(a->v[i].t) == tc_numel(b->v[i].t) &&
               !memcmp(x, y, (size_t)tc_numel(a->v[i].t) * sizeof *x);
        free(x);
        free(y);
    }
    return same;
}

enum { EXPORT_PRETRAINING, EXPORT_MODEL_PARAMETRIZED, EXPORT_MISSHAPEN, EXPORT_MISSING, EXPORT_EXTRA };

/* Writes a's parameters as one of HF's exports would: Wav2Vec2ForPreTraining ("wav2vec2." names plus
 * the pretraining parts), or Wav2Vec2Model on a newer torch (no prefix, parametrized weight norm);
 * or broken: a transposed tensor, one missing, one unknown. */
static void write_export(const char *path, const mp_params *a, int kind) {
    enum { EXTRAS = 5 };
    st_tensor *ts = calloc((size_t)a->n + EXTRAS + 1, sizeof *ts);
    char(*names)[256] = calloc((size_t)a->n + EXTRAS + 1, sizeof *names);
    static float extra_data[64];
    size_t n = 0;
    tc_scope *s = tc_scope_begin();
    for (int i = 0; i < a->n; i++) {
        const char *name = a->v[i].name;
        if (kind == EXPORT_MISSING && strstr(name, "encoder.layer_norm.bias")) continue;
        if (kind == EXPORT_MODEL_PARAMETRIZED) {
            const char *rest = name + strlen("wav2vec2.");
            const char *g = strstr(rest, "weight_g"), *v = strstr(rest, "weight_v");
            if (g || v)
                snprintf(names[n], 256, "%.*sparametrizations.weight.original%d", (int)((g ? g : v) - rest), rest,
                         g ? 0 : 1);
            else
                snprintf(names[n], 256, "%s", rest);
        } else {
            snprintf(names[n], 256, "%s", name);
        }
        ts[n] = tm_st_of(names[n], tc_contiguous(a->v[i].t));
        if (kind == EXPORT_MISSHAPEN && strstr(name, "layers.1.feed_forward.output_dense.weight")) {
            int64_t d0 = ts[n].shape[0];
            ts[n].shape[0] = ts[n].shape[1];
            ts[n].shape[1] = d0;
        }
        n++;
    }
    if (kind == EXPORT_PRETRAINING) {
        static const char *const extras[EXTRAS] = {"quantizer.codevectors", "quantizer.weight_proj.weight",
                                                   "project_q.weight", "project_hid.bias",
                                                   "wav2vec2.masked_spec_embed"};
        for (int i = 0; i < EXTRAS; i++)
            ts[n++] = (st_tensor){extras[i], ST_F32, 2, {4, 16}, extra_data, sizeof extra_data};
    }
    if (kind == EXPORT_EXTRA)
        ts[n++] = (st_tensor){"wav2vec2.encoder.extra.weight", ST_F32, 2, {4, 16}, extra_data, sizeof extra_data};
    char err[512] = "";
    if (st_write(path, ts, n, NULL, 0, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(tc_scope_end(s), TC_OK);
    free(ts);
    free(names);
}

static void test_w2v_import(void **state) {
    (void)state;
    w2v_config c;
    mp_params a, b;
    w2v_model ma, mb;
    make_model(tiny_json, 21, &c, &a, &ma);
    tm_perturb(&a, 22, 0.1);
    char dir[64], path[128], err[512];
    assert_int_equal(tf_make_temp_dir(dir, "w2v_import"), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);

    hf_import_report rep = {0, 0};
    make_model(tiny_json, 23, &c, &b, &mb);
    write_export(path, &a, EXPORT_PRETRAINING);
    if (w2v_load_hf(&mb, &b, path, &rep, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(rep.loaded, b.n);
    assert_int_equal(rep.ignored, 5);
    assert_true(same_params(&a, &b));
    mp_params_free(&b);

    make_model(tiny_json, 24, &c, &b, &mb);
    write_export(path, &a, EXPORT_MODEL_PARAMETRIZED);
    if (w2v_load_hf(&mb, &b, path, &rep, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(rep.ignored, 0);
    assert_true(same_params(&a, &b));
    mp_params_free(&b);

    static const struct {
        int kind;
        const char *named;
    } broken[] = {
        {EXPORT_MISSHAPEN, "encoder.layers.1.feed_forward.output_dense.weight"},
        {EXPORT_MISSING, "encoder.layer_norm.bias"},
        {EXPORT_EXTRA, "encoder.extra.weight"},
    };
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        mp_params fresh;
        make_model(tiny_json, 25, &c, &b, &mb);
        make_model(tiny_json, 25, &c, &fresh, &mb);
        write_export(path, &a, broken[i].kind);
        err[0] = 0;
        assert_int_equal(w2v_load_hf(&mb, &b, path, NULL, err, sizeof err), -1);
        printf("import: %s\n", err);
        assert_non_null(strstr(err, broken[i].named));
        assert_true(same_params(&b, &fresh)); /* nothing copied */
        mp_params_free(&b);
        mp_params_free(&fresh);
    }
    tf_remove_tree(dir);
    mp_params_free(&a);
}

/* Dropout and LayerDrop follow the generator; freezing stops every gradient. */
static void test_w2v_training_and_freezing(void **state) {
    (void)state;
    w2v_config c;
    mp_params ps;
    w2v_model m;
    make_model(tiny_json, 31, &c, &ps, &m);
    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(3, CPU);
    tc_tensor *wave = tc_randn((const int64_t[]){N, S}, 2, 0, 1, g);
    tc_generator_free(g);

    float *out[4];
    for (int i = 0; i < 4; i++) {
        tc_generator *d = tc_generator_new(i < 2 ? 5 : 6, CPU);
        out[i] = tm_host_f32(tc_contiguous(w2v_forward(&m, wave, lengths, 1, d, NULL)));
        tc_generator_free(d);
    }
    size_t bytes = (size_t)(N * w2v_frames(&c, S) * c.hidden) * sizeof(float);
    assert_memory_equal(out[0], out[1], bytes);
    assert_memory_not_equal(out[0], out[2], bytes);
    assert_memory_equal(out[2], out[3], bytes);
    for (int i = 0; i < 4; i++) free(out[i]);

    /* LayerDrop 1 with no dropout: every layer skipped, as if there were none. */
    w2v_model drop = m, none = m;
    drop.cfg.layerdrop = 1.0;
    drop.cfg.hidden_dropout = drop.cfg.attention_dropout = drop.cfg.activation_dropout = 0;
    drop.cfg.feat_proj_dropout = 0;
    none.cfg.layers = 0;
    tc_tensor *a = w2v_forward(&drop, wave, lengths, 1, NULL, NULL), *b = w2v_forward(&none, wave, lengths, 0, NULL, NULL);
    int64_t numel = tc_numel(a);
    assert_true(tc_item(tc_max(tc_reshape(tc_abs(tc_sub(a, b)), &numel, 1), 0, 0)) == 0);

    assert_int_equal(w2v_freeze(&m, &ps, 1), TC_OK);
    tc_tensor *valid = NULL;
    tc_tensor *pooled = w2v_pool(w2v_forward(&m, wave, lengths, 1, NULL, &valid), valid);
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_requires_grad(pooled), 0);
    for (int i = 0; i < ps.n; i++) assert_false(mp_trainable(&ps.v[i]));
    assert_int_equal(w2v_freeze(&m, &ps, 0), TC_OK);
    mp_params other;
    assert_int_equal(mp_params_init(&other, 1), TC_OK);
    assert_int_equal(w2v_freeze(&m, &other, 1), TC_EINVAL); /* none of m's parameters there */
    mp_params_free(&other);
    for (int i = 0; i < ps.n; i++) assert_true(mp_trainable(&ps.v[i]));
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
}

int tm_wav2vec2_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_w2v_config),
        cmocka_unit_test(test_w2v_names_and_shapes),
        cmocka_unit_test(test_w2v_normalize_and_frames),
        cmocka_unit_test(test_w2v_vs_torch_nn),
        cmocka_unit_test(test_w2v_vs_torchaudio),
        cmocka_unit_test(test_w2v_base_vs_torchaudio),
        cmocka_unit_test(test_w2v_import),
        cmocka_unit_test(test_w2v_training_and_freezing),
    };
    return cmocka_run_group_tests_name("wav2vec2", tests, NULL, NULL);
}
