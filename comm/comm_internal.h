/* Shared by comm's own .c files; not part of the module's API (include comm/comm.h instead). */
#ifndef EMPD_COMM_INTERNAL_H
#define EMPD_COMM_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "comm/comm.h"

typedef enum { COMM_BACKEND_MPI = 0, COMM_BACKEND_TCP = 1 } comm_backend;

/* What the launcher and the user said through the environment (comm_env.c). */
typedef struct {
    comm_backend backend;
    int rank, size;             /* TCP only */
    int local_rank, local_size; /* TCP only; -1 where the environment does not say */
    char master_addr[256];      /* TCP with size > 1 */
    int master_port;
    double rendezvous_timeout;  /* seconds */
    uint64_t key[2];            /* derived from the job token */
    const char *token_source;   /* "EMPD_JOB_TOKEN", "SLURM_JOB_ID" or "the default token" */
    double comm_timeout;        /* EMPD_COMM_TIMEOUT; 0: none */
} comm_env;

/* Reads and checks the environment; COMM_EINVAL with a line naming the variable on a bad value. */
int comm_env_read(comm_env *e, char *err, size_t errlen);

/* SipHash-2-4 of `len` bytes under a 128-bit key: the rendezvous's proof of the job token. */
uint64_t comm_siphash(const uint64_t key[2], const void *msg, size_t len);

/* What a watched call is doing, so that the watchdog can name it. */
typedef enum {
    COMM_CALL_ALLREDUCE = 1, /* count elements; aux = dtype | op << 8 */
    COMM_CALL_BROADCAST,     /* count bytes; aux = root */
    COMM_CALL_BARRIER,
    COMM_CALL_ALLGATHER, /* count bytes per rank */
    COMM_CALL_FINALIZE,
    COMM_CALL_NCCL_SYNC,
} comm_call;

/* "all-reduce of 1234 floats", "broadcast of 8 bytes from root 0", ... into buf. */
void comm_describe_call(char *buf, size_t len, comm_call call, uint64_t count, uint64_t aux);

/* Host collectives and waits on device streams are watched in separate slots: a reducer thread may wait
 * on NCCL while the main thread runs a host collective. */
enum { COMM_WATCH_HOST = 0, COMM_WATCH_DEVICE = 1, COMM_WATCH_SLOTS = 2 };
#define COMM_WATCH_HOOKS 16

typedef struct {
    _Atomic int64_t timeout_ns; /* 0: no deadline */
    struct {
        _Atomic int64_t start_ns; /* 0: idle */
        _Atomic int call;
        _Atomic uint64_t count, aux;
    } slot[COMM_WATCH_SLOTS];
    pthread_mutex_t mu; /* guards what follows */
    pthread_cond_t wake;
    pthread_t thread;
    int running, stop;
    struct {
        void (*fn)(void *);
        void *arg;
    } hooks[COMM_WATCH_HOOKS];
} comm_watchdog;

struct comm_mpi;
struct comm_tcp;

struct comm_group {
    comm_backend backend;
    int rank, size;
    int local_rank, local_size;
    comm_thread_level thread_level;
    char hostname[256];
    struct comm_mpi *mpi; /* comm_mpi.c */
    struct comm_tcp *tcp; /* comm_tcp.c */
    comm_watchdog wd;
};

/* comm_watchdog.c. init before first use, destroy (joins the thread) before freeing the group. */
int comm_watch_init(comm_group *g);
void comm_watch_destroy(comm_group *g);
void comm_watch_set(comm_group *g, double seconds);
void comm_watch_begin(comm_group *g, int slot, comm_call call, uint64_t count, uint64_t aux);
void comm_watch_end(comm_group *g, int slot);
/* fn(arg) runs before the job is ended by the watchdog or comm_abort (ncclCommAbort of a communicator
 * made from g). COMM_ENOMEM when all COMM_WATCH_HOOKS slots are taken. */
int comm_watch_hook(comm_group *g, void (*fn)(void *), void *arg);
void comm_watch_unhook(comm_group *g, void *arg);
void comm_watch_run_hooks(comm_group *g);

/* comm_mpi.c: the MPI backend. Arguments were checked by comm.c. comm_mpi_abort returns only when MPI
 * is not running. */
int comm_mpi_init(comm_group *g, int *argc, char ***argv, char *err, size_t errlen);
int comm_mpi_finalize(comm_group *g, char *err, size_t errlen);
void comm_mpi_abort(comm_group *g, int code);
/* computing non-NULL: MPI_Iallreduce, then MPI_Test with sleeps while *computing (comm_allreduce_beside) */
int comm_mpi_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op,
                       const atomic_int *computing, char *err, size_t errlen);
int comm_mpi_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen);
int comm_mpi_barrier(comm_group *g, char *err, size_t errlen);
int comm_mpi_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen);

/* comm_tcp.c: the TCP backend, same contract. comm_tcp_abort closes the connections and returns. */
int comm_tcp_init(comm_group *g, const comm_env *e, char *err, size_t errlen);
int comm_tcp_finalize(comm_group *g, char *err, size_t errlen);
void comm_tcp_abort(comm_group *g);
int comm_tcp_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err,
                       size_t errlen);
int comm_tcp_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen);
int comm_tcp_barrier(comm_group *g, char *err, size_t errlen);
int comm_tcp_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen);

/* Writes one printf-formatted line into err (NULL or errlen 0: nothing) and returns `code`, so a failing
 * path reads `return comm_fail(err, errlen, COMM_EINVAL, "...", ...);`. */
int comm_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Plural noun for a dtype in messages: "floats", "doubles", "int64 values", "bf16 values". */
const char *comm_dtype_noun(comm_dtype dt);

/* Name of an op in messages: "SUM", "AVG", "MAX", "MIN", or "op?" outside the enum. */
const char *comm_op_name(comm_op op);

/* 0 if the pair is defined (AVG needs a float type; dt and op inside their enums), else COMM_EINVAL
 * with the line "comm: <what>: ..." in err. */
int comm_check_reduce(const char *what, comm_dtype dt, comm_op op, char *err, size_t errlen);

/* x[i] /= size for the float types (nothing for size 1 or COMM_I64): the same instruction on every rank,
 * so that AVG results stay bit-identical across ranks. */
void comm_divide_by_size(void *buf, size_t count, comm_dtype dt, int size);

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t comm_now_ns(void);

#endif
