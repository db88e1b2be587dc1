/* test_torch_c: the C binding of libtorch against python3-torch (op cases in op_cases.c), plus
 * scopes and errors, host memory, autograd hooks, AdamW, generators, threads and devices. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/torch_c/torch_c_test.h"

#define CPU ((tc_device){TC_CPU, 0})

static int group_setup(void **state) {
    (void)state;
    if (ref_open()) return -1;
    /* Every python case has a C case (each C case checks its own reference exists). */
    size_t n = ref_count_suffix("/out");
    if (n != op_case_count) {
        fprintf(stderr, "reference has %zu op cases, the test %zu\n", n, op_case_count);
        return -1;
    }
    return 0;
}

static int group_teardown(void **state) {
    (void)state;
    ref_close();
    return 0;
}

static tc_tensor *vec(const float *v, int64_t n) { return tc_from_data(v, &n, 1, TC_F32); }

static void test_scope_error_chain(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    const int64_t sa[] = {2, 3}, sb[] = {4, 5};
    tc_tensor *a = tc_ones(sa, 2, TC_F32, CPU), *b = tc_ones(sb, 2, TC_F32, CPU);
    assert_null(tc_matmul(a, b));
    assert_int_equal(tc_scope_status(s), TC_ETORCH);
    const char *msg = tc_last_error();
    printf("error message: %s\n", msg);
    assert_non_null(strstr(msg, "tc_matmul"));
    assert_non_null(strstr(msg, "2x3"));
    assert_non_null(strstr(msg, "4x5"));
    assert_null(strchr(msg, '\n'));
    /* Valid inputs, but the scope already failed: nothing runs, the first error stays. */
    assert_null(tc_add(a, a));
    assert_null(tc_mul_scalar(NULL, 2));
    assert_string_equal(tc_last_error(), msg);
    assert_int_equal(tc_scope_end(s), TC_ETORCH);

    s = tc_scope_begin();
    assert_null(tc_exp(NULL));
    assert_int_equal(tc_scope_status(s), TC_EINVAL);
    tc_scope_clear_error(s);
    assert_non_null(tc_exp(tc_ones(sa, 2, TC_F32, CPU)));
    assert_null(tc_reshape(tc_ones(sa, 2, TC_F32, CPU), sa, 9));
    assert_int_equal(tc_scope_status(s), TC_EINVAL);
    assert_int_equal(tc_scope_end(s), TC_EINVAL);

    /* A failure of the caller's own: recorded like an op's, and the first error stays first. */
    s = tc_scope_begin();
    assert_null(tc_scope_fail(TC_ENOMEM, "model: %d bytes of host memory", 64));
    assert_int_equal(tc_scope_status(s), TC_ENOMEM);
    assert_string_equal(tc_last_error(), "model: 64 bytes of host memory");
    assert_null(tc_exp(tc_ones(sa, 2, TC_F32, CPU)));
    assert_null(tc_scope_fail(TC_EINVAL, "later"));
    assert_string_equal(tc_last_error(), "model: 64 bytes of host memory");
    assert_int_equal(tc_scope_end(s), TC_ENOMEM);

    /* No scope entered at all. */
    assert_null(tc_ones(sa, 2, TC_F32, CPU));
    assert_non_null(strstr(tc_last_error(), "no scope"));
}

static void test_scope_keep_and_modules(void **state) {
    (void)state;
    const float v[] = {1, 2, 3};
    tc_scope *module = tc_scope_new();
    assert_int_equal(tc_scope_enter(module), TC_OK);
    tc_tensor *p = vec(v, 3);
    assert_int_equal(tc_scope_enter(module), TC_ESTATE);
    assert_int_equal(tc_scope_leave(module), TC_OK);

    tc_scope *outer = tc_scope_begin();
    tc_scope *inner = tc_scope_begin();
    assert_int_equal(tc_scope_leave(outer), TC_ESTATE);
    assert_int_equal(tc_scope_end(outer), TC_ESTATE);
    tc_tensor *y = tc_keep(tc_mul_scalar(p, 2));
    assert_int_equal(tc_scope_end(inner), TC_OK);
    assert_ptr_equal(tc_keep(p), p); /* from a scope not on the stack into the top one */
    assert_true(tc_item(tc_sum_all(y)) == 12.0);
    assert_true(tc_item(tc_sum_all(p)) == 6.0);
    assert_ptr_equal(tc_move_to(p, module), p);
    assert_int_equal(tc_scope_end(outer), TC_OK);

    tc_scope *bottom = tc_scope_begin();
    assert_null(tc_keep(tc_ones(NULL, 0, TC_F32, CPU)));
    assert_int_equal(tc_scope_end(bottom), TC_ESTATE);

    tc_scope *use = tc_scope_begin();
    assert_true(tc_item(tc_sum_all(p)) == 6.0);
    assert_int_equal(tc_scope_end(use), TC_OK);
    tc_scope_free(module);
}

