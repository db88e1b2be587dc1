#include "dataset/loader.h"

#include "dataset/error.h"
#include "dataset/image.h"
#include "dataset/shard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ds_loader {
    ds_manifest m;
    ds_shard_reader **readers;   /* [m.n_splits], NULL for a split without shards */
};

struct ds_loader_cursor {
    const char *split;           /* the manifest's name */
    ds_shard_txn *txn;
    ds_jpeg *jpeg;               /* opened at the first JPEG frame */
};

/* ---- batches ---- */

/* 64 bytes: a cache line and the widest vector loads torch uses on these arrays. */
#define ALIGN 64

static void *default_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    void *p = NULL;
    return posix_memalign(&p, ALIGN, bytes ? bytes : ALIGN) == 0 ? p : NULL;
}

static void default_free(void *ctx, void *p)
{
    (void)ctx;
    free(p);
}

/* n * size rounded up to ALIGN, added to *total; 0 on overflow. */
static int add_array(size_t *total, size_t n, size_t size)
{
    if (size && n > (SIZE_MAX / 2) / size)
        return 0;
    size_t bytes = (n * size + ALIGN - 1) / ALIGN * ALIGN;
    if (*total > SIZE_MAX / 2 - bytes)
        return 0;
    *total += bytes;
    return 1;
}

static const char *shape_problem(const ds_batch_shape *s)
{
    if (s->B < 1 || s->U < 1 || s->U > DS_MAX_UTT)
        return "need B >= 1 and U in 1..DS_MAX_UTT";
    if (s->mods & ~(DS_MOD_TEXT | DS_MOD_AUDIO | DS_MOD_VIDEO))
        return "unknown modality bits";
    if ((s->mods & DS_MOD_TEXT) && (s->L < 2 || s->L > 65535 || s->C < 2 || s->C > 65535))
        return "text needs 2 <= L, C <= 65535";
    if ((s->mods & DS_MOD_AUDIO) && s->S < 1)
        return "audio needs S >= 1";
    if ((s->mods & DS_MOD_VIDEO) && (s->H < 1 || s->H > 4096 || s->W < 1 || s->W > 4096))
        return "video needs 1 <= H, W <= 4096";
    return NULL;
}

/* Lays the arrays out in one block (b->block NULL: only sizes them). Returns the block size, 0 on
 * overflow. */
static size_t layout(ds_batch *b, const ds_batch_shape *s)
{
    size_t B = (size_t)s->B, bu = B * (size_t)s->U, total = 0;
    unsigned char *base = b->block;
    int ok = 1;
#define ARRAY(field, count, on)                                                    \
    do {                                                                           \
        if (on) {                                                                  \
            size_t at_ = total;                                                    \
            ok = ok && add_array(&total, (count), sizeof *b->field);               \
            if (ok && base)                                                        \
                b->field = (void *)(base + at_);                                   \
        }                                                                          \
    } while (0)
    int text = !!(s->mods & DS_MOD_TEXT), audio = !!(s->mods & DS_MOD_AUDIO), video = !!(s->mods & DS_MOD_VIDEO);
    ARRAY(utt_tokens, bu * (size_t)s->L, text);
    ARRAY(utt_mask, bu * (size_t)s->L, text);
    ARRAY(ctx_tokens, B * (size_t)s->C, text);
    ARRAY(ctx_mask, B * (size_t)s->C, text);
    if (audio && (size_t)s->S > SIZE_MAX / 4 / bu)
        return 0;
    ARRAY(audio, bu * (size_t)s->S, audio);
    ARRAY(audio_len, bu, audio);
    ARRAY(audio_valid, bu, audio);
    size_t frame = (size_t)s->H * (size_t)s->W * 3 * DS_N_FRAMES;
    if (video && frame > SIZE_MAX / 4 / bu)
        return 0;
    ARRAY(frames, bu * frame, video);
    ARRAY(video_valid, bu, video);
    ARRAY(utt_valid, bu, 1);
    ARRAY(utt_role, bu, 1);
    ARRAY(meta, B * DS_META_N, 1);
    ARRAY(label7, B, 1);
    ARRAY(label32, B, 1);
    ARRAY(sample_index, B, 1);
#undef ARRAY
    return ok ? total : 0;
}

size_t ds_batch_bytes(const ds_batch_shape *shape)
{
    ds_batch b;
    memset(&b, 0, sizeof b);
    return shape_problem(shape) ? 0 : layout(&b, shape);
}

