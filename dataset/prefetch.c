/* prefetch.c: the ring of batches behind prefetch.h.
 *
 * Work is handed out row by row, in (batch, row) order, under one mutex: the worker that takes row 0 of a
 * batch first draws the batch's indices from the sampler (so draws, epoch rolls and positions happen in
 * batch order whatever the timing) into the ring slot batch % depth, once that slot has been released.
 * Rows are then filled outside the lock; the last row to finish marks the slot ready. Rows rather than
 * whole batches are the unit so that every thread helps with the batch the trainer waits for, even with a
 * ring of one or two batches of decoded video. */
#include "dataset/prefetch.h"

#include "dataset/error.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_HELD };

typedef struct {
    ds_batch b;
    int state;
    uint64_t seq;
    size_t *idx;                 /* [B] the sampler's indices */
    size_t n_real;
    ds_sampler_position after;
    int epoch_end;
    int rows_left;
} slot;

typedef struct {
    ds_prefetch *p;
    ds_loader_cursor *cur;
    pthread_t th;
    int started;
} worker;

struct ds_prefetch {
    ds_sampler s;
    int roll;
    uint64_t max_batches;
    int depth, n_workers, B;
    slot *slots;                 /* [depth] */
    worker *workers;             /* [n_workers] */
    pthread_mutex_t mu;
    pthread_cond_t work_cv;      /* workers: a slot was released, or stop */
    pthread_cond_t ready_cv;     /* consumer: a batch is ready, the source ended, an error settled */
    uint64_t task_batch;         /* the batch whose rows are being handed out */
    int task_row;                /* its next row */
    uint64_t prepared;           /* batches whose indices have been drawn */
    uint64_t end_seq;            /* batches from here on do not exist (UINT64_MAX: not known yet) */
    uint64_t next_deliver;
    int in_flight;               /* rows being filled */
    int stop;
    int err_rc;                  /* first error by (batch, row); 0 none */
    uint64_t err_seq;
    int err_row;
    char err_msg[512];
};

/* Under the lock: draws the indices of batch k into its slot. 0, or 1 when the source has ended. */
static int prepare(ds_prefetch *p, uint64_t k, slot *sl)
{
    if (p->max_batches && k >= p->max_batches)
        return 1;
    int rc = ds_sampler_next(&p->s, sl->idx, &sl->n_real);
    if (rc == DS_SAMPLER_EPOCH_END) {
        if (!p->roll)
            return 1;
        ds_sampler_set_epoch(&p->s, p->s.epoch + 1);
        ds_sampler_next(&p->s, sl->idx, &sl->n_real);
    }
    size_t global = (size_t)p->s.world * p->s.batch;
    sl->after = ds_sampler_get_position(&p->s);
    sl->epoch_end = sl->after.consumed >= (uint64_t)ds_sampler_steps_per_epoch(&p->s) * global;
    sl->seq = k;
    sl->state = SLOT_FILLING;
    sl->rows_left = p->B;
    sl->b.n = 0;
    p->prepared = k + 1;
    return 0;
}

/* Under the lock: the next (slot, row) to fill, or NULL when there is none now (*quit: none ever). */
static slot *claim(ds_prefetch *p, int *row, int *quit)
{
    *quit = p->stop || p->err_rc;
    uint64_t k = p->task_batch;
    if (*quit || k >= p->end_seq)
        return NULL;
    slot *sl = &p->slots[k % (uint64_t)p->depth];
    if (p->task_row == 0 && p->prepared == k) {
        if (sl->state != SLOT_FREE)
            return NULL;
        if (prepare(p, k, sl)) {
            p->end_seq = k;
            pthread_cond_broadcast(&p->ready_cv);
            return NULL;
        }
    }
    *row = p->task_row;
    if (++p->task_row == p->B) {
        p->task_row = 0;
        p->task_batch++;
    }
    p->in_flight++;
    return sl;
}

static void *work(void *arg)
{
    worker *w = arg;
    ds_prefetch *p = w->p;
    char msg[sizeof p->err_msg];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int row, quit;
        slot *sl = claim(p, &row, &quit);
        if (quit)
            break;
        if (!sl) {
            pthread_cond_wait(&p->work_cv, &p->mu);
            continue;
        }
        pthread_mutex_unlock(&p->mu);
        int rc = ds_loader_cursor_fill_row(w->cur, sl->idx[row], &sl->b, row, msg, sizeof msg);
        pthread_mutex_lock(&p->mu);
        p->in_flight--;
        if (rc && (!p->err_rc || sl->seq < p->err_seq || (sl->seq == p->err_seq && row < p->err_row))) {
            p->err_rc = rc;
            p->err_seq = sl->seq;
            p->err_row = row;
            snprintf(p->err_msg, sizeof p->err_msg, "%s", msg);
        }
        if (!rc && --sl->rows_left == 0) {
            sl->b.n = p->B;
            sl->state = SLOT_READY;
        }
        pthread_cond_broadcast(&p->ready_cv);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

void ds_prefetch_close(ds_prefetch *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; p->workers && i < p->n_workers; i++) {
        if (p->workers[i].started)
            pthread_join(p->workers[i].th, NULL);
        ds_loader_cursor_close(p->workers[i].cur);
    }
    for (int i = 0; p->slots && i < p->depth; i++) {
        ds_batch_free(&p->slots[i].b);
        free(p->slots[i].idx);
    }
    free(p->workers);
    free(p->slots);
    ds_sampler_free(&p->s);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->ready_cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static int check_opts(ds_loader *l, const char *split, const ds_sampler *s, const ds_prefetch_opts *o, char *err,
                      size_t errlen)
{
    if (o->threads < 0 || o->threads > DS_PREFETCH_MAX_THREADS || o->depth < 0 || o->depth > DS_PREFETCH_MAX_DEPTH)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "prefetch: %d threads, depth %d: need 1..%d threads and depth 1..%d",
                       o->threads, o->depth, DS_PREFETCH_MAX_THREADS, DS_PREFETCH_MAX_DEPTH);
    if ((size_t)o->shape.B != s->batch)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "prefetch: batch of %d rows for a sampler of %zu per rank",
                       o->shape.B, s->batch);
    size_t n = ds_loader_count(l, split);
    if (n == 0)
        return ds_fail(err, errlen, DS_SHARD_ENOENT, "prefetch: split \"%s\" is empty or not in the manifest", split);
    if (s->n > n)
        return ds_fail(err, errlen, DS_SHARD_EINVAL, "prefetch: a sampler over %zu samples for split %s of %zu",
                       s->n, split, n);
    return DS_SHARD_OK;
}

