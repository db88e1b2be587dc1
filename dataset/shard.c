#include "dataset/shard.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dataset/error.h"
#include "dataset/fsync_dir.h"

static void key_put(unsigned char k[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        k[i] = (unsigned char)v;
}

static uint64_t key_get(const unsigned char k[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | k[i];
    return v;
}

static char *path_join(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

int ds_shard_split_name_ok(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++)
        if (!((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return 0;
    return n >= 1 && n <= DS_SPLIT_NAME_MAX;
}

int ds_shard_file_name(char *buf, size_t n, const char *split, int part)
{
    if (!split || !ds_shard_split_name_ok(split) || part < 0)
        return DS_SHARD_EINVAL;
    int len = snprintf(buf, n, "%s-%05d.lmdb", split, part);
    return len < 0 || (size_t)len >= n ? DS_SHARD_EINVAL : DS_SHARD_OK;
}

/* ---- writer ---- */

/* A queued record is encoded straight into its slot's buffer, which later batches reuse: a record of
 * megabytes is copied once by the encoder and once by LMDB, nowhere else. */
typedef struct {
    uint64_t key;
    ds_buf rec;
} queued;

struct ds_shard_writer {
    MDB_env *env;
    MDB_dbi dbi;
    char *dir, *tmp_path, *lock_path, *final_path;
    char file[DS_SPLIT_NAME_MAX + 32];
    size_t map_size, batch_records, batch_bytes;
    queued *q;           /* q[0..nq) wait for the next transaction; all qcap slots keep their buffers */
    size_t nq, qcap, pending_bytes;
    size_t count;
    uint64_t last_key;
};

static void writer_free(ds_shard_writer *w)
{
    if (w->env)
        mdb_env_close(w->env);
    if (w->tmp_path)
        unlink(w->tmp_path);
    if (w->lock_path)
        unlink(w->lock_path);
    free(w->dir);
    free(w->tmp_path);
    free(w->lock_path);
    free(w->final_path);
    for (size_t i = 0; i < w->qcap; i++)
        ds_buf_free(&w->q[i].rec);
    free(w->q);
    free(w);
}

int ds_shard_writer_open(const char *dir, const char *split, int part, const ds_shard_writer_opts *opts,
                         ds_shard_writer **out, char *err, size_t errlen)
{
    *out = NULL;
    ds_shard_writer *w = calloc(1, sizeof *w);
    if (!w)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "shard writer: out of memory");
    if (ds_shard_file_name(w->file, sizeof w->file, split, part)) {
        free(w);
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "shard writer: split \"%s\" part %d: split names are 1..%d of "
                    "[a-z0-9_], parts >= 0", split ? split : "(null)", part, DS_SPLIT_NAME_MAX);
    }
    w->map_size = opts && opts->map_size ? opts->map_size : (size_t)64 << 20;
    w->batch_records = opts && opts->batch_records ? opts->batch_records : 256;
    w->batch_bytes = opts && opts->batch_bytes ? opts->batch_bytes : (size_t)64 << 20;
    w->dir = strdup(dir);
    w->final_path = path_join(dir, w->file, "");
    w->tmp_path = path_join(dir, w->file, ".tmp");
    w->lock_path = path_join(dir, w->file, ".tmp-lock");
    if (!w->dir || !w->final_path || !w->tmp_path || !w->lock_path) {
        ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", w->file);
        writer_free(w);
        return DS_SHARD_ENOMEM;
    }
    /* A stale temp from a crashed run would otherwise be opened and appended to. */
    if ((unlink(w->tmp_path) != 0 && errno != ENOENT) || (unlink(w->lock_path) != 0 && errno != ENOENT)) {
        ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot remove the stale temporary: %s", w->tmp_path, strerror(errno));
        writer_free(w);
        return DS_SHARD_EIO;
    }
    MDB_txn *txn = NULL;
    int rc = mdb_env_create(&w->env);
    if (!rc)
        rc = mdb_env_set_mapsize(w->env, w->map_size);
    /* NOSYNC: commits only write; close syncs once, before the rename publishes the file. */
    if (!rc)
        rc = mdb_env_open(w->env, w->tmp_path, MDB_NOSUBDIR | MDB_NOSYNC, 0644);
    if (!rc)
        rc = mdb_txn_begin(w->env, NULL, 0, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &w->dbi);
    if (!rc) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: cannot create: %s", w->tmp_path, mdb_strerror(rc));
        writer_free(w);
        return DS_SHARD_ELMDB;
    }
    *out = w;
    return DS_SHARD_OK;
}

/* Write the queue in one transaction; on MDB_MAP_FULL the transaction is gone, so grow the map and
 * write the whole queue again. */
static int writer_flush(ds_shard_writer *w, char *err, size_t errlen)
{
    while (w->nq) {
        MDB_txn *txn;
        int rc = mdb_txn_begin(w->env, NULL, 0, &txn);
        if (rc)
            return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: begin: %s", w->tmp_path, mdb_strerror(rc));
        size_t i = 0;
        for (; i < w->nq && !rc; i++) {
            unsigned char kb[8];
            key_put(kb, w->q[i].key);
            MDB_val k = {8, kb}, v = {w->q[i].rec.len, w->q[i].rec.data};
            rc = mdb_put(txn, w->dbi, &k, &v, MDB_APPEND);
        }
        if (rc)
            mdb_txn_abort(txn);
        else
            rc = mdb_txn_commit(txn);
        if (rc == MDB_MAP_FULL) {
            if (w->map_size > SIZE_MAX / 2)
                return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: map full at %zu bytes", w->tmp_path, w->map_size);
            w->map_size *= 2;
            rc = mdb_env_set_mapsize(w->env, w->map_size);
            if (rc)
                return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: cannot grow the map to %zu bytes: %s", w->tmp_path,
                            w->map_size, mdb_strerror(rc));
            continue;
        }
        if (rc)
            return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: record %llu: %s", w->tmp_path,
                        (unsigned long long)w->q[i ? i - 1 : 0].key, mdb_strerror(rc));
        w->nq = 0;
        w->pending_bytes = 0;
        /* Slots keep their buffers for the next batch, unless a mix of record sizes left them holding far
         * more than one batch needs. */
        size_t held = 0;
        for (size_t j = 0; j < w->qcap; j++)
            held += w->q[j].rec.cap;
        for (size_t j = 0; held > 2 * w->batch_bytes && j < w->qcap; j++)
            ds_buf_free(&w->q[j].rec);
    }
    return DS_SHARD_OK;
}

