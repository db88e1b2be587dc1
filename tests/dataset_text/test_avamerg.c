/* test_avamerg.c: the AvaMERG reader on the hand-written sample, on broken files, and the label tables. */
#include "test_dataset_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/avamerg.h"

static const am_sample *find_sample(const am_corpus *c, const char *cid)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->v[i].conversation_id, cid) == 0)
            return &c->v[i];
    fail_msg("conversation %s not loaded", cid);
    return NULL;
}

static void check_utt(const am_utt *u, int index, int role, int avatar, const char *text)
{
    assert_int_equal(u->index, index);
    assert_int_equal(u->role, role);
    assert_int_equal(u->avatar_id, avatar);
    assert_string_equal(u->text, text);
}

static void test_sample_train(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    int rc = am_corpus_load(TDT_SOURCE_DIR "/data/train.json", AM_ON_ERROR_FAIL, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_int_equal(c.n, 3);
    assert_int_equal(c.n_conversations, 3);
    assert_int_equal(c.n_empty_turns + c.n_malformed + c.n_unknown_label + c.n_skipped, 0);
    assert_string_equal(c.v[0].conversation_id, "00042"); /* file order */
    assert_string_equal(c.v[2].conversation_id, "01118");

    const am_sample *s = find_sample(&c, "00042");
    assert_int_equal(s->label7, 0);
    assert_int_equal(s->label32, am_label32_of("proud"));
    assert_string_equal(s->emotion, "proud");
    assert_string_equal(s->goal_to_response, "Keep the joy going with interest.");
    assert_string_equal(s->event_scenario, "A child admitted to a university.");
    assert_string_equal(s->emotion_cause, "Pride in the daughter's achievement.");
    assert_int_equal(s->last_turn_id, 1);
    assert_int_equal(s->first_turn_labeled, 1);
    assert_string_equal(s->topic, "Family");
    assert_string_equal(s->context, "My daughter got into the university she dreamed of.");
    assert_string_equal(s->speaker.age, "middle-aged");
    assert_string_equal(s->speaker.gender, "female");
    assert_string_equal(s->speaker.timbre, "mid");
    assert_int_equal(s->speaker.id, 17);
    assert_string_equal(s->listener.age, "young");
    assert_string_equal(s->listener.timbre, "low");
    assert_int_equal(s->listener.id, 63);
    assert_int_equal(s->n_utt, 4);
    check_utt(&s->utt[0], 0, AM_ROLE_SPEAKER, 17, "Guess what \xe2\x80\x94 my daughter got accepted to her dream school!");
    check_utt(&s->utt[1], 1, AM_ROLE_LISTENER, 63, "That\xe2\x80\x99s wonderful news, you must be so proud of her!");
    check_utt(&s->utt[2], 2, AM_ROLE_SPEAKER, 17, "I am! She worked so hard for it \xf0\x9f\x98\x8a");
    check_utt(&s->utt[3], 3, AM_ROLE_RESPONSE, 63, "Hard work pays off. What will she study?");

    s = find_sample(&c, "00107"); /* only turn "1": turn "0" skipped */
    assert_int_equal(s->label7, 3);
    assert_string_equal(s->emotion, "terrified");
    assert_int_equal(s->last_turn_id, 1);
    assert_int_equal(s->first_turn_labeled, 1);
    assert_string_equal(s->topic, "Life Events");
    assert_int_equal(s->n_utt, 4);
    check_utt(&s->utt[0], 0, AM_ROLE_SPEAKER, 5, "Last night I heard something moving downstairs.");
    check_utt(&s->utt[1], 1, AM_ROLE_LISTENER, 88, "Oh no, what did you do?");
    check_utt(&s->utt[2], 2, AM_ROLE_SPEAKER, 5, "I hid under my blanket until morning.");
    check_utt(&s->utt[3], 3, AM_ROLE_RESPONSE, 88, "That sounds really scary. Did it turn out to be anything?");

    s = find_sample(&c, "01118"); /* no topic, avatar 28 on both sides */
    assert_int_equal(s->label7, 2);
    assert_string_equal(s->emotion, "furious");
    assert_null(s->topic);
    assert_int_equal(s->n_utt, 2);
    check_utt(&s->utt[0], 0, AM_ROLE_SPEAKER, 28, "My coworker presented MY project as his own. Unbelievable.");
    check_utt(&s->utt[1], 1, AM_ROLE_RESPONSE, 28, "that is so unfair, i would be furious too");
    am_corpus_free(&c);
    assert_null(c.v);
    assert_int_equal(c.n, 0);
}

static void test_sample_test_unlabeled(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    int rc = am_corpus_load(TDT_SOURCE_DIR "/data/test.json", AM_ON_ERROR_FAIL, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_int_equal(c.n_conversations, 2);
    assert_int_equal(c.n_empty_turns, 1);
    assert_int_equal(c.n, 1);
    const am_sample *s = &c.v[0];
    assert_string_equal(s->conversation_id, "00003");
    assert_int_equal(s->label7, -1);
    assert_int_equal(s->label32, -1);
    assert_null(s->emotion);
    assert_null(s->goal_to_response);
    assert_null(s->topic);
    assert_null(s->speaker.age);
    assert_int_equal(s->speaker.id, -1);
    assert_int_equal(s->listener.id, -1);
    assert_int_equal(s->first_turn_labeled, 0);
    assert_string_equal(s->context, "I lost my wallet on the bus.");
    assert_int_equal(s->n_utt, 3); /* no response in test.json */
    check_utt(&s->utt[2], 2, AM_ROLE_SPEAKER, -1, "Not yet\xe2\x80\xa6 I\xe2\x80\x99m hoping someone will.");
    am_corpus_free(&c);
}

static void test_malformed_json(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    const char *path = tdt_write_file("bad.json", "[\n  {\"conversation_id\": \"00001\",\n   \"turns\": [}\n]\n");
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_ERR_PARSE);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "line 3, column 14"));
    assert_null(strchr(err, '\n'));
    assert_null(c.v);
    assert_int_equal(c.n_conversations, 0);

    path = tdt_write_file("trailing.json", "[]\n]");
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_ERR_PARSE);
    assert_non_null(strstr(err, "line 2, column 1"));

    path = tdt_write_file("object.json", "{\"conversation_id\": \"1\"}");
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_ERR_PARSE);
    assert_non_null(strstr(err, "not an array"));

    path = tdt_write_file("empty.json", "");
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_ERR_PARSE);

    char missing[512];
    tdt_path(missing, sizeof missing, "no-such.json");
    assert_int_equal(am_corpus_load(missing, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_ERR_IO);
    assert_non_null(strstr(err, missing));
}

