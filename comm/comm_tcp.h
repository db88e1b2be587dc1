/* Shared by the TCP backend's files (comm_tcp.c, comm_tcp_step.c, comm_rendezvous.c, comm_sock.c); not part
 * of the API. */
#ifndef EMPD_COMM_TCP_H
#define EMPD_COMM_TCP_H

#include <stddef.h>
#include <poll.h>
#include <stdint.h>
#include <sys/socket.h>

#include "comm/comm_internal.h"

/* The connections of one rank. Every collective runs on the ring (to next_rank, from prev_rank). The
 * rendezvous's connections to rank 0 (rank 0: to every rank) stay as the control channel: idle, they
 * carry only failure notices and goodbyes, and their closing tells rank 0 at once of a rank's death. */
struct comm_tcp {
    int *star;                /* size entries: the control connection to that rank, or -1 */
    int ring_next, ring_prev; /* ring links to next_rank and from prev_rank */
    int next_rank, prev_rank;
    uint32_t seq; /* collectives so far: both ends of every message must agree on it */
    int broken;   /* a collective failed and the connections are closed */
    char broken_why[200];
    int *watch, *wpeer, *pmap; /* size + 2 entries each: control connections watched in a step, their
                                * ranks, and poll's map */
    struct pollfd *pfd;        /* size + 2 entries */
    unsigned char *scratch;    /* incoming partial sums before they are added in */
    size_t scratch_len;
};

/* Every message starts with this header: the receiver checks it against its own call. */
typedef struct {
    uint32_t kind, seq; /* a comm_call, or COMM_TCP_NOTICE */
    uint64_t count, aux;
} comm_tcp_header;

/* kind of a failure notice on a control connection: count = the rank where the failure began, aux = a
 * comm_tcp_why. */
#define COMM_TCP_NOTICE 100u
typedef enum { COMM_TCP_CLOSED = 1, COMM_TCP_FAILED = 2 } comm_tcp_why;

/* One direction of one step: a message to the next rank or from the previous one. */
typedef struct {
    int peer, fd; /* fd < 0: nothing to do this way */
    unsigned char *data;
    size_t len, done; /* payload bytes; receive: bytes received, added in or not */
    size_t hdr_done;
    comm_tcp_header hdr; /* sent, or received */
    int reduce;          /* receive: add into data with the collective's op */
    size_t pend;         /* receive with reduce: bytes in scratch not yet added */
} comm_tcp_xfer;

/* One collective on one rank (comm_tcp_step.c). */
typedef struct {
    comm_group *g;
    struct comm_tcp *t;
    comm_tcp_header hdr;
    comm_dtype dt;
    comm_op op;
    int nwatch;
    char what[160];
    char *err;
    size_t errlen;
} comm_tcp_op;

/* Starts a collective: names it, numbers it, and fails at once on a group broken earlier. */
int comm_tcp_op_begin(comm_tcp_op *c, comm_group *g, comm_call kind, uint64_t count, uint64_t aux, char *err,
                      size_t errlen);
comm_tcp_xfer comm_tcp_to_next(comm_tcp_op *c, void *data, size_t len);
comm_tcp_xfer comm_tcp_from_prev(comm_tcp_op *c, void *data, size_t len, int reduce);
extern const comm_tcp_xfer comm_tcp_none;

/* Runs a send and a receive (either may be comm_tcp_none) to completion, both at once, while watching
 * the control connections. On failure every connection is closed, the other ranks are told, and
 * COMM_ENET comes back with the line "comm: <collective> failed on rank R: <why>". */
int comm_tcp_step(comm_tcp_op *c, comm_tcp_xfer *s, comm_tcp_xfer *r);

/* Closes every connection of t. */
void comm_tcp_close_all(struct comm_tcp *t, int size);

/* COLLECTIVE over the job: the rendezvous and the ring (comm.h describes both). Fills t's connections
 * (blocking sockets), g->local_rank and g->local_size. Returns COMM_ENET, COMM_ENOMEM or COMM_EINVAL. */
int comm_rendezvous(comm_group *g, const comm_env *e, struct comm_tcp *t, char *err, size_t errlen);

/* Socket helpers (comm_sock.c). The I/O calls return 0, COMM_SOCK_EOF, COMM_SOCK_TIMEOUT, or an errno. */
enum { COMM_SOCK_EOF = -1, COMM_SOCK_TIMEOUT = -2 };

/* Reads or writes exactly len bytes of a blocking or non-blocking socket before deadline_ns
 * (comm_now_ns's clock). */
int comm_sock_read(int fd, void *buf, size_t len, int64_t deadline_ns);
int comm_sock_write(int fd, const void *buf, size_t len, int64_t deadline_ns);

/* Waits until fd is readable (a connection to accept, or data); 0, COMM_SOCK_TIMEOUT or an errno. */
int comm_sock_wait(int fd, int64_t deadline_ns);

/* TCP_NODELAY (collectives are latency bound at small sizes) and close-on-exec. */
void comm_sock_tune(int fd);

int comm_sock_set_nonblocking(int fd, int on);

/* "127.0.0.1:29500" or "[::1]:29500". */
void comm_sock_name(const struct sockaddr *sa, char *buf, size_t len);

/* The address at the other end of fd, as comm_sock_name writes it. */
void comm_sock_peer_name(int fd, char *buf, size_t len);

/* A line for an I/O result: "connection closed", "timed out", strerror. */
const char *comm_sock_strerror(int rc);

#endif
