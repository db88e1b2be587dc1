/* test_sampler.c: distributed sampler properties, and its epoch order against CPython. */
#include "test_dataset_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/sampler.h"

static void init_ok(ds_sampler *s, size_t n, int world, int rank, size_t batch, uint64_t seed, unsigned flags)
{
    char err[256];
    int rc = ds_sampler_init(s, n, world, rank, batch, seed, flags, err, sizeof err);
    if (rc != DS_SAMPLER_OK)
        fail_msg("%s", err);
}

/* All ranks' entries of one whole epoch, step-major then rank-major: the global stream. Returns its length. */
static size_t run_epoch(size_t n, int world, size_t batch, uint64_t seed, unsigned flags, uint64_t epoch,
                        size_t *stream, size_t *reals)
{
    size_t len = 0, steps = 0;
    for (int r = 0; r < world; r++) {
        ds_sampler s;
        init_ok(&s, n, world, r, batch, seed, flags);
        ds_sampler_set_epoch(&s, epoch);
        steps = ds_sampler_steps_per_epoch(&s);
        for (size_t t = 0; t < steps; t++) {
            size_t real;
            size_t *dst = stream + (t * world + (size_t)r) * batch;
            assert_int_equal(ds_sampler_next(&s, dst, &real), DS_SAMPLER_OK);
            if (reals)
                reals[t * world + (size_t)r] = real;
        }
        size_t dummy[64];
        assert_int_equal(ds_sampler_next(&s, dummy, NULL), DS_SAMPLER_EPOCH_END); /* equal step counts */
        ds_sampler_free(&s);
        len = steps * world * batch;
    }
    return len;
}

static void test_slices_cover_epoch(void **state)
{
    (void)state;
    enum { N = 103, WORLD = 4, B = 5 };
    size_t stream[200], reals[64];
    size_t len = run_epoch(N, WORLD, B, 1, DS_SAMPLER_SHUFFLE, 0, stream, reals);
    assert_int_equal(len, 120); /* ceil(103 / 20) = 6 steps */
    int count[N] = {0};
    size_t n_real = 0;
    for (size_t slot = 0; slot < len / B; slot++) {
        for (size_t i = 0; i < reals[slot]; i++)
            count[stream[slot * B + i]]++;
        n_real += reals[slot];
    }
    assert_int_equal(n_real, N);
    for (int i = 0; i < N; i++)
        assert_int_equal(count[i], 1);
    for (size_t k = N; k < len; k++) /* padding wraps to the start of the order */
        assert_int_equal(stream[k], stream[k - N]);

    len = run_epoch(N, WORLD, B, 1, DS_SAMPLER_SHUFFLE | DS_SAMPLER_DROP_LAST, 0, stream, reals);
    assert_int_equal(len, 100);
    memset(count, 0, sizeof count);
    for (size_t k = 0; k < len; k++)
        assert_int_equal(count[stream[k]]++, 0);
    for (size_t slot = 0; slot < len / B; slot++)
        assert_int_equal(reals[slot], B);
}

static void test_world_size_invariance(void **state)
{
    (void)state;
    /* Per step, 2 ranks x B and 1 rank x 2B (and 4 x B/2) take the same entries, in the same global order. */
    size_t a[400], b[400], c[400];
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        size_t la = run_epoch(157, 2, 6, 9, DS_SAMPLER_SHUFFLE, epoch, a, NULL);
        size_t lb = run_epoch(157, 1, 12, 9, DS_SAMPLER_SHUFFLE, epoch, b, NULL);
        size_t lc = run_epoch(157, 4, 3, 9, DS_SAMPLER_SHUFFLE, epoch, c, NULL);
        assert_int_equal(la, lb);
        assert_int_equal(la, lc);
        assert_memory_equal(a, b, la * sizeof *a);
        assert_memory_equal(a, c, la * sizeof *a);
    }
}

