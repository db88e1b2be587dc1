/* test_loader: batch memory, ds_loader_fill's layout, and the collation of media. */
#include "tests/loader/fixtures.h"

#include "dataset/shard.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void assert_aligned(const void *p)
{
    if (p && (uintptr_t)p % 64)
        fail_msg("array at %p is not 64-byte aligned", p);
}

static void test_batch_alloc(void **state)
{
    (void)state;
    ds_batch b;
    const ds_batch_shape bad[] = {
        {.B = 0, .U = 3, .L = 4, .C = 3, .mods = DS_MOD_TEXT},
        {.B = 2, .U = DS_MAX_UTT + 1, .L = 4, .C = 3, .mods = DS_MOD_TEXT},
        {.B = 2, .U = 3, .L = 1, .C = 3, .mods = DS_MOD_TEXT},
        {.B = 2, .U = 3, .L = 4, .C = 70000, .mods = DS_MOD_TEXT},
        {.B = 2, .U = 3, .S = 0, .mods = DS_MOD_AUDIO},
        {.B = 2, .U = 3, .H = 0, .W = 5, .mods = DS_MOD_VIDEO},
        {.B = 2, .U = 3, .H = 5000, .W = 5, .mods = DS_MOD_VIDEO},
        {.B = 2, .U = 3, .mods = 0x10},
        {.B = 1 << 30, .U = 10, .S = 1 << 30, .mods = DS_MOD_AUDIO},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (ds_batch_alloc(&b, &bad[i], NULL, err, sizeof err) != DS_SHARD_EINVAL)
            fail_msg("shape %zu accepted", i);
        assert_null(b.block);
        assert_int_equal(ds_batch_bytes(&bad[i]), 0);
    }
    assert_non_null(strstr(err, "overflows"));

    /* Only the modalities asked for are allocated, in one block from the caller's allocator. */
    counting c = {0};
    ds_allocator a = counting_allocator(&c);
    ds_batch_shape text = {.B = 3, .U = 4, .L = 5, .C = 6, .mods = DS_MOD_TEXT};
    assert_int_equal(ds_batch_alloc(&b, &text, &a, err, sizeof err), 0);
    assert_int_equal(c.allocs, 1);
    assert_int_equal(c.bytes, ds_batch_bytes(&text));
    assert_non_null(b.utt_tokens);
    assert_null(b.audio);
    assert_null(b.frames);
    assert_null(b.audio_len);
    assert_null(b.video_valid);
    ds_batch_free(&b);
    ds_batch_free(&b);
    assert_int_equal(c.frees, 1);

    ds_batch_shape all = {.B = 3, .U = 4, .L = 5, .C = 7, .S = 33, .H = 5, .W = 7,
                          .mods = DS_MOD_TEXT | DS_MOD_AUDIO | DS_MOD_VIDEO};
    assert_int_equal(ds_batch_alloc(&b, &all, NULL, err, sizeof err), 0);
    const void *arrays[] = {b.utt_tokens, b.utt_mask, b.ctx_tokens, b.ctx_mask, b.audio, b.audio_len, b.audio_valid,
                            b.frames, b.video_valid, b.utt_valid, b.utt_role, b.meta, b.label7, b.label32,
                            b.sample_index};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) {
        assert_non_null(arrays[i]);
        assert_aligned(arrays[i]);
        assert_true((const char *)arrays[i] >= (const char *)b.block &&
                    (const char *)arrays[i] < (const char *)b.block + b.bytes);
    }
    /* The last array ends inside the block, and the frames hold [B,U,8,H,W,3]. */
    assert_true((const char *)(b.sample_index + 3) <= (const char *)b.block + b.bytes);
    assert_true((const char *)b.video_valid - (const char *)b.frames >= 3 * 4 * DS_N_FRAMES * 5 * 7 * 3);
    assert_true(ds_batch_bytes(&all) > ds_batch_bytes(&text));
    ds_batch_shape no_video = all;
    no_video.mods &= ~DS_MOD_VIDEO;
    assert_true(ds_batch_bytes(&all) - ds_batch_bytes(&no_video) >= (size_t)3 * 4 * DS_N_FRAMES * 5 * 7 * 3);
    ds_batch_free(&b);
}

/* Three records by hand: a cut utterance list, token cutting keeping [SEP], an unlabeled sample, and
 * ids above 32767 (uint16 in the batch). */
