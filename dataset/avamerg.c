/* avamerg.c: AvaMERG JSON reader and the 32 -> 7 label projection (see avamerg.h). */
#include "dataset/avamerg.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Alphabetical, so that label32 ids do not depend on anyone's table order. */
static const char *const label32_names[AM_N_LABEL32] = {
    "afraid",   "angry",      "annoyed",   "anticipating", "anxious",      "apprehensive", "ashamed",
    "caring",   "confident",  "content",   "devastated",   "disappointed", "disgusted",    "embarrassed",
    "excited",  "faithful",   "furious",   "grateful",     "guilty",       "hopeful",      "impressed",
    "jealous",  "joyful",     "lonely",    "nostalgic",    "prepared",     "proud",        "sad",
    "sentimental", "surprised", "terrified", "trusting"};

/* The authors' projection (avamerg.md), indexed by label32. */
static const signed char label7_of_32[AM_N_LABEL32] = {
    3 /* afraid */,      2 /* angry */,        2 /* annoyed */,  0 /* anticipating */, 4 /* anxious */,
    3 /* apprehensive */, 4 /* ashamed */,     0 /* caring */,   0 /* confident */,    0 /* content */,
    1 /* devastated */,  4 /* disappointed */, 5 /* disgusted */, 4 /* embarrassed */, 0 /* excited */,
    0 /* faithful */,    2 /* furious */,      0 /* grateful */, 4 /* guilty */,       0 /* hopeful */,
    1 /* impressed */,   6 /* jealous */,      0 /* joyful */,   4 /* lonely */,       4 /* nostalgic */,
    0 /* prepared */,    0 /* proud */,        4 /* sad */,      4 /* sentimental */,  1 /* surprised */,
    3 /* terrified */,   0 /* trusting */};

static const char *const label7_names[AM_N_LABEL7] = {"happy", "surprised", "angry",   "fear",
                                                      "sad",   "disgusted", "contempt"};

int am_label32_of(const char *emotion32)
{
    if (!emotion32)
        return -1;
    for (int i = 0; i < AM_N_LABEL32; i++)
        if (strcasecmp(emotion32, label32_names[i]) == 0)
            return i;
    return -1;
}

int am_label7_of_label32(int label32)
{
    return (label32 >= 0 && label32 < AM_N_LABEL32) ? label7_of_32[label32] : -1;
}

int am_label7_of(const char *emotion32) { return am_label7_of_label32(am_label32_of(emotion32)); }

const char *am_label7_name(int id) { return (id >= 0 && id < AM_N_LABEL7) ? label7_names[id] : NULL; }

const char *am_label32_name(int id) { return (id >= 0 && id < AM_N_LABEL32) ? label32_names[id] : NULL; }

/* ---- record parsing ---- */

enum rec_status { REC_OK, REC_EMPTY, REC_MALFORMED, REC_LABEL, REC_NOMEM };

/* The record being parsed, and where its one-line complaint goes. */
typedef struct {
    char who[96]; /* "conversation 00107" or "record 12" */
    char *line;
    size_t linelen;
} rec_ctx;

static enum rec_status rec_fail(rec_ctx *rc, enum rec_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum rec_status rec_fail(rec_ctx *rc, enum rec_status st, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(rc->line, rc->linelen, "%s: %s", rc->who, msg);
    return st;
}

/* Optional string field: absent or null -> *out = NULL. Returns REC_OK, REC_MALFORMED (wrong type, message
 * written) or REC_NOMEM. */
static enum rec_status get_opt_string(rec_ctx *rc, const cJSON *obj, const char *key, const char *where,
                                      char **out)
{
    *out = NULL;
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it))
        return REC_OK;
    if (!cJSON_IsString(it))
        return rec_fail(rc, REC_MALFORMED, "%s%s is not a string", where, key);
    *out = strdup(it->valuestring);
    return *out ? REC_OK : REC_NOMEM;
}

