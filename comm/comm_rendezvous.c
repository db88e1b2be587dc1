/* The TCP rendezvous: rank 0 listens on MASTER_ADDR:MASTER_PORT and lets in the job's own ranks, then
 * the ranks join into a ring.
 *
 * The conversation on each rank's connection to rank 0 (all fixed-size records, host byte order):
 *   rank 0 -> peer   challenge  a random nonce
 *   peer -> rank 0   hello      proof = SipHash(key, nonce, rank, world), the peer's own nonce, its rank,
 *                               world size, host name and ring listener's address
 *   rank 0 -> peer   verdict    OK with rank 0's proof of the peer's nonce, or why it is refused
 *   rank 0 -> peer   welcome    once every rank is in: local rank and size, a session number, and the
 *                               address of the next rank's ring listener (or a timeout)
 *   peer -> rank 0   ready      after the ring links are up;   rank 0 -> peer  go
 * Every rank r then opens a ring link to r+1 (mod size) with link = {SipHash(key, session, r, r+1), r},
 * answered by an ack. The connections to rank 0 stay as the group's control channel. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "comm/comm_tcp.h"

#define RDV_MAGIC 0x31766472706d65ull /* "empdrv1" */
#define RDV_MAX_PENDING 64

enum { RDV_OK = 0, RDV_WRONG_TOKEN, RDV_DUPLICATE, RDV_BAD_WORLD, RDV_TIMEOUT };
enum { PROOF_PEER = 1, PROOF_RANK0 = 2 };

typedef struct {
    uint64_t magic, nonce[2];
} rdv_challenge;

typedef struct {
    uint64_t magic, proof, nonce[2];
    int32_t rank, world;
    uint16_t ring_family, ring_port;
    uint8_t ring_addr[16];
    char host[256];
} rdv_hello;

typedef struct {
    uint64_t magic, proof;
    int32_t status, world;
} rdv_verdict;

typedef struct {
    uint64_t magic, session;
    int32_t status, local_rank, local_size;
    uint16_t next_family, next_port;
    uint8_t next_addr[16];
} rdv_welcome;

typedef struct {
    uint64_t magic, proof;
    int32_t from, to;
} rdv_link;

/* What a rendezvous on one rank works with. */
typedef struct {
    comm_group *g;
    const comm_env *e;
    struct comm_tcp *t;
    int64_t deadline;
    char master[300]; /* "MASTER_ADDR:MASTER_PORT=127.0.0.1:29500" for messages */
    char *err;
    size_t errlen;
} rdv;

static uint64_t proof_of(const uint64_t key[2], const uint64_t nonce[2], int32_t a, int32_t b, int32_t dir)
{
    struct {
        uint64_t nonce[2];
        int32_t a, b, dir, zero;
    } m;
    memset(&m, 0, sizeof m);
    memcpy(m.nonce, nonce, sizeof m.nonce);
    m.a = a, m.b = b, m.dir = dir;
    return comm_siphash(key, &m, sizeof m);
}

static void random_bytes(void *buf, size_t len)
{
    if (getrandom(buf, len, 0) == (ssize_t)len)
        return;
    /* No entropy source: a nonce that differs per process and moment still defeats a replayed reply. */
    uint64_t x = (uint64_t)comm_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL);
    unsigned char *p = buf;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

/* "rank 3" or "ranks 1,3,5-9": the ranks whose flag is 0. */
static void format_missing(const int *fd, int size, char *buf, size_t len)
{
    int n = 0;
    for (int r = 1; r < size; r++)
        n += fd[r] < 0;
    size_t at = (size_t)snprintf(buf, len, n == 1 ? "rank " : "ranks ");
    const char *sep = "";
    for (int r = 1; r < size && at < len; r++) {
        if (fd[r] >= 0)
            continue;
        int last = r;
        while (last + 1 < size && fd[last + 1] < 0)
            last++;
        at += (size_t)(last > r ? snprintf(buf + at, len - at, "%s%d-%d", sep, r, last)
                                : snprintf(buf + at, len - at, "%s%d", sep, r));
        sep = ",";
        r = last;
    }
}

