#include "dataset/sharder.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/error.h"
#include "dataset/md5.h"
#include "dataset/shard.h"
#include "dataset/sharder_internal.h"

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    while (*s)
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    return h;
}

static size_t *vocab_slot(const sh_vocab *b, const char *s)
{
    size_t i = (size_t)hash_str(s) & (b->cap - 1);
    while (b->slots[i] && strcmp(b->mv->items.v[b->slots[i] - 1], s))
        i = (i + 1) & (b->cap - 1);
    return &b->slots[i];
}

static int vocab_grow(sh_vocab *b)
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

static int vocab_add(sh_vocab *b, const char *s)
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

static int32_t vocab_id(const sh_vocab *b, const char *s)
{
    if (!s || !*s)
        return 0;
    size_t slot = *vocab_slot(b, s);
    return slot ? (int32_t)(slot - 1) : 0;
}

static const char *const vocab_names[SH_N_VOCABS] = {"age",   "gender",         "timbre",          "topic",
                                                  "event_scenario", "emotion_cause", "goal_to_response"};

static const char *vocab_field(const am_sample *s, int v, int listener)
{
    const am_profile *p = listener ? &s->listener : &s->speaker;
    switch (v) {
    case SH_V_AGE: return p->age;
    case SH_V_GENDER: return p->gender;
    case SH_V_TIMBRE: return p->timbre;
    case SH_V_TOPIC: return s->topic;
    case SH_V_EVENT: return s->event_scenario;
    case SH_V_CAUSE: return s->emotion_cause;
    default: return s->goal_to_response;
    }
}

static int build_vocabs(ds_manifest *m, sh_vocab *b, const am_corpus *c, const split_result *sp)
{
    /* Adding a vocabulary may move the manifest's array: take pointers only once all exist. */
    for (int v = 0; v < SH_N_VOCABS; v++)
        if (!ds_manifest_add_vocab(m, vocab_names[v]))
            return -1;
    for (int v = 0; v < SH_N_VOCABS; v++) {
        b[v].mv = (ds_manifest_vocab *)ds_manifest_find_vocab(m, vocab_names[v]);
        if (ds_strv_push(&b[v].mv->items, "<unk>") != DS_SHARD_OK || vocab_grow(&b[v]))
            return -1;
    }
    for (size_t i = 0; i < sp->n_train; i++) {
        const am_sample *s = &c->v[sp->train[i]];
        for (int v = 0; v < SH_N_VOCABS; v++)
            for (int who = 0; who < (v <= SH_V_TIMBRE ? 2 : 1); who++)
                if (vocab_add(&b[v], vocab_field(s, v, who)))
                    return -1;
    }
    return 0;
}

/* The vocabularies of `like` (a training manifest), ids unchanged. */
static int copy_vocabs(ds_manifest *m, sh_vocab *b, const ds_manifest *like, char *err, size_t errlen)
{
    for (int v = 0; v < SH_N_VOCABS; v++)
        if (!ds_manifest_find_vocab(like, vocab_names[v]))
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "the training shards' manifest has no '%s' vocabulary",
                           vocab_names[v]);
    for (int v = 0; v < SH_N_VOCABS; v++)
        if (!ds_manifest_add_vocab(m, vocab_names[v]))
            return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    for (int v = 0; v < SH_N_VOCABS; v++) {
        const ds_manifest_vocab *from = ds_manifest_find_vocab(like, vocab_names[v]);
        b[v].mv = (ds_manifest_vocab *)ds_manifest_find_vocab(m, vocab_names[v]);
        if (ds_strv_push(&b[v].mv->items, from->items.n ? from->items.v[0] : "<unk>") != DS_SHARD_OK ||
            vocab_grow(&b[v]))
            return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
        for (size_t id = 1; id < from->items.n; id++)
            if (vocab_add(&b[v], from->items.v[id]))
                return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
        if (b[v].mv->items.n != from->items.n)
            return ds_fail(err, errlen, DS_SHARD_EINVAL, "the training shards' '%s' vocabulary repeats an entry",
                           vocab_names[v]);
    }
    return 0;
}

