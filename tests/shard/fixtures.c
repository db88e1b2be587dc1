/* nftw and memmem are GNU/XSI extensions beyond gnu11 defaults. */
#define _GNU_SOURCE
#include "tests/shard/fixtures.h"

#include "dataset/shard.h"

#include <dirent.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

char err[512];

media_cfg gen_media = {1, 1, DS_FRAME_JPEG, 6, 4};

uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void gen_record(rec_store *st, uint64_t seed, uint32_t index)
{
    uint64_t s = seed * 1000003u + index;
    ds_record *r = &st->r;
    memset(st, 0, sizeof *st);
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
    r->has_audio = (uint8_t)gen_media.audio;
    r->has_video = (uint8_t)gen_media.video;
    if (r->has_video) {
        r->frame_format = (uint8_t)gen_media.format;
        r->frame_w = (uint16_t)gen_media.w;
        r->frame_h = (uint16_t)gen_media.h;
    }
    const uint32_t raw_len = 3u * (uint32_t)gen_media.w * (uint32_t)gen_media.h;
    for (int u = 0; u < r->n_utt; u++) {
        ds_utt *ut = &r->utt[u];
        ut->role = u == r->n_utt - 1 ? DS_ROLE_LISTENER_RESPONSE : (uint8_t)(u % 2);
        ut->index = (uint16_t)u;
        ut->avatar = (int16_t)((int)(rnd(&s) % 101) - 1);
        ut->n_tokens = (uint16_t)(rnd(&s) % (MAX_UTT_TOK + 1));
        for (int k = 0; k < ut->n_tokens; k++)
            st->tok[u][k] = (uint16_t)rnd(&s);
        ut->tokens = st->tok[u];
        /* Each medium: present (half the time), bad or absent. */
        unsigned a = (unsigned)(rnd(&s) % 4), v = (unsigned)(rnd(&s) % 4);
        if (r->has_audio && a < 2) {
            ut->presence |= DS_PRESENT_AUDIO;
            ut->n_samples = 1 + (uint32_t)(rnd(&s) % MAX_SAMPLES);
            for (uint32_t k = 0; k < ut->n_samples; k++)
                st->wave[u][k] = (int16_t)rnd(&s);
            ut->wave = st->wave[u];
        } else if (r->has_audio && a == 2) {
            ut->presence |= DS_PRESENT_AUDIO_BAD;
        }
        if (r->has_video && v < 2) {
            ut->presence |= DS_PRESENT_VIDEO;
            for (int k = 0; k < DS_N_FRAMES; k++) {
                uint8_t *f = st->frames[u][k];
                uint32_t len = gen_media.format == DS_FRAME_RAW ? raw_len : 4 + (uint32_t)(rnd(&s) % (MAX_FRAME - 3));
                for (uint32_t b = 0; b < len; b++)
                    f[b] = (uint8_t)rnd(&s);
                if (gen_media.format == DS_FRAME_JPEG) {
                    f[0] = 0xff;
                    f[1] = 0xd8;
                }
                ut->frame_len[k] = len;
                ut->frame[k] = f;
            }
        } else if (r->has_video && v == 2) {
            ut->presence |= DS_PRESENT_VIDEO_BAD;
        }
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

void make_split(const char *dir, ds_manifest *m, const char *name, uint64_t seed, const int *sizes, int parts)
{
    ds_manifest_split *s = ds_manifest_add_split(m, name);
    assert_non_null(s);
    uint32_t idx = 0;
    rec_store *st = malloc(sizeof *st);
    for (int p = 0; p < parts; p++) {
        ds_shard_writer *w;
        assert_int_equal(ds_shard_writer_open(dir, name, p, NULL, &w, err, sizeof err), DS_SHARD_OK);
        for (int i = 0; i < sizes[p]; i++, idx++) {
            gen_record(st, seed, idx);
            assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), DS_SHARD_OK);
            assert_int_equal(ds_strv_push(&s->conversation_ids, st->r.conversation_id), 0);
            if (st->r.label7 >= 0)
                s->label7_hist[st->r.label7]++;
            if (st->r.label32 >= 0)
                s->label32_hist[st->r.label32]++;
            for (int u = 0; u < st->r.n_utt; u++) {
                unsigned p = st->r.utt[u].presence;
                ds_manifest_media *md = &m->media;
                if (st->r.has_audio)
                    (*(p & DS_PRESENT_AUDIO ? &md->audio_present : p & DS_PRESENT_AUDIO_BAD ? &md->audio_bad
                                                                                            : &md->audio_missing))++;
                if (st->r.has_video)
                    (*(p & DS_PRESENT_VIDEO ? &md->video_present : p & DS_PRESENT_VIDEO_BAD ? &md->video_bad
                                                                                            : &md->video_missing))++;
            }
        }
        assert_int_equal(ds_strv_push(&s->shards, ds_shard_writer_file(w)), 0);
        assert_int_equal(ds_shard_writer_close(w, err, sizeof err), DS_SHARD_OK);
    }
    s->count = idx;
    free(st);
}

void manifest_base(ds_manifest *m)
{
    memset(m, 0, sizeof *m);
    m->version = DS_MANIFEST_VERSION;
    m->format_version = DS_RECORD_VERSION;
    m->labels = 7;
    m->created_by = strdup("test_shard");
    memcpy(m->vocab_md5, MD5, 33);
    m->vocab_size = 30522;
    m->utt_max_tokens = MAX_UTT_TOK;
    m->ctx_max_tokens = MAX_CTX;
    m->source_data_dir = strdup("/data/AvaMERG");
    m->source_json = strdup("/data/AvaMERG/train.json");
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

void write_manifest(const char *dir, const ds_manifest *m)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, DS_MANIFEST_FILE);
    assert_int_equal(ds_manifest_write(m, p, err, sizeof err), DS_SHARD_OK);
}

void flip_byte(const char *path, long at)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_true(c != EOF);
    fseek(f, at, SEEK_SET);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

long corrupt_bytes(const char *path, const void *needle, size_t len, long delta)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    char *buf = malloc((size_t)n);
    fseek(f, 0, SEEK_SET);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    char *hit = memmem(buf, (size_t)n, needle, len);
    assert_non_null(hit);
    long at = (long)(hit - buf) + delta;
    free(buf);
    flip_byte(path, at);
    return at;
}

void corrupt_file(const char *path, const char *needle, long delta)
{
    corrupt_bytes(path, needle, strlen(needle), delta);
}
