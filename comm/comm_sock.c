/* Socket helpers of the TCP backend: whole reads and writes under a deadline, options, names. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "comm/comm_tcp.h"

/* poll's timeout in ms until deadline_ns, at least 0; -1 when the deadline has passed. */
static int ms_until(int64_t deadline_ns)
{
    int64_t left = deadline_ns - comm_now_ns();
    if (left <= 0)
        return -1;
    int64_t ms = left / 1000000 + 1;
    return ms > 1000000 ? 1000000 : (int)ms;
}

static int wait_for(int fd, short events, int64_t deadline_ns)
{
    for (;;) {
        int ms = ms_until(deadline_ns);
        if (ms < 0)
            return COMM_SOCK_TIMEOUT;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, ms);
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return errno;
    }
}

int comm_sock_wait(int fd, int64_t deadline_ns) { return wait_for(fd, POLLIN, deadline_ns); }

int comm_sock_read(int fd, void *buf, size_t len, int64_t deadline_ns)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0)
            return COMM_SOCK_EOF;
        if (errno == ECONNRESET)
            return COMM_SOCK_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return errno;
        int rc = wait_for(fd, POLLIN, deadline_ns);
        if (rc)
            return rc;
    }
    return 0;
}

int comm_sock_write(int fd, const void *buf, size_t len, int64_t deadline_ns)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n >= 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (errno == EPIPE || errno == ECONNRESET)
            return COMM_SOCK_EOF;
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            return errno;
        int rc = wait_for(fd, POLLOUT, deadline_ns);
        if (rc)
            return rc;
    }
    return 0;
}

void comm_sock_tune(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
}

int comm_sock_set_nonblocking(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return errno;
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    return fcntl(fd, F_SETFL, flags) < 0 ? errno : 0;
}

void comm_sock_name(const struct sockaddr *sa, char *buf, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
        snprintf(buf, len, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        snprintf(buf, len, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
    } else {
        snprintf(buf, len, "an address of family %d", (int)sa->sa_family);
    }
}

void comm_sock_peer_name(int fd, char *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0)
        comm_sock_name((struct sockaddr *)&ss, buf, len);
    else
        snprintf(buf, len, "an unknown address");
}

const char *comm_sock_strerror(int rc)
{
    if (rc == COMM_SOCK_EOF)
        return "the connection closed";
    if (rc == COMM_SOCK_TIMEOUT)
        return "timed out";
    return strerror(rc);
}
