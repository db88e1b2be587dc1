/* synth_text.c: the mini-AvaMERG text generator (see synth_text.h). */
#include "dataset/synth_text.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/avamerg.h"
#include "dataset/fsync_dir.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- PRNG: splitmix64, so the bytes depend on the seed only, on every platform ---- */

typedef struct {
    uint64_t s;
} synth_rng;

static uint64_t rng_next(synth_rng *r)
{
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double rng_unit(synth_rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

static size_t rng_below(synth_rng *r, size_t n) { return (size_t)(rng_unit(r) * (double)n); }

#define PICK(r, arr) ((arr)[rng_below((r), NELEM(arr))])

/* ---- vocabulary ---- */

/* Counts over the real 24,696 labeled conversations where avamerg.md gives them (anxious, sad, annoyed,
 * surprised, faithful), the others set so each 7-class total matches the seed's test split x 5.
 * Indexed by am_label32 id (alphabetical). */
static const int label32_weight[AM_N_LABEL32] = {
    495 /* afraid */,   520 /* angry */,     988 /* annoyed */,     470 /* anticipating */, 7067 /* anxious */,
    495 /* apprehensive */, 490 /* ashamed */, 480 /* caring */,   500 /* confident */,   470 /* content */,
    500 /* devastated */, 495 /* disappointed */, 445 /* disgusted */, 490 /* embarrassed */, 520 /* excited */,
    294 /* faithful */, 487 /* furious */,   495 /* grateful */,    480 /* guilty */,      480 /* hopeful */,
    492 /* impressed */, 535 /* jealous */,  470 /* joyful */,      495 /* lonely */,      490 /* nostalgic */,
    470 /* prepared */, 505 /* proud */,     2183 /* sad */,        490 /* sentimental */, 813 /* surprised */,
    495 /* terrified */, 470 /* trusting */};

static const char *const cues[AM_N_LABEL7][8] = {
    {"so happy", "thrilled", "delighted", "over the moon", "overjoyed", "grinning ear to ear 😊", "ecstatic",
     "on cloud nine"},
    {"shocked", "stunned", "totally caught off guard", "speechless 😮", "astonished", "taken aback",
     "flabbergasted", "blindsided"},
    {"furious", "livid", "so mad", "fed up", "fuming 😠", "enraged", "outraged", "irritated beyond words"},
    {"scared", "terrified", "frightened", "shaking with fear", "petrified 😨", "panicking", "horrified",
     "dreading it"},
    {"heartbroken", "miserable", "crushed", "in tears 😢", "gloomy", "down in the dumps", "sorrowful",
     "blue and empty"},
    {"grossed out", "disgusted", "repulsed", "nauseated 🤢", "revolted", "sickened", "appalled by the filth",
     "queasy"},
    {"jealous", "envious", "bitter that they got it", "resentful", "green with envy", "covetous",
     "spiteful", "begrudging"}};

static const char *const cue_templates[] = {
    "Honestly, I feel %s about it.", "I was %s when it happened.", "I’m still %s, to be honest.",
    "It left me %s.", "You know, I am just %s right now.", "Everyone could see I was %s."};

static const char *const fillers[] = {
    "I went to the café after work.", "We talked about it over dinner.", "It happened last Tuesday.",
    "My friend José was there too.", "The weather was “okay”, nothing special.", "Anyway, that is what happened.",
    "It was near the old library downtown.", "I had to take the bus because the car was in the shop.",
    "There was a long queue at the post office.", "My neighbour Zoë mentioned it first.",
    "I’m not sure what to make of it.", "It took most of the afternoon.", "We had crème brûlée afterwards.",
    "The meeting ran a bit long.", "I told my sister about it on the phone.", "It was the third time this month.",
    "So yeah… that was my week.", "I read about it in the newspaper.", "The kids were at school at the time.",
    "It is a long story, really 🙂"};

static const char *const listener_lines[] = {
    "Oh really? Tell me more.", "How did that go?", "I see what you mean.", "What happened next?",
    "That must have been quite something.", "Did you talk to anyone about it?", "Mmm, I hear you 🙂",
    "How are you doing now?", "When did this happen?", "I’m listening, go on.", "Was anyone with you?",
    "That’s a lot to deal with."};

static const char *const reflect_templates[] = {"It sounds like you were %s.", "No wonder you feel %s.",
                                                "I can tell you’re %s."};

static const char *const scenarios[] = {
    "a conversation with a neighbour", "a trip to the market", "a phone call from an old friend",
    "a meeting at work", "a family dinner", "a visit to the doctor", "a weekend away", "the new school term",
    "a letter that arrived yesterday", "a football match", "a cooking class", "a job interview",
    "a delayed flight", "a birthday party", "a move to a new flat", "a community event"};

static const char *const goals[AM_N_LABEL7] = {
    "Share the joy and ask for details.", "Acknowledge the surprise and explore it.",
    "Validate the anger without escalating.", "Reassure and help them feel safe.",
    "Comfort them and show understanding.", "Acknowledge the aversion calmly.",
    "Gently address the envy and refocus."};

static const char *const topics[] = {"Education",      "Entertainment",      "Family",
                                     "Food & Cooking", "Health & Wellness",  "Hobbies & Interests",
                                     "Life Events",    "Personal Growth",    "Relationships",
                                     "Social Issues",  "Sports",             "Technology",
                                     "Travel & Adventure", "Work & Career"};

static const char *const ages[] = {"child", "young", "middle-aged", "elderly"};
static const char *const genders[] = {"male", "female"};
static const char *const timbres[] = {"high", "mid", "low"};

/* ---- one conversation ---- */

#define MAX_TURNS 5 /* ids up to 4 when turn "0" is skipped: 10 utterances at most */

typedef struct {
    int label32, label7;
    int informative; /* this conversation's speaker turns carry its class's words */
    int n_turns, turn_ids[MAX_TURNS];
    int n_utt; /* utterances 0 .. 2 * max_turn_id + 1 */
    char utt[2 * MAX_TURNS][400];
    char context[300];
    const char *scenario;
} convo;

static void make_cue_sentence(synth_rng *r, int cls, char *out, size_t len)
{
    snprintf(out, len, PICK(r, cue_templates), PICK(r, cues[cls]));
}

static int other_class(synth_rng *r, int cls) { return (cls + 1 + (int)rng_below(r, AM_N_LABEL7 - 1)) % AM_N_LABEL7; }

/* Returns 1 when the utterance carries a cue of the conversation's own class. */
static int make_speaker_utt(synth_rng *r, const convo *c, char *out, size_t len)
{
    char cue[200];
    int own = 0;
    double u = rng_unit(r);
    if (c->informative && u < 0.55) {
        make_cue_sentence(r, c->label7, cue, sizeof cue);
        own = 1;
    } else if (c->informative ? u < 0.70 : u < 0.30) {
        make_cue_sentence(r, c->informative ? other_class(r, c->label7) : (int)rng_below(r, AM_N_LABEL7), cue,
                          sizeof cue);
    } else {
        snprintf(cue, sizeof cue, "%s", PICK(r, fillers));
    }
    if (rng_unit(r) < 0.5)
        snprintf(out, len, "%s %s", PICK(r, fillers), cue);
    else
        snprintf(out, len, "%s", cue);
    return own;
}

static void make_convo(synth_rng *r, int label32, convo *c)
{
    memset(c, 0, sizeof *c);
    c->label32 = label32;
    c->label7 = am_label7_of_label32(label32);
    c->informative = rng_unit(r) < 0.62;
    c->n_turns = 1 + (int)rng_below(r, 4);
    int first = rng_unit(r) < 0.05 ? 1 : 0; /* turn "0" missing */
    for (int t = 0; t < c->n_turns; t++)
        c->turn_ids[t] = first + t;
    if (c->n_turns >= 2 && c->n_turns <= 3 && rng_unit(r) < 0.04)
        c->turn_ids[c->n_turns - 1]++; /* a gap before the last turn */
    c->n_utt = 2 * c->turn_ids[c->n_turns - 1] + 2;

    int own_cues = 0;
    for (int k = 0; k < c->n_utt; k++) {
        if (k % 2 == 0)
            own_cues += make_speaker_utt(r, c, c->utt[k], sizeof c->utt[k]);
        else if (c->informative && rng_unit(r) < 0.2)
            snprintf(c->utt[k], sizeof c->utt[k], PICK(r, reflect_templates), PICK(r, cues[c->label7]));
        else
            snprintf(c->utt[k], sizeof c->utt[k], "%s", PICK(r, listener_lines));
    }
    /* An informative conversation must say its emotion at least once, or "informative" means nothing. */
    if (c->informative && !own_cues)
        make_cue_sentence(r, c->label7, c->utt[0], sizeof c->utt[0]);
    for (int k = 0; k < c->n_utt; k++)
        if (rng_unit(r) < 0.01)
            c->utt[k][0] = '\0';
    c->scenario = PICK(r, scenarios);
    snprintf(c->context, sizeof c->context, "I want to tell you about %s.", c->scenario);
}

/* ---- JSON ---- */

/* cJSON's Add* return NULL on allocation failure; one flag collects them so the tree is checked once. */
typedef struct {
    int failed;
} builder;

static cJSON *add_obj(builder *b, cJSON *parent, const char *key)
{
    cJSON *o = key ? cJSON_AddObjectToObject(parent, key) : cJSON_CreateObject();
    if (!key && o && !cJSON_AddItemToArray(parent, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    b->failed |= o == NULL;
    return o;
}

static cJSON *add_arr(builder *b, cJSON *parent, const char *key)
{
    cJSON *a = cJSON_AddArrayToObject(parent, key);
    b->failed |= a == NULL;
    return a;
}

static void add_str(builder *b, cJSON *o, const char *key, const char *v)
{
    if (o)
        b->failed |= cJSON_AddStringToObject(o, key, v) == NULL;
}

static void add_num(builder *b, cJSON *o, const char *key, double v)
{
    if (o)
        b->failed |= cJSON_AddNumberToObject(o, key, v) == NULL;
}

static void add_profile(builder *b, synth_rng *r, cJSON *rec, const char *key, int id)
{
    cJSON *p = add_obj(b, rec, key);
    add_str(b, p, "age", PICK(r, ages));
    add_str(b, p, "gender", PICK(r, genders));
    add_str(b, p, "timbre", PICK(r, timbres));
    add_num(b, p, "ID", id);
}

static void add_chain(builder *b, cJSON *turn, const convo *c)
{
    char buf[300];
    cJSON *ch = add_obj(b, turn, "chain_of_empathy");
    add_str(b, ch, "speaker_emotion", am_label32_name(c->label32));
    snprintf(buf, sizeof buf, "The speaker describes %s.", c->scenario);
    add_str(b, ch, "event_scenario", buf);
    snprintf(buf, sizeof buf, "The speaker feels %s because of %s.", am_label32_name(c->label32), c->scenario);
    add_str(b, ch, "emotion_cause", buf);
    add_str(b, ch, "goal_to_response", goals[c->label7]);
}

/* One conversation; labeled adds profiles, topic, responses and chain_of_empathy (train.json's schema). */
static void add_conversation(builder *b, synth_rng *r, cJSON *root, const char *cid, const convo *c, int labeled)
{
    cJSON *rec = add_obj(b, root, NULL);
    add_str(b, rec, "conversation_id", cid);
    if (labeled) {
        int sid = 1 + (int)rng_below(r, 99);
        int lid = rng_unit(r) < 0.03 ? sid : 1 + (int)rng_below(r, 99);
        add_profile(b, r, rec, "speaker_profile", sid);
        add_profile(b, r, rec, "listener_profile", lid);
        if (rng_unit(r) >= 0.03)
            add_str(b, rec, "topic", PICK(r, topics));
    }
    cJSON *turns = add_arr(b, rec, "turns");
    int order[MAX_TURNS];
    for (int t = 0; t < c->n_turns; t++)
        order[t] = t;
    if (c->n_turns >= 2 && rng_unit(r) < 0.05) { /* out of order in the file */
        int t = order[0];
        order[0] = order[c->n_turns - 1];
        order[c->n_turns - 1] = t;
    }
    int first_unlabeled = labeled && c->n_turns >= 2 && rng_unit(r) < 0.03;
    for (int k = 0; k < c->n_turns && turns; k++) {
        int t = order[k], tid = c->turn_ids[t];
        char tid_s[16];
        snprintf(tid_s, sizeof tid_s, "%d", tid);
        cJSON *turn = add_obj(b, turns, NULL);
        add_str(b, turn, "turn_id", tid_s);
        add_str(b, turn, "context", c->context);
        cJSON *hist = turn ? add_arr(b, turn, "dialogue_history") : NULL;
        for (int i = 0; i <= 2 * tid && hist; i++) {
            cJSON *e = add_obj(b, hist, NULL);
            add_num(b, e, "index", i);
            add_str(b, e, "role", i % 2 ? "listener" : "speaker");
            add_str(b, e, "utterance", c->utt[i]);
        }
        if (labeled) {
            add_str(b, turn, "response", c->utt[2 * tid + 1]);
            if (!(t == 0 && first_unlabeled))
                add_chain(b, turn, c);
        }
    }
}

/* Labels for n conversations: each of the 32 once (when n >= 32), the rest by weight, then shuffled. */
static int *draw_labels(synth_rng *r, int n)
{
    int *lab = malloc((size_t)n * sizeof *lab);
    if (!lab)
        return NULL;
    long total = 0;
    for (int i = 0; i < AM_N_LABEL32; i++)
        total += label32_weight[i];
    for (int k = 0; k < n; k++) {
        if (k < AM_N_LABEL32) {
            lab[k] = k;
            continue;
        }
        long x = (long)rng_below(r, (size_t)total);
        int i = 0;
        while (x >= label32_weight[i])
            x -= label32_weight[i++];
        lab[k] = i;
    }
    for (int k = n - 1; k > 0; k--) {
        int j = (int)rng_below(r, (size_t)k + 1), t = lab[k];
        lab[k] = lab[j];
        lab[j] = t;
    }
    return lab;
}

static cJSON *build_train(synth_rng *r, int n, int *next_id, builder *b)
{
    cJSON *root = cJSON_CreateArray();
    int *lab = root ? draw_labels(r, n) : NULL;
    b->failed |= lab == NULL;
    for (int k = 0; k < n && !b->failed; k++) {
        convo c;
        char cid[16];
        *next_id += 1 + (int)rng_below(r, 2);
        snprintf(cid, sizeof cid, "%05d", *next_id);
        make_convo(r, lab[k], &c);
        add_conversation(b, r, root, cid, &c, 1);
    }
    free(lab);
    return root;
}

static cJSON *build_test(synth_rng *r, int n, int *next_id, builder *b)
{
    cJSON *root = cJSON_CreateArray();
    b->failed |= root == NULL;
    for (int k = 0; k < n && !b->failed; k++) {
        char cid[16];
        *next_id += 1 + (int)rng_below(r, 2);
        snprintf(cid, sizeof cid, "%05d", *next_id);
        if (rng_unit(r) < 0.22) { /* the real test.json: 858 of 3,979 have no turns */
            cJSON *rec = add_obj(b, root, NULL);
            add_str(b, rec, "conversation_id", cid);
            add_arr(b, rec, "turns");
            continue;
        }
        convo c;
        make_convo(r, (int)rng_below(r, AM_N_LABEL32), &c);
        add_conversation(b, r, root, cid, &c, 0);
    }
    return root;
}

/* ---- files ---- */

static int write_atomic(const char *dir, const char *name, const char *text, char *err, size_t errlen)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        return SYNTH_TEXT_ERR_IO;
    }
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int ok = off == len && fsync(fd) == 0;
    int saved = errno;
    ok = (close(fd) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path, strerror(ok ? errno : saved));
        unlink(tmp);
        return SYNTH_TEXT_ERR_IO;
    }
    return SYNTH_TEXT_OK;
}

static int write_tree(const char *dir, const char *name, cJSON *root, char *err, size_t errlen)
{
    char *text = cJSON_Print(root);
    if (!text) {
        snprintf(err, errlen, "%s/%s: out of memory while formatting", dir, name);
        return SYNTH_TEXT_ERR_NOMEM;
    }
    int rc = write_atomic(dir, name, text, err, errlen);
    cJSON_free(text);
    return rc;
}

int synth_text_write(const char *out_dir, int n_conversations, uint64_t seed, char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof dummy;
    }
    if (n_conversations < 1 || n_conversations > SYNTH_TEXT_MAX_CONVERSATIONS) {
        snprintf(err, errlen, "synth_text: n_conversations %d is outside [1, %d]", n_conversations,
                 SYNTH_TEXT_MAX_CONVERSATIONS);
        return SYNTH_TEXT_ERR_ARG;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: cannot create the directory: %s", out_dir, strerror(errno));
        return SYNTH_TEXT_ERR_IO;
    }
    synth_rng r = {seed};
    builder b = {0};
    int next_id = 0;
    cJSON *train = build_train(&r, n_conversations, &next_id, &b);
    cJSON *test = build_test(&r, n_conversations / 5 + 1, &next_id, &b);
    int rc;
    if (b.failed || !train || !test) {
        snprintf(err, errlen, "%s: out of memory while building the corpus", out_dir);
        rc = SYNTH_TEXT_ERR_NOMEM;
    } else if ((rc = write_tree(out_dir, "train.json", train, err, errlen)) == SYNTH_TEXT_OK) {
        rc = write_tree(out_dir, "test.json", test, err, errlen);
    }
    cJSON_Delete(train);
    cJSON_Delete(test);
    if (rc == SYNTH_TEXT_OK) {
        /* The renames are durable only once the directory itself is synced. */
        ds_fsync_dir(out_dir);
    }
    return rc;
}
