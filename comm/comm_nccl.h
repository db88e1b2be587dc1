/* comm_nccl: all-reduce of GPU buffers with NCCL, one CUDA device per rank, bootstrapped over a comm_group.
 *
 * Built when CMake found the CUDA toolkit and nccl.h (EMPD_HAVE_NCCL); otherwise every call below except
 * comm_have_nccl returns COMM_ENOTSUP with a line saying so. Needs NCCL >= 2.14. This header pulls in
 * no CUDA or NCCL header: streams are passed as `void *` (a cudaStream_t).
 *
 * Lifetime
 *   comm_nccl_init makes one NCCL communicator spanning every rank of a live comm_group, on the device
 *   local_rank % (devices on this host), with its own non-blocking CUDA stream. comm_nccl_destroy
 *   releases it; destroy it before comm_finalize of the group it was made from.
 *
 * Collective calls
 *   init, allreduce and destroy are COLLECTIVE over the group: every rank calls them in the same order
 *   with the same count, dtype and op. init agrees over the group (MPI or TCP: the unique id travels
 *   by comm_broadcast) after each step, so when any rank fails (no GPU, a CUDA or NCCL error) every
 *   rank returns an error instead of waiting for the others; only a rank that dies inside
 *   ncclCommInitRank itself can leave the others blocked there.
 *
 * Watchdog
 *   The communicator registers with its group: when the group's watchdog ends the job, or comm_abort
 *   is called on the group, ncclCommAbort runs first. comm_nccl_sync waits under the group's deadline
 *   (comm_set_timeout) and polls NCCL's asynchronous error while it waits; on such an error it aborts
 *   the communicator and returns COMM_ENCCL (the handle then only accepts comm_nccl_destroy).
 *
 * Threads and streams
 *   A handle is used by one thread at a time. Each call makes the handle's device current on the calling
 *   thread first (so a progress thread may use it) and leaves it current. comm_nccl_allreduce only
 *   enqueues work on the handle's stream and returns; the result is in place once that stream reaches
 *   it: call comm_nccl_sync, or order other streams after it with CUDA events.
 *
 * Errors
 *   Codes and the `err`/`errlen` line work as in comm.h. COMM_ENOGPU: no usable CUDA device (no driver,
 *   no device), with the line "comm: no GPU: cudaGetDeviceCount: <CUDA's error string>".
 *   COMM_ECUDA / COMM_ENCCL carry cudaGetErrorString / ncclGetErrorString in the line.
 */
#ifndef EMPD_COMM_NCCL_H
#define EMPD_COMM_NCCL_H

#include <stddef.h>

#include "comm/comm.h"

/* Opaque handle of an NCCL communicator over a comm_group. */
typedef struct comm_nccl comm_nccl;

/* 1 if this build has the NCCL backend, 0 if not. */
int comm_have_nccl(void);

/* Not collective. 0 if this process sees at least one CUDA device; COMM_ENOGPU with the "no GPU" line
 * when it sees none or the driver is missing; COMM_ENOTSUP without NCCL in the build. */
int comm_nccl_probe(char *err, size_t errlen);

/* COLLECTIVE over g. Sets this rank's device, makes a stream, and joins an NCCL communicator of
 * comm_size(g) ranks (its unique id made on rank 0 and broadcast over g). On success *out holds a handle
 * for comm_nccl_destroy; otherwise *out is NULL and every rank returns an error: COMM_ENOGPU (any rank
 * has no GPU), COMM_ECUDA, COMM_ENCCL, COMM_EMPI or COMM_ENET (the group's own failure), COMM_ENOMEM,
 * COMM_ENOTSUP. Destroy it before comm_finalize of g. */
int comm_nccl_init(comm_group *g, comm_nccl **out, char *err, size_t errlen);

/* The CUDA device index this rank uses. */
int comm_nccl_device(const comm_nccl *n);

/* The handle's CUDA stream (a cudaStream_t), on which every all-reduce runs. */
void *comm_nccl_stream(const comm_nccl *n);

/* COLLECTIVE. Enqueues an in-place all-reduce of `count` elements of `dt` at device pointer `dev_buf` on
 * the handle's stream. COMM_F32 and COMM_BF16 (and COMM_F64, COMM_I64) with COMM_SUM, COMM_AVG
 * (ncclAvg; not for COMM_I64), COMM_MAX, COMM_MIN. Returns COMM_EINVAL, COMM_ECUDA or COMM_ENCCL; errors
 * of the running kernel surface in comm_nccl_sync. */
int comm_nccl_allreduce(comm_nccl *n, void *dev_buf, size_t count, comm_dtype dt, comm_op op, char *err,
                        size_t errlen);

/* Not collective. Waits until the handle's stream has finished its work, polling the stream and NCCL's
 * asynchronous error (a peer that died, a network failure) meanwhile; the group's watchdog ends the job
 * if the wait outlasts comm_set_timeout. Returns COMM_ECUDA, or COMM_ENCCL after aborting the
 * communicator on an asynchronous error. */
int comm_nccl_sync(comm_nccl *n, char *err, size_t errlen);

/* COLLECTIVE. Waits for the stream, finalises and frees the communicator, destroys the stream, frees
 * the handle (NULL is a no-op returning 0). The handle is gone even when an error is returned. A
 * communicator aborted after an error is only freed. */
int comm_nccl_destroy(comm_nccl *n, char *err, size_t errlen);

#endif
