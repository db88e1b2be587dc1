/* Shared parts of test_models: the python reference, and the test cases of
 * each file (safetensors_cases.c, bert_cases.c, text_model_cases.c). */
#ifndef EMPD_TESTS_MODELS_TEST_H
#define EMPD_TESTS_MODELS_TEST_H

#include <stddef.h>

#include "models/torch_c.h"
#include "tests/common/test_files.h"

/* Runs "ref_models.py ARGS" and returns its stdout (caller frees); NULL when it fails. */
char *tm_run_reference(const char *args);
/* t's elements as host floats (t must be f32; caller frees). */
float *tm_host_f32(const tc_tensor *t);

void test_st_round_trip(void **state);
void test_st_python_reads_ours(void **state);
void test_st_reads_python(void **state);
void test_st_file_order(void **state);
void test_st_malformed(void **state);
void test_st_entry_not_object(void **state);
void test_st_write_rejects(void **state);

void test_bert_vs_torch(void **state);

void test_text_model_shape(void **state);
void test_text_model_masks(void **state);
void test_text_model_meta_out_of_range(void **state);

#endif
