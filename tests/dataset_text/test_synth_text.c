/* test_synth_text.c: the mini-AvaMERG generator: determinism, schema via the reader, mess, learnability. */
#include "test_dataset_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dataset/avamerg.h"
#include "dataset/split.h"
#include "dataset/synth_text.h"

static void write_ok(const char *name, int n, uint64_t seed, char *dir, size_t dirlen)
{
    char err[512];
    tdt_path(dir, dirlen, name);
    int rc = synth_text_write(dir, n, seed, err, sizeof err);
    if (rc != SYNTH_TEXT_OK)
        fail_msg("%s", err);
}

static char *read_in(const char *dir, const char *name, size_t *len)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = tdt_read_file(path, len);
    assert_non_null(text);
    return text;
}

static void test_deterministic(void **state)
{
    (void)state;
    char a[512], b[512], c[512];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    write_ok("synth-a", 300, 11, a, sizeof a);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    print_message("synth_text: 300 conversations in %.1f ms\n", secs * 1e3);
    assert_true(secs < 1.0);
    write_ok("synth-b", 300, 11, b, sizeof b);
    write_ok("synth-c", 300, 12, c, sizeof c);
    static const char *const files[] = {"train.json", "test.json"};
    for (int f = 0; f < 2; f++) {
        size_t la, lb, lc;
        char *ta = read_in(a, files[f], &la), *tb = read_in(b, files[f], &lb), *tc = read_in(c, files[f], &lc);
        assert_true(la > 1000);
        assert_int_equal(la, lb);
        assert_memory_equal(ta, tb, la);
        assert_true(la != lc || memcmp(ta, tc, la) != 0);
        free(ta);
        free(tb);
        free(tc);
    }
    /* Rewriting in place replaces the files whole and leaves no temporary behind. */
    write_ok("synth-a", 300, 12, a, sizeof a);
    size_t la, lc;
    char *ta = read_in(a, "train.json", &la), *tc = read_in(c, "train.json", &lc);
    assert_int_equal(la, lc);
    assert_memory_equal(ta, tc, la);
    free(ta);
    free(tc);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 2", a);
    assert_int_equal(system(cmd), 0);
}

