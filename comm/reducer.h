/* comm_reducer: averages the gradients of a data-parallel step over the ranks of a group, in buckets
 * that start while backward is still producing the rest (the scheme of PyTorch's DDP reducer).
 *
 * Buckets
 *   Parameters are grouped in REVERSE index order, since backward produces the last parameters first:
 *   parameters n-1, n-2, ... go into bucket 0 until it holds at least first_bucket_bytes, the following
 *   ones into bucket 1 until it holds at least bucket_bytes, and so on (DDP's rule: a bucket closes once
 *   it reaches its limit, so a parameter larger than the limit ends the bucket it lands in). The layout
 *   depends on counts and options only, so every rank makes the same one.
 *
 * One backward
 *   comm_reducer_begin arms the reducer; the gradient hook of each parameter calls comm_reducer_ready;
 *   comm_reducer_finish starts whatever has not started, waits, and leaves every grads[i] averaged over
 *   the ranks. A bucket starts once all its parameters are ready AND every earlier bucket has started,
 *   so the collectives run in bucket order on every rank whatever order the hooks fire in. Parameters
 *   that never became ready (unused this step) are averaged as they are. Backward passes without begin
 *   (gradient accumulation micro-steps) leave ready() without effect; finish without begin averages
 *   every gradient as it stands.
 *
 * Rules for the caller
 *   - Between begin and the return of finish, the group runs no other collective (it would interleave
 *     with the buckets differently on different ranks). With a group at COMM_THREAD_SERIALIZED, the
 *     process makes no other MPI call at all in that span: the buckets run on the reducer's thread, which
 *     MPI allows to any one thread at a time.
 *   - grads[i] is read and written by the reducer from the moment parameter i is ready until finish
 *     returns: nothing may write it in that span (nor read it and expect the averages before finish).
 *     Its address and counts[i] never change.
 *   - Every ready() call of a backward has returned before finish is called.
 *   - new and finish are COLLECTIVE (same order on every rank, same counts and options).
 *
 * Host buffers (opts->nccl NULL)
 *   A bucket of several parameters has a contiguous f32 buffer. The reducer's communication thread
 *   takes started buckets in order: it copies the bucket's gradients into its buffer, all-reduces it
 *   with comm_allreduce_beside(COMM_AVG) (polling with sleeps while backward runs, flat out once finish
 *   waits), and copies the averages back; a bucket of one parameter is reduced
 *   in place. ready() itself only counts, so backward's thread never copies or waits. The thread exists
 *   only when overlap is on, the group has more than one rank, and comm_thread_level_of(g) >=
 *   COMM_THREAD_SERIALIZED (and it could be started); otherwise overlap silently degrades to 0 and
 *   finish runs every bucket on the calling thread (comm_reducer_overlap tells which). Results are the
 *   same bits either way, and the same bits on every rank (see comm.h, Determinism). On a machine
 *   whose cores backward keeps busy, the thread's copies and reductions take their time from backward:
 *   overlap then hides waiting, not work.
 *
 * Device buffers (opts->nccl set; builds with NCCL only)
 *   grads[i] are device pointers on the NCCL handle's device. A bucket is launched on the NCCL stream
 *   (comm_nccl_stream) after an event recorded on compute_stream at launch time, so it reads the
 *   gradients once backward's kernels that wrote them are done; it is one ncclAllReduce(ncclAvg) per
 *   parameter inside one NCCL group, in place, without copies. ready() runs that launch on the hook's
 *   thread; NCCL may block there on the first use of the communicator while it connects to its peers.
 *   finish waits for the NCCL stream (comm_nccl_sync), so afterwards any stream sees the results; the
 *   stats' comm_s then comes from CUDA events around each bucket.
 *   A bf16 wire format needs a cast kernel, which this build (no nvcc) does not have: COMM_BF16 gives
 *   COMM_ENOTSUP at new.
 *
 * World size 1
 *   Nothing is copied or sent; finish only records its stats.
 *
 * Errors
 *   Codes and the err/errlen line as in comm.h. new checks its arguments on every rank, then all ranks
 *   agree over the group, so either all return the reducer or all return an error (a rank whose own
 *   arguments were fine gets a line pointing at the others); a rank that passed different counts than
 *   the others gets COMM_EINVAL there too. A failed bucket gives one line naming it, e.g.
 *   "comm: reducer bucket 3 (1048576 floats) all-reduce failed on rank 1: MPI_Allreduce ...": buckets
 *   after a failed one are not started, and the caller should comm_abort (other ranks may be waiting).
 *   ready() with an index out of range, a parameter ready twice in one backward, or begin twice without
 *   finish change nothing; finish still runs every bucket (so the ranks stay in step) and then returns
 *   COMM_EINVAL with a line saying what happened.
 */
