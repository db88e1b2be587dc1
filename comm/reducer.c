/* Gradient buckets all-reduced in order while backward runs: host buffers through the group on a
 * communication thread, or device buffers through NCCL. */
#include <pthread.h>
#include <sys/prctl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm/reducer.h"
#include "comm/comm_internal.h"

#ifdef EMPD_HAVE_NCCL
#include <cuda_runtime_api.h>
#include <nccl.h>
#endif

#define REDUCER_BUCKET_DEFAULT ((size_t)25 * 1024 * 1024)
#define REDUCER_FIRST_BUCKET_DEFAULT ((size_t)1024 * 1024)
/* Bucket buffers start on cache lines, so packing copies run at full speed. */
#define REDUCER_ALIGN_FLOATS 16

typedef struct {
    int first, count; /* parameters first, first-1, ..., first-count+1 */
    size_t floats;
    float *buf;       /* packed f32 buffer; NULL for one parameter (reduced in place) and on NCCL */
    int pending;      /* parameters of this backward not ready yet */
} bucket;

struct comm_reducer {
    comm_group *g;
    int rank, size, n;
    float **grads;
    size_t *counts;
    int *bucket_of;        /* parameter -> bucket */
    size_t *offset;        /* parameter -> first float in its bucket's buffer */
    unsigned *ready_cycle; /* parameter -> the last cycle it was ready in */
    bucket *b;
    int nb;
    float *arena;
    int overlap;  /* buckets start from ready() */
    /* Backward runs (begin..finish): the communication thread's all-reduces wait by polling with sleeps
     * and leave the core to it; once finish waits, nothing computes and they poll flat out. Measured on
     * 2 ranks x 2 cores (tests/bench/run overlap): this took the trainer's step with overlap from
     * 1.08-1.15x to ~1.0x the step without, where Open MPI's blocking all-reduce spun a core. */
    atomic_int computing;
    int threaded; /* host buckets run on `thread` (else on finish's caller) */
    comm_nccl *nccl;
    void *compute_stream;

    pthread_mutex_t mu;
    pthread_cond_t work, progress;
    pthread_t thread;
    /* All below under mu. */
    int stop;
    unsigned cycle;
    int armed;
    int launched, done; /* buckets of this backward started, and finished (host) */
    int failed;         /* code of the first failed bucket; later buckets are skipped */
    char fail_line[384];
    int misused;
    char misuse_line[160];
    double comm_s;
    comm_reducer_stats last;
#ifdef EMPD_HAVE_NCCL
    cudaEvent_t inputs_ready; /* recorded on compute_stream when a bucket starts */
    cudaEvent_t *timing;      /* start and end of bucket k: [2k], [2k+1], on the NCCL stream */
#endif
};

/* An inner line without its "comm: " prefix, to nest it in ours. */
static const char *inner(const char *line) { return strncmp(line, "comm: ", 6) ? line : line + 6; }

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Under mu: the first failure of this backward is the one finish reports. */
static void record_failure(comm_reducer *r, int k, int code, const char *line)
{
    if (r->failed)
        return;
    r->failed = code;
    snprintf(r->fail_line, sizeof r->fail_line, "comm: reducer bucket %d (%zu floats) all-reduce failed on rank %d: %s",
             k, r->b[k].floats, r->rank, inner(line));
}

static void record_misuse(comm_reducer *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void record_misuse(comm_reducer *r, const char *fmt, ...)
{
    if (r->misused)
        return;
    r->misused = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->misuse_line, sizeof r->misuse_line, fmt, ap);
    va_end(ap);
}

/* ---- Host buckets ------------------------------------------------------------------------------- */

/* Packs bucket k, all-reduces it, and puts the averages back; *secs gets the time from start to done.
 * Packing here rather than in ready() keeps the copies off the hook's thread (backward's critical
 * path); measured on 2 ranks, both placements gave the same step times. */
