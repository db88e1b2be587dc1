/* test_shard: the C reader against the independent Python reader (read_shards.py, from FORMAT.md alone). */
#include "tests/shard/fixtures.h"

#include "dataset/shard.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Run read_shards.py on dir; returns its exit status, the parsed dump in *out (when 0), stderr in errtext. */
static int run_python_reader(const char *dir, cJSON **out, char *errtext, size_t n)
{
    char cmd[2048], dump[512], errf[512];
    snprintf(dump, sizeof dump, "%s/dump.json", dir);
    snprintf(errf, sizeof errf, "%s/python.err", dir);
    snprintf(cmd, sizeof cmd, "%s %s/read_shards.py %s %s 2> %s", EMPD_PYTHON, SHARD_TEST_SRC, dir, dump, errf);
    int st = system(cmd);
    FILE *f = fopen(errf, "rb");
    size_t got = f ? fread(errtext, 1, n - 1, f) : 0;
    errtext[got] = 0;
    if (f)
        fclose(f);
    remove(errf);
    *out = NULL;
    if (st != 0)
        return st;
    f = fopen(dump, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)len + 1);
    assert_int_equal(fread(text, 1, (size_t)len, f), (size_t)len);
    text[len] = 0;
    fclose(f);
    remove(dump);
    *out = cJSON_Parse(text);
    free(text);
    assert_non_null(*out);
    return 0;
}

static int jint(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_true(cJSON_IsNumber(v));
    return v->valueint;
}

static void assert_tokens(const cJSON *arr, const uint16_t *tok, int n)
{
    assert_int_equal(cJSON_GetArraySize(arr), n);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) assert_int_equal(e->valueint, tok[i++]);
}

static void assert_samples(const cJSON *arr, const int16_t *wave, uint32_t n)
{
    assert_int_equal(cJSON_GetArraySize(arr), (int)n);
    uint32_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) assert_int_equal(e->valueint, wave[i++]);
}

/* Frames come as lowercase hex strings, "" for an absent frame. */
static void assert_frames(const cJSON *arr, const ds_utt *u)
{
    assert_int_equal(cJSON_GetArraySize(arr), DS_N_FRAMES);
    for (int k = 0; k < DS_N_FRAMES; k++) {
        const char *hex = cJSON_GetArrayItem(arr, k)->valuestring;
        assert_non_null(hex);
        assert_int_equal(strlen(hex), 2u * u->frame_len[k]);
        for (uint32_t b = 0; b < u->frame_len[k]; b++) {
            char two[3];
            snprintf(two, sizeof two, "%02x", u->frame[k][b]);
            assert_memory_equal(hex + 2 * b, two, 2);
        }
    }
}

/* One shards folder of the current gen_media compared record by record; returns utterances seen with audio,
 * video and a bad medium through the counters. */
static void compare_readers(size_t *audio_out, size_t *video_out, size_t *bad_out)
{
    size_t audio = 0, video = 0, bad = 0;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int tr[] = {50, 70, 30}, va[] = {20};
    make_split(dir, &m, "train", 12, tr, 3);
    make_split(dir, &m, "val", 13, va, 1);
    assert_non_null(ds_manifest_add_split(&m, "test")); /* an empty split: no files */
    write_manifest(dir, &m);
    cJSON *dump;
    char pyerr[2048];
    if (run_python_reader(dir, &dump, pyerr, sizeof pyerr) != 0)
        fail_msg("read_shards.py failed: %s", pyerr);
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(dump, "splits");
    assert_int_equal(cJSON_GetArraySize(splits), 3);
    size_t compared = 0;
    for (int si = 0; si < m.n_splits; si++) {
        const ds_manifest_split *s = &m.splits[si];
        const cJSON *recs = cJSON_GetObjectItemCaseSensitive(splits, s->name);
        assert_int_equal(cJSON_GetArraySize(recs), (int)s->count);
        if (!s->count)
            continue;
        ds_shard_reader *r;
        ds_shard_txn *t;
        assert_int_equal(ds_shard_reader_open(dir, s->name, s->shards.v, s->shards.n, &r, err, sizeof err), 0);
        assert_int_equal(ds_shard_txn_begin(r, &t, err, sizeof err), 0);
        size_t i = 0;
        const cJSON *pr;
        cJSON_ArrayForEach(pr, recs) {
            ds_record c;
            assert_int_equal(ds_shard_txn_get(t, i, &c, err, sizeof err), 0);
            assert_int_equal(jint(pr, "version"), c.version);
            assert_int_equal(jint(pr, "flags"), c.flags);
            assert_int_equal(jint(pr, "sample_index"), c.sample_index);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(pr, "conversation_id")->valuestring,
                                c.conversation_id);
            assert_int_equal(jint(pr, "label7"), c.label7);
            assert_int_equal(jint(pr, "label32"), c.label32);
            const cJSON *meta = cJSON_GetObjectItemCaseSensitive(pr, "meta");
            assert_int_equal(cJSON_GetArraySize(meta), DS_META_N);
            for (int k = 0; k < DS_META_N; k++)
                assert_true(cJSON_GetArrayItem(meta, k)->valuedouble == (double)c.meta[k]);
            assert_tokens(cJSON_GetObjectItemCaseSensitive(pr, "ctx"), c.ctx, c.n_ctx);
            const cJSON *utts = cJSON_GetObjectItemCaseSensitive(pr, "utts");
            assert_int_equal(cJSON_GetArraySize(utts), c.n_utt);
            for (int u = 0; u < c.n_utt; u++) {
                const cJSON *pu = cJSON_GetArrayItem(utts, u);
                assert_int_equal(jint(pu, "role"), c.utt[u].role);
                assert_int_equal(jint(pu, "presence"), c.utt[u].presence);
                assert_int_equal(jint(pu, "index"), c.utt[u].index);
                assert_int_equal(jint(pu, "avatar"), c.utt[u].avatar);
                assert_tokens(cJSON_GetObjectItemCaseSensitive(pu, "tokens"), c.utt[u].tokens, c.utt[u].n_tokens);
                assert_samples(cJSON_GetObjectItemCaseSensitive(pu, "wave"), c.utt[u].wave, c.utt[u].n_samples);
                assert_frames(cJSON_GetObjectItemCaseSensitive(pu, "frames"), &c.utt[u]);
                audio += c.utt[u].n_samples > 0;
                video += c.utt[u].frame_len[0] > 0;
                bad += (c.utt[u].presence & (DS_PRESENT_AUDIO_BAD | DS_PRESENT_VIDEO_BAD)) != 0;
            }
            assert_int_equal(jint(pr, "has_audio"), c.has_audio);
            assert_int_equal(jint(pr, "has_video"), c.has_video);
            if (c.has_video) {
                assert_int_equal(jint(pr, "frame_format"), c.frame_format);
                assert_int_equal(jint(pr, "frame_width"), c.frame_w);
                assert_int_equal(jint(pr, "frame_height"), c.frame_h);
            }
            i++;
            compared++;
        }
        ds_shard_txn_end(t);
        ds_shard_reader_close(r);
    }
    assert_int_equal(compared, 170);
    *audio_out += audio;
    *video_out += video;
    *bad_out += bad;
    cJSON_Delete(dump);
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

