/* comm/ without a job: backend selection and the checks of the environment, a TCP group of one, the
 * watchdog's settings, and the job token's hash against SipHash-2-4's published test vectors. One
 * plain process; every case sets the variables it needs and restores the rest. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "comm/comm.h"
#include "comm/comm_internal.h"

static const char *const VARS[] = {
    "EMPD_COMM",
    "RANK",
    "WORLD_SIZE",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
    "SLURM_PROCID",
    "SLURM_NTASKS",
    "SLURM_LOCALID",
    "SLURM_JOB_ID",
    "EMPD_JOB_TOKEN",
    "EMPD_COMM_TIMEOUT",
    "EMPD_RENDEZVOUS_TIMEOUT",
    "OMPI_COMM_WORLD_SIZE",
    "PMIX_RANK",
    "PMI_RANK",
    "PMI_SIZE",
    "OMPI_COMM_WORLD_RANK",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
};
#define NVARS (sizeof VARS / sizeof VARS[0])
static char *saved[NVARS];

static int save_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVARS; i++) {
        const char *v = getenv(VARS[i]);
        saved[i] = v ? strdup(v) : NULL;
        unsetenv(VARS[i]);
    }
    return 0;
}

static int restore_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < NVARS; i++) {
        if (saved[i])
            setenv(VARS[i], saved[i], 1);
        else
            unsetenv(VARS[i]);
        free(saved[i]);
        saved[i] = NULL;
    }
    return 0;
}

/* Sets "K=V K=V ..." after clearing every variable comm reads. */
static void set_only(const char *assignments)
{
    for (size_t i = 0; i < NVARS; i++)
        unsetenv(VARS[i]);
    char buf[512];
    snprintf(buf, sizeof buf, "%s", assignments);
    for (char *save = NULL, *kv = strtok_r(buf, " ", &save); kv; kv = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(kv, '=');
        assert_non_null(eq);
        *eq = '\0';
        setenv(kv, eq + 1, 1);
    }
}

/* Each bad environment fails comm_init with COMM_EINVAL and one line naming the variable, before any
 * network or MPI call. */
