/* comm: the process group of a data-parallel run, and collectives on raw host buffers.
 *
 * One process per rank. This module sees pointers, counts and dtypes; it never sees torch.
 *
 * Backends and how comm_init chooses one
 *   MPI  when the process was started by mpirun or by srun --mpi=pmix: one of OMPI_COMM_WORLD_SIZE,
 *        PMIX_RANK, PMI_RANK, PMI_SIZE is in the environment.
 *   TCP  otherwise, when MASTER_ADDR is set together with WORLD_SIZE (torchrun style: MASTER_ADDR,
 *        MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK, optional LOCAL_WORLD_SIZE), or together with
 *        SLURM_NTASKS (srun without PMIx: SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID stand in for RANK,
 *        WORLD_SIZE, LOCAL_RANK when RANK is not set).
 *   MPI  singleton otherwise: plain `./empd` is a group of size 1.
 *   EMPD_COMM=mpi or EMPD_COMM=tcp forces a backend. Forced TCP takes the ranks from RANK/WORLD_SIZE,
 *   else from Open MPI's OMPI_COMM_WORLD_* (mpirun -x EMPD_COMM=tcp ...), else from Slurm's; with none
 *   of them it is a TCP group of one.
 *   WORLD_SIZE above 1 without MASTER_ADDR is an error, not a singleton: it names a job that cannot
 *   assemble. A bad value fails comm_init with one line naming the variable,
 *   e.g. "comm: RANK=7 is outside WORLD_SIZE=2".
 *
 * The TCP rendezvous (environment, with defaults)
 *   MASTER_ADDR            rank 0's address; rank 0 listens on that address's interface only
 *   MASTER_PORT            29500
 *   EMPD_RENDEZVOUS_TIMEOUT seconds until comm_init gives up, 300; rank 0's line then names the ranks
 *                          that never arrived, a peer's line the MASTER_ADDR:MASTER_PORT it could not reach
 *   EMPD_JOB_TOKEN         the job's secret; without it "slurm-job-$SLURM_JOB_ID" under Slurm, and
 *                          without either the fixed "empd-default-job-token", so plain local runs work
 *   Every connection proves knowledge of the token by a keyed hash (SipHash-2-4) of a random challenge,
 *   both ways; the token itself never travels. This keeps out processes of other jobs and strays that
 *   reach the port (a second job reusing MASTER_PORT, a port scanner, a rank started with the wrong
 *   environment), with a line on rank 0 for each; a second process claiming a rank already taken, and
 *   a process with another WORLD_SIZE, are refused with a line on both sides. It is not encryption:
 *   someone who can read or inject traffic on the network sees and can alter the gradients.
 *   After the rendezvous the ranks form a ring of TCP connections (rank r to r+1), on which every
 *   collective runs. The rendezvous's connections to rank 0 stay open as a control channel: through
 *   them rank 0 notices at once a rank that dies anywhere in the ring, failing ranks report whom they
 *   blame, and rank 0 tells every rank where a failure began, so that all of them name the same rank
 *   ("rank 2 closed its connection (did it die?)"), not the neighbour that passed the failure on.
 *   Socket buffers are left to the kernel's autotuning (a fixed SO_RCVBUF turns it off and is capped
 *   by net.core.rmem_max); Nagle is off.
 *
 * Lifetime
 *   comm_init() joins the group and returns a handle; comm_finalize() leaves it.
 *   MPI: comm_init initialises MPI only when nobody has yet, and then comm_finalize finalises it; a caller
 *   that initialised MPI itself keeps ownership and finalises it after comm_finalize. Each handle holds
 *   its own duplicate of MPI_COMM_WORLD, so its traffic never matches messages of other MPI users in the
 *   process, and MPI errors on it come back as codes (MPI_ERRORS_RETURN) rather than killing the job;
 *   when comm_init initialises MPI it sets MPI_ERRORS_RETURN on MPI_COMM_WORLD too.
 *   TCP: each comm_init is a rendezvous of its own on MASTER_PORT; MPI is never initialised.
 *   Several handles may live at once; comm_init and comm_finalize themselves must not run in two
 *   threads at the same time.
 *
 * Collective calls
 *   Calls marked COLLECTIVE must be made by every rank of the group, in the same order, with the same
 *   count, dtype, op and root. A rank that skips one, or passes different arguments, leaves the others
 *   waiting (until the watchdog below ends the job) or gets undefined results under MPI; the TCP
 *   backend checks every message against the receiver's own call and fails with a line naming both.
 *   Argument checks that every rank can make alike (a root out of range, a null buffer, an op the dtype
 *   does not support) fail on every rank without communicating, so the ranks stay in step.
 *
 * Watchdog
 *   comm_set_timeout(g, s) gives every blocking collective on g (and comm_nccl_sync of a communicator
 *   made from g) a deadline of s seconds; the default is EMPD_COMM_TIMEOUT, or none when it is unset.
 *   A call still waiting after s seconds prints one line to stderr, "comm: rank R: all-reduce of 1234
 *   floats has not completed after 60 s: another rank died or hangs; ending the job", aborts the NCCL
 *   communicators made from g, and ends the job: MPI_Abort under MPI (from the watchdog's thread, which
 *   MPI_THREAD_MULTIPLE allows; Open MPI grants it); under TCP this process exits with status 1 and the
 *   other ranks fail at once with "rank R failed (its own line says why)". One thread per group
 *   watches, started with the first deadline; a collective costs a clock read and a few atomic stores.
 *
 * Threads
 *   MPI: comm_init asks for MPI_THREAD_MULTIPLE and records what it got (comm_thread_level_of). TCP
 *   reports COMM_THREAD_MULTIPLE. With MULTIPLE, any thread may call, but one handle is used by one
 *   thread at a time, and two threads must not run collectives on the same handle concurrently (their
 *   order would differ between ranks). With SERIALIZED, any one thread at a time may call (the caller
 *   orders them; the gradient reducer's thread relies on this). With less, only the thread that called
 *   comm_init may call.
 *   comm_set_timeout may be called from any thread at any time.
 *
 * Errors
 *   Every call that can fail returns 0 or a COMM_E* code and, on failure, writes one line into the
 *   caller's buffer `err` of `errlen` bytes (always NUL-terminated, truncated if short; `err` may be NULL),
 *   e.g. "comm: MPI_Allreduce of 1234 floats failed on rank 1: MPI_ERR_TRUNCATE: message truncated" or
 *   "comm: all-reduce of 1234 floats failed on rank 0: rank 1 closed its connection (did it die?)".
 *   After a COMM_EMPI or COMM_ENET failure of a collective the group is unusable (under TCP it closes
 *   its connections at once, so that every rank fails rather than waits): report the line and call
 *   comm_abort.
 *
 * Determinism
 *   Every rank gets the same bits: Open MPI's all-reduce algorithms hand every rank the same result,
 *   and the TCP ring reduces each element once, on one rank, in a fixed order, then copies it to the
 *   others. COMM_AVG divides by the group size with the same instruction everywhere (tests/comm checks
 *   this). Results may differ between group sizes and backends, as summation order does.
 */