#ifndef EMPD_COMM_REDUCER_H
#define EMPD_COMM_REDUCER_H

#include <stddef.h>

#include "comm/comm.h"
#include "comm/comm_nccl.h"

typedef struct comm_reducer comm_reducer;

typedef struct {
    size_t bucket_bytes;       /* 0: 25 MB (DDP's default) */
    size_t first_bucket_bytes; /* 0: 1 MB: the first bucket (the last parameters) is small so comm starts early */
    int overlap;               /* 1: buckets start from comm_reducer_ready during backward; 0: all start in finish */
    comm_dtype wire;           /* COMM_F32 (0); COMM_BF16 with NCCL only (COMM_EINVAL without, COMM_ENOTSUP in
                                  this build with) */
    comm_nccl *nccl;           /* NULL: host f32 buffers through the group; else device buffers through NCCL */
    void *compute_stream;      /* NCCL: the cudaStream_t backward runs on (NULL: the legacy default stream) */
} comm_reducer_opts;

/* COLLECTIVE. grads[i]: the f32 gradient buffer of parameter i, counts[i] elements (NULL allowed when
 * counts[i] is 0), host memory or device memory with opts->nccl. opts NULL: as all-zero options (every
 * default, overlap off).
 * On success *out holds the reducer, to release with comm_reducer_free. Returns COMM_EINVAL (null
 * grads or counts with n > 0, n < 0, a null grads[i] with elements, a wire other than f32/bf16, bf16
 * without NCCL, ranks that disagree on the layout), COMM_ENOTSUP (bf16 with NCCL, NCCL without the
 * backend in this build), COMM_ENOMEM, COMM_ECUDA or COMM_EMPI; then *out is NULL. */
int comm_reducer_new(comm_group *g, float *const *grads, const size_t *counts, int n, const comm_reducer_opts *opts,
                     comm_reducer **out, char *err, size_t errlen);

/* Joins the communication thread and frees everything; NULL is a no-op. Meant after finish: buckets
 * started and not finished yet are completed first, which needs the other ranks to run them too. */
void comm_reducer_free(comm_reducer *r);

/* Arms the reducer for the next backward. */
void comm_reducer_begin(comm_reducer *r);

/* Parameter i's gradient is final for this backward. Any thread; cheap (a count under a lock, a
 * wake-up of the communication thread, or on NCCL the launch of a bucket); never waits for the network
 * on the host path. Without begin: no effect. */
void comm_reducer_ready(comm_reducer *r, int i);

/* COLLECTIVE. Starts every bucket not started yet, waits for all, and leaves every grads[i] averaged
 * over the ranks (COMM_AVG) in place. Disarms. Returns 0, a bucket's error (see Errors), or COMM_EINVAL
 * for a misuse recorded since begin. */
int comm_reducer_finish(comm_reducer *r, char *err, size_t errlen);

/* Of the last finish: comm_s = seconds the all-reduces took (sum over buckets, each from the start of
 * its packing, or of its all-reduce, to its averages being in place), wait_s = seconds finish() took
 * (what the step paid on top of backward), buckets = buckets all-reduced (0 with one rank), early = how
 * many of them started before finish was called. The hidden share of communication is
 * 1 - wait_s/comm_s. */
typedef struct {
    double comm_s, wait_s;
    int buckets, early;
} comm_reducer_stats;
/* From the thread that called finish, or one ordered after it. */
void comm_reducer_stats_get(const comm_reducer *r, comm_reducer_stats *s);

/* Number of buckets of the layout. */
int comm_reducer_buckets(const comm_reducer *r);

/* First (highest) parameter index of bucket k and its number of parameters; buckets cover the indices
 * n-1 down to 0 in order. Returns COMM_EINVAL for k outside 0..buckets-1. */
int comm_reducer_bucket_params(const comm_reducer *r, int k, int *first, int *count);

/* 1 when buckets start during backward (overlap asked and possible), 0 when they all run in finish. */
int comm_reducer_overlap(const comm_reducer *r);

#endif
