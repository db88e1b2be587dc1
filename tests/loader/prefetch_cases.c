/* test_loader: the prefetcher against single-threaded fills, in every thread and depth combination. */
#include "tests/loader/fixtures.h"

#include "dataset/prefetch.h"
#include "dataset/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { N_TRAIN = 37, N_VAL = 23, B = 4, N_BATCHES = 12 };

static const ds_batch_shape shape = {.B = B, .U = DS_MAX_UTT, .L = 16, .C = 12, .S = 50, .H = FRAME_H,
                                     .W = FRAME_W, .mods = DS_MOD_TEXT | DS_MOD_AUDIO | DS_MOD_VIDEO};

/* What the trainer did before prefetching: one draw per step, the next epoch at the end of one. */
typedef struct {
    ds_batch b;
    size_t n_real;
    ds_sampler_position after;
    int epoch_end;
} expect;

static int draw(ds_sampler *s, int roll, size_t *idx, expect *e)
{
    if (ds_sampler_next(s, idx, &e->n_real) == DS_SAMPLER_EPOCH_END) {
        if (!roll)
            return 1;
        ds_sampler_set_epoch(s, s->epoch + 1);
        assert_int_equal(ds_sampler_next(s, idx, &e->n_real), DS_SAMPLER_OK);
    }
    e->after = ds_sampler_get_position(s);
    e->epoch_end = e->after.consumed >= ds_sampler_steps_per_epoch(s) * (uint64_t)s->world * s->batch;
    return 0;
}

/* Up to max reference batches from a copy of s's configuration and position; returns how many. */
static int references(ds_loader *l, const char *split, const ds_sampler *s, int roll, int max, expect *out)
{
    ds_sampler c;
    ds_sampler_position pos = ds_sampler_get_position(s);
    assert_int_equal(ds_sampler_init(&c, s->n, s->world, s->rank, s->batch, s->seed, s->flags, err, sizeof err), 0);
    assert_int_equal(ds_sampler_set_position(&c, &pos, err, sizeof err), 0);
    size_t idx[B];
    int n = 0;
    while (n < max && draw(&c, roll, idx, &out[n]) == 0) {
        assert_int_equal(ds_batch_alloc(&out[n].b, &shape, NULL, err, sizeof err), 0);
        if (ds_loader_fill(l, split, idx, B, &out[n].b, err, sizeof err))
            fail_msg("reference fill: %s", err);
        n++;
    }
    ds_sampler_free(&c);
    return n;
}

static void free_references(expect *e, int n)
{
    for (int i = 0; i < n; i++)
        ds_batch_free(&e[i].b);
}

static void assert_item(const ds_prefetch_item *it, const expect *e, uint64_t seq, const char *what)
{
    if (it->seq != seq || !batch_same(it->batch, &e->b) || it->n_real != e->n_real ||
        it->after.epoch != e->after.epoch || it->after.consumed != e->after.consumed || it->epoch_end != e->epoch_end)
        fail_msg("%s: batch %llu differs from the single-threaded fill (seq %llu, n_real %zu/%zu, after %llu:%llu/"
                 "%llu:%llu, end %d/%d)", what, (unsigned long long)seq, (unsigned long long)it->seq, it->n_real,
                 e->n_real, (unsigned long long)it->after.epoch, (unsigned long long)it->after.consumed,
                 (unsigned long long)e->after.epoch, (unsigned long long)e->after.consumed, it->epoch_end,
                 e->epoch_end);
}

static char *shards_with(int n_train, uint64_t seed)
{
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    make_split(dir, &m, "train", seed, n_train, 3, MEDIA_JPEG);
    make_split(dir, &m, "val", seed + 1, N_VAL, 1, MEDIA_JPEG);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    return dir;
}

