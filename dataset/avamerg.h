/* avamerg.h: reader of AvaMERG's train.json / test.json (layout in /work/shared/avamerg.md).
 *
 * One sample per conversation that has turns: its LAST turn by numeric turn_id (turns may be skipped or
 * out of order in the file). The sample's utterances are that turn's dialogue_history followed by its
 * response as the final utterance (index 2t+1 for turn t, role AM_ROLE_RESPONSE); at most AM_MAX_UTT,
 * keeping the last ones. The label is the last turn's chain_of_empathy.speaker_emotion: label32 is its
 * position in the alphabetical list of the 32 EmpatheticDialogues emotions, label7 the authors' 7-class
 * projection (happy 0, surprised 1, angry 2, fear 3, sad 4, disgusted 5, contempt 6).
 *
 * What is tolerated silently (it occurs in the real files): missing profiles, topic, context, response or
 * chain_of_empathy; `turns: []` (counted in n_empty_turns, no sample); unlabeled files (label -1).
 * What is a bad record (skipped and listed in `skipped`, or fatal under AM_ON_ERROR_FAIL): a field of the
 * wrong JSON type, a turn_id that is not a non-negative integer, a duplicate turn_id, a last turn without a
 * dialogue_history array, a history entry without index/utterance or with an unknown role, and a
 * speaker_emotion outside the 32 names (matched case-insensitively). Malformed JSON is always fatal.
 *
 * All strings are NUL-terminated copies of the JSON text, UTF-8 kept byte for byte.
 * The functions keep no global state and are safe to call from several threads on different corpora.
 */
#ifndef EMPD_DATASET_AVAMERG_H
#define EMPD_DATASET_AVAMERG_H

#include <stddef.h>

#define AM_MAX_UTT 10
#define AM_N_LABEL7 7
#define AM_N_LABEL32 32

/* Return codes of am_corpus_load. */
#define AM_OK 0
#define AM_ERR_IO (-1)     /* the file cannot be opened or read */
#define AM_ERR_PARSE (-2)  /* not JSON, or the top level is not an array */
#define AM_ERR_RECORD (-3) /* a malformed record under AM_ON_ERROR_FAIL */
#define AM_ERR_LABEL (-4)  /* an unknown emotion label under AM_ON_ERROR_FAIL */
#define AM_ERR_NOMEM (-5)  /* out of memory */

enum am_role { AM_ROLE_SPEAKER = 0, AM_ROLE_LISTENER = 1, AM_ROLE_RESPONSE = 2 };

typedef struct {
    char *age, *gender, *timbre; /* NULL when absent */
    int id;                      /* avatar ID, -1 when absent */
} am_profile;

typedef struct {
    int index;     /* 0-based utterance index in the conversation (the K of dia{CID}utt{K}_{AID}) */
    int role;      /* enum am_role */
    int avatar_id; /* speaker_profile.ID for even index, listener_profile.ID for odd; -1 if unknown */
    char *text;    /* never NULL; may be "" */
} am_utt;

typedef struct {
    char *conversation_id; /* exactly the JSON string, e.g. "00042" */
    am_profile speaker, listener;
    char *topic;   /* NULL when missing */
    char *context; /* "" when missing */
    int last_turn_id;  /* numeric turn_id of the turn this sample is made of */
    int first_turn_id; /* lowest turn_id in the record (0 unless turns were skipped) */
    int n_turns;       /* turns in the record */
    int n_utt;
    am_utt utt[AM_MAX_UTT];
    int label7, label32; /* -1 when unlabeled */
    /* chain_of_empathy of the last turn; NULL when missing. Written knowing the emotion: they leak it. */
    char *emotion, *event_scenario, *emotion_cause, *goal_to_response;
    /* 1 when the FIRST turn (lowest turn_id) has a non-empty speaker_emotion: the seed split's filter. */
    int first_turn_labeled;
} am_sample;

typedef struct {
    am_sample *v;
    size_t n;               /* samples, in file order */
    size_t n_conversations; /* records in the file, including skipped and empty ones */
    size_t n_empty_turns;   /* conversations with `turns: []` */
    size_t n_unknown_label; /* skipped: speaker_emotion outside the 32 names */
    size_t n_malformed;     /* skipped: malformed records */
    /* One line per skipped record, e.g. "conversation 00107: unknown emotion label 'xyz'" (for manifests). */
    char **skipped;
    size_t n_skipped;
} am_corpus;

enum am_on_error { AM_ON_ERROR_SKIP = 0, AM_ON_ERROR_FAIL = 1 };

/* Reads json_path into *out (overwritten; on any error *out is left empty, needing no free).
 * Returns AM_OK, or a negative AM_ERR_* with one line in err, naming the file and, for JSON errors, the
 * line:column of the failure, or, for records, the conversation id (or the record's array position when
 * it has no usable id) and the field. Under AM_ON_ERROR_SKIP bad records are counted and listed, not fatal.
 * err may be NULL when errlen is 0. The whole file is held in memory while parsing (~10x its size). */
int am_corpus_load(const char *json_path, enum am_on_error mode, am_corpus *out, char *err, size_t errlen);

/* Frees everything am_corpus_load allocated and zeroes *c. Safe on a zeroed corpus. */
void am_corpus_free(am_corpus *c);

/* The 7-class id (0..6) of one of the 32 emotion names, case-insensitive; -1 for anything else or NULL. */
int am_label7_of(const char *emotion32);

/* The 32-class id (0..31) in alphabetical order of the names (afraid 0, angry 1, ..., trusting 31);
 * case-insensitive; -1 for anything else or NULL. */
int am_label32_of(const char *emotion32);

/* Lower-case names; NULL when id is out of range. */
const char *am_label7_name(int id);
const char *am_label32_name(int id);

/* The 7-class id of a 32-class id; -1 when out of range. */
int am_label7_of_label32(int label32);

#endif