int ds_shard_writer_put(ds_shard_writer *w, const ds_record *rec, char *err, size_t errlen)
{
    if (w->count && rec->sample_index <= w->last_key)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "%s: sample_index %u after %llu (indices must increase)", w->file,
                    rec->sample_index, (unsigned long long)w->last_key);
    if (w->nq == w->qcap) {
        size_t cap = w->qcap ? 2 * w->qcap : 64;
        queued *q = realloc(w->q, cap * sizeof *q);
        if (!q)
            return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", w->file);
        memset(q + w->qcap, 0, (cap - w->qcap) * sizeof *q);
        w->q = q;
        w->qcap = cap;
    }
    queued *slot = &w->q[w->nq];
    char why[256];
    int rc = ds_record_encode(rec, &slot->rec, why, sizeof why);
    if (rc)
        return ds_fail(err, errlen, rc, "record %u for %s: %s", rec->sample_index, w->file, why);
    slot->key = rec->sample_index;
    w->nq++;
    w->pending_bytes += slot->rec.len;
    w->last_key = rec->sample_index;
    w->count++;
    if (w->nq >= w->batch_records || w->pending_bytes >= w->batch_bytes)
        return writer_flush(w, err, errlen);
    return DS_SHARD_OK;
}

size_t ds_shard_writer_count(const ds_shard_writer *w) { return w->count; }

const char *ds_shard_writer_file(const ds_shard_writer *w) { return w->file; }

