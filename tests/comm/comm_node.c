/* One rank of a job that tcp_cases.sh starts, stops or kills, to test the rendezvous and the watchdog.
 *
 *   comm_node free-port        prints a TCP port on 127.0.0.1 that was free a moment ago
 *   comm_node run [--timeout S] [--stop R] [--die R] [--count N]
 *       joins the group, sets the watchdog's deadline S, and all-reduces N floats (1000) after a
 *       barrier; rank R stops itself (SIGSTOP) or dies (SIGKILL) just before the all-reduce. Prints
 *       "comm_node: rank R of N ok (backend)" and exits 0 when the result is right; any error: its line
 *       and exit status 1. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "comm/comm.h"

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len)) {
        perror("comm_node free-port");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

static int run(int argc, char **argv)
{
    double timeout = 0;
    int stop = -1, die = -1;
    size_t count = 1000;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--timeout"))
            timeout = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--stop"))
            stop = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--die"))
            die = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--count"))
            count = (size_t)atol(argv[i + 1]);
    }
    char err[512];
    comm_group *g;
    if (comm_init(&argc, &argv, &g, err, sizeof err)) {
        fprintf(stderr, "comm_node: %s\n", err);
        return 1;
    }
    const int rank = comm_rank(g), size = comm_size(g);
    if (timeout > 0)
        comm_set_timeout(g, timeout);
    float *x = malloc((count ? count : 1) * sizeof *x);
    for (size_t i = 0; i < count; i++)
        x[i] = (float)(rank + 1);
    int rc = comm_barrier(g, err, sizeof err);
    if (rank == stop)
        raise(SIGSTOP);
    if (rank == die)
        raise(SIGKILL);
    if (!rc)
        rc = comm_allreduce(g, x, count, COMM_F32, COMM_SUM, err, sizeof err);
    if (rc) {
        fprintf(stderr, "comm_node: rank %d: %s\n", rank, err);
        comm_abort(g, 1);
    }
    for (size_t i = 0; i < count; i++)
        if (x[i] != (float)(size * (size + 1) / 2)) {
            fprintf(stderr, "comm_node: rank %d: element %zu is %g, want %d\n", rank, i, x[i], size * (size + 1) / 2);
            comm_abort(g, 1);
        }
    free(x);
    printf("comm_node: rank %d of %d ok (%s)\n", rank, size, comm_backend_name(g));
    fflush(stdout);
    if (comm_finalize(g, err, sizeof err)) {
        fprintf(stderr, "comm_node: rank %d: %s\n", rank, err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "free-port"))
        return free_port();
    if (argc > 1 && !strcmp(argv[1], "run"))
        return run(argc, argv);
    fprintf(stderr, "usage: comm_node free-port | run [--timeout S] [--stop R] [--die R] [--count N]\n");
    return 2;
}
