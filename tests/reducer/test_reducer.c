/* comm/reducer tests: run under mpirun with 2 ranks, and alone (singleton, group of 1).
 *
 * The reference of an average is computed here in float, in rank order, as MPI sums two operands
 * (float addition of two values is commutative, so with 1 or 2 ranks the bits must match exactly;
 * with more, within 1e-6), and every rank must hold the same bits (hashes are gathered).
 *
 * A failed assertion on one rank must not leave the other waiting in a collective: as in tests/comm,
 * the next test's setup aborts the whole job when the previous body did not run to its end.
 *
 * `test_reducer --bench [--smoke]` instead times a simulated backward with the reducer and prints
 * `bench:` lines on rank 0: the share of communication hidden behind backward, the step time with and
 * without overlap, and the reducer's all-reduce throughput against one comm_allreduce of the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "tests/common/comm_test.h"
#include "comm/comm_nccl.h"
#include "comm/reducer.h"

#ifdef EMPD_HAVE_NCCL
#include <cuda_runtime_api.h>
#endif


static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* Gradients of a toy model: counts[i] floats each (NULL when 0). */
typedef struct {
    int n;
    const size_t *counts;
    float **grads;
} model;

static model model_make(const size_t *counts, int n)
{
    model m = {n, counts, calloc((size_t)n + 1, sizeof(float *))};
    assert_non_null(m.grads);
    for (int i = 0; i < n; i++)
        if (counts[i]) {
            m.grads[i] = malloc(counts[i] * sizeof(float));
            assert_non_null(m.grads[i]);
        }
    return m;
}

static void model_free(model *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->grads[i]);
    free(m->grads);
}

/* Rank r's gradient element j of parameter i in backward `cycle`: values of no particular form, so that
 * their sums round. */
static float grad_value(int rank, int cycle, int i, size_t j)
{
    uint32_t h = (uint32_t)rank * 2654435761u ^ (uint32_t)cycle * 40503u ^ ((uint32_t)i * 97u + 1) * 2246822519u ^
                 (uint32_t)j * 3266489917u;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    return ((float)(h >> 8) / 16777216.0f - 0.5f) * 3.0f;
}

static void fill_param(model *m, int cycle, int i)
{
    for (size_t j = 0; j < m->counts[i]; j++)
        m->grads[i][j] = grad_value(comm_rank(comm_test_group), cycle, i, j);
}

static void model_fill(model *m, int cycle)
{
    for (int i = 0; i < m->n; i++)
        fill_param(m, cycle, i);
}

static uint64_t model_hash(const model *m)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < m->n; i++)
        h = fnv1a(h, m->grads[i], m->counts[i] * sizeof(float));
    return h;
}

/* Every rank must hold the same bits: their hashes are gathered and compared. */
static void assert_same_on_all_ranks(const model *m)
{
    char err[256];
    int size = comm_size(comm_test_group);
    uint64_t mine = model_hash(m);
    uint64_t *all = calloc((size_t)size, sizeof *all);
    assert_non_null(all);
    assert_int_equal(comm_allgather(comm_test_group, &mine, all, sizeof mine, err, sizeof err), COMM_OK);
    for (int r = 0; r < size; r++)
        assert_true(all[r] == mine);
    free(all);
}

/* Every gradient is the average over the ranks of backward `cycle`'s values. */
static void assert_averaged(const model *m, int cycle)
{
    const int size = comm_size(comm_test_group);
    for (int i = 0; i < m->n; i++)
        for (size_t j = 0; j < m->counts[i]; j++) {
            float sum = 0;
            for (int r = 0; r < size; r++)
                sum += grad_value(r, cycle, i, j);
            const float want = sum / (float)size, got = m->grads[i][j];
            if (size <= 2 ? got != want : (got - want > 1e-6f || want - got > 1e-6f))
                fail_msg("parameter %d element %zu after backward %d: got %.9g, want %.9g", i, j, cycle, got, want);
        }
    assert_same_on_all_ranks(m);
}

