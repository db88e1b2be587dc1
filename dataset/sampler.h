/* sampler.h: which samples each rank trains on, step by step (DistributedSampler semantics, made
 * independent of the world size).
 *
 * Each epoch has one order of 0..n-1 for the whole job: with DS_SAMPLER_SHUFFLE it is
 *     p = list(range(n)); random.seed(seed + (epoch << 64)); random.shuffle(p)       # CPython
 * (pyrandom reproduces it bit for bit, so the order can be replayed in Python); without it, the identity
 * (evaluation). A step consumes the next G = world * batch_per_rank entries of that order (the GLOBAL
 * batch), and rank r takes entries [r*batch_per_rank, (r+1)*batch_per_rank) of it. Hence:
 *   - ranks of one step get disjoint slices, and their union is the same whatever the world size:
 *     "2 ranks x batch B" and "1 rank x batch 2B" consume exactly the same samples per step;
 *   - the position is global, (epoch, entries consumed in this epoch), so a job can resume with another
 *     world size as long as the consumed count is a multiple of the new G.
 * Every rank runs steps_per_epoch steps: floor(n / G) with DS_SAMPLER_DROP_LAST (the tail is not seen
 * this epoch), else ceil(n / G), the last global batch padded by wrapping to the start of the order
 * (entry k >= n is order[k mod n]); ds_sampler_next says how many of a rank's entries are real.
 *
 * The epoch does not advance by itself: ds_sampler_next returns DS_SAMPLER_EPOCH_END once the epoch is
 * consumed, and the caller (who evaluates, checkpoints, ... between epochs) calls ds_sampler_set_epoch.
 * A checkpoint taken between epochs should store {epoch + 1, 0}.
 */
#ifndef EMPD_DATASET_SAMPLER_H
#define EMPD_DATASET_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#define DS_SAMPLER_SHUFFLE 0x1u   /* a new seeded order every epoch (training); else identity (eval) */
#define DS_SAMPLER_DROP_LAST 0x2u /* floor steps; else ceil steps with wrap-around padding */

#define DS_SAMPLER_OK 0
#define DS_SAMPLER_EPOCH_END 1        /* ds_sampler_next: nothing left in this epoch */
#define DS_SAMPLER_ERR_ARG (-1)       /* invalid n/world/rank/batch combination */
#define DS_SAMPLER_ERR_NOMEM (-2)
#define DS_SAMPLER_ERR_POSITION (-3)  /* a position this configuration cannot continue from */

typedef struct {
    uint64_t epoch;
    uint64_t consumed; /* global entries consumed in this epoch: steps done * world * batch_per_rank */
} ds_sampler_position;

/* Fields are readable; change them only through the functions below. */
typedef struct {
    size_t n, batch;
    int world, rank;
    uint64_t seed;
    unsigned flags;
    uint64_t epoch, consumed;
    size_t *order; /* this epoch's order of 0..n-1 */
} ds_sampler;

/* Prepares epoch 0, position 0. Fails (DS_SAMPLER_ERR_ARG, one line in err) when n == 0, world < 1,
 * rank outside [0, world), batch_per_rank == 0, world * batch_per_rank overflows, or DS_SAMPLER_DROP_LAST
 * leaves no step (n < world * batch_per_rank); DS_SAMPLER_ERR_NOMEM when the order cannot be allocated.
 * On failure *s needs no free. Holds n size_t of memory. */
int ds_sampler_init(ds_sampler *s, size_t n, int world, int rank, size_t batch_per_rank, uint64_t seed,
                    unsigned flags, char *err, size_t errlen);

/* Frees the order and zeroes *s. Safe on a zeroed sampler. */
void ds_sampler_free(ds_sampler *s);

/* Steps each rank runs per epoch (the same on every rank). */
size_t ds_sampler_steps_per_epoch(const ds_sampler *s);

/* Moves to the start of `epoch` (its order is recomputed from seed and epoch; cost O(n)). */
void ds_sampler_set_epoch(ds_sampler *s, uint64_t epoch);

/* Writes this rank's batch_per_rank indices of the next step into idx_out and advances the global
 * position by world * batch_per_rank. *n_real (if not NULL) receives how many leading entries are real;
 * the rest are wrap-around padding (only in the last step without DS_SAMPLER_DROP_LAST), which an
 * evaluation should ignore. Returns DS_SAMPLER_OK, or DS_SAMPLER_EPOCH_END (idx_out untouched). */
int ds_sampler_next(ds_sampler *s, size_t *idx_out, size_t *n_real);

/* The global position, for checkpoints. */
ds_sampler_position ds_sampler_get_position(const ds_sampler *s);

/* Continues from a saved position, possibly saved with another world size or batch. Fails with
 * DS_SAMPLER_ERR_POSITION (sampler unchanged, one line in err) when pos->consumed is not a multiple of
 * world * batch_per_rank or exceeds steps_per_epoch * world * batch_per_rank. */
int ds_sampler_set_position(ds_sampler *s, const ds_sampler_position *pos, char *err, size_t errlen);

#endif
