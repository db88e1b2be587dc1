#include "dataset/sharder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/error.h"
#include "dataset/manifest.h"
#include "dataset/record.h"
#include "dataset/shard.h"
#include "dataset/split.h"
#include "dataset/wordpiece.h"

/* A vocabulary under construction: strings in order of first sight, id 0 = unknown, with an
 * open-addressing index so building over tens of thousands of texts stays linear. */
typedef struct {
    ds_manifest_vocab *mv;
    size_t *slots; /* id + 1, 0 empty */
    size_t cap;
} vocab_builder;

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static size_t *vocab_slot(const vocab_builder *b, const char *s)
{
    size_t i = (size_t)hash_str(s) & (b->cap - 1);
    while (b->slots[i] && strcmp(b->mv->items.v[b->slots[i] - 1], s))
        i = (i + 1) & (b->cap - 1);
    return &b->slots[i];
}

static int vocab_grow(vocab_builder *b)
{
    size_t cap = b->cap ? 2 * b->cap : 256;
    size_t *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return -1;
    size_t *old = b->slots;
    b->slots = slots;
    b->cap = cap;
    for (size_t id = 1; id < b->mv->items.n; id++)
        *vocab_slot(b, b->mv->items.v[id]) = id + 1;
    free(old);
    return 0;
}

static int vocab_add(vocab_builder *b, const char *s)
{
    if (!s || !*s)
        return 0;
    if ((b->mv->items.n + 1) * 2 > b->cap && vocab_grow(b))
        return -1;
    size_t *slot = vocab_slot(b, s);
    if (*slot)
        return 0;
    *slot = b->mv->items.n + 1;
    return ds_strv_push(&b->mv->items, s) == DS_SHARD_OK ? 0 : -1;
}

static int32_t vocab_id(const vocab_builder *b, const char *s)
{
    if (!s || !*s)
        return 0;
    size_t slot = *vocab_slot(b, s);
    return slot ? (int32_t)(slot - 1) : 0;
}

enum { V_AGE, V_GENDER, V_TIMBRE, V_TOPIC, V_EVENT, V_CAUSE, V_GOAL, N_VOCABS };
static const char *const vocab_names[N_VOCABS] = {"age",   "gender",         "timbre",          "topic",
                                                  "event_scenario", "emotion_cause", "goal_to_response"};

static const char *vocab_field(const am_sample *s, int v, int listener)
{
    const am_profile *p = listener ? &s->listener : &s->speaker;
    switch (v) {
    case V_AGE: return p->age;
    case V_GENDER: return p->gender;
    case V_TIMBRE: return p->timbre;
    case V_TOPIC: return s->topic;
    case V_EVENT: return s->event_scenario;
    case V_CAUSE: return s->emotion_cause;
    default: return s->goal_to_response;
    }
}

static int build_vocabs(ds_manifest *m, vocab_builder *b, const am_corpus *c, const split_result *sp)
{
    /* Adding a vocabulary may move the manifest's array: take pointers only once all exist. */
    for (int v = 0; v < N_VOCABS; v++)
        if (!ds_manifest_add_vocab(m, vocab_names[v]))
            return -1;
    for (int v = 0; v < N_VOCABS; v++) {
        b[v].mv = (ds_manifest_vocab *)ds_manifest_find_vocab(m, vocab_names[v]);
        if (ds_strv_push(&b[v].mv->items, "<unk>") != DS_SHARD_OK || vocab_grow(&b[v]))
            return -1;
    }
    for (size_t i = 0; i < sp->n_train; i++) {
        const am_sample *s = &c->v[sp->train[i]];
        for (int v = 0; v < N_VOCABS; v++)
            for (int who = 0; who < (v <= V_TIMBRE ? 2 : 1); who++)
                if (vocab_add(&b[v], vocab_field(s, v, who)))
                    return -1;
    }
    return 0;
}

static int32_t avatar_meta(int id) { return id > 0 && id < 32768 ? id : 0; }

/* Tokens of text into buf (uint16, [CLS] .. [SEP], at most max). */
static uint16_t encode(const wp_vocab *voc, const char *text, uint32_t *tmp, uint16_t *buf, int max)
{
    size_t n = wp_encode_special(voc, text ? text : "", text ? strlen(text) : 0, tmp, (size_t)max);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint16_t)tmp[i];
    return (uint16_t)n;
}

typedef struct {
    const ds_sharder_opts *o;
    const wp_vocab *voc;
    const vocab_builder *vb;
    uint32_t *tmp;
    uint16_t *tok; /* (1 + DS_MAX_UTT) token rows of max(utt, ctx) */
} record_maker;