/* A permutation of 0..n-1 that differs between ranks and backward passes. */
static void shuffled(int *order, int n, unsigned seed)
{
    for (int i = 0; i < n; i++)
        order[i] = i;
    uint64_t s = seed * 6364136223846793005ull + 1442695040888963407ull;
    for (int i = n - 1; i > 0; i--) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int k = (int)((s >> 33) % (uint64_t)(i + 1));
        int t = order[i];
        order[i] = order[k];
        order[k] = t;
    }
}

static comm_reducer *reducer_make(model *m, size_t first_bytes, size_t bytes, int overlap)
{
    char err[320];
    comm_reducer_opts o = {.bucket_bytes = bytes, .first_bucket_bytes = first_bytes, .overlap = overlap};
    comm_reducer *r = NULL;
    if (comm_reducer_new(comm_test_group, m->grads, m->counts, m->n, &o, &r, err, sizeof err))
        fail_msg("comm_reducer_new: %s", err);
    return r;
}

/* Zero-sized ones (first and last among them), tiny ones in runs, ones larger than a bucket. */
static const size_t ASSORTED[] = {0,   3,  1,  5000, 17, 0, 1,  2,    300, 1, 1, 1,  1,
                                  1,   1,  1,  4096, 7,  1, 64, 1023, 1,   1, 1, 33, 0};
#define N_ASSORTED ((int)(sizeof ASSORTED / sizeof ASSORTED[0]))

/* One backward: ready in a rank-dependent order for the parameters `every` selects, then finish. */
static void backward(comm_reducer *r, model *m, int cycle, int every)
{
    char err[320];
    int *order = malloc((size_t)m->n * sizeof *order + 1);
    assert_non_null(order);
    shuffled(order, m->n, (unsigned)(comm_rank(comm_test_group) * 7919 + cycle));
    model_fill(m, cycle);
    comm_reducer_begin(r);
    for (int k = 0; k < m->n; k++)
        if (order[k] % every == 0)
            comm_reducer_ready(r, order[k]);
    if (comm_reducer_finish(r, err, sizeof err))
        fail_msg("comm_reducer_finish: %s", err);
    free(order);
}

COMM_TEST(test_layout)
{
    /* The defaults: bucket 0 closes at 1 MB, later ones at 25 MB, counted from the last parameter. The
     * 16 MB buffers are never touched, so their pages cost nothing. */
    const size_t mb = 1024 * 1024 / sizeof(float);
    const size_t counts[] = {16 * mb, 16 * mb, 16 * mb, 16 * mb, 1, mb, 100, 200000};
    model m = model_make(counts, 8);
    comm_reducer *r = reducer_make(&m, 0, 0, 1);
    assert_int_equal(comm_reducer_buckets(r), 3);
    const int want[3][2] = {{7, 3}, {4, 3}, {1, 2}};
    for (int k = 0; k < 3; k++) {
        int first = -1, count = -1;
        assert_int_equal(comm_reducer_bucket_params(r, k, &first, &count), COMM_OK);
        assert_int_equal(first, want[k][0]);
        assert_int_equal(count, want[k][1]);
    }
    int first, count;
    assert_int_equal(comm_reducer_bucket_params(r, 3, &first, &count), COMM_EINVAL);
    assert_int_equal(comm_reducer_bucket_params(r, -1, &first, &count), COMM_EINVAL);
    comm_reducer_free(r);
    model_free(&m);

    /* Small limits: 4 bytes close bucket 0 after one float, 8 bytes close the next after two. */
    const size_t ones[] = {1, 1, 1, 1};
    m = model_make(ones, 4);
    r = reducer_make(&m, 4, 8, 0);
    assert_int_equal(comm_reducer_buckets(r), 3);
    comm_reducer_free(r);
    model_free(&m);

    /* No parameters at all: no buckets, and a backward that does nothing. */
    m = model_make(NULL, 0);
    r = reducer_make(&m, 0, 0, 1);
    assert_int_equal(comm_reducer_buckets(r), 0);
    backward(r, &m, 1, 1);
    comm_reducer_free(r);
    model_free(&m);
}

