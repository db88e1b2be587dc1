#include "dataset/manifest.h"

#include "dataset/error.h"
#include "dataset/fsync_dir.h"
#include "dataset/manifest_internal.h"
#include "dataset/record.h"
#include "dataset/shard.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int ds_strv_push(ds_strv *s, const char *str)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return DS_SHARD_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *c = strdup(str);
    if (!c)
        return DS_SHARD_ENOMEM;
    s->v[s->n++] = c;
    return DS_SHARD_OK;
}

void ds_strv_free(ds_strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

const ds_manifest_split *ds_manifest_find_split(const ds_manifest *m, const char *name)
{
    for (int i = 0; i < m->n_splits; i++)
        if (strcmp(m->splits[i].name, name) == 0)
            return &m->splits[i];
    return NULL;
}

const ds_manifest_vocab *ds_manifest_find_vocab(const ds_manifest *m, const char *name)
{
    for (int i = 0; i < m->n_vocabs; i++)
        if (strcmp(m->vocabs[i].name, name) == 0)
            return &m->vocabs[i];
    return NULL;
}

/* Grow an array of structs by one zeroed element; the arrays are short (splits, vocabularies, reasons). */
static void *grow(void *arr, int *n, size_t size)
{
    char *a = realloc(arr, (size_t)(*n + 1) * size);
    if (!a)
        return NULL;
    memset(a + (size_t)*n * size, 0, size);
    (*n)++;
    return a;
}

ds_manifest_split *ds_manifest_add_split(ds_manifest *m, const char *name)
{
    if (ds_manifest_find_split(m, name))
        return NULL;
    char *copy = strdup(name);
    ds_manifest_split *s = copy ? grow(m->splits, &m->n_splits, sizeof *s) : NULL;
    if (!s) {
        free(copy);
        return NULL;
    }
    m->splits = s;
    s[m->n_splits - 1].name = copy;
    return &s[m->n_splits - 1];
}

ds_manifest_vocab *ds_manifest_add_vocab(ds_manifest *m, const char *name)
{
    if (ds_manifest_find_vocab(m, name))
        return NULL;
    char *copy = strdup(name);
    ds_manifest_vocab *v = copy ? grow(m->vocabs, &m->n_vocabs, sizeof *v) : NULL;
    if (!v) {
        free(copy);
        return NULL;
    }
    m->vocabs = v;
    v[m->n_vocabs - 1].name = copy;
    return &v[m->n_vocabs - 1];
}

int ds_manifest_add_skip(ds_manifest *m, const char *reason, const char *line)
{
    int i = 0;
    while (i < m->n_skips && strcmp(m->skips[i].reason, reason) != 0)
        i++;
    if (i == m->n_skips) {
        char *copy = strdup(reason);
        ds_manifest_skip *s = copy ? grow(m->skips, &m->n_skips, sizeof *s) : NULL;
        if (!s) {
            free(copy);
            return DS_SHARD_ENOMEM;
        }
        m->skips = s;
        s[i].reason = copy;
    }
    m->skips[i].count++;
    return line ? ds_strv_push(&m->skip_lines, line) : DS_SHARD_OK;
}

void ds_manifest_free(ds_manifest *m)
{
    free(m->created_by);
    for (int i = 0; i < m->n_splits; i++) {
        free(m->splits[i].name);
        ds_strv_free(&m->splits[i].shards);
        ds_strv_free(&m->splits[i].conversation_ids);
    }
    free(m->splits);
    for (int i = 0; i < m->n_skips; i++)
        free(m->skips[i].reason);
    free(m->skips);
    ds_strv_free(&m->skip_lines);
    for (int i = 0; i < m->n_vocabs; i++) {
        free(m->vocabs[i].name);
        ds_strv_free(&m->vocabs[i].items);
    }
    free(m->vocabs);
    free(m->source_data_dir);
    free(m->source_json);
    free(m->media.scaler);
    free(m->media.audio_dir);
    free(m->media.video_dir);
    memset(m, 0, sizeof *m);
}

static int is_md5(const char *s)
{
    for (int i = 0; i < 32; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return s[32] == 0;
}

/* The invariants that involve more than one field's type; shared by write (EINVAL) and read (ECORRUPT). */
static int check_manifest(const ds_manifest *m, const char *path, int code, char *err, size_t errlen)
{
    if (m->version != DS_MANIFEST_VERSION)
        return ds_fail(err, errlen, code, "%s: version: %d (this empd reads version %d)", path, m->version,
                    DS_MANIFEST_VERSION);
    if (m->format_version < 1)
        return ds_fail(err, errlen, code, "%s: format_version: %d (expected >= 1)", path, m->format_version);
    if (m->labels != 7 && m->labels != 32)
        return ds_fail(err, errlen, code, "%s: labels: %d (expected 7 or 32)", path, m->labels);
    for (int i = 0; i < m->n_splits; i++) {
        const ds_manifest_split *s = &m->splits[i];
        if (!ds_shard_split_name_ok(s->name))
            return ds_fail(err, errlen, code, "%s: splits: name \"%s\" (expected 1..%d of [a-z0-9_])", path, s->name,
                        DS_SPLIT_NAME_MAX);
        if (s->conversation_ids.n != s->count)
            return ds_fail(err, errlen, code, "%s: splits.%s.conversation_ids: %zu ids for count %zu", path, s->name,
                        s->conversation_ids.n, s->count);
        for (size_t k = 0; k < s->conversation_ids.n; k++) {
            size_t len = strlen(s->conversation_ids.v[k]);
            if (len == 0 || len > DS_CONV_ID_MAX)
                return ds_fail(err, errlen, code, "%s: splits.%s.conversation_ids[%zu]: length %zu (expected 1..%d)",
                            path, s->name, k, len, DS_CONV_ID_MAX);
        }
        if (s->count > 0 && s->shards.n == 0)
            return ds_fail(err, errlen, code, "%s: splits.%s.shards: empty for %zu samples", path, s->name, s->count);
        const int64_t *h[2] = {s->label7_hist, s->label32_hist};
        const int hn[2] = {7, 32};
        const char *hname[2] = {"label7_histogram", "label32_histogram"};
        for (int k = 0; k < 2; k++) {
            int64_t sum = 0;
            for (int j = 0; j < hn[k]; j++) {
                if (h[k][j] < 0)
                    return ds_fail(err, errlen, code, "%s: splits.%s.%s[%d]: %lld (expected >= 0)", path, s->name,
                                hname[k], j, (long long)h[k][j]);
                sum += h[k][j];
            }
            if (sum > (int64_t)s->count)
                return ds_fail(err, errlen, code, "%s: splits.%s.%s: sums to %lld, more than count %zu", path,
                            s->name, hname[k], (long long)sum, s->count);
        }
    }
    if (!is_md5(m->vocab_md5))
        return ds_fail(err, errlen, code, "%s: tokenizer.vocab_md5: \"%s\" is not 32 lowercase hex digits", path,
                    m->vocab_md5);
    if (m->vocab_size < 1 || m->vocab_size > 65536)
        return ds_fail(err, errlen, code, "%s: tokenizer.vocab_size: %d (expected 1..65536)", path, m->vocab_size);
    if (m->utt_max_tokens < 1 || m->utt_max_tokens > 65535)
        return ds_fail(err, errlen, code, "%s: tokenizer.utt_max_tokens: %d (expected 1..65535)", path, m->utt_max_tokens);
    if (m->ctx_max_tokens < 1 || m->ctx_max_tokens > 65535)
        return ds_fail(err, errlen, code, "%s: tokenizer.ctx_max_tokens: %d (expected 1..65535)", path, m->ctx_max_tokens);
    return mf_check_media(&m->media, path, code, err, errlen);
}

/* Builders attach each child to its parent as soon as it exists, so deleting the root frees everything
 * and a NULL anywhere means out of memory. */
static int add_strv(cJSON *obj, const char *key, const ds_strv *s)
{
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (size_t i = 0; a && i < s->n; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateString(s->v[i])))
            return -1;
    return a ? 0 : -1;
}

static int add_hist(cJSON *obj, const char *key, const int64_t *h, int n)
{
    cJSON *a = cJSON_AddArrayToObject(obj, key);
    for (int i = 0; a && i < n; i++)
        if (!cJSON_AddItemToArray(a, cJSON_CreateNumber((double)h[i])))
            return -1;
    return a ? 0 : -1;
}

static cJSON *manifest_json(const ds_manifest *m)
{
    cJSON *root = cJSON_CreateObject();
    if (!root)
        return NULL;
    int bad = !cJSON_AddNumberToObject(root, "version", m->version) ||
              !cJSON_AddNumberToObject(root, "format_version", m->format_version) ||
              !cJSON_AddNumberToObject(root, "labels", m->labels) ||
              !cJSON_AddStringToObject(root, "created_by", m->created_by ? m->created_by : "");
    cJSON *splits = cJSON_AddObjectToObject(root, "splits");
    bad = bad || !splits;
    for (int i = 0; !bad && i < m->n_splits; i++) {
        const ds_manifest_split *s = &m->splits[i];
        cJSON *o = cJSON_AddObjectToObject(splits, s->name);
        bad = !o || !cJSON_AddNumberToObject(o, "count", (double)s->count) || add_strv(o, "shards", &s->shards) ||
              add_strv(o, "conversation_ids", &s->conversation_ids) ||
              add_hist(o, "label7_histogram", s->label7_hist, 7) ||
              add_hist(o, "label32_histogram", s->label32_hist, 32);
    }
    cJSON *skipped = bad ? NULL : cJSON_AddObjectToObject(root, "skipped");
    cJSON *counts = skipped ? cJSON_AddObjectToObject(skipped, "counts") : NULL;
    bad = bad || !counts;
    for (int i = 0; !bad && i < m->n_skips; i++)
        bad = !cJSON_AddNumberToObject(counts, m->skips[i].reason, (double)m->skips[i].count);
    bad = bad || add_strv(skipped, "lines", &m->skip_lines);
    cJSON *vocabs = bad ? NULL : cJSON_AddObjectToObject(root, "vocabularies");
    bad = bad || !vocabs;
    for (int i = 0; !bad && i < m->n_vocabs; i++)
        bad = add_strv(vocabs, m->vocabs[i].name, &m->vocabs[i].items);
    cJSON *tok = bad ? NULL : cJSON_AddObjectToObject(root, "tokenizer");
    bad = bad || !tok || !cJSON_AddStringToObject(tok, "vocab_md5", m->vocab_md5) ||
          !cJSON_AddNumberToObject(tok, "vocab_size", m->vocab_size) ||
          !cJSON_AddNumberToObject(tok, "utt_max_tokens", m->utt_max_tokens) ||
          !cJSON_AddNumberToObject(tok, "ctx_max_tokens", m->ctx_max_tokens);
    cJSON *src = bad ? NULL : cJSON_AddObjectToObject(root, "source");
    bad = bad || !src ||
          !cJSON_AddStringToObject(src, "data_dir", m->source_data_dir ? m->source_data_dir : "") ||
          !cJSON_AddStringToObject(src, "json_file", m->source_json ? m->source_json : "");
    bad = bad || mf_add_media(root, &m->media);
    if (bad) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}


int ds_manifest_write(const ds_manifest *m, const char *path, char *err, size_t errlen)
{
    int rc = check_manifest(m, path, DS_SHARD_EINVAL, err, errlen);
    if (rc)
        return rc;
    cJSON *root = manifest_json(m);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory building the JSON", path);

    size_t plen = strlen(path);
    char *tmp = malloc(plen + 5);
    if (!tmp) {
        free(text);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", path);
    }
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp", 5);
    rc = DS_SHARD_OK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        size_t len = strlen(text), done = 0;
        while (done < len) {
            ssize_t w = write(fd, text + done, len - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        if (done < len || write(fd, "\n", 1) != 1 || fsync(fd) != 0)
            rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: write failed: %s", tmp, strerror(errno));
        if (close(fd) != 0 && !rc)
            rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: close failed: %s", tmp, strerror(errno));
        if (!rc && rename(tmp, path) != 0)
            rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
        if (rc)
            unlink(tmp);
        else if (ds_fsync_parent(path) != 0)
            rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: cannot fsync its folder: %s", path, strerror(errno));
    }
    free(tmp);
    free(text);
    return rc;
}

/* Reading: each helper names the full field path in its message. */

/* Range first: converting an out-of-range double to int64_t is undefined. */
static int is_int(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble >= lo && v->valuedouble <= hi &&
           v->valuedouble == (double)(int64_t)v->valuedouble;
}

int mf_bad(const mf_rctx *c, const char *field, const char *what)
{
    return ds_fail(c->err, c->errlen, DS_SHARD_ECORRUPT, "%s: %s: %s", c->path, field, what);
}

const cJSON *mf_get(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v)
        *rc = mf_bad(c, field, "missing");
    return v;
}

const cJSON *mf_get_object(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, int *rc)
{
    const cJSON *v = mf_get(c, obj, key, field, rc);
    if (v && !cJSON_IsObject(v)) {
        *rc = mf_bad(c, field, "expected an object");
        return NULL;
    }
    return v;
}

int mf_get_int(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, double lo, double hi,
               double *out)
{
    int rc = 0;
    const cJSON *v = mf_get(c, obj, key, field, &rc);
    if (rc)
        return rc;
    if (!is_int(v, lo, hi)) {
        char what[96];
        snprintf(what, sizeof what, "expected an integer in %.0f..%.0f", lo, hi);
        return mf_bad(c, field, what);
    }
    *out = v->valuedouble;
    return 0;
}

int mf_get_str(const mf_rctx *c, const cJSON *obj, const char *key, const char *field, char **out)
{
    int rc = 0;
    const cJSON *v = mf_get(c, obj, key, field, &rc);
    if (rc)
        return rc;
    if (!cJSON_IsString(v))
        return mf_bad(c, field, "expected a string");
    *out = strdup(v->valuestring);
    return *out ? 0 : ds_fail(c->err, c->errlen, DS_SHARD_ENOMEM, "%s: out of memory", c->path);
}

static int read_strv(const mf_rctx *c, const cJSON *v, const char *field, ds_strv *out)
{
    if (!cJSON_IsArray(v))
        return mf_bad(c, field, "expected an array of strings");
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e))
            return mf_bad(c, field, "expected an array of strings");
        if (ds_strv_push(out, e->valuestring))
            return ds_fail(c->err, c->errlen, DS_SHARD_ENOMEM, "%s: out of memory", c->path);
    }
    return 0;
}

