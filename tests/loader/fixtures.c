/* nftw and memmem are GNU/XSI extensions beyond gnu11 defaults. */
#define _GNU_SOURCE
#include "tests/loader/fixtures.h"

#include "dataset/shard.h"
#include "tests/common/test_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char err[512];

uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

rec_store *rec_new(void)
{
    rec_store *st = calloc(1, sizeof *st);
    assert_non_null(st);
    assert_int_equal(ds_jpeg_open(&st->enc, err, sizeof err), 0);
    return st;
}

void rec_free(rec_store *st)
{
    for (int u = 0; u < DS_MAX_UTT; u++)
        for (int f = 0; f < DS_N_FRAMES; f++)
            ds_buf_free(&st->jpeg[u][f]);
    ds_jpeg_close(st->enc);
    free(st);
}

/* Smooth gradients with a per-frame offset: JPEG keeps them recognisable, so a swapped frame shows. */
static void draw_frame(uint8_t *rgb, uint64_t *s)
{
    int a = (int)(rnd(s) % 200), b = (int)(rnd(s) % 7) + 1, c = (int)(rnd(s) % 5) + 1;
    for (int y = 0; y < FRAME_H; y++)
        for (int x = 0; x < FRAME_W; x++) {
            uint8_t *p = rgb + 3 * (y * FRAME_W + x);
            p[0] = (uint8_t)(a + b * x);
            p[1] = (uint8_t)(a / 2 + c * y);
            p[2] = (uint8_t)(255 - a - x - y);
        }
}

static void gen_media(rec_store *st, ds_utt *ut, int u, uint64_t *s, int media)
{
    ds_record *r = &st->r;
    uint64_t roll = rnd(s) % 10;
    if (roll < 6) {
        ut->presence |= DS_PRESENT_AUDIO;
        ut->n_samples = (uint32_t)(1 + rnd(s) % MAX_WAVE);
        for (uint32_t i = 0; i < ut->n_samples; i++)
            st->wave[u][i] = (int16_t)rnd(s);
        ut->wave = st->wave[u];
    } else if (roll < 8) {
        ut->presence |= DS_PRESENT_AUDIO_BAD;
    }
    roll = rnd(s) % 10;
    if (roll < 6) {
        ut->presence |= DS_PRESENT_VIDEO;
        for (int f = 0; f < DS_N_FRAMES; f++) {
            draw_frame(st->rgb[u][f], s);
            if (media == MEDIA_RAW) {
                ut->frame[f] = st->rgb[u][f];
                ut->frame_len[f] = FRAME_RAW_BYTES;
            } else {
                assert_int_equal(ds_jpeg_encode(st->enc, st->rgb[u][f], FRAME_W, FRAME_H, 90, &st->jpeg[u][f], err,
                                                sizeof err), 0);
                ut->frame[f] = st->jpeg[u][f].data;
                ut->frame_len[f] = (uint32_t)st->jpeg[u][f].len;
            }
        }
    } else if (roll < 8) {
        ut->presence |= DS_PRESENT_VIDEO_BAD;
    }
    r->has_audio = r->has_video = 1;
    r->frame_format = media == MEDIA_RAW ? DS_FRAME_RAW : DS_FRAME_JPEG;
    r->frame_w = FRAME_W;
    r->frame_h = FRAME_H;
}

void gen_record(rec_store *st, uint64_t seed, uint32_t index, int media)
{
    uint64_t s = seed * 1000003u + index;
    ds_record *r = &st->r;
    memset(r, 0, sizeof *r);
    r->sample_index = index;
    snprintf(r->conversation_id, sizeof r->conversation_id, "c%llu-%06u", (unsigned long long)(seed % 1000), index);
    r->label7 = (int8_t)(rnd(&s) % 8) - 1;
    r->label32 = (int8_t)(rnd(&s) % 33) - 1;
    for (int i = 0; i < DS_META_N; i++)
        r->meta[i] = (int32_t)(rnd(&s) % 5 == 0 ? rnd(&s) % 0x7fffffffu : rnd(&s) % 100);
    r->n_ctx = (uint16_t)(rnd(&s) % (MAX_CTX + 1));
    for (int i = 0; i < r->n_ctx; i++)
        st->ctx[i] = (uint16_t)rnd(&s);
    r->ctx = st->ctx;
    r->n_utt = (int)(rnd(&s) % (DS_MAX_UTT + 1));
    for (int u = 0; u < r->n_utt; u++) {
        ds_utt *ut = &r->utt[u];
        ut->role = u == r->n_utt - 1 ? DS_ROLE_LISTENER_RESPONSE : (uint8_t)(u % 2);
        ut->index = (uint16_t)u;
        ut->avatar = (int16_t)((int)(rnd(&s) % 101) - 1);
        ut->n_tokens = (uint16_t)(rnd(&s) % (MAX_UTT_TOK + 1));
        for (int k = 0; k < ut->n_tokens; k++)
            st->tok[u][k] = (uint16_t)rnd(&s);
        ut->tokens = st->tok[u];
        if (media != MEDIA_NONE)
            gen_media(st, ut, u, &s, media);
    }
}

