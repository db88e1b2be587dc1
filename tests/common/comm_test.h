/* cmocka tests that run on every rank of a process group (tests/comm, tests/reducer).
 *
 * A test body that fails on one rank returns early while the other ranks wait in its next collective:
 * COMM_TEST marks when a body ran to its end, and comm_test_abort_after_failure (the setup of every
 * test, and the teardown of the group) ends the whole job then. cmocka prints a failure's message only
 * after the test has ended, so the abort waits until the next setup (an abort in the failed test's
 * teardown would swallow it). skip() also leaves a body early: only a singleton may skip. The including
 * file sets comm_test_group once the group is up. */
#ifndef EMPD_TESTS_COMM_TEST_H
#define EMPD_TESTS_COMM_TEST_H

#include <stdio.h>
#include <time.h>

#include "comm/comm.h"

static comm_group *comm_test_group;
static int comm_test_body_completed = 1;

#define COMM_TEST(name)                                                                                      \
    static void name##_body(void);                                                                           \
    static void name(void **state)                                                                           \
    {                                                                                                        \
        (void)state;                                                                                         \
        comm_test_body_completed = 0;                                                                        \
        name##_body();                                                                                       \
        comm_test_body_completed = 1;                                                                        \
    }                                                                                                        \
    static void name##_body(void)

static int comm_test_abort_after_failure(void **state)
{
    (void)state;
    if (!comm_test_body_completed && comm_size(comm_test_group) > 1) {
        fprintf(stderr, "a test failed on rank %d; aborting every rank so none waits in a collective\n",
                comm_rank(comm_test_group));
        fflush(stdout);
        fflush(stderr);
        comm_abort(comm_test_group, 1);
    }
    return 0;
}

static inline double comm_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