/* Every conversation with a turn, in file order, into test (opts.like). */
static int split_all(const am_corpus *c, split_result *sp, char *err, size_t errlen)
{
    memset(sp, 0, sizeof *sp);
    sp->test = malloc((c->n + 1) * sizeof *sp->test);
    sp->train = malloc(sizeof *sp->train);
    sp->val = malloc(sizeof *sp->val);
    if (!sp->test || !sp->train || !sp->val) {
        split_free(sp);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    }
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].n_utt > 0)
            sp->test[sp->n_test++] = i;
    if (sp->n_test == 0) {
        split_free(sp);
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "no conversation with a turn to encode");
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

void sh_record_text(const ds_sharder *s, const am_sample *sample, uint32_t index, uint32_t *tmp, uint16_t *tok,
                    ds_record *r)
{
    const ds_sharder_opts *o = s->o;
    memset(r, 0, sizeof *r);
    r->sample_index = index;
    snprintf(r->conversation_id, sizeof r->conversation_id, "%s", sample->conversation_id);
    r->label7 = (int8_t)sample->label7;
    r->label32 = (int8_t)sample->label32;
    const sh_vocab *b = s->vb;
    r->meta[DS_META_SPEAKER_AGE] = vocab_id(&b[SH_V_AGE], sample->speaker.age);
    r->meta[DS_META_SPEAKER_GENDER] = vocab_id(&b[SH_V_GENDER], sample->speaker.gender);
    r->meta[DS_META_SPEAKER_TIMBRE] = vocab_id(&b[SH_V_TIMBRE], sample->speaker.timbre);
    r->meta[DS_META_SPEAKER_ID] = avatar_meta(sample->speaker.id);
    r->meta[DS_META_LISTENER_AGE] = vocab_id(&b[SH_V_AGE], sample->listener.age);
    r->meta[DS_META_LISTENER_GENDER] = vocab_id(&b[SH_V_GENDER], sample->listener.gender);
    r->meta[DS_META_LISTENER_TIMBRE] = vocab_id(&b[SH_V_TIMBRE], sample->listener.timbre);
    r->meta[DS_META_LISTENER_ID] = avatar_meta(sample->listener.id);
    r->meta[DS_META_TOPIC] = vocab_id(&b[SH_V_TOPIC], sample->topic);
    r->meta[DS_META_EVENT_SCENARIO] = vocab_id(&b[SH_V_EVENT], sample->event_scenario);
    r->meta[DS_META_EMOTION_CAUSE] = vocab_id(&b[SH_V_CAUSE], sample->emotion_cause);
    r->meta[DS_META_GOAL_TO_RESPONSE] = vocab_id(&b[SH_V_GOAL], sample->goal_to_response);
    int width = o->ctx_max_tokens > o->utt_max_tokens ? o->ctx_max_tokens : o->utt_max_tokens;
    uint16_t *row = tok;
    r->ctx = row;
    r->n_ctx = encode(s->voc, sample->context, tmp, row, o->ctx_max_tokens);
    r->n_utt = sample->n_utt;
    for (int u = 0; u < sample->n_utt; u++) {
        row += width;
        ds_utt *du = &r->utt[u];
        const am_utt *au = &sample->utt[u];
        du->role = (uint8_t)au->role;
        du->index = (uint16_t)au->index;
        du->avatar = (int16_t)(au->avatar_id >= -1 && au->avatar_id < 32768 ? au->avatar_id : -1);
        du->tokens = row;
        du->n_tokens = encode(s->voc, au->text, tmp, row, o->utt_max_tokens);
    }
    r->has_audio = (uint8_t)(o->audio != 0);
    r->has_video = (uint8_t)(o->video != 0);
    if (o->video) {
        r->frame_format = (uint8_t)o->frame_format;
        r->frame_w = (uint16_t)o->frame_w;
        r->frame_h = (uint16_t)o->frame_h;
    }
}