static void test_loads_with_all_labels(void **state)
{
    (void)state;
    char dir[512], path[600], err[512];
    write_ok("synth-load", 600, 2024, dir, sizeof dir);
    snprintf(path, sizeof path, "%s/train.json", dir);
    am_corpus c;
    int rc = am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_int_equal(c.n, 600);
    assert_int_equal(c.n_conversations, 600);
    assert_int_equal(c.n_skipped, 0);
    int count32[AM_N_LABEL32] = {0}, count7[AM_N_LABEL7] = {0};
    size_t no_topic = 0, same_avatar = 0, first_unlabeled = 0, turn0_missing = 0, empty_utt = 0, non_ascii = 0, gaps = 0;
    int max_utt = 0, min_utt = AM_MAX_UTT;
    for (size_t i = 0; i < c.n; i++) {
        const am_sample *s = &c.v[i];
        assert_in_range(s->label32, 0, AM_N_LABEL32 - 1);
        count32[s->label32]++;
        count7[s->label7]++;
        assert_non_null(s->event_scenario);
        assert_non_null(s->emotion_cause);
        assert_non_null(s->goal_to_response);
        assert_non_null(s->speaker.age);
        assert_in_range(s->speaker.id, 1, 99);
        assert_int_equal(strlen(s->conversation_id), 5);
        assert_int_equal(s->utt[s->n_utt - 1].role, AM_ROLE_RESPONSE);
        assert_int_equal(s->utt[s->n_utt - 1].index, 2 * s->last_turn_id + 1);
        no_topic += s->topic == NULL;
        same_avatar += s->speaker.id == s->listener.id;
        first_unlabeled += !s->first_turn_labeled;
        turn0_missing += s->first_turn_id > 0;
        gaps += s->last_turn_id - s->first_turn_id + 1 > s->n_turns;
        assert_int_equal(s->n_utt, 2 * s->last_turn_id + 2);
        for (int k = 0; k < s->n_utt; k++) {
            empty_utt += s->utt[k].text[0] == '\0';
            for (const unsigned char *p = (const unsigned char *)s->utt[k].text; *p; p++)
                if (*p >= 0x80) {
                    non_ascii++;
                    break;
                }
        }
        if (s->n_utt > max_utt)
            max_utt = s->n_utt;
        if (s->n_utt < min_utt)
            min_utt = s->n_utt;
        if (i > 0)
            assert_true(strcmp(c.v[i - 1].conversation_id, s->conversation_id) < 0);
    }
    for (int i = 0; i < AM_N_LABEL32; i++)
        if (count32[i] == 0)
            fail_msg("label %s never generated", am_label32_name(i));
    int anxious = count32[am_label32_of("anxious")];
    for (int i = 0; i < AM_N_LABEL32; i++)
        assert_true(count32[i] <= anxious);
    assert_true(count7[4] > count7[0] && count7[0] > count7[5]); /* sad > happy > disgusted */
    print_message("synth_text: 600 conversations: anxious %d, no topic %zu, same avatar %zu, first turn "
                  "unlabeled %zu, turn 0 missing %zu, turn id gaps %zu, empty utterances %zu, utterances %d..%d\n",
                  anxious, no_topic, same_avatar, first_unlabeled, turn0_missing, gaps, empty_utt, min_utt, max_utt);
    assert_true(no_topic > 0 && same_avatar > 0 && first_unlabeled > 0 && turn0_missing > 0 && gaps > 0 &&
                empty_utt > 0);
    assert_true(non_ascii > 0);
    assert_int_equal(min_utt, 2);
    assert_true(max_utt >= 8);
    split_result sp;
    assert_int_equal(split_make_seed(&c, 42, &sp, err, sizeof err), SPLIT_OK);
    assert_int_equal(sp.n_train + sp.n_test + sp.n_val, c.n - first_unlabeled);
    split_free(&sp);
    am_corpus_free(&c);

    snprintf(path, sizeof path, "%s/test.json", dir);
    rc = am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_int_equal(c.n_conversations, 121);
    assert_true(c.n_empty_turns > 0);
    assert_int_equal(c.n + c.n_empty_turns, 121);
    for (size_t i = 0; i < c.n; i++) {
        assert_int_equal(c.v[i].label7, -1);
        assert_null(c.v[i].topic);
        assert_int_equal(c.v[i].speaker.id, -1);
        assert_int_not_equal(c.v[i].utt[c.v[i].n_utt - 1].role, AM_ROLE_RESPONSE);
    }
    am_corpus_free(&c);
}

static void test_learnable_not_trivial(void **state)
{
    (void)state;
    char dir[512];
    write_ok("synth-bow", 2000, 5, dir, sizeof dir);
    char *out = tdt_pyref("bow '%s/train.json'", dir);
    double acc = 0, majority = 0;
    assert_int_equal(sscanf(out, "%lf %lf", &acc, &majority), 2);
    free(out);
    print_message("synth_text: bag-of-words logistic regression %.1f%% (majority class %.1f%%)\n", acc * 100,
                  majority * 100);
    assert_true(acc > majority + 0.10);
    assert_true(acc > 0.60 && acc < 0.90);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    char dir[512], err[512];
    tdt_path(dir, sizeof dir, "synth-bad");
    assert_int_equal(synth_text_write(dir, 0, 1, err, sizeof err), SYNTH_TEXT_ERR_ARG);
    assert_non_null(strstr(err, "n_conversations"));
    assert_int_equal(synth_text_write(dir, SYNTH_TEXT_MAX_CONVERSATIONS + 1, 1, err, sizeof err),
                     SYNTH_TEXT_ERR_ARG);
    tdt_path(dir, sizeof dir, "no-parent/child");
    assert_int_equal(synth_text_write(dir, 10, 1, err, sizeof err), SYNTH_TEXT_ERR_IO);
    assert_non_null(strstr(err, "no-parent/child"));
}

int tdt_run_synth_text(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_loads_with_all_labels),
        cmocka_unit_test(test_learnable_not_trivial),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests_name("synth_text", tests, NULL, NULL);
}
