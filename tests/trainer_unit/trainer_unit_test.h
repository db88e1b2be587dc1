/* Shared parts of test_trainer_unit: the test cases of each
 * file (config_cases.c, metrics_cases.c, checkpoint_cases.c). */
#ifndef EMPD_TESTS_TRAINER_UNIT_TEST_H
#define EMPD_TESTS_TRAINER_UNIT_TEST_H

#include <stddef.h>

#include "tests/common/test_files.h"

void test_config_defaults(void **state);
void test_config_file_and_sets(void **state);
void test_config_errors(void **state);
void test_config_malformed_json(void **state);
void test_config_model_hash(void **state);
void test_config_canonical_json(void **state);
void test_config_huge_integer(void **state);
void test_config_json_exact_doubles(void **state);

int metrics_setup(void **state);
int metrics_teardown(void **state);
void test_metrics_vs_sklearn(void **state);
void test_metrics_empty_and_unnamed(void **state);

void test_eval_vs_torch(void **state);
void test_eval_gather_faults(void **state);
void test_eval_gather_two_ranks(void **state);

void test_predictions_round_trip(void **state);
void test_predictions_bad_files(void **state);

void test_ckpt_round_trip(void **state);
void test_ckpt_keep_last_and_torn(void **state);
void test_ckpt_keeps_best(void **state);
void test_ckpt_bad_files(void **state);
void test_ckpt_missing_extra_named(void **state);
void test_ckpt_best_val_acc_exact(void **state);
void test_write_file_atomic(void **state);

void test_batch_tensors(void **state);

void test_loss_vs_torch(void **state);

#endif