static int resolve(rdv *v, struct addrinfo **out)
{
    char port[16];
    snprintf(port, sizeof port, "%d", v->e->master_port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    int rc = getaddrinfo(v->e->master_addr, port, &hints, out);
    if (rc)
        return comm_fail(v->err, v->errlen, COMM_EINVAL, "comm: MASTER_ADDR=%s does not resolve: %s", v->e->master_addr,
                         gai_strerror(rc));
    return COMM_OK;
}

/* Rank 0 binds MASTER_ADDR itself, not every interface: the port is reachable only where the job said. */
static int listen_master(rdv *v, int *out)
{
    struct addrinfo *ai;
    int code = resolve(v, &ai);
    if (code)
        return code;
    int fd = -1, why = 0;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
                        bind(fd, a->ai_addr, a->ai_addrlen) || listen(fd, 128))) {
            why = errno;
            close(fd);
            fd = -1;
        } else if (fd < 0) {
            why = errno;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank 0 cannot listen on %s: %s (is rank 0 on the host MASTER_ADDR names, "
                         "and is the port free?)",
                         v->master, strerror(why));
    comm_sock_set_nonblocking(fd, 1);
    *out = fd;
    return COMM_OK;
}

/* Rank 0's judgement of a complete hello; the connection is kept (t->star) or closed. */
static void judge(rdv *v, int fd, const char *from, const uint64_t nonce[2], const rdv_hello *h, char hosts[][256],
                  rdv_welcome *next_of)
{
    const int size = v->g->size;
    rdv_verdict verdict = {.magic = RDV_MAGIC, .status = RDV_OK, .world = size};
    if (h->magic != RDV_MAGIC) {
        fprintf(stderr, "comm: rendezvous: refused a connection from %s: not an empd rank (no valid greeting)\n", from);
        close(fd);
        return;
    }
    if (h->proof != proof_of(v->e->key, nonce, h->rank, h->world, PROOF_PEER)) {
        fprintf(stderr, "comm: rendezvous: refused a connection from %s: wrong job token\n", from);
        verdict.status = RDV_WRONG_TOKEN;
    } else if (h->world != size || h->rank < 0 || h->rank >= size) {
        fprintf(stderr, "comm: rendezvous: refused a connection from %s: it has WORLD_SIZE=%d, this job %d\n", from,
                (int)h->world, size);
        verdict.status = RDV_BAD_WORLD;
    } else if (h->rank == 0 || v->t->star[h->rank] >= 0) {
        fprintf(stderr, "comm: rendezvous: refused a connection from %s: rank %d is already taken\n", from,
                (int)h->rank);
        verdict.status = RDV_DUPLICATE;
    }
    if (verdict.status == RDV_OK)
        verdict.proof = proof_of(v->e->key, h->nonce, h->rank, h->world, PROOF_RANK0);
    int rc = comm_sock_write(fd, &verdict, sizeof verdict, comm_now_ns() + 1000000000);
    if (verdict.status != RDV_OK || rc) {
        close(fd);
        return;
    }
    v->t->star[h->rank] = fd;
    snprintf(hosts[h->rank], sizeof hosts[0], "%.*s", (int)sizeof h->host - 1, h->host);
    next_of[h->rank - 1].next_family = h->ring_family;
    next_of[h->rank - 1].next_port = h->ring_port;
    memcpy(next_of[h->rank - 1].next_addr, h->ring_addr, sizeof h->ring_addr);
}

typedef struct {
    int fd;
    char from[80];
    uint64_t nonce[2];
    rdv_hello h;
    size_t got;
} pending;

static void accept_new(rdv *v, int lfd, pending *pend, int *npend)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept(lfd, (struct sockaddr *)&ss, &sl);
        if (fd < 0)
            return;
        comm_sock_tune(fd);
        if (*npend == RDV_MAX_PENDING) {
            close(fd);
            continue;
        }
        pending *p = &pend[(*npend)++];
        memset(p, 0, sizeof *p);
        p->fd = fd;
        comm_sock_name((struct sockaddr *)&ss, p->from, sizeof p->from);
        rdv_challenge c = {.magic = RDV_MAGIC};
        random_bytes(c.nonce, sizeof c.nonce);
        memcpy(p->nonce, c.nonce, sizeof c.nonce);
        if (comm_sock_write(fd, &c, sizeof c, v->deadline)) {
            close(fd);
            (*npend)--;
        }
    }
}

/* Rank 0 until every rank has greeted, or the deadline. Strangers never block the others: every
 * connection is read as its bytes come. */
