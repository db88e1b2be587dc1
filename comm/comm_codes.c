/* Codes, dtype and op names, and the error-line writer shared by the MPI and NCCL backends. */
#include <stdarg.h>
#include <stdio.h>

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
