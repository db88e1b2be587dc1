#include "trainer/progress.h"

#include <stdio.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int tr_progress_tty(void) { return isatty(STDOUT_FILENO); }

void tr_progress_begin(tr_progress *p, int enabled, const char *label, const char *unit, int64_t start, int64_t total)
{
    *p = (tr_progress){.enabled = enabled && total > start, .label = label, .unit = unit, .start = start,
                       .total = total, .t0 = now_s(), .last_draw = -1};
}

static void format_eta(double s, char *buf, size_t n)
{
    long t = s > 0 && s < 1e8 ? (long)(s + 0.5) : 0;
    if (t >= 3600)
        snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
    else
        snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

void tr_progress_update(tr_progress *p, int64_t done, const char *extra)
{
    if (!p->enabled)
        return;
    double t = now_s();
    if (done < p->total && t - p->last_draw < 0.1)
        return;
    p->last_draw = t;
    double frac = (double)done / (double)p->total, rate = (double)(done - p->start) / (t - p->t0 > 1e-9 ? t - p->t0 : 1e-9);
    char bar[31], eta[32];
    int fill = (int)(frac * 30 + 0.5);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    format_eta(rate > 0 ? (double)(p->total - done) / rate : 0, eta, sizeof eta);
    printf("\r\033[K%s [%s] %lld/%lld %3.0f%%  %.1f %s/s  ETA %s%s%s", p->label, bar, (long long)done,
           (long long)p->total, 100 * frac, rate, p->unit, eta, extra ? "  " : "", extra ? extra : "");
    fflush(stdout);
    p->drawn = 1;
}

void tr_progress_clear(tr_progress *p)
{
    if (p->enabled && p->drawn) {
        printf("\r\033[K");
        fflush(stdout);
        p->drawn = 0;
    }
}

void tr_progress_end(tr_progress *p)
{
    tr_progress_clear(p);
    p->enabled = 0;
}