static int gather_ranks(rdv *v, int lfd, char hosts[][256], rdv_welcome *next_of)
{
    const int size = v->g->size;
    pending pend[RDV_MAX_PENDING];
    int npend = 0, missing = size - 1, code = COMM_OK;
    struct pollfd pfd[RDV_MAX_PENDING + 1];
    while (missing > 0 && !code) {
        int64_t left = v->deadline - comm_now_ns();
        if (left <= 0)
            break;
        pfd[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (int i = 0; i < npend; i++)
            pfd[i + 1] = (struct pollfd){.fd = pend[i].fd, .events = POLLIN};
        int n = poll(pfd, (nfds_t)npend + 1, left > 1000000000 ? 1000 : (int)(left / 1000000 + 1));
        if (n < 0 && errno != EINTR)
            code = comm_fail(v->err, v->errlen, COMM_ENET, "comm: rendezvous: poll on rank 0: %s", strerror(errno));
        for (int i = npend - 1; i >= 0 && n > 0; i--) {
            if (!pfd[i + 1].revents)
                continue;
            pending *p = &pend[i];
            ssize_t got = recv(p->fd, (char *)&p->h + p->got, sizeof p->h - p->got, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got > 0)
                p->got += (size_t)got;
            if (got > 0 && p->got < sizeof p->h)
                continue;
            if (got > 0)
                judge(v, p->fd, p->from, p->nonce, &p->h, hosts, next_of);
            else
                close(p->fd);
            pend[i] = pend[--npend];
        }
        if (n > 0 && pfd[0].revents)
            accept_new(v, lfd, pend, &npend);
        missing = 0;
        for (int r = 1; r < size; r++)
            missing += v->t->star[r] < 0;
    }
    for (int i = 0; i < npend; i++)
        close(pend[i].fd);
    if (code || missing == 0)
        return code;
    char who[200];
    format_missing(v->t->star, size, who, sizeof who);
    return comm_fail(v->err, v->errlen, COMM_ENET,
                     "comm: rendezvous: rank 0 waited %g s on %s, but %s never arrived (WORLD_SIZE=%d; "
                     "EMPD_RENDEZVOUS_TIMEOUT sets the wait)",
                     v->e->rendezvous_timeout, v->master, who, size);
}

/* This rank's place on its host: LOCAL_RANK/LOCAL_WORLD_SIZE when set, otherwise by host name. */
static void set_local(comm_group *g, const comm_env *e, int local_rank, int local_size)
{
    g->local_rank = e->local_rank >= 0 ? e->local_rank : local_rank;
    g->local_size = e->local_size > 0 ? e->local_size : local_size;
    if (g->local_rank >= g->local_size)
        g->local_size = g->local_rank + 1;
}

/* A connection to sa before the deadline: 0, an errno, or COMM_SOCK_TIMEOUT. */
static int connect_before(const struct sockaddr *sa, socklen_t len, int64_t deadline, int *out)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return errno;
    int rc = connect(fd, sa, len) ? errno : 0;
    while (rc == EINPROGRESS || rc == EINTR) {
        int64_t left = deadline - comm_now_ns();
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = left > 0 ? poll(&p, 1, left > 1000000000 ? 1000 : (int)(left / 1000000 + 1)) : 0;
        if (n == 0 && left <= 1000000000) {
            rc = COMM_SOCK_TIMEOUT;
        } else if (n > 0) {
            socklen_t el = sizeof rc;
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &el))
                rc = errno;
        } else if (errno != EINTR) {
            rc = errno;
        }
    }
    if (rc) {
        close(fd);
        return rc;
    }
    comm_sock_tune(fd);
    *out = fd;
    return 0;
}

static void sleep_ns(int64_t ns)
{
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) && errno == EINTR)
        ;
}

/* Connects to rank 0 and reads its challenge, retrying until the deadline: rank 0 may start later. */
static int reach_rank0(rdv *v, int *out, rdv_challenge *c)
{
    struct addrinfo *ai;
    int code = resolve(v, &ai);
    if (code)
        return code;
    const char *why = "timed out";
    int64_t pause = 20000000;
    for (;;) {
        for (struct addrinfo *a = ai; a; a = a->ai_next) {
            int64_t try_until = comm_now_ns() + 5000000000LL;
            int fd,
                rc = connect_before(a->ai_addr, a->ai_addrlen, try_until < v->deadline ? try_until : v->deadline, &fd);
            if (!rc) {
                rc = comm_sock_read(fd, c, sizeof *c, v->deadline);
                if (!rc && c->magic == RDV_MAGIC) {
                    freeaddrinfo(ai);
                    *out = fd;
                    return COMM_OK;
                }
                close(fd);
            }
            why = rc ? comm_sock_strerror(rc) : "the process there did not greet like an empd rank 0";
        }
        int64_t left = v->deadline - comm_now_ns();
        if (left <= 0)
            break;
        sleep_ns(pause < left ? pause : left);
        pause = pause * 2 < 500000000 ? pause * 2 : 500000000;
    }
    freeaddrinfo(ai);
    return comm_fail(v->err, v->errlen, COMM_ENET,
                     "comm: rendezvous: rank %d could not reach rank 0 at %s within %g s: %s", v->g->rank, v->master,
                     v->e->rendezvous_timeout, why);
}