#ifndef EMPD_COMM_H
#define EMPD_COMM_H

#include <stdatomic.h>
#include <stddef.h>

/* Return codes. */
enum {
    COMM_OK = 0,
    COMM_EINVAL = 1,  /* bad argument or environment (null buffer, root out of range, RANK >= WORLD_SIZE) */
    COMM_EMPI = 2,    /* an MPI call failed; the line carries MPI's error string */
    COMM_ENOMEM = 3,  /* out of host memory */
    COMM_ENOGPU = 4,  /* NCCL backend: no usable CUDA device (no driver, or no device) */
    COMM_ECUDA = 5,   /* NCCL backend: a CUDA runtime call failed */
    COMM_ENCCL = 6,   /* NCCL backend: an NCCL call failed */
    COMM_ENOTSUP = 7, /* this build has no NCCL backend */
    COMM_ENET = 8,    /* TCP backend: the rendezvous failed or timed out, or a peer's connection broke */
};

/* Element types of reduced buffers. COMM_BF16 is for device buffers (NCCL backend) only. */
typedef enum { COMM_F32 = 0, COMM_F64 = 1, COMM_I64 = 2, COMM_BF16 = 3 } comm_dtype;

/* Reductions. COMM_AVG is the sum divided by the group size; it is not defined for COMM_I64. */
typedef enum { COMM_SUM = 0, COMM_AVG = 1, COMM_MAX = 2, COMM_MIN = 3 } comm_op;

/* The thread support of the group, lowest to highest (MPI_THREAD_SINGLE..MULTIPLE). */
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

/* COLLECTIVE over every process of the job. Chooses the backend from the environment (above) and joins
 * the group: MPI: initialises MPI if it is not yet (argc/argv may be NULL; MPI may remove its own
 * arguments from them) and duplicates MPI_COMM_WORLD; TCP: the rendezvous, which waits up to
 * EMPD_RENDEZVOUS_TIMEOUT for the other ranks. Finds rank, size, the rank and size among processes on
 * this host, and the host name. On success *out holds a handle to release with comm_finalize.
 * Returns COMM_EINVAL (a bad environment value, or MPI already finalised), COMM_EMPI, COMM_ENET or
 * COMM_ENOMEM; then *out is NULL and the caller should comm_abort (other ranks may be waiting).
 * A failing MPI_Init_thread usually ends the process before comm_init can report it (MPI's default
 * error handler applies until MPI is up). */
