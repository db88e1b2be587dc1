/* test_shard: the batch loader, and the C reader against the independent Python reader. */
#include "tests/shard/fixtures.h"

#include "dataset/loader.h"
#include "dataset/shard.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void put_hand_made(const char *dir, ds_manifest *m)
{
    static const uint16_t u0[] = {101, 5, 6, 102}, u1[] = {101, 7, 102}, c0[] = {101, 9, 9, 9, 102};
    static uint16_t u2[5][6];
    static const uint16_t c2[] = {101, 1, 102};
    ds_record r[3];
    memset(r, 0, sizeof r);
    for (int i = 0; i < 3; i++) {
        r[i].sample_index = (uint32_t)i;
        snprintf(r[i].conversation_id, sizeof r[i].conversation_id, "0000%d", i);
    }
    r[0].label7 = 3;
    r[0].label32 = 10;
    for (int k = 0; k < DS_META_N; k++)
        r[0].meta[k] = k + 1;
    r[0].n_ctx = 5;
    r[0].ctx = c0;
    r[0].n_utt = 2;
    r[0].utt[0] = (ds_utt){DS_ROLE_SPEAKER, 0, 0, 11, 4, u0};
    r[0].utt[1] = (ds_utt){DS_ROLE_LISTENER_RESPONSE, 0, 1, 45, 3, u1};
    r[1].label7 = r[1].label32 = -1;
    r[2].label7 = 4;
    r[2].label32 = 31;
    r[2].n_ctx = 3;
    r[2].ctx = c2;
    r[2].n_utt = 5;
    for (int u = 0; u < 5; u++) {
        const uint16_t t[6] = {101, (uint16_t)(10 * u + 1), (uint16_t)(10 * u + 2), (uint16_t)(10 * u + 3),
                               (uint16_t)(10 * u + 4), 102};
        memcpy(u2[u], t, sizeof t);
        r[2].utt[u] = (ds_utt){(uint8_t)(u == 4 ? 2 : u % 2), 0, (uint16_t)u, -1, 6, u2[u]};
    }
    ds_manifest_split *s = ds_manifest_add_split(m, "train");
    ds_shard_writer *w;
    assert_int_equal(ds_shard_writer_open(dir, "train", 0, NULL, &w, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ds_shard_writer_put(w, &r[i], err, sizeof err), 0);
        ds_strv_push(&s->conversation_ids, r[i].conversation_id);
        if (r[i].label7 >= 0) {
            s->label7_hist[r[i].label7]++;
            s->label32_hist[r[i].label32]++;
        }
    }
    ds_strv_push(&s->shards, ds_shard_writer_file(w));
    assert_int_equal(ds_shard_writer_close(w, err, sizeof err), 0);
    s->count = 3;
}

static void assert_i64(const int64_t *got, const int64_t *want, int n)
{
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("element %d: got %lld, want %lld", i, (long long)got[i], (long long)want[i]);
}

static void assert_f32(const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("element %d: got %g, want %g", i, (double)got[i], (double)want[i]);
}

static void fill_garbage(ds_batch *b)
{
    size_t bul = (size_t)b->B * b->U * b->L, bu = (size_t)b->B * b->U, bc = (size_t)b->B * b->C;
    memset(b->utt_tokens, 0xff, bul * 8);
    memset(b->utt_mask, 0xff, bul * 4);
    memset(b->utt_valid, 0xff, bu * 4);
    memset(b->utt_role, 0xff, bu * 8);
    memset(b->ctx_tokens, 0xff, bc * 8);
    memset(b->ctx_mask, 0xff, bc * 4);
    memset(b->meta, 0xff, (size_t)b->B * DS_META_N * 8);
    memset(b->label7, 0xff, (size_t)b->B * 8);
    memset(b->label32, 0xff, (size_t)b->B * 8);
    memset(b->sample_index, 0xff, (size_t)b->B * 8);
}

