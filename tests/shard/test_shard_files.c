/* test_shard: LMDB shard writer and reader, verification, manifest. */
#include "tests/shard/fixtures.h"

#include "dataset/shard.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void test_writer_publishes_on_close(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    rec_store *st = malloc(sizeof *st);
    ds_shard_writer *w;
    char name[64];
    assert_int_equal(ds_shard_file_name(name, sizeof name, "train", 7), 0);
    assert_string_equal(name, "train-00007.lmdb");
    assert_int_equal(ds_shard_file_name(name, sizeof name, "Train", 0), DS_SHARD_EINVAL);

    assert_int_equal(ds_shard_writer_open(dir, "train", 0, NULL, &w, err, sizeof err), 0);
    for (uint32_t i = 0; i < 300; i++) {
        gen_record(st, 5, i);
        assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), 0);
    }
    assert_int_equal(ds_shard_writer_count(w), 300);
    assert_true(exists_in(dir, "train-00000.lmdb.tmp"));
    assert_false(exists_in(dir, "train-00000.lmdb"));
    assert_int_equal(ds_shard_writer_close(w, err, sizeof err), 0);
    assert_true(exists_in(dir, "train-00000.lmdb"));
    assert_false(exists_in(dir, "train-00000.lmdb.tmp"));
    assert_false(exists_in(dir, "train-00000.lmdb.tmp-lock"));
    assert_int_equal(count_entries(dir), 1);

    /* Abort leaves nothing; a stale temp from a crash is replaced, not appended to. */
    assert_int_equal(ds_shard_writer_open(dir, "val", 0, NULL, &w, err, sizeof err), 0);
    gen_record(st, 5, 0);
    assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), 0);
    ds_shard_writer_abort(w);
    assert_int_equal(count_entries(dir), 1);
    char p[512];
    snprintf(p, sizeof p, "%s/val-00000.lmdb.tmp", dir);
    FILE *f = fopen(p, "wb");
    fputs("debris of a crashed writer", f);
    fclose(f);
    assert_int_equal(ds_shard_writer_open(dir, "val", 0, NULL, &w, err, sizeof err), 0);
    assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), 0);
    /* Keys must increase. */
    assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "must increase"));
    assert_int_equal(ds_shard_writer_close(w, err, sizeof err), 0);
    assert_int_equal(count_entries(dir), 2);
    ds_shard_reader *r;
    assert_int_equal(ds_shard_reader_open(dir, "val", NULL, 0, &r, err, sizeof err), 0);
    assert_int_equal(ds_shard_reader_count(r), 1);
    ds_shard_reader_close(r);
    free(st);
    rm_tmpdir(dir);
}

void test_writer_grows_map(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    rec_store *st = malloc(sizeof *st);
    /* A 64 KiB map that must grow; then batches of about one record, whose slot buffers are released. */
    const ds_shard_writer_opts opts[2] = {{.map_size = 64 << 10, .batch_records = 50}, {.batch_bytes = 1500}};
    for (int o = 0; o < 2; o++) {
        const char *split = o ? "val" : "train";
        const uint32_t n = o ? 300 : 2000;
        ds_shard_writer *w;
        assert_int_equal(ds_shard_writer_open(dir, split, 0, &opts[o], &w, err, sizeof err), 0);
        for (uint32_t i = 0; i < n; i++) { /* ~2.5 kB per record with media */
            gen_record(st, 6, i);
            assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), 0);
        }
        assert_int_equal(ds_shard_writer_close(w, err, sizeof err), 0);
        ds_shard_reader *r;
        ds_shard_txn *t;
        assert_int_equal(ds_shard_reader_open(dir, split, NULL, 0, &r, err, sizeof err), 0);
        assert_int_equal(ds_shard_reader_count(r), n);
        assert_int_equal(ds_shard_txn_begin(r, &t, err, sizeof err), 0);
        for (uint32_t i = 0; i < n; i++) {
            ds_record d;
            gen_record(st, 6, i);
            assert_int_equal(ds_shard_txn_get(t, i, &d, err, sizeof err), 0);
            assert_rec_eq(&st->r, &d);
        }
        ds_shard_txn_end(t);
        ds_shard_reader_close(r);
    }
    free(st);
    rm_tmpdir(dir);
}

