/* A one-line progress bar (done/total, rate, ETA) for a terminal: redrawn in place at most ten
 * times a second, erased before any log line so logs and bar never mix. Disabled (every call a
 * no-op) when stdout is not a tty, under --quiet, and on ranks other than 0. */
#ifndef EMPD_TRAINER_PROGRESS_H
#define EMPD_TRAINER_PROGRESS_H

#include <stdint.h>

typedef struct {
    int enabled, drawn;
    const char *label, *unit;
    int64_t start, total;
    double t0, last_draw;
} tr_progress;

/* Counts from `start` (work already done, e.g. after a resume) to `total`. */
void tr_progress_begin(tr_progress *p, int enabled, const char *label, const char *unit, int64_t start, int64_t total);
/* extra: a short status shown after the bar (may be NULL). */
void tr_progress_update(tr_progress *p, int64_t done, const char *extra);
/* Erases the bar so a log line can be printed; the next update redraws it. */
void tr_progress_clear(tr_progress *p);
void tr_progress_end(tr_progress *p);
/* 1 when stdout is a terminal. */
int tr_progress_tty(void);

#endif
