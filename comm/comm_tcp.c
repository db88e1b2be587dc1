/* The TCP backend: the group's life, and collectives on host buffers over the ring the rendezvous built
 * (each step of them runs in comm_tcp_step.c).
 *
 * All-reduce is a ring reduce-scatter followed by a ring all-gather: every element is reduced on one
 * rank only, in a fixed order, then copied to the others, so every rank holds the same bits; each
 * rank sends and receives 2 (size-1)/size of the buffer whatever the size. Broadcast is pipelined
 * along the ring from the root in segments; all-gather and barrier are size-1 ring steps. */
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "comm/comm_tcp.h"

#define TCP_SCRATCH ((size_t)512 << 10)
#define TCP_BCAST_SEGMENT ((size_t)4 << 20)

/* Every distinct connection of this rank and the rank at its other end. */
static int list_fds(const comm_group *g, int *fd, int *peer)
{
    const struct comm_tcp *t = g->tcp;
    int n = 0;
    for (int r = 0; r < g->size; r++)
        if (t->star[r] >= 0)
            fd[n] = t->star[r], peer[n++] = r;
    if (t->ring_next >= 0)
        fd[n] = t->ring_next, peer[n++] = t->next_rank;
    if (t->ring_prev >= 0)
        fd[n] = t->ring_prev, peer[n++] = t->prev_rank;
    return n;
}

static void release(struct comm_tcp *t)
{
    if (!t)
        return;
    free(t->star);
    free(t->watch);
    free(t->wpeer);
    free(t->pmap);
    free(t->pfd);
    free(t->scratch);
    free(t);
}

int comm_tcp_init(comm_group *g, const comm_env *e, char *err, size_t errlen)
{
    g->rank = e->rank;
    g->size = e->size;
    g->local_rank = 0;
    g->local_size = 1;
    g->thread_level = COMM_THREAD_MULTIPLE;
    struct comm_tcp *t = calloc(1, sizeof *t);
    if (t) {
        const size_t n = (size_t)g->size + 2;
        t->star = malloc(n * sizeof *t->star);
        t->watch = malloc(n * sizeof *t->watch);
        t->wpeer = malloc(n * sizeof *t->wpeer);
        t->pmap = malloc(n * sizeof *t->pmap);
        t->pfd = malloc(n * sizeof *t->pfd);
        t->scratch = malloc(TCP_SCRATCH);
        t->scratch_len = TCP_SCRATCH;
    }
    if (!t || !t->star || !t->watch || !t->wpeer || !t->pmap || !t->pfd || !t->scratch) {
        release(t);
        return comm_fail(err, errlen, COMM_ENOMEM, "comm: out of memory for the TCP group of %d on rank %d", g->size,
                         g->rank);
    }
    for (int r = 0; r < g->size; r++)
        t->star[r] = -1;
    t->ring_next = t->ring_prev = -1;
    int code = g->size > 1 ? comm_rendezvous(g, e, t, err, errlen) : COMM_OK;
    if (code) {
        comm_tcp_close_all(t, g->size);
        release(t);
        return code;
    }
    g->tcp = t;
    return COMM_OK;
}

void comm_tcp_abort(comm_group *g)
{
    struct comm_tcp *t = g->tcp;
    if (!t)
        return;
    /* The control connections are idle: a notice there lets every rank say who ended the job, instead
     * of taking this rank for dead. */
    const comm_tcp_header notice = {.kind = COMM_TCP_NOTICE, .count = (uint64_t)g->rank, .aux = COMM_TCP_FAILED};
    const int64_t soon = comm_now_ns() + 100000000;
    for (int r = 0; r < g->size; r++)
        if (t->star[r] >= 0)
            comm_sock_write(t->star[r], &notice, sizeof notice, soon);
    for (int r = 0; r < g->size; r++)
        if (t->star[r] >= 0)
            shutdown(t->star[r], SHUT_RDWR);
    if (t->ring_next >= 0)
        shutdown(t->ring_next, SHUT_RDWR);
    if (t->ring_prev >= 0)
        shutdown(t->ring_prev, SHUT_RDWR);
}

