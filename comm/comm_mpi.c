/* The process group over MPI: join/leave, and collectives on host buffers. */
#include <limits.h>
#include <mpi.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm_internal.h"

struct comm_group {
    MPI_Comm comm; /* a duplicate of MPI_COMM_WORLD, with MPI_ERRORS_RETURN */
    int rank, size;
    int local_rank, local_size;
    comm_thread_level thread_level;
    char hostname[256];
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
    int rc = MPI_Comm_split_type(g->comm, MPI_COMM_TYPE_SHARED, g->rank, MPI_INFO_NULL, &local);
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

static void find_hostname(comm_group *g)
{
    if (gethostname(g->hostname, sizeof g->hostname - 1) == 0 && g->hostname[0]) {
        g->hostname[sizeof g->hostname - 1] = '\0';
        return;
    }
    char name[MPI_MAX_PROCESSOR_NAME + 1];
    int len = 0;
    if (MPI_Get_processor_name(name, &len) == MPI_SUCCESS && len > 0)
        snprintf(g->hostname, sizeof g->hostname, "%.*s", len, name);
    else
        snprintf(g->hostname, sizeof g->hostname, "unknown-host");
}

int comm_init(int *argc, char ***argv, comm_group **out, char *err, size_t errlen)
{
    if (!out)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: comm_init: out is NULL");
    *out = NULL;
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: MPI was already finalized in this process; no group can start again");
    MPI_Initialized(&initialized);
    int provided = MPI_THREAD_SINGLE;
    if (!initialized) {
        /* MULTIPLE so that a progress thread may drive collectives while the main thread computes. */
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

    comm_group *g = calloc(1, sizeof *g);
    if (!g)
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: out of memory for the group handle on rank %d",
                         world_rank);
    g->thread_level = thread_level_from_mpi(provided);
    g->rank = world_rank;
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &g->comm);
    if (rc != MPI_SUCCESS) {
        free(g);
        return mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_dup(MPI_COMM_WORLD)");
    }
    int code = COMM_OK;
    rc = MPI_Comm_set_errhandler(g->comm, MPI_ERRORS_RETURN);
    if (rc != MPI_SUCCESS)
        code = mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_set_errhandler(MPI_ERRORS_RETURN)");
    if (!code && (rc = MPI_Comm_rank(g->comm, &g->rank)) == MPI_SUCCESS)
        rc = MPI_Comm_size(g->comm, &g->size);
    if (!code && rc != MPI_SUCCESS)
        code = mpi_fail(world_rank, rc, err, errlen, "MPI_Comm_rank/size");
    if (!code)
        code = find_local(g, err, errlen);
    if (code) {
        MPI_Comm_free(&g->comm);
        free(g);
        return code;
    }
    find_hostname(g);
    live_groups++;
    *out = g;
    return COMM_OK;
}

int comm_finalize(comm_group *g, char *err, size_t errlen)
{
    if (!g)
        return COMM_OK;
    int rank = g->rank;
    int rc = MPI_Comm_free(&g->comm);
    free(g);
    live_groups--;
    int code = COMM_OK;
    if (rc != MPI_SUCCESS)
        code = mpi_fail(rank, rc, err, errlen, "MPI_Comm_free of the group");
    if (mpi_owned && live_groups == 0) {
        mpi_owned = 0;
        rc = MPI_Finalize();
        if (rc != MPI_SUCCESS && !code)
            code = mpi_fail(rank, rc, err, errlen, "MPI_Finalize");
    }
    return code;
}

void comm_abort(comm_group *g, int code)
{
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (initialized && !finalized)
        MPI_Abort(g ? g->comm : MPI_COMM_WORLD, code);
    _Exit(code);
}

int comm_rank(const comm_group *g) { return g->rank; }
int comm_size(const comm_group *g) { return g->size; }
int comm_local_rank(const comm_group *g) { return g->local_rank; }
int comm_local_size(const comm_group *g) { return g->local_size; }
const char *comm_hostname(const comm_group *g) { return g->hostname; }
comm_thread_level comm_thread_level_of(const comm_group *g) { return g->thread_level; }

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

/* The same division on every rank keeps AVG results bit-identical across ranks. */
static void divide_by_size(void *buf, size_t count, comm_dtype dt, int size)
{
    if (size == 1)
        return;
    if (dt == COMM_F32) {
        float *x = buf;
        const float s = (float)size;
        for (size_t i = 0; i < count; i++)
            x[i] /= s;
    } else if (dt == COMM_F64) {
        double *x = buf;
        const double s = (double)size;
        for (size_t i = 0; i < count; i++)
            x[i] /= s;
    }
}

int comm_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err,
                   size_t errlen)
{
    int code = comm_check_reduce("all-reduce", dt, op, err, errlen);
    if (code)
        return code;
    if (dt == COMM_BF16)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: all-reduce of %zu bf16 values: MPI has no bf16 type "
                         "(reduce bf16 device buffers with the NCCL backend, or convert to f32)",
                         count);
    if (!buf && count > 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: all-reduce of %zu %s: buffer is NULL", count,
                         comm_dtype_noun(dt));
    const size_t esize = comm_dtype_size(dt);
    char *p = buf;
    size_t done = 0;
    do {
        size_t n = count - done < COMM_MPI_CHUNK ? count - done : COMM_MPI_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p ? p + done * esize : NULL, (int)n, mpi_type(dt), mpi_op(op),
                               g->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(g->rank, rc, err, errlen, "MPI_Allreduce %s of %zu %s", comm_op_name(op), count,
                            comm_dtype_noun(dt));
        done += n;
    } while (done < count);
    if (op == COMM_AVG)
        divide_by_size(buf, count, dt, g->size);
    return COMM_OK;
}

int comm_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen)
{
    if (root < 0 || root >= g->size)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: broadcast of %zu bytes on rank %d: root %d is outside 0..%d", bytes, g->rank,
                         root, g->size - 1);
    if (!buf && bytes > 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: broadcast of %zu bytes on rank %d: buffer is NULL",
                         bytes, g->rank);
    char *p = buf;
    size_t done = 0;
    do {
        size_t n = bytes - done < COMM_MPI_CHUNK ? bytes - done : COMM_MPI_CHUNK;
        int rc = MPI_Bcast(p ? p + done : NULL, (int)n, MPI_BYTE, root, g->comm);
        if (rc != MPI_SUCCESS)
            return mpi_fail(g->rank, rc, err, errlen, "MPI_Bcast of %zu bytes from root %d", bytes, root);
        done += n;
    } while (done < bytes);
    return COMM_OK;
}

int comm_barrier(comm_group *g, char *err, size_t errlen)
{
    int rc = MPI_Barrier(g->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Barrier");
    return COMM_OK;
}

int comm_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen)
{
    if (bytes > INT_MAX)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: allgather of %zu bytes per rank on rank %d: more than INT_MAX bytes", bytes,
                         g->rank);
    if (bytes > 0 && (!send || !recv))
        return comm_fail(err, errlen, COMM_EINVAL, "comm: allgather of %zu bytes per rank on rank %d: %s is NULL",
                         bytes, g->rank, send ? "recv" : "send");
    int rc = MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, g->comm);
    if (rc != MPI_SUCCESS)
        return mpi_fail(g->rank, rc, err, errlen, "MPI_Allgather of %zu bytes per rank", bytes);
    return COMM_OK;
}
