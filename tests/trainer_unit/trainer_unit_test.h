/* Shared parts of test_trainer_unit: temporary folders and files, and the test cases of each
 * file (config_cases.c, metrics_cases.c, checkpoint_cases.c). */
#ifndef EMPD_TESTS_TRAINER_UNIT_TEST_H
#define EMPD_TESTS_TRAINER_UNIT_TEST_H

#include <stddef.h>

/* A new empty folder /tmp/test_trainer_unit.XXXXXX in buf (at least 64 bytes); 0 on success. */
int tu_make_temp_dir(char *buf);
/* Removes path and everything under it. */
void tu_remove_tree(const char *path);
/* Writes text to path (plain write: the test sets up files, it does not test atomicity). */
void tu_write_text(const char *path, const char *text);
/* The whole file as a NUL-terminated string (caller frees); NULL when it cannot be read. */
char *tu_read_text(const char *path, size_t *len);
/* How many entries of dir (not . and ..) have a name containing part. */
int tu_count_entries(const char *dir, const char *part);

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

void test_ckpt_round_trip(void **state);
void test_ckpt_keep_last_and_torn(void **state);
void test_ckpt_bad_files(void **state);
void test_ckpt_missing_extra_named(void **state);
void test_ckpt_best_val_acc_exact(void **state);
void test_write_file_atomic(void **state);

#endif
