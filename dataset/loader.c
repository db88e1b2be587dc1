#include "dataset/loader.h"

#include "dataset/error.h"
#include "dataset/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ds_loader {
    ds_manifest m;
    ds_shard_reader **readers;   /* [m.n_splits], NULL for a split without shards */
};

/* 64-byte alignment: a cache line and the widest vector loads torch uses on these arrays. */
static void *zalloc(size_t n)
{
    void *p = NULL;
    if (posix_memalign(&p, 64, n ? n : 64) != 0)
        return NULL;
    memset(p, 0, n);
    return p;
}

int ds_batch_alloc(ds_batch *b, int B, int U, int L, int C, char *err, size_t errlen)
{
    memset(b, 0, sizeof *b);
    if (B < 1 || U < 1 || U > DS_MAX_UTT || L < 2 || C < 2)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "batch %dx%dx%d, context %d: need B >= 1, 1 <= U <= %d, L >= 2, "
                    "C >= 2", B, U, L, C, DS_MAX_UTT);
    size_t bul = (size_t)B * U * L, bu = (size_t)B * U, bc = (size_t)B * C;
    b->B = B;
    b->U = U;
    b->L = L;
    b->C = C;
    b->utt_tokens = zalloc(bul * sizeof *b->utt_tokens);
    b->utt_mask = zalloc(bul * sizeof *b->utt_mask);
    b->utt_valid = zalloc(bu * sizeof *b->utt_valid);
    b->utt_role = zalloc(bu * sizeof *b->utt_role);
    b->ctx_tokens = zalloc(bc * sizeof *b->ctx_tokens);
    b->ctx_mask = zalloc(bc * sizeof *b->ctx_mask);
    b->meta = zalloc((size_t)B * DS_META_N * sizeof *b->meta);
    b->label7 = zalloc((size_t)B * sizeof *b->label7);
    b->label32 = zalloc((size_t)B * sizeof *b->label32);
    b->sample_index = zalloc((size_t)B * sizeof *b->sample_index);
    if (!b->utt_tokens || !b->utt_mask || !b->utt_valid || !b->utt_role || !b->ctx_tokens || !b->ctx_mask ||
        !b->meta || !b->label7 || !b->label32 || !b->sample_index) {
        ds_batch_free(b);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "batch %dx%dx%d: out of memory", B, U, L);
    }
    return DS_SHARD_OK;
}

void ds_batch_free(ds_batch *b)
{
    free(b->utt_tokens);
    free(b->utt_mask);
    free(b->utt_valid);
    free(b->utt_role);
    free(b->ctx_tokens);
    free(b->ctx_mask);
    free(b->meta);
    free(b->label7);
    free(b->label32);
    free(b->sample_index);
    memset(b, 0, sizeof *b);
}

void ds_loader_close(ds_loader *l)
{
    if (!l)
        return;
    for (int i = 0; l->readers && i < l->m.n_splits; i++)
        ds_shard_reader_close(l->readers[i]);
    free(l->readers);
    ds_manifest_free(&l->m);
    free(l);
}

int ds_loader_open(const char *shards_dir, ds_loader **out, char *err, size_t errlen)
{
    *out = NULL;
    ds_loader *l = calloc(1, sizeof *l);
    size_t plen = strlen(shards_dir) + sizeof DS_MANIFEST_FILE + 1;
    char *path = malloc(plen);
    if (!l || !path) {
        free(l);
        free(path);
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", shards_dir);
    }
    snprintf(path, plen, "%s/%s", shards_dir, DS_MANIFEST_FILE);
    int rc = ds_manifest_read(path, &l->m, err, errlen);
    free(path);
    if (!rc && !(l->readers = calloc((size_t)l->m.n_splits + 1, sizeof *l->readers)))
        rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "%s: out of memory", shards_dir);
    for (int i = 0; !rc && i < l->m.n_splits; i++) {
        const ds_manifest_split *s = &l->m.splits[i];
        if (s->shards.n == 0)
            continue;
        rc = ds_shard_reader_open(shards_dir, s->name, s->shards.v, s->shards.n, &l->readers[i], err, errlen);
        if (!rc && ds_shard_reader_count(l->readers[i]) != s->count)
            rc = ds_fail(err, errlen, DS_SHARD_ECORRUPT, "%s: split %s has %zu records in its shards, manifest.json "
                      "says %zu (re-run the sharder)", shards_dir, s->name, ds_shard_reader_count(l->readers[i]),
                      s->count);
    }
    if (rc) {
        ds_loader_close(l);
        return rc;
    }
    *out = l;
    return DS_SHARD_OK;
}