static int read_hist(const mf_rctx *c, const cJSON *v, const char *field, int64_t *h, int n)
{
    char what[64];
    snprintf(what, sizeof what, "expected an array of %d integers", n);
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != n)
        return mf_bad(c, field, what);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!is_int(e, -9007199254740992.0, 9007199254740992.0))
            return mf_bad(c, field, what);
        h[i++] = (int64_t)e->valuedouble;
    }
    return 0;
}

/* splits.NAME.key as an array of strings, or of n integers. */
static int split_strv(const mf_rctx *c, const cJSON *o, const char *name, const char *key, ds_strv *out)
{
    char f[160];
    int rc = 0;
    snprintf(f, sizeof f, "splits.%s.%s", name, key);
    const cJSON *v = mf_get(c, o, key, f, &rc);
    return v ? read_strv(c, v, f, out) : rc;
}

static int split_hist(const mf_rctx *c, const cJSON *o, const char *name, const char *key, int64_t *h, int n)
{
    char f[160];
    int rc = 0;
    snprintf(f, sizeof f, "splits.%s.%s", name, key);
    const cJSON *v = mf_get(c, o, key, f, &rc);
    return v ? read_hist(c, v, f, h, n) : rc;
}

static int read_split(const mf_rctx *c, const cJSON *o, ds_manifest_split *s)
{
    char f[160];
    int rc;
    double count;
    snprintf(f, sizeof f, "splits.%s", s->name);
    if (!cJSON_IsObject(o))
        return mf_bad(c, f, "expected an object");
    snprintf(f, sizeof f, "splits.%s.count", s->name);
    if ((rc = mf_get_int(c, o, "count", f, 0, 9007199254740992.0, &count)))
        return rc;
    s->count = (size_t)count;
    if ((rc = split_strv(c, o, s->name, "shards", &s->shards)))
        return rc;
    snprintf(f, sizeof f, "splits.%s.shards", s->name);
    for (size_t i = 0; i < s->shards.n; i++)
        if (!s->shards.v[i][0] || strchr(s->shards.v[i], '/'))
            return mf_bad(c, f, "expected plain file names inside the shards folder");
    if ((rc = split_strv(c, o, s->name, "conversation_ids", &s->conversation_ids)) ||
        (rc = split_hist(c, o, s->name, "label7_histogram", s->label7_hist, 7)) ||
        (rc = split_hist(c, o, s->name, "label32_histogram", s->label32_hist, 32)))
        return rc;
    return 0;
}