int comm_init(int *argc, char ***argv, comm_group **out, char *err, size_t errlen);

/* COLLECTIVE. Releases the handle (NULL is a no-op returning 0) and, if comm_init initialised MPI and
 * no other handle remains, finalises MPI. TCP: waits until every peer has left too, so that no rank
 * mistakes a peer that is done for one that died. Returns COMM_EMPI or COMM_ENET if a call failed;
 * the handle is freed in every case. */
int comm_finalize(comm_group *g, char *err, size_t errlen);

/* Ends every process of the job with exit status `code`: aborts the NCCL communicators made from g,
 * then MPI_Abort on g's communicator (MPI_COMM_WORLD when g is NULL); under TCP this process tells the
 * other ranks and exits, and they fail in their next or current collective with "rank R failed (its own
 * line says why)". Not collective: one rank's call ends all. Used when a rank cannot go on and others
 * may be blocked in a collective. Without MPI (never initialised, or finalised) and without g it ends
 * this process only. Never returns. */
void comm_abort(comm_group *g, int code);

/* Gives every blocking call on g a deadline of `seconds` (0, a negative value or NaN: none); see
 * Watchdog above. Applies at once, to a call already waiting too. Not collective; any thread. If the
 * watchdog thread cannot start, says so on stderr in one line and collectives keep no deadline. */
void comm_set_timeout(comm_group *g, double seconds);

/* The deadline comm_set_timeout or EMPD_COMM_TIMEOUT set, in seconds; 0 when none. */
double comm_timeout(const comm_group *g);

/* Accessors; g must be a live handle. */
int comm_rank(const comm_group *g);        /* 0..size-1 */
int comm_size(const comm_group *g);        /* >= 1 */
int comm_local_rank(const comm_group *g);  /* rank among the processes of this host */
int comm_local_size(const comm_group *g);  /* number of processes of the group on this host */
const char *comm_hostname(const comm_group *g); /* this host's name, valid while g lives */
const char *comm_backend_name(const comm_group *g); /* "mpi" or "tcp" */
comm_thread_level comm_thread_level_of(const comm_group *g);

/* COLLECTIVE. In-place all-reduce of `count` elements of `dt` at `buf` (host memory). COMM_F32,
 * COMM_F64, COMM_I64 with COMM_SUM, COMM_MAX, COMM_MIN; COMM_AVG for the float types. count 0 is valid
 * (buf may then be NULL) and still communicates. Returns COMM_EINVAL (bad dtype/op, null buf),
 * COMM_EMPI, COMM_ENET or COMM_ENOMEM. */
int comm_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err,
                   size_t errlen);

/* COLLECTIVE. comm_allreduce for a thread that runs beside computation (the reducer's). Where waiting
 * in the backend's blocking collective would spin a core (MPI: Open MPI busy-polls), the all-reduce is
 * started nonblocking and tested, with sleeps of 1 us growing to 64 us in between while *computing is
 * nonzero (so the core goes to the computation), and without sleeps once it is zero. Every rank must
 * use comm_allreduce_beside for the same collective (MPI does not match a nonblocking collective with a
 * blocking one); *computing is local and may change at any time. Same arguments, results and errors as
 * comm_allreduce otherwise; the TCP backend already sleeps in poll(2) and ignores `computing`. */
int comm_allreduce_beside(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op,
                          const atomic_int *computing, char *err, size_t errlen);

/* COLLECTIVE. Copies `bytes` bytes at `buf` on rank `root` into `buf` on every rank. Every rank passes
 * the same bytes and root. Returns COMM_EINVAL (root outside 0..size-1, null buf with bytes > 0),
 * COMM_EMPI (for instance MPI_ERR_TRUNCATE on a rank that passed fewer bytes than the root) or
 * COMM_ENET. */
int comm_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen);

/* COLLECTIVE. Returns once every rank has entered it. Returns COMM_EMPI or COMM_ENET on failure. */
int comm_barrier(comm_group *g, char *err, size_t errlen);

/* COLLECTIVE. Gathers `bytes` bytes from every rank: rank r's `send` lands at recv + r * bytes on every
 * rank; `recv` holds size * bytes. send and recv must not overlap. Meant for small per-rank records
 * (stats, names): bytes above INT_MAX give COMM_EINVAL. Returns COMM_EINVAL, COMM_EMPI or COMM_ENET. */
int comm_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen);

#endif
