/* Which backend the launcher asks for, and the TCP rendezvous's settings, read from the environment. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm/comm_internal.h"

/* A job larger than this is a typo, not a job. */
#define COMM_MAX_WORLD 65536
#define COMM_DEFAULT_PORT 29500
#define COMM_DEFAULT_RENDEZVOUS_S 300.0
#define COMM_DEFAULT_TOKEN "empd-default-job-token"

/* An integer variable in lo..hi. Returns 0 and leaves *out when the variable is unset. */
static int env_int(const char *name, long lo, long hi, int *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (!v)
        return COMM_OK;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%s is not an integer in %ld..%ld", name, v, lo, hi);
    *out = (int)x;
    return COMM_OK;
}

/* Seconds in a variable: finite, >= 0 (or > 0 when !zero_ok). Leaves *out when unset or empty. */
static int env_seconds(const char *name, int zero_ok, double *out, char *err, size_t errlen)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return COMM_OK;
    char *end;
    double x = strtod(v, &end);
    if (*end || !isfinite(x) || x < 0 || (!zero_ok && x == 0))
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%s is not a number of seconds %s 0", name, v,
                         zero_ok ? ">=" : ">");
    *out = x;
    return COMM_OK;
}

static int launched_by_mpi(void)
{
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

/* The job token becomes a SipHash key; the token itself is never kept. */
static void read_token(comm_env *e)
{
    static const uint64_t derive[2][2] = {{0x656d70642d6b6579ull, 0x2d6465726976652dull},
                                          {0x6a6f622d746f6b65ull, 0x6e2d686173682d32ull}};
    char buf[300];
    const char *token = getenv("EMPD_JOB_TOKEN"), *slurm = getenv("SLURM_JOB_ID");
    if (token && *token) {
        e->token_source = "EMPD_JOB_TOKEN";
    } else if (slurm && *slurm) {
        snprintf(buf, sizeof buf, "slurm-job-%s", slurm);
        token = buf;
        e->token_source = "SLURM_JOB_ID";
    } else {
        token = COMM_DEFAULT_TOKEN;
        e->token_source = "the default token";
    }
    for (int i = 0; i < 2; i++)
        e->key[i] = comm_siphash(derive[i], token, strlen(token));
}

/* Where a rank learns its place: torchrun's variables, else Open MPI's (EMPD_COMM=tcp under mpirun),
 * else Slurm's (srun without PMIx). Open MPI's come before Slurm's: inside an allocation mpirun's
 * children all inherit the batch script's SLURM_PROCID=0. */
static const struct {
    const char *rank, *size, *local_rank, *local_size;
} SOURCES[] = {
    {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", NULL},
};

static int read_ranks(comm_env *e, char *err, size_t errlen)
{
    size_t k = 0;
    while (k + 1 < sizeof SOURCES / sizeof SOURCES[0] && !getenv(SOURCES[k].rank))
        k++;
    if (!getenv(SOURCES[k].rank))
        k = 0;
    const char *rank_var = SOURCES[k].rank, *size_var = SOURCES[k].size;
    const char *local_var = SOURCES[k].local_rank, *lsize_var = SOURCES[k].local_size;
    e->rank = -1;
    e->size = 1;
    int code = env_int(size_var, 1, COMM_MAX_WORLD, &e->size, err, errlen);
    if (!code)
        code = env_int(rank_var, 0, COMM_MAX_WORLD, &e->rank, err, errlen);
    if (!code)
        code = env_int(local_var, 0, COMM_MAX_WORLD, &e->local_rank, err, errlen);
    if (!code && lsize_var)
        code = env_int(lsize_var, 1, COMM_MAX_WORLD, &e->local_size, err, errlen);
    if (code)
        return code;
    if (!getenv(size_var) && getenv(rank_var))
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%s is set but %s is not", rank_var, getenv(rank_var),
                         size_var);
    if (e->rank < 0) {
        if (e->size > 1)
            return comm_fail(err, errlen, COMM_EINVAL,
                             "comm: %s=%d asks for a TCP group but %s is not set (each process needs its own rank, "
                             "0..%d)",
                             size_var, e->size, rank_var, e->size - 1);
        e->rank = 0;
    }
    if (e->rank >= e->size)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%d is outside %s=%d", rank_var, e->rank, size_var,
                         e->size);
    if (e->local_rank >= e->size)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%d is outside %s=%d", local_var, e->local_rank, size_var,
                         e->size);
    if (e->local_size > e->size)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%d is larger than %s=%d", lsize_var, e->local_size,
                         size_var, e->size);
    if (e->local_size > 0 && e->local_rank >= e->local_size)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s=%d is outside %s=%d", local_var, e->local_rank, lsize_var,
                         e->local_size);
    return COMM_OK;
}