static int read_root(const mf_rctx *c, const cJSON *root, ds_manifest *m)
{
    int rc = 0;
    double d;
    const cJSON *v, *e;
    char f[160];
    if (!cJSON_IsObject(root))
        return mf_bad(c, "(top level)", "expected an object");
    if ((rc = mf_get_int(c, root, "version", "version", 0, 1e9, &d)))
        return rc;
    m->version = (int)d;
    if (m->version != DS_MANIFEST_VERSION)
        return check_manifest(m, c->path, DS_SHARD_ECORRUPT, c->err, c->errlen);
    if ((rc = mf_get_int(c, root, "format_version", "format_version", 1, 65535, &d)))
        return rc;
    m->format_version = (int)d;
    if ((rc = mf_get_int(c, root, "labels", "labels", 7, 32, &d)))
        return rc;
    if (d != 7 && d != 32)
        return mf_bad(c, "labels", "expected 7 or 32");
    m->labels = (int)d;
    if ((rc = mf_get_str(c, root, "created_by", "created_by", &m->created_by)))
        return rc;

    if (!(v = mf_get_object(c, root, "splits", "splits", &rc)))
        return rc;
    cJSON_ArrayForEach(e, v) {
        ds_manifest_split *s = ds_manifest_add_split(m, e->string);
        if (!s)
            return mf_bad(c, "splits", "duplicate split name");
        if ((rc = read_split(c, e, s)))
            return rc;
    }

    const cJSON *sk = mf_get_object(c, root, "skipped", "skipped", &rc);
    if (!sk)
        return rc;
    if (!(v = mf_get_object(c, sk, "counts", "skipped.counts", &rc)))
        return rc;
    cJSON_ArrayForEach(e, v) {
        snprintf(f, sizeof f, "skipped.counts.%s", e->string);
        if (!is_int(e, 0, 9007199254740992.0))
            return mf_bad(c, f, "expected a count >= 0");
        if (ds_manifest_add_skip(m, e->string, NULL))
            return ds_fail(c->err, c->errlen, DS_SHARD_ENOMEM, "%s: out of memory", c->path);
        m->skips[m->n_skips - 1].count = (int64_t)e->valuedouble;
    }
    if (!(v = mf_get(c, sk, "lines", "skipped.lines", &rc)) || (rc = read_strv(c, v, "skipped.lines", &m->skip_lines)))
        return rc;

    if (!(v = mf_get_object(c, root, "vocabularies", "vocabularies", &rc)))
        return rc;
    cJSON_ArrayForEach(e, v) {
        ds_manifest_vocab *voc = ds_manifest_add_vocab(m, e->string);
        if (!voc)
            return mf_bad(c, "vocabularies", "duplicate vocabulary name");
        snprintf(f, sizeof f, "vocabularies.%s", e->string);
        if ((rc = read_strv(c, e, f, &voc->items)))
            return rc;
    }

    const cJSON *tok = mf_get_object(c, root, "tokenizer", "tokenizer", &rc);
    if (!tok)
        return rc;
    if (!(v = mf_get(c, tok, "vocab_md5", "tokenizer.vocab_md5", &rc)))
        return rc;
    if (!cJSON_IsString(v) || strlen(v->valuestring) != 32)
        return mf_bad(c, "tokenizer.vocab_md5", "expected a string of 32 hex digits");
    memcpy(m->vocab_md5, v->valuestring, 33);
    if ((rc = mf_get_int(c, tok, "vocab_size", "tokenizer.vocab_size", 1, 65536, &d)))
        return rc;
    m->vocab_size = (int)d;
    if ((rc = mf_get_int(c, tok, "utt_max_tokens", "tokenizer.utt_max_tokens", 1, 65535, &d)))
        return rc;
    m->utt_max_tokens = (int)d;
    if ((rc = mf_get_int(c, tok, "ctx_max_tokens", "tokenizer.ctx_max_tokens", 1, 65535, &d)))
        return rc;
    m->ctx_max_tokens = (int)d;

    const cJSON *src = mf_get_object(c, root, "source", "source", &rc);
    if (!src)
        return rc;
    if ((rc = mf_get_str(c, src, "data_dir", "source.data_dir", &m->source_data_dir)) ||
        (rc = mf_get_str(c, src, "json_file", "source.json_file", &m->source_json)))
        return rc;
    const cJSON *media = cJSON_GetObjectItemCaseSensitive(root, "media");
    if (media && (rc = mf_read_media(c, media, &m->media)))
        return rc;
    return check_manifest(m, c->path, DS_SHARD_ECORRUPT, c->err, c->errlen);
}