static void test_order_matches_python(void **state)
{
    (void)state;
    enum { N = 250 };
    size_t stream[N];
    const uint64_t seed = 1234567;
    for (uint64_t epoch = 0; epoch < 3; epoch++) {
        assert_int_equal(run_epoch(N, 1, N, seed, DS_SAMPLER_SHUFFLE, epoch, stream, NULL), N);
        char *out = tdt_pyref("shuffle '%llu+(%llu<<64)' %d", (unsigned long long)seed, (unsigned long long)epoch, N);
        char *p = out, *end;
        for (int i = 0; i < N; i++, p = end) {
            unsigned long v = strtoul(p, &end, 10);
            assert_true(end != p);
            assert_int_equal(stream[i], v);
        }
        free(out);
    }
    /* Epochs differ; no shuffle means the identity. */
    size_t e0[N], e1[N];
    run_epoch(N, 1, N, seed, DS_SAMPLER_SHUFFLE, 0, e0, NULL);
    run_epoch(N, 1, N, seed, DS_SAMPLER_SHUFFLE, 1, e1, NULL);
    assert_memory_not_equal(e0, e1, sizeof e0);
    run_epoch(N, 1, N, seed, 0, 5, e0, NULL);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(e0[i], i);
}

static void test_eval_padding(void **state)
{
    (void)state;
    ds_sampler s;
    init_ok(&s, 10, 2, 1, 4, 0, 0);
    assert_int_equal(ds_sampler_steps_per_epoch(&s), 2);
    size_t idx[4], real;
    assert_int_equal(ds_sampler_next(&s, idx, &real), DS_SAMPLER_OK);
    assert_int_equal(real, 4);
    assert_int_equal(idx[0], 4);
    assert_int_equal(ds_sampler_next(&s, idx, &real), DS_SAMPLER_OK);
    assert_int_equal(real, 0); /* entries 12..15: all padding */
    assert_int_equal(idx[0], 2);
    assert_int_equal(idx[3], 5);
    assert_int_equal(ds_sampler_next(&s, idx, &real), DS_SAMPLER_EPOCH_END);
    ds_sampler_set_epoch(&s, 1);
    assert_int_equal(ds_sampler_get_position(&s).epoch, 1);
    assert_int_equal(ds_sampler_get_position(&s).consumed, 0);
    assert_int_equal(ds_sampler_next(&s, idx, NULL), DS_SAMPLER_OK);
    ds_sampler_free(&s);
    assert_null(s.order);
}

/* Runs world ranks from pos to the end of pos.epoch; returns the global stream length. */
static size_t run_from(size_t n, int world, size_t batch, unsigned flags, const ds_sampler_position *pos,
                       size_t *stream)
{
    size_t len = 0;
    for (int r = 0; r < world; r++) {
        ds_sampler s;
        char err[256];
        init_ok(&s, n, world, r, batch, 77, flags);
        if (ds_sampler_set_position(&s, pos, err, sizeof err) != DS_SAMPLER_OK)
            fail_msg("%s", err);
        size_t t = 0;
        while (ds_sampler_next(&s, stream + (t * world + (size_t)r) * batch, NULL) == DS_SAMPLER_OK)
            t++;
        len = t * world * batch;
        ds_sampler_free(&s);
    }
    return len;
}