static socklen_t sockaddr_of(int family, uint16_t port, const uint8_t addr[16], struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(port);
        memcpy(&in6->sin6_addr, addr, 16);
        return sizeof *in6;
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    memcpy(&in->sin_addr, addr, 4);
    return sizeof *in;
}

/* Every rank accepts its ring link from rank - 1 on the interface that reaches rank 0 (rank 0: the one
 * MASTER_ADDR names), on a port the kernel picks; rank 0 passes the addresses on. */
static int open_ring_listener(rdv *v, int fd0, int *lfd, rdv_hello *h)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int fd = -1;
    if (getsockname(fd0, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
        else
            ((struct sockaddr_in *)&ss)->sin_port = 0;
        fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) || listen(fd, 16) ||
        getsockname(fd, (struct sockaddr *)&ss, &sl)) {
        int why = errno;
        if (fd >= 0)
            close(fd);
        return comm_fail(v->err, v->errlen, COMM_ENET, "comm: rendezvous: rank %d cannot listen for its ring link: %s",
                         v->g->rank, strerror(why));
    }
    h->ring_family = ss.ss_family;
    if (ss.ss_family == AF_INET6) {
        h->ring_port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
        memcpy(h->ring_addr, &((struct sockaddr_in6 *)&ss)->sin6_addr, 16);
    } else {
        h->ring_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        memcpy(h->ring_addr, &((struct sockaddr_in *)&ss)->sin_addr, 4);
    }
    *lfd = fd;
    return COMM_OK;
}

/* The peer's side of hello, verdict and welcome. */
static int greet_rank0(rdv *v, int fd, const rdv_challenge *c, rdv_hello *h, rdv_welcome *w)
{
    const int rank = v->g->rank, size = v->g->size;
    h->magic = RDV_MAGIC;
    h->rank = rank;
    h->world = size;
    h->proof = proof_of(v->e->key, c->nonce, rank, size, PROOF_PEER);
    random_bytes(h->nonce, sizeof h->nonce);
    snprintf(h->host, sizeof h->host, "%s", v->g->hostname);
    rdv_verdict verdict;
    int rc = comm_sock_write(fd, h, sizeof *h, v->deadline);
    if (!rc)
        rc = comm_sock_read(fd, &verdict, sizeof verdict, v->deadline);
    if (rc)
        return comm_fail(v->err, v->errlen, COMM_ENET, "comm: rendezvous: rank %d lost rank 0 at %s while greeting: %s",
                         rank, v->master, comm_sock_strerror(rc));
    if (verdict.status == RDV_DUPLICATE)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank %d is already taken (a second process with RANK=%d?)", rank, rank);
    if (verdict.status == RDV_WRONG_TOKEN)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank 0 at %s refused rank %d: wrong job token (this rank's comes from %s; "
                         "every rank needs the same EMPD_JOB_TOKEN)",
                         v->master, rank, v->e->token_source);
    if (verdict.status == RDV_BAD_WORLD)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank 0 at %s refused rank %d: its job has WORLD_SIZE=%d, this process %d",
                         v->master, rank, (int)verdict.world, size);
    if (verdict.magic != RDV_MAGIC || verdict.status != RDV_OK ||
        verdict.proof != proof_of(v->e->key, h->nonce, rank, size, PROOF_RANK0))
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: the process at %s is not this job's rank 0 (its job token differs)",
                         v->master);
    rc = comm_sock_read(fd, w, sizeof *w, v->deadline);
    if (rc == COMM_SOCK_TIMEOUT)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank %d reached rank 0 at %s, but the job did not assemble within %g s "
                         "(rank 0's line names the ranks that never arrived)",
                         rank, v->master, v->e->rendezvous_timeout);
    if (rc || w->status != RDV_OK)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank 0 at %s gave up before the job assembled (%s; rank 0's line says why)",
                         v->master, rc ? comm_sock_strerror(rc) : "not every rank arrived in time");
    return COMM_OK;
}

