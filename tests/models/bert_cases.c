/* models/bert.h against two references on the same weights (exchanged as safetensors), the same ids
 * and padding mask, eval mode: HF BertModel's math written in plain python3-torch (ref_models.py
 * bert), and BERT assembled from torch.nn modules, nn.TransformerEncoderLayer per layer (ref_models.py
 * bert-nn), for each hidden_act. Compared: last hidden states, the pooler output, and the gradient of
 * every parameter. Also: config.json as HF writes it, and freezing. */
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

#define CPU ((tc_device){TC_CPU, 0})
#define BERT_TOL 1e-5
#define NN_TOL 1e-4
#define N 3
#define L 10

static const bert_config small = {.vocab_size = 50, .hidden = 16, .layers = 2, .heads = 2, .intermediate = 32,
                                  .max_position = 12, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                                  .init_std = 0.3, .attention_dropout = 0.1};

/* A batch: n rows of len ids, the first valid[i] of row i real, the rest padding. */
typedef struct {
    int n, len;
    const int *valid;
} bert_batch;

static const int small_valid[N] = {L, 6, 1};
static const bert_batch small_batch = {N, L, small_valid};

/* ids below cfg's vocab, the padding mask and loss weights for hidden and pooled. */
static void make_inputs(const bert_config *cfg, const bert_batch *b, tc_tensor *in[4]) {
    int64_t *ids = malloc((size_t)(b->n * b->len) * sizeof *ids);
    float *mask = malloc((size_t)(b->n * b->len) * sizeof *mask);
    uint64_t x = 12345;
    for (int i = 0; i < b->n * b->len; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int64_t)((x >> 33) % (uint64_t)cfg->vocab_size);
        mask[i] = (i % b->len) < b->valid[i / b->len] ? 1.0f : 0.0f;
    }
    tc_generator *g = tc_generator_new(5, CPU);
    in[0] = tc_from_data(ids, (const int64_t[]){b->n, b->len}, 2, TC_I64);
    in[1] = tc_from_data(mask, (const int64_t[]){b->n, b->len}, 2, TC_F32);
    in[2] = tc_randn((const int64_t[]){b->n, b->len, cfg->hidden}, 3, 0, 1, g);
    in[3] = tc_randn((const int64_t[]){b->n, cfg->hidden}, 2, 0, 1, g);
    tc_generator_free(g);
    free(ids);
    free(mask);
}

/* Forward and backward of cfg's BERT on batch b, its parameters moved by N(0, perturb) noise, then
 * the reference MODE on the same weights and inputs; errors printed under label. */
static void compare_batch(const char *label, const char *mode, const bert_config *cfg, const char *act,
                          const char *eps, double tol, const bert_batch *b, double perturb) {
    mp_params ps;
    bert_model m;
    char heads[16];
    snprintf(heads, sizeof heads, "%lld", (long long)cfg->heads);
    assert_int_equal(mp_params_init(&ps, 2024), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "bert", cfg), TC_OK);
    tm_perturb(&ps, 77, perturb);

    tc_scope *s = tc_scope_begin();
    tc_tensor *in[4];
    make_inputs(cfg, b, in);
    for (int i = 0; i < ps.n; i++) assert_int_equal(tc_zero_grad(ps.v[i].t), TC_OK);
    tc_tensor *hidden = bert_forward(&m, in[0], in[1], 0, NULL);
    tc_tensor *pooled = bert_pool(&m, hidden);
    tc_tensor *loss = tc_add(tc_sum_all(tc_mul(hidden, in[2])), tc_sum_all(tc_mul(pooled, in[3])));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(loss), TC_OK);

    static const char *const names[] = {"input.ids", "input.mask", "input.w", "input.w_pool"};
    const char *const meta[] = {"heads", heads, "act", act, "eps", eps};
    tm_ref r;
    tm_ref_run(&r, "ref_models.py", mode, &ps, names, in, 4, meta, 3);
    tm_check(label, hidden, &r, "hidden", tol);
    tm_check(label, pooled, &r, "pooled", tol);
    /* The key bias's exact gradient is 0 (softmax ignores a shift shared by every key). */
    static const char *const noise[] = {"attention.self.key.bias", NULL};
    tm_check_grads(label, &ps, &r, tol, noise);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
}

static void compare(const char *mode, const bert_config *cfg, const char *act, const char *eps, double tol) {
    char label[64];
    snprintf(label, sizeof label, "%s %s", mode, act);
    compare_batch(label, mode, cfg, act, eps, tol, &small_batch, 0.1);
}