#define TURN(id, emo)                                                                                       \
    "{\"turn_id\": \"" id "\", \"context\": \"c\", \"dialogue_history\": [{\"index\": 0, \"role\": "           \
    "\"speaker\", \"utterance\": \"u0\"}], \"response\": \"r\", \"chain_of_empathy\": {\"speaker_emotion\": " \
    "\"" emo "\"}}"

static void test_unknown_label(void **state)
{
    (void)state;
    am_corpus c;
    char err[512];
    const char *path = tdt_write_file("label.json", "[{\"conversation_id\": \"00001\", \"turns\": [" TURN("0", "sad")
                                                    "]},\n {\"conversation_id\": \"00107\", \"turns\": [" TURN(
                                                        "0", "xyz") "]}]");
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err), AM_OK);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.n_conversations, 2);
    assert_int_equal(c.n_unknown_label, 1);
    assert_int_equal(c.n_malformed, 0);
    assert_int_equal(c.n_skipped, 1);
    assert_string_equal(c.skipped[0], "conversation 00107: unknown emotion label 'xyz'");
    assert_int_equal(c.v[0].label7, 4);
    am_corpus_free(&c);

    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err), AM_ERR_LABEL);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, "conversation 00107: unknown emotion label 'xyz'"));
    assert_null(c.v);
}