/* Element range of chunk k of n over count elements: balanced, the first count % n one longer. */
static size_t chunk_start(size_t count, int n, int k)
{
    const size_t q = count / (size_t)n, extra = count % (size_t)n;
    return (size_t)k * q + ((size_t)k < extra ? (size_t)k : extra);
}

static int ring_index(int x, int n) { return (x % n + n) % n; }

/* One ring step over the chunks of a buffer of count elements of c->dt: chunk `out` goes to the next
 * rank while chunk `in` comes from the previous one (added in when reduce). */
static int pass_chunks(comm_tcp_op *c, unsigned char *p, size_t count, int out, int in, int reduce)
{
    const int n = c->g->size;
    const size_t es = comm_dtype_size(c->dt);
    size_t o0 = chunk_start(count, n, out), o1 = chunk_start(count, n, out + 1);
    size_t i0 = chunk_start(count, n, in), i1 = chunk_start(count, n, in + 1);
    comm_tcp_xfer snd = comm_tcp_to_next(c, p + o0 * es, (o1 - o0) * es);
    comm_tcp_xfer rcv = comm_tcp_from_prev(c, p + i0 * es, (i1 - i0) * es, reduce);
    return comm_tcp_step(c, &snd, &rcv);
}

int comm_tcp_allreduce(comm_group *g, void *buf, size_t count, comm_dtype dt, comm_op op, char *err, size_t errlen)
{
    comm_tcp_op c;
    int code = comm_tcp_op_begin(&c, g, COMM_CALL_ALLREDUCE, count, (uint64_t)dt | (uint64_t)op << 8, err, errlen);
    const int n = g->size, r = g->rank;
    if (code || n == 1)
        return code;
    c.dt = dt;
    c.op = op;
    unsigned char *p = buf;
    /* Reduce-scatter: after step s, chunk r - s - 1 holds the sum of s + 2 ranks; at the end this rank
     * holds chunk r + 1 complete. */
    for (int s = 0; s < n - 1 && !code; s++)
        code = pass_chunks(&c, p, count, ring_index(r - s, n), ring_index(r - s - 1, n), 1);
    if (!code && op == COMM_AVG) {
        const int own = (r + 1) % n;
        const size_t o0 = chunk_start(count, n, own);
        comm_divide_by_size(p + o0 * comm_dtype_size(dt), chunk_start(count, n, own + 1) - o0, dt, n);
    }
    /* All-gather: every complete chunk travels once around the ring. */
    for (int s = 0; s < n - 1 && !code; s++)
        code = pass_chunks(&c, p, count, ring_index(r + 1 - s, n), ring_index(r - s, n), 0);
    return code;
}

int comm_tcp_broadcast(comm_group *g, void *buf, size_t bytes, int root, char *err, size_t errlen)
{
    comm_tcp_op c;
    int code = comm_tcp_op_begin(&c, g, COMM_CALL_BROADCAST, bytes, (uint64_t)root, err, errlen);
    const int n = g->size;
    if (code || n == 1)
        return code;
    const int pos = (g->rank - root + n) % n; /* 0: the root; n - 1: the end of the ring */
    const size_t nseg = bytes ? (bytes + TCP_BCAST_SEGMENT - 1) / TCP_BCAST_SEGMENT : 1;
    unsigned char *p = buf;
    /* Step k receives segment k and passes segment k - 1 on, so a long buffer flows down the ring. */
    for (size_t k = 0; k <= nseg && !code; k++) {
        comm_tcp_xfer snd = comm_tcp_none, rcv = comm_tcp_none;
        if (pos < n - 1 && (pos == 0 ? k < nseg : k >= 1)) {
            size_t a = (pos == 0 ? k : k - 1) * TCP_BCAST_SEGMENT;
            snd = comm_tcp_to_next(&c, p + a, bytes - a < TCP_BCAST_SEGMENT ? bytes - a : TCP_BCAST_SEGMENT);
        }
        if (pos > 0 && k < nseg) {
            size_t a = k * TCP_BCAST_SEGMENT;
            rcv = comm_tcp_from_prev(&c, p + a, bytes - a < TCP_BCAST_SEGMENT ? bytes - a : TCP_BCAST_SEGMENT, 0);
        }
        if (snd.fd >= 0 || rcv.fd >= 0)
            code = comm_tcp_step(&c, &snd, &rcv);
    }
    return code;
}

