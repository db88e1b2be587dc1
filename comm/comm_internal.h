/* Shared by comm's own .c files; not part of the module's API (include comm/comm.h instead). */
#ifndef EMPD_COMM_INTERNAL_H
#define EMPD_COMM_INTERNAL_H

#include <stddef.h>

#include "comm/comm.h"

/* Writes one printf-formatted line into err (NULL or errlen 0: nothing) and returns `code`, so a failing
 * path reads `return comm_fail(err, errlen, COMM_EINVAL, "...", ...);`. */
int comm_fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Plural noun for a dtype in messages: "floats", "doubles", "int64 values", "bf16 values". */
const char *comm_dtype_noun(comm_dtype dt);

/* Name of an op in messages: "SUM", "AVG", "MAX", "MIN", or "op?" outside the enum. */
const char *comm_op_name(comm_op op);

/* 0 if the pair is defined (AVG needs a float type; dt and op inside their enums), else COMM_EINVAL
 * with the line "comm: <what>: ..." in err. */
int comm_check_reduce(const char *what, comm_dtype dt, comm_op op, char *err, size_t errlen);

#endif