int ds_batch_alloc(ds_batch *b, const ds_batch_shape *shape, const ds_allocator *a, char *err, size_t errlen)
{
    memset(b, 0, sizeof b[0]);
    const char *why = shape_problem(shape);
    size_t bytes = why ? 0 : layout(b, shape);
    if (!why && !bytes)
        why = "its size overflows";
    if (why)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "batch B=%d U=%d L=%d C=%d S=%d HxW=%dx%d mods=0x%x: %s", shape->B,
                       shape->U, shape->L, shape->C, shape->S, shape->H, shape->W, shape->mods, why);
    ds_allocator al = a && a->alloc ? *a : (ds_allocator){default_alloc, default_free, NULL};
    void *block = al.alloc(al.ctx, bytes);
    if (!block)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "batch of %zu bytes (B=%d): out of memory", bytes, shape->B);
    memset(block, 0, bytes);
    b->block = block;
    layout(b, shape);
    b->shape = *shape;
    b->B = shape->B;
    b->U = shape->U;
    b->L = shape->mods & DS_MOD_TEXT ? shape->L : 0;
    b->C = shape->mods & DS_MOD_TEXT ? shape->C : 0;
    b->S = shape->mods & DS_MOD_AUDIO ? shape->S : 0;
    b->H = shape->mods & DS_MOD_VIDEO ? shape->H : 0;
    b->W = shape->mods & DS_MOD_VIDEO ? shape->W : 0;
    b->bytes = bytes;
    b->allocator = al;
    return DS_SHARD_OK;
}

void ds_batch_free(ds_batch *b)
{
    if (b->block)
        b->allocator.free(b->allocator.ctx, b->block);
    memset(b, 0, sizeof b[0]);
}

static size_t frame_bytes(const ds_batch *b) { return (size_t)b->H * (size_t)b->W * 3; }

/* Zeroes `rows` rows from `row` on. */
static void clear_rows(ds_batch *b, int row, int rows)
{
    size_t r = (size_t)row, n = (size_t)rows, U = (size_t)b->U;
#define CLEAR(field, per_row)                                                       \
    do {                                                                            \
        if (b->field)                                                               \
            memset(b->field + r * (per_row), 0, n * (per_row) * sizeof *b->field);  \
    } while (0)
    CLEAR(utt_tokens, U * (size_t)b->L);
    CLEAR(utt_mask, U * (size_t)b->L);
    CLEAR(ctx_tokens, (size_t)b->C);
    CLEAR(ctx_mask, (size_t)b->C);
    CLEAR(audio, U * (size_t)b->S);
    CLEAR(audio_len, U);
    CLEAR(audio_valid, U);
    CLEAR(frames, U * DS_N_FRAMES * frame_bytes(b));
    CLEAR(video_valid, U);
    CLEAR(utt_valid, U);
    CLEAR(utt_role, U);
    CLEAR(meta, (size_t)DS_META_N);
    CLEAR(label7, 1);
    CLEAR(label32, 1);
    CLEAR(sample_index, 1);
#undef CLEAR
}

void ds_batch_clear_row(ds_batch *b, int row)
{
    if (row >= 0 && row < b->B)
        clear_rows(b, row, 1);
}

/* ---- loader ---- */

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

int ds_loader_cursor_open(ds_loader *l, const char *split, ds_loader_cursor **out, char *err, size_t errlen)
{
    *out = NULL;
    int s = split_index(l, split);
    if (s < 0)
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "split \"%s\": not in the manifest", split);
    if (!l->readers[s])
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "split %s: empty (no shards)", split);
    ds_loader_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "split %s: out of memory for a cursor", split);
    c->split = l->m.splits[s].name;
    int rc = ds_shard_txn_begin(l->readers[s], &c->txn, err, errlen);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return DS_SHARD_OK;
}

void ds_loader_cursor_close(ds_loader_cursor *c)
{
    if (!c)
        return;
    ds_shard_txn_end(c->txn);
    ds_jpeg_close(c->jpeg);
    free(c);
}

/* Copy n tokens into a zeroed row of width w, keeping the first w-1 and the last when they do not fit. */
static void put_tokens(uint16_t *tok, float *mask, int w, const uint16_t *src, int n)
{
    int keep = n <= w ? n : w;
    for (int i = 0; i < keep; i++) {
        tok[i] = src[n > w && i == w - 1 ? n - 1 : i];
        mask[i] = 1.0f;
    }
}

/* u NULL: an absent utterance. */
static void put_audio(ds_batch *b, size_t slot, const ds_utt *u)
{
    int16_t *dst = b->audio + slot * (size_t)b->S;
    size_t have = u && (u->presence & DS_PRESENT_AUDIO) && u->wave ? u->n_samples : 0;
    size_t keep = have < (size_t)b->S ? have : (size_t)b->S;
    if (keep)
        memcpy(dst, u->wave, keep * sizeof *dst);
    memset(dst + keep, 0, ((size_t)b->S - keep) * sizeof *dst);
    b->audio_len[slot] = (int64_t)keep;
    b->audio_valid[slot] = keep ? 1.0f : 0.0f;
}

