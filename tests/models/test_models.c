/* test_models: the model library's parts, one cmocka group per cases file (see models_test.h);
 * parameter lists and the shared reference harness are here. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "models/params.h"
#include "tests/models/models_test.h"

char *tm_run_script(const char *script, const char *args) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s/%s %s", EMPD_PYTHON, TM_REF_DIR, script, args);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    char buf[4096];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, p)) > 0) fwrite(buf, 1, got, out);
    fclose(out);
    int rc = pclose(p);
    if (rc != 0) {
        fprintf(stderr, "reference failed (%d): %s\n", rc, cmd);
        free(text);
        return NULL;
    }
    return text;
}

char *tm_run_reference(const char *args) { return tm_run_script("ref_models.py", args); }

float *tm_host_f32(const tc_tensor *t) {
    size_t n = (size_t)tc_numel(t);
    float *buf = malloc((n ? n : 1) * sizeof *buf);
    assert_int_equal(tc_dtype_of(t), TC_F32);
    assert_int_equal(tc_copy_to_host(t, buf, n * sizeof *buf), TC_OK);
    return buf;
}

static void make(mp_params *ps, uint64_t seed) {
    assert_int_equal(mp_params_init(ps, seed), TC_OK);
    assert_non_null(mp_normal(ps, "a.weight", (const int64_t[]){5, 4}, 2, 0.02));
    assert_non_null(mp_uniform(ps, "a.bias", (const int64_t[]){6}, 1, 0.5));
    assert_non_null(mp_constant(ps, "ln.weight", (const int64_t[]){3}, 1, 1.25));
    assert_non_null(mp_normal(ps, "b.weight", (const int64_t[]){2, 3, 2}, 3, 1.0));
    assert_int_equal(ps->status, TC_OK);
}

static int same_values(const tc_tensor *a, const tc_tensor *b) {
    float *x = tm_host_f32(a), *y = tm_host_f32(b);
    int same = tc_numel(a) == tc_numel(b) && memcmp(x, y, (size_t)tc_numel(a) * sizeof *x) == 0;
    free(x);
    free(y);
    return same;
}

static void test_params_seeded(void **state) {
    (void)state;
    mp_params a, b, c;
    make(&a, 7);
    make(&b, 7);
    make(&c, 8);
    for (int i = 0; i < a.n; i++) assert_true(same_values(a.v[i].t, b.v[i].t));
    assert_false(same_values(a.v[0].t, c.v[0].t));
    assert_false(same_values(a.v[1].t, c.v[1].t));
    assert_false(same_values(a.v[3].t, c.v[3].t));
    assert_true(same_values(a.v[2].t, c.v[2].t));

    /* The initialisers draw what they say: bounds, constants, a spread near std. */
    float *u = tm_host_f32(a.v[1].t), *k = tm_host_f32(a.v[2].t), *nrm = tm_host_f32(a.v[3].t);
    for (int i = 0; i < 6; i++) assert_true(u[i] >= -0.5f && u[i] <= 0.5f);
    for (int i = 0; i < 3; i++) assert_true(k[i] == 1.25f);
    double ss = 0;
    for (int i = 0; i < 12; i++) ss += (double)nrm[i] * nrm[i];
    assert_true(ss / 12 > 0.1 && ss / 12 < 4);
    free(u);
    free(k);
    free(nrm);
    for (int i = 0; i < a.n; i++) assert_int_equal(tc_requires_grad(a.v[i].t), 1);
    mp_params_free(&a);
    mp_params_free(&b);
    mp_params_free(&c);
}

static void test_params_order_and_numel(void **state) {
    (void)state;
    mp_params ps;
    make(&ps, 1);
    static const char *names[] = {"a.weight", "a.bias", "ln.weight", "b.weight"};
    assert_int_equal(ps.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_string_equal(ps.v[i].name, names[i]);
        assert_ptr_equal(mp_find(&ps, names[i]), &ps.v[i]);
    }
    assert_null(mp_find(&ps, "a"));
    assert_int_equal(mp_numel(&ps), 20 + 6 + 3 + 12);
    /* Past the initial capacity the list keeps growing in order. */
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "extra.%d", i);
        assert_non_null(mp_constant(&ps, name, (const int64_t[]){2}, 1, i));
    }
    assert_int_equal(ps.n, 104);
    assert_string_equal(ps.v[103].name, "extra.99");
    assert_int_equal(mp_numel(&ps), 41 + 200);
    mp_params_free(&ps);
    assert_int_equal(ps.n, 0);

    mp_params empty;
    assert_int_equal(mp_params_init(&empty, 3), TC_OK);
    assert_int_equal(mp_numel(&empty), 0);
    mp_params_free(&empty);
}

static void test_params_error_sticks(void **state) {
    (void)state;
    mp_params ps;
    make(&ps, 2);
    assert_null(mp_normal(&ps, "bad", (const int64_t[]){-3, 2}, 2, 1.0));
    assert_int_not_equal(ps.status, TC_OK);
    printf("%s\n", tc_last_error());
    assert_null(mp_constant(&ps, "after", (const int64_t[]){2}, 1, 0.0));
    assert_int_equal(ps.n, 4);
    mp_params_free(&ps);
}

static void test_params_buffers_and_freezing(void **state) {
    (void)state;
    mp_params ps;
    make(&ps, 4);
    assert_non_null(mp_buffer(&ps, "bn.running_var", (const int64_t[]){3}, 1, 1.0));
    assert_int_equal(ps.n, 5);
    assert_true(ps.v[4].buffer);
    assert_false(mp_trainable(&ps.v[4]));
    assert_int_equal(tc_requires_grad(ps.v[4].t), 0);
    /* Freezing by prefix touches the matching parameters only, never a buffer. */
    assert_int_equal(mp_set_trainable(&ps, "a.", 0), 2);
    assert_false(mp_trainable(&ps.v[0]));
    assert_false(mp_trainable(&ps.v[1]));
    assert_true(mp_trainable(&ps.v[2]));
    assert_int_equal(mp_set_trainable(&ps, "", 1), 4);
    assert_true(mp_trainable(&ps.v[0]));
    assert_false(mp_trainable(&ps.v[4]));
    mp_params_free(&ps);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_seeded),
        cmocka_unit_test(test_params_order_and_numel),
        cmocka_unit_test(test_params_error_sticks),
        cmocka_unit_test(test_params_buffers_and_freezing),
    };
    int failed = cmocka_run_group_tests_name("params", tests, NULL, NULL);
    failed += tm_safetensors_tests();
    failed += tm_layers_tests();
    failed += tm_bert_tests();
    failed += tm_import_tests();
    failed += tm_wav2vec2_tests();
    failed += tm_video_tests();
    failed += tm_text_model_tests();
    failed += tm_fusion_tests();
    return failed;
}
