/* test_pyrandom.c: pyrandom against CPython's random, run at test time. */
#include "test_dataset_text.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/pyrandom.h"

/* Parses whitespace-separated unsigned integers; returns how many. */
static size_t parse_u64s(const char *text, uint64_t *out, size_t max)
{
    size_t n = 0;
    char *end;
    for (const char *p = text; n < max; p = end) {
        uint64_t v = strtoull(p, &end, 10);
        if (end == p)
            break;
        out[n++] = v;
    }
    return n;
}

/* Seeds (as Python expressions) and the matching C call. */
static const struct {
    const char *expr;
    int64_t seed;
} seeds[] = {{"0", 0},
             {"1", 1},
             {"42", 42},
             {"-42", -42},
             {"4294967301", 4294967301LL},
             {"9223372036854775807", INT64_MAX},
             {"-9223372036854775808", INT64_MIN}};

static void test_getrandbits(void **state)
{
    (void)state;
    static const int ks[] = {1, 5, 31, 32, 33, 40, 53, 63, 64, 32, 7};
    const int rounds = 30;
    char ops[2048] = "";
    for (int r = 0; r < rounds; r++)
        for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++) {
            char op[8];
            snprintf(op, sizeof op, " b%d", ks[i]);
            strcat(ops, op);
        }
    for (size_t s = 0; s < sizeof seeds / sizeof seeds[0]; s++) {
        char *out = tdt_pyref("ops '%s'%s", seeds[s].expr, ops);
        uint64_t want[400];
        size_t n = parse_u64s(out, want, 400);
        free(out);
        assert_int_equal(n, rounds * (sizeof ks / sizeof ks[0]));
        pyrandom r;
        pyrandom_seed(&r, seeds[s].seed);
        size_t j = 0;
        for (int round = 0; round < rounds; round++)
            for (size_t i = 0; i < sizeof ks / sizeof ks[0]; i++, j++) {
                uint64_t got = pyrandom_getrandbits(&r, ks[i]);
                if (got != want[j])
                    fail_msg("seed %s draw %zu getrandbits(%d): %" PRIu64 " != python %" PRIu64, seeds[s].expr, j,
                             ks[i], got, want[j]);
            }
    }
}

static void test_randbelow_and_random(void **state)
{
    (void)state;
    static const uint64_t ns[] = {1, 2, 3, 7, 10, 1000, 2147483648ULL, 4294967297ULL, 9007199254740995ULL,
                                  18446744073709551615ULL, 5, 6};
    char ops[4096] = "";
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
            char op[32];
            snprintf(op, sizeof op, " r%" PRIu64, ns[i]);
            strcat(ops, op);
        }
        strcat(ops, " f");
    }
    char *out = tdt_pyref("ops 20240601%s", ops);
    uint64_t want[400];
    size_t n = parse_u64s(out, want, 400);
    free(out);
    assert_int_equal(n, 20 * (sizeof ns / sizeof ns[0] + 1));
    pyrandom r;
    pyrandom_seed(&r, 20240601);
    size_t j = 0;
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++, j++)
            assert_int_equal(pyrandom_randbelow(&r, ns[i]), want[j]);
        double x = pyrandom_random(&r);
        assert_true(x >= 0.0 && x < 1.0);
        assert_int_equal((uint64_t)(x * 9007199254740992.0), want[j++]);
    }
}

static void check_shuffle(const char *expr, const pyrandom *seeded, size_t n)
{
    char *out = tdt_pyref("shuffle '%s' %zu", expr, n);
    uint64_t *want = malloc((n + 1) * sizeof *want);
    size_t *got = malloc((n + 1) * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    assert_int_equal(parse_u64s(out, want, n + 1), n);
    free(out);
    for (size_t i = 0; i < n; i++)
        got[i] = i;
    pyrandom r = *seeded;
    pyrandom_shuffle(&r, got, n);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("seed %s shuffle of %zu: position %zu is %zu, python %" PRIu64, expr, n, i, got[i], want[i]);
    free(want);
    free(got);
}

static void test_shuffle(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 2, 3, 10, 1000, 24696};
    pyrandom r;
    pyrandom_seed(&r, 42);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        check_shuffle("42", &r, sizes[i]);
    pyrandom_seed(&r, 7);
    check_shuffle("7", &r, 517);
}

static void test_seed_limbs(void **state)
{
    (void)state;
    pyrandom r;
    uint64_t limbs[3] = {5, 3, 0};
    pyrandom_seed_limbs(&r, limbs, 2);
    check_shuffle("5+(3<<64)", &r, 300);
    pyrandom_seed_limbs(&r, limbs, 3); /* high zero limbs do not change the key */
    check_shuffle("5+(3<<64)", &r, 300);
    uint64_t wide[2] = {0xfedcba9876543210ULL, 0};
    pyrandom_seed_limbs(&r, wide, 2);
    pyrandom a;
    pyrandom_seed_limbs(&a, wide, 1);
    assert_memory_equal(&a, &r, sizeof a);
    check_shuffle("0xfedcba9876543210", &r, 100);
    uint64_t zero = 0;
    pyrandom_seed_limbs(&r, &zero, 1);
    check_shuffle("0", &r, 50);
}

static void test_state_copy(void **state)
{
    (void)state;
    pyrandom r;
    pyrandom_seed(&r, 123);
    for (int i = 0; i < 1000; i++) /* crosses a regeneration of the 624 words */
        pyrandom_u32(&r);
    pyrandom saved = r;
    uint32_t first[2000];
    for (int i = 0; i < 2000; i++)
        first[i] = pyrandom_u32(&r);
    for (int i = 0; i < 2000; i++)
        assert_int_equal(pyrandom_u32(&saved), first[i]);
    char *out = tdt_pyref("ops 123 %s", "b32 b32 b32");
    uint64_t want[3];
    assert_int_equal(parse_u64s(out, want, 3), 3);
    free(out);
    pyrandom_seed(&r, 123);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pyrandom_u32(&r), want[i]);
    assert_int_equal(pyrandom_getrandbits(&r, 0), 0);
    assert_int_equal(pyrandom_getrandbits(&r, 65), 0);
    assert_int_equal(pyrandom_randbelow(&r, 0), 0);
}

int tdt_run_pyrandom(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_getrandbits), cmocka_unit_test(test_randbelow_and_random),
        cmocka_unit_test(test_shuffle),     cmocka_unit_test(test_seed_limbs),
        cmocka_unit_test(test_state_copy),
    };
    return cmocka_run_group_tests_name("pyrandom", tests, NULL, NULL);
}