/* u < 0: an absent utterance. */
static int put_frames(ds_loader_cursor *c, const ds_record *r, int u, ds_batch *b, size_t slot, char *err,
                      size_t errlen)
{
    const ds_utt *ut = u >= 0 ? &r->utt[u] : NULL;
    size_t fb = frame_bytes(b);
    uint8_t *dst = b->frames + slot * DS_N_FRAMES * fb;
    b->video_valid[slot] = 0.0f;
    if (!ut || !(ut->presence & DS_PRESENT_VIDEO) || !r->has_video) {
        memset(dst, 0, DS_N_FRAMES * fb);
        return DS_SHARD_OK;
    }
    if (r->frame_w != b->W || r->frame_h != b->H)
        return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "split %s, sample %u (%s): frames are %ux%u, the batch wants "
                       "%dx%d (shard with the frame size the model reads)", c->split, r->sample_index,
                       r->conversation_id, r->frame_w, r->frame_h, b->W, b->H);
    for (int f = 0; f < DS_N_FRAMES; f++, dst += fb) {
        if (r->frame_format == DS_FRAME_RAW) {
            if (ut->frame_len[f] != fb)
                return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "split %s, sample %u (%s), utterance %d, frame %d: "
                               "%u bytes of raw RGB, expected %zu", c->split, r->sample_index, r->conversation_id,
                               u, f, ut->frame_len[f], fb);
            memcpy(dst, ut->frame[f], fb);
            continue;
        }
        char why[256];
        int rc = c->jpeg ? 0 : ds_jpeg_open(&c->jpeg, why, sizeof why);
        if (!rc)
            rc = ds_jpeg_decode(c->jpeg, ut->frame[f], ut->frame_len[f], b->W, b->H, dst, why, sizeof why);
        if (rc)
            return ds_fail(err, errlen, DS_SHARD_ECORRUPT, "split %s, sample %u (%s), utterance %d, frame %d: %s",
                           c->split, r->sample_index, r->conversation_id, u, f, why);
    }
    b->video_valid[slot] = 1.0f;
    return DS_SHARD_OK;
}

static int fill_row(ds_loader_cursor *c, const ds_record *r, ds_batch *b, int row, char *err, size_t errlen)
{
    const size_t U = (size_t)b->U, L = (size_t)b->L, C = (size_t)b->C;
    int first = r->n_utt > b->U ? r->n_utt - b->U : 0, used = r->n_utt - first;
    if (b->utt_tokens) {
        memset(b->utt_tokens + row * U * L, 0, U * L * sizeof *b->utt_tokens);
        memset(b->utt_mask + row * U * L, 0, U * L * sizeof *b->utt_mask);
        memset(b->ctx_tokens + row * C, 0, C * sizeof *b->ctx_tokens);
        memset(b->ctx_mask + row * C, 0, C * sizeof *b->ctx_mask);
        put_tokens(b->ctx_tokens + row * C, b->ctx_mask + row * C, (int)C, r->ctx, r->n_ctx);
    }
    for (size_t k = 0; k < U; k++) {
        size_t slot = row * U + k;
        int ui = (int)k < used ? first + (int)k : -1;
        const ds_utt *u = ui >= 0 ? &r->utt[ui] : NULL;
        b->utt_valid[slot] = u ? 1.0f : 0.0f;
        b->utt_role[slot] = u ? u->role : 0;
        if (u && b->utt_tokens)
            put_tokens(b->utt_tokens + slot * L, b->utt_mask + slot * L, (int)L, u->tokens, u->n_tokens);
        if (b->audio)
            put_audio(b, slot, u);
        int rc = b->frames ? put_frames(c, r, ui, b, slot, err, errlen) : DS_SHARD_OK;
        if (rc)
            return rc;
    }
    for (int k = 0; k < DS_META_N; k++)
        b->meta[(size_t)row * DS_META_N + k] = r->meta[k];
    b->label7[row] = r->label7;
    b->label32[row] = r->label32;
    b->sample_index[row] = r->sample_index;
    return DS_SHARD_OK;
}

int ds_loader_cursor_fill_row(ds_loader_cursor *c, size_t index, ds_batch *b, int row, char *err, size_t errlen)
{
    if (row < 0 || row >= b->B)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "fill: row %d of a batch of %d", row, b->B);
    ds_record r;
    char why[400];
    int rc = ds_shard_txn_get(c->txn, index, &r, why, sizeof why);
    if (rc)
        return ds_fail(err, errlen, rc, "split %s: %s", c->split, why);
    return fill_row(c, &r, b, row, err, errlen);
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
    clear_rows(b, n, b->B - n);
    if (n == 0)
        return DS_SHARD_OK;
    ds_loader_cursor *c;
    int rc = ds_loader_cursor_open(l, split, &c, err, errlen);
    for (int i = 0; !rc && i < n; i++)
        rc = ds_loader_cursor_fill_row(c, indices[i], b, i, err, errlen);
    ds_loader_cursor_close(c);
    if (!rc)
        b->n = n;
    return rc;
}
