/* The comparison side of test_models (models_test.h): parameters and inputs out to a python3-torch
 * reference as safetensors, its outputs and gradients back, and the normalised error checks. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/models/models_test.h"

#define CPU ((tc_device){TC_CPU, 0})

void tm_perturb(mp_params *ps, uint64_t seed, double std) {
    tc_generator *g = tc_generator_new(seed, CPU);
    tc_scope *s = tc_scope_begin();
    int was = tc_grad_enabled_set(0);
    for (int i = 0; i < ps->n; i++) {
        tc_tensor *p = ps->v[i].t;
        int64_t shape[TC_MAX_DIMS];
        for (int d = 0; d < tc_ndim(p); d++) shape[d] = tc_size(p, d);
        assert_int_equal(tc_copy_(p, tc_add(p, tc_randn(shape, tc_ndim(p), 0.0, std, g))), TC_OK);
    }
    tc_grad_enabled_set(was);
    assert_int_equal(tc_scope_end(s), TC_OK);
    tc_generator_free(g);
}

st_tensor tm_st_of(const char *name, tc_tensor *t) {
    assert_non_null(t);
    st_dtype d;
    switch (tc_dtype_of(t)) {
    case TC_F32: d = ST_F32; break;
    case TC_I64: d = ST_I64; break;
    case TC_U8: d = ST_U8; break;
    case TC_I16: d = ST_I16; break;
    default: fail_msg("%s: dtype not exchanged with the reference", name); return (st_tensor){0};
    }
    st_tensor s = {name, d, tc_ndim(t), {0}, tc_data_ptr(t), (size_t)tc_numel(t) * tc_dtype_size(tc_dtype_of(t))};
    for (int i = 0; i < s.ndim; i++) s.shape[i] = tc_size(t, i);
    assert_non_null(s.data);
    return s;
}

void tm_diff(tc_tensor *got, const st_tensor *ref, double *diff, double *scale) {
    assert_non_null(got);
    assert_non_null(ref);
    assert_int_equal(ref->dtype, ST_F32);
    assert_int_equal(tc_ndim(got), ref->ndim);
    for (int d = 0; d < ref->ndim; d++) assert_int_equal(tc_size(got, d), ref->shape[d]);
    tc_scope *s = tc_scope_begin();
    float *a = tm_host_f32(tc_contiguous(got));
    tc_scope_end(s);
    const float *b = ref->data;
    *diff = *scale = 0;
    for (int64_t i = 0; i < tc_numel(got); i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= *diff)) *diff = d;
        if (fabs((double)b[i]) > *scale) *scale = fabs((double)b[i]);
    }
    free(a);
}

void tm_ref_run(tm_ref *r, const char *script, const char *mode, const mp_params *ps, const char *const *names,
                tc_tensor *const *extra, int n_extra, const char *const *meta, int n_meta) {
    char in_path[128], out_path[128], args[512], err[512] = "";
    assert_int_equal(tf_make_temp_dir(r->dir, "test_models"), 0);
    snprintf(in_path, sizeof in_path, "%s/in.safetensors", r->dir);
    snprintf(out_path, sizeof out_path, "%s/out.safetensors", r->dir);
    int n_params = ps ? ps->n : 0;
    st_tensor *ts = calloc((size_t)(n_params + n_extra) + 1, sizeof *ts);
    tc_scope *s = tc_scope_begin();
    for (int i = 0; i < n_params; i++) ts[i] = tm_st_of(ps->v[i].name, tc_contiguous(ps->v[i].t));
    for (int i = 0; i < n_extra; i++) ts[n_params + i] = tm_st_of(names[i], tc_contiguous(extra[i]));
    assert_int_equal(st_write(in_path, ts, (size_t)(n_params + n_extra), meta, (size_t)n_meta, err, sizeof err), 0);
    assert_int_equal(tc_scope_end(s), TC_OK);
    free(ts);
    snprintf(args, sizeof args, "%s %s %s", mode, in_path, out_path);
    char *out = tm_run_script(script, args);
    assert_non_null(out);
    free(out);
    assert_int_equal(st_open(out_path, &r->out, err, sizeof err), 0);
}

void tm_ref_close(tm_ref *r) {
    st_close(r->out);
    r->out = NULL;
    tf_remove_tree(r->dir);
}

double tm_check(const char *label, tc_tensor *got, const tm_ref *r, const char *name, double tol) {
    const st_tensor *ref = st_find(r->out, name);
    if (!ref) fail_msg("%s: the reference wrote no '%s'", label, name);
    double diff, scale;
    tm_diff(got, ref, &diff, &scale);
    double e = scale > 0 ? diff / scale : diff;
    printf("%s: %-14s max err %.3g (normalised by max |ref| %.3g)\n", label, name, e, scale);
    if (!(e <= tol)) fail_msg("%s: %s: error %.3g above %.1g", label, name, e, tol);
    return e;
}

static int zero_grad_name(const char *name, const char *const *parts) {
    for (int i = 0; parts && parts[i]; i++)
        if (strstr(name, parts[i])) return 1;
    return 0;
}

double tm_check_grads(const char *label, const mp_params *ps, const tm_ref *r, double tol,
                      const char *const *zero_grad_parts) {
    double *diffs = calloc((size_t)ps->n + 1, sizeof *diffs), *scales = calloc((size_t)ps->n + 1, sizeof *scales);
    double model_scale = 0, worst = 0;
    int compared = 0;
    const char *worst_name = "";
    tc_scope *s = tc_scope_begin();
    for (int i = 0; i < ps->n; i++) {
        char name[300];
        snprintf(name, sizeof name, "grad.%s", ps->v[i].name);
        const st_tensor *ref = st_find(r->out, name);
        tc_tensor *g = tc_requires_grad(ps->v[i].t) ? tc_grad(ps->v[i].t) : NULL;
        if (!g) {
            /* No gradient here: the reference must agree (absent, or all zeros). */
            if (ref) {
                const float *v = ref->data;
                for (size_t k = 0; k < ref->nbytes / sizeof(float); k++)
                    if (v[k] != 0.0f) fail_msg("%s: %s has a gradient in the reference only", label, ps->v[i].name);
            }
            diffs[i] = scales[i] = -1;
            continue;
        }
        if (!ref) fail_msg("%s: the reference wrote no %s", label, name);
        tm_diff(g, ref, &diffs[i], &scales[i]);
        if (scales[i] > model_scale) model_scale = scales[i];
    }
    for (int i = 0; i < ps->n; i++) {
        if (scales[i] < 0) continue;
        int noise = zero_grad_name(ps->v[i].name, zero_grad_parts);
        double denom = noise ? model_scale : scales[i];
        double e = denom > 0 ? diffs[i] / denom : diffs[i];
        compared++;
        if (!noise && e > worst) {
            worst = e;
            worst_name = ps->v[i].name;
        }
        if (!(e <= tol)) fail_msg("%s: grad of %s: max err %.3g (max |ref| %.3g)", label, ps->v[i].name, e, scales[i]);
    }
    printf("%s: grads max err %.3g over %d parameters (each normalised by its max |ref|; worst %s)\n", label, worst,
           compared, worst_name);
    tc_scope_end(s);
    free(diffs);
    free(scales);
    return worst;
}
