/* sampler.c: world-size-independent distributed sampling (see sampler.h). */
#include "dataset/sampler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/pyrandom.h"

static size_t global_batch(const ds_sampler *s) { return (size_t)s->world * s->batch; }

size_t ds_sampler_steps_per_epoch(const ds_sampler *s)
{
    size_t g = global_batch(s);
    return (s->flags & DS_SAMPLER_DROP_LAST) ? s->n / g : (s->n + g - 1) / g;
}

void ds_sampler_set_epoch(ds_sampler *s, uint64_t epoch)
{
    for (size_t i = 0; i < s->n; i++)
        s->order[i] = i;
    if (s->flags & DS_SAMPLER_SHUFFLE) {
        /* Seeding with the integer seed + epoch * 2^64 keeps every (seed, epoch) pair distinct, unlike
         * PyTorch's seed + epoch, and stays one random.seed() call in Python. */
        uint64_t limbs[2] = {s->seed, epoch};
        pyrandom r;
        pyrandom_seed_limbs(&r, limbs, 2);
        pyrandom_shuffle(&r, s->order, s->n);
    }
    s->epoch = epoch;
    s->consumed = 0;
}

int ds_sampler_init(ds_sampler *s, size_t n, int world, int rank, size_t batch_per_rank, uint64_t seed,
                    unsigned flags, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    const char *why = NULL;
    if (n == 0)
        why = "the dataset is empty";
    else if (world < 1)
        why = "world size must be at least 1";
    else if (rank < 0 || rank >= world)
        why = "rank must be in [0, world)";
    else if (batch_per_rank == 0)
        why = "batch per rank must be at least 1";
    else if (batch_per_rank > SIZE_MAX / 2 / (size_t)world)
        why = "world * batch per rank overflows";
    else if ((flags & DS_SAMPLER_DROP_LAST) && n < (size_t)world * batch_per_rank)
        why = "drop_last leaves no step: fewer samples than world * batch per rank (lower the batch or "
              "turn drop_last off)";
    if (why) {
        if (err && errlen)
            snprintf(err, errlen, "sampler: n=%zu world=%d rank=%d batch=%zu: %s", n, world, rank,
                     batch_per_rank, why);
        return DS_SAMPLER_ERR_ARG;
    }
    s->order = malloc(n * sizeof *s->order);
    if (!s->order) {
        if (err && errlen)
            snprintf(err, errlen, "sampler: out of memory for an order of %zu samples", n);
        return DS_SAMPLER_ERR_NOMEM;
    }
    s->n = n;
    s->world = world;
    s->rank = rank;
    s->batch = batch_per_rank;
    s->seed = seed;
    s->flags = flags;
    ds_sampler_set_epoch(s, 0);
    return DS_SAMPLER_OK;
}

void ds_sampler_free(ds_sampler *s)
{
    free(s->order);
    memset(s, 0, sizeof *s);
}

int ds_sampler_next(ds_sampler *s, size_t *idx_out, size_t *n_real)
{
    size_t g = global_batch(s);
    if (s->consumed >= (uint64_t)ds_sampler_steps_per_epoch(s) * g)
        return DS_SAMPLER_EPOCH_END;
    size_t base = (size_t)s->consumed + (size_t)s->rank * s->batch, real = 0;
    for (size_t i = 0; i < s->batch; i++) {
        size_t k = base + i;
        idx_out[i] = s->order[k % s->n];
        real += k < s->n;
    }
    if (n_real)
        *n_real = real;
    s->consumed += g;
    return DS_SAMPLER_OK;
}

ds_sampler_position ds_sampler_get_position(const ds_sampler *s)
{
    ds_sampler_position p = {s->epoch, s->consumed};
    return p;
}

int ds_sampler_set_position(ds_sampler *s, const ds_sampler_position *pos, char *err, size_t errlen)
{
    uint64_t g = global_batch(s), total = (uint64_t)ds_sampler_steps_per_epoch(s) * g;
    if (pos->consumed % g != 0 || pos->consumed > total) {
        if (err && errlen)
            snprintf(err, errlen,
                     "sampler: cannot resume epoch %llu at %llu consumed samples with world %d x batch %zu "
                     "(needs a multiple of %llu, at most %llu): resume with the saved world size and batch, "
                     "or from a checkpoint taken at an epoch start",
                     (unsigned long long)pos->epoch, (unsigned long long)pos->consumed, s->world, s->batch,
                     (unsigned long long)g, (unsigned long long)total);
        return DS_SAMPLER_ERR_POSITION;
    }
    if (pos->epoch != s->epoch)
        ds_sampler_set_epoch(s, pos->epoch);
    s->consumed = pos->consumed;
    return DS_SAMPLER_OK;
}
