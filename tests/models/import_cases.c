/* models/hf_import.h through bert_load_hf, on Hugging Face BERT checkpoints that python3-torch writes
 * from a module tree shaped like transformers' BertForPreTraining (ref_models.py bert-hf-files):
 * BertForPreTraining's layout ("bert." prefix, LayerNorm gamma/beta, cls.* heads, position_ids) in F32
 * and BF16, and BertModel.save_pretrained's (no prefix) in F16. Every parameter must equal the value
 * the file stores, exactly; the broken files made from them here (a tensor missing, one unknown, one
 * misshapen, one of an integer dtype, one spelled twice) must fail with one line naming the tensor
 * and leave the model as it was. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/bert.h"
#include "tests/models/models_test.h"

/* The reference's sizes: vocab, hidden, layers, intermediate, positions, token types. */
#define HF_ARGS "50 16 2 32 12 2"
static const bert_config hf_small = {.vocab_size = 50, .hidden = 16, .layers = 2, .heads = 2, .intermediate = 32,
                                     .max_position = 12, .type_vocab = 2, .layer_norm_eps = 1e-12,
                                     .init_std = 0.02};
/* BertForPreTraining's extras: 8 cls.* tensors and embeddings.position_ids. */
#define PRETRAINING_IGNORED 9

typedef struct {
    char dir[64];
    st_file *expected;
} files;

static int files_setup(void **state) {
    files *f = calloc(1, sizeof *f);
    char args[256], err[512];
    if (!f || tf_make_temp_dir(f->dir, "test_import") != 0) return -1;
    snprintf(args, sizeof args, "bert-hf-files %s " HF_ARGS, f->dir);
    char *out = tm_run_reference(args);
    if (!out) return -1;
    free(out);
    snprintf(args, sizeof args, "%s/expected.safetensors", f->dir);
    if (st_open(args, &f->expected, err, sizeof err) != 0) return -1;
    *state = f;
    return 0;
}

static int files_teardown(void **state) {
    files *f = *state;
    st_close(f->expected);
    tf_remove_tree(f->dir);
    free(f);
    return 0;
}

static void path_of(const files *f, const char *stem, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s.safetensors", f->dir, stem);
}

/* Every parameter of the model under prefix equals expected "<stem>/<name after prefix>" exactly. */
static void assert_loaded(const files *f, const mp_params *ps, const char *prefix, const char *stem) {
    size_t plen = strlen(prefix);
    for (int i = 0; i < ps->n; i++) {
        char name[300];
        snprintf(name, sizeof name, "%s/%s", stem, ps->v[i].name + plen + 1);
        const st_tensor *want = st_find(f->expected, name);
        if (!want) fail_msg("no expected value for %s", name);
        double diff, scale;
        tm_diff(ps->v[i].t, want, &diff, &scale);
        if (diff != 0) fail_msg("%s: loaded value differs from the file's by %g", ps->v[i].name, diff);
        assert_true(scale > 0);
    }
}

static void load(const files *f, const char *stem, const char *prefix, int ignored) {
    mp_params ps;
    bert_model m;
    hf_import_report rep = {-1, -1};
    char path[128], err[512] = "";
    path_of(f, stem, path, sizeof path);
    assert_int_equal(mp_params_init(&ps, 3), TC_OK);
    assert_int_equal(bert_init(&m, &ps, prefix, &hf_small), TC_OK);
    if (bert_load_hf(&m, &ps, path, &rep, err, sizeof err) != 0) fail_msg("%s", err);
    assert_int_equal(rep.loaded, ps.n);
    assert_int_equal(rep.ignored, ignored);
    assert_loaded(f, &ps, prefix, stem);
    printf("%s into '%s': %d loaded, %d ignored\n", stem, prefix, rep.loaded, rep.ignored);
    mp_params_free(&ps);
}

static void test_import_pretraining_f32(void **state) { load(*state, "pretraining", "bert", PRETRAINING_IGNORED); }

static void test_import_pretraining_bf16(void **state) {
    files *f = *state;
    load(f, "pretraining_bf16", "bert", PRETRAINING_IGNORED);
    /* The BF16 file holds the F32 file's weights, each rounded to 8 significant bits. */
    for (size_t i = 0; i < st_count(f->expected); i++) {
        const st_tensor *b = st_at(f->expected, i);
        if (strncmp(b->name, "pretraining_bf16/", 17)) continue;
        char name[300];
        snprintf(name, sizeof name, "pretraining/%s", b->name + 17);
        const st_tensor *a = st_find(f->expected, name);
        assert_non_null(a);
        const float *x = a->data, *y = b->data;
        for (size_t k = 0; k < a->nbytes / sizeof(float); k++)
            if (!(fabsf(x[k] - y[k]) <= fabsf(x[k]) / 256)) fail_msg("%s[%zu]: %g vs %g", b->name, k, x[k], y[k]);
    }
}

