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
    ds_shard_writer_opts o = {.map_size = 64 << 10, .batch_records = 50};
    ds_shard_writer *w;
    assert_int_equal(ds_shard_writer_open(dir, "train", 0, &o, &w, err, sizeof err), 0);
    for (uint32_t i = 0; i < 2000; i++) { /* ~0.5 MB of records into a 64 KiB map */
        gen_record(st, 6, i);
        assert_int_equal(ds_shard_writer_put(w, &st->r, err, sizeof err), 0);
    }
    assert_int_equal(ds_shard_writer_close(w, err, sizeof err), 0);
    ds_shard_reader *r;
    ds_shard_txn *t;
    assert_int_equal(ds_shard_reader_open(dir, "train", NULL, 0, &r, err, sizeof err), 0);
    assert_int_equal(ds_shard_reader_count(r), 2000);
    assert_int_equal(ds_shard_txn_begin(r, &t, err, sizeof err), 0);
    for (uint32_t i = 0; i < 2000; i++) {
        ds_record d;
        gen_record(st, 6, i);
        assert_int_equal(ds_shard_txn_get(t, i, &d, err, sizeof err), 0);
        assert_rec_eq(&st->r, &d);
    }
    ds_shard_txn_end(t);
    ds_shard_reader_close(r);
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
    assert_int_equal(r.format_version, 1);
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
    ds_manifest_free(&r);
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
    char text[65536];
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
