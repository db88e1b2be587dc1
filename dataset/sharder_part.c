/* Writing a process's parts: which are done already (resume), their reports, and the decoding threads.
 *
 * Decoding is an ordered parallel map: worker threads claim samples in order and build each one's record
 * (tokens + decoded media) in a ring of slots; the calling thread takes the slots in sample order and
 * writes them, so shard files come out the same whatever the thread count or timing. A worker that is a
 * whole ring ahead of the writer waits, which bounds memory to the ring.
 */
#include "dataset/sharder_internal.h"

#include "dataset/error.h"
#include "dataset/fsync_dir.h"
#include "dataset/md5.h"
#include "dataset/shard.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- reports ---- */

static const char *const count_names[6] = {"audio_present", "audio_missing", "audio_bad",
                                           "video_present", "video_missing", "video_bad"};

static size_t *count_field(sh_media_counts *c, int i)
{
    size_t *f[6] = {&c->audio_present, &c->audio_missing, &c->audio_bad,
                    &c->video_present, &c->video_missing, &c->video_bad};
    return f[i];
}

static int report_write(const ds_sharder *s, const char *path, sh_report *r, char *err, size_t errlen)
{
    cJSON *j = cJSON_CreateObject();
    cJSON *lines = cJSON_AddArrayToObject(j, "lines");
    int ok = j && lines && cJSON_AddStringToObject(j, "fingerprint", s->fingerprint) &&
             cJSON_AddStringToObject(j, "media_digest", r->media_digest) &&
             cJSON_AddNumberToObject(j, "count", (double)r->count);
    for (int i = 0; ok && i < 6; i++)
        ok = cJSON_AddNumberToObject(j, count_names[i], (double)*count_field(&r->media, i)) != NULL;
    for (size_t i = 0; ok && i < r->lines.n; i++)
        ok = cJSON_AddItemToArray(lines, cJSON_CreateString(r->lines.v[i]));
    char *text = ok ? cJSON_Print(j) : NULL;
    cJSON_Delete(j);
    if (!text)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", path);
    char tmp[4400];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    int rc = 0;
    if (!f || fputs(text, f) < 0 || fflush(f) || fsync(fileno(f)))
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    if (f && fclose(f) && !rc)
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot write: %s", tmp, strerror(errno));
    if (!rc && (rename(tmp, path) || ds_fsync_parent(path)))
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot publish: %s", path, strerror(errno));
    if (rc)
        unlink(tmp);
    free(text);
    return rc;
}

static int json_count(const cJSON *j, const char *key, size_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15 || v->valuedouble != (double)(size_t)v->valuedouble)
        return -1;
    *out = (size_t)v->valuedouble;
    return 0;
}

int sh_report_read(const ds_sharder *s, const char *path, sh_report *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ds_fail(err, errlen, errno == ENOENT ? DS_SHARD_ENOENT : DS_SHARD_EIO, "%s: %s", path, strerror(errno));
    char buf[1 << 16];
    size_t cap = 0, len = 0, n;
    char *text = NULL;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + n + 1 > cap) {
            cap = 2 * (len + n + 1);
            char *t = realloc(text, cap);
            if (!t) {
                free(text);
                fclose(f);
                return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", path);
            }
            text = t;
        }
        memcpy(text + len, buf, n);
        len += n;
    }
    fclose(f);
    cJSON *j = text ? cJSON_ParseWithLength(text, len) : NULL;
    free(text);
    const cJSON *fp = cJSON_GetObjectItemCaseSensitive(j, "fingerprint");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(j, "media_digest");
    const cJSON *lines = cJSON_GetObjectItemCaseSensitive(j, "lines");
    int rc = 0;
    if (!cJSON_IsString(fp) || !cJSON_IsString(md) || strlen(md->valuestring) != 32 || !cJSON_IsArray(lines) ||
        json_count(j, "count", &r->count))
        rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: not a part report", path);
    else if (strcmp(fp->valuestring, s->fingerprint))
        rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: made from other input or settings", path);
    else
        memcpy(r->media_digest, md->valuestring, 33);
    for (int i = 0; !rc && i < 6; i++)
        if (json_count(j, count_names[i], count_field(&r->media, i)))
            rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: %s is not a count", path, count_names[i]);
    const cJSON *line;
    const cJSON *list = rc ? NULL : lines;
    cJSON_ArrayForEach(line, list)
    {
        if (!cJSON_IsString(line))
            rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: lines holds a non-string", path);
        else if (ds_strv_push(&r->lines, line->valuestring) != DS_SHARD_OK)
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", path);
        if (rc)
            break;
    }
    cJSON_Delete(j);
    return rc;
}

