/* comm: the process group of a data-parallel run, and collectives on raw host buffers (MPI backend).
 *
 * One process per rank, started by mpirun, by srun --mpi=pmix, or alone (a singleton: plain `./empd`
 * is a group of size 1). This module sees pointers, counts and dtypes; it never sees torch.
 *
 * Lifetime
 *   comm_init() joins the group and returns a handle; comm_finalize() leaves it. comm_init initialises
 *   MPI only when nobody has yet, and then comm_finalize finalises it; a caller that initialised MPI
 *   itself keeps ownership and finalises it after comm_finalize. Each handle holds its own duplicate of
 *   MPI_COMM_WORLD, so its traffic never matches messages of other MPI users in the process, and MPI
 *   errors on it come back as codes (MPI_ERRORS_RETURN) rather than killing the job; when comm_init
 *   initialises MPI it sets MPI_ERRORS_RETURN on MPI_COMM_WORLD too. Several handles may
 *   live at once; comm_init and comm_finalize themselves must not run in two threads at the same time.
 *
 * Collective calls
 *   Calls marked COLLECTIVE must be made by every rank of the group, in the same order, with the same
 *   count, dtype, op and root. A rank that skips one, or passes different arguments, leaves the others
 *   waiting forever or gets undefined results: MPI cannot detect every mismatch. Argument checks that
 *   every rank can make alike (a root out of range, a null buffer, an op the dtype does not support)
 *   fail on every rank without communicating, so the ranks stay in step.
 *
 * Threads
 *   comm_init asks MPI for MPI_THREAD_MULTIPLE and records what it got (comm_thread_level). With
 *   MULTIPLE, any thread may call, but one handle is used by one thread at a time, and two threads must
 *   not run collectives on the same handle concurrently (their order would differ between ranks). With
 *   less, only the thread that called comm_init may call.
 *
 * Errors
 *   Every call that can fail returns 0 or a COMM_E* code and, on failure, writes one line into the
 *   caller's buffer `err` of `errlen` bytes (always NUL-terminated, truncated if short; `err` may be NULL),
 *   e.g. "comm: MPI_Allreduce of 1234 floats failed on rank 1: MPI_ERR_TRUNCATE: message truncated".
 *   After a COMM_EMPI failure the group's state is what MPI leaves it in: the caller should report the
 *   line and call comm_abort, since other ranks may be blocked in the same collective.
 *
 * Determinism
 *   Open MPI's all-reduce algorithms hand every rank the same bits; COMM_AVG then divides by the group
 *   size with the same instruction on every rank, so results are bit-identical across ranks (tests/comm
 *   checks this). Results may differ between group sizes, as summation order does.
 */
#ifndef EMPD_COMM_H
#define EMPD_COMM_H

#include <stddef.h>

/* Return codes. */
enum {
    COMM_OK = 0,
    COMM_EINVAL = 1,  /* bad argument (null buffer, root out of range, op not defined for the dtype) */
    COMM_EMPI = 2,    /* an MPI call failed; the line carries MPI's error string */
    COMM_ENOMEM = 3,  /* out of host memory */
    COMM_ENOGPU = 4,  /* NCCL backend: no usable CUDA device (no driver, or no device) */
    COMM_ECUDA = 5,   /* NCCL backend: a CUDA runtime call failed */
    COMM_ENCCL = 6,   /* NCCL backend: an NCCL call failed */
    COMM_ENOTSUP = 7, /* this build has no NCCL backend */
};

/* Element types of reduced buffers. COMM_BF16 is for device buffers (NCCL backend) only. */
typedef enum { COMM_F32 = 0, COMM_F64 = 1, COMM_I64 = 2, COMM_BF16 = 3 } comm_dtype;

/* Reductions. COMM_AVG is the sum divided by the group size; it is not defined for COMM_I64. */
typedef enum { COMM_SUM = 0, COMM_AVG = 1, COMM_MAX = 2, COMM_MIN = 3 } comm_op;