void test_python_reader_matches(void **state)
{
    (void)state;
    const media_cfg saved = gen_media, cfgs[3] = {
        {1, 1, DS_FRAME_JPEG, 6, 4}, {0, 1, DS_FRAME_RAW, 5, 3}, {0, 0, 0, 0, 0}};
    size_t audio = 0, video = 0, bad = 0;
    for (int i = 0; i < 3; i++) {
        gen_media = cfgs[i];
        compare_readers(&audio, &video, &bad);
    }
    gen_media = saved;
    print_message("python reader: %zu utterances with audio, %zu with video, %zu with a bad medium compared\n",
                  audio, video, bad);
    assert_true(audio > 100 && video > 200 && bad > 100);
}

void test_python_reader_detects_corruption(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int va[] = {20};
    make_split(dir, &m, "val", 15, va, 1);
    write_manifest(dir, &m);
    char p[512], pyerr[2048], want[128];
    snprintf(p, sizeof p, "%s/val-00000.lmdb", dir);
    const char *id = m.splits[0].conversation_ids.v[6];
    long at = corrupt_bytes(p, id, strlen(id), 2);
    cJSON *dump;
    assert_int_not_equal(run_python_reader(dir, &dump, pyerr, sizeof pyerr), 0);
    assert_non_null(strstr(pyerr, "record 6 of val-00000.lmdb: crc mismatch"));
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "record 6 of val-00000.lmdb: crc mismatch"));
    flip_byte(p, at);

    /* A byte of a waveform's samples. */
    rec_store *st = malloc(sizeof *st);
    uint32_t i = 0;
    int u = -1;
    for (; i < 20 && u < 0; i++) {
        gen_record(st, 15, i);
        for (int k = 0; k < st->r.n_utt && u < 0; k++)
            if (st->r.utt[k].n_samples >= 16)
                u = k;
    }
    assert_true(u >= 0);
    i--;
    at = corrupt_bytes(p, st->r.utt[u].wave, 32, 17);
    assert_int_not_equal(run_python_reader(dir, &dump, pyerr, sizeof pyerr), 0);
    snprintf(want, sizeof want, "record %u of val-00000.lmdb: crc mismatch", i);
    if (!strstr(pyerr, want))
        fail_msg("got \"%s\", want \"%s\"", pyerr, want);
    flip_byte(p, at);
    free(st);

    /* The manifest's media counts are checked against the presence bits. */
    m.media.video_bad++;
    m.media.video_missing--;
    write_manifest(dir, &m);
    assert_int_not_equal(run_python_reader(dir, &dump, pyerr, sizeof pyerr), 0);
    assert_non_null(strstr(pyerr, "media.counts.video_missing"));
    m.media.video_bad--;
    m.media.video_missing++;
    write_manifest(dir, &m);
    assert_int_equal(run_python_reader(dir, &dump, pyerr, sizeof pyerr), 0);
    cJSON_Delete(dump);
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}
