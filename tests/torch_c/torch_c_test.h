/* Shared parts of test_torch_c: the python3-torch reference store and the op cases. */
#ifndef EMPD_TESTS_TORCH_C_TEST_H
#define EMPD_TESTS_TORCH_C_TEST_H

#include <stddef.h>

#include "models/torch_c.h"

/* Error bound for fp32 results: max |ours - ref| / max |ref| (ggml backend-ops style). */
#define TC_TEST_FP32_TOL 1e-5

/* Runs ref_torch_c.py into a temporary directory and loads its output; 0 on success. */
int ref_open(void);
void ref_close(void);
/* How many reference keys end in suffix. */
size_t ref_count_suffix(const char *suffix);
/* Whether the reference holds key. */
int ref_has(const char *key);
/* The reference tensor key as a new tensor in the current scope (NULL when absent). */
tc_tensor *ref_tensor(const char *key);
/* The dtype the reference stored for key. */
tc_dtype ref_dtype(const char *key);
/* max |got - want| / max(max |want|, 1e-30) over elements as f32; INFINITY when shapes differ. */
double rel_err(tc_tensor *got, tc_tensor *want);

/* The op cases compared with the reference, one cmocka test each. */
typedef struct {
    const char *name;
    tc_tensor *(*fn)(tc_tensor **in);
    int exact_zeros; /* where the reference is exactly 0, ours must be too */
} op_case;
extern const op_case op_cases[];
extern const size_t op_case_count;
void test_op_case(void **state);

#endif