int ds_shard_writer_close(ds_shard_writer *w, char *err, size_t errlen)
{
    int rc = writer_flush(w, err, errlen);
    if (rc) {
        writer_free(w);
        return rc;
    }
    int mrc = mdb_env_sync(w->env, 1);
    mdb_env_close(w->env);
    w->env = NULL;
    if (mrc)
        rc = ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: sync: %s", w->tmp_path, mdb_strerror(mrc));
    else if (unlink(w->lock_path) != 0 && errno != ENOENT)
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot remove: %s", w->lock_path, strerror(errno));
    else if (rename(w->tmp_path, w->final_path) != 0)
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot rename to %s: %s", w->tmp_path, w->file, strerror(errno));
    else if (ds_fsync_dir(w->dir) != 0) {
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot fsync the folder: %s", w->dir, strerror(errno));
        unlink(w->final_path);
    }
    writer_free(w);
    return rc;
}

void ds_shard_writer_abort(ds_shard_writer *w)
{
    if (w)
        writer_free(w);
}

/* ---- reader ---- */

typedef struct {
    MDB_env *env;
    MDB_dbi dbi;
    char *name;
    size_t first, count;   /* sample indices first .. first+count-1 */
} shard_file;

struct ds_shard_reader {
    shard_file *f;
    size_t n, count;
};

struct ds_shard_txn {
    ds_shard_reader *r;
    MDB_txn *txn[];        /* per file, begun on first use */
};

void ds_shard_reader_close(ds_shard_reader *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        if (r->f[i].env)
            mdb_env_close(r->f[i].env);
        free(r->f[i].name);
    }
    free(r->f);
    free(r);
}

/* Open one file and learn its key range; keys must be first, first+1, ..., first+count-1. */
static int file_open(const char *dir, shard_file *f, size_t first, char *err, size_t errlen)
{
    char *path = path_join(dir, f->name, "");
    if (!path)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", f->name);
    if (access(path, F_OK) != 0) {
        int e = errno;
        free(path);
        return ds_fail(err, errlen, e == ENOENT ? DS_SHARD_ENOENT : DS_SHARD_EIO, "%s/%s: %s", dir, f->name, strerror(e));
    }
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_stat st;
    int rc = mdb_env_create(&f->env);
    if (!rc)
        rc = mdb_env_open(f->env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS, 0);
    free(path);
    if (!rc)
        rc = mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &f->dbi);
    if (!rc)
        rc = mdb_stat(txn, f->dbi, &st);
    if (!rc)
        rc = mdb_cursor_open(txn, f->dbi, &cur);
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s/%s: cannot open: %s", dir, f->name, mdb_strerror(rc));
    }
    f->first = first;
    f->count = st.ms_entries;
    int code = DS_SHARD_OK;
    if (f->count) {
        MDB_val k, v;
        MDB_cursor_op ops[2] = {MDB_FIRST, MDB_LAST};
        size_t want[2] = {first, first + f->count - 1};
        for (int i = 0; i < 2 && !code; i++) {
            rc = mdb_cursor_get(cur, &k, &v, ops[i]);
            if (rc)
                code = ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: cursor: %s", f->name, mdb_strerror(rc));
            else if (k.mv_size != 8)
                code = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: key of %zu bytes (expected 8)", f->name, k.mv_size);
            else if (key_get(k.mv_data) != want[i])
                code = ds_fail(err, errlen, DS_SHARD_ECORRUPT,
                            "%s: %s key is %llu, expected %zu (keys must continue the previous shard without gaps)",
                            f->name, i ? "last" : "first", (unsigned long long)key_get(k.mv_data), want[i]);
        }
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return code;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Parts of split found in dir under their canonical names, sorted; must be 0..n-1. */
static int scan_parts(const char *dir, const char *split, size_t **parts, size_t *n, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    if (!d)
        return ds_fail(err, errlen, errno == ENOENT ? DS_SHARD_ENOENT : DS_SHARD_EIO, "%s: %s", dir, strerror(errno));
    size_t cap = 0, len = strlen(split);
    *parts = NULL;
    *n = 0;
    struct dirent *e;
    int rc = DS_SHARD_OK;
    while ((e = readdir(d)) && !rc) {
        const char *s = e->d_name;
        if (strncmp(s, split, len) != 0 || s[len] != '-')
            continue;
        char *end;
        errno = 0;
        unsigned long part = strtoul(s + len + 1, &end, 10);
        char canon[DS_SPLIT_NAME_MAX + 32];
        if (errno || part > 9999999 || end == s + len + 1 || strcmp(end, ".lmdb") != 0 ||
            ds_shard_file_name(canon, sizeof canon, split, (int)part) || strcmp(canon, s) != 0)
            continue;
        if (*n == cap) {
            size_t *p = realloc(*parts, (cap = cap ? 2 * cap : 16) * sizeof *p);
            if (!p) {
                rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", dir);
                break;
            }
            *parts = p;
        }
        (*parts)[(*n)++] = part;
    }
    closedir(d);
    if (!rc && *n == 0)
        rc = ds_fail(err, errlen, DS_SHARD_ENOENT, "%s: no %s-NNNNN.lmdb shard files", dir, split);
    if (!rc) {
        qsort(*parts, *n, sizeof **parts, cmp_size);
        for (size_t i = 0; i < *n && !rc; i++)
            if ((*parts)[i] != i) {
                char name[DS_SPLIT_NAME_MAX + 32];
                ds_shard_file_name(name, sizeof name, split, (int)i);
                rc = ds_fail(err, errlen, DS_SHARD_ENOENT, "%s/%s: missing (the split's parts must run from 00000 "
                          "without a hole)", dir, name);
            }
    }
    if (rc) {
        free(*parts);
        *parts = NULL;
    }
    return rc;
}

int ds_shard_reader_open(const char *dir, const char *split, char *const *files, size_t n_files,
                         ds_shard_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!ds_shard_split_name_ok(split))
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "split \"%s\": names are 1..%d of [a-z0-9_]", split,
                    DS_SPLIT_NAME_MAX);
    size_t *parts = NULL;
    int rc = DS_SHARD_OK;
    if (!files && (rc = scan_parts(dir, split, &parts, &n_files, err, errlen)))
        return rc;
    ds_shard_reader *r = calloc(1, sizeof *r);
    if (r)
        r->f = calloc(n_files ? n_files : 1, sizeof *r->f);
    if (!r || !r->f) {
        free(parts);
        ds_shard_reader_close(r);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", split);
    }
    for (size_t i = 0; i < n_files && !rc; i++) {
        char name[DS_SPLIT_NAME_MAX + 32];
        if (!files)
            ds_shard_file_name(name, sizeof name, split, (int)parts[i]);
        r->f[i].name = strdup(files ? files[i] : name);
        r->n = i + 1;
        if (!r->f[i].name)
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", split);
        else
            rc = file_open(dir, &r->f[i], r->count, err, errlen);
        if (!rc)
            r->count += r->f[i].count;
    }
    free(parts);
    if (rc) {
        ds_shard_reader_close(r);
        return rc;
    }
    *out = r;
    return DS_SHARD_OK;
}