static void test_prefetch_order(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 5);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    /* Rank 1 of 2, padded epochs of ceil(37 / 8) = 5 steps: 12 batches cross two epoch ends. */
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, N_TRAIN, 2, 1, B, 3, DS_SAMPLER_SHUFFLE, err, sizeof err), 0);
    expect ref[N_BATCHES];
    assert_int_equal(references(l, "train", &s, 1, N_BATCHES, ref), N_BATCHES);
    assert_true(ref[4].epoch_end && ref[9].epoch_end && !ref[5].epoch_end);
    assert_true(ref[4].n_real < B);
    for (int threads = 1; threads <= 4; threads++)
        for (int depth = 1; depth <= 4; depth++) {
            char what[64];
            snprintf(what, sizeof what, "%d threads, depth %d", threads, depth);
            ds_prefetch_opts o = {.threads = threads, .depth = depth, .shape = shape, .roll_epochs = 1,
                                  .max_batches = N_BATCHES};
            ds_prefetch *p;
            assert_int_equal(ds_prefetch_open(l, "train", &s, &o, &p, err, sizeof err), 0);
            /* Odd thread counts release each batch at once; even ones hold the whole ring and release it
             * newest first. */
            int hold = threads % 2 ? 1 : depth, held = 0;
            ds_prefetch_item items[4];
            for (int i = 0; i < N_BATCHES; i++) {
                if (ds_prefetch_next(p, &items[held], err, sizeof err))
                    fail_msg("%s: batch %d: %s", what, i, err);
                assert_item(&items[held], &ref[i], (uint64_t)i, what);
                if (++held == hold)
                    while (held)
                        ds_prefetch_release(p, &items[--held]);
            }
            while (held)
                ds_prefetch_release(p, &items[--held]);
            assert_int_equal(ds_prefetch_next(p, &items[0], err, sizeof err), DS_PREFETCH_END);
            assert_int_equal(ds_prefetch_next(p, &items[0], err, sizeof err), DS_PREFETCH_END);
            ds_prefetch_close(p);
        }
    free_references(ref, N_BATCHES);
    ds_sampler_free(&s);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_prefetch_eval_end(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 6);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    /* Evaluation on rank 1 of 2: 23 samples in order, 3 steps, the last with one wrapped row. */
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, N_VAL, 2, 1, B, 0, 0, err, sizeof err), 0);
    expect ref[4];
    assert_int_equal(references(l, "val", &s, 0, 4, ref), 3);
    for (int threads = 1; threads <= 3; threads += 2) {
        ds_prefetch_opts o = {.threads = threads, .depth = 2, .shape = shape};
        ds_prefetch *p;
        assert_int_equal(ds_prefetch_open(l, "val", &s, &o, &p, err, sizeof err), 0);
        ds_prefetch_item it;
        for (int i = 0; i < 3; i++) {
            assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), 0);
            assert_item(&it, &ref[i], (uint64_t)i, "eval");
            assert_int_equal(it.n_real, i < 2 ? 4 : 3);
            assert_int_equal(it.epoch_end, i == 2);
            ds_prefetch_release(p, &it);
        }
        assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), DS_PREFETCH_END);
        assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), DS_PREFETCH_END);
        ds_prefetch_close(p);
    }
    free_references(ref, 3);
    ds_sampler_free(&s);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_prefetch_resume(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 7);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, N_TRAIN, 1, 0, B, 9, DS_SAMPLER_SHUFFLE | DS_SAMPLER_DROP_LAST, err,
                                     sizeof err), 0);
    /* drop_last: floor(37 / 4) = 9 steps per epoch. */
    expect ref[N_BATCHES];
    assert_int_equal(references(l, "train", &s, 1, N_BATCHES, ref), N_BATCHES);
    assert_true(ref[8].epoch_end && ref[8].after.consumed == 36);
    /* Resuming from the position a batch carries continues with the batch after it; 8 and 9 straddle the
     * epoch end, where the position saved is the finished epoch's. */
    const int cuts[] = {1, 4, 9, 10};
    for (int c = 0; c < 4; c++) {
        int cut = cuts[c];
        ds_sampler r;
        assert_int_equal(ds_sampler_init(&r, N_TRAIN, 1, 0, B, 9, DS_SAMPLER_SHUFFLE | DS_SAMPLER_DROP_LAST, err,
                                         sizeof err), 0);
        assert_int_equal(ds_sampler_set_position(&r, &ref[cut - 1].after, err, sizeof err), 0);
        ds_prefetch_opts o = {.threads = 2, .depth = 3, .shape = shape, .roll_epochs = 1,
                              .max_batches = (uint64_t)(N_BATCHES - cut)};
        ds_prefetch *p;
        assert_int_equal(ds_prefetch_open(l, "train", &r, &o, &p, err, sizeof err), 0);
        ds_sampler_free(&r);
        ds_prefetch_item it;
        for (int i = cut; i < N_BATCHES; i++) {
            assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), 0);
            assert_item(&it, &ref[i], (uint64_t)(i - cut), "resumed");
            ds_prefetch_release(p, &it);
        }
        assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), DS_PREFETCH_END);
        ds_prefetch_close(p);
    }
    free_references(ref, N_BATCHES);
    ds_sampler_free(&s);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_prefetch_early_close(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 8);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, N_TRAIN, 1, 0, B, 1, DS_SAMPLER_SHUFFLE, err, sizeof err), 0);
    /* A hang here ends the test binary (SIGALRM) instead of the suite's patience. */
    alarm(60);
    ds_prefetch_opts o = {.threads = 4, .depth = 3, .shape = shape, .roll_epochs = 1};
    ds_prefetch *p;
    ds_prefetch_item it;
    for (int how = 0; how < 4; how++) {
        assert_int_equal(ds_prefetch_open(l, "train", &s, &o, &p, err, sizeof err), 0);
        if (how >= 1)
            assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), 0);  /* held at close */
        if (how >= 2) {
            ds_prefetch_release(p, &it);
            assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), 0);
            ds_prefetch_release(p, &it);
        }
        if (how == 3)
            usleep(50000);  /* the workers fill the ring and wait for a free slot */
        ds_prefetch_close(p);
    }
    ds_prefetch_close(NULL);
    alarm(0);
    ds_sampler_free(&s);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