COMM_TEST(test_average_in_any_order)
{
    model m = model_make(ASSORTED, N_ASSORTED);
    comm_reducer *r = reducer_make(&m, 1024, 4096, 1);
    const int nb = comm_reducer_buckets(r);
    assert_true(nb > 3);
    assert_int_equal(comm_reducer_overlap(r),
                     comm_size(comm_test_group) > 1 && comm_thread_level_of(comm_test_group) >= COMM_THREAD_SERIALIZED);
    for (int cycle = 1; cycle <= 4; cycle++) {
        backward(r, &m, cycle, 1);
        assert_averaged(&m, cycle);
        comm_reducer_stats s;
        comm_reducer_stats_get(r, &s);
        assert_int_equal(s.buckets, comm_size(comm_test_group) > 1 ? nb : 0);
        /* Every parameter was ready before finish, so with overlap every bucket had started. */
        assert_int_equal(s.early, comm_reducer_overlap(r) ? nb : 0);
        assert_true(s.wait_s >= 0 && s.comm_s >= 0);
    }
    comm_reducer_free(r);
    model_free(&m);
}

COMM_TEST(test_overlap_off_same_bits)
{
    model m = model_make(ASSORTED, N_ASSORTED);
    uint64_t h[2];
    for (int overlap = 0; overlap < 2; overlap++) {
        comm_reducer *r = reducer_make(&m, 1024, 4096, overlap);
        backward(r, &m, 7, 1);
        assert_averaged(&m, 7);
        h[overlap] = model_hash(&m);
        comm_reducer_stats s;
        comm_reducer_stats_get(r, &s);
        if (!overlap)
            assert_int_equal(s.early, 0);
        comm_reducer_free(r);
    }
    assert_true(h[0] == h[1]);
    model_free(&m);
}

/* Parameters never reported ready (unused this step) are averaged as they stand. */
COMM_TEST(test_unready_params_reduced)
{
    model m = model_make(ASSORTED, N_ASSORTED);
    comm_reducer *r = reducer_make(&m, 1024, 4096, 1);
    backward(r, &m, 11, 2);
    assert_averaged(&m, 11);
    backward(r, &m, 12, N_ASSORTED + 1);
    assert_averaged(&m, 12);
    comm_reducer_free(r);
    model_free(&m);
}

/* Accumulation micro-steps report ready without begin: nothing happens, until an armed backward. */
COMM_TEST(test_beginless_backward)
{
    char err[320];
    model m = model_make(ASSORTED, N_ASSORTED);
    comm_reducer *r = reducer_make(&m, 1024, 4096, 1);
    model_fill(&m, 20);
    const uint64_t before = model_hash(&m);
    for (int i = N_ASSORTED - 1; i >= 0; i--)
        comm_reducer_ready(r, i);
    comm_reducer_ready(r, -5);
    assert_true(model_hash(&m) == before);
    backward(r, &m, 21, 1);
    assert_averaged(&m, 21);

    /* finish without begin averages every gradient as it stands. */
    model_fill(&m, 22);
    assert_int_equal(comm_reducer_finish(r, err, sizeof err), COMM_OK);
    assert_averaged(&m, 22);
    comm_reducer_free(r);
    model_free(&m);
}

/* Misuse changes nothing but the code finish returns: the averages are right and the ranks in step. */
COMM_TEST(test_misuse_reported)
{
    char err[320];
    model m = model_make(ASSORTED, N_ASSORTED);
    comm_reducer *r = reducer_make(&m, 1024, 4096, 1);
    const char *want[] = {"ready twice", "outside parameters", "begin called twice"};
    for (int kind = 0; kind < 3; kind++) {
        model_fill(&m, 30 + kind);
        comm_reducer_begin(r);
        for (int i = N_ASSORTED - 1; i >= 0; i--) {
            comm_reducer_ready(r, i);
            if (kind == 0 && i == 4)
                comm_reducer_ready(r, i);
            if (kind == 1 && i == 9)
                comm_reducer_ready(r, N_ASSORTED);
            if (kind == 2 && i == 9)
                comm_reducer_begin(r);
        }
        err[0] = '\0';
        assert_int_equal(comm_reducer_finish(r, err, sizeof err), COMM_EINVAL);
        if (!strstr(err, want[kind]) || strchr(err, '\n'))
            fail_msg("misuse %d: line \"%s\" lacks \"%s\"", kind, err, want[kind]);
        assert_averaged(&m, 30 + kind);
    }
    backward(r, &m, 40, 1);
    assert_averaged(&m, 40);
    comm_reducer_free(r);
    model_free(&m);
}

