/* NCCL backend: one communicator per group over the GPUs of its ranks, bootstrapped over the group
 * (MPI or TCP) and registered with the group's watchdog. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "comm/comm_internal.h"
#include "comm/comm_nccl.h"

#ifdef EMPD_HAVE_NCCL

#include <cuda_runtime_api.h>
#include <nccl.h>

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "comm: NCCL >= 2.14 is needed (ncclAvg, ncclBfloat16, ncclCommFinalize)"
#endif

struct comm_nccl {
    comm_group *g;
    ncclComm_t nccl; /* NULL once aborted after an error */
    cudaStream_t stream;
    int device;
    int rank;
    int hooked; /* registered with g's watchdog */
};

int comm_have_nccl(void) { return 1; }

static int cuda_fail(int rank, cudaError_t e, int code, char *err, size_t errlen, const char *what)
{
    return comm_fail(err, errlen, code, "comm: %s failed on rank %d: %s", what, rank, cudaGetErrorString(e));
}

static int nccl_fail(int rank, ncclResult_t r, ncclComm_t comm, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static int nccl_fail(int rank, ncclResult_t r, ncclComm_t comm, char *err, size_t errlen, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    const char *detail = ncclGetLastError(comm);
    return comm_fail(err, errlen, COMM_ENCCL, "comm: %s failed on rank %d: %s%s%s", what, rank,
                     ncclGetErrorString(r), detail && detail[0] ? ": " : "", detail ? detail : "");
}

static int aborted(const comm_nccl *n, char *err, size_t errlen)
{
    return comm_fail(err, errlen, COMM_ENCCL,
                     "comm: the NCCL communicator of rank %d was aborted after an earlier error; destroy it", n->rank);
}

int comm_nccl_probe(char *err, size_t errlen)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        /* Clear it, so that a later cudaGetLastError (ours or torch's) does not report this one. */
        cudaGetLastError();
        return comm_fail(err, errlen, COMM_ENOGPU, "comm: no GPU: cudaGetDeviceCount: %s", cudaGetErrorString(e));
    }
    if (count < 1)
        return comm_fail(err, errlen, COMM_ENOGPU, "comm: no GPU: cudaGetDeviceCount found 0 devices");
    return COMM_OK;
}

/* Every rank learns the worst code of all ranks, so that all of them stop together. A rank that did not
 * fail itself gets a line pointing at the one that did; a failing rank keeps its own line in err. */
static int agree(comm_group *g, int code, const char *step, char *err, size_t errlen)
{
    int64_t worst = code;
    char mpi_err[256];
    int rc = comm_allreduce(g, &worst, 1, COMM_I64, COMM_MAX, mpi_err, sizeof mpi_err);
    if (rc)
        return comm_fail(err, errlen, rc, "%s", mpi_err);
    if (code)
        return code;
    if (worst) {
        if (worst == COMM_ENOGPU)
            return comm_fail(err, errlen, COMM_ENOGPU,
                             "comm: no GPU on another rank; NCCL setup stopped at %s on rank %d", step,
                             comm_rank(g));
        return comm_fail(err, errlen, (int)worst,
                         "comm: NCCL setup stopped at %s on rank %d: another rank failed (%s); its line says why",
                         step, comm_rank(g), comm_strerror((int)worst));
    }
    return COMM_OK;
}

/* This rank's part of init that needs no other rank: device and stream. */
static int setup_local(comm_group *g, comm_nccl *n, char *err, size_t errlen)
{
    int code = comm_nccl_probe(err, errlen);
    if (code)
        return code;
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess)
        return cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaGetDeviceCount");
    n->device = comm_local_rank(g) % count;
    e = cudaSetDevice(n->device);
    if (e != cudaSuccess)
        return cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaSetDevice");
    e = cudaStreamCreateWithFlags(&n->stream, cudaStreamNonBlocking);
    if (e != cudaSuccess) {
        n->stream = NULL;
        return cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaStreamCreateWithFlags");
    }
    return COMM_OK;
}

/* Run by the watchdog or comm_abort before the job ends: kernels blocked on a dead peer stop. */
static void abort_before_end(void *arg)
{
    comm_nccl *n = arg;
    if (n->nccl)
        ncclCommAbort(n->nccl);
}

static void release(comm_nccl *n)
{
    if (!n)
        return;
    if (n->hooked)
        comm_watch_unhook(n->g, n);
    if (n->nccl)
        ncclCommAbort(n->nccl);
    if (n->stream)
        cudaStreamDestroy(n->stream);
    free(n);
}

