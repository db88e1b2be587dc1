/* models/bert.h against HF BertModel's math written in plain python3-torch (ref_models.py bert):
 * same weights (exchanged as safetensors), same ids and padding mask, eval mode; last hidden
 * states, the pooler output, and the gradient of every parameter. */
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
#include "models/safetensors.h"
#include "tests/models/models_test.h"

#define CPU ((tc_device){TC_CPU, 0})
#define BERT_TOL 1e-5
#define N 3
#define L 10

/* Moves every parameter off its initial value (LayerNorm 1/0, zero biases) so each one matters. */
static void perturb(mp_params *ps, uint64_t seed) {
    tc_generator *g = tc_generator_new(seed, CPU);
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    for (int i = 0; i < ps->n; i++) {
        tc_tensor *p = ps->v[i].t;
        int64_t shape[TC_MAX_DIMS];
        for (int d = 0; d < tc_ndim(p); d++) shape[d] = tc_size(p, d);
        assert_int_equal(tc_copy_(p, tc_add(p, tc_randn(shape, tc_ndim(p), 0.0, 0.1, g))), TC_OK);
    }
    tc_grad_enabled_set(was);
    assert_int_equal(tc_scope_end(s), TC_OK);
    tc_generator_free(g);
}

static st_tensor describe_f32(const char *name, tc_tensor *t) {
    st_tensor s = {name, t && tc_dtype_of(t) == TC_I64 ? ST_I64 : ST_F32, tc_ndim(t), {0}, tc_data_ptr(t), 0};
    for (int d = 0; d < s.ndim; d++) s.shape[d] = tc_size(t, d);
    s.nbytes = (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t));
    assert_non_null(s.data);
    return s;
}

/* max |got - ref| and max |ref| over the elements; the shapes must match. */
static void diff_f32(tc_tensor *got, const st_tensor *ref, double *diff, double *scale) {
    assert_non_null(got);
    assert_non_null(ref);
    assert_int_equal(ref->dtype, ST_F32);
    assert_int_equal(tc_ndim(got), ref->ndim);
    for (int d = 0; d < ref->ndim; d++) assert_int_equal(tc_size(got, d), ref->shape[d]);
    float *a = tm_host_f32(got);
    const float *b = ref->data;
    *diff = *scale = 0;
    for (int64_t i = 0; i < tc_numel(got); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= *diff)) *diff = d;
        if (fabs((double)b[i]) > *scale) *scale = fabs((double)b[i]);
    }
    free(a);
}

void test_bert_vs_torch(void **state) {
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
    perturb(&ps, 77);

    int64_t ids[N * L];
    float mask[N * L];
    static const int valid[N] = {L, 6, 1}; /* full, padded, a lone [CLS] */
    uint64_t x = 12345;
    for (int i = 0; i < N * L; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int64_t)((x >> 33) % 50);
        mask[i] = (i % L) < valid[i / L] ? 1.0f : 0.0f;
    }

    char dir[64], in_path[128], out_path[128], args[400], err[512] = "";
    assert_int_equal(tf_make_temp_dir(dir, "test_models"), 0);
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", dir);
    snprintf(out_path, sizeof out_path, "%s/out.safetensors", dir);

    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(5, CPU);
    tc_tensor *tid = tc_from_data(ids, (const int64_t[]){N, L}, 2, TC_I64);
    tc_tensor *tmask = tc_from_data(mask, (const int64_t[]){N, L}, 2, TC_F32);
    tc_tensor *w = tc_randn((const int64_t[]){N, L, 16}, 3, 0, 1, g);
    tc_tensor *w_pool = tc_randn((const int64_t[]){N, 16}, 2, 0, 1, g);
    tc_generator_free(g);
    for (int i = 0; i < ps.n; i++) assert_int_equal(tc_zero_grad(ps.v[i].t), TC_OK);
    tc_tensor *hidden = bert_forward(&m, tid, tmask, 0, NULL);
    tc_tensor *pooled = bert_pool(&m, hidden);
    tc_tensor *loss = tc_add(tc_sum_all(tc_mul(hidden, w)), tc_sum_all(tc_mul(pooled, w_pool)));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(loss), TC_OK);

    st_tensor *ts = calloc((size_t)ps.n + 4, sizeof *ts);
    for (int i = 0; i < ps.n; i++) ts[i] = describe_f32(ps.v[i].name, ps.v[i].t);
    ts[ps.n] = describe_f32("input.ids", tid);
    ts[ps.n + 1] = describe_f32("input.mask", tmask);
    ts[ps.n + 2] = describe_f32("input.w", w);
    ts[ps.n + 3] = describe_f32("input.w_pool", w_pool);
    const char *meta[] = {"heads", "2"};
    assert_int_equal(st_write(in_path, ts, (size_t)ps.n + 4, meta, 1, err, sizeof err), 0);
    free(ts);
    snprintf(args, sizeof args, "bert %s %s", in_path, out_path);
    char *out = tm_run_reference(args);
    assert_non_null(out);
    free(out);

    st_file *ref;
    assert_int_equal(st_open(out_path, &ref, err, sizeof err), 0);
    assert_int_equal(st_count(ref), (size_t)ps.n + 2);
    double diff, scale, worst_grad = 0, grad_scale = 0;
    diff_f32(hidden, st_find(ref, "hidden"), &diff, &scale);
    printf("bert: hidden  max err %.3g (normalised by max |ref| %.3g)\n", diff / scale, scale);
    assert_true(diff <= BERT_TOL * scale);
    diff_f32(pooled, st_find(ref, "pooled"), &diff, &scale);
    printf("bert: pooled  max err %.3g (normalised by max |ref| %.3g)\n", diff / scale, scale);
    assert_true(diff <= BERT_TOL * scale);

    /* The key bias's exact gradient is 0 (softmax ignores a shift shared by every key); its
     * reference is rounding noise, so it is held to the model-wide gradient scale instead. */
    double *diffs = calloc((size_t)ps.n, sizeof *diffs), *scales = calloc((size_t)ps.n, sizeof *scales);
    for (int i = 0; i < ps.n; i++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s", ps.v[i].name);
        tc_tensor *gr = tc_grad(ps.v[i].t);
        diff_f32(gr, st_find(ref, name), &diffs[i], &scales[i]);
        if (scales[i] > grad_scale) grad_scale = scales[i];
    }
    for (int i = 0; i < ps.n; i++) {
        int key_bias = strstr(ps.v[i].name, "attention.self.key.bias") != NULL;
        double e = diffs[i] / (key_bias ? grad_scale : scales[i]);
        if (!key_bias && e > worst_grad) worst_grad = e;
        if (!(e <= BERT_TOL)) {
            fprintf(stderr, "grad of %s: max err %.3g (max |ref| %.3g)\n", ps.v[i].name, e, scales[i]);
            fail();
        }
        if (key_bias)
            printf("bert: grad %s: max |ref| %.3g, err %.3g of the model-wide scale %.3g\n", ps.v[i].name,
                   scales[i], e, grad_scale);
    }
    printf("bert: grads   max err %.3g over %d parameters (each normalised by its max |ref|)\n", worst_grad,
           ps.n - 2);
    free(diffs);
    free(scales);
    st_close(ref);
    assert_int_equal(tc_scope_end(s), TC_OK);
    mp_params_free(&ps);
    tf_remove_tree(dir);
}