void sh_part_of(const ds_sharder *s, size_t g, const sh_split **sp, size_t *part)
{
    int i = 0;
    while (i < 2 && g >= s->splits[i].first_part + s->splits[i].n_parts)
        i++;
    *sp = &s->splits[i];
    *part = g - s->splits[i].first_part;
}

void sh_part_paths(const ds_sharder *s, const sh_split *sp, size_t part, char *lmdb, size_t ln, char *report,
                   size_t rn)
{
    char name[64];
    ds_shard_file_name(name, sizeof name, sp->name, (int)part);
    snprintf(lmdb, ln, "%s/%s", s->o->out_dir, name);
    snprintf(report, rn, "%s/%s/%s.json", s->o->out_dir, DS_SHARDER_PARTS_DIR, name);
}

void ds_sharder_opts_default(ds_sharder_opts *o)
{
    *o = (ds_sharder_opts){
        .utt_max_tokens = 128, .ctx_max_tokens = 256, .split_seed = 42, .on_error = AM_ON_ERROR_SKIP,
        .labels = 7, .audio = 1, .video = 1, .audio_max_seconds = 10.0, .frame_w = 224, .frame_h = 224,
        .frame_format = DS_FRAME_JPEG, .jpeg_quality = 90, .threads = 1, .part_samples = 64,
    };
}

static int check_opts(const ds_sharder_opts *o, char *err, size_t errlen)
{
    if (!o->data_dir || !o->out_dir || !o->vocab_path)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "sharder: data_dir, out_dir and vocab_path are required");
    if (o->utt_max_tokens < 2 || o->utt_max_tokens > 65535 || o->ctx_max_tokens < 2 || o->ctx_max_tokens > 65535)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "token limits must be within 2..65535 (utterance %d, context %d)",
                       o->utt_max_tokens, o->ctx_max_tokens);
    if (o->labels != 7 && o->labels != 32)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "labels must be 7 or 32, got %d", o->labels);
    if (!(o->audio_max_seconds > 0 && o->audio_max_seconds <= 600))
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "audio max seconds must be in (0, 600], got %g",
                       o->audio_max_seconds);
    if (o->frame_w < 16 || o->frame_w > 1024 || o->frame_h < 16 || o->frame_h > 1024)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "frame size must be 16..1024 each, got %dx%d", o->frame_w,
                       o->frame_h);
    if (o->frame_format != DS_FRAME_JPEG && o->frame_format != DS_FRAME_RAW)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "frame format must be jpeg or raw");
    if (o->jpeg_quality < 1 || o->jpeg_quality > 100)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "jpeg quality must be 1..100, got %d", o->jpeg_quality);
    if (o->threads < 1 || o->threads > 256)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "threads must be 1..256, got %d", o->threads);
    if (o->part_samples < 1)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "samples per shard file must be >= 1, got %d", o->part_samples);
    return 0;
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

/* A medium's folder must exist when that medium is asked for: a wrong path would otherwise shard a whole
 * corpus as "every file missing". */