static void test_malformed_records(void **state)
{
    (void)state;
    static const struct {
        const char *record, *line;
    } cases[] = {
        {"{\"conversation_id\": \"00010\", \"turns\": {}}", "conversation 00010: turns is missing or not an array"},
        {"{\"conversation_id\": \"00011\", \"turns\": [{\"turn_id\": \"0\"}]}",
         "conversation 00011: turn '0': dialogue_history is missing or not an array"},
        {"{\"conversation_id\": \"00012\", \"turns\": [{\"turn_id\": \"one\", \"dialogue_history\": []}]}",
         "conversation 00012: turns[0].turn_id is missing or not a non-negative integer"},
        {"{\"conversation_id\": \"00013\", \"turns\": [" TURN("1", "sad") ", " TURN("1", "sad") "]}",
         "conversation 00013: turn_id '1' appears twice"},
        {"{\"turns\": []}", "record 5: conversation_id is missing or not a string"},
        {"[1, 2]", "record 6: not a JSON object"},
        {"{\"conversation_id\": \"00016\", \"topic\": 3, \"turns\": [" TURN("0", "sad") "]}",
         "conversation 00016: topic is not a string"},
        {"{\"conversation_id\": \"00017\", \"speaker_profile\": {\"ID\": \"x\"}, \"turns\": [" TURN("0", "sad") "]}",
         "conversation 00017: speaker_profile.ID is not a non-negative integer"},
        {"{\"conversation_id\": \"00018\", \"turns\": [{\"turn_id\": \"0\", \"dialogue_history\": [{\"index\": 0, "
         "\"role\": \"narrator\", \"utterance\": \"u\"}]}]}",
         "conversation 00018: turn '0': dialogue_history[0].role is not \"speaker\" or \"listener\""},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    char text[8192] = "[";
    strcat(text, "{\"conversation_id\": \"00001\", \"turns\": [" TURN("0", "Proud") "]}");
    for (size_t i = 0; i < n_cases; i++) {
        strcat(text, ",\n");
        strcat(text, cases[i].record);
    }
    strcat(text, "]");
    const char *path = tdt_write_file("records.json", text);
    am_corpus c;
    char err[512];
    int rc = am_corpus_load(path, AM_ON_ERROR_SKIP, &c, err, sizeof err);
    if (rc != AM_OK)
        fail_msg("%s", err);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.v[0].label7, 0); /* labels match case-insensitively */
    assert_int_equal(c.n_conversations, n_cases + 1);
    assert_int_equal(c.n_malformed, n_cases);
    assert_int_equal(c.n_skipped, n_cases);
    for (size_t i = 0; i < n_cases; i++)
        assert_string_equal(c.skipped[i], cases[i].line);
    am_corpus_free(&c);

    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err), AM_ERR_RECORD);
    assert_non_null(strstr(err, path));
    assert_non_null(strstr(err, cases[0].line));
    assert_null(c.v);
}

static void test_turn_order_and_truncation(void **state)
{
    (void)state;
    /* Turn ids compared as numbers ("10" > "3"), first turn "1" unlabeled although it is not first in the
     * array; turn 10 has 21 history utterances + the response: only the last 10 remain (indices 12..21). */
    char hist[8192] = "";
    for (int i = 0; i <= 20; i++) {
        char e[128];
        snprintf(e, sizeof e, "%s{\"index\": %d, \"role\": \"%s\", \"utterance\": \"u%d\"}", i ? ", " : "", i,
                 i % 2 ? "listener" : "speaker", i);
        strcat(hist, e);
    }
    char text[12288];
    snprintf(text, sizeof text,
             "[{\"conversation_id\": \"00500\", \"speaker_profile\": {\"ID\": 3}, \"listener_profile\": {\"ID\": 4},"
             " \"turns\": [" TURN("3", "sad") ",\n"
             "{\"turn_id\": \"10\", \"context\": \"last\", \"dialogue_history\": [%s], \"response\": \"resp\","
             " \"chain_of_empathy\": {\"speaker_emotion\": \"jealous\"}},\n"
             "{\"turn_id\": \"1\", \"dialogue_history\": []}]}]",
             hist);
    const char *path = tdt_write_file("order.json", text);
    am_corpus c;
    char err[512];
    assert_int_equal(am_corpus_load(path, AM_ON_ERROR_FAIL, &c, err, sizeof err), AM_OK);
    assert_int_equal(c.n, 1);
    const am_sample *s = &c.v[0];
    assert_int_equal(s->last_turn_id, 10);
    assert_string_equal(s->context, "last");
    assert_int_equal(s->label7, 6);
    assert_int_equal(s->first_turn_labeled, 0);
    assert_int_equal(s->n_utt, AM_MAX_UTT);
    for (int k = 0; k < AM_MAX_UTT - 1; k++) {
        char want[16];
        snprintf(want, sizeof want, "u%d", 12 + k);
        check_utt(&s->utt[k], 12 + k, k % 2 ? AM_ROLE_LISTENER : AM_ROLE_SPEAKER, k % 2 ? 4 : 3, want);
    }
    check_utt(&s->utt[AM_MAX_UTT - 1], 21, AM_ROLE_RESPONSE, 4, "resp");
    am_corpus_free(&c);
}

