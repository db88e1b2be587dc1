/* The trainer library's one way of reporting: a one-line message into the caller's buffer. */
#ifndef EMPD_TRAINER_ERROR_H
#define EMPD_TRAINER_ERROR_H

#include <stddef.h>

/* Formats one line into err (when err and errlen are set) and returns -1. */
int tr_fail(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
