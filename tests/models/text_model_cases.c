/* models/text_model.h: the logits' shape, and what must not change a sample's logits: tokens
 * behind the padding mask, utterance slots marked invalid, metadata ids outside a field's range. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "models/text_model.h"
#include "tests/models/models_test.h"

#define B 3
#define U 4
#define L 8
#define F 3
#define C 7

typedef struct {
    int64_t tokens[B * U * L];
    float mask[B * U * L];
    float valid[B * U];
    int64_t meta[B * F];
} host_inputs;

static tm_config text_config(void) {
    tm_config c;
    memset(&c, 0, sizeof c);
    c.bert = (bert_config){.vocab_size = 50, .hidden = 16, .layers = 2, .heads = 2, .intermediate = 32,
                           .max_position = 12, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                           .init_std = 0.3};
    c.meta_fields = F;
    c.meta_sizes[0] = 4;
    c.meta_sizes[1] = 3;
    c.meta_sizes[2] = 5;
    c.meta_dim = 4;
    c.num_classes = C;
    c.dropout = 0.1;
    return c;
}

static uint64_t rng = 99;
static int64_t next_id(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return 1 + (int64_t)((rng >> 33) % 49);
}

/* Utterances of different lengths, some slots invalid (their contents must not matter). */
static void base_inputs(host_inputs *in) {
    static const int lengths[B * U] = {8, 3, 5, 1, 4, 6, 2, 7, 2, 8, 5, 3};
    static const float valid[B * U] = {1, 1, 1, 1, 1, 1, 0, 0, 1, 0, 1, 0};
    static const int64_t meta[B * F] = {1, 2, 3, 0, 1, 4, 3, 0, 2};
    for (int u = 0; u < B * U; u++) {
        in->valid[u] = valid[u];
        for (int t = 0; t < L; t++) {
            in->tokens[u * L + t] = next_id();
            in->mask[u * L + t] = t < lengths[u] ? 1.0f : 0.0f;
        }
    }
    memcpy(in->meta, meta, sizeof meta);
}

/* Logits of in, [B, C] in eval mode, into out. */
static void logits(tm_model *m, const host_inputs *in, float *out) {
    tc_scope *s = tc_scope_begin();
    tm_inputs t = {
        .utt_tokens = tc_from_data(in->tokens, (const int64_t[]){B, U, L}, 3, TC_I64),
        .utt_mask = tc_from_data(in->mask, (const int64_t[]){B, U, L}, 3, TC_F32),
        .utt_valid = tc_from_data(in->valid, (const int64_t[]){B, U}, 2, TC_F32),
        .meta = tc_from_data(in->meta, (const int64_t[]){B, F}, 2, TC_I64),
    };
    tc_tensor *y = tm_model_forward(m, &t, 0, NULL);
    assert_non_null(y);
    assert_int_equal(tc_ndim(y), 2);
    assert_int_equal(tc_size(y, 0), B);
    assert_int_equal(tc_size(y, 1), C);
    assert_int_equal(tc_copy_to_host(y, out, B * C * sizeof(float)), TC_OK);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static int same_sample(const float *a, const float *b, int sample) {
    return memcmp(a + sample * C, b + sample * C, C * sizeof(float)) == 0;
}

static void test_text_model_shape(void **state) {
    (void)state;
    tm_config cfg = text_config();
    tm_model m;
    assert_int_equal(tm_model_init(&m, &cfg, 7), TC_OK);
    assert_non_null(mp_find(&m.params, "meta.2.weight"));
    assert_non_null(mp_find(&m.params, "head.weight"));
    assert_int_equal(tc_size(mp_find(&m.params, "head.weight")->t, 1), 16 + F * 4);
    host_inputs in;
    base_inputs(&in);
    float y[B * C];
    logits(&m, &in, y);
    for (int i = 0; i < B * C; i++) assert_true(isfinite(y[i]));
    tm_model_free(&m);

    tm_config bad = cfg;
    bad.num_classes = 1;
    assert_int_equal(tm_model_init(&m, &bad, 7), TC_EINVAL);
    bad = cfg;
    bad.meta_fields = TM_MAX_META + 1;
    assert_int_equal(tm_model_init(&m, &bad, 7), TC_EINVAL);
}

static void test_text_model_masks(void **state) {
    (void)state;
    tm_config cfg = text_config();
    tm_model m;
    assert_int_equal(tm_model_init(&m, &cfg, 11), TC_OK);
    host_inputs base, in;
    base_inputs(&base);
    float y0[B * C], y[B * C];
    logits(&m, &base, y0);

    /* Other ids behind the mask. */
    in = base;
    for (int i = 0; i < B * U * L; i++)
        if (in.mask[i] == 0) in.tokens[i] = next_id();
    logits(&m, &in, y);
    for (int b = 0; b < B; b++) assert_true(same_sample(y, y0, b));

    /* Other ids and another mask in the invalid utterance slots. */
    in = base;
    for (int u = 0; u < B * U; u++)
        if (in.valid[u] == 0)
            for (int t = 0; t < L; t++) {
                in.tokens[u * L + t] = next_id();
                in.mask[u * L + t] = t < 2 + u % 5 ? 1.0f : 0.0f;
            }
    logits(&m, &in, y);
    for (int b = 0; b < B; b++) assert_true(same_sample(y, y0, b));

    /* A visible token of sample 1 does matter, and only to sample 1. */
    in = base;
    in.tokens[(1 * U + 1) * L + 2] = in.tokens[(1 * U + 1) * L + 2] % 49 + 1;
    logits(&m, &in, y);
    assert_true(same_sample(y, y0, 0));
    assert_false(same_sample(y, y0, 1));
    assert_true(same_sample(y, y0, 2));
    tm_model_free(&m);
}

static void test_text_model_meta_out_of_range(void **state) {
    (void)state;
    tm_config cfg = text_config();
    tm_model m;
    assert_int_equal(tm_model_init(&m, &cfg, 13), TC_OK);
    host_inputs zero, in;
    base_inputs(&zero);
    /* Field sizes 4, 3, 5: one id past the end, a negative one, a huge one per sample. */
    static const int64_t odd[B * F] = {4, 3, 5, -1, 1000000, -7, 2, 2, 40};
    static const int64_t as_zero[B * F] = {0, 0, 0, 0, 0, 0, 2, 2, 0};
    memcpy(zero.meta, as_zero, sizeof as_zero);
    in = zero;
    memcpy(in.meta, odd, sizeof odd);
    float y0[B * C], y[B * C];
    logits(&m, &zero, y0);
    logits(&m, &in, y);
    for (int b = 0; b < B; b++) assert_true(same_sample(y, y0, b));

    /* A valid non-zero id is not read as 0. */
    in = zero;
    in.meta[1 * F + 2] = 4;
    logits(&m, &in, y);
    assert_true(same_sample(y, y0, 0));
    assert_false(same_sample(y, y0, 1));
    tm_model_free(&m);
}

int tm_text_model_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_model_shape),
        cmocka_unit_test(test_text_model_masks),
        cmocka_unit_test(test_text_model_meta_out_of_range),
    };
    return cmocka_run_group_tests_name("text_model", tests, NULL, NULL);
}
