/* Every op of torch_c.h against python3-torch: forward, and the gradient of sum(out * w) with
 * respect to every float input. Case names match ref_torch_c.py. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "tests/torch_c/torch_c_test.h"

#define CPU ((tc_device){TC_CPU, 0})
#define SHAPE(...)                                                                                 \
    ((const int64_t[]){__VA_ARGS__}),                                                              \
        (int)(sizeof((const int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
#define OP(name, expr)                                                                             \
    static tc_tensor *op_##name(tc_tensor **in) {                                                  \
        (void)in;                                                                                  \
        return expr;                                                                               \
    }

OP(zeros, tc_zeros(SHAPE(2, 3), TC_F32, CPU))
OP(ones_i64, tc_ones(SHAPE(4), TC_I64, CPU))
OP(full, tc_full(SHAPE(3, 2), -2.5, TC_F32, CPU))
OP(arange_i64, tc_arange(7, TC_I64, CPU))
OP(arange_f32, tc_arange(5, TC_F32, CPU))

static tc_tensor *op_rand_uniform(tc_tensor **in) {
    (void)in;
    tc_generator *g = tc_generator_new(42, CPU);
    tc_tensor *t = tc_rand_uniform(SHAPE(5, 7), -2, 3, g);
    tc_generator_free(g);
    return t;
}

static tc_tensor *op_randn(tc_tensor **in) {
    (void)in;
    tc_generator *g = tc_generator_new(43, CPU);
    tc_tensor *t = tc_randn(SHAPE(40, 3), 1.5, 0.5, g);
    tc_generator_free(g);
    return t;
}

#define DTYPE_OPS(name, dtype)                                                                     \
    OP(to_##name, tc_to_dtype(in[0], dtype))                                                       \
    OP(from_##name, tc_to_dtype(in[0], TC_F32))
DTYPE_OPS(bf16, TC_BF16)
DTYPE_OPS(f16, TC_F16)
DTYPE_OPS(i64, TC_I64)
DTYPE_OPS(i32, TC_I32)
DTYPE_OPS(i16, TC_I16)
DTYPE_OPS(u8, TC_U8)
DTYPE_OPS(bool, TC_BOOL)

OP(reshape, tc_reshape(in[0], SHAPE(4, 6)))
OP(permute, tc_permute(in[0], SHAPE(2, 0, 1)))
OP(transpose, tc_transpose(in[0], 0, 2))
OP(slice, tc_slice(in[0], 2, 1, 4, 2))
OP(select, tc_select(in[0], 1, 2))
OP(narrow, tc_narrow(in[0], 2, 1, 2))
OP(cat, tc_cat(in, 3, 1))
OP(stack, tc_stack(in, 2, 1))
OP(expand, tc_expand(in[0], SHAPE(2, 3, 4)))
OP(unsqueeze, tc_unsqueeze(in[0], 1))
OP(squeeze, tc_squeeze(in[0], 1))
OP(gather, tc_gather(in[0], 2, in[1]))
OP(index_select, tc_index_select(in[0], 1, in[1]))
OP(index_copy, tc_index_copy(in[0], 0, in[1], in[2]))
OP(contiguous, tc_contiguous(tc_transpose(in[0], 1, 2)))
OP(clone, tc_clone(in[0]))
OP(detach, tc_detach(in[0]))

OP(add, tc_add(in[0], in[1]))
OP(sub, tc_sub(in[0], in[1]))
OP(mul, tc_mul(in[0], in[1]))
OP(div, tc_div(in[0], in[1]))
OP(add_scalar, tc_add_scalar(in[0], 0.75))
OP(mul_scalar, tc_mul_scalar(in[0], -1.5))
OP(neg, tc_neg(in[0]))
OP(exp, tc_exp(in[0]))
OP(log, tc_log(in[0]))
OP(sqrt, tc_sqrt(in[0]))
OP(rsqrt, tc_rsqrt(in[0]))
OP(pow, tc_pow(in[0], 2.5))
OP(pow2, tc_pow(in[0], 2.0))
OP(tanh, tc_tanh(in[0]))
OP(sigmoid, tc_sigmoid(in[0]))
OP(relu, tc_relu(in[0]))
OP(abs, tc_abs(in[0]))
OP(gelu_transposed, tc_transpose(tc_gelu(in[0], TC_GELU_EXACT), 1, 2))
OP(gelu_exact, tc_gelu(in[0], TC_GELU_EXACT))
OP(gelu_tanh, tc_gelu(in[0], TC_GELU_TANH))
OP(clamp, tc_clamp(in[0], -0.5, 0.7))
OP(masked_fill, tc_masked_fill(in[0], in[1], -1e4))
OP(masked_fill_u8, tc_masked_fill(in[0], in[1], 2.0))
OP(where, tc_where(in[0], in[1], in[2]))
OP(eq, tc_eq(in[0], in[1]))
OP(gt_scalar, tc_gt_scalar(in[0], 0.1))
OP(lt_scalar, tc_lt_scalar(in[0], 0.1))

OP(sum, tc_sum(in[0], 1, 1))
OP(sum_neg, tc_sum(in[0], -1, 0))
OP(sum_all, tc_sum_all(in[0]))
OP(mean, tc_mean(in[0], 2, 0))
OP(mean_all, tc_mean_all(in[0]))
OP(max, tc_max(in[0], 1, 0))
OP(argmax, tc_argmax(in[0], 2, 1))
OP(var, tc_var(in[0], 1, 1, 0))
OP(var_biased, tc_var(in[0], 2, 0, 1))

OP(matmul, tc_matmul(in[0], in[1]))
OP(matmul_batched, tc_matmul(in[0], in[1]))
OP(bmm, tc_bmm(in[0], in[1]))
OP(linear, tc_linear(in[0], in[1], in[2]))
OP(linear_nobias, tc_linear(in[0], in[1], NULL))
OP(softmax, tc_softmax(in[0], -1))
OP(log_softmax, tc_log_softmax(in[0], 1))
OP(layer_norm, tc_layer_norm(in[0], in[1], in[2], 1e-12))
OP(layer_norm_noaffine, tc_layer_norm(in[0], NULL, NULL, 1e-5))
OP(group_norm, tc_group_norm(in[0], 3, in[1], in[2], 1e-5))
OP(batch_norm_train, tc_batch_norm(in[0], in[1], in[2], in[3], in[4], 1, 0.1, 1e-5))
OP(batch_norm_eval, tc_batch_norm(in[0], in[1], in[2], in[3], in[4], 0, 0.1, 1e-5))
OP(embedding, tc_embedding(in[0], in[1]))
OP(weight_norm, tc_weight_norm(in[0], in[1], 2))
OP(conv1d, tc_conv1d(in[0], in[1], in[2], 2, 1, 2, 2))
OP(conv1d_nobias, tc_conv1d(in[0], in[1], NULL, 1, 0, 1, 1))
OP(conv2d, tc_conv2d(in[0], in[1], in[2], (const int64_t[]){2, 1}, (const int64_t[]){1, 0}))
OP(conv3d, tc_conv3d(in[0], in[1], in[2], (const int64_t[]){2, 1, 2}, (const int64_t[]){0, 1, 1}))
OP(dropout_p0, tc_dropout(in[0], 0.0, 1, NULL))
OP(dropout_eval, tc_dropout(in[0], 0.3, 0, NULL))

/* python: torch.manual_seed(77); F.dropout(x, 0.3, True) -- the same stream as a generator
 * seeded 77. */