static void test_bert_vs_torch(void **state) {
    (void)state;
    mp_params ps;
    bert_model m;
    assert_int_equal(mp_params_init(&ps, 2024), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "bert", &small), TC_OK);
    /* HF's names, embeddings first, pooler last: 5 + 16 per layer + 2. */
    assert_int_equal(ps.n, 5 + 16 * 2 + 2);
    assert_string_equal(ps.v[0].name, "bert.embeddings.word_embeddings.weight");
    assert_string_equal(ps.v[ps.n - 1].name, "bert.pooler.dense.bias");
    assert_non_null(mp_find(&ps, "bert.encoder.layer.1.attention.output.LayerNorm.weight"));
    mp_params_free(&ps);
    compare("bert", &small, "gelu", "1e-12", BERT_TOL);
}

static void test_bert_vs_nn_gelu(void **state) {
    (void)state;
    compare("bert-nn", &small, "gelu", "1e-12", NN_TOL);
}

static void test_bert_vs_nn_gelu_new(void **state) {
    (void)state;
    bert_config c = small;
    c.hidden_act = BERT_ACT_GELU_TANH;
    c.layer_norm_eps = 1e-6;
    compare("bert-nn", &c, "gelu_new", "1e-6", NN_TOL);
}

static void test_bert_vs_nn_relu(void **state) {
    (void)state;
    bert_config c = small;
    c.hidden_act = BERT_ACT_RELU;
    c.layer_norm_eps = 1e-5;
    compare("bert-nn", &c, "relu", "1e-5", NN_TOL);
}

/* ---- config.json ------------------------------------------------------------------------ */

/* bert-base-uncased's config.json as the hub serves it. */
static const char bert_base_json[] =
    "{\n  \"architectures\": [\"BertForMaskedLM\"],\n  \"attention_probs_dropout_prob\": 0.1,\n"
    "  \"gradient_checkpointing\": false,\n  \"hidden_act\": \"gelu\",\n  \"hidden_dropout_prob\": 0.1,\n"
    "  \"hidden_size\": 768,\n  \"initializer_range\": 0.02,\n  \"intermediate_size\": 3072,\n"
    "  \"layer_norm_eps\": 1e-12,\n  \"max_position_embeddings\": 512,\n  \"model_type\": \"bert\",\n"
    "  \"num_attention_heads\": 12,\n  \"num_hidden_layers\": 12,\n  \"pad_token_id\": 0,\n"
    "  \"position_embedding_type\": \"absolute\",\n  \"transformers_version\": \"4.6.0.dev0\",\n"
    "  \"type_vocab_size\": 2,\n  \"use_cache\": true,\n  \"vocab_size\": 30522\n}\n";

static const bert_config bert_base = {.vocab_size = 30522, .hidden = 768, .layers = 12, .heads = 12,
                                      .intermediate = 3072, .max_position = 512, .type_vocab = 2,
                                      .layer_norm_eps = 1e-12, .dropout = 0.1, .init_std = 0.02,
                                      .hidden_act = BERT_ACT_GELU, .attention_dropout = 0.1};

static void assert_config_equal(const bert_config *a, const bert_config *b) {
    assert_int_equal(a->vocab_size, b->vocab_size);
    assert_int_equal(a->hidden, b->hidden);
    assert_int_equal(a->layers, b->layers);
    assert_int_equal(a->heads, b->heads);
    assert_int_equal(a->intermediate, b->intermediate);
    assert_int_equal(a->max_position, b->max_position);
    assert_int_equal(a->type_vocab, b->type_vocab);
    assert_true(a->layer_norm_eps == b->layer_norm_eps);
    assert_true(a->dropout == b->dropout);
    assert_true(a->attention_dropout == b->attention_dropout);
    assert_true(a->init_std == b->init_std);
    assert_int_equal(a->hidden_act, b->hidden_act);
}