void test_multi_part_split(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int sizes[] = {40, 60, 0, 20};
    make_split(dir, &m, "train", 7, sizes, 4);
    const ds_manifest_split *s = ds_manifest_find_split(&m, "train");
    rec_store *st = malloc(sizeof *st);
    for (int pass = 0; pass < 2; pass++) { /* scanned folder, then the manifest's list */
        ds_shard_reader *r;
        ds_shard_txn *t;
        assert_int_equal(ds_shard_reader_open(dir, "train", pass ? s->shards.v : NULL, pass ? s->shards.n : 0, &r,
                                              err, sizeof err), 0);
        assert_int_equal(ds_shard_reader_count(r), 120);
        assert_int_equal(ds_shard_txn_begin(r, &t, err, sizeof err), 0);
        for (uint32_t i = 0; i < 120; i++) {
            ds_record d;
            gen_record(st, 7, i);
            assert_int_equal(ds_shard_txn_get(t, i, &d, err, sizeof err), 0);
            assert_rec_eq(&st->r, &d);
        }
        ds_record d;
        assert_int_equal(ds_shard_txn_get(t, 120, &d, err, sizeof err), DS_SHARD_ENOENT);
        ds_shard_txn_end(t);
        ds_shard_reader_close(r);
    }
    /* Parts listed out of order: the keys do not continue. */
    char *swapped[4] = {s->shards.v[1], s->shards.v[0], s->shards.v[2], s->shards.v[3]};
    ds_shard_reader *r;
    assert_int_equal(ds_shard_reader_open(dir, "train", swapped, 4, &r, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "train-00001.lmdb: first key is 40, expected 0"));
    /* A missing part. */
    char p[512];
    snprintf(p, sizeof p, "%s/train-00001.lmdb", dir);
    assert_int_equal(unlink(p), 0);
    assert_int_equal(ds_shard_reader_open(dir, "train", NULL, 0, &r, err, sizeof err), DS_SHARD_ENOENT);
    assert_non_null(strstr(err, "train-00001.lmdb: missing"));
    assert_int_equal(ds_shard_reader_open(dir, "val", NULL, 0, &r, err, sizeof err), DS_SHARD_ENOENT);
    free(st);
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

void test_verify(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int tr[] = {30, 25}, va[] = {10};
    make_split(dir, &m, "train", 8, tr, 2);
    make_split(dir, &m, "val", 9, va, 1);
    ds_shard_verify_stats vs;
    assert_int_equal(ds_shard_verify(dir, &m, &vs, err, sizeof err), 0);
    assert_int_equal(vs.records, 65);

    ds_manifest_split *s = &m.splits[0];
    char *saved = s->conversation_ids.v[33];
    s->conversation_ids.v[33] = "other";
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "record 33 of train-00001.lmdb: conversation_id"));
    s->conversation_ids.v[33] = saved;
    s->label32_hist[5]++;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "label32 = 5"));
    s->label32_hist[5]--;
    m.splits[1].count = 11;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "split val: 10 records"));
    m.splits[1].count = 10;
    m.utt_max_tokens = 5;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "manifest limit 5"));
    m.utt_max_tokens = MAX_UTT_TOK;

    /* Bit rot inside record 17's conversation id. */
    char p[512];
    snprintf(p, sizeof p, "%s/train-00000.lmdb", dir);
    corrupt_file(p, m.splits[0].conversation_ids.v[17], 1);
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "record 17 of train-00000.lmdb: crc mismatch (stored 0x"));
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

/* Find a record of split seed among 0..n-1 with an audio utterance of >= 16 samples (*u_audio) and one with
 * a JPEG frame of >= 16 bytes (*u_video, frame k_video). */
static void find_media(uint64_t seed, uint32_t n, rec_store *st, uint32_t *rec_audio, int *u_audio,
                       uint32_t *rec_video, int *u_video, int *k_video)
{
    *u_audio = *u_video = -1;
    for (uint32_t i = 0; i < n && (*u_audio < 0 || *u_video < 0); i++) {
        gen_record(st, seed, i);
        for (int u = 0; u < st->r.n_utt; u++) {
            if (*u_audio < 0 && st->r.utt[u].n_samples >= 16) {
                *rec_audio = i;
                *u_audio = u;
            }
            for (int k = 0; k < DS_N_FRAMES && *u_video < 0; k++)
                if (st->r.utt[u].frame_len[k] >= 16) {
                    *rec_video = i;
                    *u_video = u;
                    *k_video = k;
                }
        }
    }
    assert_true(*u_audio >= 0 && *u_video >= 0);
}