/* BertModel.save_pretrained's names carry no prefix; the model's own prefix is whatever it has. */
static void test_import_model_f16(void **state) {
    load(*state, "model_f16", "bert", 0);
    load(*state, "model_f16", "text.encoder", 0);
    load(*state, "pretraining", "text.encoder", PRETRAINING_IGNORED);
}

/* The parameters' values, to tell that a failed import changed nothing. */
static float **snapshot(const mp_params *ps) {
    float **v = calloc((size_t)ps->n, sizeof *v);
    for (int i = 0; i < ps->n; i++) v[i] = tm_host_f32(ps->v[i].t);
    return v;
}

static void assert_unchanged(const mp_params *ps, float **v) {
    for (int i = 0; i < ps->n; i++) {
        float *now = tm_host_f32(ps->v[i].t);
        if (memcmp(now, v[i], (size_t)tc_numel(ps->v[i].t) * sizeof *now))
            fail_msg("%s changed by a failed import", ps->v[i].name);
        free(now);
        free(v[i]);
    }
    free(v);
}

enum edit { DROP, ADD_UNKNOWN, TRANSPOSE_SHAPE, INTEGER_DTYPE, SPELL_TWICE };

/* The F32 pretraining file with one edit, written to DIR/broken.safetensors. */
static void write_broken(const files *f, enum edit e, const char *target, const char *path) {
    char src[128], err[512];
    st_file *in;
    path_of(f, "pretraining", src, sizeof src);
    assert_int_equal(st_open(src, &in, err, sizeof err), 0);
    size_t n = st_count(in), k = 0;
    st_tensor *ts = calloc(n + 1, sizeof *ts);
    for (size_t i = 0; i < n; i++) {
        st_tensor t = *st_at(in, i);
        if (strcmp(t.name, target)) {
            ts[k++] = t;
            continue;
        }
        switch (e) {
        case DROP: break;
        case ADD_UNKNOWN:
            ts[k++] = t;
            t.name = "bert.encoder.layer.0.attention.self.rotary.weight";
            ts[k++] = t;
            break;
        case TRANSPOSE_SHAPE:
            t.shape[0] = st_at(in, i)->shape[1];
            t.shape[1] = st_at(in, i)->shape[0];
            ts[k++] = t;
            break;
        case INTEGER_DTYPE:
            t.dtype = ST_I32;
            ts[k++] = t;
            break;
        case SPELL_TWICE:
            ts[k++] = t;
            t.name = "bert.embeddings.LayerNorm.weight";
            ts[k++] = t;
            break;
        }
    }
    assert_int_equal(st_write(path, ts, k, NULL, 0, err, sizeof err), 0);
    free(ts);
    st_close(in);
}

static void test_import_rejects(void **state) {
    files *f = *state;
    const struct {
        enum edit edit;
        const char *target, *says[3];
    } cases[] = {
        {DROP, "bert.encoder.layer.1.output.dense.bias",
         {"the model's 'bert.encoder.layer.1.output.dense.bias' is missing from the file", "(1 missing tensor)"}},
        {ADD_UNKNOWN, "bert.pooler.dense.weight",
         {"tensor 'bert.encoder.layer.0.attention.self.rotary.weight' matches nothing", "(1 unexpected tensor)"}},
        {TRANSPOSE_SHAPE, "bert.encoder.layer.0.intermediate.dense.weight",
         {"tensor 'bert.encoder.layer.0.intermediate.dense.weight' has shape [16, 32]",
          "the model's 'bert.encoder.layer.0.intermediate.dense.weight' is [32, 16]"}},
        {INTEGER_DTYPE, "bert.pooler.dense.bias", {"tensor 'bert.pooler.dense.bias' is I32", "only F32, F16 and BF16"}},
        {SPELL_TWICE, "bert.embeddings.LayerNorm.gamma",
         {"'bert.embeddings.LayerNorm.gamma' and 'bert.embeddings.LayerNorm.weight' both fill the model's "
          "'bert.embeddings.LayerNorm.weight'"}},
    };
    char path[128];
    snprintf(path, sizeof path, "%s/broken.safetensors", f->dir);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        mp_params ps;
        bert_model m;
        hf_import_report rep = {-1, -1};
        char err[512] = "";
        write_broken(f, cases[c].edit, cases[c].target, path);
        assert_int_equal(mp_params_init(&ps, 5), TC_OK);
        assert_int_equal(bert_init(&m, &ps, "bert", &hf_small), TC_OK);
        float **before = snapshot(&ps);
        assert_int_equal(bert_load_hf(&m, &ps, path, &rep, err, sizeof err), -1);
        printf("%s\n", err);
        assert_null(strchr(err, '\n'));
        assert_true(!strncmp(err, path, strlen(path)));
        for (int k = 0; k < 3 && cases[c].says[k]; k++)
            if (!strstr(err, cases[c].says[k])) fail_msg("'%s' does not say '%s'", err, cases[c].says[k]);
        assert_int_equal(rep.loaded, 0);
        assert_unchanged(&ps, before);
        mp_params_free(&ps);
    }
}

