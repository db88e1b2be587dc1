/* prefetch.h: batches filled ahead of the trainer by worker threads, delivered in sampler order.
 *
 * A prefetcher owns a copy of a sampler (sampler.h) and a fixed ring of `depth` batches allocated once at
 * open, from the caller's allocator (pinned memory for a CUDA trainer): memory stays at depth batches
 * however long it runs. Worker threads (each with its own cursor: read transaction and JPEG decoder) fill
 * the rows of the next batches in parallel; ds_prefetch_next hands out batch 0, 1, 2, ... in the order the
 * sampler drew them, so the batches, their contents and the positions they carry are the same for any
 * number of threads and any depth, and equal what ds_loader_fill gives for the same indices.
 *
 * Every delivered batch carries the sampler position after it. A trainer checkpoints the position of the
 * last batch it CONSUMED (not of the last one prefetched) and, on resume, opens a prefetcher from a sampler
 * set to that position: the batches that follow are those the uninterrupted run saw.
 *
 * Epochs: with roll_epochs the prefetcher moves its sampler to the next epoch by itself when one is used
 * up (as the trainer did on DS_SAMPLER_EPOCH_END) and marks the epoch's last batch with epoch_end;
 * without it (evaluation) ds_prefetch_next returns DS_PREFETCH_END after the epoch's last batch.
 *
 * Errors: a worker that cannot fill a row stops the workers; the consumer first receives the batches
 * drawn before the failing one, then the error (the first by batch and row), one line naming the split,
 * the sample and the shard file or the field. ds_prefetch_close never waits for more than the rows being
 * filled at that moment, whatever state the consumer or the workers are in.
 *
 * Threads: one consumer thread calls next/release/close; the workers are internal.
 * Return codes: DS_SHARD_* (record.h), and DS_PREFETCH_END.
 */
#ifndef EMPD_DATASET_PREFETCH_H
#define EMPD_DATASET_PREFETCH_H

#include "dataset/loader.h"
#include "dataset/sampler.h"

#include <stddef.h>
#include <stdint.h>

#define DS_PREFETCH_END 1          /* ds_prefetch_next: nothing more to deliver */
#define DS_PREFETCH_MAX_THREADS 64
#define DS_PREFETCH_MAX_DEPTH 64

typedef struct {
    int threads;           /* worker threads, 1..DS_PREFETCH_MAX_THREADS; 0 means 2 */
    int depth;             /* batches in the ring, 1..DS_PREFETCH_MAX_DEPTH; 0 means 2 */
    ds_batch_shape shape;  /* shape.B must equal the sampler's batch per rank */
    int roll_epochs;       /* 1: continue into the next epoch (training); 0: end with the epoch */
    uint64_t max_batches;  /* deliver at most this many, then DS_PREFETCH_END; 0: no limit */
    const ds_allocator *allocator; /* the ring's memory; NULL: 64-byte aligned malloc */
} ds_prefetch_opts;

/* One delivered batch. The batch stays the caller's until ds_prefetch_release. */
typedef struct {
    ds_batch *batch;               /* all B rows filled (b->n == B) */
    size_t n_real;                 /* leading rows that are real samples; the rest wrap around to pad the
                                      epoch's last global batch (sampler without DS_SAMPLER_DROP_LAST) */
    ds_sampler_position after;     /* the sampler's position once this batch was drawn */
    int epoch_end;                 /* 1: the last batch of its epoch */
    uint64_t seq;                  /* 0, 1, 2, ... in delivery order */
} ds_prefetch_item;

typedef struct ds_prefetch ds_prefetch;

/* Start prefetching split from the position of sampler s (copied: s is not touched later). The
 * loader must outlive the prefetcher. DS_SHARD_EINVAL (bad options, shape, or a shape.B that is not the
 * sampler's batch; a sampler with more samples than the split), DS_SHARD_ENOENT (unknown or empty
 * split), DS_SHARD_ENOMEM, DS_SHARD_EIO (a thread cannot start). On failure nothing is left running. */
int ds_prefetch_open(ds_loader *l, const char *split, const ds_sampler *s, const ds_prefetch_opts *opts,
                     ds_prefetch **out, char *err, size_t errlen);

/* The next batch in sampler order, waiting for it if needed. DS_SHARD_OK with *item set,
 * DS_PREFETCH_END when the epoch (without roll_epochs) or max_batches is used up, or the error of the
 * worker that failed (the same code and line on every later call). DS_SHARD_EINVAL when all `depth`
 * batches are held by the caller (release one first). */
int ds_prefetch_next(ds_prefetch *p, ds_prefetch_item *item, char *err, size_t errlen);

/* Give the batch of item back to the ring, to be refilled. Each delivered item exactly once. */
void ds_prefetch_release(ds_prefetch *p, const ds_prefetch_item *item);

/* Stop the workers, wait for them, free the ring (batches still held become invalid). NULL is a no-op. */
void ds_prefetch_close(ds_prefetch *p);

#endif