size_t ds_shard_reader_count(const ds_shard_reader *r) { return r->count; }

int ds_shard_txn_begin(ds_shard_reader *r, ds_shard_txn **out, char *err, size_t errlen)
{
    *out = calloc(1, sizeof **out + r->n * sizeof(MDB_txn *));
    if (!*out)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "read transaction: out of memory");
    (*out)->r = r;
    return DS_SHARD_OK;
}

void ds_shard_txn_end(ds_shard_txn *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->r->n; i++)
        if (t->txn[i])
            mdb_txn_abort(t->txn[i]);
    free(t);
}

int ds_shard_txn_get(ds_shard_txn *t, size_t index, ds_record *rec, char *err, size_t errlen)
{
    ds_shard_reader *r = t->r;
    if (index >= r->count)
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "sample %zu: out of range (the split has %zu)", index, r->count);
    size_t lo = 0, hi = r->n - 1;
    while (lo < hi) {
        size_t mid = (lo + hi + 1) / 2;
        if (r->f[mid].first <= index)
            lo = mid;
        else
            hi = mid - 1;
    }
    shard_file *f = &r->f[lo];
    int rc = 0;
    if (!t->txn[lo] && (rc = mdb_txn_begin(f->env, NULL, MDB_RDONLY, &t->txn[lo])))
        return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: begin: %s", f->name, mdb_strerror(rc));
    unsigned char kb[8];
    key_put(kb, index);
    MDB_val k = {8, kb}, v;
    rc = mdb_get(t->txn[lo], f->dbi, &k, &v);
    if (rc == MDB_NOTFOUND)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: key missing", index, f->name);
    if (rc)
        return ds_fail(err, errlen, DS_SHARD_ELMDB, "record %zu of %s: %s", index, f->name, mdb_strerror(rc));
    char why[200];
    if ((rc = ds_record_decode(v.mv_data, v.mv_size, rec, why, sizeof why)))
        return ds_fail(err, errlen, rc, "record %zu of %s: %s", index, f->name, why);
    if (rec->sample_index != index)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: sample_index is %u", index, f->name,
                    rec->sample_index);
    return DS_SHARD_OK;
}