/* A model of other sizes names the first misfit; a model of another family gets the count of what
 * did not match, not a line per tensor. */
static void test_import_wrong_model(void **state) {
    files *f = *state;
    mp_params ps;
    bert_model m;
    bert_config bigger = hf_small;
    char path[128], err[512] = "";
    bigger.hidden = 32;
    path_of(f, "model_f16", path, sizeof path);
    assert_int_equal(mp_params_init(&ps, 5), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "bert", &bigger), TC_OK);
    assert_int_equal(bert_load_hf(&m, &ps, path, NULL, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, "has shape [50, 16], the model's 'bert.embeddings.word_embeddings.weight' is [50, 32]"));
    mp_params_free(&ps);

    mp_params other;
    assert_int_equal(mp_params_init(&other, 5), TC_OK);
    assert_non_null(mp_normal(&other, "wav2vec2.masked_spec_embed", (const int64_t[]){16}, 1, 1.0));
    const hf_import_rules rules = {.prefix = "wav2vec2", .file_prefix = "wav2vec2."};
    assert_int_equal(hf_import(&other, path, &rules, NULL, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, "matches nothing in the model (39 unexpected tensors)"));
    mp_params_free(&other);
}

/* Both generations of weight norm names, either way round, and ignore rules with and without the
 * file prefix (wav2vec2's pretraining parts). */
static void test_import_weight_norm_spellings(void **state) {
    files *f = *state;
    static const char *const ours[2][2] = {
        {"w2v.encoder.pos_conv_embed.conv.weight_g", "w2v.encoder.pos_conv_embed.conv.weight_v"},
        {"w2v.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
         "w2v.encoder.pos_conv_embed.conv.parametrizations.weight.original1"},
    };
    static const char *const theirs[2][4] = {
        {"wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0",
         "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1", "quantizer.codevectors",
         "wav2vec2.masked_spec_embed"},
        {"encoder.pos_conv_embed.conv.weight_g", "encoder.pos_conv_embed.conv.weight_v", "project_q.weight",
         "masked_spec_embed"},
    };
    float g[3] = {1, 2, 3}, v[8] = {-1, -2, -3, -4, 5, 6, 7, 8}, extra[2] = {9, 9};
    char path[128], err[512] = "";
    snprintf(path, sizeof path, "%s/wn.safetensors", f->dir);
    const hf_import_rules rules = {.prefix = "w2v", .file_prefix = "wav2vec2.",
                                   .ignore = {"quantizer.", "project_q.", "masked_spec_embed", NULL}};
    for (int o = 0; o < 2; o++)
        for (int t = 0; t < 2; t++) {
            const st_tensor ts[] = {
                {theirs[t][0], ST_F32, 3, {1, 1, 3}, g, sizeof g},
                {theirs[t][1], ST_F32, 3, {2, 1, 4}, v, sizeof v},
                {theirs[t][2], ST_F32, 1, {2}, extra, sizeof extra},
                {theirs[t][3], ST_F32, 1, {2}, extra, sizeof extra},
            };
            assert_int_equal(st_write(path, ts, 4, NULL, 0, err, sizeof err), 0);
            mp_params ps;
            hf_import_report rep;
            assert_int_equal(mp_params_init(&ps, 1), TC_OK);
            tc_tensor *pg = mp_constant(&ps, ours[o][0], (const int64_t[]){1, 1, 3}, 3, 0.0);
            tc_tensor *pv = mp_constant(&ps, ours[o][1], (const int64_t[]){2, 1, 4}, 3, 0.0);
            if (hf_import(&ps, path, &rules, &rep, err, sizeof err) != 0) fail_msg("%s", err);
            assert_int_equal(rep.loaded, 2);
            assert_int_equal(rep.ignored, 2);
            float *got_g = tm_host_f32(pg), *got_v = tm_host_f32(pv);
            assert_memory_equal(got_g, g, sizeof g);
            assert_memory_equal(got_v, v, sizeof v);
            free(got_g);
            free(got_v);
            mp_params_free(&ps);
        }
}

int tm_import_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_pretraining_f32), cmocka_unit_test(test_import_pretraining_bf16),
        cmocka_unit_test(test_import_model_f16),       cmocka_unit_test(test_import_rejects),
        cmocka_unit_test(test_import_wrong_model),     cmocka_unit_test(test_import_weight_norm_spellings),
    };
    return cmocka_run_group_tests_name("import", tests, files_setup, files_teardown);
}