/* A JSON number holding an integer in [0, max]; -1 when it is not one. */
static long json_uint(const cJSON *it, long max)
{
    if (!cJSON_IsNumber(it))
        return -1;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= (double)max) || d != (double)(long)d)
        return -1;
    return (long)d;
}

/* turn_id is a string of decimal digits in the files; a plain integer is accepted too. -1 when neither. */
static long turn_id_value(const cJSON *it)
{
    const long max = 1000000; /* keeps 2t+1 far from INT_MAX */
    if (cJSON_IsNumber(it))
        return json_uint(it, max);
    if (!cJSON_IsString(it) || !it->valuestring[0])
        return -1;
    long v = 0;
    for (const char *p = it->valuestring; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
    }
    return v;
}

static void profile_free(am_profile *p)
{
    free(p->age);
    free(p->gender);
    free(p->timbre);
}

static void sample_free(am_sample *s)
{
    free(s->conversation_id);
    profile_free(&s->speaker);
    profile_free(&s->listener);
    free(s->topic);
    free(s->context);
    for (int i = 0; i < s->n_utt; i++)
        free(s->utt[i].text);
    free(s->emotion);
    free(s->event_scenario);
    free(s->emotion_cause);
    free(s->goal_to_response);
    memset(s, 0, sizeof *s);
}

static enum rec_status parse_profile(rec_ctx *rc, const cJSON *rec, const char *key, am_profile *p)
{
    p->id = -1;
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(rec, key);
    if (!o || cJSON_IsNull(o))
        return REC_OK;
    if (!cJSON_IsObject(o))
        return rec_fail(rc, REC_MALFORMED, "%s is not an object", key);
    char where[64];
    snprintf(where, sizeof where, "%s.", key);
    enum rec_status st;
    if ((st = get_opt_string(rc, o, "age", where, &p->age)) != REC_OK ||
        (st = get_opt_string(rc, o, "gender", where, &p->gender)) != REC_OK ||
        (st = get_opt_string(rc, o, "timbre", where, &p->timbre)) != REC_OK)
        return st;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "ID");
    if (id && !cJSON_IsNull(id)) {
        long v = json_uint(id, INT_MAX);
        if (v < 0)
            return rec_fail(rc, REC_MALFORMED, "%sID is not a non-negative integer", where);
        p->id = (int)v;
    }
    return REC_OK;
}

/* chain_of_empathy must be an object when present; its speaker_emotion a string when present. */
static enum rec_status turn_chain(rec_ctx *rc, const cJSON *turn, long tid, const cJSON **chain)
{
    *chain = cJSON_GetObjectItemCaseSensitive(turn, "chain_of_empathy");
    if (!*chain || cJSON_IsNull(*chain)) {
        *chain = NULL;
        return REC_OK;
    }
    if (!cJSON_IsObject(*chain))
        return rec_fail(rc, REC_MALFORMED, "turn '%ld': chain_of_empathy is not an object", tid);
    const cJSON *emo = cJSON_GetObjectItemCaseSensitive(*chain, "speaker_emotion");
    if (emo && !cJSON_IsNull(emo) && !cJSON_IsString(emo))
        return rec_fail(rc, REC_MALFORMED, "turn '%ld': chain_of_empathy.speaker_emotion is not a string", tid);
    return REC_OK;
}

static int chain_has_label(const cJSON *chain)
{
    const cJSON *emo = chain ? cJSON_GetObjectItemCaseSensitive(chain, "speaker_emotion") : NULL;
    return cJSON_IsString(emo) && emo->valuestring[0];
}