/* ---- verification ---- */

/* What verification carries from record to record: the split's histograms, and the media totals of all
 * splits in the order of the manifest's counts (audio present, missing, bad; video present, missing, bad). */
typedef struct {
    const ds_manifest *m;
    const ds_manifest_split *s;
    ds_shard_verify_stats *st;
    uint64_t max_samples;
    int64_t h7[7], h32[32];
    int64_t media[6];
} verify_ctx;

static const char *frame_format_name(int f) { return f == DS_FRAME_JPEG ? "jpeg" : "raw"; }

static int verify_media(verify_ctx *c, const ds_record *rec, const shard_file *f, size_t i, char *err, size_t errlen)
{
    const ds_manifest_media *md = &c->m->media;
    if (rec->has_audio != md->audio || rec->has_video != md->video)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: audio (WAVE) %s, video (FRMS) %s; the manifest's "
                       "media says audio %s, video %s", i, f->name, rec->has_audio ? "yes" : "no",
                       rec->has_video ? "yes" : "no", md->audio ? "true" : "false", md->video ? "true" : "false");
    if (rec->has_video && (rec->frame_format != md->frame_format || rec->frame_w != md->frame_w ||
                           rec->frame_h != md->frame_h))
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: %s frames of %ux%u, the manifest's media "
                       "says %s %dx%d", i, f->name, frame_format_name(rec->frame_format), (unsigned)rec->frame_w,
                       (unsigned)rec->frame_h, frame_format_name(md->frame_format), md->frame_w, md->frame_h);
    for (int u = 0; u < rec->n_utt; u++) {
        unsigned p = rec->utt[u].presence;
        if (rec->utt[u].n_samples > c->max_samples)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: utt[%d] has %u samples, more than "
                           "media.audio_max_seconds = %g allows (%llu)", i, f->name, u,
                           (unsigned)rec->utt[u].n_samples, md->audio_max_seconds,
                           (unsigned long long)c->max_samples);
        if (rec->has_audio)
            c->media[p & DS_PRESENT_AUDIO ? 0 : p & DS_PRESENT_AUDIO_BAD ? 2 : 1]++;
        if (rec->has_video)
            c->media[p & DS_PRESENT_VIDEO ? 3 : p & DS_PRESENT_VIDEO_BAD ? 5 : 4]++;
    }
    return DS_SHARD_OK;
}

static int verify_record(verify_ctx *c, const shard_file *f, uint64_t key, const MDB_val *v, size_t expect, char *err,
                         size_t errlen)
{
    const ds_manifest *m = c->m;
    const ds_manifest_split *s = c->s;
    ds_record rec;
    char why[200];
    int rc;
    if (key != expect)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: found key %llu instead", expect, f->name,
                    (unsigned long long)key);
    if ((rc = ds_record_decode(v->mv_data, v->mv_size, &rec, why, sizeof why)))
        return ds_fail(err, errlen, rc, "record %zu of %s: %s", expect, f->name, why);
    if (rec.sample_index != key)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: sample_index is %u", expect, f->name,
                    rec.sample_index);
    if (expect < s->conversation_ids.n && strcmp(rec.conversation_id, s->conversation_ids.v[expect]) != 0)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: conversation_id \"%s\", manifest says \"%s\"",
                    expect, f->name, rec.conversation_id, s->conversation_ids.v[expect]);
    if (rec.n_ctx > m->ctx_max_tokens)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: %u context tokens, manifest limit %d", expect,
                    f->name, (unsigned)rec.n_ctx, m->ctx_max_tokens);
    for (int i = 0; i < rec.n_utt; i++)
        if (rec.utt[i].n_tokens > m->utt_max_tokens)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: utt[%d] has %u tokens, manifest limit %d",
                        expect, f->name, i, (unsigned)rec.utt[i].n_tokens, m->utt_max_tokens);
    if ((rc = verify_media(c, &rec, f, expect, err, errlen)))
        return rc;
    if (rec.label7 >= 0)
        c->h7[rec.label7]++;
    if (rec.label32 >= 0)
        c->h32[rec.label32]++;
    return DS_SHARD_OK;
}