static void test_resume(void **state)
{
    (void)state;
    const size_t n = 200;
    const unsigned flags = DS_SAMPLER_SHUFFLE | DS_SAMPLER_DROP_LAST;
    size_t full[256], rest[256], idx[8];
    ds_sampler s;
    init_ok(&s, n, 4, 2, 2, 77, flags);
    ds_sampler_set_epoch(&s, 3);
    for (int t = 0; t < 2; t++)
        assert_int_equal(ds_sampler_next(&s, idx, NULL), DS_SAMPLER_OK);
    ds_sampler_position pos = ds_sampler_get_position(&s);
    assert_int_equal(pos.epoch, 3);
    assert_int_equal(pos.consumed, 16);

    /* Same world: the restored sampler continues exactly like the original. */
    ds_sampler t;
    char err[256];
    init_ok(&t, n, 4, 2, 2, 77, flags);
    assert_int_equal(ds_sampler_set_position(&t, &pos, err, sizeof err), DS_SAMPLER_OK);
    size_t a[2], b[2];
    int ra, rb;
    do {
        ra = ds_sampler_next(&s, a, NULL);
        rb = ds_sampler_next(&t, b, NULL);
        assert_int_equal(ra, rb);
        if (ra == DS_SAMPLER_OK)
            assert_memory_equal(a, b, sizeof a);
    } while (ra == DS_SAMPLER_OK);
    ds_sampler_free(&s);
    ds_sampler_free(&t);

    /* Another world size continues the same global stream: 4 x 2 saved, resumed as 2 x 4 and 1 x 16. */
    ds_sampler_position start = {3, 0};
    size_t len_full = run_from(n, 4, 2, flags, &start, full);
    assert_int_equal(len_full, 200);
    size_t len = run_from(n, 2, 4, flags, &pos, rest);
    assert_int_equal(len, len_full - 16);
    assert_memory_equal(rest, full + 16, len * sizeof *rest);
    len = run_from(n, 1, 16, flags, &pos, rest);
    assert_int_equal(len, 176); /* 1 x 16 drop_last: 12 steps = 192 entries, 16 already done */
    assert_memory_equal(rest, full + 16, len * sizeof *rest);

    /* 16 is not a multiple of 3 x 2: a clear refusal, the sampler unchanged. */
    init_ok(&t, n, 3, 0, 2, 77, flags);
    assert_int_equal(ds_sampler_set_position(&t, &pos, err, sizeof err), DS_SAMPLER_ERR_POSITION);
    assert_non_null(strstr(err, "multiple of 6"));
    assert_int_equal(ds_sampler_get_position(&t).epoch, 0);
    assert_int_equal(ds_sampler_get_position(&t).consumed, 0);
    ds_sampler_position beyond = {3, 240};
    assert_int_equal(ds_sampler_set_position(&t, &beyond, err, sizeof err), DS_SAMPLER_ERR_POSITION);
    ds_sampler_free(&t);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    ds_sampler s;
    char err[256];
    assert_int_equal(ds_sampler_init(&s, 0, 1, 0, 1, 0, 0, err, sizeof err), DS_SAMPLER_ERR_ARG);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(ds_sampler_init(&s, 10, 2, 2, 1, 0, 0, err, sizeof err), DS_SAMPLER_ERR_ARG);
    assert_non_null(strstr(err, "rank"));
    assert_int_equal(ds_sampler_init(&s, 10, 0, 0, 1, 0, 0, err, sizeof err), DS_SAMPLER_ERR_ARG);
    assert_int_equal(ds_sampler_init(&s, 10, 1, 0, 0, 0, 0, err, sizeof err), DS_SAMPLER_ERR_ARG);
    assert_int_equal(ds_sampler_init(&s, 10, 2, 0, 6, 0, DS_SAMPLER_DROP_LAST, err, sizeof err), DS_SAMPLER_ERR_ARG);
    assert_non_null(strstr(err, "drop_last"));
    assert_null(s.order);
    /* Without drop_last a dataset smaller than one global batch still runs one padded step. */
    init_ok(&s, 10, 2, 1, 6, 0, DS_SAMPLER_SHUFFLE);
    assert_int_equal(ds_sampler_steps_per_epoch(&s), 1);
    size_t idx[6], real;
    assert_int_equal(ds_sampler_next(&s, idx, &real), DS_SAMPLER_OK);
    assert_int_equal(real, 4);
    ds_sampler_free(&s);
}

int tdt_run_sampler(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slices_cover_epoch), cmocka_unit_test(test_world_size_invariance),
        cmocka_unit_test(test_order_matches_python), cmocka_unit_test(test_eval_padding),
        cmocka_unit_test(test_resume),             cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("sampler", tests, NULL, NULL);
}