static long rss_kb(void) {
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = -1;
    fclose(f);
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* n scopes of 5 tensors each. */
static void churn(int n) {
    const float v[16] = {1};
    const int64_t shape[] = {4, 4};
    for (int i = 0; i < n; i++) {
        tc_scope *s = tc_scope_begin();
        tc_tensor *t = tc_from_data(v, shape, 2, TC_F32);
        tc_gelu(tc_add(t, tc_mul_scalar(t, 0.5)), TC_GELU_TANH);
        tc_scope_end(s);
    }
}

static void test_scope_no_leak(void **state) {
    (void)state;
    churn(2000);
    long before = rss_kb();
    churn(20000);
    long after = rss_kb();
    printf("rss before=%ld KB, after 100k tensors in 20k scopes=%ld KB\n", before, after);
    assert_true(before > 0 && after - before < 4096);
}

static void test_host_memory(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    float host[6] = {1, 2, 3, 4, 5, 6};
    const int64_t shape[] = {2, 3};
    tc_tensor *blob = tc_from_blob(host, shape, 2, TC_F32);
    tc_tensor *copy = tc_from_data(host, shape, 2, TC_F32);
    assert_ptr_equal(tc_data_ptr(blob), host);
    host[0] = 100;
    assert_true(tc_item(tc_sum_all(blob)) == 120.0);
    assert_true(tc_item(tc_sum_all(copy)) == 21.0);
    assert_int_equal(tc_ndim(blob), 2);
    assert_int_equal(tc_size(blob, -1), 3);
    assert_int_equal(tc_size(blob, 2), -1);
    assert_int_equal(tc_numel(blob), 6);
    assert_int_equal(tc_ndim(NULL), -1);
    assert_int_equal(tc_dtype_size(TC_BF16), 2);
    assert_int_equal(tc_dtype_size(TC_I64), 8);
    assert_int_equal(tc_device_of(blob).type, TC_CPU);

    tc_tensor *tr = tc_transpose(copy, 0, 1);
    assert_null(tc_data_ptr(tr));
    float out[6];
    assert_int_equal(tc_copy_to_host(tr, out, sizeof out), TC_OK);
    assert_true(out[1] == 4 && out[2] == 2);
    assert_int_equal(tc_copy_to_host(tr, out, 5 * sizeof(float)), TC_EINVAL);
    assert_non_null(strstr(tc_last_error(), "tc_copy_to_host"));

    uint16_t half[6];
    assert_int_equal(tc_copy_to_host(tc_to_dtype(copy, TC_BF16), half, sizeof half), TC_OK);
    assert_int_equal(half[1], 0x4000); /* 2.0 in bf16 */

    assert_int_equal(tc_copy_(blob, tr), TC_EINVAL);
    assert_int_equal(tc_copy_(blob, tc_mul_scalar(copy, 2)), TC_OK);
    assert_true(host[5] == 12);
    assert_true(tc_item(tc_select(tc_select(copy, 0, 1), 0, 2)) == 6.0);
    assert_true(isnan(tc_item(copy)));

    const int64_t es[] = {3, 0};
    tc_tensor *e = tc_empty(es, 2, TC_I32, CPU);
    assert_int_equal(tc_numel(e), 0);
    assert_int_equal(tc_dtype_of(e), TC_I32);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

typedef struct {
    int calls;
    int order[4];
    float seen[3];
    float *grad_ptr;
} hook_log;

static void hook_copy_grad(void *user, tc_tensor *param) {
    hook_log *log = user;
    log->order[log->calls++] = 1;
    if (log->grad_ptr) {
        memcpy(log->seen, log->grad_ptr, sizeof log->seen);
    } else {
        tc_tensor *g = tc_grad(param);
        if (g) tc_copy_to_host(g, log->seen, sizeof log->seen);
    }
}

static void hook_second(void *user, tc_tensor *param) {
    (void)param;
    hook_log *log = user;
    log->order[log->calls++] = 2;
}

/* loss = sum(p * x) + sum(p * p): p is used three times; d loss / dp = x + 2p. */
static tc_tensor *hook_loss(tc_tensor *p, tc_tensor *x) {
    return tc_add(tc_sum_all(tc_mul(p, x)), tc_sum_all(tc_mul(p, p)));
}

static void test_grad_ready_hook(void **state) {
    (void)state;
    const float pv[] = {1, -2, 0.5f}, xv[] = {3, 4, 5};
    tc_scope *s = tc_scope_begin();
    tc_tensor *p = vec(pv, 3), *x = vec(xv, 3);
    assert_int_equal(tc_set_requires_grad(p, 1), TC_OK);
    assert_int_equal(tc_grad_ready_hook(x, hook_copy_grad, NULL), TC_EINVAL);
    assert_int_equal(tc_grad_ready_hook(tc_mul_scalar(p, 2), hook_copy_grad, NULL), TC_EINVAL);
    hook_log log = {0};
    assert_int_equal(tc_grad_ready_hook(p, hook_copy_grad, &log), TC_OK);
    assert_int_equal(tc_grad_ready_hook(p, hook_second, &log), TC_OK);

    assert_null(tc_grad(p));
    assert_int_equal(tc_scope_status(s), TC_OK);
    assert_int_equal(tc_backward(hook_loss(p, x)), TC_OK);
    assert_int_equal(log.calls, 2);
    assert_true(log.order[0] == 1 && log.order[1] == 2);
    float final[3];
    assert_int_equal(tc_copy_to_host(tc_grad(p), final, sizeof final), TC_OK);
    for (int i = 0; i < 3; i++) {
        assert_true(final[i] == xv[i] + 2 * pv[i]);
        assert_true(log.seen[i] == final[i]);
    }

    /* Zeroed once, the gradient keeps its memory across backwards; the hook sees it complete. */
    assert_int_equal(tc_zero_grad(p), TC_OK);
    float *gp = tc_data_ptr(tc_grad(p));
    assert_non_null(gp);
    assert_true(gp[0] == 0 && gp[2] == 0);
    log = (hook_log){.grad_ptr = gp};
    for (int step = 1; step <= 2; step++) {
        assert_int_equal(tc_backward(hook_loss(p, x)), TC_OK);
        assert_int_equal(log.calls, 2 * step);
        assert_ptr_equal(tc_data_ptr(tc_grad(p)), gp);
        for (int i = 0; i < 3; i++) assert_true(log.seen[i] == step * (xv[i] + 2 * pv[i]));
    }
    assert_int_equal(tc_zero_grad(p), TC_OK);
    assert_ptr_equal(tc_data_ptr(tc_grad(p)), gp);
    assert_true(gp[1] == 0);

    assert_int_equal(tc_grad_enabled_set(0), 1);
    assert_int_equal(tc_requires_grad(tc_mul(p, x)), 0);
    assert_int_equal(tc_grad_enabled_set(1), 0);
    assert_int_equal(tc_requires_grad(tc_mul(p, x)), 1);
    assert_int_equal(tc_requires_grad(tc_detach(p)), 0);
    assert_int_equal(tc_backward(tc_mul(p, x)), TC_ETORCH); /* not a scalar */
    assert_int_equal(tc_set_requires_grad(tc_arange(3, TC_I64, CPU), 1), TC_ETORCH);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static double max_rel(tc_tensor *got, tc_tensor *want, double worst) {
    double e = rel_err(got, want);
    return e <= worst ? worst : e;
}

static void test_adamw(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *p = ref_tensor("adamw/p0");
    assert_non_null(p);
    tc_tensor *m = tc_zeros((const int64_t[]){64, 33}, 2, TC_F32, CPU);
    tc_tensor *v = tc_zeros((const int64_t[]){64, 33}, 2, TC_F32, CPU);
    for (int k = 1; k <= 5; k++) {
        char key[32];
        snprintf(key, sizeof key, "adamw/g%d", k);
        assert_int_equal(tc_adamw_step(p, ref_tensor(key), m, v, k, 1e-2, 0.9, 0.999, 1e-8, 0.1),
                         TC_OK);
    }
    double ep = max_rel(p, ref_tensor("adamw/p"), 0), em = max_rel(m, ref_tensor("adamw/m"), 0);
    double ev = max_rel(v, ref_tensor("adamw/v"), 0);
    printf("op %-20s param_max_rel=%.3g exp_avg_max_rel=%.3g exp_avg_sq_max_rel=%.3g (5 steps)\n",
           "adamw", ep, em, ev);
    assert_true(ep <= 1e-6 && em <= 1e-6 && ev <= 1e-6);
    assert_int_equal(tc_adamw_step(p, m, m, v, 0, 1e-2, 0.9, 0.999, 1e-8, 0.1), TC_EINVAL);
    assert_int_equal(tc_scope_end(s), TC_OK);
}

static int same(tc_tensor *a, tc_tensor *b) {
    return tc_item(tc_sum_all(tc_eq(a, b))) == (double)tc_numel(a);
}

static void test_generator_state(void **state) {
    (void)state;
    tc_scope *s = tc_scope_begin();
    tc_generator *g = tc_generator_new(5, CPU);
    assert_non_null(g);
    size_t len = 0;
    assert_int_equal(tc_generator_get_state(g, NULL, &len), TC_OK);
    assert_true(len > 0);
    unsigned char *st = malloc(len);
    size_t small = len - 1;
    assert_int_equal(tc_generator_get_state(g, st, &small), TC_EINVAL);
    assert_int_equal(tc_generator_get_state(g, st, &len), TC_OK);

    const int64_t shape[] = {1000};
    tc_tensor *x = tc_ones(shape, 1, TC_F32, CPU);
    tc_tensor *a = tc_rand_uniform(shape, 1, 0, 1, g), *da = tc_dropout(x, 0.5, 1, g);
    assert_int_equal(tc_generator_set_state(g, st, len), TC_OK);
    tc_tensor *b = tc_rand_uniform(shape, 1, 0, 1, g), *db = tc_dropout(x, 0.5, 1, g);
    tc_tensor *c = tc_rand_uniform(shape, 1, 0, 1, g), *dc = tc_dropout(x, 0.5, 1, g);
    assert_true(same(a, b) && same(da, db));
    assert_false(same(a, c) || same(da, dc));
    assert_int_equal(tc_generator_set_state(g, st, len / 2), TC_ETORCH);
    free(st);
    tc_generator_free(g);

    /* Dropout statistics: drop rate p, kept values scaled by 1 / (1 - p). */
    g = tc_generator_new(11, CPU);
    const int64_t big[] = {200000};
    tc_tensor *y = tc_dropout(tc_ones(big, 1, TC_F32, CPU), 0.3, 1, g);
    double kept = tc_item(tc_sum_all(tc_gt_scalar(y, 0)));
    double drop_rate = 1 - kept / 200000, mean = tc_item(tc_mean_all(y));
    double kept_value = tc_item(tc_max(y, 0, 0));
    printf("dropout p=0.3: drop rate %.4f, mean %.4f, kept value %.7f\n", drop_rate, mean,
           kept_value);
    assert_true(fabs(drop_rate - 0.3) < 0.005 && fabs(mean - 1) < 0.01);
    assert_true(fabs(kept_value - 1 / 0.7) < 1e-6);
    assert_true(tc_item(tc_sum_all(tc_dropout(tc_ones(big, 1, TC_F32, CPU), 1.0, 1, g))) == 0);
    assert_null(tc_dropout(y, 1.5, 1, g)); /* p outside [0, 1]: the scope ends with TC_EINVAL */
    tc_generator_free(g);
    assert_int_equal(tc_scope_end(s), TC_EINVAL);
}

static void test_threads_and_devices(void **state) {
    (void)state;
    int before = tc_get_num_threads();
    assert_int_equal(tc_set_num_threads(2), TC_OK);
    assert_int_equal(tc_get_num_threads(), 2);
    assert_int_equal(tc_set_num_threads(0), TC_EINVAL);
    assert_int_equal(tc_set_num_threads(before), TC_OK);
    printf("libtorch %s, %d CUDA devices\n", tc_version(), tc_cuda_device_count());
    assert_true(tc_version()[0] >= '1' && tc_version()[0] <= '9');
    if (tc_cuda_device_count() > 0) skip();

    tc_scope *s = tc_scope_begin();
    tc_device cuda = {TC_CUDA, 0};
    assert_null(tc_to_device(tc_ones(NULL, 0, TC_F32, CPU), cuda));
    assert_int_equal(tc_scope_status(s), TC_ENODEV);
    printf("to CUDA: %s\n", tc_last_error());
    assert_non_null(strstr(tc_last_error(), "tc_to_device"));
    assert_int_equal(tc_scope_end(s), TC_ENODEV);
    s = tc_scope_begin();
    assert_null(tc_zeros(NULL, 0, TC_F32, cuda));
    assert_int_equal(tc_scope_end(s), TC_ENODEV);
    assert_null(tc_generator_new(1, cuda));
    assert_string_equal(tc_strerror(TC_ENODEV), "no such device");
}

int main(void) {
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_scope_error_chain), cmocka_unit_test(test_scope_keep_and_modules),
        cmocka_unit_test(test_scope_no_leak),     cmocka_unit_test(test_host_memory),
        cmocka_unit_test(test_grad_ready_hook),   cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_generator_state),   cmocka_unit_test(test_threads_and_devices),
    };
    size_t n_fixed = sizeof fixed / sizeof fixed[0], n = n_fixed + op_case_count;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    if (!tests) return 1;
    memcpy(tests, fixed, sizeof fixed);
    for (size_t i = 0; i < op_case_count; i++) {
        tests[n_fixed + i].name = op_cases[i].name;
        tests[n_fixed + i].test_func = test_op_case;
        tests[n_fixed + i].initial_state = (void *)&op_cases[i];
    }
    int failed = _cmocka_run_group_tests("torch_c", tests, n, group_setup, group_teardown);
    free(tests);
    return failed;
}