/* Parses text written to DIR/config.json; returns bert_config_from_hf's result. */
static int parse(const char *dir, const char *text, bert_config *c, char *err, size_t errlen) {
    char path[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (text) tf_write_text(path, text);
    return bert_config_from_hf(c, path, err, errlen);
}

static void test_bert_config_from_hf(void **state) {
    (void)state;
    char dir[64], err[512];
    bert_config c;
    assert_int_equal(tf_make_temp_dir(dir, "test_bert_config"), 0);
    memset(&c, 0, sizeof c);
    assert_int_equal(parse(dir, bert_base_json, &c, err, sizeof err), 0);
    assert_config_equal(&c, &bert_base);

    /* Every field left out takes BertConfig's default, which is bert-base. */
    memset(&c, 0, sizeof c);
    assert_int_equal(parse(dir, "{}", &c, err, sizeof err), 0);
    assert_config_equal(&c, &bert_base);

    const struct {
        const char *json;
        bert_act act;
    } acts[] = {
        {"{\"hidden_act\": \"gelu_new\"}", BERT_ACT_GELU_TANH},
        {"{\"hidden_act\": \"gelu_pytorch_tanh\"}", BERT_ACT_GELU_TANH},
        {"{\"hidden_act\": \"relu\"}", BERT_ACT_RELU},
    };
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) {
        assert_int_equal(parse(dir, acts[i].json, &c, err, sizeof err), 0);
        assert_int_equal(c.hidden_act, acts[i].act);
    }

    /* A small model in full, fields in another order, attention dropout apart from the hidden one. */
    assert_int_equal(parse(dir,
                           "{\"vocab_size\": 99, \"num_hidden_layers\": 3, \"hidden_size\": 24, \"num_attention_heads\": 4,"
                           " \"intermediate_size\": 40, \"max_position_embeddings\": 64, \"type_vocab_size\": 1,"
                           " \"layer_norm_eps\": 1e-5, \"hidden_dropout_prob\": 0.2,"
                           " \"attention_probs_dropout_prob\": 0.0, \"initializer_range\": 0.5}",
                           &c, err, sizeof err),
                     0);
    const bert_config want = {.vocab_size = 99, .hidden = 24, .layers = 3, .heads = 4, .intermediate = 40,
                              .max_position = 64, .type_vocab = 1, .layer_norm_eps = 1e-5, .dropout = 0.2,
                              .init_std = 0.5, .attention_dropout = 0.0};
    assert_config_equal(&c, &want);

    const struct {
        const char *json, *field;
    } bad[] = {
        {"{\"hidden_act\": \"swish\"}", "'hidden_act'"},
        {"{\"hidden_act\": 3}", "'hidden_act'"},
        {"{\"num_hidden_layers\": \"12\"}", "'num_hidden_layers'"},
        {"{\"num_hidden_layers\": 25}", "'num_hidden_layers'"},
        {"{\"hidden_size\": 768.5}", "'hidden_size'"},
        {"{\"vocab_size\": 0}", "'vocab_size'"},
        {"{\"layer_norm_eps\": 0}", "'layer_norm_eps'"},
        {"{\"hidden_dropout_prob\": 1.5}", "'hidden_dropout_prob'"},
        {"{\"attention_probs_dropout_prob\": null}", "'attention_probs_dropout_prob'"},
        {"{\"num_attention_heads\": 5}", "'num_attention_heads'"},
        {"{\"model_type\": \"roberta\"}", "'model_type'"},
        {"{\"position_embedding_type\": \"relative_key\"}", "'position_embedding_type'"},
        {"{\"hidden_size\": 768,", "not valid JSON"},
        {"[1, 2]", "not a JSON object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bert_config before = small, after = small;
        err[0] = '\0';
        assert_int_equal(parse(dir, bad[i].json, &after, err, sizeof err), -1);
        printf("%s\n", err);
        assert_non_null(strstr(err, "/config.json: "));
        assert_non_null(strstr(err, bad[i].field));
        assert_null(strchr(err, '\n'));
        assert_memory_equal(&before, &after, sizeof before);
    }
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none/config.json", dir);
    assert_int_equal(bert_config_from_hf(&c, missing, err, sizeof err), -1);
    printf("%s\n", err);
    assert_non_null(strstr(err, missing));
    tf_remove_tree(dir);
}

/* ---- bert-base ------------------------------------------------------------------------- */

/* bert-base-uncased's architecture, read from its config.json, against torch.nn on two short
 * sequences, one padded. The noise is the checkpoint's own init scale, so twelve layers see
 * activations like a real model's. */
static void test_bert_base_vs_nn(void **state) {
    (void)state;
    char dir[64], err[512];
    bert_config c;
    assert_int_equal(tf_make_temp_dir(dir, "test_bert_base"), 0);
    assert_int_equal(parse(dir, bert_base_json, &c, err, sizeof err), 0);
    tf_remove_tree(dir);
    assert_config_equal(&c, &bert_base);
    static const int valid[] = {8, 5};
    const bert_batch b = {2, 8, valid};
    compare_batch("bert-nn base", "bert-nn", &c, "gelu", "1e-12", NN_TOL, &b, 0.02);
}

/* ---- freezing --------------------------------------------------------------------------- */

static int is_frozen_part(const char *name, const char *prefix, int k) {
    char p[128];
    snprintf(p, sizeof p, "%s.embeddings.", prefix);
    if (!strncmp(name, p, strlen(p))) return 1;
    for (int i = 0; i < k; i++) {
        snprintf(p, sizeof p, "%s.encoder.layer.%d.", prefix, i);
        if (!strncmp(name, p, strlen(p))) return 1;
    }
    return 0;
}

static void test_bert_freeze_layers(void **state) {
    (void)state;
    mp_params ps;
    bert_model m;
    assert_int_equal(mp_params_init(&ps, 9), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "text.bert", &small), TC_OK);
    assert_int_equal(bert_freeze(&m, &ps, 1), TC_OK);

    tc_scope *s = tc_scope_begin();
    tc_tensor *in[4];
    make_inputs(&small, &small_batch, in);
    tc_tensor *hidden = bert_forward(&m, in[0], in[1], 1, NULL);
    tc_tensor *loss = tc_add(tc_sum_all(tc_mul(hidden, in[2])), tc_sum_all(tc_mul(bert_pool(&m, hidden), in[3])));
    assert_int_equal(tc_backward(loss), TC_OK);
    int frozen = 0;
    for (int i = 0; i < ps.n; i++) {
        int want_frozen = is_frozen_part(ps.v[i].name, "text.bert", 1);
        tc_tensor *g = tc_grad(ps.v[i].t);
        frozen += want_frozen;
        assert_int_equal(mp_trainable(&ps.v[i]), !want_frozen);
        if (want_frozen && g) fail_msg("%s is frozen but got a gradient", ps.v[i].name);
        if (!want_frozen && !g) fail_msg("%s is trainable but got no gradient", ps.v[i].name);
    }
    assert_int_equal(frozen, 5 + 16);
    assert_int_equal(tc_scope_end(s), TC_OK);

    /* Each call sets the whole state: k = 0 thaws layer 0 again, k < 0 takes the pooler too. */
    assert_int_equal(bert_freeze(&m, &ps, 0), TC_OK);
    for (int i = 0; i < ps.n; i++) assert_int_equal(mp_trainable(&ps.v[i]), !is_frozen_part(ps.v[i].name, "text.bert", 0));
    assert_int_equal(bert_freeze(&m, &ps, -1), TC_OK);
    for (int i = 0; i < ps.n; i++) assert_false(mp_trainable(&ps.v[i]));
    assert_int_equal(bert_freeze(&m, &ps, 2), TC_OK);
    assert_true(mp_trainable(mp_find(&ps, "text.bert.pooler.dense.weight")));
    assert_false(mp_trainable(mp_find(&ps, "text.bert.encoder.layer.1.output.dense.weight")));
    assert_int_equal(bert_freeze(&m, &ps, 3), TC_EINVAL);
    mp_params_free(&ps);

    /* Layer 1 frozen leaves layer 10 alone. */
    bert_config deep = small;
    deep.layers = 11;
    assert_int_equal(mp_params_init(&ps, 9), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "bert", &deep), TC_OK);
    assert_int_equal(bert_freeze(&m, &ps, 2), TC_OK);
    assert_false(mp_trainable(mp_find(&ps, "bert.encoder.layer.1.output.dense.weight")));
    assert_true(mp_trainable(mp_find(&ps, "bert.encoder.layer.10.output.dense.weight")));
    assert_true(mp_trainable(mp_find(&ps, "bert.encoder.layer.2.output.dense.weight")));
    mp_params_free(&ps);
}

int tm_bert_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_vs_torch),        cmocka_unit_test(test_bert_vs_nn_gelu),
        cmocka_unit_test(test_bert_vs_nn_gelu_new),  cmocka_unit_test(test_bert_vs_nn_relu),
        cmocka_unit_test(test_bert_config_from_hf),  cmocka_unit_test(test_bert_freeze_layers),
        cmocka_unit_test(test_bert_base_vs_nn),
    };
    return cmocka_run_group_tests_name("bert", tests, NULL, NULL);
}