static void make_record(record_maker *mk, const am_sample *s, uint32_t index, ds_record *r)
{
    const ds_sharder_opts *o = mk->o;
    memset(r, 0, sizeof *r);
    r->sample_index = index;
    snprintf(r->conversation_id, sizeof r->conversation_id, "%s", s->conversation_id);
    r->label7 = (int8_t)s->label7;
    r->label32 = (int8_t)s->label32;
    const vocab_builder *b = mk->vb;
    r->meta[DS_META_SPEAKER_AGE] = vocab_id(&b[V_AGE], s->speaker.age);
    r->meta[DS_META_SPEAKER_GENDER] = vocab_id(&b[V_GENDER], s->speaker.gender);
    r->meta[DS_META_SPEAKER_TIMBRE] = vocab_id(&b[V_TIMBRE], s->speaker.timbre);
    r->meta[DS_META_SPEAKER_ID] = avatar_meta(s->speaker.id);
    r->meta[DS_META_LISTENER_AGE] = vocab_id(&b[V_AGE], s->listener.age);
    r->meta[DS_META_LISTENER_GENDER] = vocab_id(&b[V_GENDER], s->listener.gender);
    r->meta[DS_META_LISTENER_TIMBRE] = vocab_id(&b[V_TIMBRE], s->listener.timbre);
    r->meta[DS_META_LISTENER_ID] = avatar_meta(s->listener.id);
    r->meta[DS_META_TOPIC] = vocab_id(&b[V_TOPIC], s->topic);
    r->meta[DS_META_EVENT_SCENARIO] = vocab_id(&b[V_EVENT], s->event_scenario);
    r->meta[DS_META_EMOTION_CAUSE] = vocab_id(&b[V_CAUSE], s->emotion_cause);
    r->meta[DS_META_GOAL_TO_RESPONSE] = vocab_id(&b[V_GOAL], s->goal_to_response);
    int width = o->ctx_max_tokens > o->utt_max_tokens ? o->ctx_max_tokens : o->utt_max_tokens;
    uint16_t *row = mk->tok;
    r->ctx = row;
    r->n_ctx = encode(mk->voc, s->context, mk->tmp, row, o->ctx_max_tokens);
    r->n_utt = s->n_utt;
    for (int u = 0; u < s->n_utt; u++) {
        row += width;
        ds_utt *du = &r->utt[u];
        du->role = (uint8_t)s->utt[u].role;
        du->index = (uint16_t)s->utt[u].index;
        du->avatar = (int16_t)(s->utt[u].avatar_id >= -1 && s->utt[u].avatar_id < 32768 ? s->utt[u].avatar_id : -1);
        du->tokens = row;
        du->n_tokens = encode(mk->voc, s->utt[u].text, mk->tmp, row, o->utt_max_tokens);
    }
}

static int write_split(record_maker *mk, ds_manifest *m, const char *name, const am_corpus *c,
                       const size_t *idx, size_t n, char *err, size_t errlen)
{
    ds_manifest_split *sp = ds_manifest_add_split(m, name);
    if (!sp)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
    sp->count = n;
    if (n == 0)
        return 0;
    ds_shard_writer *w;
    int rc = ds_shard_writer_open(mk->o->out_dir, name, 0, NULL, &w, err, errlen);
    if (rc)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const am_sample *s = &c->v[idx[i]];
        ds_record r;
        make_record(mk, s, (uint32_t)i, &r);
        rc = ds_shard_writer_put(w, &r, err, errlen);
        if (rc == 0 && ds_strv_push(&sp->conversation_ids, s->conversation_id) != DS_SHARD_OK)
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
        if (rc == 0 && s->label7 >= 0)
            sp->label7_hist[s->label7]++;
        if (rc == 0 && s->label32 >= 0)
            sp->label32_hist[s->label32]++;
    }
    if (rc) {
        ds_shard_writer_abort(w);
        return rc;
    }
    const char *file = ds_shard_writer_file(w);
    char *base = file ? strrchr(file, '/') : NULL;
    rc = ds_strv_push(&sp->shards, base ? base + 1 : file);
    if (rc == DS_SHARD_OK)
        rc = ds_shard_writer_close(w, err, errlen);
    else
        ds_shard_writer_abort(w);
    return rc;
}

static int find_json(const ds_sharder_opts *o, char *out, size_t outlen, char *err, size_t errlen)
{
    struct stat sb;
    if (o->json_path) {
        snprintf(out, outlen, "%s", o->json_path);
        return 0;
    }
    snprintf(out, outlen, "%s/train.json", o->data_dir);
    if (stat(out, &sb) == 0)
        return 0;
    snprintf(out, outlen, "%s/audio_v5_0/train.json", o->data_dir);
    if (stat(out, &sb) == 0)
        return 0;
    return ds_fail(err, errlen, DS_SHARD_ENOENT, "%s: no train.json at the root or in audio_v5_0/ (give --json FILE)",
                o->data_dir);
}

static int record_skips(ds_manifest *m, const am_corpus *c, const split_result *sp)
{
    size_t kept = sp->n_train + sp->n_val + sp->n_test;
    const struct {
        const char *reason;
        size_t n;
    } counts[] = {
        {"empty_turns", c->n_empty_turns},
        {"unknown_label", c->n_unknown_label},
        {"malformed", c->n_malformed},
        {"first_turn_unlabeled", c->n >= kept ? c->n - kept : 0},
    };
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
        for (size_t k = 0; k < counts[i].n; k++)
            if (ds_manifest_add_skip(m, counts[i].reason, NULL) != DS_SHARD_OK)
                return -1;
    for (size_t i = 0; i < c->n_skipped; i++)
        if (ds_strv_push(&m->skip_lines, c->skipped[i]) != DS_SHARD_OK)
            return -1;
    return 0;
}

