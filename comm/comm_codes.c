/* Codes, dtype, op and call names, the error-line writer and the clock shared by comm's backends. */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "comm/comm_internal.h"

const char *comm_strerror(int code)
{
    switch (code) {
    case COMM_OK: return "success";
    case COMM_EINVAL: return "invalid argument";
    case COMM_EMPI: return "MPI call failed";
    case COMM_ENOMEM: return "out of memory";
    case COMM_ENOGPU: return "no usable GPU";
    case COMM_ECUDA: return "CUDA call failed";
    case COMM_ENCCL: return "NCCL call failed";
    case COMM_ENOTSUP: return "built without NCCL";
    case COMM_ENET: return "TCP rendezvous or connection failed";
    default: return "unknown comm error code";
    }
}

size_t comm_dtype_size(comm_dtype dt)
{
    switch (dt) {
    case COMM_F32: return 4;
    case COMM_F64: return 8;
    case COMM_I64: return 8;
    case COMM_BF16: return 2;
    }
    return 0;
}

const char *comm_dtype_noun(comm_dtype dt)
{
    switch (dt) {
    case COMM_F32: return "floats";
    case COMM_F64: return "doubles";
    case COMM_I64: return "int64 values";
    case COMM_BF16: return "bf16 values";
    }
    return "elements of unknown dtype";
}

const char *comm_op_name(comm_op op)
{
    switch (op) {
    case COMM_SUM: return "SUM";
    case COMM_AVG: return "AVG";
    case COMM_MAX: return "MAX";
    case COMM_MIN: return "MIN";
    }
    return "op?";
}

int comm_check_reduce(const char *what, comm_dtype dt, comm_op op, char *err, size_t errlen)
{
    if (comm_dtype_size(dt) == 0)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s: dtype %d is not a comm_dtype", what, (int)dt);
    if (op < COMM_SUM || op > COMM_MIN)
        return comm_fail(err, errlen, COMM_EINVAL, "comm: %s: op %d is not a comm_op", what, (int)op);
    if (op == COMM_AVG && dt == COMM_I64)
        return comm_fail(err, errlen, COMM_EINVAL,
                         "comm: %s: AVG of int64 values is not defined (use SUM and divide)", what);
    return COMM_OK;
}

int comm_fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

void comm_describe_call(char *buf, size_t len, comm_call call, uint64_t count, uint64_t aux)
{
    switch (call) {
    case COMM_CALL_ALLREDUCE:
        snprintf(buf, len, "all-reduce of %llu %s", (unsigned long long)count,
                 comm_dtype_noun((comm_dtype)(aux & 0xff)));
        return;
    case COMM_CALL_BROADCAST:
        snprintf(buf, len, "broadcast of %llu bytes from root %llu", (unsigned long long)count,
                 (unsigned long long)aux);
        return;
    case COMM_CALL_BARRIER: snprintf(buf, len, "barrier"); return;
    case COMM_CALL_ALLGATHER:
        snprintf(buf, len, "all-gather of %llu bytes per rank", (unsigned long long)count);
        return;
    case COMM_CALL_FINALIZE: snprintf(buf, len, "leaving the group (comm_finalize)"); return;
    case COMM_CALL_NCCL_SYNC: snprintf(buf, len, "the NCCL stream's work (comm_nccl_sync)"); return;
    }
    snprintf(buf, len, "collective %d", (int)call);
}

int64_t comm_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void comm_divide_by_size(void *buf, size_t count, comm_dtype dt, int size)
{
    if (size == 1)
        return;
    if (dt == COMM_F32) {
        float *x = buf;
        const float s = (float)size;
        for (size_t i = 0; i < count; i++)
            x[i] /= s;
    } else if (dt == COMM_F64) {
        double *x = buf;
        const double s = (double)size;
        for (size_t i = 0; i < count; i++)
            x[i] /= s;
    }
}