void test_verify_media(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int tr[] = {30, 25}, va[] = {10};
    make_split(dir, &m, "train", 21, tr, 2);
    make_split(dir, &m, "val", 22, va, 1);
    ds_manifest_media *md = &m.media;
    assert_true(md->audio_present > 0 && md->audio_bad > 0 && md->audio_missing > 0);
    assert_true(md->video_present > 0 && md->video_bad > 0 && md->video_missing > 0);
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), 0);

    /* The manifest's media counts, summed over splits, must match the presence bits. */
    int64_t *counts[6] = {&md->audio_present, &md->audio_missing, &md->audio_bad,
                          &md->video_present, &md->video_missing, &md->video_bad};
    const char *names[6] = {"audio_present", "audio_missing", "audio_bad", "video_present", "video_missing", "video_bad"};
    for (int k = 0; k < 6; k++) {
        (*counts[k])++;
        assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
        char want[160];
        snprintf(want, sizeof want, "the manifest's media.counts.%s says %lld", names[k], (long long)*counts[k]);
        if (!strstr(err, want))
            fail_msg("count %s: got \"%s\"", names[k], err);
        (*counts[k])--;
    }
    /* Geometry, format, sharded media and length limit. */
    md->frame_w = 7;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "of train-00000.lmdb: jpeg frames of 6x4, the manifest's media says jpeg 7x4"));
    md->frame_w = 6;
    md->frame_format = DS_FRAME_RAW;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "jpeg frames of 6x4, the manifest's media says raw 6x4"));
    md->frame_format = DS_FRAME_JPEG;
    md->video = 0;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "record 0 of train-00000.lmdb: audio (WAVE) yes, video (FRMS) yes; the manifest's media "
                                "says audio true, video false"));
    md->video = 1;
    md->audio_max_seconds = 100.0 / DS_AUDIO_RATE;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "samples, more than media.audio_max_seconds = 0.00625 allows (100)"));
    md->audio_max_seconds = MAX_SAMPLES / (double)DS_AUDIO_RATE;
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), 0);

    /* A byte flipped inside a waveform, then inside a JPEG frame, of the published file: found by key. */
    rec_store *st = malloc(sizeof *st);
    uint32_t ra = 0, rv = 0;
    int ua, uv, kv = 0;
    find_media(21, (uint32_t)tr[0], st, &ra, &ua, &rv, &uv, &kv);
    char p[512], want[128];
    snprintf(p, sizeof p, "%s/train-00000.lmdb", dir);
    gen_record(st, 21, ra);
    long at = corrupt_bytes(p, st->r.utt[ua].wave, 32, 9);
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    snprintf(want, sizeof want, "record %u of train-00000.lmdb: crc mismatch", ra);
    if (!strstr(err, want))
        fail_msg("wave flip: got \"%s\", want \"%s\"", err, want);
    flip_byte(p, at);
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), 0);
    gen_record(st, 21, rv);
    corrupt_bytes(p, st->r.utt[uv].frame[kv], 16, 13);
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    snprintf(want, sizeof want, "record %u of train-00000.lmdb: crc mismatch", rv);
    if (!strstr(err, want))
        fail_msg("frame flip: got \"%s\", want \"%s\"", err, want);
    free(st);
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

/* ---- manifest ---- */

