/* Unicode tables of the uncased BERT normalizer, generated from CPython's unicodedata by
 * tests/tokenizer/gen_wordpiece_tables.py into dataset/wordpiece_tables.c. Private to
 * dataset/wordpiece.c. Every table is sorted by code point and free of overlaps, so a binary search
 * finds the one entry that can hold a code point. */
#ifndef EMPD_DATASET_WORDPIECE_TABLES_H
#define EMPD_DATASET_WORDPIECE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Inclusive code point range. */
typedef struct {
    uint32_t first, last;
} wp_range;

/* Code points first, first+stride, ..., last fold to cp + value (is_const 0) or to value (is_const 1). */
typedef struct {
    uint32_t first, last;
    uint8_t stride, is_const;
    int32_t value;
} wp_fold_run;

typedef struct {
    uint32_t cp, out;
} wp_fold_pair;

/* out[2] is 0 when the code point folds to two. */
typedef struct {
    uint32_t cp;
    uint32_t out[3];
} wp_fold_multi;

extern const wp_range wp_table_mn[];
extern const size_t wp_table_mn_len;
extern const wp_range wp_table_punct[];
extern const size_t wp_table_punct_len;
extern const wp_range wp_table_control[];
extern const size_t wp_table_control_len;
extern const wp_range wp_table_cased[];
extern const size_t wp_table_cased_len;
extern const wp_range wp_table_case_ignorable[];
extern const size_t wp_table_case_ignorable_len;
extern const wp_fold_run wp_table_fold_runs[];
extern const size_t wp_table_fold_runs_len;
extern const wp_fold_pair wp_table_fold_pairs[];
extern const size_t wp_table_fold_pairs_len;
extern const wp_fold_multi wp_table_fold_multi[];
extern const size_t wp_table_fold_multi_len;

#endif