/* Record 6 gets an undecodable frame. */
static void bad_frame(rec_store *st, void *ctx)
{
    static const uint8_t junk[] = {0xff, 0xd8, 0xff, 0xe0, 9, 9, 9, 9, 9, 9, 9, 9};
    (void)ctx;
    for (int u = 0; st->r.sample_index == 6 && u < st->r.n_utt; u++)
        if (st->r.utt[u].presence & DS_PRESENT_VIDEO) {
            st->r.utt[u].frame[2] = junk;
            st->r.utt[u].frame_len[2] = sizeof junk;
            return;
        }
}

/* Batches before the failing one arrive intact, then the error, on every later call too. */
static void expect_failure(ds_loader *l, int n, int good_batches, const char *needle)
{
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, (size_t)n, 1, 0, B, 0, 0, err, sizeof err), 0);
    expect ref[4];
    assert_int_equal(references(l, "train", &s, 0, good_batches, ref), good_batches);
    for (int threads = 1; threads <= 4; threads++)
        for (int depth = 1; depth <= 3; depth++) {
            ds_prefetch_opts o = {.threads = threads, .depth = depth, .shape = shape};
            ds_prefetch *p;
            ds_prefetch_item it;
            assert_int_equal(ds_prefetch_open(l, "train", &s, &o, &p, err, sizeof err), 0);
            for (int i = 0; i < good_batches; i++) {
                if (ds_prefetch_next(p, &it, err, sizeof err))
                    fail_msg("%d threads, depth %d, batch %d: %s", threads, depth, i, err);
                assert_item(&it, &ref[i], (uint64_t)i, "before the failure");
                ds_prefetch_release(p, &it);
            }
            for (int again = 0; again < 2; again++) {
                err[0] = 0;
                assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), DS_SHARD_ECORRUPT);
                if (!strstr(err, needle) || strchr(err, '\n'))
                    fail_msg("%d threads, depth %d: error '%s' lacks '%s'", threads, depth, err, needle);
            }
            ds_prefetch_close(p);
        }
    free_references(ref, good_batches);
    ds_sampler_free(&s);
}

static void test_prefetch_corrupt(void **state)
{
    (void)state;
    /* Bit rot in record 9 (row 1 of batch 2): its CRC fails. */
    char *dir = make_tmpdir();
    ds_manifest m;
    manifest_base(&m);
    make_split(dir, &m, "train", 31, 20, 1, MEDIA_JPEG);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    char path[512];
    snprintf(path, sizeof path, "%s/train-00000.lmdb", dir);
    corrupt_file(path, "c31-000009", 3);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    expect_failure(l, 20, 2, "split train: record 9 of train-00000.lmdb: crc mismatch");
    ds_loader_close(l);
    rm_tmpdir(dir);

    /* A record that decodes but whose frame does not (row 2 of batch 1). */
    dir = make_tmpdir();
    manifest_base(&m);
    make_split_with(dir, &m, "train", 32, 20, 2, MEDIA_JPEG, bad_frame, NULL);
    write_manifest(dir, &m);
    ds_manifest_free(&m);
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    expect_failure(l, 20, 1, "split train, sample 6 (c32-000006), utterance ");
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_prefetch_memory_bound(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 9);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_sampler s;
    assert_int_equal(ds_sampler_init(&s, N_TRAIN, 1, 0, B, 2, DS_SAMPLER_SHUFFLE, err, sizeof err), 0);
    counting c = {0};
    ds_allocator a = counting_allocator(&c);
    ds_prefetch_opts o = {.threads = 3, .depth = 3, .shape = shape, .roll_epochs = 1, .allocator = &a};
    ds_prefetch *p;
    assert_int_equal(ds_prefetch_open(l, "train", &s, &o, &p, err, sizeof err), 0);
    assert_int_equal(c.allocs, 3);
    ds_prefetch_item it;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(ds_prefetch_next(p, &it, err, sizeof err), 0);
        ds_prefetch_release(p, &it);
    }
    /* Forty batches over four epochs, and still the three blocks of the ring. */
    assert_int_equal(it.after.epoch, 3);
    assert_int_equal(c.allocs, 3);
    assert_int_equal(c.frees, 0);
    assert_int_equal(c.bytes, 3 * ds_batch_bytes(&shape));
    ds_prefetch_close(p);
    assert_int_equal(c.frees, 3);
    ds_sampler_free(&s);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

