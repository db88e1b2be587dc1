/* models/bert.h against HF BertModel's math written in plain python3-torch (ref_models.py bert):
 * same weights (exchanged as safetensors), same ids and padding mask, eval mode; last hidden
 * states, the pooler output, and the gradient of every parameter. */
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
#define N 3
#define L 10

static void test_bert_vs_torch(void **state) {
    (void)state;
    const bert_config cfg = {.vocab_size = 50, .hidden = 16, .layers = 2, .heads = 2, .intermediate = 32,
                             .max_position = 12, .type_vocab = 2, .layer_norm_eps = 1e-12, .dropout = 0.1,
                             .init_std = 0.3};
    mp_params ps;
    bert_model m;
    assert_int_equal(mp_params_init(&ps, 2024), TC_OK);
    assert_int_equal(bert_init(&m, &ps, "bert", &cfg), TC_OK);
    /* HF's names, embeddings first, pooler last: 5 + 16 per layer + 2. */
    assert_int_equal(ps.n, 5 + 16 * 2 + 2);
    assert_string_equal(ps.v[0].name, "bert.embeddings.word_embeddings.weight");
    assert_string_equal(ps.v[ps.n - 1].name, "bert.pooler.dense.bias");
    assert_non_null(mp_find(&ps, "bert.encoder.layer.1.attention.output.LayerNorm.weight"));
    tm_perturb(&ps, 77, 0.1);

    int64_t ids[N * L];
    float mask[N * L];
    static const int valid[N] = {L, 6, 1}; /* full, padded, a lone [CLS] */
    uint64_t x = 12345;
    for (int i = 0; i < N * L; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int64_t)((x >> 33) % 50);
        mask[i] = (i % L) < valid[i / L] ? 1.0f : 0.0f;
    }

    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(5, CPU);
    tc_tensor *in[] = {
        tc_from_data(ids, (const int64_t[]){N, L}, 2, TC_I64),
        tc_from_data(mask, (const int64_t[]){N, L}, 2, TC_F32),
        tc_randn((const int64_t[]){N, L, 16}, 3, 0, 1, g),
        tc_randn((const int64_t[]){N, 16}, 2, 0, 1, g),
    };
    tc_generator_free(g);
    for (int i = 0; i < ps.n; i++) assert_int_equal(tc_zero_grad(ps.v[i].t), TC_OK);
    tc_tensor *hidden = bert_forward(&m, in[0], in[1], 0, NULL);
    tc_tensor *pooled = bert_pool(&m, hidden);
    tc_tensor *loss = tc_add(tc_sum_all(tc_mul(hidden, in[2])), tc_sum_all(tc_mul(pooled, in[3])));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(loss), TC_OK);

    static const char *const names[] = {"input.ids", "input.mask", "input.w", "input.w_pool"};
    static const char *const meta[] = {"heads", "2"};
    tm_ref r;
    tm_ref_run(&r, "ref_models.py", "bert", &ps, names, in, 4, meta, 1);
    tm_check("bert", hidden, &r, "hidden", BERT_TOL);
    tm_check("bert", pooled, &r, "pooled", BERT_TOL);
    /* The key bias's exact gradient is 0 (softmax ignores a shift shared by every key). */
    static const char *const noise[] = {"attention.self.key.bias", NULL};
    tm_check_grads("bert", &ps, &r, BERT_TOL, noise);
    tm_ref_close(&r);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
}

int tm_bert_tests(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_vs_torch),
    };
    return cmocka_run_group_tests_name("bert", tests, NULL, NULL);
}