void test_manifest_roundtrip(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m, r;
    manifest_base(&m);
    const int tr[] = {12, 5};
    make_split(dir, &m, "train", 10, tr, 2);
    assert_non_null(ds_manifest_add_split(&m, "test"));
    assert_null(ds_manifest_add_split(&m, "train"));
    assert_int_equal(ds_manifest_add_skip(&m, "no_label", "train.json conversation 00003: no emotion"), 0);
    assert_int_equal(ds_manifest_add_skip(&m, "empty_turns", "test.json conversation 00004: no turns"), 0);
    assert_int_equal(ds_manifest_add_skip(&m, "no_label", NULL), 0);
    ds_manifest_vocab *v = ds_manifest_add_vocab(&m, "topic");
    ds_strv_push(&v->items, "<unk>");
    ds_strv_push(&v->items, "Food & Cooking");
    ds_strv_push(&v->items, "caf\xc3\xa9 \"quoted\"");
    ds_manifest_add_vocab(&m, "age");
    write_manifest(dir, &m);
    assert_false(exists_in(dir, "manifest.json.tmp"));
    char p[512];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), 0);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.format_version, DS_RECORD_VERSION);
    assert_string_equal(r.created_by, "test_shard");
    assert_int_equal(r.n_splits, 2);
    for (int i = 0; i < 2; i++) {
        const ds_manifest_split *a = &m.splits[i], *b = &r.splits[i];
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->count, b->count);
        assert_int_equal(a->shards.n, b->shards.n);
        for (size_t k = 0; k < a->shards.n; k++)
            assert_string_equal(a->shards.v[k], b->shards.v[k]);
        for (size_t k = 0; k < a->count; k++)
            assert_string_equal(a->conversation_ids.v[k], b->conversation_ids.v[k]);
        assert_memory_equal(a->label7_hist, b->label7_hist, sizeof a->label7_hist);
        assert_memory_equal(a->label32_hist, b->label32_hist, sizeof a->label32_hist);
    }
    assert_int_equal(r.n_skips, 2);
    assert_string_equal(r.skips[0].reason, "no_label");
    assert_int_equal(r.skips[0].count, 2);
    assert_int_equal(r.skips[1].count, 1);
    assert_int_equal(r.skip_lines.n, 2);
    assert_string_equal(r.skip_lines.v[1], "test.json conversation 00004: no turns");
    const ds_manifest_vocab *rv = ds_manifest_find_vocab(&r, "topic");
    assert_non_null(rv);
    assert_int_equal(rv->items.n, 3);
    assert_string_equal(rv->items.v[2], "caf\xc3\xa9 \"quoted\"");
    assert_int_equal(ds_manifest_find_vocab(&r, "age")->items.n, 0);
    assert_string_equal(r.vocab_md5, MD5);
    assert_int_equal(r.utt_max_tokens, MAX_UTT_TOK);
    assert_int_equal(r.ctx_max_tokens, MAX_CTX);
    assert_string_equal(r.source_data_dir, "/data/AvaMERG");
    assert_string_equal(r.source_json, "/data/AvaMERG/train.json");
    const ds_manifest_media *a = &m.media, *b = &r.media;
    assert_true(a->audio_present + a->video_bad > 0);
    assert_int_equal(b->audio, 1);
    assert_int_equal(b->video, 1);
    assert_int_equal(b->audio_rate, DS_AUDIO_RATE);
    assert_true(b->audio_max_seconds == a->audio_max_seconds);
    assert_int_equal(b->n_frames, DS_N_FRAMES);
    assert_int_equal(b->frame_w, 6);
    assert_int_equal(b->frame_h, 4);
    assert_int_equal(b->frame_format, DS_FRAME_JPEG);
    assert_int_equal(b->jpeg_quality, 90);
    assert_string_equal(b->scaler, "bilinear");
    assert_string_equal(b->audio_dir, "/data/AvaMERG/audio");
    assert_string_equal(b->video_dir, "/data/AvaMERG/video");
    assert_true(b->audio_present == a->audio_present && b->audio_missing == a->audio_missing &&
                b->audio_bad == a->audio_bad && b->video_present == a->video_present &&
                b->video_missing == a->video_missing && b->video_bad == a->video_bad);
    ds_manifest_free(&r);
    /* Without media (version-1 shards, or nothing sharded) there is no "media" key; it reads as zeros. */
    ds_manifest_media keep = m.media;
    memset(&m.media, 0, sizeof m.media);
    write_manifest(dir, &m);
    assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), 0);
    FILE *mf = fopen(p, "rb");
    char text[8192];
    text[fread(text, 1, sizeof text - 1, mf)] = 0;
    fclose(mf);
    assert_null(strstr(text, "\"media\""));
    assert_true(r.media.audio == 0 && r.media.video == 0 && r.media.scaler == NULL && r.media.audio_present == 0);
    ds_manifest_free(&r);
    m.media = keep;
    /* Audio only: the video fields are still written and checked, its counts must be 0. */
    m.media.video = 0;
    assert_int_equal(ds_manifest_write(&m, p, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "media.counts.video_present"));
    m.media.video_present = m.media.video_missing = m.media.video_bad = 0;
    write_manifest(dir, &m);
    assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), 0);
    assert_true(r.media.audio == 1 && r.media.video == 0 && r.media.frame_w == 6);
    ds_manifest_free(&r);
    m.media.n_frames = 4;
    assert_int_equal(ds_manifest_write(&m, p, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "media.n_frames: 4 (expected 8..8)"));
    m.media.n_frames = DS_N_FRAMES;
    /* Writing refuses an inconsistent manifest. */
    m.splits[0].count++;
    assert_int_equal(ds_manifest_write(&m, p, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "splits.train.conversation_ids"));
    m.splits[0].count--;
    ds_manifest_add_split(&m, "Val");
    assert_int_equal(ds_manifest_write(&m, p, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "splits: name \"Val\""));
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

static cJSON *at_path(cJSON *root, const char *path, char *last, size_t n)
{
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    char *dot = strrchr(buf, '.');
    cJSON *o = root;
    if (dot) {
        *dot = 0;
        for (char *tok = strtok(buf, "."); tok; tok = strtok(NULL, "."))
            o = cJSON_GetObjectItemCaseSensitive(o, tok);
        snprintf(last, n, "%s", dot + 1);
    } else {
        snprintf(last, n, "%s", buf);
    }
    return o;
}