static int media_dir(const char *given, const char *data_dir, const char *sub, char *out, size_t outlen,
                     const char *flag, char *err, size_t errlen)
{
    struct stat sb;
    if (given)
        snprintf(out, outlen, "%s", given);
    else
        snprintf(out, outlen, "%s/%s", data_dir, sub);
    if (stat(out, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "%s: no such folder (give %s DIR, or leave that medium out with "
                       "--media)", out, flag);
    return 0;
}

/* Everything a record's bytes depend on; a part made under another fingerprint is rebuilt. */
static int make_fingerprint(ds_sharder *s, char *err, size_t errlen)
{
    const ds_sharder_opts *o = s->o;
    char json_md5[33];
    if (md5_file_hex(s->json_path, json_md5, err, errlen))
        return DS_SHARD_EIO;
    /* Folders by their real path: the same corpus reached from another working directory resumes. */
    char adir[PATH_MAX] = "", vdir[PATH_MAX] = "";
    if (o->audio && !realpath(s->audio_dir, adir))
        snprintf(adir, sizeof adir, "%s", s->audio_dir);
    if (o->video && !realpath(s->video_dir, vdir))
        snprintf(vdir, sizeof vdir, "%s", s->video_dir);
    char text[10000];
    int n = snprintf(text, sizeof text,
                     "empd-shard-v%d|json %s|vocab %s|split seed %lld|tokens %d %d|audio %d %s %.6g|video %d %s %dx%d "
                     "%d q%d|part %d",
                     DS_RECORD_VERSION, json_md5, wp_vocab_md5(s->voc), (long long)o->split_seed, o->utt_max_tokens,
                     o->ctx_max_tokens, o->audio, adir, o->audio_max_seconds, o->video, vdir, o->frame_w, o->frame_h, o->frame_format, o->jpeg_quality,
                     o->part_samples);
    md5_ctx c;
    uint8_t d[16];
    md5_init(&c);
    md5_update(&c, text, (size_t)n);
    md5_final(&c, d);
    md5_hex(d, s->fingerprint);
    return 0;
}

static void plan_splits(ds_sharder *s)
{
    const size_t *idx[3] = {s->sp.train, s->sp.val, s->sp.test};
    size_t n[3] = {s->sp.n_train, s->sp.n_val, s->sp.n_test};
    static const char *const names[3] = {"train", "val", "test"};
    size_t ps = (size_t)s->o->part_samples, first = 0;
    for (int i = 0; i < 3; i++) {
        s->splits[i] = (sh_split){.name = names[i], .idx = idx[i], .n = n[i], .n_parts = (n[i] + ps - 1) / ps,
                                  .first_part = first};
        first += s->splits[i].n_parts;
        for (size_t k = 0; k < n[i]; k++)
            s->n_utterances += (size_t)s->c.v[idx[i][k]].n_utt;
    }
    s->n_parts = first;
}

void ds_sharder_close(ds_sharder *s)
{
    if (!s)
        return;
    for (int v = 0; v < SH_N_VOCABS; v++)
        free(s->vb[v].slots);
    ds_manifest_free(&s->m);
    split_free(&s->sp);
    am_corpus_free(&s->c);
    wp_vocab_free(s->voc);
    free(s);
}

int ds_sharder_open(const ds_sharder_opts *o, ds_sharder **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = check_opts(o, err, errlen);
    if (rc)
        return rc;
    ds_sharder *s = calloc(1, sizeof *s);
    if (!s)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    s->o = o;
    rc = find_json(o, s->json_path, sizeof s->json_path, err, errlen);
    if (!rc && o->audio)
        rc = media_dir(o->audio_dir, o->data_dir, "audio_v5_0", s->audio_dir, sizeof s->audio_dir, "--audio-dir", err,
                       errlen);
    if (!rc && o->video)
        rc = media_dir(o->video_dir, o->data_dir, "video_v5_0", s->video_dir, sizeof s->video_dir, "--video-dir", err,
                       errlen);
    if (!rc)
        rc = wp_vocab_load(o->vocab_path, &s->voc, err, errlen);
    if (!rc && wp_vocab_size(s->voc) > 65536)
        rc = ds_fail(err, errlen, DS_SHARD_EINVAL, "%s: %zu tokens do not fit the shards' 16-bit ids", o->vocab_path,
                     wp_vocab_size(s->voc));
    if (!rc)
        rc = am_corpus_load(s->json_path, o->on_error, &s->c, err, errlen);
    if (!rc)
        rc = o->like ? split_all(&s->c, &s->sp, err, errlen) : split_make_seed(&s->c, o->split_seed, &s->sp, err, errlen);
    if (!rc && o->like)
        rc = copy_vocabs(&s->m, s->vb, o->like, err, errlen);
    else if (!rc && build_vocabs(&s->m, s->vb, &s->c, &s->sp))
        rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    if (!rc)
        rc = make_fingerprint(s, err, errlen);
    if (rc) {
        ds_sharder_close(s);
        return rc;
    }
    plan_splits(s);
    *out = s;
    return 0;
}

void ds_sharder_get_plan(const ds_sharder *s, ds_sharder_plan *p)
{
    memset(p, 0, sizeof *p);
    p->n_train = s->sp.n_train;
    p->n_val = s->sp.n_val;
    p->n_test = s->sp.n_test;
    size_t kept = s->sp.n_train + s->sp.n_val + s->sp.n_test;
    p->n_skipped = s->c.n_empty_turns + s->c.n_unknown_label + s->c.n_malformed + (s->c.n - kept);
    p->n_parts = s->n_parts;
    p->n_utterances = s->n_utterances;
    snprintf(p->json_path, sizeof p->json_path, "%s", s->json_path);
}

int ds_sharder_prepare(ds_sharder *s, char *err, size_t errlen)
{
    char path[4200];
    if (mkdir(s->o->out_dir, 0755) != 0 && errno != EEXIST)
        return ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot create: %s", s->o->out_dir, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", s->o->out_dir, DS_MANIFEST_FILE);
    if (unlink(path) != 0 && errno != ENOENT)
        return ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot remove: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/%s", s->o->out_dir, DS_SHARDER_PARTS_DIR);
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot create: %s", path, strerror(errno));
    return 0;
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

/* Media lines of a part's report: "audio: ..." or "video: ..."; each also counts under its reason. */
static int add_media_lines(ds_manifest *m, const ds_strv *lines)
{
    for (size_t i = 0; i < lines->n; i++) {
        const char *reason = strncmp(lines->v[i], "audio:", 6) == 0 ? "audio_bad" : "video_bad";
        if (ds_manifest_add_skip(m, reason, lines->v[i]) != DS_SHARD_OK)
            return -1;
    }
    return 0;
}

/* Split sp of the manifest from the plan and the parts' reports. */
static int finish_split(ds_sharder *s, const sh_split *sp, sh_media_counts *media, char *err, size_t errlen)
{
    ds_manifest_split *ms = ds_manifest_add_split(&s->m, sp->name);
    if (!ms)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
    ms->count = sp->n;
    for (size_t i = 0; i < sp->n; i++) {
        const am_sample *a = &s->c.v[sp->idx[i]];
        if (ds_strv_push(&ms->conversation_ids, a->conversation_id) != DS_SHARD_OK)
            return ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
        if (a->label7 >= 0)
            ms->label7_hist[a->label7]++;
        if (a->label32 >= 0)
            ms->label32_hist[a->label32]++;
    }
    for (size_t p = 0; p < sp->n_parts; p++) {
        char lmdb[4200], report[4300];
        sh_part_paths(s, sp, p, lmdb, sizeof lmdb, report, sizeof report);
        struct stat sb;
        if (stat(lmdb, &sb) != 0)
            return ds_fail(err, errlen, DS_SHARD_ENOENT, "%s: missing (a process did not finish its parts; run the "
                           "same command again to complete them)", lmdb);
        sh_report r;
        int rc = sh_report_read(s, report, &r, err, errlen);
        size_t want = p + 1 < sp->n_parts ? (size_t)s->o->part_samples : sp->n - p * (size_t)s->o->part_samples;
        if (!rc && r.count != want)
            rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: %zu samples, the plan has %zu", report, r.count, want);
        if (!rc && add_media_lines(&s->m, &r.lines))
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
        if (!rc && ds_strv_push(&ms->shards, strrchr(lmdb, '/') + 1) != DS_SHARD_OK)
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "manifest: out of memory");
        sh_media_counts_add(media, &r.media);
        ds_strv_free(&r.lines);
        if (rc)
            return rc;
    }
    return 0;
}