int comm_nccl_init(comm_group *g, comm_nccl **out, char *err, size_t errlen)
{
    *out = NULL;
    const int rank = comm_rank(g);
    comm_nccl *n = calloc(1, sizeof *n);
    int code = COMM_OK;
    if (n) {
        n->g = g;
        n->rank = rank;
        code = setup_local(g, n, err, errlen);
    } else {
        code = comm_fail(err, errlen, COMM_ENOMEM, "comm: out of memory for the NCCL handle on rank %d", rank);
    }
    code = agree(g, code, "device setup", err, errlen);
    if (code) {
        release(n);
        return code;
    }

    struct {
        int64_t code;
        ncclUniqueId id;
    } msg = {0};
    if (rank == 0) {
        ncclResult_t r = ncclGetUniqueId(&msg.id);
        if (r != ncclSuccess)
            msg.code = nccl_fail(rank, r, NULL, err, errlen, "ncclGetUniqueId");
    }
    char line[256];
    code = comm_broadcast(g, &msg, sizeof msg, 0, line, sizeof line);
    if (code) {
        comm_fail(err, errlen, code, "%s", line);
    } else if (msg.code) {
        code = (int)msg.code;
        if (rank != 0)
            comm_fail(err, errlen, code, "comm: NCCL setup on rank %d: rank 0 could not make the unique id", rank);
    }
    if (code) {
        release(n);
        return code;
    }

    ncclResult_t r = ncclCommInitRank(&n->nccl, comm_size(g), msg.id, rank);
    if (r != ncclSuccess) {
        code = nccl_fail(rank, r, NULL, err, errlen, "ncclCommInitRank of %d ranks", comm_size(g));
        n->nccl = NULL;
    } else if (comm_watch_hook(g, abort_before_end, n)) {
        code = comm_fail(err, errlen, COMM_ENOMEM, "comm: rank %d: more than %d NCCL communicators on one group", rank,
                         COMM_WATCH_HOOKS);
    } else {
        n->hooked = 1;
    }
    code = agree(g, code, "ncclCommInitRank", err, errlen);
    if (code) {
        release(n);
        return code;
    }
    *out = n;
    return COMM_OK;
}

int comm_nccl_device(const comm_nccl *n) { return n->device; }
void *comm_nccl_stream(const comm_nccl *n) { return (void *)n->stream; }

static ncclDataType_t nccl_type(comm_dtype dt)
{
    switch (dt) {
    case COMM_F32: return ncclFloat32;
    case COMM_F64: return ncclFloat64;
    case COMM_I64: return ncclInt64;
    case COMM_BF16: return ncclBfloat16;
    }
    return ncclFloat32;
}

static ncclRedOp_t nccl_op(comm_op op)
{
    switch (op) {
    case COMM_SUM: return ncclSum;
    case COMM_AVG: return ncclAvg;
    case COMM_MAX: return ncclMax;
    case COMM_MIN: return ncclMin;
    }
    return ncclSum;
}

int comm_nccl_allreduce(comm_nccl *n, void *dev_buf, size_t count, comm_dtype dt, comm_op op, char *err,
                        size_t errlen)
{
    int code = comm_check_reduce("NCCL all-reduce", dt, op, err, errlen);
    if (code)
        return code;
    if (!dev_buf && count > 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: NCCL all-reduce of %zu %s on rank %d: buffer is NULL",
                         count, comm_dtype_noun(dt), n->rank);
    if (!n->nccl)
        return aborted(n, err, errlen);
    cudaError_t e = cudaSetDevice(n->device);
    if (e != cudaSuccess)
        return cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaSetDevice before ncclAllReduce");
    ncclResult_t r = ncclAllReduce(dev_buf, dev_buf, count, nccl_type(dt), nccl_op(op), n->nccl, n->stream);
    if (r != ncclSuccess)
        return nccl_fail(n->rank, r, n->nccl, err, errlen, "ncclAllReduce %s of %zu %s", comm_op_name(op), count,
                         comm_dtype_noun(dt));
    return COMM_OK;
}

