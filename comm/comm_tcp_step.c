/* One step of a TCP collective: a send to the next rank and a receive from the previous one at once,
 * the checks of every header, the reductions, and how a failure reaches every rank.
 *
 * Both directions progress together (poll on non-blocking sockets), so neither side's send buffer can
 * fill up and stall the ring. While it waits, a rank watches its control connections: rank 0 all of
 * them, the others the one to rank 0.
 *
 * A failure travels around the ring: the rank after a dead one fails and closes its links, then the
 * next. So that every rank names where it began, a failing rank first sends rank 0 a notice naming the
 * rank it blames; rank 0 follows the notices back to the first rank that died or failed by itself,
 * and tells every rank. */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm_tcp.h"

const comm_tcp_xfer comm_tcp_none = {.fd = -1};

void comm_tcp_close_all(struct comm_tcp *t, int size)
{
    for (int r = 0; r < size; r++)
        if (t->star[r] >= 0) {
            close(t->star[r]);
            t->star[r] = -1;
        }
    if (t->ring_next >= 0)
        close(t->ring_next);
    if (t->ring_prev >= 0)
        close(t->ring_prev);
    t->ring_next = t->ring_prev = -1;
}

/* The failure began at rank `root`; the line says how, the other ranks learn it, the group closes. */
static int group_fail(comm_tcp_op *c, int root, comm_tcp_why why, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int group_fail(comm_tcp_op *c, int root, comm_tcp_why why, const char *fmt, ...)
{
    struct comm_tcp *t = c->t;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->broken_why, sizeof t->broken_why, fmt, ap);
    va_end(ap);
    t->broken = 1;
    const comm_tcp_header notice = {.kind = COMM_TCP_NOTICE, .seq = c->hdr.seq, .count = (uint64_t)root, .aux = why};
    const int64_t soon = comm_now_ns() + 100000000;
    for (int r = 0; r < c->g->size; r++)
        if (t->star[r] >= 0)
            comm_sock_write(t->star[r], &notice, sizeof notice, soon);
    comm_tcp_close_all(t, c->g->size);
    return comm_fail(c->err, c->errlen, COMM_ENET, "comm: %s failed on rank %d: %s", c->what, c->g->rank,
                     t->broken_why);
}

/* A failure found on this rank itself (a disagreement, a socket error). */
#define local_fail(c, ...) group_fail((c), (c)->g->rank, COMM_TCP_FAILED, __VA_ARGS__)

/* Takes a whole notice waiting on fd, if there is one. */
static int take_notice(int fd, comm_tcp_header *h)
{
    if (fd < 0 || recv(fd, h, sizeof *h, MSG_PEEK | MSG_DONTWAIT) != (ssize_t)sizeof *h || h->kind != COMM_TCP_NOTICE)
        return 0;
    return recv(fd, h, sizeof *h, MSG_DONTWAIT) == (ssize_t)sizeof *h;
}

/* Rank `peer` is gone. Rank 0 follows the notices from there to the rank that failed first; the others
 * take rank 0's word when it has already spoken. */
static int peer_gone(comm_tcp_op *c, int peer)
{
    const int size = c->g->size;
    comm_tcp_why why = COMM_TCP_CLOSED;
    comm_tcp_header h;
    if (c->g->rank != 0 && peer != 0) {
        /* Rank 0 hears of a death first hand and tells everyone: a moment's wait for its word names the
         * rank where the failure began rather than the neighbour that passed it on. */
        struct pollfd p = {.fd = c->t->star[0], .events = POLLIN};
        poll(&p, 1, 200);
    }
    if (c->g->rank != 0 && take_notice(c->t->star[0], &h) && h.count < (uint64_t)size) {
        peer = (int)h.count;
        why = (comm_tcp_why)h.aux;
    }
    for (int hops = 0; c->g->rank == 0 && hops < size && take_notice(c->t->star[peer], &h); hops++) {
        if (h.aux != COMM_TCP_CLOSED || h.count == 0 || h.count >= (uint64_t)size || (int)h.count == peer) {
            why = COMM_TCP_FAILED;
            break;
        }
        peer = (int)h.count;
    }
    if (why == COMM_TCP_CLOSED)
        return group_fail(c, peer, why, "rank %d closed its connection (did it die?)", peer);
    return group_fail(c, peer, why, "rank %d failed (its own line says why)", peer);
}