/* Finds the first (lowest) and last (highest) turn by numeric turn_id, rejecting bad or duplicate ids. */
static enum rec_status find_turns(rec_ctx *rc, const cJSON *turns, const cJSON **first, long *first_id,
                                  const cJSON **last, long *last_id)
{
    int n = cJSON_GetArraySize(turns);
    long *ids = malloc((size_t)n * sizeof *ids);
    if (!ids)
        return REC_NOMEM;
    enum rec_status st = REC_OK;
    int k = 0;
    *first = *last = NULL;
    for (const cJSON *t = turns->child; t; t = t->next, k++) {
        if (!cJSON_IsObject(t)) {
            st = rec_fail(rc, REC_MALFORMED, "turns[%d] is not an object", k);
            break;
        }
        long id = turn_id_value(cJSON_GetObjectItemCaseSensitive(t, "turn_id"));
        if (id < 0) {
            st = rec_fail(rc, REC_MALFORMED, "turns[%d].turn_id is missing or not a non-negative integer", k);
            break;
        }
        for (int j = 0; j < k; j++)
            if (ids[j] == id) {
                st = rec_fail(rc, REC_MALFORMED, "turn_id '%ld' appears twice", id);
                break;
            }
        if (st != REC_OK)
            break;
        ids[k] = id;
        if (!*first || id < *first_id) {
            *first = t;
            *first_id = id;
        }
        if (!*last || id > *last_id) {
            *last = t;
            *last_id = id;
        }
    }
    free(ids);
    return st;
}

static enum rec_status add_utt(am_sample *s, int index, int role, const char *text)
{
    am_utt *u = &s->utt[s->n_utt];
    u->index = index;
    u->role = role;
    u->avatar_id = (index % 2 == 0) ? s->speaker.id : s->listener.id;
    u->text = strdup(text);
    if (!u->text)
        return REC_NOMEM;
    s->n_utt++;
    return REC_OK;
}

static enum rec_status parse_utterances(rec_ctx *rc, const cJSON *turn, long tid, const char *response,
                                        am_sample *s)
{
    const cJSON *hist = cJSON_GetObjectItemCaseSensitive(turn, "dialogue_history");
    if (!cJSON_IsArray(hist))
        return rec_fail(rc, REC_MALFORMED, "turn '%ld': dialogue_history is missing or not an array", tid);
    int n_hist = cJSON_GetArraySize(hist);
    int total = n_hist + (response ? 1 : 0);
    int skip = total > AM_MAX_UTT ? total - AM_MAX_UTT : 0;
    int k = 0;
    for (const cJSON *e = hist->child; e; e = e->next, k++) {
        if (!cJSON_IsObject(e))
            return rec_fail(rc, REC_MALFORMED, "turn '%ld': dialogue_history[%d] is not an object", tid, k);
        long index = json_uint(cJSON_GetObjectItemCaseSensitive(e, "index"), 2000001);
        if (index < 0)
            return rec_fail(rc, REC_MALFORMED,
                            "turn '%ld': dialogue_history[%d].index is missing or not a non-negative integer",
                            tid, k);
        const cJSON *role_it = cJSON_GetObjectItemCaseSensitive(e, "role");
        int role = (int)(index % 2);
        if (role_it && !cJSON_IsNull(role_it)) {
            if (cJSON_IsString(role_it) && strcmp(role_it->valuestring, "speaker") == 0)
                role = AM_ROLE_SPEAKER;
            else if (cJSON_IsString(role_it) && strcmp(role_it->valuestring, "listener") == 0)
                role = AM_ROLE_LISTENER;
            else
                return rec_fail(rc, REC_MALFORMED,
                                "turn '%ld': dialogue_history[%d].role is not \"speaker\" or \"listener\"", tid,
                                k);
        }
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(e, "utterance");
        if (!cJSON_IsString(text))
            return rec_fail(rc, REC_MALFORMED,
                            "turn '%ld': dialogue_history[%d].utterance is missing or not a string", tid, k);
        if (k >= skip && add_utt(s, (int)index, role, text->valuestring) != REC_OK)
            return REC_NOMEM;
    }
    if (response && add_utt(s, (int)(2 * tid + 1), AM_ROLE_RESPONSE, response) != REC_OK)
        return REC_NOMEM;
    return REC_OK;
}

