/* test_dataset_text.h: the groups of test_dataset_text and the helpers they share. */
#ifndef EMPD_TESTS_DATASET_TEXT_H
#define EMPD_TESTS_DATASET_TEXT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

int tdt_run_avamerg(void);
int tdt_run_pyrandom(void);
int tdt_run_split(void);
int tdt_run_sampler(void);
int tdt_run_synth_text(void);

/* A scratch directory for the whole run, removed at exit. */
const char *tdt_tmpdir(void);

/* tmpdir/name into buf. */
void tdt_path(char *buf, size_t len, const char *name);

/* Writes text to tmpdir/name; returns the full path (static storage, overwritten by the next call). */
const char *tdt_write_file(const char *name, const char *text);

/* Runs `python3 pyref.py ARGS` and returns its stdout (malloc'd); fails the test on a non-zero exit. */
char *tdt_pyref(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Reads a whole file (malloc'd, NUL-terminated), *len its size; NULL when it cannot be read. */
char *tdt_read_file(const char *path, size_t *len);

#endif