static int reduce_host(comm_reducer *r, int k, double *secs, char *line, size_t len)
{
    const bucket *b = &r->b[k];
    double t0 = now_s();
    if (b->buf)
        for (int j = 0; j < b->count; j++) {
            int i = b->first - j;
            if (r->counts[i])
                memcpy(b->buf + r->offset[i], r->grads[i], r->counts[i] * sizeof(float));
        }
    float *data = b->buf ? b->buf : r->grads[b->first];
    /* Always the nonblocking kind, threaded or not: every rank must issue the same kind. */
    int code = comm_allreduce_beside(r->g, data, b->floats, COMM_F32, COMM_AVG, &r->computing, line, len);
    if (!code && b->buf)
        for (int j = 0; j < b->count; j++) {
            int i = b->first - j;
            if (r->counts[i])
                memcpy(r->grads[i], b->buf + r->offset[i], r->counts[i] * sizeof(float));
        }
    *secs = now_s() - t0;
    return code;
}

/* The communication thread: runs started buckets in order until told to stop with none left. */
static void *comm_main(void *arg)
{
    comm_reducer *r = arg;
    /* The polls of comm_allreduce_beside sleep 1..64 us; Linux's default timer slack (50 us) would
     * stretch every one of them to ~50 us and the collective's progress with them. */
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stop && r->done == r->launched)
            pthread_cond_wait(&r->work, &r->mu);
        if (r->done == r->launched)
            break;
        int k = r->done;
        int skip = r->failed;
        pthread_mutex_unlock(&r->mu);
        double secs = 0;
        char line[320];
        int code = skip ? 0 : reduce_host(r, k, &secs, line, sizeof line);
        pthread_mutex_lock(&r->mu);
        r->comm_s += secs;
        if (code)
            record_failure(r, k, code, line);
        r->done++;
        pthread_cond_broadcast(&r->progress);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

/* ---- Device buckets ----------------------------------------------------------------------------- */

#ifdef EMPD_HAVE_NCCL

static int cuda_line(char *line, size_t len, const char *what, cudaError_t e)
{
    return comm_fail(line, len, COMM_ECUDA, "comm: %s: %s", what, cudaGetErrorString(e));
}

/* Under mu. Orders the NCCL stream after backward's work so far, then one all-reduce per parameter in
 * one NCCL group: NCCL fuses them, and no packing copy is needed. */
static int launch_nccl(comm_reducer *r, int k, char *line, size_t len)
{
    const bucket *b = &r->b[k];
    cudaStream_t s = comm_nccl_stream(r->nccl);
    cudaError_t e = cudaSetDevice(comm_nccl_device(r->nccl));
    if (e != cudaSuccess)
        return cuda_line(line, len, "cudaSetDevice", e);
    e = cudaEventRecord(r->inputs_ready, (cudaStream_t)r->compute_stream);
    if (e != cudaSuccess)
        return cuda_line(line, len, "cudaEventRecord on the compute stream", e);
    e = cudaStreamWaitEvent(s, r->inputs_ready, 0);
    if (e != cudaSuccess)
        return cuda_line(line, len, "cudaStreamWaitEvent of the NCCL stream", e);
    e = cudaEventRecord(r->timing[2 * k], s);
    if (e != cudaSuccess)
        return cuda_line(line, len, "cudaEventRecord on the NCCL stream", e);
    ncclResult_t nr = ncclGroupStart();
    if (nr != ncclSuccess)
        return comm_fail(line, len, COMM_ENCCL, "comm: ncclGroupStart: %s", ncclGetErrorString(nr));
    int code = COMM_OK;
    for (int j = 0; j < b->count && !code; j++) {
        int i = b->first - j;
        if (r->counts[i])
            code = comm_nccl_allreduce(r->nccl, r->grads[i], r->counts[i], COMM_F32, COMM_AVG, line, len);
    }
    nr = ncclGroupEnd();
    if (nr != ncclSuccess && !code)
        code = comm_fail(line, len, COMM_ENCCL, "comm: ncclGroupEnd: %s", ncclGetErrorString(nr));
    if (code)
        return code;
    e = cudaEventRecord(r->timing[2 * k + 1], s);
    if (e != cudaSuccess)
        return cuda_line(line, len, "cudaEventRecord on the NCCL stream", e);
    return COMM_OK;
}