const ds_manifest *ds_loader_manifest(const ds_loader *l) { return &l->m; }

static int split_index(const ds_loader *l, const char *split)
{
    for (int i = 0; i < l->m.n_splits; i++)
        if (strcmp(l->m.splits[i].name, split) == 0)
            return i;
    return -1;
}

size_t ds_loader_count(const ds_loader *l, const char *split)
{
    int i = split_index(l, split);
    return i < 0 ? 0 : l->m.splits[i].count;
}

/* Copy n tokens into a row of width w, keeping the first w-1 and the last when they do not fit. */
static void put_tokens(int64_t *tok, float *mask, int w, const uint16_t *src, int n)
{
    int keep = n <= w ? n : w;
    for (int i = 0; i < keep; i++) {
        tok[i] = src[n > w && i == w - 1 ? n - 1 : i];
        mask[i] = 1.0f;
    }
}

static void fill_row(ds_batch *b, int row, const ds_record *r)
{
    const int U = b->U, L = b->L, C = b->C;
    int first = r->n_utt > U ? r->n_utt - U : 0;
    for (int u = first; u < r->n_utt; u++) {
        size_t slot = (size_t)row * U + (size_t)(u - first);
        b->utt_valid[slot] = 1.0f;
        b->utt_role[slot] = r->utt[u].role;
        put_tokens(b->utt_tokens + slot * L, b->utt_mask + slot * L, L, r->utt[u].tokens, r->utt[u].n_tokens);
    }
    put_tokens(b->ctx_tokens + (size_t)row * C, b->ctx_mask + (size_t)row * C, C, r->ctx, r->n_ctx);
    for (int k = 0; k < DS_META_N; k++)
        b->meta[(size_t)row * DS_META_N + k] = r->meta[k];
    b->label7[row] = r->label7;
    b->label32[row] = r->label32;
    b->sample_index[row] = r->sample_index;
}

static void batch_zero(ds_batch *b)
{
    size_t bul = (size_t)b->B * b->U * b->L, bu = (size_t)b->B * b->U, bc = (size_t)b->B * b->C;
    memset(b->utt_tokens, 0, bul * sizeof *b->utt_tokens);
    memset(b->utt_mask, 0, bul * sizeof *b->utt_mask);
    memset(b->utt_valid, 0, bu * sizeof *b->utt_valid);
    memset(b->utt_role, 0, bu * sizeof *b->utt_role);
    memset(b->ctx_tokens, 0, bc * sizeof *b->ctx_tokens);
    memset(b->ctx_mask, 0, bc * sizeof *b->ctx_mask);
    memset(b->meta, 0, (size_t)b->B * DS_META_N * sizeof *b->meta);
    memset(b->label7, 0, (size_t)b->B * sizeof *b->label7);
    memset(b->label32, 0, (size_t)b->B * sizeof *b->label32);
    memset(b->sample_index, 0, (size_t)b->B * sizeof *b->sample_index);
}

int ds_loader_fill(ds_loader *l, const char *split, const size_t *indices, int n, ds_batch *b, char *err,
                   size_t errlen)
{
    b->n = 0;
    if (n < 0 || n > b->B)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "fill: %d rows for a batch of %d", n, b->B);
    int s = split_index(l, split);
    if (s < 0)
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "split \"%s\": not in the manifest", split);
    /* Zero everything first: padding, absent utterances and rows >= n all read as zero without
     * per-field bookkeeping, and a (B=64, U=10, L=128) batch clears in well under a millisecond. */
    batch_zero(b);
    if (n == 0)
        return DS_SHARD_OK;
    if (!l->readers[s])
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "split %s: index %zu out of range (the split is empty)", split,
                    indices[0]);
    ds_shard_txn *t;
    int rc = ds_shard_txn_begin(l->readers[s], &t, err, errlen);
    for (int i = 0; !rc && i < n; i++) {
        ds_record r;
        rc = ds_shard_txn_get(t, indices[i], &r, err, errlen);
        if (!rc)
            fill_row(b, i, &r);
    }
    ds_shard_txn_end(t);
    if (!rc)
        b->n = n;
    return rc;
}