char *make_tmpdir(void)
{
    char buf[128];
    assert_int_equal(tf_make_temp_dir(buf, "test_loader"), 0);
    return strdup(buf);
}

void rm_tmpdir(char *d)
{
    tf_remove_tree(d);
    free(d);
}

static void count_media(ds_manifest_media *md, const ds_record *r)
{
    for (int u = 0; u < r->n_utt; u++) {
        unsigned p = r->utt[u].presence;
        md->audio_present += !!(p & DS_PRESENT_AUDIO);
        md->audio_bad += !!(p & DS_PRESENT_AUDIO_BAD);
        md->audio_missing += !(p & (DS_PRESENT_AUDIO | DS_PRESENT_AUDIO_BAD));
        md->video_present += !!(p & DS_PRESENT_VIDEO);
        md->video_bad += !!(p & DS_PRESENT_VIDEO_BAD);
        md->video_missing += !(p & (DS_PRESENT_VIDEO | DS_PRESENT_VIDEO_BAD));
    }
}

void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media)
{
    make_split_with(dir, m, name, seed, n, parts, media, NULL, NULL);
}

void make_split_with(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media,
                     rec_hook hook, void *ctx)
{
    ds_manifest_split *s = ds_manifest_add_split(m, name);
    assert_non_null(s);
    if (media != MEDIA_NONE && !m->media.audio) {
        ds_manifest_media *md = &m->media;
        *md = (ds_manifest_media){.audio = 1, .audio_rate = DS_AUDIO_RATE, .audio_max_seconds = 10, .video = 1,
                                  .n_frames = DS_N_FRAMES, .frame_w = FRAME_W, .frame_h = FRAME_H,
                                  .frame_format = media == MEDIA_RAW ? DS_FRAME_RAW : DS_FRAME_JPEG,
                                  .jpeg_quality = 90, .scaler = strdup("bilinear"), .audio_dir = strdup("audio"),
                                  .video_dir = strdup("video")};
    }
    rec_store *st = rec_new();
    uint32_t idx = 0;
    for (int p = 0; p < parts; p++) {
        ds_shard_writer *w;
        assert_int_equal(ds_shard_writer_open(dir, name, p, NULL, &w, err, sizeof err), DS_SHARD_OK);
        for (int end = n * (p + 1) / parts; (int)idx < end; idx++) {
            gen_record(st, seed, idx, media);
            if (hook)
                hook(st, ctx);
            if (ds_shard_writer_put(w, &st->r, err, sizeof err) != DS_SHARD_OK)
                fail_msg("put %u: %s", idx, err);
            assert_int_equal(ds_strv_push(&s->conversation_ids, st->r.conversation_id), 0);
            if (st->r.label7 >= 0)
                s->label7_hist[st->r.label7]++;
            if (st->r.label32 >= 0)
                s->label32_hist[st->r.label32]++;
            if (media != MEDIA_NONE)
                count_media(&m->media, &st->r);
        }
        assert_int_equal(ds_strv_push(&s->shards, ds_shard_writer_file(w)), 0);
        assert_int_equal(ds_shard_writer_close(w, err, sizeof err), DS_SHARD_OK);
    }
    s->count = idx;
    rec_free(st);
}

void manifest_base(ds_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->version = DS_MANIFEST_VERSION;
    m->format_version = DS_RECORD_VERSION;
    m->labels = 7;
    m->created_by = strdup("test_loader");
    memcpy(m->vocab_md5, MD5, 33);
    m->vocab_size = 30522;
    m->utt_max_tokens = MAX_UTT_TOK;
    m->ctx_max_tokens = MAX_CTX;
    m->source_data_dir = strdup("/data/AvaMERG");
    m->source_json = strdup("/data/AvaMERG/train.json");
}

void write_manifest(const char *dir, const ds_manifest *m)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, DS_MANIFEST_FILE);
    if (ds_manifest_write(m, p, err, sizeof err) != DS_SHARD_OK)
        fail_msg("manifest: %s", err);
}

void corrupt_file(const char *path, const char *needle, long delta)
{
    size_t n;
    char *buf = tf_read_text(path, &n);
    assert_non_null(buf);
    char *hit = memmem(buf, n, needle, strlen(needle));
    assert_non_null(hit);
    long at = (long)(hit - buf) + delta;
    free(buf);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    fseek(f, at, SEEK_SET);
    int c = fgetc(f);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

int batch_same(const ds_batch *a, const ds_batch *b)
{
    return a->n == b->n && a->bytes == b->bytes && !memcmp(&a->shape, &b->shape, sizeof a->shape) &&
           !memcmp(a->block, b->block, a->bytes);
}

static void *count_alloc(void *ctx, size_t bytes)
{
    counting *c = ctx;
    c->allocs++;
    c->bytes += bytes;
    void *p = NULL;
    return posix_memalign(&p, 64, bytes) == 0 ? p : NULL;
}

static void count_free(void *ctx, void *p)
{
    ((counting *)ctx)->frees++;
    free(p);
}

ds_allocator counting_allocator(counting *c)
{
    ds_allocator a = {count_alloc, count_free, c};
    return a;
}