void test_loader_fill(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), DS_SHARD_ENOENT);
    assert_non_null(strstr(err, "manifest.json"));
    ds_manifest m;
    manifest_base(&m);
    put_hand_made(dir, &m);
    write_manifest(dir, &m);
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    assert_int_equal(ds_loader_count(l, "train"), 3);
    assert_int_equal(ds_loader_count(l, "val"), 0);
    assert_string_equal(ds_loader_manifest(l)->vocab_md5, MD5);

    ds_batch b;
    assert_int_equal(ds_batch_alloc(&b, 4, 3, 1, 3, err, sizeof err), DS_SHARD_EINVAL);
    assert_int_equal(ds_batch_alloc(&b, 4, 3, 4, 3, err, sizeof err), 0);
    fill_garbage(&b);
    const size_t idx[] = {2, 0, 1};
    assert_int_equal(ds_loader_fill(l, "train", idx, 3, &b, err, sizeof err), 0);
    assert_int_equal(b.n, 3);
    /* Row 0 = sample 2: its last 3 of 5 utterances, each cut to its first 3 tokens + [SEP]. */
    const int64_t tok[4 * 3 * 4] = {
        101, 21, 22, 102, 101, 31, 32, 102, 101, 41, 42, 102,
        101, 5, 6, 102, 101, 7, 102, 0, 0, 0, 0, 0,
    };
    float mask[4 * 3 * 4] = {0};
    for (int i = 0; i < 12; i++)
        mask[i] = 1;
    for (int i = 12; i < 19; i++)
        mask[i] = 1;
    const float valid[12] = {1, 1, 1, 1, 1, 0};
    const int64_t role[12] = {0, 1, 2, 0, 2, 0};
    const int64_t ctx[12] = {101, 1, 102, 101, 9, 102};
    const float cmask[12] = {1, 1, 1, 1, 1, 1};
    int64_t meta[4 * DS_META_N] = {0};
    for (int k = 0; k < DS_META_N; k++)
        meta[DS_META_N + k] = k + 1;
    const int64_t l7[4] = {4, 3, -1, 0}, l32[4] = {31, 10, -1, 0}, si[4] = {2, 0, 1, 0};
    assert_i64(b.utt_tokens, tok, 48);
    assert_f32(b.utt_mask, mask, 48);
    assert_f32(b.utt_valid, valid, 12);
    assert_i64(b.utt_role, role, 12);
    assert_i64(b.ctx_tokens, ctx, 12);
    assert_f32(b.ctx_mask, cmask, 12);
    assert_i64(b.meta, meta, 4 * DS_META_N);
    assert_i64(b.label7, l7, 4);
    assert_i64(b.label32, l32, 4);
    assert_i64(b.sample_index, si, 4);

    const size_t bad[] = {0, 3};
    assert_int_equal(ds_loader_fill(l, "train", bad, 2, &b, err, sizeof err), DS_SHARD_ENOENT);
    assert_non_null(strstr(err, "sample 3: out of range"));
    assert_int_equal(b.n, 0);
    assert_int_equal(ds_loader_fill(l, "val", idx, 1, &b, err, sizeof err), DS_SHARD_ENOENT);
    assert_int_equal(ds_loader_fill(l, "train", idx, 5, &b, err, sizeof err), DS_SHARD_EINVAL);
    assert_int_equal(ds_loader_fill(l, "train", idx, 0, &b, err, sizeof err), 0);
    const float zeros[48] = {0};
    assert_f32(b.utt_mask, zeros, 48);
    ds_batch_free(&b);
    ds_batch_free(&b);
    ds_loader_close(l);

    /* A manifest that promises more than the shards hold. */
    m.splits[0].count = 4;
    ds_strv_push(&m.splits[0].conversation_ids, "00003");
    write_manifest(dir, &m);
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "split train has 3 records in its shards, manifest.json says 4"));
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}

enum { T_BATCHES = 25, T_B = 8 };

typedef struct {
    ds_loader *l;
    const size_t *idx;     /* [T_BATCHES * T_B] */
    const ds_batch *ref;   /* [T_BATCHES] */
    int mismatches;
} thread_job;

static int batch_equal(const ds_batch *a, const ds_batch *b)
{
    size_t bul = (size_t)a->B * a->U * a->L, bu = (size_t)a->B * a->U, bc = (size_t)a->B * a->C;
    return a->n == b->n && !memcmp(a->utt_tokens, b->utt_tokens, bul * 8) && !memcmp(a->utt_mask, b->utt_mask, bul * 4) &&
           !memcmp(a->utt_valid, b->utt_valid, bu * 4) && !memcmp(a->utt_role, b->utt_role, bu * 8) &&
           !memcmp(a->ctx_tokens, b->ctx_tokens, bc * 8) && !memcmp(a->ctx_mask, b->ctx_mask, bc * 4) &&
           !memcmp(a->meta, b->meta, (size_t)a->B * DS_META_N * 8) && !memcmp(a->label7, b->label7, (size_t)a->B * 8) &&
           !memcmp(a->label32, b->label32, (size_t)a->B * 8) &&
           !memcmp(a->sample_index, b->sample_index, (size_t)a->B * 8);
}