static enum rec_status parse_chain(rec_ctx *rc, const cJSON *chain, am_sample *s)
{
    s->label7 = s->label32 = -1;
    if (!chain)
        return REC_OK;
    enum rec_status st;
    const char *w = "chain_of_empathy.";
    if ((st = get_opt_string(rc, chain, "speaker_emotion", w, &s->emotion)) != REC_OK ||
        (st = get_opt_string(rc, chain, "event_scenario", w, &s->event_scenario)) != REC_OK ||
        (st = get_opt_string(rc, chain, "emotion_cause", w, &s->emotion_cause)) != REC_OK ||
        (st = get_opt_string(rc, chain, "goal_to_response", w, &s->goal_to_response)) != REC_OK)
        return st;
    if (!s->emotion || !s->emotion[0])
        return REC_OK;
    s->label32 = am_label32_of(s->emotion);
    if (s->label32 < 0)
        return rec_fail(rc, REC_LABEL, "unknown emotion label '%.64s'", s->emotion);
    s->label7 = am_label7_of_label32(s->label32);
    return REC_OK;
}

static enum rec_status parse_record(rec_ctx *rc, const cJSON *rec, am_sample *s)
{
    const cJSON *cid = cJSON_GetObjectItemCaseSensitive(rec, "conversation_id");
    if (!cJSON_IsString(cid))
        return rec_fail(rc, REC_MALFORMED, "conversation_id is missing or not a string");
    snprintf(rc->who, sizeof rc->who, "conversation %.64s", cid->valuestring);

    const cJSON *turns = cJSON_GetObjectItemCaseSensitive(rec, "turns");
    if (!cJSON_IsArray(turns))
        return rec_fail(rc, REC_MALFORMED, "turns is missing or not an array");
    if (!turns->child)
        return REC_EMPTY;

    const cJSON *first, *last, *first_chain, *last_chain;
    long first_id = 0, last_id = 0;
    enum rec_status st;
    if ((st = find_turns(rc, turns, &first, &first_id, &last, &last_id)) != REC_OK ||
        (st = turn_chain(rc, first, first_id, &first_chain)) != REC_OK ||
        (st = turn_chain(rc, last, last_id, &last_chain)) != REC_OK)
        return st;

    s->last_turn_id = (int)last_id;
    s->first_turn_id = (int)first_id;
    s->n_turns = cJSON_GetArraySize(turns);
    s->first_turn_labeled = chain_has_label(first_chain);
    if (!(s->conversation_id = strdup(cid->valuestring)))
        return REC_NOMEM;
    char *response = NULL;
    char where[48];
    snprintf(where, sizeof where, "turn '%ld': ", last_id);
    if ((st = parse_profile(rc, rec, "speaker_profile", &s->speaker)) != REC_OK ||
        (st = parse_profile(rc, rec, "listener_profile", &s->listener)) != REC_OK ||
        (st = get_opt_string(rc, rec, "topic", "", &s->topic)) != REC_OK ||
        (st = get_opt_string(rc, last, "context", where, &s->context)) != REC_OK ||
        (st = get_opt_string(rc, last, "response", where, &response)) != REC_OK)
        return st;
    if (!s->context && !(s->context = strdup("")))
        st = REC_NOMEM;
    if (st == REC_OK)
        st = parse_utterances(rc, last, last_id, response, s);
    free(response);
    if (st == REC_OK)
        st = parse_chain(rc, last_chain, s);
    return st;
}

/* ---- file level ---- */

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static char *read_whole_file(const char *path, size_t *len, int *errnum)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        *errnum = errno;
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    *errnum = buf ? (ferror(f) ? EIO : 0) : ENOMEM;
    fclose(f);
    if (*errnum) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static void line_col(const char *buf, size_t off, size_t *line, size_t *col)
{
    *line = 1;
    size_t bol = 0;
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n') {
            (*line)++;
            bol = i + 1;
        }
    *col = off - bol + 1;
}

static int push_skipped(am_corpus *c, const char *line)
{
    char **v = realloc(c->skipped, (c->n_skipped + 1) * sizeof *v);
    if (!v)
        return -1;
    c->skipped = v;
    if (!(v[c->n_skipped] = strdup(line)))
        return -1;
    c->n_skipped++;
    return 0;
}