static int read_tcp(comm_env *e, char *err, size_t errlen)
{
    int code = read_ranks(e, err, errlen);
    if (code)
        return code;
    const char *addr = getenv("MASTER_ADDR");
    if (e->size > 1 && (!addr || !*addr))
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: the TCP backend with a group of %d needs MASTER_ADDR (rank 0's address) and "
                         "MASTER_PORT",
                         e->size);
    if (addr && strlen(addr) >= sizeof e->master_addr)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: MASTER_ADDR is %zu characters long; at most %zu",
                         strlen(addr), sizeof e->master_addr - 1);
    snprintf(e->master_addr, sizeof e->master_addr, "%s", addr ? addr : "");
    e->master_port = COMM_DEFAULT_PORT;
    code = env_int("MASTER_PORT", 1, 65535, &e->master_port, err, errlen);
    e->rendezvous_timeout = COMM_DEFAULT_RENDEZVOUS_S;
    if (!code)
        code = env_seconds("EMPD_RENDEZVOUS_TIMEOUT", 0, &e->rendezvous_timeout, err, errlen);
    /* A year is forever here, and keeps every deadline within int64 nanoseconds. */
    if (e->rendezvous_timeout > 3.2e7)
        e->rendezvous_timeout = 3.2e7;
    if (!code)
        read_token(e);
    return code;
}

int comm_env_read(comm_env *e, char *err, size_t errlen)
{
    memset(e, 0, sizeof *e);
    e->local_rank = e->local_size = -1;
    const char *force = getenv("EMPD_COMM");
    if (force && *force) {
        if (!strcmp(force, "mpi"))
            e->backend = COMM_BACKEND_MPI;
        else if (!strcmp(force, "tcp"))
            e->backend = COMM_BACKEND_TCP;
        else
            return comm_fail(err, errlen, COMM_EINVAL,
                             "comm: EMPD_COMM=%s names no backend (mpi or tcp; unset: chosen by the launcher)", force);
    } else if (launched_by_mpi()) {
        e->backend = COMM_BACKEND_MPI;
    } else if (getenv("MASTER_ADDR") && (getenv("WORLD_SIZE") || getenv("SLURM_NTASKS"))) {
        e->backend = COMM_BACKEND_TCP;
    } else {
        int world = 1;
        int code = env_int("WORLD_SIZE", 1, COMM_MAX_WORLD, &world, err, errlen);
        if (code)
            return code;
        if (world > 1)
            return comm_fail(err, errlen, COMM_EINVAL,
                             "comm: WORLD_SIZE=%d is set but MASTER_ADDR is not: set MASTER_ADDR (rank 0's address) "
                             "and MASTER_PORT for the TCP rendezvous, or start the job with mpirun",
                             world);
        e->backend = COMM_BACKEND_MPI;
    }
    int code = env_seconds("EMPD_COMM_TIMEOUT", 1, &e->comm_timeout, err, errlen);
    if (!code && e->backend == COMM_BACKEND_TCP)
        code = read_tcp(e, err, errlen);
    return code;
}