/* The MPI thread support comm_init obtained, lowest to highest (MPI_THREAD_SINGLE..MULTIPLE). */
typedef enum {
    COMM_THREAD_SINGLE = 0,
    COMM_THREAD_FUNNELED = 1,
    COMM_THREAD_SERIALIZED = 2,
    COMM_THREAD_MULTIPLE = 3,
} comm_thread_level;

/* Opaque handle of a process group. */
typedef struct comm_group comm_group;

/* A static string naming a COMM_* code ("invalid argument", ...); never NULL. */
const char *comm_strerror(int code);

/* Size in bytes of one element of `dt`, or 0 for a value outside the enum. */
size_t comm_dtype_size(comm_dtype dt);

/* COLLECTIVE over MPI_COMM_WORLD. Joins the group: initialises MPI if it is not yet (argc/argv may be
 * NULL; MPI may remove its own arguments from them), duplicates MPI_COMM_WORLD, and finds rank, size,
 * the rank and size among processes on this host, and the host name. On success *out holds a handle to
 * release with comm_finalize. Returns COMM_EINVAL if MPI was already finalised, COMM_EMPI or
 * COMM_ENOMEM otherwise; then *out is NULL and the caller should comm_abort (other ranks may be waiting).
 * A failing MPI_Init_thread usually ends the process before comm_init can report it (MPI's default
 * error handler applies until MPI is up). */
int comm_init(int *argc, char ***argv, comm_group **out, char *err, size_t errlen);

/* COLLECTIVE. Releases the handle (NULL is a no-op returning 0) and, if comm_init initialised MPI and
 * no other handle remains, finalises MPI. Returns COMM_EMPI if an MPI call failed; the handle is freed
 * in every case. */
int comm_finalize(comm_group *g, char *err, size_t errlen);

/* Ends every process of the job with exit status `code` (MPI_Abort on MPI_COMM_WORLD). Not collective:
 * one rank's call ends all. Used when a rank cannot go on and others may be blocked in a collective.
 * g may be NULL; without MPI (never initialised, or finalised) it ends this process only. Never returns. */
void comm_abort(comm_group *g, int code);

/* Accessors; g must be a live handle. */
int comm_rank(const comm_group *g);        /* 0..size-1 */
int comm_size(const comm_group *g);        /* >= 1 */
int comm_local_rank(const comm_group *g);  /* rank among the processes of this host (shared memory) */
int comm_local_size(const comm_group *g);  /* number of processes of the group on this host */
const char *comm_hostname(const comm_group *g); /* this host's name, valid while g lives */
comm_thread_level comm_thread_level_of(const comm_group *g);

/* COLLECTIVE. In-place all-reduce of `count` elements of `dt` at `buf` (host memory). COMM_F32,
 * COMM_F64, COMM_I64 with COMM_SUM, COMM_MAX, COMM_MIN; COMM_AVG for the float types. count 0 is valid
 * (buf may then be NULL) and still communicates. Counts above INT_MAX go in several MPI calls.
 * Returns COMM_EINVAL (bad dtype/op, null buf) or COMM_EMPI. */
int comm_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err,
                   size_t errlen);

/* COLLECTIVE. Copies `bytes` bytes at `buf` on rank `root` into `buf` on every rank. Every rank passes
 * the same bytes and root. Returns COMM_EINVAL (root outside 0..size-1, null buf with bytes > 0) or
 * COMM_EMPI (for instance MPI_ERR_TRUNCATE on a rank that passed fewer bytes than the root). */
int comm_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen);

/* COLLECTIVE. Returns once every rank has entered it. Returns COMM_EMPI on failure. */
int comm_barrier(comm_group *g, char *err, size_t errlen);

/* COLLECTIVE. Gathers `bytes` bytes from every rank: rank r's `send` lands at recv + r * bytes on every
 * rank; `recv` holds size * bytes. send and recv must not overlap. Meant for small per-rank records
 * (stats, names): bytes above INT_MAX give COMM_EINVAL. Returns COMM_EINVAL or COMM_EMPI. */
int comm_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen);

#endif
