/* memmem is a GNU extension beyond gnu11 defaults. */
#define _GNU_SOURCE
#include "tests/common/shard_fixtures.h"

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

void sf_gen_record(ds_record *r, uint16_t *ctx, uint16_t (*tok)[MAX_UTT_TOK], uint64_t seed, uint32_t index,
                   sf_utt_fn media, void *arg)
{
    uint64_t s = seed * 1000003u + index;
    memset(r, 0, sizeof *r);
    r->sample_index = index;
    snprintf(r->conversation_id, sizeof r->conversation_id, "c%llu-%06u", (unsigned long long)(seed % 1000), index);
    r->label7 = (int8_t)(rnd(&s) % 8) - 1;
    r->label32 = (int8_t)(rnd(&s) % 33) - 1;
    for (int i = 0; i < DS_META_N; i++)
        r->meta[i] = (int32_t)(rnd(&s) % 5 == 0 ? rnd(&s) % 0x7fffffffu : rnd(&s) % 100);
    r->n_ctx = (uint16_t)(rnd(&s) % (MAX_CTX + 1));
    for (int i = 0; i < r->n_ctx; i++)
        ctx[i] = (uint16_t)rnd(&s);
    r->ctx = ctx;
    r->n_utt = (int)(rnd(&s) % (DS_MAX_UTT + 1));
    for (int u = 0; u < r->n_utt; u++) {
        ds_utt *ut = &r->utt[u];
        ut->role = u == r->n_utt - 1 ? DS_ROLE_LISTENER_RESPONSE : (uint8_t)(u % 2);
        ut->index = (uint16_t)u;
        ut->avatar = (int16_t)((int)(rnd(&s) % 101) - 1);
        ut->n_tokens = (uint16_t)(rnd(&s) % (MAX_UTT_TOK + 1));
        for (int k = 0; k < ut->n_tokens; k++)
            tok[u][k] = (uint16_t)rnd(&s);
        ut->tokens = tok[u];
        if (media)
            media(arg, r, u, &s);
    }
}

/* A sharder counts an utterance's medium only when the record carries that medium at all. */
static void count_media(ds_manifest_media *md, const ds_record *r)
{
    for (int u = 0; u < r->n_utt; u++) {
        unsigned p = r->utt[u].presence;
        if (r->has_audio)
            (*(p & DS_PRESENT_AUDIO ? &md->audio_present : p & DS_PRESENT_AUDIO_BAD ? &md->audio_bad
                                                                                    : &md->audio_missing))++;
        if (r->has_video)
            (*(p & DS_PRESENT_VIDEO ? &md->video_present : p & DS_PRESENT_VIDEO_BAD ? &md->video_bad
                                                                                    : &md->video_missing))++;
    }
}

void sf_write_split(const char *dir, ds_manifest *m, const char *name, const int *sizes, int parts,
                    sf_record_fn next, void *arg)
{
    ds_manifest_split *s = ds_manifest_add_split(m, name);
    assert_non_null(s);
    uint32_t idx = 0;
    for (int p = 0; p < parts; p++) {
        ds_shard_writer *w;
        assert_int_equal(ds_shard_writer_open(dir, name, p, NULL, &w, err, sizeof err), DS_SHARD_OK);
        for (int i = 0; i < sizes[p]; i++, idx++) {
            const ds_record *r = next(arg, idx);
            if (ds_shard_writer_put(w, r, err, sizeof err) != DS_SHARD_OK)
                fail_msg("put %u: %s", idx, err);
            assert_int_equal(ds_strv_push(&s->conversation_ids, r->conversation_id), 0);
            if (r->label7 >= 0)
                s->label7_hist[r->label7]++;
            if (r->label32 >= 0)
                s->label32_hist[r->label32]++;
            count_media(&m->media, r);
        }
        assert_int_equal(ds_strv_push(&s->shards, ds_shard_writer_file(w)), 0);
        assert_int_equal(ds_shard_writer_close(w, err, sizeof err), DS_SHARD_OK);
    }
    s->count = idx;
}

void sf_manifest_base(ds_manifest *m, const char *created_by)
{
    memset(m, 0, sizeof *m);
    m->version = DS_MANIFEST_VERSION;
    m->format_version = DS_RECORD_VERSION;
    m->labels = 7;
    m->created_by = strdup(created_by);
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

long corrupt_bytes(const char *path, const void *needle, size_t n, long delta)
{
    size_t len;
    char *buf = tf_read_text(path, &len);
    assert_non_null(buf);
    char *hit = memmem(buf, len, needle, n);
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