int comm_tcp_op_begin(comm_tcp_op *c, comm_group *g, comm_call kind, uint64_t count, uint64_t aux, char *err,
                      size_t errlen)
{
    struct comm_tcp *t = g->tcp;
    *c = (comm_tcp_op){.g = g, .t = t, .err = err, .errlen = errlen};
    c->hdr = (comm_tcp_header){.kind = (uint32_t)kind, .seq = ++t->seq, .count = count, .aux = aux};
    comm_describe_call(c->what, sizeof c->what, kind, count, aux);
    if (t->broken)
        return comm_fail(err, errlen, COMM_ENET,
                         "comm: %s failed on rank %d: the group broke in an earlier collective (%s); call comm_abort",
                         c->what, g->rank, t->broken_why);
    for (int r = 0; r < g->size; r++)
        if (t->star[r] >= 0) {
            t->watch[c->nwatch] = t->star[r];
            t->wpeer[c->nwatch++] = r;
        }
    return COMM_OK;
}

comm_tcp_xfer comm_tcp_to_next(comm_tcp_op *c, void *data, size_t len)
{
    return (comm_tcp_xfer){.peer = c->t->next_rank, .fd = c->t->ring_next, .data = data, .len = len, .hdr = c->hdr};
}

comm_tcp_xfer comm_tcp_from_prev(comm_tcp_op *c, void *data, size_t len, int reduce)
{
    return (comm_tcp_xfer){.peer = c->t->prev_rank, .fd = c->t->ring_prev, .data = data, .len = len, .reduce = reduce};
}

static void reduce_into(void *dst, const void *src, size_t n, comm_dtype dt, comm_op op)
{
#define REDUCE_LOOP(T)                                                                                                 \
    do {                                                                                                               \
        T *d = dst;                                                                                                    \
        const T *s = src;                                                                                              \
        if (op == COMM_MAX)                                                                                            \
            for (size_t i = 0; i < n; i++)                                                                             \
                d[i] = s[i] > d[i] ? s[i] : d[i];                                                                      \
        else if (op == COMM_MIN)                                                                                       \
            for (size_t i = 0; i < n; i++)                                                                             \
                d[i] = s[i] < d[i] ? s[i] : d[i];                                                                      \
        else                                                                                                           \
            for (size_t i = 0; i < n; i++)                                                                             \
                d[i] += s[i];                                                                                          \
    } while (0)
    if (dt == COMM_F32)
        REDUCE_LOOP(float);
    else if (dt == COMM_F64)
        REDUCE_LOOP(double);
    else if (op == COMM_SUM) /* int64 sums wrap, as MPI's do, without signed overflow */
        REDUCE_LOOP(uint64_t);
    else
        REDUCE_LOOP(int64_t);
#undef REDUCE_LOOP
}

/* The received header against this rank's own call. */
static int check_header(comm_tcp_op *c, const comm_tcp_xfer *x)
{
    const comm_tcp_header *h = &x->hdr, *want = &c->hdr;
    if (h->kind == want->kind && h->seq == want->seq && h->count == want->count && h->aux == want->aux)
        return COMM_OK;
    if (h->kind == COMM_CALL_FINALIZE)
        return local_fail(c, "rank %d called comm_finalize instead (every rank must make the same collective calls)",
                          x->peer);
    if (h->kind < COMM_CALL_ALLREDUCE || h->kind > COMM_CALL_ALLGATHER)
        return local_fail(c, "rank %d sent a message this backend does not know (kind %u)", x->peer, (unsigned)h->kind);
    if (h->kind == COMM_CALL_ALLREDUCE && h->kind == want->kind && h->count == want->count && h->aux != want->aux &&
        (h->aux & 0xff) == (want->aux & 0xff))
        return local_fail(c, "rank %d reduces with %s, this rank with %s", x->peer,
                          comm_op_name((comm_op)(h->aux >> 8)), comm_op_name(c->op));
    char theirs[160];
    comm_describe_call(theirs, sizeof theirs, (comm_call)h->kind, h->count, h->aux);
    if (h->seq != want->seq)
        return local_fail(c, "rank %d is at its collective #%u (%s), this rank at #%u: a rank skipped or added one",
                          x->peer, (unsigned)h->seq, theirs, (unsigned)want->seq);
    return local_fail(c,
                      "rank %d called %s instead (every rank must make the same collective calls, in the same order)",
                      x->peer, theirs);
}