/* Every rank makes the same bad call: each gets the code and a one-line message naming the problem. */
static void expect_rejected(float *const *grads, const size_t *counts, int n, const comm_reducer_opts *o,
                            int want_code, const char *want_text)
{
    char err[320] = "";
    comm_reducer *r = (comm_reducer *)&err;
    int rc = comm_reducer_new(comm_test_group, grads, counts, n, o, &r, err, sizeof err);
    if (rc != want_code || r || !strstr(err, want_text) || strncmp(err, "comm: reducer", 13) || strchr(err, '\n'))
        fail_msg("expected code %d with \"%s\", got %d: \"%s\"", want_code, want_text, rc, err);
}

COMM_TEST(test_bad_arguments)
{
    const size_t counts[] = {4, 0, 8};
    model m = model_make(counts, 3);
    const comm_reducer_opts plain = {0}, bf16 = {.wire = COMM_BF16}, f64 = {.wire = COMM_F64};
    expect_rejected(NULL, counts, 3, &plain, COMM_EINVAL, "grads is NULL");
    expect_rejected(m.grads, NULL, 3, &plain, COMM_EINVAL, "counts is NULL");
    expect_rejected(m.grads, counts, -1, &plain, COMM_EINVAL, "-1 parameters");
    expect_rejected(m.grads, counts, 3, &bf16, COMM_EINVAL, "bf16 wire needs device gradients");
    expect_rejected(m.grads, counts, 3, &f64, COMM_EINVAL, "wire dtype 1");
    float *holes[] = {m.grads[0], NULL, NULL};
    expect_rejected(holes, counts, 3, &plain, COMM_EINVAL, "gradient 2 of 8 floats is NULL");
    char err[320];
    assert_int_equal(comm_reducer_new(comm_test_group, m.grads, counts, 3, NULL, NULL, err, sizeof err), COMM_EINVAL);
    assert_non_null(strstr(err, "output pointer"));

    if (comm_size(comm_test_group) > 1) {
        /* One rank's bad argument stops all of them; the others are pointed at it. */
        const int bad = comm_rank(comm_test_group) == 1;
        expect_rejected(m.grads, counts, bad ? -1 : 3, &plain, COMM_EINVAL, bad ? "-1 parameters" : "another rank");
        /* Ranks that would build different buckets. */
        const size_t other[] = {4, 0, 9};
        expect_rejected(m.grads, bad ? other : counts, 3, &plain, COMM_EINVAL, "different parameter counts");
    }
    comm_reducer_free(NULL);
    model_free(&m);
}

/* Work that takes time and no memory: the stand-in for backward's kernels. The accumulator is
 * volatile so that the compiler cannot fold the loop away. */
static void busy(long units)
{
    volatile double acc = 1.0;
    for (long u = 0; u < units; u++)
        acc = acc * 0.9999999 + 1e-7;
}

/* Units of busy() per second on this machine now, the same on every rank (their mean). */
static double busy_rate(void)
{
    char err[320];
    double best = 0;
    for (int t = 0; t < 3; t++) {
        double t0 = comm_test_now();
        busy(2000000);
        double dt = comm_test_now() - t0;
        if (dt > 0 && 2000000 / dt > best)
            best = 2000000 / dt;
    }
    assert_int_equal(comm_allreduce(comm_test_group, &best, 1, COMM_F64, COMM_AVG, err, sizeof err), COMM_OK);
    return best;
}

/* For code that runs outside cmocka's checks too (the bench): a failure ends every rank. */
static void check_or_abort(int rc, const char *err)
{
    if (rc) {
        fprintf(stderr, "test_reducer: %s\n", err);
        comm_abort(comm_test_group, 1);
    }
}