/* Waits for every launched bucket, then sums their device times. */
static void wait_nccl(comm_reducer *r)
{
    char line[320];
    int code = comm_nccl_sync(r->nccl, line, sizeof line);
    pthread_mutex_lock(&r->mu);
    if (code && !r->failed) {
        r->failed = code;
        snprintf(r->fail_line, sizeof r->fail_line, "comm: reducer: %d buckets launched, then: %s", r->launched,
                 inner(line));
    }
    for (int k = 0; k < r->launched && !r->failed; k++) {
        float ms = 0;
        if (cudaEventElapsedTime(&ms, r->timing[2 * k], r->timing[2 * k + 1]) == cudaSuccess)
            r->comm_s += ms * 1e-3;
    }
    pthread_mutex_unlock(&r->mu);
}

static int setup_nccl(comm_reducer *r, char *err, size_t errlen)
{
    cudaError_t e = cudaSetDevice(comm_nccl_device(r->nccl));
    if (e == cudaSuccess)
        e = cudaEventCreateWithFlags(&r->inputs_ready, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        r->inputs_ready = NULL;
        return comm_fail(err, errlen, COMM_ECUDA, "comm: reducer on rank %d: cudaEventCreate: %s", r->rank,
                    cudaGetErrorString(e));
    }
    r->timing = calloc(2 * (size_t)r->nb + 1, sizeof *r->timing);
    if (!r->timing)
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: reducer on rank %d: out of memory for CUDA events", r->rank);
    for (int k = 0; k < 2 * r->nb; k++) {
        e = cudaEventCreate(&r->timing[k]);
        if (e != cudaSuccess) {
            r->timing[k] = NULL;
            return comm_fail(err, errlen, COMM_ECUDA, "comm: reducer on rank %d: cudaEventCreate: %s", r->rank,
                        cudaGetErrorString(e));
        }
    }
    return COMM_OK;
}

static void release_nccl(comm_reducer *r)
{
    if (r->inputs_ready)
        cudaEventDestroy(r->inputs_ready);
    if (r->timing)
        for (int k = 0; k < 2 * r->nb && r->timing[k]; k++)
            cudaEventDestroy(r->timing[k]);
    free(r->timing);
}

#endif

/* ---- Both ----------------------------------------------------------------------------------------- */

/* Under mu: starts, in bucket order, every bucket whose parameters are all ready. */
static void launch_in_order(comm_reducer *r)
{
    int from = r->launched;
    while (r->launched < r->nb && r->b[r->launched].pending == 0) {
#ifdef EMPD_HAVE_NCCL
        if (r->nccl && !r->failed) {
            char line[320];
            int code = launch_nccl(r, r->launched, line, sizeof line);
            if (code)
                record_failure(r, r->launched, code, line);
        }
#endif
        r->launched++;
    }
    if (r->threaded && r->launched > from)
        pthread_cond_signal(&r->work);
}

/* Under mu: a fresh backward. */
static void arm(comm_reducer *r)
{
    if (++r->cycle == 0) {
        memset(r->ready_cycle, 0, (size_t)r->n * sizeof *r->ready_cycle);
        r->cycle = 1;
    }
    for (int k = 0; k < r->nb; k++)
        r->b[k].pending = r->b[k].count;
    r->launched = r->done = 0;
    atomic_store(&r->computing, 1);
    r->failed = 0;
    r->fail_line[0] = '\0';
    r->misused = 0;
    r->misuse_line[0] = '\0';
    r->comm_s = 0;
    r->armed = 1;
}

void comm_reducer_begin(comm_reducer *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->armed)
        record_misuse(r, "comm: reducer on rank %d: begin called twice without finish; the second had no effect",
                      r->rank);
    else
        arm(r);
    pthread_mutex_unlock(&r->mu);
}