static size_t part_size(const ds_sharder *s, const sh_split *sp, size_t part)
{
    size_t ps = (size_t)s->o->part_samples;
    return sp->n - part * ps < ps ? sp->n - part * ps : ps;
}

/* What the part's media files are: name, size and modification time of every file its utterances name
 * ("-" for one that is not there), hashed. A file replaced or touched since changes it, and the part is
 * decoded again; reading names and times costs a stat per file, not a decode. */
static void part_media_digest(const ds_sharder *s, const sh_split *sp, size_t part, char hex[33])
{
    md5_ctx c;
    md5_init(&c);
    size_t first = part * (size_t)s->o->part_samples, n = part_size(s, sp, part);
    for (size_t i = first; i < first + n; i++) {
        const am_sample *a = &s->c.v[sp->idx[i]];
        for (int u = 0; u < a->n_utt; u++)
            for (int video = 0; video < 2; video++) {
                char path[4400], line[4500];
                if (!(video ? s->o->video : s->o->audio) || sh_media_path(s, a, u, video, path, sizeof path))
                    continue;
                struct stat sb;
                int len = stat(path, &sb) != 0
                              ? snprintf(line, sizeof line, "%s -\n", path)
                              : snprintf(line, sizeof line, "%s %lld %lld.%09ld\n", path, (long long)sb.st_size,
                                         (long long)sb.st_mtim.tv_sec, (long)sb.st_mtim.tv_nsec);
                md5_update(&c, line, (size_t)len < sizeof line ? (size_t)len : sizeof line - 1);
            }
    }
    uint8_t d[16];
    md5_final(&c, d);
    md5_hex(d, hex);
}

/* A part is done when its shard file is published and its report is this run's. Under AM_ON_ERROR_FAIL a
 * part that holds undecodable files (made by an earlier run that skipped them) is not: it is decoded again,
 * so the run stops at the first of them as asked. */
static int part_done(const ds_sharder *s, const sh_split *sp, size_t part, size_t *count)
{
    char lmdb[4200], report[4300], err[512];
    sh_part_paths(s, sp, part, lmdb, sizeof lmdb, report, sizeof report);
    struct stat sb;
    if (stat(lmdb, &sb) != 0)
        return 0;
    sh_report r;
    int rc = sh_report_read(s, report, &r, err, sizeof err);
    int bad = r.lines.n > 0;
    ds_strv_free(&r.lines);
    *count = r.count;
    if (rc || (bad && s->o->on_error == AM_ON_ERROR_FAIL))
        return 0;
    char digest[33];
    part_media_digest(s, sp, part, digest);
    return strcmp(digest, r.media_digest) == 0;
}

/* ---- the decoding pipeline ---- */

enum { SLOT_EMPTY, SLOT_BUSY, SLOT_READY };

typedef struct {
    const sh_split *sp;
    size_t index;           /* within the split */
} sh_item;

typedef struct {
    int state;
    size_t item;
    int rc;
    char err[1024];
    ds_record rec;
    uint16_t *tok;
    sh_media_store store;
    sh_media_counts counts;
    ds_strv lines;
} sh_slot;

typedef struct pool pool;

typedef struct {
    pool *p;
    pthread_t tid;
    uint32_t *tmp;
    sh_media_ctx *media;
} sh_worker;

struct pool {
    const ds_sharder *s;
    const sh_item *items;
    size_t n_items, next;
    size_t consumed;        /* items the writer took, in order */
    sh_slot *slots;
    size_t n_slots;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t ready, freed;
};

static int token_width(const ds_sharder_opts *o)
{
    return o->ctx_max_tokens > o->utt_max_tokens ? o->ctx_max_tokens : o->utt_max_tokens;
}

static void build(pool *p, sh_worker *w, sh_slot *sl)
{
    const ds_sharder *s = p->s;
    const sh_item *it = &p->items[sl->item];
    const am_sample *a = &s->c.v[it->sp->idx[it->index]];
    sh_record_text(s, a, (uint32_t)it->index, w->tmp, sl->tok, &sl->rec);
    memset(&sl->counts, 0, sizeof sl->counts);
    ds_strv_free(&sl->lines);
    sl->rc = 0;
    for (int u = 0; u < a->n_utt && !sl->rc; u++)
        sl->rc = sh_media_utterance(s, w->media, a, u, &sl->rec, &sl->store, &sl->counts, &sl->lines, sl->err,
                                    sizeof sl->err);
}

