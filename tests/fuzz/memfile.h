/* memfile: the fuzz input as a file path, for readers that only take a path. One memory-backed file per
 * process (memfd), rewritten on every call: no disk traffic, nothing left behind. */
#ifndef EMPD_TESTS_FUZZ_MEMFILE_H
#define EMPD_TESTS_FUZZ_MEMFILE_H

#include <stddef.h>

/* Replaces the file's contents with the n bytes at data and returns its path ("/proc/self/fd/N"), valid until
 * the next call. Aborts when the memfd cannot be made or written: that is the harness failing, not the reader. */
const char *memfile_put(const void *data, size_t n);

#endif