void comm_reducer_ready(comm_reducer *r, int i)
{
    pthread_mutex_lock(&r->mu);
    if (!r->armed) {
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (i < 0 || i >= r->n) {
        record_misuse(r, "comm: reducer on rank %d: ready(%d) is outside parameters 0..%d; ignored", r->rank, i,
                      r->n - 1);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    if (r->ready_cycle[i] == r->cycle) {
        record_misuse(r, "comm: reducer on rank %d: parameter %d was reported ready twice in one backward", r->rank,
                      i);
        pthread_mutex_unlock(&r->mu);
        return;
    }
    r->ready_cycle[i] = r->cycle;
    r->b[r->bucket_of[i]].pending--;
    if (r->overlap)
        launch_in_order(r);
    pthread_mutex_unlock(&r->mu);
}

int comm_reducer_finish(comm_reducer *r, char *err, size_t errlen)
{
    double t0 = now_s();
    pthread_mutex_lock(&r->mu);
    if (!r->armed)
        arm(r);
    r->armed = 0;
    atomic_store(&r->computing, 0);
    const int early = r->launched;
    const int here = r->size > 1 && !r->threaded && !r->nccl;
    if (r->size > 1 && !here) {
        for (int k = early; k < r->nb; k++)
            r->b[k].pending = 0;
        launch_in_order(r);
    }
    pthread_mutex_unlock(&r->mu);

    /* Without the thread (and off NCCL), nothing started before: the buckets run here, in order. */
    for (int k = 0; here && k < r->nb; k++) {
        double secs = 0;
        char line[320];
        int code = r->failed ? 0 : reduce_host(r, k, &secs, line, sizeof line);
        pthread_mutex_lock(&r->mu);
        r->comm_s += secs;
        if (code)
            record_failure(r, k, code, line);
        r->launched = r->done = k + 1;
        pthread_mutex_unlock(&r->mu);
    }
#ifdef EMPD_HAVE_NCCL
    if (r->nccl && r->size > 1)
        wait_nccl(r);
#endif
    pthread_mutex_lock(&r->mu);
    while (r->threaded && r->done < r->nb)
        pthread_cond_wait(&r->progress, &r->mu);
    pthread_mutex_unlock(&r->mu);

    pthread_mutex_lock(&r->mu);
    r->last.comm_s = r->comm_s;
    r->last.wait_s = now_s() - t0;
    r->last.buckets = r->size > 1 ? r->nb : 0;
    r->last.early = r->size > 1 ? early : 0;
    int code = COMM_OK;
    if (r->failed)
        code = comm_fail(err, errlen, r->failed, "%s", r->fail_line);
    else if (r->misused)
        code = comm_fail(err, errlen, COMM_EINVAL, "%s", r->misuse_line);
    pthread_mutex_unlock(&r->mu);
    return code;
}

/* Only finish writes `last`, so its caller reads it without the lock. */
void comm_reducer_stats_get(const comm_reducer *r, comm_reducer_stats *s) { *s = r->last; }

int comm_reducer_buckets(const comm_reducer *r) { return r->nb; }
int comm_reducer_overlap(const comm_reducer *r) { return r->overlap; }

int comm_reducer_bucket_params(const comm_reducer *r, int k, int *first, int *count)
{
    if (k < 0 || k >= r->nb)
        return COMM_EINVAL;
    *first = r->b[k].first;
    *count = r->b[k].count;
    return COMM_OK;
}

/* ---- Setup ---------------------------------------------------------------------------------------- */

/* This rank's own view of the arguments: 0, or a code with its line. */
static int check_args(comm_group *g, float *const *grads, const size_t *counts, int n, const comm_reducer_opts *o,
                      comm_reducer **out, char *err, size_t errlen)
{
    const int rank = comm_rank(g);
    if (!out)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer on rank %d: the output pointer is NULL", rank);
    if (n < 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer on rank %d: %d parameters (need n >= 0)", rank, n);
    if (n > 0 && (!grads || !counts))
        return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer on rank %d: %s is NULL for %d parameters", rank,
                    !grads ? "grads" : "counts", n);
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (counts[i] && !grads[i])
            return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer on rank %d: gradient %d of %zu floats is NULL", rank,
                        i, counts[i]);
        /* Halved: the bucket buffers hold a second copy. */
        if (counts[i] > (SIZE_MAX / sizeof(float) - total) / 2)
            return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer on rank %d: gradient %d of %zu floats is too large",
                        rank, i, counts[i]);
        total += counts[i];
    }
    if (o->wire != COMM_F32 && o->wire != COMM_BF16)
        return comm_fail(err, errlen, COMM_EINVAL,
                    "comm: reducer on rank %d: wire dtype %d is neither COMM_F32 nor COMM_BF16", rank, (int)o->wire);
    if (o->wire == COMM_BF16 && !o->nccl)
        return comm_fail(err, errlen, COMM_EINVAL,
                    "comm: reducer on rank %d: the bf16 wire needs device gradients through NCCL (opts.nccl); host "
                    "gradients go as f32",
                    rank);
    if (o->wire == COMM_BF16)
        return comm_fail(err, errlen, COMM_ENOTSUP,
                    "comm: reducer on rank %d: the bf16 wire needs a cast kernel this build does not have (no nvcc); "
                    "use COMM_F32",
                    rank);
