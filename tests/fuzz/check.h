/* check: what every fuzz target asserts with. A failed invariant prints the condition and aborts, which
 * libFuzzer reports as a crash and saves the input of. */
#ifndef EMPD_TESTS_FUZZ_CHECK_H
#define EMPD_TESTS_FUZZ_CHECK_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "invariant failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__);   \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

/* Whether the n bytes at text are exactly one JSON value followed by whitespace as cJSON reads it (bytes 1..32):
 * what a reader of a JSON file may accept. Trailing bytes are a damaged or concatenated file, and a NUL tail is
 * what a torn write leaves, not something to ignore. */
int check_whole_json(const void *text, size_t n);

#endif
