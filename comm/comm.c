/* The group: chooses a backend, checks arguments alike on every rank, keeps the watchdog's clock, and
 * hands each collective to MPI or TCP. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "comm/comm_internal.h"

static void find_hostname(comm_group *g)
{
    if (gethostname(g->hostname, sizeof g->hostname - 1) == 0 && g->hostname[0])
        g->hostname[sizeof g->hostname - 1] = '\0';
    else
        snprintf(g->hostname, sizeof g->hostname, "unknown-host");
}

int comm_init(int *argc, char ***argv, comm_group **out, char *err, size_t errlen)
{
    if (!out)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: comm_init: out is NULL");
    *out = NULL;
    comm_env e;
    int code = comm_env_read(&e, err, errlen);
    if (code)
        return code;
    comm_group *g = calloc(1, sizeof *g);
    if (!g || comm_watch_init(g)) {
        free(g);
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: out of memory for the group handle");
    }
    g->backend = e.backend;
    find_hostname(g);
    code =
        e.backend == COMM_BACKEND_TCP ? comm_tcp_init(g, &e, err, errlen) : comm_mpi_init(g, argc, argv, err, errlen);
    if (code) {
        comm_watch_destroy(g);
        free(g);
        return code;
    }
    if (e.comm_timeout > 0)
        comm_watch_set(g, e.comm_timeout);
    *out = g;
    return COMM_OK;
}

int comm_finalize(comm_group *g, char *err, size_t errlen)
{
    if (!g)
        return COMM_OK;
    comm_watch_begin(g, COMM_WATCH_HOST, COMM_CALL_FINALIZE, 0, 0);
    int code = g->backend == COMM_BACKEND_TCP ? comm_tcp_finalize(g, err, errlen) : comm_mpi_finalize(g, err, errlen);
    comm_watch_end(g, COMM_WATCH_HOST);
    comm_watch_destroy(g);
    free(g);
    return code;
}

void comm_abort(comm_group *g, int code)
{
    if (g)
        comm_watch_run_hooks(g);
    if (g && g->backend == COMM_BACKEND_TCP)
        comm_tcp_abort(g);
    else
        comm_mpi_abort(g, code);
    _Exit(code);
}

void comm_set_timeout(comm_group *g, double seconds) { comm_watch_set(g, seconds); }
double comm_timeout(const comm_group *g) { return (double)atomic_load(&g->wd.timeout_ns) / 1e9; }

int comm_rank(const comm_group *g) { return g->rank; }
int comm_size(const comm_group *g) { return g->size; }
int comm_local_rank(const comm_group *g) { return g->local_rank; }
int comm_local_size(const comm_group *g) { return g->local_size; }
const char *comm_hostname(const comm_group *g) { return g->hostname; }
const char *comm_backend_name(const comm_group *g) { return g->backend == COMM_BACKEND_TCP ? "tcp" : "mpi"; }
comm_thread_level comm_thread_level_of(const comm_group *g) { return g->thread_level; }

static int allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, const atomic_int *computing,
                     char *err, size_t errlen)
{
    int code = comm_check_reduce("all-reduce", dt, op, err, errlen);
    if (code)
        return code;
    if (dt == COMM_BF16)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: all-reduce of %zu bf16 values: host buffers have no bf16 reduction "
                         "(reduce bf16 device buffers with the NCCL backend, or convert to f32)",
                         count);
    if (!buf && count > 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: all-reduce of %zu %s: buffer is NULL", count,
                         comm_dtype_noun(dt));
    comm_watch_begin(g, COMM_WATCH_HOST, COMM_CALL_ALLREDUCE, count, (uint64_t)dt | (uint64_t)op << 8);
    code = g->backend == COMM_BACKEND_TCP ? comm_tcp_allreduce(g, buf, count, dt, op, err, errlen)
                                          : comm_mpi_allreduce(g, buf, count, dt, op, computing, err, errlen);
    comm_watch_end(g, COMM_WATCH_HOST);
    return code;
}

int comm_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err, size_t errlen)
{
    return allreduce(g, buf, count, dt, op, NULL, err, errlen);
}

int comm_allreduce_beside(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op,
                          const atomic_int *computing, char *err, size_t errlen)
{
    static const atomic_int no = 0;
    return allreduce(g, buf, count, dt, op, computing ? computing : &no, err, errlen);
}

int comm_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen)
{
    if (root < 0 || root >= g->size)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: broadcast of %zu bytes on rank %d: root %d is outside 0..%d",
                         bytes, g->rank, root, g->size - 1);
    if (!buf && bytes > 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: broadcast of %zu bytes on rank %d: buffer is NULL", bytes,
                         g->rank);
    comm_watch_begin(g, COMM_WATCH_HOST, COMM_CALL_BROADCAST, bytes, (uint64_t)root);
    int code = g->backend == COMM_BACKEND_TCP ? comm_tcp_broadcast(g, buf, bytes, root, err, errlen)
                                              : comm_mpi_broadcast(g, buf, bytes, root, err, errlen);
    comm_watch_end(g, COMM_WATCH_HOST);
    return code;
}

int comm_barrier(comm_group *g, char *err, size_t errlen)
{
    comm_watch_begin(g, COMM_WATCH_HOST, COMM_CALL_BARRIER, 0, 0);
    int code = g->backend == COMM_BACKEND_TCP ? comm_tcp_barrier(g, err, errlen) : comm_mpi_barrier(g, err, errlen);
    comm_watch_end(g, COMM_WATCH_HOST);
    return code;
}

int comm_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen)
{
    if (bytes > INT_MAX)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: allgather of %zu bytes per rank on rank %d: more than INT_MAX bytes", bytes, g->rank);
    if (bytes > 0 && (!send || !recv))
        return comm_fail(err, errlen, COMM_EINVAL, "comm: allgather of %zu bytes per rank on rank %d: %s is NULL",
                         bytes, g->rank, send ? "recv" : "send");
    comm_watch_begin(g, COMM_WATCH_HOST, COMM_CALL_ALLGATHER, bytes, 0);
    int code = g->backend == COMM_BACKEND_TCP ? comm_tcp_allgather(g, send, recv, bytes, err, errlen)
                                              : comm_mpi_allgather(g, send, recv, bytes, err, errlen);
    comm_watch_end(g, COMM_WATCH_HOST);
    return code;
}
