/* test_split.c: the seed split against CPython running the seed's own recipe on a generated corpus. */
#include "test_dataset_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/split.h"

static void test_sizes(void **state)
{
    (void)state;
    size_t a, b, c;
    split_seed_sizes(24696, &a, &b, &c);
    assert_int_equal(a, 14817);
    assert_int_equal(b, 4939);
    assert_int_equal(c, 4940);

    char *out = tdt_pyref("sizes 0 3000");
    const char *p = out;
    for (size_t n = 0; n < 3000; n++) {
        unsigned long pn, pa, pb;
        int used = 0;
        assert_int_equal(sscanf(p, "%lu %lu %lu%n", &pn, &pa, &pb, &used), 3);
        p += used;
        assert_int_equal(pn, n);
        split_seed_sizes(n, &a, &b, &c);
        if (a != pa || b != pb)
            fail_msg("n=%zu: sizes %zu/%zu, python %lu/%lu", n, a, b, pa, pb);
        assert_int_equal(a + b + c, n);
    }
    free(out);
}

/* Compares one list of sample indices with python's line "NAME id id ...". */
static void check_list(const am_corpus *c, const char *name, const size_t *idx, size_t n, char *line)
{
    char *save = NULL, *tok = strtok_r(line, " \n", &save);
    assert_non_null(tok);
    assert_string_equal(tok, name);
    size_t k = 0;
    for (tok = strtok_r(NULL, " \n", &save); tok; tok = strtok_r(NULL, " \n", &save), k++) {
        assert_true(k < n);
        if (strcmp(c->v[idx[k]].conversation_id, tok) != 0)
            fail_msg("%s[%zu]: %s, python %s", name, k, c->v[idx[k]].conversation_id, tok);
    }
    assert_int_equal(k, n);
}

static void check_split_against_python(size_t n_conv, int64_t seed)
{
    char path[512];
    tdt_path(path, sizeof path, "split.json");
    char *out = tdt_pyref("gensplit '%s' %zu %lld", path, n_conv, (long long)seed);
    am_corpus c;
    char err[512];
    int rc = am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_true(c.n_empty_turns > 0); /* the generator's mess is there */
    size_t unlabeled_first = 0;
    for (size_t i = 0; i < c.n; i++)
        unlabeled_first += !c.v[i].first_turn_labeled;
    assert_true(unlabeled_first > 0);

    split_result s;
    assert_int_equal(split_make_seed(&c, seed, &s, err, sizeof err), SPLIT_OK);
    assert_int_equal(s.n_train + s.n_test + s.n_val, c.n - unlabeled_first);
    char *l1 = out, *l2 = strchr(l1, '\n');
    assert_non_null(l2);
    *l2++ = '\0';
    char *l3 = strchr(l2, '\n');
    assert_non_null(l3);
    *l3++ = '\0';
    check_list(&c, "train", s.train, s.n_train, l1);
    check_list(&c, "test", s.test, s.n_test, l2);
    check_list(&c, "val", s.val, s.n_val, l3);
    split_free(&s);
    assert_null(s.train);
    am_corpus_free(&c);
    free(out);
}

static void test_seed42_matches_python(void **state)
{
    (void)state;
    check_split_against_python(3000, SPLIT_SEED_DEFAULT);
}

static void test_other_seed_matches_python(void **state)
{
    (void)state;
    check_split_against_python(701, 7);
}

static void test_nothing_to_split(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    int rc = am_corpus_load(TDT_SOURCE_DIR "/data/test.json", AM_ON_ERROR_FAIL, &c, err, sizeof err);
    assert_int_equal(rc, AM_OK);
    split_result s;
    assert_int_equal(split_make_seed(&c, 42, &s, err, sizeof err), SPLIT_ERR_EMPTY);
    assert_non_null(strstr(err, "labeled first turn"));
    assert_null(s.train);
    am_corpus_free(&c);
}

static void test_sample_file_split(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    assert_int_equal(am_corpus_load(TDT_SOURCE_DIR "/data/train.json", AM_ON_ERROR_FAIL, &c, err, sizeof err),
                     AM_OK);
    split_result s;
    assert_int_equal(split_make_seed(&c, 42, &s, err, sizeof err), SPLIT_OK);
    /* n = 3: int(1.8) = 1 train, int(0.6) = 0 test, 2 val. */
    assert_int_equal(s.n_train, 1);
    assert_int_equal(s.n_test, 0);
    assert_int_equal(s.n_val, 2);
    split_free(&s);
    am_corpus_free(&c);
}

int tdt_run_split(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_seed42_matches_python),
        cmocka_unit_test(test_other_seed_matches_python),
        cmocka_unit_test(test_nothing_to_split),
        cmocka_unit_test(test_sample_file_split),
    };
    return cmocka_run_group_tests_name("split", tests, NULL, NULL);
}