/* Writes the shards and, last, the manifest of a loaded corpus. */
static int shard_corpus(const ds_sharder_opts *o, const wp_vocab *voc, const am_corpus *c, ds_sharder_summary *sum,
                        char *err, size_t errlen)
{
    split_result sp;
    int rc = split_make_seed(c, o->split_seed, &sp, err, errlen);
    if (rc)
        return rc;
    /* An old manifest would vouch for shards this run is about to replace: the folder counts as
     * complete again only when the new manifest is published. */
    char manifest_path[4200];
    snprintf(manifest_path, sizeof manifest_path, "%s/%s", o->out_dir, DS_MANIFEST_FILE);
    if (mkdir(o->out_dir, 0755) != 0 && errno != EEXIST)
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot create: %s", o->out_dir, strerror(errno));
    else if (unlink(manifest_path) != 0 && errno != ENOENT)
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot remove: %s", manifest_path, strerror(errno));
    if (rc) {
        split_free(&sp);
        return rc;
    }
    ds_manifest m = {
        .version = DS_MANIFEST_VERSION,
        .format_version = DS_RECORD_VERSION,
        .labels = o->labels,
        .created_by = strdup("empd 0.1 shard"),
        .source_data_dir = strdup(o->data_dir),
        .source_json = strdup(sum->json_path),
        .vocab_size = (int)wp_vocab_size(voc),
        .utt_max_tokens = o->utt_max_tokens,
        .ctx_max_tokens = o->ctx_max_tokens,
    };
    snprintf(m.vocab_md5, sizeof m.vocab_md5, "%s", wp_vocab_md5(voc));
    vocab_builder vb[N_VOCABS] = {{0}};
    int width = o->ctx_max_tokens > o->utt_max_tokens ? o->ctx_max_tokens : o->utt_max_tokens;
    record_maker mk = {.o = o, .voc = voc, .vb = vb, .tmp = malloc((size_t)width * sizeof(uint32_t)),
                       .tok = malloc((size_t)width * (1 + DS_MAX_UTT) * sizeof(uint16_t))};
    if (!mk.tmp || !mk.tok || !m.created_by || !m.source_data_dir || !m.source_json || build_vocabs(&m, vb, c, &sp) ||
        record_skips(&m, c, &sp))
        rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    if (rc == 0)
        rc = write_split(&mk, &m, "train", c, sp.train, sp.n_train, err, errlen);
    if (rc == 0)
        rc = write_split(&mk, &m, "val", c, sp.val, sp.n_val, err, errlen);
    if (rc == 0)
        rc = write_split(&mk, &m, "test", c, sp.test, sp.n_test, err, errlen);
    if (rc == 0)
        rc = ds_manifest_write(&m, manifest_path, err, errlen);
    if (rc == 0) {
        sum->n_train = sp.n_train;
        sum->n_val = sp.n_val;
        sum->n_test = sp.n_test;
        sum->n_skipped = c->n_empty_turns + c->n_unknown_label + c->n_malformed +
                         (c->n - (sp.n_train + sp.n_val + sp.n_test));
    }
    for (int v = 0; v < N_VOCABS; v++)
        free(vb[v].slots);
    free(mk.tmp);
    free(mk.tok);
    ds_manifest_free(&m);
    split_free(&sp);
    return rc;
}

int ds_sharder_run(const ds_sharder_opts *o, ds_sharder_summary *sum, char *err, size_t errlen)
{
    memset(sum, 0, sizeof *sum);
    if (o->utt_max_tokens < 2 || o->utt_max_tokens > 65535 || o->ctx_max_tokens < 2 || o->ctx_max_tokens > 65535)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "token limits must be within 2..65535 (utterance %d, context %d)",
                    o->utt_max_tokens, o->ctx_max_tokens);
    if (o->labels != 7 && o->labels != 32)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "labels must be 7 or 32, got %d", o->labels);
    int rc = find_json(o, sum->json_path, sizeof sum->json_path, err, errlen);
    if (rc)
        return rc;
    wp_vocab *voc = NULL;
    if ((rc = wp_vocab_load(o->vocab_path, &voc, err, errlen)))
        return rc;
    am_corpus c;
    if (wp_vocab_size(voc) > 65536)
        rc = ds_fail(err, errlen, DS_SHARD_EINVAL, "%s: %zu tokens do not fit the shards' 16-bit ids", o->vocab_path,
                  wp_vocab_size(voc));
    /* The output folder appears only once the input has proven readable. */
    else if ((rc = am_corpus_load(sum->json_path, o->on_error, &c, err, errlen)) == 0) {
        rc = shard_corpus(o, voc, &c, sum, err, errlen);
        am_corpus_free(&c);
    }
    wp_vocab_free(voc);
    return rc;
}