static void sleep_s(double secs)
{
    struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A backward of `backward_s` seconds spread over the parameters by size, producing each gradient and
 * reporting it ready as it goes; returns the step's seconds (backward + finish). rate > 0: the time is
 * busy() work at that many units per second, which competes with communication for the cores; rate 0:
 * it is spent asleep, as by a backward that leaves cores free. The bench's gradients are cheap to
 * make (their values do not matter there): backward's time is what it asks for. */
static double simulated_step(comm_reducer *r, model *m, int cycle, double rate, double backward_s, size_t total,
                             int cheap)
{
    char err[320];
    double t0 = comm_test_now();
    comm_reducer_begin(r);
    for (int i = m->n - 1; i >= 0; i--) {
        double share = backward_s * (double)m->counts[i] / (double)total;
        if (rate > 0)
            busy((long)(rate * share));
        else
            sleep_s(share);
        if (cheap)
            for (size_t j = 0; j < m->counts[i]; j++)
                m->grads[i][j] = (float)((j + (size_t)cycle) & 15);
        else
            fill_param(m, cycle, i);
        comm_reducer_ready(r, i);
    }
    check_or_abort(comm_reducer_finish(r, err, sizeof err), err);
    return comm_test_now() - t0;
}

/* n parameters: weights of `big` floats at even indices, biases of 256 floats at odd ones. */
static size_t *layered_counts(int n, size_t big)
{
    size_t *c = malloc((size_t)n * sizeof *c);
    assert_non_null(c);
    for (int i = 0; i < n; i++)
        c[i] = i % 2 ? 256 : big;
    return c;
}

/* The buckets start during backward, and finish waits for less than the communication took, in the
 * best of 3 steps: a 50 ms backward leaves the communication thread (8 MB, a few ms) time to run even
 * on a loaded 2-core machine. Steps whose all-reduces took under 2 ms are too short to judge. */
COMM_TEST(test_overlap_hides_comm)
{
    const int n = 32;
    size_t *counts = layered_counts(n, 128 * 1024);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += counts[i];
    model m = model_make(counts, n);
    comm_reducer *r = reducer_make(&m, 256 * 1024, 1024 * 1024, 1);
    const double rate = busy_rate();
    double best = -1;
    for (int t = 0; t < 3; t++) {
        simulated_step(r, &m, 50 + t, rate, 0.05, total, 0);
        assert_averaged(&m, 50 + t);
        comm_reducer_stats s;
        comm_reducer_stats_get(r, &s);
        if (comm_reducer_overlap(r)) {
            assert_true(s.early == s.buckets);
            if (s.comm_s >= 0.002 && 1 - s.wait_s / s.comm_s > best)
                best = 1 - s.wait_s / s.comm_s;
        }
    }
    if (best > -1) {
        printf("test_reducer: rank %d: %.0f%% of the communication hidden behind a simulated 50 ms backward\n",
               comm_rank(comm_test_group), 100 * best);
        assert_true(best > 0);
    }
    comm_reducer_free(r);
    model_free(&m);
    free(counts);
}

#ifdef EMPD_HAVE_NCCL
/* Device gradients through NCCL when every rank has a GPU; without one, init fails on every rank alike. */
COMM_TEST(test_nccl)
{
    char err[320];
    comm_nccl *nc = NULL;
    if (comm_nccl_init(comm_test_group, &nc, err, sizeof err)) {
        assert_null(nc);
        return;
    }
    model m = model_make(ASSORTED, N_ASSORTED);
    float **dev = calloc(N_ASSORTED, sizeof *dev);
    assert_non_null(dev);
    for (int i = 0; i < N_ASSORTED; i++)
        if (ASSORTED[i])
            assert_int_equal(cudaMalloc((void **)&dev[i], ASSORTED[i] * sizeof(float)), cudaSuccess);
    comm_reducer_opts o = {.bucket_bytes = 4096, .first_bucket_bytes = 1024, .overlap = 1, .nccl = nc};
    comm_reducer *r = NULL;
    if (comm_reducer_new(comm_test_group, dev, ASSORTED, N_ASSORTED, &o, &r, err, sizeof err))
        fail_msg("comm_reducer_new: %s", err);
    int order[N_ASSORTED];
    for (int cycle = 60; cycle < 63; cycle++) {
        model_fill(&m, cycle);
        shuffled(order, N_ASSORTED, (unsigned)(comm_rank(comm_test_group) * 31 + cycle));
        comm_reducer_begin(r);
        for (int k = 0; k < N_ASSORTED; k++) {
            int i = order[k];
            if (ASSORTED[i])
                assert_int_equal(cudaMemcpy(dev[i], m.grads[i], ASSORTED[i] * sizeof(float), cudaMemcpyHostToDevice),
                                 cudaSuccess);
            comm_reducer_ready(r, i);
        }
        if (comm_reducer_finish(r, err, sizeof err))
            fail_msg("comm_reducer_finish: %s", err);
        for (int i = 0; i < N_ASSORTED; i++)
            if (ASSORTED[i])
                assert_int_equal(cudaMemcpy(m.grads[i], dev[i], ASSORTED[i] * sizeof(float), cudaMemcpyDeviceToHost),
                                 cudaSuccess);
        /* ncclAvg scales by 1/size before or after summing: with 2 ranks, a power of 2, the same bits. */
        assert_averaged(&m, cycle);
    }
    comm_reducer_free(r);
    comm_reducer_opts b = o;
    b.wire = COMM_BF16;
    expect_rejected(dev, ASSORTED, N_ASSORTED, &b, COMM_ENOTSUP, "bf16 wire needs a cast kernel");
    for (int i = 0; i < N_ASSORTED; i++)
        cudaFree(dev[i]);
    free(dev);
    model_free(&m);
    assert_int_equal(comm_nccl_destroy(nc, err, sizeof err), COMM_OK);
}
#endif

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The slowest rank's value, then the median over iterations. */
static double median_of_max(double *v, int iters)
{
    char err[320];
    check_or_abort(comm_allreduce(comm_test_group, v, (size_t)iters, COMM_F64, COMM_MAX, err, sizeof err), err);
    qsort(v, (size_t)iters, sizeof *v, cmp_double);
    return v[iters / 2];
}

/* A model of 64 parameters (100 MB of gradients; smoke: 256 KB), default buckets; its backward takes
 * twice as long as one all-reduce of all its gradients. */
static void run_bench(int smoke)
{
    char err[320];
    const int n = 64, iters = smoke ? 3 : 9;
    size_t *counts = layered_counts(n, smoke ? 2048 : 781000);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += counts[i];
    const double mb = (double)total * sizeof(float) / 1e6;
    model m = model_make(counts, n);
    float *flat = malloc(total * sizeof *flat);
    check_or_abort(!flat, "out of memory");
    for (size_t j = 0; j < total; j++)
        flat[j] = (float)(j % 7);
    comm_reducer *r[2];
    for (int overlap = 0; overlap < 2; overlap++) {
        comm_reducer_opts o = {.overlap = overlap, .first_bucket_bytes = smoke ? 1024 : 0,
                               .bucket_bytes = smoke ? 16384 : 0};
        check_or_abort(comm_reducer_new(comm_test_group, m.grads, counts, n, &o, &r[overlap], err, sizeof err), err);
    }
    double raw[16], red[16], step[2][16], hidden[16];
    for (int it = -1; it < iters; it++) {
        comm_barrier(comm_test_group, err, sizeof err);
        double t0 = comm_test_now();
        check_or_abort(comm_allreduce(comm_test_group, flat, total, COMM_F32, COMM_AVG, err, sizeof err), err);
        double t1 = comm_test_now();
        comm_barrier(comm_test_group, err, sizeof err);
        double t2 = comm_test_now();
        comm_reducer_begin(r[1]);
        for (int i = n - 1; i >= 0; i--)
            comm_reducer_ready(r[1], i);
        check_or_abort(comm_reducer_finish(r[1], err, sizeof err), err);
        if (it >= 0) {
            raw[it] = t1 - t0;
            red[it] = comm_test_now() - t2;
        }
    }
    const double t_raw = median_of_max(raw, iters), t_red = median_of_max(red, iters);
    const double backward_s = 2 * t_raw;
    /* kind 0: backward computes on the cores the communication needs too; 1: it leaves them free. */
    double share[2], t_on[2], t_off[2];
    for (int kind = 0; kind < 2; kind++) {
        const double rate = kind ? 0 : busy_rate();
        for (int it = -1; it < iters; it++)
            for (int overlap = 0; overlap < 2; overlap++) {
                comm_barrier(comm_test_group, err, sizeof err);
                double t = simulated_step(r[overlap], &m, it + 100, rate, backward_s, total, 1);
                comm_reducer_stats s;
                comm_reducer_stats_get(r[overlap], &s);
                if (it >= 0) {
                    step[overlap][it] = t;
                    /* The exposed share, as a max over ranks below: the worse rank's. */
                    if (overlap)
                        hidden[it] = s.comm_s > 0 ? s.wait_s / s.comm_s : 1;
                }
            }
        const double exposed = median_of_max(hidden, iters);
        share[kind] = exposed < 1 ? 100 * (1 - exposed) : 0;
        t_off[kind] = median_of_max(step[0], iters);
        t_on[kind] = median_of_max(step[1], iters);
    }
    if (comm_rank(comm_test_group) == 0) {
        const char *tag = smoke ? "_smoke" : "";
        const int size = comm_size(comm_test_group);
        printf("reducer bench: %.1f MB of gradients in %d parameters, %d buckets, simulated backward %.1f ms on %d "
               "ranks\n",
               mb, n, comm_reducer_buckets(r[1]), backward_s * 1e3, size);
        /* Without overlap nothing is hidden, by construction: the peer is 0 and the share stands alone.
         * On a machine with no core to spare, overlap can only hide waiting: the step then should not
         * get slower (goal <= 1); with cores free it should approach max(backward, comm). */
        for (int kind = 0; kind < 2; kind++) {
            const char *k = kind ? "_idle" : "";
            printf("bench: reducer_overlap%s%s_%dranks ours=%.1f peer=0 unit=%%hidden ratio=%.1f goal=>=50\n", k, tag,
                   size, share[kind], share[kind]);
            printf("bench: reducer_step%s%s_%dranks ours=%.2f peer=%.2f unit=ms ratio=%.3f goal=<=%s\n", k, tag, size,
                   t_on[kind] * 1e3, t_off[kind] * 1e3, t_on[kind] / t_off[kind], kind ? "0.8" : "1");
        }
        printf("bench: reducer_allreduce%s_%dranks ours=%.0f peer=%.0f unit=MB/s ratio=%.3f goal=>=0.9\n", tag, size,
               mb / t_red, mb / t_raw, t_raw / t_red);
    }
    comm_reducer_free(r[0]);
    comm_reducer_free(r[1]);
    free(flat);
    model_free(&m);
    free(counts);
}

int main(int argc, char **argv)
{
    char err[512];
    if (comm_init(&argc, &argv, &comm_test_group, err, sizeof err)) {
        fprintf(stderr, "test_reducer: %s\n", err);
        return 1;
    }
    int failed = 0;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        run_bench(argc > 2 && !strcmp(argv[2], "--smoke"));
    } else {
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(test_layout, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_average_in_any_order, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_overlap_off_same_bits, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_unready_params_reduced, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_beginless_backward, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_misuse_reported, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_bad_arguments, comm_test_abort_after_failure),
            cmocka_unit_test_setup(test_overlap_hides_comm, comm_test_abort_after_failure),
#ifdef EMPD_HAVE_NCCL
            cmocka_unit_test_setup(test_nccl, comm_test_abort_after_failure),
#endif
        };
        char name[64];
        snprintf(name, sizeof name, "reducer rank %d of %d", comm_rank(comm_test_group), comm_size(comm_test_group));
        failed = _cmocka_run_group_tests(name, tests, sizeof tests / sizeof tests[0], NULL, comm_test_abort_after_failure);
        int64_t total = failed;
        check_or_abort(comm_allreduce(comm_test_group, &total, 1, COMM_I64, COMM_SUM, err, sizeof err), err);
        failed = total > 0;
    }
    if (comm_finalize(comm_test_group, err, sizeof err)) {
        fprintf(stderr, "test_reducer: %s\n", err);
        return 1;
    }
    return failed ? 1 : 0;
}
