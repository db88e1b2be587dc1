/* The MPI backend: join/leave the group over MPI_COMM_WORLD, and collectives on host buffers. */
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "comm/comm_internal.h"

struct comm_mpi {
    MPI_Comm comm; /* a duplicate of MPI_COMM_WORLD, with MPI_ERRORS_RETURN */
};

/* Set when comm_init called MPI_Init_thread: the last comm_finalize then owes MPI_Finalize. */
static int mpi_owned;
static int live_groups;

/* MPI counts are int: larger buffers go in pieces of this many elements. */
#define COMM_MPI_CHUNK ((size_t)1 << 30)

/* "comm: <what> failed on rank R: <MPI's error string>"; `what` is printf-formatted. */
static int mpi_fail(int rank, int mpi_rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int mpi_fail(int rank, int mpi_rc, char *err, size_t errlen, const char *fmt, ...)
{
    char what[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    char msg[MPI_MAX_ERROR_STRING + 1];
    int len = 0;
    if (MPI_Error_string(mpi_rc, msg, &len) != MPI_SUCCESS)
        snprintf(msg, sizeof msg, "MPI error code %d", mpi_rc);
    else
        msg[len] = '\0';
    return comm_fail(err, errlen, COMM_EMPI, "comm: %s failed on rank %d: %s", what, rank, msg);
}

static comm_thread_level thread_level_from_mpi(int provided)
{
    if (provided >= MPI_THREAD_MULTIPLE)
        return COMM_THREAD_MULTIPLE;
    if (provided >= MPI_THREAD_SERIALIZED)
        return COMM_THREAD_SERIALIZED;
    if (provided >= MPI_THREAD_FUNNELED)
        return COMM_THREAD_FUNNELED;
    return COMM_THREAD_SINGLE;
}

/* Rank and size among the processes that share memory with this one (same host). */
static int find_local(comm_group *g, char *err, size_t errlen)
{
    MPI_Comm local;
    int rc = MPI_Comm_split_type(g->mpi->comm, MPI_COMM_TYPE_SHARED, g->rank, MPI_INFO_NULL, &local);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)");
    rc = MPI_Comm_rank(local, &g->local_rank);
    if (rc == MPI_SUCCESS)
        rc = MPI_Comm_size(local, &g->local_size);
    int free_rc = MPI_Comm_free(&local);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Comm_rank/size of the host communicator");
    if (free_rc != MPI_SUCCESS)
        return mpi_fail(g->rank, free_rc, err, errlen, "MPI_Comm_free of the host communicator");
    return COMM_OK;
}

int comm_mpi_init(comm_group *g, int *argc, char ***argv, char *err, size_t errlen)
{
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: MPI was already finalized in this process; no group can start again");
    MPI_Initialized(&initialized);
    int provided = MPI_THREAD_SINGLE;
    if (!initialized) {
#ifdef OMPI_MAJOR_VERSION
        /* The reducer's buckets (1-25 MB) go through MPI_Iallreduce. Open MPI's libnbc picks recursive
         * doubling for them by default, 0.75x the bandwidth of its blocking all-reduce on 2 ranks; the
         * ring matches it (0.99x, tests/bench/run reducer). A user's own setting wins. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", 0);
#endif
        /* MULTIPLE so that a progress thread may drive collectives while the main thread computes, and
         * the watchdog may call MPI_Abort while a collective waits. */
        int rc = MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided);
        if (rc != MPI_SUCCESS)
            return mpi_fail(0, rc, err, errlen, "MPI_Init_thread");
        mpi_owned = 1;
        /* Errors not tied to our communicator are reported on MPI_COMM_WORLD; the process is ours. */
        MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    } else {
        MPI_Query_thread(&provided);
    }
    int world_rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &world_rank);
    g->rank = world_rank;
    g->thread_level = thread_level_from_mpi(provided);
    g->mpi = calloc(1, sizeof *g->mpi);
    if (!g->mpi)
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: out of memory for the group handle on rank %d",
                         world_rank);
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &g->mpi->comm);
    if (rc != MPI_SUCCESS) {
        free(g->mpi);
        g->mpi = NULL;
        return mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_dup(MPI_COMM_WORLD)");
    }
    int code = COMM_OK;
    rc = MPI_Comm_set_errhandler(g->mpi->comm, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS)
        code = mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_set_errhandler(MPI_ERRORS_RETURN)");
    if (!code && (rc = MPI_Comm_rank(g->mpi->comm, &g->rank)) == MPI_SUCCESS)
        rc = MPI_Comm_size(g->mpi->comm, &g->size);
    if (!code && rc != MPI_SUCCESS)
        code = mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_rank/size");
    if (!code)
        code = find_local(g, err, errlen);
    if (code) {
        MPI_Comm_free(&g->mpi->comm);
        free(g->mpi);
        g->mpi = NULL;
        return code;
    }
    live_groups++;
    return COMM_OK;
}