/* The part number of "{split}-NNNNN.lmdb{suffix}", else -1. */
static long part_number(const char *name, const char *split, const char *suffix)
{
    size_t len = strlen(split);
    if (strncmp(name, split, len) || name[len] != '-')
        return -1;
    const char *p = name + len + 1;
    for (int i = 0; i < 5; i++)
        if (p[i] < '0' || p[i] > '9')
            return -1;
    if (strncmp(p + 5, ".lmdb", 5) || strcmp(p + 10, suffix))
        return -1;
    return strtol(p, NULL, 10);
}

/* Shard files and reports the plan does not name, and any temporary: debris of a bigger or interrupted run.
 * Only process 0 runs this, after every writer finished, so no temporary still belongs to anyone. */
static void remove_debris(const ds_sharder *s, const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    char path[4400];
    while ((e = readdir(d))) {
        int stale = strstr(e->d_name, ".tmp") != NULL;
        for (int i = 0; i < 3 && !stale; i++) {
            long part = part_number(e->d_name, s->splits[i].name, suffix);
            stale = part >= 0 && (size_t)part >= s->splits[i].n_parts;
        }
        if (stale) {
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

int ds_sharder_finish(ds_sharder *s, char *err, size_t errlen)
{
    const ds_sharder_opts *o = s->o;
    ds_manifest *m = &s->m;
    m->version = DS_MANIFEST_VERSION;
    m->format_version = DS_RECORD_VERSION;
    m->labels = o->labels;
    m->vocab_size = (int)wp_vocab_size(s->voc);
    m->utt_max_tokens = o->utt_max_tokens;
    m->ctx_max_tokens = o->ctx_max_tokens;
    snprintf(m->vocab_md5, sizeof m->vocab_md5, "%s", wp_vocab_md5(s->voc));
    m->created_by = strdup("empd 0.1 shard");
    m->source_data_dir = strdup(o->data_dir);
    m->source_json = strdup(s->json_path);
    ds_manifest_media *md = &m->media;
    *md = (ds_manifest_media){
        .audio = o->audio, .audio_rate = DS_AUDIO_RATE, .audio_max_seconds = o->audio_max_seconds,
        .video = o->video, .n_frames = DS_N_FRAMES, .frame_w = o->frame_w, .frame_h = o->frame_h,
        .frame_format = o->frame_format, .jpeg_quality = o->jpeg_quality, .scaler = strdup("bilinear") /* media.h: SWS_BILINEAR */,
        .audio_dir = strdup(o->audio ? s->audio_dir : ""), .video_dir = strdup(o->video ? s->video_dir : ""),
    };
    if (!m->created_by || !m->source_data_dir || !m->source_json || !md->scaler || !md->audio_dir ||
        !md->video_dir || record_skips(m, &s->c, &s->sp))
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    sh_media_counts c = {0};
    for (int i = 0; i < 3; i++) {
        int rc = finish_split(s, &s->splits[i], &c, err, errlen);
        if (rc)
            return rc;
    }
    md->audio_present = (int64_t)c.audio_present;
    md->audio_missing = (int64_t)c.audio_missing;
    md->audio_bad = (int64_t)c.audio_bad;
    md->video_present = (int64_t)c.video_present;
    md->video_missing = (int64_t)c.video_missing;
    md->video_bad = (int64_t)c.video_bad;
    char path[4200];
    remove_debris(s, o->out_dir, "");
    snprintf(path, sizeof path, "%s/%s", o->out_dir, DS_SHARDER_PARTS_DIR);
    remove_debris(s, path, ".json");
    snprintf(path, sizeof path, "%s/%s", o->out_dir, DS_MANIFEST_FILE);
    int rc = ds_manifest_write(m, path, err, errlen);
    s->finished = rc == 0;
    return rc;
}

int ds_sharder_run(const ds_sharder_opts *o, ds_sharder_plan *plan, ds_sharder_stats *stats, char *err,
                   size_t errlen)
{
    ds_sharder *s;
    int rc = ds_sharder_open(o, &s, err, errlen);
    if (rc)
        return rc;
    if (plan)
        ds_sharder_get_plan(s, plan);
    rc = ds_sharder_prepare(s, err, errlen);
    if (!rc)
        rc = ds_sharder_write(s, 0, 1, NULL, NULL, stats, err, errlen);
    if (!rc)
        rc = ds_sharder_finish(s, err, errlen);
    ds_sharder_close(s);
    return rc;
}

const ds_manifest *ds_sharder_manifest(const ds_sharder *s) { return s->finished ? &s->m : NULL; }