void test_manifest_malformed(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m, r;
    manifest_base(&m);
    const int tr[] = {4};
    make_split(dir, &m, "train", 11, tr, 1);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    char p[512];
    snprintf(p, sizeof p, "%s/manifest.json", dir);
    FILE *f = fopen(p, "rb");
    static char text[65536];
    size_t tlen = fread(text, 1, sizeof text - 1, f);
    text[tlen] = 0;
    fclose(f);

    const struct { const char *path, *value, *expect; } cases[] = {
        {"version", NULL, "manifest.json: version: missing"},
        {"version", "2", "version: 2"},
        {"format_version", "0", "format_version: expected an integer in 1..65535"},
        {"created_by", "5", "created_by: expected a string"},
        {"splits.train.count", "\"4\"", "splits.train.count: expected an integer"},
        {"splits.train.count", "5", "splits.train.conversation_ids: 4 ids for count 5"},
        {"splits.train.label7_histogram", "[1,2,3,4,5,6]", "splits.train.label7_histogram: expected an array of 7"},
        {"splits.train.label32_histogram", NULL, "splits.train.label32_histogram: missing"},
        {"splits.train.shards", "[\"../x.lmdb\"]", "splits.train.shards"},
        {"splits.train.conversation_ids", "[\"a\",\"b\",\"c\",7]", "splits.train.conversation_ids: expected an array"},
        {"skipped", "5", "skipped: expected an object"},
        {"skipped.lines", "{}", "skipped.lines: expected an array of strings"},
        {"vocabularies", "{\"topic\": [1]}", "vocabularies.topic: expected an array of strings"},
        {"tokenizer.vocab_md5", "\"abc\"", "tokenizer.vocab_md5"},
        {"tokenizer.utt_max_tokens", "0", "tokenizer.utt_max_tokens"},
        {"tokenizer", NULL, "tokenizer: missing"},
        {"source.json_file", NULL, "source.json_file: missing"},
        {"media", "[]", "media: expected an object"},
        {"media.audio", "1", "media.audio: expected true or false"},
        {"media.video", NULL, "media.video: missing"},
        {"media.audio_rate", "8000", "media.audio_rate: expected an integer in 16000..16000"},
        {"media.audio_max_seconds", "0", "media.audio_max_seconds: 0 (expected > 0"},
        {"media.audio_max_seconds", "\"10\"", "media.audio_max_seconds: expected a number"},
        {"media.n_frames", "16", "media.n_frames: expected an integer in 8..8"},
        {"media.frame_width", "0", "media.frame_width: expected an integer in 1..4096"},
        {"media.frame_height", "4097", "media.frame_height: expected an integer in 1..4096"},
        {"media.frame_format", "\"png\"", "media.frame_format: expected \"raw\" or \"jpeg\""},
        {"media.jpeg_quality", "101", "media.jpeg_quality: expected an integer in 1..100"},
        {"media.scaler", NULL, "media.scaler: missing"},
        {"media.audio_dir", "3", "media.audio_dir: expected a string"},
        {"media.video_dir", NULL, "media.video_dir: missing"},
        {"media.counts", NULL, "media.counts: missing"},
        {"media.counts.video_bad", "-1", "media.counts.video_bad: expected an integer in 0.."},
        {"media.counts.audio_missing", NULL, "media.counts.audio_missing: missing"},
        {"media.audio", "false", "media.counts.audio_"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        cJSON *root = cJSON_Parse(text);
        char key[64];
        cJSON *o = at_path(root, cases[i].path, key, sizeof key);
        assert_non_null(o);
        if (cases[i].value)
            cJSON_ReplaceItemInObjectCaseSensitive(o, key, cJSON_Parse(cases[i].value));
        else
            cJSON_DeleteItemFromObjectCaseSensitive(o, key);
        char *out = cJSON_Print(root);
        f = fopen(p, "wb");
        fputs(out, f);
        fclose(f);
        free(out);
        cJSON_Delete(root);
        assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), DS_SHARD_ECORRUPT);
        ds_manifest_free(&r);
        if (!strstr(err, cases[i].expect))
            fail_msg("case %s: got \"%s\", want \"%s\"", cases[i].path, err, cases[i].expect);
    }
    f = fopen(p, "wb");
    fwrite(text, 1, tlen / 2, f);
    fclose(f);
    assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "not valid JSON"));
    ds_manifest_free(&r);
    unlink(p);
    assert_int_equal(ds_manifest_read(p, &r, err, sizeof err), DS_SHARD_ENOENT);
    assert_non_null(strstr(err, "manifest.json"));
    ds_manifest_free(&r);
    rm_tmpdir(dir);
}