/* The sampler's own copy: same configuration, same position. */
static int copy_sampler(ds_sampler *dst, const ds_sampler *s, char *err, size_t errlen)
{
    ds_sampler_position pos = ds_sampler_get_position(s);
    int rc = ds_sampler_init(dst, s->n, s->world, s->rank, s->batch, s->seed, s->flags, err, errlen);
    if (rc == DS_SAMPLER_ERR_NOMEM)
        return DS_SHARD_ENOMEM;
    if (rc || ds_sampler_set_position(dst, &pos, err, errlen))
        return DS_SHARD_EINVAL;
    return DS_SHARD_OK;
}

int ds_prefetch_open(ds_loader *l, const char *split, const ds_sampler *s, const ds_prefetch_opts *opts,
                     ds_prefetch **out, char *err, size_t errlen)
{
    *out = NULL;
    int rc = check_opts(l, split, s, opts, err, errlen);
    if (rc)
        return rc;
    ds_prefetch *p = calloc(1, sizeof *p);
    if (!p)
        return ds_fail(err, errlen, DS_SHARD_ENOMEM, "prefetch: out of memory");
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->ready_cv, NULL);
    p->roll = opts->roll_epochs;
    p->max_batches = opts->max_batches;
    p->depth = opts->depth ? opts->depth : 2;
    p->n_workers = opts->threads ? opts->threads : 2;
    p->B = opts->shape.B;
    p->end_seq = UINT64_MAX;
    p->slots = calloc((size_t)p->depth, sizeof *p->slots);
    p->workers = calloc((size_t)p->n_workers, sizeof *p->workers);
    rc = p->slots && p->workers ? copy_sampler(&p->s, s, err, errlen)
                                : ds_fail(err, errlen, DS_SHARD_ENOMEM, "prefetch: out of memory");
    for (int i = 0; !rc && i < p->depth; i++) {
        rc = ds_batch_alloc(&p->slots[i].b, &opts->shape, opts->allocator, err, errlen);
        if (!rc && !(p->slots[i].idx = malloc((size_t)p->B * sizeof *p->slots[i].idx)))
            rc = ds_fail(err, errlen, DS_SHARD_ENOMEM, "prefetch: out of memory");
    }
    for (int i = 0; !rc && i < p->n_workers; i++) {
        p->workers[i].p = p;
        rc = ds_loader_cursor_open(l, split, &p->workers[i].cur, err, errlen);
    }
    for (int i = 0; !rc && i < p->n_workers; i++) {
        if (pthread_create(&p->workers[i].th, NULL, work, &p->workers[i]) != 0)
            rc = ds_fail(err, errlen, DS_SHARD_EIO, "prefetch: cannot start worker thread %d of %d", i + 1,
                         p->n_workers);
        else
            p->workers[i].started = 1;
    }
    if (rc) {
        ds_prefetch_close(p);
        return rc;
    }
    *out = p;
    return DS_SHARD_OK;
}

int ds_prefetch_next(ds_prefetch *p, ds_prefetch_item *item, char *err, size_t errlen)
{
    memset(item, 0, sizeof *item);
    pthread_mutex_lock(&p->mu);
    uint64_t k = p->next_deliver;
    slot *sl = &p->slots[k % (uint64_t)p->depth];
    int rc;
    for (;;) {
        if (sl->state == SLOT_READY && sl->seq == k) {
            sl->state = SLOT_HELD;
            p->next_deliver++;
            *item = (ds_prefetch_item){&sl->b, sl->n_real, sl->after, sl->epoch_end, k};
            rc = DS_SHARD_OK;
            break;
        }
        if (sl->state == SLOT_HELD) {
            rc = ds_fail(err, errlen, DS_SHARD_EINVAL, "prefetch: batch %llu is still held (release it before asking "
                         "for batch %llu)", (unsigned long long)sl->seq, (unsigned long long)k);
            break;
        }
        /* Every row of a batch before the failing one was handed out before it: once nothing is in flight,
         * a batch that is not ready is the failing one or after it. */
        if (p->err_rc && p->in_flight == 0) {
            rc = ds_fail(err, errlen, p->err_rc, "%s", p->err_msg);
            break;
        }
        if (k >= p->end_seq) {
            rc = DS_PREFETCH_END;
            break;
        }
        pthread_cond_wait(&p->ready_cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

void ds_prefetch_release(ds_prefetch *p, const ds_prefetch_item *item)
{
    pthread_mutex_lock(&p->mu);
    slot *sl = &p->slots[item->seq % (uint64_t)p->depth];
    if (sl->state == SLOT_HELD && sl->seq == item->seq) {
        sl->state = SLOT_FREE;
        pthread_cond_broadcast(&p->work_cv);
    }
    pthread_mutex_unlock(&p->mu);
}
