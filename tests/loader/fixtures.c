#include "tests/loader/fixtures.h"

#include "tests/common/test_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

typedef struct {
    rec_store *st;
    int media;
} media_gen;

static void gen_media(void *arg, ds_record *r, int u, uint64_t *s)
{
    const media_gen *g = arg;
    rec_store *st = g->st;
    int media = g->media;
    ds_utt *ut = &r->utt[u];
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
    media_gen g = {st, media};
    sf_gen_record(&st->r, st->ctx, st->tok, seed, index, media == MEDIA_NONE ? NULL : gen_media, &g);
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

void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media)
{
    make_split_with(dir, m, name, seed, n, parts, media, NULL, NULL);
}

typedef struct {
    rec_store *st;
    uint64_t seed;
    int media;
    rec_hook hook;
    void *ctx;
} split_gen;

static const ds_record *next_record(void *arg, uint32_t index)
{
    split_gen *g = arg;
    gen_record(g->st, g->seed, index, g->media);
    if (g->hook)
        g->hook(g->st, g->ctx);
    return &g->st->r;
}

void make_split_with(const char *dir, ds_manifest *m, const char *name, uint64_t seed, int n, int parts, int media,
                     rec_hook hook, void *ctx)
{
    if (media != MEDIA_NONE && !m->media.audio) {
        ds_manifest_media *md = &m->media;
        *md = (ds_manifest_media){.audio = 1, .audio_rate = DS_AUDIO_RATE, .audio_max_seconds = 10, .video = 1,
                                  .n_frames = DS_N_FRAMES, .frame_w = FRAME_W, .frame_h = FRAME_H,
                                  .frame_format = media == MEDIA_RAW ? DS_FRAME_RAW : DS_FRAME_JPEG,
                                  .jpeg_quality = 90, .scaler = strdup("bilinear"), .audio_dir = strdup("audio"),
                                  .video_dir = strdup("video")};
    }
    /* Parts as even as n allows, the last ones the larger. */
    int sizes[16];
    assert_in_range(parts, 1, 16);
    for (int p = 0; p < parts; p++)
        sizes[p] = n * (p + 1) / parts - n * p / parts;
    split_gen g = {rec_new(), seed, media, hook, ctx};
    sf_write_split(dir, m, name, sizes, parts, next_record, &g);
    rec_free(g.st);
}

void manifest_base(ds_manifest *m)
{
    sf_manifest_base(m, "test_loader");
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