#ifndef EMPD_HAVE_NCCL
    if (o->nccl)
        return comm_fail(err, errlen, COMM_ENOTSUP, "comm: reducer on rank %d: this build has no NCCL backend", rank);
#endif
    return COMM_OK;
}

/* FNV-1a over what decides the collectives: the counts, the bucket limits, host or device. */
static uint64_t layout_hash(const size_t *counts, int n, const comm_reducer_opts *o)
{
    uint64_t h = 1469598103934665603ull;
    const uint64_t head[4] = {(uint64_t)n, o->bucket_bytes ? o->bucket_bytes : REDUCER_BUCKET_DEFAULT,
                              o->first_bucket_bytes ? o->first_bucket_bytes : REDUCER_FIRST_BUCKET_DEFAULT,
                              o->nccl != NULL};
    for (int i = 0; i < 4 + n; i++) {
        uint64_t v = i < 4 ? head[i] : counts[i - 4];
        for (int byte = 0; byte < 8; byte++)
            h = (h ^ ((v >> (8 * byte)) & 0xff)) * 1099511628211ull;
    }
    return h;
}

/* Every rank learns the worst code and whether the layouts match, so all return alike. */
static int agree(comm_group *g, int code, uint64_t hash, char *err, size_t errlen)
{
    const int64_t h = (int64_t)(hash >> 2);
    int64_t v[3] = {code, h, -h};
    char line[320];
    int rc = comm_allreduce(g, v, 3, COMM_I64, COMM_MAX, line, sizeof line);
    if (rc)
        return comm_fail(err, errlen, rc, "comm: reducer setup: %s", inner(line));
    if (code)
        return code;
    if (v[0])
        return comm_fail(err, errlen, (int)v[0],
                    "comm: reducer on rank %d: another rank rejected its arguments (%s); its line says why",
                    comm_rank(g), comm_strerror((int)v[0]));
    if (v[1] != -v[2])
        return comm_fail(err, errlen, COMM_EINVAL,
                    "comm: reducer on rank %d: the ranks passed different parameter counts or bucket sizes; every "
                    "rank must build the same model",
                    comm_rank(g));
    return COMM_OK;
}

/* DDP's rule, from the last parameter: a bucket closes once it holds at least its limit. */
static int make_buckets(comm_reducer *r, size_t first_limit, size_t limit)
{
    r->b = calloc(r->n ? (size_t)r->n : 1, sizeof *r->b);
    if (!r->b)
        return COMM_ENOMEM;
    size_t bytes = 0;
    for (int i = r->n - 1; i >= 0; i--) {
        bucket *b = &r->b[r->nb];
        if (b->count == 0)
            b->first = i;
        r->bucket_of[i] = r->nb;
        r->offset[i] = b->floats;
        b->count++;
        b->floats += r->counts[i];
        bytes += r->counts[i] * sizeof(float);
        if (bytes >= (r->nb ? limit : first_limit) || i == 0) {
            r->nb++;
            bytes = 0;
        }
    }
    return COMM_OK;
}

/* Buffers for buckets of several parameters (host, more than one rank). */
static int make_buffers(comm_reducer *r)
{
    size_t total = 0;
    for (int k = 0; k < r->nb; k++)
        if (r->b[k].count > 1)
            total += (r->b[k].floats + REDUCER_ALIGN_FLOATS - 1) / REDUCER_ALIGN_FLOATS * REDUCER_ALIGN_FLOATS;
    if (!total)
        return COMM_OK;
    if (posix_memalign((void **)&r->arena, REDUCER_ALIGN_FLOATS * sizeof(float), total * sizeof(float)))
        return COMM_ENOMEM;
    float *p = r->arena;
    for (int k = 0; k < r->nb; k++)
        if (r->b[k].count > 1) {
            r->b[k].buf = p;
            p += (r->b[k].floats + REDUCER_ALIGN_FLOATS - 1) / REDUCER_ALIGN_FLOATS * REDUCER_ALIGN_FLOATS;
        }
    return COMM_OK;
}