static void test_label_tables(void **state)
{
    (void)state;
    /* avamerg.md's projection, written out independently of avamerg.c's table. */
    static const struct {
        const char *name;
        int label7;
    } table[] = {
        {"anticipating", 0}, {"caring", 0},     {"confident", 0},    {"content", 0},     {"excited", 0},
        {"faithful", 0},     {"grateful", 0},   {"hopeful", 0},      {"joyful", 0},      {"prepared", 0},
        {"proud", 0},        {"trusting", 0},   {"devastated", 1},   {"impressed", 1},   {"surprised", 1},
        {"angry", 2},        {"annoyed", 2},    {"furious", 2},      {"afraid", 3},      {"apprehensive", 3},
        {"terrified", 3},    {"anxious", 4},    {"ashamed", 4},      {"disappointed", 4}, {"embarrassed", 4},
        {"guilty", 4},       {"lonely", 4},     {"nostalgic", 4},    {"sad", 4},         {"sentimental", 4},
        {"disgusted", 5},    {"jealous", 6}};
    assert_int_equal(sizeof table / sizeof table[0], AM_N_LABEL32);
    int seen[AM_N_LABEL32] = {0};
    for (int i = 0; i < AM_N_LABEL32; i++) {
        assert_int_equal(am_label7_of(table[i].name), table[i].label7);
        int id = am_label32_of(table[i].name);
        assert_in_range(id, 0, AM_N_LABEL32 - 1);
        assert_string_equal(am_label32_name(id), table[i].name);
        assert_int_equal(am_label7_of_label32(id), table[i].label7);
        seen[id]++;
    }
    for (int i = 0; i < AM_N_LABEL32; i++) {
        assert_int_equal(seen[i], 1);
        if (i > 0)
            assert_true(strcmp(am_label32_name(i - 1), am_label32_name(i)) < 0);
    }
    static const char *const names7[] = {"happy", "surprised", "angry", "fear", "sad", "disgusted", "contempt"};
    for (int i = 0; i < AM_N_LABEL7; i++)
        assert_string_equal(am_label7_name(i), names7[i]);
    assert_int_equal(am_label7_of("ANXIOUS"), 4);
    assert_int_equal(am_label32_of("Afraid"), 0);
    assert_int_equal(am_label32_of("trusting"), 31);
    assert_int_equal(am_label7_of("happy"), -1); /* a 7-class name is not one of the 32 */
    assert_int_equal(am_label7_of(""), -1);
    assert_int_equal(am_label7_of(NULL), -1);
    assert_null(am_label7_name(7));
    assert_null(am_label32_name(-1));
    assert_null(am_label32_name(32));
    assert_int_equal(am_label7_of_label32(32), -1);
}

int tdt_run_avamerg(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_train),      cmocka_unit_test(test_sample_test_unlabeled),
        cmocka_unit_test(test_malformed_json),    cmocka_unit_test(test_unknown_label),
        cmocka_unit_test(test_malformed_records), cmocka_unit_test(test_turn_order_and_truncation),
        cmocka_unit_test(test_label_tables),
    };
    return cmocka_run_group_tests_name("avamerg", tests, NULL, NULL);
}