/* Sends what the socket takes now: 1 when the message is out, 0 when the socket is full, -1 on failure. */
static int pump_send(comm_tcp_op *c, comm_tcp_xfer *x)
{
    while (x->hdr_done < sizeof x->hdr || x->done < x->len) {
        struct iovec iov[2];
        int n = 0;
        if (x->hdr_done < sizeof x->hdr)
            iov[n++] = (struct iovec){(char *)&x->hdr + x->hdr_done, sizeof x->hdr - x->hdr_done};
        if (x->done < x->len)
            iov[n++] = (struct iovec){x->data + x->done, x->len - x->done};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t sent = sendmsg(x->fd, &m, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (sent < 0) {
            if (errno == EPIPE || errno == ECONNRESET)
                peer_gone(c, x->peer);
            else
                local_fail(c, "send to rank %d: %s", x->peer, strerror(errno));
            return -1;
        }
        size_t s = (size_t)sent, h = sizeof x->hdr - x->hdr_done;
        x->hdr_done += s < h ? s : h;
        x->done += s < h ? 0 : s - h;
    }
    return 1;
}

/* Receives what has arrived: 1 when the message is in (and added in), 0 when nothing more has come,
 * -1 on failure. */
static int pump_recv(comm_tcp_op *c, comm_tcp_xfer *x)
{
    struct comm_tcp *t = c->t;
    const size_t es = comm_dtype_size(c->dt);
    while (x->hdr_done < sizeof x->hdr || x->done < x->len) {
        char *to;
        size_t want;
        if (x->hdr_done < sizeof x->hdr) {
            to = (char *)&x->hdr + x->hdr_done;
            want = sizeof x->hdr - x->hdr_done;
        } else if (!x->reduce) {
            to = (char *)x->data + x->done;
            want = x->len - x->done;
        } else {
            to = (char *)t->scratch + x->pend;
            want = x->len - x->done < t->scratch_len - x->pend ? x->len - x->done : t->scratch_len - x->pend;
        }
        ssize_t got = recv(x->fd, to, want, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (got <= 0) {
            if (got == 0 || errno == ECONNRESET)
                peer_gone(c, x->peer);
            else
                local_fail(c, "receive from rank %d: %s", x->peer, strerror(errno));
            return -1;
        }
        if (x->hdr_done < sizeof x->hdr) {
            x->hdr_done += (size_t)got;
            if (x->hdr_done == sizeof x->hdr && check_header(c, x))
                return -1;
            continue;
        }
        x->done += (size_t)got;
        if (!x->reduce)
            continue;
        /* Whole elements are added in as they come, so the sum keeps pace with the network. */
        x->pend += (size_t)got;
        size_t whole = x->pend / es;
        reduce_into(x->data + (x->done - x->pend), t->scratch, whole, c->dt, c->op);
        x->pend -= whole * es;
        memmove(t->scratch, t->scratch + whole * es, x->pend);
    }
    return 1;
}

/* A control connection became readable: a closed one or a notice means a failure elsewhere; a goodbye
 * means that rank has left the group (it stays there for comm_finalize to read) and is not watched on. */
static int on_control(comm_tcp_op *c, int i)
{
    int fd = c->t->watch[i], peer = c->t->wpeer[i];
    comm_tcp_header h;
    ssize_t n = recv(fd, &h, sizeof h, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && errno != ECONNRESET)
        return COMM_OK;
    if (n > 0 && n < (ssize_t)sizeof h) {
        /* The rest of the header is a moment away; poll would only report the same bytes again. */
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
        return COMM_OK;
    }
    if (n > 0 && h.kind == COMM_CALL_FINALIZE) {
        c->t->watch[i] = -1;
        return COMM_OK;
    }
    if (n > 0 && h.kind != COMM_TCP_NOTICE)
        return local_fail(c, "rank %d sent an unexpected message on its control connection (kind %u)", peer,
                          (unsigned)h.kind);
    return peer_gone(c, peer);
}

int comm_tcp_step(comm_tcp_op *c, comm_tcp_xfer *s, comm_tcp_xfer *r)
{
    struct comm_tcp *t = c->t;
    int sent = s->fd < 0, got = r->fd < 0;
    for (;;) {
        if (!sent && (sent = pump_send(c, s)) < 0)
            return COMM_ENET;
        if (!got && (got = pump_recv(c, r)) < 0)
            return COMM_ENET;
        if (sent && got)
            return COMM_OK;
        int n = 0;
        if (!sent)
            t->pfd[n++] = (struct pollfd){.fd = s->fd, .events = POLLOUT};
        if (!got)
            t->pfd[n++] = (struct pollfd){.fd = r->fd, .events = POLLIN};
        const int active = n;
        for (int i = 0; i < c->nwatch; i++)
            if (t->watch[i] >= 0) {
                t->pmap[n - active] = i;
                t->pfd[n++] = (struct pollfd){.fd = t->watch[i], .events = POLLIN};
            }
        if (poll(t->pfd, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            return local_fail(c, "poll: %s", strerror(errno));
        }
        for (int i = active; i < n; i++)
            if (t->pfd[i].revents && on_control(c, t->pmap[i - active]))
                return COMM_ENET;
    }
}