static void *worker_main(void *arg)
{
    sh_worker *w = arg;
    pool *p = w->p;
    pthread_mutex_lock(&p->mu);
    while (!p->stop && p->next < p->n_items) {
        size_t k = p->next++;
        sh_slot *sl = &p->slots[k % p->n_slots];
        /* Slot k % n is item k's once item k - n is written: waiting for "empty" alone would let a later
         * item (k + n) take it first and never be written. */
        while (!p->stop && k >= p->consumed + p->n_slots)
            pthread_cond_wait(&p->freed, &p->mu);
        if (p->stop)
            break;
        sl->state = SLOT_BUSY;
        sl->item = k;
        pthread_mutex_unlock(&p->mu);
        build(p, w, sl);
        pthread_mutex_lock(&p->mu);
        sl->state = SLOT_READY;
        pthread_cond_broadcast(&p->ready);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static sh_slot *wait_ready(pool *p, size_t k)
{
    sh_slot *sl = &p->slots[k % p->n_slots];
    pthread_mutex_lock(&p->mu);
    while (sl->state != SLOT_READY || sl->item != k)
        pthread_cond_wait(&p->ready, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return sl;
}

static void release(pool *p, sh_slot *sl)
{
    pthread_mutex_lock(&p->mu);
    sl->state = SLOT_EMPTY;
    p->consumed++;
    pthread_cond_broadcast(&p->freed);
    pthread_mutex_unlock(&p->mu);
}

void sh_media_counts_add(sh_media_counts *to, const sh_media_counts *c)
{
    for (int i = 0; i < 6; i++)
        *count_field(to, i) += *count_field((sh_media_counts *)c, i);
}

typedef struct {
    size_t done, total;
    ds_sharder_progress_fn fn;
    void *ctx;
    ds_sharder_stats *stats;
} progress;

/* Writes the part whose samples are items [k0, k0 + n) of the pool. */
static int write_part(pool *p, const sh_split *sp, size_t part, size_t k0, size_t n, progress *pr, char *err,
                      size_t errlen)
{
    const ds_sharder *s = p->s;
    char lmdb[4200], report[4300];
    sh_part_paths(s, sp, part, lmdb, sizeof lmdb, report, sizeof report);
    /* Whatever an earlier run left under these names is not this run's: gone before anything new appears,
     * so a file and a report never pair up across runs. */
    if ((unlink(lmdb) && errno != ENOENT) || (unlink(report) && errno != ENOENT) || ds_fsync_parent(lmdb))
        return ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot replace: %s", lmdb, strerror(errno));
    ds_shard_writer *w;
    int rc = ds_shard_writer_open(s->o->out_dir, sp->name, (int)part, NULL, &w, err, errlen);
    if (rc)
        return rc;
    sh_report r = {.count = n};
    part_media_digest(s, sp, part, r.media_digest);
    for (size_t k = k0; !rc && k < k0 + n; k++) {
        sh_slot *sl = wait_ready(p, k);
        if (sl->rc)
            rc = ds_fail(err, errlen, sl->rc, "%s", sl->err);
        if (!rc)
            rc = ds_shard_writer_put(w, &sl->rec, err, errlen);
        for (size_t i = 0; !rc && i < sl->lines.n; i++)
            if (ds_strv_push(&r.lines, sl->lines.v[i]) != DS_SHARD_OK)
                rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
        if (!rc) {
            sh_media_counts_add(&r.media, &sl->counts);
            pr->stats->utterances += (size_t)sl->rec.n_utt;
            pr->stats->samples++;
        }
        release(p, sl);
        if (!rc && pr->fn)
            pr->fn(pr->ctx, ++pr->done, pr->total);
    }
    if (!rc)
        rc = report_write(s, report, &r, err, errlen);
    if (!rc)
        rc = ds_shard_writer_close(w, err, errlen);
    else
        ds_shard_writer_abort(w);
    if (!rc) {
        pr->stats->parts_written++;
        ds_sharder_stats *st = pr->stats;
        st->audio_present += r.media.audio_present;
        st->audio_missing += r.media.audio_missing;
        st->audio_bad += r.media.audio_bad;
        st->video_present += r.media.video_present;
        st->video_missing += r.media.video_missing;
        st->video_bad += r.media.video_bad;
    }
    ds_strv_free(&r.lines);
    return rc;
}

static void pool_free(pool *p)
{
    for (size_t i = 0; p->slots && i < p->n_slots; i++) {
        free(p->slots[i].tok);
        sh_media_store_free(&p->slots[i].store);
        ds_strv_free(&p->slots[i].lines);
    }
    free(p->slots);
    p->slots = NULL;
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->ready);
    pthread_cond_destroy(&p->freed);
}

static int pool_init(pool *p, const ds_sharder *s, const sh_item *items, size_t n_items, char *err, size_t errlen)
{
    *p = (pool){.s = s, .items = items, .n_items = n_items, .n_slots = 2 * (size_t)s->o->threads};
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->ready, NULL);
    pthread_cond_init(&p->freed, NULL);
    p->slots = calloc(p->n_slots, sizeof *p->slots);
    size_t width = (size_t)token_width(s->o);
    for (size_t i = 0; p->slots && i < p->n_slots; i++)
        if (!(p->slots[i].tok = malloc(width * (1 + DS_MAX_UTT) * sizeof(uint16_t))))
            break;
    if (!p->slots || !p->slots[p->n_slots - 1].tok) {
        pool_free(p);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    }
    return 0;
}

int ds_sharder_write(ds_sharder *s, int rank, int world, ds_sharder_progress_fn fn, void *ctx,
                     ds_sharder_stats *stats, char *err, size_t errlen)
{
    ds_sharder_stats local;
    if (!stats)
        stats = &local;
    memset(stats, 0, sizeof *stats);
    if (world < 1 || rank < 0 || rank >= world)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "sharder: rank %d of %d", rank, world);
    size_t ps = (size_t)s->o->part_samples, n_items = 0, n_pending = 0;
    size_t *pending = malloc((s->n_parts + 1) * sizeof *pending);
    sh_item *items = malloc((s->sp.n_train + s->sp.n_val + s->sp.n_test + 1) * sizeof *items);
    if (!pending || !items) {
        free(pending);
        free(items);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    }
    progress pr = {.fn = fn, .ctx = ctx, .stats = stats};
    for (size_t g = (size_t)rank; g < s->n_parts; g += (size_t)world) {
        const sh_split *sp;
        size_t part, count;
        sh_part_of(s, g, &sp, &part);
        size_t n = part_size(s, sp, part);
        pr.total += n;
        if (part_done(s, sp, part, &count) && count == n) {
            stats->parts_resumed++;
            pr.done += n;
            continue;
        }
        pending[n_pending++] = g;
        for (size_t i = 0; i < n; i++)
            items[n_items++] = (sh_item){.sp = sp, .index = part * ps + i};
    }
    if (fn)
        fn(ctx, pr.done, pr.total);
    int nt = s->o->threads, started = 0, rc = 0;
    pool p;
    sh_worker *w = calloc((size_t)nt, sizeof *w);
    if (!w)
        rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
    if (!rc && n_items)
        rc = pool_init(&p, s, items, n_items, err, errlen);
    for (int t = 0; !rc && n_items && t < nt; t++) {
        w[t].p = &p;
        if (!(w[t].tmp = malloc((size_t)token_width(s->o) * sizeof(uint32_t))))
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: out of memory");
        if (!rc)
            rc = sh_media_ctx_new(s->o, &w[t].media, err, errlen);
    }
    for (int t = 0; !rc && n_items && t < nt; t++) {
        if (pthread_create(&w[t].tid, NULL, worker_main, &w[t]))
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "sharder: cannot start a decoding thread");
        else
            started++;
    }
    size_t k = 0;
    for (size_t i = 0; !rc && i < n_pending; i++) {
        const sh_split *sp;
        size_t part;
        sh_part_of(s, pending[i], &sp, &part);
        size_t n = part_size(s, sp, part);
        rc = write_part(&p, sp, part, k, n, &pr, err, errlen);
        k += n;
    }
    if (n_items && w) {
        if (started) {
            pthread_mutex_lock(&p.mu);
            p.stop = 1;
            pthread_cond_broadcast(&p.freed);
            pthread_mutex_unlock(&p.mu);
        }
        for (int t = 0; t < started; t++)
            pthread_join(w[t].tid, NULL);
        if (p.slots)
            pool_free(&p);
    }
    for (int t = 0; w && t < nt; t++) {
        free(w[t].tmp);
        sh_media_ctx_free(w[t].media);
    }
    free(w);
    free(pending);
    free(items);
    return rc;
}