int comm_mpi_finalize(comm_group *g, char *err, size_t errlen)
{
    int rc = MPI_Comm_free(&g->mpi->comm);
    free(g->mpi);
    g->mpi = NULL;
    live_groups--;
    int code = COMM_OK;
    if (rc != MPI_SUCCESS)
        code = mpi_fail(g->rank, rc, err, errlen, "MPI_Comm_free of the group");
    if (mpi_owned && live_groups == 0) {
        mpi_owned = 0;
        rc = MPI_Finalize();
        if (rc != MPI_SUCCESS && !code)
            code = mpi_fail(g->rank, rc, err, errlen, "MPI_Finalize");
    }
    return code;
}

void comm_mpi_abort(comm_group *g, int code)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Abort(g && g->mpi ? g->mpi->comm : MPI_COMM_WORLD, code);
}

static MPI_Datatype mpi_type(comm_dtype dt)
{
    switch (dt) {
    case COMM_F32: return MPI_FLOAT;
    case COMM_F64: return MPI_DOUBLE;
    case COMM_I64: return MPI_INT64_T;
    case COMM_BF16: break;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(comm_op op)
{
    switch (op) {
    case COMM_SUM:
    case COMM_AVG: return MPI_SUM;
    case COMM_MAX: return MPI_MAX;
    case COMM_MIN: return MPI_MIN;
    }
    return MPI_OP_NULL;
}

/* Waits for `req` by MPI_Test (each test progresses the collective) with sleeps of 1, 2, 4 ... 64 us
 * in between while *computing, leaving the core to the thread computing beside this one. */
static int wait_polled(MPI_Request *req, const atomic_int *computing)
{
    long ns = 1000;
    for (;;) {
        int flag = 0;
        int rc = MPI_Test(req, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS || flag)
            return rc;
        if (!atomic_load_explicit(computing, memory_order_relaxed))
            continue;
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 64000)
            ns *= 2;
    }
}

int comm_mpi_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op,
                       const atomic_int *computing, char *err, size_t errlen)
{
    const size_t esize = comm_dtype_size(dt);
    char *p = buf;
    size_t done = 0;
    do {
        size_t n = count - done < COMM_MPI_CHUNK ? count - done : COMM_MPI_CHUNK;
        void *at = p ? p + done * esize : NULL;
        int rc;
        if (computing) {
            MPI_Request req;
            rc = MPI_Iallreduce(MPI_IN_PLACE, at, (int)n, mpi_type(dt), mpi_op(op), g->mpi->comm, &req);
            if (rc == MPI_SUCCESS)
                rc = wait_polled(&req, computing);
        } else {
            rc = MPI_Allreduce(MPI_IN_PLACE, at, (int)n, mpi_type(dt), mpi_op(op), g->mpi->comm);
        }
        if (rc != MPI_SUCCESS)
            return mpi_fail(g->rank, rc, err, errlen, "%s %s of %zu %s", computing ? "MPI_Iallreduce" : "MPI_Allreduce",
                            comm_op_name(op), count,
                            comm_dtype_noun(dt));
        done += n;
    } while (done < count);
    if (op == COMM_AVG)
        comm_divide_by_size(buf, count, dt, g->size);
    return COMM_OK;
}

int comm_mpi_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen)
{
    char *p = buf;
    size_t done = 0;
    do {
        size_t n = bytes - done < COMM_MPI_CHUNK ? bytes - done : COMM_MPI_CHUNK;
        int rc = MPI_Bcast(p ? p + done : NULL, (int)n, MPI_BYTE, root, g->mpi->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(g->rank, rc, err, errlen, "MPI_Bcast of %zu bytes from root %d", bytes, root);
        done += n;
    } while (done < bytes);
    return COMM_OK;
}

int comm_mpi_barrier(comm_group *g, char *err, size_t errlen)
{
    int rc = MPI_Barrier(g->mpi->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Barrier");
    return COMM_OK;
}

int comm_mpi_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen)
{
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, g->mpi->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Allgather of %zu bytes per rank", bytes);
    return COMM_OK;
}