/* Rank r's ring links: to r + 1 and from r - 1 (mod size). Connecting first cannot deadlock: a
 * connection completes in the listener's backlog before anyone accepts it. */
static int connect_ring(rdv *v, int lfd, const rdv_welcome *w)
{
    const int rank = v->g->rank, size = v->g->size, next = (rank + 1) % size, prev = (rank + size - 1) % size;
    struct comm_tcp *t = v->t;
    const uint64_t session[2] = {w->session, 0};
    struct sockaddr_storage ss;
    socklen_t sl = sockaddr_of(w->next_family, w->next_port, w->next_addr, &ss);
    rdv_link link = {
        .magic = RDV_MAGIC, .proof = proof_of(v->e->key, session, rank, next, PROOF_PEER), .from = rank, .to = next};
    int rc = connect_before((struct sockaddr *)&ss, sl, v->deadline, &t->ring_next);
    if (!rc)
        rc = comm_sock_write(t->ring_next, &link, sizeof link, v->deadline);
    if (rc) {
        char where[80];
        comm_sock_name((struct sockaddr *)&ss, where, sizeof where);
        return comm_fail(v->err, v->errlen, COMM_ENET, "comm: rendezvous: rank %d cannot reach rank %d at %s: %s", rank,
                         next, where, comm_sock_strerror(rc));
    }
    while (t->ring_prev < 0) {
        rc = comm_sock_wait(lfd, v->deadline);
        int fd = rc ? -1 : accept(lfd, NULL, NULL);
        if (rc)
            return comm_fail(v->err, v->errlen, COMM_ENET,
                             "comm: rendezvous: rank %d waited in vain for its ring link from rank %d: %s", rank, prev,
                             comm_sock_strerror(rc));
        if (fd < 0)
            continue;
        int64_t until = comm_now_ns() + 5000000000LL;
        rc = comm_sock_read(fd, &link, sizeof link, until < v->deadline ? until : v->deadline);
        if (rc || link.magic != RDV_MAGIC || link.from != prev || link.to != rank ||
            link.proof != proof_of(v->e->key, session, prev, rank, PROOF_PEER)) {
            char from[80];
            comm_sock_peer_name(fd, from, sizeof from);
            fprintf(stderr, "comm: rendezvous: rank %d refused a ring connection from %s: not rank %d of this job\n",
                    rank, from, prev);
            close(fd);
            continue;
        }
        comm_sock_tune(fd);
        int32_t ack = 0;
        rc = comm_sock_write(fd, &ack, sizeof ack, v->deadline);
        t->ring_prev = fd;
        if (rc)
            return comm_fail(v->err, v->errlen, COMM_ENET,
                             "comm: rendezvous: rank %d lost its ring link from rank %d: %s", rank, prev,
                             comm_sock_strerror(rc));
    }
    int32_t ack = -1;
    rc = comm_sock_read(t->ring_next, &ack, sizeof ack, v->deadline);
    if (rc || ack)
        return comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank %d's ring link to rank %d was not accepted: %s", rank, next,
                         rc ? comm_sock_strerror(rc) : "refused");
    return COMM_OK;
}