static void test_prefetch_bad_use(void **state)
{
    (void)state;
    char *dir = shards_with(N_TRAIN, 10);
    ds_loader *l;
    assert_int_equal(ds_loader_open(dir, &l, err, sizeof err), 0);
    ds_sampler s, big;
    assert_int_equal(ds_sampler_init(&s, N_TRAIN, 1, 0, B, 2, DS_SAMPLER_SHUFFLE, err, sizeof err), 0);
    assert_int_equal(ds_sampler_init(&big, N_TRAIN + 1, 1, 0, B, 2, 0, err, sizeof err), 0);
    ds_prefetch *p = (ds_prefetch *)&s;
    ds_prefetch_opts o = {.threads = 2, .depth = 2, .shape = shape, .roll_epochs = 1};
    ds_prefetch_opts o2 = o;
    o2.shape.B = B + 1;
    assert_int_equal(ds_prefetch_open(l, "train", &s, &o2, &p, err, sizeof err), DS_SHARD_EINVAL);
    assert_null(p);
    assert_non_null(strstr(err, "batch of 5 rows for a sampler of 4 per rank"));
    o2 = o;
    o2.threads = DS_PREFETCH_MAX_THREADS + 1;
    assert_int_equal(ds_prefetch_open(l, "train", &s, &o2, &p, err, sizeof err), DS_SHARD_EINVAL);
    o2 = o;
    o2.shape.L = 1;
    assert_int_equal(ds_prefetch_open(l, "train", &s, &o2, &p, err, sizeof err), DS_SHARD_EINVAL);
    assert_int_equal(ds_prefetch_open(l, "test", &s, &o, &p, err, sizeof err), DS_SHARD_ENOENT);
    assert_int_equal(ds_prefetch_open(l, "train", &big, &o, &p, err, sizeof err), DS_SHARD_EINVAL);
    /* Both batches of a ring of two held: a third cannot come until one is released. */
    ds_prefetch_item a, b, c;
    assert_int_equal(ds_prefetch_open(l, "train", &s, &o, &p, err, sizeof err), 0);
    assert_int_equal(ds_prefetch_next(p, &a, err, sizeof err), 0);
    assert_int_equal(ds_prefetch_next(p, &b, err, sizeof err), 0);
    assert_int_equal(ds_prefetch_next(p, &c, err, sizeof err), DS_SHARD_EINVAL);
    assert_non_null(strstr(err, "batch 0 is still held"));
    ds_prefetch_release(p, &a);
    ds_prefetch_release(p, &a);  /* twice: ignored */
    assert_int_equal(ds_prefetch_next(p, &c, err, sizeof err), 0);
    assert_int_equal(c.seq, 2);
    ds_prefetch_close(p);
    ds_sampler_free(&s);
    ds_sampler_free(&big);
    ds_loader_close(l);
    rm_tmpdir(dir);
}

int prefetch_run_cases(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefetch_order),
        cmocka_unit_test(test_prefetch_eval_end),
        cmocka_unit_test(test_prefetch_resume),
        cmocka_unit_test(test_prefetch_early_close),
        cmocka_unit_test(test_prefetch_corrupt),
        cmocka_unit_test(test_prefetch_memory_bound),
        cmocka_unit_test(test_prefetch_bad_use),
    };
    return cmocka_run_group_tests_name("prefetch", tests, NULL, NULL);
}
