/* The watchdog: a deadline on every blocking call of a group, kept by one thread per group.
 *
 * A watched call publishes what it does and when it started in its slot with atomic stores; the thread
 * wakes a few times per deadline, and a call whose start lies further back than the deadline ends the
 * job. No lock and no system call on the collective's path: a clock read (vDSO) and four stores. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "comm/comm_internal.h"

/* How often the thread looks: a quarter of the deadline, within these bounds. */
#define WATCH_TICK_MIN_NS 20000000LL
#define WATCH_TICK_MAX_NS 1000000000LL

int comm_watch_init(comm_group *g)
{
    comm_watchdog *w = &g->wd;
    memset(w, 0, sizeof *w);
    if (pthread_mutex_init(&w->mu, NULL))
        return COMM_ENOMEM;
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (!rc) {
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        rc = pthread_cond_init(&w->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc) {
        pthread_mutex_destroy(&w->mu);
        return COMM_ENOMEM;
    }
    return COMM_OK;
}

void comm_watch_destroy(comm_group *g)
{
    comm_watchdog *w = &g->wd;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->wake);
    int running = w->running;
    pthread_mutex_unlock(&w->mu);
    if (running)
        pthread_join(w->thread, NULL);
    pthread_cond_destroy(&w->wake);
    pthread_mutex_destroy(&w->mu);
}

void comm_watch_begin(comm_group *g, int slot, comm_call call, uint64_t count, uint64_t aux)
{
    comm_watchdog *w = &g->wd;
    atomic_store(&w->slot[slot].call, (int)call);
    atomic_store(&w->slot[slot].count, count);
    atomic_store(&w->slot[slot].aux, aux);
    atomic_store(&w->slot[slot].start_ns, comm_now_ns());
}

void comm_watch_end(comm_group *g, int slot) { atomic_store(&g->wd.slot[slot].start_ns, 0); }

int comm_watch_hook(comm_group *g, void (*fn)(void *), void *arg)
{
    comm_watchdog *w = &g->wd;
    int code = COMM_ENOMEM;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < COMM_WATCH_HOOKS && code; i++)
        if (!w->hooks[i].fn) {
            w->hooks[i].fn = fn;
            w->hooks[i].arg = arg;
            code = COMM_OK;
        }
    pthread_mutex_unlock(&w->mu);
    return code;
}

void comm_watch_unhook(comm_group *g, void *arg)
{
    comm_watchdog *w = &g->wd;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < COMM_WATCH_HOOKS; i++)
        if (w->hooks[i].fn && w->hooks[i].arg == arg)
            w->hooks[i].fn = NULL;
    pthread_mutex_unlock(&w->mu);
}

void comm_watch_run_hooks(comm_group *g)
{
    comm_watchdog *w = &g->wd;
    pthread_mutex_lock(&w->mu);
    for (int i = 0; i < COMM_WATCH_HOOKS; i++)
        if (w->hooks[i].fn)
            w->hooks[i].fn(w->hooks[i].arg);
    pthread_mutex_unlock(&w->mu);
}

/* The slot's call, if it has been running for longer than timeout_ns. The start is read before and
 * after the other fields: equal and non-zero means the fields belong to that call. */
static int overdue(comm_watchdog *w, int slot, int64_t timeout_ns, char *what, size_t len)
{
    int64_t start = atomic_load(&w->slot[slot].start_ns);
    if (!start || comm_now_ns() - start <= timeout_ns)
        return 0;
    int call = atomic_load(&w->slot[slot].call);
    uint64_t count = atomic_load(&w->slot[slot].count), aux = atomic_load(&w->slot[slot].aux);
    if (atomic_load(&w->slot[slot].start_ns) != start)
        return 0;
    comm_describe_call(what, len, (comm_call)call, count, aux);
    return 1;
}

static void *watch_main(void *arg)
{
    comm_group *g = arg;
    comm_watchdog *w = &g->wd;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        int64_t timeout = atomic_load(&w->timeout_ns);
        int64_t tick = timeout / 4;
        tick = tick < WATCH_TICK_MIN_NS ? WATCH_TICK_MIN_NS : tick > WATCH_TICK_MAX_NS ? WATCH_TICK_MAX_NS : tick;
        int64_t until = comm_now_ns() + tick;
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        pthread_cond_timedwait(&w->wake, &w->mu, &ts);
        timeout = atomic_load(&w->timeout_ns);
        char what[160];
        for (int s = 0; s < COMM_WATCH_SLOTS && !w->stop && timeout > 0; s++) {
            if (!overdue(w, s, timeout, what, sizeof what))
                continue;
            pthread_mutex_unlock(&w->mu);
            fprintf(stderr,
                    "comm: rank %d: %s has not completed after %g s: another rank died or hangs; ending the job\n",
                    g->rank, what, (double)timeout / 1e9);
            comm_abort(g, 1);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

void comm_watch_set(comm_group *g, double seconds)
{
    comm_watchdog *w = &g->wd;
    int64_t ns = isnan(seconds) || seconds <= 0 ? 0 : seconds > 1e9 ? (int64_t)1e18 : (int64_t)(seconds * 1e9);
    if (seconds > 0 && ns == 0)
        ns = 1;
    atomic_store(&w->timeout_ns, ns);
    pthread_mutex_lock(&w->mu);
    int rc = 0;
    if (ns && !w->running && !w->stop) {
        /* The thread takes no signals: the program's handlers (stop requests, ...) stay with its own threads. */
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = pthread_create(&w->thread, NULL, watch_main, g);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        w->running = rc == 0;
    }
    pthread_cond_signal(&w->wake);
    pthread_mutex_unlock(&w->mu);
    if (rc)
        fprintf(stderr, "comm: rank %d: cannot start the watchdog thread (%s); collectives wait without a deadline\n",
                g->rank, strerror(rc));
}
