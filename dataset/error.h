/* The dataset library's one way of reporting: a one-line message into the caller's buffer. */
#ifndef EMPD_DATASET_ERROR_H
#define EMPD_DATASET_ERROR_H

#include <stddef.h>

/* Formats one line into err (when err and errlen are set) and returns code. */
int ds_fail(char *err, size_t errlen, int code, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#endif