static int verify_file(verify_ctx *c, const shard_file *f, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    int rc = mdb_txn_begin(f->env, NULL, MDB_RDONLY, &txn);
    if (rc)
        return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: begin: %s", f->name, mdb_strerror(rc));
    if ((rc = mdb_cursor_open(txn, f->dbi, &cur))) {
        mdb_txn_abort(txn);
        return ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: cursor: %s", f->name, mdb_strerror(rc));
    }
    int code = DS_SHARD_OK;
    size_t expect = f->first;
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); !rc && !code; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8)
            code = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "record %zu of %s: key of %zu bytes (expected 8)", expect,
                        f->name, k.mv_size);
        else
            code = verify_record(c, f, key_get(k.mv_data), &v, expect, err, errlen);
        expect++;
        c->st->records++;
        c->st->bytes += v.mv_size;
    }
    if (!code && rc != MDB_NOTFOUND)
        code = ds_fail(err, errlen, DS_SHARD_ELMDB, "%s: cursor: %s", f->name, mdb_strerror(rc));
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return code;
}

static int verify_split(verify_ctx *c, const char *dir, char *err, size_t errlen)
{
    const ds_manifest_split *s = c->s;
    ds_shard_reader *r;
    int rc = ds_shard_reader_open(dir, s->name, s->shards.v, s->shards.n, &r, err, errlen);
    if (rc)
        return rc;
    if (r->count != s->count) {
        rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "split %s: %zu records in its shards, manifest says %zu", s->name,
                     r->count, s->count);
        ds_shard_reader_close(r);
        return rc;
    }
    memset(c->h7, 0, sizeof c->h7);
    memset(c->h32, 0, sizeof c->h32);
    for (size_t k = 0; k < r->n && !rc; k++)
        rc = verify_file(c, &r->f[k], err, errlen);
    ds_shard_reader_close(r);
    if (rc)
        return rc;
    for (int j = 0; j < 7 + 32; j++) {
        int in7 = j < 7, cl = in7 ? j : j - 7;
        int64_t got = in7 ? c->h7[cl] : c->h32[cl], want = in7 ? s->label7_hist[cl] : s->label32_hist[cl];
        if (got != want)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "split %s: %lld records with %s = %d, manifest's "
                        "histogram says %lld", s->name, (long long)got, in7 ? "label7" : "label32", cl,
                        (long long)want);
    }
    return DS_SHARD_OK;
}

int ds_shard_verify(const char *dir, const ds_manifest *m, ds_shard_verify_stats *stats, char *err, size_t errlen)
{
    ds_shard_verify_stats local;
    verify_ctx c = {.m = m, .st = stats ? stats : &local};
    memset(c.st, 0, sizeof *c.st);
    const ds_manifest_media *md = &m->media;
    /* Rounded, not truncated: the writer's own rounding of seconds * rate may go either way. */
    c.max_samples = md->audio ? (uint64_t)llround(md->audio_max_seconds * md->audio_rate) : 0;
    for (int i = 0; i < m->n_splits; i++) {
        c.s = &m->splits[i];
        if (c.s->count == 0 && c.s->shards.n == 0)
            continue;
        int rc = verify_split(&c, dir, err, errlen);
        if (rc)
            return rc;
    }
    static const char *const names[6] = {"audio_present", "audio_missing", "audio_bad",
                                         "video_present", "video_missing", "video_bad"};
    const int64_t want[6] = {md->audio_present, md->audio_missing, md->audio_bad,
                             md->video_present, md->video_missing, md->video_bad};
    for (int k = 0; k < 6; k++)
        if (c.media[k] != want[k])
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "media: %lld utterances of all splits are %s in the "
                           "shards, the manifest's media.counts.%s says %lld", (long long)c.media[k], names[k],
                           names[k], (long long)want[k]);
    return DS_SHARD_OK;
}