static int rank0_rendezvous(rdv *v)
{
    const int size = v->g->size;
    int lfd = -1, ring_lfd = -1;
    int code = listen_master(v, &lfd);
    if (code)
        return code;
    rdv_hello own;
    memset(&own, 0, sizeof own);
    char(*hosts)[256] = calloc((size_t)size, sizeof *hosts);
    rdv_welcome *w = calloc((size_t)size, sizeof *w);
    if (!hosts || !w) {
        free(hosts);
        free(w);
        close(lfd);
        return comm_fail(v->err, v->errlen, COMM_ENOMEM, "comm: rendezvous: out of memory for %d ranks", size);
    }
    code = open_ring_listener(v, lfd, &ring_lfd, &own);
    if (!code) {
        snprintf(hosts[0], sizeof hosts[0], "%s", v->g->hostname);
        code = gather_ranks(v, lfd, hosts, w);
    }
    /* Closed before anyone is welcomed: a rank's next comm_init must not land in this backlog. */
    close(lfd);
    v->deadline = comm_now_ns() + (int64_t)(v->e->rendezvous_timeout * 1e9); /* for the ring */
    uint64_t session;
    random_bytes(&session, sizeof session);
    /* The last rank's ring link closes the ring at rank 0. */
    w[size - 1].next_family = own.ring_family;
    w[size - 1].next_port = own.ring_port;
    memcpy(w[size - 1].next_addr, own.ring_addr, sizeof own.ring_addr);
    for (int r = 0; r < size; r++) {
        w[r].magic = RDV_MAGIC;
        w[r].session = session;
        w[r].status = code ? RDV_TIMEOUT : RDV_OK;
        for (int q = 0; q < size; q++) {
            int same = !strcmp(hosts[q], hosts[r]);
            w[r].local_rank += same && q < r;
            w[r].local_size += same;
        }
    }
    /* judge() left rank r + 1's ring listener in w[r]: the address rank r connects to. */
    for (int r = 1; r < size; r++)
        if (v->t->star[r] >= 0)
            comm_sock_write(v->t->star[r], &w[r], sizeof w[r], v->deadline);
    set_local(v->g, v->e, w[0].local_rank, w[0].local_size);
    if (!code)
        code = connect_ring(v, ring_lfd, &w[0]);
    if (ring_lfd >= 0)
        close(ring_lfd);
    free(hosts);
    free(w);
    for (int r = 1; r < size && !code; r++) {
        int32_t ready = -1;
        int rc = comm_sock_read(v->t->star[r], &ready, sizeof ready, v->deadline);
        if (rc || ready)
            code = comm_fail(v->err, v->errlen, COMM_ENET,
                             "comm: rendezvous: rank %d failed while the ring was being connected (%s; its line says "
                             "why)",
                             r, rc ? comm_sock_strerror(rc) : "it reported an error");
    }
    for (int r = 1; r < size && !code; r++) {
        int32_t go = 0;
        int rc = comm_sock_write(v->t->star[r], &go, sizeof go, v->deadline);
        if (rc)
            code = comm_fail(v->err, v->errlen, COMM_ENET, "comm: rendezvous: rank 0 could not start rank %d: %s", r,
                             comm_sock_strerror(rc));
    }
    return code;
}

static int peer_rendezvous(rdv *v)
{
    struct comm_tcp *t = v->t;
    const int rank = v->g->rank;
    rdv_challenge c;
    int code = reach_rank0(v, &t->star[0], &c);
    if (code)
        return code;
    rdv_hello h;
    memset(&h, 0, sizeof h);
    int lfd = -1;
    code = open_ring_listener(v, t->star[0], &lfd, &h);
    rdv_welcome w;
    if (!code)
        code = greet_rank0(v, t->star[0], &c, &h, &w);
    if (!code) {
        v->deadline = comm_now_ns() + (int64_t)(v->e->rendezvous_timeout * 1e9); /* for the ring */
        set_local(v->g, v->e, w.local_rank, w.local_size);
        code = connect_ring(v, lfd, &w);
    }
    if (lfd >= 0)
        close(lfd);
    int32_t ready = 0, go = -1;
    int rc = code ? 0 : comm_sock_write(t->star[0], &ready, sizeof ready, v->deadline);
    if (!code && !rc)
        rc = comm_sock_read(t->star[0], &go, sizeof go, v->deadline);
    if (!code && (rc || go))
        code = comm_fail(v->err, v->errlen, COMM_ENET,
                         "comm: rendezvous: rank 0 ended the rendezvous after rank %d had joined (%s; another rank's "
                         "line says why)",
                         rank, rc ? comm_sock_strerror(rc) : "it reported an error");
    return code;
}

int comm_rendezvous(comm_group *g, const comm_env *e, struct comm_tcp *t, char *err, size_t errlen)
{
    rdv v = {.g = g, .e = e, .t = t, .err = err, .errlen = errlen};
    v.deadline = comm_now_ns() + (int64_t)(e->rendezvous_timeout * 1e9);
    snprintf(v.master, sizeof v.master,
             strchr(e->master_addr, ':') ? "[%s]:%d (MASTER_ADDR:MASTER_PORT)" : "%s:%d (MASTER_ADDR:MASTER_PORT)",
             e->master_addr, e->master_port);
    t->next_rank = (g->rank + 1) % g->size;
    t->prev_rank = (g->rank + g->size - 1) % g->size;
    return g->rank == 0 ? rank0_rendezvous(&v) : peer_rendezvous(&v);
}