int comm_tcp_barrier(comm_group *g, char *err, size_t errlen)
{
    comm_tcp_op c;
    int code = comm_tcp_op_begin(&c, g, COMM_CALL_BARRIER, 0, 0, err, errlen);
    /* After step s a rank has heard, through its predecessors, from s + 1 others. */
    for (int s = 0; s < g->size - 1 && !code; s++) {
        comm_tcp_xfer snd = comm_tcp_to_next(&c, NULL, 0);
        comm_tcp_xfer rcv = comm_tcp_from_prev(&c, NULL, 0, 0);
        code = comm_tcp_step(&c, &snd, &rcv);
    }
    return code;
}

int comm_tcp_allgather(comm_group *g, const void *send, void *recv, size_t bytes, char *err, size_t errlen)
{
    comm_tcp_op c;
    int code = comm_tcp_op_begin(&c, g, COMM_CALL_ALLGATHER, bytes, 0, err, errlen);
    const int n = g->size, r = g->rank;
    if (code)
        return code;
    unsigned char *out = recv;
    if (bytes)
        memcpy(out + (size_t)r * bytes, send, bytes);
    for (int s = 0; s < n - 1 && !code; s++) {
        comm_tcp_xfer snd = comm_tcp_to_next(&c, out + (size_t)ring_index(r - s, n) * bytes, bytes);
        comm_tcp_xfer rcv = comm_tcp_from_prev(&c, out + (size_t)ring_index(r - s - 1, n) * bytes, bytes, 0);
        code = comm_tcp_step(&c, &snd, &rcv);
    }
    return code;
}

/* Why rank `peer` said something other than the expected goodbye `bye`, or 0 when it did. */
static int check_goodbye(comm_group *g, int fd, int peer, const comm_tcp_header *bye, char *err, size_t errlen)
{
    comm_tcp_header h;
    int rc = comm_sock_read(fd, &h, sizeof h, INT64_MAX);
    if (rc)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: leaving the group on rank %d: rank %d closed its connection without comm_finalize "
                         "(did it die?)",
                         g->rank, peer);
    if (h.kind == COMM_TCP_NOTICE)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: leaving the group on rank %d: rank %d failed in the last collective (its own line says "
                         "why)",
                         g->rank, peer);
    if (h.kind != COMM_CALL_FINALIZE)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: leaving the group on rank %d: rank %d is still making collective calls (every rank "
                         "must make the same ones before comm_finalize)",
                         g->rank, peer);
    if (h.seq != bye->seq)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: leaving the group on rank %d: rank %d made %u collective calls, this rank %u", g->rank,
                         peer, (unsigned)h.seq - 1, (unsigned)bye->seq - 1);
    char extra;
    if (comm_sock_read(fd, &extra, 1, INT64_MAX) != COMM_SOCK_EOF)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: leaving the group on rank %d: rank %d sent more after its goodbye", g->rank, peer);
    return COMM_OK;
}

/* Every rank says goodbye on each connection and reads the others' goodbyes up to the end of the
 * stream, so a peer's closing connection is never taken for its death. */
int comm_tcp_finalize(comm_group *g, char *err, size_t errlen)
{
    struct comm_tcp *t = g->tcp;
    int code = COMM_OK;
    if (!t->broken && g->size > 1) {
        int *fds = t->watch, *peer = t->pmap, n = list_fds(g, fds, peer);
        const comm_tcp_header bye = {.kind = COMM_CALL_FINALIZE, .seq = t->seq + 1};
        for (int i = 0; i < n; i++) {
            comm_sock_write(fds[i], &bye, sizeof bye, INT64_MAX);
            shutdown(fds[i], SHUT_WR);
        }
        for (int i = 0; i < n && !code; i++)
            code = check_goodbye(g, fds[i], peer[i], &bye, err, errlen);
    }
    comm_tcp_close_all(t, g->size);
    release(t);
    g->tcp = NULL;
    return code;
}