static void put_hand_made(const char *dir, ds_manifest *m)
{
    static const uint16_t u0[] = {101, 5, 40000, 102}, u1[] = {101, 65535, 102}, c0[] = {101, 9, 9, 9, 102};
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
    r[0].utt[0] = (ds_utt){.role = DS_ROLE_SPEAKER, .index = 0, .avatar = 11, .n_tokens = 4, .tokens = u0};
    r[0].utt[1] = (ds_utt){.role = DS_ROLE_LISTENER_RESPONSE, .index = 1, .avatar = 45, .n_tokens = 3, .tokens = u1};
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
        r[2].utt[u] = (ds_utt){.role = (uint8_t)(u == 4 ? 2 : u % 2), .index = (uint16_t)u, .avatar = -1,
                               .n_tokens = 6, .tokens = u2[u]};
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

#define ASSERT_ARRAY(fmt, got, want, n)                                                                   \
    do {                                                                                                   \
        for (int i_ = 0; i_ < (n); i_++)                                                                   \
            if ((got)[i_] != (want)[i_])                                                                   \
                fail_msg("%s[%d]: got " fmt ", want " fmt, #got, i_, (got)[i_], (want)[i_]);               \
    } while (0)

static void test_loader_fill(void **state)
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
    ds_batch_shape shape = {.B = 4, .U = 3, .L = 4, .C = 3, .mods = DS_MOD_TEXT};
    assert_int_equal(ds_batch_alloc(&b, &shape, NULL, err, sizeof err), 0);
    memset(b.block, 0xff, b.bytes);
    const size_t idx[] = {2, 0, 1};
    assert_int_equal(ds_loader_fill(l, "train", idx, 3, &b, err, sizeof err), 0);
    assert_int_equal(b.n, 3);
    /* Row 0 = sample 2: its last 3 of 5 utterances, each cut to its first 3 tokens + [SEP]. */
    const uint16_t tok[4 * 3 * 4] = {
        101, 21, 22, 102, 101, 31, 32, 102, 101, 41, 42, 102,
        101, 5, 40000, 102, 101, 65535, 102, 0, 0, 0, 0, 0,
    };
    float mask[4 * 3 * 4] = {0};
    for (int i = 0; i < 19; i++)
        mask[i] = 1;
    const float valid[12] = {1, 1, 1, 1, 1, 0};
    const int64_t role[12] = {0, 1, 2, 0, 2, 0};
    const uint16_t ctx[12] = {101, 1, 102, 101, 9, 102};
    const float cmask[12] = {1, 1, 1, 1, 1, 1};
    int64_t meta[4 * DS_META_N] = {0};
    for (int k = 0; k < DS_META_N; k++)
        meta[DS_META_N + k] = k + 1;
    const int64_t l7[4] = {4, 3, -1, 0}, l32[4] = {31, 10, -1, 0}, si[4] = {2, 0, 1, 0};
    ASSERT_ARRAY("%d", b.utt_tokens, tok, 48);
    ASSERT_ARRAY("%g", b.utt_mask, mask, 48);
    ASSERT_ARRAY("%g", b.utt_valid, valid, 12);
    for (int i = 0; i < 12; i++)
        assert_int_equal(b.utt_role[i], role[i]);
    ASSERT_ARRAY("%d", b.ctx_tokens, ctx, 12);
    ASSERT_ARRAY("%g", b.ctx_mask, cmask, 12);
    for (int i = 0; i < 4 * DS_META_N; i++)
        assert_int_equal(b.meta[i], meta[i]);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(b.label7[i], l7[i]);
        assert_int_equal(b.label32[i], l32[i]);
        assert_int_equal(b.sample_index[i], si[i]);
    }

    const size_t bad[] = {0, 3};
    assert_int_equal(ds_loader_fill(l, "train", bad, 2, &b, err, sizeof err), DS_SHARD_ENOENT);
    assert_non_null(strstr(err, "sample 3: out of range"));
    assert_int_equal(b.n, 0);
    assert_int_equal(ds_loader_fill(l, "val", idx, 1, &b, err, sizeof err), DS_SHARD_ENOENT);
    assert_int_equal(ds_loader_fill(l, "train", idx, 5, &b, err, sizeof err), DS_SHARD_EINVAL);
    assert_int_equal(ds_loader_fill(l, "train", idx, 0, &b, err, sizeof err), 0);
    const struct {
        const void *p;
        size_t bytes;
    } arrays[] = {{b.utt_tokens, 48 * 2}, {b.utt_mask, 48 * 4}, {b.ctx_tokens, 12 * 2}, {b.ctx_mask, 12 * 4},
                  {b.utt_valid, 12 * 4},  {b.utt_role, 12 * 8},  {b.meta, 4 * DS_META_N * 8}, {b.label7, 4 * 8},
                  {b.label32, 4 * 8},     {b.sample_index, 4 * 8}};
    for (size_t a = 0; a < sizeof arrays / sizeof arrays[0]; a++)
        for (size_t i = 0; i < arrays[a].bytes; i++)
            if (((const unsigned char *)arrays[a].p)[i])
                fail_msg("array %zu, byte %zu of an empty batch is not zero", a, i);
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

static const ds_batch_shape wide = {.B = T_B, .U = DS_MAX_UTT, .L = MAX_UTT_TOK, .C = MAX_CTX, .mods = DS_MOD_TEXT};

static void *thread_fill(void *arg)
{
    thread_job *j = arg;
    ds_batch b;
    char e[256];
    if (ds_batch_alloc(&b, &wide, NULL, e, sizeof e)) {
        j->mismatches = -1;
        return NULL;
    }
    for (int rep = 0; rep < 4; rep++)
        for (int i = 0; i < T_BATCHES; i++)
            if (ds_loader_fill(j->l, "train", j->idx + i * T_B, T_B, &b, e, sizeof e) || !batch_same(&b, &j->ref[i]))
                j->mismatches++;
    ds_batch_free(&b);
    return NULL;
}

static void test_loader_threads(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    make_split(dir, &m, "train", 14, 200, 2, MEDIA_NONE);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    size_t idx[T_BATCHES * T_B];
    uint64_t s = 99;
    for (int i = 0; i < T_BATCHES * T_B; i++)
        idx[i] = rnd(&s) % 200;
    ds_batch ref[T_BATCHES];
    rec_store *st = rec_new();
    for (int i = 0; i < T_BATCHES; i++) {
        assert_int_equal(ds_batch_alloc(&ref[i], &wide, NULL, err, sizeof err), 0);
        assert_int_equal(ds_loader_fill(l, "train", idx + i * T_B, T_B, &ref[i], err, sizeof err), 0);
        /* No cutting at these widths: every token and utterance lands where the record has it. */
        for (int row = 0; row < T_B; row++) {
            gen_record(st, 14, (uint32_t)idx[i * T_B + row], MEDIA_NONE);
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
    rec_free(st);
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

/* Row `row` of b against the record it was filled from: tokens, audio cut or padded, frames as the
 * record's stored bytes decode (or raw copies), absent media and slots zero with mask 0. */
static void check_row(const ds_batch *b, int row, const rec_store *st, ds_jpeg *dec, int media)
{
    const ds_record *r = &st->r;
    int first = r->n_utt > b->U ? r->n_utt - b->U : 0, used = r->n_utt - first;
    size_t fb = (size_t)b->H * b->W * 3;
    uint8_t *want = malloc(fb ? fb : 1);
    for (int k = 0; k < b->U; k++) {
        size_t slot = (size_t)row * b->U + k;
        const ds_utt *u = k < used ? &r->utt[first + k] : NULL;
        assert_int_equal(b->utt_valid[slot], u ? 1.0f : 0.0f);
        if (b->audio) {
            size_t n = u && (u->presence & DS_PRESENT_AUDIO) ? u->n_samples : 0, keep = n < (size_t)b->S ? n : (size_t)b->S;
            assert_int_equal(b->audio_len[slot], keep);
            assert_int_equal(b->audio_valid[slot], keep ? 1.0f : 0.0f);
            const int16_t *a = b->audio + slot * b->S;
            for (size_t i = 0; i < (size_t)b->S; i++)
                if (a[i] != (i < keep ? u->wave[i] : 0))
                    fail_msg("row %d slot %d sample %zu: %d, want %d", row, k, i, a[i], i < keep ? u->wave[i] : 0);
        }
        if (b->frames) {
            int has = u && (u->presence & DS_PRESENT_VIDEO);
            assert_int_equal(b->video_valid[slot], has ? 1.0f : 0.0f);
            for (int f = 0; f < DS_N_FRAMES; f++) {
                const uint8_t *got = b->frames + (slot * DS_N_FRAMES + f) * fb;
                if (!has)
                    memset(want, 0, fb);
                else if (media == MEDIA_RAW)
                    memcpy(want, st->rgb[first + k][f], fb);
                else
                    assert_int_equal(ds_jpeg_decode(dec, u->frame[f], u->frame_len[f], b->W, b->H, want, err,
                                                    sizeof err), 0);
                if (memcmp(got, want, fb))
                    fail_msg("row %d slot %d frame %d differs from the record's", row, k, f);
                if (has) {
                    /* The decoded picture is the one drawn (JPEG's loss aside), not some other frame. */
                    long diff = 0;
                    for (size_t i = 0; i < fb; i++)
                        diff += labs((long)got[i] - (long)st->rgb[first + k][f][i]);
                    assert_true(diff < 8 * (long)fb);
                }
            }
        }
        if (b->utt_tokens && u && u->n_tokens <= b->L)
            for (int t = 0; t < u->n_tokens; t++)
                assert_int_equal(b->utt_tokens[slot * b->L + t], u->tokens[t]);
    }
    assert_int_equal(b->sample_index[row], r->sample_index);
    free(want);
}

static void check_split_batches(ds_loader *l, const ds_batch_shape *shape, uint64_t seed, int n, int media)
{
    ds_batch b;
    assert_int_equal(ds_batch_alloc(&b, shape, NULL, err, sizeof err), 0);
    rec_store *st = rec_new();
    ds_jpeg *dec;
    assert_int_equal(ds_jpeg_open(&dec, err, sizeof err), 0);
    size_t idx[16];
    int seen_cut = 0, seen_pad = 0, seen_video = 0, seen_absent = 0;
    for (int start = 0; start < n; start += shape->B) {
        int rows = n - start < shape->B ? n - start : shape->B;
        for (int i = 0; i < rows; i++)
            idx[i] = (size_t)(n - 1 - start - i);
        memset(b.block, 0x55, b.bytes);
        if (ds_loader_fill(l, "train", idx, rows, &b, err, sizeof err))
            fail_msg("fill: %s", err);
        for (int i = 0; i < rows; i++) {
            gen_record(st, seed, (uint32_t)idx[i], media);
            check_row(&b, i, st, dec, media);
            for (int u = 0; u < st->r.n_utt; u++) {
                seen_cut += st->r.utt[u].n_samples > (uint32_t)shape->S;
                seen_pad += st->r.utt[u].n_samples && st->r.utt[u].n_samples < (uint32_t)shape->S;
                seen_video += !!(st->r.utt[u].presence & DS_PRESENT_VIDEO);
                seen_absent += !(st->r.utt[u].presence & DS_PRESENT_VIDEO);
            }
        }
    }
    /* The data exercised every case. */
    if (shape->mods & DS_MOD_AUDIO)
        assert_true(seen_cut > 0 && seen_pad > 0);
    assert_true(seen_video > 0 && seen_absent > 0);
    ds_jpeg_close(dec);
    rec_free(st);
    ds_batch_free(&b);
}

static void test_media_collation(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    make_split(dir, &m, "train", 21, 40, 2, MEDIA_JPEG);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    assert_int_equal(ds_loader_manifest(l)->media.frame_w, FRAME_W);
    /* U = 6 < DS_MAX_UTT: the last six utterances, with their own media. */
    ds_batch_shape all = {.B = 5, .U = 6, .L = MAX_UTT_TOK, .C = MAX_CTX, .S = 64, .H = FRAME_H, .W = FRAME_W,
                          .mods = DS_MOD_TEXT | DS_MOD_AUDIO | DS_MOD_VIDEO};
    check_split_batches(l, &all, 21, 40, MEDIA_JPEG);
    all.U = DS_MAX_UTT;
    all.B = 3;
    check_split_batches(l, &all, 21, 40, MEDIA_JPEG);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_media_raw_and_text_only(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    make_split(dir, &m, "train", 22, 30, 1, MEDIA_RAW);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_batch_shape video = {.B = 4, .U = DS_MAX_UTT, .H = FRAME_H, .W = FRAME_W, .mods = DS_MOD_VIDEO};
    check_split_batches(l, &video, 22, 30, MEDIA_RAW);
    /* The text of a media batch equals a text-only batch's, which has no media arrays at all. */
    ds_batch_shape text = {.B = 4, .U = DS_MAX_UTT, .L = 8, .C = 8, .mods = DS_MOD_TEXT};
    ds_batch_shape both = text;
    both.mods |= DS_MOD_AUDIO | DS_MOD_VIDEO;
    both.S = 10;
    both.H = FRAME_H;
    both.W = FRAME_W;
    ds_batch a, b;
    assert_int_equal(ds_batch_alloc(&a, &text, NULL, err, sizeof err), 0);
    assert_int_equal(ds_batch_alloc(&b, &both, NULL, err, sizeof err), 0);
    assert_null(a.frames);
    assert_null(a.audio);
    const size_t idx[] = {29, 3, 17, 8};
    assert_int_equal(ds_loader_fill(l, "train", idx, 4, &a, err, sizeof err), 0);
    assert_int_equal(ds_loader_fill(l, "train", idx, 4, &b, err, sizeof err), 0);
    assert_memory_equal(a.utt_tokens, b.utt_tokens, 4 * DS_MAX_UTT * 8 * sizeof *a.utt_tokens);
    assert_memory_equal(a.utt_mask, b.utt_mask, 4 * DS_MAX_UTT * 8 * sizeof *a.utt_mask);
    assert_memory_equal(a.meta, b.meta, 4 * DS_META_N * sizeof *a.meta);
    assert_true(a.bytes * 10 < b.bytes);
    ds_batch_free(&a);
    ds_batch_free(&b);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

/* Record 3's first utterance with video gets a frame that starts like a JPEG and is not one. */
static void bad_jpeg(rec_store *st, void *ctx)
{
    static const uint8_t junk[] = {0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int *where = ctx;
    if (st->r.sample_index != 3)
        return;
    for (int u = 0; u < st->r.n_utt; u++)
        if (st->r.utt[u].presence & DS_PRESENT_VIDEO) {
            st->r.utt[u].frame[5] = junk;
            st->r.utt[u].frame_len[5] = sizeof junk;
            *where = u;
            return;
        }
    fail_msg("record 3 has no video to damage");
}

static void test_media_mismatch(void **state)
{
    (void)state;
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    int where = -1;
    make_split_with(dir, &m, "train", 23, 8, 1, MEDIA_JPEG, bad_jpeg, &where);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_batch b;
    ds_batch_shape other = {.B = 2, .U = DS_MAX_UTT, .H = FRAME_H, .W = FRAME_W + 8, .mods = DS_MOD_VIDEO};
    assert_int_equal(ds_batch_alloc(&b, &other, NULL, err, sizeof err), 0);
    const size_t idx[] = {0, 1, 2, 4, 5, 6, 7};
    int rc = 0;
    for (int i = 0; i < 7 && !rc; i++)
        rc = ds_loader_fill(l, "train", idx + i, 1, &b, err, sizeof err);
    assert_int_equal(rc, DS_SHARD_ECORRUPT);
    assert_non_null(strstr(err, "frames are 24x16, the batch wants 32x16"));
    ds_batch_free(&b);
    ds_batch_shape right = other;
    right.W = FRAME_W;
    assert_int_equal(ds_batch_alloc(&b, &right, NULL, err, sizeof err), 0);
    const size_t three[] = {2, 3};
    assert_int_equal(ds_loader_fill(l, "train", three, 2, &b, err, sizeof err), DS_SHARD_ECORRUPT);
    assert_int_equal(b.n, 0);
    char want[128];
    snprintf(want, sizeof want, "split train, sample 3 (c23-000003), utterance %d, frame 5: ", where);
    if (!strstr(err, want))
        fail_msg("error '%s' does not start with '%s'", err, want);
    /* Audio alone never touches the frames. */
    ds_batch_free(&b);
    ds_batch_shape audio = {.B = 2, .U = DS_MAX_UTT, .S = 8, .mods = DS_MOD_AUDIO};
    assert_int_equal(ds_batch_alloc(&b, &audio, NULL, err, sizeof err), 0);
    assert_int_equal(ds_loader_fill(l, "train", three, 2, &b, err, sizeof err), 0);
    ds_batch_free(&b);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

int loader_run_cases(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_alloc),
        cmocka_unit_test(test_loader_fill),
        cmocka_unit_test(test_loader_threads),
        cmocka_unit_test(test_media_collation),
        cmocka_unit_test(test_media_raw_and_text_only),
        cmocka_unit_test(test_media_mismatch),
    };
    return cmocka_run_group_tests_name("loader", tests, NULL, NULL);
}