static tc_tensor *op_dropout_gen(tc_tensor **in) {
    tc_generator *g = tc_generator_new(77, CPU);
    tc_tensor *t = tc_dropout(in[0], 0.3, 1, g);
    tc_generator_free(g);
    return t;
}

static tc_tensor *op_dropout_default_gen(tc_tensor **in) {
    tc_manual_seed(78);
    return tc_dropout(in[0], 0.3, 1, NULL);
}

OP(cross_entropy, tc_cross_entropy(in[0], in[1], NULL))
OP(cross_entropy_w, tc_cross_entropy(in[0], in[1], in[2]))
OP(nll_loss, tc_nll_loss(in[0], in[1], NULL))
OP(nll_loss_w, tc_nll_loss(in[0], in[1], in[2]))
OP(lstm_packed, tc_lstm(in[0], tc_data_ptr(in[1]), in + 2, 2, 1, 3, 0.0, 1))
OP(lstm_full, tc_lstm(in[0], NULL, in + 1, 1, 0, 3, 0.0, 1))

#define CASE(name)                                                                                 \
    { #name, op_##name, 0 }
const op_case op_cases[] = {
    CASE(zeros), CASE(ones_i64), CASE(full), CASE(arange_i64), CASE(arange_f32), CASE(rand_uniform),
    CASE(randn), CASE(to_bf16), CASE(from_bf16), CASE(to_f16), CASE(from_f16), CASE(to_i64),
    CASE(from_i64), CASE(to_i32), CASE(from_i32), CASE(to_i16), CASE(from_i16), CASE(to_u8),
    CASE(from_u8), CASE(to_bool), CASE(from_bool), CASE(reshape), CASE(permute), CASE(transpose),
    CASE(slice), CASE(select), CASE(narrow), CASE(cat), CASE(stack), CASE(expand), CASE(unsqueeze),
    CASE(squeeze), CASE(gather), CASE(index_select), CASE(index_copy), CASE(contiguous), CASE(clone), CASE(detach),
    CASE(add), CASE(sub), CASE(mul), CASE(div), CASE(add_scalar), CASE(mul_scalar), CASE(neg),
    CASE(exp), CASE(log), CASE(sqrt), CASE(rsqrt), CASE(pow), CASE(pow2), CASE(tanh), CASE(sigmoid),
    CASE(relu), CASE(abs), CASE(gelu_exact), CASE(gelu_tanh), CASE(gelu_transposed), CASE(clamp), CASE(masked_fill),
    CASE(masked_fill_u8), CASE(where), CASE(eq), CASE(gt_scalar), CASE(lt_scalar), CASE(sum), CASE(sum_neg),
    CASE(sum_all), CASE(mean), CASE(mean_all), CASE(max), CASE(argmax), CASE(var), CASE(var_biased),
    CASE(matmul), CASE(matmul_batched), CASE(bmm), CASE(linear), CASE(linear_nobias), CASE(softmax),
    CASE(log_softmax), CASE(layer_norm), CASE(layer_norm_noaffine), CASE(group_norm),
    CASE(batch_norm_train), CASE(batch_norm_eval), CASE(embedding), CASE(weight_norm), CASE(conv1d),
    CASE(conv1d_nobias), CASE(conv2d), CASE(conv3d), CASE(dropout_p0), CASE(dropout_eval),
    {"dropout_gen", op_dropout_gen, 1}, {"dropout_default_gen", op_dropout_default_gen, 1},
    CASE(cross_entropy), CASE(cross_entropy_w), CASE(nll_loss), CASE(nll_loss_w),
    {"lstm_packed", op_lstm_packed, 1}, CASE(lstm_full),
};
const size_t op_case_count = sizeof op_cases / sizeof op_cases[0];

#define MAX_INPUTS 24

static tc_tensor *ref_key(const char *name, const char *what, int k) {
    char key[96];
    snprintf(key, sizeof key, k < 0 ? "%s/%s" : "%s/%s%d", name, what, k);
    return ref_has(key) ? ref_tensor(key) : NULL;
}

static int has_key(const char *name, const char *what, int k) {
    char key[96];
    snprintf(key, sizeof key, "%s/%s%d", name, what, k);
    return ref_has(key);
}

/* Where want is exactly zero, got must be exactly zero (padding, dropped positions). */
static int zeros_kept(tc_tensor *got, tc_tensor *want) {
    tc_tensor *ref_zero = tc_eq(want, tc_zeros(NULL, 0, tc_dtype_of(want), CPU));
    tc_tensor *ours_nonzero = tc_gt_scalar(tc_mul(got, got), 0);
    return tc_item(tc_sum_all(tc_mul(ref_zero, ours_nonzero))) == 0;
}

void test_op_case(void **state) {
    const op_case *c = *state;
    tc_scope *s = tc_scope_begin();
    tc_tensor *in[MAX_INPUTS];
    int n = 0;
    while (n < MAX_INPUTS && (in[n] = ref_key(c->name, "in", n))) {
        if (has_key(c->name, "grad", n)) assert_int_equal(tc_set_requires_grad(in[n], 1), TC_OK);
        n++;
    }
    char out_key[96];
    snprintf(out_key, sizeof out_key, "%s/out", c->name);
    assert_true(ref_has(out_key));
    tc_tensor *out = c->fn(in);
    if (!out) fail_msg("%s: %s", c->name, tc_last_error());
    tc_tensor *want = ref_tensor(out_key);
    assert_int_equal(tc_dtype_of(out), ref_dtype(out_key));
    double fwd = rel_err(out, want), bwd = 0;
    tc_tensor *w = ref_key(c->name, "w", -1);
    assert_int_equal(tc_requires_grad(out), w != NULL);
    if (w) {
        assert_int_equal(tc_backward(tc_sum_all(tc_mul(out, w))), TC_OK);
        for (int k = 0; k < n; k++) {
            tc_tensor *g = ref_key(c->name, "grad", k);
            if (!g) continue;
            double e = rel_err(tc_grad(in[k]), g);
            if (!(e <= bwd)) bwd = e;
        }
    }
    for (int k = 0; k < n; k++) {
        tc_tensor *post = ref_key(c->name, "post", k);
        if (!post) continue;
        double e = rel_err(in[k], post);
        if (!(e <= fwd)) fwd = e;
    }
    printf("op %-20s fwd_max_rel=%.3g bwd_max_rel=%.3g\n", c->name, fwd, bwd);
    if (c->exact_zeros) assert_true(zeros_kept(out, want));
    assert_true(fwd <= TC_TEST_FP32_TOL);
    assert_true(bwd <= TC_TEST_FP32_TOL);
    assert_int_equal(tc_scope_end(s), TC_OK);
}