static int push_sample(am_corpus *c, size_t *cap, am_sample *s)
{
    if (c->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 256;
        am_sample *v = realloc(c->v, ncap * sizeof *v);
        if (!v)
            return -1;
        c->v = v;
        *cap = ncap;
    }
    c->v[c->n++] = *s;
    return 0;
}

/* Walks the parsed array; returns AM_OK or an AM_ERR_* with err written. */
static int load_records(const char *path, const cJSON *root, enum am_on_error mode, am_corpus *c, char *err,
                        size_t errlen)
{
    size_t cap = 0, pos = 0;
    char line[400];
    for (const cJSON *rec = root->child; rec; rec = rec->next, pos++) {
        c->n_conversations++;
        am_sample s;
        memset(&s, 0, sizeof s);
        rec_ctx rc = {.line = line, .linelen = sizeof line};
        snprintf(rc.who, sizeof rc.who, "record %zu", pos);
        enum rec_status st = cJSON_IsObject(rec) ? parse_record(&rc, rec, &s)
                                                 : rec_fail(&rc, REC_MALFORMED, "not a JSON object");
        if (st == REC_OK) {
            if (push_sample(c, &cap, &s) == 0)
                continue;
            st = REC_NOMEM;
        }
        sample_free(&s);
        if (st == REC_EMPTY) {
            c->n_empty_turns++;
            continue;
        }
        if (st == REC_NOMEM) {
            set_err(err, errlen, "%s: out of memory at record %zu", path, pos);
            return AM_ERR_NOMEM;
        }
        if (mode == AM_ON_ERROR_FAIL) {
            set_err(err, errlen, "%s: %s (fix the record, or load with on_error=skip)", path, line);
            return st == REC_LABEL ? AM_ERR_LABEL : AM_ERR_RECORD;
        }
        if (st == REC_LABEL)
            c->n_unknown_label++;
        else
            c->n_malformed++;
        if (push_skipped(c, line) != 0) {
            set_err(err, errlen, "%s: out of memory at record %zu", path, pos);
            return AM_ERR_NOMEM;
        }
    }
    return AM_OK;
}

int am_corpus_load(const char *json_path, enum am_on_error mode, am_corpus *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    size_t len = 0;
    int errnum = 0;
    char *buf = read_whole_file(json_path, &len, &errnum);
    if (!buf) {
        set_err(err, errlen, "%s: cannot read: %s", json_path, strerror(errnum));
        return errnum == ENOMEM ? AM_ERR_NOMEM : AM_ERR_IO;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    int rc = AM_OK;
    size_t line, col;
    if (!root) {
        size_t off = (end && end >= buf && end <= buf + len) ? (size_t)(end - buf) : len;
        line_col(buf, off, &line, &col);
        set_err(err, errlen, "%s: invalid JSON at line %zu, column %zu (byte %zu)", json_path, line, col, off);
        rc = AM_ERR_PARSE;
    } else {
        size_t off = (size_t)(end - buf);
        while (off < len && buf[off] && strchr(" \t\r\n", buf[off]))
            off++;
        if (off < len) {
            line_col(buf, off, &line, &col);
            set_err(err, errlen, "%s: unexpected data after the top-level value at line %zu, column %zu",
                    json_path, line, col);
            rc = AM_ERR_PARSE;
        } else if (!cJSON_IsArray(root)) {
            set_err(err, errlen, "%s: the top level is not an array of conversations", json_path);
            rc = AM_ERR_PARSE;
        } else {
            rc = load_records(json_path, root, mode, out, err, errlen);
        }
    }
    cJSON_Delete(root);
    free(buf);
    if (rc != AM_OK)
        am_corpus_free(out);
    return rc;
}

void am_corpus_free(am_corpus *c)
{
    for (size_t i = 0; i < c->n; i++)
        sample_free(&c->v[i]);
    free(c->v);
    for (size_t i = 0; i < c->n_skipped; i++)
        free(c->skipped[i]);
    free(c->skipped);
    memset(c, 0, sizeof *c);
}