static void *thread_fill(void *arg)
{
    thread_job *j = arg;
    ds_batch b;
    char e[256];
    if (ds_batch_alloc(&b, T_B, DS_MAX_UTT, MAX_UTT_TOK, MAX_CTX, e, sizeof e)) {
        j->mismatches = -1;
        return NULL;
    }
    for (int rep = 0; rep < 4; rep++)
        for (int i = 0; i < T_BATCHES; i++)
            if (ds_loader_fill(j->l, "train", j->idx + i * T_B, T_B, &b, e, sizeof e) || !batch_equal(&b, &j->ref[i]))
                j->mismatches++;
    ds_batch_free(&b);
    return NULL;
}

void test_loader_threads(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    const int sizes[] = {120, 80};
    make_split(dir, &m, "train", 14, sizes, 2);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    size_t idx[T_BATCHES * T_B];
    uint64_t s = 99;
    for (int i = 0; i < T_BATCHES * T_B; i++)
        idx[i] = rnd(&s) % 200;
    ds_batch ref[T_BATCHES];
    rec_store *st = malloc(sizeof *st);
    for (int i = 0; i < T_BATCHES; i++) {
        assert_int_equal(ds_batch_alloc(&ref[i], T_B, DS_MAX_UTT, MAX_UTT_TOK, MAX_CTX, err, sizeof err), 0);
        assert_int_equal(ds_loader_fill(l, "train", idx + i * T_B, T_B, &ref[i], err, sizeof err), 0);
        /* No cutting at these widths: every token and utterance lands where the record has it. */
        for (int row = 0; row < T_B; row++) {
            gen_record(st, 14, (uint32_t)idx[i * T_B + row]);
            for (int u = 0; u < st->r.n_utt; u++) {
                size_t at = ((size_t)row * DS_MAX_UTT + u) * MAX_UTT_TOK;
                assert_int_equal(ref[i].utt_valid[row * DS_MAX_UTT + u], 1.0f);
                for (int k = 0; k < st->r.utt[u].n_tokens; k++)
                    assert_int_equal(ref[i].utt_tokens[at + k], st->r.utt[u].tokens[k]);
                if (st->r.utt[u].n_tokens < MAX_UTT_TOK)
                    assert_int_equal(ref[i].utt_mask[at + st->r.utt[u].n_tokens], 0.0f);
            }
            for (int k = 0; k < st->r.n_ctx; k++)
                assert_int_equal(ref[i].ctx_tokens[(size_t)row * MAX_CTX + k], st->r.ctx[k]);
            assert_int_equal(ref[i].label32[row], st->r.label32);
        }
    }
    free(st);
    thread_job jobs[2] = {{l, idx, ref, 0}, {l, idx, ref, 0}};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, thread_fill, &jobs[t]), 0);
    for (int t = 0; t < 2; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(jobs[t].mismatches, 0);
    }
    for (int i = 0; i < T_BATCHES; i++)
        ds_batch_free(&ref[i]);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

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

void test_python_reader_matches(void **state)
{
    (void)state;
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
            }
            i++;
            compared++;
        }
        ds_shard_txn_end(t);
        ds_shard_reader_close(r);
    }
    assert_int_equal(compared, 170);
    cJSON_Delete(dump);
    ds_manifest_free(&m);
    rm_tmpdir(dir);
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
    char p[512], pyerr[2048];
    snprintf(p, sizeof p, "%s/val-00000.lmdb", dir);
    corrupt_file(p, m.splits[0].conversation_ids.v[6], 2);
    cJSON *dump;
    assert_int_not_equal(run_python_reader(dir, &dump, pyerr, sizeof pyerr), 0);
    assert_non_null(strstr(pyerr, "record 6 of val-00000.lmdb: crc mismatch"));
    assert_int_equal(ds_shard_verify(dir, &m, NULL, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "record 6 of val-00000.lmdb: crc mismatch"));
    ds_manifest_free(&m);
    rm_tmpdir(dir);
}