static void test_bad_environment(void **state)
{
    (void)state;
    static const struct {
        const char *env, *line;
    } cases[] = {
        {"EMPD_COMM=bogus", "comm: EMPD_COMM=bogus names no backend (mpi or tcp"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 RANK=7", "comm: RANK=7 is outside WORLD_SIZE=2"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2", "comm: WORLD_SIZE=2 asks for a TCP group but RANK is not set"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=abc RANK=0", "comm: WORLD_SIZE=abc is not an integer in 1..65536"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 RANK=-1", "comm: RANK=-1 is not an integer in 0..65536"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 RANK=1 MASTER_PORT=70000",
         "comm: MASTER_PORT=70000 is not an integer in 1..65535"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 RANK=1 LOCAL_RANK=2 LOCAL_WORLD_SIZE=2",
         "comm: LOCAL_RANK=2 is outside WORLD_SIZE=2"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=4 RANK=1 LOCAL_RANK=2 LOCAL_WORLD_SIZE=2",
         "comm: LOCAL_RANK=2 is outside LOCAL_WORLD_SIZE=2"},
        {"MASTER_ADDR=127.0.0.1 SLURM_NTASKS=2 SLURM_PROCID=3", "comm: SLURM_PROCID=3 is outside SLURM_NTASKS=2"},
        {"MASTER_ADDR=127.0.0.1 RANK=1 SLURM_NTASKS=2", "comm: RANK=1 is set but WORLD_SIZE is not"},
        {"EMPD_COMM=tcp MASTER_ADDR=127.0.0.1 OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=2 SLURM_PROCID=0 "
         "SLURM_NTASKS=1",
         "comm: OMPI_COMM_WORLD_RANK=2 is outside OMPI_COMM_WORLD_SIZE=2"},
        {"EMPD_COMM=tcp WORLD_SIZE=2 RANK=1", "comm: the TCP backend with a group of 2 needs MASTER_ADDR"},
        {"WORLD_SIZE=3", "comm: WORLD_SIZE=3 is set but MASTER_ADDR is not"},
        {"EMPD_COMM_TIMEOUT=-1", "comm: EMPD_COMM_TIMEOUT=-1 is not a number of seconds >= 0"},
        {"MASTER_ADDR=127.0.0.1 WORLD_SIZE=2 RANK=1 EMPD_RENDEZVOUS_TIMEOUT=0",
         "comm: EMPD_RENDEZVOUS_TIMEOUT=0 is not a number of seconds > 0"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        set_only(cases[i].env);
        char err[256] = "";
        comm_group *g = (comm_group *)1;
        int rc = comm_init(NULL, NULL, &g, err, sizeof err);
        if (rc != COMM_EINVAL || g || strncmp(err, cases[i].line, strlen(cases[i].line)))
            fail_msg("%s: code %d, line \"%s\"; want COMM_EINVAL and \"%s...\"", cases[i].env, rc, err, cases[i].line);
    }
}

/* A rank that cannot resolve MASTER_ADDR says so; one that finds nobody there names the address. */
static void test_peer_gives_up(void **state)
{
    (void)state;
    char err[256] = "";
    comm_group *g = NULL;
    set_only("MASTER_ADDR=127.0.0.1 MASTER_PORT=1 WORLD_SIZE=2 RANK=1 EMPD_RENDEZVOUS_TIMEOUT=0.3");
    assert_int_equal(comm_init(NULL, NULL, &g, err, sizeof err), COMM_ENET);
    assert_null(g);
    if (!strstr(err, "comm: rendezvous: rank 1 could not reach rank 0 at 127.0.0.1:1 (MASTER_ADDR:MASTER_PORT) "
                     "within 0.3 s: "))
        fail_msg("%s", err);
}

/* EMPD_COMM=tcp without a job: a TCP group of one, which needs no network. */
static void test_tcp_group_of_one(void **state)
{
    (void)state;
    char err[256];
    comm_group *g = NULL;
    set_only("EMPD_COMM=tcp EMPD_COMM_TIMEOUT=7.5");
    assert_int_equal(comm_init(NULL, NULL, &g, err, sizeof err), COMM_OK);
    assert_string_equal(comm_backend_name(g), "tcp");
    assert_int_equal(comm_rank(g), 0);
    assert_int_equal(comm_size(g), 1);
    assert_int_equal(comm_local_rank(g), 0);
    assert_int_equal(comm_local_size(g), 1);
    assert_int_equal(comm_thread_level_of(g), COMM_THREAD_MULTIPLE);
    assert_true(comm_timeout(g) == 7.5);
    float x[3] = {1, 2, 3};
    assert_int_equal(comm_allreduce(g, x, 3, COMM_F32, COMM_AVG, err, sizeof err), COMM_OK);
    assert_true(x[0] == 1 && x[1] == 2 && x[2] == 3);
    assert_int_equal(comm_broadcast(g, x, sizeof x, 0, err, sizeof err), COMM_OK);
    assert_int_equal(comm_broadcast(g, x, sizeof x, 1, err, sizeof err), COMM_EINVAL);
    double mine = 4.5, all = 0;
    assert_int_equal(comm_allgather(g, &mine, &all, sizeof mine, err, sizeof err), COMM_OK);
    assert_true(all == 4.5);
    assert_int_equal(comm_barrier(g, err, sizeof err), COMM_OK);
    comm_set_timeout(g, 0);
    assert_true(comm_timeout(g) == 0);
    assert_int_equal(comm_finalize(g, err, sizeof err), COMM_OK);
}

/* SipHash-2-4 with key 00..0f: the empty message and 00..0e (the reference implementation's vectors). */
static void test_siphash_vectors(void **state)
{
    (void)state;
    const uint64_t key[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    unsigned char msg[15];
    for (int i = 0; i < 15; i++)
        msg[i] = (unsigned char)i;
    assert_true(comm_siphash(key, msg, 0) == 0x726fdb47dd0e0e31ull);
    assert_true(comm_siphash(key, msg, 8) == 0x93f5f5799a932462ull);
    assert_true(comm_siphash(key, msg, 15) == 0xa129ca6149be45e5ull);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_environment),
        cmocka_unit_test(test_peer_gives_up),
        cmocka_unit_test(test_tcp_group_of_one),
        cmocka_unit_test(test_siphash_vectors),
    };
    return cmocka_run_group_tests_name("comm environment", tests, save_env, restore_env);
}