int ds_manifest_read(const char *path, ds_manifest *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    FILE *f = fopen(path, "rb");
    if (!f)
        return ds_fail(err, errlen, errno == ENOENT ? DS_SHARD_ENOENT : DS_SHARD_EIO, "%s: cannot open: %s", path,
                    strerror(errno));
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = DS_SHARD_OK;
    for (;;) {
        if (cap - len < 65536) {
            char *t = realloc(text, cap = cap ? 2 * cap : 65536 + 1);
            if (!t) {
                rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", path);
                break;
            }
            text = t;
        }
        size_t got = fread(text + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                rc = ds_fail(err, errlen, DS_SHARD_EIO, "%s: read failed", path);
            break;
        }
    }
    fclose(f);
    if (rc) {
        free(text);
        return rc;
    }
    text[len] = 0;
    const char *at = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &at, 0);
    /* One JSON document and white space; text after it is a torn or mixed-up file. */
    while (root && at && at < text + len && *at && strchr(" \t\r\n", *at))
        at++;
    if (!root || (at && at < text + len)) {
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : len;
        cJSON_Delete(root);
        free(text);
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: not valid JSON (near byte %zu)", path, off);
    }
    free(text);
    mf_rctx c = {path, err, errlen};
    rc = read_root(&c, root, m);
    cJSON_Delete(root);
    return rc;
}