/* An asynchronous NCCL error, or NCCL failing to say: the communicator is aborted, as NCCL requires. */
static int abort_after(comm_nccl *n, ncclResult_t r, const char *what, char *err, size_t errlen)
{
    int code = nccl_fail(n->rank, r, n->nccl, err, errlen, "%s", what);
    /* Off the watchdog's list first, so that it cannot abort the same communicator again. */
    comm_watch_unhook(n->g, n);
    n->hooked = 0;
    ncclCommAbort(n->nccl);
    n->nccl = NULL;
    return code;
}

/* Polls the stream and NCCL's asynchronous error instead of blocking in cudaStreamSynchronize, which
 * would wait forever for a peer that died; the group's watchdog keeps the deadline. */
int comm_nccl_sync(comm_nccl *n, char *err, size_t errlen)
{
    if (!n->nccl)
        return aborted(n, err, errlen);
    cudaError_t e = cudaSetDevice(n->device);
    if (e != cudaSuccess)
        return cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaSetDevice before waiting on the NCCL stream");
    int code = COMM_OK;
    long pause_ns = 1000;
    comm_watch_begin(n->g, COMM_WATCH_DEVICE, COMM_CALL_NCCL_SYNC, 0, 0);
    for (;;) {
        e = cudaStreamQuery(n->stream);
        ncclResult_t async = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(n->nccl, &async);
        if (r != ncclSuccess) {
            code = abort_after(n, r, "ncclCommGetAsyncError", err, errlen);
            break;
        }
        if (async != ncclSuccess && async != ncclInProgress) {
            code = abort_after(n, async, "an NCCL operation in flight", err, errlen);
            break;
        }
        if (e != cudaErrorNotReady)
            break;
        struct timespec ts = {0, pause_ns};
        nanosleep(&ts, NULL);
        pause_ns = pause_ns < 100000 ? pause_ns * 2 : 200000; /* at most 0.2 ms late, a few wakeups per ms */
    }
    comm_watch_end(n->g, COMM_WATCH_DEVICE);
    if (!code && e != cudaSuccess)
        code = cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "waiting on the NCCL stream (cudaStreamQuery)");
    return code;
}

int comm_nccl_destroy(comm_nccl *n, char *err, size_t errlen)
{
    if (!n)
        return COMM_OK;
    /* A communicator aborted after an error has nothing left to finalise. */
    int code = n->nccl ? comm_nccl_sync(n, err, errlen) : COMM_OK;
    if (!code && n->nccl) {
        ncclResult_t r = ncclCommFinalize(n->nccl);
        if (r != ncclSuccess)
            code = nccl_fail(n->rank, r, n->nccl, err, errlen, "ncclCommFinalize");
    }
    if (!code && n->nccl) {
        ncclResult_t r = ncclCommDestroy(n->nccl);
        n->nccl = NULL;
        if (r != ncclSuccess)
            code = nccl_fail(n->rank, r, NULL, err, errlen, "ncclCommDestroy");
    }
    if (n->stream) {
        cudaError_t e = cudaStreamDestroy(n->stream);
        n->stream = NULL;
        if (e != cudaSuccess && !code)
            code = cuda_fail(n->rank, e, COMM_ECUDA, err, errlen, "cudaStreamDestroy");
    }
    release(n);
    return code;
}

#else /* built without NCCL */

static int not_built(char *err, size_t errlen)
{
    return comm_fail(err, errlen, COMM_ENOTSUP,
                     "comm: this build has no NCCL backend (CMake found no CUDA toolkit or nccl.h; set NCCL_HOME "
                     "and reconfigure)");
}

int comm_have_nccl(void) { return 0; }
int comm_nccl_probe(char *err, size_t errlen) { return not_built(err, errlen); }

int comm_nccl_init(comm_group *g, comm_nccl **out, char *err, size_t errlen)
{
    (void)g;
    *out = NULL;
    return not_built(err, errlen);
}

int comm_nccl_device(const comm_nccl *n)
{
    (void)n;
    return -1;
}

void *comm_nccl_stream(const comm_nccl *n)
{
    (void)n;
    return NULL;
}

int comm_nccl_allreduce(comm_nccl *n, void *dev_buf, size_t count, comm_dtype dt, comm_op op, char *err,
                        size_t errlen)
{
    (void)n, (void)dev_buf, (void)count, (void)dt, (void)op;
    return not_built(err, errlen);
}

int comm_nccl_sync(comm_nccl *n, char *err, size_t errlen)
{
    (void)n;
    return not_built(err, errlen);
}

int comm_nccl_destroy(comm_nccl *n, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    return n ? COMM_ENOTSUP : COMM_OK;
}

#endif