static int setup(comm_reducer *r, float *const *grads, const size_t *counts, const comm_reducer_opts *o, char *err,
                 size_t errlen)
{
    const size_t n = (size_t)r->n;
    r->grads = calloc(n ? n : 1, sizeof *r->grads);
    r->counts = calloc(n ? n : 1, sizeof *r->counts);
    r->bucket_of = calloc(n ? n : 1, sizeof *r->bucket_of);
    r->offset = calloc(n ? n : 1, sizeof *r->offset);
    r->ready_cycle = calloc(n ? n : 1, sizeof *r->ready_cycle);
    if (!r->grads || !r->counts || !r->bucket_of || !r->offset || !r->ready_cycle)
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: reducer on rank %d: out of memory for %d parameters", r->rank,
                    r->n);
    if (n) {
        memcpy(r->grads, grads, n * sizeof *r->grads);
        memcpy(r->counts, counts, n * sizeof *r->counts);
    }
    if (make_buckets(r, o->first_bucket_bytes ? o->first_bucket_bytes : REDUCER_FIRST_BUCKET_DEFAULT,
                     o->bucket_bytes ? o->bucket_bytes : REDUCER_BUCKET_DEFAULT))
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: reducer on rank %d: out of memory for buckets", r->rank);
    if (r->size > 1 && !r->nccl && make_buffers(r))
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: reducer on rank %d: out of memory for bucket buffers", r->rank);
#ifdef EMPD_HAVE_NCCL
    if (r->nccl && r->size > 1)
        return setup_nccl(r, err, errlen);
#endif
    return COMM_OK;
}

static void release(comm_reducer *r)
{
#ifdef EMPD_HAVE_NCCL
    release_nccl(r);
#endif
    pthread_cond_destroy(&r->work);
    pthread_cond_destroy(&r->progress);
    pthread_mutex_destroy(&r->mu);
    free(r->arena);
    free(r->b);
    free(r->ready_cycle);
    free(r->offset);
    free(r->bucket_of);
    free(r->counts);
    free(r->grads);
    free(r);
}

int comm_reducer_new(comm_group *g, float *const *grads, const size_t *counts, int n, const comm_reducer_opts *opts,
                     comm_reducer **out, char *err, size_t errlen)
{
    if (out)
        *out = NULL;
    if (!g)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: reducer: the group is NULL");
    const comm_reducer_opts zero = {0};
    const comm_reducer_opts *o = opts ? opts : &zero;
    int code = check_args(g, grads, counts, n, o, out, err, errlen);
    comm_reducer *r = NULL;
    if (!code) {
        r = calloc(1, sizeof *r);
        if (!r || pthread_mutex_init(&r->mu, NULL)) {
            free(r);
            r = NULL;
            code = comm_fail(err, errlen, COMM_ENOMEM, "comm: reducer on rank %d: out of memory", comm_rank(g));
        }
    }
    if (r) {
        pthread_cond_init(&r->work, NULL);
        pthread_cond_init(&r->progress, NULL);
        r->g = g;
        r->rank = comm_rank(g);
        r->size = comm_size(g);
        r->n = n;
        r->nccl = o->nccl;
        r->compute_stream = o->compute_stream;
        code = setup(r, grads, counts, o, err, errlen);
    }
    code = agree(g, code, code ? 0 : layout_hash(counts, n, o), err, errlen);
    if (code) {
        if (r)
            release(r);
        return code;
    }
    r->overlap = o->overlap && r->size > 1;
    if (r->overlap && !r->nccl) {
        /* Without SERIALIZED the buckets may not run on another thread; a thread that cannot start
         * costs the overlap only: both ways run the same collectives in the same order. */
        r->threaded = comm_thread_level_of(g) >= COMM_THREAD_SERIALIZED &&
                      pthread_create(&r->thread, NULL, comm_main, r) == 0;
        r->overlap = r->threaded;
    }
    *out = r;
    return COMM_OK;
}

void comm_reducer_free(comm_reducer *r)
{
    if (!r)
        return;
    if (r->threaded) {
        pthread_mutex_lock(&r->mu);
        r->stop = 1;
        pthread_cond_signal(&r->work);
        pthread_mutex_unlock(&r->mu);
        pthread_join(r->thread, NULL);
    }
    release(r);
}
