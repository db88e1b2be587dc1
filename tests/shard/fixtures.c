/* nftw is an XSI extension beyond gnu11 defaults. */
#define _GNU_SOURCE
#include "tests/shard/fixtures.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

media_cfg gen_media = {1, 1, DS_FRAME_JPEG, 6, 4};

/* Each medium of utterance u: present (half the time), bad or absent. */
static void gen_utt_media(void *arg, ds_record *r, int u, uint64_t *s)
{
    rec_store *st = arg;
    ds_utt *ut = &r->utt[u];
    const uint32_t raw_len = 3u * (uint32_t)gen_media.w * (uint32_t)gen_media.h;
    unsigned a = (unsigned)(rnd(s) % 4), v = (unsigned)(rnd(s) % 4);
    if (gen_media.audio && a < 2) {
        ut->presence |= DS_PRESENT_AUDIO;
        ut->n_samples = 1 + (uint32_t)(rnd(s) % MAX_SAMPLES);
        for (uint32_t k = 0; k < ut->n_samples; k++)
            st->wave[u][k] = (int16_t)rnd(s);
        ut->wave = st->wave[u];
    } else if (gen_media.audio && a == 2) {
        ut->presence |= DS_PRESENT_AUDIO_BAD;
    }
    if (gen_media.video && v < 2) {
        ut->presence |= DS_PRESENT_VIDEO;
        for (int k = 0; k < DS_N_FRAMES; k++) {
            uint8_t *f = st->frames[u][k];
            uint32_t len = gen_media.format == DS_FRAME_RAW ? raw_len : 4 + (uint32_t)(rnd(s) % (MAX_FRAME - 3));
            for (uint32_t b = 0; b < len; b++)
                f[b] = (uint8_t)rnd(s);
            if (gen_media.format == DS_FRAME_JPEG) {
                f[0] = 0xff;
                f[1] = 0xd8;
            }
            ut->frame_len[k] = len;
            ut->frame[k] = f;
        }
    } else if (gen_media.video && v == 2) {
        ut->presence |= DS_PRESENT_VIDEO_BAD;
    }
}

void gen_record(rec_store *st, uint64_t seed, uint32_t index)
{
    ds_record *r = &st->r;
    memset(st, 0, sizeof *st);
    sf_gen_record(r, st->ctx, st->tok, seed, index, gen_utt_media, st);
    r->has_audio = (uint8_t)gen_media.audio;
    r->has_video = (uint8_t)gen_media.video;
    if (r->has_video) {
        r->frame_format = (uint8_t)gen_media.format;
        r->frame_w = (uint16_t)gen_media.w;
        r->frame_h = (uint16_t)gen_media.h;
    }
}

void assert_rec_eq(const ds_record *a, const ds_record *b)
{
    assert_int_equal(a->sample_index, b->sample_index);
    assert_string_equal(a->conversation_id, b->conversation_id);
    assert_int_equal(a->label7, b->label7);
    assert_int_equal(a->label32, b->label32);
    assert_memory_equal(a->meta, b->meta, sizeof a->meta);
    assert_int_equal(a->n_ctx, b->n_ctx);
    if (a->n_ctx)
        assert_memory_equal(a->ctx, b->ctx, 2u * a->n_ctx);
    assert_int_equal(a->n_utt, b->n_utt);
    for (int u = 0; u < a->n_utt; u++) {
        assert_int_equal(a->utt[u].role, b->utt[u].role);
        assert_int_equal(a->utt[u].presence, b->utt[u].presence);
        assert_int_equal(a->utt[u].index, b->utt[u].index);
        assert_int_equal(a->utt[u].avatar, b->utt[u].avatar);
        assert_int_equal(a->utt[u].n_tokens, b->utt[u].n_tokens);
        if (a->utt[u].n_tokens)
            assert_memory_equal(a->utt[u].tokens, b->utt[u].tokens, 2u * a->utt[u].n_tokens);
        assert_int_equal(a->utt[u].n_samples, b->utt[u].n_samples);
        if (a->utt[u].n_samples)
            assert_memory_equal(a->utt[u].wave, b->utt[u].wave, 2u * a->utt[u].n_samples);
        for (int k = 0; k < DS_N_FRAMES; k++) {
            assert_int_equal(a->utt[u].frame_len[k], b->utt[u].frame_len[k]);
            if (a->utt[u].frame_len[k])
                assert_memory_equal(a->utt[u].frame[k], b->utt[u].frame[k], a->utt[u].frame_len[k]);
        }
    }
    assert_int_equal(a->has_audio, b->has_audio);
    assert_int_equal(a->has_video, b->has_video);
    if (a->has_video) {
        assert_int_equal(a->frame_format, b->frame_format);
        assert_int_equal(a->frame_w, b->frame_w);
        assert_int_equal(a->frame_h, b->frame_h);
    }
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

char *make_tmpdir(void)
{
    char tmpl[] = "/tmp/test_shard.XXXXXX";
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    return strdup(d);
}

void rm_tmpdir(char *d)
{
    nftw(d, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(d);
}

int exists_in(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

typedef struct {
    rec_store *st;
    uint64_t seed;
} split_gen;

static const ds_record *next_record(void *arg, uint32_t index)
{
    split_gen *g = arg;
    gen_record(g->st, g->seed, index);
    return &g->st->r;
}

void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, const int *sizes, int parts)
{
    split_gen g = {malloc(sizeof *g.st), seed};
    assert_non_null(g.st);
    sf_write_split(dir, m, name, sizes, parts, next_record, &g);
    free(g.st);
}

void manifest_base(ds_manifest *m)
{
    sf_manifest_base(m, "test_shard");
    ds_manifest_media *md = &m->media;
    md->audio = gen_media.audio;
    md->video = gen_media.video;
    md->audio_rate = DS_AUDIO_RATE;
    md->audio_max_seconds = MAX_SAMPLES / (double)DS_AUDIO_RATE;
    md->n_frames = DS_N_FRAMES;
    md->frame_w = gen_media.w;
    md->frame_h = gen_media.h;
    md->frame_format = gen_media.format;
    md->jpeg_quality = 90;
    md->scaler = strdup("bilinear");
    md->audio_dir = strdup("/data/AvaMERG/audio");
    md->video_dir = strdup("/data/AvaMERG/video");
}
